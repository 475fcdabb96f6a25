//! Weighted failover (`ip_vs_fo`): the non-overloaded destination with the
//! highest weight, first in list order on ties.

use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler};
use crate::model::SchedulerKind;

/// The fo scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fo;

impl Scheduler for Fo {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Fo
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        // Starting from weight 0 with a strict `>` both excludes quiesced
        // servers and keeps the first of equals.
        let mut best: Option<DestId> = None;
        let mut hw = 0u32;
        for (id, s) in dests.iter() {
            if !s.overloaded && s.weight > hw {
                best = Some(id);
                hw = s.weight;
            }
        }
        best
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::Fixture;

    #[test]
    fn highest_weight_first_on_ties() {
        let (mut f, ids) = Fixture::list(&[2, 5, 5, 3]);
        f.st(ids[1]).active = 1000;
        assert_eq!(f.seq(&mut Fo, 1), vec![Some(ids[1])]);
        f.st(ids[1]).overloaded = true;
        assert_eq!(f.seq(&mut Fo, 1), vec![Some(ids[2])]);
        f.st(ids[2]).weight = 0;
        assert_eq!(f.seq(&mut Fo, 1), vec![Some(ids[3])]);
        let (f, _) = Fixture::list(&[0, 0]);
        assert_eq!(f.seq(&mut Fo, 1), vec![None]);
    }
}
