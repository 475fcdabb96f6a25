//! Service and real-server specifications: the serde shape of a
//! `[[service]]` table and its `[[service.server]]` tables, shared by the
//! TOML configuration and the JSON control API, and their conversion to and
//! from the core's [`ServiceConfig`] and [`DestConfig`].
//!
//! The serde layer only checks shapes and types; everything that needs a
//! rule (addresses, scheduler names, flags, the object model's rules) is
//! checked by [`ServiceSpec::to_core`], whose errors name the offending key
//! by a [`Path`] so that the TOML layer can point at it in the file and the
//! API can name it in its error body.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use rvs_core::model::{
    DEFAULT_MH_TABLE_SIZE, DestConfig, Family, Forward, ModelError, Netmask, Protocol, SchedFlags,
    SchedulerKind, ServiceConfig, ServiceKey, SockAddrDisplay, Tunnel, TunnelCsum, TunnelType,
    validate_dest, validate_service,
};
use rvs_ipvsadm::addr::{AddrError, parse_addr_port};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Transport protocol of an address service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl From<ProtocolName> for Protocol {
    fn from(p: ProtocolName) -> Protocol {
        match p {
            ProtocolName::Tcp => Protocol::Tcp,
            ProtocolName::Udp => Protocol::Udp,
            ProtocolName::Sctp => Protocol::Sctp,
        }
    }
}

impl From<Protocol> for ProtocolName {
    fn from(p: Protocol) -> ProtocolName {
        match p {
            Protocol::Tcp => ProtocolName::Tcp,
            Protocol::Udp => ProtocolName::Udp,
            Protocol::Sctp => ProtocolName::Sctp,
        }
    }
}

/// Address family of a firewall-mark service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyName {
    /// IPv4 (the default).
    #[default]
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl From<FamilyName> for Family {
    fn from(f: FamilyName) -> Family {
        match f {
            FamilyName::Ipv4 => Family::V4,
            FamilyName::Ipv6 => Family::V6,
        }
    }
}

/// Forwarding method of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    /// NAT, the default: the userspace proxy sees both directions, as NAT does.
    #[default]
    Masq,
    /// Direct routing.
    Route,
    /// IP tunnelling (see `tun_type`, `tun_port`, `tun_csum`).
    Tunnel,
    /// The userspace L4 proxy.
    Proxy,
}

/// Tunnel encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunTypeName {
    /// IP in IP (the default).
    #[default]
    Ipip,
    /// Generic UDP encapsulation (needs `tun_port`).
    Gue,
    /// Generic routing encapsulation.
    Gre,
}

/// Tunnel checksum option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunCsumName {
    /// No checksum (the default).
    #[default]
    Nocsum,
    /// Checksum.
    Csum,
    /// Remote checksum offload (GUE only).
    Remcsum,
}

/// Whether the proxy data plane sends a PROXY protocol header to the real
/// servers of a service (an rvs setting; the kernel has no such thing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// No header (the default).
    #[default]
    Off,
    /// The text header, version 1.
    V1,
    /// The binary header, version 2.
    V2,
}

/// A persistence netmask as written: a dotted IPv4 mask (`"255.255.255.0"`)
/// or a prefix length (`24`, `64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetmaskSpec {
    /// A dotted IPv4 mask.
    Mask(String),
    /// A prefix length.
    Prefix(i64),
}

impl Serialize for NetmaskSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NetmaskSpec::Mask(m) => s.serialize_str(m),
            NetmaskSpec::Prefix(p) => s.serialize_i64(*p),
        }
    }
}

