//! Integration tests of the sans-IO director through its public API.
//!
//! The behaviour reproduced is the kernel's IPVS as specified in
//! `ipvs-behaviour.md` (§0b items 1, 4, 5, 8, 9, 14, 15; §1.3, §1.4,
//! §1.7–§1.10, §2.5). Expectations do not depend on which scheduler runs:
//! where a choice between servers matters, every server but one is made
//! ineligible (weight 0, overloaded), except in the list-order test.
//!
//! Times are virtual milliseconds; TCP packets are 52 bytes, UDP 128.

use std::net::IpAddr;

use rvs_core::director::{
    ConnRef, ConnSnapshot, CtlError, DestSnapshot, Director, DirectorConfig, DropReason,
    Forwarding, PacketInfo, Verdict,
};
use rvs_core::model::{
    DestConfig, Family, Forward, ModelError, Netmask, Protocol, ServiceConfig, ServiceKey, Sysctls,
    Timeouts, Tunnel,
};
use rvs_core::state::TcpFlags;

const VIP: &str = "203.0.113.10";
const TCP_LEN: u32 = 52;
const UDP_LEN: u32 = 128;
const NOOUTPUT: u16 = 0x0080;
const INACTIVE: u16 = 0x0100;
const TEMPLATE: u16 = 0x1000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(proto: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: ip(VIP),
        port,
    }
}

fn tcp_key(port: u16) -> ServiceKey {
    key(Protocol::Tcp, port)
}

fn udp_key(port: u16) -> ServiceKey {
    key(Protocol::Udp, port)
}

fn persistent(k: ServiceKey, timeout: u32) -> ServiceConfig {
    let mut c = ServiceConfig::new(k);
    c.persistence = Some(timeout);
    c
}

fn dest(addr: &str, port: u16, forward: Forward, weight: u32) -> DestConfig {
    DestConfig {
        addr: ip(addr),
        port,
        forward,
        weight,
        u_threshold: 0,
        l_threshold: 0,
    }
}

/// Adds a service on 2001:db8::10:`port` with one masquerading server,
/// 2001:db8:1::11:`rport`.
fn masq_service_v6(d: &mut Director, proto: Protocol, port: u16, rport: u16) {
    let k = ServiceKey::Addr {
        proto,
        addr: ip("2001:db8::10"),
        port,
    };
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("2001:db8:1::11", rport, Forward::Masq, 1))
        .unwrap();
}

fn director() -> Director {
    Director::new(DirectorConfig::default())
}

fn with_sysctls(f: impl FnOnce(&mut Sysctls)) -> Director {
    let mut s = Sysctls::default();
    f(&mut s);
    Director::new(DirectorConfig {
        sysctls: s,
        ..DirectorConfig::default()
    })
}

fn tcp(client: &str, cport: u16, vport: u16, flags: TcpFlags) -> PacketInfo {
    PacketInfo {
        proto: Protocol::Tcp,
        src: ip(client),
        sport: cport,
        dst: ip(VIP),
        dport: vport,
        fwmark: 0,
        tcp: flags,
        sctp: rvs_core::sctp::SctpEvent::Data,
        len: TCP_LEN,
    }
}

fn udp(client: &str, cport: u16, vport: u16) -> PacketInfo {
    PacketInfo {
        proto: Protocol::Udp,
        src: ip(client),
        sport: cport,
        dst: ip(VIP),
        dport: vport,
        fwmark: 0,
        tcp: TcpFlags::default(),
        sctp: rvs_core::sctp::SctpEvent::Data,
        len: UDP_LEN,
    }
}

#[track_caller]
fn fwd(v: Verdict) -> Forwarding {
    match v {
        Verdict::Forward(f) => f,
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// Masq/proxy open: client SYN, server SYN+ACK, client ACK.
#[track_caller]
fn open_masq(d: &mut Director, client: &str, cport: u16, vport: u16, t: u64) -> Forwarding {
    let first = fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::SYN), t));
    fwd(d.outbound(first.conn, TcpFlags::SYN_ACK, TCP_LEN, t));
    fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::ACK), t));
    first
}

/// Masq close: client FIN+ACK in, server ACK out, server FIN+ACK out, client ACK in.
#[track_caller]
fn close_masq(d: &mut Director, conn: ConnRef, client: &str, cport: u16, vport: u16, t: u64) {
    fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::FIN_ACK), t));
    fwd(d.outbound(conn, TcpFlags::ACK, TCP_LEN, t));
    fwd(d.outbound(conn, TcpFlags::FIN_ACK, TCP_LEN, t));
    fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::ACK), t));
}

/// Route/tunnel open: SYN, ACK inbound only.
#[track_caller]
fn open_route(d: &mut Director, client: &str, cport: u16, vport: u16, t: u64) -> Forwarding {
    let first = fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::SYN), t));
    fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::ACK), t));
    first
}

/// Route/tunnel close: FIN+ACK, ACK inbound.
#[track_caller]
fn close_route(d: &mut Director, client: &str, cport: u16, vport: u16, t: u64) {
    fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::FIN_ACK), t));
    fwd(d.inbound(&tcp(client, cport, vport, TcpFlags::ACK), t));
}

/// The non-template entries of one client tuple.
fn conns_of(d: &Director, client: &str, cport: u16, vport: u16) -> Vec<ConnSnapshot> {
    d.connections()
        .into_iter()
        .filter(|c| !c.template && c.caddr == ip(client) && c.cport == cport && c.vport == vport)
        .collect()
}

#[track_caller]
fn conn_of(d: &Director, client: &str, cport: u16, vport: u16) -> ConnSnapshot {
    let mut v = conns_of(d, client, cport, vport);
    assert_eq!(v.len(), 1, "exactly one entry for {client}:{cport}");
    v.remove(0)
}

fn templates(d: &Director) -> Vec<ConnSnapshot> {
    d.connections().into_iter().filter(|c| c.template).collect()
}

#[track_caller]
fn dest_snap(d: &Director, k: &ServiceKey, addr: &str) -> DestSnapshot {
    d.service(k)
        .expect("service")
        .dests
        .into_iter()
        .find(|x| x.config.addr == ip(addr))
        .expect("destination in the service list")
}

fn present(d: &Director, client: &str, cport: u16, vport: u16, proto: Protocol) -> bool {
    d.lookup(proto, (ip(client), cport), (ip(VIP), vport))
        .is_some()
}

// ---- 1. masq open/close/expiry --------------------------------------------

#[test]
fn masq_open_close_and_exact_expiry() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let id = d
        .add_dest(&k, dest("192.0.2.11", 8080, Forward::Masq, 1))
        .unwrap();

    let syn = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
    assert!(syn.new_conn);
    assert_eq!(syn.dest, id);
    assert_eq!(syn.daddr, ip("192.0.2.11"));
    assert_eq!(syn.dport, 8080);
    assert_eq!(syn.method, Forward::Masq);
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "SYN_RECV");
    assert_eq!(c.expires_ms, 60_000);
    // SYN_RECV counts as active (kernel >= 4.x).
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (1, 0));

    fwd(d.outbound(syn.conn, TcpFlags::SYN_ACK, TCP_LEN, 1_000));
    let ack = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 1_000));
    assert!(!ack.new_conn);
    assert_eq!(ack.conn, syn.conn);
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "ESTABLISHED");
    assert_eq!(c.expires_ms, 900_000);
    assert_eq!(c.flags & INACTIVE, 0);
    assert_eq!(c.flags & NOOUTPUT, 0);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (1, 0));

    close_masq(&mut d, syn.conn, "198.51.100.1", 40000, 80, 2_000);
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "TIME_WAIT");
    assert_eq!(c.expires_ms, 120_000);
    assert_ne!(c.flags & INACTIVE, 0);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (0, 1));

    d.advance(2_000 + 120_000 - 1);
    assert!(present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).expires_ms, 1);
    d.advance(2_000 + 120_000);
    assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    assert_eq!(d.conn_count(), 0);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive, s.persistent), (0, 0, 0));
    assert_eq!(s.stats.conns, 1);
    // A late reply for the expired connection finds nothing.
    assert_eq!(
        d.outbound(syn.conn, TcpFlags::ACK, TCP_LEN, 122_001),
        Verdict::Drop(DropReason::NoConnection)
    );
}

