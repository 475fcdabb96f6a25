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
//! `F` = 1) the bound is 71 s; with `I` = 1 s, `T` = 1 s, `R` = 0, `F` = 1
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
    /// The TLS handshake of an HTTPS probe failed: certificate not trusted,
    /// expired or for another name, no common protocol version or cipher.
    Tls,
    /// Anything else (local resource errors, protocol errors, ...).
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
            FailureReason::Tls => f.write_str("tls handshake failed"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::SplitMix64;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn tls_failure_reads_as_such() {
        assert_eq!(FailureReason::Tls.to_string(), "tls handshake failed");
        assert_eq!(
            TransitionReason::Failed(FailureReason::Tls).to_string(),
            "check failed: tls handshake failed"
        );
    }

    const OK: Outcome = Outcome::Success {
        dynamic_weight: None,
        latency_ms: 1,
    };
    const REFUSED: Outcome = Outcome::Failure(FailureReason::Refused);
    const TIMEOUT: Outcome = Outcome::Failure(FailureReason::Timeout);

    fn down(r: FailureReason) -> Option<Transition> {
        Some(Transition {
            up: false,
            reason: TransitionReason::Failed(r),
        })
    }

    fn up() -> Option<Transition> {
        Some(Transition {
            up: true,
            reason: TransitionReason::Passed,
        })
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), 80)
    }

    fn fast(rise: u32, fall: u32, retry: u32) -> CheckerConfig {
        CheckerConfig {
            interval_ms: 1000,
            connect_timeout_ms: 500,
            retry,
            delay_before_retry_ms: 100,
            rise,
            fall,
            alpha: false,
            warmup_ms: 0,
        }
    }

    /// Starts the checker's next probe at its due time; returns that time.
    fn start(c: &mut Checker) -> u64 {
        let t = c.poll_timeout().expect("a probe is scheduled");
        assert!(c.on_timeout(t).is_some());
        t
    }

    #[test]
    fn keepalived_defaults_exact_timing() {
        let mut c = Checker::new(CheckerConfig::default(), 0, 7_000);
        assert!(c.is_up());
        assert_eq!(c.poll_timeout(), Some(7_000));
        assert_eq!(c.on_timeout(6_999), None);
        assert_eq!(
            c.on_timeout(7_000),
            Some(ProbeRequest {
                attempt: 0,
                timeout_ms: 5_000
            })
        );
        assert_eq!(c.poll_timeout(), None, "one probe outstanding at most");
        assert_eq!(c.on_timeout(7_000), None);
        assert_eq!(c.on_result(7_010, OK), None);
        // delay_loop after the result.
        assert_eq!(c.poll_timeout(), Some(67_010));
        assert_eq!(start(&mut c), 67_010);
        // The server dies: the probe times out, one retry a second later.
        assert_eq!(c.on_result(72_010, TIMEOUT), None);
        assert_eq!(c.poll_timeout(), Some(73_010));
        assert_eq!(c.on_timeout(73_010).map(|r| r.attempt), Some(1));
        assert_eq!(c.on_result(78_010, TIMEOUT), down(FailureReason::Timeout));
        assert!(!c.is_up());
        assert_eq!(c.poll_timeout(), Some(138_010));
        // Down: no retries.
        assert_eq!(start(&mut c), 138_010);
        assert_eq!(c.on_result(138_011, REFUSED), None);
        assert_eq!(c.poll_timeout(), Some(198_011));
        assert_eq!(start(&mut c), 198_011);
        assert_eq!(c.on_result(198_012, OK), up());
        assert_eq!(c.poll_timeout(), Some(258_012));
        assert_eq!(CheckerConfig::default().detection_bound_ms(), 71_000);
    }

    #[test]
    fn warmup_jitter_is_clamped() {
        let cfg = CheckerConfig {
            warmup_ms: 1_000,
            ..CheckerConfig::default()
        };
        assert_eq!(Checker::new(cfg, 50, 300).poll_timeout(), Some(350));
        assert_eq!(Checker::new(cfg, 50, 99_999).poll_timeout(), Some(1_050));
        let none = CheckerConfig {
            warmup_ms: 0,
            ..cfg
        };
        assert_eq!(Checker::new(none, 50, 300).poll_timeout(), Some(50));
    }

    #[test]
    fn retry_success_ends_the_round() {
        let mut c = Checker::new(fast(1, 1, 2), 0, 0);
        start(&mut c);
        assert_eq!(c.on_result(10, REFUSED), None);
        assert_eq!(c.poll_timeout(), Some(110));
        assert_eq!(c.on_timeout(110).map(|r| r.attempt), Some(1));
        assert_eq!(c.on_result(120, OK), None);
        assert_eq!(c.poll_timeout(), Some(1_120));
        assert_eq!(c.on_timeout(1_120).map(|r| r.attempt), Some(0));
        assert!(c.is_up());
    }

    #[test]
    fn fall_counts_declared_failures() {
        let mut c = Checker::new(fast(1, 2, 1), 0, 0);
        let mut transitions = Vec::new();
        for _ in 0..4 {
            let t = start(&mut c);
            transitions.push(c.on_result(t + 1, REFUSED));
        }
        assert_eq!(
            transitions,
            vec![None, None, None, down(FailureReason::Refused)]
        );
    }

    #[test]
    fn result_without_probe_is_ignored() {
        let mut c = Checker::new(fast(1, 1, 0), 0, 0);
        assert_eq!(c.on_result(5, REFUSED), None);
        assert!(c.is_up());
        assert_eq!(c.poll_timeout(), Some(0));
    }

    #[test]
    fn alpha_starts_down_and_needs_rise() {
        let cfg = CheckerConfig {
            alpha: true,
            ..fast(3, 1, 1)
        };
        let mut c = Checker::new(cfg, 0, 0);
        assert!(!c.is_up());
        let mut seen = Vec::new();
        for _ in 0..3 {
            let t = start(&mut c);
            seen.push(c.on_result(t + 1, OK));
        }
        assert_eq!(seen, vec![None, None, up()]);
        // A failure in between starts the count again.
        let mut c = Checker::new(cfg, 0, 0);
        for o in [OK, OK, REFUSED, OK, OK] {
            let t = start(&mut c);
            assert_eq!(c.on_result(t + 1, o), None);
        }
        let t = start(&mut c);
        assert_eq!(c.on_result(t + 1, OK), up());
    }

    #[test]
    fn every_other_check_failing_never_flaps() {
        for retry in [0, 1] {
            for alpha in [false, true] {
                let cfg = CheckerConfig {
                    alpha,
                    ..fast(2, 2, retry)
                };
                let mut c = Checker::new(cfg, 0, 0);
                for i in 0..1_000 {
                    let t = start(&mut c);
                    let o = if i % 2 == 0 { REFUSED } else { OK };
                    assert_eq!(c.on_result(t + 3, o), None, "retry {retry} alpha {alpha}");
                }
                assert_eq!(c.is_up(), !alpha);
            }
        }
    }

    #[test]
    fn detection_bound_is_reached_in_the_worst_case() {
        // The last success is reported just as the server dies, and every
        // later attempt takes the whole connect timeout.
        let cfg = CheckerConfig {
            interval_ms: 1_000,
            connect_timeout_ms: 300,
            retry: 2,
            delay_before_retry_ms: 50,
            rise: 1,
            fall: 2,
            alpha: false,
            warmup_ms: 0,
        };
        assert_eq!(
            cfg.detection_bound_ms(),
            1_000 + 2 * (300 + 2 * 350) + 1_000
        );
        let mut c = Checker::new(cfg, 0, 0);
        start(&mut c);
        let death = 200;
        assert_eq!(c.on_result(death, OK), None);
        loop {
            let t = start(&mut c);
            if let Some(tr) = c.on_result(t + cfg.connect_timeout_ms, TIMEOUT) {
                assert!(!tr.up);
                assert_eq!(t + cfg.connect_timeout_ms, death + cfg.detection_bound_ms());
                break;
            }
        }
    }

    fn server_cfg(weight: u32, checkers: usize) -> ServerHealthConfig {
        ServerHealthConfig {
            weight,
            checkers: vec![fast(1, 1, 0); checkers],
            ..ServerHealthConfig::default()
        }
    }

    fn no_jitter(_: u64) -> u64 {
        0
    }

    /// Runs one probe of `checker` on server `s` with outcome `o`.
    fn run(s: &mut ServerHealth, checker: usize, o: Outcome) -> Option<ServerEvent> {
        let mut probes = Vec::new();
        while !s.checkers()[checker].in_flight() {
            let t = s.poll_timeout().expect("scheduled");
            s.on_timeout(t, &mut probes);
        }
        let t = s.checkers()[checker].config().interval_ms * 1000;
        s.on_result(t, checker, o)
    }

    #[test]
    fn server_is_up_iff_all_checkers_are_up() {
        let mut s = ServerHealth::new(server_cfg(1, 2), 0, &mut no_jitter);
        assert!(s.is_up());
        let fail = ServerEvent::Down(TransitionReason::Failed(FailureReason::Refused));
        assert_eq!(run(&mut s, 0, REFUSED), Some(fail));
        assert_eq!(run(&mut s, 1, REFUSED), None);
        assert_eq!(run(&mut s, 0, OK), None, "checker 1 is still down");
        assert!(!s.is_up());
        assert_eq!(
            run(&mut s, 1, OK),
            Some(ServerEvent::Up(TransitionReason::Passed))
        );
        assert_eq!(
            s.last_transition().map(|t| t.1),
            Some(TransitionReason::Passed)
        );
    }

    #[test]
    fn dynamic_weight() {
        let mut s = ServerHealth::new(server_cfg(10, 1), 0, &mut no_jitter);
        assert_eq!(s.effective_weight(), 10);
        let dynamic = |w| Outcome::Success {
            dynamic_weight: Some(w),
            latency_ms: 3,
        };
        assert_eq!(run(&mut s, 0, dynamic(4)), Some(ServerEvent::Weight));
        assert_eq!(s.effective_weight(), 4);
        assert_eq!(run(&mut s, 0, dynamic(4)), None);
        // Exit 0: the weight stays as it is.
        assert_eq!(run(&mut s, 0, OK), None);
        assert_eq!(s.effective_weight(), 4);
        assert_eq!(s.checkers()[0].last_latency_ms(), Some(1));
    }

    #[test]
    fn passive_failure_with_and_without_active_checks() {
        let mut cfg = server_cfg(1, 1);
        cfg.passive_fall = 2;
        let mut s = ServerHealth::new(cfg, 0, &mut no_jitter);
        assert_eq!(s.passive_failure(10), None);
        s.passive_success();
        assert_eq!(s.passive_failure(11), None);
        assert_eq!(
            s.passive_failure(12),
            Some(ServerEvent::Down(TransitionReason::Passive))
        );
        // The active check brings it back.
        assert_eq!(
            run(&mut s, 0, OK),
            Some(ServerEvent::Up(TransitionReason::Passed))
        );

        let mut s = ServerHealth::new(
            ServerHealthConfig {
                passive_fall: 1,
                passive_retry_ms: 5_000,
                ..server_cfg(1, 0)
            },
            0,
            &mut no_jitter,
        );
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(
            s.passive_failure(100),
            Some(ServerEvent::Down(TransitionReason::Passive))
        );
        assert_eq!(s.poll_timeout(), Some(5_100));
        let mut probes = Vec::new();
        assert_eq!(s.on_timeout(5_099, &mut probes), None);
        assert_eq!(
            s.on_timeout(5_100, &mut probes),
            Some(ServerEvent::Up(TransitionReason::PassiveRetry))
        );
        assert!(probes.is_empty());
    }

    /// A service whose servers each have one checker (rise = fall = 1, no
    /// retry), driven in virtual time.
    struct Sim {
        svc: ServiceHealth,
        now: u64,
    }

    impl Sim {
        fn new(cfg: ServiceHealthConfig, weights: &[u32]) -> (Self, Vec<HealthAction>) {
            let servers = weights
                .iter()
                .enumerate()
                .map(|(i, &w)| (addr(i as u8 + 1), server_cfg(w, 1)))
                .collect();
            let (svc, actions) = ServiceHealth::new(cfg, servers, 0, &mut no_jitter);
            (Sim { svc, now: 0 }, actions)
        }

        /// Runs one probe of server `n` with outcome `o`.
        fn check(&mut self, n: u8, o: Outcome) -> Vec<HealthAction> {
            let a = addr(n);
            let mut actions = Vec::new();
            while !self.svc.server(a).unwrap().checkers()[0].in_flight() {
                self.now = self.svc.poll_timeout().unwrap();
                actions.extend(self.svc.on_timeout(self.now).1);
            }
            self.now += 1;
            actions.extend(self.svc.on_result(self.now, a, 0, o));
            actions
        }
    }

    fn notify_server(event: NotifyEvent, n: u8, o: Outcome) -> HealthAction {
        let reason = match o {
            Outcome::Success { .. } => TransitionReason::Passed,
            Outcome::Failure(r) => TransitionReason::Failed(r),
        };
        HealthAction::Notify {
            event,
            server: Some(addr(n)),
            reason: Some(reason),
        }
    }

    fn notify_quorum(event: NotifyEvent) -> HealthAction {
        HealthAction::Notify {
            event,
            server: None,
            reason: None,
        }
    }

    #[test]
    fn quorum_hysteresis_and_sorry_server() {
        use HealthAction::*;
        use NotifyEvent::*;
        let sorry = addr(99);
        let cfg = ServiceHealthConfig {
            quorum: 2,
            hysteresis: 1,
            sorry_server: Some(sorry),
            ..ServiceHealthConfig::default()
        };
        let (mut sim, init) = Sim::new(cfg, &[1, 1, 1]);
        // W = 3 >= quorum + hysteresis.
        assert!(sim.svc.quorum_up());
        let adds: Vec<_> = (1..=3)
            .map(|n| AddDest {
                server: addr(n),
                weight: 1,
            })
            .collect();
        assert_eq!(init, adds);
        assert_eq!(
            sim.check(1, REFUSED),
            vec![
                notify_server(ServerDown, 1, REFUSED),
                RemoveDest { server: addr(1) }
            ]
        );
        // W = 1 is still >= quorum - hysteresis.
        assert_eq!(
            sim.check(2, REFUSED),
            vec![
                notify_server(ServerDown, 2, REFUSED),
                RemoveDest { server: addr(2) }
            ]
        );
        assert!(sim.svc.quorum_up());
        // W = 0: lost. The sorry server goes in before the last server out.
        assert_eq!(
            sim.check(3, REFUSED),
            vec![
                notify_server(ServerDown, 3, REFUSED),
                AddSorry { server: sorry },
                RemoveDest { server: addr(3) },
                notify_quorum(QuorumDown),
            ]
        );
        assert_eq!(sim.svc.sorry_in_use(), Some(sorry));
        // Back up one by one: W = 1, 2 < quorum + hysteresis; the table is
        // left alone while the sorry server serves.
        assert_eq!(sim.check(1, OK), vec![notify_server(ServerUp, 1, OK)]);
        assert_eq!(sim.check(2, OK), vec![notify_server(ServerUp, 2, OK)]);
        assert!(!sim.svc.quorum_up());
        // A server failing meanwhile changes nothing in the table either.
        assert_eq!(
            sim.check(2, REFUSED),
            vec![notify_server(ServerDown, 2, REFUSED)]
        );
        assert_eq!(sim.check(2, OK), vec![notify_server(ServerUp, 2, OK)]);
        assert_eq!(
            sim.check(3, OK),
            vec![
                notify_server(ServerUp, 3, OK),
                AddDest {
                    server: addr(1),
                    weight: 1
                },
                AddDest {
                    server: addr(2),
                    weight: 1
                },
                AddDest {
                    server: addr(3),
                    weight: 1
                },
                RemoveSorry { server: sorry },
                notify_quorum(QuorumUp),
            ]
        );
        assert_eq!(sim.svc.sorry_in_use(), None);
    }

    #[test]
    fn quorum_lost_without_sorry_server_only_notifies() {
        use NotifyEvent::*;
        let cfg = ServiceHealthConfig {
            quorum: 3,
            ..ServiceHealthConfig::default()
        };
        let (mut sim, _) = Sim::new(cfg, &[2, 2]);
        assert_eq!(
            sim.check(1, REFUSED),
            vec![
                notify_server(ServerDown, 1, REFUSED),
                HealthAction::RemoveDest { server: addr(1) },
                notify_quorum(QuorumDown),
            ]
        );
        assert!(sim.svc.server(addr(2)).unwrap().is_up());
    }

    #[test]
    fn initial_quorum_down_adds_the_sorry_server() {
        let sorry = addr(99);
        let alpha = ServerHealthConfig {
            checkers: vec![CheckerConfig {
                alpha: true,
                ..fast(1, 1, 0)
            }],
            ..ServerHealthConfig::default()
        };
        let cfg = ServiceHealthConfig {
            sorry_server: Some(sorry),
            ..ServiceHealthConfig::default()
        };
        let (svc, actions) = ServiceHealth::new(cfg, vec![(addr(1), alpha)], 0, &mut no_jitter);
        assert!(!svc.quorum_up());
        assert_eq!(actions, vec![HealthAction::AddSorry { server: sorry }]);
    }

    #[test]
    fn inhibit_on_failure_sets_weight_zero_then_restores() {
        use HealthAction::*;
        use NotifyEvent::*;
        let cfg = ServiceHealthConfig {
            inhibit_on_failure: true,
            ..ServiceHealthConfig::default()
        };
        let (mut sim, _) = Sim::new(cfg, &[3, 5]);
        assert_eq!(
            sim.check(1, REFUSED),
            vec![
                notify_server(ServerDown, 1, REFUSED),
                SetWeight {
                    server: addr(1),
                    weight: 0
                }
            ]
        );
        assert_eq!(
            sim.check(1, OK),
            vec![
                notify_server(ServerUp, 1, OK),
                SetWeight {
                    server: addr(1),
                    weight: 3
                }
            ]
        );
        // A dynamic weight is what recovery restores.
        let dynamic = Outcome::Success {
            dynamic_weight: Some(7),
            latency_ms: 1,
        };
        assert_eq!(
            sim.check(2, dynamic),
            vec![SetWeight {
                server: addr(2),
                weight: 7
            }]
        );
        sim.check(2, REFUSED);
        assert_eq!(
            sim.check(2, OK),
            vec![
                notify_server(ServerUp, 2, OK),
                SetWeight {
                    server: addr(2),
                    weight: 7
                }
            ]
        );
        assert_eq!(sim.svc.weight_sum(), 10);
    }

    #[test]
    fn reconfigure_keeps_health_state() {
        use HealthAction::*;
        let (mut sim, _) = Sim::new(ServiceHealthConfig::default(), &[1, 1]);
        sim.check(1, REFUSED);
        assert!(!sim.svc.server(addr(1)).unwrap().is_up());
        let now = sim.now;
        // Same servers, other timings: nothing changes.
        let slower = ServerHealthConfig {
            checkers: vec![CheckerConfig {
                interval_ms: 5_000,
                ..fast(1, 1, 0)
            }],
            ..server_cfg(1, 1)
        };
        let servers = vec![(addr(1), slower.clone()), (addr(2), slower.clone())];
        let actions =
            sim.svc
                .reconfigure(ServiceHealthConfig::default(), servers, now, &mut no_jitter);
        assert_eq!(actions, vec![]);
        assert!(!sim.svc.server(addr(1)).unwrap().is_up());
        // Dropping the failed server's checker does not bring it back; a
        // new server is added; a weight change is applied; a removed server
        // leaves the table.
        let servers = vec![
            (addr(1), server_cfg(1, 0)),
            (addr(2), server_cfg(4, 1)),
            (addr(3), server_cfg(2, 1)),
        ];
        let actions = sim.svc.reconfigure(
            ServiceHealthConfig::default(),
            servers.clone(),
            now,
            &mut no_jitter,
        );
        assert_eq!(
            actions,
            vec![
                SetWeight {
                    server: addr(2),
                    weight: 4
                },
                AddDest {
                    server: addr(3),
                    weight: 2
                },
            ]
        );
        assert!(!sim.svc.server(addr(1)).unwrap().is_up());
        let actions = sim.svc.reconfigure(
            ServiceHealthConfig::default(),
            servers[1..].to_vec(),
            now,
            &mut no_jitter,
        );
        assert_eq!(actions, vec![]);
        let actions = sim.svc.reconfigure(
            ServiceHealthConfig::default(),
            servers[2..].to_vec(),
            now,
            &mut no_jitter,
        );
        assert_eq!(actions, vec![RemoveDest { server: addr(2) }]);
        // A checker added to an up server starts up.
        let two = server_cfg(2, 2);
        let actions = sim.svc.reconfigure(
            ServiceHealthConfig::default(),
            vec![(addr(3), two)],
            now,
            &mut no_jitter,
        );
        assert_eq!(actions, vec![]);
        assert!(sim.svc.server(addr(3)).unwrap().is_up());
    }

    fn checker_cfg() -> impl Strategy<Value = CheckerConfig> {
        (
            1u64..5_000,
            1u64..2_000,
            0u32..4,
            0u64..3_000,
            1u32..4,
            1u32..5,
            0u64..3_000,
        )
            .prop_map(|(i, t, r, d, rise, fall, w)| CheckerConfig {
                interval_ms: i,
                connect_timeout_ms: t,
                retry: r,
                delay_before_retry_ms: d,
                rise,
                fall,
                alpha: false,
                warmup_ms: w,
            })
    }

    proptest! {
        /// A server dies at a random time, after random flaky failures and
        /// with random probe latencies; if its checker is up then, it goes
        /// down within the documented bound.
        #[test]
        fn detection_bound_holds(
            cfg in checker_cfg(),
            jitter in 0u64..10_000,
            death in 0u64..60_000,
            seed in any::<u64>(),
            flaky_per_mille in 0u64..300,
        ) {
            let mut c = Checker::new(cfg, 0, jitter);
            let first = jitter.min(cfg.warmup_ms);
            let mut rng = SplitMix64::new(seed);
            let mut pending: Option<(u64, Outcome)> = None;
            let mut up_at_death: Option<bool> = None;
            let bound = if death >= first {
                death + cfg.detection_bound_ms()
            } else {
                first + cfg.detection_bound_ms() - cfg.interval_ms
            };
            loop {
                let t = match pending {
                    Some((t, _)) => t,
                    None => c.poll_timeout().expect("scheduled"),
                };
                if up_at_death.is_none() && t > death {
                    up_at_death = Some(c.is_up());
                    if !c.is_up() {
                        break;
                    }
                }
                prop_assert!(t <= bound, "no transition by {bound}");
                if let Some((t, o)) = pending.take() {
                    if let Some(tr) = c.on_result(t, o)
                        && !tr.up
                        && t > death
                    {
                        prop_assert!(t <= bound);
                        break;
                    }
                } else {
                    prop_assert!(c.on_timeout(t).is_some());
                    let lat = rng.next_u64() % (cfg.connect_timeout_ms + 1);
                    let done = t + lat;
                    let o = if done > death {
                        TIMEOUT
                    } else if rng.next_u64() % 1000 < flaky_per_mille {
                        REFUSED
                    } else {
                        OK
                    };
                    pending = Some((done, o));
                }
            }
        }

        /// Rise and fall: a checker alternating results never changes state
        /// when both are at least 2, whatever the retries.
        #[test]
        fn alternating_results_never_flap(
            retry in 0u32..3,
            rise in 2u32..4,
            fall in 2u32..4,
            alpha in any::<bool>(),
        ) {
            let cfg = CheckerConfig { alpha, ..fast(rise, fall, retry) };
            let mut c = Checker::new(cfg, 0, 0);
            for i in 0..200u64 {
                let t = start(&mut c);
                let o = if i % 2 == 0 { REFUSED } else { OK };
                prop_assert_eq!(c.on_result(t + 1, o), None);
            }
        }
    }
}
