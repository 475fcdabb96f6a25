//! The director: virtual services, their destinations and schedulers, the
//! connection tables, persistence templates, statistics, and the rules by
//! which the kernel's `ip_vs_in`/`ip_vs_out` decide what a packet does.
//!
//! The director is sans-IO. A data plane hands it packet summaries
//! ([`PacketInfo`]) with the current time and gets a [`Verdict`] back; the
//! control plane calls the `add_*`/`edit_*`/`del_*` methods. Time only moves
//! when the caller says so ([`Director::advance`], or implicitly through a
//! packet), which is what makes `rvsadm replay` reproducible.
//!
//! Destinations live in an arena indexed by [`DestId`]. A deleted
//! destination is unlinked from its service and kept in a trash list while
//! connections still refer to it (and for two minutes after that, as the
//! kernel does); re-adding the same server to the same service takes the
//! object back with its counters and statistics.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::{
    Addr, Conn, ConnKey, ConnTable, NO_CONTROL, TEMPLATE_ASSURED, TableFull, flags as cf,
};
use crate::model::{
    DestConfig, Family, Forward, ModelError, Protocol, ServiceConfig, ServiceKey, Sysctls,
    Timeouts, validate_dest, validate_service,
};
use crate::sched::{
    self, DestChange, DestId, DestStatus, Dests, Flow, SchedCtx, SchedOptions, Scheduler,
    SplitMix64,
};
use crate::sctp::{SctpEvent, SctpState, sctp_transition};
use crate::state::{Direction, StateTimeouts, TcpFlags, TcpState, UDP_STATE_NAME, tcp_transition};
use crate::stats::{Counters, Rates, Stats};

/// The FTP control port; persistence and service lookup treat it specially.
const FTP_PORT: u16 = 21;
/// The FTP data port; connections from it are never scheduled.
const FTP_DATA_PORT: u16 = 20;
/// How often the rate estimator runs.
pub const ESTIMATOR_PERIOD_MS: u64 = 2000;
/// The re-arm period of a template that expires while it still controls
/// connections (and its timeout from then on).
const TEMPLATE_POSTPONE_S: u32 = 60;
/// The trash timer period; an unreferenced deleted destination is freed at
/// the first sweep at least two periods after it became idle.
const TRASH_PERIOD_MS: u64 = 60_000;
const TRASH_IDLE_MS: u64 = 120_000;

/// How a director is set up.
#[derive(Debug, Clone, Copy)]
pub struct DirectorConfig {
    /// Most connection entries (templates included) per address family.
    pub conn_capacity: usize,
    /// Key of the connection tables' hash (draw it at random).
    pub hash_key: [u64; 4],
    /// Seed of the random source (twos; random rr start).
    pub rng_seed: u64,
    /// The sysctls.
    pub sysctls: Sysctls,
    /// rvs opt-in: rr/wrr start at a random position.
    pub random_start: bool,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        DirectorConfig {
            conn_capacity: 1 << 20,
            hash_key: [0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344],
            rng_seed: 0,
            sysctls: Sysctls::default(),
            random_start: false,
        }
    }
}

/// What the director needs to know about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// Transport protocol.
    pub proto: Protocol,
    /// Source address (the client for inbound packets).
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address (the VIP for inbound packets).
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Firewall mark (0 = none).
    pub fwmark: u32,
    /// TCP flags (ignored for other protocols).
    pub tcp: TcpFlags,
    /// The SCTP state-machine event the packet's chunks make
    /// ([`crate::sctp::sctp_packet_event`]; ignored for other protocols).
    pub sctp: SctpEvent,
    /// IP total length, for byte counters.
    pub len: u32,
}

/// A reference to a connection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The table it is in.
    pub family: Family,
    /// Its slot.
    pub id: u32,
}

/// Where a forwarded packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// The connection it belongs to.
    pub conn: ConnRef,
    /// The destination object.
    pub dest: DestId,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
    /// Forwarding method of the connection.
    pub method: Forward,
    /// Whether this packet created the connection.
    pub new_conn: bool,
}

/// The addresses and ports of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTuple {
    /// Transport protocol.
    pub proto: Protocol,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The connection table is full; the new flow was refused.
    TableFull,
    /// The connection's real server was deleted.
    DestUnavailable,
    /// A reply for a connection that no longer exists.
    NoConnection,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it as described.
    Forward(Forwarding),
    /// Not for the director: let the host stack have it.
    Pass,
    /// A service matched but no real server could be chosen: answer with
    /// ICMP port unreachable and drop.
    Reject,
    /// Drop it.
    Drop(DropReason),
}

/// Control-plane errors, worded as ipvsadm words them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtlError {
    /// `-A` of an existing service.
    #[error("Service already exists")]
    ServiceExists,
    /// `-E`, `-D` or `-Z` of a missing service.
    #[error("No such service")]
    NoSuchService,
    /// `-a`, `-e` or `-d` on a missing service.
    #[error("Service not defined")]
    ServiceNotDefined,
    /// `-a` of an existing destination.
    #[error("Destination already exists")]
    DestExists,
    /// `-e` or `-d` of a missing destination.
    #[error("No such destination")]
    NoSuchDest,
    /// A rule the object model refuses.
    #[error("{0}")]
    Invalid(#[from] ModelError),
}

/// A service as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSnapshot {
    /// Its configuration.
    pub config: ServiceConfig,
    /// Counters since the last zeroing.
    pub stats: Counters,
    /// Estimated rates.
    pub rates: Rates,
    /// Destinations in list order (newest first).
    pub dests: Vec<DestSnapshot>,
}

/// A destination as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSnapshot {
    /// Its identity.
    pub id: DestId,
    /// Its configuration (the weight is the current one).
    pub config: DestConfig,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn (templates bound to it).
    pub persistent: u32,
    /// Whether the overload flag is set.
    pub overloaded: bool,
    /// Counters since the last zeroing.
    pub stats: Counters,
    /// Estimated rates.
    pub rates: Rates,
}

/// A connection or template as `ipvsadm -Lc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSnapshot {
    /// IP protocol number (0 for fwmark templates).
    pub proto: u8,
    /// Whether it is a persistence template.
    pub template: bool,
    /// Client address (template: client network).
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
    /// State name.
    pub state: &'static str,
    /// Milliseconds until it expires.
    pub expires_ms: u64,
    /// Connection flags.
    pub flags: u16,
    /// The destination.
    pub dest: DestId,
}

struct Service {
    config: ServiceConfig,
    order: Vec<DestId>,
    sched: Box<dyn Scheduler>,
    stats: Stats,
    /// Creation rank: greater than every live service's created before it
    /// (slots are reused, so slot order is not creation order).
    created: u64,
}

