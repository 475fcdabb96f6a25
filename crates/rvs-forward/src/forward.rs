//! The forwarder: parse, ask the director, rewrite.

use std::net::IpAddr;

use rvs_core::director::{
    ConnRef, Director, DirectorConfig, DropReason as CoreDrop, PacketInfo,
    Verdict as DirectorVerdict,
};
use rvs_core::model::{Forward, Protocol, ServiceKey, Tunnel};
use rvs_core::state::TcpFlags;

use crate::fragment::options_walk;
use crate::icmp::{IcmpError, build_error};
use crate::reset::build_reset;
use crate::tunnel::{self, Outer};
use crate::wire::{
    CsumField, ETH_HDR, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV4_HDR, IpView, L4, PROTO_ICMP,
    PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, addr_bytes, be16, decrement_ttl, fill_checksum,
    fill_sctp_checksum, parse_ip, parse_l4, replace,
};

/// An interface index as the kernel numbers interfaces.
pub type IfIndex = u32;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// The most bytes a tunnelled packet grows by: an outer IPv6 header (40),
/// UDP (8) and the GUE header (4), or IPv6 and a GRE header with checksum
/// (8). The output buffer must hold the received frame plus this.
pub const MAX_ENCAP_OVERHEAD: usize = 52;

/// How a packet towards an address leaves: the route and the neighbour
/// entry, as the I/O layer knows them from netlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// The outgoing interface.
    pub iface: IfIndex,
    /// The outgoing interface's Ethernet address.
    pub src_mac: Mac,
    /// The next hop's Ethernet address (the address itself on a directly
    /// connected network, else the gateway's); `None` when the neighbour
    /// entry is missing or not yet resolved.
    pub dst_mac: Option<Mac>,
    /// The route's MTU (bytes of IP packet).
    pub mtu: u16,
    /// The director's source address for packets it originates on this
    /// route (the outer source of tunnelled packets); of the same family
    /// as the address looked up.
    pub src_ip: Option<IpAddr>,
}

/// The neighbour and route view the I/O layer supplies.
pub trait Neighbours {
    /// How to reach `dst`, or `None` when there is no route.
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop>;
}

/// What the I/O layer knows about a received frame besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxMeta {
    /// The receiving interface.
    pub iface: IfIndex,
    /// The TCP or UDP checksum is partial (`TP_STATUS_CSUMNOTREADY`: the
    /// field holds only the pseudo-header sum); the forwarder completes it.
    pub csum_not_ready: bool,
    /// Firewall mark of the packet (0 = none), for fwmark services.
    pub fwmark: u32,
}

/// Setup of a forwarder.
#[derive(Debug, Clone, Copy)]
pub struct ForwarderConfig {
    /// The director of this shard.
    pub director: DirectorConfig,
    /// `pmtu_disc`: a too-big IPv4 packet with DF set for a tunnelled server
    /// is answered with ICMP fragmentation needed. When false the outer
    /// packet is fragmented instead, as the kernel does
    /// ([`Verdict::Fragment`]). Too-big IPv4 packets with DF for NAT and DR
    /// servers, and too-big IPv6 packets, are always answered (fragmentation
    /// needed / packet too big); too-big IPv4 packets without DF are
    /// fragmented.
    pub pmtu_disc: bool,
    /// Source-port range of GUE packets (the kernel's
    /// `ip_local_port_range`, 32768..=60999 by default); the port is a hash
    /// of the inner flow.
    pub gue_src_ports: (u16, u16),
    /// Answer packets for a service with no available real server with
    /// ICMP port unreachable, as IPVS does (else drop them silently).
    pub icmp_unreachable: bool,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            director: DirectorConfig::default(),
            pmtu_disc: true,
            gue_src_ports: (32768, 60999),
            icmp_unreachable: true,
        }
    }
}

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send `out[..len]` out of `iface`.
    Forward {
        /// The outgoing interface.
        iface: IfIndex,
        /// Bytes of `out` that make the frame.
        len: usize,
    },
    /// `out[..len]` is an IPv4 frame bigger than the route's `mtu` that may
    /// be fragmented (no DF, or tunnelled with `pmtu_disc` off): send the
    /// frames [`Fragments::new`](crate::Fragments::new)`(&out[..len], mtu)`
    /// yields, all of them, out of `iface`. For a tunnelled packet the
    /// outer packet is the one fragmented.
    Fragment {
        /// The outgoing interface.
        iface: IfIndex,
        /// Bytes of `out` that make the whole frame.
        len: usize,
        /// The route's MTU.
        mtu: u16,
    },
    /// Send the ICMP error or TCP reset in `out[..len]` back out of
    /// `iface`, the receiving interface (fragmentation needed, packet too
    /// big, port unreachable, time exceeded; a reset for a segment to a
    /// service that matches no connection); the received packet is
    /// dropped.
    Reply {
        /// The interface to send it from.
        iface: IfIndex,
        /// Bytes of `out` that make the frame.
        len: usize,
    },
    /// Not traffic of a virtual service or a connection: the host stack
    /// may have it.
    Pass,
    /// The next hop's Ethernet address is unknown: the packet is dropped
    /// (and counted); the I/O layer should probe `ip` on `iface`.
    NeedNeighbour {
        /// The address that was looked up.
        ip: IpAddr,
        /// Its outgoing interface.
        iface: IfIndex,
    },
    /// Dropped, for this reason (counted).
    Drop(DropReason),
}

