//! IPVS sync (placeholder)
