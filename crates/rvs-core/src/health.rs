//! Health of real servers: the checker state machine, a server's liveness
//! from all its checkers, and a service's quorum with its sorry server, with
//! keepalived's semantics and defaults.
//!
//! Nothing here probes anything. The daemon runs the probes (TCP connect,
//! HTTP, MISC, ...) and reports their outcomes; these state machines decide
//! when the next probe starts and what a result changes. The shape is that
//! of a sans-IO protocol engine: ask [`Checker::poll_timeout`] when to wake
//! up, call [`Checker::on_timeout`] then, which may ask for a probe
//! ([`ProbeRequest`]), and hand the probe's [`Outcome`] to
//! [`Checker::on_result`]. Time is a parameter in milliseconds and the
//! warm-up jitter is drawn by the caller, so a run is reproducible.
//!
//! # Checker timing
//!
//! At most one probe is outstanding per checker. The prober must report
//! every probe, and report a failure ([`FailureReason::Timeout`]) no later
//! than [`ProbeRequest::timeout_ms`] after it started; while a probe is
//! outstanding the checker has no timer of its own.
//!
//! * The first probe starts `jitter` after the checker is created, where the
//!   caller draws `jitter` in `0..=warmup_ms` (larger values are clamped), so
//!   that a thousand checkers configured together do not fire together.
//! * After a success, or after a declared failure, the next probe starts
//!   `interval_ms` after the result (keepalived's `delay_loop`).
//! * A failed probe of a checker that is up is retried `retry` times,
//!   `delay_before_retry_ms` after each failure; only when the first attempt
//!   and all `retry` retries have failed is the failure *declared*. A checker
//!   that is down does not retry: each failed probe is a declared failure.
//!   A success at any attempt ends the round.
//! * An up checker goes down after `fall` consecutive declared failures; a
//!   down checker goes up after `rise` consecutive successes. The defaults
//!   `rise = fall = 1` are keepalived's behaviour.
//! * With `alpha` a checker starts down (and needs `rise` successes); without
//!   it, it starts up.
//!
//! # Detection bound
//!
//! Write `I = interval_ms`, `T = connect_timeout_ms`, `R = retry`,
//! `D = delay_before_retry_ms`, `F = fall`. If a server dies at time `t0`
//! while its checker is up and after the checker's first probe has started,
//! the checker goes down no later than
//!
//! ```text
//! t0 + I + F·(T + R·(D + T)) + (F − 1)·I
//! ```
//!
//! Why: the last success the checker can see is reported at `t0` at the
//! latest, so the next round starts by `t0 + I`. A round of `R + 1` failing
//! attempts takes at most `T + R·(D + T)` from its start to the declaration,
//! and `I` separates a declaration from the next round, so `F` declarations
//! take `F·(T + R·(D + T)) + (F − 1)·I`. A round already under way at `t0`
//! (a probe in flight or a retry pending) has fewer attempts left and ends
//! within `T + R·(D + T)` of `t0`, sooner than a fresh one; failures declared
//! before `t0` only bring the transition closer. If the server dies before
//! the first probe, the first `I` of the bound becomes the time left to the
//! first probe (at most `warmup_ms`). [`CheckerConfig::detection_bound_ms`]
//! computes the bound.
//!
//! With the keepalived defaults (`I` = 60 s, `T` = 5 s, `R` = 1, `D` = 1 s,
//! `F` = 1) the bound is 72 s; with `I` = 1 s, `T` = 1 s, `R` = 0, `F` = 1
//! it is 2 s.
//!
//! # Servers and services
//!
//! A [`ServerHealth`] is up iff all its checkers are up (and the data plane
//! has not marked it down, see [`ServerHealth::passive_failure`]). A
//! [`ServiceHealth`] keeps the quorum of its servers (keepalived's algorithm)
//! and turns every change into [`HealthAction`]s for the daemon to apply
//! through the director's control API.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use crate::model::MAX_WEIGHT;