impl Verdict {
    /// Whether the packet goes on towards its destination
    /// ([`Verdict::Forward`] or [`Verdict::Fragment`]).
    pub fn forwards(&self) -> bool {
        matches!(self, Verdict::Forward { .. } | Verdict::Fragment { .. })
    }
}

/// Why a frame was dropped. Each has a counter ([`Counters::drops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its Ethernet, IP or transport header, or than the IP
    /// total / payload length says.
    Truncated,
    /// An IP header that is not one (version, header length, total length).
    BadIpHeader,
    /// The IPv4 header checksum is wrong.
    BadIpChecksum,
    /// An IPv4 fragment or an IPv6 packet with a Fragment header (not
    /// reassembled).
    Fragment,
    /// The TTL or hop limit would reach zero.
    TtlExceeded,
    /// An ICMP error too short to hold the header it quotes.
    BadIcmp,
    /// No route to the real server or client.
    NoRoute,
    /// The next hop's Ethernet address is not known yet
    /// ([`Verdict::NeedNeighbour`]).
    NoNeighbour,
    /// Bigger than the route's MTU (after encapsulation) and not to be
    /// fragmented: answered with ICMP fragmentation needed / packet too big
    /// when allowed, else dropped (DF packets of NAT replies and forwarded
    /// ICMP errors, IPv4 over an IPv6 tunnel, a route MTU too small for
    /// 8 bytes a fragment).
    TooBig,
    /// The connection table is full (a new flow was refused).
    TableFull,
    /// The connection's real server is deleted (`expire_nodest_conn`).
    DestUnavailable,
    /// A reply for a connection that no longer exists.
    NoConnection,
    /// A service matched but no real server was available.
    NoDest,
    /// The real server's forwarding method is not one this data plane
    /// performs (the userspace proxy).
    UnsupportedMethod,
    /// The tunnel route has no source address of the outer family.
    NoTunnelSource,
    /// The output buffer is too small for the frame to send.
    OutputTooSmall,
}

impl DropReason {
    /// How many reasons there are.
    pub const COUNT: usize = 16;

    /// Every reason, in counter order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Truncated,
        DropReason::BadIpHeader,
        DropReason::BadIpChecksum,
        DropReason::Fragment,
        DropReason::TtlExceeded,
        DropReason::BadIcmp,
        DropReason::NoRoute,
        DropReason::NoNeighbour,
        DropReason::TooBig,
        DropReason::TableFull,
        DropReason::DestUnavailable,
        DropReason::NoConnection,
        DropReason::NoDest,
        DropReason::UnsupportedMethod,
        DropReason::NoTunnelSource,
        DropReason::OutputTooSmall,
    ];

    /// A metric label for the reason.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::Fragment => "fragment",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::BadIcmp => "bad_icmp",
            DropReason::NoRoute => "no_route",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::TooBig => "too_big",
            DropReason::TableFull => "table_full",
            DropReason::DestUnavailable => "dest_unavailable",
            DropReason::NoConnection => "no_connection",
            DropReason::NoDest => "no_dest",
            DropReason::UnsupportedMethod => "unsupported_method",
            DropReason::NoTunnelSource => "no_tunnel_source",
            DropReason::OutputTooSmall => "output_too_small",
        }
    }

    /// The counter index.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Frame counters of one forwarder (service and server statistics are the
