//! Weighted round robin (`ip_vs_wrr`), the interleaved variant.
//!
//! State: the cursor `cl` (last chosen entry or the list head), the step
//! `di` (gcd of the positive weights), the top `mw = max(w) - (di - 1)` and
//! the current threshold `cw`. A decision scans forward from the cursor for
//! the first non-overloaded destination with `weight >= cw`; each time the
//! scan passes the end of the list `cw` drops by `di`, and when it reaches
//! zero it restarts at `mw`. Subtracting `di - 1` from the top makes the
//! final pass of every cycle run at `cw = 1`, so a destination whose weight
//! is not a multiple of `di` is still reached.

use super::{Cursor, DestChange, DestId, Dests, Flow, SchedCtx, SchedOptions, Scheduler};
use crate::model::SchedulerKind;

/// The wrr scheduler state.
#[derive(Debug, Clone)]
pub struct Wrr {
    cursor: Cursor,
    /// gcd of the positive weights, 1 if there are none.
    di: i64,
    /// `max(weight) - (di - 1)`; 0 means no destination can be chosen.
    mw: i64,
    /// Current weight threshold.
    cw: i64,
    random_start: bool,
    started: bool,
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `(di, mw)` for a list, over every destination including overloaded ones.
fn steps(dests: Dests<'_>) -> (i64, i64) {
    let mut g = 0i64;
    let mut max = 0i64;
    for (_, s) in dests.iter() {
        let w = i64::from(s.weight);
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
        max = max.max(w);
    }
    let di = if g > 0 { g } else { 1 };
    (di, max - (di - 1))
}

impl Wrr {
    /// A freshly bound scheduler: cursor on the head, `cw = mw`.
    pub fn new(opts: &SchedOptions, dests: Dests<'_>) -> Self {
        let (di, mw) = steps(dests);
        Wrr {
            cursor: Cursor::head(),
            di,
            mw,
            cw: mw,
            random_start: opts.random_start,
            started: false,
        }
    }

