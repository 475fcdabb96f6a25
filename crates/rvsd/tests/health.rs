//! Health checking in the running daemon, against loopback listeners the
//! tests start and stop: a failed server leaves the table and comes back
//! after `rise` passes, `inhibit_on_failure` keeps it at weight 0, passive
//! detection removes a server that refuses connections without any check,
//! a reload keeps health state and refuses a bad check, and the state is
//! visible through `GET /v1/health` and `/metrics`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{Dir, Rvsd, free_port};

const T: Duration = Duration::from_secs(15);

/// A loopback backend that answers `ok\n` to each connection until it is
/// stopped; stopping closes its listening socket (connects are refused).
struct Backend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start(addr: SocketAddr) -> Backend {
        let l = TcpListener::bind(addr).unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"ok\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Backend {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn any() -> Backend {
        Backend::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Daemon {
    _child: Rvsd,
    dir: Dir,
    pid: u32,
}

impl Daemon {
    fn start(config: &str, extra: &[&str]) -> Daemon {
        let dir = Dir::new();
        let path = dir.file("rvsd.toml", config);
        let log = std::fs::File::create(dir.0.join("rvsd.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--config")
            .arg(&path)
            .arg("--control")
            .arg(dir.0.join("rvsd.sock"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        let d = Daemon {
            _child: Rvsd(child),
            dir,
            pid,
        };
        d.wait_for("control socket", || {
            d.get("/v1/health").map(|(s, _)| s == 200).unwrap_or(false)
        });
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.0.join("rvsd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("rvsd.log")).unwrap_or_default()
    }

    /// A GET on the control socket: status and body.
    fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        http_get(&self.socket(), path)
    }

    fn health(&self) -> serde_json::Value {
        self.get("/v1/health").expect("GET /v1/health").1
    }

    /// The servers of the one service the engine runs: (address, weight).
    fn table(&self) -> Vec<(String, u64)> {
        let (_, v) = self.get("/v1/services").expect("GET /v1/services");
        v["services"][0]["servers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        (
                            s["server"]["address"].as_str().unwrap().to_string(),
                            s["server"]["weight"].as_u64().unwrap_or(1),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + T;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn reload(&self, config: &str) {
        self.dir.file("rvsd.toml", config);
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(self.pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP failed");
    }
}

fn http_get(socket: &Path, path: &str) -> Option<(u16, serde_json::Value)> {
    http(socket, "GET", path, "")
}

fn http(socket: &Path, method: &str, path: &str, body: &str) -> Option<(u16, serde_json::Value)> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(T)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: rvsd\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    ))
}

fn server_health<'a>(h: &'a serde_json::Value, server: &str) -> &'a serde_json::Value {
    h["services"][0]["servers"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["server"] == server))
        .unwrap_or(&serde_json::Value::Null)
}

fn config(vip: SocketAddr, health: &str, servers: &[(SocketAddr, &str)]) -> String {
    let mut c = format!(
        "[proxy]\nthreads = 1\nconnect_timeout_ms = 500\n\n[[service]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n\n[service.health]\n{health}\n"
    );
    for (s, checks) in servers {
        c.push_str(&format!(
            "\n[[service.server]]\naddress = \"{s}\"\n{checks}\n"
        ));
    }
    c
}

const FAST: &str = "delay_loop = 0.1\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0";
const TCP: &str = "[[service.server.check]]\ntype = \"tcp\"";

#[test]
fn a_stopped_server_leaves_and_returns_after_rise() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    let mut b = Backend::any();
    let b_addr = b.addr;
    let cfg = config(
        vip,
        &format!("{FAST}\nrise = 2"),
        &[(a.addr, TCP), (b.addr, TCP)],
    );
    let d = Daemon::start(&cfg, &["--no-metrics"]);
    d.wait_for("both servers listed", || d.table().len() == 2);