/// director's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Frames handed to [`Forwarder::process`].
    pub rx: u64,
    /// Client→server packets sent on (all methods).
    pub forwarded_in: u64,
    /// NAT replies sent on to clients.
    pub forwarded_out: u64,
    /// ICMP errors sent on (translated or not) for a connection.
    pub icmp_forwarded: u64,
    /// ICMP errors the forwarder generated ([`Verdict::Reply`]).
    pub icmp_sent: u64,
    /// TCP resets the forwarder generated ([`Verdict::Reply`]) for
    /// segments to a service that match no connection.
    pub resets_sent: u64,
    /// Frames left to the host ([`Verdict::Pass`]).
    pub passed: u64,
    /// Packets forwarded as IPv4 fragments ([`Verdict::Fragment`]; also
    /// counted as forwarded).
    pub fragmented: u64,
    /// Dropped frames by reason ([`DropReason::index`]).
    pub drops: [u64; DropReason::COUNT],
}

impl Counters {
    /// The drop counter of one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// The forwarding function with its state: one director (connection table
/// shard) and counters. One per worker thread.
#[derive(Debug)]
pub struct Forwarder {
    director: Director,
    cfg: ForwarderConfig,
    counters: Counters,
    ip_id: u16,
}

impl Forwarder {
    /// A forwarder with an empty director.
    pub fn new(cfg: ForwarderConfig) -> Forwarder {
        Forwarder {
            director: Director::new(cfg.director),
            cfg,
            counters: Counters::default(),
            ip_id: 0,
        }
    }

    /// The director (services, connections, statistics).
    pub fn director(&self) -> &Director {
        &self.director
    }

    /// The director, to configure services and servers.
    pub fn director_mut(&mut self) -> &mut Director {
        &mut self.director
    }

    /// The configuration.
    pub fn config(&self) -> &ForwarderConfig {
        &self.cfg
    }

    /// The frame counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Moves time on: connection expiry, estimator ticks.
    pub fn advance(&mut self, now_ms: u64) {
        self.director.advance(now_ms);
    }

    /// Handles one received Ethernet frame at `now_ms` (a monotonic clock in
    /// milliseconds). A frame to send is written to `out`; see [`Verdict`].
    /// `frame` may carry Ethernet padding after the IP packet; it is not
    /// sent on.
    pub fn process<N: Neighbours + ?Sized>(
        &mut self,
        frame: &[u8],
        meta: &RxMeta,
        out: &mut [u8],
        nb: &N,
        now_ms: u64,
    ) -> Verdict {
        self.counters.rx += 1;
        let mut cx = Cx {
            frame,
            meta,
            out,
            now_ms,
        };
        let v = self.dispatch(&mut cx, nb);
        match v {
            Verdict::Pass => self.counters.passed += 1,
            Verdict::Drop(r) => self.counters.drops[r.index()] += 1,
            Verdict::NeedNeighbour { .. } => {
                self.counters.drops[DropReason::NoNeighbour.index()] += 1
            }
            // Counted where they are built (ICMP errors or resets).
            Verdict::Reply { .. } | Verdict::Forward { .. } | Verdict::Fragment { .. } => {}
        }
        v
    }

    fn dispatch<N: Neighbours + ?Sized>(&mut self, cx: &mut Cx<'_>, nb: &N) -> Verdict {
        let frame = cx.frame;
        let Some(et) = be16(frame, 12) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        let v6 = match et {
            ETHERTYPE_IPV4 => false,
            ETHERTYPE_IPV6 => true,
            _ => return Verdict::Pass,
        };
        let ip = match parse_ip(frame, ETH_HDR, v6, false) {
            Ok(ip) => ip,
            Err(r) => return Verdict::Drop(r),
        };
        if ip.fragment {
            return if self.director.is_virtual_address(ip.dst) {
                Verdict::Drop(DropReason::Fragment)
            } else {
                Verdict::Pass
            };
        }
        match ip.proto {
            PROTO_TCP | PROTO_UDP | PROTO_SCTP => self.flow(cx, &ip, nb),
            PROTO_ICMP if !v6 => self.icmp(cx, &ip, nb),
            PROTO_ICMPV6 if v6 => self.icmp(cx, &ip, nb),
            _ => Verdict::Pass,
        }
    }

