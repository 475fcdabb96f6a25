//! The running daemon: data plane, signals, reload, drain.

use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_proxy::{Engine, EngineConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::{Args, load};

/// Randomness for the director's hash key and seed, from the standard
/// library's per-process random keys.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(rvs_proxy::now_ms());
    h.finish()
}

/// Starts the control API on its Unix socket (`--control`, `[control]
/// socket`, or the default path for this user), serving the engine until
/// the process exits. A socket that cannot be bound is an error: a daemon
/// nobody can manage should not run.
pub fn start_control(
    control: Arc<dyn rvs_api::Control>,
    path: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, String> {
    let path = path.map_or_else(
        rvs_control::default_socket_path,
        std::path::Path::to_path_buf,
    );
    let listener =
        rvs_control::bind(&path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "control API listening");
    tokio::spawn(rvs_control::serve(
        listener,
        control,
        std::future::pending(),
    ));
    Ok(path)
}

/// Builds the engine for a loaded configuration (inside a runtime).
pub fn engine_for(cfg: &rvs_config::Config) -> Engine {
    let e = Engine::new(EngineConfig {
        proxy: cfg.proxy.clone(),
        director: cfg.director_config(
            [random_u64(), random_u64(), random_u64(), random_u64()],
            random_u64(),
        ),
        timeouts: cfg.timeouts(),
        tick: Duration::from_secs(1),
    });
    for s in &cfg.services {
        e.set_proxy_protocol(s.config.key, s.proxy_protocol);
    }
    e
}

/// The data plane the daemon runs.
#[derive(Debug, Clone)]
pub enum Plane {
    /// The userspace L4 proxy.
    Proxy(Engine),
    /// The packet data plane.
    Packet(rvs_dataplane::Dataplane),
}

impl Plane {
    pub fn control(&self) -> Arc<dyn rvs_api::Control> {
        match self {
            Plane::Proxy(e) => Arc::new(e.clone()),
            Plane::Packet(d) => Arc::new(d.clone()),
        }
    }

    pub fn collector(&self) -> Box<dyn prometheus_client::collector::Collector> {
        match self {
            Plane::Proxy(e) => Box::new(crate::metrics::EngineCollector::new(e.clone())),
            Plane::Packet(d) => Box::new(crate::metrics::PacketCollector::new(d.clone())),
        }
    }

    pub fn rules(
        &self,
    ) -> Vec<(
        rvs_core::model::ServiceConfig,
        Vec<rvs_core::model::DestConfig>,
    )> {
        match self {
            Plane::Proxy(e) => e.rules(),
            Plane::Packet(d) => d.rules(),
        }
    }

    /// The method a server gets when a command names none: masq on the
    /// proxy plane, direct routing on the packet plane (as ipvsadm).
    pub fn default_forward(&self) -> rvs_core::model::Forward {
        match self {
            Plane::Proxy(_) => rvs_core::model::Forward::Masq,
            Plane::Packet(_) => rvs_core::model::Forward::Route,
        }
    }

    /// Applies control commands to the data plane, all or nothing.
    pub fn apply(&self, cmds: &[rvs_ipvsadm::Command]) -> Result<(), rvs_api::ControlError> {
        match self {
            Plane::Proxy(e) => rvs_api::Control::apply(e, cmds),
            Plane::Packet(d) => rvs_api::Control::apply(d, cmds),
        }
    }

    /// Refuses what this data plane cannot run.
    pub fn refuse_unsupported(
        &self,
        cmd: &rvs_ipvsadm::Command,
    ) -> Result<(), rvs_api::ControlError> {
        match self {
            Plane::Proxy(_) => rvs_proxy::refuse_unsupported(cmd),
            Plane::Packet(_) => Ok(()),
        }
    }

    pub fn apply_ops(&self, ops: &[rvs_config::Op]) -> Result<(), rvs_api::ControlError> {
        match self {
            Plane::Proxy(e) => e.apply_ops(ops),
            Plane::Packet(d) => {
                let cmds: Vec<_> = ops.iter().map(rvs_proxy::command_of).collect();
                rvs_api::Control::apply(d, &cmds)
            }
        }
    }
}

/// The instances `[sync] resync` holds back, the gate the sync daemons
/// open when the table has arrived, and how long the instances wait for it.
pub(crate) struct ResyncGate {
    instances: Vec<String>,
    gate: Arc<std::sync::atomic::AtomicBool>,
    timeout_ms: u64,
}

/// The instances that wait for the resynchronisation (`[sync] resync =
/// true` with `role = "vrrp"`): the followed instance and the other members
/// of its sync group. The group moves together, so a member left ungated
/// would preempt on its own and take the followed instance with it before
/// the table has arrived.
fn gated_instances(cfg: &rvs_config::Config) -> Vec<String> {
    let Some(followed) = cfg
        .sync
        .as_ref()
        .filter(|s| s.resync)
        .and_then(|s| s.followed(&cfg.vrrp_instances))
    else {
        return Vec::new();
    };
    let at = cfg.vrrp_instances.iter().position(|i| i.name == followed);
    match cfg
        .vrrp_sync_groups
        .iter()
        .find(|g| at.is_some_and(|at| g.members.contains(&at)))
    {
        Some(g) => g
            .members
            .iter()
            .map(|&m| cfg.vrrp_instances[m].name.clone())
            .collect(),
        None => vec![followed.to_string()],
    }
}

/// `[sync] resync = true` with `role = "vrrp"`: the gated instances wait
/// for the resynchronisation before they preempt.
fn resync_gate(
    cfg: &rvs_config::Config,
    syncd: Option<&Arc<rvs_ha::sync::SyncDaemons>>,
) -> Option<ResyncGate> {
    let instances = gated_instances(cfg);
    if instances.is_empty() {
        return None;
    }
    Some(ResyncGate {
        instances,
        gate: syncd?.ready_gate(),
        timeout_ms: cfg.sync.as_ref()?.resync_timeout.0,
    })
}

/// Starts the `[[vrrp_instance]]`s, if any, reporting on `board`.
fn start_vrrp(
    cfg: &rvs_config::Config,
    hook: Option<rvs_ha::StateHook>,
    control: Arc<dyn rvs_api::Control>,
    board: rvs_ha::StatusBoard,
    gate: Option<ResyncGate>,
) -> Result<Option<rvs_ha::Vrrp>, String> {
    if cfg.vrrp_instances.is_empty() {
        return Ok(None);
    }
    let instances = vrrp_instances(cfg, control, gate.as_ref())?;
    let groups = sync_groups(cfg);
    let (n, ng) = (instances.len(), groups.len());
    let v =
        rvs_ha::Vrrp::start_on(board, instances, groups, hook).map_err(|e| format!("VRRP: {e}"))?;
    tracing::info!(instances = n, sync_groups = ng, "VRRP running");
    Ok(Some(v))
}

/// The I/O layer's view of the `[[vrrp_instance]]`s: advert sources read
/// from the interfaces where not configured, trackers wired to the links
/// and to the services' quorum.
pub(crate) fn vrrp_instances(
    cfg: &rvs_config::Config,
    control: Arc<dyn rvs_api::Control>,
    gate: Option<&ResyncGate>,
) -> Result<Vec<rvs_ha::InstanceConfig>, String> {
    let mut instances = Vec::new();
    for i in &cfg.vrrp_instances {
        let mut vrrp = i.vrrp.clone();
        if vrrp.primary_addr.is_unspecified() {
            let a: std::net::IpAddr = if vrrp.primary_addr.is_ipv6() {
                rvs_ha::interface_link_local(&i.interface, &vrrp.vips).map(Into::into)
            } else {
                rvs_ha::interface_ipv4(&i.interface, &vrrp.vips).map(Into::into)
            }
            .map_err(|e| format!("vrrp_instance {}: {e}", i.name))?;
            vrrp.primary_addr = a;
        }
        let mut trackers: Vec<rvs_ha::TrackFn> = i
            .track_interfaces
            .iter()
            .map(|name| {
                let name = name.clone();
                Box::new(move || rvs_ha::link_up(&name)) as rvs_ha::TrackFn
            })
            .collect();
        for (key, quorum) in &i.track_services {
            let (key, quorum, control) = (*key, *quorum, control.clone());
            trackers.push(Box::new(move || {
                // Up while the weights of its servers reach the quorum.
                control
                    .services()
                    .iter()
                    .find(|s| s.config.key == key)
                    .is_some_and(|s| {
                        s.dests
                            .iter()
                            .map(|d| u64::from(d.config.weight))
                            .sum::<u64>()
                            >= u64::from(quorum)
                    })
            }));
        }
        let [master, backup, fault, stop, any] = i.notify.clone();
        let ready_gate = match gate {
            Some(g) if g.instances.contains(&i.name) => {
                vrrp.ready_timeout_ms = Some(g.timeout_ms);
                Some(g.gate.clone())
            }
            _ => None,
        };
        instances.push(rvs_ha::InstanceConfig {
            name: i.name.clone(),
            interface: i.interface.clone(),
            vrrp,
            vip_prefix: i.vip_prefix.clone(),
            vip_interfaces: i.vip_interfaces.clone(),
            version: i.version,
            unicast_peers: i.unicast_peers.clone(),
            auth_pass: i.auth_pass,
            garp_interval_ms: i.garp_interval_ms,
            notify: rvs_ha::Notify {
                master,
                backup,
                fault,
                stop,
                any,
            },
            trackers,
            ready_gate,
        });
    }
    Ok(instances)
}

/// The `[[vrrp_sync_group]]`s as the I/O layer runs them.
pub(crate) fn sync_groups(cfg: &rvs_config::Config) -> Vec<rvs_ha::SyncGroupConfig> {
    cfg.vrrp_sync_groups
        .iter()
        .map(|g| {
            let [master, backup, fault, stop, any] = g.notify.clone();
            rvs_ha::SyncGroupConfig {
                name: g.name.clone(),
                members: g.members.clone(),
                notify: rvs_ha::Notify {
                    master,
                    backup,
                    fault,
                    stop,
                    any,
                },
            }
        })
        .collect()
}

/// The data plane's control API plus the sync daemons (`--start-daemon`,
/// `--stop-daemon`, `-L --daemon`).
struct WithSync {
    plane: Arc<dyn rvs_api::Control>,
    syncd: Option<Arc<rvs_ha::sync::SyncDaemons>>,
}

fn role_of(r: rvs_api::DaemonRole) -> rvs_ha::sync::Role {
    match r {
        rvs_api::DaemonRole::Master => rvs_ha::sync::Role::Master,
        rvs_api::DaemonRole::Backup => rvs_ha::sync::Role::Backup,
    }
}

impl rvs_api::Control for WithSync {
    fn apply(&self, cmds: &[rvs_ipvsadm::Command]) -> Result<(), rvs_api::ControlError> {
        self.plane.apply(cmds)
    }
    fn services(&self) -> Vec<rvs_core::director::ServiceSnapshot> {
        self.plane.services()
    }
    fn connections(&self) -> Vec<rvs_core::director::ConnSnapshot> {
        self.plane.connections()
    }
    fn timeouts(&self) -> rvs_core::model::Timeouts {
        self.plane.timeouts()
    }
    fn apply_health(
        &self,
        cmds: &[rvs_ipvsadm::Command],
        health: &[rvs_api::HealthUpdate],
    ) -> Result<(), rvs_api::ControlError> {
        self.plane.apply_health(cmds, health)
    }
    fn health(&self) -> Option<rvs_api::HealthList> {
        self.plane.health()
    }
    fn start_daemon(&self, spec: &rvs_api::DaemonSpec) -> Result<(), rvs_api::ControlError> {
        let bad = |status: u16, message: String| rvs_api::ControlError { status, message };
        let Some(syncd) = &self.syncd else {
            return self.plane.start_daemon(spec);
        };
        rvs_config::check_interface_name(&spec.mcast_interface)
            .map_err(|m| bad(422, format!("mcast_interface: {m}")))?;
        let group = match spec.mcast_group {
            None => None,
            Some(std::net::IpAddr::V4(g)) if g.is_multicast() => Some(g),
            Some(g) => {
                return Err(bad(
                    422,
                    format!("mcast_group: {g} is not an IPv4 multicast address"),
                ));
            }
        };
        let cfg = rvs_ha::sync::SyncDaemonConfig {
            maxlen: spec.sync_maxlen.map(usize::from),
            group,
            port: spec.mcast_port,
            ttl: spec.mcast_ttl,
            ..rvs_ha::sync::SyncDaemonConfig::new(
                role_of(spec.role),
                &spec.mcast_interface,
                spec.syncid,
            )
        };
        syncd.start(cfg).map_err(|e| match e {
            // ipvsadm's words for the kernel's EEXIST.
            rvs_ha::sync::StartError::Running(_) => bad(409, "Daemon has already run".into()),
            rvs_ha::sync::StartError::Io(e) => bad(422, e.to_string()),
        })
    }
    fn stop_daemon(&self, role: rvs_api::DaemonRole) -> Result<bool, rvs_api::ControlError> {
        Ok(self.syncd.as_ref().is_some_and(|s| s.stop(role_of(role))))
    }
    fn daemons(&self) -> Vec<rvs_api::DaemonSpec> {
        let Some(syncd) = &self.syncd else {
            return Vec::new();
        };
        syncd
            .configs()
            .into_iter()
            .map(|c| rvs_api::DaemonSpec {
                role: match c.role {
                    rvs_ha::sync::Role::Master => rvs_api::DaemonRole::Master,
                    rvs_ha::sync::Role::Backup => rvs_api::DaemonRole::Backup,
                },
                mcast_interface: c.interface,
                syncid: c.sync_id,
                mcast_group: c.group.map(Into::into),
                mcast_port: c.port,
                mcast_ttl: c.ttl,
                sync_maxlen: c.maxlen.and_then(|m| u16::try_from(m).ok()),
            })
            .collect()
    }
}

/// The sync daemon settings of `[sync]` for `role`.
fn sync_config(
    s: &rvs_config::SyncSpec,
    role: rvs_ha::sync::Role,
) -> rvs_ha::sync::SyncDaemonConfig {
    rvs_ha::sync::SyncDaemonConfig {
        maxlen: s.maxlen.map(usize::from),
        group: s.mcast_group,
        port: s.port,
        ttl: s.ttl,
        unicast_peer: s.unicast_peer,
        resync: s.resync.then(|| rvs_ha::sync::ResyncSettings {
            port: s
                .resync_port
                .unwrap_or(rvs_ha::sync::ResyncSettings::default().port),
            timeout_ms: s.resync_timeout.0,
        }),
        ..rvs_ha::sync::SyncDaemonConfig::new(role, &s.interface, s.sync_id)
    }
}

/// Starts `[sync]`'s daemon, or returns the VRRP hook that moves the role
/// with the followed instance (`role = "vrrp"`: master daemon while
/// MASTER, backup daemon otherwise, as keepalived's `lvs_sync_daemon`).
pub(crate) fn start_sync(
    cfg: &rvs_config::Config,
    syncd: Option<&Arc<rvs_ha::sync::SyncDaemons>>,
) -> Result<Option<rvs_ha::StateHook>, String> {
    use rvs_ha::sync::Role;
    let Some(spec) = &cfg.sync else {
        return Ok(None);
    };
    let Some(syncd) = syncd else {
        return Err(
            "[sync] needs the packet data plane (--dataplane packet): proxied \
             connections cannot move to another director"
                .into(),
        );
    };
    let fixed = match spec.role {
        rvs_config::SyncRoleSetting::Master => Some(Role::Master),
        rvs_config::SyncRoleSetting::Backup => Some(Role::Backup),
        rvs_config::SyncRoleSetting::Vrrp => None,
    };
    if let Some(role) = fixed {
        syncd
            .start(sync_config(spec, role))
            .map_err(|e| format!("sync daemon: {e}"))?;
        return Ok(None);
    }
    let followed = spec
        .followed(&cfg.vrrp_instances)
        .unwrap_or_default()
        .to_string();
    let (syncd, spec) = (syncd.clone(), spec.clone());
    // One lock for the whole hook: see `FaultResync`.
    let seen = std::sync::Mutex::new(FaultResync::new(gated_instances(cfg)));
    Ok(Some(Arc::new(
        move |name: &str, state: rvs_core::vrrp::VrrpState| {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            if name == followed {
                let (want, other) = if state == rvs_core::vrrp::VrrpState::Master {
                    (Role::Master, Role::Backup)
                } else {
                    (Role::Backup, Role::Master)
                };
                syncd.stop(other);
                if !syncd.running(want)
                    && let Err(e) = syncd.start(sync_config(&spec, want))
                {
                    tracing::error!(error = %e, role = want.name(), "cannot start the sync daemon");
                }
            }
            if seen.observe(name, state) {
                // Closes the gate while the lock is held, so that a member
                // leaving FAULT at the same moment waits here and then
                // reads "closed", never the last run's "open".
                syncd.resync();
            }
        },
    )))
}

/// Decides when leaving FAULT calls for a new resynchronisation: the table
/// missed the sync messages of the meantime, so it is fetched again before
/// the gated instances may preempt. Only the first gated member to leave
/// FAULT asks. A sync group's members follow their first a few
/// milliseconds apart; a later member that asked again would close the
/// gate after that resynchronisation had ended, and hold itself back while
/// its peers preempt.
struct FaultResync {
    gated: Vec<String>,
    last: std::collections::HashMap<String, rvs_core::vrrp::VrrpState>,
    /// A gated member went to FAULT since the last resynchronisation.
    stale: bool,
}

impl FaultResync {
    fn new(gated: Vec<String>) -> Self {
        Self {
            gated,
            last: std::collections::HashMap::new(),
            stale: false,
        }
    }

    /// Records `name`'s new state; true when it must resynchronise now.
    fn observe(&mut self, name: &str, state: rvs_core::vrrp::VrrpState) -> bool {
        use rvs_core::vrrp::VrrpState;
        let from = self.last.insert(name.to_string(), state);
        if !self.gated.iter().any(|g| g == name) {
            return false;
        }
        if state == VrrpState::Fault {
            self.stale = true;
            return false;
        }
        let ask = from == Some(VrrpState::Fault) && state == VrrpState::Backup && self.stale;
        if ask {
            self.stale = false;
        }
        ask
    }
}

/// Starts the packet data plane for a loaded configuration.
fn packet_plane(loaded: &crate::Loaded) -> Result<rvs_dataplane::Dataplane, String> {
    let cfg = &loaded.config;
    rvs_dataplane::Dataplane::start(rvs_dataplane::DataplaneConfig {
        backend: crate::packet_backend(loaded.dataplane.backend),
        interfaces: loaded.dataplane.interfaces.clone(),
        workers: loaded.dataplane.workers,
        // One stable table name per namespace: a restart after a crash
        // replaces the table the crashed run left.
        instance: "rvsd".into(),
        forwarder: rvs_forward::ForwarderConfig {
            director: cfg.director_config(
                [random_u64(), random_u64(), random_u64(), random_u64()],
                random_u64(),
            ),
            ..rvs_forward::ForwarderConfig::default()
        },
        timeouts: cfg.timeouts(),
        busy_poll_us: loaded.dataplane.busy_poll_us,
        ..rvs_dataplane::DataplaneConfig::default()
    })
    .map_err(|e| format!("rvsd: packet data plane: {e}"))
}

pub fn run(args: Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rvsd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async_run(args))
}