    b.stop();
    let b_name = b_addr.to_string();
    d.wait_for("the stopped server to leave the table", || {
        d.table().iter().all(|(s, _)| *s != b_name)
    });
    let h = d.health();
    let bh = server_health(&h, &b_name);
    assert_eq!(bh["up"], false, "{h}");
    assert_eq!(bh["last_reason"], "check failed: refused", "{h}");
    assert!(bh["failures"]["refused"].as_u64().unwrap() >= 1, "{h}");
    assert!(bh.get("effective_weight").is_none(), "{h}");
    // Exactly one log line for the transition, with its reason and check.
    let down = format!("server {b_name} of tcp {vip} down: check failed: refused (tcp check,");
    d.wait_for("the transition's log line", || d.log().contains(&down));
    assert_eq!(d.log().matches(&down).count(), 1, "{}", d.log());

    // The same configuration reloaded: the failed server stays out.
    d.reload(&cfg);
    d.wait_for("the reload", || d.log().contains("reloaded"));
    assert!(d.table().iter().all(|(s, _)| *s != b_name));

    let _b = Backend::start(b_addr);
    d.wait_for("the server to come back after rise", || {
        d.table().iter().any(|(s, _)| *s == b_name)
    });
    assert_eq!(server_health(&d.health(), &b_name)["up"], true);
    assert!(
        d.log()
            .contains(&format!("server {b_name} of tcp {vip} up: check passed"))
    );
}

#[test]
fn inhibit_on_failure_keeps_a_failed_server_at_weight_zero() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    let mut b = Backend::any();
    let cfg = config(
        vip,
        &format!("{FAST}\ninhibit_on_failure = true"),
        &[(a.addr, TCP), (b.addr, &format!("weight = 3\n{TCP}"))],
    );
    let d = Daemon::start(&cfg, &["--no-metrics"]);
    let b_name = b.addr.to_string();
    d.wait_for("weight 3", || d.table().contains(&(b_name.clone(), 3)));
    b.stop();
    d.wait_for("weight 0", || d.table().contains(&(b_name.clone(), 0)));
    let h = d.health();
    assert_eq!(server_health(&h, &b_name)["effective_weight"], 0, "{h}");
    assert_eq!(server_health(&h, &b_name)["weight"], 3, "{h}");
}

#[test]
fn passive_detection_removes_a_refusing_server_without_checks() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    // Nothing listens here.
    let dead = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let cfg = config(
        vip,
        "passive_fall = 2\npassive_retry = 60",
        &[(a.addr, ""), (dead, "")],
    );
    let d = Daemon::start(&cfg, &["--no-metrics"]);
    let dead_name = dead.to_string();
    d.wait_for("both listed", || d.table().len() == 2);
    // Every client is served: the proxy retries on the other server.
    for _ in 0..6 {
        let mut s = TcpStream::connect(vip).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        assert_eq!(got, "ok\n");
        if d.table().len() == 1 {
            break;
        }
    }
    d.wait_for("the refusing server to leave", || {
        d.table().iter().all(|(s, _)| *s != dead_name)
    });
    let h = d.health();
    assert_eq!(
        server_health(&h, &dead_name)["last_reason"],
        "connect failures seen by the data plane",
        "{h}"
    );
}

#[test]
fn a_reload_with_a_bad_check_changes_nothing() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    let cfg = config(vip, FAST, &[(a.addr, TCP)]);
    let d = Daemon::start(&cfg, &["--no-metrics"]);
    d.wait_for("the server listed", || d.table().len() == 1);
    let before = d.health();
    let bad = config(
        vip,
        FAST,
        &[(
            a.addr,
            "[[service.server.check]]\ntype = \"http\"\nregex = \"(unclosed\"",
        )],
    );
    d.reload(&bad);
    d.wait_for("the refusal", || d.log().contains("reload refused"));
    let log = d.log();
    assert!(log.contains("rvsd.toml:"), "{log}");
    assert!(log.contains("invalid regex"), "{log}");
    let after = d.health();
    let checkers = |h: &serde_json::Value| {
        h["services"][0]["servers"][0]["checkers"]
            .as_array()
            .map(|a| a.iter().map(|c| c["kind"].clone()).collect::<Vec<_>>())
    };
    assert_eq!(checkers(&after), checkers(&before));
    assert_eq!(after["services"][0]["servers"][0]["up"], true);
    assert_eq!(
        after["services"][0]["servers"][0]["checkers"][0]["kind"],
        "tcp"
    );
    assert_eq!(d.table().len(), 1);
}

