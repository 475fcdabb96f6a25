//! Health checking: the task that runs every service's
//! [`ServiceHealth`], the probes it starts, and the table it keeps in the
//! engine.
//!
//! # Two tables
//!
//! The operator's table (the configuration, the API, `rvsadm`) is the
//! *configured* one; it is kept here. The engine runs the *health-filtered*
//! one: the configured servers that are up (or at weight 0 with
//! `inhibit_on_failure`), and the sorry server while quorum is lost. Every
//! change, whether a rule change, a reload or a health transition, goes the
//! same way: compute the filtered table from the configured one and the
//! health state, diff it against what the engine runs, apply the
//! difference. So a reload (SIGHUP) neither resets a server's health nor
//! re-enables a failed one: the diff is computed against the filtered view,
//! and checks whose settings changed are reconfigured in place
//! ([`ServiceHealth::reconfigure`]). `rvsadm -L` shows the engine's table,
//! as `ipvsadm -L` shows the kernel's under keepalived.
//!
//! A server deleted through the API or `rvsadm` loses its health state; a
//! server added gets its checks started. Health settings travel in service
//! and server bodies ([`HealthUpdate`]); a server edited without any health
//! key (`rvsadm -e`) keeps its checks.
//!
//! # The loop
//!
//! One task, on a thread and a single-threaded runtime of its own (so
//! that checks never take a worker from the data plane), sleeps until the earliest [`ServiceHealth::poll_timeout`] (or a
//! probe result, a data-plane report, a rule change), runs the timers that
//! are due, and starts the probes they ask for on one shared
//! [`Prober`] (at most `[health] max_in_flight` at once). Each probe runs
//! in its own task and sends its outcome back over a channel; nothing here
//! waits for a probe, a notify command or the data plane. The state sits
//! behind one mutex that the loop and the control API share; neither holds
//! it across an await.
//!
//! # Passive detection
//!
//! The proxy reports connect failures and the first success after them
//! ([`rvs_proxy::Engine::set_connect_observer`]); `passive_fall`
//! consecutive failures mark a server down at once
//! ([`ServiceHealth::passive_failure`]). A server with checks must then
//! pass `rise` probes; one without comes back after `passive_retry`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_api::{
    CheckerStatus, Control, ControlError, HealthList, HealthUpdate, ServerHealthStatus,
    ServiceHealthStatus, ServiceId,
};
use rvs_config::health::{
    HealthSpec, ServerHealthSettings, ServiceHealthSettings, server_settings,
};
use rvs_config::spec::ServerSpec;
use rvs_core::director::{ConnSnapshot, Director, DirectorConfig, ServiceSnapshot};
use rvs_core::health::{
    FailureReason, HealthAction, NotifyEvent, Outcome, ServiceHealth, TransitionReason,
};
use rvs_core::model::{DestConfig, Forward, ServiceConfig, ServiceKey, SockAddrDisplay, Timeouts};
use rvs_core::probe::ProbeKind;
use rvs_core::sched::SplitMix64;
use rvs_health::{CompiledProbe, Prober};
use rvs_ipvsadm::Command;
use rvs_proxy::{Engine, now_ms};
use tokio::sync::{Notify, mpsc};

use crate::notify::Notifier;

/// A service and its servers, as the core takes them.
pub type Rules = Vec<(ServiceConfig, Vec<DestConfig>)>;

/// The health keys as written, per service: the service's table and each
/// server's spec (only its health keys count).
pub type Specs = HashMap<ServiceKey, (Option<HealthSpec>, HashMap<SocketAddr, ServerSpec>)>;

/// The health runtime and the operator's table; cheap to clone. It is the
/// control API's [`Control`]: rule changes go through it to the engine.
#[derive(Debug, Clone)]
pub struct Health {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    engine: Engine,
    state: Mutex<State>,
    wake: Notify,
    prober: Prober,
    events: mpsc::Sender<Event>,
    notifier: Notifier,
}

