//! ipvsadm commands applied to a [`Director`], and the director's tables
//! turned into listing rows.

use rvs_core::director::{CtlError, Director, ServiceSnapshot};
use rvs_core::model::Protocol;

use crate::cmd::{Command, ListOptions, ListTarget};
use crate::list::{self, Counters5, ListConn, ListDest, ListService};

/// Why a command was not applied: the message ipvsadm prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

impl From<CtlError> for ApplyError {
    fn from(e: CtlError) -> Self {
        ApplyError(e.to_string())
    }
}

/// Applies a rule-changing command (`-A -E -D -C -a -e -d -Z --set`).
/// Anything else is refused with a message.
pub fn apply(d: &mut Director, cmd: &Command) -> Result<(), ApplyError> {
    match cmd {
        Command::AddService(s) => d.add_service(s.clone())?,
        Command::EditService(s) => d.edit_service(s.clone())?,
        Command::DeleteService(k) => d.del_service(k)?,
        Command::Clear => d.clear(),
        Command::AddDest { service, dest, .. } => {
            d.add_dest(service, *dest)?;
        }
        Command::EditDest { service, dest, .. } => d.edit_dest(service, *dest)?,
        Command::DeleteDest {
            service,
            addr,
            port,
        } => d.del_dest(service, *addr, *port)?,
        Command::Zero(k) => d.zero(k.as_ref())?,
        Command::SetTimeouts(t) => d.set_timeouts(*t),
        other => {
            return Err(ApplyError(format!(
                "{} does not change rules",
                command_name(other)
            )));
        }
    }
    Ok(())
}

fn command_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::List(_) => "--list",
        Command::Save { .. } => "--save",
        Command::Restore => "--restore",
        Command::StartDaemon(_) => "--start-daemon",
        Command::StopDaemon { .. } => "--stop-daemon",
        Command::Help => "--help",
        Command::Version => "--version",
        _ => "this command",
    }
}

fn counters(c: rvs_core::stats::Counters) -> Counters5 {
    Counters5 {
        conns: c.conns,
        inpkts: c.inpkts,
        outpkts: c.outpkts,
        inbytes: c.inbytes,
        outbytes: c.outbytes,
    }
}

fn rates(r: rvs_core::stats::Rates) -> Counters5 {
    Counters5 {
        conns: r.cps,
        inpkts: r.inpps,
        outpkts: r.outpps,
        inbytes: r.inbps,
        outbytes: r.outbps,
    }
}

/// A service snapshot as a listing row.
pub fn list_service(s: &ServiceSnapshot) -> ListService {
    ListService {
        config: s.config.clone(),
        stats: counters(s.stats),
        rates: rates(s.rates),
        dests: s
            .dests
            .iter()
            .map(|d| ListDest {
                config: d.config,
                active: d.active,
                inactive: d.inactive,
                persistent: d.persistent,
                stats: counters(d.stats),
                rates: rates(d.rates),
            })
            .collect(),
    }
}

/// The director's connections as `-Lc` rows, in creation order.
pub fn list_conns(d: &Director) -> Vec<ListConn> {
    d.connections()
        .into_iter()
        .map(|c| ListConn {
            proto_name: match c.proto {
                6 => Protocol::Tcp.name().to_string(),
                17 => Protocol::Udp.name().to_string(),
                132 => Protocol::Sctp.name().to_string(),
                // fwmark templates carry IPPROTO_IP.
                _ => "IP".to_string(),
            },
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
            state: c.state.to_string(),
            expires_secs: c.expires_ms / 1000,
            pe: None,
        })
        .collect()
}

/// What `ipvsadm -L` with these options prints for this director.
pub fn list(d: &Director, opts: &ListOptions) -> Result<String, ApplyError> {
    let f = opts.format();
    Ok(match opts.target() {
        ListTarget::Connections => list::list_connections(&list_conns(d), opts.persistent_conn),
        ListTarget::Timeout => list::list_timeout(&d.timeouts()),
        // No sync daemon runs in the pure core: ipvsadm prints nothing then.
        ListTarget::Daemon => String::new(),
        ListTarget::Service(k) => {
            let s = d
                .service(&k)
                .ok_or_else(|| ApplyError("No such service".to_string()))?;
            list::list_service(&list_service(&s), &f)
        }
        ListTarget::All => {
            let rows: Vec<ListService> = d.services().iter().map(list_service).collect();
            list::list_all(&rows, &f)
        }
    })
}

/// The director's rules as `ipvsadm -Sn` writes them.
pub fn save(d: &Director) -> String {
    let services: Vec<_> = d
        .services()
        .into_iter()
        .map(|s| (s.config, s.dests.into_iter().map(|x| x.config).collect()))
        .collect();
    crate::save::save(&services)
}

/// Checks commands against a copy of the director's rules without touching
/// the director: `Ok` means applying them in order will succeed. The error
/// names the first failing command (its index) and ipvsadm's message.
///
/// Whether a rule-changing command succeeds depends only on the rules in
/// force (services, servers and their settings), never on connections or
/// counters, so a scratch director rebuilt from the rules is a faithful
/// stand-in.
pub fn dry_run(d: &Director, cmds: &[Command]) -> Result<(), (usize, ApplyError)> {
    let mut scratch = Director::new(rvs_core::director::DirectorConfig {
        conn_capacity: 0,
        sysctls: d.sysctls(),
        ..Default::default()
    });
    for s in d.services() {
        scratch
            .add_service(s.config.clone())
            .map_err(|e| (usize::MAX, e.into()))?;
        // Oldest first, so the scratch list has the same order.
        for dest in s.dests.iter().rev() {
            scratch
                .add_dest(&s.config.key, dest.config)
                .map_err(|e| (usize::MAX, e.into()))?;
        }
    }
    for (i, c) in cmds.iter().enumerate() {
        apply(&mut scratch, c).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Applies commands all or nothing: checked first with [`dry_run`], then
/// applied.
pub fn apply_all(d: &mut Director, cmds: &[Command]) -> Result<(), (usize, ApplyError)> {
    dry_run(d, cmds)?;
    for (i, c) in cmds.iter().enumerate() {
        apply(d, c).map_err(|e| (i, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;
    use rvs_core::director::DirectorConfig;

    fn cmd(line: &str) -> Command {
        parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn apply_all_is_all_or_nothing() {
        let mut d = Director::new(DirectorConfig::default());
        apply(&mut d, &cmd("-A -t 203.0.113.1:80 -s rr")).unwrap();
        let before = save(&d);
        let batch = [
            cmd("-a -t 203.0.113.1:80 -r 192.0.2.1:80 -m"),
            cmd("-a -t 203.0.113.1:80 -r 192.0.2.1:80 -m"),
        ];
        let (i, e) = apply_all(&mut d, &batch).unwrap_err();
        assert_eq!((i, e.0.as_str()), (1, "Destination already exists"));
        assert_eq!(save(&d), before);
        apply_all(&mut d, &batch[..1]).unwrap();
        assert_ne!(save(&d), before);
    }
}
