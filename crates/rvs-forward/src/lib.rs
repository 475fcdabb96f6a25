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
//! # Fragments
//! IPv4 fragments (MF set or a non-zero offset) and IPv6 packets with a
//! Fragment header are dropped and counted ([`DropReason::Fragment`]):
//! reassembly would hold per-flow buffers in the hot path, and IPVS traffic
//! is overwhelmingly unfragmented TCP. Operators who need fragmented UDP
//! should keep the kernel's own IPVS for that service.
//!
//! # Panics
//! None: every header access is bounds checked; malformed frames are
//! dropped and counted.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checksum;
mod decap;
mod forward;
mod icmp;
mod tunnel;
mod wire;

pub use checksum::{checksum_adjust, checksum_fold, checksum_sum};
pub use decap::{DecapError, Decapsulated, decapsulate, decapsulate_frame};
pub use forward::{
    Counters, DropReason, Forwarder, ForwarderConfig, IfIndex, MAX_ENCAP_OVERHEAD, Mac, Neighbours,
    NextHop, RxMeta, Verdict,
};
