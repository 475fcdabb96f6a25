//! Listings: services, servers and connections as the director shows them,
//! with counters and rates.

use std::net::SocketAddr;

use rvs_core::director::{ConnSnapshot, DestSnapshot, ServiceSnapshot};
use rvs_core::stats;
use serde::{Deserialize, Serialize};

use crate::ids::{ServerId, ServiceId};
use rvs_config::spec::{ProxyProtocol, ServerSpec, ServiceSpec};

/// Counters since the last zeroing (`ipvsadm -L --stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client.
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

impl From<stats::Counters> for Counters {
    fn from(c: stats::Counters) -> Self {
        Counters {
            conns: c.conns,
            inpkts: c.inpkts,
            outpkts: c.outpkts,
            inbytes: c.inbytes,
            outbytes: c.outbytes,
        }
    }
}

/// Estimated rates per second (`ipvsadm -L --rate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

impl From<stats::Rates> for Rates {
    fn from(r: stats::Rates) -> Self {
        Rates {
            cps: r.cps,
            inpps: r.inpps,
            outpps: r.outpps,
            inbps: r.inbps,
            outbps: r.outbps,
        }
    }
}

/// A real server with its connection counts and statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerStatus {
    /// Its identity in paths.
    pub id: ServerId,
    /// Its attributes (the weight is the current one).
    pub server: ServerSpec,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn: persistence templates bound to it.
    pub persistent: u32,
    /// Whether its upper threshold has stopped scheduling to it.
    pub overloaded: bool,
    /// Counters.
    pub stats: Counters,
    /// Rates.
    pub rates: Rates,
}

impl From<&DestSnapshot> for ServerStatus {
    fn from(d: &DestSnapshot) -> Self {
        ServerStatus {
            id: ServerId {
                addr: d.config.addr,
                port: d.config.port,
            },
            server: ServerSpec::from_core(&d.config),
            active: d.active,
            inactive: d.inactive,
            persistent: d.persistent,
            overloaded: d.overloaded,
            stats: d.stats.into(),
            rates: d.rates.into(),
        }
    }
}

/// A service with its servers and statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceStatus {
    /// Its identity in paths.
    pub id: ServiceId,
    /// Its attributes (no `server` list: see `servers`).
    pub service: ServiceSpec,
    /// Counters.
    pub stats: Counters,
    /// Rates.
    pub rates: Rates,
    /// Its servers in list order (newest first, as the director lists them).
    pub servers: Vec<ServerStatus>,
}

impl ServiceStatus {
    /// The status of a director snapshot; the proxy protocol is not a
    /// director setting, so the daemon passes it.
    pub fn from_snapshot(s: &ServiceSnapshot, proxy_protocol: ProxyProtocol) -> ServiceStatus {
        ServiceStatus {
            id: ServiceId(s.config.key),
            service: ServiceSpec::from_core(&s.config, None, proxy_protocol),
            stats: s.stats.into(),
            rates: s.rates.into(),
            servers: s.dests.iter().map(ServerStatus::from).collect(),
        }
    }
}

/// `GET /v1/services`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceList {
    /// Services in creation order.
    pub services: Vec<ServiceStatus>,
}

/// A connection or persistence template (`ipvsadm -L -c`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnStatus {
    /// IP protocol number (0 for a fwmark service's template).
    pub protocol: u8,
    /// Whether it is a persistence template.
    pub template: bool,
    /// Client address and port (a template: the client network).
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virtual_addr: SocketAddr,
    /// Real server address and port.
    pub server: SocketAddr,
    /// State name as `ipvsadm -L -c` prints it.
    pub state: String,
    /// Milliseconds until it expires.
    pub expires_ms: u64,
    /// The kernel's connection flags.
    pub flags: u16,
}

impl From<&ConnSnapshot> for ConnStatus {
    fn from(c: &ConnSnapshot) -> Self {
        ConnStatus {
            protocol: c.proto,
            template: c.template,
            client: SocketAddr::new(c.caddr, c.cport),
            virtual_addr: SocketAddr::new(c.vaddr, c.vport),
            server: SocketAddr::new(c.daddr, c.dport),
            state: c.state.to_string(),
            expires_ms: c.expires_ms,
            flags: c.flags,
        }
    }
}

/// `GET /v1/connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnList {
    /// Connections and templates.
    pub connections: Vec<ConnStatus>,
}
