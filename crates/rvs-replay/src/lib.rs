//! `rvsadm replay`: a deterministic offline simulator of the rvs core.
//!
//! A rules file (ipvsadm `-R` lines) sets up the director; an events file
//! then drives it in virtual time: connections open and close, ipvsadm
//! commands change rules, and `list` prints what `ipvsadm -Ln` would print
//! at that moment. The packets behind `open` and `close` are fixed, so the
//! output depends only on the two files and the seed. This is both a tool
//! for operators ("where would this client go?") and the conformance
//! harness of the core.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod events;
mod run;

pub use events::{Event, EventError, EventLine, parse_events};
pub use run::{Replay, ReplayError, load_rules};
