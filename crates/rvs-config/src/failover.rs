//! `[[vrrp_instance]]`: director failover with VRRP, in keepalived's words
//! where keepalived has one (`virtual_router_id`, `advert_int`,
//! `virtual_ipaddress`, `nopreempt`, `unicast_peer`, `notify_master`...).
//!
//! ```toml
//! [[vrrp_instance]]
//! name = "VI_1"
//! interface = "eth0"
//! virtual_router_id = 51
//! priority = 150
//! advert_int = 0.2            # seconds; fractions allowed (VRRPv3)
//! virtual_ipaddress = ["203.0.113.10", "203.0.113.11/24"]
//! notify_master = ["/usr/local/bin/became-master", "VI_1"]
//!
//! [[vrrp_instance.track_interface]]
//! name = "eth1"
//! weight = -20
//! ```
//!
//! One address family per instance, as in keepalived: an instance whose
//! `virtual_ipaddress` are IPv6 runs VRRPv3 over IPv6 (ff02::12, adverts
//! from the interface's link-local address); IPv4 and IPv6 addresses in one
//! instance are refused.

use std::net::{IpAddr, Ipv4Addr};

use rvs_core::vrrp::{GarpConfig, TrackConfig, VrrpConfig};
use serde::{Deserialize, Serialize};

use crate::settings::check_interface_name;
use crate::spec::Path;

/// A duration in seconds written as an integer or a decimal (`1`, `0.2`),
/// kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seconds(pub u64);

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            s.serialize_u64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
            return Err(serde::de::Error::custom(
                "a number of seconds between 0 and 86400 is expected",
            ));
        }
        Ok(Seconds((v * 1000.0).round() as u64))
    }
}

/// A command: an argv array, or one string split at whitespace (as
/// keepalived splits its notify strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Argv {
    /// `"/path/script arg"`.
    Line(String),
    /// `["/path/script", "arg"]`.
    List(Vec<String>),
}

impl Argv {
    /// The argv.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Argv::Line(s) => s.split_whitespace().map(str::to_string).collect(),
            Argv::List(v) => v.clone(),
        }
    }
}

/// `[[vrrp_instance.track_interface]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackInterface {
    /// The interface.
    pub name: String,
    /// Added to the priority while up (> 0) or while down (< 0); 0: FAULT
    /// while down.
    #[serde(default)]
    pub weight: i32,
    /// Swap up and down.
    #[serde(default)]
    pub reverse: bool,
}

/// `[[vrrp_instance.track_service]]`: a virtual service is up while the
/// weights of its servers add up to `quorum` (a server taken out has
/// weight 0, as ipvsadm and health checkers leave it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackService {
    /// `tcp` (default), `udp` or `sctp`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// The virtual address and port, `203.0.113.10:80` or `[2001:db8::10]:80`.
    pub address: String,
    /// Least total weight of the servers for the service to count as up
    /// (default 1).
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// As for `track_interface`.
    #[serde(default)]
    pub weight: i32,
    /// Swap up and down.
    #[serde(default)]
    pub reverse: bool,
}

fn default_protocol() -> String {
    "tcp".into()
}
fn default_quorum() -> u32 {
    1
}

