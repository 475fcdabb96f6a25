//! MISC_CHECK: an external program's exit status.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};

use rustix::process::{Pid, Signal, kill_process_group};
use rvs_core::health::FailureReason;
use rvs_core::probe::MiscProbe;
use tokio::process::Command;
use tokio::time::Instant;

/// Runs the program until it exits or `deadline`, when its whole process
/// group is killed. The dynamic weight on success.
pub(crate) async fn probe(
    spec: &MiscProbe,
    deadline: Instant,
) -> Result<Option<u32>, FailureReason> {
    let (program, args) = spec.argv.split_first().ok_or(FailureReason::Other)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group, so that a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|_| FailureReason::Other)?;
    let group = child.id().and_then(|id| Pid::from_raw(id as i32));
    // Kills the group if this future is dropped before the program exits.
    let mut guard = GroupGuard(group);
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => {
            guard.0 = None;
            verdict(spec, status)
        }
        Ok(Err(_)) => Err(FailureReason::Other),
        Err(_) => {
            guard.kill();
            // SIGKILL cannot be caught, so the wait is short; reaping here
            // leaves no zombie behind.
            let _ = child.wait().await;
            Err(FailureReason::Timeout)
        }
    }
}

/// keepalived's reading of an exit status.
fn verdict(spec: &MiscProbe, status: ExitStatus) -> Result<Option<u32>, FailureReason> {
    match status.code() {
        Some(0) => Ok(None),
        Some(code @ 2..=255) if spec.dynamic => Ok(Some(code as u32 - 2)),
        Some(code) => Err(FailureReason::ExitCode(code)),
        None => Err(FailureReason::ExitCode(-status.signal().unwrap_or(0))),
    }
}

/// The process group of a running MISC program.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            // The group leader is not reaped yet, so its PID (the group ID)
            // cannot have been reused; ESRCH just means all are gone.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
