//! The `rvsd` process: a config served through the proxy, SIGTERM drain,
//! and `--check`. Everything on 127.0.0.1; the child is stopped by PID.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Dir, Rvsd, free_port};

const T: Duration = Duration::from_secs(10);

/// A backend thread: greets with its name, then echoes until EOF.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let _ = s.write_all(format!("{name}\n").as_bytes());
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    a
}

fn start(config: &str) -> (Rvsd, Dir) {
    let dir = Dir::new();
    let path = dir.0.join("rvsd.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(&path)
        // Each daemon its own control socket, so tests run side by side.
        .arg("--control")
        .arg(dir.0.join("rvsd.sock"))
        // The default metrics port is one per machine; tests/metrics.rs
        // covers metrics on ports of its own.
        .arg("--no-metrics")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Rvsd(child), dir)
}

/// Connects until the daemon listens (bounded by a deadline) and reads the
/// backend's greeting.
fn connect(vip: SocketAddr) -> (String, TcpStream) {
    let deadline = Instant::now() + T;
    loop {
        if let Ok(mut s) = TcpStream::connect(vip) {
            s.set_read_timeout(Some(T)).unwrap();
            let mut name = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != b'\n' {
                name.push(b[0]);
            }
            if !name.is_empty() {
                return (String::from_utf8(name).unwrap(), s);
            }
        }
        assert!(Instant::now() < deadline, "rvsd never served {vip}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(vip: SocketAddr, servers: &[SocketAddr]) -> String {
    let mut c = format!(
        "[proxy]\nthreads = 2\ndrain_grace_s = 20\n\n[[service]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n"
    );
    for s in servers {
        c += &format!("\n[[service.server]]\naddress = \"{s}\"\nmethod = \"masq\"\n");
    }
    c
}

#[test]
fn serves_a_config_and_drains_on_sigterm() {
    let b = [backend("one"), backend("two")];
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let (mut rvsd, _dir) = start(&config(vip, &b));
    let (first, mut held) = connect(vip);
    let (second, _) = connect(vip);
    let mut names = [first.clone(), second];
    names.sort();
    assert_eq!(names, ["one", "two"]);

    let pid = rvsd.0.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    // New connections are refused once the listeners stop.
    let deadline = Instant::now() + T;
    while TcpStream::connect(vip).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The held connection still relays.
    held.write_all(b"ping\n").unwrap();
    let mut buf = [0u8; 5];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\n");
    assert!(
        rvsd.0.try_wait().unwrap().is_none(),
        "exited before draining"
    );
    drop(held);
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = rvsd.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after the drain");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn check_prints_rules_and_locates_errors() {
    let dir = Dir::new();
    let good = dir.0.join("good.toml");
    std::fs::write(
        &good,
        config(
            "127.0.0.1:80".parse().unwrap(),
            &["127.0.0.2:8080".parse().unwrap()],
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("-A -t 127.0.0.1:80 -s rr"), "{text}");
    assert!(
        text.contains("-a -t 127.0.0.1:80 -r 127.0.0.2:8080 -m"),
        "{text}"
    );

    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "[proxy]\nthreads = 2\nbogus = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml:3:1:"), "{err}");
}

#[test]
fn sighup_applies_the_difference_and_keeps_connections() {
    let b = [backend("first"), backend("added")];
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let (rvsd, dir) = start(&config(vip, &b[..1]));
    let (name, mut held) = connect(vip);
    assert_eq!(name, "first");
    let path = dir.0.join("rvsd.toml");
    let pid = rvsd.0.id().to_string();
    // An invalid file changes nothing.
    std::fs::write(&path, "[[service]]\naddress = 5\n").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(&path, config(vip, &b)).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Bounded wait until the added server is scheduled.
    let deadline = Instant::now() + T;
    while connect(vip).0 != "added" {
        assert!(Instant::now() < deadline, "reload never added the server");
        std::thread::sleep(Duration::from_millis(20));
    }
    held.write_all(b"kept\n").unwrap();
    let mut buf = [0u8; 5];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"kept\n");
}
