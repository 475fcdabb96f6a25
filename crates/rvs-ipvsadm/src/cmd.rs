//! The grammar of one ipvsadm invocation.
//!
//! [`parse_args`] turns an argv (without the program name) into a
//! [`Command`] whose service and real-server values carry every default
//! ipvsadm fills in, so that the director can apply them as they are:
//! `-E` without `-s` means `wlc` and no persistence, `-e` without `-m`
//! means `-g` with weight 1 (see the crate documentation).
//!
//! The checks run in ipvsadm's order, so that an invocation with several
//! faults reports the one ipvsadm reports: per-option syntax while reading
//! left to right, then the trailing arguments, the scheduler flags, the
//! command/option legality matrix, the service rules, the real-server rules
//! and last the list-option conflicts. Messages are ipvsadm's where it has
//! one; rvs adds its own for host names (it does no DNS), for `-M` written
//! before an IPv6 service and for a missing command.

use std::fmt;
use std::net::IpAddr;

use rvs_core::model::{
    DEFAULT_MH_TABLE_SIZE, DEFAULT_PERSISTENCE_TIMEOUT, DestConfig, Family, Forward, MAX_THRESHOLD,
    MAX_TIMEOUT, Netmask, Protocol, SchedFlags, SchedulerKind, ServiceConfig, ServiceKey, Timeouts,
    Tunnel, TunnelCsum, TunnelType, validate_dest, validate_service,
};

use crate::addr::{AddrError, c_number, inet_aton, looks_like_host_name, parse_addr_port};

/// A refused invocation: ipvsadm's message and the argument at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ArgError {
    /// Index into the argv slice given to [`parse_args`] of the word at
    /// fault; `None` when the invocation as a whole is at fault (a missing
    /// option, conflicting options).
    pub index: Option<usize>,
    /// The message, worded as ipvsadm words it where it has a wording.
    pub message: String,
}

impl ArgError {
    fn at(index: usize, message: impl Into<String>) -> ArgError {
        ArgError {
            index: Some(index),
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> ArgError {
        ArgError {
            index: None,
            message: message.into(),
        }
    }
}

/// Role of a connection-synchronisation daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRole {
    /// Sends connection state.
    Master,
    /// Receives connection state.
    Backup,
}

/// Settings of `--start-daemon`, with ipvsadm's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Master or backup.
    pub role: SyncRole,
    /// `--mcast-interface`, default `eth0`.
    pub mcast_ifn: String,
    /// `--syncid`, default 0.
    pub syncid: u8,
    /// `--mcast-group`, `None` for the kernel default (224.0.0.81).
    pub mcast_group: Option<IpAddr>,
    /// `--mcast-port`, `None` for the kernel default (8848).
    pub mcast_port: Option<u16>,
    /// `--mcast-ttl`, `None` for the kernel default (1).
    pub mcast_ttl: Option<u8>,
    /// `--sync-maxlen`, `None` for the MTU-derived default.
    pub sync_maxlen: Option<u16>,
}

/// What `-L` was asked to show and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// `-n`.
    pub numeric: bool,
    /// `-c`: the connection table.
    pub connection: bool,
    /// `-t/-u/--sctp-service/-f`: only this service.
    pub service: Option<ServiceKey>,
    /// `--timeout`.
    pub timeout: bool,
    /// `--daemon`.
    pub daemon: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort` (`--sort`, the default, is accepted and changes nothing).
    pub nosort: bool,
    /// `--exact` / `-X`.
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--syncid` (accepted by ipvsadm's `-L`, which ignores it).
    pub syncid: Option<u8>,
}

/// Which listing `-L` prints, in ipvsadm's precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTarget {
    /// `-c`: the connection table.
    Connections,
    /// One service, with the title lines but without the version line.
    Service(ServiceKey),
    /// `--timeout`.
    Timeout,
    /// `--daemon`.
    Daemon,
    /// Every service, after the version line.
    All,
}

impl ListOptions {
    /// What to list: `-c` first, then a service, `--timeout`, `--daemon`,
    /// else everything.
    pub fn target(&self) -> ListTarget {
        if self.connection {
            ListTarget::Connections
        } else if let Some(k) = self.service {
            ListTarget::Service(k)
        } else if self.timeout {
            ListTarget::Timeout
        } else if self.daemon {
            ListTarget::Daemon
        } else {
            ListTarget::All
        }
    }

    /// The formatting flags the listing functions of [`crate::list`] take.
    pub fn format(&self) -> crate::list::ListFormat {
        crate::list::ListFormat {
            stats: self.stats,
            rate: self.rate,
            thresholds: self.thresholds,
            persistent_conn: self.persistent_conn,
            tun_info: self.tun_info,
            exact: self.exact,
            nosort: self.nosort,
        }
    }
}

/// One ipvsadm invocation, fully defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`: add a virtual service.
    AddService(ServiceConfig),
    /// `-E`: replace a service's attributes (every omitted one takes its
    /// default, as ipvsadm sends them).
    EditService(ServiceConfig),
    /// `-D`: delete a service.
    DeleteService(ServiceKey),
    /// `-C`: delete every service.
    Clear,
    /// `-a`: add a real server.
    AddDest {
        /// The virtual service.
        service: ServiceKey,
        /// The real server, port already forced for `-g`/`-i`.
        dest: DestConfig,
        /// Whether `-m`/`-g`/`-i` was given.
        method: MethodChoice,
    },
    /// `-e`: replace a real server's attributes (omitted ones defaulted).
    EditDest {
        /// The virtual service.
        service: ServiceKey,
        /// The real server, port already forced for `-g`/`-i`.
        dest: DestConfig,
        /// Whether `-m`/`-g`/`-i` was given.
        method: MethodChoice,
    },
    /// `-d`: delete a real server.
    DeleteDest {
        /// The virtual service.
        service: ServiceKey,
        /// Real server address.
        addr: IpAddr,
        /// Real server port (the service port when omitted).
        port: u16,
    },
    /// `-L`/`-l`.
    List(ListOptions),
    /// `-Z`: zero the counters of one service or of all.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`; a 0 leaves that timeout unchanged.
    SetTimeouts(Timeouts),
    /// `-S`.
    Save {
        /// `-n` (rvs always writes numeric rules).
        numeric: bool,
    },
    /// `-R`.
    Restore,
    /// `--start-daemon`.
    StartDaemon(DaemonConfig),
    /// `--stop-daemon`.
    StopDaemon {
        /// Which daemon.
        role: SyncRole,
        /// `--syncid`, default 0.
        syncid: u8,
    },
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

