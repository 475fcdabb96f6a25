//! The IPVS object model: virtual services, real servers (destinations),
//! forwarding methods, schedulers and their flags, and the settings that
//! `ipvsadm --set` and the sysctls change.
//!
//! These are plain values. Validation that depends on more than one value
//! (a real server against its service) lives in [`validate_dest`] and
//! [`validate_service`]; their messages use ipvsadm's wording where ipvsadm
//! has one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Address family of a service, a real server or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`AF_INET`, 2).
    V4,
    /// IPv6 (`AF_INET6`, 10).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The Linux `AF_*` number, used where ipvsadm sorts by family.
    pub fn number(self) -> u16 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }

    /// The unspecified address of this family.
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// Transport protocol of a virtual service or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol of an IANA number, if it is one of the three.
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name ipvsadm prints (`TCP`, `UDP`, `SCTP`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `(protocol, VIP, port)`; port 0 means "any port" (persistent only).
    Addr {
        /// Transport protocol.
        proto: Protocol,
        /// Virtual IP address.
        addr: IpAddr,
        /// Virtual port, 0 for a port-zero service.
        port: u16,
    },
    /// A firewall-mark service of one address family.
    FwMark {
        /// Address family of the service.
        family: Family,
        /// The mark, greater than zero.
        mark: u32,
    },
}

impl ServiceKey {
    /// Address family of the service.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::FwMark { family, .. } => *family,
        }
    }

    /// Whether this is a firewall-mark service.
    pub fn is_fwmark(&self) -> bool {
        matches!(self, ServiceKey::FwMark { .. })
    }

    /// The service port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::FwMark { .. } => 0,
        }
    }

    /// The protocol of an address service; `None` for fwmark services.
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServiceKey::Addr { proto, .. } => Some(*proto),
            ServiceKey::FwMark { .. } => None,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// ipvsadm's service name in numeric form: `TCP  192.0.2.1:80`,
    /// `UDP  [2001:db8::1]:53`, `FWM  7`, `FWM  7 IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { proto, addr, port } => {
                write!(f, "{:<4} {}", proto.name(), SockAddrDisplay(*addr, *port))
            }
            ServiceKey::FwMark { family, mark } => match family {
                Family::V4 => write!(f, "FWM  {mark}"),
                Family::V6 => write!(f, "FWM  {mark} IPv6"),
            },
        }
    }
}

/// Displays `addr:port` the way ipvsadm does: IPv6 in brackets.
#[derive(Debug, Clone, Copy)]
pub struct SockAddrDisplay(pub IpAddr, pub u16);

impl fmt::Display for SockAddrDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// The fourteen IPVS schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin (interleaved).
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (the default).
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Maglev hashing.
    Mh,
    /// Weighted random twos choice.
    Twos,
}

impl SchedulerKind {
    /// Every scheduler, in the order ipvsadm's help lists them (twos last).
    pub const ALL: [SchedulerKind; 14] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Mh,
        SchedulerKind::Twos,
    ];

    /// The kernel module suffix, as ipvsadm prints and parses it.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        SchedulerKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or(())
    }
}

/// Scheduler flags (`-b`): three generic bits whose meaning depends on the
/// scheduler (`sh-fallback`/`mh-fallback` = bit 1, `sh-port`/`mh-port` = bit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags(pub u8);

impl SchedFlags {
    /// `IP_VS_SVC_F_SCHED1`: sh-fallback / mh-fallback.
    pub const SCHED1: u8 = 1;
    /// `IP_VS_SVC_F_SCHED2`: sh-port / mh-port.
    pub const SCHED2: u8 = 2;
    /// `IP_VS_SVC_F_SCHED3`: unused by current schedulers.
    pub const SCHED3: u8 = 4;

    /// Whether the fallback flag (SCHED1) is set.
    pub fn fallback(self) -> bool {
        self.0 & Self::SCHED1 != 0
    }

    /// Whether the port flag (SCHED2) is set.
    pub fn port(self) -> bool {
        self.0 & Self::SCHED2 != 0
    }

    /// The names ipvsadm prints for these flags with this scheduler, in
    /// ipvsadm's order (bit 1, bit 2, bit 3).
    pub fn names(self, sched: SchedulerKind) -> Vec<&'static str> {
        let mut out = Vec::new();
        let named = |bit: u8| -> &'static str {
            match (sched, bit) {
                (SchedulerKind::Sh, Self::SCHED1) => "sh-fallback",
                (SchedulerKind::Sh, Self::SCHED2) => "sh-port",
                (SchedulerKind::Mh, Self::SCHED1) => "mh-fallback",
                (SchedulerKind::Mh, Self::SCHED2) => "mh-port",
                (_, Self::SCHED1) => "flag-1",
                (_, Self::SCHED2) => "flag-2",
                _ => "flag-3",
            }
        };
        for bit in [Self::SCHED1, Self::SCHED2, Self::SCHED3] {
            if self.0 & bit != 0 {
                out.push(named(bit));
            }
        }
        out
    }
}