    /// A TCP, UDP or SCTP packet: a NAT reply, or traffic for a service.
    fn flow<N: Neighbours + ?Sized>(&mut self, cx: &mut Cx<'_>, ip: &IpView, nb: &N) -> Verdict {
        let l4 = match parse_l4(cx.frame, ip) {
            Ok(l4) => l4,
            Err(r) => return Verdict::Drop(r),
        };
        let proto = match ip.proto {
            PROTO_TCP => Protocol::Tcp,
            PROTO_UDP => Protocol::Udp,
            _ => Protocol::Sctp,
        };
        let len = ip.len() as u32;
        let tcp = TcpFlags::from_byte(l4.tcp_flags);
        if let Some(conn) =
            self.director
                .lookup_reply(proto, (ip.src, l4.sport), (ip.dst, l4.dport))
        {
            return self.nat_reply(cx, ip, &l4, conn, tcp, nb);
        }
        let p = PacketInfo {
            proto,
            src: ip.src,
            sport: l4.sport,
            dst: ip.dst,
            dport: l4.dport,
            fwmark: cx.meta.fwmark,
            tcp,
            sctp: l4.sctp,
            len,
        };
        match self.director.inbound(&p, cx.now_ms) {
            DirectorVerdict::Forward(f) => {
                let v = match f.method {
                    Forward::Masq => {
                        let (addr, n) = addr_bytes(&f.daddr);
                        if f.daddr.is_ipv6() != ip.v6 {
                            return Verdict::Drop(DropReason::UnsupportedMethod);
                        }
                        let rw = Rewrite {
                            addr_at: ip.dst_at(),
                            addr,
                            addr_len: n,
                            port_at: ip.l4 + 2,
                            port: f.dport,
                        };
                        self.plain(cx, ip, Some(&l4), Some(rw), f.daddr, true, nb)
                    }
                    Forward::Route => self.plain(cx, ip, Some(&l4), None, f.daddr, true, nb),
                    Forward::Tunnel(t) => {
                        let ports = (u32::from(l4.sport) << 16) | u32::from(l4.dport);
                        self.tunnel(cx, ip, Some(&l4), t, f.daddr, ports, true, nb)
                    }
                    Forward::Local => return Verdict::Pass,
                    Forward::Proxy => return Verdict::Drop(DropReason::UnsupportedMethod),
                };
                if v.forwards() {
                    self.counters.forwarded_in += 1;
                }
                v
            }
            DirectorVerdict::Pass if proto == Protocol::Tcp => self.stray_segment(cx, ip, &l4),
            DirectorVerdict::Pass => Verdict::Pass,
            DirectorVerdict::Reject => {
                if self.cfg.icmp_unreachable {
                    self.reply(cx, ip, IcmpError::port_unreachable(), DropReason::NoDest)
                } else {
                    Verdict::Drop(DropReason::NoDest)
                }
            }
            DirectorVerdict::Drop(r) => Verdict::Drop(match r {
                CoreDrop::TableFull => DropReason::TableFull,
                CoreDrop::DestUnavailable => DropReason::DestUnavailable,
                CoreDrop::NoConnection => DropReason::NoConnection,
            }),
        }
    }

    /// A reply from a NAT real server: source RIP:rport → VIP:vport.
    fn nat_reply<N: Neighbours + ?Sized>(
        &mut self,
        cx: &mut Cx<'_>,
        ip: &IpView,
        l4: &L4,
        conn: ConnRef,
        tcp: TcpFlags,
        nb: &N,
    ) -> Verdict {
        let Some(t) = self.director.conn_tuple(conn) else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        let len = ip.len() as u32;
        let dv = if ip.proto == PROTO_SCTP {
            self.director.outbound_sctp(conn, l4.sctp, len, cx.now_ms)
        } else {
            self.director.outbound(conn, tcp, len, cx.now_ms)
        };
        match dv {
            DirectorVerdict::Forward(_) => {}
            DirectorVerdict::Drop(_) => return Verdict::Drop(DropReason::NoConnection),
            _ => return Verdict::Pass,
        }
        let (addr, n) = addr_bytes(&t.vaddr);
        let rw = Rewrite {
            addr_at: ip.src_at(),
            addr,
            addr_len: n,
            port_at: ip.l4,
            port: t.vport,
        };
        let v = self.plain(cx, ip, Some(l4), Some(rw), ip.dst, false, nb);
        if v.forwards() {
            self.counters.forwarded_out += 1;
        }
        v
    }