impl<'de> Deserialize<'de> for NetmaskSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NetmaskSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dotted IPv4 netmask or a prefix length")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NetmaskSpec, E> {
                Ok(NetmaskSpec::Mask(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NetmaskSpec, E> {
                Ok(NetmaskSpec::Prefix(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NetmaskSpec, E> {
                Ok(NetmaskSpec::Prefix(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}

fn default_scheduler() -> String {
    SchedulerKind::Wlc.name().to_string()
}

fn is_default_scheduler(s: &str) -> bool {
    s == SchedulerKind::Wlc.name()
}

fn default_mh_table_size() -> u32 {
    DEFAULT_MH_TABLE_SIZE
}

fn is_default_mh_table_size(n: &u32) -> bool {
    *n == DEFAULT_MH_TABLE_SIZE
}

fn default_weight() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A virtual service as the configuration and the API write it.
///
/// Exactly one of `address` (with `protocol`, default `tcp`) and `fwmark`
/// (with `family`, default `ipv4`) identifies the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Transport protocol of an address service; `tcp` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolName>,
    /// `VIP:PORT`, IPv6 in brackets; port 0 only for persistent services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Firewall mark (greater than zero) of a fwmark service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Address family of a fwmark service; `ipv4` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<FamilyName>,
    /// Scheduler name (`rr`, `wrr`, ..., `twos`); `wlc` when omitted.
    #[serde(
        default = "default_scheduler",
        skip_serializing_if = "is_default_scheduler"
    )]
    pub scheduler: String,
    /// Scheduler flags by name: `sh-fallback`, `sh-port`, `mh-fallback`,
    /// `mh-port`, `flag-1`, `flag-2`, `flag-3`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sched_flags: Vec<String>,
    /// Persistence timeout in seconds; not persistent when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<u32>,
    /// Persistence netmask; the family's full mask when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_netmask: Option<NetmaskSpec>,
    /// Persistence engine (only `sip` exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_engine: Option<String>,
    /// One-packet scheduling (UDP only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub one_packet: bool,
    /// Maglev table size, one of the kernel's primes; 4093 when omitted.
    #[serde(
        default = "default_mh_table_size",
        skip_serializing_if = "is_default_mh_table_size"
    )]
    pub mh_table_size: u32,
    /// PROXY protocol header towards the real servers (proxy data plane).
    #[serde(default, skip_serializing_if = "is_default")]
    pub proxy_protocol: ProxyProtocol,
    /// Real servers. In the API, `None` (the key absent) means "leave the
    /// service's servers as they are" where that distinction matters.
    #[serde(default, rename = "server", skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<ServerSpec>>,
    /// `[service.health]`: quorum, sorry server, passive detection and
    /// timing defaults of the checks. In an API edit, absent means "leave
    /// as it is".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthSpec>,
}

crate::health::with_timing! {
/// A real server as the configuration and the API write it, with its
/// health checks and the timing keys its checks inherit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// `RIP:PORT`, IPv6 in brackets. Without a port the service's port is
    /// used (which `route` and `tunnel` require anyway).
    pub address: String,
    /// Forwarding method; `masq` when omitted.
    #[serde(default, skip_serializing_if = "is_default")]
    pub method: MethodName,
    /// Weight 0..=65535; 1 when omitted. 0 quiesces the server.
    #[serde(default = "default_weight", skip_serializing_if = "is_one")]
    pub weight: u32,
    /// Upper connection threshold; 0 (the default) means none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub u_threshold: u32,
    /// Lower connection threshold; 0 (the default) means three quarters of
    /// the upper one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub l_threshold: u32,
    /// Tunnel encapsulation (`method = "tunnel"` only); `ipip` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tun_type: Option<TunTypeName>,
    /// GUE destination port (`tun_type = "gue"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tun_port: Option<u16>,
    /// Tunnel checksum option (`method = "tunnel"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tun_csum: Option<TunCsumName>,
    /// Command run when the server comes up (health checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<Vec<String>>,
    /// Command run when the server goes down (health checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<Vec<String>>,
    /// Health checks (`[[service.server.check]]`); none when absent. In an
    /// API edit, a server without any health key keeps its checks.
    #[serde(default, rename = "check", skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<crate::health::CheckSpec>>,
}
}

/// One step of a path to a key: a table key or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSeg {
    /// A key of a table.
    Key(&'static str),
    /// An element of an array.
    Index(usize),
}

/// Where in a document a value is, e.g. `server[1].weight`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<PathSeg>);

impl Path {
    /// The empty path (the document or object itself).
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// This path followed by a key.
    pub fn key(&self, k: &'static str) -> Path {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(k));
        p
    }

    /// This path followed by an array index.
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(i));
        p
    }

    /// This path followed by another.
    pub fn join(&self, rest: &Path) -> Path {
        let mut p = self.clone();
        p.0.extend_from_slice(&rest.0);
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A specification that breaks a rule, and the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// The offending key, relative to the service or server checked.
    pub path: Path,
    /// What is wrong.
    pub message: String,
}