/// Persistence netmask: a raw IPv4 mask (any dotted value ipvsadm accepts) or
/// an IPv6 prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    /// IPv4 mask in host byte order (`255.255.255.0` = `0xffffff00`).
    V4(u32),
    /// IPv6 prefix length, 1..=128.
    V6(u8),
}

impl Netmask {
    /// The default netmask of a family: /32 or /128.
    pub fn full(family: Family) -> Netmask {
        match family {
            Family::V4 => Netmask::V4(u32::MAX),
            Family::V6 => Netmask::V6(128),
        }
    }

    /// Whether this is the family's full mask (not printed by `-S`/`-L`).
    pub fn is_full(self) -> bool {
        matches!(self, Netmask::V4(u32::MAX) | Netmask::V6(128))
    }

    /// Applies the mask to a client address (`snet = caddr & netmask`).
    pub fn apply(self, addr: IpAddr) -> IpAddr {
        match (self, addr) {
            (Netmask::V4(m), IpAddr::V4(a)) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & m)),
            (Netmask::V6(plen), IpAddr::V6(a)) => {
                let bits = u128::from(a);
                let mask = if plen >= 128 {
                    u128::MAX
                } else if plen == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(plen))
                };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
            // A mask of the other family leaves the address as it is.
            (_, a) => a,
        }
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(m) => write!(f, "{}", Ipv4Addr::from(*m)),
            Netmask::V6(p) => write!(f, "{p}"),
        }
    }
}

/// The persistence timeout ipvsadm uses when `-p` has no value (360 s).
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 360;
/// The largest persistence timeout and `--set` value ipvsadm accepts (31 days).
pub const MAX_TIMEOUT: u32 = 31 * 24 * 3600;
/// The Maglev table sizes the kernel can be built with (`CONFIG_IP_VS_MH_TAB_INDEX` 8..17).
pub const MH_TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// The kernel's default Maglev table size.
pub const DEFAULT_MH_TABLE_SIZE: u32 = 4093;

/// Attributes of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// What identifies the service.
    pub key: ServiceKey,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags (`-b`).
    pub sched_flags: SchedFlags,
    /// Persistence timeout in seconds; `None` when not persistent.
    pub persistence: Option<u32>,
    /// Persistence netmask (kept even when not persistent, as the kernel does).
    pub netmask: Netmask,
    /// Persistence engine (only `sip` exists).
    pub pe_name: Option<String>,
    /// One-packet scheduling (`-o`).
    pub one_packet: bool,
    /// Maglev table size, one of [`MH_TABLE_SIZES`] (an rvs service setting).
    pub mh_table_size: u32,
}

impl ServiceConfig {
    /// A service with ipvsadm's defaults: wlc, not persistent, full netmask.
    pub fn new(key: ServiceKey) -> ServiceConfig {
        ServiceConfig {
            key,
            scheduler: SchedulerKind::Wlc,
            sched_flags: SchedFlags::default(),
            persistence: None,
            netmask: Netmask::full(key.family()),
            pe_name: None,
            one_packet: false,
            mh_table_size: DEFAULT_MH_TABLE_SIZE,
        }
    }
}

/// Tunnel encapsulation type (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelType {
    /// IP in IP (0).
    Ipip,
    /// Generic UDP encapsulation (1).
    Gue,
    /// Generic routing encapsulation (2).
    Gre,
}

impl TunnelType {
    /// The name ipvsadm uses.
    pub fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// Tunnel checksum option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelCsum {
    /// `--tun-nocsum` (default).
    #[default]
    NoCsum,
    /// `--tun-csum`.
    Csum,
    /// `--tun-remcsum` (GUE only).
    RemCsum,
}

impl TunnelCsum {
    /// The option as `-S` writes it.
    pub fn option(self) -> &'static str {
        match self {
            TunnelCsum::NoCsum => "--tun-nocsum",
            TunnelCsum::Csum => "--tun-csum",
            TunnelCsum::RemCsum => "--tun-remcsum",
        }
    }
}

/// Tunnel parameters of a tunnelled real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// Encapsulation.
    pub kind: TunnelType,
    /// Destination UDP port (GUE only, else 0).
    pub port: u16,
    /// Checksum option.
    pub csum: TunnelCsum,
}