    /// An ICMP or ICMPv6 packet: errors about a connection's packets go
    /// with the connection; everything else is the host's.
    fn icmp<N: Neighbours + ?Sized>(&mut self, cx: &mut Cx<'_>, ip: &IpView, nb: &N) -> Verdict {
        let frame = cx.frame;
        if ip.end - ip.l4 < 8 {
            return Verdict::Drop(DropReason::Truncated);
        }
        let kind = frame[ip.l4];
        let is_error = if ip.v6 {
            kind < 128
        } else {
            matches!(kind, 3 | 4 | 11)
        };
        if !is_error {
            return Verdict::Pass;
        }
        let inner = match parse_ip(&frame[..ip.end], ip.l4 + 8, ip.v6, true) {
            Ok(i) => i,
            Err(_) => return Verdict::Drop(DropReason::BadIcmp),
        };
        let proto = match inner.proto {
            PROTO_TCP => Protocol::Tcp,
            PROTO_UDP => Protocol::Udp,
            PROTO_SCTP => Protocol::Sctp,
            _ => return Verdict::Pass,
        };
        if inner.later_fragment {
            return Verdict::Pass;
        }
        if inner.end < inner.l4 + 4 {
            return Verdict::Drop(DropReason::BadIcmp);
        }
        let sport = u16::from_be_bytes([frame[inner.l4], frame[inner.l4 + 1]]);
        let dport = u16::from_be_bytes([frame[inner.l4 + 2], frame[inner.l4 + 3]]);
        // The quoted transport checksum, when the quote holds it.
        let inner_csum_at = match inner.proto {
            PROTO_TCP => Some(inner.l4 + 16),
            PROTO_UDP => Some(inner.l4 + 6),
            _ => None,
        }
        .filter(|&at| at + 2 <= inner.end);
        let inner_csum = |at: usize| CsumField {
            at,
            udp4: inner.proto == PROTO_UDP && !inner.v6,
        };
        // About a packet sent to the client (by the director for NAT, by the
        // real server for DR and TUN): the quote's source is the VIP.
        if let Some(conn) = self
            .director
            .lookup(proto, (inner.dst, dport), (inner.src, sport))
        {
            let (Some(t), Some(method)) = (
                self.director.conn_tuple(conn),
                self.director.conn_method(conn),
            ) else {
                return Verdict::Pass;
            };
            let v = match method {
                Forward::Masq => {
                    if t.daddr.is_ipv6() != ip.v6 {
                        return Verdict::Drop(DropReason::UnsupportedMethod);
                    }
                    let tr = IcmpTranslate {
                        outer_at: ip.dst_at(),
                        inner_ip: inner.start,
                        inner_addr_at: inner.src_at(),
                        inner_port_at: inner.l4,
                        inner_csum: inner_csum_at.map(inner_csum),
                        addr: t.daddr,
                        port: t.dport,
                        icmp: ip.l4,
                    };
                    self.plain_icmp(cx, ip, tr, t.daddr, nb)
                }
                Forward::Route => self.plain(cx, ip, None, None, t.daddr, false, nb),
                Forward::Tunnel(tun) => {
                    let ports = (u32::from(dport) << 16) | u32::from(sport);
                    self.tunnel(cx, ip, None, tun, t.daddr, ports, false, nb)
                }
                Forward::Local => return Verdict::Pass,
                Forward::Proxy => return Verdict::Drop(DropReason::UnsupportedMethod),
            };
            if v.forwards() {
                self.counters.icmp_forwarded += 1;
                self.director.count_related(conn, true, ip.len() as u32);
            }
            return v;
        }
        // About a packet the director sent to a NAT real server: the quote's
        // destination is the real server.
        if let Some(conn) =
            self.director
                .lookup_reply(proto, (inner.dst, dport), (inner.src, sport))
        {
            let Some(t) = self.director.conn_tuple(conn) else {
                return Verdict::Pass;
            };
            let tr = IcmpTranslate {
                outer_at: ip.src_at(),
                inner_ip: inner.start,
                inner_addr_at: inner.dst_at(),
                inner_port_at: inner.l4 + 2,
                inner_csum: inner_csum_at.map(inner_csum),
                addr: t.vaddr,
                port: t.vport,
                icmp: ip.l4,
            };
            let v = self.plain_icmp(cx, ip, tr, ip.dst, nb);
            if v.forwards() {
                self.counters.icmp_forwarded += 1;
                self.director.count_related(conn, false, ip.len() as u32);
            }
            return v;
        }
        Verdict::Pass
    }

    /// A TCP segment the director neither forwards nor schedules (not a
    /// SYN, no connection). For a service's address and port it is
    /// answered with a reset, as the kernel's director answers it from its
    /// own stack (the VIP is local there); anything else is the host's.
    fn stray_segment(&mut self, cx: &mut Cx<'_>, ip: &IpView, l4: &L4) -> Verdict {
        let service = |port| ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: ip.dst,
            port,
        };
        if !self.director.is_virtual_address(ip.dst)
            || (self.director.service(&service(l4.dport)).is_none()
                && self.director.service(&service(0)).is_none())
        {
            return Verdict::Pass;
        }
        match build_reset(cx.frame, ip, cx.out) {
            Some(len) => {
                self.counters.resets_sent += 1;
                self.counters.drops[DropReason::NoConnection.index()] += 1;
                Verdict::Reply {
                    iface: cx.meta.iface,
                    len,
                }
            }
            // A reset is never answered; a malformed segment is dropped.
            None => Verdict::Drop(DropReason::NoConnection),
        }
    }

