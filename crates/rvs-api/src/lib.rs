//! The control API of `rvsd`: JSON over HTTP/1.1 on a Unix socket.
//!
//! This crate holds what the daemon and `rvsadm` share: the routes
//! ([`Route`], [`ENDPOINTS`]), the request and response bodies, and their
//! mapping to the core's types. Services and servers are written as in the
//! configuration file ([`ServiceSpec`], [`ServerSpec`], the same keys), so a
//! `[[service]]` table and a `POST /v1/services` body say the same thing.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v1/services` | | [`ServiceList`] |
//! | POST | `/v1/services` | [`ServiceSpec`] (with its servers) | 201, [`ServiceStatus`] |
//! | GET | `/v1/services/{id}` | | [`ServiceStatus`] |
//! | PUT | `/v1/services/{id}` | [`ServiceSpec`] | [`ServiceStatus`] |
//! | DELETE | `/v1/services/{id}` | | 204 |
//! | POST | `/v1/services/{id}/servers` | [`ServerSpec`] | 201, [`ServiceStatus`] |
//! | PUT | `/v1/services/{id}/servers/{server}` | [`ServerSpec`] | [`ServiceStatus`] |
//! | DELETE | `/v1/services/{id}/servers/{server}` | | 204 |
//! | POST | `/v1/zero` | [`ZeroRequest`] | 204 |
//! | GET | `/v1/timeouts` | | [`TimeoutsBody`] |
//! | PUT | `/v1/timeouts` | [`TimeoutsBody`] | [`TimeoutsBody`] |
//! | GET | `/v1/connections` | | [`ConnList`] |
//! | POST | `/v1/batch` | [`Batch`] | [`BatchResult`] |
//! | GET | `/v1/health` (also `/health`) | | [`HealthList`] |
//!
//! `{id}` is a [`ServiceId`] (`tcp-192.0.2.1-80`, `udp-2001:db8::1-53`,
//! `fwm-7`, `fwm6-7`) and `{server}` a [`ServerId`] (`10.0.0.1-8080`): no
//! character in them needs percent-encoding.
//!
//! `PUT /v1/services/{id}` replaces the service's attributes (an omitted
//! attribute takes its default, as `ipvsadm -E` does); when the body has a
//! `server` list, the service's servers are made that list (kept servers
//! edited in place), and when it has none they are left as they are.
//!
//! `POST /v1/batch` applies a list of ipvsadm-equivalent operations
//! ([`BatchOp`]) atomically: all of them or, at the first refused one,
//! none, with the error naming its index.
//!
//! Every failure answers with a 4xx or 5xx status and an [`ErrorBody`]
//! (`{"error": "message"}`); [`status_of`] gives the status of a director
//! error.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod control;
pub mod health;
mod ids;
mod route;
mod status;

use rvs_core::director::CtlError;
use rvs_core::model::Forward;
use rvs_core::model::Timeouts;
use rvs_ipvsadm::{Command, MethodChoice};
use serde::{Deserialize, Serialize};

pub use control::{Control, ControlError, DirectorControl, HoldsDirector};
pub use health::{
    CheckerStatus, HealthList, HealthUpdate, ServerHealthStatus, ServiceHealthStatus,
};
pub use ids::{IdError, ServerId, ServiceId};
pub use route::{ENDPOINTS, Endpoint, Method, Route, RouteError};
pub use rvs_config::spec::{
    FamilyName, MethodName, NetmaskSpec, ProtocolName, ProxyProtocol, ServerSpec, ServiceSpec,
    SpecError, TunCsumName, TunTypeName,
};
pub use status::{ConnList, ConnStatus, Counters, Rates, ServerStatus, ServiceList, ServiceStatus};

/// The body of every failure: `{"error": "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong, as ipvsadm words it where it has a wording.
    pub error: String,
}

impl ErrorBody {
    /// An error body with a message.
    pub fn new(error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
        }
    }

    /// The message of a spec error, prefixed with the key at fault.
    pub fn from_spec(e: &SpecError) -> ErrorBody {
        if e.path.0.is_empty() {
            ErrorBody::new(e.message.clone())
        } else {
            ErrorBody::new(format!("{}: {}", e.path, e.message))
        }
    }
}

