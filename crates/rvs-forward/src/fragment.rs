//! IPv4 fragmentation of a forwarded packet that no longer fits the route's
//! MTU ([`Verdict::Fragment`](crate::Verdict::Fragment)), as the kernel's
//! `ip_do_fragment` cuts it (RFC 791 §3.2):
//!
//! - every fragment but the last carries the largest multiple of 8 payload
//!   bytes that fits the MTU after the header; offsets are in 8-byte units
//!   and continue the packet's own offset (a packet that is itself a
//!   fragment keeps its place and its MF on the last piece);
//! - the identification, TOS, TTL, protocol and addresses are the packet's;
//!   DF is clear in every fragment (the kernel fragments only packets
//!   without DF, or tunnelled ones with `pmtu_disc` off, and its
//!   fragments never carry DF); the header checksum is computed per
//!   fragment;
//! - options: the first fragment carries them all; later fragments keep
//!   the same header length with every option whose copy flag (the type's
//!   high bit) is clear overwritten by NOPs, as the kernel's
//!   `ip_options_fragment` does, so the copied options (security, source
//!   routes) stay where they were and every fragment has one header size.
//!
//! Hand-written: it runs only on the slow path, but it writes straight into
//! the I/O layer's transmit slots, one fragment at a time, which no
//! fragmentation crate offers.

use crate::wire::{ETH_HDR, ETHERTYPE_IPV4, IPV4_HDR, be16, fill_ipv4_checksum, put16};

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
/// The copy flag of an option type: copied into every fragment.
const OPT_COPIED: u8 = 0x80;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// The fragments of one IPv4 frame for a given MTU, written one at a time
/// into buffers the caller supplies (a transmit slot each).
///
/// ```
/// # let frame = [0u8; 0];
/// if let Some(mut frags) = rvs_forward::Fragments::new(&frame, 1400) {
///     let mut buf = vec![0u8; frags.max_frame_len()];
///     while let Some(len) = frags.next_into(&mut buf) {
///         // transmit buf[..len]
///         let _ = len;
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Fragments<'a> {
    frame: &'a [u8],
    /// IP header length.
    ihl: usize,
    /// Payload bytes (after the IP header).
    payload: usize,
    /// Payload bytes of every fragment but the last (a multiple of 8), or
    /// all of them when the packet fits.
    chunk: usize,
    /// Payload offset of the next fragment.
    next: usize,
    /// The packet's own fragment offset (8-byte units) and MF flag.
    base: u16,
    more: bool,
    /// The packet fits: it goes out as it is, in one frame.
    fits: bool,
    /// The header of the fragments after the first (checksum not filled).
    later: [u8; 60],
}