/// Whether a real server's forwarding method was named.
///
/// ipvsadm fills an unnamed method with `-g` (and forces the server port to
/// the service port, as for every `-g`), so [`Command::AddDest`] and
/// [`Command::EditDest`] hold exactly what ipvsadm would send. A data plane
/// where `-g` is meaningless gives the server its own default with
/// [`with_default_method`], which needs the port as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodChoice {
    /// `-m`, `-g` or `-i` was given, or the command comes from a spec
    /// (config file, API) that always says which method it means.
    #[default]
    Named,
    /// None was given: `dest` holds ipvsadm's `-g`.
    Omitted {
        /// The port given with `-r` (the service port when `-r` had none),
        /// before `-g` forced it to the service port.
        port: u16,
    },
}

/// `cmd` with `default` as the forwarding method of a real server whose
/// command named none; any other command is returned as it is.
///
/// The server keeps the port written with `-r` unless `default` is direct
/// routing or tunnelling on an address service, where ipvsadm's forcing to
/// the service port applies as it would for `-g`/`-i`. The result counts as
/// named, so mapping twice changes nothing.
pub fn with_default_method(cmd: Command, default: Forward) -> Command {
    let fill = |service: &ServiceKey, mut dest: DestConfig, method: MethodChoice| {
        if let MethodChoice::Omitted { port } = method {
            dest.forward = default;
            dest.port =
                if !service.is_fwmark() && matches!(default, Forward::Route | Forward::Tunnel(_)) {
                    service.port()
                } else {
                    port
                };
        }
        dest
    };
    match cmd {
        Command::AddDest {
            service,
            dest,
            method,
        } => Command::AddDest {
            dest: fill(&service, dest, method),
            service,
            method: MethodChoice::Named,
        },
        Command::EditDest {
            service,
            dest,
            method,
        } => Command::EditDest {
            dest: fill(&service, dest, method),
            service,
            method: MethodChoice::Named,
        },
        other => other,
    }
}

