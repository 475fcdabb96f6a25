//! Locality-based least connection with replication (`ip_vs_lblcr`): the
//! cache maps each destination address to a *set* of servers. The least
//! loaded available member serves; a set that has not changed for the
//! expiration time sheds its most loaded member; and when no member is
//! usable (or the chosen one is overloaded in the locality sense) the wlc
//! choice over the whole service joins the set.

use super::cache::Cache;
use super::{
    DestChange, DestId, Dests, Flow, SchedCtx, Scheduler, lighter, locality_overloaded, wlc_pick,
};
use crate::model::SchedulerKind;

/// A cached server set, newest member first.
#[derive(Debug, Clone)]
struct DestSet {
    members: Vec<DestId>,
    lastmod_ms: u64,
}

impl DestSet {
    fn insert(&mut self, id: DestId, now: u64) {
        if !self.members.contains(&id) {
            self.members.insert(0, id);
            self.lastmod_ms = now;
        }
    }

    fn erase(&mut self, id: DestId, now: u64) {
        if let Some(p) = self.members.iter().position(|&m| m == id) {
            self.members.remove(p);
            self.lastmod_ms = now;
        }
    }

    /// Least `overhead / weight` among members that are available, not
    /// overloaded and not quiesced; first on ties.
    fn min(&self, dests: Dests<'_>) -> Option<DestId> {
        let mut best: Option<(DestId, u64, u32)> = None;
        for &id in &self.members {
            let Some(s) = dests.status.get(id.index()) else {
                continue;
            };
            if s.overloaded || s.weight == 0 || !s.available {
                continue;
            }
            let oh = s.overhead();
            match best {
                Some((_, bo, bw)) if !lighter(oh, s.weight, bo, bw) => {}
                _ => best = Some((id, oh, s.weight)),
            }
        }
        best.map(|(id, _, _)| id)
    }

    /// Most `overhead / weight` among members with a positive weight
    /// (availability and overload do not matter here); first on ties.
    fn max(&self, dests: Dests<'_>) -> Option<DestId> {
        let mut best: Option<(DestId, u64, u32)> = None;
        for &id in &self.members {
            let Some(s) = dests.status.get(id.index()) else {
                continue;
            };
            if s.weight == 0 {
                continue;
            }
            let oh = s.overhead();
            match best {
                Some((_, bo, bw)) if !lighter(bo, bw, oh, s.weight) => {}
                _ => best = Some((id, oh, s.weight)),
            }
        }
        best.map(|(id, _, _)| id)
    }
}

/// The lblcr scheduler state: its cache.
#[derive(Debug, Clone)]
pub struct Lblcr {
    cache: Cache<DestSet>,
}

impl Default for Lblcr {
    fn default() -> Self {
        Self::new()
    }
}

impl Lblcr {
    /// A scheduler with an empty cache.
    pub fn new() -> Self {
        Lblcr {
            cache: Cache::new(),
        }
    }

    /// Number of cached addresses.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// The cached set for an address, newest member first.
    pub fn set_of(&mut self, addr: &std::net::IpAddr) -> Option<Vec<DestId>> {
        self.cache.get_mut(addr).map(|e| e.val.members.clone())
    }
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblcr
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        flow: &Flow,
        ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        let now = ctx.now_ms;
        let expiration = u64::from(ctx.lblcr_expiration) * 1000;
        self.cache.collect(now, expiration);
        if let Some(en) = self.cache.get_mut(&flow.dst) {
            en.lastuse_ms = now;
            let set = &mut en.val;
            // The least loaded member is chosen before the clean-up below,
            // so it may be the very member the clean-up removes.
            let picked = set.min(dests);
            if set.members.len() > 1
                && now > set.lastmod_ms.saturating_add(expiration)
                && let Some(m) = set.max(dests)
            {
                set.erase(m, now);
            }
            if let Some(id) = picked
                && !locality_overloaded(dests.get(id), dests)
            {
                return Some(id);
            }
            let id = wlc_pick(dests)?;
            set.insert(id, now);
            return Some(id);
        }
        let id = wlc_pick(dests)?;
        self.cache.insert(
            flow.dst,
            now,
            DestSet {
                members: vec![id],
                lastmod_ms: now,
            },
        );
        Some(id)
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{Fixture, flow, v4};

