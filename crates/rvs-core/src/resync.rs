//! rvs resynchronisation (an extension beyond the kernel): a director that
//! starts as backup fetches the master's whole connection table before it
//! lets its VRRP instance become master (the ready gate of
//! [`crate::vrrp::VrrpInstance::set_ready`]).
//!
//! The exchange runs over UDP in the messages of [`rvs_wire::resync`]:
//!
//! - the returning director ([`ResyncClient`]) sends a request for a window
//!   of chunks of a snapshot (snapshot 0: "make me one");
//! - the master ([`ResyncServer`]) takes a snapshot of its table
//!   ([`crate::director::Director::sync_snapshot`]) cut into sync version 1
//!   messages of at most `maxlen` bytes with the header, keeps it for a
//!   while, and answers each request with the chunks it names;
//! - the client installs each new chunk, asks for the next window as soon
//!   as the previous one is complete, re-asks for the first missing chunks
//!   when nothing new arrived for `retry_ms`, and is done when it holds
//!   every chunk, or gives up after `timeout_ms`.
//!
//! The window is what keeps a large table from overrunning the receiver's
//! socket buffer: at most `window` chunks are in flight. Lost chunks cost a
//! retry interval, never a restart.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rvs_wire::resync::{self as wire, Answer, Request};
use rvs_wire::sync::{MessageBuilder, SyncConn};

/// How a [`ResyncClient`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncClientConfig {
    /// Our sync id (0: any master answers, and any answer is taken).
    pub sync_id: u8,
    /// Chunks asked for at once (default 32: 47 KB at 1472-byte chunks,
    /// well inside a default socket receive buffer).
    pub window: u32,
    /// A request is repeated when nothing new arrived for this long
    /// (default 250 ms).
    pub retry_ms: u64,
    /// Give up after this long (`resync_timeout`).
    pub timeout_ms: u64,
}

impl Default for ResyncClientConfig {
    fn default() -> Self {
        ResyncClientConfig {
            sync_id: 0,
            window: 32,
            retry_ms: 250,
            timeout_ms: 30_000,
        }
    }
}

/// How a resynchronisation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every chunk of a snapshot arrived.
    Complete {
        /// Chunks (sync messages) in the snapshot.
        chunks: u32,
        /// Milliseconds from the first request.
        elapsed_ms: u64,
    },
    /// The timeout passed first.
    TimedOut {
        /// Chunks received of the snapshot followed (0 if none answered).
        chunks: u32,
        /// Chunks in that snapshot, if one answered.
        total: Option<u32>,
    },
}

/// Counters of a [`ResyncClient`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResyncClientStats {
    /// Requests handed out (first and repeated).
    pub requests: u64,
    /// Requests repeated after `retry_ms` without progress.
    pub retries: u64,
    /// New chunks accepted.
    pub chunks: u64,
    /// Answers ignored: duplicates, other request or sync id, a snapshot
    /// other than the one followed.
    pub ignored: u64,
}

/// The returning director's side of one resynchronisation.
#[derive(Debug, Clone)]
pub struct ResyncClient {
    cfg: ResyncClientConfig,
    request_id: u32,
    started_at: u64,
    snapshot: u32,
    total: Option<u32>,
    have: Vec<bool>,
    received: u32,
    /// End (exclusive) of the window last asked for.
    asked_end: u32,
    last_progress: u64,
    send_now: bool,
    retry_at: u64,
    outcome: Option<Outcome>,
    stats: ResyncClientStats,
}

impl ResyncClient {
    /// Starts at `now` with `request_id` (a random number from the caller:
    /// it tells this run's answers from a previous run's).
    pub fn new(cfg: ResyncClientConfig, request_id: u32, now: u64) -> Self {
        ResyncClient {
            cfg: ResyncClientConfig {
                window: cfg.window.max(1),
                retry_ms: cfg.retry_ms.max(1),
                ..cfg
            },
            request_id,
            started_at: now,
            snapshot: 0,
            total: None,
            have: Vec::new(),
            received: 0,
            asked_end: 0,
            last_progress: now,
            send_now: true,
            retry_at: now,
            outcome: None,
            stats: ResyncClientStats::default(),
        }
    }

    /// The request id.
    pub fn request_id(&self) -> u32 {
        self.request_id
    }