impl Default for Tunnel {
    fn default() -> Self {
        Tunnel {
            kind: TunnelType::Ipip,
            port: 0,
            csum: TunnelCsum::NoCsum,
        }
    }
}

/// Forwarding method of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// NAT (`-m`, listed `Masq`).
    Masq,
    /// Local delivery (listed `Local`, saved `-g`).
    Local,
    /// Tunnelling (`-i`, listed `Tunnel`).
    Tunnel(Tunnel),
    /// Direct routing (`-g`, listed `Route`).
    Route,
    /// The userspace L4 proxy (an rvs method).
    Proxy,
}

impl Forward {
    /// The name `ipvsadm -L` prints in the Forward column.
    pub fn list_name(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel(_) => "Tunnel",
            Forward::Route => "Route",
            Forward::Proxy => "Proxy",
        }
    }

    /// Whether the director sees the server's replies (only NAT and proxy
    /// do); other methods start connections in the input-only state table.
    pub fn sees_replies(self) -> bool {
        matches!(self, Forward::Masq | Forward::Proxy)
    }
}

/// The largest weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65535;
/// The largest threshold ipvsadm accepts (`INT_MAX`).
pub const MAX_THRESHOLD: u32 = i32::MAX as u32;

/// Attributes of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestConfig {
    /// Real server address (its family may differ from the service's only
    /// for tunnelled servers).
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight, 0..=65535; 0 quiesces the server.
    pub weight: u32,
    /// Upper connection threshold, 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold, 0 = three quarters of the upper.
    pub l_threshold: u32,
}

