//! IPVS connection synchronisation: what a master director sends so that a
//! backup holds the same connections when it takes over, and how a backup
//! installs what it receives.
//!
//! The pieces, all sans-IO:
//! - [`SyncSettings`] turns on sync event generation in the master's
//!   [`Director`] ([`Director::set_sync_master`]). The director applies the
//!   kernel's rules of when a connection must be sent (§3.5 of the
//!   behaviour notes: threshold and period counted in client packets,
//!   forced sends on TCP/SCTP state changes towards the end of a
//!   connection, refresh period and retries, templates with the
//!   connections they control) and queues [`SyncConn`] records, which the
//!   caller drains with [`Director::drain_sync_updates`].
//! - [`SyncSender`] batches records into version 1 messages of at most the
//!   configured size and hands them out with [`SyncSender::poll_datagram`];
//!   a partly filled message goes out once its first record is
//!   [`SyncSenderConfig::flush_delay_ms`] old (the kernel's 2 s).
//! - [`SyncReceiver`] decodes datagrams (version 0 or 1), filters them by
//!   sync id and installs their records into the backup's director
//!   ([`Director::sync_install`]).

use std::collections::VecDeque;

use rvs_wire::sync::{self as wire, MessageBuilder};
pub use rvs_wire::sync::{Message, SyncConn};

use crate::conn::{Addr, Conn, NO_CONTROL, flags};
use crate::director::Director;
use crate::model::Protocol;
use crate::sctp::SctpState;
use crate::state::TcpState;

/// The kernel's master-side sync sysctls, with their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// `sync_threshold` first value: the client packet count at which a
    /// connection is first sent (default 3).
    pub threshold: u32,
    /// `sync_threshold` second value, the period: sent again every
    /// `period` packets (default 50; 0 = only once, at the threshold).
    pub period: u32,
    /// `sync_refresh_period` in milliseconds (default 0 = off): when set, a
    /// connection is re-sent only when its expiry moved by at least
    /// `min(refresh, max(timeout / 2, 10 s))` since the last send.
    pub refresh_period_ms: u64,
    /// `sync_retries` (0..=3, default 0): with a refresh period, re-sends of
    /// an unchanged connection, `refresh / 8` apart.
    pub retries: u8,
    /// `sync_persist_mode`: connections controlled by a template are not
    /// sent, only templates.
    pub persist_mode: bool,
    /// Most records queued in the director before
    /// [`Director::drain_sync_updates`] (excess records are counted and dropped).
    pub max_pending: usize,
    /// rvs: also send entries of the userspace proxy method. Their
    /// forwarding value (5) means nothing to a kernel backup, and a proxied
    /// TCP stream cannot move to another director anyway; on between rvs
    /// directors it carries the persistence templates of proxy services.
    pub include_proxy: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            threshold: 3,
            period: 50,
            refresh_period_ms: 0,
            retries: 0,
            persist_mode: false,
            max_pending: 1 << 16,
            include_proxy: false,
        }
    }
}

/// Per-connection sync bookkeeping, kept beside the table (only while sync
/// is on): the kernel's `in_pkts`, `old_state` and `sync_endtime`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SyncMark {
    pub(crate) in_pkts: u32,
    old_state: u8,
    retries: u8,
    /// Expiry the last send announced (send time + timeout), 0 = never sent.
    endtime_ms: u64,
    /// When the last send happened.
    sent_ms: u64,
}

impl SyncMark {
    /// Counts one client packet.
    pub(crate) fn bump(&mut self) -> u32 {
        self.in_pkts = self.in_pkts.wrapping_add(1);
        self.in_pkts
    }

    /// A backup-installed entry counts as already past the threshold.
    pub(crate) fn installed(state: u8, threshold: u32) -> Self {
        SyncMark {
            in_pkts: threshold,
            old_state: state,
            ..SyncMark::default()
        }
    }
}

/// Whether a TCP/SCTP state is one the kernel syncs in, and whether a change
/// into it is sent at once.
fn sync_state(proto: u8, state: u8) -> Option<bool> {
    if proto == Protocol::Tcp.number() {
        match TcpState::from_index(state)? {
            TcpState::Established => Some(false),
            TcpState::FinWait | TcpState::Close | TcpState::CloseWait | TcpState::TimeWait => {
                Some(true)
            }
            _ => None,
        }
    } else {
        match SctpState::from_index(usize::from(state))? {
            SctpState::Established => Some(false),
            SctpState::ShutdownSent
            | SctpState::ShutdownReceived
            | SctpState::ShutdownAckSent
            | SctpState::Closed => Some(true),
            _ => None,
        }
    }
}

