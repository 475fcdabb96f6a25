//! What the control API needs from a running director, whatever its data
//! plane: the daemon's HTTP server is written against [`Control`], and each
//! data plane implements it.

use std::sync::Mutex;

use rvs_core::director::{ConnSnapshot, Director, ServiceSnapshot};
use rvs_core::model::Timeouts;
use rvs_ipvsadm::Command;

use crate::health::{HealthList, HealthUpdate};

/// A refused control request: the HTTP status and the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// HTTP status (4xx for the caller's mistakes).
    pub status: u16,
    /// What went wrong, in ipvsadm's words where it has them.
    pub message: String,
}

/// The operations behind the control API.
pub trait Control: Send + Sync + 'static {
    /// Applies rule-changing commands all or nothing: on any error nothing
    /// has changed.
    fn apply(&self, cmds: &[Command]) -> Result<(), ControlError>;
    /// Every service with its servers, counters and rates.
    fn services(&self) -> Vec<ServiceSnapshot>;
    /// Every connection and template, in creation order.
    fn connections(&self) -> Vec<ConnSnapshot>;
    /// The timeouts `--set` changes.
    fn timeouts(&self) -> Timeouts;
    /// Applies commands together with the health settings written in the
    /// bodies they came from, all or nothing. A data plane without health
    /// checking refuses settings that ask for checks.
    fn apply_health(&self, cmds: &[Command], health: &[HealthUpdate]) -> Result<(), ControlError> {
        if health.iter().any(HealthUpdate::has_checks) {
            return Err(ControlError {
                status: 422,
                message: crate::health::no_health_checks().message,
            });
        }
        self.apply(cmds)
    }
    /// Every service's health; `None` when the data plane runs no checks.
    fn health(&self) -> Option<HealthList> {
        None
    }
    /// Starts a connection synchronisation daemon (`--start-daemon`).
    fn start_daemon(&self, _spec: &crate::DaemonSpec) -> Result<(), ControlError> {
        Err(ControlError {
            status: 409,
            message: "connection synchronisation needs the packet data plane".into(),
        })
    }
    /// Stops one (`--stop-daemon`); false when none of that role ran.
    fn stop_daemon(&self, _role: crate::DaemonRole) -> Result<bool, ControlError> {
        Ok(false)
    }
    /// The running sync daemons, master first (`-L --daemon`).
    fn daemons(&self) -> Vec<crate::DaemonSpec> {
        Vec::new()
    }
}

/// What a [`DirectorControl`] controls: a director, or a data plane's
/// state that owns one (a packet forwarder's connection shard).
pub trait HoldsDirector: Send + 'static {
    /// The director.
    fn director_mut(&mut self) -> &mut Director;
}

impl HoldsDirector for Director {
    fn director_mut(&mut self) -> &mut Director {
        self
    }
}

/// [`Control`] over one director behind a mutex: the reference
/// implementation, and what a single-table data plane needs (it holds its
/// whole state, `H`, in the mutex and reaches it with
/// [`DirectorControl::with_holder`]).
#[derive(Debug)]
pub struct DirectorControl<H = Director> {
    director: Mutex<H>,
    clock: fn() -> u64,
}

impl<H: HoldsDirector> DirectorControl<H> {
    /// Wraps a director; `clock` gives the current time in milliseconds on
    /// the director's clock (listings advance the director to it first).
    pub fn new(director: H, clock: fn() -> u64) -> Self {
        DirectorControl {
            director: Mutex::new(director),
            clock,
        }
    }

    /// Runs `f` on the director, advanced to now.
    pub fn with<R>(&self, f: impl FnOnce(&mut Director) -> R) -> R {
        self.with_holder(|h| f(h.director_mut()))
    }

    /// Runs `f` on the whole state, its director advanced to now.
    pub fn with_holder<R>(&self, f: impl FnOnce(&mut H) -> R) -> R {
        let mut h = self.lock();
        h.director_mut().advance((self.clock)());
        f(&mut h)
    }

    /// The state, as it is (the data path, which keeps its own time).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, H> {
        self.director.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn refused(e: rvs_ipvsadm::director::ApplyError, cmd: Option<&Command>) -> ControlError {
    // The director's own errors carry their HTTP meaning; anything else
    // (a command that changes no rules) is the caller's mistake.
    let status = match cmd {
        Some(_) => match e.0.as_str() {
            "No such service" | "Service not defined" | "No such destination" => 404,
            "Service already exists" | "Destination already exists" => 409,
            _ => 422,
        },
        None => 400,
    };
    ControlError {
        status,
        message: e.0,
    }
}

impl<H: HoldsDirector> Control for DirectorControl<H> {
    fn apply(&self, cmds: &[Command]) -> Result<(), ControlError> {
        if let Some(c) = cmds.iter().find(|c| !c.is_rule()) {
            return Err(refused(
                rvs_ipvsadm::director::ApplyError(format!("{c:?} does not change rules")),
                None,
            ));
        }
        self.with(|d| {
            rvs_ipvsadm::director::apply_all(d, cmds).map_err(|(i, e)| refused(e, cmds.get(i)))
        })
    }

    fn services(&self) -> Vec<ServiceSnapshot> {
        self.with(|d| d.services())
    }

    fn connections(&self) -> Vec<ConnSnapshot> {
        self.with(|d| d.connections())
    }

    fn timeouts(&self) -> Timeouts {
        self.with(|d| d.timeouts())
    }
}

// Keeps the status mapping of this module and of `status_of` in step.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::status_of;
    use rvs_core::director::{CtlError, DirectorConfig};
    use rvs_ipvsadm::parse_args;

    fn cmd(line: &str) -> Command {
        parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn statuses_match_the_director_errors() {
        for (e, status) in [
            (CtlError::NoSuchService, 404),
            (CtlError::ServiceNotDefined, 404),
            (CtlError::NoSuchDest, 404),
            (CtlError::ServiceExists, 409),
            (CtlError::DestExists, 409),
        ] {
            assert_eq!(status_of(&e), status);
            let r = refused(
                rvs_ipvsadm::director::ApplyError(e.to_string()),
                Some(&Command::Clear),
            );
            assert_eq!(r.status, status, "{e}");
        }
    }

    #[test]
    fn batches_are_atomic() {
        let c = DirectorControl::new(Director::new(DirectorConfig::default()), || 0);
        c.apply(&[cmd("-A -t 203.0.113.1:80 -s rr")]).unwrap();
        let err = c
            .apply(&[
                cmd("-a -t 203.0.113.1:80 -r 192.0.2.1:80 -m"),
                cmd("-a -t 203.0.113.9:80 -r 192.0.2.1:80 -m"),
            ])
            .unwrap_err();
        assert_eq!(err.status, 404);
        assert!(c.services()[0].dests.is_empty());
        let err = c.apply(&[cmd("-Ln")]).unwrap_err();
        assert_eq!(err.status, 400);
    }
}