impl Command {
    /// Whether a rules file (`-R` input) may contain this command.
    pub fn is_rule(&self) -> bool {
        matches!(
            self,
            Command::AddService(_)
                | Command::EditService(_)
                | Command::DeleteService(_)
                | Command::Clear
                | Command::AddDest { .. }
                | Command::EditDest { .. }
                | Command::DeleteDest { .. }
                | Command::Zero(_)
                | Command::SetTimeouts(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddSrv,
    DelSrv,
    EditSrv,
    Timeout,
    StartD,
    StopD,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// The command's name in ipvsadm's messages.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddSrv => "add-server",
            Cmd::DelSrv => "delete-server",
            Cmd::EditSrv => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartD => "start-daemon",
            Cmd::StopD => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

/// Option classes of the legality matrix, in ipvsadm's check order; the
/// names are those its messages use.
const OPT_NAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

const O_NUMERIC: usize = 0;
const O_CONNECTION: usize = 1;
const O_SERVICE: usize = 2;
const O_SCHEDULER: usize = 3;
const O_PERSISTENT: usize = 4;
const O_NETMASK: usize = 5;
const O_SERVER: usize = 6;
const O_FORWARD: usize = 7;
const O_WEIGHT: usize = 8;
const O_UTHRESHOLD: usize = 9;
const O_LTHRESHOLD: usize = 10;
const O_MCAST: usize = 11;
const O_TIMEOUT: usize = 12;
const O_DAEMON: usize = 13;
const O_STATS: usize = 14;
const O_RATE: usize = 15;
const O_THRESHOLDS: usize = 16;
const O_PERSISTENTCONN: usize = 17;
const O_NOSORT: usize = 18;
const O_SYNCID: usize = 19;
const O_EXACT: usize = 20;
const O_ONEPACKET: usize = 21;
const O_PE: usize = 22;
const O_SCHED_FLAGS: usize = 23;
const O_MCAST_GROUP: usize = 24;
const O_MCAST_PORT: usize = 25;
const O_MCAST_TTL: usize = 26;
const O_SYNC_MAXLEN: usize = 27;
const O_TUN_INFO: usize = 28;
const O_TUN_TYPE: usize = 29;
const O_TUN_PORT: usize = 30;
const O_TUN_NOCSUM: usize = 31;
const O_TUN_CSUM: usize = 32;
const O_TUN_REMCSUM: usize = 33;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Legal {
    Required,
    Optional,
    /// At most one of the command's exclusive options.
    Exclusive,
    Illegal,
}

/// Which options a command takes (ipvsadm's command/option matrix).
fn legality(cmd: Cmd, opt: usize) -> Legal {
    let (required, optional, exclusive): (&[usize], &[usize], &[usize]) = match cmd {
        Cmd::Add | Cmd::Edit => (
            &[O_SERVICE],
            &[
                O_SCHEDULER,
                O_PERSISTENT,
                O_NETMASK,
                O_ONEPACKET,
                O_PE,
                O_SCHED_FLAGS,
            ],
            &[],
        ),
        Cmd::Del => (&[O_SERVICE], &[], &[]),
        Cmd::Flush | Cmd::Timeout | Cmd::Restore => (&[], &[], &[]),
        Cmd::List => (
            &[],
            &[
                O_NUMERIC,
                O_STATS,
                O_RATE,
                O_THRESHOLDS,
                O_PERSISTENTCONN,
                O_NOSORT,
                O_SYNCID,
                O_EXACT,
                O_TUN_INFO,
            ],
            &[O_CONNECTION, O_SERVICE, O_TIMEOUT, O_DAEMON],
        ),
        Cmd::AddSrv | Cmd::EditSrv => (
            &[O_SERVICE, O_SERVER],
            &[
                O_FORWARD,
                O_WEIGHT,
                O_UTHRESHOLD,
                O_LTHRESHOLD,
                O_TUN_TYPE,
                O_TUN_PORT,
                O_TUN_NOCSUM,
                O_TUN_CSUM,
                O_TUN_REMCSUM,
            ],
            &[],
        ),
        Cmd::DelSrv => (&[O_SERVICE, O_SERVER], &[], &[]),
        Cmd::StartD => (
            &[],
            &[
                O_MCAST,
                O_SYNCID,
                O_MCAST_GROUP,
                O_MCAST_PORT,
                O_MCAST_TTL,
                O_SYNC_MAXLEN,
            ],
            &[],
        ),
        Cmd::StopD => (&[], &[O_SYNCID], &[]),
        Cmd::Save => (&[], &[O_NUMERIC], &[]),
        Cmd::Zero => (&[], &[O_SERVICE], &[]),
    };
    if required.contains(&opt) {
        Legal::Required
    } else if optional.contains(&opt) {
        Legal::Optional
    } else if exclusive.contains(&opt) {
        Legal::Exclusive
    } else {
        Legal::Illegal
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Cmd(Cmd),
    Help,
    Version,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    FwMark,
    Scheduler,
    Persistent,
    Netmask,
    Real,
    Masq,
    Ipip,
    Gate,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastIf,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    No,
    Required,
    Optional,
}

struct OptDef {
    long: &'static str,
    short: Option<char>,
    arg: ArgKind,
    tag: Tag,
}

const fn o(long: &'static str, short: Option<char>, arg: ArgKind, tag: Tag) -> OptDef {
    OptDef {
        long,
        short,
        arg,
        tag,
    }
}

/// ipvsadm's options, long name, short letter and argument.
const OPTS: &[OptDef] = &[
    o("add-service", Some('A'), ArgKind::No, Tag::Cmd(Cmd::Add)),
    o("edit-service", Some('E'), ArgKind::No, Tag::Cmd(Cmd::Edit)),
    o("delete-service", Some('D'), ArgKind::No, Tag::Cmd(Cmd::Del)),
    o("clear", Some('C'), ArgKind::No, Tag::Cmd(Cmd::Flush)),
    o("list", Some('L'), ArgKind::No, Tag::Cmd(Cmd::List)),
    o("list", Some('l'), ArgKind::No, Tag::Cmd(Cmd::List)),
    o("zero", Some('Z'), ArgKind::No, Tag::Cmd(Cmd::Zero)),
    o("add-server", Some('a'), ArgKind::No, Tag::Cmd(Cmd::AddSrv)),
    o(
        "edit-server",
        Some('e'),
        ArgKind::No,
        Tag::Cmd(Cmd::EditSrv),
    ),
    o(
        "delete-server",
        Some('d'),
        ArgKind::No,
        Tag::Cmd(Cmd::DelSrv),
    ),
    o("set", None, ArgKind::No, Tag::Cmd(Cmd::Timeout)),
    o("help", Some('h'), ArgKind::No, Tag::Help),
    o("version", Some('v'), ArgKind::No, Tag::Version),
    o("restore", Some('R'), ArgKind::No, Tag::Cmd(Cmd::Restore)),
    o("save", Some('S'), ArgKind::No, Tag::Cmd(Cmd::Save)),
    o("start-daemon", None, ArgKind::Required, Tag::StartDaemon),
    o("stop-daemon", None, ArgKind::Required, Tag::StopDaemon),
    o("tcp-service", Some('t'), ArgKind::Required, Tag::Tcp),
    o("udp-service", Some('u'), ArgKind::Required, Tag::Udp),
    o("sctp-service", None, ArgKind::Required, Tag::Sctp),
    o("fwmark-service", Some('f'), ArgKind::Required, Tag::FwMark),
    o("scheduler", Some('s'), ArgKind::Required, Tag::Scheduler),
    o("persistent", Some('p'), ArgKind::Optional, Tag::Persistent),
    o("netmask", Some('M'), ArgKind::Required, Tag::Netmask),
    o("real-server", Some('r'), ArgKind::Required, Tag::Real),
    o("masquerading", Some('m'), ArgKind::No, Tag::Masq),
    o("ipip", Some('i'), ArgKind::No, Tag::Ipip),
    o("gatewaying", Some('g'), ArgKind::No, Tag::Gate),
    o("weight", Some('w'), ArgKind::Required, Tag::Weight),
    o("u-threshold", Some('x'), ArgKind::Required, Tag::UThreshold),
    o("l-threshold", Some('y'), ArgKind::Required, Tag::LThreshold),
    o("numeric", Some('n'), ArgKind::No, Tag::Numeric),
    o("connection", Some('c'), ArgKind::No, Tag::Connection),
    o("mcast-interface", None, ArgKind::Required, Tag::McastIf),
    o("syncid", None, ArgKind::Required, Tag::SyncId),
    o("timeout", None, ArgKind::No, Tag::Timeout),
    o("daemon", None, ArgKind::No, Tag::Daemon),
    o("stats", None, ArgKind::No, Tag::Stats),
    o("rate", None, ArgKind::No, Tag::Rate),
    o("thresholds", None, ArgKind::No, Tag::Thresholds),
    o("persistent-conn", None, ArgKind::No, Tag::PersistentConn),
    o("nosort", None, ArgKind::No, Tag::NoSort),
    o("sort", None, ArgKind::No, Tag::Sort),
    o("exact", Some('X'), ArgKind::No, Tag::Exact),
    o("ipv6", Some('6'), ArgKind::No, Tag::Ipv6),
    o("ops", Some('o'), ArgKind::No, Tag::Ops),
    o("pe", None, ArgKind::Required, Tag::Pe),
    o("sched-flags", Some('b'), ArgKind::Required, Tag::SchedFlags),
    o("mcast-group", None, ArgKind::Required, Tag::McastGroup),
    o("mcast-port", None, ArgKind::Required, Tag::McastPort),
    o("mcast-ttl", None, ArgKind::Required, Tag::McastTtl),
    o("sync-maxlen", None, ArgKind::Required, Tag::SyncMaxlen),
    o("tun-info", None, ArgKind::No, Tag::TunInfo),
    o("tun-type", None, ArgKind::Required, Tag::TunType),
    o("tun-port", None, ArgKind::Required, Tag::TunPort),
    o("tun-nocsum", None, ArgKind::No, Tag::TunNocsum),
    o("tun-csum", None, ArgKind::No, Tag::TunCsum),
    o("tun-remcsum", None, ArgKind::No, Tag::TunRemcsum),
];

/// One option as read from argv.
struct Item<'a> {
    tag: Tag,
    /// Index of the word holding the option.
    index: usize,
    /// The option's value and the index of the word holding it.
    value: Option<(&'a str, usize)>,
}

/// Splits argv into options and leftover arguments the way popt does:
/// bundled short options, `--long=value`, optional values taken only when
/// the next word does not start with `-`, and `--` ending the options.
struct Lexer<'a> {
    args: &'a [&'a str],
    pos: usize,
    /// Position inside a bundle of short options (byte offset), if any.
    bundle: Option<usize>,
    only_args: bool,
    leftovers: Vec<(&'a str, usize)>,
}

impl<'a> Lexer<'a> {
    fn next_item(&mut self) -> Option<Result<Item<'a>, ArgError>> {
        loop {
            if let Some(off) = self.bundle {
                let word = self.args[self.pos];
                let idx = self.pos;
                let c = word[off..].chars().next()?;
                let next_off = off + c.len_utf8();
                let Some(def) = OPTS.iter().find(|d| d.short == Some(c)) else {
                    self.bundle = None;
                    self.pos += 1;
                    return Some(Err(ArgError::at(idx, format!("-{c}: unknown option"))));
                };
                let rest = &word[next_off..];
                match def.arg {
                    ArgKind::No => {
                        if rest.is_empty() {
                            self.bundle = None;
                            self.pos += 1;
                        } else {
                            self.bundle = Some(next_off);
                        }
                        return Some(Ok(Item {
                            tag: def.tag,
                            index: idx,
                            value: None,
                        }));
                    }
                    ArgKind::Required | ArgKind::Optional => {
                        self.bundle = None;
                        self.pos += 1;
                        if !rest.is_empty() {
                            return Some(Ok(Item {
                                tag: def.tag,
                                index: idx,
                                value: Some((rest, idx)),
                            }));
                        }
                        let value = self.take_value(def.arg);
                        if def.arg == ArgKind::Required && value.is_none() {
                            return Some(Err(ArgError::at(idx, format!("-{c}: missing argument"))));
                        }
                        return Some(Ok(Item {
                            tag: def.tag,
                            index: idx,
                            value,
                        }));
                    }
                }
            }
            let word = *self.args.get(self.pos)?;
            let idx = self.pos;
            if self.only_args || word == "-" || !word.starts_with('-') {
                self.leftovers.push((word, idx));
                self.pos += 1;
                continue;
            }
            if word == "--" {
                self.only_args = true;
                self.pos += 1;
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                self.pos += 1;
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let Some(def) = OPTS.iter().find(|d| d.long == name) else {
                    return Some(Err(ArgError::at(idx, format!("{word}: unknown option"))));
                };
                let value = match (def.arg, inline) {
                    (ArgKind::No, Some(_)) => {
                        return Some(Err(ArgError::at(
                            idx,
                            format!("--{name}: option does not take an argument"),
                        )));
                    }
                    (ArgKind::No, None) => None,
                    (_, Some(v)) => Some((v, idx)),
                    (kind, None) => self.take_value(kind),
                };
                if def.arg == ArgKind::Required && value.is_none() {
                    return Some(Err(ArgError::at(
                        idx,
                        format!("--{name}: missing argument"),
                    )));
                }
                return Some(Ok(Item {
                    tag: def.tag,
                    index: idx,
                    value,
                }));
            }
            self.bundle = Some(1);
        }
    }

    fn take_value(&mut self, kind: ArgKind) -> Option<(&'a str, usize)> {
        let next = *self.args.get(self.pos)?;
        if kind == ArgKind::Optional && next.starts_with('-') {
            return None;
        }
        let idx = self.pos;
        self.pos += 1;
        Some((next, idx))
    }
}

/// The forwarding switch given (`-g` is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fwd {
    Masq,
    Tunnel,
    Route,
}

/// A `-M` value as read, kept with the family it was read for.
#[derive(Debug, Clone, Copy)]
enum MaskVal {
    V4(u32),
    V6(u8),
}

/// Everything an invocation sets, as ipvsadm's command entry holds it.
struct State<'a> {
    cmd: Option<Cmd>,
    options: u64,
    opt_index: [usize; 34],
    // service
    family: Option<Family>,
    fwmark: u32,
    proto: Protocol,
    addr: Option<IpAddr>,
    port: u16,
    sched: Option<(&'a str, usize)>,
    persistent: Option<u32>,
    mask: Option<(MaskVal, usize)>,
    ops: bool,
    pe: Option<(&'a str, usize)>,
    sched_flags: Option<(&'a str, usize)>,
    // real server
    daddr: Option<IpAddr>,
    dport: u16,
    fwd: Fwd,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelType,
    tun_port: u16,
    tun_csum: TunnelCsum,
    // sync daemon
    role: SyncRole,
    mcast_ifn: Option<String>,
    syncid: u8,
    mcast_group: Option<IpAddr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
    sync_maxlen: Option<u16>,
}

impl State<'_> {
    fn set_option(&mut self, opt: usize, index: usize) -> Result<(), ArgError> {
        if self.options & (1 << opt) != 0 {
            return Err(ArgError::at(
                index,
                format!("multiple '{}' options specified", OPT_NAMES[opt]),
            ));
        }
        self.options |= 1 << opt;
        self.opt_index[opt] = index;
        Ok(())
    }

    fn has(&self, opt: usize) -> bool {
        self.options & (1 << opt) != 0
    }

    fn key(&self) -> ServiceKey {
        if self.fwmark > 0 {
            ServiceKey::FwMark {
                family: self.family.unwrap_or(Family::V4),
                mark: self.fwmark,
            }
        } else {
            ServiceKey::Addr {
                proto: self.proto,
                addr: self.addr.unwrap_or(Family::V4.unspecified()),
                port: self.port,
            }
        }
    }
}

fn addr_error(index: usize, e: AddrError, what: &str) -> ArgError {
    match e {
        AddrError::Malformed => {
            ArgError::at(index, format!("illegal {what} address[:port] specified"))
        }
        AddrError::HostName(h) => ArgError::at(
            index,
            format!("host name `{h}' refused: rvs does no DNS lookups, give a numeric address"),
        ),
    }
}

fn number(value: &str, min: i64, max: i64) -> Option<i64> {
    c_number(value, min, max)
}

/// Parses one ipvsadm invocation (argv without the program name; a leading
/// word `ipvsadm` is skipped).
pub fn parse_args(args: &[&str]) -> Result<Command, ArgError> {
    let start = usize::from(args.first() == Some(&"ipvsadm"));
    let mut lx = Lexer {
        args,
        pos: start,
        bundle: None,
        only_args: false,
        leftovers: Vec::new(),
    };
    let mut st = State {
        cmd: None,
        options: 0,
        opt_index: [0; 34],
        family: None,
        fwmark: 0,
        proto: Protocol::Tcp,
        addr: None,
        port: 0,
        sched: None,
        persistent: None,
        mask: None,
        ops: false,
        pe: None,
        sched_flags: None,
        daddr: None,
        dport: 0,
        fwd: Fwd::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: TunnelType::Ipip,
        tun_port: 0,
        tun_csum: TunnelCsum::NoCsum,
        role: SyncRole::Master,
        mcast_ifn: None,
        syncid: 0,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
        sync_maxlen: None,
    };

    // The first option must be the command, as in ipvsadm.
    let first = match lx.next_item() {
        Some(r) => r?,
        None => {
            return Err(match lx.leftovers.first() {
                Some(&(w, i)) => ArgError::at(i, format!("no command given before `{w}' (try -h)")),
                None => ArgError::whole("no command given (try -h)"),
            });
        }
    };
    let cmd_index = first.index;
    match first.tag {
        Tag::Cmd(c) => st.cmd = Some(c),
        Tag::Help => return Ok(Command::Help),
        Tag::Version => return Ok(Command::Version),
        Tag::StartDaemon | Tag::StopDaemon => {
            let (v, vi) = first.value.unwrap_or(("", first.index));
            st.role = match v {
                "master" => SyncRole::Master,
                "backup" => SyncRole::Backup,
                _ if first.tag == Tag::StartDaemon => {
                    return Err(ArgError::at(vi, "illegal start-daemon parameter specified"));
                }
                _ => return Err(ArgError::at(vi, "illegal start_daemon specified")),
            };
            st.cmd = Some(if first.tag == Tag::StartDaemon {
                Cmd::StartD
            } else {
                Cmd::StopD
            });
        }
        _ => {
            return Err(ArgError::at(
                first.index,
                "no command given: the first option must be a command such as -A, -a or -L (try -h)",
            ));
        }
    }

    while let Some(item) = lx.next_item() {
        let item = item?;
        apply_option(&mut st, &item)?;
    }
    let cmd = st.cmd.unwrap_or(Cmd::Flush);

    // Trailing arguments: only --set takes them.
    let mut leftovers = lx.leftovers.iter().copied();
    let mut timeouts = Timeouts::default();
    if cmd == Cmd::Timeout {
        let vals: Vec<(&str, usize)> = leftovers.by_ref().take(3).collect();
        if vals.len() < 3 {
            return Err(ArgError::at(
                cmd_index,
                "--set option requires 3 timeout values",
            ));
        }
        let mut parsed = [0u32; 3];
        for (slot, &(v, i)) in parsed.iter_mut().zip(&vals) {
            *slot = number(v, 0, i64::from(MAX_TIMEOUT))
                .ok_or_else(|| ArgError::at(i, format!("invalid timeout value `{v}' specified")))?
                as u32;
        }
        timeouts = Timeouts {
            tcp: parsed[0],
            tcp_fin: parsed[1],
            udp: parsed[2],
        };
    }
    if let Some((w, i)) = leftovers.next() {
        return Err(ArgError::at(i, format!("unexpected argument {w}")));
    }

    // Scheduler flags are read against the scheduler named (default wlc).
    let mut sched_flags = SchedFlags::default();
    if let Some((arg, idx)) = st.sched_flags {
        sched_flags = parse_sched_flags(st.sched.map_or("wlc", |s| s.0), arg)
            .map_err(|m| ArgError::at(idx, m))?;
    }

    generic_opt_check(cmd, &st)?;

    match cmd {
        Cmd::Add | Cmd::Edit => {
            let svc = build_service(&st, sched_flags, cmd_index)?;
            Ok(if cmd == Cmd::Add {
                Command::AddService(svc)
            } else {
                Command::EditService(svc)
            })
        }
        Cmd::AddSrv | Cmd::EditSrv => {
            let (service, dest) = build_dest(&st)?;
            let method = if st.has(O_FORWARD) {
                MethodChoice::Named
            } else {
                MethodChoice::Omitted { port: st.dport }
            };
            Ok(if cmd == Cmd::AddSrv {
                Command::AddDest {
                    service,
                    dest,
                    method,
                }
            } else {
                Command::EditDest {
                    service,
                    dest,
                    method,
                }
            })
        }
        Cmd::DelSrv => Ok(Command::DeleteDest {
            service: st.key(),
            addr: st.daddr.unwrap_or(Family::V4.unspecified()),
            port: st.dport,
        }),
        Cmd::Del => Ok(Command::DeleteService(st.key())),
        Cmd::Flush => Ok(Command::Clear),
        Cmd::Zero => Ok(Command::Zero(st.has(O_SERVICE).then(|| st.key()))),
        Cmd::Timeout => Ok(Command::SetTimeouts(timeouts)),
        Cmd::Restore => Ok(Command::Restore),
        Cmd::Save => Ok(Command::Save {
            numeric: st.has(O_NUMERIC),
        }),
        Cmd::StartD => Ok(Command::StartDaemon(DaemonConfig {
            role: st.role,
            mcast_ifn: st.mcast_ifn.clone().unwrap_or_else(|| "eth0".to_string()),
            syncid: st.syncid,
            mcast_group: st.mcast_group,
            mcast_port: st.mcast_port,
            mcast_ttl: st.mcast_ttl,
            sync_maxlen: st.sync_maxlen,
        })),
        Cmd::StopD => Ok(Command::StopDaemon {
            role: st.role,
            syncid: st.syncid,
        }),
        Cmd::List => {
            let conflicts = (st.has(O_CONNECTION) || st.has(O_TIMEOUT) || st.has(O_DAEMON))
                && (st.has(O_STATS) || st.has(O_RATE) || st.has(O_THRESHOLDS))
                || (st.has(O_TIMEOUT) || st.has(O_DAEMON)) && st.has(O_PERSISTENTCONN);
            if conflicts {
                return Err(ArgError::whole("options conflicts in the list command"));
            }
            Ok(Command::List(ListOptions {
                numeric: st.has(O_NUMERIC),
                connection: st.has(O_CONNECTION),
                service: st.has(O_SERVICE).then(|| st.key()),
                timeout: st.has(O_TIMEOUT),
                daemon: st.has(O_DAEMON),
                stats: st.has(O_STATS),
                rate: st.has(O_RATE),
                thresholds: st.has(O_THRESHOLDS),
                persistent_conn: st.has(O_PERSISTENTCONN),
                nosort: st.has(O_NOSORT),
                exact: st.has(O_EXACT),
                tun_info: st.has(O_TUN_INFO),
                syncid: st.has(O_SYNCID).then_some(st.syncid),
            }))
        }
    }
}

fn apply_option<'a>(st: &mut State<'a>, item: &Item<'a>) -> Result<(), ArgError> {
    let idx = item.index;
    let (val, vidx) = item.value.unwrap_or(("", idx));
    match item.tag {
        Tag::Cmd(_) | Tag::StartDaemon | Tag::StopDaemon | Tag::Help | Tag::Version => {
            return Err(ArgError::at(idx, "multiple commands specified"));
        }
        Tag::Tcp | Tag::Udp | Tag::Sctp => {
            st.set_option(O_SERVICE, idx)?;
            st.proto = match item.tag {
                Tag::Tcp => Protocol::Tcp,
                Tag::Udp => Protocol::Udp,
                _ => Protocol::Sctp,
            };
            let (addr, port) =
                parse_addr_port(val).map_err(|e| addr_error(vidx, e, "virtual server"))?;
            if addr.is_ipv6()
                && let Some((MaskVal::V4(_), midx)) = st.mask
            {
                return Err(mask_before_v6(midx));
            }
            st.family = Some(Family::of(&addr));
            st.addr = Some(addr);
            st.port = port.unwrap_or(0);
        }
        Tag::FwMark => {
            st.set_option(O_SERVICE, idx)?;
            st.family = Some(Family::V4);
            st.proto = Protocol::Tcp;
            let mark = number(val, 1, i64::from(u32::MAX)).ok_or_else(|| {
                ArgError::at(vidx, format!("invalid fwmark value `{val}' specified"))
            })?;
            st.fwmark = mark as u32;
        }
        Tag::Scheduler => {
            st.set_option(O_SCHEDULER, idx)?;
            st.sched = Some((val, vidx));
        }
        Tag::Persistent => {
            st.set_option(O_PERSISTENT, idx)?;
            st.persistent = Some(match item.value {
                None => DEFAULT_PERSISTENCE_TIMEOUT,
                Some((v, vi)) => number(v, 1, i64::from(MAX_TIMEOUT)).ok_or_else(|| {
                    ArgError::at(vi, format!("invalid timeout value `{v}' specified"))
                })? as u32,
            });
        }
        Tag::Netmask => {
            st.set_option(O_NETMASK, idx)?;
            let m = if st.family == Some(Family::V6) {
                let p = number(val, 1, 128)
                    .ok_or_else(|| ArgError::at(vidx, "illegal ipv6 netmask specified"))?;
                MaskVal::V6(p as u8)
            } else {
                match inet_aton(val) {
                    Some(a) => MaskVal::V4(u32::from(a)),
                    None if looks_like_host_name(val) => {
                        return Err(addr_error(vidx, AddrError::HostName(val.into()), ""));
                    }
                    None => {
                        return Err(ArgError::at(
                            vidx,
                            "illegal virtual server persistent mask specified",
                        ));
                    }
                }
            };
            st.mask = Some((m, idx));
        }
        Tag::Real => {
            st.set_option(O_SERVER, idx)?;
            let (addr, port) =
                parse_addr_port(val).map_err(|e| addr_error(vidx, e, "real server"))?;
            st.daddr = Some(addr);
            // The service port as known at this point of the line.
            st.dport = port.unwrap_or(st.port);
        }
        Tag::Masq | Tag::Ipip | Tag::Gate => {
            st.set_option(O_FORWARD, idx)?;
            st.fwd = match item.tag {
                Tag::Masq => Fwd::Masq,
                Tag::Ipip => Fwd::Tunnel,
                _ => Fwd::Route,
            };
        }
        Tag::Weight => {
            st.set_option(O_WEIGHT, idx)?;
            st.weight = number(val, 0, 65535)
                .ok_or_else(|| ArgError::at(vidx, "illegal weight specified"))?
                as u32;
        }
        Tag::UThreshold => {
            st.set_option(O_UTHRESHOLD, idx)?;
            st.u_threshold = number(val, 0, i64::from(MAX_THRESHOLD))
                .ok_or_else(|| ArgError::at(vidx, "illegal u_threshold specified"))?
                as u32;
        }
        Tag::LThreshold => {
            st.set_option(O_LTHRESHOLD, idx)?;
            st.l_threshold = number(val, 0, i64::from(MAX_THRESHOLD))
                .ok_or_else(|| ArgError::at(vidx, "illegal l_threshold specified"))?
                as u32;
        }
        Tag::Numeric => st.set_option(O_NUMERIC, idx)?,
        Tag::Connection => st.set_option(O_CONNECTION, idx)?,
        Tag::McastIf => {
            st.set_option(O_MCAST, idx)?;
            // The kernel's interface names hold at most 15 bytes.
            st.mcast_ifn = Some(val.chars().take(15).collect());
        }
        Tag::SyncId => {
            st.set_option(O_SYNCID, idx)?;
            st.syncid = number(val, 0, 255)
                .ok_or_else(|| ArgError::at(vidx, "illegal syncid specified"))?
                as u8;
        }
        Tag::Timeout => st.set_option(O_TIMEOUT, idx)?,
        Tag::Daemon => st.set_option(O_DAEMON, idx)?,
        Tag::Stats => st.set_option(O_STATS, idx)?,
        Tag::Rate => st.set_option(O_RATE, idx)?,
        Tag::Thresholds => st.set_option(O_THRESHOLDS, idx)?,
        Tag::PersistentConn => st.set_option(O_PERSISTENTCONN, idx)?,
        Tag::NoSort => st.set_option(O_NOSORT, idx)?,
        Tag::Sort => {}
        Tag::Exact => st.set_option(O_EXACT, idx)?,
        Tag::Ipv6 => {
            if st.fwmark == 0 {
                return Err(ArgError::at(idx, "-6 used before -f"));
            }
            if let Some((MaskVal::V4(_), midx)) = st.mask {
                return Err(mask_before_v6(midx));
            }
            st.family = Some(Family::V6);
        }
        Tag::Ops => {
            st.set_option(O_ONEPACKET, idx)?;
            st.ops = true;
        }
        Tag::Pe => {
            st.set_option(O_PE, idx)?;
            st.pe = Some((val, vidx));
        }
        Tag::SchedFlags => {
            st.set_option(O_SCHED_FLAGS, idx)?;
            st.sched_flags = Some((val, vidx));
        }
        Tag::McastGroup => {
            st.set_option(O_MCAST_GROUP, idx)?;
            if val.contains(':') {
                match val.parse::<std::net::Ipv6Addr>() {
                    Ok(a) if a.is_multicast() => st.mcast_group = Some(IpAddr::V6(a)),
                    _ => {
                        return Err(ArgError::at(
                            vidx,
                            format!("invalid IPv6 mcast-group `{val}'"),
                        ));
                    }
                }
            } else {
                match val.parse::<std::net::Ipv4Addr>() {
                    Ok(a) if a.is_multicast() => st.mcast_group = Some(IpAddr::V4(a)),
                    _ => {
                        return Err(ArgError::at(
                            vidx,
                            format!("invalid IPv4 mcast-group `{val}'"),
                        ));
                    }
                }
            }
        }
        Tag::McastPort => {
            st.set_option(O_MCAST_PORT, idx)?;
            st.mcast_port = Some(
                number(val, 1, 65535)
                    .ok_or_else(|| ArgError::at(vidx, "illegal mcast-port specified"))?
                    as u16,
            );
        }
        Tag::McastTtl => {
            st.set_option(O_MCAST_TTL, idx)?;
            st.mcast_ttl = Some(
                number(val, 1, 255)
                    .ok_or_else(|| ArgError::at(vidx, "illegal mcast-ttl specified"))?
                    as u8,
            );
        }
        Tag::SyncMaxlen => {
            st.set_option(O_SYNC_MAXLEN, idx)?;
            st.sync_maxlen = Some(
                number(val, 1, 65535 - 20 - 8)
                    .ok_or_else(|| ArgError::at(vidx, "illegal sync-maxlen specified"))?
                    as u16,
            );
        }
        Tag::TunInfo => st.set_option(O_TUN_INFO, idx)?,
        Tag::TunType => {
            st.set_option(O_TUN_TYPE, idx)?;
            st.tun_type = match val {
                "ipip" => TunnelType::Ipip,
                "gue" => TunnelType::Gue,
                "gre" => TunnelType::Gre,
                _ => return Err(ArgError::at(vidx, "illegal tunnel type specified")),
            };
        }
        Tag::TunPort => {
            st.set_option(O_TUN_PORT, idx)?;
            st.tun_port = number(val, 1, 65535)
                .ok_or_else(|| ArgError::at(vidx, "illegal tunnel port specified"))?
                as u16;
        }
        Tag::TunNocsum => st.set_option(O_TUN_NOCSUM, idx)?,
        Tag::TunCsum => {
            st.set_option(O_TUN_CSUM, idx)?;
            st.tun_csum = TunnelCsum::Csum;
        }
        Tag::TunRemcsum => {
            st.set_option(O_TUN_REMCSUM, idx)?;
            st.tun_csum = TunnelCsum::RemCsum;
        }
    }
    Ok(())
}

/// ipvsadm would read such a mask as an IPv4 mask and then silently replace
/// it by /128 when the IPv6 address comes; rvs refuses the line instead.
fn mask_before_v6(index: usize) -> ArgError {
    ArgError::at(
        index,
        "-M used before the IPv6 service address; write -M after -t/-u/--sctp-service (or after -f N -6)",
    )
}

/// Reads a `-b` list against the scheduler it will be used with.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, String> {
    let mut flags = 0u8;
    if arg.is_empty() {
        // ipvsadm ignores an empty -b value.
        return Ok(SchedFlags(0));
    }
    let words: Vec<&str> = arg.split(',').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return Err(format!("invalid scheduler flag `{arg}'"));
    }
    for w in words {
        let (bit, needs) = match w {
            "flag-1" => (SchedFlags::SCHED1, None),
            "flag-2" => (SchedFlags::SCHED2, None),
            "flag-3" => (SchedFlags::SCHED3, None),
            "sh-fallback" => (SchedFlags::SCHED1, Some("sh")),
            "sh-port" => (SchedFlags::SCHED2, Some("sh")),
            "mh-fallback" => (SchedFlags::SCHED1, Some("mh")),
            "mh-port" => (SchedFlags::SCHED2, Some("mh")),
            _ => return Err(format!("invalid scheduler flag `{w}'")),
        };
        flags |= bit;
        if let Some(s) = needs
            && sched != s
        {
            return Err(format!("incompatible scheduler flag `{w}'"));
        }
    }
    Ok(SchedFlags(flags))
}

