//! The connection table: a slab of compact entries, a keyed hash index over
//! the input tuple, and a timer wheel for expiry.
//!
//! The table is generic over the address type so that an IPv4 entry stores
//! 4-byte addresses and an IPv6 entry 16-byte ones; the director keeps one
//! table per family. Real-server address and port are not stored: they are
//! the destination's, reached through [`Conn::dest`].
//!
//! The index hashes keys with a keyed hash (ahash) whose key the caller
//! supplies, so the pure core draws no randomness and an attacker who cannot
//! learn the key cannot aim collisions at one bucket.
//!
//! Capacity is bounded: [`ConnTable::insert`] on a full table fails with
//! [`TableFull`] and changes nothing, so existing flows are never disturbed
//! by a flood of new ones.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashTable;

use crate::sched::DestId;
use crate::timer::TimerWheel;

/// An address type a table can hold.
pub trait Addr: Copy + Eq + Hash + fmt::Debug + Send + Sync + 'static {
    /// As a std address.
    fn to_ip(self) -> IpAddr;
    /// From a std address of the same family.
    fn from_ip(ip: IpAddr) -> Option<Self>;
    /// The pseudo-address a fwmark template uses as its virtual address
    /// (the mark in the first 32-bit word, network order).
    fn from_mark(mark: u32) -> Self;
}

impl Addr for Ipv4Addr {
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    fn from_mark(mark: u32) -> Self {
        Ipv4Addr::from(mark)
    }
}

impl Addr for Ipv6Addr {
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(self)
    }
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    fn from_mark(mark: u32) -> Self {
        Ipv6Addr::from(u128::from(mark) << 96)
    }
}

/// Connection flags, with the kernel's values (bits 0..15 are what the sync
/// protocol carries).
pub mod flags {
    /// Forwarding method mask.
    pub const FWD_MASK: u16 = 0x0007;
    /// NAT.
    pub const FWD_MASQ: u16 = 0;
    /// Local node.
    pub const FWD_LOCAL: u16 = 1;
    /// Tunnel.
    pub const FWD_TUNNEL: u16 = 2;
    /// Direct routing.
    pub const FWD_ROUTE: u16 = 3;
    /// rvs: the userspace proxy (a value the kernel does not use).
    pub const FWD_PROXY: u16 = 5;
    /// Entry created by sync.
    pub const SYNC: u16 = 0x0020;
    /// No reply packet seen (DR/TUN).
    pub const NOOUTPUT: u16 = 0x0080;
    /// Counted as inactive.
    pub const INACTIVE: u16 = 0x0100;
    /// Client port not known yet.
    pub const NO_CPORT: u16 = 0x0800;
    /// Persistence template.
    pub const TEMPLATE: u16 = 0x1000;
    /// One-packet scheduling.
    pub const ONE_PACKET: u16 = 0x2000;
    /// Internal: the slab slot is free.
    pub(crate) const FREE: u16 = 0x8000;
}

/// Template state: ASSURED, once a controlled connection was established.
pub const TEMPLATE_ASSURED: u8 = 1;
/// `control` value of an uncontrolled connection.
pub const NO_CONTROL: u32 = u32::MAX;

/// The lookup key of a connection: the tuple as the client sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey<A> {
    /// IP protocol number (0 for fwmark templates).
    pub proto: u8,
    /// Whether this is a template key (templates and connections never match each other).
    pub template: bool,
    /// Client address (for templates: the client network).
    pub caddr: A,
    /// Client port (0 for templates).
    pub cport: u16,
    /// Virtual address (fwmark templates: the mark as an address).
    pub vaddr: A,
    /// Virtual port.
    pub vport: u16,
}

/// One connection or persistence template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn<A> {
    /// Client address.
    pub caddr: A,
    /// Virtual address.
    pub vaddr: A,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real-server port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Protocol state index (templates: 0 or [`TEMPLATE_ASSURED`]).
    pub state: u8,
    /// Connection flags ([`flags`]).
    pub flags: u16,
    /// The destination it is bound to.
    pub dest: DestId,
    /// The template that controls it, or [`NO_CONTROL`].
    pub control: u32,
    /// How many connections this entry controls.
    pub n_control: u32,
    /// Timeout in seconds used when the timer is next restarted.
    pub timeout: u32,
    /// Firewall mark of the first packet.
    pub fwmark: u32,
    /// Creation sequence number (orders `-Lc` listings).
    pub seq: u32,
}

impl<A: Addr> Conn<A> {
    /// The entry's lookup key.
    pub fn key(&self) -> ConnKey<A> {
        ConnKey {
            proto: self.proto,
            template: self.flags & flags::TEMPLATE != 0,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
        }
    }

    /// Whether this is a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }
}

/// The table is at its capacity; nothing was inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection table full")]
pub struct TableFull;

/// The part of a NAT connection's tuple that the real server's replies
/// carry (besides the real-server address, which is the destination's).
#[derive(Hash)]
struct ReplyKey<A> {
    proto: u8,
    caddr: A,
    cport: u16,
    dport: u16,
}

