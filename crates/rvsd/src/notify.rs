//! Notify commands (`notify_up`, `notify_down`, `quorum_up`,
//! `quorum_down`): run in the background, at most `notify_max` at once,
//! each killed after `notify_timeout`, never waited for by the health loop.
//!
//! The configured argv is run with these arguments appended:
//!
//! ```text
//! ARGV... up|down SERVICE SERVER REASON     # server events
//! ARGV... quorum_up|quorum_down SERVICE     # service events
//! ```
//!
//! `SERVICE` is the API's service id (`tcp-127.0.0.1-8080`), `SERVER` is
//! `IP:PORT` (IPv6 in brackets) and `REASON` the transition's reason as
//! logged (`check failed: refused`). The same values are in the
//! environment as `RVS_EVENT`, `RVS_SERVICE`, `RVS_SERVER` and
//! `RVS_REASON` (the last two only for server events). Standard input and
//! output are `/dev/null`; standard error is rvsd's.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Runs notify commands with bounded concurrency and a timeout.
#[derive(Debug, Clone)]
pub struct Notifier {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl Notifier {
    /// At most `max` commands at once, each killed after `timeout`.
    pub fn new(max: usize, timeout: Duration) -> Notifier {
        Notifier {
            permits: Arc::new(Semaphore::new(max.max(1))),
            timeout,
        }
    }

    /// Starts `argv` with `args` appended and `env` added, in the
    /// background; failures are logged.
    pub fn run(&self, argv: &[String], args: Vec<String>, env: Vec<(&'static str, String)>) {
        let Some((program, rest)) = argv.split_first() else {
            return;
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest)
            .args(&args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        let permits = self.permits.clone();
        let timeout = self.timeout;
        let program = program.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(program, error = %e, "notify command could not start");
                    return;
                }
            };
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => {
                    tracing::warn!(program, %status, "notify command failed");
                }
                Ok(Err(e)) => tracing::warn!(program, error = %e, "notify command failed"),
                Err(_) => {
                    let _ = child.kill().await;
                    tracing::warn!(
                        program,
                        timeout_s = timeout.as_secs_f64(),
                        "notify command killed after its timeout"
                    );
                }
            }
        });
    }
}
