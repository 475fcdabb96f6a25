//! Connection synchronisation I/O around [`rvs_core::sync`]: the master
//! daemon sends what the director queues ([`Director::drain_sync_updates`]
//! batched by [`SyncSender`]) over UDP, by default to 224.0.0.81:8848 with
//! TTL 1 out of the sync interface; the backup daemon receives on that
//! group and port and installs the records with [`SyncReceiver::handle`].
//! Both may run at once, as in the kernel.
//!
//! rvs extension, resynchronisation ([`ResyncSettings`]): while the master
//! daemon runs, a responder answers full-table requests on the resync port
//! ([`rvs_core::resync::ResyncServer`]); the first time the backup daemon
//! starts, a requester fetches the master's whole table
//! ([`rvs_core::resync::ResyncClient`]) and then opens the ready gate
//! ([`SyncDaemons::ready_gate`]) that holds the VRRP instance back from
//! preempting.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_core::director::Director;
use rvs_core::resync::{
    Outcome, ResyncClient, ResyncClientConfig, ResyncServer, ResyncServerConfig,
};
use rvs_core::sync::{
    SyncConn, SyncReceiver, SyncReceiverStats, SyncSender, SyncSenderConfig, SyncSenderStats,
    SyncSettings,
};
use rvs_wire::resync::{self as resync_wire, Datagram};
use socket2::{Domain, Protocol, Socket, Type};

/// Runs `f` on the data plane's director with the data plane's clock
/// (milliseconds), under whatever lock the data plane uses.
pub type DirectorAccess = Arc<dyn Fn(&mut dyn FnMut(&mut Director, u64)) + Send + Sync>;

/// The kernel's default sync group.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The kernel's default sync port.
pub const DEFAULT_PORT: u16 = 8848;

/// How often the master looks for queued records.
const TICK: Duration = Duration::from_millis(20);

/// Master (sends) or backup (receives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends connection state.
    Master,
    /// Receives and installs connection state.
    Backup,
}

impl Role {
    /// ipvsadm's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// One sync daemon's settings (ipvsadm's `--start-daemon` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemonConfig {
    /// Master or backup.
    pub role: Role,
    /// `--mcast-interface`.
    pub interface: String,
    /// `--syncid` (backup: 0 accepts every id).
    pub sync_id: u8,
    /// `--sync-maxlen`; `None`: from the interface MTU.
    pub maxlen: Option<usize>,
    /// `--mcast-group`; `None`: 224.0.0.81.
    pub group: Option<Ipv4Addr>,
    /// `--mcast-port`; `None`: 8848.
    pub port: Option<u16>,
    /// `--mcast-ttl`; `None`: 1.
    pub ttl: Option<u8>,
    /// rvs: a unicast peer the master sends to instead of the group (the
    /// backup then listens on the port without joining the group).
    pub unicast_peer: Option<Ipv4Addr>,
    /// The director's master-side settings (threshold, period...).
    pub settings: SyncSettings,
    /// rvs: full-table resynchronisation; `None`: off (the kernel's way).
    pub resync: Option<ResyncSettings>,
}

/// rvs resynchronisation settings (`[sync] resync`, `resync_port`,
/// `resync_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncSettings {
    /// UDP port of the requests (default 8849); the answers go back to
    /// the requester's port.
    pub port: u16,
    /// How long a returning director waits for the table before it gives
    /// up and opens the ready gate anyway, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for ResyncSettings {
    fn default() -> Self {
        ResyncSettings {
            port: resync_wire::DEFAULT_PORT,
            timeout_ms: 30_000,
        }
    }
}

impl SyncDaemonConfig {
    /// keepalived/ipvsadm defaults for `role` on `interface`.
    pub fn new(role: Role, interface: &str, sync_id: u8) -> Self {
        SyncDaemonConfig {
            role,
            interface: interface.to_string(),
            sync_id,
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
            unicast_peer: None,
            settings: SyncSettings::default(),
            resync: None,
        }
    }

    /// The `ipvsadm -L --daemon` line (the optional fields only when set).
    pub fn list_line(&self) -> String {
        let mut s = format!(
            "{} sync daemon (mcast={}, syncid={}",
            self.role.name(),
            self.interface,
            self.sync_id
        );
        if let Some(m) = self.maxlen {
            s += &format!(", maxlen={m}");
        }
        if let Some(g) = self.group {
            s += &format!(", group={g}");
        }
        if let Some(p) = self.port {
            s += &format!(", port={p}");
        }
        if let Some(t) = self.ttl {
            s += &format!(", ttl={t}");
        }
        s + ")\n"
    }
}