/// `[[vrrp_instance]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstanceSpec {
    /// The instance name (notify arguments, logs).
    pub name: String,
    /// Interface for adverts, gratuitous ARP and the virtual addresses.
    pub interface: String,
    /// VRID, 1..=255.
    pub virtual_router_id: u8,
    /// 1..=255 (255: the address owner); default 100.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Seconds between adverts; default 1.
    #[serde(default = "default_advert_int")]
    pub advert_int: Seconds,
    /// `ADDR`, `ADDR/PREFIX` (default prefix 32), either followed by
    /// `dev IFNAME` to put the address on another interface than the
    /// instance's (keepalived's form, e.g. a NAT gateway address on the
    /// private segment).
    pub virtual_ipaddress: Vec<String>,
    /// Do not take over from a lower-priority master.
    #[serde(default)]
    pub nopreempt: bool,
    /// Seconds after start-up during which a lower master is not preempted.
    #[serde(default)]
    pub preempt_delay: Seconds,
    /// Accept packets to the virtual addresses while master (non-owner).
    #[serde(default)]
    pub accept: bool,
    /// Source of the adverts (default: the interface's first IPv4 address,
    /// or its link-local address for an IPv6 instance).
    #[serde(default)]
    pub unicast_src_ip: Option<IpAddr>,
    /// Send adverts to these peers instead of 224.0.0.18 / ff02::12.
    #[serde(default)]
    pub unicast_peer: Vec<IpAddr>,
    /// 3 (default) or 2.
    #[serde(default = "default_version")]
    pub version: u8,
    /// Interfaces tracked.
    #[serde(default)]
    pub track_interface: Vec<TrackInterface>,
    /// Virtual services tracked (their quorum).
    #[serde(default)]
    pub track_service: Vec<TrackService>,
    /// Run on entering MASTER.
    #[serde(default)]
    pub notify_master: Option<Argv>,
    /// Run on entering BACKUP.
    #[serde(default)]
    pub notify_backup: Option<Argv>,
    /// Run on entering FAULT.
    #[serde(default)]
    pub notify_fault: Option<Argv>,
    /// Run on stopping.
    #[serde(default)]
    pub notify_stop: Option<Argv>,
    /// Run on every change with `INSTANCE NAME STATE PRIORITY` appended.
    #[serde(default)]
    pub notify: Option<Argv>,
    /// Seconds after becoming master before the second gratuitous ARP
    /// burst (0: none); default 5.
    #[serde(default = "default_garp_master_delay")]
    pub garp_master_delay: Seconds,
    /// Gratuitous ARPs per address and burst; default 5.
    #[serde(default = "default_garp_repeat")]
    pub garp_master_repeat: u32,
    /// Seconds between refresh bursts while master (0: off).
    #[serde(default)]
    pub garp_master_refresh: Seconds,
    /// Gratuitous ARPs per address in a refresh burst; default 1.
    #[serde(default = "default_refresh_repeat")]
    pub garp_master_refresh_repeat: u32,
    /// Gratuitous ARPs per address when a lower master is heard; default 5.
    #[serde(default = "default_garp_repeat")]
    pub garp_lower_prio_repeat: u32,
    /// Seconds between two gratuitous ARPs (keepalived's global
    /// `vrrp_garp_interval`); default 0.
    #[serde(default)]
    pub garp_interval: Seconds,
    /// Do not answer a lower-priority master's advert.
    #[serde(default)]
    pub lower_prio_no_advert: bool,
    /// Accept adverts whose address list differs from ours.
    #[serde(default)]
    pub skip_check_adv_addr: bool,
    /// VRRPv2 authentication (keepalived's `authentication { auth_type }`):
    /// `"PASS"` (simple text password, RFC 2338 type 1). `"AH"` is refused.
    #[serde(default)]
    pub auth_type: Option<String>,
    /// The `PASS` password: 1 to 8 bytes, sent zero padded to 8.
    #[serde(default)]
    pub auth_pass: Option<String>,
}

fn default_priority() -> u8 {
    100
}
fn default_advert_int() -> Seconds {
    Seconds(1000)
}
fn default_version() -> u8 {
    3
}
fn default_garp_master_delay() -> Seconds {
    Seconds(5000)
}
fn default_garp_repeat() -> u32 {
    5
}
fn default_refresh_repeat() -> u32 {
    1
}

/// A checked `[[vrrp_instance]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    /// Name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// The state machine's configuration; `primary_addr` is
    /// `unicast_src_ip` or unspecified (0.0.0.0: the daemon reads the
    /// interface's address); `track` holds the tracked interfaces, then the
    /// tracked services, in order.
    pub vrrp: VrrpConfig,
    /// The tracked interfaces (the first entries of `vrrp.track`).
    pub track_interfaces: Vec<String>,
    /// The tracked services and their quorum (the next entries).
    pub track_services: Vec<(rvs_core::model::ServiceKey, u32)>,
    /// Prefix length of each virtual address.
    pub vip_prefix: Vec<u8>,
    /// The interface each virtual address is put on and announced from:
    /// the entry's `dev`, else the instance's interface.
    pub vip_interfaces: Vec<String>,
    /// 2 or 3.
    pub version: u8,
    /// Unicast peers (of the instance's family).
    pub unicast_peers: Vec<IpAddr>,
    /// `garp_interval` in milliseconds.
    pub garp_interval_ms: u64,
    /// Notify argvs: master, backup, fault, stop, any.
    pub notify: [Option<Vec<String>>; 5],
    /// VRRPv2 `auth_type = "PASS"`: the 8 bytes of authentication data
    /// (the password, zero padded) sent and required.
    pub auth_pass: Option<[u8; rvs_wire::vrrp::V2_AUTH_LEN]>,
}

