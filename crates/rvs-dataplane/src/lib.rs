//! The packet data plane of `rvsd`: LVS-NAT, LVS-DR and LVS-TUN on raw
//! frames.
//!
//! [`Dataplane::start`] opens, for each worker thread and each interface,
//! an AF_PACKET socket with memory-mapped rings ([`rvs_sys::packet`];
//! TPACKET_V2 frame rings by default, which hand each frame over at once
//! instead of waiting for a block to fill or for the block timer); the
//! sockets of one interface form one fanout group (by flow hash), so each
//! frame reaches one worker. A worker waits on its sockets, takes a
//! receive batch (the frames ready), hands each frame to the
//! [`rvs_forward::Forwarder`], which writes the frame to send straight
//! into a free slot of the transmit ring the previous frame went out on
//! (a frame for another interface is copied to that interface's ring), and
//! flushes every transmit ring once per batch.
//!
//! That is the default backend, [`Backend::AfPacket`]. With the `xdp`
//! cargo feature, [`Backend::AfXdp`] runs the same forwarding over AF_XDP
//! sockets instead: an XDP program redirects to them only the frames the
//! data plane owns, and the kernel keeps the rest (see the `xdp` module).
//! Both backends share the per-frame forwarding (`forward_one!`).
//!
//! Around the workers:
//! - [`claim`]: an nftables table that keeps the kernel from answering or
//!   forwarding what the data plane handles (created at start, rewritten
//!   on every rule change, deleted at stop);
//! - [`neigh`]: the neighbour and route view the forwarder asks, kept by a
//!   resolver thread; every real server is resolved as soon as it is
//!   configured;
//! - the [`rvs_api::Control`] implementation, so that the control API and
//!   `rvsadm` work unchanged: the same [`rvs_api::DirectorControl`] as a
//!   single-director plane, with ipvsadm's default method (`-g`, direct
//!   routing) for servers whose command names none.
//!
//! # One connection table, shared
//!
//! All workers share one forwarder (director, connection table,
//! counters) behind a mutex, taken once per receive block rather than per
//! frame. The kernel's flow hash puts the two directions of a NAT flow
//! (client→VIP and server→client) on different sockets in general, and a
//! per-worker table would miss the replies; a shared table makes every
//! method correct with any fanout, keeps scheduling order (rr, wrr) exact
//! across workers, and keeps the listing's statistics whole. The cost is
//! that forwarding itself is serialised: workers overlap only in ring
//! I/O. Per-worker shards for DR/TUN (exact: no return path) and a
//! client-side `PACKET_FANOUT_EBPF` hash for NAT are the way to scale
//! past that, once measured.
//!
//! # Frames it leaves alone
//!
//! VLAN-tagged frames (the kernel strips the tag into the ring header;
//! forwarding the bare frame would move it to the untagged network) are
//! counted and not forwarded. So are frames addressed to another host's
//! MAC, which a bridge floods to every port while it does not know where
//! that MAC is (after the other director of a pair died, for one): the
//! kernel would not route them, and a backup director that forwarded
//! them would act on traffic it does not own. Frames truncated by the ring (longer than
//! a 2 KiB receive slot, or a block with V3 rings) and frames too long
//! for a transmit slot (GSO/GRO super-frames: turn those offloads off on
//! the interfaces) are counted and dropped.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod claim;
pub mod neigh;
#[cfg(feature = "xdp")]
pub mod xdp;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_api::{Control, ControlError, DirectorControl, HoldsDirector};
use rvs_core::director::{ConnSnapshot, Director, ServiceSnapshot};
use rvs_core::model::{Forward, Timeouts};
use rvs_forward::{Forwarder, ForwarderConfig, RxMeta, Verdict};
use rvs_ipvsadm::Command;
use rvs_sys::packet::{FanoutMode, PacketSocket, RingConfig};

use crate::claim::{ClaimKeeper, ClaimSpec};
use crate::neigh::{NeighbourTable, Port};