/// The HTTP status of a refused control operation: 404 for something
/// missing, 409 for something already there, 422 for a rule broken.
pub fn status_of(e: &CtlError) -> u16 {
    match e {
        CtlError::NoSuchService | CtlError::ServiceNotDefined | CtlError::NoSuchDest => 404,
        CtlError::ServiceExists | CtlError::DestExists => 409,
        CtlError::Invalid(_) => 422,
    }
}

/// A connection synchronisation daemon's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonRole {
    /// Sends connection state.
    Master,
    /// Receives connection state.
    Backup,
}

impl DaemonRole {
    /// `master` or `backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonRole::Master => "master",
            DaemonRole::Backup => "backup",
        }
    }
}

impl From<rvs_ipvsadm::SyncRole> for DaemonRole {
    fn from(r: rvs_ipvsadm::SyncRole) -> Self {
        match r {
            rvs_ipvsadm::SyncRole::Master => DaemonRole::Master,
            rvs_ipvsadm::SyncRole::Backup => DaemonRole::Backup,
        }
    }
}

/// A sync daemon: what `--start-daemon` asks for and `-L --daemon` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSpec {
    /// Master or backup.
    pub role: DaemonRole,
    /// `--mcast-interface`.
    pub mcast_interface: String,
    /// `--syncid`.
    #[serde(default)]
    pub syncid: u8,
    /// `--mcast-group` (default 224.0.0.81).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_group: Option<std::net::IpAddr>,
    /// `--mcast-port` (default 8848).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_port: Option<u16>,
    /// `--mcast-ttl` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_ttl: Option<u8>,
    /// `--sync-maxlen` (default from the MTU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_maxlen: Option<u16>,
}

impl From<&rvs_ipvsadm::DaemonConfig> for DaemonSpec {
    fn from(c: &rvs_ipvsadm::DaemonConfig) -> Self {
        DaemonSpec {
            role: c.role.into(),
            mcast_interface: c.mcast_ifn.clone(),
            syncid: c.syncid,
            mcast_group: c.mcast_group,
            mcast_port: c.mcast_port,
            mcast_ttl: c.mcast_ttl,
            sync_maxlen: c.sync_maxlen,
        }
    }
}

impl DaemonSpec {
    /// Its `ipvsadm -L --daemon` line: `master sync daemon (mcast=eth0,
    /// syncid=1)`, with maxlen, group, port and ttl only when set.
    pub fn list_line(&self) -> String {
        let mut s = format!(
            "{} sync daemon (mcast={}, syncid={}",
            self.role.as_str(),
            self.mcast_interface,
            self.syncid
        );
        if let Some(m) = self.sync_maxlen {
            s += &format!(", maxlen={m}");
        }
        if let Some(g) = self.mcast_group {
            s += &format!(", group={g}");
        }
        if let Some(p) = self.mcast_port {
            s += &format!(", port={p}");
        }
        if let Some(t) = self.mcast_ttl {
            s += &format!(", ttl={t}");
        }
        s + ")\n"
    }
}

/// `GET /v1/daemons`: the running sync daemons, master first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonList {
    /// The daemons.
    pub daemons: Vec<DaemonSpec>,
}

/// `GET`/`PUT /v1/timeouts`: connection timeouts in seconds. In a `PUT`, 0
/// leaves a timeout as it is, as `ipvsadm --set` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsBody {
    /// TCP ESTABLISHED.
    #[serde(default)]
    pub tcp: u32,
    /// TCP FIN_WAIT.
    #[serde(default)]
    pub tcp_fin: u32,
    /// UDP.
    #[serde(default)]
    pub udp: u32,
}

impl From<Timeouts> for TimeoutsBody {
    fn from(t: Timeouts) -> Self {
        TimeoutsBody {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        }
    }
}

impl From<TimeoutsBody> for Timeouts {
    fn from(t: TimeoutsBody) -> Self {
        Timeouts {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        }
    }
}

/// `POST /v1/zero`: zero the counters of one service, or of all when
/// `service` is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroRequest {
    /// The service; every one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceId>,
}

