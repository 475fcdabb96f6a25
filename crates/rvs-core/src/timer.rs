//! Timer stand-in (exact ordering by a BTreeMap); replaced by the wheel.
use std::collections::BTreeMap;

/// Timers keyed by dense ids.
#[derive(Debug, Default)]
pub struct TimerWheel {
    by_time: BTreeMap<(u64, u64), u32>,
    of_id: Vec<Option<(u64, u64)>>,
    seq: u64,
}

impl TimerWheel {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }
    /// Empty, sized.
    pub fn with_capacity(ids: usize) -> Self {
        let mut t = Self::default();
        t.of_id.reserve(ids);
        t
    }
    /// (Re)arm.
    pub fn arm(&mut self, id: u32, deadline_ms: u64) {
        self.cancel(id);
        let i = id as usize;
        if self.of_id.len() <= i {
            self.of_id.resize(i + 1, None);
        }
        self.seq += 1;
        self.of_id[i] = Some((deadline_ms, self.seq));
        self.by_time.insert((deadline_ms, self.seq), id);
    }
    /// Cancel.
    pub fn cancel(&mut self, id: u32) {
        if let Some(slot) = self.of_id.get_mut(id as usize)
            && let Some(k) = slot.take()
        {
            self.by_time.remove(&k);
        }
    }
    /// Deadline of an id.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        self.of_id.get(id as usize).copied().flatten().map(|k| k.0)
    }
    /// Pop the earliest expired.
    pub fn pop_expired(&mut self, now_ms: u64) -> Option<(u32, u64)> {
        let (&k, &id) = self.by_time.iter().next()?;
        if k.0 > now_ms {
            return None;
        }
        self.by_time.remove(&k);
        self.of_id[id as usize] = None;
        Some((id, k.0))
    }
    /// Earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_time.keys().next().map(|k| k.0)
    }
    /// Armed count.
    pub fn len(&self) -> usize {
        self.by_time.len()
    }
    /// None armed.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }
    /// Heap bytes (approximate).
    pub fn memory_bytes(&self) -> usize {
        self.of_id.capacity() * 24 + self.by_time.len() * 40
    }
}
