//! The VRRP state machine (RFC 5798 §6, with keepalived's additions): one
//! [`VrrpInstance`] per virtual router id and address family.
//!
//! Sans-IO in the quinn-proto shape: the I/O layer feeds received
//! advertisements ([`VrrpInstance::handle_advert`]), timer expiry
//! ([`VrrpInstance::handle_timeout`]) and administrative events (trackers,
//! shutdown, sync-group commands, the ready gate), then drains
//! [`VrrpInstance::poll_action`] and sleeps until
//! [`VrrpInstance::poll_timeout`]. Time is milliseconds of a monotonic clock
//! chosen by the caller.
//!
//! Timer arithmetic follows keepalived rather than the RFC's centiseconds:
//! `skew = (256 − priority) × master_adver_int / 256` computed in
//! milliseconds, so priority 100 at a 1 s interval gives a skew of 609 ms and
//! a master-down interval of 3609 ms (the RFC's centisecond arithmetic would
//! give 3600 ms; keepalived measures 3.61 s).

use std::collections::VecDeque;
use std::net::IpAddr;

use rvs_wire::vrrp::{Advert, PRIORITY_OWNER, PRIORITY_STOP, Packet, TTL};

/// An instance's state (keepalived adds FAULT to the RFC's three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpState {
    /// Not started, or stopped.
    Initialize,
    /// Listening for the master.
    Backup,
    /// Holding the virtual addresses.
    Master,
    /// A tracked object with weight 0 is down (or the sync group is in fault).
    Fault,
}

impl VrrpState {
    /// keepalived's name for the state, as notify scripts receive it.
    pub fn name(self) -> &'static str {
        match self {
            VrrpState::Initialize => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
        }
    }
}

/// Why the state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Started as a backup.
    Startup,
    /// Started with priority 255: the address owner is master at once.
    Owner,
    /// The master-down timer expired (no master, or a lower one preempted).
    MasterDown,
    /// An advert with a higher priority (or equal priority and a higher
    /// address) arrived while master.
    HigherPriority,
    /// A tracked object with weight 0 went down.
    TrackerDown,
    /// The last failed weight-0 tracked object came back.
    TrackerUp,
    /// Another member of the sync group moved.
    SyncGroup,
    /// Administrative shutdown.
    Shutdown,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advertisement (encode it with
    /// [`Advert::to_bytes`](rvs_wire::vrrp::Advert::to_bytes) from the
    /// primary address to the VRRP group, TTL 255).
    SendAdvert(Advert),
    /// Send one gratuitous ARP (IPv4) or unsolicited neighbour advertisement
    /// (IPv6) for this virtual address.
    SendGarp(IpAddr),
    /// Configure these virtual addresses on the interface.
    AddVips(Vec<IpAddr>),
    /// Remove these virtual addresses from the interface.
    DelVips(Vec<IpAddr>),
    /// The state changed (the notify event: `notify_master` and friends).
    StateChanged {
        /// Old state.
        from: VrrpState,
        /// New state.
        to: VrrpState,
        /// Why.
        reason: Reason,
    },
    /// The effective priority changed (keepalived's notify FIFO
    /// `MASTER_PRIORITY` / `BACKUP_PRIORITY` events).
    PriorityChanged {
        /// Old effective priority.
        from: u8,
        /// New effective priority.
        to: u8,
    },
}

/// Gratuitous ARP / unsolicited NA timing (keepalived's `garp_*` keywords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpConfig {
    /// `garp_master_delay`: the second burst after becoming master (0: none).
    pub master_delay_ms: u64,
    /// `garp_master_repeat`: messages per address in each burst.
    pub master_repeat: u32,
    /// `garp_master_refresh`: period of refresh bursts while master (0: off).
    pub master_refresh_ms: u64,
    /// `garp_master_refresh_repeat`: messages per address in a refresh burst.
    pub master_refresh_repeat: u32,
    /// `garp_lower_prio_repeat`: messages per address sent when, as master,
    /// an advert of lower priority arrives (0: none).
    pub lower_prio_repeat: u32,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            master_delay_ms: 5000,
            master_repeat: 5,
            master_refresh_ms: 0,
            master_refresh_repeat: 1,
            lower_prio_repeat: 5,
        }
    }
}

