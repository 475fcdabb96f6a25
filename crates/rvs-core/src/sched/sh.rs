//! Source hashing (`ip_vs_sh`): a 256-bucket table filled round-robin with
//! each destination taking `weight` consecutive buckets per visit (at least
//! one), indexed by `hash_32(sport + fold(saddr), 8)`; the port only with
//! sh-port (SCHED2). With sh-fallback (SCHED1) an unusable bucket owner is
//! replaced by probing further buckets.

use super::hash::{addr_fold, hash_32};
use super::table::{TAB_BITS, TAB_SIZE, fill};
use super::{DestChange, DestId, DestStatus, Dests, Flow, SchedCtx, SchedOptions, Scheduler};
use crate::model::SchedulerKind;

/// The sh scheduler state: its bucket table and flags.
#[derive(Debug, Clone)]
pub struct Sh {
    table: Box<[Option<DestId>]>,
    fallback: bool,
    port: bool,
}

fn build_table(dests: Dests<'_>) -> Box<[Option<DestId>]> {
    fill(dests, u64::from)
}

/// Quiesced or overloaded. The table is rebuilt on every list change, so
/// it never names a deleted destination.
fn unavailable(s: &DestStatus) -> bool {
    s.weight == 0 || s.overloaded
}

impl Sh {
    /// A scheduler whose table is built from `dests`.
    pub fn new(opts: &SchedOptions, dests: Dests<'_>) -> Self {
        Sh {
            table: build_table(dests),
            fallback: opts.flags.fallback(),
            port: opts.flags.port(),
        }
    }

    /// The bucket table (256 entries).
    pub fn table(&self) -> &[Option<DestId>] {
        &self.table
    }

    /// The hash `h` of a flow (offset 0 bucket).
    pub fn hash(&self, flow: &Flow) -> u32 {
        let port = if self.port { u32::from(flow.sport) } else { 0 };
        hash_32(port.wrapping_add(addr_fold(&flow.src)), TAB_BITS)
    }
}

impl Scheduler for Sh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }

    fn schedule(
        &mut self,
        dests: Dests<'_>,
        flow: &Flow,
        _ctx: &mut SchedCtx<'_>,
    ) -> Option<DestId> {
        let h = self.hash(flow) as usize;
        let usable = |id: DestId| {
            dests
                .status
                .get(id.index())
                .is_some_and(|s| !unavailable(s))
        };
        let id = self.table[h]?;
        if usable(id) {
            return Some(id);
        }
        if !self.fallback {
            return None;
        }
        // The probe adds the hash twice: offset k looks at bucket
        // ((k + h) mod 256 + h) mod 256, so the walk starts at 2h.
        for offset in 0..TAB_SIZE {
            let roff = (offset + h) % TAB_SIZE;
            let bucket = (roff + h) & (TAB_SIZE - 1);
            let id = self.table[bucket]?;
            if usable(id) {
                return Some(id);
            }
        }
        None
    }

    fn on_change(&mut self, dests: Dests<'_>, _change: DestChange) {
        self.table = build_table(dests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SchedFlags;
    use crate::sched::testutil::{Fixture, flow, v4};

    #[test]
    fn weighted_table_contents() {
        let (f, ids) = Fixture::list(&[3, 0, 2]);
        let s = Sh::new(&SchedOptions::default(), f.dests());
        // Cycle of 6: A A A B C C.
        let cycle = [0, 0, 0, 1, 2, 2];
        for (i, b) in s.table().iter().enumerate() {
            assert_eq!(*b, Some(ids[cycle[i % 6]]), "bucket {i}");
        }
    }

    #[test]
    fn lookup_by_source_and_port_flag() {
        let (f, ids) = Fixture::list(&[3, 0, 2]);
        let mut s = Sh::new(&SchedOptions::default(), f.dests());
        // src 0.0.0.2 → h = 0xC3 = 195; 195 % 6 = 3 → B (weight 0) → none.
        let fl = flow(v4(0, 0, 0, 2), 1, v4(198, 51, 100, 1));
        assert_eq!(s.hash(&fl), 195);
        assert_eq!(f.pick(&mut s, &fl, 0), None);
        // src 0.0.0.1 → 0x61 = 97; 97 % 6 = 1 → A; the port is ignored.
        let fl = flow(v4(0, 0, 0, 1), 1, v4(198, 51, 100, 1));
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        // With sh-port: key 1 + 1 = 2 → 195 → B → none.
        let opts = SchedOptions {
            flags: SchedFlags(SchedFlags::SCHED2),
            ..SchedOptions::default()
        };
        let mut sp = Sh::new(&opts, f.dests());
        assert_eq!(sp.hash(&fl), 195);
        assert_eq!(f.pick(&mut sp, &fl, 0), None);
    }

    #[test]
    fn fallback_probe_sequence() {
        let (mut f, ids) = Fixture::list(&[3, 0, 2]);
        let opts = SchedOptions {
            flags: SchedFlags(SchedFlags::SCHED1),
            ..SchedOptions::default()
        };
        let mut s = Sh::new(&opts, f.dests());
        // h = 195 (B, weight 0). Probe 0: (195+195) & 255 = 134; 134 % 6 = 2
        // → A.
        let fl = flow(v4(0, 0, 0, 2), 1, v4(198, 51, 100, 1));
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[0]));
        // A overloaded: probe 1 → 135 % 6 = 3 → B; probe 2 → 136 % 6 = 4 → C.
        f.st(ids[0]).overloaded = true;
        assert_eq!(f.pick(&mut s, &fl, 0), Some(ids[2]));
        // Nothing usable: none.
        f.st(ids[2]).weight = 0;
        assert_eq!(f.pick(&mut s, &fl, 0), None);
    }

    #[test]
    fn rebuilt_on_weight_edit() {
        let (mut f, ids) = Fixture::list(&[1, 1]);
        let mut s = Sh::new(&SchedOptions::default(), f.dests());
        assert_eq!(s.table()[1], Some(ids[1]));
        f.set_weight(&mut s, ids[0], 2);
        assert_eq!(
            &s.table()[..4],
            &[Some(ids[0]), Some(ids[0]), Some(ids[1]), Some(ids[0])]
        );
    }
}
