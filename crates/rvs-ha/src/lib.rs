//! Director failover I/O around the sans-IO VRRP state machine of
//! [`rvs_core::vrrp`]: one thread per VRRP instance that
//!
//! - receives adverts on a raw IPv4 socket for IP protocol 112, joined to
//!   224.0.0.18 on the instance's interface (or from unicast peers), and
//!   hands the state machine the TTL, source and destination read from the
//!   IP header the raw socket delivers; an IPv6 instance uses a raw IPv6
//!   socket joined to ff02::12, the hop limit and destination coming as
//!   ancillary data ([`rvs_sys::ip6`]);
//! - sends adverts (VRRPv3 by default, VRRPv2 with `version = 2`) with TTL
//!   255 and TOS 0xc0 from the instance's primary address, as keepalived;
//! - sends gratuitous ARP (IPv4) or unsolicited neighbour advertisements
//!   (IPv6) through an AF_PACKET socket
//!   ([`rvs_sys::frame::FrameSender`]) out of each virtual address's own
//!   interface, spaced by `garp_interval`;
//! - adds and removes the virtual addresses with `ip addr` (each on the
//!   instance's interface or the one its entry names), and on start
//!   removes any configured virtual address a previous run left behind;
//! - moves the members of a sync group together ([`SyncGroupConfig`]);
//! - runs the notify commands on state changes;
//! - polls tracked interfaces (the instance's own interface always: a
//!   link without carrier is FAULT, as in keepalived).
//!
//! [`Vrrp::stop`] (SIGTERM in `rvsd`) makes a master send a priority-0
//! advert and give its addresses up; [`Vrrp::reload`] (SIGHUP) brings the
//! running instances to a new configuration.

#![warn(missing_docs)]

mod addr;
mod group;
mod instance;
pub mod sync;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use addr::{VipManager, interface_ipv4, interface_link_local};
pub use group::SyncGroupConfig;
pub use instance::{link_up, parse_ipv4};
use rvs_core::vrrp::{VrrpConfig, VrrpState};

/// Something the instance tracks besides its own interface: polled every
/// loop turn (at most every 50 ms); `true` is up.
pub type TrackFn = Box<dyn FnMut() -> bool + Send>;

/// Called on every state change with the instance name and the new state.
pub type StateHook = Arc<dyn Fn(&str, VrrpState) + Send + Sync>;

/// Notify commands, keepalived's `notify_master`, `notify_backup`,
/// `notify_fault`, `notify_stop` and `notify`: each an argv. The specific
/// ones run as written; `notify` gets keepalived's four arguments appended:
/// `INSTANCE NAME STATE PRIORITY`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    /// On entering MASTER.
    pub master: Option<Vec<String>>,
    /// On entering BACKUP.
    pub backup: Option<Vec<String>>,
    /// On entering FAULT.
    pub fault: Option<Vec<String>>,
    /// On stopping (back to INIT).
    pub stop: Option<Vec<String>>,
    /// On every change, with `INSTANCE NAME STATE PRIORITY` appended.
    pub any: Option<Vec<String>>,
}

/// One VRRP instance as the I/O layer runs it.
pub struct InstanceConfig {
    /// keepalived's instance name (notify arguments, logs).
    pub name: String,
    /// The interface adverts and gratuitous ARP go out of, and the virtual
    /// addresses are put on.
    pub interface: String,
    /// The state machine's configuration. `primary_addr` is the advert
    /// source (`unicast_src_ip`, or the interface's first IPv4 address);
    /// [`VrrpConfig::track`] starts with the entries of `trackers`, in order,
    /// and the I/O layer appends the instance's own interface (weight 0).
    pub vrrp: VrrpConfig,
    /// Prefix length of each virtual address (same order as `vrrp.vips`).
    pub vip_prefix: Vec<u8>,
    /// The interface of each virtual address (same order as `vrrp.vips`;
    /// a missing entry is `interface`): where it is added and where its
    /// gratuitous ARPs go out.
    pub vip_interfaces: Vec<String>,
    /// 3 (RFC 5798) or 2 (RFC 3768, keepalived's default).
    pub version: u8,
    /// Unicast peers: adverts go to each of them rather than to the group,
    /// and only theirs are accepted. Of the instance's family.
    pub unicast_peers: Vec<IpAddr>,
    /// VRRPv2 simple password (`auth_type PASS`): the 8 bytes sent in every
    /// advert and required in every advert received.
    pub auth_pass: Option<[u8; rvs_wire::vrrp::V2_AUTH_LEN]>,
    /// Spacing of gratuitous ARP messages (keepalived's `garp_interval`);
    /// 0 sends a burst at once.
    pub garp_interval_ms: u64,
    /// Notify commands.
    pub notify: Notify,
    /// Pollers for `vrrp.track[i]`, one per entry, in order.
    pub trackers: Vec<TrackFn>,
    /// rvs ready gate (with [`VrrpConfig::ready_timeout_ms`]): once it reads
    /// true the instance is told it is ready
    /// ([`rvs_core::vrrp::VrrpInstance::set_ready`]), e.g. by
    /// [`sync::SyncDaemons::ready_gate`] when the table has arrived.
    pub ready_gate: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for InstanceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceConfig")
            .field("name", &self.name)
            .field("interface", &self.interface)
            .field("vrrp", &self.vrrp)
            .field("version", &self.version)
            .field("unicast_peers", &self.unicast_peers)
            .finish_non_exhaustive()
    }
}