/// A tracked object (keepalived `track_interface`, `track_script`,
/// `track_file`, or a service's health quorum), in the order the instance
/// refers to them by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// Name, for logs.
    pub name: String,
    /// keepalived semantics: > 0 is added to the priority while up; < 0 is
    /// added (subtracted) while down; 0 puts the instance in FAULT while down.
    pub weight: i32,
    /// `reverse`: the object counts as up when it is down, and the other way.
    pub reverse: bool,
    /// Whether it is up before the first report.
    pub initially_up: bool,
}

/// One instance's configuration, with keepalived's keyword names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpConfig {
    /// `virtual_router_id`, 1..=255.
    pub vrid: u8,
    /// `priority` (default 100; 255 = address owner).
    pub priority: u8,
    /// `advert_int` in milliseconds (default 1000; carried in centiseconds,
    /// 10..=40950).
    pub advert_int_ms: u32,
    /// Preempt mode (default on; keepalived `nopreempt` turns it off).
    pub preempt: bool,
    /// `preempt_delay`: after startup (or leaving FAULT), lower-priority
    /// masters are followed rather than preempted for this long.
    pub preempt_delay_ms: u64,
    /// `accept`: a non-owner master accepts packets for the addresses.
    pub accept: bool,
    /// The primary address of the interface: the advert source and the
    /// tie-break (higher wins).
    pub primary_addr: IpAddr,
    /// `virtual_ipaddress`, all of the family of `primary_addr`.
    pub vips: Vec<IpAddr>,
    /// `skip_check_adv_addr`: accept adverts whose address list differs.
    pub skip_check_adv_addr: bool,
    /// Drop adverts whose TTL / hop limit is not 255 (RFC 5798). Off for
    /// keepalived-style unicast peers, whose TTL the I/O layer checks
    /// against the peer's `min_ttl`/`max_ttl`.
    pub check_ttl: bool,
    /// `lower_prio_no_advert`: as master, do not answer a lower-priority
    /// advert with an advert of our own.
    pub lower_prio_no_advert: bool,
    /// Gratuitous ARP timing.
    pub garp: GarpConfig,
    /// Tracked objects.
    pub track: Vec<TrackConfig>,
    /// rvs extension: start "not ready" (see [`VrrpInstance::set_ready`]) and
    /// give up waiting after this long; leaving FAULT makes the instance
    /// not ready again. `None`: always ready.
    pub ready_timeout_ms: Option<u64>,
}

impl VrrpConfig {
    /// keepalived's defaults for an instance with this VRID, source address
    /// and virtual addresses.
    pub fn new(vrid: u8, primary_addr: IpAddr, vips: Vec<IpAddr>) -> Self {
        VrrpConfig {
            vrid,
            priority: 100,
            advert_int_ms: 1000,
            preempt: true,
            preempt_delay_ms: 0,
            accept: false,
            primary_addr,
            vips,
            skip_check_adv_addr: false,
            check_ttl: true,
            lower_prio_no_advert: false,
            garp: GarpConfig::default(),
            track: Vec::new(),
            ready_timeout_ms: None,
        }
    }
}

/// A configuration the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrrpConfigError {
    /// VRID 0.
    #[error("virtual_router_id must be 1..255")]
    Vrid,
    /// Priority 0.
    #[error("priority must be 1..255")]
    Priority,
    /// Interval out of 10 ms..=40.95 s.
    #[error("advert_int must be between 0.01 and 40.95 seconds")]
    Interval,
    /// A virtual address of the other family.
    #[error("virtual address {0} is not of the instance's family")]
    Family(IpAddr),
    /// Tracker weight out of -253..=253.
    #[error("track weight {0} out of -253..253")]
    Weight(i32),
}

/// Why [`VrrpInstance::reconfigure`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    /// The VRID or the primary address changed: a different instance
    /// (restart it).
    #[error("the VRID or the primary address changed: restart the instance")]
    Identity,
    /// The new configuration is not valid.
    #[error(transparent)]
    Config(VrrpConfigError),
}

