use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{MiscProbe, ProbeKind};
use rvs_health::CompiledProbe;

use crate::support::{run, spec};

const T: Duration = Duration::from_secs(10);

fn misc(script: &str, dynamic: bool, timeout_ms: Option<u64>) -> rvs_core::probe::ProbeSpec {
    spec(ProbeKind::Misc(MiscProbe {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        timeout_ms,
        dynamic,
    }))
}

/// The real server's address does not matter to a MISC check.
fn anywhere() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn success(dynamic_weight: Option<u32>) -> impl Fn(&Outcome) -> bool {
    move |o| matches!(o, Outcome::Success { dynamic_weight: w, .. } if *w == dynamic_weight)
}

#[tokio::test]
async fn exit_statuses() {
    for (script, dynamic, expected) in [
        ("exit 0", false, None),
        ("exit 0", true, None),
        ("exit 1", false, Some(FailureReason::ExitCode(1))),
        ("exit 1", true, Some(FailureReason::ExitCode(1))),
        ("exit 5", false, Some(FailureReason::ExitCode(5))),
        ("exit 255", false, Some(FailureReason::ExitCode(255))),
        ("kill -TERM $$", false, Some(FailureReason::ExitCode(-15))),
        ("kill -TERM $$", true, Some(FailureReason::ExitCode(-15))),
    ] {
        let o = run(misc(script, dynamic, None), anywhere(), T).await;
        match expected {
            None => assert!(success(None)(&o), "{script} dynamic={dynamic}: {o:?}"),
            Some(r) => assert_eq!(o, Outcome::Failure(r), "{script} dynamic={dynamic}"),
        }
    }
    // With dynamic, 2..=255 is up with weight status - 2.
    for (script, weight) in [("exit 2", 0), ("exit 5", 3), ("exit 255", 253)] {
        let o = run(misc(script, true, None), anywhere(), T).await;
        assert!(success(Some(weight))(&o), "{script}: {o:?}");
    }
}

#[tokio::test]
async fn program_that_cannot_start_is_other() {
    let o = run(
        spec(ProbeKind::Misc(MiscProbe {
            argv: vec!["/nonexistent/check".into()],
            timeout_ms: None,
            dynamic: false,
        })),
        anywhere(),
        T,
    )
    .await;
    assert_eq!(o, Outcome::Failure(FailureReason::Other));
    assert!(
        CompiledProbe::new(spec(ProbeKind::Misc(MiscProbe {
            argv: vec![],
            timeout_ms: None,
            dynamic: false,
        })))
        .unwrap_err()
        .contains("empty command")
    );
}

/// Whether `pid` has exited (gone, or a zombie awaiting its reaper).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn scratch_file() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "rvs-health-misc-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let pids = scratch_file();
    // The shell starts a `sleep 30` in the background (same process group),
    // writes both PIDs and waits for it.
    let script = format!(
        "sleep 30 & echo $$ $! > {}.tmp && mv {0}.tmp {0}; wait",
        pids.display()
    );
    let start = Instant::now();
    let o = run(misc(&script, false, Some(200)), anywhere(), T).await;
    let elapsed = start.elapsed();
    assert_eq!(o, Outcome::Failure(FailureReason::Timeout));
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    let ids = read_pids(&pids);
    assert_eq!(ids.len(), 2, "the script wrote its PIDs: {ids:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ids.iter().all(|&p| exited(p)) {
        assert!(
            Instant::now() < deadline,
            "still running after the timeout: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::remove_file(pids).unwrap();
}

#[tokio::test]
async fn probe_timeout_applies_without_timeout_ms() {
    let start = Instant::now();
    let o = run(
        misc("exec sleep 30", false, None),
        anywhere(),
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(o, Outcome::Failure(FailureReason::Timeout));
    assert!(start.elapsed() < Duration::from_secs(2));
}