#[derive(Debug, Clone)]
struct DestInfo {
    svc_key: ServiceKey,
    /// The service slot while the destination is in its list.
    svc: Option<usize>,
    config: DestConfig,
    persistent: u32,
    stats: Stats,
    /// Set while in the trash: when it was first seen unreferenced.
    idle_since: Option<u64>,
}

/// Everything but the connection tables, so that table-generic code can
/// borrow both at once.
struct Core {
    services: Vec<Option<Service>>,
    free_services: Vec<usize>,
    by_key: HashMap<ServiceKey, usize>,
    status: Vec<DestStatus>,
    info: Vec<DestInfo>,
    trash: Vec<DestId>,
    timeouts: StateTimeouts,
    sysctls: Sysctls,
    stats: Stats,
    now: u64,
    next_estimate: u64,
    trash_timer: Option<u64>,
    seq: u32,
    refused: u64,
    rng: SplitMix64,
    random_start: bool,
    ftp_services: usize,
    fwmark_services: [usize; 2],
    port_zero_services: usize,
}

/// The sans-IO IPVS director.
pub struct Director {
    core: Core,
    v4: ConnTable<Ipv4Addr>,
    v6: ConnTable<Ipv6Addr>,
}

impl std::fmt::Debug for Director {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Director")
            .field("services", &self.core.by_key.len())
            .field("v4", &self.v4)
            .field("v6", &self.v6)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn family_index(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

fn forward_flags(fwd: Forward) -> u16 {
    match fwd {
        Forward::Masq => cf::FWD_MASQ,
        Forward::Local => cf::FWD_LOCAL,
        Forward::Tunnel(_) => cf::FWD_TUNNEL,
        Forward::Route => cf::FWD_ROUTE,
        Forward::Proxy => cf::FWD_PROXY,
    }
}

/// The forwarding method in a connection's flags; tunnel parameters are the
/// destination's (`configured`).
fn conn_forward(flags: u16, configured: Forward) -> Forward {
    match flags & cf::FWD_MASK {
        cf::FWD_MASQ => Forward::Masq,
        cf::FWD_LOCAL => Forward::Local,
        cf::FWD_ROUTE => Forward::Route,
        cf::FWD_PROXY => Forward::Proxy,
        _ => match configured {
            Forward::Tunnel(t) => Forward::Tunnel(t),
            _ => Forward::Tunnel(Default::default()),
        },
    }
}

/// Whether a packet may create a connection (the kernel's
/// `*_conn_schedule` entry tests).
fn may_schedule(p: &PacketInfo, sysctls: &Sysctls) -> bool {
    match p.proto {
        Protocol::Tcp => {
            if sysctls.sloppy_tcp {
                !p.tcp.rst
            } else {
                p.tcp.syn && !p.tcp.rst
            }
        }
        Protocol::Udp => true,
        Protocol::Sctp => {
            if sysctls.sloppy_sctp {
                p.sctp != SctpEvent::Abort
            } else {
                p.sctp == SctpEvent::Init
            }
        }
    }
}

impl Core {
    fn find_service(&self, p: &PacketInfo) -> Option<usize> {
        let family = Family::of(&p.dst);
        if p.fwmark != 0 && self.fwmark_services[family_index(family)] > 0 {
            let key = ServiceKey::FwMark {
                family,
                mark: p.fwmark,
            };
            if let Some(&i) = self.by_key.get(&key) {
                return Some(i);
            }
        }
        let exact = ServiceKey::Addr {
            proto: p.proto,
            addr: p.dst,
            port: p.dport,
        };
        if let Some(&i) = self.by_key.get(&exact) {
            return Some(i);
        }
        // Possible FTP data connection of a virtual FTP service.
        if p.proto == Protocol::Tcp
            && self.ftp_services > 0
            && (p.dport == FTP_DATA_PORT || p.dport >= 1024)
        {
            let ftp = ServiceKey::Addr {
                proto: p.proto,
                addr: p.dst,
                port: FTP_PORT,
            };
            if let Some(&i) = self.by_key.get(&ftp) {
                return Some(i);
            }
        }
        if self.port_zero_services > 0 {
            let any = ServiceKey::Addr {
                proto: p.proto,
                addr: p.dst,
                port: 0,
            };
            if let Some(&i) = self.by_key.get(&any) {
                return Some(i);
            }
        }
        None
    }

    fn service(&self, i: usize) -> &Service {
        self.services[i].as_ref().expect("live service slot")
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Binds a new entry to its destination: counters and overload.
    fn bind_dest(&mut self, dest: DestId, template: bool) {
        let st = &mut self.status[dest.index()];
        if template {
            self.info[dest.index()].persistent += 1;
        } else {
            // New connections start inactive; the protocol makes them active.
            st.inactive += 1;
        }
        let u = self.info[dest.index()].config.u_threshold;
        if u != 0 && st.active + st.inactive >= u {
            st.overloaded = true;
        }
    }

    fn unbind_dest(&mut self, dest: DestId, template: bool, inactive: bool) {
        let info = &mut self.info[dest.index()];
        let st = &mut self.status[dest.index()];
        if template {
            info.persistent = info.persistent.saturating_sub(1);
        } else if inactive {
            st.inactive = st.inactive.saturating_sub(1);
        } else {
            st.active = st.active.saturating_sub(1);
        }
        let total = u64::from(st.active) + u64::from(st.inactive);
        let (u, l) = (
            u64::from(info.config.u_threshold),
            u64::from(info.config.l_threshold),
        );
        if l != 0 {
            if total < l {
                st.overloaded = false;
            }
        } else if u != 0 {
            if total * 4 < u * 3 {
                st.overloaded = false;
            }
        } else {
            st.overloaded = false;
        }
    }

    fn dest_refs(&self, dest: DestId) -> u64 {
        let st = &self.status[dest.index()];
        u64::from(st.active)
            + u64::from(st.inactive)
            + u64::from(self.info[dest.index()].persistent)
    }

    /// Counts a new connection on its destination, its service and globally.
    fn conn_stats(&mut self, dest: DestId) {
        self.info[dest.index()].stats.add_conn();
        if let Some(s) = self.info[dest.index()].svc
            && let Some(svc) = self.services[s].as_mut()
        {
            svc.stats.add_conn();
        }
        self.stats.add_conn();
    }

    /// Counts a packet; only while the destination is available, as the
    /// kernel's `ip_vs_in_stats`/`ip_vs_out_stats` do.
    fn packet_stats(&mut self, dest: DestId, inbound: bool, len: u32) {
        if !self.status[dest.index()].available {
            return;
        }
        let bytes = u64::from(len);
        let add = |s: &mut Stats| {
            if inbound {
                s.add_in(bytes)
            } else {
                s.add_out(bytes)
            }
        };
        add(&mut self.info[dest.index()].stats);
        if let Some(s) = self.info[dest.index()].svc
            && let Some(svc) = self.services[s].as_mut()
        {
            add(&mut svc.stats);
        }
        add(&mut self.stats);
    }

    fn estimate_all(&mut self) {
        self.stats.estimate();
        for svc in self.services.iter_mut().flatten() {
            svc.stats.estimate();
        }
        for info in &mut self.info {
            info.stats.estimate();
        }
    }

    /// The trash sweep: frees deleted destinations that have been
    /// unreferenced for two minutes, so that a later `-a` makes a new one.
    fn sweep_trash(&mut self, now: u64) {
        let mut keep = Vec::with_capacity(self.trash.len());
        for id in std::mem::take(&mut self.trash) {
            if self.dest_refs(id) > 0 {
                keep.push(id);
                continue;
            }
            let info = &mut self.info[id.index()];
            match info.idle_since {
                Some(t) if now >= t + TRASH_IDLE_MS => {}
                Some(_) => keep.push(id),
                None => {
                    info.idle_since = Some(now);
                    keep.push(id);
                }
            }
        }
        self.trash = keep;
        self.trash_timer = if self.trash.is_empty() {
            None
        } else {
            Some(now + TRASH_PERIOD_MS)
        };
    }

    /// Runs the service's scheduler.
    fn pick(&mut self, svc: usize, p: &PacketInfo) -> Option<DestId> {
        let now = self.now;
        let Core {
            services,
            status,
            rng,
            sysctls,
            ..
        } = self;
        let svc = services[svc].as_mut()?;
        let dests = Dests {
            order: &svc.order,
            status,
        };
        let flow = Flow {
            proto: p.proto,
            src: p.src,
            sport: p.sport,
            dst: p.dst,
            dport: p.dport,
        };
        let mut ctx = SchedCtx {
            now_ms: now,
            rng,
            lblc_expiration: sysctls.lblc_expiration,
            lblcr_expiration: sysctls.lblcr_expiration,
        };
        svc.sched.schedule(dests, &flow, &mut ctx)
    }

    /// `ip_vs_leave`: what happens to a packet for which no destination
    /// was found.
    fn leave(&self, svc: usize, p: &PacketInfo) -> Verdict {
        let port = self.service(svc).config.key.port();
        if port == FTP_PORT && p.dport != port {
            Verdict::Pass
        } else {
            Verdict::Reject
        }
    }
}

/// Connection-table work that is the same for both address families.
struct Flows<'a, A: Addr> {
    core: &'a mut Core,
    table: &'a mut ConnTable<A>,
}

impl<A: Addr> Flows<'_, A> {
    fn addr(ip: IpAddr) -> A {
        A::from_ip(ip).expect("address family matches its table")
    }

    /// `ip_vs_conn_new` + `ip_vs_bind_dest`.
    #[allow(clippy::too_many_arguments)]
    fn conn_new(
        &mut self,
        proto: u8,
        caddr: A,
        cport: u16,
        vaddr: A,
        vport: u16,
        dest: DestId,
        dport: u16,
        extra_flags: u16,
        fwmark: u32,
    ) -> Result<u32, TableFull> {
        let fwd = self.core.info[dest.index()].config.forward;
        let mut flags = extra_flags | forward_flags(fwd) | cf::INACTIVE;
        if !fwd.sees_replies() {
            flags |= cf::NOOUTPUT;
        }
        if proto != Protocol::Udp.number() {
            flags &= !cf::ONE_PACKET;
        }
        let seq = self.core.next_seq();
        let conn = Conn {
            caddr,
            vaddr,
            cport,
            vport,
            dport,
            proto,
            state: 0,
            flags,
            dest,
            control: NO_CONTROL,
            n_control: 0,
            // The kernel's initial 3 s; the first packet's transition replaces it.
            timeout: 3,
            fwmark,
            seq,
        };
        match self.table.insert(conn) {
            Ok(id) => {
                self.core.bind_dest(dest, flags & cf::TEMPLATE != 0);
                Ok(id)
            }
            Err(e) => {
                self.core.refused += 1;
                Err(e)
            }
        }
    }

    /// Restarts an entry's timer with its timeout (`ip_vs_conn_put`).
    fn put(&mut self, id: u32) {
        let t = self.table.get(id).timeout;
        self.table.arm(id, self.core.now + u64::from(t) * 1000);
    }

    /// `ip_vs_conn_expire_now`: the entry goes at the end of this event.
    fn expire_now(&mut self, id: u32) {
        self.table.get_mut(id).timeout = 0;
        self.table.arm(id, self.core.now);
    }

    /// A timer fired (`ip_vs_conn_expire`).
    fn expire(&mut self, id: u32, deadline: u64) {
        let c = *self.table.get(id);
        if c.n_control > 0 {
            // Still controls connections: postponed, and 60 s for good.
            self.table.get_mut(id).timeout = TEMPLATE_POSTPONE_S;
            self.table
                .arm(id, deadline + u64::from(TEMPLATE_POSTPONE_S) * 1000);
            return;
        }
        self.table.remove(id);
        if c.control != NO_CONTROL && self.table.is_live(c.control) {
            let ct_id = c.control;
            let ct = self.table.get_mut(ct_id);
            ct.n_control = ct.n_control.saturating_sub(1);
            let drop_ct = c.timeout == 0
                && ct.n_control == 0
                && !(ct.is_template() && ct.state & TEMPLATE_ASSURED != 0);
            if drop_ct {
                self.table.cancel_and_expire(ct_id, self.core);
            }
        }
        self.core
            .unbind_dest(c.dest, c.is_template(), c.flags & cf::INACTIVE != 0);
    }

    /// Expires everything due at the current time.
    fn flush_due(&mut self) {
        while let Some((id, d)) = self.table.pop_expired(self.core.now) {
            self.expire(id, d);
        }
    }

    /// Marks the template that controls `id` as assured.
    fn assure_control(&mut self, id: u32) {
        let ctl = self.table.get(id).control;
        if ctl != NO_CONTROL && self.table.is_live(ctl) {
            let ct = self.table.get_mut(ctl);
            if ct.is_template() {
                ct.state |= TEMPLATE_ASSURED;
            }
        }
    }

    /// `ip_vs_set_state`: the protocol state machine and the new timeout.
    fn set_state(&mut self, id: u32, dir: Direction, tcp: TcpFlags, sctp: SctpEvent) {
        let proto = self.table.get(id).proto;
        if proto == Protocol::Udp.number() {
            if dir == Direction::Output {
                self.assure_control(id);
            }
            self.table.get_mut(id).timeout = self.core.timeouts.udp;
            return;
        }
        let secure = self.core.sysctls.secure_tcp;
        let c = self.table.get_mut(id);
        let mut dir = dir;
        if c.flags & cf::NOOUTPUT != 0 {
            if dir == Direction::Output {
                c.flags &= !cf::NOOUTPUT;
            } else {
                dir = Direction::InputOnly;
            }
        }
        // (new state index, active?, established?, timeout)
        let (new, active, established, timeout) = if proto == Protocol::Tcp.number() {
            let old = TcpState::from_index(c.state).unwrap_or(TcpState::None);
            let new = tcp_transition(old, dir, tcp, secure);
            (
                new.index(),
                new.is_active(),
                new == TcpState::Established,
                self.core.timeouts.tcp(new),
            )
        } else {
            let old = SctpState::from_index(usize::from(c.state)).unwrap_or(SctpState::None);
            let new = sctp_transition(old, dir, sctp);
            (
                new.index() as u8,
                new.is_active(),
                new == SctpState::Established,
                new.default_timeout_secs(),
            )
        };
        if new != c.state {
            let st = &mut self.core.status[c.dest.index()];
            if c.flags & cf::INACTIVE == 0 && !active {
                st.active = st.active.saturating_sub(1);
                st.inactive += 1;
                c.flags |= cf::INACTIVE;
            } else if c.flags & cf::INACTIVE != 0 && active {
                st.active += 1;
                st.inactive = st.inactive.saturating_sub(1);
                c.flags &= !cf::INACTIVE;
            }
            c.state = new;
            if established {
                self.assure_control(id);
            }
        }
        self.table.get_mut(id).timeout = timeout;
    }

    fn forwarding(&self, id: u32, new_conn: bool, family: Family) -> Verdict {
        let c = self.table.get(id);
        let st = &self.core.status[c.dest.index()];
        Verdict::Forward(Forwarding {
            conn: ConnRef { family, id },
            dest: c.dest,
            daddr: st.addr,
            dport: c.dport,
            // The connection's method (fixed at creation), not the dest's current one.
            method: conn_forward(c.flags, self.core.info[c.dest.index()].config.forward),
            new_conn,
        })
    }

    /// A template is valid only while its destination is available (and,
    /// with `expire_quiescent_template`, not quiesced). An invalid one is made
    /// unmatchable and left to expire (`ip_vs_check_template`).
    fn check_template(&mut self, ct: u32) -> bool {
        let dest = self.table.get(ct).dest;
        let st = &self.core.status[dest.index()];
        let valid =
            st.available && !(self.core.sysctls.expire_quiescent_template && st.weight == 0);
        if !valid && self.table.get(ct).vport != 0xffff {
            self.table.rekey(ct, |c| {
                c.dport = 0xffff;
                c.vport = 0xffff;
                c.cport = 0;
            });
        }
        valid
    }

    /// `ip_vs_sched_persist`.
    fn schedule_persistent(&mut self, svc: usize, p: &PacketInfo) -> Result<u32, Verdict> {
        let cfg = self.core.service(svc).config.clone();
        let caddr = Self::addr(p.src);
        let vaddr = Self::addr(p.dst);
        let snet = Self::addr(cfg.netmask.apply(p.src));
        let svc_port = cfg.key.port();
        let port_specific = p.dport == svc_port;
        let (tproto, tvaddr, tvport) = if port_specific {
            let vport = if svc_port != FTP_PORT { p.dport } else { 0 };
            (p.proto.number(), vaddr, vport)
        } else if let ServiceKey::FwMark { mark, .. } = cfg.key {
            (0, A::from_mark(mark), 0)
        } else {
            (p.proto.number(), vaddr, 0)
        };
        let tkey = ConnKey {
            proto: tproto,
            template: true,
            caddr: snet,
            cport: 0,
            vaddr: tvaddr,
            vport: tvport,
        };
        let found = self
            .table
            .lookup(&tkey)
            .filter(|&ct| self.check_template(ct));
        let (ct, dest) = match found {
            Some(ct) => (ct, self.table.get(ct).dest),
            None => {
                let Some(dest) = self.core.pick(svc, p) else {
                    return Err(self.core.leave(svc, p));
                };
                let dport = if port_specific && svc_port != FTP_PORT {
                    self.core.status[dest.index()].port
                } else {
                    0
                };
                let ct = self
                    .conn_new(
                        tproto,
                        snet,
                        0,
                        tvaddr,
                        tvport,
                        dest,
                        dport,
                        cf::TEMPLATE,
                        p.fwmark,
                    )
                    .map_err(|_| Verdict::Drop(DropReason::TableFull))?;
                self.table.get_mut(ct).timeout = cfg.persistence.unwrap_or(0);
                (ct, dest)
            }
        };
        let dest_port = self.core.status[dest.index()].port;
        let dport = if port_specific && dest_port != 0 {
            dest_port
        } else {
            p.dport
        };
        let ops = if cfg.one_packet && p.proto == Protocol::Udp {
            cf::ONE_PACKET
        } else {
            0
        };
        let cp = match self.conn_new(
            p.proto.number(),
            caddr,
            p.sport,
            vaddr,
            p.dport,
            dest,
            dport,
            ops,
            p.fwmark,
        ) {
            Ok(cp) => cp,
            Err(_) => {
                // A template created for nothing is left to its timer.
                self.put(ct);
                return Err(Verdict::Drop(DropReason::TableFull));
            }
        };
        self.table.get_mut(cp).control = ct;
        self.table.get_mut(ct).n_control += 1;
        self.put(ct);
        self.core.conn_stats(dest);
        Ok(cp)
    }

    /// `ip_vs_schedule`.
    fn schedule(&mut self, svc: usize, p: &PacketInfo) -> Result<u32, Verdict> {
        if p.sport == FTP_DATA_PORT {
            // Active FTP data from a real server is never scheduled.
            return Err(Verdict::Pass);
        }
        let cfg = &self.core.service(svc).config;
        if cfg.persistence.is_some() {
            return self.schedule_persistent(svc, p);
        }
        if !cfg.key.is_fwmark() && p.dport != cfg.key.port() {
            return Err(self.core.leave(svc, p));
        }
        let ops = if cfg.one_packet && p.proto == Protocol::Udp {
            cf::ONE_PACKET
        } else {
            0
        };
        let Some(dest) = self.core.pick(svc, p) else {
            return Err(self.core.leave(svc, p));
        };
        let dest_port = self.core.status[dest.index()].port;
        let dport = if dest_port != 0 { dest_port } else { p.dport };
        let cp = self
            .conn_new(
                p.proto.number(),
                Self::addr(p.src),
                p.sport,
                Self::addr(p.dst),
                p.dport,
                dest,
                dport,
                ops,
                p.fwmark,
            )
            .map_err(|_| Verdict::Drop(DropReason::TableFull))?;
        self.core.conn_stats(dest);
        Ok(cp)
    }

    /// Whether a connection that sees a new SYN is "expected to be
    /// finished" (`is_new_conn_expected`).
    fn new_conn_expected(&self, c: &Conn<A>) -> bool {
        if c.control != NO_CONTROL {
            return false;
        }
        let mode = self.core.sysctls.conn_reuse_mode;
        if c.proto == Protocol::Tcp.number() {
            let s = TcpState::from_index(c.state);
            s == Some(TcpState::TimeWait)
                || s == Some(TcpState::Close)
                || (mode & 2 != 0 && s == Some(TcpState::FinWait) && c.flags & cf::NOOUTPUT != 0)
        } else if c.proto == Protocol::Sctp.number() {
            SctpState::from_index(usize::from(c.state)) == Some(SctpState::Closed)
        } else {
            false
        }
    }

    /// `ip_vs_in`: a packet from a client.
    fn inbound(&mut self, p: &PacketInfo, family: Family) -> Verdict {
        let key = ConnKey {
            proto: p.proto.number(),
            template: false,
            caddr: Self::addr(p.src),
            cport: p.sport,
            vaddr: Self::addr(p.dst),
            vport: p.dport,
        };
        let mut cp = self.table.lookup(&key);
        let mut flush = false;
        let is_new = match p.proto {
            Protocol::Tcp => p.tcp.syn,
            Protocol::Sctp => p.sctp == SctpEvent::Init,
            Protocol::Udp => false,
        };
        if let Some(id) = cp
            && self.core.sysctls.conn_reuse_mode != 0
            && is_new
        {
            let c = *self.table.get(id);
            let quiesced = self.core.status[c.dest.index()].weight == 0;
            let resched =
                (self.core.sysctls.expire_nodest_conn && quiesced) || self.new_conn_expected(&c);
            if resched {
                // The old entry still counts while the scheduler
                // chooses; it is unbound at the end of this event.
                if c.n_control == 0 {
                    self.expire_now(id);
                    flush = true;
                }
                cp = None;
            }
        }
        let verdict = match cp {
            None => self.inbound_new(p, family),
            Some(id) => {
                let dest = self.table.get(id).dest;
                if !self.core.status[dest.index()].available {
                    if self.core.sysctls.expire_nodest_conn {
                        self.expire_now(id);
                        flush = true;
                    }
                    // Dropped without a state change or timer restart.
                    Verdict::Drop(DropReason::DestUnavailable)
                } else {
                    self.core.packet_stats(dest, true, p.len);
                    self.set_state(id, Direction::Input, p.tcp, p.sctp);
                    self.put(id);
                    self.forwarding(id, false, family)
                }
            }
        };
        if flush {
            self.flush_due();
        }
        verdict
    }

    fn inbound_new(&mut self, p: &PacketInfo, family: Family) -> Verdict {
        if !may_schedule(p, &self.core.sysctls) {
            return Verdict::Pass;
        }
        let Some(svc) = self.core.find_service(p) else {
            return Verdict::Pass;
        };
        let id = match self.schedule(svc, p) {
            Ok(id) => id,
            Err(v) => return v,
        };
        let dest = self.table.get(id).dest;
        self.core.packet_stats(dest, true, p.len);
        self.set_state(id, Direction::Input, p.tcp, p.sctp);
        let verdict = self.forwarding(id, true, family);
        if self.table.get(id).flags & cf::ONE_PACKET != 0 {
            // One-packet scheduling: the entry goes once its packet is out.
            let d = self.core.now;
            self.expire(id, d);
        } else {
            self.put(id);
        }
        verdict
    }

    /// `ip_vs_out`: a reply on a known connection.
    fn outbound(
        &mut self,
        id: u32,
        tcp: TcpFlags,
        sctp: SctpEvent,
        len: u32,
        family: Family,
    ) -> Verdict {
        if !self.table.is_live(id) {
            return Verdict::Drop(DropReason::NoConnection);
        }
        let dest = self.table.get(id).dest;
        self.core.packet_stats(dest, false, len);
        self.set_state(id, Direction::Output, tcp, sctp);
        self.put(id);
        self.forwarding(id, false, family)
    }
}

impl<A: Addr> ConnTable<A> {
    /// Expires `id` at once, outside the timer (the kernel's
    /// `ip_vs_conn_del_put` of a controlling template).
    fn cancel_and_expire(&mut self, id: u32, core: &mut Core) {
        let c = self.remove(id);
        core.unbind_dest(c.dest, c.is_template(), c.flags & cf::INACTIVE != 0);
    }
}

macro_rules! with_flows {
    ($self:ident, $family:expr, |$f:ident| $body:expr) => {
        match $family {
            Family::V4 => {
                let mut $f = Flows {
                    core: &mut $self.core,
                    table: &mut $self.v4,
                };
                $body
            }
            Family::V6 => {
                let mut $f = Flows {
                    core: &mut $self.core,
                    table: &mut $self.v6,
                };
                $body
            }
        }
    };
}

impl Director {
    /// A director with no services.
    pub fn new(cfg: DirectorConfig) -> Director {
        let mut k6 = cfg.hash_key;
        k6[0] ^= 0x6666;
        Director {
            core: Core {
                services: Vec::new(),
                free_services: Vec::new(),
                by_key: HashMap::new(),
                status: Vec::new(),
                info: Vec::new(),
                trash: Vec::new(),
                timeouts: StateTimeouts::default(),
                sysctls: cfg.sysctls,
                stats: Stats::default(),
                now: 0,
                next_estimate: ESTIMATOR_PERIOD_MS,
                trash_timer: None,
                seq: 0,
                refused: 0,
                rng: SplitMix64::new(cfg.rng_seed),
                random_start: cfg.random_start,
                ftp_services: 0,
                fwmark_services: [0, 0],
                port_zero_services: 0,
            },
            v4: ConnTable::new(cfg.conn_capacity, cfg.hash_key),
            v6: ConnTable::new(cfg.conn_capacity, k6),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> u64 {
        self.core.now
    }

    /// Moves time to `now_ms`: estimator ticks, connection expiries and
    /// trash sweeps due by then happen in time order. Time never goes back.
    pub fn advance(&mut self, now_ms: u64) {
        loop {
            // Expire everything due up to the next estimator tick or trash
            // sweep (or `now_ms`), then run that tick or sweep, so each sees
            // the table as it stands at its own time.
            let est = self.core.next_estimate;
            let trash = self.core.trash_timer.unwrap_or(u64::MAX);
            let boundary = est.min(trash).min(now_ms);
            self.expire_due(boundary);
            if est <= boundary {
                self.core.now = self.core.now.max(est);
                self.core.estimate_all();
                self.core.next_estimate += ESTIMATOR_PERIOD_MS;
            } else if trash <= boundary {
                self.core.now = self.core.now.max(trash);
                self.core.sweep_trash(trash);
            } else {
                break;
            }
        }
        self.core.now = self.core.now.max(now_ms);
    }

    /// Fires every connection timer due by `until`, in deadline order
    /// within each table (the two families' tables never affect each
    /// other's entries).
    fn expire_due(&mut self, until: u64) {
        while let Some((id, d)) = self.v4.pop_expired(until) {
            self.core.now = self.core.now.max(d);
            Flows {
                core: &mut self.core,
                table: &mut self.v4,
            }
            .expire(id, d);
        }
        while let Some((id, d)) = self.v6.pop_expired(until) {
            self.core.now = self.core.now.max(d);
            Flows {
                core: &mut self.core,
                table: &mut self.v6,
            }
            .expire(id, d);
        }
    }

    /// A packet from a client towards a virtual service.
    pub fn inbound(&mut self, p: &PacketInfo, now_ms: u64) -> Verdict {
        self.advance(now_ms);
        let family = Family::of(&p.dst);
        if Family::of(&p.src) != family {
            return Verdict::Pass;
        }
        with_flows!(self, family, |f| f.inbound(p, family))
    }

    /// A reply from the real server on a known connection.
    pub fn outbound(&mut self, conn: ConnRef, tcp: TcpFlags, len: u32, now_ms: u64) -> Verdict {
        self.advance(now_ms);
        with_flows!(self, conn.family, |f| f.outbound(
            conn.id,
            tcp,
            SctpEvent::Data,
            len,
            conn.family
        ))
    }

    /// An SCTP reply from the real server on a known connection; `event` is
    /// what its chunks make ([`crate::sctp::sctp_packet_event`]).
    pub fn outbound_sctp(
        &mut self,
        conn: ConnRef,
        event: SctpEvent,
        len: u32,
        now_ms: u64,
    ) -> Verdict {
        self.advance(now_ms);
        with_flows!(self, conn.family, |f| f.outbound(
            conn.id,
            TcpFlags::default(),
            event,
            len,
            conn.family
        ))
    }

    /// Finds the connection of a client tuple.
    pub fn lookup(
        &self,
        proto: Protocol,
        client: (IpAddr, u16),
        vip: (IpAddr, u16),
    ) -> Option<ConnRef> {
        fn find<A: Addr>(
            t: &ConnTable<A>,
            proto: Protocol,
            client: (IpAddr, u16),
            vip: (IpAddr, u16),
        ) -> Option<u32> {
            t.lookup(&ConnKey {
                proto: proto.number(),
                template: false,
                caddr: A::from_ip(client.0)?,
                cport: client.1,
                vaddr: A::from_ip(vip.0)?,
                vport: vip.1,
            })
        }
        let family = Family::of(&vip.0);
        let id = match family {
            Family::V4 => find(&self.v4, proto, client, vip),
            Family::V6 => find(&self.v6, proto, client, vip),
        }?;
        Some(ConnRef { family, id })
    }

    /// Finds the NAT connection a reply from a real server belongs to: the
    /// reply's source is `server` (real-server address and port), its
    /// destination `client` (`ip_vs_conn_out_get`). Only NAT connections
    /// are found, as only they see replies.
    pub fn lookup_reply(
        &self,
        proto: Protocol,
        server: (IpAddr, u16),
        client: (IpAddr, u16),
    ) -> Option<ConnRef> {
        fn find<A: Addr>(
            t: &ConnTable<A>,
            status: &[DestStatus],
            proto: Protocol,
            server: (IpAddr, u16),
            client: (IpAddr, u16),
        ) -> Option<u32> {
            t.lookup_reply(
                proto.number(),
                A::from_ip(client.0)?,
                client.1,
                server.1,
                |c| status[c.dest.index()].addr == server.0,
            )
        }
        let family = Family::of(&client.0);
        let status = &self.core.status;
        let id = match family {
            Family::V4 => find(&self.v4, status, proto, server, client),
            Family::V6 => find(&self.v6, status, proto, server, client),
        }?;
        Some(ConnRef { family, id })
    }

    /// The tuple of a live connection (templates included; their protocol
    /// is reported as the service's, or TCP for fwmark templates).
    pub fn conn_tuple(&self, conn: ConnRef) -> Option<ConnTuple> {
        fn tuple<A: Addr>(t: &ConnTable<A>, status: &[DestStatus], id: u32) -> Option<ConnTuple> {
            if !t.is_live(id) {
                return None;
            }
            let c = t.get(id);
            let proto = match c.proto {
                17 => Protocol::Udp,
                132 => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            Some(ConnTuple {
                proto,
                caddr: c.caddr.to_ip(),
                cport: c.cport,
                vaddr: c.vaddr.to_ip(),
                vport: c.vport,
                daddr: status[c.dest.index()].addr,
                dport: c.dport,
            })
        }
        match conn.family {
            Family::V4 => tuple(&self.v4, &self.core.status, conn.id),
            Family::V6 => tuple(&self.v6, &self.core.status, conn.id),
        }
    }

    /// Counts a packet related to a connection (an ICMP error about one of
    /// its packets) in the statistics of its server, service and the
    /// director, as `ip_vs_in_icmp`/`ip_vs_out_icmp` do: `inbound` for one
    /// going to the real server. The connection's state and timer are left
    /// alone. Returns false when the connection does not exist.
    pub fn count_related(&mut self, conn: ConnRef, inbound: bool, len: u32) -> bool {
        let dest = match conn.family {
            Family::V4 => self.v4.is_live(conn.id).then(|| self.v4.get(conn.id).dest),
            Family::V6 => self.v6.is_live(conn.id).then(|| self.v6.get(conn.id).dest),
        };
        match dest {
            Some(d) => {
                self.core.packet_stats(d, inbound, len);
                true
            }
            None => false,
        }
    }

    /// Whether `addr` is the virtual address of a TCP, UDP or SCTP service
    /// (fwmark services have no address of their own). A scan of the
    /// services: for rare packets (fragments), not for every packet.
    pub fn is_virtual_address(&self, addr: IpAddr) -> bool {
        self.core
            .by_key
            .keys()
            .any(|k| matches!(k, ServiceKey::Addr { addr: a, .. } if *a == addr))
    }

    /// The forwarding method a connection was created with.
    pub fn conn_method(&self, conn: ConnRef) -> Option<Forward> {
        let (dest, flags) = match conn.family {
            Family::V4 => self.v4.is_live(conn.id).then(|| {
                let c = self.v4.get(conn.id);
                (c.dest, c.flags)
            }),
            Family::V6 => self.v6.is_live(conn.id).then(|| {
                let c = self.v6.get(conn.id);
                (c.dest, c.flags)
            }),
        }?;
        Some(conn_forward(
            flags,
            self.core.info[dest.index()].config.forward,
        ))
    }

    // ---- control plane ----------------------------------------------------

    fn count_service(&mut self, key: &ServiceKey, delta: isize) {
        let bump = |n: &mut usize| {
            *n = n.saturating_add_signed(delta);
        };
        match key {
            ServiceKey::FwMark { family, .. } => {
                bump(&mut self.core.fwmark_services[family_index(*family)])
            }
            ServiceKey::Addr { proto, port, .. } => {
                if *port == 0 {
                    bump(&mut self.core.port_zero_services);
                }
                if *proto == Protocol::Tcp && *port == FTP_PORT {
                    bump(&mut self.core.ftp_services);
                }
            }
        }
    }

    fn sched_options(&self, cfg: &ServiceConfig) -> SchedOptions {
        SchedOptions {
            flags: cfg.sched_flags,
            mh_table_size: cfg.mh_table_size,
            random_start: self.core.random_start,
        }
    }

    /// `-A`: adds a virtual service.
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<(), CtlError> {
        validate_service(&cfg)?;
        if self.core.by_key.contains_key(&cfg.key) {
            return Err(CtlError::ServiceExists);
        }
        let opts = self.sched_options(&cfg);
        let sched = sched::build(
            cfg.scheduler,
            &opts,
            Dests {
                order: &[],
                status: &self.core.status,
            },
        );
        let key = cfg.key;
        let created = self
            .core
            .services
            .iter()
            .flatten()
            .map(|s| s.created + 1)
            .max()
            .unwrap_or(0);
        let svc = Service {
            config: cfg,
            order: Vec::new(),
            sched,
            stats: Stats::default(),
            created,
        };
        let slot = match self.core.free_services.pop() {
            Some(i) => {
                self.core.services[i] = Some(svc);
                i
            }
            None => {
                self.core.services.push(Some(svc));
                self.core.services.len() - 1
            }
        };
        self.core.by_key.insert(key, slot);
        self.count_service(&key, 1);
        Ok(())
    }

    /// `-E`: edits a service. A different scheduler (or Maglev table size)
    /// is bound afresh; the same one keeps its state.
    pub fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), CtlError> {
        validate_service(&cfg)?;
        let &slot = self
            .core
            .by_key
            .get(&cfg.key)
            .ok_or(CtlError::NoSuchService)?;
        let opts = self.sched_options(&cfg);
        let Core {
            services, status, ..
        } = &mut self.core;
        let svc = services[slot].as_mut().expect("live service slot");
        let rebind =
            svc.config.scheduler != cfg.scheduler || svc.config.mh_table_size != cfg.mh_table_size;
        if rebind {
            svc.sched = sched::build(
                cfg.scheduler,
                &opts,
                Dests {
                    order: &svc.order,
                    status,
                },
            );
        }
        svc.config = cfg;
        Ok(())
    }

    /// Unlinks a destination from its service into the trash.
    fn unlink_dest(&mut self, slot: usize, pos: usize, notify: bool) {
        let Core {
            services,
            status,
            info,
            trash,
            trash_timer,
            now,
            ..
        } = &mut self.core;
        let svc = services[slot].as_mut().expect("live service slot");
        let id = svc.order.remove(pos);
        let predecessor = pos.checked_sub(1).map(|p| svc.order[p]);
        status[id.index()].available = false;
        if notify {
            svc.sched.on_change(
                Dests {
                    order: &svc.order,
                    status,
                },
                DestChange::Removed { id, predecessor },
            );
        }
        info[id.index()].svc = None;
        info[id.index()].idle_since = None;
        if trash.is_empty() {
            *trash_timer = Some(*now + TRASH_PERIOD_MS);
        }
        trash.push(id);
    }

    /// `-D`: deletes a service; its destinations go to the trash.
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<(), CtlError> {
        let slot = self
            .core
            .by_key
            .remove(key)
            .ok_or(CtlError::NoSuchService)?;
        while !self.core.service(slot).order.is_empty() {
            self.unlink_dest(slot, 0, false);
        }
        self.core.services[slot] = None;
        self.core.free_services.push(slot);
        self.count_service(key, -1);
        Ok(())
    }

    /// `-C`: deletes every service.
    pub fn clear(&mut self) {
        let keys: Vec<ServiceKey> = self.core.by_key.keys().copied().collect();
        for k in keys {
            // Present by construction.
            let _ = self.del_service(&k);
        }
    }

    fn find_dest(&self, slot: usize, addr: IpAddr, port: u16) -> Option<usize> {
        let svc = self.core.service(slot);
        svc.order.iter().position(|id| {
            let st = &self.core.status[id.index()];
            st.addr == addr && st.port == port
        })
    }

    /// `__ip_vs_update_dest`.
    fn update_dest(&mut self, slot: usize, id: DestId, d: DestConfig, add: bool) {
        let Core {
            services,
            status,
            info,
            ..
        } = &mut self.core;
        let st = &mut status[id.index()];
        let inf = &mut info[id.index()];
        st.weight = d.weight;
        if add || d.weight != 0 {
            st.last_weight = d.weight;
        }
        if d.u_threshold == 0 || d.u_threshold > inf.config.u_threshold {
            st.overloaded = false;
        }
        inf.config = d;
        let svc = services[slot].as_mut().expect("live service slot");
        if add {
            st.available = true;
            inf.svc = Some(slot);
            inf.idle_since = None;
            svc.order.insert(0, id);
            svc.sched.on_change(
                Dests {
                    order: &svc.order,
                    status,
                },
                DestChange::Added(id),
            );
        } else {
            svc.sched.on_change(
                Dests {
                    order: &svc.order,
                    status,
                },
                DestChange::Updated(id),
            );
        }
    }

    /// `-a`: adds a real server (at the head of the list). A server deleted
    /// from the same service and still in the trash comes back as it was.
    pub fn add_dest(&mut self, key: &ServiceKey, d: DestConfig) -> Result<DestId, CtlError> {
        let &slot = self
            .core
            .by_key
            .get(key)
            .ok_or(CtlError::ServiceNotDefined)?;
        validate_dest(key, &d)?;
        if self.find_dest(slot, d.addr, d.port).is_some() {
            return Err(CtlError::DestExists);
        }
        let from_trash = self.core.trash.iter().position(|id| {
            let st = &self.core.status[id.index()];
            self.core.info[id.index()].svc_key == *key && st.addr == d.addr && st.port == d.port
        });
        let id = match from_trash {
            Some(pos) => {
                let id = self.core.trash.remove(pos);
                if self.core.trash.is_empty() {
                    self.core.trash_timer = None;
                }
                id
            }
            None => {
                let id = DestId(self.core.status.len() as u32);
                self.core.status.push(DestStatus {
                    addr: d.addr,
                    port: d.port,
                    weight: 0,
                    last_weight: 0,
                    active: 0,
                    inactive: 0,
                    overloaded: false,
                    available: false,
                });
                self.core.info.push(DestInfo {
                    svc_key: *key,
                    svc: None,
                    config: d,
                    persistent: 0,
                    stats: Stats::default(),
                    idle_since: None,
                });
                id
            }
        };
        self.update_dest(slot, id, d, true);
        Ok(id)
    }

    /// `-e`: edits a real server in place.
    pub fn edit_dest(&mut self, key: &ServiceKey, d: DestConfig) -> Result<(), CtlError> {
        let &slot = self
            .core
            .by_key
            .get(key)
            .ok_or(CtlError::ServiceNotDefined)?;
        validate_dest(key, &d)?;
        let pos = self
            .find_dest(slot, d.addr, d.port)
            .ok_or(CtlError::NoSuchDest)?;
        let id = self.core.service(slot).order[pos];
        self.update_dest(slot, id, d, false);
        Ok(())
    }

    /// `-d`: deletes a real server; its connections live on.
    pub fn del_dest(&mut self, key: &ServiceKey, addr: IpAddr, port: u16) -> Result<(), CtlError> {
        let &slot = self
            .core
            .by_key
            .get(key)
            .ok_or(CtlError::ServiceNotDefined)?;
        let pos = self
            .find_dest(slot, addr, port)
            .ok_or(CtlError::NoSuchDest)?;
        self.unlink_dest(slot, pos, true);
        Ok(())
    }

    /// `-Z`: zeroes one service's counters (and its servers'), or all.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), CtlError> {
        let slots: Vec<usize> = match key {
            Some(k) => vec![*self.core.by_key.get(k).ok_or(CtlError::NoSuchService)?],
            None => {
                self.core.stats.zero();
                self.core.by_key.values().copied().collect()
            }
        };
        for slot in slots {
            let Core { services, info, .. } = &mut self.core;
            let svc = services[slot].as_mut().expect("live service slot");
            svc.stats.zero();
            for id in &svc.order {
                info[id.index()].stats.zero();
            }
        }
        Ok(())
    }

    /// `--set tcp tcpfin udp` (0 leaves a value as it is).
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.core.timeouts.apply_set(t);
    }

