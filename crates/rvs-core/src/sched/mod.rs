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
mod stub;
pub use stub::build;