/// The command/option matrix, checked in option order as ipvsadm does.
fn generic_opt_check(cmd: Cmd, st: &State<'_>) -> Result<(), ArgError> {
    let mut exclusive: Option<usize> = None;
    for (opt, name) in OPT_NAMES.iter().enumerate() {
        let legal = legality(cmd, opt);
        if !st.has(opt) {
            if legal == Legal::Required {
                return Err(ArgError::whole(format!(
                    "You need to supply the '{name}' option for the '{}' command",
                    cmd.name()
                )));
            }
            continue;
        }
        let idx = st.opt_index[opt];
        match legal {
            Legal::Illegal => {
                return Err(ArgError::at(
                    idx,
                    format!("Illegal '{name}' option with the '{}' command", cmd.name()),
                ));
            }
            Legal::Exclusive => {
                if let Some(prev) = exclusive {
                    return Err(ArgError::at(
                        idx,
                        format!(
                            "The option '{name}' conflicts with the '{}' option in the '{}' command",
                            OPT_NAMES[prev],
                            cmd.name()
                        ),
                    ));
                }
                exclusive = Some(opt);
            }
            Legal::Required | Legal::Optional => {}
        }
    }
    Ok(())
}

fn scheduler_not_found(index: usize) -> ArgError {
    ArgError::at(index, "Scheduler or persistence engine not found")
}

