//! VRRPv2 with `auth_type = "PASS"` between rvsd and keepalived 2.2.7
//! (`vrrp_version 2`, `authentication { auth_type PASS }`) in network
//! namespaces on one bridge (root only): the same password elects one
//! master; a different one is dropped and counted, so each side sees no
//! master and both hold the VIP.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::Dir;
use common::logs;
use common::pair::{Lan, has_addr};
use rvs_testkit::{ChildGuard, Netns, root_or_skip, wait_for};

const VIP: &str = "192.0.2.110";
/// `/metrics` of rvsd, inside its namespace.
const METRICS: &str = "127.0.0.1:9910";

fn has_vip(ns: &Netns) -> bool {
    has_addr(ns, "eth0", VIP)
}

fn start_rvsd(
    ns: &Netns,
    dir: &Dir,
    name: &str,
    priority: u8,
    pass: &str,
) -> (ChildGuard, PathBuf) {
    let conf = dir.file(
        &format!("{name}.toml"),
        &format!(
            r#"
[[vrrp_instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 52
priority = {priority}
version = 2
advert_int = 1
virtual_ipaddress = ["{VIP}"]
auth_type = "PASS"
auth_pass = "{pass}"
"#
        ),
    );
    let log = dir.0.join(format!("{name}.log"));
    let child = ns
        .command(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--config"])
        .arg(&conf)
        .args(["--metrics", METRICS, "--control"])
        .arg(dir.0.join(format!("{name}.sock")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (ChildGuard(child), log)
}

fn start_keepalived(
    ns: &Netns,
    dir: &Dir,
    name: &str,
    priority: u8,
    pass: &str,
) -> (ChildGuard, PathBuf) {
    let conf = dir.file(
        &format!("{name}.conf"),
        &format!(
            "global_defs {{\n  router_id {name}\n  vrrp_version 2\n}}\n\
             vrrp_instance VI_2 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 52\n  \
             priority {priority}\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    \
             auth_pass {pass}\n  }}\n  virtual_ipaddress {{\n    {VIP}/32\n  }}\n}}\n"
        ),
    );
    let log = dir.0.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = ns
        .command("keepalived")
        .args(["-n", "-l", "-D", "-P", "-R", "-f"])
        .arg(&conf)
        .arg("-p")
        .arg(dir.0.join(format!("{name}.pid")))
        .arg("-r")
        .arg(dir.0.join(format!("{name}.vrrp.pid")))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    (ChildGuard(child), log)
}

fn keepalived_or_skip(test: &str) -> bool {
    if rvs_testkit::have("keepalived") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs keepalived and CI=true: failing rather than skipping"
    );
    eprintln!("SKIPPED {test}: keepalived is not installed");
    false
}

/// Same password: rvsd (higher) preempts keepalived; then keepalived
/// restarts with another password and both sides drop each other's
/// adverts (rvsd logs the failures), so keepalived also becomes master.
#[test]
fn pass_authentication_interoperates_with_keepalived() {
    let t = "pass_authentication_interoperates_with_keepalived";
    if !root_or_skip(t) || !keepalived_or_skip(t) {
        return;
    }
    let lan = Lan::new("fa", "p", 2);
    let dir = Dir::new();
    let (k, r) = (&lan.hosts[0], &lan.hosts[1]);
    let (mut ka, klog) = start_keepalived(k, &dir, "ka", 100, "s3cret");
    assert!(
        wait_for(Duration::from_secs(10), || has_vip(k)),
        "keepalived alone never became master\n{}",
        logs(&[&klog])
    );
    let (_rvsd, rlog) = start_rvsd(r, &dir, "rvsd", 150, "s3cret");
    assert!(
        wait_for(Duration::from_secs(15), || has_vip(r) && !has_vip(k)),
        "rvsd did not preempt keepalived with the same password\n{}",
        logs(&[&klog, &rlog])
    );
    // keepalived heard rvsd's adverts and accepted their authentication.
    assert!(
        std::fs::read_to_string(&klog)
            .unwrap_or_default()
            .contains("received advert from 192.0.2.2 with higher priority 150"),
        "{}",
        logs(&[&klog])
    );

    assert!(ka.terminate(Duration::from_secs(10)));
    let (_kb, klog2) = start_keepalived(k, &dir, "kb", 100, "other");
    // keepalived drops rvsd's adverts (wrong password) and becomes master
    // too; rvsd drops keepalived's and counts them.
    assert!(
        wait_for(Duration::from_secs(15), || has_vip(k) && has_vip(r)),
        "with different passwords both should hold the VIP\n{}",
        logs(&[&klog2, &rlog])
    );
    assert!(
        wait_for(Duration::from_secs(5), || std::fs::read_to_string(&rlog)
            .is_ok_and(|s| s.contains("VRRPv2 authentication failed"))),
        "{}",
        logs(&[&rlog])
    );
    // And counted in /metrics.
    let metric = |name: &str| -> Option<u64> {
        let body = rvs_testkit::http_get_path(
            r,
            METRICS.parse().unwrap(),
            "/metrics",
            Duration::from_secs(5),
        )
        .ok()?;
        let prefix = format!("{name}{{instance=\"VI_2\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    assert!(
        wait_for(Duration::from_secs(5), || metric(
            "rvs_vrrp_auth_failures_total"
        )
        .is_some_and(|n| n >= 1)),
        "auth failures: {:?}",
        metric("rvs_vrrp_auth_failures_total")
    );
    assert!(metric("rvs_vrrp_adverts_dropped_total").is_some_and(|n| n >= 1));
    assert!(metric("rvs_vrrp_adverts_sent_total").is_some_and(|n| n >= 1));
    assert_eq!(metric("rvs_vrrp_priority"), Some(150));
}