#[derive(Debug)]
enum Event {
    Probe {
        service: ServiceKey,
        server: SocketAddr,
        checker: usize,
        generation: u64,
        outcome: Outcome,
        elapsed_ms: u64,
    },
    Connect {
        service: ServiceKey,
        server: SocketAddr,
        ok: bool,
    },
}

#[derive(Debug)]
struct State {
    /// The operator's table, services in creation order.
    configured: Rules,
    services: HashMap<ServiceKey, SvcState>,
    rng: SplitMix64,
    next_generation: u64,
}

#[derive(Debug, Clone)]
struct SvcState {
    spec: Option<HealthSpec>,
    settings: ServiceHealthSettings,
    health: ServiceHealth,
    servers: HashMap<SocketAddr, SrvState>,
    /// What health puts in the engine's table: server -> weight (the sorry
    /// server included).
    table: BTreeMap<SocketAddr, u32>,
}

#[derive(Debug, Clone)]
struct SrvState {
    spec: ServerSpec,
    settings: ServerHealthSettings,
    probes: Vec<CompiledProbe>,
    /// Results of probes started for an earlier incarnation are dropped.
    generation: u64,
    failures: BTreeMap<&'static str, u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn err(status: u16, message: impl Into<String>) -> ControlError {
    ControlError {
        status,
        message: message.into(),
    }
}

/// `tcp 127.0.0.1:8080`, as the log lines name a service.
pub fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { proto, addr, port } => format!(
            "{} {}",
            proto.name().to_ascii_lowercase(),
            SockAddrDisplay(*addr, *port)
        ),
        other => other.to_string(),
    }
}

fn server_name(s: SocketAddr) -> String {
    SockAddrDisplay(s.ip(), s.port()).to_string()
}

/// The `reason` label of a failed probe.
pub fn reason_label(r: FailureReason) -> &'static str {
    match r {
        FailureReason::Timeout => "timeout",
        FailureReason::Refused => "refused",
        FailureReason::BadStatus => "bad_status",
        FailureReason::BadBody => "bad_body",
        FailureReason::Unreachable => "unreachable",
        FailureReason::ExitCode(_) => "exit_code",
        FailureReason::Tls => "tls",
        FailureReason::Other => "other",
    }
}

/// What the log line of a transition adds: the check that caused it.
#[derive(Debug, Clone, Copy)]
struct Cause {
    kind: &'static str,
    elapsed_ms: u64,
}

/// The written health keys of the services in `rules`, from the specs of
/// a configuration (services only in a rules file have none).
pub fn specs_of(config: &rvs_config::Config) -> Specs {
    let mut out = Specs::new();
    for s in &config.services {
        let mut servers = HashMap::new();
        for w in s.spec.servers.iter().flatten() {
            if let Ok((addr, port)) = w.addr_port(&s.config.key) {
                servers.insert(SocketAddr::new(addr, port), w.clone());
            }
        }
        out.insert(s.config.key, (s.spec.health.clone(), servers));
    }
    out
}

