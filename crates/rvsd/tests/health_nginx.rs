//! Health checking end to end: `rvsd` checks real servers (nginx, a small
//! python3 UDP/DNS responder, shell scripts) and changes its proxy table;
//! the effect is seen both in the listing (`rvsadm -Ln [--stats]`, read
//! through the control API) and in traffic through the virtual service.
//!
//! Everything runs on 127.0.0.1 with ports and directories of each test's
//! own; every process the tests start is stopped by its PID. nginx, openssl
//! and python3 must be installed (`.ci/run` installs them): a missing one
//! fails the test with what to install.
//!
//! Times are small (`delay_loop` 0.2-0.5 s, `connect_timeout` 0.5 s,
//! `retry` 0, `warmup` 0) and every wait is a poll with a deadline derived
//! from the documented detection bound
//! (`rvs_core::health::CheckerConfig::detection_bound_ms`) plus [`SLACK`]
//! for a loaded machine (process start, table update, polling).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_core::health::CheckerConfig;

mod common;
use common::real::{
    Daemon, Nginx, Proc, Script, accepts, listed_weight, named_server, require, server, servers,
    wait_for, who,
};
use common::{Dir, free_port};

/// Room above a detection bound for a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

/// A loopback address on a port of its own.
fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The detection bound of the timing these tests use (`warmup` 0).
fn bound(interval_ms: u64, connect_timeout_ms: u64, fall: u32) -> Duration {
    Duration::from_millis(
        CheckerConfig {
            interval_ms,
            connect_timeout_ms,
            retry: 0,
            delay_before_retry_ms: 0,
            rise: 1,
            fall,
            alpha: false,
            warmup_ms: 0,
        }
        .detection_bound_ms(),
    )
}

/// The start of a config with one service on `vip`.
fn service(vip: SocketAddr, health: &str) -> String {
    format!(
        "[proxy]\nthreads = 2\n\n[[service]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n\n\
         [service.health]\n{health}\n"
    )
}

/// The server addresses in the table, sorted.
fn table(d: &Daemon) -> Vec<SocketAddr> {
    let mut v: Vec<_> = servers(&d.service()).into_iter().map(|s| s.0).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<SocketAddr>) -> Vec<SocketAddr> {
    v.sort();
    v
}

/// One request of the client loop: when it started and who answered.
type Sample = (Instant, Result<String, String>);

