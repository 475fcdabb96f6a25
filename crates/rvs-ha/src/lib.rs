//! Director failover I/O around the sans-IO VRRP state machine of
//! [`rvs_core::vrrp`]: one thread per VRRP instance that
//!
//! - receives adverts on a raw IPv4 socket for IP protocol 112, joined to
//!   224.0.0.18 on the instance's interface (or from unicast peers), and
//!   hands the state machine the TTL, source and destination read from the
//!   IP header the raw socket delivers;
//! - sends adverts (VRRPv3 by default, VRRPv2 with `version = 2`) with TTL
//!   255 and TOS 0xc0 from the instance's primary address, as keepalived;
//! - sends gratuitous ARP through an AF_PACKET socket
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
//! advert and give its addresses up.

#![warn(missing_docs)]

mod addr;
mod group;
mod instance;
pub mod sync;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use addr::{VipManager, interface_ipv4};
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
    /// and only theirs are accepted.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// Spacing of gratuitous ARP messages (keepalived's `garp_interval`);
    /// 0 sends a burst at once.
    pub garp_interval_ms: u64,
    /// Notify commands.
    pub notify: Notify,
    /// Pollers for `vrrp.track[i]`, one per entry, in order.
    pub trackers: Vec<TrackFn>,
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
}

/// The running instances.
pub struct Vrrp {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
}

impl std::fmt::Debug for Vrrp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vrrp")
            .field("instances", &self.threads.len())
            .finish()
    }
}

impl Vrrp {
    /// Opens every instance's sockets (errors before any thread starts:
    /// a missing interface or no CAP_NET_RAW) and starts them, each on its
    /// own thread. `hook` hears every state change.
    pub fn start(instances: Vec<InstanceConfig>, hook: Option<StateHook>) -> std::io::Result<Vrrp> {
        Vrrp::start_with_groups(instances, Vec::new(), hook)
    }

    /// As [`Vrrp::start`], with sync groups: the members of each group
    /// change state together (keepalived's `vrrp_sync_group`).
    pub fn start_with_groups(
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
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(Vec::new()));
        let mut ready = Vec::new();
        for ((i, cfg), member) in instances.into_iter().enumerate().zip(membership) {
            status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(InstanceStatus {
                    name: cfg.name.clone(),
                    state: VrrpState::Initialize,
                    priority: cfg.vrrp.priority,
                    adverts_in: 0,
                    adverts_dropped: 0,
                    adverts_out: 0,
                });
            ready.push(instance::Runner::open(
                cfg,
                i,
                status.clone(),
                hook.clone(),
                member,
            )?);
        }
        let threads = ready
            .into_iter()
            .map(|r| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name("rvs-vrrp".into())
                    .spawn(move || r.run(&stop))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Vrrp {
            stop,
            threads,
            status,
        })
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
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Vrrp {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Whether `ip` is IPv4 (the only family the I/O layer runs so far).
pub fn supported(ip: &IpAddr) -> bool {
    ip.is_ipv4()
}