/// One `virtual_ipaddress` entry: `ADDR[/PREFIX] [dev IFNAME]`, as
/// keepalived writes it (`"198.51.100.1/24 dev eth1"`). Returns the
/// address, its prefix length and the interface named by `dev`, if any.
fn parse_vip(s: &str) -> Result<(IpAddr, u8, Option<String>), String> {
    let mut words = s.split_whitespace();
    let first = words.next().unwrap_or("");
    let (a, p) = match first.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (first, None),
    };
    let ip: IpAddr = a
        .parse()
        .map_err(|_| format!("{s:?} is not an address (ADDR or ADDR/PREFIX)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        None => max,
    };
    let mut dev = None;
    while let Some(word) = words.next() {
        match word {
            "dev" => {
                let name = words
                    .next()
                    .ok_or_else(|| format!("{s:?}: dev needs an interface name"))?;
                check_interface_name(name).map_err(|m| format!("{s:?}: {m}"))?;
                if dev.replace(name.to_string()).is_some() {
                    return Err(format!("{s:?}: dev is given twice"));
                }
            }
            other => {
                return Err(format!(
                    "{s:?}: {other:?} is not supported here (ADDR[/PREFIX] [dev IFNAME])"
                ));
            }
        }
    }
    Ok((ip, prefix, dev))
}

