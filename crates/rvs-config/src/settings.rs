//! The global tables of the configuration: `[director]` (with
//! `[director.timeouts]`), `[metrics]`, `[control]` and `[proxy]`. Every key
//! is optional; the defaults are the kernel's for the sysctls and timeouts.

use std::net::SocketAddr;
use std::path::PathBuf;

use rvs_core::director::DirectorConfig;
use rvs_core::model::{MAX_TIMEOUT, Sysctls, Timeouts};
use serde::{Deserialize, Serialize};

use crate::spec::Path;

/// `[director]`: the sysctls that change connection handling, the
/// connection-table capacity, the rvs opt-ins, and the timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorSettings {
    /// Most connection entries (templates included) per address family.
    pub conn_capacity: usize,
    /// rvs opt-in: rr and wrr start at a random server rather than the first.
    pub random_start: bool,
    /// Sysctl `expire_nodest_conn`.
    pub expire_nodest_conn: bool,
    /// Sysctl `expire_quiescent_template`.
    pub expire_quiescent_template: bool,
    /// Sysctl `conn_reuse_mode`, 0..=3.
    pub conn_reuse_mode: u8,
    /// Sysctl `sloppy_tcp`.
    pub sloppy_tcp: bool,
    /// Sysctl `sloppy_sctp`.
    pub sloppy_sctp: bool,
    /// Sysctl `secure_tcp`: use the defence TCP state table.
    pub secure_tcp: bool,
    /// Sysctl `lblc_expiration`, seconds.
    pub lblc_expiration: u32,
    /// Sysctl `lblcr_expiration`, seconds.
    pub lblcr_expiration: u32,
    /// `[director.timeouts]`.
    pub timeouts: TimeoutSettings,
}

impl Default for DirectorSettings {
    fn default() -> Self {
        let s = Sysctls::default();
        DirectorSettings {
            conn_capacity: DirectorConfig::default().conn_capacity,
            random_start: false,
            expire_nodest_conn: s.expire_nodest_conn,
            expire_quiescent_template: s.expire_quiescent_template,
            conn_reuse_mode: s.conn_reuse_mode,
            sloppy_tcp: s.sloppy_tcp,
            sloppy_sctp: s.sloppy_sctp,
            secure_tcp: s.secure_tcp,
            lblc_expiration: s.lblc_expiration,
            lblcr_expiration: s.lblcr_expiration,
            timeouts: TimeoutSettings::default(),
        }
    }
}

impl DirectorSettings {
    /// The sysctls as the core takes them.
    pub fn sysctls(&self) -> Sysctls {
        Sysctls {
            expire_nodest_conn: self.expire_nodest_conn,
            expire_quiescent_template: self.expire_quiescent_template,
            conn_reuse_mode: self.conn_reuse_mode,
            sloppy_tcp: self.sloppy_tcp,
            sloppy_sctp: self.sloppy_sctp,
            secure_tcp: self.secure_tcp,
            lblc_expiration: self.lblc_expiration,
            lblcr_expiration: self.lblcr_expiration,
        }
    }

    /// The first rule broken, with the key at fault (relative to `[director]`).
    pub fn check(&self) -> Option<(Path, String)> {
        let at = Path::root();
        if self.conn_capacity == 0 {
            return Some((
                at.key("conn_capacity"),
                "conn_capacity must be at least 1".into(),
            ));
        }
        if self.conn_reuse_mode > 3 {
            return Some((
                at.key("conn_reuse_mode"),
                format!(
                    "conn_reuse_mode is a bitmap of 1 and 2: use 0..=3, not {}",
                    self.conn_reuse_mode
                ),
            ));
        }
        for (v, key) in [
            (self.lblc_expiration, "lblc_expiration"),
            (self.lblcr_expiration, "lblcr_expiration"),
        ] {
            if v == 0 {
                return Some((at.key(key), format!("{key} must be at least 1 second")));
            }
        }
        self.timeouts
            .check()
            .map(|(p, m)| (at.key("timeouts").join(&p), m))
    }
}

/// `[director.timeouts]`: what `ipvsadm --set tcp tcpfin udp` sets, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSettings {
    /// TCP ESTABLISHED, default 900.
    pub tcp: u32,
    /// TCP FIN_WAIT, default 120.
    pub tcp_fin: u32,
    /// UDP, default 300.
    pub udp: u32,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        let t = Timeouts::default();
        TimeoutSettings {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        }
    }
}

impl TimeoutSettings {
    /// The timeouts as the core takes them.
    pub fn to_core(self) -> Timeouts {
        Timeouts {
            tcp: self.tcp,
            tcp_fin: self.tcp_fin,
            udp: self.udp,
        }
    }

    /// The first rule broken, with the key at fault. Unlike `--set`, 0 is
    /// refused: it would mean "unchanged", which a file cannot mean.
    pub fn check(&self) -> Option<(Path, String)> {
        for (v, key) in [
            (self.tcp, "tcp"),
            (self.tcp_fin, "tcp_fin"),
            (self.udp, "udp"),
        ] {
            if v == 0 || v > MAX_TIMEOUT {
                return Some((
                    Path::root().key(key),
                    format!("timeout {key} must be 1..={MAX_TIMEOUT} seconds, not {v}"),
                ));
            }
        }
        None
    }
}

