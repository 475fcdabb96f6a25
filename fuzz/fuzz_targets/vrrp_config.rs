//! Any text given to the configuration parser is accepted or refused
//! without a panic; in an accepted file every virtual address has a prefix
//! and an interface, and every sync group names existing instances, each
//! instance in one group at most. Seed with a `[[vrrp_instance]]` /
//! `[[vrrp_sync_group]]` file to reach these tables quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match rvs_config::parse(text, "f.toml") {
        Ok(cfg) => {
            for i in &cfg.vrrp_instances {
                assert_eq!(i.vip_prefix.len(), i.vrrp.vips.len());
                assert_eq!(i.vip_interfaces.len(), i.vrrp.vips.len());
                assert!(i.vip_interfaces.iter().all(|d| !d.is_empty()));
            }
            let mut seen = Vec::new();
            for g in &cfg.vrrp_sync_groups {
                assert!(!g.members.is_empty());
                for &m in &g.members {
                    assert!(m < cfg.vrrp_instances.len());
                    assert!(!seen.contains(&m));
                    seen.push(m);
                }
            }
        }
        Err(e) => assert!(e.line >= 1 && e.column >= 1),
    }
});
