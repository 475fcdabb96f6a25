//! `ipvsadm -Sn` output and the save/restore round trip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rvs_core::model::{
    DestConfig, Family, Forward, Netmask, Protocol, SchedFlags, SchedulerKind, ServiceConfig,
    ServiceKey, Tunnel, TunnelCsum, TunnelType,
};
use rvs_ipvsadm::cmd::Command;
use rvs_ipvsadm::rules::parse_rules;
use rvs_ipvsadm::save::{save, save_with};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(proto: Protocol, a: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: ip(a),
        port,
    }
}

fn dest(a: &str, port: u16, forward: Forward, weight: u32) -> DestConfig {
    DestConfig {
        addr: ip(a),
        port,
        forward,
        weight,
        u_threshold: 0,
        l_threshold: 0,
    }
}

/// The services of the reference's `-Sn` example, given in an unsorted
/// order.
fn example() -> Vec<(ServiceConfig, Vec<DestConfig>)> {
    let mut web = ServiceConfig::new(key(Protocol::Tcp, "203.0.113.10", 80));
    web.scheduler = SchedulerKind::Wlc;
    let mut tls = ServiceConfig::new(key(Protocol::Tcp, "203.0.113.10", 443));
    tls.scheduler = SchedulerKind::Rr;
    tls.persistence = Some(360);
    tls.netmask = Netmask::V4(0xffff_ff00);
    let mut dns = ServiceConfig::new(key(Protocol::Udp, "203.0.113.53", 53));
    dns.scheduler = SchedulerKind::Rr;
    dns.one_packet = true;
    let mut fwm = ServiceConfig::new(ServiceKey::FwMark {
        family: Family::V4,
        mark: 7,
    });
    fwm.scheduler = SchedulerKind::Mh;
    fwm.persistence = Some(300);
    fwm.sched_flags = SchedFlags(3);
    let mut v6 = ServiceConfig::new(key(Protocol::Tcp, "2001:db8::80", 80));
    v6.scheduler = SchedulerKind::Sh;
    v6.sched_flags = SchedFlags(3);
    let gue = Forward::Tunnel(Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        csum: TunnelCsum::NoCsum,
    });
    vec![
        (fwm, vec![dest("10.0.2.1", 0, Forward::Route, 1)]),
        (v6, vec![dest("2001:db8:1::a", 80, Forward::Masq, 1)]),
        (
            dns,
            vec![
                dest("10.0.1.2", 53, Forward::Tunnel(Tunnel::default()), 1),
                dest("10.0.1.1", 53, gue, 1),
            ],
        ),
        (
            tls,
            vec![
                dest("10.0.0.12", 443, Forward::Route, 0),
                dest("10.0.0.11", 443, Forward::Local, 1),
            ],
        ),
        (
            web,
            vec![
                dest("10.0.0.12", 8080, Forward::Masq, 2),
                dest("10.0.0.11", 8080, Forward::Proxy, 1),
            ],
        ),
    ]
}

#[test]
fn reference_example() {
    // ipvsadm's comparator puts every address service (IPv4 then IPv6)
    // before the fwmark services.
    let expected = "\
-A -t 203.0.113.10:80 -s wlc
-a -t 203.0.113.10:80 -r 10.0.0.11:8080 -m -w 1
-a -t 203.0.113.10:80 -r 10.0.0.12:8080 -m -w 2
-A -t 203.0.113.10:443 -s rr -p 360 -M 255.255.255.0
-a -t 203.0.113.10:443 -r 10.0.0.11:443 -g -w 1
-a -t 203.0.113.10:443 -r 10.0.0.12:443 -g -w 0
-A -u 203.0.113.53:53 -s rr -o
-a -u 203.0.113.53:53 -r 10.0.1.1:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-a -u 203.0.113.53:53 -r 10.0.1.2:53 -i -w 1 --tun-type ipip
-A -t [2001:db8::80]:80 -s sh -b sh-fallback,sh-port
-a -t [2001:db8::80]:80 -r [2001:db8:1::a]:80 -m -w 1
-A -f 7 -s mh -p 300 -b mh-fallback,mh-port
-a -f 7 -r 10.0.2.1:0 -g -w 1
";
    assert_eq!(save(&example()), expected);
}