impl SpecError {
    /// An error at a path.
    pub fn new(path: Path, message: impl Into<String>) -> SpecError {
        SpecError::at(path, message)
    }

    fn at(path: Path, message: impl Into<String>) -> SpecError {
        SpecError {
            path,
            message: message.into(),
        }
    }

    /// The same error with its path prefixed.
    pub fn under(self, prefix: &Path) -> SpecError {
        SpecError {
            path: prefix.join(&self.path),
            message: self.message,
        }
    }
}

fn addr_error(word: &str, e: AddrError) -> String {
    match e {
        AddrError::HostName(h) => {
            format!("host names are not resolved: `{h}'; write a numeric address")
        }
        AddrError::Malformed => {
            format!("invalid address `{word}': write IP:PORT, IPv6 in brackets ([2001:db8::1]:80)")
        }
    }
}

/// The names a scheduler-flag list may use, in the order they are documented.
pub const SCHED_FLAG_NAMES: [&str; 7] = [
    "sh-fallback",
    "sh-port",
    "mh-fallback",
    "mh-port",
    "flag-1",
    "flag-2",
    "flag-3",
];

/// Reads scheduler flag names against the scheduler they go with; the error
/// carries the index of the offending name.
pub fn parse_sched_flags(
    sched: SchedulerKind,
    names: &[String],
) -> Result<SchedFlags, (usize, String)> {
    let mut bits = 0u8;
    for (i, w) in names.iter().enumerate() {
        let (bit, needs) = match w.as_str() {
            "flag-1" => (SchedFlags::SCHED1, None),
            "flag-2" => (SchedFlags::SCHED2, None),
            "flag-3" => (SchedFlags::SCHED3, None),
            "sh-fallback" => (SchedFlags::SCHED1, Some(SchedulerKind::Sh)),
            "sh-port" => (SchedFlags::SCHED2, Some(SchedulerKind::Sh)),
            "mh-fallback" => (SchedFlags::SCHED1, Some(SchedulerKind::Mh)),
            "mh-port" => (SchedFlags::SCHED2, Some(SchedulerKind::Mh)),
            _ => {
                return Err((
                    i,
                    format!(
                        "unknown scheduler flag `{w}'; expected one of {}",
                        SCHED_FLAG_NAMES.join(", ")
                    ),
                ));
            }
        };
        if let Some(s) = needs
            && s != sched
        {
            return Err((
                i,
                format!("scheduler flag `{w}' needs scheduler {s}, not {sched}"),
            ));
        }
        bits |= bit;
    }
    Ok(SchedFlags(bits))
}

/// Reads a scheduler name.
pub fn parse_scheduler(name: &str) -> Result<SchedulerKind, String> {
    name.parse().map_err(|()| {
        let all: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "unknown scheduler `{name}'; expected one of {}",
            all.join(", ")
        )
    })
}

/// The key of a service's spec whose value breaks a model rule.
fn service_rule_key(e: &ModelError) -> &'static str {
    match e {
        ModelError::ZeroPortNonPersistent => "address",
        ModelError::OnePacketNotUdp => "one_packet",
        ModelError::BadSchedFlag(_) => "sched_flags",
        ModelError::BadPersistence(_) => "persistence_timeout",
        ModelError::BadNetmask(_) => "persistence_netmask",
        ModelError::BadMhTableSize(_) => "mh_table_size",
        _ => "address",
    }
}

/// The key of a server's spec whose value breaks a model rule.
fn server_rule_key(e: &ModelError) -> &'static str {
    match e {
        ModelError::MixedFamily => "address",
        ModelError::BadWeight => "weight",
        ModelError::ThresholdRange => "l_threshold",
        ModelError::GueNeedsPort => "tun_type",
        ModelError::TunnelPortNotGue => "tun_port",
        ModelError::TunnelCsum(..) => "tun_csum",
        _ => "address",
    }
}