    /// An ICMP error of our own about the received packet.
    fn reply(&mut self, cx: &mut Cx<'_>, ip: &IpView, err: IcmpError, why: DropReason) -> Verdict {
        match build_error(cx.frame, ip, err, cx.out) {
            Some(len) => {
                self.counters.icmp_sent += 1;
                self.counters.drops[why.index()] += 1;
                Verdict::Reply {
                    iface: cx.meta.iface,
                    len,
                }
            }
            None => Verdict::Drop(DropReason::OutputTooSmall),
        }
    }

    /// Checks the path to `target` (no encapsulation) and copies the packet
    /// into the output behind a new Ethernet header; returns the next hop and
    /// the frame's length.
    fn copy_on_path<N: Neighbours + ?Sized>(
        &mut self,
        cx: &mut Cx<'_>,
        ip: &IpView,
        target: IpAddr,
        icmp_ok: bool,
        nb: &N,
    ) -> Result<(NextHop, usize), Verdict> {
        let (nh, mac) = self.check_path(cx, ip, target, 0, icmp_ok, nb)?;
        let len = copy_packet(cx, ip, ETH_HDR, &nh, mac)
            .ok_or(Verdict::Drop(DropReason::OutputTooSmall))?;
        Ok((nh, len))
    }

    /// The checks every forwarded packet passes: a route, a neighbour, TTL
    /// and MTU (`inner_mtu`: what the route leaves for the IP packet).
    /// `icmp_ok`: errors may be sent back about this packet.
    fn check_path<N: Neighbours + ?Sized>(
        &mut self,
        cx: &mut Cx<'_>,
        ip: &IpView,
        target: IpAddr,
        overhead: usize,
        icmp_ok: bool,
        nb: &N,
    ) -> Result<(NextHop, Mac), Verdict> {
        let Some(nh) = nb.next_hop(target) else {
            return Err(Verdict::Drop(DropReason::NoRoute));
        };
        let Some(mac) = nh.dst_mac else {
            return Err(Verdict::NeedNeighbour {
                ip: target,
                iface: nh.iface,
            });
        };
        if ip.ttl <= 1 {
            return Err(if icmp_ok {
                self.reply(cx, ip, IcmpError::time_exceeded(), DropReason::TtlExceeded)
            } else {
                Verdict::Drop(DropReason::TtlExceeded)
            });
        }
        let mtu = usize::from(nh.mtu);
        if ip.len() + overhead > mtu {
            // As the kernel: an IPv4 packet without DF is fragmented (the
            // outer packet for a tunnel), and so is a tunnelled one with
            // DF when `pmtu_disc` is off; the I/O layer cuts the frame
            // ([`Verdict::Fragment`]). Only IPv4 packets are cut here: an
            // IPv6 outer header (IPv4 over an IPv6 tunnel) would need a
            // Fragment header, which this forwarder does not write.
            let may_fragment = !ip.df || (overhead > 0 && !self.cfg.pmtu_disc);
            if !ip.v6 && !target.is_ipv6() && may_fragment {
                let header = if overhead > 0 {
                    IPV4_HDR
                } else {
                    ip.l4 - ip.start
                };
                // (An outer header cannot push a packet past 65535 bytes.)
                if mtu < header + 8 || ip.len() + overhead > usize::from(u16::MAX) {
                    return Err(Verdict::Drop(DropReason::TooBig));
                }
                if overhead == 0 && !options_walk(&cx.frame[ip.start..ip.l4]) {
                    return Err(Verdict::Drop(DropReason::BadIpHeader));
                }
                return Ok((nh, mac));
            }
            // IPv6 is never fragmented on the way; IPv4 with DF is not,
            // except that `pmtu_disc` off lets tunnels fragment.
            let tell = ip.v6 || (ip.df && (overhead == 0 || self.cfg.pmtu_disc));
            if icmp_ok && tell {
                let room = mtu.saturating_sub(overhead);
                let report = if ip.v6 { room.max(1280) } else { room.max(68) };
                return Err(self.reply(
                    cx,
                    ip,
                    IcmpError::too_big(report, ip.v6),
                    DropReason::TooBig,
                ));
            }
            return Err(Verdict::Drop(DropReason::TooBig));
        }
        Ok((nh, mac))
    }

