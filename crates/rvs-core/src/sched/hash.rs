//! The kernel's hash functions as the IPVS schedulers use them.
//!
//! * [`hash_32`]: the generic `hash_32()` of `<linux/hash.h>` (the top bits
//!   of a multiplication by `GOLDEN_RATIO_32`), used by sh, dh and the
//!   lblc/lblcr tables.
//! * [`hsiphash`]: `hsiphash()` as built on 64-bit kernels, which is
//!   SipHash-1-3 keyed with two 64-bit words and truncated to 32 bits; mh
//!   uses it with fixed keys so that every director builds the same table.
//! * [`addr_fold`]: the 32-bit folding of an address all of them start from.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

/// `GOLDEN_RATIO_32` of `<linux/hash.h>`.
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The kernel's `hash_32(val, bits)`: the top `bits` bits of
/// `val * GOLDEN_RATIO_32` (mod 2^32). `bits` must be in `1..=32`; values
/// outside are clamped so that the function never panics.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    let bits = bits.clamp(1, 32);
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// An address folded to 32 bits in host order (`ntohl(addr_fold)`): the
/// IPv4 address itself, or the XOR of the four big-endian 32-bit words of
/// an IPv6 address. (XOR commutes with the byte swap, so folding the
/// network-order words and swapping once gives the same value.)
pub fn addr_fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            o.chunks_exact(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .fold(0, |acc, w| acc ^ w)
        }
    }
}

/// A 128-bit SipHash key as two 64-bit words (`hsiphash_key_t` on 64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipKey(pub u64, pub u64);

/// The 64-bit kernel's `hsiphash(data, len, key)`: SipHash-1-3 over the
/// bytes, result truncated to 32 bits.
pub fn hsiphash(data: &[u8], key: SipKey) -> u32 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    h.write(data);
    // The kernel returns (u32)(v0 ^ v1 ^ v2 ^ v3), the low half of the
    // 64-bit SipHash result.
    h.finish() as u32
}

/// `hsiphash` of one `u32` laid out as in memory on x86_64 (little-endian),
/// which is how mh hashes its 4-byte key.
pub fn hsiphash_u32(v: u32, key: SipKey) -> u32 {
    hsiphash(&v.to_le_bytes(), key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn hash_32_is_top_bits_of_golden_product() {
        assert_eq!(hash_32(0, 8), 0);
        // 1 * 0x61C88647 = 0x61C88647 → top byte 0x61.
        assert_eq!(hash_32(1, 8), 0x61);
        // 2 * 0x61C88647 = 0xC3910C8E → top byte 0xC3.
        assert_eq!(hash_32(2, 8), 0xC3);
        // 3 * 0x61C88647 = 0x1_2559_92D5 → mod 2^32 0x255992D5 → 0x25.
        assert_eq!(hash_32(3, 8), 0x25);
        assert_eq!(hash_32(1, 10), 0x61C8_8647 >> 22);
        assert_eq!(hash_32(1, 32), 0x61C8_8647);
    }

    #[test]
    fn fold_ipv4_and_ipv6() {
        assert_eq!(
            addr_fold(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            0x0A00_0001
        );
        let a: Ipv6Addr = "2001:db8:0:1::2".parse().unwrap();
        // Words 0x20010db8, 0x00000001, 0x00000000, 0x00000002.
        assert_eq!(addr_fold(&IpAddr::V6(a)), 0x2001_0db8 ^ 1 ^ 2);
    }

    /// Reference vectors of 64-bit `hsiphash` (SipHash-1-3 truncated), as
    /// published with the kernel's siphash self-test: key bytes 00..0f,
    /// message bytes 00..len-1.
    #[test]
    fn hsiphash_reference_vectors() {
        let key = SipKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: Vec<u8> = (0u8..64).collect();
        let expect: [(usize, u32); 6] = [
            (0, 0x050f_c4dc),
            (1, 0x7d57_ca93),
            (4, 0x88d3_8328),
            (8, 0x8d29_9a8e),
            (16, 0x7d90_8b66),
            (63, 0xb7bb_b3a8),
        ];
        for (len, want) in expect {
            assert_eq!(hsiphash(&msg[..len], key), want, "len {len}");
        }
        // The 4-byte form mh uses: bytes 00 01 02 03 = 0x03020100 LE.
        assert_eq!(hsiphash_u32(0x0302_0100, key), 0x88d3_8328);
    }
}