/// The kernel's decision (`ip_vs_sync_conn_needed`) for entry `c` whose
/// packet counter reads `pkts`; on "send", `mark` records the send.
pub(crate) fn needs_sync<A: Addr>(
    s: &SyncSettings,
    c: &Conn<A>,
    mark: &mut SyncMark,
    pkts: u32,
    now: u64,
) -> bool {
    if !s.include_proxy && c.flags & flags::FWD_MASK == flags::FWD_PROXY {
        return false;
    }
    let template = c.is_template();
    let timeout_ms = u64::from(c.timeout) * 1000;
    let endtime = now + timeout_ms;
    let mut retries = 0;
    let stateful = c.proto == Protocol::Tcp.number() || c.proto == Protocol::Sctp.number();
    let forced = if template {
        false
    } else if s.persist_mode && c.control != NO_CONTROL {
        return false;
    } else if stateful {
        let Some(force_on_change) = sync_state(c.proto, c.state) else {
            return false;
        };
        c.state != mark.old_state && force_on_change
    } else {
        false
    };
    if !forced {
        if s.refresh_period_ms > 0 {
            let diff = endtime.abs_diff(mark.endtime_ms);
            let min_diff = (timeout_ms / 2).max(10_000);
            if diff < s.refresh_period_ms.min(min_diff) {
                if mark.retries >= s.retries {
                    return false;
                }
                if now < mark.sent_ms + s.refresh_period_ms / 8 {
                    return false;
                }
                retries = mark.retries + 1;
            }
        }
        if s.period > 0 {
            if !template && pkts % s.period != s.threshold {
                return false;
            }
        } else if s.refresh_period_ms == 0 && pkts != s.threshold {
            return false;
        }
    }
    mark.old_state = c.state;
    mark.endtime_ms = endtime;
    mark.sent_ms = now;
    mark.retries = retries;
    true
}

/// How a [`SyncSender`] batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSenderConfig {
    /// `--syncid` (0..=255; default 0).
    pub sync_id: u8,
    /// `sync_maxlen`: largest UDP payload (default 1472, the kernel's
    /// 1500 − 28 for an IPv4 group; 1452 for IPv6).
    pub maxlen: usize,
    /// A partly filled message goes out once its first record is this old
    /// (default 2000 ms, as the kernel's sender thread).
    pub flush_delay_ms: u64,
    /// Most finished messages waiting for [`SyncSender::poll_datagram`]
    /// (`sync_qlen_max`); further records are counted and dropped.
    pub max_queue: usize,
}

impl Default for SyncSenderConfig {
    fn default() -> Self {
        SyncSenderConfig {
            sync_id: 0,
            maxlen: wire::DEFAULT_MAXLEN_V4,
            flush_delay_ms: 2000,
            max_queue: 1024,
        }
    }
}

impl SyncSenderConfig {
    /// A message size for an interface MTU (explicit `sync_maxlen` the
    /// kernel's way: the MTU less the IP and UDP headers, 28 bytes for an
    /// IPv4 group and 48 for IPv6, at least one v1 header and IPv6 record).
    pub fn maxlen_for_mtu(mtu: u32, ipv6_group: bool) -> usize {
        let headers = if ipv6_group { 48 } else { 28 };
        let payload = (mtu.min(65_535) as usize).saturating_sub(headers);
        payload.max(wire::V1_HEADER_LEN + wire::V6_RECORD_LEN)
    }
}

/// What a [`SyncSender`] has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSenderStats {
    /// Records accepted.
    pub records: u64,
    /// Messages handed out.
    pub messages: u64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records that cannot be encoded (mixed families, bad PE data, larger
    /// than a message).
    pub dropped_unencodable: u64,
    /// Messages dropped because the caller's buffer was too small.
    pub dropped_short_buffer: u64,
}

/// Batches sync records into version 1 messages.
#[derive(Debug, Clone)]
pub struct SyncSender {
    cfg: SyncSenderConfig,
    building: MessageBuilder,
    first_at: Option<u64>,
    queue: VecDeque<Vec<u8>>,
    stats: SyncSenderStats,
}

