//! The director's policy seen through the forwarder: expire_nodest_conn,
//! weight-0 drain, thresholds, conn_reuse_mode, rr order, persistence, no
//! real server, TTL, neighbours.

mod common;

use common::*;
use rvs_core::model::{Forward, Protocol, SchedulerKind, ServiceConfig};
use rvs_forward::{DropReason, Mac, Verdict};

fn k80() -> rvs_core::model::ServiceKey {
    key(Protocol::Tcp, VIP4, 80)
}

/// A service with the given real servers added in this order.
fn with_dests(
    fw: &mut rvs_forward::Forwarder,
    sched: SchedulerKind,
    persistence: Option<u32>,
    rs: &[&str],
    fwd: Forward,
) {
    let mut cfg = ServiceConfig::new(k80());
    cfg.scheduler = sched;
    cfg.persistence = persistence;
    fw.director_mut().add_service(cfg).unwrap();
    for r in rs {
        fw.director_mut()
            .add_dest(&k80(), dest(r, 80, fwd))
            .unwrap();
    }
}

fn mac_of(out: &[u8]) -> Mac {
    out[0..6].try_into().unwrap()
}

#[test]
fn expire_nodest_conn_off_drops_until_the_server_comes_back() {
    let mut fw = forwarder();
    with_dests(&mut fw, SchedulerKind::Rr, None, &[RS4], Forward::Route);
    syn_to_server(&mut fw, 40000, 0);
    fw.director_mut().del_dest(&k80(), ip(RS4), 80).unwrap();
    let ack = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Ack);
    assert_eq!(
        run(&mut fw, &ack, CLIENT_IF, 10).0,
        Verdict::Drop(DropReason::DestUnavailable)
    );
    assert_eq!(fw.director().connections().len(), 1, "the connection stays");
    assert_eq!(fw.counters().dropped(DropReason::DestUnavailable), 1);
    // The server comes back: its connection resumes.
    fw.director_mut()
        .add_dest(&k80(), dest(RS4, 80, Forward::Route))
        .unwrap();
    let out = sent(run(&mut fw, &ack, CLIENT_IF, 20), SERVER_IF);
    assert_eq!(mac_of(&out), RS_MAC);
    assert_eq!(fw.director().connections()[0].state, "ESTABLISHED");
}

#[test]
fn expire_nodest_conn_on_expires_the_connection_and_drops() {
    let mut fw = forwarder_with(|s| s.expire_nodest_conn = true);
    with_dests(
        &mut fw,
        SchedulerKind::Rr,
        None,
        &[RS4, RS4B],
        Forward::Route,
    );
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let first = mac_of(&sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF));
    let gone = if first == RS_MAC { RS4 } else { RS4B };
    fw.director_mut().del_dest(&k80(), ip(gone), 80).unwrap();
    let ack = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Ack);
    assert_eq!(
        run(&mut fw, &ack, CLIENT_IF, 10).0,
        Verdict::Drop(DropReason::DestUnavailable)
    );
    assert!(
        fw.director().connections().is_empty(),
        "the connection is expired"
    );
    // The client's retry is scheduled afresh, on the remaining server.
    let out = sent(run(&mut fw, &syn, CLIENT_IF, 20), SERVER_IF);
    assert_ne!(mac_of(&out), first);
}

#[test]
fn rr_cycles_newest_first_over_many_flows() {
    let mut fw = forwarder();
    with_dests(
        &mut fw,
        SchedulerKind::Rr,
        None,
        &[RS4, RS4B, RS4C],
        Forward::Masq,
    );
    let mut got = Vec::new();
    for i in 0..30u16 {
        // Even ports, as Linux picks them.
        let out = syn_to_server(&mut fw, 40000 + 2 * i, 0);
        got.push(mac_of(&out));
    }
    let want: Vec<Mac> = [RS_MAC_C, RS_MAC_B, RS_MAC]
        .iter()
        .cycle()
        .take(30)
        .copied()
        .collect();
    assert_eq!(got, want);
    let counts: Vec<u64> = fw
        .director()
        .service(&k80())
        .unwrap()
        .dests
        .iter()
        .map(|d| d.stats.conns)
        .collect();
    assert_eq!(counts, vec![10, 10, 10]);
}

