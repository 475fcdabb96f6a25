//! LVS-TUN outer headers (ipvs-behaviour.md §1.6): IPIP, GUE and GRE over
//! IPv4 or IPv6.

use std::net::IpAddr;

use rvs_core::model::{Tunnel, TunnelCsum, TunnelType};

use crate::wire::{
    ETH_HDR, IPV4_HDR, IPV6_HDR, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_UDP, addr_bytes,
    fill_checksum, fill_ipv4_checksum, put16,
};

const GUE_HDR: usize = 4;
const UDP_HDR: usize = 8;

/// What goes into the outer headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outer {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TOS / traffic class, copied from the inner header (ECN included).
    pub tos: u8,
    /// TTL / hop limit, copied from the inner header (already decremented).
    pub ttl: u8,
    /// DF, copied from an inner IPv4 header (false for IPv6 inner).
    pub df: bool,
    /// IPv4 identification (0 when DF is set).
    pub id: u16,
    pub inner_v6: bool,
    pub tunnel: Tunnel,
    /// GUE source port (a hash of the inner flow).
    pub gue_src_port: u16,
}

/// Whether the GRE header carries a checksum.
fn gre_csum(t: &Tunnel) -> bool {
    t.csum == TunnelCsum::Csum
}

/// Bytes the encapsulation adds before the inner packet.
pub(crate) fn overhead(outer_v6: bool, t: &Tunnel) -> usize {
    let ip = if outer_v6 { IPV6_HDR } else { IPV4_HDR };
    ip + match t.kind {
        TunnelType::Ipip => 0,
        TunnelType::Gue => UDP_HDR + GUE_HDR,
        TunnelType::Gre => {
            if gre_csum(t) {
                8
            } else {
                4
            }
        }
    }
}

/// Writes the outer IP header and the tunnel header into
/// `out[ETH_HDR..ETH_HDR + overhead]`; the inner packet already lies at
/// `out[ETH_HDR + overhead..end]`.
pub(crate) fn write_outer(out: &mut [u8], end: usize, o: &Outer) {
    let outer_v6 = o.dst.is_ipv6();
    let ip = ETH_HDR;
    let iph = if outer_v6 { IPV6_HDR } else { IPV4_HDR };
    let th = ip + iph;
    let inner_proto = if o.inner_v6 { PROTO_IPV6 } else { PROTO_IPIP };
    let inner_ethertype: u16 = if o.inner_v6 { 0x86dd } else { 0x0800 };
    let next = match o.tunnel.kind {
        TunnelType::Ipip => inner_proto,
        TunnelType::Gue => PROTO_UDP,
        TunnelType::Gre => PROTO_GRE,
    };
    let (s, n) = addr_bytes(&o.src);
    let (d, _) = addr_bytes(&o.dst);
    if outer_v6 {
        out[ip] = 0x60 | (o.tos >> 4);
        out[ip + 1] = o.tos << 4;
        out[ip + 2] = 0;
        out[ip + 3] = 0;
        put16(out, ip + 4, (end - th) as u16);
        out[ip + 6] = next;
        out[ip + 7] = o.ttl;
        out[ip + 8..ip + 24].copy_from_slice(&s[..n]);
        out[ip + 24..ip + 40].copy_from_slice(&d[..n]);
    } else {
        out[ip] = 0x45;
        out[ip + 1] = o.tos;
        put16(out, ip + 2, (end - ip) as u16);
        put16(out, ip + 4, o.id);
        put16(out, ip + 6, if o.df { 0x4000 } else { 0 });
        out[ip + 8] = o.ttl;
        out[ip + 9] = next;
        out[ip + 12..ip + 16].copy_from_slice(&s[..n]);
        out[ip + 16..ip + 20].copy_from_slice(&d[..n]);
        fill_ipv4_checksum(out, ip);
    }
    match o.tunnel.kind {
        TunnelType::Ipip => {}
        TunnelType::Gue => {
            put16(out, th, o.gue_src_port);
            put16(out, th + 2, o.tunnel.port);
            put16(out, th + 4, (end - th) as u16);
            put16(out, th + 6, 0);
            // Version 0, C 0, no option words; the inner protocol; no flags.
            out[th + 8..th + 12].copy_from_slice(&[0, inner_proto, 0, 0]);
            if o.tunnel.csum == TunnelCsum::Csum {
                fill_checksum(out, th, end, th + 6, Some((o.src, o.dst, PROTO_UDP)), true);
            }
        }
        TunnelType::Gre => {
            let csum = gre_csum(&o.tunnel);
            put16(out, th, if csum { 0x8000 } else { 0 });
            put16(out, th + 2, inner_ethertype);
            if csum {
                put16(out, th + 6, 0);
                fill_checksum(out, th, end, th + 4, None, false);
            }
        }
    }
}

/// A flow hash of the inner packet mapped onto `[lo, hi]`, the GUE source
/// port (as `udp_flow_src_port` spreads flows over the local port range).
pub(crate) fn flow_port(
    src: &IpAddr,
    dst: &IpAddr,
    proto: u8,
    ports: u32,
    range: (u16, u16),
) -> u16 {
    let (s, n) = addr_bytes(src);
    let (d, _) = addr_bytes(dst);
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(proto);
    for chunk in s[..n].chunks(4).chain(d[..n].chunks(4)) {
        let w = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        h = (h ^ u64::from(w)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
    }
    h = (h ^ u64::from(ports)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^= h >> 33;
    let (lo, hi) = if range.0 <= range.1 {
        range
    } else {
        (range.1, range.0)
    };
    let span = u64::from(hi - lo) + 1;
    lo + (((h & 0xffff_ffff) * span) >> 32) as u16
}
