//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` to a running one's-complement sum (not folded). Odd lengths
/// are padded with a zero byte, as RFC 1071 says.
pub fn checksum_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        // Fold early enough that the u32 never overflows.
        if sum & 0x8000_0000 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

/// Folds a running sum to 16 bits and complements it: the value to store in
/// a checksum field.
pub fn checksum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 1624 eqn. 3: the new checksum `HC' = ~(~HC + ~m + m')` after the
/// 16-bit words `old` of the covered data were replaced by `new` (same
/// length, an even number of bytes).
pub fn checksum_adjust(check: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut sum = u32::from(!check);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    checksum_fold(sum)
}
