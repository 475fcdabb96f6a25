use std::net::IpAddr;

use super::*;
use crate::director::{DirectorConfig, PacketInfo, SyncInstalled, SyncRefused, Verdict};
use crate::model::{DestConfig, Forward, ServiceConfig, ServiceKey};
use crate::sctp::SctpEvent;
use crate::state::TcpFlags;

const VIP: &str = "203.0.113.10";
const VIP6: &str = "2001:db8::10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(vip: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(vip),
        port,
    }
}

fn dest(addr: &str, port: u16, forward: Forward) -> DestConfig {
    DestConfig {
        addr: ip(addr),
        port,
        forward,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    }
}

/// Services on both directors: DR on VIP:80, persistent DR on VIP:443,
/// NAT on [VIP6]:80.
fn configure(d: &mut Director) {
    d.add_service(ServiceConfig::new(key(VIP, 80))).unwrap();
    d.add_dest(&key(VIP, 80), dest("198.51.100.11", 80, Forward::Route))
        .unwrap();
    let mut p = ServiceConfig::new(key(VIP, 443));
    p.persistence = Some(360);
    d.add_service(p).unwrap();
    d.add_dest(&key(VIP, 443), dest("198.51.100.12", 443, Forward::Route))
        .unwrap();
    d.add_service(ServiceConfig::new(key(VIP6, 80))).unwrap();
    d.add_dest(&key(VIP6, 80), dest("2001:db8:1::11", 8080, Forward::Masq))
        .unwrap();
}

fn tcp(client: &str, cport: u16, vip: &str, vport: u16, flags: TcpFlags) -> PacketInfo {
    PacketInfo {
        proto: Protocol::Tcp,
        src: ip(client),
        sport: cport,
        dst: ip(vip),
        dport: vport,
        fwmark: 0,
        tcp: flags,
        sctp: SctpEvent::Data,
        len: 52,
    }
}

fn master() -> Director {
    let mut d = Director::new(DirectorConfig::default());
    configure(&mut d);
    d.set_sync_master(Some(SyncSettings::default()));
    d
}

fn drain(d: &mut Director) -> Vec<SyncConn> {
    let mut v = Vec::new();
    d.drain_sync_updates(&mut v);
    v
}

#[track_caller]
fn forward(v: Verdict) -> crate::director::Forwarding {
    match v {
        Verdict::Forward(f) => f,
        other => panic!("expected Forward, got {other:?}"),
    }
}

#[test]
fn established_connection_is_sent_at_the_threshold_and_every_period() {
    let mut d = master();
    let c = "192.0.2.10";
    forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::SYN), 0));
    forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::ACK), 1));
    assert!(drain(&mut d).is_empty(), "SYN_RECV, then packet 2");
    forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::ACK), 2));
    let sent = drain(&mut d);
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(
        (r.proto, r.state, r.cport, r.vport, r.dport, r.timeout),
        (6, TcpState::Established.index() as u16, 40000, 80, 80, 900)
    );
    assert_eq!(
        r.flags, 0x83,
        "DR | NOOUTPUT, active: the §3.6 example's flags"
    );
    assert_eq!(r.daddr, ip("198.51.100.11"));
    // Packets 4..=52: nothing; 53: again; 103: again.
    let mut at = Vec::new();
    for n in 4..=110u32 {
        forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::ACK), u64::from(n)));
        if !drain(&mut d).is_empty() {
            at.push(n);
        }
    }
    assert_eq!(at, vec![53, 103]);
}

#[test]
fn closing_states_are_sent_at_once() {
    let mut d = master();
    let c = "192.0.2.10";
    for (t, f) in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::ACK]
        .into_iter()
        .enumerate()
    {
        forward(d.inbound(&tcp(c, 40000, VIP, 80, f), t as u64));
    }
    drain(&mut d);
    forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::FIN_ACK), 10));
    let sent = drain(&mut d);
    let state = TcpState::from_index(sent[0].state as u8).unwrap();
    assert_ne!(state, TcpState::Established);
    assert_eq!(sent.len(), 1, "forced on the change to {state:?}");
    // The same state again: no force, and packet 5 is off the period.
    forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::ACK), 11));
    assert!(drain(&mut d).is_empty());
}

