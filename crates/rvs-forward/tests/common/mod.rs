//! Frames, neighbours and checks shared by the forwarder tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use rvs_core::model::{DestConfig, Forward, Protocol, ServiceConfig, ServiceKey, Sysctls};
use rvs_forward::{
    Forwarder, ForwarderConfig, MAX_ENCAP_OVERHEAD, Mac, Neighbours, NextHop, RxMeta, Verdict,
};

pub const VIP4: &str = "203.0.113.10";
pub const VIP6: &str = "2001:db8::10";
pub const CLIENT4: &str = "198.51.100.7";
pub const CLIENT6: &str = "2001:db8:2::7";
pub const RS4: &str = "192.0.2.11";
pub const RS4B: &str = "192.0.2.12";
pub const RS4C: &str = "192.0.2.13";
pub const RS6: &str = "2001:db8:1::11";
pub const DIRECTOR4: &str = "192.0.2.1";
pub const DIRECTOR6: &str = "2001:db8:1::1";

/// The director's own interface address (both interfaces, for simplicity).
pub const DIRECTOR_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
/// The client-side router.
pub const ROUTER_MAC: Mac = [0x02, 0, 0, 0, 0, 0x0a];
/// Real servers.
pub const RS_MAC: Mac = [0x02, 0, 0, 0, 0, 0x11];
pub const RS_MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x12];
pub const RS_MAC_C: Mac = [0x02, 0, 0, 0, 0, 0x13];
pub const RS6_MAC: Mac = [0x02, 0, 0, 0, 0, 0x16];

pub const CLIENT_IF: u32 = 2;
pub const SERVER_IF: u32 = 3;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn v4(s: &str) -> [u8; 4] {
    match ip(s) {
        IpAddr::V4(a) => a.octets(),
        _ => panic!("not v4"),
    }
}

pub fn v6(s: &str) -> [u8; 16] {
    match ip(s) {
        IpAddr::V6(a) => a.octets(),
        _ => panic!("not v6"),
    }
}

/// A static neighbour table.
#[derive(Debug, Default, Clone)]
pub struct Table {
    pub hops: HashMap<IpAddr, NextHop>,
}

impl Neighbours for Table {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        self.hops.get(&dst).copied()
    }
}

pub fn hop(iface: u32, mac: Option<Mac>, mtu: u16, src: Option<&str>) -> NextHop {
    NextHop {
        iface,
        src_mac: DIRECTOR_MAC,
        dst_mac: mac,
        mtu,
        src_ip: src.map(ip),
    }
}

/// Clients behind the router, servers on the server interface.
pub fn table() -> Table {
    let mut t = Table::default();
    t.hops
        .insert(ip(CLIENT4), hop(CLIENT_IF, Some(ROUTER_MAC), 1500, None));
    t.hops
        .insert(ip(CLIENT6), hop(CLIENT_IF, Some(ROUTER_MAC), 1500, None));
    t.hops
        .insert(ip(RS4), hop(SERVER_IF, Some(RS_MAC), 1500, Some(DIRECTOR4)));
    t.hops.insert(
        ip(RS4B),
        hop(SERVER_IF, Some(RS_MAC_B), 1500, Some(DIRECTOR4)),
    );
    t.hops.insert(
        ip(RS4C),
        hop(SERVER_IF, Some(RS_MAC_C), 1500, Some(DIRECTOR4)),
    );
    t.hops.insert(
        ip(RS6),
        hop(SERVER_IF, Some(RS6_MAC), 1500, Some(DIRECTOR6)),
    );
    t
}

pub fn forwarder() -> Forwarder {
    Forwarder::new(ForwarderConfig::default())
}

pub fn forwarder_with(f: impl FnOnce(&mut Sysctls)) -> Forwarder {
    let mut cfg = ForwarderConfig::default();
    f(&mut cfg.director.sysctls);
    Forwarder::new(cfg)
}

pub fn key(proto: Protocol, vip: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: ip(vip),
        port,
    }
}

pub fn dest(addr: &str, port: u16, forward: Forward) -> DestConfig {
    DestConfig {
        addr: ip(addr),
        port,
        forward,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    }
}

/// One service with one real server.
pub fn service(fw: &mut Forwarder, k: ServiceKey, d: DestConfig) {
    let mut cfg = ServiceConfig::new(k);
    cfg.scheduler = rvs_core::model::SchedulerKind::Rr;
    fw.director_mut().add_service(cfg).unwrap();
    fw.director_mut().add_dest(&k, d).unwrap();
}

