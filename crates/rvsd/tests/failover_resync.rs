//! A returning master resynchronises before it takes over (root only).
//!
//! The DR pair of `failover_sync.rs` with `[sync] resync = true`: the
//! master d1 (priority 150, preempt) is killed by SIGKILL and its link taken
//! down; d2 takes over; a connection is opened through d2 and left idle (so
//! that no sync message about it can reach d1 later); d1 comes back like a
//! rebooted host, fetches d2's whole table, and only then preempts. A long
//! rate-limited transfer runs through all of it, and a loop of short
//! requests runs beside it. The negative control runs the same without
//! resync: the returning d1 takes over without the idle connection, which
//! then stalls.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Dir;
use common::logs;
use common::pair::has_addr;
use common::vrrp::log_lines;
use rvs_testkit::{ChildGuard, Netns, root_or_skip, wait_for};

const ROUTER: &str = "192.0.2.1";
const CLIENT: &str = "192.0.2.10";
const SERVER: &str = "192.0.2.21";
const VIP: &str = "203.0.113.10";
const METRICS: &str = "127.0.0.1:9100";
/// The bulk transfer: 16 KiB every 10 ms, 2000 times (about 33 MB over at
/// least 20 s), long enough to span both takeovers.
const CHUNK: usize = 16 * 1024;
const CHUNKS: usize = 2000;

struct Net {
    client: Netns,
    d1: Netns,
    d2: Netns,
    rs: Netns,
    _switch: Netns,
}

fn veth(host: &Netns, switch: &Netns, port: &str, addr: &str) {
    common::pair::plug(switch, "br0", port, host, "eth0", addr);
}

fn build(tag: &str) -> Net {
    let base = format!("fr{tag}{}", std::process::id());
    let switch = common::pair::switch(&base);
    let n = Net {
        client: Netns::new(&format!("{base}c")).unwrap(),
        d1: Netns::new(&format!("{base}d1")).unwrap(),
        d2: Netns::new(&format!("{base}d2")).unwrap(),
        rs: Netns::new(&format!("{base}rs")).unwrap(),
        _switch: switch,
    };
    let sw = &n._switch;
    veth(&n.client, sw, "pc", &format!("{CLIENT}/24"));
    veth(&n.d1, sw, "p1", "192.0.2.2/24");
    veth(&n.d2, sw, "p2", "192.0.2.3/24");
    veth(&n.rs, sw, "pr", &format!("{SERVER}/24"));
    n.client
        .ip(&["route", "add", "203.0.113.0/24", "via", ROUTER])
        .unwrap();
    n.client
        .sysctl("net.ipv4.neigh.eth0.locktime", "0")
        .unwrap();
    n.rs.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])
        .unwrap();
    for (k, v) in [
        ("net.ipv4.conf.all.arp_ignore", "1"),
        ("net.ipv4.conf.all.arp_announce", "2"),
    ] {
        n.rs.sysctl(k, v).unwrap();
    }
    n
}

fn config(priority: u8, resync: bool) -> String {
    format!(
        r#"
[dataplane]
mode = "packet"
interfaces = ["eth0"]
workers = 1

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = {priority}
advert_int = 0.2
virtual_ipaddress = ["{ROUTER}/24"]

[sync]
role = "vrrp"
interface = "eth0"
sync_id = 1
resync = {resync}
resync_timeout = 10
"#
    )
}

