//! `/metrics` of a running `rvsd`: the families are there and a request
//! through the proxy moves the counters. Everything on 127.0.0.1; each
//! daemon has its own control socket and an ephemeral metrics port; the
//! child is stopped by PID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Dir, Rvsd, free_port};

const T: Duration = Duration::from_secs(10);

/// A backend that answers one line per connection with its name.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(format!("{name}\n").as_bytes());
        }
    });
    a
}

fn rvsd(dir: &Dir, config: &str, extra: &[&str]) -> Command {
    let path = dir.0.join("rvsd.toml");
    std::fs::write(&path, config).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvsd"));
    c.arg("--config")
        .arg(&path)
        .arg("--control")
        .arg(dir.0.join("rvsd.sock"))
        .args(extra);
    c
}

/// One `GET /metrics` over plain HTTP/1.0; `None` while nothing listens.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: rvsd\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("openmetrics-text"),
        "{head}"
    );
    Some(body.to_string())
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn wait_scrape(addr: SocketAddr) -> String {
    let deadline = Instant::now() + T;
    loop {
        if let Some(t) = scrape(addr) {
            return t;
        }
        assert!(Instant::now() < deadline, "no /metrics on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_follow_the_proxy() {
    let b = backend("one");
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let maddr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let dir = Dir::new();
    let config = format!(
        "[metrics]\nlisten = \"{maddr}\"\n\n[proxy]\nthreads = 1\n\n\
         [[service]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n\n\
         [[service.server]]\naddress = \"{b}\"\nweight = 3\n"
    );
    let _d = Rvsd(
        rvsd(&dir, &config, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let before = wait_scrape(maddr);
    let svc = format!("{{service=\"tcp/{vip}\"}}");
    let srv = format!("{{service=\"tcp/{vip}\",server=\"{b}\"}}");
    for family in [
        "rvs_service_connections",
        "rvs_server_connections",
        "rvs_service_in_packets",
        "rvs_server_out_packets",
        "rvs_service_in_bytes",
        "rvs_server_out_bytes",
        "rvs_service_connections_per_second",
        "rvs_server_in_bytes_per_second",
        "rvs_server_active_connections",
        "rvs_server_inactive_connections",
        "rvs_service_active_connections",
        "rvs_server_weight",
        "rvs_server_persistent_templates",
        "rvs_server_connect_failures",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "process_cpu_seconds",
    ] {
        assert!(
            before.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{before}"
        );
    }
    assert!(before.ends_with("# EOF\n"), "{before}");
    assert_eq!(
        sample(&before, &format!("rvs_server_weight{srv}")),
        Some(3.0)
    );
    assert_eq!(
        sample(&before, &format!("rvs_service_connections_total{svc}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, &format!("rvs_server_connect_failures_total{srv}")),
        Some(0.0)
    );
    assert!(sample(&before, "process_resident_memory_bytes").unwrap() > 0.0);

    // One request through the proxy: the backend's greeting comes back.
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"hello\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert_eq!(line, "one\n");
    drop(s);

    // Bounded wait until the relay has reported its reads.
    let deadline = Instant::now() + T;
    let after = loop {
        let t = wait_scrape(maddr);
        let ok = sample(&t, &format!("rvs_server_out_bytes_total{srv}")) >= Some(4.0)
            && sample(&t, &format!("rvs_service_in_bytes_total{svc}")) >= Some(6.0);
        if ok {
            break t;
        }
        assert!(Instant::now() < deadline, "counters never moved:\n{t}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        sample(&after, &format!("rvs_service_connections_total{svc}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, &format!("rvs_server_connections_total{srv}")),
        Some(1.0)
    );
    assert!(sample(&after, &format!("rvs_server_in_packets_total{srv}")) >= Some(1.0));
    assert!(sample(&after, &format!("rvs_server_out_packets_total{srv}")) >= Some(1.0));
}

#[test]
fn an_unusable_metrics_address_stops_the_start() {
    // Held for the test's length, so the daemon cannot have it.
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let maddr = taken.local_addr().unwrap();
    let dir = Dir::new();
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let config = format!("[metrics]\nlisten = \"{maddr}\"\n\n[[service]]\naddress = \"{vip}\"\n");
    let out = rvsd(&dir, &config, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("metrics address {maddr}")), "{err}");

    // Off by flag: the same file starts, and serves nothing on that port.
    let mut child = Rvsd(
        rvsd(&dir, &config, &["--no-metrics"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + T;
    while TcpStream::connect(vip).is_err() {
        assert!(Instant::now() < deadline, "rvsd --no-metrics never served");
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "rvsd --no-metrics exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(taken);
}
