//! Weighted least connection (`ip_vs_wlc`), ipvsadm's default: the least
//! `((active << 8) + inactive) / weight` among eligible destinations,
//! compared by cross-multiplication, first in list order on ties.

use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler, wlc_pick};
use crate::model::SchedulerKind;

/// The wlc scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wlc
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        wlc_pick(dests)
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::Fixture;

    #[test]
    fn weighted_least_load_and_ties() {
        let (mut f, ids) = Fixture::list(&[1, 3, 2]);
        // Loads: A 256/1, B 768/3 = 256, C 600/2 = 300 → A/B tie → A.
        f.st(ids[0]).active = 1;
        f.st(ids[1]).active = 3;
        f.st(ids[2]).active = 2;
        f.st(ids[2]).inactive = 88;
        assert_eq!(f.seq(&mut Wlc, 1), vec![Some(ids[0])]);
        // One more inactive on A: 257 > 256 → B.
        f.st(ids[0]).inactive = 1;
        assert_eq!(f.seq(&mut Wlc, 1), vec![Some(ids[1])]);
        // B overloaded → C (300) vs A (257) → A.
        f.st(ids[1]).overloaded = true;
        assert_eq!(f.seq(&mut Wlc, 1), vec![Some(ids[0])]);
        // All idle: first eligible wins (A weight 0 → skipped, B overloaded → C).
        for id in &ids {
            *f.st(*id) = crate::sched::DestStatus {
                active: 0,
                inactive: 0,
                ..*f.st(*id)
            };
        }
        f.st(ids[0]).weight = 0;
        assert_eq!(f.seq(&mut Wlc, 1), vec![Some(ids[2])]);
    }

    #[test]
    fn large_counters_do_not_overflow() {
        let (mut f, ids) = Fixture::list(&[u32::MAX, u32::MAX - 1]);
        f.st(ids[0]).active = u32::MAX;
        f.st(ids[1]).active = u32::MAX - 1;
        // u32::MAX/MAX = 1 · 256 vs (MAX-1)/(MAX-1) · 256: tie → A.
        assert_eq!(f.seq(&mut Wlc, 1), vec![Some(ids[0])]);
    }
}
