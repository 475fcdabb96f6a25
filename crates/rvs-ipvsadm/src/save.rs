//! `ipvsadm -Sn`: the rules a restore (`-R`) reads back.
//!
//! One `-A` line per service then one `-a` line per real server, services
//! and servers in ipvsadm's list order unless `nosort`. Thresholds are not
//! written (ipvsadm does not write them either). A `Local` server is written
//! `-g`; a `Proxy` server (the rvs userspace proxy, which ipvsadm does not
//! know) is written `-m`, the method whose behaviour it shares, so a saved
//! proxy server restores as NAT.

use std::fmt::Write as _;

use rvs_core::model::{
    DestConfig, Family, Forward, Netmask, Protocol, ServiceConfig, ServiceKey, SockAddrDisplay,
    TunnelType,
};

use crate::sort::{sort_dests, sort_services};

/// The service selector as a rule writes it: `-t 192.0.2.1:80`,
/// `--sctp-service [2001:db8::1]:80`, `-f 7 -6`.
pub fn rule_service(key: &ServiceKey) -> String {
    match *key {
        ServiceKey::Addr { proto, addr, port } => {
            let opt = match proto {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{opt} {}", SockAddrDisplay(addr, port))
        }
        ServiceKey::FwMark {
            family: Family::V4,
            mark,
        } => format!("-f {mark}"),
        ServiceKey::FwMark {
            family: Family::V6,
            mark,
        } => format!("-f {mark} -6"),
    }
}

/// The scheduler flags named as ipvsadm names them for this scheduler,
/// comma-separated (sh and mh name only their two flags; other schedulers
/// use `flag-1..3`).
pub fn sched_flags_text(svc: &ServiceConfig) -> String {
    use rvs_core::model::{SchedFlags, SchedulerKind};
    let f = svc.sched_flags.0;
    let mut names: Vec<&str> = Vec::new();
    match svc.scheduler {
        SchedulerKind::Sh | SchedulerKind::Mh => {
            let p = svc.scheduler.name();
            if f & SchedFlags::SCHED1 != 0 {
                names.push(if p == "sh" {
                    "sh-fallback"
                } else {
                    "mh-fallback"
                });
            }
            if f & SchedFlags::SCHED2 != 0 {
                names.push(if p == "sh" { "sh-port" } else { "mh-port" });
            }
        }
        _ => {
            for (bit, n) in [
                (SchedFlags::SCHED1, "flag-1"),
                (SchedFlags::SCHED2, "flag-2"),
                (SchedFlags::SCHED3, "flag-3"),
            ] {
                if f & bit != 0 {
                    names.push(n);
                }
            }
        }
    }
    names.join(",")
}

/// Whether any of the three scheduler flag bits is set.
pub fn has_sched_flags(svc: &ServiceConfig) -> bool {
    svc.sched_flags.0 & 7 != 0
}

/// The `-A` line of a service, without the newline.
pub fn service_rule(svc: &ServiceConfig) -> String {
    let mut s = format!("-A {} -s {}", rule_service(&svc.key), svc.scheduler.name());
    if let Some(t) = svc.persistence {
        let _ = write!(s, " -p {t}");
        if !svc.netmask.is_full() {
            match svc.netmask {
                Netmask::V4(_) | Netmask::V6(_) => {
                    let _ = write!(s, " -M {}", svc.netmask);
                }
            }
        }
    }
    if let Some(pe) = &svc.pe_name {
        let _ = write!(s, " --pe {pe}");
    }
    if svc.one_packet {
        s.push_str(" -o");
    }
    if has_sched_flags(svc) {
        let _ = write!(s, " -b {}", sched_flags_text(svc));
    }
    s
}

/// The `-a` line of a real server, without the newline.
pub fn dest_rule(key: &ServiceKey, d: &DestConfig) -> String {
    let switch = match d.forward {
        Forward::Masq | Forward::Proxy => "-m",
        Forward::Tunnel(_) => "-i",
        Forward::Route | Forward::Local => "-g",
    };
    let mut s = format!(
        "-a {} -r {} {switch} -w {}",
        rule_service(key),
        SockAddrDisplay(d.addr, d.port),
        d.weight
    );
    if let Forward::Tunnel(t) = d.forward {
        match t.kind {
            TunnelType::Ipip => s.push_str(" --tun-type ipip"),
            TunnelType::Gue => {
                let _ = write!(
                    s,
                    " --tun-type gue --tun-port {} {}",
                    t.port,
                    t.csum.option()
                );
            }
            TunnelType::Gre => {
                let _ = write!(s, " --tun-type gre {}", t.csum.option());
            }
        }
    }
    s
}

/// What `ipvsadm -Sn` writes for these services, in ipvsadm's order.
pub fn save(services: &[(ServiceConfig, Vec<DestConfig>)]) -> String {
    save_with(services, false)
}

/// As [`save`]; with `nosort` the services and servers keep the given order.
pub fn save_with(services: &[(ServiceConfig, Vec<DestConfig>)], nosort: bool) -> String {
    let mut list: Vec<(ServiceConfig, Vec<DestConfig>)> = services.to_vec();
    if !nosort {
        sort_services(&mut list, |e| &e.0);
    }
    let mut out = String::new();
    for (svc, dests) in &mut list {
        out.push_str(&service_rule(svc));
        out.push('\n');
        if !nosort {
            sort_dests(dests, |d| d);
        }
        for d in dests.iter() {
            out.push_str(&dest_rule(&svc.key, d));
            out.push('\n');
        }
    }
    out
}