/// What an instance looks like from outside, for status and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: VrrpState,
    /// Its effective priority.
    pub priority: u8,
    /// Adverts accepted.
    pub adverts_in: u64,
    /// Adverts refused (bad packet, TTL, VRID, addresses...).
    pub adverts_dropped: u64,
    /// Adverts sent.
    pub adverts_out: u64,
    /// Adverts dropped for failing VRRPv2 authentication (also counted in
    /// `adverts_dropped`).
    pub auth_failures: u64,
}

/// One running instance: its thread, its own stop flag, and the slot a
/// reloaded configuration is handed over in.
struct Running {
    name: String,
    identity: Identity,
    stop: Arc<AtomicBool>,
    update: Arc<Mutex<Option<InstanceConfig>>>,
    /// Gives back the instance's sync-group membership, if any, for a
    /// restart of the same instance.
    thread: JoinHandle<Option<group::Membership>>,
}

/// What a reload cannot change in place (the sockets and the state
/// machine are built on it): a change restarts the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    interface: String,
    vrid: u8,
    primary: IpAddr,
    version: u8,
    peers: Vec<IpAddr>,
    /// The other interfaces the addresses go on (a sender is opened for
    /// each), sorted.
    vip_interfaces: Vec<String>,
}

impl Identity {
    fn of(c: &InstanceConfig) -> Identity {
        Identity {
            interface: c.interface.clone(),
            vrid: c.vrrp.vrid,
            primary: c.vrrp.primary_addr,
            version: c.version,
            peers: c.unicast_peers.clone(),
            vip_interfaces: {
                // The set matters (a sender per interface), not which
                // address goes where or how many there are.
                let mut ifs: Vec<String> = c
                    .vip_interfaces
                    .iter()
                    .filter(|d| **d != c.interface)
                    .cloned()
                    .collect();
                ifs.sort();
                ifs.dedup();
                ifs
            },
        }
    }
}

/// What [`Vrrp::reload`] did, by instance name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Started (new in the configuration).
    pub started: Vec<String>,
    /// Stopped (gone from the configuration): a master sent priority 0.
    pub stopped: Vec<String>,
    /// Reconfigured in place, without a state change.
    pub updated: Vec<String>,
    /// Restarted: interface, VRID, source, version or peers changed.
    pub restarted: Vec<String>,
}

/// The instances' status, shared with whoever reports it (`/metrics`):
/// each instance's thread updates its entry every loop turn.
pub type StatusBoard = Arc<Mutex<Vec<InstanceStatus>>>;

/// The running instances.
pub struct Vrrp {
    running: Vec<Running>,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    hook: Option<StateHook>,
}

impl std::fmt::Debug for Vrrp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vrrp")
            .field("instances", &self.running.len())
            .finish()
    }
}

impl Vrrp {
    /// Opens every instance's sockets (errors before any thread starts:
    /// a missing interface or no CAP_NET_RAW) and starts them, each on its
    /// own thread. `hook` hears every state change.
    pub fn start(instances: Vec<InstanceConfig>, hook: Option<StateHook>) -> std::io::Result<Vrrp> {
        Vrrp::start_on(StatusBoard::default(), instances, Vec::new(), hook)
    }

    /// As [`Vrrp::start`], with sync groups: the members of each group
    /// change state together (keepalived's `vrrp_sync_group`).
    pub fn start_with_groups(
        instances: Vec<InstanceConfig>,
        groups: Vec<SyncGroupConfig>,
        hook: Option<StateHook>,
    ) -> std::io::Result<Vrrp> {
        Vrrp::start_on(StatusBoard::default(), instances, groups, hook)
    }

