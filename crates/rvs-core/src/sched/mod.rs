//! The fourteen IPVS schedulers, each reproducing the kernel's selection rule
//! to the letter: integer arithmetic, list order (newest destination first),
//! tie-breaks, overload and weight-0 gating, and the kernel's own hashes.
//!
//! A scheduler sees the service's destinations through [`Dests`]: the list
//! order (`order`, head first) and a status arena indexed by [`DestId`].
//! The director owns both; a scheduler keeps only its own state (cursors,
//! tables, caches) and is told of every list change through
//! [`Scheduler::on_change`], the way the kernel calls `add_dest`, `del_dest`
//! and `upd_dest`.

use std::fmt;
use std::net::IpAddr;

use crate::model::{Protocol, SchedFlags, SchedulerKind};

/// Identity of a destination object. Stable for the object's life, which
/// includes its time in the trash after deletion (a re-added server gets
/// its identity, counters and cache entries back, as in the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

impl DestId {
    /// Index into the status arena.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a scheduler may read about a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestStatus {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Current weight; 0 quiesces.
    pub weight: u32,
    /// The weight the Maglev table is built from: set on add and on every
    /// edit with a non-zero weight (so setting weight 0 keeps the slots).
    pub last_weight: u32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// `IP_VS_DEST_F_OVERLOAD`, maintained by the director from thresholds.
    pub overloaded: bool,
    /// `IP_VS_DEST_F_AVAILABLE`: false once deleted (in the trash).
    pub available: bool,
}

impl DestStatus {
    /// The kernel's connection overhead `(active << 8) + inactive`, used by
    /// lc, wlc, lblc, lblcr and twos.
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }
}

/// A service's destinations as a scheduler sees them.
#[derive(Debug, Clone, Copy)]
pub struct Dests<'a> {
    /// The service's destination list, head first (most recently added first).
    pub order: &'a [DestId],
    /// Status of every destination object, indexed by [`DestId::index`].
    pub status: &'a [DestStatus],
}

impl<'a> Dests<'a> {
    /// Status of one destination.
    pub fn get(&self, id: DestId) -> &'a DestStatus {
        &self.status[id.index()]
    }

    /// The list in order, with statuses.
    pub fn iter(&self) -> impl Iterator<Item = (DestId, &'a DestStatus)> + 'a {
        let status = self.status;
        self.order.iter().map(move |&id| (id, &status[id.index()]))
    }

    /// Number of destinations in the list.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The packet fields schedulers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Transport protocol.
    pub proto: Protocol,
    /// Source (client) address.
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination (virtual) address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
}

/// A source of random numbers for the schedulers that draw them (twos, and
/// rr with the opt-in random start). The core never draws randomness itself.
pub trait RandomSource {
    /// A uniformly distributed 32-bit value.
    fn next_u32(&mut self) -> u32;
}

/// A small seeded generator (SplitMix64). It is part of rvs rather than a
/// dependency so that `rvsadm replay --seed N` gives the same output on
/// every release, whatever happens to a random-number crate's streams.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl RandomSource for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Everything a scheduling decision may depend on besides the destinations
/// and the packet.
pub struct SchedCtx<'a> {
    /// Current time in milliseconds.
    pub now_ms: u64,
    /// Random source (twos; rr with random start).
    pub rng: &'a mut dyn RandomSource,
    /// `lblc_expiration` in seconds.
    pub lblc_expiration: u32,
    /// `lblcr_expiration` in seconds.
    pub lblcr_expiration: u32,
}

impl fmt::Debug for SchedCtx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedCtx")
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

/// A change to a service's destination list, reported after it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestChange {
    /// A destination was inserted at the head of the list.
    Added(DestId),
    /// A destination's weight or thresholds were edited (it kept its place).
    Updated(DestId),
    /// A destination was unlinked; `predecessor` is the entry that stood
    /// before it (`None` if it was the head).
    Removed {
        /// The removed destination.
        id: DestId,
        /// Its predecessor in the list before removal.
        predecessor: Option<DestId>,
    },
}

/// Options a scheduler is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedOptions {
    /// Scheduler flags (`-b`).
    pub flags: SchedFlags,
    /// Maglev table size (one of the kernel's primes).
    pub mh_table_size: u32,
    /// rvs opt-in: rr and wrr start at a random list position instead of
    /// the head, so that many directors do not all pick the same server first.
    pub random_start: bool,
}

impl Default for SchedOptions {
    fn default() -> Self {
        SchedOptions {
            flags: SchedFlags::default(),
            mh_table_size: crate::model::DEFAULT_MH_TABLE_SIZE,
            random_start: false,
        }
    }
}

/// A scheduler bound to one service.
pub trait Scheduler: Send + fmt::Debug {
    /// Which scheduler this is.
    fn kind(&self) -> SchedulerKind;

    /// Picks a destination for a new connection, or `None` when no
    /// destination is eligible.
    fn schedule(&mut self, dests: Dests<'_>, flow: &Flow, ctx: &mut SchedCtx<'_>)
    -> Option<DestId>;

