//! SCTP services through the director: INIT schedules, the association
//! walks the kernel's SCTP table, ESTABLISHED counts as active, and only an
//! INIT (or, with sloppy_sctp, anything but ABORT) creates a connection.

use std::net::IpAddr;

use rvs_core::director::{Director, DirectorConfig, PacketInfo, Verdict};
use rvs_core::model::{DestConfig, Forward, Protocol, ServiceConfig, ServiceKey, Sysctls};
use rvs_core::sctp::SctpEvent;
use rvs_core::state::TcpFlags;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn director(sysctls: Sysctls) -> (Director, ServiceKey) {
    let mut d = Director::new(DirectorConfig {
        sysctls,
        ..DirectorConfig::default()
    });
    let key = ServiceKey::Addr {
        proto: Protocol::Sctp,
        addr: ip("203.0.113.1"),
        port: 3868,
    };
    d.add_service(ServiceConfig::new(key)).unwrap();
    d.add_dest(
        &key,
        DestConfig {
            addr: ip("192.0.2.10"),
            port: 3868,
            forward: Forward::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        },
    )
    .unwrap();
    (d, key)
}

fn chunk(event: SctpEvent) -> PacketInfo {
    PacketInfo {
        proto: Protocol::Sctp,
        src: ip("198.51.100.5"),
        sport: 40000,
        dst: ip("203.0.113.1"),
        dport: 3868,
        fwmark: 0,
        tcp: TcpFlags::default(),
        sctp: event,
        len: 100,
    }
}

#[test]
fn association_becomes_established_and_active() {
    let (mut d, key) = director(Sysctls::default());
    let Verdict::Forward(f) = d.inbound(&chunk(SctpEvent::Init), 0) else {
        panic!("INIT is scheduled")
    };
    assert!(f.new_conn);
    d.outbound_sctp(f.conn, SctpEvent::InitAck, 100, 1);
    d.inbound(&chunk(SctpEvent::CookieEcho), 2);
    d.outbound_sctp(f.conn, SctpEvent::CookieAck, 100, 3);
    let conns = d.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, "ESTABLISHED");
    assert_eq!(conns[0].expires_ms, 900_000);
    let svc = d.service(&key).unwrap();
    assert_eq!((svc.dests[0].active, svc.dests[0].inactive), (1, 0));
    // An ABORT ends it: inactive, short timeout.
    d.inbound(&chunk(SctpEvent::Abort), 4);
    let svc = d.service(&key).unwrap();
    assert_eq!((svc.dests[0].active, svc.dests[0].inactive), (0, 1));
    assert_ne!(d.connections()[0].state, "ESTABLISHED");
}

#[test]
fn only_init_creates_a_connection_unless_sloppy() {
    let (mut d, _) = director(Sysctls::default());
    assert_eq!(d.inbound(&chunk(SctpEvent::Data), 0), Verdict::Pass);
    assert!(d.connections().is_empty());
    let (mut d, _) = director(Sysctls {
        sloppy_sctp: true,
        ..Sysctls::default()
    });
    assert_eq!(d.inbound(&chunk(SctpEvent::Abort), 0), Verdict::Pass);
    assert!(matches!(
        d.inbound(&chunk(SctpEvent::Data), 0),
        Verdict::Forward(_)
    ));
}
