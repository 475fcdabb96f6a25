//! Pure codecs for director failover: VRRP (v3 for IPv4 and IPv6, v2 for
//! decoding what keepalived may send), the gratuitous ARP and unsolicited
//! neighbour advertisement frames a new master sends, and the IPVS
//! connection synchronisation messages (v1, and v0 for compatibility), and
//! the rvs resynchronisation messages that carry a whole table.
//!
//! Nothing here performs I/O. Decoders take byte slices and return either a
//! value or an error enum; no input makes them panic. Encoders write into
//! caller-owned buffers or return owned bytes.
//!
//! The formats are hand-written rather than built on a packet library: each
//! is a few fixed-layout fields, and the sync decoder is on the path of every
//! datagram a backup director receives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checksum;
pub mod resync;
pub mod sync;
pub mod vrrp;