#[test]
fn established_timer_restarts_on_every_forwarded_packet() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let f = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 500_000));
    d.advance(900_000);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).expires_ms, 500_000);
    // A reply restarts it too.
    fwd(d.outbound(f.conn, TcpFlags::ACK, TCP_LEN, 1_000_000));
    d.advance(1_899_999);
    assert!(present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    d.advance(1_900_000);
    assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
}

#[test]
fn ipv6_masq_flow_lives_in_its_own_table() {
    let mut d = director();
    masq_service_v6(&mut d, Protocol::Tcp, 443, 8443);
    let mut p = tcp("2001:db8:2::1", 50000, 443, TcpFlags::SYN);
    p.dst = ip("2001:db8::10");
    let f = fwd(d.inbound(&p, 0));
    assert_eq!(f.conn.family, Family::V6);
    assert_eq!((f.daddr, f.dport), (ip("2001:db8:1::11"), 8443));
    // A mixed-family packet is not the director's.
    let mut mixed = p;
    mixed.src = ip("198.51.100.1");
    assert_eq!(d.inbound(&mixed, 0), Verdict::Pass);
    assert_eq!(d.conn_count(), 1);
}

// ---- 2. route: input-only table, FIN_WAIT, --set tcpfin -------------------

#[test]
fn route_close_ends_in_fin_wait_and_set_applies_at_next_packet() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.21", 80, Forward::Route, 1))
        .unwrap();

    let f = open_route(&mut d, "198.51.100.1", 40000, 80, 0);
    assert_eq!(f.method, Forward::Route);
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "ESTABLISHED");
    assert_ne!(c.flags & NOOUTPUT, 0);
    assert_eq!(c.flags & 0x7, 3);
    assert_eq!(
        (dest_snap(&d, &k, "192.0.2.21").active, 0),
        (1, dest_snap(&d, &k, "192.0.2.21").inactive)
    );

    close_route(&mut d, "198.51.100.1", 40000, 80, 1_000);
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "FIN_WAIT");
    assert_eq!(c.expires_ms, 120_000);
    let s = dest_snap(&d, &k, "192.0.2.21");
    assert_eq!((s.active, s.inactive), (0, 1));

    d.set_timeouts(Timeouts {
        tcp: 0,
        tcp_fin: 30,
        udp: 0,
    });
    assert_eq!(
        d.timeouts(),
        Timeouts {
            tcp: 900,
            tcp_fin: 30,
            udp: 300
        }
    );
    // The connection keeps the deadline it was given ...
    d.advance(5_000);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).expires_ms, 116_000);
    // ... until its next packet.
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 5_000));
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).expires_ms, 30_000);
    d.advance(34_999);
    assert!(present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    d.advance(35_000);
    assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    let s = dest_snap(&d, &k, "192.0.2.21");
    assert_eq!((s.active, s.inactive), (0, 0));
}

#[test]
fn set_tcpfin_leaves_masq_time_wait_at_120s() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    d.set_timeouts(Timeouts {
        tcp: 100,
        tcp_fin: 30,
        udp: 0,
    });
    let f = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).expires_ms, 100_000);
    close_masq(&mut d, f.conn, "198.51.100.1", 40000, 80, 0);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).state, "TIME_WAIT");
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).expires_ms, 120_000);
}

// ---- 3. port reuse ----------------------------------------------------------

#[test]
fn closed_masq_flow_reopened_is_rescheduled() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let old = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    close_masq(&mut d, old.conn, "198.51.100.1", 40000, 80, 1_000);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).state, "TIME_WAIT");

    let new = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 2_000));
    assert!(
        new.new_conn,
        "a TIME_WAIT flow reopened is a new connection"
    );
    // The old entry was still in the table while the new one was made.
    assert_ne!(new.conn, old.conn);
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "SYN_RECV");
    assert_eq!(c.expires_ms, 60_000);
    assert_eq!(d.conn_count(), 1);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (1, 0));
    assert_eq!(s.stats.conns, 2);
    // The old reference is dead.
    assert_eq!(
        d.outbound(old.conn, TcpFlags::ACK, TCP_LEN, 2_000),
        Verdict::Drop(DropReason::NoConnection)
    );
}

#[test]
fn port_reuse_schedules_while_the_old_connection_still_counts() {
    // A (newest, u-threshold 1) takes the first flow and is overloaded by it.
    // Reopening the closed flow must see A still overloaded (the old entry
    // counts during scheduling), so the flow goes to B; after the call the
    // old entry is unbound and A's overload is cleared.
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 0))
        .unwrap();
    let mut a = dest("192.0.2.11", 80, Forward::Masq, 1);
    a.u_threshold = 1;
    let ida = d.add_dest(&k, a).unwrap();
    let old = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    assert_eq!(old.dest, ida);
    close_masq(&mut d, old.conn, "198.51.100.1", 40000, 80, 0);
    assert!(dest_snap(&d, &k, "192.0.2.11").overloaded);
    d.edit_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 1))
        .unwrap();

    let new = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
    assert!(new.new_conn);
    assert_eq!(new.daddr, ip("192.0.2.12"));
    let sa = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((sa.active, sa.inactive, sa.overloaded), (0, 0, false));
    let sb = dest_snap(&d, &k, "192.0.2.12");
    assert_eq!((sb.active, sb.inactive), (1, 0));
    assert_eq!(conns_of(&d, "198.51.100.1", 40000, 80).len(), 1);
}

#[test]
fn port_reuse_with_the_only_server_overloaded_by_the_old_flow_rejects() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let mut a = dest("192.0.2.11", 80, Forward::Masq, 1);
    a.u_threshold = 1;
    d.add_dest(&k, a).unwrap();
    let old = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    close_masq(&mut d, old.conn, "198.51.100.1", 40000, 80, 0);
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000),
        Verdict::Reject
    );
    // The old entry went anyway, and with it the overload.
    assert!(conns_of(&d, "198.51.100.1", 40000, 80).is_empty());
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive, s.overloaded), (0, 0, false));
    // The client's retransmission gets through.
    assert!(fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 2_000)).new_conn);
}

#[test]
fn closed_route_flow_is_rescheduled_only_with_conn_reuse_mode_bit_2() {
    for (mode, resched) in [(1u8, false), (3u8, true)] {
        let mut d = with_sysctls(|s| s.conn_reuse_mode = mode);
        let k = tcp_key(80);
        d.add_service(ServiceConfig::new(k)).unwrap();
        d.add_dest(&k, dest("192.0.2.21", 80, Forward::Route, 1))
            .unwrap();
        let old = open_route(&mut d, "198.51.100.1", 40000, 80, 0);
        close_route(&mut d, "198.51.100.1", 40000, 80, 0);
        assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).state, "FIN_WAIT");
        let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
        assert_eq!(f.new_conn, resched, "conn_reuse_mode {mode}");
        assert_eq!(f.conn == old.conn, !resched, "conn_reuse_mode {mode}");
        let c = conn_of(&d, "198.51.100.1", 40000, 80);
        assert_eq!(c.state, "SYN_RECV");
        let s = dest_snap(&d, &k, "192.0.2.21");
        assert_eq!((s.active, s.inactive), (1, 0), "conn_reuse_mode {mode}");
        assert_eq!(s.stats.conns, if resched { 2 } else { 1 });
    }
}

#[test]
fn conn_reuse_mode_0_never_reschedules() {
    let mut d = with_sysctls(|s| s.conn_reuse_mode = 0);
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let old = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    close_masq(&mut d, old.conn, "198.51.100.1", 40000, 80, 0);
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
    assert!(!f.new_conn);
    assert_eq!(f.conn, old.conn);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).state, "SYN_RECV");
}