impl SyncSender {
    /// A sender with nothing queued.
    pub fn new(cfg: SyncSenderConfig) -> Self {
        SyncSender {
            building: MessageBuilder::new(cfg.sync_id, cfg.maxlen),
            cfg,
            first_at: None,
            queue: VecDeque::new(),
            stats: SyncSenderStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SyncSenderConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> SyncSenderStats {
        self.stats
    }

    /// Messages ready to send (not counting the one being filled).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Adds a record at `now`; a full message is queued and a new one begun.
    pub fn push(&mut self, now: u64, conn: &SyncConn) {
        match self.building.push(conn) {
            Ok(true) => {}
            Ok(false) => {
                if !self.seal() {
                    self.stats.dropped_queue_full += 1;
                    return;
                }
                if self.building.push(conn) != Ok(true) {
                    self.stats.dropped_unencodable += 1;
                    return;
                }
            }
            Err(_) => {
                self.stats.dropped_unencodable += 1;
                return;
            }
        }
        self.stats.records += 1;
        self.first_at.get_or_insert(now);
    }

    /// Queues the message being filled; false (nothing changed) when the
    /// queue is full.
    fn seal(&mut self) -> bool {
        if self.building.is_empty() {
            return true;
        }
        if self.queue.len() >= self.cfg.max_queue {
            return false;
        }
        self.queue.push_back(self.building.finish().to_vec());
        self.building.clear();
        self.first_at = None;
        true
    }

    /// Queues the partly filled message now (e.g. on shutdown).
    pub fn flush(&mut self) {
        let _ = self.seal();
    }

    /// Writes the next datagram to send into `buf` (at least
    /// [`SyncSenderConfig::maxlen`] bytes) and returns its length.
    pub fn poll_datagram(&mut self, now: u64, buf: &mut [u8]) -> Option<usize> {
        if self
            .first_at
            .is_some_and(|t| now >= t + self.cfg.flush_delay_ms)
        {
            let _ = self.seal();
        }
        while let Some(msg) = self.queue.pop_front() {
            if msg.len() <= buf.len() {
                buf[..msg.len()].copy_from_slice(&msg);
                self.stats.messages += 1;
                return Some(msg.len());
            }
            self.stats.dropped_short_buffer += 1;
        }
        None
    }

    /// When [`SyncSender::poll_datagram`] will next have something: at
    /// once (`Some(0)`) while messages are queued, else when the partly
    /// filled message is due.
    pub fn poll_timeout(&self) -> Option<u64> {
        if !self.queue.is_empty() {
            return Some(0);
        }
        self.first_at.map(|t| t + self.cfg.flush_delay_ms)
    }
}

/// What a [`SyncReceiver`] has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReceiverStats {
    /// Datagrams accepted.
    pub messages: u64,
    /// Datagrams refused (short, bad size).
    pub bad_messages: u64,
    /// Datagrams of another sync id.
    pub other_sync_id: u64,
    /// Messages whose tail was dropped as malformed.
    pub truncated: u64,
    /// Records skipped by the decoder.
    pub bad_records: u64,
    /// Entries created.
    pub created: u64,
    /// Entries updated.
    pub updated: u64,
    /// Records the director refused or ignored.
    pub refused: u64,
}

/// Decodes sync datagrams for a backup director.
#[derive(Debug, Clone)]
pub struct SyncReceiver {
    sync_id: u8,
    stats: SyncReceiverStats,
}

impl SyncReceiver {
    /// A receiver for `--syncid sync_id` (0 accepts every sync id).
    pub fn new(sync_id: u8) -> Self {
        SyncReceiver {
            sync_id,
            stats: SyncReceiverStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> SyncReceiverStats {
        self.stats
    }

    /// Decodes a datagram; `None` (counted) when it is refused or carries
    /// another sync id.
    pub fn decode(&mut self, datagram: &[u8]) -> Option<Message> {
        match wire::peek_header(datagram) {
            Err(_) => {
                self.stats.bad_messages += 1;
                return None;
            }
            Ok((id, _, _)) if self.sync_id != 0 && id != self.sync_id => {
                self.stats.other_sync_id += 1;
                return None;
            }
            Ok(_) => {}
        }
        let Ok(msg) = wire::decode(datagram) else {
            self.stats.bad_messages += 1;
            return None;
        };
        self.stats.messages += 1;
        self.stats.bad_records += u64::from(msg.dropped);
        if msg.truncated.is_some() {
            self.stats.truncated += 1;
        }
        Some(msg)
    }

    /// Decodes a datagram and installs its records into `director` at
    /// `now`. Returns how many records were installed (created or updated).
    pub fn handle(&mut self, datagram: &[u8], director: &mut Director, now: u64) -> usize {
        let Some(msg) = self.decode(datagram) else {
            return 0;
        };
        let mut n = 0;
        for c in &msg.conns {
            match director.sync_install(c, now) {
                Ok(crate::director::SyncInstalled::Created) => {
                    self.stats.created += 1;
                    n += 1;
                }
                Ok(crate::director::SyncInstalled::Updated) => {
                    self.stats.updated += 1;
                    n += 1;
                }
                Err(_) => self.stats.refused += 1,
            }
        }
        n
    }
}

#[cfg(test)]
mod tests;
