//! One VRRP instance's loop: sleep until the state machine's next timer or
//! a packet, feed it, carry out its actions.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_core::vrrp::{Action, TrackConfig, VrrpInstance, VrrpState};
use rvs_sys::frame::FrameSender;
use rvs_wire::vrrp::{self as wire, IP_PROTO, MCAST_V4, MCAST_V6};
use socket2::{Domain, Protocol, Socket, Type};

use crate::addr::VipManager;
use crate::group::{self, Membership};
use crate::{InstanceConfig, InstanceStatus, Notify, StateHook, TrackFn};

/// Longest sleep between two looks at the stop flag and the trackers.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// IP TOS of adverts (network control), as keepalived sends them.
const TOS: u32 = 0xc0;

pub(crate) struct Runner {
    name: String,
    interface: String,
    inst: VrrpInstance,
    src: IpAddr,
    ifindex: u32,
    version: u8,
    auth_pass: Option<[u8; wire::V2_AUTH_LEN]>,
    peers: Vec<IpAddr>,
    rx: Socket,
    tx: Socket,
    /// Source of unsolicited neighbour advertisements: the interface's
    /// link-local address (IPv6 instances).
    na_src: Option<Ipv6Addr>,
    /// The Router flag of those advertisements: set when the interface
    /// forwards IPv6 (RFC 5798 §6.4.2: a virtual router sets it).
    na_router: bool,
    /// One gratuitous ARP sender per interface the addresses go on:
    /// (interface, sender, the interface's MAC).
    frames: Vec<(String, FrameSender, [u8; 6])>,
    vips: VipManager,
    garp_interval: Duration,
    garp_queue: VecDeque<IpAddr>,
    next_garp: Instant,
    notify: Notify,
    trackers: Vec<TrackFn>,
    ready_gate: Option<Arc<AtomicBool>>,
    /// The state machine was seen not ready and has not been told yet.
    gate_waiting: bool,
    own_link: usize,
    epoch: Instant,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    hook: Option<StateHook>,
    group: Option<Membership>,
    adverts_in: u64,
    adverts_dropped: u64,
    adverts_out: u64,
    auth_failures: u64,
}