#[test]
fn templates_go_with_every_packet_of_their_connections() {
    let mut d = master();
    let c = "192.0.2.20";
    let flags = [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::ACK, TcpFlags::ACK];
    let mut per_packet = Vec::new();
    for (t, f) in flags.into_iter().enumerate() {
        forward(d.inbound(&tcp(c, 40001, VIP, 443, f), t as u64));
        let sent = drain(&mut d);
        per_packet.push(
            sent.iter()
                .map(|r| r.flags & u32::from(crate::conn::flags::TEMPLATE) != 0)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        per_packet,
        vec![vec![true], vec![true], vec![false, true], vec![true]]
    );
    let mut d2 = master();
    d2.set_sync_master(Some(SyncSettings {
        persist_mode: true,
        ..SyncSettings::default()
    }));
    for (t, f) in flags.into_iter().enumerate() {
        forward(d2.inbound(&tcp(c, 40001, VIP, 443, f), t as u64));
    }
    let sent = drain(&mut d2);
    assert_eq!(sent.len(), 4);
    assert!(
        sent.iter().all(|r| r.cport == 0),
        "persist mode: templates only"
    );
    let t = &sent[3];
    assert_eq!(
        (t.vport, t.dport, t.timeout, t.flags),
        (443, 443, 360, 0x1183)
    );
    assert_eq!(t.state, 1, "assured once the connection is established");
}

#[test]
fn refresh_period_and_retries() {
    let mut d = master();
    d.set_sync_master(Some(SyncSettings {
        period: 0,
        refresh_period_ms: 60_000,
        retries: 2,
        ..SyncSettings::default()
    }));
    let c = "192.0.2.30";
    forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::SYN), 0));
    let mut at = Vec::new();
    // A packet every second for 130 s.
    for t in 1..=130u64 {
        forward(d.inbound(&tcp(c, 40000, VIP, 80, TcpFlags::ACK), t * 1000));
        if !drain(&mut d).is_empty() {
            at.push(t);
        }
    }
    // First at ESTABLISHED (1 s); two retries at least refresh/8 = 7.5 s
    // apart (9 s, 17 s); each send, retries included, records the expiry it
    // announced, so the next full send comes once the expiry moved by the
    // refresh period from the last retry (77 s), then its retries.
    assert_eq!(at, vec![1, 9, 17, 77, 85, 93]);
}

#[test]
fn period_zero_without_refresh_sends_once() {
    let mut d = master();
    d.set_sync_master(Some(SyncSettings {
        period: 0,
        ..SyncSettings::default()
    }));
    let c = "192.0.2.31";
    let mut n = 0;
    for t in 0..200u64 {
        let f = if t == 0 { TcpFlags::SYN } else { TcpFlags::ACK };
        forward(d.inbound(&tcp(c, 40000, VIP, 80, f), t));
        n += drain(&mut d).len();
    }
    assert_eq!(n, 1);
}

#[test]
fn sync_off_queues_nothing() {
    let mut d = master();
    d.set_sync_master(None);
    for (t, f) in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::ACK]
        .into_iter()
        .enumerate()
    {
        forward(d.inbound(&tcp("192.0.2.1", 1, VIP, 80, f), t as u64));
    }
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.sync_master(), None);
}

#[test]
fn pending_queue_is_bounded() {
    let mut d = master();
    d.set_sync_master(Some(SyncSettings {
        max_pending: 2,
        ..SyncSettings::default()
    }));
    for port in 0..5u16 {
        for (t, f) in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::ACK]
            .into_iter()
            .enumerate()
        {
            forward(d.inbound(&tcp("192.0.2.1", 1000 + port, VIP, 80, f), t as u64));
        }
    }
    assert_eq!(drain(&mut d).len(), 2);
    assert_eq!(d.sync_updates_dropped(), 3);
}