impl VrrpInstanceSpec {
    /// The checked instance, or the key at fault (relative to the
    /// instance's table) and what is wrong.
    pub fn to_instance(&self) -> Result<VrrpInstance, (Path, String)> {
        let at = Path::root();
        if self.name.is_empty() {
            return Err((at.key("name"), "name must not be empty".into()));
        }
        check_interface_name(&self.interface).map_err(|m| (at.key("interface"), m))?;
        if self.virtual_router_id == 0 {
            return Err((
                at.key("virtual_router_id"),
                "virtual_router_id must be 1..255".into(),
            ));
        }
        if self.priority == 0 {
            return Err((at.key("priority"), "priority must be 1..255".into()));
        }
        if self.version != 2 && self.version != 3 {
            return Err((at.key("version"), "version must be 2 or 3".into()));
        }
        let int = self.advert_int.0;
        if self.version == 3 && !(10..=40_950).contains(&int) {
            return Err((
                at.key("advert_int"),
                "advert_int must be between 0.01 and 40.95 seconds (VRRPv3 centiseconds)".into(),
            ));
        }
        if self.version == 2 && (int == 0 || !int.is_multiple_of(1000) || int > 255_000) {
            return Err((
                at.key("advert_int"),
                "advert_int must be whole seconds 1..255 with version = 2".into(),
            ));
        }
        if !int.is_multiple_of(10) {
            return Err((
                at.key("advert_int"),
                "advert_int is sent in centiseconds: use a multiple of 0.01".into(),
            ));
        }
        if self.virtual_ipaddress.is_empty() {
            return Err((
                at.key("virtual_ipaddress"),
                "virtual_ipaddress needs at least one address".into(),
            ));
        }
        let mut vips = Vec::new();
        let mut prefixes = Vec::new();
        let mut vip_interfaces = Vec::new();
        for (i, s) in self.virtual_ipaddress.iter().enumerate() {
            let (ip, p, dev) =
                parse_vip(s).map_err(|m| (at.key("virtual_ipaddress").index(i), m))?;
            if let Some(first) = vips.first()
                && family(first) != family(&ip)
            {
                return Err((
                    at.key("virtual_ipaddress").index(i),
                    format!(
                        "{ip} is {} but {first} is {}: one address family per instance \
                         (as keepalived); put the {} addresses in a [[vrrp_instance]] of their own",
                        family(&ip),
                        family(first),
                        family(&ip)
                    ),
                ));
            }
            if vips.contains(&ip) {
                return Err((
                    at.key("virtual_ipaddress").index(i),
                    format!("{ip} is listed twice"),
                ));
            }
            vips.push(ip);
            prefixes.push(p);
            vip_interfaces.push(dev.unwrap_or_else(|| self.interface.clone()));
        }
        if self.virtual_ipaddress.len() > 255 {
            return Err((
                at.key("virtual_ipaddress"),
                "at most 255 virtual addresses per instance".into(),
            ));
        }
        let mut track = Vec::new();
        for (i, t) in self.track_interface.iter().enumerate() {
            let p = at.key("track_interface").index(i);
            check_interface_name(&t.name).map_err(|m| (p.key("name"), m))?;
            if !(-253..=253).contains(&t.weight) {
                return Err((p.key("weight"), "weight must be -253..253".into()));
            }
            track.push(TrackConfig {
                name: format!("interface {}", t.name),
                weight: t.weight,
                reverse: t.reverse,
                initially_up: true,
            });
        }
        let mut track_services = Vec::new();
        for (i, t) in self.track_service.iter().enumerate() {
            let p = at.key("track_service").index(i);
            let proto = match t.protocol.as_str() {
                "tcp" => rvs_core::model::Protocol::Tcp,
                "udp" => rvs_core::model::Protocol::Udp,
                "sctp" => rvs_core::model::Protocol::Sctp,
                other => {
                    return Err((
                        p.key("protocol"),
                        format!("protocol {other:?}: use tcp, udp or sctp"),
                    ));
                }
            };
            let sa: std::net::SocketAddr = t.address.parse().map_err(|_| {
                (
                    p.key("address"),
                    format!("{:?} is not ADDRESS:PORT", t.address),
                )
            })?;
            if !(-253..=253).contains(&t.weight) {
                return Err((p.key("weight"), "weight must be -253..253".into()));
            }
            let key = rvs_core::model::ServiceKey::Addr {
                proto,
                addr: sa.ip(),
                port: sa.port(),
            };
            track.push(TrackConfig {
                name: format!("service {key}"),
                weight: t.weight,
                reverse: t.reverse,
                // Down until the first look at the running rules.
                initially_up: false,
            });
            track_services.push((key, t.quorum));
        }
        let v6 = vips.first().is_some_and(IpAddr::is_ipv6);
        let fam = if v6 { "IPv6" } else { "IPv4" };
        if v6 && self.version == 2 {
            return Err((
                at.key("version"),
                "VRRP version 2 is IPv4 only (RFC 3768): use version = 3 for IPv6 addresses".into(),
            ));
        }
        if let Some(src) = self.unicast_src_ip
            && src.is_ipv6() != v6
        {
            return Err((
                at.key("unicast_src_ip"),
                format!("{src} is not {fam}, the family of virtual_ipaddress"),
            ));
        }
        for (i, peer) in self.unicast_peer.iter().enumerate() {
            if peer.is_ipv6() != v6 {
                return Err((
                    at.key("unicast_peer").index(i),
                    format!("{peer} is not {fam}, the family of virtual_ipaddress"),
                ));
            }
            if peer.is_multicast() || peer.is_unspecified() {
                return Err((
                    at.key("unicast_peer").index(i),
                    format!("{peer} is not a unicast address"),
                ));
            }
        }
        let auth_pass = self.auth()?;
        let primary = self.unicast_src_ip.unwrap_or(if v6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        let mut vrrp = VrrpConfig::new(self.virtual_router_id, primary, vips);
        vrrp.priority = self.priority;
        vrrp.advert_int_ms = int as u32;
        vrrp.preempt = !self.nopreempt;
        vrrp.preempt_delay_ms = self.preempt_delay.0;
        vrrp.accept = self.accept;
        vrrp.skip_check_adv_addr = self.skip_check_adv_addr;
        vrrp.lower_prio_no_advert = self.lower_prio_no_advert;
        // Unicast adverts may cross routers: keepalived does not insist on
        // TTL 255 from unicast peers.
        vrrp.check_ttl = self.unicast_peer.is_empty();
        vrrp.garp = GarpConfig {
            master_delay_ms: self.garp_master_delay.0,
            master_repeat: self.garp_master_repeat,
            master_refresh_ms: self.garp_master_refresh.0,
            master_refresh_repeat: self.garp_master_refresh_repeat,
            lower_prio_repeat: self.garp_lower_prio_repeat,
        };
        vrrp.track = track;
        let argv = |a: &Option<Argv>, key: &'static str| -> Result<_, (Path, String)> {
            match a {
                None => Ok(None),
                Some(a) => {
                    let v = a.to_vec();
                    if v.is_empty() || v[0].is_empty() {
                        Err((at.key(key), format!("{key} needs a command")))
                    } else {
                        Ok(Some(v))
                    }
                }
            }
        };
        Ok(VrrpInstance {
            name: self.name.clone(),
            interface: self.interface.clone(),
            vrrp,
            track_interfaces: self
                .track_interface
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            track_services,
            vip_prefix: prefixes,
            vip_interfaces,
            version: self.version,
            unicast_peers: self.unicast_peer.clone(),
            garp_interval_ms: self.garp_interval.0,
            notify: [
                argv(&self.notify_master, "notify_master")?,
                argv(&self.notify_backup, "notify_backup")?,
                argv(&self.notify_fault, "notify_fault")?,
                argv(&self.notify_stop, "notify_stop")?,
                argv(&self.notify, "notify")?,
            ],
            auth_pass,
        })
    }

