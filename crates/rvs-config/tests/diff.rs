//! Property: the operations of `diff(running, wanted)`, applied in order to a
//! director holding `running`, give the director that `wanted` builds, and
//! never touch what both sets share (a kept server keeps its identity).

use std::collections::HashMap;
use std::net::IpAddr;

use proptest::prelude::*;
use rvs_config::{Op, diff};
use rvs_core::director::{Director, DirectorConfig};
use rvs_core::model::{
    DestConfig, Family, Forward, Protocol, SchedFlags, SchedulerKind, ServiceConfig, ServiceKey,
};

type Set = Vec<(ServiceConfig, Vec<DestConfig>)>;

fn key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (
            prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
            prop_oneof![
                Just("192.0.2.1".parse::<IpAddr>().unwrap()),
                Just("192.0.2.2".parse().unwrap()),
                Just("2001:db8::1".parse().unwrap()),
            ],
            prop_oneof![Just(80u16), Just(443)],
        )
            .prop_map(|(proto, addr, port)| ServiceKey::Addr { proto, addr, port }),
        (1u32..3).prop_map(|mark| ServiceKey::FwMark {
            family: Family::V4,
            mark
        }),
    ]
}

fn service() -> impl Strategy<Value = ServiceConfig> {
    (
        key(),
        prop_oneof![
            Just(SchedulerKind::Rr),
            Just(SchedulerKind::Wlc),
            Just(SchedulerKind::Sh),
            Just(SchedulerKind::Mh),
        ],
        0u8..4,
        prop_oneof![Just(None), Just(Some(60u32)), Just(Some(300))],
        any::<bool>(),
        prop_oneof![Just(251u32), Just(4093)],
    )
        .prop_map(|(key, scheduler, flags, persistence, ops, mh)| {
            let mut s = ServiceConfig::new(key);
            s.scheduler = scheduler;
            if matches!(scheduler, SchedulerKind::Sh | SchedulerKind::Mh) {
                s.sched_flags = SchedFlags(flags);
            }
            s.persistence = persistence;
            s.one_packet = ops && key.protocol() == Some(Protocol::Udp);
            s.mh_table_size = mh;
            s
        })
}

fn dest(family: Family) -> impl Strategy<Value = DestConfig> {
    (
        1u8..5,
        prop_oneof![Just(80u16), Just(8080)],
        prop_oneof![
            Just(Forward::Masq),
            Just(Forward::Route),
            Just(Forward::Proxy)
        ],
        0u32..4,
        any::<bool>(),
    )
        .prop_map(move |(last, port, forward, weight, thresholds)| {
            let addr = match family {
                Family::V4 => IpAddr::from([10, 0, 0, last]),
                Family::V6 => IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(last)]),
            };
            let (u, l) = if thresholds { (10, 5) } else { (0, 0) };
            DestConfig {
                addr,
                port,
                forward,
                weight,
                u_threshold: u,
                l_threshold: l,
            }
        })
}

fn entry() -> impl Strategy<Value = (ServiceConfig, Vec<DestConfig>)> {
    service().prop_flat_map(|s| {
        let fam = s.key.family();
        (Just(s), prop::collection::vec(dest(fam), 0..5))
    })
}

/// A valid set: one entry per service key, one server per address and port.
fn set() -> impl Strategy<Value = Set> {
    prop::collection::vec(entry(), 0..5).prop_map(|entries| {
        let mut out: Set = Vec::new();
        for (s, ds) in entries {
            if out.iter().any(|(o, _)| o.key == s.key) {
                continue;
            }
            let mut kept: Vec<DestConfig> = Vec::new();
            for d in ds {
                if !kept.iter().any(|k| (k.addr, k.port) == (d.addr, d.port)) {
                    kept.push(d);
                }
            }
            out.push((s, kept));
        }
        out
    })
}

fn build(set: &Set) -> Director {
    let mut d = Director::new(DirectorConfig::default());
    for (s, ds) in set {
        d.add_service(s.clone()).unwrap();
        for x in ds {
            d.add_dest(&s.key, *x).unwrap();
        }
    }
    d
}

/// The director's services and servers, in an order-free form.
fn canonical(d: &Director) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = d
        .services()
        .into_iter()
        .map(|s| {
            let mut ds: Vec<String> = s.dests.iter().map(|x| format!("{:?}", x.config)).collect();
            ds.sort();
            (format!("{:?}", s.config), ds)
        })
        .collect();
    out.sort();
    out
}

fn ids(d: &Director) -> HashMap<(String, IpAddr, u16), u32> {
    d.services()
        .into_iter()
        .flat_map(|s| {
            let k = format!("{:?}", s.config.key);
            s.dests
                .into_iter()
                .map(move |x| ((k.clone(), x.config.addr, x.config.port), x.id.0))
        })
        .collect()
}

/// Whether an operation changes something that differs between the sets.
fn necessary(op: &Op, running: &Set, wanted: &Set) -> bool {
    match op {
        Op::DeleteService(k) => wanted.iter().all(|(s, _)| s.key != *k),
        Op::AddService(s) => running.iter().all(|(r, _)| r.key != s.key),
        Op::EditService(s) => running.iter().any(|(r, _)| r.key == s.key && r != s),
        Op::EditDest { service, dest } => running.iter().any(|(r, ds)| {
            r.key == *service
                && ds
                    .iter()
                    .any(|x| (x.addr, x.port) == (dest.addr, dest.port) && x != dest)
        }),
        Op::AddDest { service, dest } => !running.iter().any(|(r, ds)| {
            r.key == *service
                && ds
                    .iter()
                    .any(|x| (x.addr, x.port) == (dest.addr, dest.port))
        }),
        Op::DeleteDest {
            service,
            addr,
            port,
        } => !wanted.iter().any(|(w, ds)| {
            w.key == *service && ds.iter().any(|x| (x.addr, x.port) == (*addr, *port))
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn diff_transforms_running_into_wanted(running in set(), wanted in set()) {
        let mut d = build(&running);
        let before = ids(&d);
        let ops = diff(&running, &wanted);
        for op in &ops {
            op.apply(&mut d).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
        }
        prop_assert_eq!(canonical(&d), canonical(&build(&wanted)));

        // Untouched: a server in both sets keeps its identity (it was
        // edited, not deleted and re-added), and a service in both sets is
        // never deleted or re-added.
        let after = ids(&d);
        for (k, id) in &before {
            if let Some(now) = after.get(k) {
                prop_assert_eq!(id, now);
            }
        }
        for op in &ops {
            prop_assert!(necessary(op, &running, &wanted), "unneeded {:?}", op);
        }
        prop_assert!(diff(&wanted, &wanted).is_empty());
    }
}
