//! The configuration of `rvsd`: a TOML file read by [`parse`] into a
//! checked [`Config`], its conversion to the core's types, and [`diff()`],
//! which turns one rule set into another with the fewest changes.
//!
//! Every table refuses keys it does not know. Errors point at the value at
//! fault as `FILE:LINE:COLUMN: message` (1-based line and character column),
//! for syntax and type errors (from the TOML parser's spans) as well as for
//! the rules checked after reading (addresses, schedulers, flags, the object
//! model's rules, duplicates), which are located by their key's path.
//!
//! ```toml
//! [director]
//! expire_nodest_conn = true
//!
//! [[service]]
//! protocol = "tcp"
//! address = "192.0.2.10:80"
//! scheduler = "wrr"
//!
//! [[service.server]]
//! address = "10.0.0.1:8080"
//! weight = 3
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod diff;
pub mod failover;
pub mod health;
pub mod settings;
pub mod spec;

use std::collections::HashMap;

use rvs_core::director::DirectorConfig;
use rvs_core::model::{DestConfig, ServiceConfig, ServiceKey, Sysctls, Timeouts};
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

pub use diff::{Op, diff};
pub use failover::{
    SyncRoleSetting, SyncSpec, VrrpInstance, VrrpInstanceSpec, VrrpSyncGroup, VrrpSyncGroupSpec,
};
pub use health::{
    CheckSpec, CheckType, HealthPlan, HealthSettings, HealthSpec, Seconds, ServerHealthSettings,
    ServiceHealthSettings,
};
pub use settings::{
    ControlSettings, DataplaneMode, DataplaneSettings, DirectorSettings, MAX_BUSY_POLL_US,
    MetricsSettings, PacketBackend, ProxySettings, TimeoutSettings, check_busy_poll_us,
    check_interface_name,
};
pub use spec::{Path, PathSeg, ProxyProtocol, ServerSpec, ServiceSpec, SpecError};

/// The configuration file as written: every table, before the rules are
/// checked. [`parse`] turns it into a [`Config`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[director]`: sysctls, timeouts, connection-table capacity.
    #[serde(default)]
    pub director: DirectorSettings,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// `[control]`: the control API socket.
    #[serde(default)]
    pub control: ControlSettings,
    /// `[proxy]`: the userspace L4 proxy.
    #[serde(default)]
    pub proxy: ProxySettings,
    /// `[dataplane]`: proxy or packet data plane.
    #[serde(default)]
    pub dataplane: DataplaneSettings,
    /// `[health]`: the health-check runtime.
    #[serde(default)]
    pub health: HealthSettings,
    /// `[[service]]`: the virtual services and their servers.
    #[serde(default, rename = "service", skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// `[[vrrp_instance]]`: director failover with VRRP.
    #[serde(
        default,
        rename = "vrrp_instance",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub vrrp_instances: Vec<VrrpInstanceSpec>,
    /// `[[vrrp_sync_group]]`: instances that change state together.
    #[serde(
        default,
        rename = "vrrp_sync_group",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub vrrp_sync_groups: Vec<VrrpSyncGroupSpec>,
    /// `[sync]`: connection synchronisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncSpec>,
}

/// A checked service of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service as the core takes it.
    pub config: ServiceConfig,
    /// Its real servers, in file order.
    pub servers: Vec<DestConfig>,
    /// PROXY protocol towards its servers (proxy data plane).
    pub proxy_protocol: ProxyProtocol,
    /// The service as a spec, normalised as [`ServiceSpec::from_core`]
    /// writes it, with its health tables as written.
    pub spec: ServiceSpec,
    /// Its health settings and its servers', checked.
    pub health: HealthPlan,
}

/// A checked configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `[director]`.
    pub director: DirectorSettings,
    /// `[metrics]`.
    pub metrics: MetricsSettings,
    /// `[control]`.
    pub control: ControlSettings,
    /// `[proxy]`.
    pub proxy: ProxySettings,
    /// `[dataplane]`.
    pub dataplane: DataplaneSettings,
    /// `[health]`.
    pub health: HealthSettings,
    /// The services in file order.
    pub services: Vec<Service>,
    /// The VRRP instances as written (checked).
    pub vrrp_instance_specs: Vec<VrrpInstanceSpec>,
    /// The VRRP instances, checked, in file order.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// The sync groups as written (checked).
    pub vrrp_sync_group_specs: Vec<VrrpSyncGroupSpec>,
    /// The sync groups, checked, in file order.
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    /// `[sync]`, checked.
    pub sync: Option<SyncSpec>,
}