    /// `auth_type` / `auth_pass`, checked: the authentication data to send
    /// and require, if any.
    fn auth(&self) -> Result<Option<[u8; rvs_wire::vrrp::V2_AUTH_LEN]>, (Path, String)> {
        let at = Path::root();
        let Some(kind) = &self.auth_type else {
            if self.auth_pass.is_some() {
                return Err((
                    at.key("auth_pass"),
                    "auth_pass needs auth_type = \"PASS\"".into(),
                ));
            }
            return Ok(None);
        };
        match kind.to_ascii_uppercase().as_str() {
            "PASS" => {}
            "AH" => {
                return Err((
                    at.key("auth_type"),
                    "auth_type = \"AH\" (IPsec AH) is deprecated: RFC 3768 removed VRRP \
                     authentication and keepalived discourages AH; it is not supported. \
                     Use \"PASS\" or no authentication"
                        .into(),
                ));
            }
            other => {
                return Err((
                    at.key("auth_type"),
                    format!("auth_type {other:?}: use \"PASS\" (\"AH\" is not supported)"),
                ));
            }
        }
        if self.version != 2 {
            return Err((
                at.key("auth_type"),
                "authentication exists in VRRP version 2 only (RFC 5798 removed it): \
                 set version = 2 or remove auth_type"
                    .into(),
            ));
        }
        let Some(pass) = &self.auth_pass else {
            return Err((
                at.key("auth_type"),
                "auth_type = \"PASS\" needs auth_pass".into(),
            ));
        };
        rvs_wire::vrrp::auth_pass_data(pass.as_bytes())
            .map(Some)
            .ok_or_else(|| {
                (
                    at.key("auth_pass"),
                    format!(
                        "auth_pass must be 1 to {} bytes ({} given; keepalived would silently \
                         keep only the first {0}, rvs refuses rather than guess)",
                        rvs_wire::vrrp::V2_AUTH_LEN,
                        pass.len()
                    ),
                )
            })
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// `[[vrrp_sync_group]]` as written: keepalived's `vrrp_sync_group`, VRRP
/// instances that change state together (the outside VIP and the real
/// servers' gateway address of a NAT director, typically).
///
/// ```toml
/// [[vrrp_sync_group]]
/// name = "G1"
/// group = ["VI_1", "VI_2"]
/// notify_master = "/usr/local/bin/group-master"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpSyncGroupSpec {
    /// The group name (notify arguments, logs).
    pub name: String,
    /// The `[[vrrp_instance]]` names of the members; an instance belongs
    /// to one group at most.
    pub group: Vec<String>,
    /// Run when the group enters MASTER (every member is master).
    #[serde(default)]
    pub notify_master: Option<Argv>,
    /// Run when the group enters BACKUP (every member is backup).
    #[serde(default)]
    pub notify_backup: Option<Argv>,
    /// Run when the group enters FAULT (a member is in fault).
    #[serde(default)]
    pub notify_fault: Option<Argv>,
    /// Run when the group stops.
    #[serde(default)]
    pub notify_stop: Option<Argv>,
    /// Run on every change of the group's state with `GROUP NAME STATE 0`
    /// appended (a group has no priority of its own).
    #[serde(default)]
    pub notify: Option<Argv>,
}

/// A checked `[[vrrp_sync_group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    /// Name.
    pub name: String,
    /// The members, as indices into [`crate::Config::vrrp_instances`], in
    /// the order written.
    pub members: Vec<usize>,
    /// Notify argvs: master, backup, fault, stop, any.
    pub notify: [Option<Vec<String>>; 5],
}