impl ServiceSpec {
    /// The identity of the service, checked.
    pub fn key(&self) -> Result<ServiceKey, SpecError> {
        let root = Path::root();
        match (&self.address, self.fwmark) {
            (Some(_), Some(_)) => Err(SpecError::at(
                root.key("fwmark"),
                "a service has either `address` or `fwmark`, not both",
            )),
            (None, None) => Err(SpecError::at(
                root,
                "a service needs `address` (with `protocol`) or `fwmark`",
            )),
            (Some(word), None) => {
                if self.family.is_some() {
                    return Err(SpecError::at(
                        root.key("family"),
                        "`family` is for fwmark services; an address service takes its address's family",
                    ));
                }
                let (addr, port) = parse_addr_port(word)
                    .map_err(|e| SpecError::at(root.key("address"), addr_error(word, e)))?;
                let port = port.ok_or_else(|| {
                    SpecError::at(
                        root.key("address"),
                        format!("service address `{word}' needs a port (VIP:PORT)"),
                    )
                })?;
                Ok(ServiceKey::Addr {
                    proto: self.protocol.unwrap_or_default().into(),
                    addr,
                    port,
                })
            }
            (None, Some(mark)) => {
                if self.protocol.is_some() {
                    return Err(SpecError::at(
                        root.key("protocol"),
                        "`protocol` is for address services; a fwmark service takes every protocol the mark covers",
                    ));
                }
                if mark == 0 {
                    return Err(SpecError::at(
                        root.key("fwmark"),
                        "the firewall mark must be greater than zero",
                    ));
                }
                Ok(ServiceKey::FwMark {
                    family: self.family.unwrap_or_default().into(),
                    mark,
                })
            }
        }
    }

    /// The service's attributes as the core takes them (servers aside).
    pub fn to_service_config(&self) -> Result<ServiceConfig, SpecError> {
        let root = Path::root();
        let key = self.key()?;
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = parse_scheduler(&self.scheduler)
            .map_err(|m| SpecError::at(root.key("scheduler"), m))?;
        cfg.sched_flags = parse_sched_flags(cfg.scheduler, &self.sched_flags)
            .map_err(|(i, m)| SpecError::at(root.key("sched_flags").index(i), m))?;
        cfg.persistence = self.persistence_timeout;
        if let Some(m) = &self.persistence_netmask {
            cfg.netmask = netmask(key.family(), m)
                .map_err(|msg| SpecError::at(root.key("persistence_netmask"), msg))?;
        }
        if let Some(pe) = &self.persistence_engine {
            if pe != "sip" {
                return Err(SpecError::at(
                    root.key("persistence_engine"),
                    format!("unknown persistence engine `{pe}'; only `sip' exists"),
                ));
            }
            cfg.pe_name = Some(pe.clone());
        }
        cfg.one_packet = self.one_packet;
        cfg.mh_table_size = self.mh_table_size;
        validate_service(&cfg)
            .map_err(|e| SpecError::at(root.key(service_rule_key(&e)), e.to_string()))?;
        Ok(cfg)
    }

    /// The service and its servers as the core takes them, with every rule
    /// checked (duplicate servers included). No servers when `server` is absent.
    pub fn to_core(&self) -> Result<(ServiceConfig, Vec<DestConfig>), SpecError> {
        let cfg = self.to_service_config()?;
        let mut dests = Vec::new();
        let mut seen = HashSet::new();
        for (i, s) in self.servers.iter().flatten().enumerate() {
            let at = Path::root().key("server").index(i);
            let d = s.to_core(&cfg.key).map_err(|e| e.under(&at))?;
            if !seen.insert((d.addr, d.port)) {
                return Err(SpecError::at(
                    at.key("address"),
                    format!(
                        "duplicate server {} in this service",
                        SockAddrDisplay(d.addr, d.port)
                    ),
                ));
            }
            dests.push(d);
        }
        Ok((cfg, dests))
    }