/// rvsd in `ns`; its log goes to `DIR/name.log`. d1 serves `/metrics` on
/// its namespace's loopback.
fn start_rvsd(
    ns: &Netns,
    dir: &Dir,
    name: &str,
    priority: u8,
    resync: bool,
) -> (ChildGuard, PathBuf, PathBuf) {
    let conf = dir.file(&format!("{name}.toml"), &config(priority, resync));
    let rules = dir.file(
        &format!("{name}.rules"),
        &format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r {SERVER}\n"),
    );
    let sock = dir.0.join(format!("{name}.sock"));
    let log = dir.0.join(format!("{name}.log"));
    let child = ns
        .command(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(&conf)
        .arg("--rules")
        .arg(&rules)
        .arg("--control")
        .arg(&sock)
        .args(["--metrics", METRICS])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (ChildGuard(child), sock, log)
}

fn has(ns: &Netns, addr: &str) -> bool {
    has_addr(ns, "eth0", addr)
}

/// Byte `i` of the bulk stream: a pattern that shows any loss, repeat or
/// reordering.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// The real server on :80, one thread per connection, by the first line:
/// `BULK` streams the pattern, `PING` answers `PONG`, `IDLE` answers
/// `READY`, waits for `HELLO` and answers `WORLD`.
type Server = std::thread::JoinHandle<std::io::Result<std::io::Result<()>>>;

fn real_server(rs: &Netns, stop: Arc<AtomicBool>) -> Server {
    rs.thread(move || -> std::io::Result<()> {
        let l = TcpListener::bind("0.0.0.0:80")?;
        l.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match l.accept() {
                Ok((s, _)) => {
                    std::thread::spawn(move || serve(s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

fn serve(s: TcpStream) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line)?;
    match line.trim() {
        "BULK" => {
            let mut chunk = vec![0u8; CHUNK];
            for k in 0..CHUNKS {
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = pattern(k * CHUNK + j);
                }
                w.write_all(&chunk)?;
                std::thread::sleep(Duration::from_millis(10));
            }
            w.shutdown(std::net::Shutdown::Write)?;
        }
        "PING" => w.write_all(b"PONG\n")?,
        "IDLE" => {
            w.write_all(b"READY\n")?;
            line.clear();
            r.read_line(&mut line)?;
            if line.trim() == "HELLO" {
                w.write_all(b"WORLD\n")?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn vip80() -> SocketAddr {
    format!("{VIP}:80").parse().unwrap()
}

/// Each short request's start time and result.
type Attempts = Vec<(Instant, Result<(), String>)>;

/// One short request through the VIP.
fn ping() -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&vip80(), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"PING\n")?;
    let mut r = String::new();
    s.read_to_string(&mut r)?;
    if r == "PONG\n" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("answer {r:?}")))
    }
}

/// The idle connection, opened from the client namespace: connected and
/// greeted, then left alone until `hello` is called.
struct Idle {
    stream: TcpStream,
    port: u16,
}

fn open_idle(client: &Netns) -> Idle {
    client
        .within(|| -> std::io::Result<Idle> {
            let mut s = TcpStream::connect_timeout(&vip80(), Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"IDLE\n")?;
            let mut buf = [0u8; 6];
            s.read_exact(&mut buf)?;
            assert_eq!(&buf, b"READY\n");
            let port = s.local_addr()?.port();
            Ok(Idle { stream: s, port })
        })
        .unwrap()
        .unwrap()
}

/// Opens the idle connection through d2 while d1 is away, and waits until
/// d2's sync message about it has left (to nobody): a partly filled
/// message goes out at most 2 s after its first record (the kernel's
/// rule), and d2 counts the records it sent. From then on only a
/// resynchronisation can tell d1 about the connection.
fn open_idle_while_away(n: &Net) -> Idle {
    let sent = || metric(&scrape(&n.d2), "rvs_sync_connections_sent_total").unwrap_or(0.0);
    let before = sent();
    let idle = open_idle(&n.client);
    let opened = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || opened.elapsed()
            >= Duration::from_millis(2500)
            && sent() > before),
        "d2 sent no sync record for the idle connection"
    );
    idle
}

fn mac_of(ns: &Netns) -> String {
    let j = ns.ip(&["-j", "link", "show", "eth0"]).unwrap();
    let at = j.find("\"address\":\"").expect("a MAC address") + 11;
    j[at..at + 17].to_string()
}

/// Waits until d1 holds the router address, d2 has let it go, and the
/// client's neighbour entry for it names d1 (its gratuitous ARP arrived):
/// from then on the client's packets go to d1 only.
fn d1_serves(n: &Net) -> bool {
    let mac = mac_of(&n.d1);
    wait_for(Duration::from_secs(15), || {
        has(&n.d1, ROUTER)
            && !has(&n.d2, ROUTER)
            && n.client
                .ip(&["neigh", "show", ROUTER, "dev", "eth0"])
                .is_ok_and(|s| s.contains(&mac))
    })
}

/// Says HELLO on the idle connection; whether WORLD came back in `within`.
fn hello(idle: &mut Idle, within: Duration) -> std::io::Result<()> {
    idle.stream.set_read_timeout(Some(within))?;
    idle.stream.write_all(b"HELLO\n")?;
    let mut buf = [0u8; 6];
    idle.stream.read_exact(&mut buf)?;
    if &buf == b"WORLD\n" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("answer {buf:?}")))
    }
}

/// Whether the director behind `sock` holds a connection from the client's
/// port `port`.
fn knows(rt: &tokio::runtime::Runtime, sock: &Path, port: u16) -> bool {
    let client_ip: IpAddr = CLIENT.parse::<Ipv4Addr>().unwrap().into();
    rt.block_on(rvs_control::Client::new(sock).connections())
        .is_ok_and(|l| {
            l.connections
                .iter()
                .any(|c| c.client.ip() == client_ip && c.client.port() == port)
        })
}