/// Milliseconds on the data plane's clock (monotonic, from first use).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How frames get in and out of the data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// AF_PACKET sockets with memory-mapped rings (the default): receive
    /// copies of every frame, with the nftables claim silencing the
    /// kernel.
    #[default]
    AfPacket,
    /// AF_XDP sockets fed by an XDP program that redirects only the data
    /// plane's frames (needs the `xdp` cargo feature; see [`xdp`] when
    /// built with it).
    AfXdp,
}

impl Backend {
    /// The name used on the command line and in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Backend::AfPacket => "af_packet",
            Backend::AfXdp => "af_xdp",
        }
    }

    /// Whether this build has the backend.
    pub fn available(self) -> bool {
        match self {
            Backend::AfPacket => true,
            Backend::AfXdp => cfg!(feature = "xdp"),
        }
    }
}

/// How a [`Dataplane`] runs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// How frames get in and out.
    pub backend: Backend,
    /// Interfaces to receive and send on.
    pub interfaces: Vec<String>,
    /// Worker threads (0: one per CPU). With [`Backend::AfXdp`], worker `i`
    /// serves receive queue `i` of every interface, so this is the number
    /// of queues served (0: one; a veth has one queue).
    pub workers: usize,
    /// Names the nftables table (`rvs_<instance>`).
    pub instance: String,
    /// The forwarder's setup (director included).
    pub forwarder: ForwarderConfig,
    /// Initial `--set` timeouts.
    pub timeouts: Timeouts,
    /// Ring sizes of every socket ([`Backend::AfPacket`]).
    pub rings: RingConfig,
    /// UMEM chunk size and ring entries of every AF_XDP socket
    /// ([`Backend::AfXdp`]).
    #[cfg(feature = "xdp")]
    pub xsk: rvs_sys::xsk::XskConfig,
    /// Install the nftables claim (off only for tests that check what the
    /// kernel does without it).
    pub claim: bool,
    /// Microseconds a worker keeps checking its rings after its last frame
    /// before it sleeps in `poll` (0: sleep at once). A frame that arrives
    /// within that time is taken without a wake-up, which shortens
    /// request/response times, at the price of that much CPU time after
    /// every batch when traffic is sparse.
    pub busy_poll_us: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            backend: Backend::AfPacket,
            interfaces: Vec::new(),
            workers: 0,
            instance: format!("{}", std::process::id()),
            forwarder: ForwarderConfig::default(),
            timeouts: Timeouts::default(),
            rings: RingConfig::default(),
            #[cfg(feature = "xdp")]
            xsk: rvs_sys::xsk::XskConfig::default(),
            claim: true,
            busy_poll_us: 0,
        }
    }
}

/// The shared forwarding state (see the crate docs).
#[derive(Debug)]
pub struct Shard(pub Forwarder);

impl HoldsDirector for Shard {
    fn director_mut(&mut self) -> &mut Director {
        self.0.director_mut()
    }
}

/// Counters of the I/O around the forwarder, all workers together.
#[derive(Debug, Default)]
struct IoCounters {
    rx_frames: AtomicU64,
    rx_blocks: AtomicU64,
    tx_frames: AtomicU64,
    tx_ring_full: AtomicU64,
    tx_too_big: AtomicU64,
    rx_truncated: AtomicU64,
    vlan_skipped: AtomicU64,
    other_host: AtomicU64,
    ring_drops: AtomicU64,
    tx_errors: AtomicU64,
}

/// A snapshot of the data plane's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataplaneCounters {
    /// The forwarder's frame counters (verdicts, drops by reason).
    pub forward: rvs_forward::Counters,
    /// Frames read from the receive rings.
    pub rx_frames: u64,
    /// Receive blocks (batches) read.
    pub rx_blocks: u64,
    /// Frames queued on the transmit rings.
    pub tx_frames: u64,
    /// Frames dropped because a transmit ring was full.
    pub tx_ring_full: u64,
    /// Frames dropped because they exceed a transmit slot.
    pub tx_too_big: u64,
    /// Frames dropped because the receive ring truncated them.
    pub rx_truncated: u64,
    /// VLAN-tagged frames not forwarded.
    pub vlan_skipped: u64,
    /// Frames addressed to another host's MAC, left alone.
    pub other_host: u64,
    /// Frames the kernel dropped for want of receive ring space.
    pub ring_drops: u64,
    /// Failed transmit kicks.
    pub tx_errors: u64,
}