    /// Counters.
    pub fn stats(&self) -> ResyncClientStats {
        self.stats
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Chunks received and, once known, the snapshot's total.
    pub fn progress(&self) -> (u32, Option<u32>) {
        (self.received, self.total)
    }

    fn first_missing(&self) -> u32 {
        self.have
            .iter()
            .position(|h| !h)
            .map_or(self.have.len() as u32, |i| i as u32)
    }

    /// The next request to send at `now`, if one is due.
    pub fn poll_request(&mut self, now: u64) -> Option<Request> {
        self.handle_timeout(now);
        if self.outcome.is_some() {
            return None;
        }
        let retry = now >= self.retry_at;
        if !self.send_now && !retry {
            return None;
        }
        if retry && !self.send_now && self.stats.requests > 0 {
            self.stats.retries += 1;
        }
        self.send_now = false;
        self.retry_at = now + self.cfg.retry_ms;
        let first = self.first_missing();
        let count = match self.total {
            Some(t) => self.cfg.window.min(t - first),
            None => self.cfg.window,
        };
        self.asked_end = first + count;
        self.stats.requests += 1;
        Some(Request {
            sync_id: self.cfg.sync_id,
            request_id: self.request_id,
            snapshot: self.snapshot,
            first,
            count,
        })
    }

    /// When [`ResyncClient::poll_request`] or
    /// [`ResyncClient::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.outcome.is_some() {
            return None;
        }
        let deadline = self.started_at + self.cfg.timeout_ms;
        Some(if self.send_now {
            self.last_progress.min(deadline)
        } else {
            self.retry_at.min(deadline)
        })
    }

    /// Gives up once the timeout has passed.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.outcome.is_none() && now >= self.started_at + self.cfg.timeout_ms {
            self.outcome = Some(Outcome::TimedOut {
                chunks: self.received,
                total: self.total,
            });
        }
    }

    /// An answer arrived at `now`: `Some(payload)` when it is a new chunk
    /// whose sync message the caller must install; `None` when it is
    /// ignored (counted).
    pub fn handle_answer<'a>(&mut self, now: u64, a: &Answer<'a>) -> Option<&'a [u8]> {
        self.handle_timeout(now);
        let foreign = a.request_id != self.request_id
            || (self.cfg.sync_id != 0 && a.sync_id != self.cfg.sync_id);
        if self.outcome.is_some() || foreign {
            self.stats.ignored += 1;
            return None;
        }
        if a.snapshot != self.snapshot {
            // Follow the first snapshot; move to another only when the one
            // followed has gone quiet (its master lost it, or left).
            if self.snapshot != 0 && now < self.last_progress + self.cfg.retry_ms {
                self.stats.ignored += 1;
                return None;
            }
            self.snapshot = a.snapshot;
            self.total = Some(a.total);
            self.have = vec![false; a.total as usize];
            self.received = 0;
            self.asked_end = self.cfg.window.min(a.total);
        }
        if self.total != Some(a.total) {
            self.stats.ignored += 1;
            return None;
        }
        if a.total == 0 {
            self.complete(now);
            return Some(a.payload);
        }
        let slot = self.have.get_mut(a.chunk as usize)?;
        if *slot {
            self.stats.ignored += 1;
            return None;
        }
        *slot = true;
        self.received += 1;
        self.stats.chunks += 1;
        self.last_progress = now;
        self.retry_at = now + self.cfg.retry_ms;
        if self.received == a.total {
            self.complete(now);
        } else if self.first_missing() >= self.asked_end {
            // The window is complete: ask for the next one at once.
            self.send_now = true;
        }
        Some(a.payload)
    }

    fn complete(&mut self, now: u64) {
        self.outcome = Some(Outcome::Complete {
            chunks: self.total.unwrap_or(0),
            elapsed_ms: now - self.started_at,
        });
    }
}

/// How a [`ResyncServer`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncServerConfig {
    /// Our sync id: requests of another (non-zero) id are not answered.
    pub sync_id: u8,
    /// Largest datagram (header included), as the sync sender's `maxlen`.
    pub maxlen: usize,
    /// A snapshot is kept this long after its last request (default 30 s).
    pub hold_ms: u64,
    /// Most snapshots kept at once (default 4); the least recently used
    /// goes first.
    pub max_snapshots: usize,
    /// Most chunks sent for one request (default 64), whatever it asks.
    pub max_window: u32,
    /// Least time between two snapshots (default 1000 ms): taking one holds
    /// the director for the length of a table walk, so a flood of new
    /// requests must not take one each. A request that would need a new
    /// snapshot sooner is not answered (its sender asks again).
    pub min_snapshot_interval_ms: u64,
}

impl Default for ResyncServerConfig {
    fn default() -> Self {
        ResyncServerConfig {
            sync_id: 0,
            maxlen: rvs_wire::sync::DEFAULT_MAXLEN_V4,
            hold_ms: 30_000,
            max_snapshots: 4,
            max_window: 64,
            min_snapshot_interval_ms: 1000,
        }
    }
}

/// Counters of a [`ResyncServer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResyncServerStats {
    /// Requests answered.
    pub requests: u64,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Records in those snapshots.
    pub records: u64,
    /// Records that could not be encoded (left out).
    pub unencodable: u64,
    /// Requests of another sync id (not answered).
    pub other_sync_id: u64,
    /// Requests not answered because a snapshot was taken too recently.
    pub rate_limited: u64,
}

