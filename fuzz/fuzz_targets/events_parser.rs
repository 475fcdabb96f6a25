//! Any text given to the events-file reader yields events or a located
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = rvs_replay::parse_events(text) {
        assert!(e.line >= 1 && e.column >= 1);
    }
});
