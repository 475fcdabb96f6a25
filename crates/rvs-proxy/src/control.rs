//! [`rvs_api::Control`] for the engine: commands checked as a whole against
//! every service's rules, then applied service by service.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64};

use rvs_api::{Control, ControlError};
use rvs_core::director::{ConnSnapshot, Director, DirectorConfig, ServiceSnapshot};
use rvs_core::model::{Forward, Protocol, ServiceConfig, ServiceKey, Timeouts};
use rvs_ipvsadm::{Command, MethodChoice};
use tokio_util::sync::CancellationToken;

use crate::{Engine, Inner, Svc, Table, lock, now_ms, pp_code, tcp, udp};

fn err(status: u16, message: impl Into<String>) -> ControlError {
    ControlError {
        status,
        message: message.into(),
    }
}

/// The ipvsadm command of a configuration diff operation.
pub fn command_of(op: &rvs_config::Op) -> Command {
    use rvs_config::Op;
    match op {
        Op::AddService(s) => Command::AddService(s.clone()),
        Op::EditService(s) => Command::EditService(s.clone()),
        Op::DeleteService(k) => Command::DeleteService(*k),
        Op::AddDest { service, dest } => Command::AddDest {
            service: *service,
            dest: *dest,
            method: MethodChoice::Named,
        },
        Op::EditDest { service, dest } => Command::EditDest {
            service: *service,
            dest: *dest,
            method: MethodChoice::Named,
        },
        Op::DeleteDest {
            service,
            addr,
            port,
        } => Command::DeleteDest {
            service: *service,
            addr: *addr,
            port: *port,
        },
    }
}

/// What the proxy cannot run, refused before anything is checked further
/// (after [`rvs_ipvsadm::with_default_method`] made an unnamed method masq).
pub fn refuse_unsupported(c: &Command) -> Result<(), ControlError> {
    match c {
        Command::AddService(s) | Command::EditService(s) => match s.key {
            ServiceKey::FwMark { .. } => Err(err(
                422,
                "fwmark services need the packet data plane; the proxy data plane listens on VIP:port",
            )),
            ServiceKey::Addr {
                proto: Protocol::Sctp,
                ..
            } => Err(err(
                422,
                "SCTP services need the packet data plane; the proxy data plane relays TCP and UDP",
            )),
            _ => Ok(()),
        },
        Command::AddDest { dest, .. } | Command::EditDest { dest, .. } => match dest.forward {
            Forward::Masq | Forward::Proxy => Ok(()),
            other => Err(err(
                422,
                format!(
                    "forwarding method {} needs the packet data plane; the proxy data plane relays connections itself (masq)",
                    other.list_name()
                ),
            )),
        },
        c if !c.is_rule() => Err(err(400, format!("{c:?} does not change rules"))),
        _ => Ok(()),
    }
}

fn refused(e: rvs_ipvsadm::director::ApplyError) -> ControlError {
    let status = match e.0.as_str() {
        "No such service" | "Service not defined" | "No such destination" => 404,
        "Service already exists" | "Destination already exists" => 409,
        _ => 422,
    };
    err(status, e.0)
}

/// Sockets bound for the services a batch adds, before anything changes.
enum Bound {
    Tcp(Vec<std::net::TcpListener>),
    Udp(std::net::UdpSocket),
}

impl Engine {
    fn bind(&self, cfg: &ServiceConfig) -> Result<Bound, ControlError> {
        let ServiceKey::Addr { proto, addr, port } = cfg.key else {
            return Err(err(422, "fwmark services need the packet data plane"));
        };
        let sa = std::net::SocketAddr::new(addr, port);
        let p = &self.inner.cfg.proxy;
        let r = match proto {
            Protocol::Tcp => {
                let n = if p.threads == 0 {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                } else {
                    p.threads
                };
                (0..n)
                    .map(|_| tcp::bind(sa, p.freebind))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Bound::Tcp)
            }
            Protocol::Udp => udp::bind(sa, p.freebind).map(Bound::Udp),
            Protocol::Sctp => return Err(err(422, "SCTP services need the packet data plane")),
        };
        r.map_err(|e| err(422, format!("cannot listen on {}: {e}", cfg.key)))
    }

    fn start(&self, cfg: ServiceConfig, bound: Bound, st: &mut crate::CtlState) -> Arc<Svc> {
        let inner = &self.inner;
        let mut d = Director::new(inner.cfg.director);
        d.set_timeouts(st.timeouts);
        d.advance(now_ms());
        let key = cfg.key;
        // Checked by the dry run.
        let _ = d.add_service(cfg);
        st.next_seq += 1;
        let svc = Arc::new(Svc {
            key,
            seq: st.next_seq,
            director: std::sync::Mutex::new(d),
            proxy_protocol: AtomicU8::new(pp_code(
                st.proxy_protocols.get(&key).copied().unwrap_or_default(),
            )),
            stop: CancellationToken::new(),
            relays: std::sync::Mutex::new(HashMap::new()),
            next_relay: AtomicU64::new(0),
            failures: std::sync::Mutex::new(HashMap::new()),
            failing: std::sync::Mutex::new(std::collections::HashSet::new()),
            failing_count: std::sync::atomic::AtomicUsize::new(0),
        });
        let _g = inner.rt.enter();
        match bound {
            Bound::Tcp(ls) => {
                for l in ls {
                    inner.rt.spawn(tcp::listen(inner.clone(), svc.clone(), l));
                }
            }
            Bound::Udp(s) => {
                inner.rt.spawn(udp::serve(inner.clone(), svc.clone(), s));
            }
        }
        inner.rt.spawn(crate::tick(inner.clone(), svc.clone()));
        tracing::info!(service = %key, "service started");
        svc
    }

    fn scratch(&self) -> Director {
        let mut d = Director::new(DirectorConfig {
            conn_capacity: 0,
            sysctls: self.inner.cfg.director.sysctls,
            ..Default::default()
        });
        for s in self.sorted() {
            let snap = lock(&s.director).service(&s.key);
            if let Some(snap) = snap {
                let _ = d.add_service(snap.config.clone());
                for dest in snap.dests.iter().rev() {
                    let _ = d.add_dest(&snap.config.key, dest.config);
                }
            }
        }
        d
    }
}