#[test]
fn weight_zero_drains_and_no_server_gets_port_unreachable() {
    let mut fw = forwarder();
    with_dests(&mut fw, SchedulerKind::Rr, None, &[RS4], Forward::Route);
    syn_to_server(&mut fw, 40000, 0);
    let mut d = dest(RS4, 80, Forward::Route);
    d.weight = 0;
    fw.director_mut().edit_dest(&k80(), d).unwrap();
    // The existing connection carries on.
    sent(
        run(
            &mut fw,
            &from_client(CLIENT4, 40000, VIP4, 80, Tcp::Ack),
            CLIENT_IF,
            1,
        ),
        SERVER_IF,
    );
    // A new one has nowhere to go: ICMP port unreachable from the VIP.
    let syn = from_client(CLIENT4, 40002, VIP4, 80, Tcp::Syn);
    let reply = replied(run(&mut fw, &syn, CLIENT_IF, 2), CLIENT_IF);
    assert_eq!(&reply[0..6], &ROUTER_MAC);
    assert_eq!(&reply[26..30], &v4(VIP4));
    assert_eq!(&reply[30..34], &v4(CLIENT4));
    assert_eq!((reply[34], reply[35]), (3, 3));
    assert!(csum_ok(&reply[34..], 0));
    assert_eq!(&reply[42..], &syn[14..]);
    assert_eq!(fw.counters().dropped(DropReason::NoDest), 1);
}

#[test]
fn upper_threshold_overloads_the_server() {
    let mut fw = forwarder();
    with_dests(&mut fw, SchedulerKind::Wlc, None, &[], Forward::Route);
    let mut d = dest(RS4, 80, Forward::Route);
    d.u_threshold = 1;
    fw.director_mut().add_dest(&k80(), d).unwrap();
    syn_to_server(&mut fw, 40000, 0);
    let (v, _) = run(
        &mut fw,
        &from_client(CLIENT4, 40002, VIP4, 80, Tcp::Syn),
        CLIENT_IF,
        1,
    );
    assert!(matches!(v, Verdict::Reply { .. }), "overloaded: {v:?}");
}

#[test]
fn conn_reuse_mode_reschedules_a_time_wait_tuple() {
    for (mode, moved) in [(1u8, true), (0, false)] {
        let mut fw = forwarder_with(|s| s.conn_reuse_mode = mode);
        with_dests(
            &mut fw,
            SchedulerKind::Rr,
            None,
            &[RS4, RS4B],
            Forward::Masq,
        );
        let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
        let first = sent(run(&mut fw, &syn, CLIENT_IF, 0), SERVER_IF);
        let rs = if mac_of(&first) == RS_MAC { RS4 } else { RS4B };
        let srv = |f| from_server((rs, 80), (CLIENT4, 40000), f);
        sent(run(&mut fw, &srv(Tcp::SynAck), SERVER_IF, 1), CLIENT_IF);
        sent(
            run(
                &mut fw,
                &from_client(CLIENT4, 40000, VIP4, 80, Tcp::Ack),
                CLIENT_IF,
                2,
            ),
            SERVER_IF,
        );
        sent(
            run(
                &mut fw,
                &from_client(CLIENT4, 40000, VIP4, 80, Tcp::FinAck),
                CLIENT_IF,
                3,
            ),
            SERVER_IF,
        );
        sent(run(&mut fw, &srv(Tcp::FinAck), SERVER_IF, 4), CLIENT_IF);
        assert_eq!(fw.director().connections()[0].state, "TIME_WAIT");
        let again = sent(run(&mut fw, &syn, CLIENT_IF, 5), SERVER_IF);
        assert_eq!(
            mac_of(&again) != mac_of(&first),
            moved,
            "conn_reuse_mode={mode}"
        );
    }
}

