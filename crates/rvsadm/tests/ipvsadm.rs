//! `rvsadm` speaking ipvsadm to a control API served in this test process
//! (`rvs_control::serve` over a `DirectorControl` on a socket in a
//! temporary directory): output byte-exact with ipvsadm's layout
//! (ipvs-behaviour.md §2.4) and ipvsadm's exit statuses.

use std::net::IpAddr;
use std::process::{Command, Output};

use rvs_core::director::PacketInfo;
use rvs_core::model::Protocol;

mod common;
use common::Daemon;

fn fails(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A real-server line of the default format: `"  -> %-28s %-7s %-6d
/// %-10u %-10u"`, trailing spaces included.
fn dest(name: &str, fwd: &str, w: u32, active: u32, inactive: u32) -> String {
    format!("  -> {name:<28} {fwd:<7} {w:<6} {active:<10} {inactive:<10}\n")
}

const HEADER: &str = "IP Virtual Server version 1.2.1 (size=4096)\n";
const TITLES: &str = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

fn add_example(d: &Daemon) {
    for cmd in [
        "-A -t 203.0.113.10:443 -s rr -p 360 -M 255.255.255.0",
        "-a -t 203.0.113.10:443 -r 10.0.0.11:443 -g -w 1",
        "-A -t 203.0.113.10:80",
        "-a -t 203.0.113.10:80 -r 10.0.0.12:8080 -m -w 2",
        "-a -t 203.0.113.10:80 -r 10.0.0.11:8080 -m -w 1",
    ] {
        assert_eq!(d.ok(cmd), "", "{cmd}");
    }
}

#[test]
fn add_then_list_matches_ipvsadm() {
    let d = Daemon::start("list", || 0);
    add_example(&d);
    let expected = format!(
        "{HEADER}{TITLES}TCP  203.0.113.10:80 wlc\n{}{}TCP  203.0.113.10:443 rr persistent 360 mask 255.255.255.0\n{}",
        dest("10.0.0.11:8080", "Masq", 1, 0, 0),
        dest("10.0.0.12:8080", "Masq", 2, 0, 0),
        dest("10.0.0.11:443", "Route", 1, 0, 0),
    );
    assert_eq!(d.ok("-Ln"), expected);
    assert_eq!(d.ok("-L -n"), expected);
    // One service: titles, no version line.
    assert_eq!(
        d.ok("-Ln -t 203.0.113.10:443"),
        format!(
            "{TITLES}TCP  203.0.113.10:443 rr persistent 360 mask 255.255.255.0\n{}",
            dest("10.0.0.11:443", "Route", 1, 0, 0)
        )
    );
    // --stats with zero counters.
    let stats = d.ok("-Ln --stats --exact");
    assert!(stats.starts_with(&format!(
        "{HEADER}Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\nTCP  203.0.113.10:80                     0        0        0        0        0\n"
    )), "{stats}");
    // Edits and deletes.
    d.ok("-e -t 203.0.113.10:80 -r 10.0.0.12:8080 -m -w 0");
    d.ok("-d -t 203.0.113.10:80 -r 10.0.0.11:8080");
    d.ok("-D -t 203.0.113.10:443");
    assert_eq!(
        d.ok("-Ln"),
        format!(
            "{HEADER}{TITLES}TCP  203.0.113.10:80 wlc\n{}",
            dest("10.0.0.12:8080", "Masq", 0, 0, 0)
        )
    );
    d.ok("-C");
    assert_eq!(d.ok("-Ln"), format!("{HEADER}{TITLES}"));
}

#[test]
fn save_and_restore_round_trip() {
    let d = Daemon::start("save", || 0);
    add_example(&d);
    let saved = d.ok("-Sn");
    assert_eq!(
        saved,
        "-A -t 203.0.113.10:80 -s wlc\n-a -t 203.0.113.10:80 -r 10.0.0.11:8080 -m -w 1\n-a -t 203.0.113.10:80 -r 10.0.0.12:8080 -m -w 2\n-A -t 203.0.113.10:443 -s rr -p 360 -M 255.255.255.0\n-a -t 203.0.113.10:443 -r 10.0.0.11:443 -g -w 1\n"
    );
    assert_eq!(d.ok("-S"), saved);
    d.ok("-C");
    let out = d.run_with_stdin("-R", Some(&format!("# saved\n{saved}")));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(d.ok("-Sn"), saved);
}

#[test]
fn restore_errors_are_located_and_change_nothing() {
    let d = Daemon::start("restore", || 0);
    d.ok("-A -t 203.0.113.1:80 -s rr");
    let before = d.ok("-Sn");
    // A syntax error: nothing sent.
    let bad = "  -a -t 203.0.113.2:80 -r 192.0.2.1:80 -w nope";
    let out = d.run_with_stdin("-R", Some(&format!("-A -t 203.0.113.2:80\n{bad}\n")));
    let column = bad.find("nope").unwrap() + 1;
    assert_eq!(
        fails(&out, 2),
        format!("-:2:{column}: illegal weight specified\n")
    );
    // A line the director refuses: the batch is not applied.
    let out = d.run_with_stdin(
        "-R",
        Some("-A -t 203.0.113.2:80\n\n  -A -t 203.0.113.1:80\n"),
    );
    assert_eq!(fails(&out, 255), "-:3:3: Service already exists\n");
    assert_eq!(d.ok("-Sn"), before);
}

#[test]
fn errors_and_exit_codes() {
    let d = Daemon::start("errors", || 0);
    d.ok("-A -t 203.0.113.1:80 -s rr");
    assert_eq!(
        fails(&d.run("-A -t 203.0.113.1:80 -s rr"), 255),
        "Service already exists\n"
    );
    assert_eq!(
        fails(&d.run("-a -t 203.0.113.9:80 -r 192.0.2.1:80 -m"), 255),
        "Service not defined\n"
    );
    // Usage errors are ipvsadm's, with status 2.
    let err = fails(&d.run("-A -t 203.0.113.1:80 -r 192.0.2.1"), 2);
    assert!(!err.is_empty());
    assert_eq!(
        fails(&d.run("-Ln -t 203.0.113.9:80"), 1),
        "No such service\n"
    );
    // No daemon: the socket is named, status 2.
    let absent = format!("{}.absent", d.sock);
    let out = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(["--control", &absent, "-Ln"])
        .output()
        .unwrap();
    let err = fails(&out, 2);
    assert!(err.contains(&absent), "{err}");
    assert!(err.contains("rvsd"), "{err}");
}

#[test]
fn timeouts() {
    let d = Daemon::start("timeouts", || 0);
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    d.ok("--set 600 0 30");
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 600 120 30\n"
    );
}