impl Config {
    /// The services and their servers as the core takes them, in file order.
    pub fn services(&self) -> Vec<(ServiceConfig, Vec<DestConfig>)> {
        self.services
            .iter()
            .map(|s| (s.config.clone(), s.servers.clone()))
            .collect()
    }

    /// The sysctls of `[director]`.
    pub fn sysctls(&self) -> Sysctls {
        self.director.sysctls()
    }

    /// The timeouts of `[director.timeouts]`.
    pub fn timeouts(&self) -> Timeouts {
        self.director.timeouts.to_core()
    }

    /// How to build the director; the hash key and the seed of its random
    /// source are drawn by the caller (this crate draws no randomness).
    pub fn director_config(&self, hash_key: [u64; 4], rng_seed: u64) -> DirectorConfig {
        DirectorConfig {
            conn_capacity: self.director.conn_capacity,
            hash_key,
            rng_seed,
            sysctls: self.sysctls(),
            random_start: self.director.random_start,
        }
    }

    /// The configuration as a [`ConfigFile`], for writing back as TOML.
    pub fn to_file(&self) -> ConfigFile {
        ConfigFile {
            director: self.director.clone(),
            metrics: self.metrics.clone(),
            control: self.control.clone(),
            proxy: self.proxy.clone(),
            dataplane: self.dataplane.clone(),
            health: self.health.clone(),
            services: self.services.iter().map(|s| s.spec.clone()).collect(),
            vrrp_instances: self.vrrp_instance_specs.clone(),
            vrrp_sync_groups: self.vrrp_sync_group_specs.clone(),
            sync: self.sync.clone(),
        }
    }
}

/// A configuration error at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The file name as given to [`parse`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// 1-based line and character column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

struct Located<'a> {
    text: &'a str,
    file: &'a str,
    root: Option<DeValue<'a>>,
}

impl Located<'_> {
    fn at_offset(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_column(self.text, offset);
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The start of the value at `path`, or of its deepest present ancestor
    /// when the key itself is absent (a defaulted value is judged where its
    /// table is).
    fn offset_of(&self, path: &Path) -> usize {
        let Some(mut cur) = self.root.as_ref() else {
            return 0;
        };
        let mut offset = 0;
        for seg in &path.0 {
            let next = match seg {
                PathSeg::Key(k) => cur.get(*k),
                PathSeg::Index(i) => cur.get(*i),
            };
            match next {
                Some(v) => {
                    offset = v.span().start;
                    cur = v.get_ref();
                }
                None => break,
            }
        }
        offset
    }

    fn at_path(&self, path: &Path, message: impl Into<String>) -> ConfigError {
        self.at_offset(self.offset_of(path), message)
    }
}

/// Reads a configuration; `file` is only used in error messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let mut loc = Located {
        text,
        file,
        root: None,
    };
    let table = DeTable::parse(text).map_err(|e| toml_error(&loc, &e))?;
    loc.root = Some(DeValue::Table(table.into_inner()));
    let raw: ConfigFile = toml::from_str(text).map_err(|e| toml_error(&loc, &e))?;
    check(&raw, &loc)
}

/// `written` as [`ServiceSpec::from_core`] writes it, keeping its health keys.
fn normalised(
    config: &ServiceConfig,
    servers: &[DestConfig],
    written: &ServiceSpec,
) -> ServiceSpec {
    let mut spec = ServiceSpec::from_core(config, Some(servers), written.proxy_protocol);
    spec.health = written.health.clone();
    let raw = written.servers.as_deref().unwrap_or_default();
    for (out, w) in spec.servers.iter_mut().flatten().zip(raw) {
        *out = out.with_health_of(w);
    }
    spec
}

fn toml_error(loc: &Located<'_>, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    loc.at_offset(offset, e.message().trim_end())
}