#[test]
fn persistence_keeps_a_client_on_one_server() {
    let mut fw = forwarder();
    with_dests(
        &mut fw,
        SchedulerKind::Rr,
        Some(300),
        &[RS4, RS4B, RS4C],
        Forward::Route,
    );
    let macs: Vec<Mac> = (0..6u16)
        .map(|i| mac_of(&syn_to_server(&mut fw, 40000 + i, 0)))
        .collect();
    assert!(macs.iter().all(|m| *m == macs[0]), "{macs:?}");
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut fw = forwarder();
    with_dests(&mut fw, SchedulerKind::Rr, None, &[RS4], Forward::Route);
    let mut syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    syn[22] = 1;
    syn[24] = 0;
    syn[25] = 0;
    let c = rvs_forward::checksum_fold(rvs_forward::checksum_sum(0, &syn[14..34]));
    syn[24..26].copy_from_slice(&c.to_be_bytes());
    let (v, reply) = run(&mut fw, &syn, CLIENT_IF, 0);
    assert!(matches!(v, Verdict::Reply { .. }), "{v:?}");
    assert_eq!((reply[34], reply[35]), (11, 0));
    assert_eq!(fw.counters().dropped(DropReason::TtlExceeded), 1);
}

#[test]
fn missing_neighbour_asks_for_a_probe_and_missing_route_drops() {
    let mut fw = forwarder();
    with_dests(&mut fw, SchedulerKind::Rr, None, &[RS4], Forward::Route);
    let mut t = table();
    t.hops.get_mut(&ip(RS4)).unwrap().dst_mac = None;
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let (v, _) = run_meta(&mut fw, &syn, &meta(CLIENT_IF), &t, 0);
    assert_eq!(
        v,
        Verdict::NeedNeighbour {
            ip: ip(RS4),
            iface: SERVER_IF
        }
    );
    assert_eq!(fw.counters().dropped(DropReason::NoNeighbour), 1);
    // Once resolved, the retransmission goes through on the same connection.
    sent(run(&mut fw, &syn, CLIENT_IF, 1000), SERVER_IF);
    assert_eq!(fw.director().connections().len(), 1);
    t.hops.remove(&ip(RS4));
    let (v, _) = run_meta(&mut fw, &syn, &meta(CLIENT_IF), &t, 2000);
    assert_eq!(v, Verdict::Drop(DropReason::NoRoute));
}

#[test]
fn local_and_proxy_servers_are_not_forwarded() {
    for (method, verdict) in [
        (Forward::Local, Verdict::Pass),
        (Forward::Proxy, Verdict::Drop(DropReason::UnsupportedMethod)),
    ] {
        let mut fw = forwarder();
        with_dests(&mut fw, SchedulerKind::Rr, None, &[RS4], method);
        assert_eq!(
            run(
                &mut fw,
                &from_client(CLIENT4, 1, VIP4, 80, Tcp::Syn),
                CLIENT_IF,
                0
            )
            .0,
            verdict,
            "{method:?}"
        );
    }
}

#[test]
fn traffic_for_others_is_passed() {
    let mut fw = forwarder();
    with_dests(&mut fw, SchedulerKind::Rr, None, &[RS4], Forward::Route);
    // Another port of the VIP, another address, ARP.
    assert_eq!(
        run(
            &mut fw,
            &from_client(CLIENT4, 1, VIP4, 22, Tcp::Syn),
            CLIENT_IF,
            0
        )
        .0,
        Verdict::Pass
    );
    assert_eq!(
        run(
            &mut fw,
            &from_client(CLIENT4, 1, DIRECTOR4, 80, Tcp::Syn),
            CLIENT_IF,
            0
        )
        .0,
        Verdict::Pass
    );
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&ROUTER_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(run(&mut fw, &arp, CLIENT_IF, 0).0, Verdict::Pass);
    assert_eq!(fw.counters().passed, 3);
}

/// The sequence, acknowledgment and flags of the TCP segment in `frame`.
fn tcp_numbers(frame: &[u8]) -> (u32, u32, u8) {
    let h = etherparse::PacketHeaders::from_ethernet_slice(frame).unwrap();
    let Some(etherparse::TransportHeader::Tcp(t)) = h.transport else {
        panic!("not TCP");
    };
    let flags = u8::from(t.fin)
        | u8::from(t.syn) << 1
        | u8::from(t.rst) << 2
        | u8::from(t.psh) << 3
        | u8::from(t.ack) << 4;
    (t.sequence_number, t.acknowledgment_number, flags)
}