#[derive(Debug)]
struct Inner {
    control: DirectorControl<Shard>,
    neigh: NeighbourTable,
    claim: Mutex<Option<ClaimKeeper>>,
    /// The XDP programs and their claim map ([`Backend::AfXdp`]).
    #[cfg(feature = "xdp")]
    xdp: Option<Mutex<xdp::XdpState>>,
    interfaces: Vec<String>,
    io: IoCounters,
    stop: AtomicBool,
    last_advance: AtomicU64,
}

/// The running packet data plane. Cheap to clone (a handle).
#[derive(Debug, Clone)]
pub struct Dataplane {
    inner: Arc<Inner>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn err(status: u16, message: impl Into<String>) -> ControlError {
    ControlError {
        status,
        message: message.into(),
    }
}

impl Dataplane {
    /// Opens every socket, installs the claim and starts the workers and
    /// the neighbour resolver. Needs CAP_NET_RAW and CAP_NET_ADMIN.
    pub fn start(cfg: DataplaneConfig) -> io::Result<Dataplane> {
        if cfg.interfaces.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the packet data plane needs at least one interface",
            ));
        }
        let ports = cfg
            .interfaces
            .iter()
            .map(|i| Port::lookup(i))
            .collect::<io::Result<Vec<_>>>()?;
        if !cfg.backend.available() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the {} backend is not in this build: rebuild with the `xdp` cargo feature \
                     (cargo build --release -p rvsd --features xdp)",
                    cfg.backend.name()
                ),
            ));
        }
        let workers = if cfg.workers == 0 {
            match cfg.backend {
                Backend::AfPacket => std::thread::available_parallelism().map_or(1, |n| n.get()),
                // One per receive queue served; a veth has one.
                Backend::AfXdp => 1,
            }
        } else {
            cfg.workers
        };
        // Every socket is opened before anything runs: a failure leaves
        // nothing behind.
        let mut sockets = Vec::with_capacity(workers);
        #[cfg(feature = "xdp")]
        let mut xdp_sockets = Vec::new();
        #[cfg(feature = "xdp")]
        let mut xdp_state = None;
        match cfg.backend {
            Backend::AfPacket => {
                for _ in 0..workers {
                    let mut mine = Vec::with_capacity(ports.len());
                    for p in &ports {
                        let s = PacketSocket::open(p.index, &cfg.rings)?;
                        s.join_fanout(fanout_group(p.index), FanoutMode::Hash)?;
                        mine.push(s);
                    }
                    sockets.push(mine);
                }
            }
            #[cfg(feature = "xdp")]
            Backend::AfXdp => {
                let (state, socks) = xdp::XdpState::open(&ports, workers, &cfg.xsk)?;
                xdp_state = Some(Mutex::new(state));
                xdp_sockets = socks;
            }
            #[cfg(not(feature = "xdp"))]
            Backend::AfXdp => unreachable!("refused above"),
        }
        let claim = if cfg.claim {
            Some(ClaimKeeper::start(
                &cfg.instance,
                ClaimSpec {
                    interfaces: cfg.interfaces.clone(),
                    ..ClaimSpec::default()
                },
            )?)
        } else {
            None
        };
        let mut fwd = Forwarder::new(cfg.forwarder);
        fwd.director_mut().set_timeouts(cfg.timeouts);
        fwd.advance(now_ms());
        let inner = Arc::new(Inner {
            control: DirectorControl::new(Shard(fwd), now_ms),
            neigh: NeighbourTable::new(ports),
            claim: Mutex::new(claim),
            #[cfg(feature = "xdp")]
            xdp: xdp_state,
            interfaces: cfg.interfaces.clone(),
            io: IoCounters::default(),
            stop: AtomicBool::new(false),
            last_advance: AtomicU64::new(now_ms()),
        });
        let mut threads = Vec::new();
        let busy_poll = Duration::from_micros(u64::from(cfg.busy_poll_us));
        for (i, socks) in sockets.into_iter().enumerate() {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rvs-packet-{i}"))
                    .spawn(move || worker(&inner, socks, busy_poll))?,
            );
        }
        #[cfg(feature = "xdp")]
        for (i, socks) in xdp_sockets.into_iter().enumerate() {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rvs-xdp-{i}"))
                    .spawn(move || worker_xdp(&inner, socks, busy_poll, i == 0))?,
            );
        }
        let resolver = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rvs-neighbours".into())
                .spawn(move || {
                    resolver.neigh.run(Duration::from_secs(1), || {
                        resolver.stop.load(Ordering::Relaxed)
                    })
                })?,
        );
        tracing::info!(interfaces = ?cfg.interfaces, workers, backend = cfg.backend.name(), "packet data plane running");
        Ok(Dataplane {
            inner,
            threads: Arc::new(Mutex::new(threads)),
        })
    }

    /// Stops the workers and the resolver, and removes the claim.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        drop(
            self.inner
                .claim
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        #[cfg(feature = "xdp")]
        if let Some(x) = &self.inner.xdp {
            x.lock().unwrap_or_else(|p| p.into_inner()).detach();
        }
    }

    /// The XDP claim map's keys ([`Backend::AfXdp`]; empty otherwise).
    #[cfg(feature = "xdp")]
    pub fn xdp_claims(&self) -> Vec<rvs_sys::xdp_filter::ClaimKey> {
        self.inner
            .xdp
            .as_ref()
            .map(|x| x.lock().unwrap_or_else(|p| p.into_inner()).keys())
            .unwrap_or_default()
    }

    /// The counters of the forwarder and the ring I/O.
    pub fn counters(&self) -> DataplaneCounters {
        let io = &self.inner.io;
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DataplaneCounters {
            forward: *self.inner.control.lock().0.counters(),
            rx_frames: r(&io.rx_frames),
            rx_blocks: r(&io.rx_blocks),
            tx_frames: r(&io.tx_frames),
            tx_ring_full: r(&io.tx_ring_full),
            tx_too_big: r(&io.tx_too_big),
            rx_truncated: r(&io.rx_truncated),
            vlan_skipped: r(&io.vlan_skipped),
            other_host: r(&io.other_host),
            ring_drops: r(&io.ring_drops),
            tx_errors: r(&io.tx_errors),
        }
    }

    /// Runs `f` on the shared director with the data plane's clock
    /// ([`now_ms`]): what the connection synchronisation daemons use.
    pub fn with_director<R>(&self, f: impl FnOnce(&mut Director, u64) -> R) -> R {
        self.inner.control.with(|d| f(d, now_ms()))
    }

    /// The neighbour table (for inspection).
    pub fn neighbours(&self) -> &NeighbourTable {
        &self.inner.neigh
    }

    /// Adds services and servers, all or nothing (servers with no named
    /// method are direct routing).
    pub fn load(
        &self,
        services: &[(
            rvs_core::model::ServiceConfig,
            Vec<rvs_core::model::DestConfig>,
        )],
    ) -> Result<(), ControlError> {
        let mut cmds = Vec::new();
        for (s, dests) in services {
            cmds.push(Command::AddService(s.clone()));
            for d in dests {
                cmds.push(Command::AddDest {
                    service: s.key,
                    dest: *d,
                    method: rvs_ipvsadm::MethodChoice::Named,
                });
            }
        }
        self.apply(&cmds)
    }

    /// The running rules (services in creation order, servers oldest
    /// first), as `rvs_config::diff` takes them.
    pub fn rules(
        &self,
    ) -> Vec<(
        rvs_core::model::ServiceConfig,
        Vec<rvs_core::model::DestConfig>,
    )> {
        self.services()
            .into_iter()
            .map(|s| {
                let dests = s.dests.iter().rev().map(|d| d.config).collect();
                (s.config, dests)
            })
            .collect()
    }

    /// Rewrites the claim and asks for every server's neighbour, after the
    /// rules changed.
    fn rules_changed(&self) -> Result<(), ControlError> {
        let rules = self.rules();
        for (_, dests) in &rules {
            for d in dests {
                self.inner.neigh.want(d.addr);
            }
        }
        let spec = ClaimSpec::for_rules(
            &self.inner.interfaces,
            rules.iter().map(|(s, d)| (s, &d[..])),
        );
        #[cfg(feature = "xdp")]
        if let Some(x) = &self.inner.xdp {
            x.lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_rules(spec.clone())
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot update the XDP claim map");
                    err(
                        500,
                        format!("rules applied, but the XDP claim map failed: {e}"),
                    )
                })?;
        }
        let claim = self.inner.claim.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = claim.as_ref() {
            c.update(spec).map_err(|e| {
                tracing::error!(error = %e, "cannot update the nftables claim");
                err(
                    500,
                    format!("rules applied, but the nftables claim failed: {e}"),
                )
            })?;
        }
        Ok(())
    }
}