impl Health {
    /// Starts health checking over `engine` (empty) and loads `rules`.
    /// Must be called inside the runtime.
    pub fn start(
        engine: Engine,
        settings: &rvs_config::HealthSettings,
        rules: Rules,
        specs: Specs,
        seed: u64,
    ) -> Result<Health, String> {
        let (tx, rx) = mpsc::channel(8192);
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            state: Mutex::new(State {
                configured: Vec::new(),
                services: HashMap::new(),
                rng: SplitMix64::new(seed),
                next_generation: 1,
            }),
            wake: Notify::new(),
            prober: Prober::new(settings.max_in_flight),
            events: tx.clone(),
            notifier: Notifier::new(
                settings.notify_max,
                Duration::from_millis(settings.notify_timeout.ms()),
            ),
        });
        let h = Health { shared };
        h.load(rules, specs).map_err(|e| e.message)?;
        engine.set_connect_observer(Arc::new(move |service, server, ok| {
            // A full queue drops the report: passive detection is then
            // late, the data plane never waits.
            let _ = tx.try_send(Event::Connect {
                service,
                server,
                ok,
            });
        }));
        // The loop and its probes run on a thread of their own: checks
        // never take a worker from the data plane, and a probe's wake-ups
        // stay on one thread.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("health checks: cannot start their runtime: {e}"))?;
        let shared = h.shared.clone();
        std::thread::Builder::new()
            .name("rvsd-health".into())
            .spawn(move || rt.block_on(run(shared, rx)))
            .map_err(|e| format!("health checks: cannot start their thread: {e}"))?;
        Ok(h)
    }

    /// Makes `rules` (with the health keys of `specs`) the operator's
    /// table: a reload. Health state is carried over; nothing changes on
    /// error.
    pub fn load(&self, rules: Rules, specs: Specs) -> Result<usize, ControlError> {
        let sh = &self.shared;
        let mut st = lock(&sh.state);
        sh.commit(&mut st, rules, specs, &[])
    }

    /// Every service's health.
    pub fn report(&self) -> HealthList {
        let sh = &self.shared;
        let st = lock(&sh.state);
        let now = now_ms();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut services = Vec::new();
        for (cfg, _) in &st.configured {
            let Some(s) = st.services.get(&cfg.key) else {
                continue;
            };
            let c = s.health.config();
            let mut servers = Vec::new();
            for (addr, h) in s.health.servers() {
                let srv = s.servers.get(&addr);
                let checkers = h
                    .checkers()
                    .iter()
                    .enumerate()
                    .map(|(i, ck)| {
                        let spec = srv.and_then(|x| x.settings.probes.get(i));
                        CheckerStatus {
                            kind: spec.map_or("?", |p| p.kind.name()).to_string(),
                            target: server_name(spec.map_or(addr, |p| match p.kind {
                                ProbeKind::Misc(_) => addr,
                                _ => p.target(addr),
                            })),
                            up: ck.is_up(),
                            last_latency_ms: ck.last_latency_ms(),
                            in_flight: ck.in_flight(),
                        }
                    })
                    .collect();
                let last = h.last_transition();
                let age = last.map(|(t, _)| now.saturating_sub(t) as f64 / 1000.0);
                servers.push(ServerHealthStatus {
                    server: server_name(addr),
                    up: h.is_up(),
                    weight: h.configured_weight(),
                    effective_weight: s.table.get(&addr).copied(),
                    checkers,
                    last_transition_age_s: age,
                    last_transition_unix: age.map(|a| wall - a),
                    last_reason: last.map(|(_, r)| r.to_string()),
                    failures: srv
                        .map(|x| {
                            x.failures
                                .iter()
                                .map(|(k, v)| (k.to_string(), *v))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            services.push(ServiceHealthStatus {
                id: ServiceId(cfg.key),
                quorum_up: s.health.quorum_up(),
                quorum: c.quorum,
                hysteresis: c.hysteresis,
                alive_weight: s.health.weight_sum(),
                inhibit_on_failure: c.inhibit_on_failure,
                sorry_server: c.sorry_server.map(server_name),
                sorry_in_use: s.health.sorry_in_use().is_some(),
                servers,
            });
        }
        HealthList {
            probes_in_flight: sh.prober.in_flight() as u64,
            services,
        }
    }
}

impl Shared {
    /// Makes `configured` (with `specs`) the operator's table and brings
    /// the engine in line, then runs `extra` (non-rule commands such as
    /// zeroing) on the engine; all or nothing.
    fn commit(
        &self,
        st: &mut State,
        configured: Rules,
        specs: Specs,
        extra: &[Command],
    ) -> Result<usize, ControlError> {
        let now = now_ms();
        let mut rng = st.rng.clone();
        let mut generation = st.next_generation;
        let mut services = HashMap::new();
        let mut notes = Vec::new();
        for (cfg, dests) in &configured {
            let key = cfg.key;
            let id = ServiceId(key);
            let (hspec, srv_specs) = specs.get(&key).cloned().unwrap_or_default();
            let settings = match &hspec {
                Some(h) => h.settings(&key).map_err(|e| {
                    err(
                        422,
                        format!("service {id}: health.{}: {}", e.path, e.message),
                    )
                })?,
                None => ServiceHealthSettings::default(),
            };
            let old = st.services.get(&key);
            let mut servers = HashMap::new();
            let mut list = Vec::new();
            for d in dests {
                let addr = SocketAddr::new(d.addr, d.port);
                let mut spec = srv_specs
                    .get(&addr)
                    .cloned()
                    .unwrap_or_else(|| ServerSpec::new(server_name(addr)));
                spec.weight = d.weight;
                let ss = server_settings(hspec.as_ref(), &spec).map_err(|e| {
                    err(
                        422,
                        format!(
                            "service {id} server {}: {}: {}",
                            server_name(addr),
                            e.path,
                            e.message
                        ),
                    )
                })?;
                let prev = old.and_then(|o| o.servers.get(&addr));
                let probes = match prev {
                    Some(p) if p.settings.probes == ss.probes => p.probes.clone(),
                    _ => ss
                        .probes
                        .iter()
                        .map(|p| CompiledProbe::new(p.clone()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|m| {
                            err(
                                422,
                                format!("service {id} server {}: {m}", server_name(addr)),
                            )
                        })?,
                };
                let (gen_, failures) = match prev {
                    Some(p) => (p.generation, p.failures.clone()),
                    None => {
                        generation += 1;
                        (generation, BTreeMap::new())
                    }
                };
                list.push((addr, ss.config.clone()));
                servers.insert(
                    addr,
                    SrvState {
                        spec,
                        settings: ss,
                        probes,
                        generation: gen_,
                        failures,
                    },
                );
            }
            let mut jitter = |max: u64| {
                if max == 0 {
                    0
                } else {
                    rng.next_u64() % (max + 1)
                }
            };
            let (health, table, actions) = match old {
                Some(o) => {
                    let mut h = o.health.clone();
                    let actions = h.reconfigure(settings.config, list, now, &mut jitter);
                    (h, o.table.clone(), actions)
                }
                None => {
                    let (h, actions) = ServiceHealth::new(settings.config, list, now, &mut jitter);
                    (h, BTreeMap::new(), actions)
                }
            };
            let mut s = SvcState {
                spec: hspec,
                settings,
                health,
                servers,
                table,
            };
            notes.extend(s.absorb(key, &actions, None));
            services.insert(key, s);
        }
        let wanted = filtered(&configured, &services);
        let ops = rvs_config::diff(&self.engine.rules(), &wanted);
        let mut cmds: Vec<Command> = ops.iter().map(rvs_proxy::command_of).collect();
        cmds.extend_from_slice(extra);
        if !cmds.is_empty() {
            Control::apply(&self.engine, &cmds)?;
        }
        for op in &ops {
            tracing::debug!(op = ?op, "table change");
        }
        st.configured = configured;
        st.services = services;
        st.rng = rng;
        st.next_generation = generation;
        self.emit(st, notes);
        self.wake.notify_one();
        Ok(ops.len())
    }

    /// Brings the engine's copy of one service in line with its health.
    fn sync_service(&self, st: &State, key: ServiceKey) {
        let Some(entry) = st.configured.iter().find(|(c, _)| c.key == key) else {
            return;
        };
        let wanted = filtered(std::slice::from_ref(entry), &st.services);
        let running: Rules = self
            .engine
            .rules()
            .into_iter()
            .filter(|(c, _)| c.key == key)
            .collect();
        let ops = rvs_config::diff(&running, &wanted);
        if ops.is_empty() {
            return;
        }
        if let Err(e) = self.engine.apply_ops(&ops) {
            tracing::error!(service = %service_name(&key), error = %e, "health change refused by the data plane");
        }
    }

    /// Logs each transition once and runs its notify command.
    fn emit(&self, st: &State, notes: Vec<Note>) {
        for n in notes {
            let Some(s) = st.services.get(&n.service) else {
                continue;
            };
            let svc = service_name(&n.service);
            let id = ServiceId(n.service).to_string();
            match (n.event, n.server) {
                (NotifyEvent::ServerUp | NotifyEvent::ServerDown, Some(server)) => {
                    let up = n.event == NotifyEvent::ServerUp;
                    let reason = n.reason.map_or_else(String::new, |r| r.to_string());
                    let cause = n.cause.map_or_else(String::new, |c| {
                        format!(" ({} check, {} ms)", c.kind, c.elapsed_ms)
                    });
                    let srv = server_name(server);
                    if up {
                        tracing::info!("server {srv} of {svc} up: {reason}{cause}");
                    } else {
                        tracing::warn!("server {srv} of {svc} down: {reason}{cause}");
                    }
                    let argv = s.servers.get(&server).and_then(|x| {
                        if up {
                            x.settings.notify_up.clone()
                        } else {
                            x.settings.notify_down.clone()
                        }
                    });
                    if let Some(argv) = argv {
                        let event = if up { "up" } else { "down" };
                        self.notifier.run(
                            &argv,
                            vec![event.into(), id.clone(), srv.clone(), reason.clone()],
                            vec![
                                ("RVS_EVENT", event.into()),
                                ("RVS_SERVICE", id),
                                ("RVS_SERVER", srv),
                                ("RVS_REASON", reason),
                            ],
                        );
                    }
                }
                (NotifyEvent::QuorumUp | NotifyEvent::QuorumDown, _) => {
                    let up = n.event == NotifyEvent::QuorumUp;
                    let c = s.health.config();
                    let sorry = match s.health.sorry_in_use() {
                        Some(a) => format!("; sorry server {} in use", server_name(a)),
                        None => String::new(),
                    };
                    let w = s.health.weight_sum();
                    if up {
                        tracing::info!(
                            "service {svc} quorum up: alive weight {w}, quorum {} hysteresis {}{sorry}",
                            c.quorum,
                            c.hysteresis
                        );
                    } else {
                        tracing::warn!(
                            "service {svc} quorum down: alive weight {w}, quorum {} hysteresis {}{sorry}",
                            c.quorum,
                            c.hysteresis
                        );
                    }
                    let argv = if up {
                        s.settings.quorum_up.clone()
                    } else {
                        s.settings.quorum_down.clone()
                    };
                    if let Some(argv) = argv {
                        let event = if up { "quorum_up" } else { "quorum_down" };
                        self.notifier.run(
                            &argv,
                            vec![event.into(), id.clone()],
                            vec![("RVS_EVENT", event.into()), ("RVS_SERVICE", id)],
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs the timers due at `now` (starts probes, applies passive
    /// retries); returns when the next timer is due.
    fn run_due(&self, now: u64) -> Option<u64> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let mut notes = Vec::new();
        let mut changed = Vec::new();
        let mut next: Option<u64> = None;
        for (&key, s) in st.services.iter_mut() {
            match s.health.poll_timeout() {
                Some(t) if t <= now => {}
                other => {
                    next = min_opt(next, other);
                    continue;
                }
            }
            let (probes, actions) = s.health.on_timeout(now);
            next = min_opt(next, s.health.poll_timeout());
            for p in probes {
                let Some(srv) = s.servers.get(&p.server) else {
                    continue;
                };
                let Some(compiled) = srv.probes.get(p.checker).cloned() else {
                    continue;
                };
                let prober = self.prober.clone();
                let tx = self.events.clone();
                let generation = srv.generation;
                let timeout = Duration::from_millis(p.request.timeout_ms);
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    let outcome = prober.probe(p.server, &compiled, timeout).await;
                    let _ = tx
                        .send(Event::Probe {
                            service: key,
                            server: p.server,
                            checker: p.checker,
                            generation,
                            outcome,
                            elapsed_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                        })
                        .await;
                });
            }
            if !actions.is_empty() {
                notes.extend(s.absorb(key, &actions, None));
                changed.push(key);
            }
        }
        for key in changed {
            self.sync_service(st, key);
        }
        self.emit(st, notes);
        next
    }

    fn handle(&self, events: Vec<Event>) {
        let mut st = lock(&self.state);
        let now = now_ms();
        let mut notes = Vec::new();
        let mut changed = Vec::new();
        for ev in events {
            match ev {
                Event::Probe {
                    service,
                    server,
                    checker,
                    generation,
                    outcome,
                    elapsed_ms,
                } => {
                    let Some(s) = st.services.get_mut(&service) else {
                        continue;
                    };
                    let Some(srv) = s.servers.get_mut(&server) else {
                        continue;
                    };
                    if srv.generation != generation {
                        continue;
                    }
                    if let Outcome::Failure(r) = outcome {
                        *srv.failures.entry(reason_label(r)).or_default() += 1;
                    }
                    let kind = srv
                        .settings
                        .probes
                        .get(checker)
                        .map_or("?", |p| p.kind.name());
                    let actions = s.health.on_result(now, server, checker, outcome);
                    if !actions.is_empty() {
                        notes.extend(s.absorb(service, &actions, Some(Cause { kind, elapsed_ms })));
                        changed.push(service);
                    }
                }
                Event::Connect {
                    service,
                    server,
                    ok,
                } => {
                    let Some(s) = st.services.get_mut(&service) else {
                        continue;
                    };
                    if ok {
                        s.health.passive_success(server);
                    } else {
                        let actions = s.health.passive_failure(now, server);
                        if !actions.is_empty() {
                            notes.extend(s.absorb(service, &actions, None));
                            changed.push(service);
                        }
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        changed.retain(|k| seen.insert(*k));
        for key in changed {
            self.sync_service(&st, key);
        }
        self.emit(&st, notes);
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A transition to log and notify.
#[derive(Debug)]
struct Note {
    service: ServiceKey,
    event: NotifyEvent,
    server: Option<SocketAddr>,
    reason: Option<TransitionReason>,
    cause: Option<Cause>,
}

impl SvcState {
    /// Takes the actions into the health table; returns the notifications.
    fn absorb(
        &mut self,
        key: ServiceKey,
        actions: &[HealthAction],
        cause: Option<Cause>,
    ) -> Vec<Note> {
        let mut notes = Vec::new();
        for a in actions {
            match *a {
                HealthAction::AddDest { server, weight }
                | HealthAction::SetWeight { server, weight } => {
                    self.table.insert(server, weight);
                }
                HealthAction::RemoveDest { server } | HealthAction::RemoveSorry { server } => {
                    self.table.remove(&server);
                }
                HealthAction::AddSorry { server } => {
                    self.table.insert(server, 1);
                }
                HealthAction::Notify {
                    event,
                    server,
                    reason,
                } => notes.push(Note {
                    service: key,
                    event,
                    server,
                    reason,
                    cause: match reason {
                        Some(TransitionReason::Passed | TransitionReason::Failed(_)) => cause,
                        _ => None,
                    },
                }),
            }
        }
        notes
    }
}

/// The engine's table: each configured server health keeps in, with the
/// weight health gives it, then the sorry server while it is in use.
fn filtered(
    configured: &[(ServiceConfig, Vec<DestConfig>)],
    services: &HashMap<ServiceKey, SvcState>,
) -> Rules {
    configured
        .iter()
        .map(|(cfg, dests)| {
            let Some(s) = services.get(&cfg.key) else {
                return (cfg.clone(), dests.clone());
            };
            let mut out: Vec<DestConfig> = dests
                .iter()
                .filter_map(|d| {
                    s.table
                        .get(&SocketAddr::new(d.addr, d.port))
                        .map(|&weight| DestConfig { weight, ..*d })
                })
                .collect();
            for (addr, &weight) in &s.table {
                if !dests
                    .iter()
                    .any(|d| SocketAddr::new(d.addr, d.port) == *addr)
                {
                    out.push(DestConfig {
                        addr: addr.ip(),
                        port: addr.port(),
                        forward: Forward::Masq,
                        weight,
                        u_threshold: 0,
                        l_threshold: 0,
                    });
                }
            }
            (cfg.clone(), out)
        })
        .collect()
}

/// Least time between two rounds of the loop: timers due and results that
/// arrive within it are handled together, so a thousand checks spread over
/// a second cost at most 50 rounds a second rather than a thousand. A
/// probe starts at most this late, which is small against any
/// `delay_loop`.
const COALESCE: Duration = Duration::from_millis(20);

async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Event>) {
    let mut last = tokio::time::Instant::now();
    let mut next = shared.run_due(now_ms());
    loop {
        let now = now_ms();
        let sleep = next.map_or(Duration::from_secs(3600), |t| {
            Duration::from_millis(t.saturating_sub(now))
        });
        let mut batch = Vec::new();
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shared.wake.notified() => {}
            ev = rx.recv() => match ev {
                Some(ev) => batch.push(ev),
                None => return,
            },
        }
        tokio::time::sleep_until(last + COALESCE).await;
        last = tokio::time::Instant::now();
        while let Ok(e) = rx.try_recv() {
            batch.push(e);
        }
        if !batch.is_empty() {
            shared.handle(batch);
        }
        next = shared.run_due(now_ms());
    }
}

/// The director error of a refused command as the API reports it.
fn refused(e: rvs_ipvsadm::director::ApplyError) -> ControlError {
    let status = match e.0.as_str() {
        "No such service" | "Service not defined" | "No such destination" => 404,
        "Service already exists" | "Destination already exists" => 409,
        _ => 422,
    };
    err(status, e.0)
}

impl Control for Health {
    fn apply(&self, cmds: &[Command]) -> Result<(), ControlError> {
        self.apply_health(cmds, &[])
    }

    fn apply_health(&self, cmds: &[Command], health: &[HealthUpdate]) -> Result<(), ControlError> {
        let cmds: Vec<Command> = cmds
            .iter()
            .map(|c| rvs_ipvsadm::with_default_method(c.clone(), Forward::Masq))
            .collect();
        for c in &cmds {
            rvs_proxy::refuse_unsupported(c)?;
        }
        let sh = &self.shared;
        let mut st = lock(&sh.state);
        // The operator's table after the commands, checked as the director
        // checks them.
        let mut d = Director::new(DirectorConfig {
            conn_capacity: 0,
            ..Default::default()
        });
        for (cfg, dests) in &st.configured {
            let _ = d.add_service(cfg.clone());
            for x in dests {
                let _ = d.add_dest(&cfg.key, *x);
            }
        }
        rvs_ipvsadm::director::apply_all(&mut d, &cmds).map_err(|(_, e)| refused(e))?;
        let mut next: Rules = d
            .services()
            .into_iter()
            .map(|s| {
                (
                    s.config.clone(),
                    s.dests.iter().rev().map(|x| x.config).collect(),
                )
            })
            .collect();
        let order: HashMap<ServiceKey, usize> = st
            .configured
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.key, i))
            .collect();
        let added: Vec<ServiceKey> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::AddService(s) => Some(s.key),
                _ => None,
            })
            .collect();
        next.sort_by_key(|(c, _)| {
            order
                .get(&c.key)
                .copied()
                .or_else(|| {
                    added
                        .iter()
                        .position(|k| *k == c.key)
                        .map(|p| order.len() + p)
                })
                .unwrap_or(usize::MAX)
        });
        // The health keys: as they were, with the bodies' updates.
        let mut specs: Specs = st
            .services
            .iter()
            .map(|(k, s)| {
                (
                    *k,
                    (
                        s.spec.clone(),
                        s.servers
                            .iter()
                            .map(|(a, x)| (*a, x.spec.clone()))
                            .collect(),
                    ),
                )
            })
            .collect();
        // A service deleted and added again in one batch starts afresh.
        for c in &cmds {
            if let Command::DeleteService(k) = c {
                specs.remove(k);
            }
            if let Command::Clear = c {
                specs.clear();
            }
        }
        for u in health {
            match u {
                HealthUpdate::Service { service, health } => {
                    specs.entry(*service).or_default().0 = Some(health.clone());
                }
                HealthUpdate::Server { service, server } => {
                    let (addr, port) =
                        server.addr_port(service).map_err(|e| err(422, e.message))?;
                    specs
                        .entry(*service)
                        .or_default()
                        .1
                        .insert(SocketAddr::new(addr, port), server.clone());
                }
            }
        }
        let extra: Vec<Command> = cmds.iter().filter(|c| !is_table_rule(c)).cloned().collect();
        sh.commit(&mut st, next, specs, &extra).map(|_| ())
    }

    fn services(&self) -> Vec<ServiceSnapshot> {
        Control::services(&self.shared.engine)
    }

    fn connections(&self) -> Vec<ConnSnapshot> {
        Control::connections(&self.shared.engine)
    }

    fn timeouts(&self) -> Timeouts {
        Control::timeouts(&self.shared.engine)
    }

    fn health(&self) -> Option<HealthList> {
        Some(self.report())
    }
}

/// Whether a command changes the service table (the others, zeroing and
/// timeouts, go to the engine as they are).
fn is_table_rule(c: &Command) -> bool {
    matches!(
        c,
        Command::AddService(_)
            | Command::EditService(_)
            | Command::DeleteService(_)
            | Command::Clear
            | Command::AddDest { .. }
            | Command::EditDest { .. }
            | Command::DeleteDest { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::model::Protocol;

    fn dest(port: u16, weight: u32) -> DestConfig {
        DestConfig {
            addr: "127.0.0.1".parse().unwrap(),
            port,
            forward: Forward::Masq,
            weight,
            u_threshold: 10,
            l_threshold: 0,
        }
    }

    #[test]
    fn the_engine_gets_the_configured_servers_health_keeps_and_the_sorry_server() {
        let cfg = ServiceConfig::new(ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        });
        let configured = vec![(cfg.clone(), vec![dest(1, 5), dest(2, 3), dest(3, 1)])];
        let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (health, _) = ServiceHealth::new(Default::default(), Vec::new(), 0, &mut |_: u64| 0);
        let mut s = SvcState {
            spec: None,
            settings: ServiceHealthSettings::default(),
            health,
            servers: HashMap::new(),
            table: BTreeMap::new(),
        };
        // Server 1 up with a dynamic weight, 2 inhibited, 3 out; a sorry server.
        s.absorb(
            cfg.key,
            &[
                HealthAction::AddDest {
                    server: at(1),
                    weight: 7,
                },
                HealthAction::AddDest {
                    server: at(2),
                    weight: 3,
                },
                HealthAction::SetWeight {
                    server: at(2),
                    weight: 0,
                },
                HealthAction::AddSorry { server: at(9) },
            ],
            None,
        );
        let services = HashMap::from([(cfg.key, s)]);
        let got = filtered(&configured, &services);
        let mut sorry = dest(9, 1);
        sorry.u_threshold = 0;
        assert_eq!(got, vec![(cfg, vec![dest(1, 7), dest(2, 0), sorry])]);
    }

    #[test]
    fn transitions_are_noted_with_their_cause() {
        let (health, _) = ServiceHealth::new(Default::default(), Vec::new(), 0, &mut |_: u64| 0);
        let mut s = SvcState {
            spec: None,
            settings: ServiceHealthSettings::default(),
            health,
            servers: HashMap::new(),
            table: BTreeMap::from([(SocketAddr::from(([127, 0, 0, 1], 1)), 1)]),
        };
        let key = ServiceKey::FwMark {
            family: rvs_core::model::Family::V4,
            mark: 1,
        };
        let server = SocketAddr::from(([127, 0, 0, 1], 1));
        let notes = s.absorb(
            key,
            &[
                HealthAction::RemoveDest { server },
                HealthAction::Notify {
                    event: NotifyEvent::ServerDown,
                    server: Some(server),
                    reason: Some(TransitionReason::Failed(FailureReason::Refused)),
                },
            ],
            Some(Cause {
                kind: "tcp",
                elapsed_ms: 3,
            }),
        );
        assert!(s.table.is_empty());
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].cause.map(|c| c.kind), Some("tcp"));
        assert_eq!(reason_label(FailureReason::ExitCode(3)), "exit_code");
    }
}