#[test]
fn persistent_service_connection_is_never_rescheduled() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let old = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    close_masq(&mut d, old.conn, "198.51.100.1", 40000, 80, 0);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).state, "TIME_WAIT");
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
    assert!(!f.new_conn);
    assert_eq!(f.conn, old.conn);
    assert_eq!(conn_of(&d, "198.51.100.1", 40000, 80).state, "SYN_RECV");
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").stats.conns, 1);
}

// ---- 4. deleted destinations and the trash ----------------------------------

#[test]
fn deleted_dest_drops_without_timer_restart_and_comes_back_with_its_conns() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let id = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let f = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
    assert!(d.service(&k).unwrap().dests.is_empty());
    let svc_before = d.service(&k).unwrap().stats;

    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 10_000),
        Verdict::Drop(DropReason::DestUnavailable)
    );
    // Even a FIN changes nothing: no state change, no timer restart.
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::FIN_ACK), 20_000),
        Verdict::Drop(DropReason::DestUnavailable)
    );
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "ESTABLISHED");
    assert_eq!(c.expires_ms, 900_000 - 20_000);
    assert_eq!(d.service(&k).unwrap().stats, svc_before);

    // Re-added: the same object, with its connection and statistics.
    let again = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    assert_eq!(again, id);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (1, 0));
    assert_eq!(s.stats.conns, 1);
    assert_eq!(s.stats.inpkts, 2);
    let g = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 30_000));
    assert_eq!(g.conn, f.conn);
    assert_eq!(g.dest, id);
    assert!(!g.new_conn);
}

#[test]
fn deleted_dest_counters_change_on_expiry_and_trash_frees_it_later() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let id = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
    d.advance(899_999);
    assert!(present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    d.advance(900_000);
    assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    // Shortly after its last reference went it is still in the trash, and
    // its counters went down with the expiry.
    d.advance(960_000);
    let again = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    assert_eq!(again, id);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive, s.persistent), (0, 0, 0));
    assert_eq!(s.stats.conns, 1);

    // Deleted again with no references: after the trash period it is gone,
    // and a re-add makes a fresh object with fresh statistics.
    d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
    d.advance(960_000 + 400_000);
    let fresh = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    assert_ne!(fresh, id);
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").stats.conns, 0);
}

#[test]
fn dest_comes_back_after_its_service_is_deleted_and_recreated() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let id = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    d.del_service(&k).unwrap();
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 1_000),
        Verdict::Drop(DropReason::DestUnavailable)
    );
    d.add_service(ServiceConfig::new(k)).unwrap();
    // Another service's server of the same address is another object.
    let k2 = tcp_key(81);
    d.add_service(ServiceConfig::new(k2)).unwrap();
    let other = d
        .add_dest(&k2, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    assert_ne!(other, id);
    let again = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    assert_eq!(again, id);
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").active, 1);
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 2_000));
}

/// As §1.8 of the reference specifies (expire and drop). NOTE: kernels since
/// 5.9 instead go on to schedule the packet afresh when no old conntrack
/// is in use (`cp = NULL` in `ip_vs_in`); left as the reference says.
#[test]
fn expire_nodest_conn_expires_on_first_packet() {
    let mut d = with_sysctls(|s| s.expire_nodest_conn = true);
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
    assert!(present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 10_000),
        Verdict::Drop(DropReason::DestUnavailable)
    );
    assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    assert_eq!(d.conn_count(), 0);
    let id = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.id, s.active, s.inactive), (id, 0, 0));
}

#[test]
fn expire_nodest_conn_reschedules_a_syn_on_a_quiesced_server() {
    let mut d = with_sysctls(|s| s.expire_nodest_conn = true);
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 0))
        .unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let old = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    assert_eq!(old.daddr, ip("192.0.2.11"));
    d.edit_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 0))
        .unwrap();
    d.edit_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 1))
        .unwrap();
    // An ESTABLISHED flow on a weight-0 server: its SYN is rescheduled.
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
    assert!(f.new_conn);
    assert_eq!(f.daddr, ip("192.0.2.12"));
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").active, 0);
    assert_eq!(conns_of(&d, "198.51.100.1", 40000, 80).len(), 1);
}

// ---- 5. persistence ---------------------------------------------------------

#[test]
fn persistence_netmask_groups_a_client_network() {
    let mut d = director();
    let k = tcp_key(80);
    let mut cfg = persistent(k, 300);
    cfg.netmask = Netmask::V4(0xffff_ff00);
    d.add_service(cfg).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 8080, Forward::Masq, 1))
        .unwrap();
    d.add_dest(&k, dest("192.0.2.12", 8080, Forward::Masq, 1))
        .unwrap();

    let first = fwd(d.inbound(&tcp("198.51.100.7", 40000, 80, TcpFlags::SYN), 0));
    let chosen = first.daddr;
    let other = if chosen == ip("192.0.2.11") {
        "192.0.2.12"
    } else {
        "192.0.2.11"
    };
    let rows = d.connections();
    assert_eq!(rows.len(), 2);
    let t = &rows[0];
    assert!(t.template, "the template is listed before its connection");
    assert_ne!(t.flags & TEMPLATE, 0);
    assert_eq!(t.proto, 6);
    assert_eq!(t.caddr, ip("198.51.100.0"));
    assert_eq!(t.cport, 0);
    assert_eq!((t.vaddr, t.vport), (ip(VIP), 80));
    assert_eq!((t.daddr, t.dport), (chosen, 8080));
    assert_eq!(t.state, "NONE");
    assert_eq!(t.expires_ms, 300_000);
    assert!(!rows[1].template);
    let chosen_s = chosen.to_string();
    assert_eq!(dest_snap(&d, &k, &chosen_s).persistent, 1);

    // Quiesce the chosen server: the template is still followed (default
    // expire_quiescent_template = 0), by a neighbour in the same /24 too.
    d.edit_dest(&k, dest(&chosen_s, 8080, Forward::Masq, 0))
        .unwrap();
    let second = fwd(d.inbound(&tcp("198.51.100.200", 41000, 80, TcpFlags::SYN), 1_000));
    assert_eq!(second.daddr, chosen);
    assert_eq!(second.dport, 8080);
    assert_eq!(templates(&d).len(), 1);
    // A client of another network is scheduled afresh.
    let third = fwd(d.inbound(&tcp("198.51.101.1", 42000, 80, TcpFlags::SYN), 1_000));
    assert_eq!(third.daddr, ip(other));
    assert_eq!(templates(&d).len(), 2);
}

#[test]
fn template_becomes_assured_once_a_controlled_conn_is_established() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    assert_eq!(templates(&d)[0].state, "NONE");
    fwd(d.outbound(f.conn, TcpFlags::SYN_ACK, TCP_LEN, 0));
    assert_eq!(templates(&d)[0].state, "NONE");
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 0));
    assert_eq!(templates(&d)[0].state, "ASSURED");
}

#[test]
fn template_timeout_is_postponed_while_controlling_and_then_60s_for_good() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(persistent(k, 100)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let f = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    assert_eq!(templates(&d)[0].expires_ms, 100_000);
    // Packets of the controlled connection do not touch the template.
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 50_000));
    assert_eq!(templates(&d)[0].expires_ms, 50_000);
    close_masq(&mut d, f.conn, "198.51.100.1", 40000, 80, 90_000);
    // TIME_WAIT until 210 s; the template fires at 100 s while it still
    // controls it and is postponed by 60 s from its deadline.
    d.advance(100_000);
    assert_eq!(templates(&d).len(), 1);
    assert_eq!(templates(&d)[0].expires_ms, 60_000);
    d.advance(160_000);
    assert_eq!(templates(&d)[0].expires_ms, 60_000);
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").persistent, 1);
    // A new connection from the client re-arms it with its own (now 60 s)
    // timeout, not the 100 s persistence timeout.
    fwd(d.inbound(&tcp("198.51.100.1", 40001, 80, TcpFlags::SYN), 170_000));
    assert_eq!(templates(&d)[0].expires_ms, 60_000);
    assert_eq!(templates(&d).len(), 1);
    // The old connection expires at 210 s. The template and the SYN_RECV
    // connection both have deadline 230 s; the template was armed first, so
    // it fires first, still controls the connection and is postponed to
    // 290 s; then the connection goes.
    d.advance(210_000);
    assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    d.advance(229_999);
    assert!(present(&d, "198.51.100.1", 40001, 80, Protocol::Tcp));
    assert_eq!(templates(&d).len(), 1);
    d.advance(230_000);
    assert!(!present(&d, "198.51.100.1", 40001, 80, Protocol::Tcp));
    assert_eq!(templates(&d).len(), 1);
    assert_eq!(templates(&d)[0].expires_ms, 60_000);
    d.advance(289_999);
    assert_eq!(templates(&d).len(), 1);
    d.advance(290_000);
    assert!(templates(&d).is_empty());
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").persistent, 0);
}

