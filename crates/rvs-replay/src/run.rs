//! Running a replay: rules first, then the events in time order.

use std::fmt::Write as _;
use std::net::IpAddr;

use rvs_core::director::{ConnRef, Director, DirectorConfig, PacketInfo, Verdict};
use rvs_core::model::{Protocol, SockAddrDisplay};
use rvs_core::state::TcpFlags;
use rvs_ipvsadm::director::{apply, list};
use rvs_ipvsadm::{Command, error_at, parse_args, parse_rules};

use crate::events::{Event, EventLine};

/// IP total length of every replayed TCP packet.
pub const TCP_PACKET_LEN: u32 = 52;
/// IP total length of every replayed UDP datagram.
pub const UDP_PACKET_LEN: u32 = 128;

/// A rules or events file that cannot be used; nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReplayError(pub String);

/// Reads a rules file into a fresh director. The file is checked and
/// applied as a whole: on the first bad line (syntax, or a command the
/// kernel would refuse, such as a duplicate service) the error is reported
/// as `FILE:LINE:COLUMN: message` and nothing is applied.
pub fn load_rules(text: &str, file: &str, cfg: DirectorConfig) -> Result<Director, ReplayError> {
    let rules = parse_rules(text).map_err(|e| ReplayError(e.with_file(file)))?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut d = Director::new(cfg);
    for r in &rules {
        if let Err(e) = apply(&mut d, &r.command) {
            let line = lines.get(r.line - 1).copied().unwrap_or("");
            let column = line.len() - line.trim_start().len() + 1;
            return Err(ReplayError(error_at(r.line, column, e.0).with_file(file)));
        }
    }
    Ok(d)
}

/// A replay in progress: the director and what has been printed.
#[derive(Debug)]
pub struct Replay {
    director: Director,
    stdout: String,
    stderr: String,
}

impl Replay {
    /// A replay over a director set up by [`load_rules`].
    pub fn new(director: Director) -> Replay {
        Replay {
            director,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// The director, for inspection.
    pub fn director(&self) -> &Director {
        &self.director
    }

    /// What the replay printed on standard output.
    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    /// What the replay printed on standard error (refused commands).
    pub fn stderr(&self) -> &str {
        &self.stderr
    }

    /// Runs events (times must not decrease; [`crate::parse_events`]
    /// guarantees it).
    pub fn run(&mut self, events: &[EventLine]) {
        for e in events {
            self.step(e);
        }
    }

    /// Runs one event.
    pub fn step(&mut self, e: &EventLine) {
        let t = e.time_ms;
        self.director.advance(t);
        match &e.event {
            Event::Open {
                proto,
                client,
                vip,
                mark,
            } => {
                let dest = self.open(*proto, *client, *vip, *mark, t);
                let to = match dest {
                    Some((addr, port)) => SockAddrDisplay(addr, port).to_string(),
                    None => "none".to_string(),
                };
                let _ = writeln!(
                    self.stdout,
                    "{t} {} -> {to}",
                    SockAddrDisplay(client.0, client.1)
                );
            }
            Event::Close { client, vip } => self.close(*client, *vip, t),
            Event::Ipvsadm(args) => {
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let result = parse_args(&argv).map_err(|e| e.message).and_then(|cmd| {
                    if cmd.is_rule() {
                        apply(&mut self.director, &cmd).map_err(|e| e.0)
                    } else {
                        Err(format!(
                            "replay: `ipvsadm {}` does not change rules (use a list event)",
                            args.join(" ")
                        ))
                    }
                });
                if let Err(msg) = result {
                    let _ = writeln!(self.stderr, "{msg}");
                }
            }
            Event::List(opts) => {
                let mut argv = vec!["-Ln"];
                argv.extend(opts.iter().map(String::as_str));
                match parse_args(&argv) {
                    Ok(Command::List(o)) => match list(&self.director, &o) {
                        Ok(text) => self.stdout.push_str(&text),
                        Err(e) => {
                            let _ = writeln!(self.stderr, "{e}");
                        }
                    },
                    Ok(_) => {
                        let _ = writeln!(
                            self.stderr,
                            "replay: list takes listing options only, not {}",
                            opts.join(" ")
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(self.stderr, "{}", e.message);
                    }
                }
            }
        }
    }

    fn packet(
        proto: Protocol,
        client: (IpAddr, u16),
        vip: (IpAddr, u16),
        mark: u32,
        tcp: TcpFlags,
    ) -> PacketInfo {
        PacketInfo {
            proto,
            src: client.0,
            sport: client.1,
            dst: vip.0,
            dport: vip.1,
            fwmark: mark,
            tcp,
            sctp: rvs_core::sctp::SctpEvent::Data,
            len: if proto == Protocol::Tcp {
                TCP_PACKET_LEN
            } else {
                UDP_PACKET_LEN
            },
        }
    }

    fn forwarded(v: Verdict) -> Option<(ConnRef, bool, (IpAddr, u16))> {
        match v {
            Verdict::Forward(f) => Some((f.conn, f.method.sees_replies(), (f.daddr, f.dport))),
            _ => None,
        }
    }

    /// The fixed packets of `open`; returns where the first one went.
    fn open(
        &mut self,
        proto: Protocol,
        client: (IpAddr, u16),
        vip: (IpAddr, u16),
        mark: u32,
        t: u64,
    ) -> Option<(IpAddr, u16)> {
        let d = &mut self.director;
        if proto == Protocol::Udp {
            let v = d.inbound(
                &Self::packet(proto, client, vip, mark, TcpFlags::default()),
                t,
            );
            return Self::forwarded(v).map(|(_, _, to)| to);
        }
        let syn = Self::packet(proto, client, vip, mark, TcpFlags::SYN);
        let (conn, replies, to) = Self::forwarded(d.inbound(&syn, t))?;
        // A sequence stops at the first packet that is not forwarded.
        if replies
            && Self::forwarded(d.outbound(conn, TcpFlags::SYN_ACK, TCP_PACKET_LEN, t)).is_none()
        {
            return Some(to);
        }
        let ack = Self::packet(proto, client, vip, mark, TcpFlags::ACK);
        let _ = d.inbound(&ack, t);
        Some(to)
    }

    /// The fixed packets of `close`.
    fn close(&mut self, client: (IpAddr, u16), vip: (IpAddr, u16), t: u64) {
        let d = &mut self.director;
        let fin = Self::packet(Protocol::Tcp, client, vip, 0, TcpFlags::FIN_ACK);
        let Some((conn, replies, _)) = Self::forwarded(d.inbound(&fin, t)) else {
            return;
        };
        if replies
            && (Self::forwarded(d.outbound(conn, TcpFlags::ACK, TCP_PACKET_LEN, t)).is_none()
                || Self::forwarded(d.outbound(conn, TcpFlags::FIN_ACK, TCP_PACKET_LEN, t))
                    .is_none())
        {
            return;
        }
        let ack = Self::packet(Protocol::Tcp, client, vip, 0, TcpFlags::ACK);
        let _ = d.inbound(&ack, t);
    }
}
