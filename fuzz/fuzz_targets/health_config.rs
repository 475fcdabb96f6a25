//! Any text given to the configuration parser, and any JSON given as a
//! server body of the control API, is accepted or refused without a panic;
//! an accepted file has a health plan for every server it lists, and a
//! refused one points inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_config::health::server_settings;
use rvs_config::spec::ServerSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match rvs_config::parse(text, "f.toml") {
        Ok(cfg) => {
            for s in &cfg.services {
                assert_eq!(s.health.servers.len(), s.servers.len());
                for (_, h) in &s.health.servers {
                    assert_eq!(h.config.checkers.len(), h.probes.len());
                    for c in &h.config.checkers {
                        assert!(c.rise >= 1 && c.fall >= 1);
                    }
                }
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            assert!(e.line <= text.lines().count().max(1) + 1);
        }
    }
    if let Ok(server) = serde_json::from_str::<ServerSpec>(text)
        && let Ok(h) = server_settings(None, &server)
    {
        assert_eq!(h.config.checkers.len(), h.probes.len());
    }
});