#[test]
fn unused_template_expires_at_the_persistence_timeout() {
    let mut d = director();
    let k = udp_key(53);
    d.add_service(persistent(k, 100)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 53, Forward::Route, 1))
        .unwrap();
    d.set_timeouts(Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 10,
    });
    fwd(d.inbound(&udp("198.51.100.1", 5353, 53), 0));
    d.advance(10_000);
    assert!(!present(&d, "198.51.100.1", 5353, 53, Protocol::Udp));
    d.advance(99_999);
    assert_eq!(templates(&d).len(), 1);
    d.advance(100_000);
    assert!(templates(&d).is_empty());
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").persistent, 0);
}

#[test]
fn fwmark_persistent_template_uses_the_mark_as_address() {
    let mut d = director();
    let k = ServiceKey::FwMark {
        family: Family::V4,
        mark: 7,
    };
    d.add_service(persistent(k, 120)).unwrap();
    d.add_dest(&k, dest("192.0.2.31", 0, Forward::Route, 1))
        .unwrap();
    let mut p = tcp("198.51.100.1", 40000, 443, TcpFlags::SYN);
    p.fwmark = 7;
    let f = fwd(d.inbound(&p, 0));
    assert_eq!((f.daddr, f.dport), (ip("192.0.2.31"), 443));
    let t = &templates(&d)[0];
    assert_eq!(t.proto, 0);
    assert_eq!(t.vaddr, ip("0.0.0.7"));
    assert_eq!((t.cport, t.vport, t.dport), (0, 0, 0));
    assert_eq!(t.caddr, ip("198.51.100.1"));
    // Another port under the same mark follows the template.
    let mut p2 = tcp("198.51.100.1", 40001, 8443, TcpFlags::SYN);
    p2.fwmark = 7;
    let g = fwd(d.inbound(&p2, 0));
    assert_eq!((g.daddr, g.dport), (ip("192.0.2.31"), 8443));
    assert_eq!(templates(&d).len(), 1);
}

#[test]
fn port_zero_service_forwards_to_the_clients_port() {
    let mut d = director();
    let k = tcp_key(0);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.41", 9999, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 8443, TcpFlags::SYN), 0));
    assert_eq!((f.daddr, f.dport), (ip("192.0.2.41"), 8443));
    let t = &templates(&d)[0];
    assert_eq!((t.proto, t.vport, t.dport, t.cport), (6, 0, 0, 0));
    let g = fwd(d.inbound(&tcp("198.51.100.1", 40001, 22, TcpFlags::SYN), 0));
    assert_eq!(g.dport, 22);
    assert_eq!(templates(&d).len(), 1);
}

#[test]
fn quiesced_template_followed_by_default() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 0))
        .unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    d.edit_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 0))
        .unwrap();
    d.edit_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40001, 80, TcpFlags::SYN), 1_000));
    assert_eq!(f.daddr, ip("192.0.2.11"));
}

#[test]
fn expire_quiescent_template_invalidates_and_makes_a_new_template() {
    let mut d = with_sysctls(|s| s.expire_quiescent_template = true);
    let k = tcp_key(80);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 0))
        .unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    d.edit_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 0))
        .unwrap();
    d.edit_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40001, 80, TcpFlags::SYN), 1_000));
    assert_eq!(f.daddr, ip("192.0.2.12"));
    let ts = templates(&d);
    assert_eq!(ts.len(), 2);
    let old = &ts[0];
    assert_eq!(old.daddr, ip("192.0.2.11"));
    assert_eq!((old.vport, old.dport, old.cport), (0xffff, 0xffff, 0));
    // The invalid template is left to expire with its old deadline.
    assert_eq!(old.expires_ms, 299_000);
    let new = &ts[1];
    assert_eq!(new.daddr, ip("192.0.2.12"));
    assert_eq!((new.vport, new.dport), (80, 80));
    assert_eq!(dest_snap(&d, &k, "192.0.2.12").persistent, 1);
}

// ---- 6. thresholds ------------------------------------------------------------

#[test]
fn upper_threshold_sets_overload_and_three_quarters_clear_it() {
    let mut d = director();
    let k = udp_key(53);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let mut a = dest("192.0.2.11", 53, Forward::Masq, 1);
    a.u_threshold = 2;
    d.add_dest(&k, a).unwrap();
    fwd(d.inbound(&udp("198.51.100.1", 1001, 53), 0));
    assert!(!dest_snap(&d, &k, "192.0.2.11").overloaded);
    fwd(d.inbound(&udp("198.51.100.1", 1002, 53), 1_000));
    assert!(dest_snap(&d, &k, "192.0.2.11").overloaded);
    // The only server is overloaded: nothing can take a new flow.
    assert_eq!(
        d.inbound(&udp("198.51.100.1", 1003, 53), 2_000),
        Verdict::Reject
    );
    // Existing flows keep going.
    fwd(d.inbound(&udp("198.51.100.1", 1001, 53), 2_000));
    // 1 * 4 < 2 * 3: cleared when one goes.
    d.advance(301_000);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.inactive, s.overloaded), (1, false));
    fwd(d.inbound(&udp("198.51.100.1", 1003, 53), 301_000));
}

#[test]
fn lower_threshold_clears_overload_below_it() {
    let mut d = director();
    let k = udp_key(53);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let mut a = dest("192.0.2.11", 53, Forward::Masq, 1);
    a.u_threshold = 3;
    a.l_threshold = 2;
    d.add_dest(&k, a).unwrap();
    for (i, t) in [0u64, 1_000, 2_000].into_iter().enumerate() {
        fwd(d.inbound(&udp("198.51.100.1", 1001 + i as u16, 53), t));
    }
    assert!(dest_snap(&d, &k, "192.0.2.11").overloaded);
    // Two left: not below l = 2 (the 3/4 rule alone would clear here).
    d.advance(300_000);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.inactive, s.overloaded), (2, true));
    d.advance(301_000);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.inactive, s.overloaded), (1, false));
}

#[test]
fn editing_thresholds_clears_overload_only_for_zero_or_larger_u() {
    let mut d = director();
    let k = udp_key(53);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let mut a = dest("192.0.2.11", 53, Forward::Masq, 1);
    a.u_threshold = 2;
    d.add_dest(&k, a).unwrap();
    fwd(d.inbound(&udp("198.51.100.1", 1001, 53), 0));
    fwd(d.inbound(&udp("198.51.100.1", 1002, 53), 0));
    assert!(dest_snap(&d, &k, "192.0.2.11").overloaded);
    d.edit_dest(&k, a).unwrap();
    assert!(dest_snap(&d, &k, "192.0.2.11").overloaded, "same u");
    a.u_threshold = 1;
    d.edit_dest(&k, a).unwrap();
    assert!(dest_snap(&d, &k, "192.0.2.11").overloaded, "smaller u");
    a.u_threshold = 5;
    d.edit_dest(&k, a).unwrap();
    assert!(!dest_snap(&d, &k, "192.0.2.11").overloaded, "larger u");
    // Overloaded again by binding, then cleared by u = 0.
    a.u_threshold = 3;
    d.edit_dest(&k, a).unwrap();
    fwd(d.inbound(&udp("198.51.100.1", 1003, 53), 0));
    assert!(dest_snap(&d, &k, "192.0.2.11").overloaded);
    a.u_threshold = 0;
    d.edit_dest(&k, a).unwrap();
    assert!(!dest_snap(&d, &k, "192.0.2.11").overloaded, "u = 0");
}

