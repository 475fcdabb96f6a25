//! Health checking through the API: the health settings that travel with
//! rule changes ([`HealthUpdate`]) and the report of `GET /v1/health`
//! ([`HealthList`]).

use rvs_config::health::{HealthSpec, server_settings};
use rvs_config::spec::{Path, ServerSpec, ServiceSpec, SpecError};
use rvs_core::model::ServiceKey;
use serde::{Deserialize, Serialize};

use crate::ids::ServiceId;

/// Health settings written in a service or server body of a rule change.
/// A data plane that runs checks applies them with the commands
/// ([`crate::Control::apply_health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthUpdate {
    /// A service's `health` table (replaces the service's).
    Service {
        /// The service.
        service: ServiceKey,
        /// Its table.
        health: HealthSpec,
    },
    /// A server's health keys (checks, timing, notify) replace its own.
    Server {
        /// The service.
        service: ServiceKey,
        /// The server as written (only its address and health keys count).
        server: ServerSpec,
    },
}

impl HealthUpdate {
    /// Whether the update asks for something a data plane without health
    /// checking cannot do.
    pub fn has_checks(&self) -> bool {
        match self {
            HealthUpdate::Service { health, .. } => *health != HealthSpec::default(),
            HealthUpdate::Server { server, .. } => server.has_health_keys(),
        }
    }

    /// The updates a service body carries, checked (paths relative to the
    /// body): its health table when written, and each server's health keys
    /// when it has some.
    pub fn of_service(spec: &ServiceSpec) -> Result<Vec<HealthUpdate>, SpecError> {
        spec.health_plan()?;
        let service = spec.key()?;
        let mut out = Vec::new();
        if let Some(h) = &spec.health {
            out.push(HealthUpdate::Service {
                service,
                health: h.clone(),
            });
        }
        for s in spec.servers.iter().flatten() {
            if s.has_health_keys() {
                out.push(HealthUpdate::Server {
                    service,
                    server: s.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The update a server body carries, checked (paths relative to the
    /// body); `None` when it has no health key.
    pub fn of_server(
        service: ServiceKey,
        server: &ServerSpec,
    ) -> Result<Option<HealthUpdate>, SpecError> {
        if !server.has_health_keys() {
            return Ok(None);
        }
        server_settings(None, server)?;
        server.addr_port(&service)?;
        Ok(Some(HealthUpdate::Server {
            service,
            server: server.clone(),
        }))
    }
}

/// An error at the root of a body, for data planes that refuse health keys.
pub fn no_health_checks() -> SpecError {
    SpecError::new(
        Path::root(),
        "this data plane runs no health checks; remove the health keys",
    )
}

/// `GET /v1/health`: every service's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthList {
    /// Probes running now, all services.
    pub probes_in_flight: u64,
    /// The services, in creation order.
    pub services: Vec<ServiceHealthStatus>,
}

/// One service's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceHealthStatus {
    /// The service.
    pub id: ServiceId,
    /// Whether the service has quorum.
    pub quorum_up: bool,
    /// The quorum setting.
    pub quorum: u32,
    /// The hysteresis setting.
    pub hysteresis: u32,
    /// Total effective weight of the servers that are up.
    pub alive_weight: u64,
    /// Failed servers stay at weight 0 rather than leave the table.
    pub inhibit_on_failure: bool,
    /// The configured sorry server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<String>,
    /// Whether the sorry server is in the table now.
    pub sorry_in_use: bool,
    /// The servers, in address order.
    pub servers: Vec<ServerHealthStatus>,
}

/// One real server's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerHealthStatus {
    /// `IP:PORT`.
    pub server: String,
    /// Whether the server is up.
    pub up: bool,
    /// Its configured weight.
    pub weight: u32,
    /// The weight it has in the table, `None` while it is out of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_weight: Option<u32>,
    /// Its checkers, in configuration order.
    pub checkers: Vec<CheckerStatus>,
    /// Seconds since its last change of state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_age_s: Option<f64>,
    /// Unix time of its last change of state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_unix: Option<f64>,
    /// Why it last changed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// Failed probes by reason since the server was added.
    pub failures: std::collections::BTreeMap<String, u64>,
}

/// One checker's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckerStatus {
    /// `tcp`, `http`, `https`, `udp`, `dns` or `misc`.
    pub kind: String,
    /// The address probed (`misc` checks: the server's).
    pub target: String,
    /// Whether the checker is up.
    pub up: bool,
    /// Latency of its last successful probe, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<u64>,
    /// Whether a probe is running.
    pub in_flight: bool,
}
