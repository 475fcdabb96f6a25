//! `ipvsadm -L` output, byte for byte.
//!
//! The formatters take plain rows ([`ListService`], [`ListDest`],
//! [`ListConn`]) that the caller fills from its tables, and return the text
//! ipvsadm prints, trailing spaces included (every real-server line of the
//! default format ends in the padding of its last `%-10u` column).
//!
//! rvs does no name resolution, so the output is always the numeric (`-n`)
//! form. A single-service listing (`-L -t VIP:PORT`) prints the two title
//! lines and that service but not the version line, as ipvsadm does.

use std::fmt::Write as _;
use std::net::IpAddr;

use rvs_core::model::{
    DestConfig, Family, Forward, Netmask, ServiceConfig, ServiceKey, SockAddrDisplay, Timeouts,
    TunnelCsum, TunnelType,
};

use crate::save::{has_sched_flags, sched_flags_text};
use crate::sort::{sort_dests, sort_services};

/// The first line of a full listing.
pub const VERSION_LINE: &str = "IP Virtual Server version 1.2.1 (size=4096)";

/// Five counters: totals for `--stats`, per-second rates for `--rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters5 {
    /// Connections (or connections per second).
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
}

/// A real server as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDest {
    /// Its configuration.
    pub config: DestConfig,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn (templates).
    pub persistent: u32,
    /// Totals (`--stats`).
    pub stats: Counters5,
    /// Rates (`--rate`).
    pub rates: Counters5,
}

impl ListDest {
    /// A server with zero counters.
    pub fn new(config: DestConfig) -> ListDest {
        ListDest {
            config,
            active: 0,
            inactive: 0,
            persistent: 0,
            stats: Counters5::default(),
            rates: Counters5::default(),
        }
    }
}

/// A virtual service as listed, with its real servers in kernel order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListService {
    /// Its configuration.
    pub config: ServiceConfig,
    /// Totals (`--stats`).
    pub stats: Counters5,
    /// Rates (`--rate`).
    pub rates: Counters5,
    /// Real servers.
    pub dests: Vec<ListDest>,
}

impl ListService {
    /// A service with zero counters.
    pub fn new(config: ServiceConfig, dests: Vec<ListDest>) -> ListService {
        ListService {
            config,
            stats: Counters5::default(),
            rates: Counters5::default(),
            dests,
        }
    }
}

/// One connection-table entry as `-Lnc` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListConn {
    /// `TCP`, `UDP`, `SCTP` (or whatever the table names it).
    pub proto_name: String,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// State name (`ESTABLISHED`, `NONE`, ...).
    pub state: String,
    /// Seconds until expiry.
    pub expires_secs: u64,
    /// Persistence-engine name and data, when the entry has them.
    pub pe: Option<(String, String)>,
}