// ---- 7. one-packet scheduling ------------------------------------------------------

#[test]
fn one_packet_scheduling_makes_and_expires_a_conn_per_datagram() {
    let mut d = director();
    let k = udp_key(53);
    let mut cfg = ServiceConfig::new(k);
    cfg.one_packet = true;
    d.add_service(cfg).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 53, Forward::Masq, 1))
        .unwrap();
    for i in 0..3u64 {
        let f = fwd(d.inbound(&udp("198.51.100.1", 5353, 53), i * 10));
        assert!(f.new_conn, "datagram {i} is scheduled");
        assert!(d.connections().is_empty());
        assert_eq!(d.conn_count(), 0);
        assert!(!present(&d, "198.51.100.1", 5353, 53, Protocol::Udp));
    }
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (0, 0));
    assert_eq!(
        (s.stats.conns, s.stats.inpkts, s.stats.inbytes),
        (3, 3, 3 * u64::from(UDP_LEN))
    );
    assert_eq!(d.service(&k).unwrap().stats.conns, 3);
}

#[test]
fn one_packet_with_persistence_keeps_only_the_template() {
    let mut d = director();
    let k = udp_key(53);
    let mut cfg = persistent(k, 60);
    cfg.one_packet = true;
    d.add_service(cfg).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 53, Forward::Route, 1))
        .unwrap();
    fwd(d.inbound(&udp("198.51.100.1", 5353, 53), 0));
    fwd(d.inbound(&udp("198.51.100.1", 5353, 53), 0));
    let rows = d.connections();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].template);
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").stats.conns, 2);
    d.advance(60_000);
    assert!(d.connections().is_empty());
}

// ---- 8. UDP -----------------------------------------------------------------------

#[test]
fn udp_conn_is_inactive_with_300s_and_set_udp_at_next_packet() {
    let mut d = director();
    let k = udp_key(53);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 5300, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&udp("198.51.100.1", 5353, 53), 0));
    assert_eq!(f.dport, 5300);
    let c = conn_of(&d, "198.51.100.1", 5353, 53);
    assert_eq!((c.state, c.expires_ms, c.proto), ("UDP", 300_000, 17));
    assert_ne!(c.flags & INACTIVE, 0);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (0, 1));
    // A reply keeps it inactive and refreshes it.
    fwd(d.outbound(f.conn, TcpFlags::default(), UDP_LEN, 10_000));
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (0, 1));
    assert_eq!(conn_of(&d, "198.51.100.1", 5353, 53).expires_ms, 300_000);

    d.set_timeouts(Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 60,
    });
    d.advance(20_000);
    assert_eq!(conn_of(&d, "198.51.100.1", 5353, 53).expires_ms, 290_000);
    let g = fwd(d.inbound(&udp("198.51.100.1", 5353, 53), 20_000));
    assert!(!g.new_conn);
    assert_eq!(g.conn, f.conn);
    d.advance(79_999);
    assert!(present(&d, "198.51.100.1", 5353, 53, Protocol::Udp));
    d.advance(80_000);
    assert!(!present(&d, "198.51.100.1", 5353, 53, Protocol::Udp));
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").inactive, 0);
}

// ---- 9. control-plane errors ---------------------------------------------------------

#[test]
fn control_plane_errors_use_ipvsadm_wording() {
    let mut d = director();
    let k = tcp_key(80);
    let missing = tcp_key(81);
    d.add_service(ServiceConfig::new(k)).unwrap();
    let e = d.add_service(ServiceConfig::new(k)).unwrap_err();
    assert_eq!(e, CtlError::ServiceExists);
    assert_eq!(e.to_string(), "Service already exists");

    for e in [
        d.edit_service(ServiceConfig::new(missing)).unwrap_err(),
        d.del_service(&missing).unwrap_err(),
        d.zero(Some(&missing)).unwrap_err(),
    ] {
        assert_eq!(e, CtlError::NoSuchService);
        assert_eq!(e.to_string(), "No such service");
    }
    let r = dest("192.0.2.11", 80, Forward::Masq, 1);
    for e in [
        d.add_dest(&missing, r).unwrap_err(),
        d.edit_dest(&missing, r).unwrap_err(),
        d.del_dest(&missing, r.addr, 80).unwrap_err(),
    ] {
        assert_eq!(e, CtlError::ServiceNotDefined);
        assert_eq!(e.to_string(), "Service not defined");
    }
    for e in [
        d.edit_dest(&k, r).unwrap_err(),
        d.del_dest(&k, r.addr, 80).unwrap_err(),
    ] {
        assert_eq!(e, CtlError::NoSuchDest);
        assert_eq!(e.to_string(), "No such destination");
    }
    d.add_dest(&k, r).unwrap();
    let e = d.add_dest(&k, r).unwrap_err();
    assert_eq!(e, CtlError::DestExists);
    assert_eq!(e.to_string(), "Destination already exists");
    // Same address, other port: another server.
    d.add_dest(&k, dest("192.0.2.11", 81, Forward::Masq, 1))
        .unwrap();
    assert_eq!(d.service(&k).unwrap().dests.len(), 2);
    assert_eq!(d.del_dest(&k, r.addr, 82), Err(CtlError::NoSuchDest));
}

#[test]
fn invalid_requests_change_nothing() {
    let mut d = director();
    assert_eq!(
        d.add_service(ServiceConfig::new(tcp_key(0))),
        Err(CtlError::Invalid(ModelError::ZeroPortNonPersistent))
    );
    let mut ops = ServiceConfig::new(tcp_key(80));
    ops.one_packet = true;
    assert_eq!(
        d.add_service(ops.clone()),
        Err(CtlError::Invalid(ModelError::OnePacketNotUdp))
    );
    assert!(d.services().is_empty());

    let k = tcp_key(80);
    d.add_service(persistent(k, 300)).unwrap();
    let before = d.services();
    ops.persistence = Some(300);
    assert_eq!(
        d.edit_service(ops),
        Err(CtlError::Invalid(ModelError::OnePacketNotUdp))
    );
    let mut zero = persistent(tcp_key(0), 300);
    zero.persistence = None;
    assert!(d.add_service(zero).is_err());
    assert_eq!(d.services(), before);

    let mut bad = dest("192.0.2.11", 80, Forward::Masq, 1);
    bad.u_threshold = 5;
    bad.l_threshold = 6;
    assert_eq!(
        d.add_dest(&k, bad),
        Err(CtlError::Invalid(ModelError::ThresholdRange))
    );
    let v6 = dest("2001:db8::11", 80, Forward::Route, 1);
    assert_eq!(
        d.add_dest(&k, v6),
        Err(CtlError::Invalid(ModelError::MixedFamily))
    );
    assert_eq!(d.services(), before);

    let good = dest("192.0.2.11", 80, Forward::Masq, 3);
    d.add_dest(&k, good).unwrap();
    let before = d.services();
    assert_eq!(
        d.edit_dest(&k, bad),
        Err(CtlError::Invalid(ModelError::ThresholdRange))
    );
    let mut heavy = good;
    heavy.weight = 65536;
    assert_eq!(
        d.edit_dest(&k, heavy),
        Err(CtlError::Invalid(ModelError::BadWeight))
    );
    assert_eq!(d.services(), before);

    // A tunnel may cross families.
    let tun = dest("2001:db8::11", 80, Forward::Tunnel(Tunnel::default()), 1);
    d.add_dest(&k, tun).unwrap();
}

