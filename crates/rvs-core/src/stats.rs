//! Statistics counters and the IPVS rate estimator.
//!
//! Every service, destination and the global total carries a [`Stats`]: five
//! monotonic counters, a zero baseline for `ipvsadm -Z`, and the two-second
//! estimator behind `ipvsadm --rate`.
//!
//! # Estimator arithmetic (as the kernel does it)
//!
//! Once per 2 s tick, per counter: `Δ = counter − last; last = counter`.
//! Connections and packets are scaled by 2^10 and divided by the 2 s period,
//! `rate = Δ << 9`; bytes are scaled by 2^5, `rate = Δ << 4`. The average
//! moves a quarter of the way to the rate, `avg += (rate − avg) >> 2`, with
//! the difference taken as a signed 64-bit value and shifted arithmetically
//! (so decay rounds towards minus infinity). Reading rounds to the nearest
//! unit, halves down: cps/pps `(avg + 0x1FF) >> 10`, bps `(avg + 0xF) >> 5`.
//!
//! The averages are unsigned 64-bit in the kernel. They never go negative:
//! counters only grow, so `rate >= 0`, and for `avg >= 0` the update yields
//! `avg + ⌊(rate − avg)/4⌋ >= avg − ⌈avg/4⌉ >= 0`. They are kept as `u64`
//! here too, with the same wrapping arithmetic, so the read needs no special
//! case.
//!
//! A new `Stats` starts with `last = 0` and averages 0, so the first tick
//! sees everything counted since creation as one period's worth.
//!
//! # Counters versus the kernel's snapshot
//!
//! The kernel shows (and takes as the `-Z` baseline) a copy of the counters
//! refreshed only by the estimator pass, so its listing lags the live
//! counters by up to one tick. rvs shows and zeroes against the live
//! counters; the estimator maths is unaffected because it reads the live
//! values at each tick just as the kernel's refresh does.

/// The five IPVS counters (or a difference of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → real server.
    pub inpkts: u64,
    /// Packets real server → client (seen only for NAT).
    pub outpkts: u64,
    /// Bytes client → real server (IP total length).
    pub inbytes: u64,
    /// Bytes real server → client (IP total length).
    pub outbytes: u64,
}

impl Counters {
    fn wrapping_sub(self, o: Counters) -> Counters {
        Counters {
            conns: self.conns.wrapping_sub(o.conns),
            inpkts: self.inpkts.wrapping_sub(o.inpkts),
            outpkts: self.outpkts.wrapping_sub(o.outpkts),
            inbytes: self.inbytes.wrapping_sub(o.inbytes),
            outbytes: self.outbytes.wrapping_sub(o.outbytes),
        }
    }
}

/// Estimated rates as `ipvsadm --rate` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// Estimator state: counter values at the last tick and the scaled
/// averages (cps/pps ×2^10, bps ×2^5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Estimator {
    last: Counters,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

/// One EWMA step with the kernel's signed arithmetic shift.
fn ewma(avg: u64, rate: u64) -> u64 {
    avg.wrapping_add(((rate as i64).wrapping_sub(avg as i64) >> 2) as u64)
}

/// Counters, `-Z` baseline and rate estimator of one service, destination
/// or the global total.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    raw: Counters,
    zero: Counters,
    est: Estimator,
}

impl Stats {
    /// Counts a newly scheduled connection.
    pub fn add_conn(&mut self) {
        self.raw.conns = self.raw.conns.wrapping_add(1);
    }

    /// Counts one client → server packet of `bytes` bytes.
    pub fn add_in(&mut self, bytes: u64) {
        self.raw.inpkts = self.raw.inpkts.wrapping_add(1);
        self.raw.inbytes = self.raw.inbytes.wrapping_add(bytes);
    }

    /// Counts one server → client packet of `bytes` bytes.
    pub fn add_out(&mut self, bytes: u64) {
        self.raw.outpkts = self.raw.outpkts.wrapping_add(1);
        self.raw.outbytes = self.raw.outbytes.wrapping_add(bytes);
    }

    /// Counters since creation or the last [`Stats::zero`].
    pub fn counters(&self) -> Counters {
        self.raw.wrapping_sub(self.zero)
    }

    /// Counters since creation, ignoring the zero baseline.
    pub fn raw_counters(&self) -> Counters {
        self.raw
    }

    /// `ipvsadm -Z`: the current counters become the baseline, and the
    /// estimator restarts from them with zero averages.
    pub fn zero(&mut self) {
        self.zero = self.raw;
        self.est = Estimator {
            last: self.raw,
            ..Estimator::default()
        };
    }