fn record(cport: u16) -> SyncConn {
    SyncConn {
        proto: 6,
        flags: 0x83,
        state: 1,
        caddr: ip("192.0.2.10"),
        cport,
        vaddr: ip(VIP),
        vport: 80,
        daddr: ip("198.51.100.11"),
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe: None,
    }
}

#[test]
fn sender_batches_to_maxlen_and_flushes_after_the_delay() {
    let mut s = SyncSender::new(SyncSenderConfig {
        sync_id: 7,
        ..SyncSenderConfig::default()
    });
    for i in 0..100 {
        s.push(1000, &record(i));
    }
    // 1472-byte messages hold 40 IPv4 records (8 + 40 × 36 = 1448).
    assert_eq!(s.queued(), 2);
    assert_eq!(s.poll_timeout(), Some(0));
    let mut buf = [0u8; 1500];
    let mut got = Vec::new();
    while let Some(n) = s.poll_datagram(1000, &mut buf) {
        let m = rvs_wire::sync::decode(&buf[..n]).unwrap();
        assert_eq!(m.sync_id, 7);
        got.push((n, m.conns.len()));
    }
    assert_eq!(got, vec![(1448, 40), (1448, 40)]);
    // The rest goes out 2 s after its first record.
    assert_eq!(s.poll_timeout(), Some(3000));
    assert_eq!(s.poll_datagram(2999, &mut buf), None);
    let n = s.poll_datagram(3000, &mut buf).unwrap();
    let m = rvs_wire::sync::decode(&buf[..n]).unwrap();
    assert_eq!(m.conns.len(), 20);
    assert_eq!(m.conns[0], record(80));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.stats().records, 100);
    assert_eq!(s.stats().messages, 3);
}

#[test]
fn sender_limits() {
    let mut s = SyncSender::new(SyncSenderConfig {
        maxlen: 8 + 36,
        max_queue: 1,
        ..SyncSenderConfig::default()
    });
    s.push(0, &record(1));
    s.push(0, &record(2)); // seals message 1
    s.push(0, &record(3)); // queue full: dropped
    assert_eq!(s.stats().dropped_queue_full, 1);
    let mut mixed = record(4);
    mixed.daddr = ip("2001:db8::1");
    s.push(0, &mixed);
    assert_eq!(s.stats().dropped_unencodable, 1);
    let mut small = [0u8; 10];
    assert_eq!(s.poll_datagram(0, &mut small), None);
    assert_eq!(s.stats().dropped_short_buffer, 1);
    s.flush();
    let mut buf = [0u8; 100];
    assert_eq!(s.poll_datagram(0, &mut buf), Some(44));
}

#[test]
fn receiver_filters_by_sync_id_and_reads_v0() {
    let v1 = rvs_wire::sync::encode_v1(5, &[record(1)], 1472).unwrap();
    let mut r = SyncReceiver::new(6);
    assert!(r.decode(&v1).is_none());
    assert_eq!(r.stats().other_sync_id, 1);
    let mut any = SyncReceiver::new(0);
    assert_eq!(any.decode(&v1).unwrap().conns, vec![record(1)]);
    assert!(any.decode(&v1[..10]).is_none());
    assert_eq!(any.stats().bad_messages, 1);

    // A v0 record carries no timeout: the backup uses the state's default.
    let mut v0rec = record(2);
    v0rec.timeout = 0;
    let v0 = rvs_wire::sync::encode_v0(5, &[v0rec]).unwrap();
    let mut backup = Director::new(DirectorConfig::default());
    configure(&mut backup);
    let mut r = SyncReceiver::new(5);
    assert_eq!(r.handle(&v0, &mut backup, 1000), 1);
    let conns = backup.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].expires_ms, 900_000);
    assert_eq!(conns[0].state, "ESTABLISHED");
}

/// The comparable part of a connection listing: protocol, template,
/// client, virtual and server address and port, state, flags less SYNC.
type Row = (
    u8,
    bool,
    IpAddr,
    u16,
    IpAddr,
    u16,
    IpAddr,
    u16,
    &'static str,
    u16,
);

