//! A hierarchical timer wheel in virtual time (milliseconds).
//!
//! The wheel drives connection and template expiry. Reproducibility needs an
//! exact, total order of expiries: timers come out by deadline, and timers
//! with the same deadline come out in the order they were (last) armed.
//!
//! # Layout
//!
//! * Eight levels of 256 slots; level `L` slots are `256^L` ms wide, so the
//!   wheel spans the whole `u64` range and any deadline has a place without
//!   an overflow list. An occupancy bitmap per level lets the wheel skip empty
//!   time (days in an offline simulation) in a few bit operations.
//! * A timer sits in the slot chosen by the highest bit in which its deadline
//!   differs from the wheel's cursor (the time up to which all slots have
//!   been processed). When a slot of level `L > 0` is reached its timers are
//!   re-filed into lower levels.
//! * Each slot is an intrusive doubly linked list threaded through a dense
//!   per-id array, so arming, cancelling and unlinking never allocate.
//! * Timers whose deadline has been reached (`deadline <= cursor`) move into a
//!   small binary heap ordered by `(deadline, arm sequence)`. This heap only
//!   holds timers that are already due, so it is not a global priority queue;
//!   it gives the exact tie order when one slot, or an arm into the past,
//!   yields several due timers.
//!
//! # Lazy re-arm
//!
//! A re-arm that moves a deadline later (the per-packet case) only rewrites
//! the id's deadline and sequence: the entry stays in its slot, whose start
//! is still no later than the new deadline, and is re-filed when that slot is
//! reached. A re-arm that moves the deadline earlier unlinks and re-links in
//! O(1). Cancelling unlinks in O(1). Due-heap entries made obsolete by a
//! re-arm or cancel are recognised by their sequence number and dropped when
//! they surface.
//!
//! # Memory
//!
//! Per id: 24 bytes (`deadline: u64`, `seq: u64`, `next: u32`, `prev: u32`),
//! which is all the slot storage there is; the fixed part is 2048 slot heads
//! (8 KiB). The due heap adds 24 bytes per due-but-not-yet-popped timer.
//! [`TimerWheel::memory_bytes`] reports the total.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bits of time resolved per level. Eight bits make level 1 span 65 s and
/// level 2 span 4.6 h, so the usual 60..900 s timeouts cascade at most twice.
const LEVEL_BITS: u32 = 8;
/// Slots per level.
const SLOTS: usize = 1 << LEVEL_BITS;
/// Levels needed for `LEVEL_BITS * LEVELS >= 64`.
const LEVELS: usize = 8;
/// Total slot heads.
const NUM_SLOTS: usize = SLOTS * LEVELS;
/// Occupancy bitmap words per level.
const WORDS: usize = SLOTS / 64;

/// "No id" in `next` and slot heads.
const NIL: u32 = u32::MAX;
/// `prev` of an id that is not linked into a slot (unarmed, or due).
const UNLINKED: u32 = u32::MAX;
/// `prev` of a list head: this bit set, slot index in the low bits.
const HEAD_FLAG: u32 = 1 << 31;

/// Largest id the wheel accepts; the top `prev` bit tags list heads.
pub const MAX_ID: u32 = HEAD_FLAG - 2;

/// One id's state: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Deadline of the current arming (valid when `seq != 0`).
    deadline: u64,
    /// Arm sequence number of the current arming; 0 = not armed.
    seq: u64,
    /// Next id in the slot list, or `NIL`.
    next: u32,
    /// Previous id in the slot list, `HEAD_FLAG | slot` for the head, or
    /// `UNLINKED` when the id is not in a slot.
    prev: u32,
}

impl Entry {
    const UNARMED: Entry = Entry {
        deadline: 0,
        seq: 0,
        next: NIL,
        prev: UNLINKED,
    };
}

/// Bytes of per-id state, for the bytes-per-connection figure.
pub const BYTES_PER_ID: usize = std::mem::size_of::<Entry>();

/// A hierarchical timer wheel over dense `u32` ids with millisecond
/// deadlines in virtual time.
///
/// Ids at or above [`MAX_ID`] + 1 are not accepted: [`TimerWheel::arm`]
/// ignores them (connection slabs never come near 2^31 entries).
#[derive(Debug, Clone)]
pub struct TimerWheel {
    entries: Vec<Entry>,
    heads: Vec<u32>,
    occupied: [[u64; WORDS]; LEVELS],
    /// Due timers: `(deadline, seq, id)`, possibly with stale entries.
    due: BinaryHeap<Reverse<(u64, u64, u32)>>,
    /// Every slot starting at or before this time has been processed.
    cursor: u64,
    /// Last arm sequence number handed out.
    seq: u64,
    /// Armed timers.
    len: usize,
}

