//! Round robin (`ip_vs_rr`).
//!
//! The cursor stands on the last chosen destination (or on the list head
//! before the first choice). A decision scans forward from it, wrapping
//! once, and takes the first destination that is neither overloaded nor
//! quiesced; the cursor's own entry is checked last.

use super::{Cursor, DestChange, DestId, Dests, Flow, SchedCtx, SchedOptions, Scheduler, eligible};
use crate::model::SchedulerKind;

/// The rr scheduler state.
#[derive(Debug, Clone)]
pub struct Rr {
    cursor: Cursor,
    random_start: bool,
    started: bool,
}

impl Rr {
    /// A scheduler with the cursor on the list head.
    pub fn new(opts: &SchedOptions) -> Self {
        Rr {
            cursor: Cursor::head(),
            random_start: opts.random_start,
            started: false,
        }
    }
}

impl Scheduler for Rr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        if !self.started {
            self.started = true;
            if self.random_start {
                self.cursor = Cursor::random(dests.order, ctx.rng);
            }
        }
        let order = dests.order;
        let n = order.len();
        // From the head: one pass over the list. From an entry: the entries
        // after it, then from the head up to and including it.
        let start = match self.cursor.resolve(order) {
            None => 0,
            Some(p) => p + 1,
        };
        let found = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| eligible(dests.get(order[i])));
        let i = found?;
        self.cursor.set(order, Some(i));
        Some(order[i])
    }

    fn on_change(&mut self, _dests: Dests<'_>, change: DestChange) {
        // Only deletion matters: a cursor on the removed entry steps back to
        // its predecessor so the scan resumes where it would have.
        if let DestChange::Removed { id, predecessor } = change
            && self.cursor.id() == Some(id)
        {
            self.cursor.set_id(predecessor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::build;
    use crate::sched::testutil::Fixture;

    fn rr(f: &Fixture) -> Box<dyn Scheduler> {
        build(SchedulerKind::Rr, &SchedOptions::default(), f.dests())
    }

    #[test]
    fn cycles_in_list_order() {
        let (f, ids) = Fixture::list(&[1, 5, 1]);
        let mut s = rr(&f);
        let got = f.seq(s.as_mut(), 7);
        let want: Vec<_> = [0, 1, 2, 0, 1, 2, 0]
            .iter()
            .map(|&i| Some(ids[i]))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn skips_overloaded_and_quiesced() {
        let (mut f, ids) = Fixture::list(&[1, 0, 1, 1]);
        f.st(ids[2]).overloaded = true;
        let mut s = rr(&f);
        let got = f.seq(s.as_mut(), 4);
        assert_eq!(
            got,
            vec![Some(ids[0]), Some(ids[3]), Some(ids[0]), Some(ids[3])]
        );
    }

    #[test]
    fn none_when_nothing_eligible() {
        let (mut f, ids) = Fixture::list(&[0, 1]);
        f.st(ids[1]).overloaded = true;
        let mut s = rr(&f);
        assert_eq!(f.seq(s.as_mut(), 1), vec![None]);
        let (f, _) = Fixture::list(&[]);
        let mut s = rr(&f);
        assert_eq!(f.seq(s.as_mut(), 1), vec![None]);
    }

    #[test]
    fn delete_moves_cursor_to_predecessor() {
        let (mut f, ids) = Fixture::list(&[1, 1, 1, 1]);
        let mut s = rr(&f);
        // Choose A, B: the cursor stands on B.
        assert_eq!(f.seq(s.as_mut(), 2), vec![Some(ids[0]), Some(ids[1])]);
        // Deleting B puts the cursor on A, so the next pick is C.
        f.remove(s.as_mut(), ids[1]);
        assert_eq!(f.seq(s.as_mut(), 1), vec![Some(ids[2])]);
        // Deleting C (cursor) while C's predecessor is A: next is D.
        f.remove(s.as_mut(), ids[2]);
        assert_eq!(f.seq(s.as_mut(), 1), vec![Some(ids[3])]);
        // Deleting an entry other than the cursor's leaves it alone.
        f.remove(s.as_mut(), ids[0]);
        assert_eq!(f.seq(s.as_mut(), 2), vec![Some(ids[3]), Some(ids[3])]);
    }

    #[test]
    fn deleting_head_cursor_returns_to_head() {
        let (mut f, ids) = Fixture::list(&[1, 1, 1]);
        let mut s = rr(&f);
        assert_eq!(f.seq(s.as_mut(), 1), vec![Some(ids[0])]);
        f.remove(s.as_mut(), ids[0]);
        // The cursor is back on the list head: the next pick is the new head.
        assert_eq!(f.seq(s.as_mut(), 1), vec![Some(ids[1])]);
    }

    #[test]
    fn added_dest_at_head_is_reached_after_wrap() {
        let (mut f, ids) = Fixture::list(&[1, 1]);
        let mut s = rr(&f);
        assert_eq!(f.seq(s.as_mut(), 1), vec![Some(ids[0])]);
        let c = f.add(s.as_mut(), 1);
        assert_eq!(
            f.seq(s.as_mut(), 3),
            vec![Some(ids[1]), Some(c), Some(ids[0])]
        );
    }

    #[test]
    fn random_start_draws_first_position() {
        let (f, ids) = Fixture::list(&[1, 1, 1, 1, 1]);
        let opts = SchedOptions {
            random_start: true,
            ..SchedOptions::default()
        };
        let mut rng = crate::sched::SplitMix64::new(42);
        let expect = (rng.clone().next_u64() >> 32) as usize % 5;
        let mut s = build(SchedulerKind::Rr, &opts, f.dests());
        let fl = crate::sched::testutil::flow(f.status[0].addr, 1, f.status[0].addr);
        let first = f.pick_rng(s.as_mut(), &fl, 0, &mut rng);
        assert_eq!(first, Some(ids[expect]));
        let second = f.pick_rng(s.as_mut(), &fl, 0, &mut rng);
        assert_eq!(second, Some(ids[(expect + 1) % 5]));
    }
}
