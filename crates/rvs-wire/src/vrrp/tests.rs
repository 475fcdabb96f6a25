use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Splits a captured Ethernet frame into (IP src, IP dst, TTL, VRRP payload).
fn vrrp_of(frame: &[u8]) -> (IpAddr, IpAddr, u8, Vec<u8>) {
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => {
            let ip = &frame[14..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert_eq!(ip[9], IP_PROTO);
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            (src.into(), dst.into(), ip[8], ip[ihl..total].to_vec())
        }
        0x86dd => {
            let ip = &frame[14..];
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            assert_eq!(ip[6], IP_PROTO);
            let src: [u8; 16] = ip[8..24].try_into().unwrap();
            let dst: [u8; 16] = ip[24..40].try_into().unwrap();
            (
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                ip[7],
                ip[40..40 + plen].to_vec(),
            )
        }
        t => panic!("ethertype {t:#x}"),
    }
}

const V1: &str =
    "01005e0000120e2acadec50c080045c0002000010000ff70d0990a000001e000001231339601006442dd0a0000fa";
const V2: &str =
    "01005e00001236b1be7616b5080045c0002000010000ff70d0980a000002e000001231336401006474dc0a0000fa";
const V3: &str =
    "01005e0000120e2acadec50c080045c0002000040000ff70d0960a000001e0000012313300010064d8dd0a0000fa";
const V4_GARP: &str =
    "ffffffffffff0e2acadec50c080600010800060400010e2acadec50c0a0000faffffffffffff0a0000fa";
const V5: &str = "01005e00001236b1be7616b5080045c0002c00010000ff70d08c0a000002e000001221347802010113b70a0000fb0a0000fc7333637265740000";
const V6: &str = "33330000001236b1be7616b586dd6c0c8bcc001870fffe8000000000000034b1befffe7616b5ff0200000000000000000000000000123135780100645009fd000010000000000000000000000250";

fn v3_vector(frame: &str, vrid: u8, prio: u8, addrs: Vec<IpAddr>) {
    let (src, dst, ttl, payload) = vrrp_of(&hex(frame));
    assert_eq!(ttl, TTL);
    let want = Advert {
        vrid,
        priority: prio,
        max_adver_int: 100,
        addrs,
    };
    assert_eq!(decode(&payload, src, dst), Ok(Packet::V3(want.clone())));
    assert_eq!(
        want.to_bytes(src, dst).unwrap(),
        payload,
        "byte-exact encode"
    );
}

#[test]
fn keepalived_v3_ipv4_adverts() {
    let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 250));
    v3_vector(V1, 51, 150, vec![vip]);
    v3_vector(V2, 51, 100, vec![vip]);
    v3_vector(V3, 51, PRIORITY_STOP, vec![vip]);
    let (_, _, _, p) = vrrp_of(&hex(V1));
    assert_eq!(&p[6..8], &[0x42, 0xdd]);
}

#[test]
fn keepalived_v3_ipv6_advert() {
    v3_vector(V6, 53, 120, vec!["fd00:10::250".parse().unwrap()]);
    let (src, dst, _, _) = vrrp_of(&hex(V6));
    assert_eq!(dst, IpAddr::V6(MCAST_V6));
    assert_eq!(src, "fe80::34b1:beff:fe76:16b5".parse::<IpAddr>().unwrap());
}

#[test]
fn keepalived_v2_advert_with_simple_auth() {
    let (src, dst, _, payload) = vrrp_of(&hex(V5));
    let want = AdvertV2 {
        vrid: 52,
        priority: 120,
        auth_type: 1,
        advert_int: 1,
        addrs: vec![Ipv4Addr::new(10, 0, 0, 251), Ipv4Addr::new(10, 0, 0, 252)],
        auth_data: *b"s3cret\0\0",
    };
    let got = decode(&payload, src, dst).unwrap();
    assert_eq!(got, Packet::V2(want.clone()));
    assert_eq!(got.interval_cs(), 100);
    assert_eq!(want.to_bytes().unwrap(), payload);
}

#[test]
fn v3_advert_in_v2_form_matches_keepalived() {
    let a = Advert {
        vrid: 52,
        priority: 120,
        max_adver_int: 100,
        addrs: vec![
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 251)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 252)),
        ],
    };
    let v2 = a.to_v2(1, *b"s3cret\0\0").unwrap();
    let (_, _, _, payload) = vrrp_of(&hex(V5));
    assert_eq!(v2.to_bytes().unwrap(), payload);
    assert_eq!(
        Advert {
            max_adver_int: 150,
            ..a.clone()
        }
        .to_v2(0, [0; 8]),
        None
    );
    let v6 = Advert {
        addrs: vec!["2001:db8::1".parse().unwrap()],
        ..a
    };
    assert_eq!(v6.to_v2(0, [0; 8]), None);
}

