//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers that
//! VRRPv3 and ICMPv6 cover.

use std::net::IpAddr;

/// Adds `data` to a running one's-complement sum (16-bit big-endian words,
/// an odd trailing byte padded with zero).
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*b) << 8);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Folds a running sum into the final checksum value.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The running sum of a pseudo-header: IPv4 (src, dst, zero, protocol,
/// length) or IPv6 (src, dst, 32-bit length, three zero bytes, next
/// header). `None` when the two addresses are of different families.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> Option<u32> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let acc = sum(0, &s.octets());
            let acc = sum(acc, &d.octets());
            let len16 = u16::try_from(len).ok()?;
            Some(sum(acc, &[0, proto, (len16 >> 8) as u8, len16 as u8]))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let acc = sum(0, &s.octets());
            let acc = sum(acc, &d.octets());
            let acc = sum(acc, &len.to_be_bytes());
            Some(sum(acc, &[0, 0, 0, proto]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 §3: the sum is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), checksum(&[0x12, 0x00]));
    }
}