    /// What `--timeout` shows.
    pub fn timeouts(&self) -> Timeouts {
        self.core.timeouts.shown()
    }

    /// The sysctls in force.
    pub fn sysctls(&self) -> Sysctls {
        self.core.sysctls
    }

    /// Changes the sysctls.
    pub fn set_sysctls(&mut self, s: Sysctls) {
        self.core.sysctls = s;
    }

    // ---- views -------------------------------------------------------------

    /// Every service with its destinations, in creation order.
    pub fn services(&self) -> Vec<ServiceSnapshot> {
        let mut slots: Vec<usize> = self.core.by_key.values().copied().collect();
        slots.sort_unstable_by_key(|&slot| self.core.service(slot).created);
        slots
            .into_iter()
            .map(|slot| self.service_snapshot(slot))
            .collect()
    }

    /// One service.
    pub fn service(&self, key: &ServiceKey) -> Option<ServiceSnapshot> {
        self.core
            .by_key
            .get(key)
            .map(|&slot| self.service_snapshot(slot))
    }

    fn service_snapshot(&self, slot: usize) -> ServiceSnapshot {
        let svc = self.core.service(slot);
        ServiceSnapshot {
            config: svc.config.clone(),
            stats: svc.stats.counters(),
            rates: svc.stats.rates(),
            dests: svc.order.iter().map(|&id| self.dest_snapshot(id)).collect(),
        }
    }