#[test]
fn add_inserts_at_the_head_and_edit_keeps_the_place() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    for a in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        d.add_dest(&k, dest(a, 80, Forward::Route, 1)).unwrap();
    }
    let order = |d: &Director| -> Vec<IpAddr> {
        d.service(&k)
            .unwrap()
            .dests
            .iter()
            .map(|x| x.config.addr)
            .collect()
    };
    assert_eq!(
        order(&d),
        vec![ip("192.0.2.3"), ip("192.0.2.2"), ip("192.0.2.1")]
    );
    d.edit_dest(&k, dest("192.0.2.1", 80, Forward::Route, 5))
        .unwrap();
    assert_eq!(order(&d)[2], ip("192.0.2.1"));
    assert_eq!(d.service(&k).unwrap().dests[2].config.weight, 5);
    // Deleted and re-added (from the trash): at the head again.
    d.del_dest(&k, ip("192.0.2.1"), 80).unwrap();
    d.add_dest(&k, dest("192.0.2.1", 80, Forward::Route, 1))
        .unwrap();
    assert_eq!(
        order(&d),
        vec![ip("192.0.2.1"), ip("192.0.2.3"), ip("192.0.2.2")]
    );
    // The stub scheduler picks the first eligible: the head.
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    assert_eq!(f.daddr, ip("192.0.2.1"));
}

// ---- 10. bounded capacity -------------------------------------------------------------

#[test]
fn full_table_refuses_new_flows_and_keeps_existing_ones() {
    let mut d = Director::new(DirectorConfig {
        conn_capacity: 2,
        ..DirectorConfig::default()
    });
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let a = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    let b = open_masq(&mut d, "198.51.100.2", 40000, 80, 0);
    assert_eq!(
        d.inbound(&tcp("198.51.100.3", 40000, 80, TcpFlags::SYN), 1_000),
        Verdict::Drop(DropReason::TableFull)
    );
    assert_eq!(d.refused(), 1);
    assert_eq!(d.conn_count(), 2);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive, s.stats.conns), (2, 0, 2));
    assert_eq!(
        fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 2_000)).conn,
        a.conn
    );
    assert_eq!(
        fwd(d.outbound(b.conn, TcpFlags::ACK, TCP_LEN, 2_000)).conn,
        b.conn
    );
    // The IPv6 table has its own capacity.
    masq_service_v6(&mut d, Protocol::Tcp, 80, 80);
    let mut p6 = tcp("2001:db8:2::1", 40000, 80, TcpFlags::SYN);
    p6.dst = ip("2001:db8::10");
    fwd(d.inbound(&p6, 2_000));
    // Room again once a flow expires.
    d.advance(2_000 + 900_000);
    assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
    fwd(d.inbound(&tcp("198.51.100.3", 40000, 80, TcpFlags::SYN), 902_000));
    assert_eq!(d.refused(), 1);
}

#[test]
fn full_table_refuses_a_persistent_flow_without_a_stray_connection() {
    let mut d = Director::new(DirectorConfig {
        conn_capacity: 2,
        ..DirectorConfig::default()
    });
    let k = tcp_key(80);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    assert_eq!(d.conn_count(), 2);
    assert_eq!(
        d.inbound(&tcp("198.51.100.2", 40000, 80, TcpFlags::SYN), 0),
        Verdict::Drop(DropReason::TableFull)
    );
    assert_eq!(d.refused(), 1);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!(
        (s.active, s.inactive, s.persistent, s.stats.conns),
        (1, 0, 1, 1)
    );
}

// ---- 11. service lookup and scheduling entry rules ----------------------------------------

#[test]
fn fwmark_service_is_looked_up_before_the_exact_one() {
    let mut d = director();
    let exact = tcp_key(80);
    let fwm = ServiceKey::FwMark {
        family: Family::V4,
        mark: 5,
    };
    d.add_service(ServiceConfig::new(exact)).unwrap();
    d.add_dest(&exact, dest("192.0.2.11", 80, Forward::Route, 1))
        .unwrap();
    d.add_service(ServiceConfig::new(fwm)).unwrap();
    d.add_dest(&fwm, dest("192.0.2.51", 0, Forward::Route, 1))
        .unwrap();
    let mut p = tcp("198.51.100.1", 40000, 80, TcpFlags::SYN);
    p.fwmark = 5;
    let f = fwd(d.inbound(&p, 0));
    assert_eq!((f.daddr, f.dport), (ip("192.0.2.51"), 80));
    let mut q = tcp("198.51.100.1", 40001, 80, TcpFlags::SYN);
    q.fwmark = 6;
    assert_eq!(fwd(d.inbound(&q, 0)).daddr, ip("192.0.2.11"));
    let r = tcp("198.51.100.1", 40002, 80, TcpFlags::SYN);
    assert_eq!(fwd(d.inbound(&r, 0)).daddr, ip("192.0.2.11"));
    assert_eq!(d.service(&fwm).unwrap().stats.conns, 1);
    assert_eq!(d.service(&exact).unwrap().stats.conns, 2);
}

#[test]
fn port_zero_service_is_the_fallback() {
    let mut d = director();
    let exact = tcp_key(80);
    let any = tcp_key(0);
    d.add_service(ServiceConfig::new(exact)).unwrap();
    d.add_dest(&exact, dest("192.0.2.11", 80, Forward::Route, 1))
        .unwrap();
    d.add_service(persistent(any, 300)).unwrap();
    d.add_dest(&any, dest("192.0.2.41", 0, Forward::Route, 1))
        .unwrap();
    assert_eq!(
        fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0)).daddr,
        ip("192.0.2.11")
    );
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40001, 25, TcpFlags::SYN), 0));
    assert_eq!((f.daddr, f.dport), (ip("192.0.2.41"), 25));
    // Only for its protocol.
    assert_eq!(d.inbound(&udp("198.51.100.1", 40001, 25), 0), Verdict::Pass);
}

#[test]
fn ftp_data_to_a_non_persistent_ftp_service_passes() {
    let mut d = director();
    let k = tcp_key(21);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 21, Forward::Masq, 1))
        .unwrap();
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 40001, TcpFlags::SYN), 0),
        Verdict::Pass
    );
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 20, TcpFlags::SYN), 0),
        Verdict::Pass
    );
    // A privileged port other than 20 matches no service at all.
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 22, TcpFlags::SYN), 0),
        Verdict::Pass
    );
    assert_eq!(d.conn_count(), 0);
    assert!(fwd(d.inbound(&tcp("198.51.100.1", 40000, 21, TcpFlags::SYN), 0)).new_conn);
}

#[test]
fn persistent_ftp_template_covers_control_and_data() {
    let mut d = director();
    let k = tcp_key(21);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 21, Forward::Route, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 21, TcpFlags::SYN), 0));
    assert_eq!(f.dport, 21);
    let t = &templates(&d)[0];
    assert_eq!((t.vport, t.dport), (0, 0));
    let g = fwd(d.inbound(&tcp("198.51.100.1", 40001, 50000, TcpFlags::SYN), 0));
    assert_eq!((g.daddr, g.dport), (ip("192.0.2.11"), 50000));
    assert_eq!(templates(&d).len(), 1);
}

#[test]
fn source_port_20_is_never_scheduled() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 20, 80, TcpFlags::SYN), 0),
        Verdict::Pass
    );
    let kp = tcp_key(443);
    d.add_service(persistent(kp, 300)).unwrap();
    d.add_dest(&kp, dest("192.0.2.11", 443, Forward::Masq, 1))
        .unwrap();
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 20, 443, TcpFlags::SYN), 0),
        Verdict::Pass
    );
    assert_eq!(d.conn_count(), 0);
    assert_eq!(d.global_stats().0.conns, 0);
}

#[test]
fn non_syn_without_a_connection_passes_unless_sloppy() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    for flags in [TcpFlags::ACK, TcpFlags::FIN_ACK, TcpFlags::RST] {
        assert_eq!(
            d.inbound(&tcp("198.51.100.1", 40000, 80, flags), 0),
            Verdict::Pass
        );
    }
    let rst_syn = TcpFlags {
        rst: true,
        ..TcpFlags::SYN
    };
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, rst_syn), 0),
        Verdict::Pass
    );
    assert_eq!(d.conn_count(), 0);
    d.set_sysctls(Sysctls {
        sloppy_tcp: true,
        ..d.sysctls()
    });
    assert!(fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 0)).new_conn);
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40001, 80, TcpFlags::RST), 0),
        Verdict::Pass
    );
}

