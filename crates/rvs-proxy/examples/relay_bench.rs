//! Buffered against splice(2) relaying, through the engine on loopback.
//!
//! ```sh
//! cargo run --release -p rvs-proxy --example relay_bench -- [RUNS] [GIB]
//! ```
//!
//! The engine runs here (two worker threads); a child process (this
//! binary, run as `peer`) holds the backend and the client, each on its
//! own thread. Per relay mode and run, in this order:
//!
//! - `bulk`: the client sends GIB GiB (default 1) through the proxy and
//!   half-closes; the backend counts to end of file and answers with the
//!   count. Gbit/s from the client's first write to the answer.
//! - `keepalive`: 50 connections, each sending 64-byte requests and
//!   reading 128-byte answers for 3 s. Requests per second.
//! - `connect`: 50 workers, each opening a connection per request for
//!   3 s. Requests per second.
//!
//! Prints each run and the medians, with the engine's CPU time per GiB or
//! per request (user + system, of this process only).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rvs_api::Control;
use rvs_ipvsadm::parse_args;
use rvs_proxy::{Engine, EngineConfig, RelayMode};

const REQ: usize = 64;
const RESP: usize = 128;
const CONNS: usize = 50;
const LOOP: Duration = Duration::from_secs(3);
const DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("peer") {
        peer();
        return;
    }
    let runs: usize = args.first().map_or(3, |v| v.parse().expect("RUNS"));
    let gib: u64 = args.get(1).map_or(1, |v| v.parse().expect("GIB"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(director(runs, gib));
}

async fn director(runs: usize, gib: u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("peer")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("peer process");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
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
    let vip = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    for c in [
        format!("-A -t {vip} -s rr"),
        format!("-a -t {vip} -r {backend} -m"),
    ] {
        let a: Vec<&str> = c.split_whitespace().collect();
        e.apply(&[parse_args(&a).unwrap()]).unwrap();
    }
    // Modes alternate run by run, so drift on the machine (TIME_WAIT
    // sockets piling up, other load) falls on both alike.
    let modes = [RelayMode::Buffered, RelayMode::Splice, RelayMode::Auto];
    let tests = [
        format!("bulk {vip} {}", gib << 30),
        format!("turns {vip} 0"),
        format!("turns {vip} 1"),
    ];
    // Per mode, per test: (rate, engine CPU per unit) of every run.
    let mut res = vec![vec![Vec::new(); tests.len()]; modes.len()];
    for run in 0..runs {
        for (i, &mode) in modes.iter().enumerate() {
            e.set_relay_mode(mode);
            for (j, t) in tests.iter().enumerate() {
                let cpu0 = cpu_seconds();
                writeln!(stdin, "{t}").unwrap();
                stdin.flush().unwrap();
                let answer = tokio::task::block_in_place(|| {
                    line.clear();
                    out.read_line(&mut line).unwrap();
                    line.clone()
                });
                let cpu = cpu_seconds() - cpu0;
                let v: Vec<f64> = answer
                    .split_whitespace()
                    .map(|x| x.parse().unwrap())
                    .collect();
                let (secs, units) = (v[0], v[1]);
                let (rate, per) = if j == 0 {
                    // Gbit/s; engine CPU seconds per GiB.
                    (
                        units * 8.0 / secs / 1e9,
                        cpu / (units / f64::from(1u32 << 30)),
                    )
                } else {
                    // Requests/s; engine CPU microseconds per request.
                    (units / secs, cpu / units * 1e6)
                };
                println!("{mode:?} run {}: {t}: {rate:.2} (cpu {per:.3})", run + 1);
                res[i][j].push((rate, per));
            }
        }
    }
    let med = |v: &Vec<(f64, f64)>, f: fn(&(f64, f64)) -> f64| {
        let mut c: Vec<f64> = v.iter().map(f).collect();
        c.sort_by(f64::total_cmp);
        c[c.len() / 2]
    };
    println!("\nmedians of {runs} runs ({gib} GiB bulk, {CONNS} connections, {LOOP:?} loops):");
    println!(
        "| relay | bulk Gbit/s | engine CPU s/GiB | keep-alive req/s | engine CPU µs/req | new connection req/s | engine CPU µs/req |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (m, r) in modes.iter().zip(&res) {
        println!(
            "| {m:?} | {:.2} | {:.3} | {:.0} | {:.1} | {:.0} | {:.1} |",
            med(&r[0], |x| x.0),
            med(&r[0], |x| x.1),
            med(&r[1], |x| x.0),
            med(&r[1], |x| x.1),
            med(&r[2], |x| x.0),
            med(&r[2], |x| x.1),
        );
    }
    drop(stdin);
    let _ = child.wait();
}

/// The backend: a first byte `b` starts a bulk sink (answers the count of
/// bytes after it at end of file); `r` starts request/answer turns.
fn serve(mut s: TcpStream) {
    let mut kind = [0u8; 1];
    if s.read_exact(&mut kind).is_err() {
        return;
    }
    if kind[0] == b'b' {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(_) => return,
            }
        }
        let _ = s.write_all(&total.to_be_bytes());
        return;
    }
    let mut req = [0u8; REQ];
    let resp = [b'r'; RESP];
    while s.read_exact(&mut req).is_ok() {
        if s.write_all(&resp).is_err() {
            return;
        }
    }
}

fn peer() {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    println!("backend {}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let w: Vec<&str> = line.split_whitespace().collect();
        let vip: SocketAddr = w[1].parse().unwrap();
        let n: u64 = w[2].parse().unwrap();
        let (secs, units) = match w[0] {
            "bulk" => bulk(vip, n),
            _ => turns(vip, n == 1),
        };
        println!("{secs} {units}");
    }
}

/// Seconds taken and bytes sent.
fn bulk(vip: SocketAddr, bytes: u64) -> (f64, u64) {
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    let buf = vec![7u8; 256 * 1024];
    let t = Instant::now();
    s.write_all(b"b").unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = [0u8; 8];
    s.read_exact(&mut got).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(u64::from_be_bytes(got), bytes, "every byte relayed");
    (secs, bytes)
}

/// Request/answer turns on CONNS threads for LOOP; `reconnect` opens a
/// connection per request. Seconds taken and requests answered.
fn turns(vip: SocketAddr, reconnect: bool) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t = Instant::now();
    let hs: Vec<_> = (0..CONNS)
        .map(|_| {
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                let open = || {
                    let mut s = TcpStream::connect(vip).unwrap();
                    s.set_nodelay(true).unwrap();
                    s.set_read_timeout(Some(DEADLINE)).unwrap();
                    s.write_all(b"r").unwrap();
                    s
                };
                let mut s = open();
                let req = [b'q'; REQ];
                let mut resp = [0u8; RESP];
                while !stop.load(Ordering::Relaxed) {
                    if reconnect {
                        s = open();
                    }
                    s.write_all(&req).unwrap();
                    s.read_exact(&mut resp).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(LOOP);
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }
    (t.elapsed().as_secs_f64(), done.load(Ordering::Relaxed))
}

/// User and system CPU time of this process, from /proc/self/stat. The
/// machine may be shared: CPU spent per unit moved is steadier than
/// wall-clock rates.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // /proc reports in USER_HZ, 100 on Linux whatever the kernel's HZ.
    ticks / 100.0
}
