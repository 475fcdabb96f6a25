//! A hashed timer wheel in virtual time.
//!
//! STUB: signatures fixed, bodies to be written.