    fn dest_snapshot(&self, id: DestId) -> DestSnapshot {
        let st = &self.core.status[id.index()];
        let info = &self.core.info[id.index()];
        let mut config = info.config;
        config.weight = st.weight;
        DestSnapshot {
            id,
            config,
            active: st.active,
            inactive: st.inactive,
            persistent: info.persistent,
            overloaded: st.overloaded,
            stats: info.stats.counters(),
            rates: info.stats.rates(),
        }
    }

    /// Every connection and template, in creation order.
    pub fn connections(&self) -> Vec<ConnSnapshot> {
        let mut rows: Vec<(u32, ConnSnapshot)> = Vec::with_capacity(self.v4.len() + self.v6.len());
        // Read-only views need no mutable borrow of the core; build them by hand.
        for id in self.v4.ids() {
            rows.push(snapshot_of(&self.core, &self.v4, id));
        }
        for id in self.v6.ids() {
            rows.push(snapshot_of(&self.core, &self.v6, id));
        }
        rows.sort_by_key(|(seq, _)| *seq);
        rows.into_iter().map(|(_, s)| s).collect()
    }

    /// Global counters (`/proc/net/ip_vs_stats`).
    pub fn global_stats(&self) -> (Counters, Rates) {
        (self.core.stats.counters(), self.core.stats.rates())
    }