#[test]
fn v2_checksum_excludes_the_pseudo_header() {
    // The vector notes: vector 1 checksummed without the pseudo-header
    // would carry 0x2d6d, so a v3 message with a v2-style checksum fails.
    let (src, dst, _, mut p) = vrrp_of(&hex(V1));
    p[6] = 0x2d;
    p[7] = 0x6d;
    assert!(matches!(
        decode(&p, src, dst),
        Err(VrrpError::Checksum { .. })
    ));
}

#[test]
fn reference_example_from_behaviour_notes() {
    let a = Advert {
        vrid: 51,
        priority: 100,
        max_adver_int: 100,
        addrs: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 200, 17))],
    };
    let bytes = a
        .to_bytes(Ipv4Addr::new(192, 168, 200, 1).into(), IpAddr::V4(MCAST_V4))
        .unwrap();
    assert_eq!(bytes, hex("3133640100647873c0a8c811"));
}

#[test]
fn gratuitous_arp_matches_capture() {
    let mac = [0x0e, 0x2a, 0xca, 0xde, 0xc5, 0x0c];
    assert_eq!(
        gratuitous_arp(mac, Ipv4Addr::new(10, 0, 0, 250)).to_vec(),
        hex(V4_GARP)
    );
}

#[test]
fn unsolicited_na_is_well_formed() {
    let mac = [0x36, 0xb1, 0xbe, 0x76, 0x16, 0xb5];
    let src: Ipv6Addr = "fe80::34b1:beff:fe76:16b5".parse().unwrap();
    let target: Ipv6Addr = "fd00:10::250".parse().unwrap();
    let f = unsolicited_na(mac, src, target, true);
    assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(&f[12..14], &[0x86, 0xdd]);
    assert_eq!(f[14 + 7], 255, "hop limit");
    let icmp = &f[54..];
    assert_eq!(icmp[0], 136);
    assert_eq!(icmp[4], 0xa0, "Router and Override, not Solicited");
    assert_eq!(&icmp[8..24], &target.octets());
    assert_eq!(&icmp[26..32], &mac);
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let acc = checksum::pseudo_header(src.into(), dst.into(), 58, 32).unwrap();
    assert_eq!(
        checksum::finish(checksum::sum(acc, icmp)),
        0,
        "checksum verifies"
    );
    assert_eq!(unsolicited_na(mac, src, target, false)[54 + 4], 0x20);
}

#[test]
fn refusals() {
    let (src, dst, _, p) = vrrp_of(&hex(V1));
    assert_eq!(
        decode(&p[..7], src, dst),
        Err(VrrpError::Truncated { len: 7, need: 8 })
    );
    assert_eq!(
        decode(&p[..10], src, dst),
        Err(VrrpError::Truncated { len: 10, need: 12 })
    );
    let mut bad = p.clone();
    bad[0] = 0x41;
    assert_eq!(decode(&bad, src, dst), Err(VrrpError::Version(4)));
    bad[0] = 0x32;
    assert_eq!(decode(&bad, src, dst), Err(VrrpError::Type(2)));
    let mut bad = p.clone();
    bad[1] = 0;
    assert_eq!(decode(&bad, src, dst), Err(VrrpError::VridZero));
    let v6: IpAddr = "fe80::1".parse().unwrap();
    assert_eq!(decode(&p, v6, dst), Err(VrrpError::Family));
    // Wrong source address: the pseudo-header no longer matches.
    assert!(matches!(
        decode(&p, Ipv4Addr::new(10, 0, 0, 9).into(), dst),
        Err(VrrpError::Checksum { .. })
    ));
    let a = Advert {
        vrid: 1,
        priority: 1,
        max_adver_int: 0,
        addrs: vec![],
    };
    assert_eq!(a.to_bytes(src, dst), Err(VrrpError::IntervalZero));
    let a = Advert {
        max_adver_int: 100,
        addrs: vec![v6],
        ..a
    };
    assert_eq!(a.to_bytes(src, dst), Err(VrrpError::Family));
}