    /// The current threshold `cw` (for inspection and tests).
    pub fn current_weight(&self) -> i64 {
        self.cw
    }
}

impl Scheduler for Wrr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
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
        if self.mw == 0 {
            return None;
        }
        let order = dests.order;
        let n = order.len();
        // `None` stands for the list head, as the kernel's pointer to the
        // list anchor does.
        let last = self.cursor.resolve(order);
        let mut at = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let from = at.map_or(0, |p| p + 1);
            for i in from..n {
                let s = dests.get(order[i]);
                if !s.overloaded && i64::from(s.weight) >= self.cw {
                    self.cursor.set(order, Some(i));
                    return Some(order[i]);
                }
                if stop == Some(i) {
                    // Every entry has now been tried at cw = 1.
                    self.cursor.set(order, Some(i));
                    return None;
                }
            }
            at = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Either the cw = 1 pass already covered the whole list, or
                // the scan began at the head and so did the cw = 1 pass.
                if last_pass || last.is_none() {
                    self.cursor = Cursor::head();
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The earlier cw = 1 pass only saw the entries after `last`;
                // this one must cover those up to it.
                stop = last;
            }
        }
    }

    fn on_change(&mut self, dests: Dests<'_>, _change: DestChange) {
        // Every add, delete and edit: back to the head, new steps, and `cw`
        // kept in range (rounded onto the new step grid).
        self.cursor = Cursor::head();
        let (di, mw) = steps(dests);
        self.di = di;
        self.mw = mw;
        if self.cw > mw || self.cw == 0 {
            self.cw = mw;
        } else if di > 1 {
            self.cw = (self.cw / di) * di + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::build;
    use crate::sched::testutil::Fixture;
    use proptest::prelude::*;

    fn names(ids: &[DestId], seq: &[Option<DestId>]) -> String {
        seq.iter()
            .map(|d| match d {
                Some(d) => (b'A' + ids.iter().position(|x| x == d).unwrap() as u8) as char,
                None => '-',
            })
            .collect()
    }

    #[test]
    fn freshly_bound_textbook_sequence() {
        let (f, ids) = Fixture::list(&[4, 3, 2]);
        let mut s = build(SchedulerKind::Wrr, &SchedOptions::default(), f.dests());
        let got = f.seq(s.as_mut(), 18);
        assert_eq!(names(&ids, &got), "AABABCABCAABABCABC");
    }

    #[test]
    fn added_one_at_a_time_first_round_is_weight_one_pass() {
        // ipvsadm -a A -w 4; -a B -w 3; -a C -w 2 → list C, B, A.
        let (mut f, _) = Fixture::list(&[]);
        let mut s = build(SchedulerKind::Wrr, &SchedOptions::default(), f.dests());
        let a = f.add(s.as_mut(), 4);
        let b = f.add(s.as_mut(), 3);
        let c = f.add(s.as_mut(), 2);
        let got = f.seq(s.as_mut(), 3 + 9 + 9);
        // Name by server: A/B/C as added.
        let ids = [a, b, c];
        // One pass at cw = 1 in list order, then the textbook cycle of the
        // list C2, B3, A4.
        assert_eq!(names(&ids, &got), format!("CBA{}", "ABACBACBA".repeat(2)));
    }

    #[test]
    fn overloaded_everywhere_gives_none_and_terminates() {
        let (mut f, ids) = Fixture::list(&[2, 2]);
        f.st(ids[0]).overloaded = true;
        f.st(ids[1]).overloaded = true;
        let mut s = build(SchedulerKind::Wrr, &SchedOptions::default(), f.dests());
        assert_eq!(f.seq(s.as_mut(), 3), vec![None, None, None]);
        // Once one recovers it is chosen again.
        f.st(ids[1]).overloaded = false;
        assert_eq!(f.seq(s.as_mut(), 2), vec![Some(ids[1]), Some(ids[1])]);
    }

    #[test]
    fn all_weights_zero_gives_none() {
        let (f, _) = Fixture::list(&[0, 0]);
        let mut s = build(SchedulerKind::Wrr, &SchedOptions::default(), f.dests());
        assert_eq!(f.seq(s.as_mut(), 1), vec![None]);
    }

    #[test]
    fn edit_resets_to_head_and_rounds_cw() {
        let (mut f, ids) = Fixture::list(&[4, 2]);
        let mut s = Wrr::new(&SchedOptions::default(), f.dests());
        // di = 2, mw = 3, cw = 3.
        assert_eq!(s.current_weight(), 3);
        f.set_weight(&mut s, ids[1], 6);
        // di = 2, mw = 5: cw 3 ≤ 5 → (3/2)*2 + 1 = 3.
        assert_eq!(s.current_weight(), 3);
        f.set_weight(&mut s, ids[1], 1);
        // di = 1, mw = 4: cw stays 3.
        assert_eq!(s.current_weight(), 3);
        f.set_weight(&mut s, ids[0], 2);
        // max 2, di 1 → mw 2: cw 3 > 2 → 2.
        assert_eq!(s.current_weight(), 2);
    }

    #[test]
    fn random_start_begins_at_drawn_position() {
        let (f, ids) = Fixture::list(&[1, 1, 1, 1]);
        let opts = SchedOptions {
            random_start: true,
            ..SchedOptions::default()
        };
        let mut rng = crate::sched::SplitMix64::new(9);
        let k = (rng.clone().next_u64() >> 32) as usize % 4;
        let mut s = build(SchedulerKind::Wrr, &opts, f.dests());
        let fl = crate::sched::testutil::flow(f.status[0].addr, 1, f.status[0].addr);
        let got: Vec<_> = (0..5)
            .map(|_| f.pick_rng(s.as_mut(), &fl, 0, &mut rng))
            .collect();
        let want: Vec<_> = (0..5).map(|i| Some(ids[(k + i) % 4])).collect();
        assert_eq!(got, want);
    }

    proptest! {
        /// Over one full cycle of a freshly bound scheduler each destination
        /// is chosen weight/gcd times, i.e. exactly in proportion to weight.
        #[test]
        fn cycle_proportions_equal_weights(weights in proptest::collection::vec(1u32..=12, 1..8), k in 1u32..4) {
            let weights: Vec<u32> = weights.iter().map(|w| w * k).collect();
            let (f, ids) = Fixture::list(&weights);
            let g = weights.iter().fold(0, |a, &w| gcd(a, i64::from(w))) as u32;
            let cycle: u32 = weights.iter().map(|w| w / g).sum();
            let mut s = build(SchedulerKind::Wrr, &SchedOptions::default(), f.dests());
            for _ in 0..2 {
                let got = f.seq(s.as_mut(), cycle as usize);
                for (i, id) in ids.iter().enumerate() {
                    let n = got.iter().filter(|d| **d == Some(*id)).count() as u32;
                    prop_assert_eq!(n, weights[i] / g);
                }
            }
        }
    }
}