/// One operation of a batch, as one ipvsadm rule line says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchOp {
    /// `-A` (its `server` list, if any, is added too).
    AddService {
        /// The service.
        service: ServiceSpec,
    },
    /// `-E`: replace the attributes (servers are not touched).
    EditService {
        /// The service.
        service: ServiceSpec,
    },
    /// `-D`.
    DeleteService {
        /// The service.
        service: ServiceId,
    },
    /// `-C`: delete every service. (A struct variant, so that an unknown
    /// key beside the tag is refused as it is for the others.)
    Clear {},
    /// `-a`.
    AddServer {
        /// The service.
        service: ServiceId,
        /// The server.
        server: ServerSpec,
        /// The command named no forwarding method: `server` says masq with
        /// the port written, and the daemon's data plane applies its own
        /// default (masq on the proxy, `-g` on the packet data plane, as
        /// ipvsadm).
        #[serde(default, skip_serializing_if = "is_false")]
        default_method: bool,
    },
    /// `-e`.
    EditServer {
        /// The service.
        service: ServiceId,
        /// The server.
        server: ServerSpec,
        /// The command named no forwarding method: `server` says masq with
        /// the port written, and the daemon's data plane applies its own
        /// default (masq on the proxy, `-g` on the packet data plane, as
        /// ipvsadm).
        #[serde(default, skip_serializing_if = "is_false")]
        default_method: bool,
    },
    /// `-d`.
    DeleteServer {
        /// The service.
        service: ServiceId,
        /// The server.
        server: ServerId,
    },
    /// `-Z`.
    Zero {
        /// The service; every one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceId>,
    },
    /// `--set tcp tcpfin udp` (0 leaves a value as it is).
    SetTimeouts {
        /// The timeouts.
        timeouts: TimeoutsBody,
    },
}

/// `POST /v1/batch`: operations applied atomically, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The operations.
    pub ops: Vec<BatchOp>,
}

/// The answer to a batch that was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResult {
    /// How many operations were applied (all of them).
    pub applied: usize,
}

impl BatchOp {
    /// The health settings this operation carries (see [`HealthUpdate`]).
    pub fn health_updates(&self) -> Result<Vec<HealthUpdate>, SpecError> {
        let at = |k: &'static str| move |e: SpecError| e.under(&rvs_config::Path::root().key(k));
        Ok(match self {
            BatchOp::AddService { service } | BatchOp::EditService { service } => {
                HealthUpdate::of_service(service).map_err(at("service"))?
            }
            BatchOp::AddServer {
                service, server, ..
            }
            | BatchOp::EditServer {
                service, server, ..
            } => HealthUpdate::of_server(service.0, server)
                .map_err(at("server"))?
                .into_iter()
                .collect(),
            _ => Vec::new(),
        })
    }

    /// The ipvsadm commands this operation is (an added service is
    /// followed by the addition of its servers). The daemon applies them
    /// with `rvs_ipvsadm::director::apply`.
    pub fn to_commands(&self) -> Result<Vec<Command>, SpecError> {
        let at = |k: &'static str| move |e: SpecError| e.under(&rvs_config::Path::root().key(k));
        Ok(match self {
            BatchOp::AddService { service } => {
                let (cfg, dests) = service.to_core().map_err(at("service"))?;
                let key = cfg.key;
                let mut out = vec![Command::AddService(cfg)];
                out.extend(dests.into_iter().map(|dest| Command::AddDest {
                    service: key,
                    dest,
                    method: MethodChoice::Named,
                }));
                out
            }
            BatchOp::EditService { service } => {
                vec![Command::EditService(
                    service.to_service_config().map_err(at("service"))?,
                )]
            }
            BatchOp::DeleteService { service } => vec![Command::DeleteService(service.0)],
            BatchOp::Clear {} => vec![Command::Clear],
            BatchOp::AddServer {
                service,
                server,
                default_method,
            } => {
                let dest = server.to_core(&service.0).map_err(at("server"))?;
                vec![Command::AddDest {
                    service: service.0,
                    dest,
                    method: method_choice(*default_method, dest.port),
                }]
            }
            BatchOp::EditServer {
                service,
                server,
                default_method,
            } => {
                let dest = server.to_core(&service.0).map_err(at("server"))?;
                vec![Command::EditDest {
                    service: service.0,
                    dest,
                    method: method_choice(*default_method, dest.port),
                }]
            }
            BatchOp::DeleteServer { service, server } => vec![Command::DeleteDest {
                service: service.0,
                addr: server.addr,
                port: server.port,
            }],
            BatchOp::Zero { service } => vec![Command::Zero(service.map(|s| s.0))],
            BatchOp::SetTimeouts { timeouts } => vec![Command::SetTimeouts((*timeouts).into())],
        })
    }