#[derive(Debug, Clone)]
struct Snapshot {
    id: u32,
    peer: SocketAddr,
    request_id: u32,
    chunks: Vec<Vec<u8>>,
    last_used: u64,
}

/// The master's side: snapshots and the chunks they are cut into.
#[derive(Debug, Clone)]
pub struct ResyncServer {
    cfg: ResyncServerConfig,
    next_id: u32,
    snapshots: VecDeque<Snapshot>,
    last_snapshot_at: Option<u64>,
    stats: ResyncServerStats,
}

impl ResyncServer {
    /// A server whose snapshot ids start from `seed` (a random number from
    /// the caller, so that a restarted master does not reuse ids).
    pub fn new(cfg: ResyncServerConfig, seed: u32) -> Self {
        ResyncServer {
            cfg,
            next_id: seed,
            snapshots: VecDeque::new(),
            last_snapshot_at: None,
            stats: ResyncServerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> ResyncServerStats {
        self.stats
    }

    /// Snapshots held.
    pub fn held(&self) -> usize {
        self.snapshots.len()
    }

    fn cut(&mut self, records: &[SyncConn]) -> Vec<Vec<u8>> {
        let room = self.cfg.maxlen.saturating_sub(wire::HEADER_LEN);
        let mut b = MessageBuilder::new(self.cfg.sync_id, room);
        let mut out = Vec::new();
        for r in records {
            match b.push(r) {
                Ok(true) => {}
                Ok(false) => {
                    out.push(b.finish().to_vec());
                    b.clear();
                    if b.push(r) != Ok(true) {
                        self.stats.unencodable += 1;
                        continue;
                    }
                }
                Err(_) => {
                    self.stats.unencodable += 1;
                    continue;
                }
            }
            self.stats.records += 1;
        }
        if !b.is_empty() {
            out.push(b.finish().to_vec());
        }
        out
    }

    /// A request from `peer` at `now`: the answer datagrams to send back.
    /// `table` is called (once) when a new snapshot must be taken.
    pub fn handle_request(
        &mut self,
        now: u64,
        peer: SocketAddr,
        req: &Request,
        table: impl FnOnce() -> Vec<SyncConn>,
    ) -> Vec<Vec<u8>> {
        self.snapshots
            .retain(|s| now < s.last_used + self.cfg.hold_ms);
        if req.sync_id != 0 && self.cfg.sync_id != 0 && req.sync_id != self.cfg.sync_id {
            self.stats.other_sync_id += 1;
            return Vec::new();
        }
        let known = self.snapshots.iter().position(|s| {
            s.peer == peer
                && s.request_id == req.request_id
                && (req.snapshot == 0 || s.id == req.snapshot)
        });
        if known.is_none()
            && self
                .last_snapshot_at
                .is_some_and(|t| now < t + self.cfg.min_snapshot_interval_ms)
        {
            self.stats.rate_limited += 1;
            return Vec::new();
        }
        self.stats.requests += 1;
        let at = match known {
            Some(i) => i,
            None => {
                self.last_snapshot_at = Some(now);
                let chunks = self.cut(&table());
                self.next_id = self.next_id.wrapping_add(1).max(1);
                self.stats.snapshots += 1;
                if self.snapshots.len() >= self.cfg.max_snapshots.max(1) {
                    // The least recently used goes.
                    if let Some(i) =
                        (0..self.snapshots.len()).min_by_key(|&i| self.snapshots[i].last_used)
                    {
                        self.snapshots.remove(i);
                    }
                }
                self.snapshots.push_back(Snapshot {
                    id: self.next_id,
                    peer,
                    request_id: req.request_id,
                    chunks,
                    last_used: now,
                });
                self.snapshots.len() - 1
            }
        };
        let s = &mut self.snapshots[at];
        s.last_used = now;
        let total = s.chunks.len() as u32;
        let answer = |chunk: u32, payload: &[u8]| {
            Answer {
                sync_id: self.cfg.sync_id,
                request_id: req.request_id,
                snapshot: s.id,
                chunk,
                total,
                payload,
            }
            .to_bytes()
        };
        if total == 0 {
            return vec![answer(0, &[])];
        }
        // A new snapshot is answered from its start whatever was asked.
        let first = if known.is_some() {
            req.first.min(total)
        } else {
            0
        };
        let count = req.count.clamp(1, self.cfg.max_window.max(1));
        let end = first.saturating_add(count).min(total);
        (first..end)
            .map(|i| answer(i, &s.chunks[i as usize]))
            .collect()
    }
}

#[cfg(test)]
mod tests;