#[test]
fn no_eligible_server_rejects() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0),
        Verdict::Reject
    );
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 0))
        .unwrap();
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0),
        Verdict::Reject
    );
    let kp = udp_key(53);
    d.add_service(persistent(kp, 300)).unwrap();
    assert_eq!(
        d.inbound(&udp("198.51.100.1", 5353, 53), 0),
        Verdict::Reject
    );
    assert_eq!(d.conn_count(), 0);
    // A packet for no service at all is not the director's.
    assert_eq!(
        d.inbound(&tcp("198.51.100.1", 40000, 8080, TcpFlags::SYN), 0),
        Verdict::Pass
    );
}

// ---- 12. statistics ---------------------------------------------------------------------

#[test]
fn stats_after_masq_open_close_and_zero() {
    let mut d = director();
    let k = tcp_key(80);
    let k2 = tcp_key(443);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    d.add_service(ServiceConfig::new(k2)).unwrap();
    d.add_dest(&k2, dest("192.0.2.12", 443, Forward::Route, 1))
        .unwrap();
    let f = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    close_masq(&mut d, f.conn, "198.51.100.1", 40000, 80, 0);
    open_route(&mut d, "198.51.100.1", 40001, 443, 0);

    let s = dest_snap(&d, &k, "192.0.2.11").stats;
    // In: SYN, ACK, FIN+ACK, ACK. Out: SYN+ACK, ACK, FIN+ACK.
    assert_eq!(
        (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes),
        (1, 4, 3, 4 * 52, 3 * 52)
    );
    assert_eq!(d.service(&k).unwrap().stats, s);
    let r = dest_snap(&d, &k2, "192.0.2.12").stats;
    assert_eq!(
        (r.conns, r.inpkts, r.outpkts, r.inbytes, r.outbytes),
        (1, 2, 0, 104, 0)
    );
    let g = d.global_stats().0;
    assert_eq!((g.conns, g.inpkts, g.outpkts), (2, 6, 3));

    // -Z of one service: it and its servers, nothing else.
    d.zero(Some(&k)).unwrap();
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").stats.inpkts, 0);
    assert_eq!(d.service(&k).unwrap().stats.conns, 0);
    assert_eq!(dest_snap(&d, &k2, "192.0.2.12").stats.inpkts, 2);
    assert_eq!(d.global_stats().0.inpkts, 6);
    // Counting goes on from zero.
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 1_000));
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").stats.inpkts, 1);
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").stats.inbytes, 52);
    // -Z of everything.
    d.zero(None).unwrap();
    assert_eq!(d.global_stats().0.inpkts, 0);
    assert_eq!(d.service(&k2).unwrap().stats.conns, 0);
    assert_eq!(dest_snap(&d, &k2, "192.0.2.12").stats.inpkts, 0);
    // Zeroing leaves the connection counters alone.
    assert_eq!(dest_snap(&d, &k2, "192.0.2.12").active, 1);
}

// ---- forwarding method is fixed at connection creation (§2.5) -----------------------------

#[test]
fn a_connection_keeps_the_method_it_was_created_with() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    assert_eq!(f.method, Forward::Masq);
    // ipvsadm -e without -m turns the server into Route.
    d.edit_dest(&k, dest("192.0.2.11", 80, Forward::Route, 1))
        .unwrap();
    assert_eq!(d.conn_method(f.conn), Some(Forward::Masq));
    let g = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 0));
    assert_eq!(g.method, Forward::Masq);
    let h = fwd(d.outbound(f.conn, TcpFlags::SYN_ACK, TCP_LEN, 0));
    assert_eq!(h.method, Forward::Masq);
    // A new connection uses the new method.
    let n = fwd(d.inbound(&tcp("198.51.100.1", 40001, 80, TcpFlags::SYN), 0));
    assert_eq!(n.method, Forward::Route);
}

// ---- further lifecycle details -------------------------------------------------------------

#[test]
fn force_expired_controlled_conn_takes_a_non_assured_template_with_it() {
    for established in [false, true] {
        let mut d = with_sysctls(|s| s.expire_nodest_conn = true);
        let k = tcp_key(80);
        d.add_service(persistent(k, 300)).unwrap();
        d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
            .unwrap();
        if established {
            open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
        } else {
            fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
        }
        d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
        assert_eq!(
            d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 1_000),
            Verdict::Drop(DropReason::DestUnavailable)
        );
        assert!(!present(&d, "198.51.100.1", 40000, 80, Protocol::Tcp));
        let ts = templates(&d);
        if established {
            assert_eq!(ts.len(), 1, "an ASSURED template stays");
            assert_eq!(ts[0].state, "ASSURED");
            assert_eq!(ts[0].expires_ms, 299_000);
        } else {
            assert!(ts.is_empty(), "a non-assured template goes with its conn");
        }
    }
}

#[test]
fn template_of_a_deleted_dest_is_invalidated() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 0))
        .unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
    d.edit_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40001, 80, TcpFlags::SYN), 1_000));
    assert_eq!(f.daddr, ip("192.0.2.12"));
    let ts = templates(&d);
    assert_eq!(ts.len(), 2);
    assert_eq!(
        (ts[0].daddr, ts[0].vport, ts[0].cport),
        (ip("192.0.2.11"), 0xffff, 0)
    );
    assert_eq!((ts[1].daddr, ts[1].vport), (ip("192.0.2.12"), 80));
}

#[test]
fn udp_reply_assures_the_template() {
    let mut d = director();
    let k = udp_key(53);
    d.add_service(persistent(k, 300)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 53, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&udp("198.51.100.1", 5353, 53), 0));
    assert_eq!(templates(&d)[0].state, "NONE");
    fwd(d.inbound(&udp("198.51.100.1", 5353, 53), 0));
    assert_eq!(templates(&d)[0].state, "NONE");
    fwd(d.outbound(f.conn, TcpFlags::default(), UDP_LEN, 0));
    assert_eq!(templates(&d)[0].state, "ASSURED");
}

#[test]
fn replies_of_a_deleted_dest_are_forwarded_but_not_counted() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let f = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
    let before = d.global_stats().0;
    // handle_response() does not check the dest: state change and timer restart.
    fwd(d.outbound(f.conn, TcpFlags::FIN_ACK, TCP_LEN, 100_000));
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!(c.state, "FIN_WAIT");
    assert_eq!(c.expires_ms, 120_000);
    assert_eq!(d.global_stats().0, before);
}

#[test]
fn port_reuse_is_checked_before_the_dest_status() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 1))
        .unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    d.edit_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 0))
        .unwrap();
    let old = open_masq(&mut d, "198.51.100.1", 40000, 80, 0);
    assert_eq!(old.daddr, ip("192.0.2.11"));
    close_masq(&mut d, old.conn, "198.51.100.1", 40000, 80, 0);
    d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
    d.edit_dest(&k, dest("192.0.2.12", 80, Forward::Masq, 1))
        .unwrap();
    // TIME_WAIT on a deleted server: the SYN is rescheduled, not dropped.
    let f = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
    assert!(f.new_conn);
    assert_eq!(f.daddr, ip("192.0.2.12"));
    assert_eq!(conns_of(&d, "198.51.100.1", 40000, 80).len(), 1);
    // And the deleted server's counters went back to zero within the call.
    let again = d
        .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    assert_eq!(again, old.dest);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive), (0, 0));
}

#[test]
fn unreferenced_deleted_dest_is_freed_between_120_and_180_s() {
    for (readd_at, same) in [(119_000u64, true), (181_000u64, false)] {
        let mut d = director();
        let k = tcp_key(80);
        d.add_service(ServiceConfig::new(k)).unwrap();
        let id = d
            .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
            .unwrap();
        d.del_dest(&k, ip("192.0.2.11"), 80).unwrap();
        d.advance(readd_at);
        let again = d
            .add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
            .unwrap();
        assert_eq!(again == id, same, "re-added at {readd_at} ms");
    }
}