/// The settings of one checker (keepalived's common checker options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerConfig {
    /// Time from a result to the next round of probes (`delay_loop`).
    pub interval_ms: u64,
    /// Longest a probe may take before the prober reports a timeout.
    pub connect_timeout_ms: u64,
    /// Extra attempts after a failure before the failure is declared.
    pub retry: u32,
    /// Time from a failed attempt to the next attempt.
    pub delay_before_retry_ms: u64,
    /// Consecutive successes that bring a down checker up (at least 1).
    pub rise: u32,
    /// Consecutive declared failures that take an up checker down (at least 1).
    pub fall: u32,
    /// Start down rather than up.
    pub alpha: bool,
    /// Upper bound of the random delay of the first probe; 0 = none.
    pub warmup_ms: u64,
}

impl Default for CheckerConfig {
    /// keepalived's defaults for a TCP check: `delay_loop` 60 s,
    /// `connect_timeout` 5 s, `retry` 1, `delay_before_retry` 1 s, and a
    /// warm-up of up to one `delay_loop`.
    fn default() -> Self {
        CheckerConfig {
            interval_ms: 60_000,
            connect_timeout_ms: 5_000,
            retry: 1,
            delay_before_retry_ms: 1_000,
            rise: 1,
            fall: 1,
            alpha: false,
            warmup_ms: 60_000,
        }
    }
}

impl CheckerConfig {
    /// The longest time from a server's death to its checker going down
    /// (see the module documentation), saturating.
    pub fn detection_bound_ms(&self) -> u64 {
        let fall = u64::from(self.fall.max(1));
        let retry = u64::from(self.retry);
        let round = self.connect_timeout_ms.saturating_add(
            retry.saturating_mul(
                self.delay_before_retry_ms
                    .saturating_add(self.connect_timeout_ms),
            ),
        );
        self.interval_ms
            .saturating_add(fall.saturating_mul(round))
            .saturating_add((fall - 1).saturating_mul(self.interval_ms))
    }
}

/// A probe the caller should start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRequest {
    /// 0 for the first attempt of a round, `1..=retry` for retries.
    pub attempt: u32,
    /// The probe must be reported failed ([`FailureReason::Timeout`]) if it
    /// has not succeeded after this long.
    pub timeout_ms: u64,
}

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// No answer within the connect timeout.
    Timeout,
    /// Connection refused (TCP reset).
    Refused,
    /// HTTP status outside the accepted ranges, DNS rcode not NOERROR.
    BadStatus,
    /// Body digest or pattern mismatch, UDP reply not matching.
    BadBody,
    /// ICMP unreachable (host, network or port).
    Unreachable,
    /// A MISC command exited with this status (or was killed: negative).
    ExitCode(i32),
    /// Anything else (local resource errors, TLS failures, ...).
    Other,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Timeout => f.write_str("timeout"),
            FailureReason::Refused => f.write_str("refused"),
            FailureReason::BadStatus => f.write_str("bad status"),
            FailureReason::BadBody => f.write_str("bad body"),
            FailureReason::Unreachable => f.write_str("unreachable"),
            FailureReason::ExitCode(c) => write!(f, "exit code {c}"),
            FailureReason::Other => f.write_str("other"),
        }
    }
}

/// The result of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The probe passed.
    Success {
        /// A weight the check reported (MISC with `dynamic`: exit status
        /// minus 2); `None` leaves the server's weight as it is.
        dynamic_weight: Option<u32>,
        /// How long the probe took.
        latency_ms: u64,
    },
    /// The probe failed.
    Failure(FailureReason),
}

/// Why a checker or a server changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionReason {
    /// `rise` consecutive successes.
    Passed,
    /// `fall` consecutive declared failures; the cause of the last one.
    Failed(FailureReason),
    /// The data plane saw `passive_fall` consecutive connect failures.
    Passive,
    /// A server without active checks was given another chance after
    /// `passive_retry_ms`.
    PassiveRetry,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::Passed => f.write_str("check passed"),
            TransitionReason::Failed(r) => write!(f, "check failed: {r}"),
            TransitionReason::Passive => f.write_str("connect failures seen by the data plane"),
            TransitionReason::PassiveRetry => f.write_str("passive retry timer"),
        }
    }
}

