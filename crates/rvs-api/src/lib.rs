//! The control API of `rvsd`: JSON request and response types.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