/// The value of an unlabelled sample on the metrics page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn scrape(ns: &Netns) -> String {
    rvs_testkit::http_get_path(
        ns,
        METRICS.parse().unwrap(),
        "/metrics",
        Duration::from_secs(3),
    )
    .unwrap_or_default()
}

/// Line number of the first line of `log` that contains every one of
/// `words`.
fn line_of(log: &Path, words: &[&str]) -> Option<usize> {
    common::vrrp::line_of(&log_lines(log), words)
}

/// Kills d1 like a dead host: SIGKILL, link down; waits for d2 to take
/// over. Returns when d2 holds the router address.
fn kill_d1(n: &Net, d1: &mut ChildGuard, log2: &Path) -> Instant {
    let killed_at = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &d1.pid().to_string()])
        .status()
        .unwrap();
    let _ = d1.0.wait();
    n.d1.ip(&["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || has(&n.d2, ROUTER)),
        "d2 never took over\n{}",
        logs(&[log2])
    );
    killed_at
}

/// Brings d1's host back as after a reboot: the address the dead run left
/// is gone, the link comes up.
fn reboot_d1(n: &Net) {
    let _ =
        n.d1.ip(&["addr", "del", &format!("{ROUTER}/24"), "dev", "eth0"]);
    n.d1.ip(&["link", "set", "eth0", "up"]).unwrap();
}

/// Starts d1 (master) then d2 and waits for d2's backup sync daemon.
fn start_pair(
    n: &Net,
    dir: &Dir,
    rt: &tokio::runtime::Runtime,
    resync: bool,
) -> (ChildGuard, PathBuf, ChildGuard, PathBuf, PathBuf) {
    let (d1, _, log1) = start_rvsd(&n.d1, dir, "d1", 150, resync);
    assert!(
        wait_for(Duration::from_secs(10), || has(&n.d1, ROUTER)),
        "d1 never became master\n{}",
        logs(&[&log1])
    );
    let (d2, sock2, log2) = start_rvsd(&n.d2, dir, "d2", 100, resync);
    let c2 = rvs_control::Client::new(&sock2);
    assert!(
        wait_for(Duration::from_secs(10), || rt
            .block_on(c2.daemons())
            .is_ok_and(|l| l
                .daemons
                .iter()
                .any(|d| d.role == rvs_api::DaemonRole::Backup))),
        "d2 runs no backup sync daemon\n{}",
        logs(&[&log1, &log2])
    );
    assert!(!has(&n.d2, ROUTER));
    (d1, log1, d2, sock2, log2)
}