/// Counters of one daemon.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Datagrams sent (master) or received (backup).
    pub datagrams: AtomicU64,
    /// Records queued (master) or installed (backup).
    pub records: AtomicU64,
    /// Send or receive errors.
    pub errors: AtomicU64,
}

/// Counters over the life of the process, whatever daemons come and go
/// (what `/metrics` shows).
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Sync messages sent (master).
    pub messages_sent: AtomicU64,
    /// Connection records sent (master).
    pub conns_sent: AtomicU64,
    /// Sync messages received and accepted (backup).
    pub messages_received: AtomicU64,
    /// Connection records installed (backup).
    pub conns_received: AtomicU64,
    /// Unix time in milliseconds of the last message sent (0: none yet).
    pub last_sent_unix_ms: AtomicU64,
    /// Unix time in milliseconds of the last message accepted (0: none).
    pub last_received_unix_ms: AtomicU64,
    /// Drops by reason, in the order of [`DROP_REASONS`].
    pub dropped: [AtomicU64; DROP_REASONS.len()],
    /// Resynchronisation requests sent (returning director).
    pub resync_requests_sent: AtomicU64,
    /// Requests repeated because nothing new arrived.
    pub resync_retries: AtomicU64,
    /// Chunks received (returning director).
    pub resync_chunks_received: AtomicU64,
    /// Records installed from them.
    pub resync_conns_received: AtomicU64,
    /// Requests answered (master).
    pub resync_requests_answered: AtomicU64,
    /// Chunks sent (master).
    pub resync_chunks_sent: AtomicU64,
    /// Records put into snapshots (master).
    pub resync_conns_sent: AtomicU64,
    /// Resynchronisations that got the whole table.
    pub resync_complete: AtomicU64,
    /// Resynchronisations that ran out of time.
    pub resync_timed_out: AtomicU64,
    /// Resynchronisations cut short (this director became master first).
    pub resync_stopped: AtomicU64,
    /// Duration of the last resynchronisation in milliseconds.
    pub resync_last_duration_ms: AtomicU64,
    /// Unix time in milliseconds at which the last one ended (0: none).
    pub resync_last_end_unix_ms: AtomicU64,
}

/// Why a sync or resync datagram was dropped, as `/metrics` labels it.
pub const DROP_REASONS: [&str; 10] = [
    "decode_error",
    "sync_id",
    "malformed_tail",
    "bad_record",
    "refused_record",
    "receive_error",
    "send_error",
    "queue_full",
    "unencodable",
    "resync_rate_limited",
];

/// Index of a reason in [`DROP_REASONS`].
#[derive(Debug, Clone, Copy)]
enum DropReason {
    Decode = 0,
    SyncId,
    Malformed,
    BadRecord,
    Refused,
    Receive,
    Send,
    QueueFull,
    Unencodable,
    RateLimited,
}

impl SyncStats {
    fn drop_n(&self, why: DropReason, n: u64) {
        if n > 0 {
            self.dropped[why as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts what a receiver's counters moved by since `before`.
    fn receiver_delta(&self, before: &SyncReceiverStats, after: &SyncReceiverStats) {
        self.drop_n(DropReason::Decode, after.bad_messages - before.bad_messages);
        self.drop_n(
            DropReason::SyncId,
            after.other_sync_id - before.other_sync_id,
        );
        self.drop_n(DropReason::Malformed, after.truncated - before.truncated);
        self.drop_n(
            DropReason::BadRecord,
            after.bad_records - before.bad_records,
        );
        self.drop_n(DropReason::Refused, after.refused - before.refused);
    }

    fn sender_delta(&self, before: &SyncSenderStats, after: &SyncSenderStats) {
        self.drop_n(
            DropReason::QueueFull,
            after.dropped_queue_full - before.dropped_queue_full,
        );
        self.drop_n(
            DropReason::Unencodable,
            (after.dropped_unencodable - before.dropped_unencodable)
                + (after.dropped_short_buffer - before.dropped_short_buffer),
        );
    }

    /// `(reason, count)` of every drop reason.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        DROP_REASONS
            .iter()
            .zip(&self.dropped)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(unix_ms());
    h.finish() as u32
}

struct Running {
    cfg: SyncDaemonConfig,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<SyncCounters>,
}

impl Running {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The sync daemons of one data plane: at most one master and one backup.
pub struct SyncDaemons {
    access: DirectorAccess,
    running: Mutex<Vec<Running>>,
    stats: Arc<SyncStats>,
    /// Opened when the first resynchronisation ends (or at once without
    /// one): the VRRP instance may preempt from then on.
    ready: Arc<AtomicBool>,
    /// Whether the start-up resynchronisation has begun.
    resync_begun: AtomicBool,
    /// Whether a requester runs now.
    asking: Arc<AtomicBool>,
}

impl std::fmt::Debug for SyncDaemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.list())
    }
}

/// Why a daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// One of this role runs already.
    #[error("the {} sync daemon is already running", .0.name())]
    Running(Role),
    /// A socket could not be set up.
    #[error("{0}")]
    Io(io::Error),
}

