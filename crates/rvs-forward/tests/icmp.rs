//! ICMP and ICMPv6 errors matched to their connection through the quoted
//! header: translated for NAT (outer address, quoted address and port, all
//! checksums), forwarded as they are for DR and TUN.

mod common;

use common::*;
use etherparse::PacketBuilder;
use rvs_core::model::{Forward, Protocol, Tunnel};
use rvs_forward::{DropReason, Verdict};

const ROUTER4: &str = "198.51.100.1";
const ROUTER6: &str = "2001:db8:2::1";

fn nat(vip: &str, rs: &str) -> rvs_forward::Forwarder {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, vip, 80),
        dest(rs, 8080, Forward::Masq),
    );
    fw
}

/// The IP packet of a frame.
fn packet(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

fn icmp4(
    src: &str,
    dst: &str,
    t: (u8, u8),
    rest: [u8; 4],
    quote: &[u8],
    macs: (Mac4, Mac4),
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(v4(src), v4(dst), 64)
        .icmpv4_raw(t.0, t.1, rest);
    let mut v = Vec::new();
    b.write(&mut v, quote).unwrap();
    v
}

fn icmp6(
    src: &str,
    dst: &str,
    t: (u8, u8),
    rest: [u8; 4],
    quote: &[u8],
    macs: (Mac4, Mac4),
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(v6(src), v6(dst), 64)
        .icmpv6_raw(t.0, t.1, rest);
    let mut v = Vec::new();
    b.write(&mut v, quote).unwrap();
    v
}

type Mac4 = rvs_forward::Mac;

/// Checks the quoted packet: its IP header checksum (IPv4) and, when the
/// quote is whole, its TCP checksum; returns (src, sport, dst, dport).
#[track_caller]
fn quoted(q: &[u8], whole: bool) -> (std::net::IpAddr, u16, std::net::IpAddr, u16) {
    let v6q = q[0] >> 4 == 6;
    let hl = if v6q { 40 } else { 20 };
    if !v6q {
        assert!(csum_ok(&q[..20], 0), "quoted IPv4 header checksum");
    }
    if whole {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(if v6q { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        frame.extend_from_slice(q);
        parse_checked(&frame);
    }
    let (s, d) = if v6q {
        (
            std::net::IpAddr::from(<[u8; 16]>::try_from(&q[8..24]).unwrap()),
            std::net::IpAddr::from(<[u8; 16]>::try_from(&q[24..40]).unwrap()),
        )
    } else {
        (
            std::net::IpAddr::from(<[u8; 4]>::try_from(&q[12..16]).unwrap()),
            std::net::IpAddr::from(<[u8; 4]>::try_from(&q[16..20]).unwrap()),
        )
    };
    (
        s,
        u16::from_be_bytes([q[hl], q[hl + 1]]),
        d,
        u16::from_be_bytes([q[hl + 2], q[hl + 3]]),
    )
}

fn icmp4_ok(out: &[u8]) {
    assert!(csum_ok(&out[14..34], 0), "outer IPv4 header checksum");
    assert!(csum_ok(&out[34..], 0), "ICMP checksum");
}

fn icmp6_ok(out: &[u8]) {
    let mut ps = rvs_forward::checksum_sum(0, &out[22..54]);
    ps += 58 + (out.len() - 54) as u32;
    assert!(csum_ok(&out[54..], ps), "ICMPv6 checksum");
}

#[test]
fn nat_client_side_error_is_translated_to_the_real_server() {
    for whole in [true, false] {
        let mut fw = nat(VIP4, RS4);
        syn_to_server(&mut fw, 40000, 0);
        // A router on the client's path cannot pass a reply VIP:80 → client.
        let reply = packet(&tcp_frame(
            (VIP4, 80),
            (CLIENT4, 40000),
            Tcp::Ack,
            &[1; 100],
            (DIRECTOR_MAC, ROUTER_MAC),
        ));
        let q = if whole { &reply[..] } else { &reply[..28] };
        let err = icmp4(
            ROUTER4,
            VIP4,
            (3, 4),
            [0, 0, 0x05, 0x00],
            q,
            (ROUTER_MAC, DIRECTOR_MAC),
        );
        let out = sent(run(&mut fw, &err, CLIENT_IF, 1), SERVER_IF);
        assert_eq!(&out[0..6], &RS_MAC);
        assert_eq!(&out[26..30], &v4(ROUTER4), "outer source kept");
        assert_eq!(&out[30..34], &v4(RS4), "outer destination: the real server");
        assert_eq!(out[22], 63);
        icmp4_ok(&out);
        assert_eq!(&out[34..36], &err[34..36], "ICMP type and code kept");
        assert_eq!(&out[38..42], &err[38..42], "next-hop MTU kept");
        let (s, sp, d, dp) = quoted(&out[42..], whole);
        assert_eq!((s, sp), (ip(RS4), 8080), "quoted source: the real server");
        assert_eq!((d, dp), (ip(CLIENT4), 40000));
        assert_eq!(fw.counters().icmp_forwarded, 1);
    }
}

#[test]
fn nat_server_side_error_is_translated_to_the_client() {
    let mut fw = nat(VIP4, RS4);
    let syn = syn_to_server(&mut fw, 40000, 0);
    // The real server answers the translated SYN with port unreachable.
    let err = icmp4(
        RS4,
        CLIENT4,
        (3, 3),
        [0; 4],
        &packet(&syn),
        (RS_MAC, DIRECTOR_MAC),
    );
    let out = sent(run(&mut fw, &err, SERVER_IF, 1), CLIENT_IF);
    assert_eq!(&out[0..6], &ROUTER_MAC);
    assert_eq!(&out[26..30], &v4(VIP4), "outer source: the VIP");
    assert_eq!(&out[30..34], &v4(CLIENT4));
    icmp4_ok(&out);
    let (s, sp, d, dp) = quoted(&out[42..], true);
    assert_eq!((s, sp), (ip(CLIENT4), 40000));
    assert_eq!((d, dp), (ip(VIP4), 80), "quoted destination: the VIP");
    // Counted as an outgoing packet of the connection; its state unchanged.
    let st = fw
        .director()
        .service(&key(Protocol::Tcp, VIP4, 80))
        .unwrap()
        .stats;
    assert_eq!((st.inpkts, st.outpkts), (1, 1));
    assert_eq!(st.outbytes, (err.len() - 14) as u64);
    assert_eq!(fw.director().connections()[0].state, "SYN_RECV");
}

#[test]
fn nat_icmpv6_packet_too_big_is_translated() {
    let mut fw = nat(VIP6, RS6);
    sent(
        run(
            &mut fw,
            &tcp_frame(
                (CLIENT6, 40000),
                (VIP6, 80),
                Tcp::Syn,
                b"",
                (ROUTER_MAC, DIRECTOR_MAC),
            ),
            CLIENT_IF,
            0,
        ),
        SERVER_IF,
    );
    let reply = packet(&tcp_frame(
        (VIP6, 80),
        (CLIENT6, 40000),
        Tcp::Ack,
        &[2; 64],
        (DIRECTOR_MAC, ROUTER_MAC),
    ));
    let err = icmp6(
        ROUTER6,
        VIP6,
        (2, 0),
        1280u32.to_be_bytes(),
        &reply,
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    let out = sent(run(&mut fw, &err, CLIENT_IF, 1), SERVER_IF);
    assert_eq!(&out[0..6], &RS6_MAC);
    assert_eq!(&out[38..54], &v6(RS6));
    assert_eq!(&out[58..62], &1280u32.to_be_bytes());
    icmp6_ok(&out);
    let (s, sp, d, dp) = quoted(&out[62..], true);
    assert_eq!((s, sp, d, dp), (ip(RS6), 8080, ip(CLIENT6), 40000));
}

#[test]
fn dr_and_tun_errors_go_to_the_real_server_unchanged() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 80, Forward::Route),
    );
    syn_to_server(&mut fw, 40000, 0);
    let reply = packet(&tcp_frame(
        (VIP4, 80),
        (CLIENT4, 40000),
        Tcp::Ack,
        &[1; 10],
        (RS_MAC, ROUTER_MAC),
    ));
    let err = icmp4(
        ROUTER4,
        VIP4,
        (3, 4),
        [0, 0, 5, 0],
        &reply,
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    let out = sent(run(&mut fw, &err, CLIENT_IF, 1), SERVER_IF);
    assert_eq!(&out[0..6], &RS_MAC);
    assert_eq!(&out[30..34], &v4(VIP4), "destination unchanged");
    assert_eq!(&out[34..], &err[34..], "ICMP message unchanged");
    icmp4_ok(&out);

    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 80, Forward::Tunnel(Tunnel::default())),
    );
    syn_to_server(&mut fw, 40000, 0);
    let out = sent(run(&mut fw, &err, CLIENT_IF, 1), SERVER_IF);
    assert_eq!(out[23], 4, "IPIP");
    assert_eq!(&out[30..34], &v4(RS4));
    assert_eq!(
        &out[34 + 20..],
        &err[34..],
        "ICMP message inside, unchanged"
    );
}