impl Default for TimerWheel {
    fn default() -> Self {
        Self::new()
    }
}

/// Mask of the time bits below level `level + 1` (saturating at all bits).
fn low_mask(level: usize) -> u64 {
    let bits = LEVEL_BITS as usize * (level + 1);
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Digit of `t` at `level`.
fn digit(t: u64, level: usize) -> usize {
    // The top level shifts by 56; all shifts stay below 64.
    ((t >> (LEVEL_BITS as usize * level)) & (SLOTS as u64 - 1)) as usize
}

impl TimerWheel {
    /// An empty wheel at time 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty wheel with room for ids `0..ids` without reallocating.
    pub fn with_capacity(ids: usize) -> Self {
        TimerWheel {
            entries: vec![Entry::UNARMED; ids],
            heads: vec![NIL; NUM_SLOTS],
            occupied: [[0; WORDS]; LEVELS],
            due: BinaryHeap::new(),
            cursor: 0,
            seq: 0,
            len: 0,
        }
    }

    /// Makes room for `ids` more ids up front, so a table sized for its
    /// load carries no growth slack.
    pub fn reserve(&mut self, ids: usize) {
        self.entries.reserve_exact(ids);
    }

    /// Arms `id` to fire at `deadline_ms`, replacing any earlier arming.
    ///
    /// Among timers with the same deadline, the one whose latest `arm` call
    /// came first fires first. A deadline at or before the last `now_ms`
    /// given to [`TimerWheel::pop_expired`] fires at the next pop.
    pub fn arm(&mut self, id: u32, deadline_ms: u64) {
        if id > MAX_ID {
            return;
        }
        let idx = id as usize;
        if idx >= self.entries.len() {
            self.entries.resize(idx + 1, Entry::UNARMED);
        }
        self.seq += 1;
        let seq = self.seq;
        let e = self.entries[idx];
        if e.seq == 0 {
            self.len += 1;
        } else if e.prev != UNLINKED {
            if deadline_ms >= e.deadline {
                // Lazy: the slot still starts no later than the new
                // deadline; the entry is re-filed when the slot is reached.
                let e = &mut self.entries[idx];
                e.deadline = deadline_ms;
                e.seq = seq;
                return;
            }
            self.unlink(id);
        }
        let e = &mut self.entries[idx];
        e.deadline = deadline_ms;
        e.seq = seq;
        if deadline_ms <= self.cursor {
            e.prev = UNLINKED;
            e.next = NIL;
            self.due.push(Reverse((deadline_ms, seq, id)));
        } else {
            self.link(id, deadline_ms);
        }
    }

    /// Disarms `id`; a no-op if it is not armed.
    pub fn cancel(&mut self, id: u32) {
        let Some(e) = self.entries.get(id as usize) else {
            return;
        };
        if e.seq == 0 {
            return;
        }
        if e.prev != UNLINKED {
            self.unlink(id);
        }
        self.entries[id as usize].seq = 0;
        self.len -= 1;
    }

    /// The deadline `id` is armed for, if it is armed.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        self.entries
            .get(id as usize)
            .filter(|e| e.seq != 0)
            .map(|e| e.deadline)
    }

    /// Removes and returns the armed timer with the earliest deadline
    /// `<= now_ms`; among equal deadlines the one armed (most recently
    /// re-armed) earliest comes first.
    ///
    /// `now_ms` must not decrease from call to call.
    pub fn pop_expired(&mut self, now_ms: u64) -> Option<(u32, u64)> {
        loop {
            // Everything in the due heap is due by `cursor <= now_ms` and
            // precedes everything still in the slots (deadline > cursor).
            while let Some(&Reverse((deadline, seq, id))) = self.due.peek() {
                let e = &mut self.entries[id as usize];
                if e.seq != seq {
                    self.due.pop();
                    continue;
                }
                if deadline > now_ms {
                    return None;
                }
                self.due.pop();
                e.seq = 0;
                self.len -= 1;
                return Some((id, deadline));
            }
            if self.due.capacity() > 4096 {
                // A large burst is over; give its memory back.
                self.due.shrink_to(1024);
            }
            if self.cursor >= now_ms {
                return None;
            }
            match self.next_slot() {
                Some((start, level, d)) if start <= now_ms => {
                    self.cursor = self.cursor.max(start);
                    self.process_slot(level * SLOTS + d);
                }
                _ => {
                    self.cursor = now_ms;
                    return None;
                }
            }
        }
    }

    /// The earliest deadline of any armed timer (exact, even with lazily
    /// re-armed entries).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        // Due timers precede every timer in the slots.
        let due_min = self
            .due
            .iter()
            .filter(|Reverse((_, seq, id))| self.entries[*id as usize].seq == *seq)
            .map(|Reverse((d, _, _))| *d)
            .min();
        if due_min.is_some() {
            return due_min;
        }
        // Walk occupied slots in time order; a slot's entries have deadlines
        // at or after its start, so stop once a start passes the best seen.
        let mut best = u64::MAX;
        let mut found = false;
        for level in 0..LEVELS {
            let mut from = digit(self.cursor, level);
            while let Some(d) = self.next_occupied(level, from) {
                from = d + 1;
                let start = self.slot_start(level, d);
                if found && start > best {
                    return Some(best);
                }
                let mut id = self.heads[level * SLOTS + d];
                while id != NIL {
                    let e = &self.entries[id as usize];
                    if e.deadline <= best {
                        best = e.deadline;
                        found = true;
                    }
                    id = e.next;
                }
            }
        }
        found.then_some(best)
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held: per-id entries, slot heads and the due heap.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * BYTES_PER_ID
            + self.heads.capacity() * std::mem::size_of::<u32>()
            + self.due.capacity() * std::mem::size_of::<Reverse<(u64, u64, u32)>>()
    }

    /// Start time of slot `d` at `level` in the cursor's current rotation.
    fn slot_start(&self, level: usize, d: usize) -> u64 {
        (self.cursor & !low_mask(level)) | ((d as u64) << (LEVEL_BITS as usize * level))
    }

    /// First occupied slot digit `>= from` at `level`.
    fn next_occupied(&self, level: usize, from: usize) -> Option<usize> {
        let words = &self.occupied[level];
        let mut w = from / 64;
        if w >= WORDS {
            return None;
        }
        let mut bits = words[w] & (u64::MAX << (from % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            if w == WORDS {
                return None;
            }
            bits = words[w];
        }
    }

    fn set_occupied(&mut self, slot: usize) {
        let (level, d) = (slot / SLOTS, slot % SLOTS);
        self.occupied[level][d / 64] |= 1 << (d % 64);
    }

    fn clear_occupied(&mut self, slot: usize) {
        let (level, d) = (slot / SLOTS, slot % SLOTS);
        self.occupied[level][d / 64] &= !(1 << (d % 64));
    }

    /// The occupied slot that starts first: `(start, level, digit)`.
    ///
    /// Every entry at level `L` shares the cursor's digits above `L` and has
    /// a larger digit at `L`, so any occupied lower level comes first.
    fn next_slot(&self) -> Option<(u64, usize, usize)> {
        for level in 0..LEVELS {
            let cur = digit(self.cursor, level);
            debug_assert!(
                self.next_occupied(level, 0).is_none_or(|d| d >= cur),
                "slot behind the cursor"
            );
            if let Some(d) = self.next_occupied(level, cur) {
                return Some((self.slot_start(level, d), level, d));
            }
        }
        None
    }

    /// Files `id` (armed, unlinked, `deadline > cursor`) into its slot.
    fn link(&mut self, id: u32, deadline: u64) {
        let diff = deadline ^ self.cursor;
        debug_assert!(deadline > self.cursor);
        let level = ((63 - diff.leading_zeros()) / LEVEL_BITS) as usize;
        let slot = level * SLOTS + digit(deadline, level);
        let head = self.heads[slot];
        if head != NIL {
            self.entries[head as usize].prev = id;
        }
        let e = &mut self.entries[id as usize];
        e.next = head;
        e.prev = HEAD_FLAG | slot as u32;
        self.heads[slot] = id;
        self.set_occupied(slot);
    }

    /// Removes a linked `id` from its slot list.
    fn unlink(&mut self, id: u32) {
        let Entry { next, prev, .. } = self.entries[id as usize];
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if prev & HEAD_FLAG != 0 {
            let slot = (prev & !HEAD_FLAG) as usize;
            self.heads[slot] = next;
            if next == NIL {
                self.clear_occupied(slot);
            }
        } else {
            self.entries[prev as usize].next = next;
        }
        let e = &mut self.entries[id as usize];
        e.next = NIL;
        e.prev = UNLINKED;
    }

    /// Empties a slot the cursor has reached: due timers go to the due heap,
    /// the rest (cascades and lazily re-armed ones) are re-filed.
    fn process_slot(&mut self, slot: usize) {
        let mut id = self.heads[slot];
        self.heads[slot] = NIL;
        self.clear_occupied(slot);
        while id != NIL {
            let e = &mut self.entries[id as usize];
            let next = e.next;
            e.next = NIL;
            e.prev = UNLINKED;
            let (deadline, seq) = (e.deadline, e.seq);
            if deadline <= self.cursor {
                self.due.push(Reverse((deadline, seq, id)));
            } else {
                self.link(id, deadline);
            }
            id = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    fn drain(w: &mut TimerWheel, now: u64) -> Vec<(u32, u64)> {
        std::iter::from_fn(|| w.pop_expired(now)).collect()
    }

    #[test]
    fn entry_is_24_bytes() {
        assert_eq!(BYTES_PER_ID, 24);
        let w = TimerWheel::with_capacity(1000);
        assert_eq!(w.memory_bytes(), 1000 * 24 + NUM_SLOTS * 4);
    }

    #[test]
    fn same_deadline_earliest_armed_first() {
        let mut w = TimerWheel::new();
        w.arm(5, 100);
        w.arm(3, 100);
        w.arm(9, 100);
        w.arm(1, 50);
        assert_eq!(w.next_deadline(), Some(50));
        assert_eq!(w.pop_expired(49), None);
        assert_eq!(
            drain(&mut w, 100),
            vec![(1, 50), (5, 100), (3, 100), (9, 100)]
        );
        assert!(w.is_empty());
    }

    #[test]
    fn rearm_moves_order() {
        let mut w = TimerWheel::new();
        w.arm(1, 100);
        w.arm(2, 100);
        w.arm(3, 100);
        // Re-arming to the same deadline makes 1 the latest armed.
        w.arm(1, 100);
        // Later then back: 2 ends up last too.
        w.arm(2, 5000);
        w.arm(2, 100);
        assert_eq!(drain(&mut w, 100), vec![(3, 100), (1, 100), (2, 100)]);
    }

    #[test]
    fn rearm_later_is_lazy_and_exact() {
        let mut w = TimerWheel::new();
        w.arm(1, 10);
        w.arm(2, 20);
        w.arm(1, 30);
        assert_eq!(w.deadline(1), Some(30));
        assert_eq!(w.next_deadline(), Some(20));
        assert_eq!(drain(&mut w, 25), vec![(2, 20)]);
        assert_eq!(w.next_deadline(), Some(30));
        assert_eq!(drain(&mut w, 30), vec![(1, 30)]);
    }

    #[test]
    fn cancel() {
        let mut w = TimerWheel::new();
        w.arm(1, 10);
        w.arm(2, 10);
        w.cancel(1);
        w.cancel(1);
        w.cancel(77);
        assert_eq!(w.len(), 1);
        assert_eq!(w.deadline(1), None);
        assert_eq!(drain(&mut w, 100), vec![(2, 10)]);
        // Cancel of a due-but-unpopped timer.
        w.arm(3, 200);
        w.arm(4, 200);
        assert_eq!(w.pop_expired(300), Some((3, 200)));
        w.cancel(4);
        assert_eq!(w.pop_expired(300), None);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn arm_in_the_past_interleaved_with_pops() {
        let mut w = TimerWheel::new();
        w.arm(1, 1000);
        w.arm(2, 1000);
        w.arm(3, 1500);
        assert_eq!(w.pop_expired(2000), Some((1, 1000)));
        // A template postponed 60 ms from its deadline, still in the past.
        w.arm(1, 1060);
        w.arm(4, 1000);
        assert_eq!(w.pop_expired(2000), Some((2, 1000)));
        assert_eq!(w.pop_expired(2000), Some((4, 1000)));
        assert_eq!(w.pop_expired(2000), Some((1, 1060)));
        assert_eq!(w.pop_expired(2000), Some((3, 1500)));
        assert_eq!(w.pop_expired(2000), None);
    }

    #[test]
    fn far_future_and_big_jumps() {
        let day = 86_400_000u64;
        let mut w = TimerWheel::new();
        w.arm(1, 31 * day);
        w.arm(2, 5);
        w.arm(3, u64::MAX);
        w.arm(4, 31 * day);
        assert_eq!(w.pop_expired(4), None);
        assert_eq!(w.pop_expired(30 * day), Some((2, 5)));
        assert_eq!(w.pop_expired(30 * day), None);
        assert_eq!(w.next_deadline(), Some(31 * day));
        assert_eq!(drain(&mut w, 400 * day), vec![(1, 31 * day), (4, 31 * day)]);
        w.arm(5, 400 * day + 1);
        assert_eq!(w.next_deadline(), Some(400 * day + 1));
        assert_eq!(drain(&mut w, u64::MAX - 1), vec![(5, 400 * day + 1)]);
        assert_eq!(drain(&mut w, u64::MAX), vec![(3, u64::MAX)]);
    }

    #[test]
    fn out_of_range_id_is_ignored() {
        let mut w = TimerWheel::new();
        w.arm(u32::MAX, 5);
        w.arm(MAX_ID + 1, 5);
        assert!(w.is_empty());
        assert_eq!(w.deadline(u32::MAX), None);
    }

    /// The specification: a map ordered by `(deadline, arm sequence)`.
    #[derive(Default)]
    struct Model {
        order: BTreeMap<(u64, u64), u32>,
        by_id: HashMap<u32, (u64, u64)>,
        seq: u64,
    }

    impl Model {
        fn arm(&mut self, id: u32, deadline: u64) {
            self.cancel(id);
            self.seq += 1;
            self.order.insert((deadline, self.seq), id);
            self.by_id.insert(id, (deadline, self.seq));
        }
        fn cancel(&mut self, id: u32) {
            if let Some(k) = self.by_id.remove(&id) {
                self.order.remove(&k);
            }
        }
        fn pop(&mut self, now: u64) -> Option<(u32, u64)> {
            let (&(d, s), &id) = self.order.iter().next()?;
            if d > now {
                return None;
            }
            self.order.remove(&(d, s));
            self.by_id.remove(&id);
            Some((id, d))
        }
        fn next(&self) -> Option<u64> {
            self.order.keys().next().map(|k| k.0)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Arm relative to now (may be in the past).
        Arm(u32, i64),
        /// Arm far out.
        ArmFar(u32, u64),
        Cancel(u32),
        /// Advance time, then pop up to this many.
        Pop(u64, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u32..40, -300i64..5000).prop_map(|(i, d)| Op::Arm(i, d)),
            1 => (0u32..40, 0u64..(1 << 40)).prop_map(|(i, d)| Op::ArmFar(i, d)),
            2 => (0u32..40).prop_map(Op::Cancel),
            4 => (prop_oneof![0u64..100, 0u64..10_000, 0u64..(1 << 36)], 0u8..20)
                .prop_map(|(a, n)| Op::Pop(a, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_reference_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut w = TimerWheel::new();
            let mut m = Model::default();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Arm(id, rel) => {
                        let d = now.saturating_add_signed(rel);
                        w.arm(id, d);
                        m.arm(id, d);
                    }
                    Op::ArmFar(id, d) => {
                        let d = now.saturating_add(d);
                        w.arm(id, d);
                        m.arm(id, d);
                    }
                    Op::Cancel(id) => {
                        w.cancel(id);
                        m.cancel(id);
                    }
                    Op::Pop(adv, n) => {
                        now = now.saturating_add(adv);
                        for _ in 0..n {
                            let got = w.pop_expired(now);
                            prop_assert_eq!(got, m.pop(now));
                            if got.is_none() {
                                break;
                            }
                        }
                    }
                }
                prop_assert_eq!(w.len(), m.by_id.len());
                prop_assert_eq!(w.next_deadline(), m.next());
                for id in 0..40 {
                    prop_assert_eq!(w.deadline(id), m.by_id.get(&id).map(|k| k.0));
                }
            }
            // Drain everything in the end.
            loop {
                let got = w.pop_expired(u64::MAX);
                prop_assert_eq!(got, m.pop(u64::MAX));
                if got.is_none() {
                    break;
                }
            }
            prop_assert!(w.is_empty());
        }
    }
}