/// A bounded client loop of HTTP requests through a virtual service.
struct Traffic {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    /// At most 20 000 requests and 60 s, one every 5 ms.
    fn start(vip: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            for _ in 0..20_000 {
                if s.load(Ordering::Relaxed) || Instant::now() > end {
                    break;
                }
                let t = Instant::now();
                let r = who(vip);
                out.lock().unwrap().push((t, r));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Traffic {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// The requests started at or after `t`.
    fn since(&self, t: Instant) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= t)
            .cloned()
            .collect()
    }

    /// Waits until `n` requests started at or after `t` have ended.
    fn wait_since(&self, t: Instant, n: usize) -> Vec<Sample> {
        wait_for(Duration::from_secs(20), "client loop progresses", || {
            let v = self.since(t);
            (v.len() >= n).then_some(v)
        })
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A tool these tests need but cannot find fails the test with what to
/// install; it never lets it pass.
#[test]
#[should_panic(expected = "is not installed")]
fn a_missing_tool_fails_loudly() {
    require("rvs-no-such-program", "rvs-no-such-package");
}

/// The ground the health tests stand on: without any health section, two
/// nginx servers behind the proxy both answer, and the listing counts every
/// connection to the server that took it.
#[test]
fn nginx_servers_through_the_proxy() {
    let dir = Dir::new();
    let (pa, pb) = (free_port(), free_port());
    let a = Nginx::start(&dir, "a", &[pa], &named_server(pa, "a"));
    let b = Nginx::start(&dir, "b", &[pb], &named_server(pb, "b"));
    let vip = local();
    let mut config =
        format!("[proxy]\nthreads = 2\n\n[[service]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n");
    for s in [a.addr(), b.addr()] {
        config += &format!("\n[[service.server]]\naddress = \"{s}\"\n");
    }
    let d = Daemon::start(&dir, &config);
    let answers: Vec<_> = (0..20).map(|_| who(vip).unwrap()).collect();
    assert_eq!(
        answers.iter().filter(|n| *n == "a").count(),
        10,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|n| *n == "b").count(),
        10,
        "{answers:?}"
    );
    let s = d.service();
    for n in [&a, &b] {
        assert_eq!(
            server(&s, n.addr()).unwrap().stats.conns,
            10,
            "{}",
            d.listing()
        );
    }
    assert_eq!(s.stats.conns, 20, "{}", d.listing());
    assert_eq!(listed_weight(&d.listing_plain(), a.addr()), Some(1));
}

/// Acceptance 1: a killed nginx leaves the table within the detection
/// bound; afterwards no request fails and no connection is scheduled to it;
/// started again it comes back after `rise` successes.
#[test]
fn killed_server_leaves_within_the_bound_and_returns_after_rise() {
    let dir = Dir::new();
    let (pa, pb) = (free_port(), free_port());
    let a = Nginx::start(&dir, "a", &[pa], &named_server(pa, "a"));
    let mut b = Nginx::start(&dir, "b", &[pb], &named_server(pb, "b"));
    let vip = local();
    let (interval, timeout, rise) = (500, 500, 2u32);
    let mut config = service(
        vip,
        // Passive detection off: the bound measured is the active checker's.
        &format!(
            "passive_fall = 0\n\
             delay_loop = 0.5\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0\nrise = {rise}\nfall = 1\n"
        ),
    );
    for s in [a.addr(), b.addr()] {
        config += &format!(
            "\n[[service.server]]\naddress = \"{s}\"\n\n\
             [[service.server.check]]\ntype = \"http\"\npath = \"/\"\n"
        );
    }
    let d = Daemon::start(&dir, &config);
    let limit = bound(interval, timeout, 1);

    let traffic = Traffic::start(vip);
    let t_start = Instant::now();
    wait_for(Duration::from_secs(10), "both servers answer", || {
        let v = traffic.since(t_start);
        let seen = |n: &str| v.iter().any(|(_, r)| r.as_deref() == Ok(n));
        (seen("a") && seen("b")).then_some(())
    });

    let t0 = Instant::now();
    b.stop();
    let gone = wait_for(limit + SLACK, "the killed server leaves the table", || {
        let s = d.service();
        server(&s, b.addr()).is_none().then_some(s)
    });
    let t_detect = Instant::now();
    let detected_in = t_detect - t0;
    assert!(detected_in <= limit + SLACK, "{detected_in:?}");
    eprintln!("killed server out after {detected_in:?} (bound {limit:?})");
    assert!(!d.server_up(b.addr()), "GET /v1/health still has b up");
    let a_conns = server(&gone, a.addr()).expect("a stays").stats.conns;
    let svc_conns = gone.stats.conns;

    // After detection: no failed request, every one answered by a, and the
    // counters show every new connection scheduled to a.
    let after = traffic.wait_since(t_detect, 40);
    let failed: Vec<_> = after.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(failed.is_empty(), "failed after detection: {failed:?}");
    assert!(
        after.iter().all(|(_, r)| r.as_deref() == Ok("a")),
        "{after:?}"
    );
    let s = d.service();
    assert!(server(&s, b.addr()).is_none(), "{}", d.listing());
    let a_new = server(&s, a.addr()).unwrap().stats.conns - a_conns;
    let svc_new = s.stats.conns - svc_conns;
    assert!(a_new >= 40, "{}", d.listing());
    assert_eq!(
        svc_new,
        a_new,
        "a connection went elsewhere:\n{}",
        d.listing()
    );

    // Started again: back after `rise` successes, which are at least one
    // delay_loop apart, and within rise rounds of delay_loop + timeout.
    let t_restart = Instant::now();
    b.restart();
    let back_within = Duration::from_millis(u64::from(rise) * (interval + timeout)) + SLACK;
    wait_for(back_within, "the restarted server comes back", || {
        server(&d.service(), b.addr()).map(|_| ())
    });
    let back_in = t_restart.elapsed();
    eprintln!("restarted server back after {back_in:?} (rise {rise})");
    let earliest = Duration::from_millis(u64::from(rise - 1) * interval);
    assert!(
        back_in >= earliest,
        "back after {back_in:?}, before {rise} successes could have been seen"
    );
    assert!(d.server_up(b.addr()), "GET /v1/health has b down");
    let t_back = Instant::now();
    wait_for(Duration::from_secs(10), "traffic reaches b again", || {
        traffic
            .since(t_back)
            .iter()
            .any(|(_, r)| r.as_deref() == Ok("b"))
            .then_some(())
    });
    let after = traffic.since(t_back);
    assert!(after.iter().all(|(_, r)| r.is_ok()), "{after:?}");
    drop(traffic);
    drop(a);
}

/// A MISC check that fails every other run: the state file's presence says
/// how the last run ended; every run appends a line to `STATE.runs`.
const ALTERNATE: &str = "#!/bin/sh\n\
echo run >> \"$1.runs\"\n\
if [ -e \"$1\" ]; then rm -f \"$1\"; exit 1; fi\n\
: > \"$1\"\n\
exit 0\n";

fn runs(state: &std::path::Path) -> usize {
    std::fs::read_to_string(state.with_extension("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Acceptance 2: with rise 2 / fall 2 a server whose check fails every
/// other time stays in the table; the same check with rise 1 / fall 1 (a
/// second server, as a control) does flap.
#[test]
fn alternating_check_does_not_flap_with_rise_and_fall() {
    let dir = Dir::new();
    let script = dir.file("alternate.sh", ALTERNATE);
    let stable_state = dir.0.join("stable");
    let flappy_state = dir.0.join("flappy");
    let (stable, flappy) = (local(), local());
    let vip = local();
    let mut config = service(
        vip,
        "delay_loop = 0.2\nconnect_timeout = 2\nretry = 0\nwarmup = 0\n",
    );
    for (addr, state, rf) in [(stable, &stable_state, 2), (flappy, &flappy_state, 1)] {
        config += &format!(
            "\n[[service.server]]\naddress = \"{addr}\"\nrise = {rf}\nfall = {rf}\n\n\
             [[service.server.check]]\ntype = \"misc\"\n\
             misc_path = [\"/bin/sh\", \"{}\", \"{}\"]\n",
            script.display(),
            state.display()
        );
    }
    let d = Daemon::start(&dir, &config);

    let (mut flappy_out, mut flappy_back) = (false, false);
    wait_for(
        Duration::from_secs(20),
        "12 runs of the stable server's check and a flap of the control",
        || {
            let t = table(&d);
            assert!(
                t.contains(&stable),
                "the server with rise/fall 2 left the table after {} runs:\n{}",
                runs(&stable_state),
                d.listing()
            );
            if !t.contains(&flappy) {
                flappy_out = true;
            } else if flappy_out {
                flappy_back = true;
            }
            (runs(&stable_state) >= 12 && flappy_back).then_some(())
        },
    );
    assert!(runs(&flappy_state) >= 2);
}

/// Acceptance 3: quorum lost puts the sorry server in (and the real
/// servers out); quorum back takes it out again.
#[test]
fn quorum_lost_brings_the_sorry_server_and_back_removes_it() {
    let dir = Dir::new();
    let (pa, pb, ps) = (free_port(), free_port(), free_port());
    let a = Nginx::start(&dir, "a", &[pa], &named_server(pa, "a"));
    let b = Nginx::start(&dir, "b", &[pb], &named_server(pb, "b"));
    let sorry = Nginx::start(&dir, "sorry", &[ps], &named_server(ps, "sorry"));
    for n in [&a, &b] {
        std::fs::write(n.www("health"), "ok\n").unwrap();
    }
    let vip = local();
    let mut config = service(
        vip,
        &format!(
            "quorum = 2\nsorry_server = \"{}\"\n\
             delay_loop = 0.5\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0\n",
            sorry.addr()
        ),
    );
    for s in [a.addr(), b.addr()] {
        config += &format!(
            "\n[[service.server]]\naddress = \"{s}\"\nweight = 1\n\n\
             [[service.server.check]]\ntype = \"http\"\npath = \"/health\"\n"
        );
    }
    let d = Daemon::start(&dir, &config);
    let limit = bound(500, 500, 1) + SLACK;
    let real = sorted(vec![a.addr(), b.addr()]);
    assert_eq!(table(&d), real, "{}", d.listing());

    std::fs::remove_file(a.www("health")).unwrap();
    wait_for(limit, "quorum lost: only the sorry server", || {
        (table(&d) == [sorry.addr()]).then_some(())
    });
    for _ in 0..10 {
        assert_eq!(who(vip).as_deref(), Ok("sorry"));
    }
    let h = d.health();
    assert!(
        !h.services[0].quorum_up && h.services[0].sorry_in_use,
        "{h:?}"
    );

    std::fs::write(a.www("health"), "ok\n").unwrap();
    wait_for(limit, "quorum back: the real servers only", || {
        (table(&d) == real).then_some(())
    });
    let h = d.health();
    assert!(
        h.services[0].quorum_up && !h.services[0].sorry_in_use,
        "{h:?}"
    );
    let answers: Vec<_> = (0..10).map(|_| who(vip).unwrap()).collect();
    assert!(!answers.iter().any(|n| n == "sorry"), "{answers:?}");
    assert!(answers.iter().any(|n| n == "a"), "{answers:?}");
    assert!(answers.iter().any(|n| n == "b"), "{answers:?}");
}

/// Acceptance 4: a MISC check with `misc_dynamic` sets the weight from its
/// exit status (2..255: weight status - 2; 1: down).
#[test]
fn misc_dynamic_sets_the_weight() {
    let dir = Dir::new();
    let code = dir.file("code", "12\n");
    let srv = local();
    let vip = local();
    let config = service(
        vip,
        "delay_loop = 0.2\nconnect_timeout = 2\nretry = 0\nwarmup = 0\n",
    ) + &format!(
        "\n[[service.server]]\naddress = \"{srv}\"\nweight = 1\n\n\
         [[service.server.check]]\ntype = \"misc\"\nmisc_dynamic = true\n\
         misc_path = [\"/bin/sh\", \"-c\", \"exit $(cat {})\"]\n",
        code.display()
    );
    let d = Daemon::start(&dir, &config);
    let within = Duration::from_secs(5);
    for (status, weight) in [
        (12, Some(10)),
        (5, Some(3)),
        (2, Some(0)),
        (1, None),
        (9, Some(7)),
    ] {
        std::fs::write(&code, format!("{status}\n")).unwrap();
        wait_for(
            within,
            &format!("exit {status} shows weight {weight:?} in rvsadm -Ln"),
            || (listed_weight(&d.listing_plain(), srv) == weight).then_some(()),
        );
    }
}

/// Acceptance 5: an HTTPS check with `sni_name` passes against an nginx
/// whose answer depends on the SNI; the same check without SNI fails.
#[test]
fn https_check_sends_sni() {
    let dir = Dir::new();
    let openssl = require("openssl", "openssl");
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let out = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=www.example.test"])
        .args(["-addext", "subjectAltName=DNS:www.example.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (p1, p2) = (free_port(), free_port());
    let tls = format!(
        "ssl_certificate {};\n    ssl_certificate_key {};",
        cert.display(),
        key.display()
    );
    // Requests are routed by the Host header, which both checks send as
    // www.example.test; only the SNI differs, and the named server answers
    // 200 only when the SNI named it. The default server rejects all.
    let body = format!(
        "  server {{\n    listen 127.0.0.1:{p1} ssl default_server;\n    \
         listen 127.0.0.1:{p2} ssl default_server;\n    {tls}\n    \
         return 421 \"default server\\n\";\n  }}\n  \
         server {{\n    listen 127.0.0.1:{p1} ssl;\n    listen 127.0.0.1:{p2} ssl;\n    \
         server_name www.example.test;\n    {tls}\n    \
         location / {{\n      if ($ssl_server_name != \"www.example.test\") {{ return 421 \"no sni\\n\"; }}\n      \
         return 200 \"sni ok\\n\";\n    }}\n  }}\n"
    );
    let n = Nginx::start(&dir, "tls", &[p1, p2], &body);
    // The fixture itself: only the SNI decides.
    assert_eq!(tls_status(p1, Some("www.example.test")), 200);
    assert_eq!(tls_status(p1, None), 421);
    let with_sni = SocketAddr::from(([127, 0, 0, 1], p1));
    let without_sni = SocketAddr::from(([127, 0, 0, 1], p2));
    let vip = local();
    // The server with SNI starts down (alpha) and must pass to come in;
    // the one without starts up and must fail to go out.
    let config = service(
        vip,
        "delay_loop = 0.5\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0\n",
    ) + &format!(
        "\n[[service.server]]\naddress = \"{with_sni}\"\nalpha = true\n\n\
         [[service.server.check]]\ntype = \"https\"\npath = \"/\"\n\
         virtualhost = \"www.example.test\"\nsni_name = \"www.example.test\"\n\
         \n[[service.server]]\naddress = \"{without_sni}\"\n\n\
         [[service.server.check]]\ntype = \"https\"\npath = \"/\"\n\
         virtualhost = \"www.example.test\"\n"
    );
    let d = Daemon::start(&dir, &config);
    wait_for(
        bound(500, 500, 1) + SLACK,
        "the check with SNI passes and the one without fails",
        || (table(&d) == [with_sni]).then_some(()),
    );
    drop(n);
}

/// The status of `GET /` with `Host: www.example.test` over TLS to
/// 127.0.0.1:`port`, with `sni` or none, by `openssl s_client`.
fn tls_status(port: u16, sni: Option<&str>) -> u16 {
    let mut c = Command::new(require("openssl", "openssl"));
    c.args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{port}"));
    match sni {
        Some(name) => c.args(["-servername", name]),
        None => c.arg("-noservername"),
    };
    let child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc {
        child,
        name: "openssl s_client".into(),
    };
    p.child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\nHost: www.example.test\r\n\r\n")
        .unwrap();
    wait_for(Duration::from_secs(10), "openssl s_client ends", || {
        p.child.try_wait().unwrap()
    });
    let mut out = String::new();
    p.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer over TLS: {out:?}"))
}

/// The RCODE of an A query for `name` to 127.0.0.1:`port`, and the UDP
/// echo of `payload` (fixture checks of the responder).
fn dns_rcode(port: u16, name: &str) -> u8 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    s.send_to(&q, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).unwrap();
    assert!(n >= 12 && buf[..2] == [0x12, 0x34] && buf[2] & 0x80 != 0);
    buf[3] & 0x0f
}

fn udp_echo(port: u16, payload: &[u8]) -> Vec<u8> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(payload, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).unwrap();
    buf[..n].to_vec()
}

/// A UDP echo and a DNS responder on two ports of 127.0.0.1 (argv 1 and
/// 2). DNS: `ok.example.test.` gets NOERROR with an A record,
/// `nx.example.test.` NXDOMAIN, anything else REFUSED.
const RESPONDER: &str = r#"
import select, socket, struct, sys

def sock(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    return s

echo, dns = sock(int(sys.argv[1])), sock(int(sys.argv[2]))
print("ready", flush=True)

def name(q):
    labels, i = [], 12
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode())
        i += 1 + q[i]
    return ".".join(labels) + ".", i + 5

def answer(q):
    qid, flags = struct.unpack("!HH", q[:4])
    n, end = name(q)
    rcode = {"ok.example.test.": 0, "nx.example.test.": 3}.get(n, 5)
    head = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1,
                       1 if rcode == 0 else 0, 0, 0)
    rr = b""
    if rcode == 0:
        rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([192, 0, 2, 1])
    return head + q[12:end] + rr

while True:
    for s in select.select([echo, dns], [], [])[0]:
        data, peer = s.recvfrom(4096)
        try:
            s.sendto(data if s is echo else answer(data), peer)
        except Exception as e:
            print("bad query", e, file=sys.stderr, flush=True)
"#;

/// Acceptance 6: UDP checks pass on a matching reply and fail on a wrong
/// one or an ICMP unreachable; DNS checks pass on NOERROR and fail on
/// NXDOMAIN and REFUSED.
#[test]
fn udp_and_dns_checks_against_a_responder() {
    let dir = Dir::new();
    let (echo, dns) = (free_port(), free_port());
    let _responder = Script::start(
        &dir,
        "responder.py",
        RESPONDER,
        &[echo.to_string(), dns.to_string()],
    );
    assert_eq!(dns_rcode(dns, "ok.example.test."), 0);
    assert_eq!(dns_rcode(dns, "nx.example.test."), 3);
    assert_eq!(dns_rcode(dns, "refused.example.test."), 5);
    assert_eq!(udp_echo(echo, b"hello"), b"hello");
    // Nothing listens there: the probe draws an ICMP port unreachable.
    let closed = free_port();
    let vip = local();
    let mut config = service(
        vip,
        "delay_loop = 0.5\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0\n",
    );
    // (alpha, check); passing checks start down and must come up, failing
    // ones start up and must go down.
    let checks = [
        (
            true,
            format!(
                "type = \"udp\"\nconnect_port = {echo}\npayload = \"68656c6c6f\"\nrequire_reply = \"6865XX6c6f\""
            ),
        ),
        (
            false,
            format!(
                "type = \"udp\"\nconnect_port = {echo}\npayload = \"68656c6c6f\"\nrequire_reply = \"ffff\""
            ),
        ),
        (
            false,
            format!("type = \"udp\"\nconnect_port = {closed}\npayload = \"68656c6c6f\""),
        ),
        (
            true,
            format!(
                "type = \"dns\"\nconnect_port = {dns}\nname = \"ok.example.test.\"\nqtype = \"A\""
            ),
        ),
        (
            false,
            format!(
                "type = \"dns\"\nconnect_port = {dns}\nname = \"nx.example.test.\"\nqtype = \"A\""
            ),
        ),
        (
            false,
            format!(
                "type = \"dns\"\nconnect_port = {dns}\nname = \"refused.example.test.\"\nqtype = \"A\""
            ),
        ),
    ];
    let addrs: Vec<SocketAddr> = checks.iter().map(|_| local()).collect();
    for ((alpha, check), addr) in checks.iter().zip(&addrs) {
        config += &format!(
            "\n[[service.server]]\naddress = \"{addr}\"\nalpha = {alpha}\n\n\
             [[service.server.check]]\nconnect_ip = \"127.0.0.1\"\n{check}\n"
        );
    }
    let d = Daemon::start(&dir, &config);
    let passing = sorted(
        checks
            .iter()
            .zip(&addrs)
            .filter(|((alpha, _), _)| *alpha)
            .map(|(_, a)| *a)
            .collect(),
    );
    wait_for(
        bound(500, 500, 1) + SLACK,
        "UDP echo and DNS NOERROR up; wrong reply, unreachable, NXDOMAIN, REFUSED down",
        || (table(&d) == passing).then_some(()),
    );
}

/// Acceptance 7: with `inhibit_on_failure` a failed server goes to weight
/// 0, keeps its live connection to the end, and gets no new one.
#[test]
fn inhibit_on_failure_keeps_live_connections() {
    let dir = Dir::new();
    let (pa, pb) = (free_port(), free_port());
    // a serves /big slowly (limit_rate): a download that outlives the
    // detection; b has no /big (404).
    let a_body = format!(
        "  server {{\n    listen 127.0.0.1:{pa};\n    \
         location = / {{ return 200 \"a\\n\"; }}\n    \
         location = /big {{ limit_rate 800k; }}\n    location / {{ }}\n  }}\n"
    );
    let a = Nginx::start(&dir, "a", &[pa], &a_body);
    let b = Nginx::start(&dir, "b", &[pb], &named_server(pb, "b"));
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(a.www("big"), &big).unwrap();
    for n in [&a, &b] {
        std::fs::write(n.www("health"), "ok\n").unwrap();
    }
    let vip = local();
    let mut config = service(
        vip,
        "inhibit_on_failure = true\n\
         delay_loop = 0.5\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0\n",
    );
    for s in [a.addr(), b.addr()] {
        config += &format!(
            "\n[[service.server]]\naddress = \"{s}\"\nweight = 1\n\n\
             [[service.server.check]]\ntype = \"http\"\npath = \"/health\"\n"
        );
    }
    let d = Daemon::start(&dir, &config);

    // Round robin: one of the first attempts lands on a.
    let (mut conn, head_rest) = (0..10)
        .find_map(|_| {
            let mut s = TcpStream::connect(vip).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /big HTTP/1.0\r\nHost: test\r\n\r\n")
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed before the header: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            got.starts_with(b"HTTP/1.1 200").then_some((s, got))
        })
        .expect("no download reached a");
    let split = head_rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut body = head_rest[split..].to_vec();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let r = conn.read_to_end(&mut body).map(|_| body);
            done.store(true, Ordering::Relaxed);
            r
        })
    };

    std::fs::remove_file(a.www("health")).unwrap();
    let s = wait_for(
        bound(500, 500, 1) + SLACK,
        "a's check fails: weight 0 in the listing",
        || {
            let s = d.service();
            (server(&s, a.addr())?.server.weight == 0).then_some(s)
        },
    );
    assert_eq!(
        listed_weight(&d.listing_plain(), a.addr()),
        Some(0),
        "{}",
        d.listing_plain()
    );
    assert!(
        !done.load(Ordering::Relaxed),
        "the download ended before the failure was detected; nothing was tested"
    );
    let a_now = server(&s, a.addr()).unwrap();
    assert!(a_now.active >= 1, "{}", d.listing());
    let a_conns = a_now.stats.conns;
    for _ in 0..4 {
        assert_eq!(who(vip).as_deref(), Ok("b"));
    }
    assert_eq!(
        server(&d.service(), a.addr()).unwrap().stats.conns,
        a_conns,
        "a new connection went to the inhibited server:\n{}",
        d.listing()
    );
    let body = reader.join().unwrap().expect("the download failed");
    assert!(
        body == big,
        "the download was cut: {} of {} bytes",
        body.len(),
        big.len()
    );
}

/// The line and column of the first occurrence of `needle`'s value in
/// `text` (1-based), i.e. where `needle` ends.
fn value_at(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap() + needle.len();
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Acceptance 8: a bad checker (unknown type, bad regex) is refused with
/// FILE:LINE:COLUMN by `--check`, at start and on SIGHUP, where the
/// running state does not change.
#[test]
fn bad_checker_config_is_refused_with_its_location() {
    let dir = Dir::new();
    let vip = local();
    let srv = local();
    let head = service(
        vip,
        "delay_loop = 0.5\nconnect_timeout = 0.5\nretry = 0\nwarmup = 0\n",
    );
    let with_check = |weight: u32, check: &str| {
        format!(
            "{head}\n[[service.server]]\naddress = \"{srv}\"\nweight = {weight}\n\n\
             [[service.server.check]]\n{check}\n"
        )
    };
    let bad_type = with_check(1, "type = \"icmp\"");
    let bad_regex = with_check(1, "type = \"http\"\nregex = \"(unclosed\"");
    for (name, text, needle) in [
        ("bad-type.toml", &bad_type, "type = "),
        ("bad-regex.toml", &bad_regex, "regex = "),
    ] {
        let path = dir.file(name, text);
        let (line, col) = value_at(text, needle);
        let want = format!("{}:{line}:{col}: ", path.display());
        let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .args(["--check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--check {name}: {err}");
        assert!(
            err.contains(&want),
            "--check {name}: want {want:?} in {err:?}"
        );

        // A plain start refuses it the same way and serves nothing.
        let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--config")
            .arg(&path)
            .arg("--control")
            .arg(dir.0.join(format!("{name}.sock")))
            .arg("--no-metrics")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = Proc {
            child,
            name: format!("rvsd {name}"),
        };
        let st = wait_for(Duration::from_secs(10), "rvsd refuses to start", || {
            child.child.try_wait().unwrap()
        });
        let mut err = String::new();
        child
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!st.success(), "started with {name}");
        assert!(
            err.contains(&want),
            "start with {name}: want {want:?} in {err:?}"
        );
        assert!(!accepts(vip), "{vip} served by a refused config");
    }

    // Running with a good checker; reloads of bad ones change nothing.
    let good = with_check(1, "type = \"misc\"\nmisc_path = [\"/bin/true\"]");
    let mut d = Daemon::start(&dir, &good);
    let before = d.listing_plain();
    assert_eq!(listed_weight(&before, srv), Some(1), "{before}");
    let kinds = |d: &Daemon| -> Vec<String> {
        let h = d.health();
        h.services
            .iter()
            .flat_map(|s| &s.servers)
            .flat_map(|s| &s.checkers)
            .map(|c| c.kind.clone())
            .collect()
    };
    assert_eq!(kinds(&d), ["misc"]);
    for (name, text, needle) in [
        ("type", with_check(5, "type = \"icmp\""), "type = "),
        (
            "regex",
            with_check(5, "type = \"http\"\nregex = \"(unclosed\""),
            "regex = ",
        ),
    ] {
        std::fs::write(&d.config, &text).unwrap();
        let (line, col) = value_at(&text, needle);
        let want = format!("{}:{line}:{col}: ", d.config.display());
        let logged = d.log().matches(&want).count();
        d.signal("HUP");
        wait_for(
            Duration::from_secs(10),
            &format!("the bad {name} reload is logged with {want}"),
            || (d.log().matches(&want).count() > logged).then_some(()),
        );
        assert!(d.rvsd.0.try_wait().unwrap().is_none(), "rvsd exited");
        assert_eq!(
            d.listing_plain(),
            before,
            "a refused reload changed the table"
        );
        assert_eq!(kinds(&d), ["misc"], "a refused reload changed the checks");
    }
    // The same change without the bad checker is applied.
    std::fs::write(
        &d.config,
        with_check(5, "type = \"misc\"\nmisc_path = [\"/bin/true\"]"),
    )
    .unwrap();
    d.signal("HUP");
    wait_for(Duration::from_secs(10), "a good reload applies", || {
        (listed_weight(&d.listing_plain(), srv) == Some(5)).then_some(())
    });
}