fn table(d: &Director) -> Vec<Row> {
    let mut v: Vec<_> = d
        .connections()
        .into_iter()
        .map(|c| {
            (
                c.proto,
                c.template,
                c.caddr,
                c.cport,
                c.vaddr,
                c.vport,
                c.daddr,
                c.dport,
                c.state,
                c.flags & !crate::conn::flags::SYNC,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn master_connections_reach_the_backup_through_the_wire() {
    let mut m = master();
    let mut t = 0;
    let mut sender = SyncSender::new(SyncSenderConfig {
        sync_id: 9,
        ..SyncSenderConfig::default()
    });
    let mut updates = Vec::new();
    // 30 DR connections on :80, 10 persistent on :443 (10 clients), 20 NAT
    // over IPv6 (with server replies, so they leave NOOUTPUT behind).
    for i in 0..30u16 {
        for f in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::ACK] {
            forward(m.inbound(&tcp("192.0.2.10", 30000 + i, VIP, 80, f), t));
            t += 1;
        }
    }
    for i in 0..10u16 {
        let client = format!("192.0.2.{}", 100 + i);
        for f in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::ACK] {
            forward(m.inbound(&tcp(&client, 40000, VIP, 443, f), t));
            t += 1;
        }
    }
    for i in 0..20u16 {
        let client = format!("2001:db8:2::{}", i + 1);
        let syn = forward(m.inbound(&tcp(&client, 50000, VIP6, 80, TcpFlags::SYN), t));
        forward(m.outbound(syn.conn, TcpFlags::SYN_ACK, 60, t));
        forward(m.inbound(&tcp(&client, 50000, VIP6, 80, TcpFlags::ACK), t));
        forward(m.inbound(&tcp(&client, 50000, VIP6, 80, TcpFlags::ACK), t));
        t += 1;
    }
    m.drain_sync_updates(&mut updates);
    for u in &updates {
        sender.push(t, u);
    }
    sender.flush();
    let mut backup = Director::new(DirectorConfig::default());
    configure(&mut backup);
    let mut receiver = SyncReceiver::new(9);
    let mut buf = vec![0u8; 1472];
    while let Some(n) = sender.poll_datagram(t, &mut buf) {
        assert!(n <= 1472);
        receiver.handle(&buf[..n], &mut backup, t);
    }
    assert_eq!(m.conn_count(), 30 + 10 + 10 + 20);
    assert_eq!(table(&backup), table(&m));
    assert_eq!(receiver.stats().refused, 0);
    // Entries made by sync carry the SYNC flag.
    assert!(backup.connections().iter().all(|c| c.flags & 0x20 != 0));
    // Server counters match: active connections, persistent templates.
    let counts = |d: &Director| {
        d.services()
            .iter()
            .flat_map(|s| s.dests.iter().map(|x| (x.active, x.inactive, x.persistent)))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&backup), counts(&m));
    assert_eq!(counts(&m), vec![(30, 0, 0), (10, 0, 10), (20, 0, 0)]);
    // The backup forwards a packet of a synced connection to the same server.
    let f = forward(backup.inbound(&tcp("192.0.2.10", 30005, VIP, 80, TcpFlags::ACK), t + 1));
    assert!(!f.new_conn);
    assert_eq!(
        (f.daddr, f.dport, f.method),
        (ip("198.51.100.11"), 80, Forward::Route)
    );
}

#[test]
fn unknown_server_makes_an_unbound_entry_bound_later() {
    let mut backup = Director::new(DirectorConfig::default());
    assert_eq!(
        backup.sync_install(&record(1), 0),
        Ok(SyncInstalled::Created)
    );
    assert_eq!(
        backup.sync_install(&record(2), 0),
        Ok(SyncInstalled::Created)
    );
    let conns = backup.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0].daddr, ip("198.51.100.11"));
    assert_eq!(conns[0].dest, conns[1].dest, "one stand-in per server");
    // Still forwarded, as the kernel forwards unbound connections.
    let f = forward(backup.inbound(&tcp("192.0.2.10", 1, VIP, 80, TcpFlags::ACK), 10));
    assert_eq!((f.daddr, f.method), (ip("198.51.100.11"), Forward::Route));
    // The server is configured: it takes the entries over.
    configure(&mut backup);
    let s = backup.service(&key(VIP, 80)).unwrap();
    assert_eq!(s.dests[0].id, conns[0].dest);
    assert_eq!(s.dests[0].active, 2);
}

