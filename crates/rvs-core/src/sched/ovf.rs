//! Weighted overflow (`ip_vs_ovf`): the highest-weight destination that is
//! not overloaded, not quiesced and has no more active connections than its
//! weight; first in list order on ties.

use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler};
use crate::model::SchedulerKind;

/// The ovf scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ovf
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        let mut best: Option<(DestId, u32)> = None;
        for (id, s) in dests.iter() {
            if s.overloaded || s.active > s.weight || s.weight == 0 {
                continue;
            }
            if best.is_none_or(|(_, w)| s.weight > w) {
                best = Some((id, s.weight));
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
    fn overflows_once_active_exceeds_weight() {
        let (mut f, ids) = Fixture::list(&[3, 3, 1]);
        // Tie A/B → A.
        assert_eq!(f.seq(&mut Ovf, 1), vec![Some(ids[0])]);
        // act == w is still accepted.
        f.st(ids[0]).active = 3;
        assert_eq!(f.seq(&mut Ovf, 1), vec![Some(ids[0])]);
        // act > w: skipped.
        f.st(ids[0]).active = 4;
        assert_eq!(f.seq(&mut Ovf, 1), vec![Some(ids[1])]);
        f.st(ids[1]).overloaded = true;
        f.st(ids[2]).inactive = 100;
        assert_eq!(f.seq(&mut Ovf, 1), vec![Some(ids[2])]);
        f.st(ids[2]).active = 2;
        assert_eq!(f.seq(&mut Ovf, 1), vec![None]);
    }
}
