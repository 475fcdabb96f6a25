//! Least connection (`ip_vs_lc`): the least `(active << 8) + inactive`
//! among non-overloaded destinations with a positive weight. Weights only
//! gate; they do not scale the load.

use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler, eligible};
use crate::model::SchedulerKind;

/// The lc scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lc;

impl Scheduler for Lc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lc
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        let mut best: Option<(DestId, u64)> = None;
        for (id, s) in dests.iter() {
            if !eligible(s) {
                continue;
            }
            let oh = s.overhead();
            // Strict `<`: the first in list order (the newest) wins ties.
            if best.is_none_or(|(_, b)| oh < b) {
                best = Some((id, oh));
            }
        }
        best.map(|(id, _)| id)
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::Fixture;

    #[test]
    fn least_overhead_ignoring_weight_first_wins_ties() {
        let (mut f, ids) = Fixture::list(&[1, 100, 1, 1]);
        // oh: A 256, B 257, C 256+0, D 255 → D.
        f.st(ids[0]).active = 1;
        f.st(ids[1]).active = 1;
        f.st(ids[1]).inactive = 1;
        f.st(ids[2]).active = 1;
        f.st(ids[3]).inactive = 255;
        assert_eq!(f.seq(&mut Lc, 1), vec![Some(ids[3])]);
        // Make D heavier: tie A/C at 256 → A, the first.
        f.st(ids[3]).inactive = 300;
        assert_eq!(f.seq(&mut Lc, 1), vec![Some(ids[0])]);
        // A overloaded, C quiesced → B? no: B 257 vs D 300 → B.
        f.st(ids[0]).overloaded = true;
        f.st(ids[2]).weight = 0;
        assert_eq!(f.seq(&mut Lc, 1), vec![Some(ids[1])]);
    }

    #[test]
    fn newest_wins_tie_after_add() {
        let (mut f, _) = Fixture::list(&[]);
        let _a = f.add(&mut Lc, 1);
        let b = f.add(&mut Lc, 1);
        assert_eq!(f.seq(&mut Lc, 1), vec![Some(b)]);
    }
}