    /// Told after each change to the destination list (the kernel's
    /// `add_dest` / `upd_dest` / `del_dest` callbacks). `dests` is the list
    /// after the change.
    fn on_change(&mut self, dests: Dests<'_>, change: DestChange);
}

mod cache;
pub mod dh;
pub mod fo;
pub mod hash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
mod table;
pub mod twos;
pub mod wlc;
pub mod wrr;

#[cfg(test)]
pub(crate) mod testutil;

/// Builds a scheduler for a service whose current destination list is
/// `dests` (the kernel's `init_service`).
///
/// Schedulers that keep a table (wrr, sh, dh, mh) compute it from `dests`
/// here; the others start empty.
pub fn build(kind: SchedulerKind, opts: &SchedOptions, dests: Dests<'_>) -> Box<dyn Scheduler> {
    match kind {
        SchedulerKind::Rr => Box::new(rr::Rr::new(opts)),
        SchedulerKind::Wrr => Box::new(wrr::Wrr::new(opts, dests)),
        SchedulerKind::Lc => Box::new(lc::Lc),
        SchedulerKind::Wlc => Box::new(wlc::Wlc),
        SchedulerKind::Sed => Box::new(sed::Sed),
        SchedulerKind::Nq => Box::new(nq::Nq),
        SchedulerKind::Fo => Box::new(fo::Fo),
        SchedulerKind::Ovf => Box::new(ovf::Ovf),
        SchedulerKind::Lblc => Box::new(lblc::Lblc::new()),
        SchedulerKind::Lblcr => Box::new(lblcr::Lblcr::new()),
        SchedulerKind::Dh => Box::new(dh::Dh::new(dests)),
        SchedulerKind::Sh => Box::new(sh::Sh::new(opts, dests)),
        SchedulerKind::Mh => Box::new(mh::Mh::new(opts, dests)),
        SchedulerKind::Twos => Box::new(twos::Twos),
    }
}

/// The gate nearly every scheduler applies: not overloaded and not quiesced.
pub(crate) fn eligible(s: &DestStatus) -> bool {
    !s.overloaded && s.weight > 0
}

/// Whether load `cand_cost / cand_w` is strictly below `best_cost / best_w`,
/// decided without division the way the kernel does
/// (`cost(best) * w(cand) > cost(cand) * w(best)`). 128-bit products keep
/// the comparison exact for any counter and weight values.
pub(crate) fn lighter(cand_cost: u64, cand_w: u32, best_cost: u64, best_w: u32) -> bool {
    u128::from(best_cost) * u128::from(cand_w) > u128::from(cand_cost) * u128::from(best_w)
}

/// The kernel's weighted-least-connection choice, shared by wlc, lblc and
/// lblcr: among eligible destinations, the least `overhead / weight`, the
/// first in list order on ties.
pub(crate) fn wlc_pick(dests: Dests<'_>) -> Option<DestId> {
    least_weighted(dests, DestStatus::overhead)
}

/// Least `cost(d) / weight(d)` over eligible destinations, first on ties.
pub(crate) fn least_weighted(
    dests: Dests<'_>,
    cost: impl Fn(&DestStatus) -> u64,
) -> Option<DestId> {
    let mut best: Option<(DestId, u64, u32)> = None;
    for (id, s) in dests.iter() {
        if !eligible(s) {
            continue;
        }
        let c = cost(s);
        match best {
            Some((_, bc, bw)) if !lighter(c, s.weight, bc, bw) => {}
            _ => best = Some((id, c, s.weight)),
        }
    }
    best.map(|(id, _, _)| id)
}

/// The lblc/lblcr notion of "overloaded": more active connections than its
/// weight while some destination of the service is below half its weight.
pub(crate) fn locality_overloaded(d: &DestStatus, dests: Dests<'_>) -> bool {
    u64::from(d.active) > u64::from(d.weight)
        && dests
            .iter()
            .any(|(_, s)| u64::from(s.active) * 2 < u64::from(s.weight))
}

/// A position in the destination list that survives list edits: the
/// kernel keeps a pointer to a list entry (or to the list head), which we
/// keep as the entry's identity plus a hint at its index so that the common
/// case needs no search.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    id: Option<DestId>,
    hint: usize,
}

impl Cursor {
    /// The list head sentinel.
    pub(crate) fn head() -> Self {
        Cursor::default()
    }

    /// The entry this cursor stands on, if it stands on one.
    pub(crate) fn id(&self) -> Option<DestId> {
        self.id
    }

    /// Points the cursor at `order[pos]`, or at the head for `None`.
    pub(crate) fn set(&mut self, order: &[DestId], pos: Option<usize>) {
        match pos.and_then(|p| order.get(p).map(|&id| (p, id))) {
            Some((p, id)) => {
                self.id = Some(id);
                self.hint = p;
            }
            None => *self = Cursor::head(),
        }
    }

    /// Points the cursor at an entry by identity (or at the head).
    pub(crate) fn set_id(&mut self, id: Option<DestId>) {
        self.id = id;
    }

    /// Index of the entry in `order`; `None` for the head. An entry that is
    /// no longer listed (a change the scheduler was not told about) counts
    /// as the head, the only safe place to resume from.
    pub(crate) fn resolve(&mut self, order: &[DestId]) -> Option<usize> {
        let id = self.id?;
        if order.get(self.hint) == Some(&id) {
            return Some(self.hint);
        }
        match order.iter().position(|&x| x == id) {
            Some(p) => {
                self.hint = p;
                Some(p)
            }
            None => {
                *self = Cursor::head();
                None
            }
        }
    }

    /// For the opt-in random start: a cursor from which the next scan
    /// begins at a uniformly drawn list position.
    pub(crate) fn random(order: &[DestId], rng: &mut dyn RandomSource) -> Self {
        let mut c = Cursor::head();
        if !order.is_empty() {
            let k = rng.next_u32() as usize % order.len();
            // Scans start just after the cursor, so stand on the entry before k.
            c.set(order, k.checked_sub(1));
        }
        c
    }
}
