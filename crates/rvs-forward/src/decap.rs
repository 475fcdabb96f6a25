//! The real-server side of LVS-TUN: outer packet → inner packet.

use std::net::IpAddr;
use std::ops::Range;

use rvs_core::model::TunnelType;

use crate::checksum::{checksum_fold, checksum_sum};
use crate::forward::DropReason;
use crate::wire::{PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_UDP, parse_ip, pseudo_sum};

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
    let v6 = match packet.first().map(|b| b >> 4) {
        Some(4) => false,
        Some(6) => true,
        Some(_) => return Err(DecapError::BadOuterHeader),
        None => return Err(DecapError::Truncated),
    };
    let ip = parse_ip(packet, 0, v6, false).map_err(|r| match r {
        DropReason::Truncated => DecapError::Truncated,
        _ => DecapError::BadOuterHeader,
    })?;
    if ip.fragment {
        return Err(DecapError::BadOuterHeader);
    }
    let (kind, inner_v6, inner) = match ip.proto {
        PROTO_IPIP => (TunnelType::Ipip, false, ip.l4),
        PROTO_IPV6 => (TunnelType::Ipip, true, ip.l4),
        PROTO_GRE => {
            let h = packet.get(ip.l4..ip.l4 + 4).ok_or(DecapError::Truncated)?;
            let flags = u16::from_be_bytes([h[0], h[1]]);
            // Version 0 only; no routing (RFC 2784 reserved bits); key and
            // sequence number (RFC 2890) are skipped over.
            if flags & 0x0007 != 0 || flags & 0x4000 != 0 {
                return Err(DecapError::Unsupported);
            }
            let inner_v6 = match u16::from_be_bytes([h[2], h[3]]) {
                0x0800 => false,
                0x86dd => true,
                _ => return Err(DecapError::NotTunnel),
            };
            let mut hlen = 4;
            if flags & 0x8000 != 0 {
                if ip.end < ip.l4 + 8 {
                    return Err(DecapError::Truncated);
                }
                if checksum_fold(checksum_sum(0, &packet[ip.l4..ip.end])) != 0 {
                    return Err(DecapError::BadChecksum);
                }
                hlen += 4;
            }
            if flags & 0x2000 != 0 {
                hlen += 4;
            }
            if flags & 0x1000 != 0 {
                hlen += 4;
            }
            (TunnelType::Gre, inner_v6, ip.l4 + hlen)
        }
        PROTO_UDP => {
            let h = packet.get(ip.l4..ip.l4 + 12).ok_or(DecapError::Truncated)?;
            let dport = u16::from_be_bytes([h[2], h[3]]);
            if !gue_ports.contains(&dport) {
                return Err(DecapError::NotTunnel);
            }
            let ulen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if ulen < 8 || ip.l4 + ulen > ip.end {
                return Err(DecapError::Truncated);
            }
            let csum = u16::from_be_bytes([h[6], h[7]]);
            if csum != 0 {
                let sum = pseudo_sum(&ip.src, &ip.dst, PROTO_UDP, ulen);
                if checksum_fold(checksum_sum(sum, &packet[ip.l4..ip.l4 + ulen])) != 0 {
                    return Err(DecapError::BadChecksum);
                }
            }
            let g = &h[8..12];
            match g[0] >> 6 {
                // GUE version 1: the payload is the IP packet itself.
                1 => {
                    let inner_v6 = g[0] >> 4 == 6;
                    (TunnelType::Gue, inner_v6, ip.l4 + 8)
                }
                0 => {
                    if g[0] & 0x20 != 0 {
                        // A control message.
                        return Err(DecapError::Unsupported);
                    }
                    let hlen = usize::from(g[0] & 0x1f) * 4;
                    let inner_v6 = match g[1] {
                        PROTO_IPIP => false,
                        PROTO_IPV6 => true,
                        _ => return Err(DecapError::NotTunnel),
                    };
                    (TunnelType::Gue, inner_v6, ip.l4 + 12 + hlen)
                }
                _ => return Err(DecapError::Unsupported),
            }
        }
        _ => return Err(DecapError::NotTunnel),
    };
    let end = ip.end;
    let first = *packet.get(inner).ok_or(DecapError::Truncated)?;
    if inner >= end {
        return Err(DecapError::Truncated);
    }
    if first >> 4 != if inner_v6 { 6 } else { 4 } {
        return Err(DecapError::BadInner);
    }
    Ok(Decapsulated {
        inner: inner..end,
        kind,
        outer_src: ip.src,
        outer_dst: ip.dst,
    })
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
