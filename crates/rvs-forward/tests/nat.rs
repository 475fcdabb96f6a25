//! LVS-NAT: client→server destination rewrite, replies rewritten back,
//! both directions counted, TCP state followed through the director.

mod common;

use common::*;
use rvs_core::model::{Forward, Protocol};
use rvs_forward::{RxMeta, Verdict};

fn nat4() -> rvs_forward::Forwarder {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 8080, Forward::Masq),
    );
    fw
}

fn state(fw: &rvs_forward::Forwarder) -> &'static str {
    let c = fw.director().connections();
    assert_eq!(c.len(), 1, "one connection");
    c[0].state
}

#[test]
fn nat_tcp_v4_handshake_data_close_both_directions() {
    let mut fw = nat4();
    // Client SYN: VIP:80 → RIP:8080, to the real server's MAC.
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
    let p = parse_checked(&out);
    assert_eq!((p.src_mac, p.dst_mac), (DIRECTOR_MAC, RS_MAC));
    assert_eq!((p.src, p.sport), (ip(CLIENT4), 40000));
    assert_eq!((p.dst, p.dport), (ip(RS4), 8080));
    assert_eq!(p.ttl, 63);
    assert_eq!(p.payload, b"hello");
    assert_eq!(out.len(), syn.len());
    assert_eq!(state(&fw), "SYN_RECV");

    // Server SYN+ACK: RIP:8080 → client, rewritten to come from VIP:80.
    let synack = from_server((RS4, 8080), (CLIENT4, 40000), Tcp::SynAck);
    let out = sent(run(&mut fw, &synack, SERVER_IF, 10), CLIENT_IF);
    let p = parse_checked(&out);
    assert_eq!((p.src_mac, p.dst_mac), (DIRECTOR_MAC, ROUTER_MAC));
    assert_eq!((p.src, p.sport), (ip(VIP4), 80));
    assert_eq!((p.dst, p.dport), (ip(CLIENT4), 40000));
    assert_eq!(p.payload, b"world!");
    assert_eq!(state(&fw), "SYN_RECV");

    let ack = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Ack);
    sent(run(&mut fw, &ack, CLIENT_IF, 20), SERVER_IF);
    assert_eq!(state(&fw), "ESTABLISHED");

    // Close: client FIN, server ACK, server FIN, client ACK → TIME_WAIT.
    let fin = from_client(CLIENT4, 40000, VIP4, 80, Tcp::FinAck);
    sent(run(&mut fw, &fin, CLIENT_IF, 30), SERVER_IF);
    assert_eq!(state(&fw), "CLOSE_WAIT");
    let sack = from_server((RS4, 8080), (CLIENT4, 40000), Tcp::Ack);
    sent(run(&mut fw, &sack, SERVER_IF, 40), CLIENT_IF);
    let sfin = from_server((RS4, 8080), (CLIENT4, 40000), Tcp::FinAck);
    sent(run(&mut fw, &sfin, SERVER_IF, 50), CLIENT_IF);
    assert_eq!(state(&fw), "TIME_WAIT");
    sent(run(&mut fw, &ack, CLIENT_IF, 60), SERVER_IF);
    assert_eq!(state(&fw), "TIME_WAIT");

    // Both directions counted: 4 in, 3 out, bytes = IP lengths.
    let k = key(Protocol::Tcp, VIP4, 80);
    let s = fw.director().service(&k).unwrap();
    assert_eq!(s.stats.conns, 1);
    assert_eq!(s.stats.inpkts, 4);
    assert_eq!(s.stats.outpkts, 3);
    assert_eq!(s.stats.inbytes, 4 * (syn.len() as u64 - 14));
    assert_eq!(s.stats.outbytes, 3 * (synack.len() as u64 - 14));
    let c = fw.counters();
    assert_eq!((c.rx, c.forwarded_in, c.forwarded_out), (7, 4, 3));
    assert_eq!(c.dropped_total(), 0);

    // TIME_WAIT lasts 120 s; then the reply tuple is unknown and a late
    // server packet is not translated.
    fw.advance(60 + 120_001);
    assert!(fw.director().connections().is_empty());
    let (v, _) = run(&mut fw, &sack, SERVER_IF, 120_100);
    assert_eq!(v, Verdict::Pass);
}

