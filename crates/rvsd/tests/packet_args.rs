//! The packet data plane's options, checked before anything starts (no
//! root needed): bad values exit 2 with a message, and `--check` reads a
//! rules file as the chosen data plane would.

use std::process::{Command, Output};

mod common;
use common::Dir;

fn rvsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(args)
        .output()
        .unwrap()
}

fn refused(args: &[&str], needle: &str) {
    let out = rvsd(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_options_are_refused() {
    let dir = Dir::new();
    let rules = dir.file("r.rules", "-A -t 203.0.113.10:80 -s rr\n");
    let r = rules.to_str().unwrap();
    refused(&["--rules", r, "--dataplane", "xdp"], "use proxy or packet");
    refused(
        &["--rules", r, "--dataplane", "packet"],
        "needs --interface",
    );
    refused(
        &[
            "--rules",
            r,
            "--dataplane",
            "packet",
            "--interface",
            "eth0,a/b",
        ],
        "not an interface name",
    );
    refused(&["--rules", r, "--workers", "many"], "--workers");
    refused(
        &["--rules", r, "--busy-poll-us", "soon"],
        "not a number of microseconds",
    );
    refused(&["--rules", r, "--busy-poll-us", "-5"], "--busy-poll-us");
    refused(&["--rules", r, "--busy-poll-us", "10001"], "0..=10000");
    refused(&["--rules", r, "--busy-poll-us"], "needs a value");
    refused(&["--demo", "--dataplane", "packet"], "proxy data plane");
    let cfg = dir.file("c.toml", "[dataplane]\nmode = \"packet\"\n");
    refused(&["--config", cfg.to_str().unwrap()], "c.toml:2:8:");
    let cfg = dir.file(
        "b.toml",
        "[dataplane]\nmode = \"packet\"\ninterfaces = [\"eth0\"]\nbusy_poll_us = 20000\n",
    );
    refused(
        &["--config", cfg.to_str().unwrap()],
        "b.toml:4:16: busy_poll_us",
    );
    refused(
        &["--rules", r, "--backend", "xdp"],
        "use af_packet or af_xdp",
    );
}

/// Without the `xdp` feature the AF_XDP backend is refused up front, from
/// the command line and from the file, with the way to get it.
#[cfg(not(feature = "xdp"))]
#[test]
fn af_xdp_needs_the_xdp_feature() {
    let dir = Dir::new();
    let rules = dir.file("r.rules", "-A -t 203.0.113.10:80 -s rr\n");
    let r = rules.to_str().unwrap();
    let args = [
        "--check",
        "--rules",
        r,
        "--dataplane",
        "packet",
        "--interface",
        "eth0",
        "--backend",
        "af_xdp",
    ];
    refused(&args, "rebuild it with the `xdp` cargo feature");
    let cfg = dir.file(
        "c.toml",
        "[dataplane]\nmode = \"packet\"\ninterfaces = [\"eth0\"]\nbackend = \"af_xdp\"\n",
    );
    refused(
        &["--check", "--config", cfg.to_str().unwrap()],
        "af_xdp backend is not in this build",
    );
    // The default backend is fine.
    let out = rvsd(&args[..7]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn busy_polling_is_accepted_and_listed_in_help() {
    let out = rvsd(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[--busy-poll-us N]"), "{text}");
    assert!(text.contains("0..=10000; 0 = off"), "{text}");
    // In range, from the flag and from the file, --check accepts it.
    let dir = Dir::new();
    let rules = dir.file("r.rules", "-A -t 203.0.113.10:80 -s rr\n");
    let r = rules.to_str().unwrap();
    for args in [
        &["--check", "--rules", r, "--busy-poll-us", "50"][..],
        &["--check", "--rules", r, "--busy-poll-us", "0"][..],
    ] {
        let out = rvsd(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cfg = dir.file(
        "c.toml",
        "[dataplane]\nmode = \"packet\"\ninterfaces = [\"eth0\"]\nbusy_poll_us = 10000\n",
    );
    let out = rvsd(&["--check", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_reads_rules_as_the_chosen_data_plane() {
    let dir = Dir::new();
    let rules = dir.file(
        "r.rules",
        "-A -t 203.0.113.10:80 -s rr\n-a -t 203.0.113.10:80 -r 192.0.2.21:8080\n",
    );
    let r = rules.to_str().unwrap();
    // Packet data plane: no method is -g, which forces the service port.
    let out = rvsd(&["--check", "--rules", r, "--dataplane", "packet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-r 192.0.2.21:80 -g"), "{text}");
    // Proxy (default): masq with the port written.
    let out = rvsd(&["--check", "--rules", r]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-r 192.0.2.21:8080 -m"), "{text}");
    // What the proxy cannot run is refused at its line there, and taken
    // by the packet data plane.
    let tun = dir.file(
        "t.rules",
        "-A -t 203.0.113.10:80 -s rr\n-a -t 203.0.113.10:80 -r 192.0.2.21 -i\n",
    );
    let t = tun.to_str().unwrap();
    let out = rvsd(&["--check", "--rules", t]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("t.rules:2:1:"));
    let out = rvsd(&["--check", "--rules", t, "--dataplane", "packet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("-r 192.0.2.21:80 -i"));
}
