//! The locality cache shared by lblc and lblcr: entries keyed by the
//! packet's destination address, in a 1024-bucket table whose bucket
//! order drives the garbage collector's sweep, expired by a collector that
//! runs every 60 s of virtual time.

use std::net::IpAddr;

use super::hash::{addr_fold, hash_32};

/// `IP_VS_LBLC_TAB_BITS`.
const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: usize = TAB_SIZE - 1;
/// Entries beyond which the periodic collector starts reclaiming.
pub(crate) const MAX_SIZE: usize = TAB_SIZE * 16;
/// Collector period.
pub(crate) const CHECK_INTERVAL_MS: u64 = 60_000;
/// Every this many runs the collector sweeps everything.
const FULL_EVERY: u32 = 30;
/// Idle time after which an entry may be reclaimed when over `MAX_SIZE`.
pub(crate) const ENTRY_TIMEOUT_MS: u64 = 6 * 60_000;

/// One cache entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry<V> {
    pub addr: IpAddr,
    pub lastuse_ms: u64,
    pub val: V,
}

/// The cache with its collector state.
#[derive(Debug, Clone)]
pub(crate) struct Cache<V> {
    buckets: Vec<Vec<Entry<V>>>,
    entries: usize,
    rover: usize,
    counter: u32,
    /// When the collector next runs; fixed by the first decision, since a
    /// scheduler is built without a clock.
    next_gc_ms: Option<u64>,
}

fn bucket_of(addr: &IpAddr) -> usize {
    hash_32(addr_fold(addr), TAB_BITS) as usize
}

impl<V> Cache<V> {
    pub fn new() -> Self {
        Cache {
            buckets: (0..TAB_SIZE).map(|_| Vec::new()).collect(),
            entries: 0,
            rover: 0,
            counter: 1,
            next_gc_ms: None,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn get_mut(&mut self, addr: &IpAddr) -> Option<&mut Entry<V>> {
        self.buckets[bucket_of(addr)]
            .iter_mut()
            .find(|e| e.addr == *addr)
    }

    /// Adds an entry for an address not yet cached.
    pub fn insert(&mut self, addr: IpAddr, now_ms: u64, val: V) {
        self.buckets[bucket_of(&addr)].push(Entry {
            addr,
            lastuse_ms: now_ms,
            val,
        });
        self.entries += 1;
    }

    /// Runs every collector pass due by `now_ms`, each at its own instant.
    pub fn collect(&mut self, now_ms: u64, expiration_ms: u64) {
        let next = *self.next_gc_ms.get_or_insert(now_ms + CHECK_INTERVAL_MS);
        if now_ms < next {
            return;
        }
        let runs = (now_ms - next) / CHECK_INTERVAL_MS + 1;
        let mut at = next;
        for done in 0..runs {
            if self.entries == 0 {
                // Nothing to sweep: only the run counter moves, cycling
                // through 1..=FULL_EVERY one step per run.
                let left = runs - done;
                let step = (left % u64::from(FULL_EVERY)) as u32;
                self.counter = (self.counter - 1 + step) % FULL_EVERY + 1;
                at += left * CHECK_INTERVAL_MS;
                break;
            }
            self.run(at, expiration_ms);
            at += CHECK_INTERVAL_MS;
        }
        self.next_gc_ms = Some(at);
    }

    /// One collector run at time `t`.
    fn run(&mut self, t: u64, expiration_ms: u64) {
        if self.counter.is_multiple_of(FULL_EVERY) {
            // Full sweep: drop everything unused for the expiration time.
            for b in &mut self.buckets {
                let before = b.len();
                b.retain(|e| e.lastuse_ms.saturating_add(expiration_ms) > t);
                self.entries -= before - b.len();
            }
            self.counter = 1;
            return;
        }
        if self.entries <= MAX_SIZE {
            self.counter += 1;
            return;
        }
        // Over size: reclaim entries idle for ENTRY_TIMEOUT, bucket by
        // bucket from the rover, until the goal is met.
        let mut goal = ((self.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2) as i64;
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & TAB_MASK;
            let b = &mut self.buckets[j];
            let before = b.len();
            b.retain(|e| t < e.lastuse_ms.saturating_add(ENTRY_TIMEOUT_MS));
            let freed = before - b.len();
            self.entries -= freed;
            goal -= freed as i64;
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::v4;

    #[test]
    fn full_sweep_every_thirty_minutes() {
        let mut c: Cache<()> = Cache::new();
        c.collect(0, 0); // timer anchored: first run at 60 s
        c.insert(v4(10, 0, 0, 1), 0, ());
        c.insert(v4(10, 0, 0, 2), 1_700_000, ());
        let exp = 100_000;
        // Runs at 60 s … 1740 s increment the counter 1 → 29 without sweeping.
        c.collect(29 * 60_000, exp);
        assert_eq!(c.len(), 2);
        // The 30th run (counter 30, at 1800 s) sweeps: entry 1 is stale,
        // entry 2 (last used 1700 s, expires 1800 s) is stale too because
        // lastuse + expiration must be strictly later than now.
        c.collect(30 * 60_000 - 1, exp);
        assert_eq!(c.len(), 2);
        c.collect(30 * 60_000, exp);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn empty_cache_counter_fast_forward_matches_stepping() {
        let mut a: Cache<()> = Cache::new();
        let mut b: Cache<()> = Cache::new();
        a.collect(0, 0);
        b.collect(0, 0);
        a.collect(60_000 * 1000 + 5, 1);
        for k in 1..=1000 {
            b.collect(60_000 * k, 1);
        }
        assert_eq!(a.counter, b.counter);
        assert_eq!(a.next_gc_ms, b.next_gc_ms);
    }

    #[test]
    fn over_size_reclaims_idle_entries() {
        let mut c: Cache<()> = Cache::new();
        c.collect(0, 0);
        for i in 0..(MAX_SIZE + 300) as u32 {
            c.insert(IpAddr::V4(std::net::Ipv4Addr::from(i)), 0, ());
        }
        // At 60 s nothing has been idle for 6 minutes yet.
        c.collect(60_000, u64::MAX / 4);
        assert_eq!(c.len(), MAX_SIZE + 300);
        // At 360 s every entry is reclaimable; the goal is 300·4/3 = 400,
        // met after whole buckets, so a few more than 400 may go.
        c.collect(360_000, u64::MAX / 4);
        let freed = MAX_SIZE + 300 - c.len();
        assert!((400..450).contains(&freed), "freed {freed}");
    }
}