/// What the packet data plane cannot run, refused before anything changes
/// (after ipvsadm's default method, `-g`, was filled in).
pub fn refuse_unsupported(c: &Command) -> Result<(), ControlError> {
    match c {
        Command::AddDest { dest, .. } | Command::EditDest { dest, .. }
            if dest.forward == Forward::Proxy =>
        {
            Err(err(
                422,
                "forwarding method proxy needs the proxy data plane; the packet data plane forwards masq, route and tunnel",
            ))
        }
        c if !c.is_rule() => Err(err(400, format!("{c:?} does not change rules"))),
        _ => Ok(()),
    }
}

impl Control for Dataplane {
    fn apply(&self, cmds: &[Command]) -> Result<(), ControlError> {
        // As in ipvsadm, a server whose command names no method is direct
        // routing.
        let cmds: Vec<Command> = cmds
            .iter()
            .map(|c| rvs_ipvsadm::with_default_method(c.clone(), Forward::Route))
            .collect();
        for c in &cmds {
            refuse_unsupported(c)?;
        }
        self.inner.control.apply(&cmds)?;
        self.rules_changed()
    }

    fn services(&self) -> Vec<ServiceSnapshot> {
        self.inner.control.services()
    }

    fn connections(&self) -> Vec<ConnSnapshot> {
        self.inner.control.connections()
    }

