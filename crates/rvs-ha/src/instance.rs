//! One VRRP instance's loop: sleep until the state machine's next timer or
//! a packet, feed it, carry out its actions.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_core::vrrp::{Action, TrackConfig, VrrpInstance, VrrpState};
use rvs_sys::frame::FrameSender;
use rvs_wire::vrrp::{self as wire, IP_PROTO, MCAST_V4};
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
    src: Ipv4Addr,
    version: u8,
    peers: Vec<Ipv4Addr>,
    rx: Socket,
    tx: Socket,
    /// One gratuitous ARP sender per interface the addresses go on:
    /// (interface, sender, the interface's MAC).
    frames: Vec<(String, FrameSender, [u8; 6])>,
    vips: VipManager,
    garp_interval: Duration,
    garp_queue: VecDeque<Ipv4Addr>,
    next_garp: Instant,
    notify: Notify,
    trackers: Vec<TrackFn>,
    own_link: usize,
    epoch: Instant,
    index: usize,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    hook: Option<StateHook>,
    group: Option<Membership>,
    adverts_in: u64,
    adverts_dropped: u64,
    adverts_out: u64,
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
        index: usize,
        status: Arc<Mutex<Vec<InstanceStatus>>>,
        hook: Option<StateHook>,
        group: Option<Membership>,
    ) -> io::Result<Runner> {
        let IpAddr::V4(src) = cfg.vrrp.primary_addr else {
            return Err(io::Error::other(format!(
                "vrrp_instance {}: only IPv4 instances are supported",
                cfg.name
            )));
        };
        let iface = rvs_sys::iface::lookup(&cfg.interface)
            .map_err(|e| ctx(e, &format!("interface {}", cfg.interface)))?;
        let proto = Protocol::from(i32::from(IP_PROTO));
        let rx = Socket::new(Domain::IPV4, Type::RAW, Some(proto))
            .map_err(|e| ctx(e, "raw socket for IP protocol 112 (needs CAP_NET_RAW)"))?;
        rx.bind_device(Some(cfg.interface.as_bytes()))
            .map_err(|e| ctx(e, "SO_BINDTODEVICE"))?;
        if cfg.unicast_peers.is_empty() {
            rx.join_multicast_v4_n(
                &MCAST_V4,
                &socket2::InterfaceIndexOrAddress::Index(iface.index),
            )
            .map_err(|e| ctx(e, "joining 224.0.0.18"))?;
        }
        let tx = Socket::new(Domain::IPV4, Type::RAW, Some(proto))
            .map_err(|e| ctx(e, "raw socket for IP protocol 112 (needs CAP_NET_RAW)"))?;
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
        let inst = VrrpInstance::new(cfg.vrrp)
            .map_err(|e| io::Error::other(format!("vrrp_instance {}: {e}", cfg.name)))?;
        Ok(Runner {
            name: cfg.name,
            interface: cfg.interface,
            inst,
            src,
            version: cfg.version,
            peers: cfg.unicast_peers,
            rx,
            tx,
            frames,
            vips,
            garp_interval: Duration::from_millis(cfg.garp_interval_ms),
            garp_queue: VecDeque::new(),
            next_garp: Instant::now(),
            notify: cfg.notify,
            trackers: cfg.trackers,
            own_link,
            epoch: Instant::now(),
            index,
            status,
            hook,
            group,
            adverts_in: 0,
            adverts_dropped: 0,
            adverts_out: 0,
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn run(mut self, stop: &AtomicBool) {
        self.vips.remove_leftovers();
        // The trackers' first reading decides whether the start is FAULT.
        self.poll_trackers();
        let now = self.now();
        self.inst.start(now);
        self.drain();
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::SeqCst) {
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
            match (&self.rx).read(&mut buf) {
                Ok(n) => self.received(&buf[..n]),
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
            self.send_garps();
        }
        let now = self.now();
        self.inst.shutdown(now);
        self.drain();
        // The stop advert went out; the last gratuitous ARPs do not matter.
        self.garp_queue.clear();
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

    fn received(&mut self, pkt: &[u8]) {
        // A raw IPv4 socket delivers the IP header.
        let Some((ttl, src, dst, payload)) = parse_ipv4(pkt) else {
            self.adverts_dropped += 1;
            return;
        };
        if !self.peers.is_empty() && !self.peers.contains(&src) {
            self.adverts_dropped += 1;
            return;
        }
        if src == self.src {
            return;
        }
        let now = self.now();
        let res = wire::decode(payload, IpAddr::V4(src), IpAddr::V4(dst))
            .map_err(|e| e.to_string())
            .and_then(|p| {
                self.inst
                    .handle_advert(now, IpAddr::V4(src), ttl, &p)
                    .map_err(|e| e.to_string())
            });
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
        let mut changed = false;
        while let Some(a) = self.inst.poll_action() {
            changed = true;
            match a {
                Action::SendAdvert(ad) => self.send_advert(&ad),
                Action::SendGarp(IpAddr::V4(ip)) => self.garp_queue.push_back(ip),
                Action::SendGarp(IpAddr::V6(_)) => {}
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
        if changed {
            let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = s.get_mut(self.index) {
                s.state = self.inst.state();
                s.priority = self.inst.priority();
                s.adverts_in = self.adverts_in;
                s.adverts_dropped = self.adverts_dropped;
                s.adverts_out = self.adverts_out;
            }
        }
    }

    fn send_advert(&mut self, ad: &wire::Advert) {
        let dsts: Vec<Ipv4Addr> = if self.peers.is_empty() {
            vec![MCAST_V4]
        } else {
            self.peers.clone()
        };
        for dst in dsts {
            let bytes = if self.version == 2 {
                ad.to_v2(0, [0; wire::V2_AUTH_LEN])
                    .ok_or(wire::VrrpError::IntervalZero)
                    .and_then(|v2| v2.to_bytes())
            } else {
                ad.to_bytes(IpAddr::V4(self.src), IpAddr::V4(dst))
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(instance = %self.name, error = %e, "cannot encode advert");
                    continue;
                }
            };
            let to: SocketAddr = SocketAddrV4::new(dst, 0).into();
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
            let dev = self.vips.interface_of(IpAddr::V4(ip));
            if let Some((_, sender, mac)) = self.frames.iter().find(|(d, _, _)| d == dev) {
                let frame = wire::gratuitous_arp(*mac, ip);
                if let Err(e) = sender.send(&frame) {
                    tracing::warn!(instance = %self.name, %ip, interface = %dev, error = %e, "cannot send gratuitous ARP");
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
