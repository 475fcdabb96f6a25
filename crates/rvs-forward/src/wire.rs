//! Header offsets and bounds-checked parsing of Ethernet, IPv4, IPv6 and
//! transport headers, and in-place field rewrites with checksum updates.
//!
//! Hand-written rather than `etherparse` slicing: the hot path needs only a
//! handful of fields and their offsets (to rewrite them in the output
//! buffer), and a full slice of every layer, extension headers included,
//! would cost more per packet than the forwarding itself. Every offset is
//! checked against the buffer once, in `parse_*`; the rewrite helpers are
//! only called with offsets that parsing proved in bounds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_core::sctp::{SctpEvent, sctp_packet_event};

use crate::checksum::{checksum_adjust, checksum_fold, checksum_sum};
use crate::forward::DropReason;

/// Ethernet header length (no VLAN tag).
pub(crate) const ETH_HDR: usize = 14;
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_IPIP: u8 = 4;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_IPV6: u8 = 41;
pub(crate) const PROTO_GRE: u8 = 47;
pub(crate) const PROTO_ICMPV6: u8 = 58;
pub(crate) const PROTO_SCTP: u8 = 132;

pub(crate) const IPV4_HDR: usize = 20;
pub(crate) const IPV6_HDR: usize = 40;

/// Reads a big-endian u16 at a checked offset.
pub(crate) fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Writes a big-endian u16 at an offset proved in bounds.
pub(crate) fn put16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// An IP header, located and checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpView {
    pub v6: bool,
    /// Offset of the IP header.
    pub start: usize,
    /// Offset of the transport header (after IPv6 extension headers).
    pub l4: usize,
    /// End of the IP packet (Ethernet padding excluded; for a quoted
    /// packet, the end of the quote).
    pub end: usize,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// IPv4 TOS or IPv6 traffic class.
    pub tos: u8,
    /// IPv4 don't-fragment (IPv6: always true, routers never fragment).
    pub df: bool,
    /// A fragment: more fragments follow or the offset is not zero.
    pub fragment: bool,
    /// A non-first fragment (no transport header).
    pub later_fragment: bool,
}

impl IpView {
    /// Length of the IP packet (of the quote, for a quoted packet).
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Offset of the source address.
    pub fn src_at(&self) -> usize {
        self.start + if self.v6 { 8 } else { 12 }
    }

    /// Offset of the destination address.
    pub fn dst_at(&self) -> usize {
        self.start + if self.v6 { 24 } else { 16 }
    }
}

fn v4_addr(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

fn v6_addr(b: &[u8], at: usize) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    IpAddr::V6(Ipv6Addr::from(a))
}

/// Parses the IP header at `start`. A `quoted` header (inside an ICMP
/// error) may be cut short: its end is the buffer's end, its checksum is
/// not verified and its transport header may be partial.
pub(crate) fn parse_ip(
    buf: &[u8],
    start: usize,
    v6: bool,
    quoted: bool,
) -> Result<IpView, DropReason> {
    if v6 {
        parse_ipv6(buf, start, quoted)
    } else {
        parse_ipv4(buf, start, quoted)
    }
}