    fn timeouts(&self) -> Timeouts {
        self.inner.control.timeouts()
    }
}

/// The fanout group of an interface: unique per process and interface
/// within the namespace.
fn fanout_group(ifindex: u32) -> u16 {
    (std::process::id() as u16)
        .wrapping_mul(31)
        .wrapping_add(ifindex as u16)
}

/// How often the director's clock is moved on when traffic does not.
const ADVANCE_EVERY_MS: u64 = 100;

/// Counts of one batch, added to the shared counters once per batch.
#[derive(Default)]
struct BatchCounts {
    rx_frames: u64,
    tx_frames: u64,
    tx_ring_full: u64,
    tx_too_big: u64,
    rx_truncated: u64,
    vlan_skipped: u64,
    other_host: u64,
}

impl BatchCounts {
    fn add_to(&self, io: &IoCounters) {
        let add = |c: &AtomicU64, n: u64| {
            if n != 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&io.rx_frames, self.rx_frames);
        add(&io.tx_frames, self.tx_frames);
        add(&io.tx_ring_full, self.tx_ring_full);
        add(&io.tx_too_big, self.tx_too_big);
        add(&io.rx_truncated, self.rx_truncated);
        add(&io.vlan_skipped, self.vlan_skipped);
        add(&io.other_host, self.other_host);
    }
}

