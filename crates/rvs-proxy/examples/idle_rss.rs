//! Resident memory per idle proxied connection.
//!
//! ```sh
//! cargo run --release -p rvs-proxy --example idle_rss -- [CONNS] [--exchange] [--relay buffered|splice|auto]
//! ```
//!
//! The engine runs in this process and nothing else does: the backend and
//! the clients live in a child process (this same binary, run as `peer`),
//! so VmRSS moves only with what the engine holds per connection. The
//! child opens CONNS (default 2 000) connections through the VIP; with
//! `--exchange` each one first sends a line and reads its echo (a
//! keep-alive connection that has carried a request), otherwise it just
//! stays open. VmRSS is read from /proc/self/status once the service is
//! up and again when every connection is relayed.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_api::Control;
use rvs_ipvsadm::parse_args;
use rvs_proxy::{Engine, EngineConfig, RelayMode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(60);

fn vm_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

/// Each proxied connection costs two descriptors here and two in the
/// peer; start from the hard limit rather than a lower soft one.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    let _ = setrlimit(Resource::Nofile, l);
}

fn main() {
    raise_nofile();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("peer") {
        let n: usize = args[1].parse().expect("count");
        let exchange = args[2] == "1";
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(peer(n, exchange));
        return;
    }
    let mut n = 2000usize;
    let mut exchange = false;
    let mut relay = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--exchange" => exchange = true,
            "--relay" => relay = it.next().cloned(),
            v => n = v.parse().expect("CONNS"),
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(director(n, exchange, relay));
}

async fn director(n: usize, exchange: bool, relay: Option<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["peer", &n.to_string(), if exchange { "1" } else { "0" }])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("peer process");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let backend: SocketAddr = line
        .trim()
        .strip_prefix("backend ")
        .unwrap()
        .parse()
        .unwrap();

    let mut cfg = EngineConfig::default();
    cfg.proxy.threads = 2;
    let e = Engine::new(cfg);
    match relay.as_deref() {
        None => {}
        Some("buffered") => e.set_relay_mode(RelayMode::Buffered),
        Some("splice") => e.set_relay_mode(RelayMode::Splice),
        Some("auto") => e.set_relay_mode(RelayMode::Auto),
        Some(other) => panic!("--relay buffered|splice|auto, not {other}"),
    }
    let vip = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap()
    };
    for c in [
        format!("-A -t {vip} -s rr"),
        format!("-a -t {vip} -r {backend} -m"),
    ] {
        let a: Vec<&str> = c.split_whitespace().collect();
        e.apply(&[parse_args(&a).unwrap()]).unwrap();
    }
    let before = vm_rss();

    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "vip {vip}").unwrap();
    stdin.flush().unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "peer: {line}");
    let start = Instant::now();
    // ActiveConn counts established relays: each is set up (and, on the
    // old path, its buffers allocated) in the same poll that reports it.
    let established = || e.services()[0].dests[0].active as usize;
    while established() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "{} of {n} relayed",
            established()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = vm_rss();
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!(
        "relay={} conns={n} exchange={exchange} rss_before={before} rss_after={after} per_conn={per:.0} B",
        format!("{:?}", e.relay_mode()).to_lowercase()
    );
    drop(stdin);
    let _ = child.wait();
}

async fn peer(n: usize, exchange: bool) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    println!("backend {}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = tokio::io::BufReader::new(r);
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if w.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let vip: SocketAddr = line.trim().strip_prefix("vip ").unwrap().parse().unwrap();
    let mut held = Vec::with_capacity(n);
    let deadline = Instant::now() + DEADLINE;
    for _ in 0..n {
        assert!(Instant::now() < deadline, "peer: out of time");
        let s = tokio::time::timeout(DEADLINE, TcpStream::connect(vip))
            .await
            .unwrap()
            .unwrap();
        let mut s = tokio::io::BufReader::new(s);
        if exchange {
            s.get_mut().write_all(b"ping\n").await.unwrap();
            let mut echo = String::new();
            tokio::time::timeout(DEADLINE, s.read_line(&mut echo))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(echo, "ping\n");
        }
        held.push(s);
    }
    println!("ready");
    // Hold every connection until the director closes our stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut rest = String::new();
        let _ = std::io::stdin().read_line(&mut rest);
    })
    .await;
    drop(held);
}