#[test]
fn services_are_listed_in_creation_order() {
    let mut d = director();
    for port in [80, 81, 82] {
        d.add_service(ServiceConfig::new(tcp_key(port))).unwrap();
    }
    d.del_service(&tcp_key(80)).unwrap();
    d.add_service(ServiceConfig::new(tcp_key(83))).unwrap();
    let ports: Vec<u16> = d.services().iter().map(|s| s.config.key.port()).collect();
    assert_eq!(ports, vec![81, 82, 83]);
}

#[test]
fn readd_from_trash_keeps_overload_unless_u_is_zero_or_larger() {
    for (new_u, overloaded) in [(1u32, true), (0, false), (2, false)] {
        let mut d = director();
        let k = udp_key(53);
        d.add_service(ServiceConfig::new(k)).unwrap();
        let mut a = dest("192.0.2.11", 53, Forward::Masq, 1);
        a.u_threshold = 1;
        let id = d.add_dest(&k, a).unwrap();
        fwd(d.inbound(&udp("198.51.100.1", 1001, 53), 0));
        assert!(dest_snap(&d, &k, "192.0.2.11").overloaded);
        d.del_dest(&k, a.addr, 53).unwrap();
        a.u_threshold = new_u;
        assert_eq!(d.add_dest(&k, a).unwrap(), id);
        let s = dest_snap(&d, &k, "192.0.2.11");
        assert_eq!((s.inactive, s.overloaded), (1, overloaded), "new u {new_u}");
        let v = d.inbound(&udp("198.51.100.1", 1002, 53), 1_000);
        assert_eq!(matches!(v, Verdict::Reject), overloaded, "new u {new_u}");
    }
}

#[test]
fn syn_retransmission_stays_on_its_conn_and_close_state_is_reused() {
    let mut d = director();
    let k = tcp_key(80);
    d.add_service(ServiceConfig::new(k)).unwrap();
    d.add_dest(&k, dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let a = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 0));
    let b = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 1_000));
    assert!(!b.new_conn);
    assert_eq!(a.conn, b.conn);
    fwd(d.outbound(a.conn, TcpFlags::SYN_ACK, TCP_LEN, 1_000));
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::ACK), 1_000));
    // A client RST: CLOSE, 10 s, inactive.
    fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::RST), 2_000));
    let c = conn_of(&d, "198.51.100.1", 40000, 80);
    assert_eq!((c.state, c.expires_ms), ("CLOSE", 10_000));
    assert_eq!(dest_snap(&d, &k, "192.0.2.11").inactive, 1);
    // A SYN on a CLOSE entry is a new connection.
    let n = fwd(d.inbound(&tcp("198.51.100.1", 40000, 80, TcpFlags::SYN), 3_000));
    assert!(n.new_conn);
    let s = dest_snap(&d, &k, "192.0.2.11");
    assert_eq!((s.active, s.inactive, s.stats.conns), (1, 0, 2));
}

// ---- reply lookup (NAT data plane) --------------------------------------------

#[test]
fn lookup_reply_finds_masq_connections_by_their_reply_tuple() {
    let mut d = director();
    d.add_service(ServiceConfig::new(tcp_key(80))).unwrap();
    d.add_dest(&tcp_key(80), dest("192.0.2.11", 8080, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.7", 40000, 80, TcpFlags::SYN), 0));
    let server = (ip("192.0.2.11"), 8080);
    let client = (ip("198.51.100.7"), 40000);
    assert_eq!(d.lookup_reply(Protocol::Tcp, server, client), Some(f.conn));
    // Each part of the tuple matters.
    assert_eq!(
        d.lookup_reply(Protocol::Tcp, (ip("192.0.2.12"), 8080), client),
        None
    );
    assert_eq!(
        d.lookup_reply(Protocol::Tcp, (ip("192.0.2.11"), 80), client),
        None
    );
    assert_eq!(
        d.lookup_reply(Protocol::Tcp, server, (ip("198.51.100.7"), 40001)),
        None
    );
    assert_eq!(d.lookup_reply(Protocol::Udp, server, client), None);
    let t = d.conn_tuple(f.conn).unwrap();
    assert_eq!(
        (
            t.proto, t.caddr, t.cport, t.vaddr, t.vport, t.daddr, t.dport
        ),
        (
            Protocol::Tcp,
            client.0,
            40000,
            ip(VIP),
            80,
            ip("192.0.2.11"),
            8080
        )
    );
    // Gone with the connection (SYN only: NONE→SYN_RECV, 60 s).
    d.advance(61_000);
    assert_eq!(d.lookup_reply(Protocol::Tcp, server, client), None);
    assert_eq!(d.conn_tuple(f.conn), None);
}

#[test]
fn lookup_reply_ignores_route_and_tunnel_connections_and_templates() {
    let mut d = director();
    d.add_service(persistent(tcp_key(80), 300)).unwrap();
    d.add_dest(&tcp_key(80), dest("192.0.2.11", 80, Forward::Route, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.7", 40000, 80, TcpFlags::SYN), 0));
    assert_eq!(f.method, Forward::Route);
    assert_eq!(
        d.lookup_reply(
            Protocol::Tcp,
            (ip("192.0.2.11"), 80),
            (ip("198.51.100.7"), 40000)
        ),
        None
    );
    let mut d = director();
    d.add_service(ServiceConfig::new(tcp_key(80))).unwrap();
    d.add_dest(
        &tcp_key(80),
        dest("192.0.2.11", 80, Forward::Tunnel(Tunnel::default()), 1),
    )
    .unwrap();
    fwd(d.inbound(&tcp("198.51.100.7", 40000, 80, TcpFlags::SYN), 0));
    assert_eq!(
        d.lookup_reply(
            Protocol::Tcp,
            (ip("192.0.2.11"), 80),
            (ip("198.51.100.7"), 40000)
        ),
        None
    );
}

#[test]
fn lookup_reply_ipv6() {
    let mut d = director();
    masq_service_v6(&mut d, Protocol::Udp, 53, 5353);
    let mut p = udp("2001:db8:2::7", 5000, 53);
    p.dst = ip("2001:db8::10");
    let f = fwd(d.inbound(&p, 0));
    assert_eq!(
        d.lookup_reply(
            Protocol::Udp,
            (ip("2001:db8:1::11"), 5353),
            (ip("2001:db8:2::7"), 5000)
        ),
        Some(f.conn)
    );
}

#[test]
fn is_virtual_address_knows_service_addresses_only() {
    let mut d = director();
    assert!(!d.is_virtual_address(ip(VIP)));
    d.add_service(ServiceConfig::new(udp_key(53))).unwrap();
    assert!(d.is_virtual_address(ip(VIP)));
    assert!(!d.is_virtual_address(ip("192.0.2.11")));
    d.del_service(&udp_key(53)).unwrap();
    assert!(!d.is_virtual_address(ip(VIP)));
}

#[test]
fn count_related_counts_without_touching_state() {
    let mut d = director();
    d.add_service(ServiceConfig::new(tcp_key(80))).unwrap();
    d.add_dest(&tcp_key(80), dest("192.0.2.11", 80, Forward::Masq, 1))
        .unwrap();
    let f = fwd(d.inbound(&tcp("198.51.100.7", 40000, 80, TcpFlags::SYN), 0));
    let before = conn_of(&d, "198.51.100.7", 40000, 80);
    d.advance(1000);
    assert!(d.count_related(f.conn, true, 100));
    assert!(d.count_related(f.conn, false, 70));
    let s = d.service(&tcp_key(80)).unwrap().stats;
    assert_eq!((s.inpkts, s.inbytes), (2, u64::from(TCP_LEN) + 100));
    assert_eq!((s.outpkts, s.outbytes), (1, 70));
    let after = conn_of(&d, "198.51.100.7", 40000, 80);
    assert_eq!(after.state, before.state);
    assert_eq!(
        after.expires_ms,
        before.expires_ms - 1000,
        "timer not restarted"
    );
    d.advance(61_000);
    assert!(!d.count_related(f.conn, true, 1));
}
