//! Any text given to the rules-file reader yields rules or a located error,
//! never a panic; rules that load save back to text that loads again to the
//! same rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::director::DirectorConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match rvs_replay::load_rules(text, "fuzz.rules", DirectorConfig::default()) {
        Ok(d) => {
            let saved = rvs_ipvsadm::director::save(&d);
            let again = rvs_replay::load_rules(&saved, "saved.rules", DirectorConfig::default())
                .expect("saved rules load");
            assert_eq!(rvs_ipvsadm::director::save(&again), saved);
        }
        Err(e) => assert!(e.0.starts_with("fuzz.rules:")),
    }
});