    /// One 2-second estimator tick.
    pub fn estimate(&mut self) {
        let d = self.raw.wrapping_sub(self.est.last);
        self.est.last = self.raw;
        let e = &mut self.est;
        e.cps = ewma(e.cps, d.conns << 9);
        e.inpps = ewma(e.inpps, d.inpkts << 9);
        e.outpps = ewma(e.outpps, d.outpkts << 9);
        e.inbps = ewma(e.inbps, d.inbytes << 4);
        e.outbps = ewma(e.outbps, d.outbytes << 4);
    }

    /// The rates `ipvsadm --rate` shows.
    pub fn rates(&self) -> Rates {
        let e = &self.est;
        let pps = |a: u64| a.wrapping_add(0x1FF) >> 10;
        let bps = |a: u64| a.wrapping_add(0xF) >> 5;
        Rates {
            cps: pps(e.cps),
            inpps: pps(e.inpps),
            outpps: pps(e.outpps),
            inbps: bps(e.inbps),
            outbps: bps(e.outbps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hundred_conns_then_idle() {
        let mut s = Stats::default();
        for _ in 0..100 {
            s.add_conn();
        }
        // rate = 100 << 9 = 51200; avg = 51200 >> 2 = 12800;
        // cps = (12800 + 511) >> 10 = 12 (12.5 rounds half down).
        s.estimate();
        assert_eq!(s.rates().cps, 12);
        // Idle ticks: avg 9600, 7200, 5400, 4050, 3037 (−1012.5 floors).
        let expect = [9, 7, 5, 4, 3];
        for want in expect {
            s.estimate();
            assert_eq!(s.rates().cps, want);
        }
        assert_eq!(s.est.cps, 3037);
    }

    #[test]
    fn steady_rate_converges() {
        // The error shrinks by 3/4 per tick: 1.6e6 scaled bytes need ~60
        // ticks before the floor-shift EWMA settles within 3 of the rate.
        let mut s = Stats::default();
        for _ in 0..80 {
            for _ in 0..100 {
                s.add_conn();
                s.add_in(1000);
            }
            s.estimate();
        }
        // 50 conn/s, 50 pkt/s, 50000 B/s.
        let r = s.rates();
        assert_eq!(
            (r.cps, r.inpps, r.inbps, r.outpps, r.outbps),
            (50, 50, 50000, 0, 0)
        );
    }

    #[test]
    fn bytes_scale() {
        let mut s = Stats::default();
        s.add_out(1000);
        s.estimate();
        // rate = 1000 << 4 = 16000; avg = 4000; bps = (4000 + 15) >> 5 = 125.
        // One packet: rate 512, avg 128, pps = (128 + 511) >> 10 = 0.
        assert_eq!(s.rates().outbps, 125);
        assert_eq!(s.rates().outpps, 0);
        assert_eq!(s.counters().outbytes, 1000);
    }

    #[test]
    fn zero_sets_baseline_and_resets_estimator() {
        let mut s = Stats::default();
        for _ in 0..100 {
            s.add_conn();
        }
        s.add_in(60);
        s.estimate();
        assert_eq!(s.rates().cps, 12);
        s.zero();
        assert_eq!(s.counters(), Counters::default());
        assert_eq!(s.rates(), Rates::default());
        assert_eq!(s.raw_counters().conns, 100);
        // The next tick only sees traffic after the zero.
        s.add_conn();
        s.add_in(40);
        s.estimate();
        assert_eq!(
            s.counters(),
            Counters {
                conns: 1,
                inpkts: 1,
                outpkts: 0,
                inbytes: 40,
                outbytes: 0
            }
        );
        // avg = 512 >> 2 = 128 → 0 cps; bytes 640 >> 2 = 160 → 5 B/s.
        assert_eq!(s.rates().cps, 0);
        assert_eq!(s.rates().inbps, 5);
    }

    proptest! {
        #[test]
        fn averages_never_negative(ticks in proptest::collection::vec(0u64..1_000_000, 1..60)) {
            let mut s = Stats::default();
            for n in ticks {
                s.raw.conns += n;
                s.raw.inbytes += n * 1500;
                s.estimate();
                prop_assert!((s.est.cps as i64) >= 0);
                prop_assert!((s.est.inbps as i64) >= 0);
                prop_assert!(s.rates().cps <= 1_000_000);
            }
        }
    }
}