fn arb_advert() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    (
        1u8..=255,
        any::<u8>(),
        1u16..=MAX_ADVER_INT_CS,
        any::<bool>(),
        proptest::collection::vec(any::<u128>(), 0..20),
        any::<u128>(),
    )
        .prop_map(|(vrid, priority, int, v6, raw, src)| {
            let addrs: Vec<IpAddr> = raw
                .iter()
                .map(|r| {
                    if v6 {
                        IpAddr::V6(Ipv6Addr::from(*r))
                    } else {
                        IpAddr::V4(Ipv4Addr::from(*r as u32))
                    }
                })
                .collect();
            let (s, d) = if v6 {
                (IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(MCAST_V6))
            } else {
                (IpAddr::V4(Ipv4Addr::from(src as u32)), IpAddr::V4(MCAST_V4))
            };
            (
                Advert {
                    vrid,
                    priority,
                    max_adver_int: int,
                    addrs,
                },
                s,
                d,
            )
        })
}

proptest! {
    #[test]
    fn v3_round_trip((a, src, dst) in arb_advert()) {
        let bytes = a.to_bytes(src, dst).unwrap();
        prop_assert_eq!(decode(&bytes, src, dst), Ok(Packet::V3(a)));
    }

    #[test]
    fn v2_round_trip(vrid in 1u8..=255, prio: u8, auth: u8, int in 1u8..=255,
                     raw in proptest::collection::vec(any::<u32>(), 0..20), data: [u8; 8]) {
        let a = AdvertV2 { vrid, priority: prio, auth_type: auth, advert_int: int,
            addrs: raw.into_iter().map(Ipv4Addr::from).collect(), auth_data: data };
        let bytes = a.to_bytes().unwrap();
        let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        prop_assert_eq!(decode(&bytes, src, IpAddr::V4(MCAST_V4)), Ok(Packet::V2(a)));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), v6: bool) {
        let (s, d) = if v6 {
            (IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V6(MCAST_V6))
        } else {
            (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(MCAST_V4))
        };
        let _ = decode(&bytes, s, d);
    }

    #[test]
    fn decode_never_panics_on_valid_headers(mut bytes in proptest::collection::vec(any::<u8>(), 8..200),
                                            ver in 2u8..=3) {
        bytes[0] = (ver << 4) | 1;
        let _ = decode(&bytes, IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(MCAST_V4));
    }
}

#[test]
fn simple_password_is_zero_padded_and_checked_against_keepalived() {
    assert_eq!(auth_pass_data(b"s3cret"), Some(*b"s3cret\0\0"));
    assert_eq!(auth_pass_data(b"12345678"), Some(*b"12345678"));
    assert_eq!(auth_pass_data(b""), None);
    assert_eq!(auth_pass_data(b"123456789"), None);
    // Vector 5: keepalived's `auth_type PASS`, `auth_pass s3cret`.
    let (src, dst, _, payload) = vrrp_of(&hex(V5));
    let pkt = decode(&payload, src, dst).unwrap();
    let good = auth_pass_data(b"s3cret").unwrap();
    assert_eq!(check_auth(&pkt, Some(&good)), Ok(()));
    let other = auth_pass_data(b"s3cre").unwrap();
    assert_eq!(check_auth(&pkt, Some(&other)), Err(AuthError::Password));
    assert_eq!(
        check_auth(&pkt, None),
        Err(AuthError::Type { got: 1, want: 0 })
    );
    // Our own PASS advert is keepalived's, byte for byte.
    let a = Advert {
        vrid: 52,
        priority: 120,
        max_adver_int: 100,
        addrs: vec![
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 251)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 252)),
        ],
    };
    let v2 = a.to_v2(AUTH_PASS, good).unwrap();
    assert_eq!(v2.to_bytes().unwrap(), payload);
    // A version 3 advert (no authentication) fails a PASS instance and
    // passes one without authentication.
    let (src, dst, _, p1) = vrrp_of(&hex(V1));
    let v3 = decode(&p1, src, dst).unwrap();
    assert_eq!(
        check_auth(&v3, Some(&good)),
        Err(AuthError::Type { got: 0, want: 1 })
    );
    assert_eq!(check_auth(&v3, None), Ok(()));
    // An unauthenticated version 2 advert passes an instance without.
    let none = a.to_v2(AUTH_NONE, [0; V2_AUTH_LEN]).unwrap();
    let none = decode(&none.to_bytes().unwrap(), src, dst).unwrap();
    assert_eq!(check_auth(&none, None), Ok(()));
}