    #[test]
    fn set_grows_when_member_overloaded() {
        let (mut f, ids) = Fixture::list(&[2, 2, 2]);
        let mut s = Lblcr::new();
        let dst = v4(198, 51, 100, 7);
        let fl = flow(v4(192, 0, 2, 1), 1, dst);
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        assert_eq!(s.set_of(&dst), Some(vec![ids[0]]));
        // A over its weight while others are idle → wlc over all → B joins.
        f.st(ids[0]).active = 3;
        assert_eq!(f.pick(&mut s, &fl, 1), Some(ids[1]));
        assert_eq!(s.set_of(&dst), Some(vec![ids[1], ids[0]]));
        // Within the set the least loaded serves: B (0) over A (3).
        assert_eq!(f.pick(&mut s, &fl, 2), Some(ids[1]));
        // Members flagged OVERLOAD are skipped inside the set: A again would
        // be over weight, so wlc picks C and adds it.
        f.st(ids[1]).overloaded = true;
        assert_eq!(f.pick(&mut s, &fl, 3), Some(ids[2]));
        assert_eq!(s.set_of(&dst), Some(vec![ids[2], ids[1], ids[0]]));
    }

    #[test]
    fn stale_set_sheds_most_loaded_after_choosing() {
        let (mut f, ids) = Fixture::list(&[1, 1]);
        let mut s = Lblcr::new();
        let dst = v4(198, 51, 100, 7);
        let fl = flow(v4(192, 0, 2, 1), 1, dst);
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        f.st(ids[0]).active = 2; // over weight; B idle → B joins
        assert_eq!(f.pick(&mut s, &fl, 10), Some(ids[1]));
        // A: 256, B: 256 + 300 = 556 → min A, max B.
        f.st(ids[0]).active = 1;
        f.st(ids[1]).active = 1;
        f.st(ids[1]).inactive = 300;
        // Day + a bit later the set is stale (lastmod 10 ms): B is erased.
        let later = 24 * 3600 * 1000 + 11;
        assert_eq!(
            f.pick(&mut s, &flow(v4(1, 1, 1, 1), 1, dst), later),
            Some(ids[0])
        );
        assert_eq!(s.set_of(&dst), Some(vec![ids[0]]));
    }

    #[test]
    fn chosen_member_can_be_the_one_erased() {
        let (mut f, ids) = Fixture::list(&[1, 1]);
        let mut s = Lblcr::new();
        let dst = v4(198, 51, 100, 7);
        let fl = flow(v4(192, 0, 2, 1), 1, dst);
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        f.st(ids[0]).active = 2;
        assert_eq!(f.pick(&mut s, &fl, 10), Some(ids[1]));
        // With B quiesced, A is both the least loaded member (min skips
        // weight 0) and the most loaded one (max also only looks at
        // weight > 0): A is returned and erased from the stale set.
        f.st(ids[0]).active = 0;
        f.st(ids[1]).weight = 0;
        let later = 24 * 3600 * 1000 + 11;
        assert_eq!(f.pick(&mut s, &fl, later), Some(ids[0]));
        assert_eq!(s.set_of(&dst), Some(vec![ids[1]]));
    }

    #[test]
    fn deleted_member_is_skipped() {
        let (mut f, ids) = Fixture::list(&[1, 1]);
        let mut s = Lblcr::new();
        let dst = v4(198, 51, 100, 7);
        let fl = flow(v4(192, 0, 2, 1), 1, dst);
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        f.remove(&mut s, ids[0]);
        assert_eq!(f.pick(&mut s, &fl, 1), Some(ids[1]));
        assert_eq!(s.set_of(&dst), Some(vec![ids[1], ids[0]]));
    }
}