/// Why a received advert was dropped (count it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RxError {
    /// TTL / hop limit not 255.
    #[error("TTL {0} is not 255")]
    Ttl(u8),
    /// Another virtual router's advert.
    #[error("VRID {0} is not this instance's")]
    Vrid(u8),
    /// Our own advert looped back.
    #[error("own advert")]
    Own,
    /// Source of the other family.
    #[error("address family mismatch")]
    Family,
    /// The announced addresses differ from the configured ones.
    #[error("advertised addresses differ from the configuration")]
    Addresses,
    /// The instance is not running (INIT or FAULT).
    #[error("instance not running")]
    NotRunning,
}

/// A command from the sync group (see [`sync_group_follow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCommand {
    /// Become master with the group.
    Master,
    /// Step down to backup with the group.
    Backup,
    /// Enter FAULT because another member did.
    Fault,
    /// The group's fault is over.
    ClearFault,
}

/// A VRRP instance.
#[derive(Debug, Clone)]
pub struct VrrpInstance {
    cfg: VrrpConfig,
    state: VrrpState,
    /// Master_Adver_Interval: learned from the master while backup.
    master_adver_int_ms: u32,
    adver_at: Option<u64>,
    down_at: Option<u64>,
    garp_at: Option<u64>,
    refresh_at: Option<u64>,
    ready_at: Option<u64>,
    preempt_after: u64,
    track_up: Vec<bool>,
    ready: bool,
    group_fault: bool,
    priority: u8,
    actions: VecDeque<Action>,
}

fn down_interval(priority: u8, adver_int_ms: u32) -> u64 {
    let int = u64::from(adver_int_ms);
    3 * int + skew(priority, adver_int_ms)
}

fn skew(priority: u8, adver_int_ms: u32) -> u64 {
    (256 - u64::from(priority)) * u64::from(adver_int_ms) / 256
}

impl VrrpInstance {
    /// An instance in INIT; [`VrrpInstance::start`] starts it.
    pub fn new(cfg: VrrpConfig) -> Result<Self, VrrpConfigError> {
        if cfg.vrid == 0 {
            return Err(VrrpConfigError::Vrid);
        }
        if cfg.priority == 0 {
            return Err(VrrpConfigError::Priority);
        }
        if !(10..=40_950).contains(&cfg.advert_int_ms) {
            return Err(VrrpConfigError::Interval);
        }
        if let Some(v) = cfg
            .vips
            .iter()
            .find(|v| v.is_ipv4() != cfg.primary_addr.is_ipv4())
        {
            return Err(VrrpConfigError::Family(*v));
        }
        if let Some(t) = cfg.track.iter().find(|t| !(-253..=253).contains(&t.weight)) {
            return Err(VrrpConfigError::Weight(t.weight));
        }
        let track_up = cfg.track.iter().map(|t| t.initially_up).collect();
        let mut inst = VrrpInstance {
            master_adver_int_ms: cfg.advert_int_ms,
            state: VrrpState::Initialize,
            adver_at: None,
            down_at: None,
            garp_at: None,
            refresh_at: None,
            ready_at: None,
            preempt_after: 0,
            track_up,
            ready: cfg.ready_timeout_ms.is_none(),
            group_fault: false,
            priority: cfg.priority,
            actions: VecDeque::new(),
            cfg,
        };
        inst.priority = inst.compute_priority();
        Ok(inst)
    }

    /// The configuration.
    pub fn config(&self) -> &VrrpConfig {
        &self.cfg
    }

    /// The current state.
    pub fn state(&self) -> VrrpState {
        self.state
    }

    /// The effective priority (configured priority adjusted by trackers).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Master_Adver_Interval in milliseconds (learned from the master).
    pub fn master_adver_int_ms(&self) -> u32 {
        self.master_adver_int_ms
    }

    /// Master_Down_Interval in milliseconds at the current priority.
    pub fn master_down_interval_ms(&self) -> u64 {
        down_interval(self.priority, self.master_adver_int_ms)
    }

    /// Whether the node should accept packets addressed to the virtual
    /// addresses (master, and owner or accept mode).
    pub fn accepts_vip_traffic(&self) -> bool {
        self.state == VrrpState::Master && (self.cfg.accept || self.priority == PRIORITY_OWNER)
    }