#[test]
fn updates_and_stale_records() {
    let mut b = Director::new(DirectorConfig::default());
    configure(&mut b);
    let mut r = record(1);
    r.flags |= 0x100; // inactive
    r.state = 2; // SYN_RECV
    r.timeout = 60;
    assert_eq!(b.sync_install(&r, 0), Ok(SyncInstalled::Created));
    let d = &b.service(&key(VIP, 80)).unwrap().dests[0];
    assert_eq!((d.active, d.inactive), (0, 1));
    assert_eq!(b.sync_install(&record(1), 1000), Ok(SyncInstalled::Updated));
    let d = &b.service(&key(VIP, 80)).unwrap().dests[0];
    assert_eq!((d.active, d.inactive), (1, 0));
    let c = &b.connections()[0];
    assert_eq!(
        (c.state, c.expires_ms, c.flags),
        ("ESTABLISHED", 900_000, 0x83 | 0x20)
    );
    // The master moved the connection to another server: an inactive
    // record is stale; an active one replaces the entry.
    let mut moved = record(1);
    moved.daddr = ip("198.51.100.99");
    moved.flags |= 0x100;
    assert_eq!(b.sync_install(&moved, 2000), Err(SyncRefused::Stale));
    moved.flags &= !0x100;
    assert_eq!(b.sync_install(&moved, 2000), Ok(SyncInstalled::Created));
    let conns = b.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].daddr, ip("198.51.100.99"));
    let d = &b.service(&key(VIP, 80)).unwrap().dests[0];
    assert_eq!((d.active, d.inactive), (0, 0));
}

#[test]
fn refusals_change_nothing() {
    let mut b = Director::new(DirectorConfig::default());
    let mut r = record(1);
    r.daddr = ip("2001:db8::1");
    assert_eq!(b.sync_install(&r, 0), Err(SyncRefused::MixedFamily));
    let mut r = record(1);
    r.proto = 47;
    assert_eq!(b.sync_install(&r, 0), Err(SyncRefused::Protocol(47)));
    let mut r = record(1);
    r.state = 11;
    assert_eq!(b.sync_install(&r, 0), Err(SyncRefused::State(11)));
    let mut r = record(1);
    r.pe = Some(rvs_wire::sync::PeData {
        name: b"sip".to_vec(),
        data: b"x".to_vec(),
    });
    assert_eq!(b.sync_install(&r, 0), Err(SyncRefused::PersistenceEngine));
    let mut r = record(1);
    r.proto = 17;
    r.state = 1;
    assert_eq!(b.sync_install(&r, 0), Err(SyncRefused::State(1)));
    assert_eq!(b.conn_count(), 0);
    let mut small = Director::new(DirectorConfig {
        conn_capacity: 1,
        ..DirectorConfig::default()
    });
    small.sync_install(&record(1), 0).unwrap();
    assert_eq!(
        small.sync_install(&record(2), 0),
        Err(SyncRefused::TableFull)
    );
}

#[test]
fn synced_entries_expire_with_the_record_timeout() {
    let mut b = Director::new(DirectorConfig::default());
    configure(&mut b);
    let mut r = record(1);
    r.timeout = 10;
    b.sync_install(&r, 0).unwrap();
    b.advance(9_999);
    assert_eq!(b.conn_count(), 1);
    b.advance(10_000);
    assert_eq!(b.conn_count(), 0);
    let d = &b.service(&key(VIP, 80)).unwrap().dests[0];
    assert_eq!((d.active, d.inactive), (0, 0));
}