#[test]
fn a_stray_segment_to_a_service_is_reset_as_the_kernel_director_does() {
    for (client, vip) in [(CLIENT4, VIP4), (CLIENT6, VIP6)] {
        let mut fw = forwarder();
        service(
            &mut fw,
            key(Protocol::Tcp, vip, 80),
            dest(if vip == VIP4 { RS4 } else { RS6 }, 80, Forward::Route),
        );
        // With ACK: the reset takes the acknowledgment as its sequence.
        let ack = from_client(client, 40000, vip, 80, Tcp::Ack);
        let (v, out) = run(&mut fw, &ack, CLIENT_IF, 0);
        assert!(
            matches!(v, Verdict::Reply { iface, .. } if iface == CLIENT_IF),
            "{v:?}"
        );
        let p = parse_checked(&out);
        assert_eq!((p.src_mac, p.dst_mac), (DIRECTOR_MAC, ROUTER_MAC));
        assert_eq!((p.src, p.dst), (ip(vip), ip(client)));
        assert_eq!((p.sport, p.dport), (80, 40000));
        assert!(p.payload.is_empty());
        assert_eq!(tcp_numbers(&out), (1, 0, 0x04), "RST, seq = the ACK");
        // Without ACK (FIN alone): seq 0, acknowledging data and FIN.
        let mut fin = from_client(client, 40001, vip, 80, Tcp::FinAck);
        let flags_at = fin.len() - 5 - 20 + 13;
        fin[flags_at] = 0x01;
        let (_, out) = run(&mut fw, &fin, CLIENT_IF, 1);
        let p = parse_checked(&out);
        assert_eq!(p.dport, 40001);
        assert_eq!(
            tcp_numbers(&out),
            (0, 1000 + 5 + 1, 0x14),
            "RST|ACK of the 5 bytes and the FIN"
        );
        // A reset is never answered; other ports and addresses are the
        // host's; no connection is created.
        for f in [
            from_client(client, 40002, vip, 80, Tcp::Rst),
            from_client(client, 40003, vip, 22, Tcp::Ack),
        ] {
            let (v, _) = run(&mut fw, &f, CLIENT_IF, 2);
            assert!(matches!(v, Verdict::Drop(_) | Verdict::Pass), "{v:?}");
        }
        assert_eq!(
            run(
                &mut fw,
                &from_client(client, 40003, vip, 22, Tcp::Ack),
                CLIENT_IF,
                3
            )
            .0,
            Verdict::Pass
        );
        let c = fw.counters();
        assert_eq!((c.resets_sent, c.icmp_sent), (2, 0), "{c:?}");
        assert!(fw.director().connections().is_empty());
    }
}

#[test]
fn one_packet_scheduling_spreads_every_datagram() {
    let mut fw = forwarder();
    let k = key(Protocol::Udp, VIP4, 53);
    let mut cfg = ServiceConfig::new(k);
    cfg.scheduler = SchedulerKind::Rr;
    cfg.one_packet = true;
    fw.director_mut().add_service(cfg).unwrap();
    for r in [RS4, RS4B] {
        fw.director_mut()
            .add_dest(&k, dest(r, 53, Forward::Route))
            .unwrap();
    }
    let q = udp_frame(
        (CLIENT4, 5353),
        (VIP4, 53),
        b"q",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    let macs: Vec<Mac> = (0..4)
        .map(|t| mac_of(&sent(run(&mut fw, &q, CLIENT_IF, t), SERVER_IF)))
        .collect();
    assert_eq!(macs, vec![RS_MAC_B, RS_MAC, RS_MAC_B, RS_MAC]);
    assert!(fw.director().connections().is_empty(), "no entry stays");
}

#[test]
fn hop_limit_one_gets_icmpv6_time_exceeded() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP6, 80),
        dest(RS6, 80, Forward::Route),
    );
    let mut syn = tcp_frame(
        (CLIENT6, 1),
        (VIP6, 80),
        Tcp::Syn,
        b"",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    syn[14 + 7] = 1;
    let reply = replied(run(&mut fw, &syn, CLIENT_IF, 0), CLIENT_IF);
    assert_eq!((reply[54], reply[55]), (3, 0));
    assert_eq!(&reply[22..38], &v6(VIP6));
    assert_eq!(&reply[62..], &syn[14..]);
}
