//! The pure core of rvs: the IPVS object model, all fourteen IPVS schedulers,
//! the connection table with the IPVS protocol state machines, persistence
//! templates, statistics and the rate estimator; the VRRP state machine and
//! the IPVS connection synchronisation logic that let a backup director take
//! over without losing connections.
//!
//! Nothing here performs I/O, reads a clock or draws randomness: time is a
//! parameter (milliseconds of a monotonic clock chosen by the caller) and
//! random sources and hash keys are handed in. The same inputs therefore give
//! the same decisions, which is what lets `rvsadm replay` act as the
//! conformance harness of this crate.
//!
//! Panics: no public function panics on any input; invalid requests return
//! [`error::Error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod conn;
pub mod director;
pub mod dns_query;
pub mod health;
pub mod model;
pub mod probe;
pub mod resync;
pub mod sched;
pub mod sctp;
pub mod state;
pub mod stats;
pub mod sync;
pub mod timer;
pub mod vrrp;