fn preflight(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    assert!(
        rvs_testkit::have("nft") && rvs_testkit::have("ethtool"),
        "nft and ethtool needed"
    );
    true
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_returning_master_resynchronises_before_it_takes_over() {
    if !preflight("a_returning_master_resynchronises_before_it_takes_over") {
        return;
    }
    let n = build("a");
    let dir = Dir::new();
    let rt = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let server = real_server(&n.rs, stop.clone());
    let (mut d1, log1, _d2, sock2, log2) = start_pair(&n, &dir, &rt, true);

    // The long transfer.
    let bulk = n
        .client
        .thread(|| -> std::io::Result<(Vec<u8>, usize, Instant)> {
            let mut s = TcpStream::connect_timeout(&vip80(), Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(15)))?;
            s.write_all(b"BULK\n")?;
            let port = s.local_addr()?.port();
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            let mut bad = Vec::new();
            loop {
                let k = s.read(&mut buf)?;
                if k == 0 {
                    return Ok((bad, port.into(), Instant::now()));
                }
                if bad.is_empty()
                    && let Some(j) = (0..k).find(|&j| buf[j] != pattern(total + j))
                {
                    bad = format!("byte {} differs", total + j).into_bytes();
                }
                total += k;
                if total > CHUNK * CHUNKS {
                    return Err(std::io::Error::other("more bytes than sent"));
                }
            }
        });
    // The short requests: every 100 ms, each attempt's start time and
    // result.
    let loop_stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Attempts>> = Arc::default();
    let shorts = {
        let (stop, results) = (loop_stop.clone(), results.clone());
        n.client.thread(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            for _ in 0..900 {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let at = Instant::now();
                let r = ping().map_err(|e| e.to_string());
                results.lock().unwrap().push((at, r));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // d2 learns the transfer by ordinary sync before d1 dies.
    let c2 = rvs_control::Client::new(&sock2);
    let client_ip: IpAddr = CLIENT.parse::<Ipv4Addr>().unwrap().into();
    assert!(
        wait_for(Duration::from_secs(6), || rt
            .block_on(c2.connections())
            .is_ok_and(|l| l
                .connections
                .iter()
                .any(|c| c.client.ip() == client_ip))),
        "the backup never learnt the transfer\n{}",
        logs(&[&log1, &log2])
    );

    let killed_at = kill_d1(&n, &mut d1, &log2);
    let d2_took_over = Instant::now();
    // In time: 3 × 200 ms + skew 121 ms (priority 100) + 200 ms from d1's
    // last advert, which left at most one interval (200 ms) before the
    // kill; 300 ms more for noticing the address with `ip` on a busy
    // machine. (failover.rs measures the bound itself with an observer.)
    let took = d2_took_over.duration_since(killed_at);
    assert!(
        took <= Duration::from_millis(3 * 200 + 121 + 200 + 200 + 300),
        "d2 took over {} ms after the kill\n{}",
        took.as_millis(),
        logs(&[&log2])
    );

    // While d1 is away: an idle connection through d2 (its sync message
    // goes nowhere), and short requests through the new master.
    let mut idle = open_idle_while_away(&n);
    assert!(
        knows(&rt, &sock2, idle.port),
        "d2 forwards the idle connection"
    );
    let ok_since = |t: Instant| {
        results
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, r)| *at >= t && r.is_ok())
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(10), || ok_since(d2_took_over) >= 3),
        "no short request got through d2"
    );

    reboot_d1(&n);
    let (_d1b, sock1b, log1b) = start_rvsd(&n.d1, &dir, "d1b", 150, true);
    let returned_at = Instant::now();
    assert!(
        wait_for(Duration::from_secs(15), || has(&n.d1, ROUTER)),
        "the returning d1 never took over\n{}",
        logs(&[&log1b, &log2])
    );
    let d1_took_over = Instant::now();
    assert!(
        d1_serves(&n),
        "d2 kept the router address, or the client never heard d1's gratuitous ARP\n{}",
        logs(&[&log1b, &log2])
    );

    // It asked for and received the full table before it became master.
    let complete = line_of(&log1b, &["resync complete"]);
    let master = line_of(&log1b, &["VRRP state", "to=\"MASTER\""]);
    let ready = line_of(&log1b, &["resynchronisation over, may preempt now"]);
    assert!(
        complete.is_some() && ready.is_some() && master.is_some() && complete < master,
        "resync complete at line {complete:?}, ready at {ready:?}, MASTER at {master:?}\n{}",
        logs(&[&log1b])
    );
    assert!(ready < master);
    assert!(
        knows(&rt, &sock1b, idle.port),
        "the returning d1 lacks the connection opened while it was away\n{}",
        logs(&[&log1b, &log2])
    );
    let page = scrape(&n.d1);
    assert_eq!(
        metric(&page, "rvs_resync_runs_complete_total"),
        Some(1.0),
        "{page}"
    );
    let installed = metric(&page, "rvs_resync_connections_received_total").unwrap_or(0.0);
    assert!(
        installed >= 2.0,
        "{installed} connections resynchronised\n{page}"
    );
    assert!(metric(&page, "rvs_resync_requests_sent_total").unwrap_or(0.0) >= 1.0);

    // Through d1 now: the idle connection goes on.
    hello(&mut idle, Duration::from_secs(5)).unwrap_or_else(|e| {
        panic!(
            "the idle connection broke after d1 came back: {e}\n{}",
            logs(&[&log1b, &log2])
        )
    });
    assert!(
        wait_for(Duration::from_secs(10), || ok_since(d1_took_over) >= 3),
        "no short request got through the returning d1"
    );

    let (bad, _port, ended) =
        bulk.join().unwrap().unwrap().unwrap_or_else(|e| {
            panic!("the transfer broke: {e}\n{}", logs(&[&log1, &log1b, &log2]))
        });
    assert!(bad.is_empty(), "{}", String::from_utf8_lossy(&bad));
    assert!(
        ended > d1_took_over,
        "the transfer ended before d1 came back: nothing was tested"
    );
    loop_stop.store(true, Ordering::SeqCst);
    shorts.join().unwrap().unwrap();
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap().unwrap().unwrap();

    // Short requests fail only around the two takeovers: an attempt that
    // began at most 3.5 s (its timeouts) before one, or within 2 s after.
    let windows = [(killed_at, d2_took_over), (returned_at, d1_took_over)];
    let results = results.lock().unwrap();
    let failures: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    for (at, r) in &failures {
        assert!(
            windows
                .iter()
                .any(|(from, to)| *at + Duration::from_millis(3500) >= *from
                    && *at <= *to + Duration::from_secs(2)),
            "a short request failed outside the takeovers: {r:?} at +{} ms",
            at.duration_since(results[0].0).as_millis()
        );
    }
    eprintln!(
        "d2 took over {} ms after the kill; d1 back {} ms after its restart; \
         {} connections resynchronised; {} short requests, {} failed; \
         {} bytes transferred intact",
        d2_took_over.duration_since(killed_at).as_millis(),
        d1_took_over.duration_since(returned_at).as_millis(),
        installed,
        results.len(),
        failures.len(),
        CHUNK * CHUNKS
    );
}

