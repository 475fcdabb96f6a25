//! What the VRRP receive path does with a raw socket's bytes: the IPv4
//! header parse, the advert decode and the state machine, in both states.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rvs_core::vrrp::{VrrpConfig, VrrpInstance};

fuzz_target!(|data: &[u8]| {
    let Some((ttl, src, dst, payload)) = rvs_ha::parse_ipv4(data) else {
        return;
    };
    let Ok(pkt) = rvs_wire::vrrp::decode(payload, IpAddr::V4(src), IpAddr::V4(dst)) else {
        return;
    };
    for priority in [100, 255] {
        let mut cfg = VrrpConfig::new(
            51,
            "192.0.2.2".parse().unwrap(),
            vec!["192.0.2.100".parse().unwrap()],
        );
        cfg.priority = priority;
        cfg.skip_check_adv_addr = true;
        let mut i = VrrpInstance::new(cfg).unwrap();
        i.start(0);
        let _ = i.handle_advert(10, IpAddr::V4(src), ttl, &pkt);
        while i.poll_action().is_some() {}
        if let Some(t) = i.poll_timeout() {
            i.handle_timeout(t);
        }
        while i.poll_action().is_some() {}
    }
});