#[test]
fn snapshot_lists_templates_first() {
    let mut m = master();
    for (t, f) in [TcpFlags::SYN, TcpFlags::ACK].into_iter().enumerate() {
        forward(m.inbound(&tcp("192.0.2.7", 1, VIP, 443, f), t as u64));
    }
    let snap = m.sync_snapshot();
    assert_eq!(snap.len(), 2);
    assert_eq!(snap[0].cport, 0);
    assert_eq!(snap[1].cport, 1);
    let mut b = Director::new(DirectorConfig::default());
    configure(&mut b);
    for r in &snap {
        b.sync_install(r, 5).unwrap();
    }
    assert_eq!(table(&b), table(&m));
}

#[test]
fn maxlen_from_mtu() {
    assert_eq!(SyncSenderConfig::maxlen_for_mtu(1500, false), 1472);
    assert_eq!(SyncSenderConfig::maxlen_for_mtu(1500, true), 1452);
    assert_eq!(SyncSenderConfig::maxlen_for_mtu(9000, false), 8972);
    assert_eq!(SyncSenderConfig::maxlen_for_mtu(40, false), 80);
}

#[test]
fn udp_is_sent_every_period_without_state_forcing() {
    let mut d = Director::new(DirectorConfig::default());
    let k = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip(VIP),
        port: 53,
    };
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("198.51.100.53", 53, Forward::Masq))
        .unwrap();
    d.set_sync_master(Some(SyncSettings::default()));
    let mut at = Vec::new();
    for n in 1..=120u64 {
        let p = PacketInfo {
            proto: Protocol::Udp,
            src: ip("192.0.2.9"),
            sport: 5353,
            dst: ip(VIP),
            dport: 53,
            fwmark: 0,
            tcp: TcpFlags::default(),
            sctp: SctpEvent::Data,
            len: 100,
        };
        forward(d.inbound(&p, n));
        let sent = drain(&mut d);
        if let Some(r) = sent.first() {
            assert_eq!((r.proto, r.state, r.timeout, r.flags), (17, 0, 300, 0x100));
            at.push(n);
        }
    }
    assert_eq!(at, vec![3, 53, 103]);
}

#[test]
fn a_template_is_updated_whatever_server_the_record_names() {
    let mut b = Director::new(DirectorConfig::default());
    configure(&mut b);
    let mut t = record(0);
    t.vport = 443;
    t.dport = 443;
    t.daddr = ip("198.51.100.12");
    t.flags = 0x1183;
    t.state = 0;
    t.timeout = 360;
    assert_eq!(b.sync_install(&t, 0), Ok(SyncInstalled::Created));
    t.daddr = ip("198.51.100.99");
    t.state = 1;
    t.timeout = 60;
    assert_eq!(b.sync_install(&t, 1000), Ok(SyncInstalled::Updated));
    let c = &b.connections()[0];
    assert_eq!(
        (c.daddr, c.state, c.expires_ms),
        (ip("198.51.100.12"), "ASSURED", 60_000)
    );
    assert_eq!(b.service(&key(VIP, 443)).unwrap().dests[0].persistent, 1);
}

#[test]
fn proxy_entries_are_not_sent_unless_asked() {
    let run = |include_proxy: bool| {
        let mut d = Director::new(DirectorConfig::default());
        d.add_service(ServiceConfig::new(key(VIP, 8080))).unwrap();
        d.add_dest(&key(VIP, 8080), dest("198.51.100.80", 80, Forward::Proxy))
            .unwrap();
        d.set_sync_master(Some(SyncSettings {
            include_proxy,
            ..SyncSettings::default()
        }));
        let syn = forward(d.inbound(&tcp("192.0.2.8", 1, VIP, 8080, TcpFlags::SYN), 0));
        forward(d.outbound(syn.conn, TcpFlags::SYN_ACK, 60, 0));
        for t in 1..=3 {
            forward(d.inbound(&tcp("192.0.2.8", 1, VIP, 8080, TcpFlags::ACK), t));
        }
        drain(&mut d)
    };
    assert!(run(false).is_empty());
    let sent = run(true);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].flags & 7, 5);
}