fn build_service(
    st: &State<'_>,
    sched_flags: SchedFlags,
    cmd_index: usize,
) -> Result<ServiceConfig, ArgError> {
    let key = st.key();
    let svc_index = st.opt_index[O_SERVICE];
    if !key.is_fwmark() && key.port() == 0 && st.persistent.is_none() {
        return Err(ArgError::at(
            svc_index,
            "Zero port specified for non-persistent service",
        ));
    }
    if st.ops && !key.is_fwmark() && key.protocol() != Some(Protocol::Udp) {
        return Err(ArgError::at(
            st.opt_index[O_ONEPACKET],
            "One-Packet Scheduling is only for UDP virtual services",
        ));
    }
    let scheduler = match st.sched {
        None => SchedulerKind::Wlc,
        Some((name, i)) => name.parse().map_err(|()| scheduler_not_found(i))?,
    };
    let pe_name = match st.pe {
        None => None,
        Some(("sip", _)) => Some("sip".to_string()),
        Some((_, i)) => return Err(scheduler_not_found(i)),
    };
    let netmask = match st.mask {
        Some((MaskVal::V4(m), _)) if key.family() == Family::V4 => Netmask::V4(m),
        Some((MaskVal::V6(p), _)) => Netmask::V6(p),
        _ => Netmask::full(key.family()),
    };
    let svc = ServiceConfig {
        key,
        scheduler,
        sched_flags,
        persistence: st.persistent,
        netmask,
        pe_name,
        one_packet: st.ops,
        mh_table_size: DEFAULT_MH_TABLE_SIZE,
    };
    validate_service(&svc).map_err(|e| ArgError::at(cmd_index, e.to_string()))?;
    Ok(svc)
}