#[test]
fn without_resync_the_returning_master_takes_over_without_the_table() {
    if !preflight("without_resync_the_returning_master_takes_over_without_the_table") {
        return;
    }
    let n = build("b");
    let dir = Dir::new();
    let rt = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let server = real_server(&n.rs, stop.clone());
    let (mut d1, _log1, _d2, sock2, log2) = start_pair(&n, &dir, &rt, false);
    kill_d1(&n, &mut d1, &log2);
    let mut idle = open_idle_while_away(&n);
    assert!(knows(&rt, &sock2, idle.port));
    reboot_d1(&n);
    let (_d1b, sock1b, log1b) = start_rvsd(&n.d1, &dir, "d1b", 150, false);
    assert!(
        wait_for(Duration::from_secs(15), || has(&n.d1, ROUTER)),
        "the returning d1 never took over\n{}",
        logs(&[&log1b, &log2])
    );
    assert!(d1_serves(&n), "{}", logs(&[&log1b, &log2]));
    assert!(
        line_of(&log1b, &["asking the master for its table"]).is_none(),
        "{}",
        logs(&[&log1b])
    );
    // Master without the connection opened while it was away: it stalls.
    assert!(!knows(&rt, &sock1b, idle.port));
    assert!(
        hello(&mut idle, Duration::from_secs(3)).is_err(),
        "the idle connection went on without resync: the positive test proves nothing"
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap().unwrap().unwrap();
}

#[test]
fn a_master_back_from_fault_resynchronises_before_it_takes_over() {
    if !preflight("a_master_back_from_fault_resynchronises_before_it_takes_over") {
        return;
    }
    let n = build("c");
    let dir = Dir::new();
    let rt = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let server = real_server(&n.rs, stop.clone());
    let (_d1, log1, _d2, sock2, log2) = start_pair(&n, &dir, &rt, true);
    let sock1 = dir.0.join("d1.sock");
    // d1's link fails (the process lives on): FAULT, and d2 takes over.
    n.d1.ip(&["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || has(&n.d2, ROUTER)),
        "d2 never took over\n{}",
        logs(&[&log1, &log2])
    );
    let mut idle = open_idle_while_away(&n);
    assert!(knows(&rt, &sock2, idle.port));
    assert!(!knows(&rt, &sock1, idle.port));
    let back = line_of(&log1, &["to=\"FAULT\""]).expect("d1 went to FAULT");
    n.d1.ip(&["link", "set", "eth0", "up"]).unwrap();
    assert!(
        d1_serves(&n),
        "d1 never took over again\n{}",
        logs(&[&log1, &log2])
    );
    // Out of FAULT it asked for the table again, and had it before it
    // became MASTER.
    let lines = log_lines(&log1);
    let text = lines.join("\n");
    let after = |words: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(back)
            .find(|(_, l)| words.iter().all(|w| l.contains(w)))
            .map(|(i, _)| i)
    };
    let complete = after(&["resync complete"]);
    let ready = after(&["resynchronisation over, may preempt now"]);
    let master = after(&["VRRP state", "to=\"MASTER\""]);
    assert!(
        complete.is_some() && complete < ready && ready < master,
        "after FAULT: resync complete at line {complete:?}, ready at {ready:?}, \
         MASTER at {master:?}\n{text}"
    );
    assert!(knows(&rt, &sock1, idle.port), "{text}");
    hello(&mut idle, Duration::from_secs(5)).unwrap_or_else(|e| {
        panic!(
            "the idle connection broke after d1 came back: {e}\n{}",
            logs(&[&log1, &log2])
        )
    });
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap().unwrap().unwrap();
}
