//! The pure forwarding function of the rvs packet data plane.
//!
//! One Ethernet frame goes in with the time and a view of the neighbour
//! table; a [`Verdict`] comes out, and when the verdict sends something, the
//! frame to send has been written to the caller's output buffer. Nothing
//! here performs I/O: the AF_PACKET rings, the netlink neighbour cache and
//! the worker threads live in the I/O crates, which call
//! [`Forwarder::process`] once per received frame.
//!
//! Policy (service lookup, scheduling, persistence, connection states,
//! thresholds, statistics) is the [`rvs_core::director::Director`]'s; this
//! crate parses the frame, asks the director, and rewrites the packet for
//! the connection's forwarding method:
//!
//! - **NAT** (masq): client→server packets get VIP:vport → RIP:rport, replies
//!   from the real server get RIP:rport → VIP:vport, with incremental
//!   checksum updates (RFC 1624).
//! - **DR** (route): the packet is unchanged but for the Ethernet addresses
//!   and the TTL / hop limit.
//! - **TUN**: the packet is wrapped in an outer IPv4 or IPv6 header (IPIP,
//!   GUE or GRE, as `--tun-type` says); [`decapsulate`] is the real-server
//!   side.
//!
//! ICMP and ICMPv6 errors are matched to their connection through the
//! embedded header and translated (NAT) or forwarded with it (DR, TUN).
//!
//! A TCP segment for a service's address and port that matches no
//! connection and cannot start one (not a SYN) is answered with a reset,
//! as the kernel's director answers it from its own stack: this is how a
//! client learns that its connection was expired (`expire_nodest_conn`)
//! or lost.
//!
//! # Use
//! ```
//! use std::net::IpAddr;
//! use rvs_forward::{Forwarder, ForwarderConfig, Neighbours, NextHop, RxMeta, Verdict};
//!
//! /// The I/O layer's view of routes and neighbours (from netlink).
//! struct Kernel;
//! impl Neighbours for Kernel {
//!     fn next_hop(&self, _dst: IpAddr) -> Option<NextHop> {
//!         None
//!     }
//! }
//!
//! let mut fw = Forwarder::new(ForwarderConfig::default());
//! // Services and servers are configured on the director:
//! // fw.director_mut().add_service(..), .add_dest(..).
//! let arp = [0xffu8; 6]
//!     .iter()
//!     .chain(&[2, 0, 0, 0, 0, 1, 0x08, 0x06])
//!     .chain(&[0u8; 28])
//!     .copied()
//!     .collect::<Vec<u8>>();
//! let mut out = vec![0u8; 2048];
//! let meta = RxMeta { iface: 2, ..RxMeta::default() };
//! match fw.process(&arp, &meta, &mut out, &Kernel, 0) {
//!     Verdict::Forward { iface, len } | Verdict::Reply { iface, len } => {
//!         // transmit out[..len] on iface
//!         let _ = (iface, len);
//!     }
//!     Verdict::Fragment { iface, len, mtu } => {
//!         // transmit every fragment on iface
//!         if let Some(mut frags) = rvs_forward::Fragments::new(&out[..len], mtu) {
//!             let mut buf = vec![0u8; frags.max_frame_len()];
//!             while let Some(n) = frags.next_into(&mut buf) {
//!                 let _ = (iface, &buf[..n]);
//!             }
//!         }
//!     }
//!     Verdict::NeedNeighbour { ip, iface } => {
//!         // ask the kernel to resolve ip on iface
//!         let _ = (ip, iface);
//!     }
//!     Verdict::Pass | Verdict::Drop(_) => {}
//! }
//! assert_eq!(fw.counters().passed, 1);
//! // Between frames, move time on so connections expire:
//! fw.advance(1000);
//! ```
//!
//! # Output buffer
//! Every frame that leaves is written into `out`; the received frame is
//! never modified. With AF_PACKET a copy from the receive slot to a
//! transmit slot (or a `sendto` buffer) is unavoidable, so writing straight
//! into the transmit slot costs that one copy and no more, and the same
//! path serves the methods that make the packet longer (TUN) and shorter
//! (none) or build a new one (ICMP errors). `out` must hold at least
//! `frame.len() + MAX_ENCAP_OVERHEAD` bytes, or ICMP errors and tunnelled
//! packets are dropped ([`DropReason::OutputTooSmall`]).
//!
//! A packet that must be fragmented is still written whole into `out`
//! ([`Verdict::Fragment`]); the I/O layer cuts it with [`Fragments`],
//! which writes one fragment at a time into a buffer of its choosing (a
//! transmit slot), so `out` never has to hold every fragment at once.
//!
//! # Fragments
//! Received IPv4 fragments (MF set or a non-zero offset) and IPv6 packets
//! with a Fragment header, sent to a virtual address, are dropped and
//! counted ([`DropReason::Fragment`]): reassembly would hold per-flow
//! buffers in the hot path, and IPVS traffic is overwhelmingly
//! unfragmented TCP. Operators who need fragmented UDP should keep the
//! kernel's own IPVS for that service.
//!
//! Sending is another matter: a whole IPv4 packet that no longer fits the
//! outgoing route (a smaller MTU towards the real servers, a tunnel's
//! overhead) is fragmented when it may be (see MTU below), as the kernel
//! does; [`Fragments`] says how the fragments are cut.
//!
//! # Choices where IPVS leaves the userspace port to decide
//! - **TTL / hop limit** are decremented on every forwarded packet, DR
//!   included (the kernel does so since 4.17); a packet that would leave
//!   with 0 is answered with ICMP time exceeded ([`DropReason::TtlExceeded`]).
//! - **MTU**: a packet bigger than the route's MTU (less the tunnel
//!   overhead) is answered with fragmentation needed (IPv4 with DF) or packet
//!   too big (IPv6) from the address it was sent to, quoting as much as fits
//!   in 576 / 1280 bytes. IPv4 packets without DF, and tunnelled IPv4
//!   packets with DF when `pmtu_disc` is off, are fragmented as the kernel
//!   fragments them ([`Verdict::Fragment`], [`Fragments`]): NAT and DR cut
//!   the packet itself, TUN the outer IPv4 packet; an IPv4 packet over an
//!   IPv6 tunnel, whose outer packet would need an IPv6 Fragment header, is
//!   dropped ([`DropReason::TooBig`]). The I/O layer must turn GSO/TSO/GRO
//!   off (or segment): a GSO super-frame is just a too-big packet here.
//! - **Partial checksums** (`TP_STATUS_CSUMNOTREADY`): the TCP/UDP checksum
//!   (SCTP's CRC32c) is computed in full on the output instead of being
//!   updated incrementally.
//! - **TUN outer headers**: TOS / traffic class (ECN included) and TTL are
//!   copied from the inner header, DF from an inner IPv4 header; the IPv4
//!   identification is 0 with DF and a per-forwarder counter without; the
//!   IPv6 flow label is 0. GUE's source port is a hash of the inner flow over
//!   [`ForwarderConfig::gue_src_ports`]. `--tun-remcsum` sends no remote
//!   checksum option: the inner checksum is always complete when it leaves
//!   (as the kernel does for packets that are not CHECKSUM_PARTIAL).
//! - **ICMP errors** matched to a connection follow it (NAT: translated, all
//!   checksums fixed; DR/TUN: forwarded or encapsulated as they are). They
//!   count in the connection's statistics but do not change its state or
//!   timer, as in IPVS.
//!   Errors matching nothing, and informational ICMP, are the host's
//!   ([`Verdict::Pass`]).
//! - **Replies** are looked up first (NAT only: the director's reply index),
//!   then the packet goes to [`rvs_core::director::Director::inbound`]. With
//!   several workers, NAT needs both directions of a connection on one
//!   worker (a fanout hash over the client's address and port, or one
//!   worker): each forwarder's director is its own connection shard.
//! - **Service with no real server**: ICMP port unreachable back to the
//!   client ([`ForwarderConfig::icmp_unreachable`]), as `ip_vs_leave` does.
//! - **Missing neighbour**: the packet is dropped with
//!   [`Verdict::NeedNeighbour`]; the connection it created stays, so the
//!   client's retransmission goes through once the I/O layer has resolved
//!   the address.
//! - Local-method servers are left to the host; proxy-method servers are
//!   the userspace proxy's business ([`DropReason::UnsupportedMethod`]).
//! - VLAN-tagged and non-IP frames are the host's.
//!
//! # Panics
//! None: every header access is bounds checked; malformed frames are
//! dropped and counted.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checksum;
mod decap;
mod forward;
mod fragment;
mod icmp;
mod reset;
mod tunnel;
mod wire;

pub use checksum::{checksum_adjust, checksum_fold, checksum_sum};
pub use decap::{DecapError, Decapsulated, decapsulate, decapsulate_frame};
pub use forward::{
    Counters, DropReason, Forwarder, ForwarderConfig, IfIndex, MAX_ENCAP_OVERHEAD, Mac, Neighbours,
    NextHop, RxMeta, Verdict,
};
pub use fragment::Fragments;