#[test]
fn connections() {
    let d = Daemon::start("conns", || 0);
    d.ok("-A -u 203.0.113.53:53 -s rr");
    d.ok("-a -u 203.0.113.53:53 -r 10.0.1.1:53 -m");
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    d.ctl.with(|dir| {
        dir.inbound(
            &PacketInfo {
                proto: Protocol::Udp,
                src: ip("198.51.100.9"),
                sport: 40123,
                dst: ip("203.0.113.53"),
                dport: 53,
                fwmark: 0,
                tcp: Default::default(),
                sctp: rvs_core::sctp::SctpEvent::Data,
                len: 128,
            },
            0,
        )
    });
    assert_eq!(
        d.ok("-Lnc"),
        "IPVS connection entries\npro expire state       source             virtual            destination\nUDP 05:00  UDP         198.51.100.9:40123 203.0.113.53:53    10.0.1.1:53\n"
    );
    assert_eq!(
        d.ok("-Ln"),
        format!(
            "{HEADER}{TITLES}UDP  203.0.113.53:53 rr\n{}",
            dest("10.0.1.1:53", "Masq", 1, 0, 1)
        )
    );
}

#[test]
fn version_and_help() {
    let d = Daemon::start("version", || 0);
    let v = d.ok("-v");
    assert!(
        v.starts_with("ipvsadm v1.31 2019/12/24 (compiled with rvs "),
        "{v}"
    );
    assert!(v.ends_with(" and IPVS v1.2.1)\n"), "{v}");
    let h = d.ok("-h");
    assert!(h.contains("-L|l [virtual-service]"), "{h}");
}

#[test]
fn a_server_without_a_method_is_sent_as_masq_with_its_port() {
    let d = Daemon::start("nomethod", || 0);
    d.ok("-A -t 203.0.113.10:80 -s rr");
    // ipvsadm would send -g with the port forced to 80; rvsd's data plane
    // is the proxy, so rvsadm sends masq with the port written.
    d.ok("-a -t 203.0.113.10:80 -r 10.0.0.11:8080 -w 2");
    d.ok("-a -t 203.0.113.10:80 -r 10.0.0.12");
    assert_eq!(
        d.ok("-Ln"),
        format!(
            "{HEADER}{TITLES}TCP  203.0.113.10:80 rr\n{}{}",
            dest("10.0.0.11:8080", "Masq", 2, 0, 0),
            dest("10.0.0.12:80", "Masq", 1, 0, 0),
        )
    );
    // A named method is sent as named.
    d.ok("-e -t 203.0.113.10:80 -r 10.0.0.12:9999 -g");
    assert!(d.ok("-Sn").contains("-r 10.0.0.12:80 -g -w 1\n"));
}

#[test]
fn health_needs_a_plane_that_runs_checks() {
    let d = Daemon::start("health", || 0);
    let out = d.run("health");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no health checks"), "{err}");
    let out = d.run("health --bogus");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("usage: rvsadm [--control PATH] health [--json]")
    );
}
