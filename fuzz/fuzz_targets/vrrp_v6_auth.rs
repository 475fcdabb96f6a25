//! The IPv6 receive path (advert decode with the pseudo-header of a
//! link-local source and ff02::12, the state machine of an IPv6 instance),
//! the VRRPv2 password check on any decoded advert, and a reload of the
//! instance with a priority and an address list taken from the input.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rvs_core::vrrp::{VrrpConfig, VrrpInstance};
use rvs_wire::vrrp::{MCAST_V4, MCAST_V6, auth_pass_data, check_auth, decode};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let src6: Ipv6Addr = "fe80::2".parse().unwrap();
    let pass = auth_pass_data(b"s3cret").unwrap();
    if let Ok(pkt) = decode(rest, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), MCAST_V4.into()) {
        let _ = check_auth(&pkt, Some(&pass));
        let _ = check_auth(&pkt, None);
    }
    let Ok(pkt) = decode(rest, src6.into(), MCAST_V6.into()) else {
        return;
    };
    let _ = check_auth(&pkt, None);
    let vip: IpAddr = "2001:db8::100".parse().unwrap();
    let mut cfg = VrrpConfig::new(51, "fe80::1".parse().unwrap(), vec![vip]);
    cfg.priority = first.max(1);
    cfg.skip_check_adv_addr = first & 1 == 1;
    let mut i = VrrpInstance::new(cfg.clone()).unwrap();
    i.start(0);
    let _ = i.handle_advert(10, src6.into(), 255, &pkt);
    while i.poll_action().is_some() {}
    let mut again = cfg;
    again.priority = first.rotate_left(3).max(1);
    again.vips = pkt.addrs().into_iter().filter(IpAddr::is_ipv6).collect();
    let _ = i.reconfigure(20, again);
    while i.poll_action().is_some() {}
    if let Some(t) = i.poll_timeout() {
        i.handle_timeout(t);
    }
    while i.poll_action().is_some() {}
});