#[test]
fn nosort_keeps_the_given_order() {
    let text = save_with(&example(), true);
    let first: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(
        first,
        vec![
            "-A -f 7 -s mh -p 300 -b mh-fallback,mh-port",
            "-a -f 7 -r 10.0.2.1:0 -g -w 1"
        ]
    );
}

#[test]
fn other_service_forms() {
    let mut s = ServiceConfig::new(key(Protocol::Sctp, "192.0.2.1", 0));
    s.persistence = Some(60);
    s.pe_name = Some("sip".into());
    s.sched_flags = SchedFlags(SchedFlags::SCHED3);
    let mut f6 = ServiceConfig::new(ServiceKey::FwMark {
        family: Family::V6,
        mark: 9,
    });
    f6.persistence = Some(100);
    f6.netmask = Netmask::V6(64);
    let gre = Forward::Tunnel(Tunnel {
        kind: TunnelType::Gre,
        port: 0,
        csum: TunnelCsum::Csum,
    });
    let text = save(&[(f6, vec![dest("2001:db8::5", 0, gre, 3)]), (s, vec![])]);
    assert_eq!(
        text,
        "-A --sctp-service 192.0.2.1:0 -s wlc -p 60 --pe sip -b flag-3\n\
         -A -f 9 -6 -s wlc -p 100 -M 64\n\
         -a -f 9 -6 -r [2001:db8::5]:0 -i -w 3 --tun-type gre --tun-csum\n"
    );
}

#[test]
fn wrapped_address_compare_orders_far_apart_services_backwards() {
    let a = ServiceConfig::new(key(Protocol::Tcp, "10.0.0.1", 80));
    let b = ServiceConfig::new(key(Protocol::Tcp, "198.51.100.1", 80));
    let text = save(&[(a, vec![]), (b, vec![])]);
    assert_eq!(
        text,
        "-A -t 198.51.100.1:80 -s wlc\n-A -t 10.0.0.1:80 -s wlc\n"
    );
}

#[test]
fn marks_above_2_31_sort_before_address_services() {
    // `int r = mark1 - mark2` is negative for such a mark against 0.
    let a = ServiceConfig::new(key(Protocol::Tcp, "10.0.0.1", 80));
    let f = ServiceConfig::new(ServiceKey::FwMark {
        family: Family::V4,
        mark: 0x8000_0001,
    });
    assert_eq!(
        save(&[(a, vec![]), (f, vec![])]),
        "-A -f 2147483649 -s wlc\n-A -t 10.0.0.1:80 -s wlc\n"
    );
}

/// Rebuilds the table a restore of these rules would give.
fn apply(text: &str) -> Vec<(ServiceConfig, Vec<DestConfig>)> {
    let mut table: Vec<(ServiceConfig, Vec<DestConfig>)> = Vec::new();
    for r in parse_rules(text).unwrap_or_else(|e| panic!("{e}\n{text}")) {
        match r.command {
            Command::AddService(s) => table.push((s, Vec::new())),
            Command::AddDest { service, dest, .. } => {
                let entry = table
                    .iter_mut()
                    .find(|(s, _)| s.key == service)
                    .expect("service defined before its servers");
                // The kernel adds servers at the head of the list.
                entry.1.insert(0, dest);
            }
            c => panic!("unexpected {c:?}"),
        }
    }
    table
}

// Addresses (and marks) stay within 2^31 of each other, where ipvsadm's comparator is a
// total order; beyond that its order depends on the kernel's hash order,
// which a restore does not reproduce.
fn v4() -> impl Strategy<Value = IpAddr> {
    (0u32..0x00ff_ffff).prop_map(|x| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | x)))
}

fn v6() -> impl Strategy<Value = IpAddr> {
    (0u16..0x7fff, any::<u16>())
        .prop_map(|(a, b)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, a, b)))
}

fn sched() -> impl Strategy<Value = SchedulerKind> {
    proptest::sample::select(SchedulerKind::ALL.to_vec())
}