fn stop(svc: &Svc) {
    svc.stop.cancel();
    tracing::info!(service = %svc.key, "service deleted; its connections drain");
}

impl Control for Engine {
    fn apply(&self, cmds: &[Command]) -> Result<(), ControlError> {
        // A server whose command named no method is masq here: ipvsadm's
        // default `-g` means nothing to a proxy. An explicit `-g` or `-i`
        // stays, and is refused below.
        let cmds: &[Command] = &cmds
            .iter()
            .map(|c| rvs_ipvsadm::with_default_method(c.clone(), Forward::Masq))
            .collect::<Vec<_>>();
        let inner: &Arc<Inner> = &self.inner;
        let mut st = lock(&inner.ctl);
        for c in cmds {
            refuse_unsupported(c)?;
        }
        let scratch = self.scratch();
        rvs_ipvsadm::director::dry_run(&scratch, cmds).map_err(|(_, e)| refused(e))?;
        // Bind every new service's sockets first: a port already taken
        // refuses the whole batch before anything changes.
        let mut bound: Vec<Option<Bound>> = Vec::with_capacity(cmds.len());
        for c in cmds {
            bound.push(match c {
                Command::AddService(s) => Some(self.bind(s)?),
                _ => None,
            });
        }
        let mut table: Table = (**inner.services.load()).clone();
        let mut swept = Vec::new();
        let on = |t: &Table, k: &ServiceKey| -> Result<Arc<Svc>, ControlError> {
            t.get(k).cloned().ok_or_else(|| err(404, "No such service"))
        };
        for (c, b) in cmds.iter().zip(bound) {
            let now = now_ms();
            let r: Result<(), ControlError> = match c {
                Command::AddService(s) => {
                    let b = b.expect("bound above");
                    let svc = self.start(s.clone(), b, &mut st);
                    table.insert(s.key, svc);
                    Ok(())
                }
                Command::DeleteService(k) => {
                    if let Some(s) = table.remove(k) {
                        stop(&s);
                    }
                    Ok(())
                }
                Command::Clear => {
                    for (_, s) in table.drain() {
                        stop(&s);
                    }
                    Ok(())
                }
                Command::Zero(None) => {
                    for s in table.values() {
                        let mut d = lock(&s.director);
                        d.advance(now);
                        let _ = d.zero(None);
                    }
                    Ok(())
                }
                Command::SetTimeouts(t) => {
                    let cur = &mut st.timeouts;
                    // A 0 leaves that timeout unchanged, as in ipvsadm.
                    if t.tcp != 0 {
                        cur.tcp = t.tcp;
                    }
                    if t.tcp_fin != 0 {
                        cur.tcp_fin = t.tcp_fin;
                    }
                    if t.udp != 0 {
                        cur.udp = t.udp;
                    }
                    for s in table.values() {
                        let mut d = lock(&s.director);
                        d.advance(now);
                        d.set_timeouts(*t);
                    }
                    Ok(())
                }
                Command::EditService(s) => on(&table, &s.key).and_then(|svc| {
                    let mut d = lock(&svc.director);
                    d.advance(now);
                    d.edit_service(s.clone()).map_err(|e| refused(e.into()))
                }),
                Command::Zero(Some(k)) => on(&table, k).and_then(|svc| {
                    let mut d = lock(&svc.director);
                    d.advance(now);
                    d.zero(Some(k)).map_err(|e| refused(e.into()))
                }),
                Command::AddDest { service, .. }
                | Command::EditDest { service, .. }
                | Command::DeleteDest { service, .. } => on(&table, service).and_then(|svc| {
                    let mut d = lock(&svc.director);
                    d.advance(now);
                    rvs_ipvsadm::director::apply(&mut d, c).map_err(refused)?;
                    if matches!(c, Command::DeleteDest { .. }) {
                        swept.push(svc.clone());
                    }
                    Ok(())
                }),
                other => Err(err(400, format!("{other:?} does not change rules"))),
            };
            if let Err(e) = r {
                // The dry run makes this unreachable; say so loudly if not.
                tracing::error!(error = %e, "command failed after its dry run passed");
                inner.services.store(Arc::new(table));
                return Err(e);
            }
        }
        inner.services.store(Arc::new(table));
        drop(st);
        // A deleted server's relays close now when expire_nodest_conn is on.
        for s in swept {
            s.sweep();
        }
        Ok(())
    }

    fn services(&self) -> Vec<ServiceSnapshot> {
        let now = now_ms();
        self.sorted()
            .iter()
            .filter_map(|s| {
                let mut d = lock(&s.director);
                d.advance(now);
                d.service(&s.key)
            })
            .collect()
    }

    fn connections(&self) -> Vec<ConnSnapshot> {
        let now = now_ms();
        let mut out = Vec::new();
        for s in self.sorted() {
            let mut d = lock(&s.director);
            d.advance(now);
            out.extend(d.connections());
        }
        out
    }

    fn timeouts(&self) -> Timeouts {
        lock(&self.inner.ctl).timeouts
    }
}