impl<A: Addr> Conn<A> {
    /// NAT connections are also found by their replies (`ip_vs_conn_out_get`).
    fn has_reply_key(&self) -> bool {
        self.flags & (flags::TEMPLATE | flags::FWD_MASK) == flags::FWD_MASQ
    }

    fn reply_key(&self) -> ReplyKey<A> {
        ReplyKey {
            proto: self.proto,
            caddr: self.caddr,
            cport: self.cport,
            dport: self.dport,
        }
    }
}

/// A bounded connection table for one address family.
pub struct ConnTable<A: Addr> {
    slots: Vec<Conn<A>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    /// NAT connections by their reply tuple.
    reply_index: HashTable<u32>,
    hasher: ahash::RandomState,
    timers: TimerWheel,
    capacity: usize,
    len: usize,
}

impl<A: Addr> fmt::Debug for ConnTable<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<A: Addr> ConnTable<A> {
    /// An empty table that holds at most `capacity` entries, hashing with
    /// `hash_key` (which the caller draws at random).
    pub fn new(capacity: usize, hash_key: [u64; 4]) -> Self {
        let capacity = capacity.min(u32::MAX as usize - 1);
        ConnTable {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            reply_index: HashTable::new(),
            hasher: ahash::RandomState::with_seeds(
                hash_key[0],
                hash_key[1],
                hash_key[2],
                hash_key[3],
            ),
            timers: TimerWheel::new(),
            capacity,
            len: 0,
        }
    }

    /// Allocates room for `n` more entries up front (never beyond capacity),
    /// so that a table sized for its load holds no growth slack.
    pub fn reserve(&mut self, n: usize) {
        let n = n.min(self.capacity.saturating_sub(self.len));
        self.slots.reserve_exact(n);
        self.timers.reserve(n);
        let hasher = &self.hasher;
        let slots = &self.slots;
        self.index
            .reserve(n, |&i| hasher.hash_one(slots[i as usize].key()));
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Finds the entry with this key.
    pub fn lookup(&self, key: &ConnKey<A>) -> Option<u32> {
        let h = self.hasher.hash_one(key);
        self.index
            .find(h, |&i| self.slots[i as usize].key() == *key)
            .copied()
    }

    /// Finds the NAT connection whose real server replies from port `dport`
    /// to `caddr:cport` (protocol `proto`); `is_server` checks the
    /// real-server address, which the table does not store.
    pub fn lookup_reply(
        &self,
        proto: u8,
        caddr: A,
        cport: u16,
        dport: u16,
        is_server: impl Fn(&Conn<A>) -> bool,
    ) -> Option<u32> {
        if self.reply_index.is_empty() {
            return None;
        }
        let key = ReplyKey {
            proto,
            caddr,
            cport,
            dport,
        };
        let h = self.hasher.hash_one(&key);
        self.reply_index
            .find(h, |&i| {
                let c = &self.slots[i as usize];
                c.proto == proto
                    && c.caddr == caddr
                    && c.cport == cport
                    && c.dport == dport
                    && is_server(c)
            })
            .copied()
    }

    /// Inserts an entry (its timer is not armed). Fails, changing nothing,
    /// when the table is full. The caller makes sure the key is not present.
    pub fn insert(&mut self, conn: Conn<A>) -> Result<u32, TableFull> {
        if self.len >= self.capacity {
            return Err(TableFull);
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = conn;
                id
            }
            None => {
                self.slots.push(conn);
                (self.slots.len() - 1) as u32
            }
        };
        self.hash_in(id);
        self.len += 1;
        Ok(id)
    }

    fn hash_in(&mut self, id: u32) {
        let h = self.hasher.hash_one(self.slots[id as usize].key());
        let hasher = &self.hasher;
        let slots = &self.slots;
        self.index
            .insert_unique(h, id, |&i| hasher.hash_one(slots[i as usize].key()));
        let c = &self.slots[id as usize];
        if c.has_reply_key() {
            let h = self.hasher.hash_one(c.reply_key());
            self.reply_index
                .insert_unique(h, id, |&i| hasher.hash_one(slots[i as usize].reply_key()));
        }
    }

    fn hash_out(&mut self, id: u32) {
        let h = self.hasher.hash_one(self.slots[id as usize].key());
        if let Ok(e) = self.index.find_entry(h, |&i| i == id) {
            e.remove();
        }
        let c = &self.slots[id as usize];
        if c.has_reply_key() {
            let h = self.hasher.hash_one(c.reply_key());
            if let Ok(e) = self.reply_index.find_entry(h, |&i| i == id) {
                e.remove();
            }
        }
    }

    /// Removes an entry: unhashed, timer cancelled, slot freed.
    pub fn remove(&mut self, id: u32) -> Conn<A> {
        self.hash_out(id);
        self.timers.cancel(id);
        let conn = self.slots[id as usize];
        self.slots[id as usize].flags |= flags::FREE;
        self.free.push(id);
        self.len -= 1;
        conn
    }

    /// Whether `id` names a live entry.
    pub fn is_live(&self, id: u32) -> bool {
        self.slots
            .get(id as usize)
            .is_some_and(|c| c.flags & flags::FREE == 0)
    }

