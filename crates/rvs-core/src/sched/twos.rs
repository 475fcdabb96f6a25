//! Weighted random twos choice (`ip_vs_twos`): draw two destinations with
//! probability proportional to weight and keep the less loaded one by
//! `overhead / weight`.

use super::{DestChange, DestId, Dests, Flow, SchedCtx, Scheduler, eligible};
use crate::model::SchedulerKind;

/// The twos scheduler (stateless apart from the random source it is given).
#[derive(Debug, Clone, Copy, Default)]
pub struct Twos;

impl Scheduler for Twos {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Twos
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        _flow: &Flow,
        ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        let mut total: u64 = 0;
        // The kernel seeds choice 1 with the last eligible entry; the draw
        // below always replaces it, since a draw never exceeds the total.
        let mut choice1: Option<DestId> = None;
        for (id, s) in dests.iter() {
            if eligible(s) {
                total += u64::from(s.weight);
                choice1 = Some(id);
            }
        }
        let mut choice1 = choice1?;
        // Draws are taken mod total + 1, so 0 and 1 both land on the first
        // entry: the head gets one extra chance in total + 1.
        let modulus = total + 1;
        let mut r1 = (u64::from(ctx.rng.next_u32()) % modulus) as i64;
        let mut r2 = (u64::from(ctx.rng.next_u32()) % modulus) as i64;
        // Weight -1 marks "not drawn yet".
        let (mut w1, mut oh1): (i64, i64) = (-1, 0);
        let (mut w2, mut oh2): (i64, i64) = (-1, 0);
        let mut choice2: Option<DestId> = None;
        for (id, s) in dests.iter() {
            if !eligible(s) {
                continue;
            }
            let w = i64::from(s.weight);
            r1 -= w;
            r2 -= w;
            if r1 <= 0 && w1 == -1 {
                choice1 = id;
                w1 = w;
                oh1 = s.overhead() as i64;
            }
            if r2 <= 0 && w2 == -1 {
                choice2 = Some(id);
                w2 = w;
                oh2 = s.overhead() as i64;
            }
            if w1 != -1 && w2 != -1 {
                break;
            }
        }
        if let Some(c2) = choice2
            && i128::from(w2) * i128::from(oh1) > i128::from(w1) * i128::from(oh2)
        {
            return Some(c2);
        }
        Some(choice1)
    }

    fn on_change(&mut self, _dests: Dests<'_>, _change: DestChange) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::RandomSource;
    use crate::sched::SplitMix64;
    use crate::sched::testutil::{Fixture, flow, v4};

    /// Replays fixed draws.
    struct Draws(Vec<u32>);
    impl RandomSource for Draws {
        fn next_u32(&mut self) -> u32 {
            self.0.remove(0)
        }
    }

    fn pick_with(f: &Fixture, draws: &[u32]) -> Option<DestId> {
        let mut rng = Draws(draws.to_vec());
        let mut ctx = SchedCtx {
            now_ms: 0,
            rng: &mut rng,
            lblc_expiration: 0,
            lblcr_expiration: 0,
        };
        Twos.schedule(
            f.dests(),
            &flow(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2)),
            &mut ctx,
        )
    }

    #[test]
    fn worked_draws() {
        // Weights A3, B1, C2: total 6, draws mod 7.
        let (mut f, ids) = Fixture::list(&[3, 1, 2]);
        // r1 = 4 → A leaves 1, B leaves 0 → B. r2 = 1 → A.
        // Idle servers: w2*oh1 = 0 > w1*oh2 = 0 is false → c1 = B.
        assert_eq!(pick_with(&f, &[4, 1]), Some(ids[1]));
        // B loaded: 3*256 > 1*0 → A.
        f.st(ids[1]).active = 1;
        assert_eq!(pick_with(&f, &[4, 1]), Some(ids[0]));
        // r = 0 picks the first eligible: both A.
        assert_eq!(pick_with(&f, &[7, 0]), Some(ids[0]));
        // r1 = 6 = total reaches exactly 0 at the last entry, C; r2 = 3 → A.
        // Both idle apart from B: 3*0 > 2*0 is false → C.
        assert_eq!(pick_with(&f, &[6, 3]), Some(ids[2]));
        // C slightly loaded: 3*1 > 2*0 → A.
        f.st(ids[2]).inactive = 1;
        assert_eq!(pick_with(&f, &[6, 3]), Some(ids[0]));
    }

    #[test]
    fn skips_ineligible_and_none_when_empty() {
        let (mut f, ids) = Fixture::list(&[3, 1]);
        f.st(ids[0]).overloaded = true;
        assert_eq!(pick_with(&f, &[0, 0]), Some(ids[1]));
        f.st(ids[1]).weight = 0;
        assert_eq!(pick_with(&f, &[0, 0]), None);
    }

    #[test]
    fn seeded_distribution_follows_weights() {
        let (f, ids) = Fixture::list(&[1, 3]);
        let mut rng = SplitMix64::new(7);
        let fl = flow(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2));
        let mut s = Twos;
        let mut counts = [0u32; 2];
        for _ in 0..4000 {
            let d = f.pick_rng(&mut s, &fl, 0, &mut rng).unwrap();
            counts[ids.iter().position(|x| *x == d).unwrap()] += 1;
        }
        // With idle servers the first draw always wins: A takes draws 0 and
        // 1 of 0..=4, so P(A) = 2/5 (1600 of 4000 expected).
        assert!((1450..1750).contains(&counts[0]), "{counts:?}");
        // The same seed gives the same decisions.
        let mut rng2 = SplitMix64::new(7);
        let again: Vec<_> = (0..50)
            .map(|_| f.pick_rng(&mut s, &fl, 0, &mut rng2))
            .collect();
        let mut rng3 = SplitMix64::new(7);
        let third: Vec<_> = (0..50)
            .map(|_| f.pick_rng(&mut s, &fl, 0, &mut rng3))
            .collect();
        assert_eq!(again, third);
    }
}
