//! The packet data plane of `rvsd`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod claim;
pub mod neigh;