    /// The operation of a rule-changing ipvsadm command; `None` for the
    /// commands that change no rule (`-L`, `-S`, ...). This is how `rvsadm`
    /// sends ipvsadm syntax to the daemon.
    ///
    /// A server spec always has a method, so a server whose command named
    /// none is sent as masq with the port written with `-r`, marked
    /// `default_method`: the daemon's data plane then applies its default
    /// (masq on the proxy, where ipvsadm's `-g` means nothing; `-g` on the
    /// packet data plane).
    pub fn from_command(cmd: &Command) -> Option<BatchOp> {
        let omitted = matches!(
            cmd,
            Command::AddDest {
                method: MethodChoice::Omitted { .. },
                ..
            } | Command::EditDest {
                method: MethodChoice::Omitted { .. },
                ..
            }
        );
        let cmd = &rvs_ipvsadm::with_default_method(cmd.clone(), Forward::Masq);
        Some(match cmd {
            Command::AddService(s) => BatchOp::AddService {
                service: ServiceSpec::from_core(s, None, ProxyProtocol::Off),
            },
            Command::EditService(s) => BatchOp::EditService {
                service: ServiceSpec::from_core(s, None, ProxyProtocol::Off),
            },
            Command::DeleteService(k) => BatchOp::DeleteService {
                service: ServiceId(*k),
            },
            Command::Clear => BatchOp::Clear {},
            Command::AddDest { service, dest, .. } => BatchOp::AddServer {
                service: ServiceId(*service),
                server: ServerSpec::from_core(dest),
                default_method: omitted,
            },
            Command::EditDest { service, dest, .. } => BatchOp::EditServer {
                service: ServiceId(*service),
                server: ServerSpec::from_core(dest),
                default_method: omitted,
            },
            Command::DeleteDest {
                service,
                addr,
                port,
            } => BatchOp::DeleteServer {
                service: ServiceId(*service),
                server: ServerId {
                    addr: *addr,
                    port: *port,
                },
            },
            Command::Zero(k) => BatchOp::Zero {
                service: k.map(ServiceId),
            },
            Command::SetTimeouts(t) => BatchOp::SetTimeouts {
                timeouts: (*t).into(),
            },
            _ => return None,
        })
    }
}

impl From<&rvs_config::Op> for BatchOp {
    /// A step of a configuration diff as a batch operation (what a reload
    /// sends).
    fn from(op: &rvs_config::Op) -> BatchOp {
        use rvs_config::Op;
        match op {
            Op::AddService(s) => BatchOp::AddService {
                service: ServiceSpec::from_core(s, None, ProxyProtocol::Off),
            },
            Op::EditService(s) => BatchOp::EditService {
                service: ServiceSpec::from_core(s, None, ProxyProtocol::Off),
            },
            Op::DeleteService(k) => BatchOp::DeleteService {
                service: ServiceId(*k),
            },
            Op::AddDest { service, dest } => BatchOp::AddServer {
                service: ServiceId(*service),
                server: ServerSpec::from_core(dest),
                default_method: false,
            },
            Op::EditDest { service, dest } => BatchOp::EditServer {
                service: ServiceId(*service),
                server: ServerSpec::from_core(dest),
                default_method: false,
            },
            Op::DeleteDest {
                service,
                addr,
                port,
            } => BatchOp::DeleteServer {
                service: ServiceId(*service),
                server: ServerId {
                    addr: *addr,
                    port: *port,
                },
            },
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How a server's method reads back from the wire: named, or omitted with
/// the port written (the data plane fills in its default).
fn method_choice(default_method: bool, port: u16) -> MethodChoice {
    if default_method {
        MethodChoice::Omitted { port }
    } else {
        MethodChoice::Named
    }
}
