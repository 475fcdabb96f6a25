//! Any text given to the rules-file reader yields rules or a located error,
//! never a panic; rules that load save back to text that loads again to the
//! same rules. (The same lines: ipvsadm's list order compares addresses as
//! a wrapped 32-bit difference, which is not a total order, so addresses
//! 2^31 or more apart may come out in another order after a round trip,
//! exactly as with ipvsadm.)
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
            let lines = |t: &str| {
                let mut v: Vec<String> = t.lines().map(str::to_string).collect();
                v.sort();
                v
            };
            assert_eq!(lines(&rvs_ipvsadm::director::save(&again)), lines(&saved));
        }
        Err(e) => assert!(e.0.starts_with("fuzz.rules:")),
    }
});
