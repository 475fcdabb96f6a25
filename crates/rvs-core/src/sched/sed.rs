//! Shortest expected delay (`ip_vs_sed`): the least `(active + 1) / weight`
//! among eligible destinations, cross-multiplied; inactive connections do
//! not count.

use super::{DestChange, DestId, DestStatus, Dests, Flow, SchedCtx, Scheduler, least_weighted};
use crate::model::SchedulerKind;

/// The sed scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sed;

/// The expected delay numerator `active + 1`, shared with nq.
pub(crate) fn sed_overhead(s: &DestStatus) -> u64 {
    u64::from(s.active) + 1
}

impl Scheduler for Sed {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sed
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        least_weighted(dests, sed_overhead)
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::Fixture;

    #[test]
    fn expected_delay_ignores_inactive_and_ties_go_first() {
        let (mut f, ids) = Fixture::list(&[1, 2, 4]);
        // (a+1)/w: A 1/1, B 2/2, C 4/4 → all 1 → A.
        f.st(ids[0]).inactive = 1000;
        f.st(ids[1]).active = 1;
        f.st(ids[2]).active = 3;
        assert_eq!(f.seq(&mut Sed, 1), vec![Some(ids[0])]);
        // C 3/4 wins once it has one connection fewer.
        f.st(ids[2]).active = 2;
        assert_eq!(f.seq(&mut Sed, 1), vec![Some(ids[2])]);
        f.st(ids[2]).overloaded = true;
        f.st(ids[0]).weight = 0;
        assert_eq!(f.seq(&mut Sed, 1), vec![Some(ids[1])]);
    }
}