impl<'a> Fragments<'a> {
    /// The fragments of `frame` (Ethernet and an IPv4 packet, padding
    /// allowed after it) for a route of `mtu` bytes. A packet that fits
    /// is one "fragment": the frame as it is (padding excluded). `None`
    /// when the frame is not a well-formed IPv4 packet, its options cannot
    /// be walked, or the MTU leaves fewer than 8 payload bytes a fragment.
    pub fn new(frame: &'a [u8], mtu: u16) -> Option<Fragments<'a>> {
        if be16(frame, 12)? != ETHERTYPE_IPV4 {
            return None;
        }
        let h = frame.get(ETH_HDR..ETH_HDR + IPV4_HDR)?;
        if h[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if ihl < IPV4_HDR || total < ihl || frame.len() < ETH_HDR + total {
            return None;
        }
        let header = &frame[ETH_HDR..ETH_HDR + ihl];
        let mut later = [0u8; 60];
        later[..ihl].copy_from_slice(header);
        blank_uncopied_options(&mut later[IPV4_HDR..ihl])?;
        let flags = u16::from_be_bytes([h[6], h[7]]);
        let mtu = usize::from(mtu);
        let payload = total - ihl;
        let fits = total <= mtu;
        let chunk = if fits {
            payload
        } else {
            let room = mtu.checked_sub(ihl)? & !7;
            if room == 0 {
                return None;
            }
            room
        };
        Some(Fragments {
            frame,
            ihl,
            payload,
            chunk,
            next: 0,
            base: flags & OFFSET_MASK,
            more: flags & FLAG_MF != 0,
            fits,
            later,
        })
    }

    /// How many frames the packet makes.
    pub fn count(&self) -> usize {
        if self.fits || self.payload == 0 {
            1
        } else {
            self.payload.div_ceil(self.chunk)
        }
    }

    /// The longest frame [`Fragments::next_into`] writes: a buffer this
    /// long takes every fragment.
    pub fn max_frame_len(&self) -> usize {
        ETH_HDR + self.ihl + self.chunk
    }

    /// Writes the next fragment (Ethernet header included) into `out` and
    /// returns its length; `None` when every fragment was written, or when
    /// `out` is shorter than the fragment (nothing is written then, and
    /// the same fragment comes next time).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        let first = self.next == 0;
        if !first && self.next >= self.payload {
            return None;
        }
        let take = self.chunk.min(self.payload - self.next);
        let len = ETH_HDR + self.ihl + take;
        let out = out.get_mut(..len)?;
        let ip = ETH_HDR;
        let data = ip + self.ihl;
        if self.fits {
            out.copy_from_slice(&self.frame[..len]);
            self.next = self.payload.max(1);
            return Some(len);
        }
        out[..ETH_HDR].copy_from_slice(&self.frame[..ETH_HDR]);
        if first {
            out[ip..data].copy_from_slice(&self.frame[ip..data]);
        } else {
            out[ip..data].copy_from_slice(&self.later[..self.ihl]);
        }
        let last = self.next + take == self.payload;
        let offset = self.base + (self.next / 8) as u16;
        let mf = if !last || self.more { FLAG_MF } else { 0 };
        put16(out, ip + 2, (self.ihl + take) as u16);
        put16(out, ip + 6, (offset & OFFSET_MASK) | mf);
        fill_ipv4_checksum(out, ip);
        let from = ETH_HDR + self.ihl + self.next;
        out[data..].copy_from_slice(&self.frame[from..from + take]);
        self.next += take;
        Some(len)
    }
}

/// Whether a received IPv4 packet's options can be walked (what
/// [`Fragments::new`] needs).
pub(crate) fn options_walk(header: &[u8]) -> bool {
    let mut copy = [0u8; 60];
    let Some(opts) = header.get(IPV4_HDR..) else {
        return false;
    };
    match copy.get_mut(..opts.len()) {
        Some(c) => {
            c.copy_from_slice(opts);
            blank_uncopied_options(c).is_some()
        }
        None => false,
    }
}

/// Overwrites every option whose copy flag is clear with NOPs; `None` when
/// an option's length runs past the header or is below 2.
fn blank_uncopied_options(opts: &mut [u8]) -> Option<()> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            OPT_END => break,
            OPT_NOP => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind & OPT_COPIED == 0 {
                    opts[i..i + len].fill(OPT_NOP);
                }
                i += len;
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_blanked_unless_copied() {
        // NOP, record route (7, not copied, 7 bytes), LSRR (0x83, copied,
        // 7 bytes), end, padding.
        let mut o = [1, 7, 7, 4, 0, 0, 0, 0, 0x83, 7, 4, 192, 0, 2, 1, 0];
        blank_uncopied_options(&mut o).unwrap();
        assert_eq!(o, [1, 1, 1, 1, 1, 1, 1, 1, 0x83, 7, 4, 192, 0, 2, 1, 0]);
        assert!(blank_uncopied_options(&mut [0x44, 1, 0, 0]).is_none());
        assert!(blank_uncopied_options(&mut [0x44, 9, 0, 0]).is_none());
        assert!(blank_uncopied_options(&mut [0x44]).is_none());
    }
}
