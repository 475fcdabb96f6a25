//! The userspace L4 proxy data plane of `rvsd`.
//!
//! [`Engine`] runs virtual services as a proxy: for a TCP service it
//! accepts connections on VIP:port, asks the service's
//! [`Director`](rvs_core::director::Director) for a real server, connects
//! to it and relays bytes both ways; for a UDP service it keeps a session
//! (a connected socket towards the server) per client and sends the
//! replies back from the VIP.
//!
//! # Design
//!
//! - The service table is an [`arc_swap::ArcSwap`] map: the per-connection
//!   path never takes a global lock. Each service has its *own* director,
//!   holding just that service, behind its own mutex: scheduling order
//!   (rr, wrr, ...) is exact across worker threads, and services never
//!   contend with each other.
//! - The director is fed synthetic TCP events so that its connection
//!   states, ActiveConn/InActConn, timeouts and statistics are true:
//!   accept → inbound SYN; connected → outbound SYN+ACK, inbound ACK
//!   (ESTABLISHED); each read from the client → one inbound ACK "packet"
//!   carrying the bytes read; each read from the server → one outbound ACK
//!   "packet"; client EOF → inbound FIN; server EOF → outbound FIN; both
//!   closed → the client's last ACK; an error or a forced close → inbound
//!   RST. So for a proxied connection a "packet" in the statistics is one
//!   read of up to 64 KiB, or one splice of up to a pipe's capacity (256
//!   KiB), i.e. what the relay moved in one go; bytes are payload bytes
//!   (no headers).
//! - A periodic tick per service (every second) advances the director's
//!   clock: a relay whose director entry expired (idle timeout from the
//!   tcp/tcpfin/udp settings) is closed, and with `expire_nodest_conn` on
//!   a relay whose server was deleted is closed at once (the deletion
//!   itself also runs a sweep).
//!
//! # Relaying TCP
//!
//! Each direction of a proxied connection waits for its source to become
//! readable holding nothing, then leases a 64 KiB buffer
//! ([`RelayMode::Buffered`]) or a pipe ([`RelayMode::Splice`], splice(2)
//! socket → pipe → socket with `SPLICE_F_NONBLOCK | SPLICE_F_MOVE`, driven
//! by tokio readiness) from a per-thread pool of at most 16, moves what is
//! there, and gives the lease back once the source would block and all
//! of it is written. Idle connections therefore hold no buffers and no
//! pipe descriptors: the descriptor budget is two per connection plus
//! two per pipe in use, and pipes exist only for bursts in flight. Where
//! no pipe can be made (descriptor limit) a burst is copied; where the
//! kernel refuses to splice, the direction is copied from then on. End
//! of file on one side is passed on as shutdown(SHUT_WR) of the other
//! once everything before it is written.
//!
//! Resident memory per idle proxied connection, 2 000 connections each
//! having carried one request (`cargo run --release -p rvs-proxy
//! --example idle_rss -- 2000 --exchange --relay MODE`; VmRSS of the
//! engine's process, clients and backend in a child): 19.5 KiB with
//! the former relay (two 64 KiB buffers allocated per connection, their
//! touched pages resident), about 3.4 KiB now on either path.
//!
//! [`RelayMode::Auto`] is the default (set another with
//! [`Engine::set_relay_mode`]): it copies until a read fills the 64 KiB
//! buffer, then splices that direction.
//! Measured with `cargo run --release -p rvs-proxy --example relay_bench
//! -- 5 2` on a 2-core machine that other builds were loading (load
//! average about 10), so wall-clock rates are noisy; the engine's own CPU
//! time per unit moved is the steadier figure. Medians of 5 alternating
//! runs:
//!
//! | relay | bulk Gbit/s | engine CPU s/GiB | keep-alive req/s | engine CPU µs/req | new connection req/s | engine CPU µs/req |
//! |---|---|---|---|---|---|---|
//! | Buffered | 6.18 | 0.820 | 20 768 | 33.7 | 4 127 | 146.7 |
//! | Splice | 8.59 | 0.390 | 20 873 | 35.5 | 4 185 | 151.3 |
//! | Auto | 8.20 | 0.460 | 22 042 | 33.4 | 3 928 | 154.9 |
//!
//! (bulk: one connection sending 1 GiB; keep-alive: 50 connections of
//! 64-byte requests and 128-byte answers for 3 s; new connection: the
//! same with a connection per request.) An earlier 2 GiB set without
//! Auto gave Buffered 0.82 and Splice 0.42 s/GiB, and 26.1 against 30.3
//! µs per keep-alive request, 131.5 against 151.8 per new connection.
//!
//! Splice halves the engine's CPU per GiB of bulk transfer, but small
//! request/answer turns cost more through a pipe (two splices and a pipe
//! lease per turn against a read and a send): Auto keeps the copy for
//! those and splices bulk, close to the best of both. Differences of
//! about 5% between runs of the same code are noise on this machine.
//!
//! # Connect failures
//!
//! A refused or timed-out connect is counted against the server
//! ([`Engine::connect_failures`]), reported to the director as the
//! server's RST (outbound; the entry goes to CLOSE), and the same client tuple is offered
//! again as a SYN: the core's port-reuse rule reschedules a SYN on a CLOSE
//! entry, so the scheduler picks again (a failed server keeps its place in
//! rr order, so another one comes next). This is tried up to
//! `connect_retries` more times; if the scheduler picks a server that
//! already failed for this client (a persistence template, a hash
//! scheduler, or a one-server service), the client connection is closed.
//!
//! # Passive health detection
//!
//! [`Engine::set_connect_observer`] registers a callback that hears about
//! each failed connect to a server, and about the first successful one
//! after a run of failures (a success with no failure before it costs one
//! atomic load and is not reported). rvsd's health runtime counts these
//! runs to mark a server down at once (`passive_fall`). UDP sessions are
//! not observed: an unconnected datagram has no connect to fail.
//!
//! # Deleted servers
//!
//! The kernel can stall a deleted server's packets; a proxy cannot stall a
//! socket. With `expire_nodest_conn` off, relays to a deleted server go on
//! until the connection closes or its director entry expires (the core no
//! longer refreshes the timer of a connection whose server is gone, so it
//! lives at most one tcp timeout after its last refresh); with it on they
//! are closed at once.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod control;
pub mod proxy_protocol;
mod relay;
mod tcp;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rvs_config::ProxySettings;
use rvs_config::spec::ProxyProtocol;
use rvs_core::director::{ConnRef, Director, DirectorConfig};
use rvs_core::model::{DestConfig, Protocol, ServiceConfig, ServiceKey, Timeouts};
use tokio_util::sync::CancellationToken;

