//! The 256-bucket tables of sh and dh.

use super::{DestId, Dests};

/// Number of buckets (`IP_VS_SH_TAB_BITS` / `IP_VS_DH_TAB_BITS` = 8).
pub(crate) const TAB_BITS: u32 = 8;
/// Table size.
pub(crate) const TAB_SIZE: usize = 1 << TAB_BITS;

/// Fills a table by walking the list round-robin from the head, giving each
/// destination `per_visit(weight)` consecutive buckets per visit; an empty
/// list leaves every bucket empty.
pub(crate) fn fill(dests: Dests<'_>, per_visit: impl Fn(u32) -> u64) -> Box<[Option<DestId>]> {
    let mut table = vec![None; TAB_SIZE].into_boxed_slice();
    if dests.is_empty() {
        return table;
    }
    let mut pos = 0usize;
    let mut count = 0u64;
    for slot in table.iter_mut() {
        let id = dests.order[pos];
        *slot = Some(id);
        count += 1;
        // The kernel moves on once `++count >= weight`, so a weight-0 entry
        // still takes one bucket.
        if count >= per_visit(dests.get(id).weight) {
            count = 0;
            pos = (pos + 1) % dests.len();
        }
    }
    table
}