    /// The spec of a core service; `servers` as given (`None` leaves the
    /// key out). The proxy protocol is not a core setting, so it is passed.
    pub fn from_core(
        cfg: &ServiceConfig,
        servers: Option<&[DestConfig]>,
        proxy_protocol: ProxyProtocol,
    ) -> ServiceSpec {
        let (protocol, address, fwmark, family) = match cfg.key {
            ServiceKey::Addr { proto, addr, port } => (
                Some(proto.into()),
                Some(SockAddrDisplay(addr, port).to_string()),
                None,
                None,
            ),
            ServiceKey::FwMark { family, mark } => (
                None,
                None,
                Some(mark),
                Some(match family {
                    Family::V4 => FamilyName::Ipv4,
                    Family::V6 => FamilyName::Ipv6,
                }),
            ),
        };
        let persistence_netmask = if cfg.netmask.is_full() {
            None
        } else {
            Some(match cfg.netmask {
                Netmask::V4(m) => NetmaskSpec::Mask(Ipv4Addr::from(m).to_string()),
                Netmask::V6(p) => NetmaskSpec::Prefix(i64::from(p)),
            })
        };
        ServiceSpec {
            protocol,
            address,
            fwmark,
            family,
            scheduler: cfg.scheduler.name().to_string(),
            sched_flags: cfg
                .sched_flags
                .names(cfg.scheduler)
                .into_iter()
                .map(String::from)
                .collect(),
            persistence_timeout: cfg.persistence,
            persistence_netmask,
            persistence_engine: cfg.pe_name.clone(),
            one_packet: cfg.one_packet,
            mh_table_size: cfg.mh_table_size,
            proxy_protocol,
            servers: servers.map(|ds| ds.iter().map(ServerSpec::from_core).collect()),
            health: None,
        }
    }

    /// The health settings of the service and its servers, checked (paths
    /// relative to the service). The service's own rules are checked by
    /// [`ServiceSpec::to_core`].
    pub fn health_plan(&self) -> Result<crate::health::HealthPlan, SpecError> {
        let key = self.key()?;
        let service = match &self.health {
            Some(h) => h
                .settings(&key)
                .map_err(|e| e.under(&Path::root().key("health")))?,
            None => crate::health::ServiceHealthSettings::default(),
        };
        let mut servers = Vec::new();
        for (i, s) in self.servers.iter().flatten().enumerate() {
            let at = Path::root().key("server").index(i);
            let (addr, port) = s.addr_port(&key).map_err(|e| e.under(&at))?;
            let settings = crate::health::server_settings(self.health.as_ref(), s)
                .map_err(|e| e.under(&at))?;
            servers.push((std::net::SocketAddr::new(addr, port), settings));
        }
        Ok(crate::health::HealthPlan { service, servers })
    }
}

/// Reads a persistence netmask for a family.
fn netmask(family: Family, m: &NetmaskSpec) -> Result<Netmask, String> {
    match (family, m) {
        (Family::V4, NetmaskSpec::Mask(text)) => text
            .parse::<Ipv4Addr>()
            .map(|a| Netmask::V4(u32::from(a)))
            .map_err(|_| {
                format!("invalid netmask `{text}': write a dotted mask or a prefix length")
            }),
        (Family::V4, NetmaskSpec::Prefix(p)) => match u32::try_from(*p) {
            Ok(0) => Ok(Netmask::V4(0)),
            Ok(p @ 1..=32) => Ok(Netmask::V4(u32::MAX << (32 - p))),
            _ => Err(format!("invalid IPv4 prefix length {p}: use 0..=32")),
        },
        (Family::V6, NetmaskSpec::Prefix(p)) => match u8::try_from(*p) {
            Ok(p @ 1..=128) => Ok(Netmask::V6(p)),
            _ => Err(format!("invalid IPv6 prefix length {p}: use 1..=128")),
        },
        (Family::V6, NetmaskSpec::Mask(text)) => Err(format!(
            "invalid netmask `{text}' for an IPv6 service: write a prefix length (1..=128)"
        )),
    }
}

impl ServerSpec {
    /// A masq server with weight 1 at an address.
    pub fn new(address: impl Into<String>) -> ServerSpec {
        ServerSpec {
            address: address.into(),
            method: MethodName::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: None,
            tun_port: None,
            tun_csum: None,
            notify_up: None,
            notify_down: None,
            check: None,
            delay_loop: None,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            rise: None,
            fall: None,
            alpha: None,
            warmup: None,
        }
    }

    /// Whether any health key (checks, timing, notify) is written.
    pub fn has_health_keys(&self) -> bool {
        self.check.is_some()
            || self.notify_up.is_some()
            || self.notify_down.is_some()
            || !self.timing().is_empty()
    }

    /// The same server with the health keys of `other`.
    pub fn with_health_of(&self, other: &ServerSpec) -> ServerSpec {
        let mut s = other.clone();
        s.address = self.address.clone();
        s.method = self.method;
        s.weight = self.weight;
        s.u_threshold = self.u_threshold;
        s.l_threshold = self.l_threshold;
        s.tun_type = self.tun_type;
        s.tun_port = self.tun_port;
        s.tun_csum = self.tun_csum;
        s
    }