pub use control::{command_of, refuse_unsupported};
pub use relay::RelayMode;

/// A non-blocking socket bound to a service address: SO_REUSEPORT so that
/// several listeners share the port and a re-added service can bind while
/// the old one drains, optional IP_FREEBIND for a VIP not yet up, and
/// IPv6-only for IPv6 addresses.
pub(crate) fn service_socket(
    addr: std::net::SocketAddr,
    ty: socket2::Type,
    freebind: bool,
) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if freebind {
        match addr {
            std::net::SocketAddr::V4(_) => s.set_freebind_v4(true)?,
            std::net::SocketAddr::V6(_) => s.set_freebind_v6(true)?,
        }
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Milliseconds on the clock every director of this process runs on.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How an [`Engine`] runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `[proxy]` settings (connect timeout and retries, listener threads,
    /// freebind).
    pub proxy: ProxySettings,
    /// How each service's director is built (sysctls, capacity, hash key,
    /// seed).
    pub director: DirectorConfig,
    /// Initial `--set` timeouts.
    pub timeouts: Timeouts,
    /// Period of the per-service expiry tick (1000 ms in the daemon).
    pub tick: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            proxy: ProxySettings::default(),
            director: DirectorConfig::default(),
            timeouts: Timeouts::default(),
            tick: Duration::from_secs(1),
        }
    }
}

/// The running proxy data plane: services, listeners, relays. Cheap to
/// clone (a handle).
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

type Table = HashMap<ServiceKey, Arc<Svc>>;

#[derive(Debug)]
struct Inner {
    cfg: EngineConfig,
    services: ArcSwap<Table>,
    /// Serialises control operations (never taken on the data path).
    ctl: Mutex<CtlState>,
    /// Cancelled on shutdown: every listener stops accepting.
    stopping: CancellationToken,
    /// Live TCP relays and UDP sessions, all services.
    active: AtomicUsize,
    /// [`RelayMode`] code for relays that start from now on.
    relay: AtomicU8,
    rt: tokio::runtime::Handle,
    observer: ObserverSlot,
}

/// Hears the result of connects to real servers: `(service, server, ok)`.
/// Called on the data path; it must not block.
pub type ConnectObserver = Arc<dyn Fn(ServiceKey, SocketAddr, bool) + Send + Sync>;

#[derive(Default)]
struct ObserverSlot(OnceLock<ConnectObserver>);

impl std::fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ObserverSlot(set)"
        } else {
            "ObserverSlot(none)"
        })
    }
}