fn build_dest(st: &State<'_>) -> Result<(ServiceKey, DestConfig), ArgError> {
    let key = st.key();
    let r_index = st.opt_index[O_SERVER];
    let addr = st.daddr.unwrap_or(Family::V4.unspecified());
    let mut port = st.dport;
    // Direct routing and tunnelling cannot change the port.
    if !key.is_fwmark() && matches!(st.fwd, Fwd::Route | Fwd::Tunnel) {
        port = key.port();
    }
    if Family::of(&addr) != key.family() && st.fwd != Fwd::Tunnel {
        return Err(ArgError::at(
            r_index,
            "Different address family is allowed only for tunneling servers",
        ));
    }
    let tun_opts = [
        O_TUN_TYPE,
        O_TUN_PORT,
        O_TUN_NOCSUM,
        O_TUN_CSUM,
        O_TUN_REMCSUM,
    ];
    if let Some(&o) = tun_opts.iter().find(|&&o| st.has(o))
        && st.fwd != Fwd::Tunnel
    {
        return Err(ArgError::at(
            st.opt_index[o],
            "Tunnel options conflict with forward method",
        ));
    }
    tunnel_opt_check(st)?;
    let forward = match st.fwd {
        Fwd::Masq => Forward::Masq,
        Fwd::Route => Forward::Route,
        Fwd::Tunnel => Forward::Tunnel(Tunnel {
            kind: st.tun_type,
            port: st.tun_port,
            csum: st.tun_csum,
        }),
    };
    let dest = DestConfig {
        addr,
        port,
        forward,
        weight: st.weight,
        u_threshold: st.u_threshold,
        l_threshold: st.l_threshold,
    };
    validate_dest(&key, &dest).map_err(|e| {
        let idx = match e {
            rvs_core::model::ModelError::ThresholdRange => st.opt_index[O_LTHRESHOLD],
            _ => r_index,
        };
        ArgError::at(idx, e.to_string())
    })?;
    Ok((key, dest))
}