fn parse_ipv4(buf: &[u8], start: usize, quoted: bool) -> Result<IpView, DropReason> {
    let h = buf
        .get(start..start + IPV4_HDR)
        .ok_or(DropReason::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(DropReason::BadIpHeader);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < IPV4_HDR || total < ihl {
        return Err(DropReason::BadIpHeader);
    }
    if buf.len() < start + ihl {
        return Err(DropReason::Truncated);
    }
    let end = if quoted {
        buf.len().min(start + total)
    } else {
        if buf.len() < start + total {
            return Err(DropReason::Truncated);
        }
        if checksum_fold(checksum_sum(0, &buf[start..start + ihl])) != 0 {
            return Err(DropReason::BadIpChecksum);
        }
        start + total
    };
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let offset = frag & 0x1fff;
    Ok(IpView {
        v6: false,
        start,
        l4: start + ihl,
        end,
        proto: h[9],
        src: v4_addr(buf, start + 12),
        dst: v4_addr(buf, start + 16),
        ttl: h[8],
        tos: h[1],
        df: frag & 0x4000 != 0,
        fragment: frag & 0x2000 != 0 || offset != 0,
        later_fragment: offset != 0,
    })
}

/// IPv6 extension headers walked over to reach the transport header.
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_DEST_OPTS: u8 = 60;
/// More extension headers than this is not a packet worth forwarding.
const MAX_EXT_HEADERS: usize = 8;

fn parse_ipv6(buf: &[u8], start: usize, quoted: bool) -> Result<IpView, DropReason> {
    let h = buf
        .get(start..start + IPV6_HDR)
        .ok_or(DropReason::Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(DropReason::BadIpHeader);
    }
    let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let total = IPV6_HDR + payload;
    let end = if quoted {
        buf.len().min(start + total)
    } else {
        if payload == 0 {
            // A jumbogram (or nothing at all): not forwarded.
            return Err(DropReason::BadIpHeader);
        }
        if buf.len() < start + total {
            return Err(DropReason::Truncated);
        }
        start + total
    };
    let mut next = h[6];
    let mut at = start + IPV6_HDR;
    let mut fragment = false;
    let mut later_fragment = false;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS => {
                let e = buf.get(at..at + 2).ok_or(DropReason::Truncated)?;
                next = e[0];
                at += (usize::from(e[1]) + 1) * 8;
            }
            EXT_FRAGMENT => {
                let e = buf.get(at..at + 8).ok_or(DropReason::Truncated)?;
                next = e[0];
                fragment = true;
                later_fragment = u16::from_be_bytes([e[2], e[3]]) & 0xfff8 != 0;
                at += 8;
            }
            _ => break,
        }
        if at > end {
            return Err(DropReason::Truncated);
        }
    }
    if matches!(
        next,
        EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_FRAGMENT
    ) {
        return Err(DropReason::BadIpHeader);
    }
    if at > end {
        return Err(DropReason::Truncated);
    }
    Ok(IpView {
        v6: true,
        start,
        l4: at,
        end,
        proto: next,
        src: v6_addr(buf, start + 8),
        dst: v6_addr(buf, start + 24),
        ttl: h[7],
        tos: (h[0] << 4) | (h[1] >> 4),
        df: true,
        fragment,
        later_fragment,
    })
}

/// A checksum field to keep right when covered bytes change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CsumField {
    /// Offset of the field.
    pub at: usize,
    /// An IPv4 UDP checksum: 0 means "none" and stays 0; a computed 0 is
    /// sent as 0xffff.
    pub udp4: bool,
}

/// The transport header fields the forwarder uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L4 {
    pub sport: u16,
    pub dport: u16,
    /// TCP flags byte (0 for other protocols).
    pub tcp_flags: u8,
    /// SCTP event of the packet's chunks (DATA for other protocols).
    pub sctp: SctpEvent,
    /// The TCP or UDP checksum field (SCTP's CRC32c is not one).
    pub csum: Option<CsumField>,
}

/// Parses the TCP, UDP or SCTP header of a whole (not quoted) packet.
pub(crate) fn parse_l4(buf: &[u8], ip: &IpView) -> Result<L4, DropReason> {
    let seg = buf.get(ip.l4..ip.end).ok_or(DropReason::Truncated)?;
    let ports = |s: &[u8]| {
        (
            u16::from_be_bytes([s[0], s[1]]),
            u16::from_be_bytes([s[2], s[3]]),
        )
    };
    match ip.proto {
        PROTO_TCP => {
            if seg.len() < 20 {
                return Err(DropReason::Truncated);
            }
            let doff = usize::from(seg[12] >> 4) * 4;
            if doff < 20 || doff > seg.len() {
                return Err(DropReason::Truncated);
            }
            let (sport, dport) = ports(seg);
            Ok(L4 {
                sport,
                dport,
                tcp_flags: seg[13],
                sctp: SctpEvent::Data,
                csum: Some(CsumField {
                    at: ip.l4 + 16,
                    udp4: false,
                }),
            })
        }
        PROTO_UDP => {
            if seg.len() < 8 {
                return Err(DropReason::Truncated);
            }
            let len = usize::from(u16::from_be_bytes([seg[4], seg[5]]));
            if len < 8 || len > seg.len() {
                return Err(DropReason::Truncated);
            }
            let (sport, dport) = ports(seg);
            Ok(L4 {
                sport,
                dport,
                tcp_flags: 0,
                sctp: SctpEvent::Data,
                csum: Some(CsumField {
                    at: ip.l4 + 6,
                    udp4: !ip.v6,
                }),
            })
        }
        PROTO_SCTP => {
            // Common header (12) and at least one chunk header (4).
            if seg.len() < 16 {
                return Err(DropReason::Truncated);
            }
            let first = seg[12];
            let first_len = usize::from(u16::from_be_bytes([seg[14], seg[15]]));
            let next = 12 + first_len.div_ceil(4) * 4;
            let second = if first_len >= 4 && next + 4 <= seg.len() {
                Some(seg[next])
            } else {
                None
            };
            let (sport, dport) = ports(seg);
            Ok(L4 {
                sport,
                dport,
                tcp_flags: 0,
                sctp: sctp_packet_event(first, second),
                csum: None,
            })
        }
        _ => Err(DropReason::BadIpHeader),
    }
}

