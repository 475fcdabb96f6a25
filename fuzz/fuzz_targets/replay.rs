//! A fixed rules file and arbitrary events: the director never panics,
//! whatever the events do to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::director::DirectorConfig;

const RULES: &str = "\
-A -t 203.0.113.10:80 -s wlc
-a -t 203.0.113.10:80 -r 192.0.2.11:8080 -m -w 2 -x 3
-a -t 203.0.113.10:80 -r 192.0.2.12:8080 -g -w 1
-A -t 203.0.113.10:443 -s mh -p 60 -M 255.255.255.0 -b mh-fallback
-a -t 203.0.113.10:443 -r 192.0.2.11:443 -g
-a -t 203.0.113.10:443 -r 192.0.2.12:443 -g -w 0
-A -u 203.0.113.53:53 -s sh -o
-a -u 203.0.113.53:53 -r 192.0.2.21:53 -i
-A -f 7 -s lblcr -p
-a -f 7 -r 192.0.2.31:0 -m
";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(events) = rvs_replay::parse_events(text) else {
        return;
    };
    let d = rvs_replay::load_rules(RULES, "fuzz.rules", DirectorConfig::default())
        .expect("fixed rules load");
    let mut r = rvs_replay::Replay::new(d);
    r.run(&events);
});