/// A checker's change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub up: bool,
    /// Why.
    pub reason: TransitionReason,
}

/// One checker's state machine (see the module documentation for timing).
#[derive(Debug, Clone)]
pub struct Checker {
    cfg: CheckerConfig,
    up: bool,
    /// When the next attempt starts; `None` while one is outstanding.
    next_probe: Option<u64>,
    in_flight: bool,
    attempt: u32,
    successes: u32,
    failures: u32,
    last_latency_ms: Option<u64>,
}

impl Checker {
    /// A checker created at `now`; its first probe starts `jitter_ms` later
    /// (clamped to `warmup_ms`; draw it in `0..=warmup_ms`).
    pub fn new(cfg: CheckerConfig, now: u64, jitter_ms: u64) -> Self {
        Checker {
            cfg: sanitize(cfg),
            up: !cfg.alpha,
            next_probe: Some(now.saturating_add(jitter_ms.min(cfg.warmup_ms))),
            in_flight: false,
            attempt: 0,
            successes: 0,
            failures: 0,
            last_latency_ms: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &CheckerConfig {
        &self.cfg
    }

    /// Whether the checker is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether a probe is outstanding.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The latency of the last successful probe.
    pub fn last_latency_ms(&self) -> Option<u64> {
        self.last_latency_ms
    }

    /// When [`Checker::on_timeout`] should be called next; `None` while a
    /// probe is outstanding.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.in_flight {
            None
        } else {
            self.next_probe
        }
    }

    /// Starts a probe if one is due at `now`.
    pub fn on_timeout(&mut self, now: u64) -> Option<ProbeRequest> {
        match self.next_probe {
            Some(t) if !self.in_flight && t <= now => {
                self.in_flight = true;
                self.next_probe = None;
                Some(ProbeRequest {
                    attempt: self.attempt,
                    timeout_ms: self.cfg.connect_timeout_ms,
                })
            }
            _ => None,
        }
    }

    /// Takes the outcome of the outstanding probe, reported at `now`.
    /// A result with no probe outstanding is ignored.
    pub fn on_result(&mut self, now: u64, outcome: Outcome) -> Option<Transition> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        match outcome {
            Outcome::Success { latency_ms, .. } => {
                self.last_latency_ms = Some(latency_ms);
                self.attempt = 0;
                self.failures = 0;
                self.next_probe = Some(now.saturating_add(self.cfg.interval_ms));
                if self.up {
                    return None;
                }
                self.successes += 1;
                if self.successes < self.cfg.rise {
                    return None;
                }
                self.successes = 0;
                self.up = true;
                Some(Transition {
                    up: true,
                    reason: TransitionReason::Passed,
                })
            }
            Outcome::Failure(reason) => {
                self.successes = 0;
                if self.up && self.attempt < self.cfg.retry {
                    self.attempt += 1;
                    self.next_probe = Some(now.saturating_add(self.cfg.delay_before_retry_ms));
                    return None;
                }
                self.attempt = 0;
                self.next_probe = Some(now.saturating_add(self.cfg.interval_ms));
                if !self.up {
                    return None;
                }
                self.failures += 1;
                if self.failures < self.cfg.fall {
                    return None;
                }
                self.failures = 0;
                self.up = false;
                Some(Transition {
                    up: false,
                    reason: TransitionReason::Failed(reason),
                })
            }
        }
    }

    /// Puts the checker down without a declared failure (passive detection,
    /// reloads); it then needs `rise` successes. The probe schedule is kept.
    fn force_down(&mut self) {
        self.up = false;
        self.successes = 0;
        self.failures = 0;
        self.attempt = 0;
    }

    /// New settings, keeping state and counters; the next probe comes no
    /// later than one new interval from `now`.
    fn reconfigure(&mut self, cfg: CheckerConfig, now: u64) {
        self.cfg = sanitize(cfg);
        self.attempt = self.attempt.min(self.cfg.retry);
        if let Some(t) = self.next_probe {
            self.next_probe = Some(t.min(now.saturating_add(self.cfg.interval_ms)));
        }
    }
}

