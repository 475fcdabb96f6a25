//! `rvsd --rules`: ipvsadm rule lines loaded into the proxy data plane,
//! where a server whose line names no method is masq with the port
//! written, and `-g`/`-i` are refused at their line.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Dir, Rvsd, free_port};

const T: Duration = Duration::from_secs(10);

/// A backend thread that greets with its name and closes.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(format!("{name}\n").as_bytes());
        }
    });
    a
}

fn check(rules: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--check")
        .arg("--rules")
        .arg(rules)
        .output()
        .unwrap()
}

/// Reads the greeting through the director, retrying until it listens.
fn greeting(vip: SocketAddr) -> String {
    let deadline = Instant::now() + T;
    loop {
        if let Ok(mut s) = TcpStream::connect(vip) {
            s.set_read_timeout(Some(T)).unwrap();
            let mut text = String::new();
            if s.read_to_string(&mut text).is_ok() && !text.is_empty() {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "rvsd never served {vip}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_server_without_a_method_is_masq_with_its_port() {
    let b = backend("masq-by-default");
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    assert_ne!(vip.port(), b.port());
    let dir = Dir::new();
    // No -m: ipvsadm would make this -g and force the port to the VIP's.
    let rules = dir.file(
        "web.rules",
        &format!("-A -t {vip} -s rr\n-a -t {vip} -r {b} -w 3\n"),
    );
    let out = check(&rules);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("-A -t {vip} -s rr\n-a -t {vip} -r {b} -m -w 3\n")
    );

    let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--rules")
        .arg(&rules)
        .arg("--control")
        .arg(dir.0.join("rvsd.sock"))
        // The default metrics port may be taken on a shared machine.
        .arg("--no-metrics")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _rvsd = Rvsd(child);
    assert_eq!(greeting(vip), "masq-by-default\n");
}

#[test]
fn named_packet_plane_methods_are_refused_at_their_line() {
    let dir = Dir::new();
    for (flag, name) in [("-g", "Route"), ("-i", "Tunnel")] {
        let rules = dir.file(
            "dr.rules",
            &format!(
                "# direct routing needs the packet plane\n-A -t 127.0.0.1:80\n  -a -t 127.0.0.1:80 -r 127.0.0.2:80 {flag}\n"
            ),
        );
        let out = check(&rules);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with(&format!("{}:3:3: ", rules.display())),
            "{err}"
        );
        assert!(err.contains(name), "{err}");
        assert!(err.contains("packet data plane"), "{err}");
    }
}