/// Which `-L` format to print (ipvsadm's precedence: stats, rate,
/// thresholds, persistent-conn, tun-info, default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListFormat {
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--exact`.
    pub exact: bool,
    /// `--nosort`.
    pub nosort: bool,
}

/// ipvsadm's counter cell: nine columns, scaled to K/M/G/T unless `exact`.
pub fn largenum(v: u64, exact: bool) -> String {
    if exact {
        let len = v.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        return format!("{v:>width$}");
    }
    if v < 100_000_000 {
        format!("{v:>9}")
    } else if v < 1_000_000_000 {
        format!("{:>8}K", v / 1000)
    } else if v < 100_000_000_000 {
        format!("{:>8}M", v / 1_000_000)
    } else if v < 100_000_000_000_000 {
        format!("{:>8}G", v / 1_000_000_000)
    } else {
        format!("{:>8}T", v / 1_000_000_000_000)
    }
}

/// The two title lines of a format.
pub fn title(f: &ListFormat) -> String {
    let second = "  -> RemoteAddress:Port\n";
    let head = "Prot LocalAddress:Port";
    if f.stats {
        format!(
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{second}",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if f.rate {
        format!(
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{second}",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if f.thresholds {
        format!(
            "{head:<33} {:<10} {:<10} {:<10} {:<10}\n{second}",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if f.persistent_conn {
        format!(
            "{head:<33} {:<9} {:<11} {:<10} {:<10}\n{second}",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if f.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string()
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string()
    }
}

/// The service name column: `TCP  192.0.2.1:80` (IPv4 names cut at 33
/// bytes), `FWM  7`, `FWM  7 IPv6`.
pub fn service_name(key: &ServiceKey) -> String {
    let mut s = key.to_string();
    if let ServiceKey::Addr { addr, .. } = key
        && !addr.is_ipv6()
    {
        s.truncate(33);
    }
    s
}

/// The real-server name column (IPv4 names cut at 28 bytes).
pub fn dest_name(d: &DestConfig) -> String {
    let mut s = SockAddrDisplay(d.addr, d.port).to_string();
    if !d.addr.is_ipv6() {
        s.truncate(28);
    }
    s
}

/// `--tun-info`'s TunnelInfo cell.
pub fn tun_info(d: &DestConfig) -> String {
    let Forward::Tunnel(t) = d.forward else {
        return "n/a".to_string();
    };
    let csum = match t.csum {
        TunnelCsum::NoCsum => "-c",
        TunnelCsum::Csum => "+c",
        TunnelCsum::RemCsum => "r+c",
    };
    match t.kind {
        TunnelType::Ipip => "ipip".to_string(),
        TunnelType::Gue => format!("gue:{}:{csum}", t.port),
        TunnelType::Gre => format!("gre:{csum}"),
    }
}

fn service_line(svc: &ListService, f: &ListFormat, out: &mut String) {
    let c = &svc.config;
    let name = service_name(&c.key);
    if f.stats || f.rate {
        let n = if f.stats { &svc.stats } else { &svc.rates };
        let _ = write!(out, "{name:<33}");
        for v in [n.conns, n.inpkts, n.outpkts, n.inbytes, n.outbytes] {
            out.push_str(&largenum(v, f.exact));
        }
    } else {
        let _ = write!(out, "{name} {}", c.scheduler.name());
        if has_sched_flags(c) {
            let _ = write!(out, " ({})", sched_flags_text(c));
        }
        if let Some(t) = c.persistence {
            let _ = write!(out, " persistent {t}");
            if !c.netmask.is_full() {
                match (c.key.family(), c.netmask) {
                    (Family::V4, Netmask::V4(_)) | (Family::V6, Netmask::V6(_)) => {
                        let _ = write!(out, " mask {}", c.netmask);
                    }
                    _ => {}
                }
            }
            if let Some(pe) = &c.pe_name {
                let _ = write!(out, " pe {pe}");
            }
        }
        if c.one_packet {
            out.push_str(" ops");
        }
    }
    out.push('\n');
}

fn dest_line(d: &ListDest, f: &ListFormat, out: &mut String) {
    let name = dest_name(&d.config);
    let fwd = d.config.forward.list_name();
    let w = d.config.weight;
    if f.stats {
        let _ = write!(out, "  -> {name:<28}");
        let n = &d.stats;
        for v in [n.conns, n.inpkts, n.outpkts, n.inbytes, n.outbytes] {
            out.push_str(&largenum(v, f.exact));
        }
        out.push('\n');
    } else if f.rate {
        let n = &d.rates;
        let _ = write!(
            out,
            "  -> {name:<28} {:>8} {:>8} {:>8}",
            n.conns, n.inpkts, n.outpkts
        );
        out.push_str(&largenum(n.inbytes, f.exact));
        out.push_str(&largenum(n.outbytes, f.exact));
        out.push('\n');
    } else if f.thresholds {
        let _ = writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {:<10} {:<10}",
            d.config.u_threshold, d.config.l_threshold, d.active, d.inactive
        );
    } else if f.persistent_conn {
        let _ = writeln!(
            out,
            "  -> {name:<28} {w:<9} {:<11} {:<10} {:<10}",
            d.persistent, d.active, d.inactive
        );
    } else if f.tun_info {
        let _ = writeln!(
            out,
            "  -> {name:<28} {fwd:<7} {:<13} {w:<6} {:<10} {:<10}",
            tun_info(&d.config),
            d.active,
            d.inactive
        );
    } else {
        let _ = writeln!(
            out,
            "  -> {name:<28} {fwd:<7} {w:<6} {:<10} {:<10}",
            d.active, d.inactive
        );
    }
}

/// One service and its real servers (sorted unless `nosort`), without
/// titles.
pub fn service_entry(svc: &ListService, f: &ListFormat) -> String {
    let mut out = String::new();
    service_line(svc, f, &mut out);
    let mut dests = svc.dests.clone();
    if !f.nosort {
        sort_dests(&mut dests, |d| &d.config);
    }
    for d in &dests {
        dest_line(d, f, &mut out);
    }
    out
}

/// `ipvsadm -Ln [-t|-u|-f ...]` for one service: titles and the service.
pub fn list_service(svc: &ListService, f: &ListFormat) -> String {
    let mut out = title(f);
    out.push_str(&service_entry(svc, f));
    out
}

/// `ipvsadm -Ln` and its format options: version line, titles, services in
/// ipvsadm's order (unless `nosort`).
pub fn list_all(services: &[ListService], f: &ListFormat) -> String {
    let mut out = String::from(VERSION_LINE);
    out.push('\n');
    out.push_str(&title(f));
    let mut list = services.to_vec();
    if !f.nosort {
        sort_services(&mut list, |s| &s.config);
    }
    for s in &list {
        out.push_str(&service_entry(s, f));
    }
    out
}

/// `MM:SS` with minutes not capped (`133:35`).
pub fn expire_text(secs: u64) -> String {
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

/// `ipvsadm -Lnc [--persistent-conn]`.
pub fn list_connections(conns: &[ListConn], persistent_conn: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let cname = SockAddrDisplay(c.caddr, c.cport).to_string();
        let vname = SockAddrDisplay(c.vaddr, c.vport).to_string();
        let dname = SockAddrDisplay(c.daddr, c.dport).to_string();
        let exp = expire_text(c.expires_secs);
        match (&c.pe, persistent_conn) {
            // ipvsadm pads the destination to 16 and the engine name to 18
            // here, unlike its title line; reproduced as it prints.
            (Some((pe_name, pe_data)), true) => {
                let _ = writeln!(
                    out,
                    "{:<3} {exp:<6} {:<11} {cname:<18} {vname:<18} {dname:<16} {pe_name:<18} {pe_data}",
                    c.proto_name, c.state
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{:<3} {exp:<6} {:<11} {cname:<18} {vname:<18} {dname}",
                    c.proto_name, c.state
                );
            }
        }
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn list_timeout(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}