    /// Sends the packet on as it is but for the Ethernet header, the TTL and
    /// an optional NAT rewrite of one address and one port.
    #[allow(clippy::too_many_arguments)]
    fn plain<N: Neighbours + ?Sized>(
        &mut self,
        cx: &mut Cx<'_>,
        ip: &IpView,
        l4: Option<&L4>,
        rw: Option<Rewrite>,
        target: IpAddr,
        icmp_ok: bool,
        nb: &N,
    ) -> Verdict {
        let (nh, len) = match self.copy_on_path(cx, ip, target, icmp_ok, nb) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let out = &mut *cx.out;
        let at = |x: usize| x - ip.start + ETH_HDR;
        let finish = cx.meta.csum_not_ready;
        if let Some(rw) = rw {
            let mut csums = [CsumField { at: 0, udp4: false }; 2];
            let mut n = 0;
            if !ip.v6 {
                csums[n] = CsumField {
                    at: ETH_HDR + 10,
                    udp4: false,
                };
                n += 1;
            }
            if let Some(c) = l4.and_then(|l| l.csum)
                && !finish
            {
                csums[n] = CsumField {
                    at: at(c.at),
                    udp4: c.udp4,
                };
                n += 1;
            }
            replace(out, at(rw.addr_at), &rw.addr[..rw.addr_len], &csums[..n]);
            let l4c = if ip.v6 { &csums[..n] } else { &csums[1..n] };
            replace(out, at(rw.port_at), &rw.port.to_be_bytes(), l4c);
            if ip.proto == PROTO_SCTP {
                fill_sctp_checksum(out, at(ip.l4), len);
            }
        }
        if finish {
            finish_checksum(out, ip, l4, at(ip.start), at(ip.l4), len);
        }
        self.send(&nh, len)
    }

    /// Sends an ICMP error on with the NAT translation of its outer address
    /// and its quote.
    fn plain_icmp<N: Neighbours + ?Sized>(
        &mut self,
        cx: &mut Cx<'_>,
        ip: &IpView,
        tr: IcmpTranslate,
        target: IpAddr,
        nb: &N,
    ) -> Verdict {
        let (nh, len) = match self.copy_on_path(cx, ip, target, false, nb) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let out = &mut *cx.out;
        let at = |x: usize| x - ip.start + ETH_HDR;
        let (addr, n) = addr_bytes(&tr.addr);
        let outer_ip = if ip.v6 {
            None
        } else {
            Some(CsumField {
                at: ETH_HDR + 10,
                udp4: false,
            })
        };
        replace(out, at(tr.outer_at), &addr[..n], outer_ip.as_slice());
        let inner_ip = if ip.v6 {
            None
        } else {
            Some(CsumField {
                at: at(tr.inner_ip) + 10,
                udp4: false,
            })
        };
        let inner_l4 = tr.inner_csum.map(|c| CsumField {
            at: at(c.at),
            udp4: c.udp4,
        });
        let mut both = [CsumField { at: 0, udp4: false }; 2];
        let mut k = 0;
        for c in inner_ip.into_iter().chain(inner_l4) {
            both[k] = c;
            k += 1;
        }
        replace(out, at(tr.inner_addr_at), &addr[..n], &both[..k]);
        replace(
            out,
            at(tr.inner_port_at),
            &tr.port.to_be_bytes(),
            inner_l4.as_slice(),
        );
        let icmp = at(tr.icmp);
        let pseudo = ip.v6.then(|| {
            let src = read_addr(out, ETH_HDR + 8, true);
            let dst = read_addr(out, ETH_HDR + 24, true);
            (src, dst, PROTO_ICMPV6)
        });
        fill_checksum(out, icmp, len, icmp + 2, pseudo, false);
        self.send(&nh, len)
    }