fn notify_argv(a: &Option<Argv>, key: &'static str) -> Result<Option<Vec<String>>, (Path, String)> {
    match a {
        None => Ok(None),
        Some(a) => {
            let v = a.to_vec();
            if v.is_empty() || v[0].is_empty() {
                Err((Path::root().key(key), format!("{key} needs a command")))
            } else {
                Ok(Some(v))
            }
        }
    }
}

impl VrrpSyncGroupSpec {
    /// The checked group, given the instances already checked and the
    /// groups before this one; or the key at fault (relative to the
    /// group's table) and what is wrong.
    pub fn to_group(
        &self,
        instances: &[VrrpInstance],
        earlier: &[VrrpSyncGroup],
    ) -> Result<VrrpSyncGroup, (Path, String)> {
        let at = Path::root();
        if self.name.is_empty() {
            return Err((at.key("name"), "name must not be empty".into()));
        }
        if earlier.iter().any(|g| g.name == self.name) {
            return Err((
                at.key("name"),
                format!("duplicate vrrp_sync_group {:?}", self.name),
            ));
        }
        if self.group.is_empty() {
            return Err((
                at.key("group"),
                "group needs at least one vrrp_instance name".into(),
            ));
        }
        let mut members = Vec::new();
        for (j, name) in self.group.iter().enumerate() {
            let p = at.key("group").index(j);
            let Some(i) = instances.iter().position(|x| &x.name == name) else {
                return Err((p, format!("no [[vrrp_instance]] is named {name:?}")));
            };
            if members.contains(&i) {
                return Err((p, format!("{name:?} is listed twice")));
            }
            if let Some(g) = earlier.iter().find(|g| g.members.contains(&i)) {
                return Err((
                    p,
                    format!(
                        "vrrp_instance {name:?} is already in vrrp_sync_group {:?}: an instance belongs to one group at most",
                        g.name
                    ),
                ));
            }
            members.push(i);
        }
        Ok(VrrpSyncGroup {
            name: self.name.clone(),
            members,
            notify: [
                notify_argv(&self.notify_master, "notify_master")?,
                notify_argv(&self.notify_backup, "notify_backup")?,
                notify_argv(&self.notify_fault, "notify_fault")?,
                notify_argv(&self.notify_stop, "notify_stop")?,
                notify_argv(&self.notify, "notify")?,
            ],
        })
    }
}

/// `[sync]`'s `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRoleSetting {
    /// Always the master daemon (sends).
    Master,
    /// Always the backup daemon (receives).
    Backup,
    /// Follows a VRRP instance, as keepalived's `lvs_sync_daemon`: the
    /// master daemon while the instance is MASTER, else the backup daemon.
    Vrrp,
}

