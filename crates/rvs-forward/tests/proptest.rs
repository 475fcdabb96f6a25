//! Properties: no input makes the forwarder panic; NAT rewrites keep every
//! checksum valid (checked with etherparse).

mod common;

use common::*;
use proptest::prelude::*;
use rvs_core::model::{Forward, Protocol, Tunnel, TunnelCsum, TunnelType};
use rvs_forward::{RxMeta, Verdict, decapsulate};

/// A forwarder with every method on IPv4 and IPv6.
fn everything() -> rvs_forward::Forwarder {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 8080, Forward::Masq),
    );
    service(
        &mut fw,
        key(Protocol::Udp, VIP4, 53),
        dest(RS4, 53, Forward::Masq),
    );
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 443),
        dest(RS4B, 443, Forward::Route),
    );
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 8443),
        dest(
            RS4C,
            8443,
            Forward::Tunnel(Tunnel {
                kind: TunnelType::Gue,
                port: 6080,
                csum: TunnelCsum::Csum,
            }),
        ),
    );
    service(
        &mut fw,
        key(Protocol::Sctp, VIP4, 3868),
        dest(RS4, 3868, Forward::Masq),
    );
    service(
        &mut fw,
        key(Protocol::Tcp, VIP6, 80),
        dest(RS6, 8080, Forward::Masq),
    );
    service(
        &mut fw,
        key(Protocol::Udp, VIP6, 53),
        dest(
            RS6,
            53,
            Forward::Tunnel(Tunnel {
                kind: TunnelType::Gre,
                port: 0,
                csum: TunnelCsum::Csum,
            }),
        ),
    );
    fw
}

/// Valid frames to mutate: the interesting parsers are reached only by
/// inputs that start out right.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn),
        from_server((RS4, 8080), (CLIENT4, 40000), Tcp::SynAck),
        from_client(CLIENT4, 40000, VIP4, 443, Tcp::Syn),
        from_client(CLIENT4, 40000, VIP4, 8443, Tcp::Syn),
        udp_frame(
            (CLIENT4, 5000),
            (VIP4, 53),
            b"q",
            (ROUTER_MAC, DIRECTOR_MAC),
        ),
        tcp_frame(
            (CLIENT6, 1),
            (VIP6, 80),
            Tcp::Syn,
            b"x",
            (ROUTER_MAC, DIRECTOR_MAC),
        ),
        udp_frame((CLIENT6, 1), (VIP6, 53), b"q", (ROUTER_MAC, DIRECTOR_MAC)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1600),
        out_len in 0usize..1700,
        csum_not_ready in any::<bool>(),
    ) {
        let mut fw = everything();
        let mut out = vec![0u8; out_len];
        let m = RxMeta { iface: CLIENT_IF, csum_not_ready, fwmark: 0 };
        let v = fw.process(&bytes, &m, &mut out, &table(), 0);
        if let Verdict::Forward { len, .. } | Verdict::Reply { len, .. } = v {
            prop_assert!(len <= out_len);
        }
        let _ = decapsulate(&bytes, &[6080]);
        prop_assert_eq!(fw.counters().rx, 1);
    }

    #[test]
    fn mutated_frames_never_panic(
        seed in 0usize..7,
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8),
        cut in any::<u16>(),
        csum_not_ready in any::<bool>(),
    ) {
        let mut fw = everything();
        // Open the NAT connection first so that replies and ICMP errors
        // reach the reply paths.
        let mut out = vec![0u8; 2048];
        let m0 = meta(CLIENT_IF);
        fw.process(&from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn), &m0, &mut out, &table(), 0);
        let mut f = seeds()[seed].clone();
        for (at, x) in flips {
            let i = usize::from(at) % f.len();
            f[i] ^= x;
        }
        let keep = f.len() - usize::from(cut) % 8;
        f.truncate(keep);
        let m = RxMeta { iface: CLIENT_IF, csum_not_ready, fwmark: 0 };
        let v = fw.process(&f, &m, &mut out, &table(), 1);
        if let Verdict::Forward { len, .. } | Verdict::Reply { len, .. } = v {
            prop_assert!(len <= out.len());
            let _ = decapsulate(&out[14.min(len)..len], &[6080]);
        }
    }

    #[test]
    fn nat_rewrite_keeps_checksums_valid(
        client in any::<u8>(),
        cport in 1u16..,
        rport in 1u16..,
        vport in 1u16..,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        udp in any::<bool>(),
        v6 in any::<bool>(),
    ) {
        let (vip, rs, client_ip) = if v6 {
            (VIP6, RS6, format!("2001:db8:2::{client:x}"))
        } else {
            (VIP4, RS4, format!("198.51.100.{client}"))
        };
        let proto = if udp { Protocol::Udp } else { Protocol::Tcp };
        let mut fw = forwarder();
        service(&mut fw, key(proto, vip, vport), dest(rs, rport, Forward::Masq));
        let mut t = table();
        t.hops.insert(ip(&client_ip), hop(CLIENT_IF, Some(ROUTER_MAC), 1500, None));
        let macs = (ROUTER_MAC, DIRECTOR_MAC);
        let f = if udp {
            udp_frame((&client_ip, cport), (vip, vport), &payload, macs)
        } else {
            tcp_frame((&client_ip, cport), (vip, vport), Tcp::Syn, &payload, macs)
        };
        let (v, out) = run_meta(&mut fw, &f, &meta(CLIENT_IF), &t, 0);
        prop_assert!(matches!(v, Verdict::Forward { .. }), "{:?}", v);
        let p = parse_checked(&out);
        prop_assert_eq!((p.dst, p.dport), (ip(rs), rport));
        prop_assert_eq!(&p.payload, &payload);
        // And the reply back.
        let r = if udp {
            udp_frame((rs, rport), (&client_ip, cport), &payload, (RS_MAC, DIRECTOR_MAC))
        } else {
            tcp_frame((rs, rport), (&client_ip, cport), Tcp::SynAck, &payload, (RS_MAC, DIRECTOR_MAC))
        };
        let (v, out) = run_meta(&mut fw, &r, &meta(SERVER_IF), &t, 1);
        prop_assert!(matches!(v, Verdict::Forward { .. }), "{:?}", v);
        let p = parse_checked(&out);
        prop_assert_eq!((p.src, p.sport), (ip(vip), vport));
    }
}