    /// The address and port of the server (the port defaults to the
    /// service's).
    pub fn addr_port(&self, service: &ServiceKey) -> Result<(IpAddr, u16), SpecError> {
        let at = Path::root().key("address");
        let (addr, port) = parse_addr_port(&self.address)
            .map_err(|e| SpecError::at(at.clone(), addr_error(&self.address, e)))?;
        Ok((addr, port.unwrap_or(service.port())))
    }

    /// The server as the core takes it, checked against its service.
    pub fn to_core(&self, service: &ServiceKey) -> Result<DestConfig, SpecError> {
        let root = Path::root();
        let (addr, port) = self.addr_port(service)?;
        let tunnel = self.method == MethodName::Tunnel;
        for (set, key) in [
            (self.tun_type.is_some(), "tun_type"),
            (self.tun_port.is_some(), "tun_port"),
            (self.tun_csum.is_some(), "tun_csum"),
        ] {
            if set && !tunnel {
                return Err(SpecError::at(
                    root.key(key),
                    format!("`{key}' is only for servers with method = \"tunnel\""),
                ));
            }
        }
        // Direct routing and tunnelling cannot change the port: the packet
        // reaches the server as the client sent it.
        if matches!(self.method, MethodName::Route | MethodName::Tunnel)
            && !service.is_fwmark()
            && port != service.port()
        {
            return Err(SpecError::at(
                root.key("address"),
                format!(
                    "a {} server keeps the service port {}; omit the port or write it",
                    if tunnel { "tunnel" } else { "route" },
                    service.port()
                ),
            ));
        }
        let forward = match self.method {
            MethodName::Masq => Forward::Masq,
            MethodName::Route => Forward::Route,
            MethodName::Proxy => Forward::Proxy,
            MethodName::Tunnel => Forward::Tunnel(Tunnel {
                kind: match self.tun_type.unwrap_or_default() {
                    TunTypeName::Ipip => TunnelType::Ipip,
                    TunTypeName::Gue => TunnelType::Gue,
                    TunTypeName::Gre => TunnelType::Gre,
                },
                port: self.tun_port.unwrap_or(0),
                csum: match self.tun_csum.unwrap_or_default() {
                    TunCsumName::Nocsum => TunnelCsum::NoCsum,
                    TunCsumName::Csum => TunnelCsum::Csum,
                    TunCsumName::Remcsum => TunnelCsum::RemCsum,
                },
            }),
        };
        let d = DestConfig {
            addr,
            port,
            forward,
            weight: self.weight,
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
        };
        validate_dest(service, &d)
            .map_err(|e| SpecError::at(root.key(server_rule_key(&e)), e.to_string()))?;
        Ok(d)
    }

    /// The spec of a core server. `Local` (which only the kernel assigns)
    /// is written as `route`, as `ipvsadm -S` writes it `-g`.
    pub fn from_core(d: &DestConfig) -> ServerSpec {
        let mut s = ServerSpec::new(SockAddrDisplay(d.addr, d.port).to_string());
        s.weight = d.weight;
        s.u_threshold = d.u_threshold;
        s.l_threshold = d.l_threshold;
        s.method = match d.forward {
            Forward::Masq => MethodName::Masq,
            Forward::Route | Forward::Local => MethodName::Route,
            Forward::Proxy => MethodName::Proxy,
            Forward::Tunnel(t) => {
                s.tun_type = Some(match t.kind {
                    TunnelType::Ipip => TunTypeName::Ipip,
                    TunnelType::Gue => TunTypeName::Gue,
                    TunnelType::Gre => TunTypeName::Gre,
                });
                s.tun_port = (t.port != 0).then_some(t.port);
                s.tun_csum = (t.csum != TunnelCsum::NoCsum).then_some(match t.csum {
                    TunnelCsum::NoCsum => TunCsumName::Nocsum,
                    TunnelCsum::Csum => TunCsumName::Csum,
                    TunnelCsum::RemCsum => TunCsumName::Remcsum,
                });
                MethodName::Tunnel
            }
        };
        s
    }
}
