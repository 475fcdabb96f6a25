//! Any datagram given to the resync decoder gives a request, an answer or
//! an error, never a panic; what decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_wire::resync::{self, Datagram};

fuzz_target!(|data: &[u8]| {
    let Ok(d) = resync::decode(data) else {
        return;
    };
    let bytes = match d {
        Datagram::Request(r) => r.to_bytes(),
        Datagram::Answer(a) => a.to_bytes(),
    };
    assert_eq!(bytes, data);
});
