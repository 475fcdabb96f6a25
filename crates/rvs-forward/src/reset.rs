//! TCP resets the forwarder sends for a virtual service, as the kernel's
//! director does: IPVS holds the VIP as a local address, so a segment for
//! a service port that matches no connection (and cannot start one) falls
//! through to the director's own TCP stack, which answers it with a reset.
//! Without the reset a client whose connection entry was expired
//! (`expire_nodest_conn`) or lost (a director restarted without
//! connection sync) would wait for its own timeouts instead of being told
//! at once that the connection is gone.

use crate::wire::{ETH_HDR, IPV4_HDR, IPV6_HDR, IpView, PROTO_TCP, addr_bytes, fill_checksum};
use crate::wire::{fill_ipv4_checksum, put16};

/// Hop limit of the resets the forwarder originates.
const RESET_TTL: u8 = 64;
const TCP_HDR: usize = 20;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// Writes into `out` the Ethernet frame of a reset answering the TCP
/// segment `ip` of `frame` (RFC 9293 §3.10.7.1: the sequence number is the
/// segment's acknowledgment when it has one; otherwise sequence 0 and an
/// acknowledgment of everything the segment occupied), from the address
/// and port it was sent to. Returns its length; `None` when the segment is
/// itself a reset, is too short, or `out` is too small.
pub(crate) fn build_reset(frame: &[u8], ip: &IpView, out: &mut [u8]) -> Option<usize> {
    let t = ip.l4;
    let flags = *frame.get(t + 13)?;
    if flags & RST != 0 {
        return None;
    }
    let doff = usize::from(frame.get(t + 12)? >> 4) * 4;
    let payload = ip.end.checked_sub(t + doff)?;
    let (seq, ack) = (be32(frame, t + 4)?, be32(frame, t + 8)?);
    let hdr = if ip.v6 { IPV6_HDR } else { IPV4_HDR };
    let len = ETH_HDR + hdr + TCP_HDR;
    if out.len() < len {
        return None;
    }
    out[0..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&frame[0..6]);
    out[12..14].copy_from_slice(&frame[12..14]);
    let o = ETH_HDR;
    let (src, n) = addr_bytes(&ip.dst);
    let (dst, _) = addr_bytes(&ip.src);
    if ip.v6 {
        out[o..o + 4].copy_from_slice(&[0x60, 0, 0, 0]);
        put16(out, o + 4, TCP_HDR as u16);
        out[o + 6] = PROTO_TCP;
        out[o + 7] = RESET_TTL;
        out[o + 8..o + 24].copy_from_slice(&src[..n]);
        out[o + 24..o + 40].copy_from_slice(&dst[..n]);
    } else {
        out[o] = 0x45;
        out[o + 1] = 0;
        put16(out, o + 2, (hdr + TCP_HDR) as u16);
        // Identification 0, don't fragment.
        out[o + 4..o + 8].copy_from_slice(&[0, 0, 0x40, 0]);
        out[o + 8] = RESET_TTL;
        out[o + 9] = PROTO_TCP;
        out[o + 12..o + 16].copy_from_slice(&src[..n]);
        out[o + 16..o + 20].copy_from_slice(&dst[..n]);
        fill_ipv4_checksum(out, o);
    }
    let r = o + hdr;
    out[r..r + 2].copy_from_slice(&frame[t + 2..t + 4]);
    out[r + 2..r + 4].copy_from_slice(&frame[t..t + 2]);
    let (rseq, rack, rflags) = if flags & ACK != 0 {
        (ack, 0, RST)
    } else {
        let occupied = payload as u32 + u32::from(flags & SYN != 0) + u32::from(flags & FIN != 0);
        (0, seq.wrapping_add(occupied), RST | ACK)
    };
    out[r + 4..r + 8].copy_from_slice(&rseq.to_be_bytes());
    out[r + 8..r + 12].copy_from_slice(&rack.to_be_bytes());
    out[r + 12] = (TCP_HDR as u8 / 4) << 4;
    out[r + 13] = rflags;
    // Window, checksum (filled below), urgent pointer.
    out[r + 14..r + 20].fill(0);
    fill_checksum(
        out,
        r,
        len,
        r + 16,
        Some((ip.dst, ip.src, PROTO_TCP)),
        false,
    );
    Some(len)
}