/// Queues one frame on a transmit queue (either backend's), kicking the
/// queue once when it is full.
macro_rules! push_frame {
    ($tx:expr, $frame:expr, $n:expr) => {{
        let frame: &[u8] = $frame;
        if frame.len() > $tx.max_frame() {
            $n.tx_too_big += 1;
        } else {
            let mut queued = $tx.push(frame);
            if !queued {
                let _ = $tx.flush();
                queued = $tx.push(frame);
            }
            if queued {
                $n.tx_frames += 1;
            } else {
                $n.tx_ring_full += 1;
            }
        }
    }};
}

/// Forwards one received frame (a macro rather than a generic function:
/// both backends' transmit slots borrow their queue, which a generic
/// signature cannot express without tying the borrows together): the
/// forwarder writes the frame to send straight into a free slot of the
/// queue the previous frame went out on (`likely`), and a frame for
/// another interface is copied to that interface's queue. A frame to
/// fragment ([`Verdict::Fragment`], the slow path) is copied out and cut
/// one fragment at a time into `frag`.
macro_rules! forward_one {
    ($fwd:expr, $neigh:expr, $frame:expr, $rxm:expr, $txs:expr, $ifindexes:expr, $likely:expr, $out:expr, $frag:expr, $now:expr, $n:expr) => {
        'frame: {
            let fits = $frame.len() + rvs_forward::MAX_ENCAP_OVERHEAD <= $txs[$likely].max_frame();
            let mut slot = if fits { $txs[$likely].slot() } else { None };
            let buf = match slot.as_mut() {
                Some(s) => s.buf(),
                None => &mut *$out,
            };
            let v = $fwd.process($frame, $rxm, buf, $neigh, $now);
            let (iface, len, mtu) = match v {
                Verdict::Forward { iface, len } | Verdict::Reply { iface, len } => {
                    (iface, len, None)
                }
                Verdict::Fragment { iface, len, mtu } => (iface, len, Some(mtu)),
                Verdict::NeedNeighbour { ip, .. } => {
                    $neigh.want(ip);
                    break 'frame;
                }
                Verdict::Pass | Verdict::Drop(_) => break 'frame,
            };
            let Some(j) = $ifindexes.iter().position(|&x| x == iface) else {
                break 'frame;
            };
            if let Some(mut s) = slot {
                if j == $likely && mtu.is_none() {
                    s.commit(len);
                    $n.tx_frames += 1;
                    break 'frame;
                }
                // Another interface, or fragments to cut: the slot stays
                // free, the frame is copied.
                $out[..len].copy_from_slice(&s.buf()[..len]);
            }
            $likely = j;
            let tx = &mut $txs[j];
            match mtu {
                None => push_frame!(tx, &$out[..len], $n),
                Some(mtu) => {
                    if let Some(mut frags) = rvs_forward::Fragments::new(&$out[..len], mtu) {
                        while let Some(k) = frags.next_into(&mut $frag[..]) {
                            push_frame!(tx, &$frag[..k], $n);
                        }
                    }
                }
            }
        }
    };
}