    /// [`Vrrp::start_with_groups`], reporting on `board`.
    pub fn start_on(
        board: StatusBoard,
        instances: Vec<InstanceConfig>,
        groups: Vec<SyncGroupConfig>,
        hook: Option<StateHook>,
    ) -> std::io::Result<Vrrp> {
        let mut membership: Vec<Option<group::Membership>> = std::iter::repeat_with(|| None)
            .take(instances.len())
            .collect();
        for g in &groups {
            for (&i, m) in g.members.iter().zip(group::memberships(g)) {
                let slot = membership.get_mut(i).ok_or_else(|| {
                    std::io::Error::other(format!("sync group {}: no instance {i}", g.name))
                })?;
                if slot.replace(m).is_some() {
                    return Err(std::io::Error::other(format!(
                        "sync group {}: instance {i} is in two groups",
                        g.name
                    )));
                }
            }
        }
        let mut v = Vrrp {
            running: Vec::new(),
            status: board,
            hook,
        };
        let opened = v.open_all(instances)?;
        for ((id, mut r), m) in opened.into_iter().zip(membership) {
            r.join_group(m);
            v.spawn(id, r)?;
        }
        Ok(v)
    }

    fn open_all(
        &self,
        instances: Vec<InstanceConfig>,
    ) -> std::io::Result<Vec<(Identity, instance::Runner)>> {
        instances
            .into_iter()
            .map(|cfg| {
                let id = Identity::of(&cfg);
                instance::Runner::open(cfg, self.status.clone(), self.hook.clone(), None)
                    .map(|r| (id, r))
            })
            .collect()
    }

    fn spawn(&mut self, identity: Identity, r: instance::Runner) -> std::io::Result<()> {
        let name = r.name().to_string();
        {
            let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
            st.retain(|s| s.name != name);
            st.push(r.initial_status());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let update = Arc::new(Mutex::new(None));
        let (s, u) = (stop.clone(), update.clone());
        let thread = std::thread::Builder::new()
            .name("rvs-vrrp".into())
            .spawn(move || r.run(&s, &u))?;
        self.running.push(Running {
            name,
            identity,
            stop,
            update,
            thread,
        });
        Ok(())
    }

    /// Brings the running instances to `instances` (SIGHUP): an instance
    /// whose interface, VRID, source, version and peers are unchanged is
    /// reconfigured in place by its own thread (within 50 ms, no state
    /// change unless a tracker says so); one where they changed is stopped
    /// and started again; new ones start and missing ones stop (a master
    /// sends priority 0 and removes its addresses). The sockets of every
    /// instance to start are opened first: if one cannot be, nothing
    /// changes and the error is returned.
    pub fn reload(&mut self, instances: Vec<InstanceConfig>) -> std::io::Result<ReloadSummary> {
        let mut sum = ReloadSummary::default();
        let mut in_place = Vec::new();
        let mut to_open = Vec::new();
        for cfg in instances {
            match self.running.iter().find(|r| r.name == cfg.name) {
                Some(r) if r.identity == Identity::of(&cfg) => in_place.push(cfg),
                Some(_) => {
                    sum.restarted.push(cfg.name.clone());
                    to_open.push(cfg);
                }
                None => {
                    sum.started.push(cfg.name.clone());
                    to_open.push(cfg);
                }
            }
        }
        let keep: Vec<String> = in_place
            .iter()
            .chain(&to_open)
            .map(|c| c.name.clone())
            .collect();
        let opened = self.open_all(to_open)?;
        // Stop what goes away or restarts, before the new sockets start.
        let mut kept_groups: Vec<(String, group::Membership)> = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            let name = &self.running[i].name;
            let restart = sum.restarted.contains(name);
            if !keep.contains(name) || restart {
                let r = self.running.remove(i);
                r.stop.store(true, Ordering::SeqCst);
                let membership = r.thread.join().ok().flatten();
                if restart {
                    if let Some(m) = membership {
                        kept_groups.push((r.name.clone(), m));
                    }
                } else {
                    self.status
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|s| s.name != r.name);
                    sum.stopped.push(r.name);
                }
            } else {
                i += 1;
            }
        }
        for cfg in in_place {
            if let Some(r) = self.running.iter().find(|r| r.name == cfg.name) {
                sum.updated.push(cfg.name.clone());
                *r.update.lock().unwrap_or_else(|e| e.into_inner()) = Some(cfg);
            }
        }
        for (id, mut r) in opened {
            // A restarted member stays in its sync group; groups themselves
            // are read at start only.
            let at = kept_groups.iter().position(|(n, _)| n == r.name());
            r.join_group(at.map(|i| kept_groups.swap_remove(i).1));
            self.spawn(id, r)?;
        }
        Ok(sum)
    }

    /// The instances' states.
    pub fn status(&self) -> Vec<InstanceStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops every instance: masters send a priority-0 advert and remove
    /// their addresses. Returns when every thread has finished.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        for r in &self.running {
            r.stop.store(true, Ordering::SeqCst);
        }
        for r in self.running.drain(..) {
            let _ = r.thread.join();
        }
    }
}

impl Drop for Vrrp {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Whether the I/O layer runs instances of `ip`'s family (both, now).
pub fn supported(ip: &IpAddr) -> bool {
    ip.is_ipv4() || ip.is_ipv6()
}