/// rise and fall of 0 would mean "change on no evidence"; they read as 1.
fn sanitize(mut cfg: CheckerConfig) -> CheckerConfig {
    cfg.rise = cfg.rise.max(1);
    cfg.fall = cfg.fall.max(1);
    cfg
}

/// The settings of one real server's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealthConfig {
    /// Configured weight.
    pub weight: u32,
    /// Its checkers; the server is up iff all of them are up.
    pub checkers: Vec<CheckerConfig>,
    /// Consecutive connect failures seen by the data plane that mark the
    /// server down at once; 0 disables passive detection.
    pub passive_fall: u32,
    /// For a server without checkers: how long a passively failed server
    /// stays down before it is given another chance.
    pub passive_retry_ms: u64,
}

impl Default for ServerHealthConfig {
    fn default() -> Self {
        ServerHealthConfig {
            weight: 1,
            checkers: Vec::new(),
            passive_fall: 3,
            passive_retry_ms: 10_000,
        }
    }
}

/// A change of a real server as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// The server came up.
    Up(TransitionReason),
    /// The server went down.
    Down(TransitionReason),
    /// The effective weight of an up server changed (dynamic weight).
    Weight,
}

/// A probe a server's checker asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerProbe {
    /// Index of the checker in the server's configuration.
    pub checker: usize,
    /// The probe.
    pub request: ProbeRequest,
}

/// One real server's health: its checkers, passive detection and weight.
#[derive(Debug, Clone)]
pub struct ServerHealth {
    weight: u32,
    dynamic_weight: Option<u32>,
    checkers: Vec<Checker>,
    passive_fall: u32,
    passive_retry_ms: u64,
    passive_failures: u32,
    /// Set by passive detection on a server without checkers.
    passive_down: bool,
    passive_retry_at: Option<u64>,
    up: bool,
    last_transition: Option<(u64, TransitionReason)>,
}

impl ServerHealth {
    /// A server configured at `now`; `jitter(warmup_ms)` draws each
    /// checker's first-probe delay in `0..=warmup_ms`.
    pub fn new(cfg: ServerHealthConfig, now: u64, jitter: &mut dyn FnMut(u64) -> u64) -> Self {
        let checkers: Vec<Checker> = cfg
            .checkers
            .iter()
            .map(|c| Checker::new(*c, now, jitter(c.warmup_ms)))
            .collect();
        let mut s = ServerHealth {
            weight: cfg.weight.min(MAX_WEIGHT),
            dynamic_weight: None,
            checkers,
            passive_fall: cfg.passive_fall,
            passive_retry_ms: cfg.passive_retry_ms,
            passive_failures: 0,
            passive_down: false,
            passive_retry_at: None,
            up: false,
            last_transition: None,
        };
        s.up = s.compute_up();
        s
    }

    fn compute_up(&self) -> bool {
        !self.passive_down && self.checkers.iter().all(Checker::is_up)
    }

    /// Whether the server is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The weight the server is scheduled with when up: the last dynamic
    /// weight a check reported, else the configured weight. With several
    /// checkers reporting dynamic weights the latest report wins.
    pub fn effective_weight(&self) -> u32 {
        self.dynamic_weight.unwrap_or(self.weight).min(MAX_WEIGHT)
    }

    /// The configured weight.
    pub fn configured_weight(&self) -> u32 {
        self.weight
    }

    /// The checkers, in configuration order.
    pub fn checkers(&self) -> &[Checker] {
        &self.checkers
    }

    /// When and why the server last changed state.
    pub fn last_transition(&self) -> Option<(u64, TransitionReason)> {
        self.last_transition
    }