async fn async_run(args: Args) -> ExitCode {
    let (loaded, demo) = if args.demo {
        match crate::demo::start().await {
            Ok(x) => (x.0, Some(x.1)),
            Err(e) => {
                eprintln!("rvsd: demo: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        match load(&args) {
            Ok(l) => (l, None),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    };
    let plane = match loaded.dataplane.mode {
        rvs_config::DataplaneMode::Proxy => Plane::Proxy(engine_for(&loaded.config)),
        rvs_config::DataplaneMode::Packet => match packet_plane(&loaded) {
            Ok(d) => Plane::Packet(d),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
    };
    // Stops the packet data plane (and removes its nftables claim) on every
    // way out of this function.
    struct StopOnExit(Plane);
    impl Drop for StopOnExit {
        fn drop(&mut self) {
            if let Plane::Packet(d) = &self.0 {
                d.stop();
            }
        }
    }
    let _stop = StopOnExit(plane.clone());
    // Health checking loads the rules into the data plane: the operator's
    // table filtered by the servers' health.
    let health = match crate::health::Health::start(
        plane.clone(),
        &loaded.config.health,
        loaded.services.clone(),
        crate::health::specs_of(&loaded.config),
        random_u64(),
    ) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    let syncd = match &plane {
        Plane::Packet(d) => {
            let d = d.clone();
            Some(Arc::new(rvs_ha::sync::SyncDaemons::new(Arc::new(
                move |f: &mut dyn FnMut(&mut rvs_core::director::Director, u64)| {
                    d.with_director(|dir, now| f(dir, now))
                },
            ))))
        }
        Plane::Proxy(_) => None,
    };
    let control_path = args
        .control
        .clone()
        .map(std::path::PathBuf::from)
        .or_else(|| loaded.config.control.socket.clone());
    let control: Arc<dyn rvs_api::Control> = Arc::new(WithSync {
        plane: Arc::new(health.clone()),
        syncd: syncd.clone(),
    });
    let control_path = match start_control(control, control_path.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    let vrrp_board = rvs_ha::StatusBoard::default();
    let metrics = match args.metrics_listen(&loaded.config.metrics) {
        Some(listen) => {
            match crate::metrics::start(
                plane.collector(),
                Some(health.clone()),
                {
                    let mut extra: Vec<Box<dyn prometheus_client::collector::Collector>> =
                        vec![Box::new(crate::vrrp_metrics::VrrpCollector::new(
                            vrrp_board.clone(),
                        ))];
                    if let Some(s) = &syncd {
                        extra.push(Box::new(crate::metrics::SyncCollector::new(s.clone())));
                    }
                    extra
                },
                listen,
            ) {
                Ok(a) => Some(a),
                Err(e) => {
                    eprintln!("rvsd: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => None,
    };
    let hook = match start_sync(&loaded.config, syncd.as_ref()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    let gate = resync_gate(&loaded.config, syncd.as_ref());
    // The hook VRRP calls stays; what it forwards to changes when a
    // reload restarts the sync daemon.
    let sync_hook = Arc::new(std::sync::Mutex::new(hook));
    let forward = sync_hook.clone();
    let vrrp_hook: rvs_ha::StateHook = Arc::new(move |name: &str, state| {
        let h = forward.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(h) = h {
            h(name, state);
        }
    });
    let vrrp = match start_vrrp(
        &loaded.config,
        Some(vrrp_hook.clone()),
        plane.control(),
        vrrp_board.clone(),
        gate,
    ) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    let mut failover = crate::failover_reload::Failover {
        vrrp,
        sync: loaded.config.sync.clone(),
        sync_hook,
        vrrp_hook,
        syncd: syncd.clone(),
        board: vrrp_board,
    };
    tracing::info!(services = loaded.services.len(), "rvsd running");
    if let Some(backends) = demo {
        println!(
            "{}",
            crate::demo::banner(
                &backends,
                &control_path,
                &rvs_control::default_socket_path(),
                metrics,
            )
        );
    }
    let grace = Duration::from_secs(loaded.config.proxy.drain_grace_s);
    let (mut term, mut hup, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            eprintln!("rvsd: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&args, &plane, &health, &mut failover),
        }
    }
    let vrrp = failover.vrrp.take();
    // Masters send their priority-0 advert and give the addresses up
    // first: the backup takes over after its skew time, not 3 intervals.
    if let Some(v) = vrrp {
        let _ = tokio::task::spawn_blocking(move || v.stop()).await;
    }
    let engine = match &plane {
        Plane::Proxy(e) => e,
        Plane::Packet(_) => {
            // Packets in flight are not drained: the claim goes with the
            // data plane, and the kernel has the VIP traffic again.
            tracing::info!("exiting");
            return ExitCode::SUCCESS;
        }
    };
    engine.shutdown();
    tracing::info!(
        active = engine.active(),
        grace_s = grace.as_secs(),
        "stopped accepting; draining"
    );
    let deadline = Instant::now() + grace;
    while engine.active() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(left = engine.active(), "exiting");
    ExitCode::SUCCESS
}

/// SIGHUP: re-read the files and apply only the difference. Changes made
/// through the API that the files do not contain are undone (the files
/// are the wanted state). Health state is carried over: the difference is
/// taken against the health-filtered table (see `health`), so a failed
/// server stays out and checks keep their counters.
fn reload(
    args: &Args,
    plane: &Plane,
    health: &crate::health::Health,
    failover: &mut crate::failover_reload::Failover,
) {
    if args.demo {
        tracing::info!("SIGHUP ignored in the demo");
        return;
    }
    let loaded = match load(args) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "reload refused; running state unchanged");
            return;
        }
    };
    if let Plane::Packet(_) = plane
        && loaded.dataplane.mode != rvs_config::DataplaneMode::Packet
    {
        tracing::error!("reload refused: the data plane cannot change while running; restart rvsd");
        return;
    }
    if let Plane::Proxy(_) = plane
        && loaded.dataplane.mode != rvs_config::DataplaneMode::Proxy
    {
        tracing::error!("reload refused: the data plane cannot change while running; restart rvsd");
        return;
    }
    if let Plane::Proxy(engine) = plane {
        for s in &loaded.config.services {
            engine.set_proxy_protocol(s.config.key, s.proxy_protocol);
        }
    }
    // The VRRP instances are resolved (interfaces, advert sources) before
    // anything changes: one that cannot be refuses the whole reload.
    let gate = resync_gate(&loaded.config, failover.syncd.as_ref());
    let instances = match vrrp_instances(&loaded.config, plane.control(), gate.as_ref()) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "reload refused; running state unchanged");
            return;
        }
    };
    let specs = crate::health::specs_of(&loaded.config);
    match health.load(loaded.services.clone(), specs) {
        Ok(n) => tracing::info!(changes = n, "reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "reload refused; running state unchanged");
            return;
        }
    }
    failover.reload(&loaded.config, instances);
}

#[cfg(test)]
mod tests {
    use super::{FaultResync, gated_instances};
    use rvs_core::vrrp::VrrpState::{Backup, Fault, Initialize, Master};

    const INSTANCES: &str = r#"
[dataplane]
mode = "packet"
interfaces = ["eth0", "eth1"]

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.100/24"]

[[vrrp_instance]]
name = "VI_2"
interface = "eth1"
virtual_router_id = 52
virtual_ipaddress = ["198.51.100.1/24"]

[[vrrp_instance]]
name = "VI_3"
interface = "eth0"
virtual_router_id = 53
virtual_ipaddress = ["192.0.2.200/24"]
"#;

    fn gated(extra: &str) -> Vec<String> {
        let text = format!("{INSTANCES}{extra}");
        gated_instances(&rvs_config::parse(&text, "test.toml").unwrap())
    }

    #[test]
    fn resync_holds_back_the_followed_instance_and_its_sync_group() {
        let sync = "[sync]\nrole = \"vrrp\"\nvrrp_instance = \"VI_2\"\ninterface = \"eth1\"\n";
        let group = "[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\n";
        assert!(gated(&format!("{sync}{group}")).is_empty(), "resync off");
        let on = format!("{sync}resync = true\n");
        assert_eq!(gated(&on), ["VI_2"]);
        assert_eq!(gated(&format!("{on}{group}")), ["VI_1", "VI_2"]);
        let other = "[[vrrp_sync_group]]\nname = \"G2\"\ngroup = [\"VI_1\", \"VI_3\"]\n";
        assert_eq!(gated(&format!("{on}{other}")), ["VI_2"]);
        let fixed = "[sync]\nrole = \"backup\"\ninterface = \"eth1\"\nresync = true\n";
        assert!(gated(fixed).is_empty(), "no VRRP instance to hold back");
    }

    #[test]
    fn only_the_first_gated_member_back_from_fault_resynchronises() {
        let mut r = FaultResync::new(vec!["VI_1".into(), "VI_2".into()]);
        for (name, state) in [("VI_1", Initialize), ("VI_2", Initialize)] {
            assert!(!r.observe(name, state));
        }
        assert!(
            !r.observe("VI_1", Backup),
            "startup is not a return from FAULT"
        );
        assert!(!r.observe("VI_2", Backup));
        assert!(!r.observe("VI_3", Fault), "not gated");
        assert!(!r.observe("VI_3", Backup));
        // The group goes to FAULT and comes back, VI_2 first.
        assert!(!r.observe("VI_2", Fault));
        assert!(!r.observe("VI_1", Fault));
        assert!(r.observe("VI_2", Backup), "the first one back asks");
        assert!(
            !r.observe("VI_1", Backup),
            "the second must not close the gate again"
        );
        assert!(!r.observe("VI_1", Master));
        assert!(!r.observe("VI_2", Master));
        // A lone member's FAULT (no group) still asks on its way back.
        assert!(!r.observe("VI_1", Fault));
        assert!(r.observe("VI_1", Backup));
        // MASTER to BACKUP is no return from FAULT.
        assert!(!r.observe("VI_2", Backup));
    }
}
