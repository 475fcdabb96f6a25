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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of these bytes is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum_fold(checksum_sum(0, &data)), !0xddf2);
    }

    proptest! {
        #[test]
        fn incremental_update_equals_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            at in any::<usize>(),
            new in any::<[u8; 4]>(),
        ) {
            let len = data.len() & !1;
            data.truncate(len);
            let n = if len >= 4 { 4 } else { 2 };
            let at = (at % (len - n + 1)) & !1;
            let before = checksum_fold(checksum_sum(0, &data));
            let old = data[at..at + n].to_vec();
            data[at..at + n].copy_from_slice(&new[..n]);
            let after = checksum_fold(checksum_sum(0, &data));
            let adjusted = checksum_adjust(before, &old, &new[..n]);
            // 0x0000 and 0xffff are the same one's-complement value.
            prop_assert!(adjusted == after || (adjusted ^ after) == 0xffff && (after == 0 || after == 0xffff));
        }
    }
}