/// Connection timeouts that `ipvsadm --set tcp tcpfin udp` changes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP ESTABLISHED.
    pub tcp: u32,
    /// TCP FIN_WAIT.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// The IPVS sysctls that change connection handling, with the kernel's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sysctls {
    /// `expire_nodest_conn`: expire a connection at once when a packet
    /// arrives for it and its real server is gone.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template`: a template whose server has weight 0 is
    /// no longer followed.
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` bitmap (1: reschedule TIME_WAIT/CLOSE; 2: also
    /// FIN_WAIT without output seen). 0 disables.
    pub conn_reuse_mode: u8,
    /// `sloppy_tcp`: any non-RST segment may create a connection.
    pub sloppy_tcp: bool,
    /// `sloppy_sctp`: any chunk but ABORT may create a connection.
    pub sloppy_sctp: bool,
    /// `secure_tcp`: use the defence TCP state table.
    pub secure_tcp: bool,
    /// `lblc_expiration` in seconds.
    pub lblc_expiration: u32,
    /// `lblcr_expiration` in seconds.
    pub lblcr_expiration: u32,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            sloppy_sctp: false,
            secure_tcp: false,
            lblc_expiration: 24 * 3600,
            lblcr_expiration: 24 * 3600,
        }
    }
}

/// A rule that a service or real server breaks, worded as ipvsadm words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Port 0 without `-p`.
    #[error("Zero port specified for non-persistent service")]
    ZeroPortNonPersistent,
    /// `-o` on a TCP/SCTP address service.
    #[error("One-Packet Scheduling is only for UDP virtual services")]
    OnePacketNotUdp,
    /// Scheduler flags that the scheduler does not know.
    #[error("Invalid scheduler flag for scheduler {0}")]
    BadSchedFlag(SchedulerKind),
    /// Persistence timeout out of 1..=2678400.
    #[error("Invalid persistence timeout value {0}")]
    BadPersistence(u32),
    /// IPv6 prefix length out of 1..=128.
    #[error("Invalid netmask {0}")]
    BadNetmask(String),
    /// An unsupported Maglev table size.
    #[error(
        "Invalid Maglev table size {0}: use one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071"
    )]
    BadMhTableSize(u32),
    /// Real-server family differs from the service's without tunnelling.
    #[error("Operation not supported with specified address family")]
    MixedFamily,
    /// Weight above 65535.
    #[error("Illegal weight specified")]
    BadWeight,
    /// Lower threshold above the upper one.
    #[error("Numerical result out of range")]
    ThresholdRange,
    /// GUE without a port.
    #[error("GUE tunnel requires a tunnel port (--tun-port)")]
    GueNeedsPort,
    /// A tunnel port on a tunnel type that has none.
    #[error("--tun-port is only valid for GUE tunnels")]
    TunnelPortNotGue,
    /// `--tun-remcsum` on a type other than GUE, or a checksum option on ipip.
    #[error("Checksum option {0} is not valid for tunnel type {1}")]
    TunnelCsum(&'static str, &'static str),
}

/// Checks a service as ipvsadm and the kernel do.
pub fn validate_service(svc: &ServiceConfig) -> Result<(), ModelError> {
    if let ServiceKey::Addr { proto, port, .. } = svc.key {
        if port == 0 && svc.persistence.is_none() {
            return Err(ModelError::ZeroPortNonPersistent);
        }
        if svc.one_packet && proto != Protocol::Udp {
            return Err(ModelError::OnePacketNotUdp);
        }
    }
    if let Some(t) = svc.persistence
        && (t == 0 || t > MAX_TIMEOUT)
    {
        return Err(ModelError::BadPersistence(t));
    }
    if let Netmask::V6(p) = svc.netmask
        && (p == 0 || p > 128)
    {
        return Err(ModelError::BadNetmask(p.to_string()));
    }
    if !MH_TABLE_SIZES.contains(&svc.mh_table_size) {
        return Err(ModelError::BadMhTableSize(svc.mh_table_size));
    }
    Ok(())
}

/// Checks a real server against its service as ipvsadm and the kernel do.
pub fn validate_dest(svc: &ServiceKey, dest: &DestConfig) -> Result<(), ModelError> {
    let tunnel = match dest.forward {
        Forward::Tunnel(t) => Some(t),
        _ => None,
    };
    if Family::of(&dest.addr) != svc.family() && tunnel.is_none() {
        return Err(ModelError::MixedFamily);
    }
    if dest.weight > MAX_WEIGHT {
        return Err(ModelError::BadWeight);
    }
    // The kernel refuses l > u even when u is 0 (no upper threshold).
    if dest.l_threshold > dest.u_threshold {
        return Err(ModelError::ThresholdRange);
    }
    if let Some(t) = tunnel {
        match t.kind {
            TunnelType::Ipip => {
                if t.port != 0 {
                    return Err(ModelError::TunnelPortNotGue);
                }
                if t.csum != TunnelCsum::NoCsum {
                    return Err(ModelError::TunnelCsum(t.csum.option(), "ipip"));
                }
            }
            TunnelType::Gue => {
                if t.port == 0 {
                    return Err(ModelError::GueNeedsPort);
                }
            }
            TunnelType::Gre => {
                if t.port != 0 {
                    return Err(ModelError::TunnelPortNotGue);
                }
                if t.csum == TunnelCsum::RemCsum {
                    return Err(ModelError::TunnelCsum(t.csum.option(), "gre"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_match_ipvsadm() {
        let k = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "203.0.113.10".parse().unwrap(),
            port: 80,
        };
        assert_eq!(k.to_string(), "TCP  203.0.113.10:80");
        let k = ServiceKey::Addr {
            proto: Protocol::Sctp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(k.to_string(), "SCTP [2001:db8::1]:80");
        let k = ServiceKey::FwMark {
            family: Family::V6,
            mark: 7,
        };
        assert_eq!(k.to_string(), "FWM  7 IPv6");
    }

    #[test]
    fn netmask_applies_to_both_families() {
        let m = Netmask::V4(0xffff_ff00);
        assert_eq!(
            m.apply("198.51.100.77".parse().unwrap()),
            "198.51.100.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            Netmask::V6(64).apply("2001:db8::1:2".parse().unwrap()),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
        assert!(Netmask::full(Family::V6).is_full());
    }

    #[test]
    fn zero_port_needs_persistence() {
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 0,
        };
        let mut svc = ServiceConfig::new(key);
        assert_eq!(
            validate_service(&svc),
            Err(ModelError::ZeroPortNonPersistent)
        );
        svc.persistence = Some(360);
        assert_eq!(validate_service(&svc), Ok(()));
    }

    #[test]
    fn tunnel_matrix() {
        let key = ServiceKey::FwMark {
            family: Family::V4,
            mark: 1,
        };
        let mut d = DestConfig {
            addr: "2001:db8::1".parse().unwrap(),
            port: 0,
            forward: Forward::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        };
        assert_eq!(validate_dest(&key, &d), Err(ModelError::MixedFamily));
        d.forward = Forward::Tunnel(Tunnel {
            kind: TunnelType::Gue,
            port: 0,
            csum: TunnelCsum::NoCsum,
        });
        assert_eq!(validate_dest(&key, &d), Err(ModelError::GueNeedsPort));
        d.forward = Forward::Tunnel(Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            csum: TunnelCsum::RemCsum,
        });
        assert_eq!(validate_dest(&key, &d), Ok(()));
    }
}
