//! What the daemon tests share: a free loopback port, a scratch directory
//! and a child `rvsd` that is killed by PID when the test ends.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Child;

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon, killed and reaped on drop.
pub struct Rvsd(pub Child);

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory of its own per call, removed on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new() -> Dir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvsd-test-{}-{}-{}",
            std::env::args()
                .next()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or(""),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    /// Writes `text` to a file in the directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub mod pair;
pub mod real;
pub mod vrrp;

/// The daemons' log files, each under a `--- PATH` line: what a failed
/// assertion prints so that the run can be understood afterwards.
pub fn logs(paths: &[&std::path::Path]) -> String {
    paths
        .iter()
        .map(|p| {
            format!(
                "--- {}\n{}",
                p.display(),
                std::fs::read_to_string(p).unwrap_or_default()
            )
        })
        .collect()
}