#[test]
fn health_is_visible_in_the_api_and_the_metrics() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let cfg = config(vip, FAST, &[(a.addr, TCP)]);
    let d = Daemon::start(&cfg, &["--metrics", &metrics.to_string()]);
    d.wait_for("a probe latency", || {
        !d.health()["services"][0]["servers"][0]["checkers"][0]["last_latency_ms"].is_null()
    });
    // `/health` is the same as `/v1/health`.
    let (status, h) = d.get("/health").unwrap();
    assert_eq!(status, 200);
    let s = &h["services"][0];
    assert_eq!(s["id"], format!("tcp-127.0.0.1-{}", vip.port()));
    assert_eq!(s["quorum_up"], true);
    assert_eq!(s["sorry_in_use"], false);
    assert_eq!(s["servers"][0]["checkers"][0]["kind"], "tcp");
    assert_eq!(s["servers"][0]["checkers"][0]["target"], a.addr.to_string());

    let mut text = String::new();
    d.wait_for("a scrape", || {
        let Ok(mut c) = TcpStream::connect(metrics) else {
            return false;
        };
        let _ = write!(
            c,
            "GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n"
        );
        text.clear();
        c.read_to_string(&mut text).is_ok() && text.contains("rvs_health_up")
    });
    let server = format!("service=\"tcp/{vip}\",server=\"{}\"", a.addr);
    for needle in [
        format!("rvs_health_up{{{server}}} 1"),
        format!("rvs_health_quorum_up{{service=\"tcp/{vip}\"}} 1"),
        format!("rvs_health_sorry_in_use{{service=\"tcp/{vip}\"}} 0"),
        format!("rvs_health_check_latency_seconds{{{server},checker=\"0-tcp\"}}"),
        "rvs_health_probes_in_flight ".to_string(),
        "# TYPE rvs_health_last_transition_timestamp_seconds gauge".to_string(),
        "# TYPE rvs_health_check_failures counter".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn checks_come_and_go_with_servers_of_the_api() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    let b = Backend::any();
    let cfg = config(vip, FAST, &[(a.addr, TCP)]);
    let d = Daemon::start(&cfg, &["--no-metrics"]);
    let id = format!("tcp-127.0.0.1-{}", vip.port());
    let sock = d.socket();
    // A bad check is refused with the key at fault, and changes nothing.
    let (status, e) = http(
        &sock,
        "POST",
        &format!("/v1/services/{id}/servers"),
        &format!(
            r#"{{"address":"{}","check":[{{"type":"http","regex":"("}}]}}"#,
            b.addr
        ),
    )
    .unwrap();
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("check[0].regex: invalid regex"),
        "{e}"
    );
    assert_eq!(d.table().len(), 1);
    let (status, e) = http(
        &sock,
        "POST",
        &format!("/v1/services/{id}/servers"),
        &format!(
            r#"{{"address":"{}","weight":2,"check":[{{"type":"tcp","delay_loop":0.1}}]}}"#,
            b.addr
        ),
    )
    .unwrap();
    assert_eq!(status, 201, "{e}");
    let b_name = b.addr.to_string();
    d.wait_for("the new server's check to run", || {
        !server_health(&d.health(), &b_name)["checkers"][0]["last_latency_ms"].is_null()
    });
    assert!(d.table().contains(&(b_name.clone(), 2)));
    let (status, _) = http(
        &sock,
        "DELETE",
        &format!(
            "/v1/services/{id}/servers/{}-{}",
            b.addr.ip(),
            b.addr.port()
        ),
        "",
    )
    .unwrap();
    assert_eq!(status, 204);
    assert!(server_health(&d.health(), &b_name).is_null());
    assert_eq!(d.table().len(), 1);
}

