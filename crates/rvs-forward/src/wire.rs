//! Header offsets and bounds-checked field access.
