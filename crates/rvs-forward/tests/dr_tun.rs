//! LVS-DR (MAC rewrite only) and LVS-TUN (IPIP, GUE, GRE; IPv4, IPv6 and
//! mixed) with the outer headers of ipvs-behaviour.md §1.6, and the MTU
//! rules with their ICMP errors.

mod common;

use common::*;
use rvs_core::model::{Forward, Protocol, Tunnel, TunnelCsum, TunnelType};
use rvs_forward::{DropReason, ForwarderConfig, Verdict, decapsulate, decapsulate_frame};

fn dr4() -> rvs_forward::Forwarder {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 80, Forward::Route),
    );
    fw
}

fn tun(vip: &str, rs: &str, t: Tunnel) -> rvs_forward::Forwarder {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, vip, 80),
        dest(rs, 80, Forward::Tunnel(t)),
    );
    fw
}

fn tunnel(kind: TunnelType, port: u16, csum: TunnelCsum) -> Tunnel {
    Tunnel { kind, port, csum }
}

/// The inner packet as it must appear after forwarding: the received IP
/// packet with its TTL / hop limit one less (IPv4 header checksum fixed).
fn decremented(frame: &[u8]) -> Vec<u8> {
    let mut p = frame[14..].to_vec();
    if p[0] >> 4 == 4 {
        p[8] -= 1;
        p[10] = 0;
        p[11] = 0;
        let c = rvs_forward::checksum_fold(rvs_forward::checksum_sum(0, &p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        p[7] -= 1;
    }
    p
}

fn with_payload(n: usize) -> Vec<u8> {
    tcp_frame(
        (CLIENT4, 40000),
        (VIP4, 80),
        Tcp::Syn,
        &vec![0xab; n],
        (ROUTER_MAC, DIRECTOR_MAC),
    )
}

#[test]
fn dr_rewrites_the_macs_and_the_ttl_only() {
    let mut fw = dr4();
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
    assert_eq!(&out[0..6], &RS_MAC);
    assert_eq!(&out[6..12], &DIRECTOR_MAC);
    assert_eq!(
        &out[12..],
        &[&syn[12..14], &decremented(&syn)[..]].concat()[..]
    );
    let p = parse_checked(&out);
    assert_eq!((p.dst, p.dport, p.ttl), (ip(VIP4), 80, 63));
    // The connection is tracked with the input-only table.
    let c = fw.director().connections();
    assert_eq!((c.len(), c[0].state), (1, "SYN_RECV"));
    assert_eq!(c[0].daddr, ip(RS4));
}

#[test]
fn dr_ipv6_and_partial_checksum() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP6, 443),
        dest(RS6, 443, Forward::Route),
    );
    let mut syn = tcp_frame(
        (CLIENT6, 40000),
        (VIP6, 443),
        Tcp::Syn,
        b"x",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    // Replace the checksum by garbage: with csum_not_ready it is recomputed.
    let at = 14 + 40 + 16;
    syn[at] ^= 0x5a;
    let m = rvs_forward::RxMeta {
        iface: CLIENT_IF,
        csum_not_ready: true,
        fwmark: 0,
    };
    let (v, out) = run_meta(&mut fw, &syn, &m, &table(), 0);
    assert!(
        matches!(
            v,
            Verdict::Forward {
                iface: SERVER_IF,
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(&out[0..6], &RS6_MAC);
    let p = parse_checked(&out);
    assert_eq!((p.dst, p.ttl), (ip(VIP6), 63));
}

#[test]
fn tun_ipip_v4_in_v4_outer_header_bytes() {
    for df in [true, false] {
        let mut fw = tun(VIP4, RS4, Tunnel::default());
        let mut syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
        set_df(&mut syn, df);
        syn[15] = 0x2e; // DSCP/ECN copied to the outer header
        set_df(&mut syn, df);
        let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
        assert_eq!(
            &out[0..14],
            &[&RS_MAC[..], &DIRECTOR_MAC, &[0x08, 0x00]].concat()[..]
        );
        let inner = decremented(&syn);
        let total = (20 + inner.len()) as u16;
        let id: [u8; 2] = if df { [0, 0] } else { [0, 1] };
        let flags: [u8; 2] = if df { [0x40, 0] } else { [0, 0] };
        let mut want = vec![0x45, 0x2e];
        want.extend_from_slice(&total.to_be_bytes());
        want.extend_from_slice(&id);
        want.extend_from_slice(&flags);
        want.extend_from_slice(&[63, 4]);
        want.extend_from_slice(&out[24..26]); // checked below
        want.extend_from_slice(&v4(DIRECTOR4));
        want.extend_from_slice(&v4(RS4));
        assert_eq!(&out[14..34], &want[..], "outer header (df={df})");
        assert!(csum_ok(&out[14..34], 0), "outer header checksum");
        assert_eq!(&out[34..], &inner[..]);
        assert_eq!(out.len(), syn.len() + 20);
    }
}

#[test]
fn tun_ipip_v6_in_v6_and_mixed() {
    // IPv6 in IPv6: next header 41, traffic class and hop limit copied.
    let mut fw = tun(VIP6, RS6, Tunnel::default());
    let syn = tcp_frame(
        (CLIENT6, 40000),
        (VIP6, 80),
        Tcp::Syn,
        b"hi",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
    let inner = decremented(&syn);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    let mut want = vec![0x60, 0, 0, 0];
    want.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    want.extend_from_slice(&[41, 63]);
    want.extend_from_slice(&v6(DIRECTOR6));
    want.extend_from_slice(&v6(RS6));
    assert_eq!(&out[14..54], &want[..]);
    assert_eq!(&out[54..], &inner[..]);

    // IPv4 service, IPv6 real server: IPv4 in IPv6 (next header 4).
    let mut fw = tun(VIP4, RS6, Tunnel::default());
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    assert_eq!(out[14 + 6], 4);
    assert_eq!(out[14 + 7], 63);
    assert_eq!(&out[14 + 24..14 + 40], &v6(RS6));
    assert_eq!(&out[54..], &decremented(&syn)[..]);
}

#[test]
fn tun_gue_outer_headers_with_and_without_checksum() {
    for csum in [TunnelCsum::NoCsum, TunnelCsum::Csum] {
        let mut fw = tun(VIP4, RS4, tunnel(TunnelType::Gue, 6080, csum));
        let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
        let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
        let inner = decremented(&syn);
        assert_eq!(out[14 + 9], 17, "outer protocol UDP");
        assert_eq!(out.len(), syn.len() + 32);
        let udp = &out[34..42];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        assert!((32768..=60999).contains(&sport), "source port {sport}");
        assert_eq!(&udp[2..4], &6080u16.to_be_bytes());
        assert_eq!(&udp[4..6], &((8 + 4 + inner.len()) as u16).to_be_bytes());
        // GUE: version 0, C 0, hlen 0; proto 4; flags 0.
        assert_eq!(&out[42..46], &[0, 4, 0, 0]);
        assert_eq!(&out[46..], &inner[..]);
        let uc = u16::from_be_bytes([udp[6], udp[7]]);
        match csum {
            TunnelCsum::NoCsum => assert_eq!(uc, 0),
            _ => {
                assert_ne!(uc, 0);
                let mut ps = 0u32;
                for a in [v4(DIRECTOR4), v4(RS4)] {
                    ps += u32::from(u16::from_be_bytes([a[0], a[1]]));
                    ps += u32::from(u16::from_be_bytes([a[2], a[3]]));
                }
                ps += 17 + (out.len() - 34) as u32;
                assert!(csum_ok(&out[34..], ps), "UDP checksum");
            }
        }
        // Same flow, same source port; another flow spreads.
        let again = sent(run(&mut fw, &syn, CLIENT_IF, 1), SERVER_IF);
        assert_eq!(&again[34..36], &udp[0..2]);
        let d = decapsulate_frame(&out, &[6080]).unwrap();
        assert_eq!(d.kind, TunnelType::Gue);
        assert_eq!(&out[d.inner.clone()], &inner[..]);
    }
    // Even client ports (Linux's ephemeral ports) still spread over many
    // source ports.
    let mut fw = tun(VIP4, RS4, tunnel(TunnelType::Gue, 6080, TunnelCsum::NoCsum));
    let mut ports = std::collections::HashSet::new();
    for i in 0..64u16 {
        let f = from_client(CLIENT4, 40000 + 2 * i, VIP4, 80, Tcp::Syn);
        let out = sent(run(&mut fw, &f, CLIENT_IF, 0), SERVER_IF);
        ports.insert(u16::from_be_bytes([out[34], out[35]]));
    }
    assert!(ports.len() >= 60, "{} distinct source ports", ports.len());
}

#[test]
fn tun_gre_outer_headers() {
    for csum in [TunnelCsum::NoCsum, TunnelCsum::Csum] {
        let mut fw = tun(VIP4, RS4, tunnel(TunnelType::Gre, 0, csum));
        let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
        let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
        let inner = decremented(&syn);
        assert_eq!(out[14 + 9], 47, "outer protocol GRE");
        let gre = &out[34..];
        match csum {
            TunnelCsum::NoCsum => {
                assert_eq!(&gre[..4], &[0, 0, 0x08, 0x00]);
                assert_eq!(&gre[4..], &inner[..]);
            }
            _ => {
                assert_eq!(&gre[..4], &[0x80, 0, 0x08, 0x00]);
                assert_eq!(&gre[6..8], &[0, 0]);
                assert!(csum_ok(gre, 0), "GRE checksum");
                assert_eq!(&gre[8..], &inner[..]);
            }
        }
        let d = decapsulate_frame(&out, &[]).unwrap();
        assert_eq!(d.kind, TunnelType::Gre);
        assert_eq!(&out[d.inner.clone()], &inner[..]);
    }
    // IPv6 inner in IPv6 GRE: protocol type 0x86dd.
    let mut fw = tun(VIP6, RS6, tunnel(TunnelType::Gre, 0, TunnelCsum::NoCsum));
    let syn = tcp_frame(
        (CLIENT6, 1),
        (VIP6, 80),
        Tcp::Syn,
        b"",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
    assert_eq!(out[14 + 6], 47);
    assert_eq!(&out[54..58], &[0, 0, 0x86, 0xdd]);
}

#[test]
fn tun_without_a_source_address_is_dropped() {
    let mut fw = tun(VIP4, RS4, Tunnel::default());
    let mut t = table();
    t.hops.get_mut(&ip(RS4)).unwrap().src_ip = None;
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let (v, _) = run_meta(&mut fw, &syn, &meta(CLIENT_IF), &t, 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoTunnelSource));
    assert_eq!(fw.counters().dropped(DropReason::NoTunnelSource), 1);
}

/// Checks an ICMPv4 fragmentation-needed reply to the client.
#[track_caller]
fn check_frag_needed(reply: &[u8], original: &[u8], mtu: u16) {
    assert_eq!(&reply[0..6], &ROUTER_MAC);
    assert_eq!(&reply[6..12], &DIRECTOR_MAC);
    assert_eq!(&reply[12..14], &[0x08, 0x00]);
    let ip = &reply[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[1], 0xc0);
    assert_eq!(
        u16::from_be_bytes([ip[2], ip[3]]) as usize,
        reply.len() - 14
    );
    assert_eq!(reply.len() - 14, 576, "as much as fits in 576 bytes");
    assert_eq!((ip[8], ip[9]), (64, 1));
    assert!(csum_ok(ip, 0));
    assert_eq!(&ip[12..16], &v4(VIP4));
    assert_eq!(&ip[16..20], &v4(CLIENT4));
    let icmp = &reply[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(&icmp[4..6], &[0, 0]);
    assert_eq!(&icmp[6..8], &mtu.to_be_bytes());
    assert!(csum_ok(icmp, 0), "ICMP checksum");
    assert_eq!(&icmp[8..], &original[14..14 + icmp.len() - 8]);
}

#[test]
fn too_big_with_df_gets_fragmentation_needed() {
    // DR over a 1000-byte route.
    let mut fw = dr4();
    let mut t = table();
    t.hops.get_mut(&ip(RS4)).unwrap().mtu = 1000;
    let mut big = with_payload(1200);
    set_df(&mut big, true);
    let reply = replied(run_meta(&mut fw, &big, &meta(CLIENT_IF), &t, 0), CLIENT_IF);
    check_frag_needed(&reply, &big, 1000);
    assert_eq!(fw.counters().icmp_sent, 1);
    assert_eq!(fw.counters().dropped(DropReason::TooBig), 1);

    // A packet that fits goes through.
    let fits = with_payload(1000 - 40);
    sent(run_meta(&mut fw, &fits, &meta(CLIENT_IF), &t, 1), SERVER_IF);

    // TUN over 1500: an IPIP packet may carry 1480.
    let mut fw = tun(VIP4, RS4, Tunnel::default());
    let mut big = with_payload(1490 - 40);
    set_df(&mut big, true);
    let reply = replied(run(&mut fw, &big, CLIENT_IF, 0), CLIENT_IF);
    check_frag_needed(&reply, &big, 1480);
    let fits = with_payload(1480 - 40);
    let out = sent(run(&mut fw, &fits, CLIENT_IF, 1), SERVER_IF);
    assert_eq!(out.len(), 14 + 1500);

    // GUE with checksum-less header: 1500 - 20 - 8 - 4.
    let mut fw = tun(VIP4, RS4, tunnel(TunnelType::Gue, 6080, TunnelCsum::NoCsum));
    let (_, reply) = run(&mut fw, &big, CLIENT_IF, 0);
    check_frag_needed(&reply, &big, 1468);
}

#[test]
fn pmtu_disc_off_still_answers_df_packets_for_dr() {
    let mut big = with_payload(1490 - 40);
    set_df(&mut big, true);
    // pmtu_disc only concerns tunnels: DR still answers DF packets.
    let mut fw = rvs_forward::Forwarder::new(ForwarderConfig {
        pmtu_disc: false,
        ..ForwarderConfig::default()
    });
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 80, Forward::Route),
    );
    let mut t = table();
    t.hops.get_mut(&ip(RS4)).unwrap().mtu = 1000;
    let reply = replied(run_meta(&mut fw, &big, &meta(CLIENT_IF), &t, 0), CLIENT_IF);
    check_frag_needed(&reply, &big, 1000);
}

#[test]
fn too_big_ipv6_gets_packet_too_big() {
    let mut fw = tun(VIP6, RS6, Tunnel::default());
    let big = tcp_frame(
        (CLIENT6, 40000),
        (VIP6, 80),
        Tcp::Syn,
        &[7u8; 1440],
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    let reply = replied(run(&mut fw, &big, CLIENT_IF, 0), CLIENT_IF);
    assert_eq!(reply.len() - 14, 1280, "as much as fits in the minimum MTU");
    assert_eq!(&reply[0..6], &ROUTER_MAC);
    let ip6 = &reply[14..54];
    assert_eq!(ip6[0], 0x60);
    assert_eq!(u16::from_be_bytes([ip6[4], ip6[5]]), 1240);
    assert_eq!((ip6[6], ip6[7]), (58, 64));
    assert_eq!(&ip6[8..24], &v6(VIP6));
    assert_eq!(&ip6[24..40], &v6(CLIENT6));
    let icmp = &reply[54..];
    assert_eq!((icmp[0], icmp[1]), (2, 0));
    assert_eq!(
        &icmp[4..8],
        &1460u32.to_be_bytes(),
        "1500 - 40 of outer IPv6"
    );
    assert_eq!(&icmp[8..], &big[14..14 + 1232]);
    let mut ps = 0u32;
    for a in [v6(VIP6), v6(CLIENT6)] {
        ps = rvs_forward::checksum_sum(ps, &a);
    }
    ps += 58 + icmp.len() as u32;
    assert!(csum_ok(icmp, ps), "ICMPv6 checksum");
}

#[test]
fn decap_round_trip_every_encapsulation() {
    let kinds = [
        (VIP4, RS4, tunnel(TunnelType::Ipip, 0, TunnelCsum::NoCsum)),
        (VIP4, RS4, tunnel(TunnelType::Gue, 6080, TunnelCsum::Csum)),
        (VIP4, RS4, tunnel(TunnelType::Gre, 0, TunnelCsum::Csum)),
        (VIP6, RS6, tunnel(TunnelType::Ipip, 0, TunnelCsum::NoCsum)),
        (VIP6, RS6, tunnel(TunnelType::Gue, 6080, TunnelCsum::Csum)),
        (VIP6, RS6, tunnel(TunnelType::Gre, 0, TunnelCsum::NoCsum)),
        (VIP4, RS6, tunnel(TunnelType::Gre, 0, TunnelCsum::NoCsum)),
        (VIP6, RS4, tunnel(TunnelType::Ipip, 0, TunnelCsum::NoCsum)),
    ];
    for (vip, rs, t) in kinds {
        let mut fw = tun(vip, rs, t);
        let client = if vip == VIP4 { CLIENT4 } else { CLIENT6 };
        let syn = tcp_frame(
            (client, 40000),
            (vip, 80),
            Tcp::Syn,
            b"data",
            (ROUTER_MAC, DIRECTOR_MAC),
        );
        let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
        let d =
            decapsulate(&out[14..], &[6080]).unwrap_or_else(|e| panic!("{t:?} {vip}→{rs}: {e}"));
        assert_eq!(d.kind, t.kind);
        assert_eq!(d.outer_dst, ip(rs));
        let inner = &out[14..][d.inner.clone()];
        assert_eq!(inner, &decremented(&syn)[..], "{t:?} {vip}→{rs}");
        // Corrupt the tunnel checksum: refused.
        if t.csum == TunnelCsum::Csum {
            let mut bad = out[14..].to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(
                decapsulate(&bad, &[6080]),
                Err(rvs_forward::DecapError::BadChecksum)
            );
        }
    }
    // Not a tunnel: plain TCP, a UDP port that is not GUE.
    let syn = from_client(CLIENT4, 1, VIP4, 80, Tcp::Syn);
    assert_eq!(
        decapsulate(&syn[14..], &[6080]),
        Err(rvs_forward::DecapError::NotTunnel)
    );
    let u = udp_frame(
        (CLIENT4, 1),
        (VIP4, 53),
        b"0123456789",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    assert_eq!(
        decapsulate(&u[14..], &[6080]),
        Err(rvs_forward::DecapError::NotTunnel)
    );
    assert_eq!(
        decapsulate(&[], &[]),
        Err(rvs_forward::DecapError::Truncated)
    );
}