/// The tunnel type/option matrix: ipip takes none of the tunnel options,
/// gue needs `--tun-port` and at most one checksum option, gre takes no port
/// and `--tun-nocsum` or `--tun-csum`.
fn tunnel_opt_check(st: &State<'_>) -> Result<(), ArgError> {
    if st.fwd != Fwd::Tunnel {
        return Ok(());
    }
    let tname = st.tun_type.name();
    let row: [Legal; 4] = match st.tun_type {
        TunnelType::Ipip => [Legal::Illegal; 4],
        TunnelType::Gue => [
            Legal::Required,
            Legal::Exclusive,
            Legal::Exclusive,
            Legal::Exclusive,
        ],
        TunnelType::Gre => [
            Legal::Illegal,
            Legal::Exclusive,
            Legal::Exclusive,
            Legal::Illegal,
        ],
    };
    let opts = [O_TUN_PORT, O_TUN_NOCSUM, O_TUN_CSUM, O_TUN_REMCSUM];
    let mut exclusive: Option<usize> = None;
    for (legal, &opt) in row.iter().zip(&opts) {
        let name = OPT_NAMES[opt];
        if !st.has(opt) {
            if *legal == Legal::Required {
                return Err(ArgError::whole(format!(
                    "You need to supply the '{name}' option for the '{tname}' tunnel type"
                )));
            }
            continue;
        }
        let idx = st.opt_index[opt];
        match legal {
            Legal::Illegal => {
                return Err(ArgError::at(
                    idx,
                    format!("Illegal '{name}' option with the '{tname}' tunnel type"),
                ));
            }
            Legal::Exclusive => {
                if let Some(prev) = exclusive {
                    return Err(ArgError::at(
                        idx,
                        format!(
                            "The option '{name}' conflicts with the '{}' option in the '{tname}' tunnel type",
                            OPT_NAMES[prev]
                        ),
                    ));
                }
                exclusive = Some(opt);
            }
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Display for SyncRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        })
    }
}
