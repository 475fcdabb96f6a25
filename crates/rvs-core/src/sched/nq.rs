//! Never queue (`ip_vs_nq`): the first eligible destination with no active
//! connection, otherwise the sed choice.

use super::sed::sed_overhead;
use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler, eligible, least_weighted};
use crate::model::SchedulerKind;

/// The nq scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nq;

impl Scheduler for Nq {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Nq
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        // The kernel returns an idle server as soon as its walk meets one;
        // servers before it only affect the answer if none is idle, so a
        // separate first pass gives the same result.
        if let Some((id, _)) = dests.iter().find(|(_, s)| eligible(s) && s.active == 0) {
            return Some(id);
        }
        least_weighted(dests, sed_overhead)
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::Fixture;

    #[test]
    fn idle_first_then_sed() {
        let (mut f, ids) = Fixture::list(&[10, 1, 1]);
        f.st(ids[0]).active = 1;
        f.st(ids[1]).inactive = 50;
        // B is idle (inactive does not count) and comes before C.
        assert_eq!(f.seq(&mut Nq, 1), vec![Some(ids[1])]);
        // B overloaded: C idle.
        f.st(ids[1]).overloaded = true;
        assert_eq!(f.seq(&mut Nq, 1), vec![Some(ids[2])]);
        // Nobody idle: sed → A 2/10 vs C 2/1 → A.
        f.st(ids[2]).active = 1;
        assert_eq!(f.seq(&mut Nq, 1), vec![Some(ids[0])]);
        // An idle but quiesced server is not taken.
        f.st(ids[0]).active = 0;
        f.st(ids[0]).weight = 0;
        assert_eq!(f.seq(&mut Nq, 1), vec![Some(ids[2])]);
    }

    #[test]
    fn sed_tie_goes_first() {
        let (mut f, ids) = Fixture::list(&[1, 2]);
        f.st(ids[0]).active = 1; // 2/1
        f.st(ids[1]).active = 3; // 4/2
        assert_eq!(f.seq(&mut Nq, 1), vec![Some(ids[0])]);
    }
}
