//! Locality-based least connection (`ip_vs_lblc`): a cache maps each
//! destination (virtual-side target) address to one real server. A cached
//! server is reused while it is available, not quiesced and not
//! "overloaded" in the locality sense (more active connections than its
//! weight while some server is below half of its own); otherwise the wlc
//! choice replaces it.

use super::cache::Cache;
use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler, locality_overloaded, wlc_pick};
use crate::model::SchedulerKind;

/// The lblc scheduler state: its cache.
#[derive(Debug, Clone)]
pub struct Lblc {
    cache: Cache<DestId>,
}

impl Default for Lblc {
    fn default() -> Self {
        Self::new()
    }
}

impl Lblc {
    /// A scheduler with an empty cache.
    pub fn new() -> Self {
        Lblc {
            cache: Cache::new(),
        }
    }

    /// Number of cached addresses.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblc
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        flow: &Flow,
        ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        let now = ctx.now_ms;
        self.cache
            .collect(now, u64::from(ctx.lblc_expiration) * 1000);
        if let Some(en) = self.cache.get_mut(&flow.dst) {
            en.lastuse_ms = now;
            let id = en.val;
            // A cached server may have been deleted (it then waits in the
            // trash and is no longer available).
            if let Some(s) = dests.status.get(id.index())
                && s.available
                && s.weight > 0
                && !locality_overloaded(s, dests)
            {
                return Some(id);
            }
        }
        let id = wlc_pick(dests)?;
        match self.cache.get_mut(&flow.dst) {
            Some(en) => {
                en.val = id;
                en.lastuse_ms = now;
            }
            None => self.cache.insert(flow.dst, now, id),
        }
        Some(id)
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{Fixture, flow, v4};

    #[test]
    fn sticks_to_cached_server_until_overloaded() {
        let (mut f, ids) = Fixture::list(&[2, 2]);
        let mut s = Lblc::new();
        let fl = flow(v4(192, 0, 2, 1), 1, v4(198, 51, 100, 7));
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        // A is busier than B, but cached: still A (active 2 is not > w 2).
        f.st(ids[0]).active = 2;
        assert_eq!(f.pick(&mut s, &fl, 1), Some(ids[0]));
        // Active 3 > 2 and B is below half its weight: re-choose → B.
        f.st(ids[0]).active = 3;
        assert_eq!(f.pick(&mut s, &fl, 2), Some(ids[1]));
        // The entry now points at B.
        f.st(ids[0]).active = 0;
        assert_eq!(f.pick(&mut s, &fl, 3), Some(ids[1]));
        // The OVERLOAD flag alone does not evict a cached server.
        f.st(ids[1]).overloaded = true;
        assert_eq!(f.pick(&mut s, &fl, 4), Some(ids[1]));
        assert_eq!(s.cache_len(), 1);
    }

    #[test]
    fn over_weight_kept_when_everyone_is_busy() {
        let (mut f, ids) = Fixture::list(&[2, 2]);
        let mut s = Lblc::new();
        let fl = flow(v4(192, 0, 2, 1), 1, v4(198, 51, 100, 7));
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        f.st(ids[0]).active = 5;
        f.st(ids[1]).active = 1; // 1*2 < 2 is false: nobody below half
        assert_eq!(f.pick(&mut s, &fl, 1), Some(ids[0]));
    }

    #[test]
    fn deleted_server_is_replaced_and_entries_expire() {
        let (mut f, ids) = Fixture::list(&[1, 1]);
        let mut s = Lblc::new();
        let fl = flow(v4(192, 0, 2, 1), 1, v4(198, 51, 100, 7));
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        f.remove(&mut s, ids[0]);
        assert_eq!(f.pick(&mut s, &fl, 1000), Some(ids[1]));
        // Unused for a day: the full sweep at the 30th minute after the
        // expiry drops it (expiration 24 h in the fixture).
        let day = 24 * 3600 * 1000;
        f.pick(
            &mut s,
            &flow(v4(1, 1, 1, 1), 1, v4(9, 9, 9, 9)),
            day + 3_600_000,
        );
        assert_eq!(s.cache_len(), 1, "only the fresh entry remains");
    }
}
