//! ICMP and ICMPv6 errors the forwarder sends back to a packet's sender.

use crate::wire::{
    ETH_HDR, IPV4_HDR, IPV6_HDR, IpView, PROTO_ICMP, PROTO_ICMPV6, addr_bytes, fill_checksum,
    fill_ipv4_checksum, put16,
};

/// The most an ICMPv4 error may be (RFC 1812 §4.3.2.3: as much of the
/// original packet as fits in 576 bytes).
const ICMPV4_MAX: usize = 576;
/// The most an ICMPv6 error may be (RFC 4443 §2.4: the IPv6 minimum MTU).
const ICMPV6_MAX: usize = 1280;
/// Hop limit of the errors the forwarder originates.
const ICMP_TTL: u8 = 64;
/// Type of service of ICMPv4 errors (precedence "internetwork control",
/// as Linux sends them).
const ICMP_TOS: u8 = 0xc0;

/// An error to send: ICMPv4 and ICMPv6 type, code and the 4 bytes after the
/// checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IcmpError {
    pub v4: (u8, u8),
    pub v6: (u8, u8),
    pub rest: [u8; 4],
}

impl IcmpError {
    /// Fragmentation needed (ICMP 3/4) / packet too big (ICMPv6 2/0).
    pub fn too_big(mtu: usize, v6: bool) -> IcmpError {
        let rest = if v6 {
            (mtu as u32).to_be_bytes()
        } else {
            let m = (mtu.min(0xffff) as u16).to_be_bytes();
            [0, 0, m[0], m[1]]
        };
        IcmpError {
            v4: (3, 4),
            v6: (2, 0),
            rest,
        }
    }

    /// Port unreachable (ICMP 3/3, ICMPv6 1/4): no real server.
    pub fn port_unreachable() -> IcmpError {
        IcmpError {
            v4: (3, 3),
            v6: (1, 4),
            rest: [0; 4],
        }
    }

    /// Time exceeded in transit (ICMP 11/0, ICMPv6 3/0).
    pub fn time_exceeded() -> IcmpError {
        IcmpError {
            v4: (11, 0),
            v6: (3, 0),
            rest: [0; 4],
        }
    }
}

/// Writes into `out` the Ethernet frame of an ICMP error about the packet
/// `ip` of `frame`, addressed back to its sender from the address it was
/// sent to (the VIP, which the director owns). Returns its length, or
/// `None` when `out` is too small.
pub(crate) fn build_error(
    frame: &[u8],
    ip: &IpView,
    err: IcmpError,
    out: &mut [u8],
) -> Option<usize> {
    let (hdr, max) = if ip.v6 {
        (IPV6_HDR, ICMPV6_MAX)
    } else {
        (IPV4_HDR, ICMPV4_MAX)
    };
    let quote = ip.len().min(max - hdr - 8);
    let len = ETH_HDR + hdr + 8 + quote;
    if out.len() < len {
        return None;
    }
    // Ethernet: back where it came from.
    out[0..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&frame[0..6]);
    out[12..14].copy_from_slice(&frame[12..14]);
    let o = ETH_HDR;
    let icmp = o + hdr;
    let (src, n) = addr_bytes(&ip.dst);
    let (dst, _) = addr_bytes(&ip.src);
    if ip.v6 {
        out[o..o + 4].copy_from_slice(&[0x60, 0, 0, 0]);
        put16(out, o + 4, (8 + quote) as u16);
        out[o + 6] = PROTO_ICMPV6;
        out[o + 7] = ICMP_TTL;
        out[o + 8..o + 24].copy_from_slice(&src[..n]);
        out[o + 24..o + 40].copy_from_slice(&dst[..n]);
        out[icmp] = err.v6.0;
        out[icmp + 1] = err.v6.1;
    } else {
        out[o] = 0x45;
        out[o + 1] = ICMP_TOS;
        put16(out, o + 2, (hdr + 8 + quote) as u16);
        out[o + 4..o + 8].copy_from_slice(&[0, 0, 0, 0]);
        out[o + 8] = ICMP_TTL;
        out[o + 9] = PROTO_ICMP;
        out[o + 12..o + 16].copy_from_slice(&src[..n]);
        out[o + 16..o + 20].copy_from_slice(&dst[..n]);
        fill_ipv4_checksum(out, o);
        out[icmp] = err.v4.0;
        out[icmp + 1] = err.v4.1;
    }
    out[icmp + 4..icmp + 8].copy_from_slice(&err.rest);
    out[icmp + 8..len].copy_from_slice(&frame[ip.start..ip.start + quote]);
    let pseudo = ip.v6.then_some((ip.dst, ip.src, PROTO_ICMPV6));
    fill_checksum(out, icmp, len, icmp + 2, pseudo, false);
    Some(len)
}