/// TCP flags for frames.
#[derive(Debug, Clone, Copy)]
pub enum Tcp {
    Syn,
    SynAck,
    Ack,
    FinAck,
    Rst,
}

fn tcp_builder(
    b: etherparse::PacketBuilderStep<etherparse::IpHeaders>,
    sport: u16,
    dport: u16,
    f: Tcp,
) -> etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    let t = b.tcp(sport, dport, 1000, 64240);
    match f {
        Tcp::Syn => t.syn(),
        Tcp::SynAck => t.syn().ack(1),
        Tcp::Ack => t.ack(1),
        Tcp::FinAck => t.fin().ack(1),
        Tcp::Rst => t.rst(),
    }
}

fn ip_step(
    src_mac: Mac,
    dst_mac: Mac,
    src: &str,
    dst: &str,
    ttl: u8,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let e = PacketBuilder::ethernet2(src_mac, dst_mac);
    match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => e.ipv4(s.octets(), d.octets(), ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => e.ipv6(s.octets(), d.octets(), ttl),
        _ => panic!("mixed families"),
    }
}

/// A TCP frame.
pub fn tcp_frame(
    src: (&str, u16),
    dst: (&str, u16),
    f: Tcp,
    payload: &[u8],
    macs: (Mac, Mac),
) -> Vec<u8> {
    let b = tcp_builder(ip_step(macs.0, macs.1, src.0, dst.0, 64), src.1, dst.1, f);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A UDP frame.
pub fn udp_frame(src: (&str, u16), dst: (&str, u16), payload: &[u8], macs: (Mac, Mac)) -> Vec<u8> {
    let b = ip_step(macs.0, macs.1, src.0, dst.0, 64).udp(src.1, dst.1);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// Client → VIP.
pub fn from_client(client: &str, cport: u16, vip: &str, vport: u16, f: Tcp) -> Vec<u8> {
    tcp_frame(
        (client, cport),
        (vip, vport),
        f,
        b"hello",
        (ROUTER_MAC, DIRECTOR_MAC),
    )
}

/// Real server → client (a NAT reply, before translation).
pub fn from_server(rs: (&str, u16), client: (&str, u16), f: Tcp) -> Vec<u8> {
    tcp_frame(rs, client, f, b"world!", (RS_MAC, DIRECTOR_MAC))
}

pub fn meta(iface: u32) -> RxMeta {
    RxMeta {
        iface,
        ..RxMeta::default()
    }
}

/// Runs one frame; returns the verdict and the bytes sent (if any).
pub fn run(fw: &mut Forwarder, frame: &[u8], iface: u32, now: u64) -> (Verdict, Vec<u8>) {
    run_meta(fw, frame, &meta(iface), &table(), now)
}

pub fn run_meta(
    fw: &mut Forwarder,
    frame: &[u8],
    m: &RxMeta,
    nb: &Table,
    now: u64,
) -> (Verdict, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + MAX_ENCAP_OVERHEAD];
    let v = fw.process(frame, m, &mut out, nb, now);
    let bytes = match v {
        Verdict::Forward { len, .. }
        | Verdict::Reply { len, .. }
        | Verdict::Fragment { len, .. } => out[..len].to_vec(),
        _ => Vec::new(),
    };
    (v, bytes)
}

/// To be sent out of `iface` as fragments: returns the whole frame and the
/// frames `rvs_forward::Fragments` cuts it into.
#[track_caller]
pub fn fragmented(r: (Verdict, Vec<u8>), iface: u32, mtu: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
    match r.0 {
        Verdict::Fragment {
            iface: i,
            len,
            mtu: m,
        } => {
            assert_eq!(i, iface, "outgoing interface");
            assert_eq!(m, mtu, "route MTU");
            assert_eq!(len, r.1.len());
            let frags = cut(&r.1, mtu);
            (r.1, frags)
        }
        other => panic!("expected Fragment, got {other:?}"),
    }
}

/// The frames `rvs_forward::Fragments` makes of `frame` for `mtu`.
#[track_caller]
pub fn cut(frame: &[u8], mtu: u16) -> Vec<Vec<u8>> {
    let mut f = rvs_forward::Fragments::new(frame, mtu).expect("a fragmentable frame");
    let mut buf = vec![0u8; f.max_frame_len()];
    let count = f.count();
    let mut all = Vec::new();
    while let Some(n) = f.next_into(&mut buf) {
        assert!(
            n - 14 <= usize::from(mtu),
            "fragment of {n} bytes over MTU {mtu}"
        );
        all.push(buf[..n].to_vec());
    }
    assert_eq!(all.len(), count, "Fragments::count");
    all
}

/// Sets or clears DF of an IPv4 frame, fixing the header checksum.
pub fn set_df(frame: &mut [u8], df: bool) {
    if df {
        frame[20] |= 0x40;
    } else {
        frame[20] &= !0x40;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame[24] = 0;
    frame[25] = 0;
    let c = rvs_forward::checksum_fold(rvs_forward::checksum_sum(0, &frame[14..14 + ihl]));
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Sent out of `iface`: returns the frame.
#[track_caller]
pub fn sent(r: (Verdict, Vec<u8>), iface: u32) -> Vec<u8> {
    match r.0 {
        Verdict::Forward { iface: i, len } => {
            assert_eq!(i, iface, "outgoing interface");
            assert_eq!(len, r.1.len());
            r.1
        }
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// Answered with an ICMP error out of `iface`: returns the reply frame.
#[track_caller]
pub fn replied(r: (Verdict, Vec<u8>), iface: u32) -> Vec<u8> {
    match r.0 {
        Verdict::Reply { iface: i, len } => {
            assert_eq!(i, iface, "reply interface");
            assert_eq!(len, r.1.len());
            r.1
        }
        other => panic!("expected Reply, got {other:?}"),
    }
}

/// Sends a SYN from CLIENT4:`cport` to VIP4:80 at `now` and returns the frame
/// the forwarder sends to the server side (the new connection's first packet).
#[track_caller]
pub fn syn_to_server(fw: &mut Forwarder, cport: u16, now: u64) -> Vec<u8> {
    sent(
        run(
            fw,
            &from_client(CLIENT4, cport, VIP4, 80, Tcp::Syn),
            CLIENT_IF,
            now,
        ),
        SERVER_IF,
    )
}

/// What etherparse reads from a frame, with every checksum checked.
#[derive(Debug)]
pub struct Parsed {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
}

/// Parses a TCP or UDP frame with etherparse and asserts that the IP and
/// transport checksums are right.
#[track_caller]
pub fn parse_checked(frame: &[u8]) -> Parsed {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses the frame");
    let eth = h
        .link
        .clone()
        .and_then(|l| l.ethernet2())
        .expect("ethernet");
    let payload = h.payload.slice();
    let (src, dst, ttl) = match h.net.as_ref().expect("ip") {
        NetHeaders::Ipv4(v4, _) => {
            assert_eq!(
                v4.header_checksum,
                v4.calc_header_checksum(),
                "IPv4 header checksum"
            );
            (
                IpAddr::from(v4.source),
                IpAddr::from(v4.destination),
                v4.time_to_live,
            )
        }
        NetHeaders::Ipv6(v6, _) => (
            IpAddr::from(v6.source),
            IpAddr::from(v6.destination),
            v6.hop_limit,
        ),
        other => panic!("not IP: {other:?}"),
    };
    let (sport, dport) = match (h.transport.as_ref().expect("transport"), h.net.as_ref()) {
        (TransportHeader::Tcp(t), Some(NetHeaders::Ipv4(i, _))) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv4(i, payload).unwrap(),
                "TCP checksum"
            );
            (t.source_port, t.destination_port)
        }
        (TransportHeader::Tcp(t), Some(NetHeaders::Ipv6(i, _))) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv6(i, payload).unwrap(),
                "TCP checksum"
            );
            (t.source_port, t.destination_port)
        }
        (TransportHeader::Udp(u), Some(NetHeaders::Ipv4(i, _))) => {
            if u.checksum != 0 {
                assert_eq!(
                    u.checksum,
                    u.calc_checksum_ipv4(i, payload).unwrap(),
                    "UDP checksum"
                );
            }
            (u.source_port, u.destination_port)
        }
        (TransportHeader::Udp(u), Some(NetHeaders::Ipv6(i, _))) => {
            assert_eq!(
                u.checksum,
                u.calc_checksum_ipv6(i, payload).unwrap(),
                "UDP checksum"
            );
            (u.source_port, u.destination_port)
        }
        other => panic!("unexpected transport {other:?}"),
    };
    Parsed {
        src_mac: eth.source,
        dst_mac: eth.destination,
        src,
        dst,
        ttl,
        sport,
        dport,
        payload: payload.to_vec(),
    }
}

/// The Internet checksum of `data` is right (sums to 0xffff).
pub fn csum_ok(data: &[u8], pseudo: u32) -> bool {
    rvs_forward::checksum_fold(rvs_forward::checksum_sum(pseudo, data)) == 0
}