    /// Whether the rvs ready gate is open.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether this instance's own trackers (not the group) put it in fault.
    pub fn own_fault(&self) -> bool {
        self.cfg
            .track
            .iter()
            .zip(&self.track_up)
            .any(|(t, &up)| t.weight == 0 && up == t.reverse)
    }

    fn compute_priority(&self) -> u8 {
        if self.cfg.priority == PRIORITY_OWNER {
            return PRIORITY_OWNER;
        }
        let mut p = i32::from(self.cfg.priority);
        for (t, &up) in self.cfg.track.iter().zip(&self.track_up) {
            let up = up != t.reverse;
            if (t.weight > 0 && up) || (t.weight < 0 && !up) {
                p += t.weight;
            }
        }
        p.clamp(1, 254) as u8
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest time [`VrrpInstance::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        [
            self.adver_at,
            self.down_at,
            self.garp_at,
            self.refresh_at,
            self.ready_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn set_state(&mut self, to: VrrpState, reason: Reason) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.actions
                .push_back(Action::StateChanged { from, to, reason });
        }
    }

    fn advert(&self, priority: u8) -> Advert {
        Advert {
            vrid: self.cfg.vrid,
            priority,
            max_adver_int: (self.cfg.advert_int_ms / 10) as u16,
            addrs: self.cfg.vips.clone(),
        }
    }

    fn send_advert(&mut self, now: u64) {
        let a = self.advert(self.priority);
        self.actions.push_back(Action::SendAdvert(a));
        self.adver_at = Some(now + u64::from(self.cfg.advert_int_ms));
    }

    fn garps(&mut self, repeat: u32) {
        for _ in 0..repeat {
            for v in &self.cfg.vips {
                self.actions.push_back(Action::SendGarp(*v));
            }
        }
    }

    fn restart_down_timer(&mut self, now: u64) {
        self.down_at = Some(now + self.master_down_interval_ms());
    }

    /// Starts the instance (Initialize → Master for the owner, else Backup;
    /// FAULT if a weight-0 tracker is down).
    pub fn start(&mut self, now: u64) {
        if self.state != VrrpState::Initialize {
            return;
        }
        if let Some(t) = self.cfg.ready_timeout_ms
            && !self.ready
        {
            self.ready_at = Some(now + t);
        }
        if self.own_fault() || self.group_fault {
            self.set_state(VrrpState::Fault, Reason::TrackerDown);
            return;
        }
        self.enter_running(now, Reason::Startup);
    }

    /// Startup or leaving FAULT: master at once as the owner (when ready),
    /// else backup.
    fn enter_running(&mut self, now: u64, reason: Reason) {
        // rvs: back from FAULT the connection table is stale again (sync
        // messages were missed meanwhile): wait for a resynchronisation
        // as at start-up.
        if reason != Reason::Startup
            && let Some(t) = self.cfg.ready_timeout_ms
        {
            self.ready = false;
            self.ready_at = Some(now + t);
        }
        self.preempt_after = now + self.cfg.preempt_delay_ms;
        self.master_adver_int_ms = self.cfg.advert_int_ms;
        if self.priority == PRIORITY_OWNER && self.ready {
            self.become_master(now, Reason::Owner);
        } else {
            self.set_state(VrrpState::Backup, reason);
            self.restart_down_timer(now);
        }
    }

    fn become_master(&mut self, now: u64, reason: Reason) {
        self.down_at = None;
        self.send_advert(now);
        self.actions
            .push_back(Action::AddVips(self.cfg.vips.clone()));
        self.garps(self.cfg.garp.master_repeat);
        self.garp_at =
            (self.cfg.garp.master_delay_ms > 0).then(|| now + self.cfg.garp.master_delay_ms);
        self.refresh_at =
            (self.cfg.garp.master_refresh_ms > 0).then(|| now + self.cfg.garp.master_refresh_ms);
        self.set_state(VrrpState::Master, reason);
    }

    /// Leaves MASTER: addresses removed, GARP timers stopped.
    fn leave_master(&mut self) {
        self.adver_at = None;
        self.garp_at = None;
        self.refresh_at = None;
        self.actions
            .push_back(Action::DelVips(self.cfg.vips.clone()));
    }

    fn enter_fault(&mut self, reason: Reason) {
        match self.state {
            VrrpState::Master => {
                // Let the backup take over after its skew time, not 3 intervals.
                let a = self.advert(PRIORITY_STOP);
                self.actions.push_back(Action::SendAdvert(a));
                self.leave_master();
            }
            VrrpState::Backup => self.down_at = None,
            VrrpState::Initialize | VrrpState::Fault => {}
        }
        if self.state != VrrpState::Initialize {
            self.set_state(VrrpState::Fault, reason);
        }
    }

    /// Stops the instance: a master sends an advert with priority 0 and
    /// gives the addresses up. Back in INIT; [`VrrpInstance::start`] restarts.
    pub fn shutdown(&mut self, _now: u64) {
        if self.state == VrrpState::Master {
            let a = self.advert(PRIORITY_STOP);
            self.actions.push_back(Action::SendAdvert(a));
            self.leave_master();
        }
        self.down_at = None;
        self.ready_at = None;
        self.set_state(VrrpState::Initialize, Reason::Shutdown);
    }

    /// A tracked object (by index in [`VrrpConfig::track`]) is up or down.
    pub fn set_tracker(&mut self, now: u64, index: usize, up: bool) {
        let Some(slot) = self.track_up.get_mut(index) else {
            return;
        };
        if *slot == up {
            return;
        }
        *slot = up;
        self.reprioritise();
        let fault = self.own_fault() || self.group_fault;
        match (self.state, fault) {
            (VrrpState::Backup | VrrpState::Master, true) => self.enter_fault(Reason::TrackerDown),
            (VrrpState::Fault, false) => self.enter_running(now, Reason::TrackerUp),
            _ => {}
        }
    }

    fn reprioritise(&mut self) {
        let p = self.compute_priority();
        if p != self.priority {
            self.actions.push_back(Action::PriorityChanged {
                from: self.priority,
                to: p,
            });
            self.priority = p;
        }
    }

    /// A reloaded configuration (SIGHUP) for the running instance, applied
    /// without a state change where RFC 5798 allows: a new priority or
    /// interval goes out in the next advert (a backup now above the master
    /// preempts when the master-down timer runs out, a master now below the
    /// backup is preempted); virtual addresses added or removed while master
    /// are added (and announced) or removed at once; trackers keep their
    /// state by name; preempt, accept, GARP and the rest apply from now on.
    /// Only a tracker change can move the state (to or from FAULT).
    ///
    /// The VRID and the primary address (family included) are what the
    /// instance is: a configuration that changes them is refused with
    /// [`ReconfigureError`] and the caller restarts the instance instead.
    pub fn reconfigure(&mut self, now: u64, cfg: VrrpConfig) -> Result<(), ReconfigureError> {
        if cfg.vrid != self.cfg.vrid || cfg.primary_addr != self.cfg.primary_addr {
            return Err(ReconfigureError::Identity);
        }
        VrrpInstance::new(cfg.clone()).map_err(ReconfigureError::Config)?;
        let old = std::mem::replace(&mut self.cfg, cfg);
        self.track_up = self
            .cfg
            .track
            .iter()
            .map(|t| {
                old.track
                    .iter()
                    .position(|o| o.name == t.name)
                    .and_then(|i| self.track_up.get(i).copied())
                    .unwrap_or(t.initially_up)
            })
            .collect();
        if self.cfg.ready_timeout_ms.is_none() && !self.ready {
            self.ready = true;
            self.ready_at = None;
        }
        if self.state == VrrpState::Master {
            let removed: Vec<IpAddr> = old
                .vips
                .iter()
                .filter(|v| !self.cfg.vips.contains(v))
                .copied()
                .collect();
            let added: Vec<IpAddr> = self
                .cfg
                .vips
                .iter()
                .filter(|v| !old.vips.contains(v))
                .copied()
                .collect();
            if !removed.is_empty() {
                self.actions.push_back(Action::DelVips(removed));
            }
            if !added.is_empty() {
                self.actions.push_back(Action::AddVips(added.clone()));
                for _ in 0..self.cfg.garp.master_repeat {
                    for v in &added {
                        self.actions.push_back(Action::SendGarp(*v));
                    }
                }
            }
            // A shorter interval applies at once, a longer one from the
            // next advert.
            let next = now + u64::from(self.cfg.advert_int_ms);
            if self.adver_at.is_none_or(|t| t > next) {
                self.adver_at = Some(next);
            }
            if self.cfg.garp.master_refresh_ms != old.garp.master_refresh_ms {
                self.refresh_at = (self.cfg.garp.master_refresh_ms > 0)
                    .then(|| now + self.cfg.garp.master_refresh_ms);
            }
            if self.cfg.garp.master_delay_ms == 0 {
                self.garp_at = None;
            }
        }
        if matches!(self.state, VrrpState::Initialize | VrrpState::Fault) {
            self.master_adver_int_ms = self.cfg.advert_int_ms;
        }
        self.reprioritise();
        let fault = self.own_fault() || self.group_fault;
        match (self.state, fault) {
            (VrrpState::Backup | VrrpState::Master, true) => self.enter_fault(Reason::TrackerDown),
            (VrrpState::Fault, false) => self.enter_running(now, Reason::TrackerUp),
            // The owner (priority 255 now) takes over at once.
            (VrrpState::Backup, false) if self.priority == PRIORITY_OWNER && self.ready => {
                self.become_master(now, Reason::Owner);
            }
            _ => {}
        }
        Ok(())
    }

    /// rvs extension: the instance is ready to become master (its connection
    /// table is resynchronised). Until then, or until
    /// [`VrrpConfig::ready_timeout_ms`] passes, a backup that hears a master
    /// follows it even with a higher priority and preemption on.
    pub fn set_ready(&mut self, now: u64) {
        self.ready_at = None;
        if self.ready {
            return;
        }
        self.ready = true;
        // An owner held back by the gate takes over now.
        if self.state == VrrpState::Backup && self.priority == PRIORITY_OWNER {
            self.become_master(now, Reason::Owner);
        }
    }

    /// A command from the instance's sync group.
    pub fn group(&mut self, now: u64, cmd: GroupCommand) {
        match cmd {
            GroupCommand::Master => {
                if self.state == VrrpState::Backup {
                    self.become_master(now, Reason::SyncGroup);
                }
            }
            GroupCommand::Backup => {
                if self.state == VrrpState::Master {
                    self.leave_master();
                    self.set_state(VrrpState::Backup, Reason::SyncGroup);
                    self.restart_down_timer(now);
                }
            }
            GroupCommand::Fault => {
                self.group_fault = true;
                self.enter_fault(Reason::SyncGroup);
            }
            GroupCommand::ClearFault => {
                self.group_fault = false;
                if self.state == VrrpState::Fault && !self.own_fault() {
                    self.enter_running(now, Reason::SyncGroup);
                }
            }
        }
    }

    /// Timers due at `now` fire.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.ready_at.is_some_and(|t| t <= now) {
            self.ready_at = None;
            self.ready = true;
            if self.state == VrrpState::Backup && self.priority == PRIORITY_OWNER {
                self.become_master(now, Reason::Owner);
            }
        }
        match self.state {
            VrrpState::Backup => {
                if self.down_at.is_some_and(|t| t <= now) {
                    self.become_master(now, Reason::MasterDown);
                }
            }
            VrrpState::Master => {
                if self.adver_at.is_some_and(|t| t <= now) {
                    self.send_advert(now);
                }
                if self.garp_at.is_some_and(|t| t <= now) {
                    self.garp_at = None;
                    self.garps(self.cfg.garp.master_repeat);
                }
                if let Some(t) = self.refresh_at
                    && t <= now
                {
                    self.refresh_at = Some(now + self.cfg.garp.master_refresh_ms);
                    self.garps(self.cfg.garp.master_refresh_repeat);
                }
            }
            VrrpState::Initialize | VrrpState::Fault => {}
        }
    }

    /// An advertisement from `src`, received with `ttl`, decoded by
    /// [`rvs_wire::vrrp::decode`] (which checked version, type, length and
    /// checksum).
    pub fn handle_advert(
        &mut self,
        now: u64,
        src: IpAddr,
        ttl: u8,
        pkt: &Packet,
    ) -> Result<(), RxError> {
        if self.cfg.check_ttl && ttl != TTL {
            return Err(RxError::Ttl(ttl));
        }
        if pkt.vrid() != self.cfg.vrid {
            return Err(RxError::Vrid(pkt.vrid()));
        }
        if src.is_ipv4() != self.cfg.primary_addr.is_ipv4() {
            return Err(RxError::Family);
        }
        if src == self.cfg.primary_addr {
            return Err(RxError::Own);
        }
        if !self.cfg.skip_check_adv_addr && !same_set(&pkt.addrs(), &self.cfg.vips) {
            return Err(RxError::Addresses);
        }
        let prio = pkt.priority();
        match self.state {
            VrrpState::Initialize | VrrpState::Fault => Err(RxError::NotRunning),
            VrrpState::Backup => {
                if prio == PRIORITY_STOP {
                    self.down_at = Some(now + skew(self.priority, self.master_adver_int_ms));
                    return Ok(());
                }
                let follow = !self.cfg.preempt
                    || prio >= self.priority
                    || !self.ready
                    || now < self.preempt_after;
                if follow {
                    if let Packet::V3(a) = pkt {
                        self.master_adver_int_ms = u32::from(a.max_adver_int) * 10;
                    }
                    self.restart_down_timer(now);
                }
                // Otherwise preempting: the lower master is ignored and the
                // down timer runs out.
                Ok(())
            }
            VrrpState::Master => {
                if prio == PRIORITY_STOP {
                    self.send_advert(now);
                    return Ok(());
                }
                let higher =
                    prio > self.priority || (prio == self.priority && src > self.cfg.primary_addr);
                if higher {
                    self.leave_master();
                    if let Packet::V3(a) = pkt {
                        self.master_adver_int_ms = u32::from(a.max_adver_int) * 10;
                    }
                    self.set_state(VrrpState::Backup, Reason::HigherPriority);
                    self.restart_down_timer(now);
                } else {
                    // A lower master (split brain): assert ourselves at once
                    // and re-announce the addresses.
                    if !self.cfg.lower_prio_no_advert {
                        self.send_advert(now);
                    }
                    self.garps(self.cfg.garp.lower_prio_repeat);
                }
                Ok(())
            }
        }
    }
}

fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// One member of a sync group as [`sync_group_follow`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    /// Its state.
    pub state: VrrpState,
    /// Whether its own trackers hold it in FAULT.
    pub own_fault: bool,
}

impl GroupMember {
    /// The view of an instance.
    pub fn of(i: &VrrpInstance) -> Self {
        GroupMember {
            state: i.state(),
            own_fault: i.own_fault(),
        }
    }
}

/// keepalived `vrrp_sync_group`: member `changed` has just moved from `from`
/// to its current state (a [`Action::StateChanged`] whose reason is not
/// [`Reason::SyncGroup`]); which other members must follow, and how.
/// A member becoming master takes the others with it; one stepping down
/// from master to backup takes the masters down; one entering FAULT puts
/// the group in FAULT; once no member has a fault of its own, a member
/// leaving FAULT clears the group's fault. Starting (INIT → BACKUP) moves
/// nobody.
pub fn sync_group_follow(
    members: &[GroupMember],
    changed: usize,
    from: VrrpState,
) -> Vec<(usize, GroupCommand)> {
    let Some(me) = members.get(changed) else {
        return Vec::new();
    };
    let others = members
        .iter()
        .enumerate()
        .filter(move |(i, _)| *i != changed);
    match me.state {
        VrrpState::Master => others
            .filter(|(_, m)| m.state == VrrpState::Backup)
            .map(|(i, _)| (i, GroupCommand::Master))
            .collect(),
        VrrpState::Fault => others
            .filter(|(_, m)| matches!(m.state, VrrpState::Backup | VrrpState::Master))
            .map(|(i, _)| (i, GroupCommand::Fault))
            .collect(),
        VrrpState::Backup => match from {
            VrrpState::Master => others
                .filter(|(_, m)| m.state == VrrpState::Master)
                .map(|(i, _)| (i, GroupCommand::Backup))
                .collect(),
            VrrpState::Fault if !members.iter().any(|m| m.own_fault) => others
                .filter(|(_, m)| m.state == VrrpState::Fault)
                .map(|(i, _)| (i, GroupCommand::ClearFault))
                .collect(),
            _ => Vec::new(),
        },
        VrrpState::Initialize => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