    /// When [`ServerHealth::on_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.checkers
            .iter()
            .filter_map(Checker::poll_timeout)
            .chain(self.passive_retry_at)
            .min()
    }

    /// Runs the timers due at `now`: probes to start go to `probes`; a
    /// passive retry may bring the server up.
    pub fn on_timeout(&mut self, now: u64, probes: &mut Vec<CheckerProbe>) -> Option<ServerEvent> {
        for (i, c) in self.checkers.iter_mut().enumerate() {
            if let Some(request) = c.on_timeout(now) {
                probes.push(CheckerProbe {
                    checker: i,
                    request,
                });
            }
        }
        match self.passive_retry_at {
            Some(t) if t <= now => {
                self.passive_retry_at = None;
                self.passive_down = false;
                self.update(now, TransitionReason::PassiveRetry)
            }
            _ => None,
        }
    }

    /// Takes the outcome of checker `checker`'s outstanding probe.
    pub fn on_result(&mut self, now: u64, checker: usize, outcome: Outcome) -> Option<ServerEvent> {
        let before = self.effective_weight();
        let c = self.checkers.get_mut(checker)?;
        if !c.in_flight() {
            return None;
        }
        let transition = c.on_result(now, outcome);
        if let Outcome::Success {
            dynamic_weight: Some(w),
            ..
        } = outcome
        {
            self.dynamic_weight = Some(w.min(MAX_WEIGHT));
        }
        let reason = transition.map_or(TransitionReason::Passed, |t| t.reason);
        match self.update(now, reason) {
            Some(e) => Some(e),
            None if self.up && self.effective_weight() != before => Some(ServerEvent::Weight),
            None => None,
        }
    }

    /// The data plane failed to connect to the server. After `passive_fall`
    /// consecutive failures the server goes down at once: its checkers are
    /// put down and must pass `rise` times again; a server without checkers
    /// comes back after `passive_retry_ms`.
    pub fn passive_failure(&mut self, now: u64) -> Option<ServerEvent> {
        if self.passive_fall == 0 {
            return None;
        }
        self.passive_failures += 1;
        if self.passive_failures < self.passive_fall {
            return None;
        }
        self.passive_failures = 0;
        if !self.up {
            return None;
        }
        self.checkers.iter_mut().for_each(Checker::force_down);
        if self.checkers.is_empty() {
            self.passive_down = true;
            self.passive_retry_at = Some(now.saturating_add(self.passive_retry_ms));
        }
        self.update(now, TransitionReason::Passive)
    }

    /// The data plane connected to the server: the failure run is broken.
    pub fn passive_success(&mut self) {
        self.passive_failures = 0;
    }

    fn update(&mut self, now: u64, reason: TransitionReason) -> Option<ServerEvent> {
        let up = self.compute_up();
        if up == self.up {
            return None;
        }
        self.up = up;
        self.last_transition = Some((now, reason));
        Some(if up {
            ServerEvent::Up(reason)
        } else {
            ServerEvent::Down(reason)
        })
    }

    /// New settings, keeping the health state: checkers are matched by
    /// position and keep their state and counters; added checkers take the
    /// server's current state, so a reload neither takes an up server down
    /// nor brings a failed one back.
    pub fn reconfigure(
        &mut self,
        cfg: ServerHealthConfig,
        now: u64,
        jitter: &mut dyn FnMut(u64) -> u64,
    ) {
        let was_up = self.up;
        self.weight = cfg.weight.min(MAX_WEIGHT);
        self.passive_fall = cfg.passive_fall;
        self.passive_retry_ms = cfg.passive_retry_ms;
        self.checkers.truncate(cfg.checkers.len());
        for (i, c) in cfg.checkers.iter().enumerate() {
            if let Some(old) = self.checkers.get_mut(i) {
                old.reconfigure(*c, now);
            } else {
                let mut fresh = Checker::new(*c, now, jitter(c.warmup_ms));
                fresh.up = was_up;
                self.checkers.push(fresh);
            }
        }
        if !was_up && self.compute_up() {
            // The checker that failed was removed: the others must pass again.
            self.checkers.iter_mut().for_each(Checker::force_down);
            if self.checkers.is_empty() {
                self.passive_down = true;
                self.passive_retry_at = Some(now.saturating_add(self.passive_retry_ms));
            }
        }
        if was_up && !self.checkers.is_empty() {
            self.passive_down = false;
            self.passive_retry_at = None;
        }
        self.up = self.compute_up();
    }
}

