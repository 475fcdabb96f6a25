//! Any bytes given to the VRRP decoder (as IPv4 or IPv6, per the first
//! byte) give an advertisement or an error, never a panic; a decoded
//! version 3 advertisement encodes back to bytes that decode to it again.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rvs_wire::vrrp::{self, Packet};

fuzz_target!(|data: &[u8]| {
    let Some((&family, bytes)) = data.split_first() else {
        return;
    };
    let (src, dst) = if family & 1 == 0 {
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(vrrp::MCAST_V4),
        )
    } else {
        (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(vrrp::MCAST_V6),
        )
    };
    if let Ok(Packet::V3(a)) = vrrp::decode(bytes, src, dst) {
        let again = a.to_bytes(src, dst).expect("a decoded advert encodes");
        assert_eq!(vrrp::decode(&again, src, dst), Ok(Packet::V3(a)));
    }
});