#[test]
fn a_reload_reconfigures_checks_in_place() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    // Nothing listens here: its check fails from the start.
    let dead = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let servers = [(a.addr, TCP), (dead, TCP)];
    let d = Daemon::start(&config(vip, FAST, &servers), &["--no-metrics"]);
    let dead_name = dead.to_string();
    d.wait_for("the dead server to leave", || {
        d.table().len() == 1 && server_health(&d.health(), &dead_name)["up"] == false
    });
    let since = server_health(&d.health(), &dead_name)["last_transition_unix"]
        .as_f64()
        .unwrap();
    // Same servers, now with inhibit_on_failure and a slower check.
    d.reload(&config(
        vip,
        "delay_loop = 0.3\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0\ninhibit_on_failure = true",
        &servers,
    ));
    d.wait_for("the failed server at weight 0", || {
        d.table().contains(&(dead_name.clone(), 0))
    });
    let h = d.health();
    let dh = server_health(&h, &dead_name);
    // Still down, since the same transition: the state was carried over.
    assert_eq!(dh["up"], false, "{h}");
    let now_since = dh["last_transition_unix"].as_f64().unwrap();
    assert!((now_since - since).abs() < 0.05, "{since} vs {h}");
    assert_eq!(h["services"][0]["inhibit_on_failure"], true, "{h}");
    assert_eq!(
        d.log()
            .matches(&format!("server {dead_name} of tcp {vip} down"))
            .count(),
        1
    );
}

#[test]
fn notify_commands_get_the_event_service_server_and_reason() {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let a = Backend::any();
    let dead = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let dir = Dir::new();
    let out = dir.0.join("notified");
    let script = dir.file(
        "notify.sh",
        // One write per notification: two commands can run at once, and a
        // line written in two pieces could interleave with the other's.
        "#!/bin/sh\nline=$(printf '%s|' \"$@\" \"$RVS_EVENT\" \"$RVS_SERVER\")\nprintf '%s\\n' \"$line\" >> \"$1\"\n",
    );
    let sh = |extra: &str| {
        format!(
            "[\"/bin/sh\", \"{}\", \"{}\"{extra}]",
            script.display(),
            out.display()
        )
    };
    let dead_checks = format!("notify_down = {}\n{TCP}", sh(""));
    let cfg = config(
        vip,
        &format!("{FAST}\nquorum = 2\nquorum_down = {}", sh(", \"web\"")),
        &[(a.addr, TCP), (dead, &dead_checks)],
    );
    let d = Daemon::start(&cfg, &["--no-metrics"]);
    let id = format!("tcp-127.0.0.1-{}", vip.port());
    let want_down = format!(
        "{}|down|{id}|{dead}|check failed: refused|down|{dead}|",
        out.display()
    );
    let want_quorum = format!("{}|web|quorum_down|{id}|quorum_down||", out.display());
    d.wait_for("both notifications", || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        text.lines().any(|l| l == want_down) && text.lines().any(|l| l == want_quorum)
    });
}

#[test]
fn check_and_start_refuse_an_unreadable_ca_file() {
    let dir = Dir::new();
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let cfg = config(
        vip,
        "",
        &[(
            server,
            "[[service.server.check]]\ntype = \"https\"\nverify = true\nca_file = \"/nonexistent/ca.pem\"",
        )],
    );
    let path = dir.file("rvsd.toml", &cfg);
    for extra in [&["--check"][..], &["--no-metrics", "--control"][..]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvsd"));
        cmd.arg("--config").arg(&path).args(extra);
        if extra.len() > 1 {
            cmd.arg(dir.0.join("rvsd.sock"));
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("/nonexistent/ca.pem"), "{extra:?}: {err}");
        assert!(
            err.contains(&format!("server {server}")),
            "{extra:?}: {err}"
        );
    }
}