/// A service's health settings (keepalived's `virtual_server` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceHealthConfig {
    /// Least total weight of alive servers for the service to be up (at
    /// least 1).
    pub quorum: u32,
    /// Margin around `quorum` against flapping.
    pub hysteresis: u32,
    /// A failed server is set to weight 0 instead of removed.
    pub inhibit_on_failure: bool,
    /// Where traffic goes while quorum is lost.
    pub sorry_server: Option<SocketAddr>,
}

impl Default for ServiceHealthConfig {
    fn default() -> Self {
        ServiceHealthConfig {
            quorum: 1,
            hysteresis: 0,
            inhibit_on_failure: false,
            sorry_server: None,
        }
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    /// A real server came up.
    ServerUp,
    /// A real server went down.
    ServerDown,
    /// The service gained quorum.
    QuorumUp,
    /// The service lost quorum.
    QuorumDown,
}

/// What the daemon must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthAction {
    /// Add the real server to the service with this weight.
    AddDest {
        /// The real server.
        server: SocketAddr,
        /// Its weight.
        weight: u32,
    },
    /// Remove the real server from the service.
    RemoveDest {
        /// The real server.
        server: SocketAddr,
    },
    /// Change the weight of a real server in the service.
    SetWeight {
        /// The real server.
        server: SocketAddr,
        /// The new weight.
        weight: u32,
    },
    /// Add the sorry server to the service.
    AddSorry {
        /// The sorry server.
        server: SocketAddr,
    },
    /// Remove the sorry server from the service.
    RemoveSorry {
        /// The sorry server.
        server: SocketAddr,
    },
    /// Run the notifier and log the event.
    Notify {
        /// What happened.
        event: NotifyEvent,
        /// The real server, for server events.
        server: Option<SocketAddr>,
        /// Why, for server events.
        reason: Option<TransitionReason>,
    },
}

/// A probe to start for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceProbe {
    /// The real server.
    pub server: SocketAddr,
    /// Index of the checker in the server's configuration.
    pub checker: usize,
    /// The probe.
    pub request: ProbeRequest,
}

#[derive(Debug, Clone)]
struct Member {
    health: ServerHealth,
    /// What the table holds for this server, as far as these actions went:
    /// `Some(weight)` when present.
    in_table: Option<u32>,
}

/// A service's servers, their quorum and the sorry server.
///
/// The quorum follows keepalived: `W` is the sum of the effective weights
/// of the alive servers; at start the service is up iff
/// `W >= quorum + hysteresis`; after each change the threshold is
/// `quorum - hysteresis` while up and `quorum + hysteresis` while down;
/// quorum is lost when `W == 0 || W < threshold` and gained when
/// `W >= threshold`.
///
/// While quorum is lost and a sorry server is configured, the sorry server
/// is in the table and the real servers are not (with `inhibit_on_failure`
/// they stay at weight 0), and server changes do not touch the table until
/// quorum is back. Without a sorry server losing quorum only notifies: the
/// servers still alive are better than nothing. The sorry server is added
/// before the real servers are withdrawn, and the real servers are put
/// back before it is removed, so the service never has no destination.
#[derive(Debug, Clone)]
pub struct ServiceHealth {
    cfg: ServiceHealthConfig,
    members: BTreeMap<SocketAddr, Member>,
    quorum_up: bool,
    sorry_in_table: Option<SocketAddr>,
}