fn worker(inner: &Inner, mut socks: Vec<PacketSocket>, busy_poll: Duration) {
    let io = &inner.io;
    let ifindexes: Vec<u32> = socks.iter().map(|s| s.ifindex()).collect();
    let mut rxs = Vec::with_capacity(socks.len());
    let mut txs = Vec::with_capacity(socks.len());
    let mut fds = Vec::with_capacity(socks.len());
    for s in socks.iter_mut() {
        let (rx, tx, fd) = s.parts();
        rxs.push(rx);
        txs.push(tx);
        fds.push(fd);
    }
    let mut out = vec![0u8; 65_536 + rvs_forward::MAX_ENCAP_OVERHEAD];
    // One fragment at a time (at most the route's MTU and a header).
    let mut fragment = vec![0u8; 65_536 + 14];
    // The transmit ring the last frame went out on: the next frame is
    // forwarded straight into a slot of it, and copied only when it goes
    // out elsewhere.
    let mut likely = 0usize;
    let mut last_stats = Instant::now();
    while !inner.stop.load(Ordering::Relaxed) {
        if !busy_poll.is_zero() && !rxs.iter().any(|rx| rx.ready()) {
            let since = Instant::now();
            while since.elapsed() < busy_poll && !rxs.iter().any(|rx| rx.ready()) {
                std::hint::spin_loop();
            }
        }
        if !rxs.iter().any(|rx| rx.ready())
            && let Err(e) = rvs_sys::wait_any(&fds, Duration::from_millis(50))
        {
            tracing::error!(error = %e, "poll on the packet sockets failed");
            std::thread::sleep(Duration::from_millis(50));
        }
        for (i, rx) in rxs.iter_mut().enumerate() {
            let Some(mut block) = rx.next_block() else {
                continue;
            };
            io.rx_blocks.fetch_add(1, Ordering::Relaxed);
            let mut n = BatchCounts::default();
            let now = now_ms();
            let mut shard = inner.control.lock();
            let fwd = &mut shard.0;
            while let Some((frame, meta)) = block.next() {
                n.rx_frames += 1;
                if meta.vlan_tci.is_some() {
                    n.vlan_skipped += 1;
                    continue;
                }
                if meta.for_other_host() {
                    n.other_host += 1;
                    continue;
                }
                if (meta.len as usize) > frame.len() {
                    n.rx_truncated += 1;
                    continue;
                }
                let rxm = RxMeta {
                    iface: ifindexes[i],
                    csum_not_ready: meta.csum_not_ready,
                    fwmark: 0,
                };
                forward_one!(
                    fwd,
                    &inner.neigh,
                    frame,
                    &rxm,
                    txs,
                    ifindexes,
                    likely,
                    out,
                    fragment,
                    now,
                    n
                );
            }
            drop(shard);
            drop(block);
            n.add_to(io);
            for tx in txs.iter_mut() {
                if let Err(e) = tx.flush() {
                    io.tx_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "transmit failed");
                }
            }
        }
        let now = now_ms();
        let last = inner.last_advance.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= ADVANCE_EVERY_MS
            && inner
                .last_advance
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            inner.control.lock().0.advance(now);
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            for fd in &fds {
                if let Ok((drops, _)) = rvs_sys::packet::take_stats(*fd) {
                    io.ring_drops.fetch_add(u64::from(drops), Ordering::Relaxed);
                }
            }
        }
    }
}