/// `[sync]`: IPVS connection synchronisation (packet data plane).
///
/// ```toml
/// [sync]
/// role = "vrrp"
/// vrrp_instance = "VI_1"
/// interface = "eth1"
/// sync_id = 1
/// resync = true           # rvs extension: fetch the master's table first
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// master, backup or vrrp.
    pub role: SyncRoleSetting,
    /// With `role = "vrrp"`: the instance followed (default: the only one).
    #[serde(default)]
    pub vrrp_instance: Option<String>,
    /// The interface the sync messages go out of and come in by.
    pub interface: String,
    /// `--syncid`, default 0 (a backup with 0 accepts every id).
    #[serde(default)]
    pub sync_id: u8,
    /// `--sync-maxlen` (default: from the interface MTU).
    #[serde(default)]
    pub maxlen: Option<u16>,
    /// `--mcast-group`, default 224.0.0.81.
    #[serde(default)]
    pub mcast_group: Option<Ipv4Addr>,
    /// `--mcast-port`, default 8848.
    #[serde(default)]
    pub port: Option<u16>,
    /// `--mcast-ttl`, default 1.
    #[serde(default)]
    pub ttl: Option<u8>,
    /// Send to this peer rather than to the group.
    #[serde(default)]
    pub unicast_peer: Option<Ipv4Addr>,
    /// rvs extension: a director starting as backup fetches the master's
    /// whole table, and (with `role = "vrrp"`) its instance does not
    /// preempt before it has it or `resync_timeout` passes. Default off.
    #[serde(default)]
    pub resync: bool,
    /// UDP port of resynchronisation requests (default 8849).
    #[serde(default)]
    pub resync_port: Option<u16>,
    /// Seconds a returning director waits for the table (default 10).
    #[serde(default = "default_resync_timeout")]
    pub resync_timeout: Seconds,
}

fn default_resync_timeout() -> Seconds {
    Seconds(10_000)
}

impl SyncSpec {
    /// The first rule broken, with the key at fault (relative to `[sync]`),
    /// given the VRRP instances' names.
    pub fn check(&self, instances: &[VrrpInstance]) -> Result<(), (Path, String)> {
        let at = Path::root();
        check_interface_name(&self.interface).map_err(|m| (at.key("interface"), m))?;
        if let Some(g) = self.mcast_group
            && !g.is_multicast()
        {
            return Err((
                at.key("mcast_group"),
                format!("{g} is not a multicast address"),
            ));
        }
        if self.port == Some(0) {
            return Err((at.key("port"), "port must be 1..65535".into()));
        }
        if self.ttl == Some(0) {
            return Err((at.key("ttl"), "ttl must be 1..255".into()));
        }
        if let Some(m) = self.maxlen
            && !(48..=65_507).contains(&m)
        {
            return Err((at.key("maxlen"), "maxlen must be 48..65507".into()));
        }
        if let Some(p) = self.resync_port {
            if p == 0 {
                return Err((at.key("resync_port"), "resync_port must be 1..65535".into()));
            }
            if p == self.port.unwrap_or(8848) {
                return Err((
                    at.key("resync_port"),
                    format!("resync_port {p} is the sync port: choose another"),
                ));
            }
        }
        if !(100..=3_600_000).contains(&self.resync_timeout.0) {
            return Err((
                at.key("resync_timeout"),
                "resync_timeout must be between 0.1 and 3600 seconds".into(),
            ));
        }
        match (self.role, &self.vrrp_instance) {
            (SyncRoleSetting::Vrrp, Some(n)) => {
                if !instances.iter().any(|i| &i.name == n) {
                    return Err((
                        at.key("vrrp_instance"),
                        format!("no [[vrrp_instance]] is named {n:?}"),
                    ));
                }
            }
            (SyncRoleSetting::Vrrp, None) => {
                if instances.len() != 1 {
                    return Err((
                        at.key("role"),
                        "role = \"vrrp\" needs vrrp_instance = NAME (or exactly one [[vrrp_instance]])"
                            .into(),
                    ));
                }
            }
            (_, Some(_)) => {
                return Err((
                    at.key("vrrp_instance"),
                    "vrrp_instance goes with role = \"vrrp\" only".into(),
                ));
            }
            (_, None) => {}
        }
        Ok(())
    }

    /// The instance the role follows (`role = "vrrp"`).
    pub fn followed<'a>(&'a self, instances: &'a [VrrpInstance]) -> Option<&'a str> {
        if self.role != SyncRoleSetting::Vrrp {
            return None;
        }
        self.vrrp_instance
            .as_deref()
            .or_else(|| instances.first().map(|i| i.name.as_str()))
    }
}