impl ServiceHealth {
    /// A service configured at `now`, with the actions that set up its
    /// table. A server listed twice keeps its first settings.
    /// No notification is sent for the initial state.
    pub fn new(
        cfg: ServiceHealthConfig,
        servers: Vec<(SocketAddr, ServerHealthConfig)>,
        now: u64,
        jitter: &mut dyn FnMut(u64) -> u64,
    ) -> (Self, Vec<HealthAction>) {
        let mut members = BTreeMap::new();
        for (addr, scfg) in servers {
            members.entry(addr).or_insert_with(|| Member {
                health: ServerHealth::new(scfg, now, jitter),
                in_table: None,
            });
        }
        let mut s = ServiceHealth {
            cfg: sanitize_service(cfg),
            members,
            quorum_up: false,
            sorry_in_table: None,
        };
        s.quorum_up = s.weight_sum() >= u64::from(s.cfg.quorum) + u64::from(s.cfg.hysteresis);
        let mut actions = Vec::new();
        s.sync(&mut actions);
        (s, actions)
    }

    /// The settings.
    pub fn config(&self) -> &ServiceHealthConfig {
        &self.cfg
    }

    /// Whether the service has quorum.
    pub fn quorum_up(&self) -> bool {
        self.quorum_up
    }

    /// The sorry server, while it is in the table.
    pub fn sorry_in_use(&self) -> Option<SocketAddr> {
        self.sorry_in_table
    }

    /// Total effective weight of the alive servers.
    pub fn weight_sum(&self) -> u64 {
        self.members
            .values()
            .filter(|m| m.health.is_up())
            .map(|m| u64::from(m.health.effective_weight()))
            .sum()
    }

    /// One server's health.
    pub fn server(&self, addr: SocketAddr) -> Option<&ServerHealth> {
        self.members.get(&addr).map(|m| &m.health)
    }