fn service() -> impl Strategy<Value = ServiceConfig> {
    let key = prop_oneof![
        (
            proptest::sample::select(vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp]),
            prop_oneof![v4(), v6()],
            prop_oneof![Just(0u16), any::<u16>()],
        )
            .prop_map(|(proto, addr, port)| ServiceKey::Addr { proto, addr, port }),
        (any::<bool>(), 1u32..0x8000_0000).prop_map(|(v6, mark)| ServiceKey::FwMark {
            family: if v6 { Family::V6 } else { Family::V4 },
            mark
        }),
    ];
    (
        key,
        sched(),
        0u8..8,
        proptest::option::of(1u32..=2_678_400),
        any::<u32>(),
        1u8..=128,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(key, scheduler, flags, persistence, m4, m6, pe, ops)| {
            let mut s = ServiceConfig::new(key);
            s.scheduler = scheduler;
            s.sched_flags = SchedFlags(match scheduler {
                SchedulerKind::Sh | SchedulerKind::Mh => flags & 3,
                _ => flags,
            });
            s.persistence = persistence;
            if key.port() == 0 && !key.is_fwmark() && persistence.is_none() {
                s.persistence = Some(360);
            }
            s.netmask = match key.family() {
                Family::V4 => Netmask::V4(m4),
                Family::V6 => Netmask::V6(m6),
            };
            s.pe_name = pe.then(|| "sip".to_string());
            s.one_packet = ops && (key.is_fwmark() || key.protocol() == Some(Protocol::Udp));
            s
        })
}

fn forward() -> impl Strategy<Value = Forward> {
    let tunnel = prop_oneof![
        Just(Tunnel::default()),
        (
            1u16..=65535,
            proptest::sample::select(vec![
                TunnelCsum::NoCsum,
                TunnelCsum::Csum,
                TunnelCsum::RemCsum
            ])
        )
            .prop_map(|(port, csum)| Tunnel {
                kind: TunnelType::Gue,
                port,
                csum
            }),
        proptest::sample::select(vec![TunnelCsum::NoCsum, TunnelCsum::Csum]).prop_map(|csum| {
            Tunnel {
                kind: TunnelType::Gre,
                port: 0,
                csum,
            }
        }),
    ];
    prop_oneof![
        Just(Forward::Masq),
        Just(Forward::Route),
        Just(Forward::Local),
        Just(Forward::Proxy),
        tunnel.prop_map(Forward::Tunnel),
    ]
}

fn table() -> impl Strategy<Value = Vec<(ServiceConfig, Vec<DestConfig>)>> {
    let entry = (
        service(),
        proptest::collection::vec(
            (
                forward(),
                prop_oneof![v4(), v6()],
                any::<u16>(),
                0u32..=65535,
            ),
            0..5,
        ),
    )
        .prop_map(|(svc, raw)| {
            let mut dests: Vec<DestConfig> = Vec::new();
            for (forward, addr, port, weight) in raw {
                let tunnel = matches!(forward, Forward::Tunnel(_));
                // Only tunnelled servers may be of the other family.
                let addr = if tunnel || IpAddr::is_ipv6(&addr) == (svc.key.family() == Family::V6) {
                    addr
                } else {
                    match svc.key.family() {
                        Family::V4 => IpAddr::V4(Ipv4Addr::new(10, 9, 9, (port % 250) as u8)),
                        Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 9, port)),
                    }
                };
                // Routed and tunnelled servers of address services carry the
                // service port (ipvsadm forces it).
                let port = match forward {
                    Forward::Masq | Forward::Proxy => port,
                    _ if svc.key.is_fwmark() => port,
                    _ => svc.key.port(),
                };
                if dests.iter().all(|d| (d.addr, d.port) != (addr, port)) {
                    dests.push(DestConfig {
                        addr,
                        port,
                        forward,
                        weight,
                        u_threshold: 0,
                        l_threshold: 0,
                    });
                }
            }
            (svc, dests)
        });
    proptest::collection::vec(entry, 0..8).prop_map(|v| {
        let mut out: Vec<(ServiceConfig, Vec<DestConfig>)> = Vec::new();
        for e in v {
            if out.iter().all(|o| o.0.key != e.0.key) {
                out.push(e);
            }
        }
        out
    })
}

proptest! {
    #[test]
    fn save_restore_save_is_identity(t in table()) {
        let first = save(&t);
        let second = save(&apply(&first));
        prop_assert_eq!(first, second);
    }
}