/// The worker loop of [`Backend::AfXdp`]: the same forwarding as
/// [`worker`], over AF_XDP sockets (one per interface, all on this
/// worker's receive queue). The `keeper` also re-reads the director's
/// addresses for the XDP claim map every second.
#[cfg(feature = "xdp")]
fn worker_xdp(
    inner: &Inner,
    mut socks: Vec<rvs_sys::xsk::XskSocket>,
    busy_poll: Duration,
    keeper: bool,
) {
    let io = &inner.io;
    let ifindexes: Vec<u32> = socks.iter().map(|s| s.ifindex()).collect();
    // AF_XDP carries no packet type: a unicast frame for another MAC (a
    // flooding bridge, a backup director) is recognised by its address.
    let macs: Vec<Option<[u8; 6]>> = ifindexes
        .iter()
        .map(|&ix| {
            inner.interfaces.iter().find_map(|name| {
                rvs_sys::iface::lookup(name)
                    .ok()
                    .filter(|i| i.index == ix)
                    .map(|i| i.mac)
            })
        })
        .collect();
    let mut rxs = Vec::with_capacity(socks.len());
    let mut txs = Vec::with_capacity(socks.len());
    let mut fds = Vec::with_capacity(socks.len());
    for s in socks.iter_mut() {
        let (rx, tx, fd) = s.split();
        rxs.push(rx);
        txs.push(tx);
        fds.push(fd);
    }
    let mut drops_seen = vec![0u64; fds.len()];
    let mut out = vec![0u8; 65_536 + rvs_forward::MAX_ENCAP_OVERHEAD];
    // One fragment at a time (at most the route's MTU and a header).
    let mut fragment = vec![0u8; 65_536 + 14];
    let mut likely = 0usize;
    let mut last_stats = Instant::now();
    while !inner.stop.load(Ordering::Relaxed) {
        if !busy_poll.is_zero() && !rxs.iter_mut().any(|rx| rx.ready()) {
            let since = Instant::now();
            while since.elapsed() < busy_poll && !rxs.iter_mut().any(|rx| rx.ready()) {
                std::hint::spin_loop();
            }
        }
        if !rxs.iter_mut().any(|rx| rx.ready())
            && let Err(e) = rvs_sys::wait_any(&fds, Duration::from_millis(50))
        {
            tracing::error!(error = %e, "poll on the AF_XDP sockets failed");
            std::thread::sleep(Duration::from_millis(50));
        }
        for i in 0..rxs.len() {
            let Some(mut batch) = rxs[i].batch(256) else {
                continue;
            };
            io.rx_blocks.fetch_add(1, Ordering::Relaxed);
            let mut n = BatchCounts::default();
            let now = now_ms();
            let mut shard = inner.control.lock();
            let fwd = &mut shard.0;
            while let Some(frame) = batch.next() {
                n.rx_frames += 1;
                if let Some(mac) = macs[i]
                    && frame.len() >= 6
                    && frame[0] & 1 == 0
                    && frame[..6] != mac
                {
                    n.other_host += 1;
                    continue;
                }
                let rxm = RxMeta {
                    iface: ifindexes[i],
                    // AF_XDP does not say; offloads must be off.
                    csum_not_ready: false,
                    fwmark: 0,
                };
                forward_one!(
                    fwd,
                    &inner.neigh,
                    frame,
                    &rxm,
                    txs,
                    ifindexes,
                    likely,
                    out,
                    fragment,
                    now,
                    n
                );
            }
            drop(shard);
            drop(batch);
            n.add_to(io);
            for tx in txs.iter_mut() {
                if let Err(e) = tx.flush() {
                    io.tx_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "transmit failed");
                }
            }
        }
        let now = now_ms();
        let last = inner.last_advance.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= ADVANCE_EVERY_MS
            && inner
                .last_advance
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            inner.control.lock().0.advance(now);
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            for (fd, seen) in fds.iter().zip(drops_seen.iter_mut()) {
                if let Ok(st) = rvs_sys::xsk::stats(*fd) {
                    let total = st.rx_dropped + st.rx_ring_full;
                    io.ring_drops
                        .fetch_add(total.saturating_sub(*seen), Ordering::Relaxed);
                    *seen = total;
                }
            }
            if keeper
                && let Some(x) = &inner.xdp
                && let Err(e) = x.lock().unwrap_or_else(|p| p.into_inner()).refresh_local()
            {
                tracing::warn!(error = %e, "cannot refresh the director's addresses for XDP");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_proxy_method_and_non_rule_commands_are_refused() {
        let mut c = cmd("-a -t 203.0.113.10:80 -r 192.0.2.21");
        if let Command::AddDest { dest, .. } = &mut c {
            dest.forward = Forward::Proxy;
        }
        let e = refuse_unsupported(&c).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.message.contains("proxy data plane"), "{}", e.message);
        assert_eq!(refuse_unsupported(&cmd("-Ln")).unwrap_err().status, 400);
        for ok in [
            "-A -f 7 -s rr",
            "-A --sctp-service 203.0.113.10:80",
            "-a -t 203.0.113.10:80 -r 192.0.2.21 -i",
            "-a -t 203.0.113.10:80 -r 192.0.2.21:8080 -m",
        ] {
            assert!(refuse_unsupported(&cmd(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn fanout_groups_differ_per_interface() {
        assert_ne!(fanout_group(2), fanout_group(3));
    }
}