impl SyncDaemons {
    /// No daemon running yet.
    pub fn new(access: DirectorAccess) -> SyncDaemons {
        SyncDaemons {
            access,
            running: Mutex::new(Vec::new()),
            stats: Arc::new(SyncStats::default()),
            ready: Arc::new(AtomicBool::new(false)),
            resync_begun: AtomicBool::new(false),
            asking: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The counters `/metrics` shows.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// The ready gate: false until the first resynchronisation has ended
    /// (complete, timed out, or cut short); hand it to the VRRP instance
    /// whose preemption waits for the table.
    pub fn ready_gate(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a daemon; an error when one of that role runs already or the
    /// socket cannot be set up (nothing changes then).
    pub fn start(&self, cfg: SyncDaemonConfig) -> Result<(), StartError> {
        let mut running = self.lock();
        if running.iter().any(|r| r.cfg.role == cfg.role) {
            return Err(StartError::Running(cfg.role));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SyncCounters::default());
        let mut threads = Vec::new();
        let spawned = self.spawn(&cfg, &stop, &counters, &mut threads);
        if let Err(e) = spawned {
            stop.store(true, Ordering::SeqCst);
            for t in threads {
                let _ = t.join();
            }
            if cfg.role == Role::Master {
                (self.access)(&mut |d, _| d.set_sync_master(None));
            }
            return Err(StartError::Io(e));
        }
        tracing::info!(line = %cfg.list_line().trim_end(), "sync daemon started");
        running.push(Running {
            cfg,
            stop,
            threads,
            counters,
        });
        Ok(())
    }

    fn spawn(
        &self,
        cfg: &SyncDaemonConfig,
        stop: &Arc<AtomicBool>,
        counters: &Arc<SyncCounters>,
        threads: &mut Vec<JoinHandle<()>>,
    ) -> io::Result<()> {
        let (access, stats) = (self.access.clone(), self.stats.clone());
        match cfg.role {
            Role::Master => {
                let (sock, to, sender) = open_master(cfg)?;
                let responder = match cfg.resync {
                    Some(r) => Some(open_responder(cfg, r)?),
                    None => None,
                };
                let settings = cfg.settings;
                (self.access)(&mut |d, _| d.set_sync_master(Some(settings)));
                let (a, st, c, s) = (
                    access.clone(),
                    stop.clone(),
                    counters.clone(),
                    stats.clone(),
                );
                threads.push(
                    std::thread::Builder::new()
                        .name("rvs-sync-master".into())
                        .spawn(move || master_loop(&a, &sock, to, sender, &st, &c, &s))?,
                );
                if let Some(sock) = responder {
                    let server = ResyncServer::new(
                        ResyncServerConfig {
                            sync_id: cfg.sync_id,
                            maxlen: sender_maxlen(cfg)?,
                            ..ResyncServerConfig::default()
                        },
                        random_u32(),
                    );
                    let stop = stop.clone();
                    threads.push(
                        std::thread::Builder::new()
                            .name("rvs-resync-answer".into())
                            .spawn(move || responder_loop(&access, &sock, server, &stop, &stats))?,
                    );
                }
            }
            Role::Backup => {
                let sock = open_backup(cfg)?;
                let rx = SyncReceiver::new(cfg.sync_id);
                let (a, st, c, s) = (
                    access.clone(),
                    stop.clone(),
                    counters.clone(),
                    stats.clone(),
                );
                threads.push(
                    std::thread::Builder::new()
                        .name("rvs-sync-backup".into())
                        .spawn(move || backup_loop(&a, &sock, rx, &st, &c, &s))?,
                );
                match cfg.resync {
                    Some(_) if !self.resync_begun.swap(true, Ordering::SeqCst) => {
                        threads.push(self.spawn_requester(cfg, stop)?);
                    }
                    Some(_) => {}
                    // Nothing to wait for.
                    None => self.ready.store(true, Ordering::SeqCst),
                }
            }
        }
        Ok(())
    }

    /// A requester thread for the backup daemon `cfg` (which has resync
    /// settings), stopped with it; it opens the ready gate when it ends.
    fn spawn_requester(
        &self,
        cfg: &SyncDaemonConfig,
        stop: &Arc<AtomicBool>,
    ) -> io::Result<JoinHandle<()>> {
        let r = cfg.resync.unwrap_or_default();
        let (sock, to) = open_requester(cfg, r)?;
        let client = ResyncClient::new(
            ResyncClientConfig {
                sync_id: cfg.sync_id,
                timeout_ms: r.timeout_ms,
                ..ResyncClientConfig::default()
            },
            random_u32(),
            0,
        );
        let (access, stats) = (self.access.clone(), self.stats.clone());
        let (stop, ready, asking, sync_id) = (
            stop.clone(),
            self.ready.clone(),
            self.asking.clone(),
            cfg.sync_id,
        );
        self.ready.store(false, Ordering::SeqCst);
        asking.store(true, Ordering::SeqCst);
        std::thread::Builder::new()
            .name("rvs-resync-ask".into())
            .spawn(move || {
                requester_loop(&access, &sock, to, client, sync_id, &stop, &stats);
                asking.store(false, Ordering::SeqCst);
                ready.store(true, Ordering::SeqCst);
            })
    }

    /// Resynchronises again (the VRRP instance left FAULT: sync messages
    /// were missed meanwhile): closes the ready gate and asks the master
    /// for its table through the running backup daemon. Without a backup
    /// daemon with resync settings the gate opens at once; while a request
    /// runs already, that one will open it.
    pub fn resync(&self) {
        if self.asking.load(Ordering::SeqCst) {
            return;
        }
        let mut running = self.lock();
        let Some(backup) = running
            .iter_mut()
            .find(|r| r.cfg.role == Role::Backup && r.cfg.resync.is_some())
        else {
            self.ready.store(true, Ordering::SeqCst);
            return;
        };
        match self.spawn_requester(&backup.cfg, &backup.stop) {
            Ok(t) => backup.threads.push(t),
            Err(e) => {
                tracing::error!(error = %e, "resync: cannot ask the master");
                self.ready.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Stops the daemon of `role`; false when none ran.
    pub fn stop(&self, role: Role) -> bool {
        let mut running = self.lock();
        let Some(i) = running.iter().position(|r| r.cfg.role == role) else {
            return false;
        };
        let mut r = running.remove(i);
        drop(running);
        r.halt();
        if role == Role::Master {
            (self.access)(&mut |d, _| d.set_sync_master(None));
        }
        tracing::info!(role = role.name(), "sync daemon stopped");
        true
    }

    /// Whether a daemon of `role` runs.
    pub fn running(&self, role: Role) -> bool {
        self.lock().iter().any(|r| r.cfg.role == role)
    }

    /// The configuration of every running daemon (master first).
    pub fn configs(&self) -> Vec<SyncDaemonConfig> {
        let mut v: Vec<_> = self.lock().iter().map(|r| r.cfg.clone()).collect();
        v.sort_by_key(|c| c.role == Role::Backup);
        v
    }

    /// `(datagrams, records, errors)` of the daemon of `role`.
    pub fn counters(&self, role: Role) -> Option<(u64, u64, u64)> {
        self.lock().iter().find(|r| r.cfg.role == role).map(|r| {
            let c = &r.counters;
            (
                c.datagrams.load(Ordering::Relaxed),
                c.records.load(Ordering::Relaxed),
                c.errors.load(Ordering::Relaxed),
            )
        })
    }

    /// What `ipvsadm -L --daemon` prints.
    pub fn list(&self) -> String {
        self.configs()
            .iter()
            .map(SyncDaemonConfig::list_line)
            .collect()
    }
}

impl Drop for SyncDaemons {
    fn drop(&mut self) {
        for mut r in self.lock().drain(..) {
            r.halt();
        }
    }
}

fn ctx(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The message size of the master (explicit, or from the interface MTU).
fn sender_maxlen(cfg: &SyncDaemonConfig) -> io::Result<usize> {
    Ok(match cfg.maxlen {
        Some(m) => m,
        None => SyncSenderConfig::maxlen_for_mtu(rvs_sys::iface::mtu(&cfg.interface)?, false),
    })
}

/// The master's and the requester's destination: the unicast peer, else
/// the group.
fn destination(cfg: &SyncDaemonConfig) -> Ipv4Addr {
    cfg.unicast_peer
        .unwrap_or(cfg.group.unwrap_or(DEFAULT_GROUP))
}

/// A UDP socket bound to the sync interface, sending with the sync TTL and
/// without multicast loop.
fn sending_socket(cfg: &SyncDaemonConfig) -> io::Result<Socket> {
    rvs_sys::iface::lookup(&cfg.interface)
        .map_err(|e| ctx(e, &format!("sync interface {}", cfg.interface)))?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // SO_BINDTODEVICE also picks the interface multicast leaves by.
    s.bind_device(Some(cfg.interface.as_bytes()))
        .map_err(|e| ctx(e, "SO_BINDTODEVICE"))?;
    s.set_multicast_ttl_v4(u32::from(cfg.ttl.unwrap_or(1)))?;
    s.set_multicast_loop_v4(false)?;
    Ok(s)
}

fn open_master(cfg: &SyncDaemonConfig) -> io::Result<(Socket, SocketAddr, SyncSender)> {
    let s = sending_socket(cfg)?;
    let port = cfg.port.unwrap_or(DEFAULT_PORT);
    let sender = SyncSender::new(SyncSenderConfig {
        sync_id: cfg.sync_id,
        maxlen: sender_maxlen(cfg)?,
        ..SyncSenderConfig::default()
    });
    Ok((
        s,
        SocketAddr::V4(SocketAddrV4::new(destination(cfg), port)),
        sender,
    ))
}

/// A socket bound to `port` on the sync interface, joined to the group
/// unless the peer is unicast.
fn listening_socket(cfg: &SyncDaemonConfig, port: u16) -> io::Result<Socket> {
    let iface = rvs_sys::iface::lookup(&cfg.interface)
        .map_err(|e| ctx(e, &format!("sync interface {}", cfg.interface)))?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(cfg.interface.as_bytes()))
        .map_err(|e| ctx(e, "SO_BINDTODEVICE"))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
        .map_err(|e| ctx(e, &format!("binding UDP port {port}")))?;
    if cfg.unicast_peer.is_none() {
        let g = cfg.group.unwrap_or(DEFAULT_GROUP);
        s.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(iface.index))
            .map_err(|e| ctx(e, &format!("joining {g}")))?;
    }
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

fn open_backup(cfg: &SyncDaemonConfig) -> io::Result<Socket> {
    listening_socket(cfg, cfg.port.unwrap_or(DEFAULT_PORT))
}

fn open_responder(cfg: &SyncDaemonConfig, r: ResyncSettings) -> io::Result<UdpSocket> {
    let s = listening_socket(cfg, r.port).map_err(|e| ctx(e, "resync"))?;
    // Answers go out of the sync interface; a requester on the link is
    // reached whatever the TTL, one beyond a router needs `ttl`.
    s.set_ttl_v4(u32::from(cfg.ttl.unwrap_or(64)).max(1))?;
    Ok(s.into())
}

fn open_requester(
    cfg: &SyncDaemonConfig,
    r: ResyncSettings,
) -> io::Result<(UdpSocket, SocketAddr)> {
    let s = sending_socket(cfg).map_err(|e| ctx(e, "resync"))?;
    // Room for a window of answers (the kernel may cap it at rmem_max).
    let _ = s.set_recv_buffer_size(1 << 20);
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).into())
        .map_err(|e| ctx(e, "resync: binding a UDP port"))?;
    s.set_read_timeout(Some(Duration::from_millis(20)))?;
    Ok((
        s.into(),
        SocketAddr::V4(SocketAddrV4::new(destination(cfg), r.port)),
    ))
}

fn master_loop(
    access: &DirectorAccess,
    sock: &Socket,
    to: SocketAddr,
    mut sender: SyncSender,
    stop: &AtomicBool,
    counters: &SyncCounters,
    stats: &SyncStats,
) {
    let to = to.into();
    let mut recs: Vec<SyncConn> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let mut clock = 0;
    let mut director_dropped = 0;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut dropped_now = 0;
        access(&mut |d, now| {
            d.drain_sync_updates(&mut recs);
            dropped_now = d.sync_updates_dropped();
            clock = now;
        });
        // The director's own queue overflowed.
        stats.drop_n(
            DropReason::QueueFull,
            dropped_now.saturating_sub(director_dropped),
        );
        director_dropped = dropped_now;
        counters
            .records
            .fetch_add(recs.len() as u64, Ordering::Relaxed);
        let before = sender.stats();
        for r in recs.drain(..) {
            sender.push(clock, &r);
        }
        if stopping {
            sender.flush();
        }
        while let Some(n) = sender.poll_datagram(clock, &mut buf) {
            match sock.send_to(&buf[..n], &to) {
                Ok(_) => {
                    counters.datagrams.fetch_add(1, Ordering::Relaxed);
                    stats.messages_sent.fetch_add(1, Ordering::Relaxed);
                    let conns = rvs_wire::sync::peek_header(&buf[..n]).map_or(0, |h| h.2);
                    stats
                        .conns_sent
                        .fetch_add(u64::from(conns), Ordering::Relaxed);
                    stats.last_sent_unix_ms.store(unix_ms(), Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sync send");
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    stats.drop_n(DropReason::Send, 1);
                }
            };
        }
        stats.sender_delta(&before, &sender.stats());
        if stopping {
            return;
        }
        std::thread::sleep(TICK);
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn backup_loop(
    access: &DirectorAccess,
    sock: &Socket,
    mut rx: SyncReceiver,
    stop: &AtomicBool,
    counters: &SyncCounters,
    stats: &SyncStats,
) {
    let mut buf = vec![0u8; 65_536];
    let mut s = sock;
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(n) => {
                counters.datagrams.fetch_add(1, Ordering::Relaxed);
                let before = rx.stats();
                let mut installed = 0;
                access(&mut |d, now| installed = rx.handle(&buf[..n], d, now));
                let after = rx.stats();
                stats.receiver_delta(&before, &after);
                if after.messages > before.messages {
                    stats.messages_received.fetch_add(1, Ordering::Relaxed);
                    stats
                        .last_received_unix_ms
                        .store(unix_ms(), Ordering::Relaxed);
                }
                stats
                    .conns_received
                    .fetch_add(installed as u64, Ordering::Relaxed);
                counters
                    .records
                    .fetch_add(installed as u64, Ordering::Relaxed);
            }
            Err(e) if transient(&e) => {}
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                stats.drop_n(DropReason::Receive, 1);
                tracing::warn!(error = %e, "sync receive");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The master's side: answers every request with chunks of a snapshot of
/// the table.
fn responder_loop(
    access: &DirectorAccess,
    sock: &UdpSocket,
    mut server: ResyncServer,
    stop: &AtomicBool,
    stats: &SyncStats,
) {
    let mut buf = [0u8; 2048];
    let epoch = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if transient(&e) => continue,
            Err(e) => {
                stats.drop_n(DropReason::Receive, 1);
                tracing::warn!(error = %e, "resync receive");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = from;
        let req = match resync_wire::decode(&buf[..n]) {
            Ok(Datagram::Request(r)) => r,
            Ok(Datagram::Answer(_)) | Err(_) => {
                stats.drop_n(DropReason::Decode, 1);
                continue;
            }
        };
        let now = epoch.elapsed().as_millis() as u64;
        let before = server.stats();
        let answers = server.handle_request(now, peer, &req, || {
            let mut v = Vec::new();
            access(&mut |d, _| v = d.sync_snapshot());
            v
        });
        let after = server.stats();
        if after.other_sync_id > before.other_sync_id {
            stats.drop_n(DropReason::SyncId, 1);
            continue;
        }
        if after.rate_limited > before.rate_limited {
            stats.drop_n(DropReason::RateLimited, 1);
            continue;
        }
        stats
            .resync_requests_answered
            .fetch_add(1, Ordering::Relaxed);
        stats
            .resync_conns_sent
            .fetch_add(after.records - before.records, Ordering::Relaxed);
        stats.drop_n(
            DropReason::Unencodable,
            after.unencodable - before.unencodable,
        );
        if after.snapshots > before.snapshots {
            tracing::info!(
                %peer,
                records = after.records - before.records,
                chunks = answers.len(),
                "resync: snapshot taken for a returning director"
            );
        }
        for a in &answers {
            match sock.send_to(a, from) {
                Ok(_) => {
                    stats.resync_chunks_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.drop_n(DropReason::Send, 1);
                    tracing::debug!(error = %e, %peer, "resync send");
                }
            }
        }
    }
}

/// The returning director's side: asks until it holds the whole table, the
/// timeout passes, or the daemon stops.
fn requester_loop(
    access: &DirectorAccess,
    sock: &UdpSocket,
    to: SocketAddr,
    mut client: ResyncClient,
    sync_id: u8,
    stop: &AtomicBool,
    stats: &SyncStats,
) {
    let epoch = std::time::Instant::now();
    let now = || epoch.elapsed().as_millis() as u64;
    let mut rx = SyncReceiver::new(sync_id);
    let mut buf = vec![0u8; 65_536];
    tracing::info!(%to, "resync: asking the master for its table");
    let mut last = client.stats();
    while client.outcome().is_none() {
        if stop.load(Ordering::SeqCst) {
            stats.resync_stopped.fetch_add(1, Ordering::Relaxed);
            stats
                .resync_last_end_unix_ms
                .store(unix_ms(), Ordering::Relaxed);
            tracing::info!("resync: stopped before the table was complete (now master?)");
            return;
        }
        if let Some(req) = client.poll_request(now())
            && let Err(e) = sock.send_to(&req.to_bytes(), to)
        {
            stats.drop_n(DropReason::Send, 1);
            tracing::debug!(error = %e, "resync request");
        }
        match sock.recv(&mut buf) {
            Ok(n) => match resync_wire::decode(&buf[..n]) {
                Ok(Datagram::Answer(a)) => {
                    if let Some(p) = client.handle_answer(now(), &a) {
                        stats.resync_chunks_received.fetch_add(1, Ordering::Relaxed);
                        if !p.is_empty() {
                            let before = rx.stats();
                            let mut installed = 0;
                            access(&mut |d, t| installed = rx.handle(p, d, t));
                            stats.receiver_delta(&before, &rx.stats());
                            stats
                                .resync_conns_received
                                .fetch_add(installed as u64, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Datagram::Request(_)) | Err(_) => stats.drop_n(DropReason::Decode, 1),
            },
            Err(e) if transient(&e) => {}
            Err(e) => {
                stats.drop_n(DropReason::Receive, 1);
                tracing::debug!(error = %e, "resync receive");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        client.handle_timeout(now());
        let st = client.stats();
        stats
            .resync_requests_sent
            .fetch_add(st.requests - last.requests, Ordering::Relaxed);
        stats
            .resync_retries
            .fetch_add(st.retries - last.retries, Ordering::Relaxed);
        last = st;
    }
    let end = unix_ms();
    stats.resync_last_end_unix_ms.store(end, Ordering::Relaxed);
    let installed = stats.resync_conns_received.load(Ordering::Relaxed);
    match client.outcome() {
        Some(Outcome::Complete { chunks, elapsed_ms }) => {
            stats.resync_complete.fetch_add(1, Ordering::Relaxed);
            stats
                .resync_last_duration_ms
                .store(elapsed_ms, Ordering::Relaxed);
            tracing::info!(
                chunks,
                records = installed,
                elapsed_ms,
                "resync complete: the master's table is installed"
            );
        }
        Some(Outcome::TimedOut { chunks, total }) => {
            stats.resync_timed_out.fetch_add(1, Ordering::Relaxed);
            stats
                .resync_last_duration_ms
                .store(now(), Ordering::Relaxed);
            tracing::warn!(
                chunks,
                total = ?total,
                records = installed,
                "resync timed out: going on with the table as it is"
            );
        }
        None => {}
    }
}