    /// A live entry.
    pub fn get(&self, id: u32) -> &Conn<A> {
        &self.slots[id as usize]
    }

    /// A live entry, to change anything but its key fields (use
    /// [`ConnTable::rekey`] for those).
    pub fn get_mut(&mut self, id: u32) -> &mut Conn<A> {
        &mut self.slots[id as usize]
    }

    /// Changes key fields of an entry and rehashes it.
    pub fn rekey(&mut self, id: u32, change: impl FnOnce(&mut Conn<A>)) {
        self.hash_out(id);
        change(&mut self.slots[id as usize]);
        self.hash_in(id);
    }

    /// (Re)arms an entry's timer.
    pub fn arm(&mut self, id: u32, deadline_ms: u64) {
        self.timers.arm(id, deadline_ms);
    }

    /// The deadline of an entry's timer.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        self.timers.deadline(id)
    }

    /// Removes from the wheel and returns the earliest timer due at `now_ms`
    /// (same deadlines: earliest armed first). The entry stays in the table.
    pub fn pop_expired(&mut self, now_ms: u64) -> Option<(u32, u64)> {
        self.timers.pop_expired(now_ms)
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    /// Live entry ids.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.flags & flags::FREE == 0)
            .map(|(i, _)| i as u32)
    }

    /// Heap bytes held by the table: slab, free list, index and timers.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Conn<A>>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            // The index's real allocation: a power-of-two bucket count (not
            // `capacity()`, which leaves out the 1/8 kept empty and shrinks
            // as removals leave tombstones), a u32 and a control byte per
            // bucket, and a trailing group of control bytes.
            + self.index.allocation_size()
            + self.reply_index.allocation_size()
            + self.timers.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(c: u8, port: u16) -> Conn<Ipv4Addr> {
        Conn {
            caddr: Ipv4Addr::new(198, 51, 100, c),
            vaddr: Ipv4Addr::new(203, 0, 113, 1),
            cport: port,
            vport: 80,
            dport: 8080,
            proto: 6,
            state: 0,
            flags: flags::INACTIVE,
            dest: DestId(0),
            control: NO_CONTROL,
            n_control: 0,
            timeout: 60,
            fwmark: 0,
            seq: 0,
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = ConnTable::new(4, [1, 2, 3, 4]);
        let a = t.insert(conn(1, 1000)).unwrap();
        let b = t.insert(conn(2, 1000)).unwrap();
        assert_eq!(t.lookup(&conn(1, 1000).key()), Some(a));
        assert_eq!(t.lookup(&conn(2, 1000).key()), Some(b));
        assert_eq!(t.lookup(&conn(3, 1000).key()), None);
        t.remove(a);
        assert_eq!(t.lookup(&conn(1, 1000).key()), None);
        assert!(!t.is_live(a));
        assert_eq!(t.len(), 1);
        // The freed slot is reused.
        assert_eq!(t.insert(conn(5, 1)).unwrap(), a);
    }

    #[test]
    fn full_table_refuses_and_keeps_what_it_has() {
        let mut t = ConnTable::new(2, [0; 4]);
        t.insert(conn(1, 1)).unwrap();
        t.insert(conn(2, 1)).unwrap();
        assert_eq!(t.insert(conn(3, 1)), Err(TableFull));
        assert_eq!(t.len(), 2);
        assert!(t.lookup(&conn(1, 1).key()).is_some());
    }

    #[test]
    fn templates_and_connections_do_not_match() {
        let mut t = ConnTable::new(4, [0; 4]);
        let mut tpl = conn(1, 0);
        tpl.flags |= flags::TEMPLATE;
        t.insert(tpl).unwrap();
        assert_eq!(t.lookup(&conn(1, 0).key()), None);
    }

    #[test]
    fn rekey_moves_the_entry() {
        let mut t = ConnTable::new(4, [0; 4]);
        let id = t.insert(conn(1, 1)).unwrap();
        t.rekey(id, |c| c.vport = 0xffff);
        assert_eq!(t.lookup(&conn(1, 1).key()), None);
        let mut k = conn(1, 1).key();
        k.vport = 0xffff;
        assert_eq!(t.lookup(&k), Some(id));
    }

    #[test]
    fn memory_counts_the_whole_index() {
        let mut t = ConnTable::<Ipv4Addr>::new(1000, [0; 4]);
        t.reserve(1000);
        // 1000 entries need 1000 * 8 / 7 -> 2048 buckets: 4 bytes each plus
        // one control byte each plus 16 trailing control bytes.
        let index = 2048 * 4 + 2048 + 16;
        let slab = 1000 * std::mem::size_of::<Conn<Ipv4Addr>>();
        assert_eq!(t.memory_bytes() - t.timers.memory_bytes(), slab + index);
    }

    #[test]
    fn ipv4_entry_is_compact() {
        let size = std::mem::size_of::<Conn<Ipv4Addr>>();
        assert!(size <= 44, "IPv4 entry is {size} bytes");
    }
}
