//! Whatever `ip -j route get` and `ip -j neigh show` print, the data
//! plane's readers return a route, neighbours or nothing, never a panic;
//! every neighbour they keep has a MAC that prints back as it parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::neigh::{parse_mac, parse_neighbours, parse_route};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_route(text);
    for mac in parse_neighbours(text).values() {
        let s = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_mac(&s), Some(*mac));
    }
    if let Some(m) = parse_mac(text) {
        assert_eq!(text.split(':').count(), 6);
        let _ = m;
    }
});