    /// The servers in address order.
    pub fn servers(&self) -> impl Iterator<Item = (SocketAddr, &ServerHealth)> + '_ {
        self.members.iter().map(|(a, m)| (*a, &m.health))
    }

    /// When [`ServiceHealth::on_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.members
            .values()
            .filter_map(|m| m.health.poll_timeout())
            .min()
    }

    /// Runs the timers due at `now`: the probes to start, and the actions
    /// of servers a passive retry brought back.
    pub fn on_timeout(&mut self, now: u64) -> (Vec<ServiceProbe>, Vec<HealthAction>) {
        let mut probes = Vec::new();
        let mut actions = Vec::new();
        let mut buf = Vec::new();
        let mut events = Vec::new();
        for (addr, m) in self.members.iter_mut() {
            buf.clear();
            if let Some(e) = m.health.on_timeout(now, &mut buf) {
                events.push((*addr, e));
            }
            probes.extend(buf.iter().map(|p| ServiceProbe {
                server: *addr,
                checker: p.checker,
                request: p.request,
            }));
        }
        for (addr, e) in events {
            self.apply(addr, e, &mut actions);
        }
        (probes, actions)
    }

    /// Takes the outcome of a probe of `server`'s checker `checker`.
    pub fn on_result(
        &mut self,
        now: u64,
        server: SocketAddr,
        checker: usize,
        outcome: Outcome,
    ) -> Vec<HealthAction> {
        let mut actions = Vec::new();
        let event = self
            .members
            .get_mut(&server)
            .and_then(|m| m.health.on_result(now, checker, outcome));
        if let Some(e) = event {
            self.apply(server, e, &mut actions);
        }
        actions
    }

    /// The data plane failed to connect to `server`
    /// ([`ServerHealth::passive_failure`]).
    pub fn passive_failure(&mut self, now: u64, server: SocketAddr) -> Vec<HealthAction> {
        let mut actions = Vec::new();
        let event = self
            .members
            .get_mut(&server)
            .and_then(|m| m.health.passive_failure(now));
        if let Some(e) = event {
            self.apply(server, e, &mut actions);
        }
        actions
    }

    /// The data plane connected to `server`.
    pub fn passive_success(&mut self, server: SocketAddr) {
        if let Some(m) = self.members.get_mut(&server) {
            m.health.passive_success();
        }
    }

    /// New settings after a reload, keeping every remaining server's health
    /// state ([`ServerHealth::reconfigure`]) and the quorum state; servers
    /// no longer listed leave the table, new ones start as at creation.
    pub fn reconfigure(
        &mut self,
        cfg: ServiceHealthConfig,
        servers: Vec<(SocketAddr, ServerHealthConfig)>,
        now: u64,
        jitter: &mut dyn FnMut(u64) -> u64,
    ) -> Vec<HealthAction> {
        let mut actions = Vec::new();
        let mut old = std::mem::take(&mut self.members);
        for (addr, scfg) in servers {
            if self.members.contains_key(&addr) {
                continue;
            }
            let member = match old.remove(&addr) {
                Some(mut m) => {
                    m.health.reconfigure(scfg, now, jitter);
                    m
                }
                None => Member {
                    health: ServerHealth::new(scfg, now, jitter),
                    in_table: None,
                },
            };
            self.members.insert(addr, member);
        }
        for (addr, m) in old {
            if m.in_table.is_some() {
                actions.push(HealthAction::RemoveDest { server: addr });
            }
        }
        self.cfg = sanitize_service(cfg);
        self.evaluate_quorum(&mut actions);
        actions
    }

    fn apply(&mut self, addr: SocketAddr, event: ServerEvent, actions: &mut Vec<HealthAction>) {
        let notify = match event {
            ServerEvent::Up(r) => Some((NotifyEvent::ServerUp, r)),
            ServerEvent::Down(r) => Some((NotifyEvent::ServerDown, r)),
            ServerEvent::Weight => None,
        };
        if let Some((event, reason)) = notify {
            actions.push(HealthAction::Notify {
                event,
                server: Some(addr),
                reason: Some(reason),
            });
        }
        self.evaluate_quorum(actions);
    }

    /// keepalived's `update_quorum_state`, then the table brought in line.
    fn evaluate_quorum(&mut self, actions: &mut Vec<HealthAction>) {
        let w = self.weight_sum();
        let quorum = u64::from(self.cfg.quorum);
        let hysteresis = u64::from(self.cfg.hysteresis);
        let mut notify = None;
        if self.quorum_up {
            let threshold = quorum.saturating_sub(hysteresis);
            if w == 0 || w < threshold {
                self.quorum_up = false;
                notify = Some(NotifyEvent::QuorumDown);
            }
        } else if w >= quorum + hysteresis {
            self.quorum_up = true;
            notify = Some(NotifyEvent::QuorumUp);
        }
        self.sync(actions);
        if let Some(event) = notify {
            actions.push(HealthAction::Notify {
                event,
                server: None,
                reason: None,
            });
        }
    }

    /// Emits the actions that take the table from what it holds to what it
    /// should hold.
    fn sync(&mut self, actions: &mut Vec<HealthAction>) {
        let sorry = if self.quorum_up {
            None
        } else {
            self.cfg.sorry_server
        };
        if let Some(s) = sorry
            && self.sorry_in_table != Some(s)
        {
            actions.push(HealthAction::AddSorry { server: s });
        }
        let inhibit = self.cfg.inhibit_on_failure;
        for (addr, m) in self.members.iter_mut() {
            let want = if sorry.is_none() && m.health.is_up() {
                Some(m.health.effective_weight())
            } else if inhibit {
                Some(0)
            } else {
                None
            };
            let server = *addr;
            match (m.in_table, want) {
                (None, Some(weight)) => actions.push(HealthAction::AddDest { server, weight }),
                (Some(_), None) => actions.push(HealthAction::RemoveDest { server }),
                (Some(a), Some(b)) if a != b => {
                    actions.push(HealthAction::SetWeight { server, weight: b })
                }
                _ => {}
            }
            m.in_table = want;
        }
        if let Some(old) = self.sorry_in_table
            && sorry != Some(old)
        {
            actions.push(HealthAction::RemoveSorry { server: old });
        }
        self.sorry_in_table = sorry;
    }
}

fn sanitize_service(mut cfg: ServiceHealthConfig) -> ServiceHealthConfig {
    cfg.quorum = cfg.quorum.max(1);
    cfg
}