#[test]
fn unmatched_and_informational_icmp_is_left_to_the_host() {
    let mut fw = nat(VIP4, RS4);
    let reply = packet(&tcp_frame(
        (VIP4, 80),
        (CLIENT4, 40000),
        Tcp::Ack,
        b"",
        (DIRECTOR_MAC, ROUTER_MAC),
    ));
    let err = icmp4(
        ROUTER4,
        VIP4,
        (3, 4),
        [0, 0, 5, 0],
        &reply,
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    assert_eq!(run(&mut fw, &err, CLIENT_IF, 0).0, Verdict::Pass);
    let echo = icmp4(
        CLIENT4,
        VIP4,
        (8, 0),
        [0, 1, 0, 1],
        b"ping",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    assert_eq!(run(&mut fw, &echo, CLIENT_IF, 0).0, Verdict::Pass);
    let echo6 = icmp6(
        CLIENT6,
        VIP6,
        (128, 0),
        [0, 1, 0, 1],
        b"ping",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    assert_eq!(run(&mut fw, &echo6, CLIENT_IF, 0).0, Verdict::Pass);
    // A quote too short to hold an IP header; an IP header but not the ports.
    for cut in [12, 22] {
        let short = icmp4(
            ROUTER4,
            VIP4,
            (3, 4),
            [0; 4],
            &reply[..cut],
            (ROUTER_MAC, DIRECTOR_MAC),
        );
        assert_eq!(
            run(&mut fw, &short, CLIENT_IF, 0).0,
            Verdict::Drop(DropReason::BadIcmp),
            "quote of {cut} bytes"
        );
    }
    assert_eq!(fw.counters().dropped(DropReason::BadIcmp), 2);
    assert_eq!(fw.counters().passed, 3);
}