fn check(raw: &ConfigFile, loc: &Located<'_>) -> Result<Config, ConfigError> {
    let top = Path::root();
    if let Some((key, err)) = raw.director.check() {
        return Err(loc.at_path(&top.key("director").join(&key), err));
    }
    if let Some((key, err)) = raw.proxy.check() {
        return Err(loc.at_path(&top.key("proxy").join(&key), err));
    }
    if let Some((key, err)) = raw.dataplane.check() {
        return Err(loc.at_path(&top.key("dataplane").join(&key), err));
    }
    if let Err(e) = raw.health.check() {
        return Err(loc.at_path(&top.key("health").join(&e.path), e.message));
    }
    let mut services = Vec::with_capacity(raw.services.len());
    let mut seen: HashMap<ServiceKey, usize> = HashMap::new();
    for (i, spec) in raw.services.iter().enumerate() {
        let at = top.key("service").index(i);
        let (config, servers) = spec
            .to_core()
            .map_err(|e| loc.at_path(&at.join(&e.path), e.message))?;
        let health = spec
            .health_plan()
            .map_err(|e| loc.at_path(&at.join(&e.path), e.message))?;
        if let Some(&first) = seen.get(&config.key) {
            let where_key = if spec.fwmark.is_some() {
                "fwmark"
            } else {
                "address"
            };
            let (line, _) = line_column(loc.text, loc.offset_of(&top.key("service").index(first)));
            return Err(loc.at_path(
                &at.key(where_key),
                format!(
                    "duplicate service {} (first defined at line {line})",
                    config.key
                ),
            ));
        }
        seen.insert(config.key, i);
        services.push(Service {
            proxy_protocol: spec.proxy_protocol,
            spec: normalised(&config, &servers, spec),
            config,
            servers,
            health,
        });
    }
    let mut vrrp_instances: Vec<VrrpInstance> = Vec::new();
    for (i, spec) in raw.vrrp_instances.iter().enumerate() {
        let at = top.key("vrrp_instance").index(i);
        let inst = spec
            .to_instance()
            .map_err(|(p, m)| loc.at_path(&at.join(&p), m))?;
        if let Some(first) = vrrp_instances.iter().position(|x| x.name == inst.name) {
            let (line, _) = line_column(
                loc.text,
                loc.offset_of(&top.key("vrrp_instance").index(first)),
            );
            return Err(loc.at_path(
                &at.key("name"),
                format!(
                    "duplicate vrrp_instance {:?} (first defined at line {line})",
                    inst.name
                ),
            ));
        }
        if let Some(first) = vrrp_instances
            .iter()
            // IPv4 and IPv6 virtual routers are separate (RFC 5798 §5.2.3):
            // one VRID may serve both families on an interface.
            .position(|x| {
                x.vrrp.vrid == inst.vrrp.vrid
                    && x.interface == inst.interface
                    && x.vrrp.primary_addr.is_ipv4() == inst.vrrp.primary_addr.is_ipv4()
            })
        {
            return Err(loc.at_path(
                &at.key("virtual_router_id"),
                format!(
                    "virtual_router_id {} is already used on {} by vrrp_instance {:?}",
                    inst.vrrp.vrid, inst.interface, vrrp_instances[first].name
                ),
            ));
        }
        vrrp_instances.push(inst);
    }
    let mut vrrp_sync_groups: Vec<VrrpSyncGroup> = Vec::new();
    for (i, spec) in raw.vrrp_sync_groups.iter().enumerate() {
        let at = top.key("vrrp_sync_group").index(i);
        let g = spec
            .to_group(&vrrp_instances, &vrrp_sync_groups)
            .map_err(|(p, m)| loc.at_path(&at.join(&p), m))?;
        vrrp_sync_groups.push(g);
    }
    if let Some(sync) = &raw.sync {
        sync.check(&vrrp_instances)
            .map_err(|(p, m)| loc.at_path(&top.key("sync").join(&p), m))?;
    }
    Ok(Config {
        sync: raw.sync.clone(),
        vrrp_instance_specs: raw.vrrp_instances.clone(),
        vrrp_instances,
        vrrp_sync_group_specs: raw.vrrp_sync_groups.clone(),
        vrrp_sync_groups,
        director: raw.director.clone(),
        metrics: raw.metrics.clone(),
        control: raw.control.clone(),
        proxy: raw.proxy.clone(),
        dataplane: raw.dataplane.clone(),
        health: raw.health.clone(),
        services,
    })
}