    /// New flows refused because a connection table was full.
    pub fn refused(&self) -> u64 {
        self.core.refused
    }

    /// Live entries (connections and templates) in both tables.
    pub fn conn_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Heap bytes of both connection tables.
    pub fn conn_memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }
}

fn snapshot_of<A: Addr>(core: &Core, table: &ConnTable<A>, id: u32) -> (u32, ConnSnapshot) {
    let c = table.get(id);
    let st = &core.status[c.dest.index()];
    let state = if c.is_template() {
        if c.state & TEMPLATE_ASSURED != 0 {
            "ASSURED"
        } else {
            "NONE"
        }
    } else if c.proto == Protocol::Tcp.number() {
        TcpState::from_index(c.state).map_or("ERR!", TcpState::name)
    } else if c.proto == Protocol::Udp.number() {
        UDP_STATE_NAME
    } else {
        SctpState::from_index(usize::from(c.state)).map_or("ERR!", SctpState::name)
    };
    let deadline = table.deadline(id).unwrap_or(core.now);
    (
        c.seq,
        ConnSnapshot {
            proto: c.proto,
            template: c.is_template(),
            caddr: c.caddr.to_ip(),
            cport: c.cport,
            vaddr: c.vaddr.to_ip(),
            vport: c.vport,
            daddr: st.addr,
            dport: c.dport,
            state,
            expires_ms: deadline.saturating_sub(core.now),
            flags: c.flags,
            dest: c.dest,
        },
    )
}