/// The default metrics address: loopback only, so that exposing the
/// statistics is a decision.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9180";

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Whether to serve metrics (default true).
    pub enabled: bool,
    /// Listen address, default `127.0.0.1:9180`.
    pub listen: SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            listen: DEFAULT_METRICS_LISTEN
                .parse()
                .expect("the default metrics address parses"),
        }
    }
}

/// `[control]`: the control API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSettings {
    /// Unix socket path of the JSON-over-HTTP API; the daemon's own default
    /// when omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

/// `[proxy]`: the userspace L4 proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// How long a connection to a real server may take, milliseconds
    /// (default 3000).
    pub connect_timeout_ms: u64,
    /// How many other servers to try when a connect fails (default 2; 0
    /// gives up after the first).
    pub connect_retries: u32,
    /// Listener threads; 0 (the default) means one per CPU.
    pub threads: usize,
    /// Bind listeners with `IP_FREEBIND`, so a VIP need not be up yet.
    pub freebind: bool,
    /// On SIGTERM, how long open connections may drain, seconds (default 30).
    pub drain_grace_s: u64,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            connect_timeout_ms: 3000,
            connect_retries: 2,
            threads: 0,
            freebind: false,
            drain_grace_s: 30,
        }
    }
}

impl ProxySettings {
    /// The first rule broken, with the key at fault (relative to `[proxy]`).
    pub fn check(&self) -> Option<(Path, String)> {
        if self.connect_timeout_ms == 0 {
            return Some((
                Path::root().key("connect_timeout_ms"),
                "connect_timeout_ms must be at least 1".into(),
            ));
        }
        None
    }
}

/// Which data plane runs the services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataplaneMode {
    /// The userspace L4 proxy (default): masq and proxy servers, TCP and UDP.
    #[default]
    Proxy,
    /// The packet data plane: masq, route and tunnel servers on raw frames.
    Packet,
}

/// How the packet data plane gets frames in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketBackend {
    /// AF_PACKET sockets with memory-mapped rings (default).
    #[default]
    AfPacket,
    /// AF_XDP sockets behind an XDP program (rvsd built with the `xdp`
    /// cargo feature).
    AfXdp,
}

impl PacketBackend {
    fn is_default(&self) -> bool {
        *self == PacketBackend::AfPacket
    }
}

/// The longest busy poll `[dataplane] busy_poll_us` accepts, microseconds:
/// past a few hundred a worker spins for nothing but its own CPU time.
pub const MAX_BUSY_POLL_US: u32 = 10_000;

/// `[dataplane]`: which data plane runs the services, and the packet data
/// plane's interfaces, workers, busy polling and backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneSettings {
    /// `proxy` (default) or `packet`.
    pub mode: DataplaneMode,
    /// Interfaces of the packet data plane (required for `packet`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Packet worker threads; 0 (the default) means one per CPU (with
    /// `af_xdp`: receive queues served, 0 meaning one).
    pub workers: usize,
    /// `af_packet` (default) or `af_xdp`; used by the packet data plane
    /// only.
    #[serde(skip_serializing_if = "PacketBackend::is_default")]
    pub backend: PacketBackend,
    /// Microseconds a packet worker keeps checking its rings after its
    /// last frame before it sleeps (0, the default: sleep at once).
    pub busy_poll_us: u32,
}

impl DataplaneSettings {
    /// The first rule broken, with the key at fault (relative to
    /// `[dataplane]`).
    pub fn check(&self) -> Option<(Path, String)> {
        for (i, name) in self.interfaces.iter().enumerate() {
            if let Err(m) = check_interface_name(name) {
                return Some((Path::root().key("interfaces").index(i), m));
            }
        }
        if let Err(m) = check_busy_poll_us(self.busy_poll_us) {
            return Some((Path::root().key("busy_poll_us"), m));
        }
        if self.mode == DataplaneMode::Packet && self.interfaces.is_empty() {
            return Some((
                Path::root().key("mode"),
                "mode \"packet\" needs interfaces = [\"IF\", ...]".into(),
            ));
        }
        None
    }
}

/// Whether `us` is a busy-poll time rvsd accepts (0..=[`MAX_BUSY_POLL_US`]).
pub fn check_busy_poll_us(us: u32) -> Result<(), String> {
    if us > MAX_BUSY_POLL_US {
        return Err(format!(
            "busy_poll_us must be 0..={MAX_BUSY_POLL_US} microseconds (0 = off), not {us}"
        ));
    }
    Ok(())
}

/// Whether `name` can be a Linux interface name (1 to 15 bytes, no `/`,
/// no whitespace, not `.` or `..`).
pub fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "{name:?} is not an interface name (1 to 15 bytes, no '/', ':' or spaces)"
        ));
    }
    Ok(())
}