/// Replaces `new.len()` bytes at `at` (2, 4 or 16), keeping each checksum in
/// `csums` right (RFC 1624). Offsets are in bounds by construction.
pub(crate) fn replace(buf: &mut [u8], at: usize, new: &[u8], csums: &[CsumField]) {
    let mut old = [0u8; 16];
    let n = new.len();
    old[..n].copy_from_slice(&buf[at..at + n]);
    for c in csums {
        let cur = u16::from_be_bytes([buf[c.at], buf[c.at + 1]]);
        if c.udp4 && cur == 0 {
            continue;
        }
        let mut v = checksum_adjust(cur, &old[..n], new);
        if c.udp4 && v == 0 {
            v = 0xffff;
        }
        put16(buf, c.at, v);
    }
    buf[at..at + n].copy_from_slice(new);
}

/// The bytes of an address.
pub(crate) fn addr_bytes(a: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        IpAddr::V6(v6) => {
            b.copy_from_slice(&v6.octets());
            (b, 16)
        }
    }
}

/// Decrements the TTL / hop limit of the IP header at `ip`, updating the
/// IPv4 header checksum.
pub(crate) fn decrement_ttl(buf: &mut [u8], ip: usize, v6: bool) {
    if v6 {
        buf[ip + 7] = buf[ip + 7].saturating_sub(1);
    } else {
        let old = [buf[ip + 8], buf[ip + 9]];
        let new = [old[0].saturating_sub(1), old[1]];
        replace(
            buf,
            ip + 8,
            &new,
            &[CsumField {
                at: ip + 10,
                udp4: false,
            }],
        );
    }
}

/// The pseudo-header sum of a transport segment (RFC 793 / RFC 8200 §8.1).
pub(crate) fn pseudo_sum(src: &IpAddr, dst: &IpAddr, proto: u8, len: usize) -> u32 {
    let (s, n) = addr_bytes(src);
    let (d, _) = addr_bytes(dst);
    let mut sum = checksum_sum(0, &s[..n]);
    sum = checksum_sum(sum, &d[..n]);
    sum += u32::from(proto);
    sum += (len as u32) >> 16;
    sum += (len as u32) & 0xffff;
    sum
}

/// Computes and stores the full checksum of the segment `buf[l4..end]`
/// whose checksum field is at `field` (TCP, UDP, ICMPv6 with a
/// pseudo-header; ICMPv4 without: `pseudo` = None).
pub(crate) fn fill_checksum(
    buf: &mut [u8],
    l4: usize,
    end: usize,
    field: usize,
    pseudo: Option<(IpAddr, IpAddr, u8)>,
    udp: bool,
) {
    put16(buf, field, 0);
    let start = match pseudo {
        Some((s, d, p)) => pseudo_sum(&s, &d, p, end - l4),
        None => 0,
    };
    let mut v = checksum_fold(checksum_sum(start, &buf[l4..end]));
    if udp && v == 0 {
        v = 0xffff;
    }
    put16(buf, field, v);
}

/// Fills the IPv4 header checksum of the header at `ip`.
pub(crate) fn fill_ipv4_checksum(buf: &mut [u8], ip: usize) {
    let ihl = usize::from(buf[ip] & 0x0f) * 4;
    put16(buf, ip + 10, 0);
    let v = checksum_fold(checksum_sum(0, &buf[ip..ip + ihl]));
    put16(buf, ip + 10, v);
}

/// CRC32c (Castagnoli), as SCTP uses it (RFC 4960 appendix B).
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Recomputes the CRC32c of the SCTP packet `buf[l4..end]`.
pub(crate) fn fill_sctp_checksum(buf: &mut [u8], l4: usize, end: usize) {
    buf[l4 + 8..l4 + 12].copy_from_slice(&[0; 4]);
    let crc = crc32c(&buf[l4..end]);
    // The CRC goes on the wire least significant byte first.
    buf[l4 + 8..l4 + 12].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
