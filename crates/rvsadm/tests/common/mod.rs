//! An in-process control API (`rvs_control::serve` over a
//! `DirectorControl` on a socket in a scratch directory) and the built
//! `rvsadm` binary talking to it.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use rvs_api::DirectorControl;
use rvs_core::director::{Director, DirectorConfig};
use tokio::sync::oneshot;

/// The daemon side of a test: stopped and cleaned up on drop.
pub struct Daemon {
    /// The scratch directory holding the socket.
    pub dir: PathBuf,
    /// The control socket's path.
    pub sock: String,
    /// The director behind the API, for driving traffic.
    pub ctl: Arc<DirectorControl>,
    stop: Option<oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Daemon {
    /// Serves a fresh director whose clock is `clock` on a socket in a
    /// scratch directory named after the test.
    pub fn start(test: &str, clock: fn() -> u64) -> Daemon {
        let dir = std::env::temp_dir().join(format!("rvsadm-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sock = dir.join("rvsd.sock");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = {
            let _guard = rt.enter();
            rvs_control::bind(&sock).expect("bind")
        };
        let ctl = Arc::new(DirectorControl::new(
            Director::new(DirectorConfig::default()),
            clock,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        rt.spawn(rvs_control::serve(listener, ctl.clone(), async {
            let _ = stopped.await;
        }));
        Daemon {
            dir,
            sock: sock.display().to_string(),
            ctl,
            stop: Some(stop),
            rt: Some(rt),
        }
    }

    /// Runs `rvsadm --control SOCK ARGS`.
    pub fn run(&self, args: &str) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Runs `rvsadm --control SOCK ARGS` with `stdin` on standard input.
    pub fn run_with_stdin(&self, args: &str, stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
            .arg("--control")
            .arg(&self.sock)
            .args(args.split_whitespace())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rvsadm runs");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().expect("rvsadm ends")
    }

    /// Runs and expects success; returns standard output.
    pub fn ok(&self, args: &str) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{args}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs rule commands, each expected to succeed silently.
    pub fn all(&self, cmds: &[&str]) {
        for c in cmds {
            assert_eq!(self.ok(c), "", "{c}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