fn ctx(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Whether `interface` has carrier (up and running).
pub fn link_up(interface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/carrier"))
        .is_ok_and(|s| s.trim() == "1")
}

impl Runner {
    pub(crate) fn open(
        mut cfg: InstanceConfig,
        status: Arc<Mutex<Vec<InstanceStatus>>>,
        hook: Option<StateHook>,
        group: Option<Membership>,
    ) -> io::Result<Runner> {
        let src = cfg.vrrp.primary_addr;
        let iface = rvs_sys::iface::lookup(&cfg.interface)
            .map_err(|e| ctx(e, &format!("interface {}", cfg.interface)))?;
        let (rx, tx) = match src {
            IpAddr::V4(src) => open_v4(&cfg, iface.index, src)?,
            IpAddr::V6(src) => open_v6(&cfg, iface.index, src)?,
        };
        let na_src = match src {
            IpAddr::V4(_) => None,
            IpAddr::V6(s) if is_link_local(&s) => Some(s),
            IpAddr::V6(s) => {
                Some(crate::addr::interface_link_local(&cfg.interface, &[]).unwrap_or(s))
            }
        };
        let na_router = std::fs::read_to_string(format!(
            "/proc/sys/net/ipv6/conf/{}/forwarding",
            cfg.interface
        ))
        .is_ok_and(|s| s.trim() == "1");

        // The instance's own interface is tracked with weight 0 (FAULT
        // while it has no carrier), after the configured trackers.
        let own_link = cfg.vrrp.track.len();
        cfg.vrrp.track.push(TrackConfig {
            name: format!("interface {}", cfg.interface),
            weight: 0,
            reverse: false,
            initially_up: link_up(&cfg.interface),
        });
        let vips = VipManager::new(
            &cfg.interface,
            cfg.vrrp
                .vips
                .iter()
                .copied()
                .zip(cfg.vip_prefix.iter().copied().chain(std::iter::repeat(32)))
                .collect(),
        )
        .on_interfaces(&cfg.vip_interfaces);
        let mut frames = Vec::new();
        for dev in vips.interfaces() {
            let index = rvs_sys::iface::lookup(&dev)
                .map_err(|e| ctx(e, &format!("interface {dev}")))?
                .index;
            let mac = rvs_sys::iface::mac(&dev).map_err(|e| ctx(e, &format!("interface {dev}")))?;
            let sender = FrameSender::open(index).map_err(|e| ctx(e, "AF_PACKET socket"))?;
            frames.push((dev, sender, mac));
        }
        // Without a ready timeout the instance is ready from the start.
        let gated = cfg.vrrp.ready_timeout_ms.is_some();
        let inst = VrrpInstance::new(cfg.vrrp)
            .map_err(|e| io::Error::other(format!("vrrp_instance {}: {e}", cfg.name)))?;
        Ok(Runner {
            name: cfg.name,
            interface: cfg.interface,
            inst,
            src,
            ifindex: iface.index,
            version: cfg.version,
            auth_pass: cfg.auth_pass,
            peers: cfg.unicast_peers,
            rx,
            tx,
            frames,
            na_src,
            na_router,
            vips,
            garp_interval: Duration::from_millis(cfg.garp_interval_ms),
            garp_queue: VecDeque::new(),
            next_garp: Instant::now(),
            notify: cfg.notify,
            trackers: cfg.trackers,
            ready_gate: cfg.ready_gate.filter(|_| gated),
            gate_waiting: false,
            own_link,
            epoch: Instant::now(),
            status,
            hook,
            group,
            adverts_in: 0,
            adverts_dropped: 0,
            adverts_out: 0,
            auth_failures: 0,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn initial_status(&self) -> InstanceStatus {
        InstanceStatus {
            name: self.name.clone(),
            state: self.inst.state(),
            priority: self.inst.priority(),
            adverts_in: 0,
            adverts_dropped: 0,
            adverts_out: 0,
            auth_failures: 0,
        }
    }

    /// A reloaded configuration (same identity, see `Vrrp::reload`).
    fn apply_update(&mut self, mut cfg: InstanceConfig) {
        // Trackers read now: a new one starts from its real state, not
        // from a guess that could flap the instance through FAULT.
        for (i, f) in cfg.trackers.iter_mut().enumerate() {
            if let Some(t) = cfg.vrrp.track.get_mut(i) {
                t.initially_up = f();
            }
        }
        let own_link = cfg.vrrp.track.len();
        cfg.vrrp.track.push(TrackConfig {
            name: format!("interface {}", cfg.interface),
            weight: 0,
            reverse: false,
            initially_up: link_up(&cfg.interface),
        });
        // The old addresses stay known (after the new ones) so that one
        // removed by this reload is deleted with the prefix it was added with.
        let mut vips: Vec<(IpAddr, u8)> = cfg
            .vrrp
            .vips
            .iter()
            .copied()
            .zip(cfg.vip_prefix.iter().copied().chain(std::iter::repeat(
                if cfg.vrrp.primary_addr.is_ipv4() {
                    32
                } else {
                    128
                },
            )))
            .collect();
        for old in self.vips.vips() {
            if !vips.iter().any(|(a, _)| *a == old.0) {
                vips.push(old);
            }
        }
        // Addresses kept with another prefix length: re-added with it.
        let old_vips = self.vips.vips();
        let reprefixed: Vec<IpAddr> = vips
            .iter()
            .filter(|(a, p)| old_vips.iter().any(|(o, op)| o == a && op != p))
            .map(|(a, _)| *a)
            .collect();
        let now = self.now();
        match self.inst.reconfigure(now, cfg.vrrp) {
            Ok(()) => {
                self.own_link = own_link;
                self.trackers = cfg.trackers;
                let manager =
                    VipManager::new(&cfg.interface, vips).on_interfaces(&cfg.vip_interfaces);
                if self.inst.state() == VrrpState::Master && !reprefixed.is_empty() {
                    self.vips.del(&reprefixed);
                    manager.add(&reprefixed);
                }
                self.vips = manager;
                self.notify = cfg.notify;
                self.garp_interval = Duration::from_millis(cfg.garp_interval_ms);
                self.auth_pass = cfg.auth_pass;
                tracing::info!(instance = %self.name, priority = self.inst.priority(), "VRRP instance reconfigured");
            }
            Err(e) => {
                tracing::error!(instance = %self.name, error = %e, "VRRP reload refused for this instance");
            }
        }
        self.drain();
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Makes the instance a member of a sync group (or of none).
    pub(crate) fn join_group(&mut self, group: Option<Membership>) {
        self.group = group;
    }

    /// Runs until `stop`; gives back the sync-group membership, so that a
    /// restart of the same instance (a reload) stays in its group.
    pub(crate) fn run(
        mut self,
        stop: &AtomicBool,
        update: &Mutex<Option<InstanceConfig>>,
    ) -> Option<Membership> {
        self.vips.remove_leftovers();
        // The trackers' first reading decides whether the start is FAULT.
        self.poll_trackers();
        let now = self.now();
        self.inst.start(now);
        self.drain();
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::SeqCst) {
            let pending = update.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(cfg) = pending {
                self.apply_update(cfg);
            }
            self.poll_trackers();
            let now = self.now();
            let mut wait = if self.group.is_some() {
                group::POLL
            } else {
                MAX_SLEEP
            };
            if let Some(t) = self.inst.poll_timeout() {
                wait = wait.min(Duration::from_millis(t.saturating_sub(now)));
            }
            if !self.garp_queue.is_empty() {
                wait = wait.min(self.next_garp.saturating_duration_since(Instant::now()));
            }
            if wait.is_zero() {
                wait = Duration::from_millis(1);
            }
            let _ = self.rx.set_read_timeout(Some(wait));
            let got = if self.src.is_ipv4() {
                (&self.rx).read(&mut buf).map(|n| self.received(&buf[..n]))
            } else {
                rvs_sys::ip6::recv_with_info(self.rx.as_fd(), &mut buf)
                    .map(|r| self.received_v6(&r, &buf[..r.len]))
            };
            match got {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    tracing::error!(instance = %self.name, error = %e, "VRRP receive");
                    std::thread::sleep(MAX_SLEEP);
                }
            }
            let now = self.now();
            if self.inst.poll_timeout().is_some_and(|t| t <= now) {
                self.inst.handle_timeout(now);
            }
            if let Some(g) = &self.group {
                for cmd in g.commands() {
                    self.inst.group(now, cmd);
                }
            }
            self.drain();
            self.poll_ready_gate();
            self.send_garps();
        }
        let now = self.now();
        self.inst.shutdown(now);
        self.drain();
        // The stop advert went out; the last gratuitous ARPs do not matter.
        self.garp_queue.clear();
        self.group.take()
    }

    fn poll_trackers(&mut self) {
        let now = self.now();
        for i in 0..self.trackers.len() {
            let up = (self.trackers[i])();
            self.inst.set_tracker(now, i, up);
        }
        let up = link_up(&self.interface);
        self.inst.set_tracker(now, self.own_link, up);
        if let Some(g) = &self.group {
            let own = self.inst.own_fault();
            if own != g.published_own_fault() {
                g.set_own_fault(own);
            }
        }
    }

    /// Opens the state machine's ready gate when the resynchronisation is
    /// over; logs when the state machine's own timeout opened it first.
    /// Runs after [`Runner::drain`], so that a state hook that closes the
    /// gate again (leaving FAULT) has done so.
    fn poll_ready_gate(&mut self) {
        let Some(gate) = &self.ready_gate else {
            return;
        };
        let open = gate.load(Ordering::SeqCst);
        if self.inst.is_ready() {
            if self.gate_waiting {
                self.gate_waiting = false;
                if !open {
                    tracing::warn!(instance = %self.name, "ready timeout passed before the resynchronisation ended: may preempt now");
                }
            }
            return;
        }
        self.gate_waiting = true;
        if open {
            let now = self.now();
            self.inst.set_ready(now);
            self.gate_waiting = false;
            if self.inst.state() == VrrpState::Master {
                // Nobody answered: it took over as the only router.
                tracing::info!(instance = %self.name, "ready gate opened while already master");
            } else {
                tracing::info!(instance = %self.name, state = self.inst.state().name(), "ready gate open: resynchronisation over, may preempt now");
            }
            self.drain();
        }
    }

    fn received(&mut self, pkt: &[u8]) {
        // A raw IPv4 socket delivers the IP header.
        let Some((ttl, src, dst, payload)) = parse_ipv4(pkt) else {
            self.adverts_dropped += 1;
            return;
        };
        self.advert_in(ttl, IpAddr::V4(src), IpAddr::V4(dst), payload);
    }

    /// A raw IPv6 socket delivers no IP header: the hop limit and the
    /// destination come as ancillary data.
    fn received_v6(&mut self, r: &rvs_sys::ip6::Received6, payload: &[u8]) {
        if r.ifindex.is_some_and(|i| i != self.ifindex) {
            return;
        }
        // Multicast adverts come from the sender's link-local address
        // (RFC 5798 §5.1.2.1); anything else on ff02::12 is refused.
        if self.peers.is_empty() && !is_link_local(&r.src) {
            self.adverts_dropped += 1;
            tracing::debug!(instance = %self.name, src = %r.src, "advert from a non link-local source dropped");
            return;
        }
        let dst = r.dst.unwrap_or(MCAST_V6);
        // No hop limit reported counts as a wrong one.
        let hops = r.hop_limit.unwrap_or(0);
        self.advert_in(hops, IpAddr::V6(r.src), IpAddr::V6(dst), payload);
    }

    fn advert_in(&mut self, ttl: u8, src: IpAddr, dst: IpAddr, payload: &[u8]) {
        if !self.peers.is_empty() && !self.peers.contains(&src) {
            self.adverts_dropped += 1;
            return;
        }
        if src == self.src {
            return;
        }
        let now = self.now();
        let auth = self.auth_pass;
        let mut auth_failed = false;
        let res = wire::decode(payload, src, dst)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                wire::check_auth(&p, auth.as_ref()).map_err(|e| {
                    auth_failed = true;
                    e.to_string()
                })?;
                Ok(p)
            })
            .and_then(|p| {
                self.inst
                    .handle_advert(now, src, ttl, &p)
                    .map_err(|e| e.to_string())
            });
        if auth_failed {
            self.auth_failures += 1;
            // The 1st, 2nd, 4th, 8th... failure: a peer with the wrong
            // password shows in the log without flooding it.
            if self.auth_failures.is_power_of_two() {
                tracing::warn!(
                    instance = %self.name,
                    %src,
                    failures = self.auth_failures,
                    "advert dropped: VRRPv2 authentication failed"
                );
            }
        }
        match res {
            Ok(()) => {
                self.adverts_in += 1;
                tracing::trace!(instance = %self.name, %src, "advert");
            }
            Err(e) => {
                self.adverts_dropped += 1;
                tracing::debug!(instance = %self.name, %src, error = %e, "advert dropped");
            }
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.inst.poll_action() {
            match a {
                Action::SendAdvert(ad) => self.send_advert(&ad),
                Action::SendGarp(ip) => self.garp_queue.push_back(ip),
                Action::AddVips(v) => self.vips.add(&v),
                Action::DelVips(v) => self.vips.del(&v),
                Action::StateChanged { from, to, reason } => {
                    tracing::info!(
                        instance = %self.name,
                        from = from.name(),
                        to = to.name(),
                        ?reason,
                        priority = self.inst.priority(),
                        "VRRP state"
                    );
                    self.notify(to);
                    if let Some(h) = &self.hook {
                        h(&self.name, to);
                    }
                    if let Some(g) = &self.group {
                        let view = rvs_core::vrrp::GroupMember {
                            state: to,
                            own_fault: self.inst.own_fault(),
                        };
                        g.moved(view, from, reason);
                    }
                }
                Action::PriorityChanged { from, to } => {
                    tracing::info!(instance = %self.name, from, to, "VRRP priority");
                }
            }
        }
        // Every turn, not only on actions: a backup's counters move
        // without any action.
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = s.iter_mut().find(|s| s.name == self.name) {
            s.state = self.inst.state();
            s.priority = self.inst.priority();
            s.adverts_in = self.adverts_in;
            s.adverts_dropped = self.adverts_dropped;
            s.adverts_out = self.adverts_out;
            s.auth_failures = self.auth_failures;
        }
    }

    fn send_advert(&mut self, ad: &wire::Advert) {
        let dsts: Vec<IpAddr> = if !self.peers.is_empty() {
            self.peers.clone()
        } else if self.src.is_ipv4() {
            vec![IpAddr::V4(MCAST_V4)]
        } else {
            vec![IpAddr::V6(MCAST_V6)]
        };
        for dst in dsts {
            let bytes = if self.version == 2 {
                let (kind, data) = match self.auth_pass {
                    Some(p) => (wire::AUTH_PASS, p),
                    None => (wire::AUTH_NONE, [0; wire::V2_AUTH_LEN]),
                };
                ad.to_v2(kind, data)
                    .ok_or(wire::VrrpError::IntervalZero)
                    .and_then(|v2| v2.to_bytes())
            } else {
                // The checksum is computed here, pseudo-header included,
                // for IPv6 too (rather than by the kernel's IPV6_CHECKSUM):
                // one code path, checked against keepalived's bytes.
                ad.to_bytes(self.src, dst)
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(instance = %self.name, error = %e, "cannot encode advert");
                    continue;
                }
            };
            let to: SocketAddr = match dst {
                IpAddr::V4(d) => SocketAddrV4::new(d, 0).into(),
                IpAddr::V6(d) => {
                    let scope = if is_link_local(&d) || d.is_multicast() {
                        self.ifindex
                    } else {
                        0
                    };
                    SocketAddrV6::new(d, 0, 0, scope).into()
                }
            };
            match self.tx.send_to(&bytes, &to.into()) {
                Ok(_) => self.adverts_out += 1,
                Err(e) => {
                    tracing::warn!(instance = %self.name, %dst, error = %e, "cannot send advert")
                }
            }
        }
    }

    fn send_garps(&mut self) {
        while let Some(ip) = self.garp_queue.front().copied() {
            let now = Instant::now();
            if !self.garp_interval.is_zero() && now < self.next_garp {
                return;
            }
            self.garp_queue.pop_front();
            // Announced on the interface the address is on.
            let dev = self.vips.interface_of(ip);
            if let Some((_, sender, mac)) = self.frames.iter().find(|(d, _, _)| d == dev) {
                let sent = match ip {
                    IpAddr::V4(v4) => sender.send(&wire::gratuitous_arp(*mac, v4)),
                    IpAddr::V6(v6) => {
                        let src = self.na_src.unwrap_or(Ipv6Addr::UNSPECIFIED);
                        sender.send(&wire::unsolicited_na(*mac, src, v6, self.na_router))
                    }
                };
                if let Err(e) = sent {
                    tracing::warn!(instance = %self.name, %ip, interface = %dev, error = %e, "cannot send gratuitous ARP / neighbour advertisement");
                }
            }
            self.next_garp = now + self.garp_interval;
        }
    }

    fn notify(&self, to: VrrpState) {
        let specific = match to {
            VrrpState::Master => &self.notify.master,
            VrrpState::Backup => &self.notify.backup,
            VrrpState::Fault => &self.notify.fault,
            VrrpState::Initialize => &self.notify.stop,
        };
        let mut cmds = Vec::new();
        if let Some(argv) = specific {
            cmds.push(argv.clone());
        }
        if let Some(argv) = &self.notify.any {
            let state = if to == VrrpState::Initialize {
                "STOP"
            } else {
                to.name()
            };
            let mut a = argv.clone();
            a.extend([
                "INSTANCE".to_string(),
                self.name.clone(),
                state.to_string(),
                self.inst.priority().to_string(),
            ]);
            cmds.push(a);
        }
        run_commands(&self.name, cmds);
    }
}

/// Starts each notify argv of `cmds` in the background (`name`, the
/// instance or group, is for the logs).
pub(crate) fn run_commands(name: &str, cmds: Vec<Vec<String>>) {
    for argv in cmds {
        let Some((prog, args)) = argv.split_first() else {
            continue;
        };
        match Command::new(prog).args(args).stdin(Stdio::null()).spawn() {
            // Reaped on a thread of its own: a slow script never holds
            // the VRRP loop up.
            Ok(mut child) => {
                let name = name.to_string();
                std::thread::spawn(move || match child.wait() {
                    Ok(s) if !s.success() => {
                        tracing::warn!(instance = %name, status = %s, "notify command failed")
                    }
                    _ => {}
                });
            }
            Err(e) => {
                tracing::error!(instance = %name, command = %prog, error = %e, "cannot run notify command")
            }
        }
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

const RAW_112: &str = "raw socket for IP protocol 112 (needs CAP_NET_RAW)";

/// The receive and send sockets of an IPv4 instance.
fn open_v4(cfg: &InstanceConfig, ifindex: u32, src: Ipv4Addr) -> io::Result<(Socket, Socket)> {
    let proto = Protocol::from(i32::from(IP_PROTO));
    let rx = Socket::new(Domain::IPV4, Type::RAW, Some(proto)).map_err(|e| ctx(e, RAW_112))?;
    rx.bind_device(Some(cfg.interface.as_bytes()))
        .map_err(|e| ctx(e, "SO_BINDTODEVICE"))?;
    if cfg.unicast_peers.is_empty() {
        rx.join_multicast_v4_n(&MCAST_V4, &socket2::InterfaceIndexOrAddress::Index(ifindex))
            .map_err(|e| ctx(e, "joining 224.0.0.18"))?;
    }
    let tx = Socket::new(Domain::IPV4, Type::RAW, Some(proto)).map_err(|e| ctx(e, RAW_112))?;
    tx.bind_device(Some(cfg.interface.as_bytes()))?;
    // Bound to the primary address: the adverts' source stays it even
    // once the virtual addresses are on the interface.
    tx.bind(&SocketAddr::from(SocketAddrV4::new(src, 0)).into())
        .map_err(|e| ctx(e, &format!("binding the advert source {src}")))?;
    tx.set_multicast_ttl_v4(u32::from(wire::TTL))?;
    tx.set_ttl_v4(u32::from(wire::TTL))?;
    tx.set_multicast_loop_v4(false)?;
    tx.set_tos_v4(TOS)?;
    tx.set_multicast_if_v4(&src)?;
    Ok((rx, tx))
}

/// The receive and send sockets of an IPv6 instance: hop limit 255 on
/// everything sent, and the hop limit and destination of everything
/// received reported (see [`rvs_sys::ip6`]).
fn open_v6(cfg: &InstanceConfig, ifindex: u32, src: Ipv6Addr) -> io::Result<(Socket, Socket)> {
    let proto = Protocol::from(i32::from(IP_PROTO));
    let rx = Socket::new(Domain::IPV6, Type::RAW, Some(proto)).map_err(|e| ctx(e, RAW_112))?;
    rx.bind_device(Some(cfg.interface.as_bytes()))
        .map_err(|e| ctx(e, "SO_BINDTODEVICE"))?;
    rvs_sys::ip6::enable_recv_info(rx.as_fd())
        .map_err(|e| ctx(e, "IPV6_RECVHOPLIMIT / IPV6_RECVPKTINFO"))?;
    if cfg.unicast_peers.is_empty() {
        rx.join_multicast_v6(&MCAST_V6, ifindex)
            .map_err(|e| ctx(e, "joining ff02::12"))?;
    }
    let tx = Socket::new(Domain::IPV6, Type::RAW, Some(proto)).map_err(|e| ctx(e, RAW_112))?;
    tx.bind_device(Some(cfg.interface.as_bytes()))?;
    let scope = if is_link_local(&src) { ifindex } else { 0 };
    tx.bind(&SocketAddr::from(SocketAddrV6::new(src, 0, 0, scope)).into())
        .map_err(|e| ctx(e, &format!("binding the advert source {src}")))?;
    tx.set_multicast_hops_v6(u32::from(wire::TTL))?;
    tx.set_unicast_hops_v6(u32::from(wire::TTL))?;
    tx.set_multicast_loop_v6(false)?;
    tx.set_multicast_if_v6(ifindex)?;
    // Traffic class 0xc0 (network control), as keepalived sends.
    tx.set_tclass_v6(TOS)?;
    Ok((rx, tx))
}

/// TTL, source, destination and payload of an IPv4 packet of protocol 112
/// as a raw socket delivers it (header included); `None` when it is not one.
pub fn parse_ipv4(p: &[u8]) -> Option<(u8, Ipv4Addr, Ipv4Addr, &[u8])> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < 20 || total < ihl || total > p.len() || p[9] != IP_PROTO {
        return None;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    Some((p[8], src, dst, &p[ihl..total]))
}

#[cfg(test)]
mod tests {
    use super::parse_ipv4;

    #[test]
    fn parses_the_ip_header_of_a_captured_advert() {
        // Vector 1 of vectors/vrrp.md without the Ethernet header.
        let hex = "45c0002000010000ff70d0990a000001e000001231339601006442dd0a0000fa";
        let b: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let (ttl, src, dst, payload) = parse_ipv4(&b).unwrap();
        assert_eq!(ttl, 255);
        assert_eq!(src.to_string(), "10.0.0.1");
        assert_eq!(dst.to_string(), "224.0.0.18");
        assert_eq!(payload.len(), 12);
        assert!(rvs_wire::vrrp::decode(payload, src.into(), dst.into()).is_ok());
        assert!(parse_ipv4(&b[..19]).is_none());
        let mut bad = b.clone();
        bad[3] = 0xff; // total length beyond the buffer
        assert!(parse_ipv4(&bad).is_none());
    }
}