    /// Encapsulates the packet towards a tunnelled real server.
    #[allow(clippy::too_many_arguments)]
    fn tunnel<N: Neighbours + ?Sized>(
        &mut self,
        cx: &mut Cx<'_>,
        ip: &IpView,
        l4: Option<&L4>,
        t: Tunnel,
        rip: IpAddr,
        ports: u32,
        icmp_ok: bool,
        nb: &N,
    ) -> Verdict {
        let outer_v6 = rip.is_ipv6();
        let overhead = tunnel::overhead(outer_v6, &t);
        let (nh, mac) = match self.check_path(cx, ip, rip, overhead, icmp_ok, nb) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let Some(src) = nh.src_ip.filter(|s| s.is_ipv6() == outer_v6) else {
            return Verdict::Drop(DropReason::NoTunnelSource);
        };
        let inner_at = ETH_HDR + overhead;
        let Some(len) = copy_packet(cx, ip, inner_at, &nh, mac) else {
            return Verdict::Drop(DropReason::OutputTooSmall);
        };
        let out = &mut *cx.out;
        out[12..14].copy_from_slice(&if outer_v6 { 0x86ddu16 } else { 0x0800 }.to_be_bytes());
        let at = |x: usize| x - ip.start + inner_at;
        if cx.meta.csum_not_ready {
            finish_checksum(out, ip, l4, inner_at, at(ip.l4), len);
        }
        let df = !ip.v6 && ip.df;
        // A packet cut into fragments needs an identification of its own
        // even with DF (`pmtu_disc` off).
        let fragmented = len - ETH_HDR > usize::from(nh.mtu);
        let id = if df && !fragmented {
            0
        } else {
            self.ip_id = self.ip_id.wrapping_add(1);
            self.ip_id
        };
        let outer = Outer {
            src,
            dst: rip,
            tos: ip.tos,
            ttl: ip.ttl - 1,
            df,
            id,
            inner_v6: ip.v6,
            tunnel: t,
            gue_src_port: tunnel::flow_port(
                &ip.src,
                &ip.dst,
                ip.proto,
                ports,
                self.cfg.gue_src_ports,
            ),
        };
        tunnel::write_outer(out, len, &outer);
        self.send(&nh, len)
    }

    /// The verdict for a frame written to `out[..len]` towards `nh`: whole,
    /// or to be cut into fragments (the path checks allowed it).
    fn send(&mut self, nh: &NextHop, len: usize) -> Verdict {
        if len - ETH_HDR > usize::from(nh.mtu) {
            self.counters.fragmented += 1;
            Verdict::Fragment {
                iface: nh.iface,
                len,
                mtu: nh.mtu,
            }
        } else {
            Verdict::Forward {
                iface: nh.iface,
                len,
            }
        }
    }
}

/// The per-call inputs, bundled.
struct Cx<'a> {
    frame: &'a [u8],
    meta: &'a RxMeta,
    out: &'a mut [u8],
    now_ms: u64,
}

/// A NAT rewrite of one address and one port (offsets into the frame).
#[derive(Debug, Clone, Copy)]
struct Rewrite {
    addr_at: usize,
    addr: [u8; 16],
    addr_len: usize,
    port_at: usize,
    port: u16,
}

/// A NAT translation of an ICMP error (offsets into the frame).
#[derive(Debug, Clone, Copy)]
struct IcmpTranslate {
    /// The outer address to replace.
    outer_at: usize,
    /// The quoted IP header.
    inner_ip: usize,
    /// The quoted address and port to replace.
    inner_addr_at: usize,
    inner_port_at: usize,
    /// The quoted transport checksum, if quoted.
    inner_csum: Option<CsumField>,
    addr: IpAddr,
    port: u16,
    /// The ICMP header.
    icmp: usize,
}

fn read_addr(buf: &[u8], at: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&buf[at..at + 16]);
        IpAddr::from(a)
    } else {
        IpAddr::from([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
    }
}

/// Writes the Ethernet header and the IP packet (its TTL decremented) into
/// `cx.out`, the IP packet at `ip_at`. Returns the frame's end.
fn copy_packet(
    cx: &mut Cx<'_>,
    ip: &IpView,
    ip_at: usize,
    nh: &NextHop,
    mac: Mac,
) -> Option<usize> {
    let len = ip_at + ip.len();
    let out = cx.out.get_mut(..len)?;
    out[0..6].copy_from_slice(&mac);
    out[6..12].copy_from_slice(&nh.src_mac);
    out[12..14].copy_from_slice(&cx.frame[12..14]);
    out[ip_at..].copy_from_slice(&cx.frame[ip.start..ip.end]);
    decrement_ttl(out, ip_at, ip.v6);
    Some(len)
}

/// Completes a partial TCP/UDP checksum (or recomputes SCTP's CRC32c) of
/// the packet at `ip_at` in `out`.
fn finish_checksum(
    out: &mut [u8],
    ip: &IpView,
    l4: Option<&L4>,
    ip_at: usize,
    l4_at: usize,
    end: usize,
) {
    match (ip.proto, l4.and_then(|l| l.csum)) {
        (PROTO_SCTP, _) => fill_sctp_checksum(out, l4_at, end),
        (_, Some(c)) => {
            let src = read_addr(out, ip_at + if ip.v6 { 8 } else { 12 }, ip.v6);
            let dst = read_addr(out, ip_at + if ip.v6 { 24 } else { 16 }, ip.v6);
            let field = l4_at + (c.at - ip.l4);
            fill_checksum(
                out,
                l4_at,
                end,
                field,
                Some((src, dst, ip.proto)),
                ip.proto == PROTO_UDP,
            );
        }
        _ => {}
    }
}