#[test]
fn nat_udp_v6_both_directions() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Udp, VIP6, 53),
        dest(RS6, 5353, Forward::Masq),
    );
    let q = udp_frame(
        (CLIENT6, 5000),
        (VIP6, 53),
        b"query",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    let out = sent(run(&mut fw, &q, CLIENT_IF, 0), SERVER_IF);
    let p = parse_checked(&out);
    assert_eq!((p.dst, p.dport, p.dst_mac), (ip(RS6), 5353, RS6_MAC));
    assert_eq!((p.src, p.sport), (ip(CLIENT6), 5000));
    assert_eq!(p.ttl, 63);
    let r = udp_frame(
        (RS6, 5353),
        (CLIENT6, 5000),
        b"answer",
        (RS6_MAC, DIRECTOR_MAC),
    );
    let out = sent(run(&mut fw, &r, SERVER_IF, 5), CLIENT_IF);
    let p = parse_checked(&out);
    assert_eq!((p.src, p.sport), (ip(VIP6), 53));
    assert_eq!((p.dst, p.dport), (ip(CLIENT6), 5000));
    assert_eq!(p.payload, b"answer");
    let s = fw
        .director()
        .service(&key(Protocol::Udp, VIP6, 53))
        .unwrap();
    assert_eq!((s.stats.inpkts, s.stats.outpkts), (1, 1));
}

#[test]
fn nat_udp_v4_without_checksum_keeps_none() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Udp, VIP4, 53),
        dest(RS4, 53, Forward::Masq),
    );
    let mut q = udp_frame(
        (CLIENT4, 5000),
        (VIP4, 53),
        b"query",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    q[14 + 20 + 6] = 0;
    q[14 + 20 + 7] = 0;
    let out = sent(run(&mut fw, &q, CLIENT_IF, 0), SERVER_IF);
    assert_eq!(&out[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    assert_eq!(&out[14 + 16..14 + 20], &v4(RS4));
    parse_checked(&out);
}

#[test]
fn nat_partial_checksum_is_finished() {
    // A veth frame from a local stack: the TCP checksum field holds only
    // the folded pseudo-header sum (TP_STATUS_CSUMNOTREADY).
    let mut fw = nat4();
    let mut syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let tcp_len = syn.len() - 14 - 20;
    let mut sum: u32 = 0;
    for w in [v4(CLIENT4), v4(VIP4)] {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]))
            + u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    sum += 6 + tcp_len as u32;
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    syn[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&(sum as u16).to_be_bytes());
    let m = RxMeta {
        iface: CLIENT_IF,
        csum_not_ready: true,
        fwmark: 0,
    };
    let (v, out) = run_meta(&mut fw, &syn, &m, &table(), 0);
    assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
    let p = parse_checked(&out);
    assert_eq!((p.dst, p.dport), (ip(RS4), 8080));

    // Without the flag the same frame would go out with a wrong checksum:
    // the flag is what makes the difference.
    let mut fw = nat4();
    let (_, out) = run(&mut fw, &syn, CLIENT_IF, 0);
    let r = std::panic::catch_unwind(|| parse_checked(&out));
    assert!(r.is_err(), "an unfinished checksum is not valid");
}

#[test]
fn nat_reply_from_unknown_server_tuple_is_passed() {
    let mut fw = nat4();
    syn_to_server(&mut fw, 40000, 0);
    // Other client port, other server port: not this connection.
    for f in [
        from_server((RS4, 8080), (CLIENT4, 40001), Tcp::Ack),
        from_server((RS4, 8081), (CLIENT4, 40000), Tcp::Ack),
    ] {
        assert_eq!(run(&mut fw, &f, SERVER_IF, 1).0, Verdict::Pass);
    }
}

#[test]
fn ethernet_padding_is_not_forwarded() {
    let mut fw = nat4();
    let mut syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let real = syn.len();
    syn.extend_from_slice(&[0u8; 10]);
    let out = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
    assert_eq!(out.len(), real);
    parse_checked(&out);
}
