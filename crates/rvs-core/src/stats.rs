//! Statistics counters and the IPVS rate estimator.
//!
//! STUB: signatures fixed, bodies to be written.
