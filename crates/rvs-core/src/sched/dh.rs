//! Destination hashing (`ip_vs_dh`): a 256-bucket table filled round-robin
//! with one bucket per destination per visit (weights are ignored), indexed
//! by `hash_32(fold(daddr), 8)`. No fallback: an unusable bucket owner
//! means no destination.

use super::hash::{addr_fold, hash_32};
use super::table::{TAB_BITS, fill};
use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler};
use crate::model::SchedulerKind;

/// The dh scheduler state: its bucket table.
#[derive(Debug, Clone)]
pub struct Dh {
    table: Box<[Option<DestId>]>,
}

impl Dh {
    /// A scheduler whose table is built from `dests`.
    pub fn new(dests: Dests<'_>) -> Self {
        Dh {
            table: fill(dests, |_| 1),
        }
    }

    /// The bucket table (256 entries).
    pub fn table(&self) -> &[Option<DestId>] {
        &self.table
    }
}

impl Scheduler for Dh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Dh
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        let bucket = hash_32(addr_fold(&flow.dst), TAB_BITS) as usize;
        let id = self.table[bucket]?;
        let s = dests.status.get(id.index())?;
        (s.available && s.weight > 0 && !s.overloaded).then_some(id)
    }

    fn on_change(&mut self, dests: Dests<'_>, change: DestChange) {
        // The table ignores weights, so edits leave it as it is.
        if !matches!(change, DestChange::Updated(_)) {
            self.table = fill(dests, |_| 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{Fixture, flow, v4};

    #[test]
    fn table_round_robin_and_lookup() {
        let (mut f, ids) = Fixture::list(&[5, 1, 0]);
        let mut s = Dh::new(f.dests());
        for (i, b) in s.table().iter().enumerate() {
            assert_eq!(*b, Some(ids[i % 3]), "bucket {i}");
        }
        // 0.0.0.1 → hash_32(1, 8) = 0x61 = 97; 97 % 3 = 1 → B.
        let fl = flow(v4(203, 0, 113, 9), 5, v4(0, 0, 0, 1));
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[1]));
        // 0.0.0.2 → 0xC3 = 195; 195 % 3 = 0 → A.
        let fl2 = flow(v4(203, 0, 113, 9), 5, v4(0, 0, 0, 2));
        assert_eq!(f.pick(&mut s, &fl2, 0), Some(ids[0]));
        // 0.0.0.3 → 0x25 = 37; 37 % 3 = 1 → B; B overloaded → none.
        let fl3 = flow(v4(203, 0, 113, 9), 5, v4(0, 0, 0, 3));
        f.st(ids[1]).overloaded = true;
        assert_eq!(f.pick(&mut s, &fl3, 0), None);
        // Removing C rebuilds with two entries: 97 % 2 = 1 → B (overloaded).
        f.remove(&mut s, ids[2]);
        assert_eq!(s.table()[97], Some(ids[1]));
        assert_eq!(s.table()[96], Some(ids[0]));
    }

    #[test]
    fn empty_list_gives_empty_table() {
        let (f, _) = Fixture::list(&[]);
        let mut s = Dh::new(f.dests());
        assert!(s.table().iter().all(|b| b.is_none()));
        let fl = flow(v4(1, 2, 3, 4), 5, v4(0, 0, 0, 1));
        assert_eq!(f.pick(&mut s, &fl, 0), None);
    }
}