impl Inner {
    fn relay_mode(&self) -> RelayMode {
        RelayMode::from_code(self.relay.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct CtlState {
    timeouts: Timeouts,
    next_seq: u64,
    proxy_protocols: HashMap<ServiceKey, ProxyProtocol>,
}

/// One running service.
#[derive(Debug)]
struct Svc {
    key: ServiceKey,
    /// Creation order, for listings.
    seq: u64,
    director: Mutex<Director>,
    proxy_protocol: AtomicU8,
    /// Cancelled when the service is deleted: its listeners stop; its
    /// relays drain.
    stop: CancellationToken,
    relays: Mutex<HashMap<u64, Tracked>>,
    next_relay: AtomicU64,
    failures: Mutex<HashMap<(IpAddr, u16), u64>>,
    /// Servers whose last connect failed (reported once they succeed).
    failing: Mutex<std::collections::HashSet<(IpAddr, u16)>>,
    /// `failing.len()`, read without the lock on every successful connect.
    failing_count: AtomicUsize,
}

/// A relay or UDP session as the expiry tick sees it.
#[derive(Debug)]
struct Tracked {
    proto: Protocol,
    client: SocketAddr,
    /// The director entry, when the relay follows one (a one-packet UDP
    /// session follows none and ends on its own idle timer).
    conn: Option<ConnRef>,
    dest: (IpAddr, u16),
    kill: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a director lock leaves it consistent enough to
    // keep serving; do not cascade the panic into every relay.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Svc {
    fn vip(&self) -> SocketAddr {
        match self.key {
            ServiceKey::Addr { addr, port, .. } => SocketAddr::new(addr, port),
            ServiceKey::FwMark { .. } => unreachable!("fwmark services are refused"),
        }
    }

    fn proxy_protocol(&self) -> ProxyProtocol {
        match self.proxy_protocol.load(Ordering::Relaxed) {
            1 => ProxyProtocol::V1,
            2 => ProxyProtocol::V2,
            _ => ProxyProtocol::Off,
        }
    }

    fn track(&self, t: Tracked) -> u64 {
        let id = self.next_relay.fetch_add(1, Ordering::Relaxed);
        lock(&self.relays).insert(id, t);
        id
    }

    fn untrack(&self, id: u64) {
        lock(&self.relays).remove(&id);
    }

    fn count_failure(&self, inner: &Inner, dest: (IpAddr, u16)) {
        *lock(&self.failures).entry(dest).or_default() += 1;
        if let Some(obs) = inner.observer.0.get() {
            if lock(&self.failing).insert(dest) {
                self.failing_count.fetch_add(1, Ordering::Relaxed);
            }
            obs(self.key, SocketAddr::from(dest), false);
        }
    }

    fn count_success(&self, inner: &Inner, dest: (IpAddr, u16)) {
        if self.failing_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        if lock(&self.failing).remove(&dest) {
            self.failing_count.fetch_sub(1, Ordering::Relaxed);
            if let Some(obs) = inner.observer.0.get() {
                obs(self.key, SocketAddr::from(dest), true);
            }
        }
    }

    /// Advances the director and closes the relays whose entry expired,
    /// or whose server is gone while `expire_nodest_conn` is on.
    fn sweep(&self) {
        let vip = self.vip();
        let mut d = lock(&self.director);
        d.advance(now_ms());
        let nodest = d.sysctls().expire_nodest_conn;
        let dests: Vec<(IpAddr, u16)> = if nodest {
            d.service(&self.key)
                .map(|s| {
                    s.dests
                        .iter()
                        .map(|x| (x.config.addr, x.config.port))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let relays = lock(&self.relays);
        for t in relays.values() {
            let expired = t.conn.is_some_and(|c| {
                d.lookup(
                    t.proto,
                    (t.client.ip(), t.client.port()),
                    (vip.ip(), vip.port()),
                ) != Some(c)
            });
            let orphan = nodest && !dests.contains(&t.dest);
            if expired || orphan {
                t.kill.cancel();
            }
        }
    }
}

impl Engine {
    /// An engine with no services. Must be called inside a tokio runtime
    /// (its tasks are spawned on it).
    pub fn new(cfg: EngineConfig) -> Engine {
        let timeouts = cfg.timeouts;
        Engine {
            inner: Arc::new(Inner {
                cfg,
                services: ArcSwap::from_pointee(Table::new()),
                ctl: Mutex::new(CtlState {
                    timeouts,
                    next_seq: 0,
                    proxy_protocols: HashMap::new(),
                }),
                stopping: CancellationToken::new(),
                active: AtomicUsize::new(0),
                relay: AtomicU8::new(DEFAULT_RELAY.code()),
                rt: tokio::runtime::Handle::current(),
                observer: ObserverSlot::default(),
            }),
        }
    }

    /// Registers the connect observer (passive health detection; see the
    /// crate documentation). Only the first registration counts; returns
    /// whether this one did.
    pub fn set_connect_observer(&self, observer: ConnectObserver) -> bool {
        self.inner.observer.0.set(observer).is_ok()
    }

    /// Chooses how relays that start from now on move bytes (default
    /// [`RelayMode::Auto`]; see the crate documentation).
    pub fn set_relay_mode(&self, mode: RelayMode) {
        self.inner.relay.store(mode.code(), Ordering::Relaxed);
    }

    /// How new relays move bytes.
    pub fn relay_mode(&self) -> RelayMode {
        self.inner.relay_mode()
    }

    /// Sets the PROXY protocol header sent to the servers of a service
    /// (now, if it runs, and whenever it is added later).
    pub fn set_proxy_protocol(&self, key: ServiceKey, pp: ProxyProtocol) {
        lock(&self.inner.ctl).proxy_protocols.insert(key, pp);
        if let Some(s) = self.inner.services.load().get(&key) {
            s.proxy_protocol.store(pp_code(pp), Ordering::Relaxed);
        }
    }

    /// Adds services and their servers, all or nothing.
    pub fn load(
        &self,
        services: &[(ServiceConfig, Vec<DestConfig>)],
    ) -> Result<(), rvs_api::ControlError> {
        let mut cmds = Vec::new();
        for (s, dests) in services {
            cmds.push(rvs_ipvsadm::Command::AddService(s.clone()));
            for d in dests {
                cmds.push(rvs_ipvsadm::Command::AddDest {
                    service: s.key,
                    dest: *d,
                    method: rvs_ipvsadm::MethodChoice::Named,
                });
            }
        }
        rvs_api::Control::apply(self, &cmds)
    }

    /// The running rules (services in creation order, servers oldest
    /// first), as [`rvs_config::diff`] takes them.
    pub fn rules(&self) -> Vec<(ServiceConfig, Vec<DestConfig>)> {
        rvs_api::Control::services(self)
            .into_iter()
            .map(|s| {
                let dests = s.dests.iter().rev().map(|d| d.config).collect();
                (s.config, dests)
            })
            .collect()
    }

    /// Applies configuration diff operations, all or nothing.
    pub fn apply_ops(&self, ops: &[rvs_config::Op]) -> Result<(), rvs_api::ControlError> {
        let cmds: Vec<_> = ops.iter().map(command_of).collect();
        rvs_api::Control::apply(self, &cmds)
    }

    /// Stops every listener (no new connections or sessions); relays go on.
    pub fn shutdown(&self) {
        self.inner.stopping.cancel();
    }

    /// Live TCP relays and UDP sessions.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Failed connects per service and server, since the service was added.
    pub fn connect_failures(&self) -> Vec<(ServiceKey, IpAddr, u16, u64)> {
        let mut out = Vec::new();
        for s in self.sorted() {
            for (&(a, p), &n) in lock(&s.failures).iter() {
                out.push((s.key, a, p, n));
            }
        }
        out
    }

    /// Runs the expiry sweep of every service now (tests and control
    /// changes use it; the tick does it every second).
    pub fn sweep(&self) {
        for s in self.inner.services.load().values() {
            s.sweep();
        }
    }

    fn sorted(&self) -> Vec<Arc<Svc>> {
        let mut v: Vec<Arc<Svc>> = self.inner.services.load().values().cloned().collect();
        v.sort_by_key(|s| s.seq);
        v
    }
}

/// The relay new engines start with, chosen by measurement (crate docs).
const DEFAULT_RELAY: RelayMode = RelayMode::Auto;

fn pp_code(pp: ProxyProtocol) -> u8 {
    match pp {
        ProxyProtocol::Off => 0,
        ProxyProtocol::V1 => 1,
        ProxyProtocol::V2 => 2,
    }
}

/// Counts a live relay or session for as long as it is held.
struct ActiveGuard(Arc<Inner>);

impl ActiveGuard {
    fn new(inner: &Arc<Inner>) -> ActiveGuard {
        inner.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(inner.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The per-service tick: runs while the service is in the table or still
/// has relays draining.
async fn tick(inner: Arc<Inner>, svc: Arc<Svc>) {
    let mut iv = tokio::time::interval(inner.cfg.tick);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        svc.sweep();
        if svc.stop.is_cancelled() && lock(&svc.relays).is_empty() {
            break;
        }
    }
}
