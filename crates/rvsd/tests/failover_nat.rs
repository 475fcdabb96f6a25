//! A NAT director pair fails over without losing connections (root only).
//!
//! Two rvsd directors on the packet data plane run a masquerading (NAT)
//! service; the real server sits on a private segment and its default
//! gateway is a VRRP address held by the master, next to the VIP on the
//! client's segment. `[sync]` follows the VRRP state. The master is
//! SIGKILLed and its links taken down (a dead host); the backup must take
//! the VIP and the gateway within 3 × advert_int + skew + 200 ms of the
//! master's last advert, a long rate-limited transfer must complete byte
//! for byte without a reset, and a loop of short requests must see errors
//! only for requests caught in the takeover gap.
//!
//! Two layouts, as keepalived users write them: the VIP and the gateway in
//! two instances of one `[[vrrp_sync_group]]`, and both in one instance
//! with the gateway written `"198.51.100.1/24 dev eth1"`.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Dir;
use common::logs;
use common::pair::{has_addr, plug};
use common::vrrp::{Observer, first_from, last_from, line_of, log_lines, takeover_bound};
use rvs_testkit::{ChildGuard, Netns, root_or_skip, wait_for};

const CLIENT: &str = "192.0.2.10";
const VIP: &str = "192.0.2.100";
const GATEWAY: &str = "198.51.100.1";
const SERVER: &str = "198.51.100.21";
const D1_LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const D2_LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const D1_PRIV: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const D2_PRIV: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
const OBS_LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 4);
const OBS_PRIV: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 4);
/// Port of the long transfer and of the short requests.
const LONG: u16 = 80;
const SHORT: u16 = 81;
/// 16 KiB every 5 ms: 1000 chunks (about 16 MB over at least 5 s) span
/// one takeover, 3000 (49 MB over at least 15 s) span the old master's
/// return too.
const CHUNK: usize = 16 * 1024;
const CHUNKS: usize = 1000;
const CHUNKS_WITH_RETURN: usize = 3000;
/// Size of one short answer.
const ANSWER: usize = 4096;
const ADVERT_MS: u64 = 200;
const BACKUP_PRIORITY: u64 = 100;

/// The byte at `offset` of the long transfer: a pattern that a lost,
/// repeated or reordered segment would break.
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8 ^ (offset / 251 % 256) as u8
}

/// How the VIP and the gateway address are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// VI_1 (VIP on eth0) and VI_2 (gateway on eth1) in one sync group.
    SyncGroup,
    /// VI_1 holds both, the gateway with `dev eth1`.
    OneInstance,
}

struct Net {
    client: Netns,
    d1: Netns,
    d2: Netns,
    rs: Netns,
    obs: Netns,
    // Last: the hosts' veths go with them, then the bridges.
    _switch: Netns,
}

fn unique(tag: &str) -> String {
    common::pair::unique("fn", tag)
}

fn build(tag: &str) -> Net {
    let base = unique(tag);
    let switch = Netns::new(&format!("{base}sw")).unwrap();
    for br in ["lan", "priv"] {
        switch
            .ip(&["link", "add", br, "type", "bridge", "mcast_snooping", "0"])
            .unwrap();
        switch.ip(&["link", "set", br, "up"]).unwrap();
    }
    let n = Net {
        client: Netns::new(&format!("{base}c")).unwrap(),
        d1: Netns::new(&format!("{base}d1")).unwrap(),
        d2: Netns::new(&format!("{base}d2")).unwrap(),
        rs: Netns::new(&format!("{base}rs")).unwrap(),
        obs: Netns::new(&format!("{base}o")).unwrap(),
        _switch: switch,
    };
    let sw = &n._switch;
    plug(sw, "lan", "pc", &n.client, "eth0", &format!("{CLIENT}/24"));
    plug(sw, "lan", "pd1", &n.d1, "eth0", &format!("{D1_LAN}/24"));
    plug(sw, "lan", "pd2", &n.d2, "eth0", &format!("{D2_LAN}/24"));
    plug(sw, "lan", "po", &n.obs, "eth0", &format!("{OBS_LAN}/24"));
    plug(sw, "priv", "qd1", &n.d1, "eth1", &format!("{D1_PRIV}/24"));
    plug(sw, "priv", "qd2", &n.d2, "eth1", &format!("{D2_PRIV}/24"));
    plug(sw, "priv", "qo", &n.obs, "eth1", &format!("{OBS_PRIV}/24"));
    plug(sw, "priv", "qr", &n.rs, "eth0", &format!("{SERVER}/24"));
    // The real server answers through the floating gateway: whichever
    // director holds it gets the replies to un-NAT.
    n.rs.ip(&["route", "add", "default", "via", GATEWAY])
        .unwrap();
    for ns in [&n.client, &n.rs] {
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1").unwrap();
    }
    n.client
        .sysctl("net.ipv4.ip_local_port_range", "10000 60000")
        .unwrap();
    n
}

fn config(layout: Layout, priority: u8, resync: bool) -> String {
    let head = format!(
        r#"
[dataplane]
mode = "packet"
interfaces = ["eth0", "eth1"]
workers = 1

[sync]
role = "vrrp"
vrrp_instance = "VI_1"
interface = "eth1"
sync_id = 7
resync = {resync}
resync_timeout = 10
"#
    );
    let advert = ADVERT_MS as f64 / 1000.0;
    let instances = match layout {
        Layout::SyncGroup => format!(
            r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = {priority}
advert_int = {advert}
virtual_ipaddress = ["{VIP}/24"]

[[vrrp_instance]]
name = "VI_2"
interface = "eth1"
virtual_router_id = 52
priority = {priority}
advert_int = {advert}
virtual_ipaddress = ["{GATEWAY}/24"]

[[vrrp_sync_group]]
name = "G1"
group = ["VI_1", "VI_2"]
"#
        ),
        Layout::OneInstance => format!(
            r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = {priority}
advert_int = {advert}
virtual_ipaddress = ["{VIP}/24", "{GATEWAY}/24 dev eth1"]
"#
        ),
    };
    head + &instances
}

fn start_rvsd(
    ns: &Netns,
    dir: &Dir,
    name: &str,
    layout: Layout,
    priority: u8,
    resync: bool,
) -> (ChildGuard, std::path::PathBuf, std::path::PathBuf) {
    let conf = dir.file(&format!("{name}.toml"), &config(layout, priority, resync));
    let rules = dir.file(
        &format!("{name}.rules"),
        &format!(
            "-A -t {VIP}:{LONG} -s rr\n-a -t {VIP}:{LONG} -r {SERVER}:{LONG} -m\n\
             -A -t {VIP}:{SHORT} -s rr\n-a -t {VIP}:{SHORT} -r {SERVER}:{SHORT} -m\n"
        ),
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
        .arg("--no-metrics")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (ChildGuard(child), sock, log)
}

/// The real server: the long transfer (`chunks` × CHUNK bytes) on LONG to
/// its first client, and an answer of ANSWER bytes to every short request
/// on SHORT, until `stop` (or a minute).
fn serve(
    n: &Net,
    stop: Arc<AtomicBool>,
    chunks: usize,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    let long_stop = stop.clone();
    let long = n.rs.thread(move || -> std::io::Result<()> {
        let l = TcpListener::bind(("0.0.0.0", LONG))?;
        l.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if long_stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                        return Err(std::io::Error::other("no client"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        s.set_nonblocking(false)?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        let mut chunk = vec![0u8; CHUNK];
        for i in 0..chunks {
            for (j, b) in chunk.iter_mut().enumerate() {
                *b = pattern(i * CHUNK + j);
            }
            s.write_all(&chunk)?;
            std::thread::sleep(Duration::from_millis(5));
        }
        s.shutdown(std::net::Shutdown::Write)?;
        Ok(())
    });
    let short = n.rs.thread(move || -> std::io::Result<()> {
        let l = TcpListener::bind(("0.0.0.0", SHORT))?;
        l.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let answer = vec![b'a'; ANSWER];
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false)?;
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    let mut req = [0u8; 5];
                    // A request lost in the takeover gap is the client's
                    // error to count; the server goes on.
                    if s.read_exact(&mut req).is_ok() && &req == b"ping\n" {
                        let _ = s.write_all(&answer);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    std::thread::spawn(move || {
        let a = long.join().unwrap().and_then(|r| r);
        let b = short.join().unwrap().and_then(|r| r);
        a.and(b)
    })
}

/// One short request through the VIP: connect, `ping`, the whole answer.
fn short_request() -> Result<(), String> {
    let addr: SocketAddr = format!("{VIP}:{SHORT}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(4))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(4)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"ping\n").map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
    if got.len() != ANSWER {
        return Err(format!("{} bytes of {ANSWER}", got.len()));
    }
    Ok(())
}

/// One short request straight to `addr` (not through the VIP).
fn direct_request(addr: &str) -> Result<(), String> {
    let addr: SocketAddr = format!("{addr}:{SHORT}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"ping\n").map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
    if got.len() != ANSWER {
        return Err(format!("{} bytes of {ANSWER}", got.len()));
    }
    Ok(())
}

/// A short request's start, end and outcome.
type Outcome = (Instant, Instant, Result<(), String>);

/// The pair fails over; with `comeback` (and `[sync] resync` on both) the
/// old master then returns as after a reboot, resynchronises and takes
/// both addresses back while the transfer goes on.
fn nat_pair_fails_over(layout: Layout, tag: &str, comeback: bool) {
    assert!(
        rvs_testkit::have("nft") && rvs_testkit::have("ethtool"),
        "nft and ethtool needed"
    );
    let n = build(tag);
    let dir = Dir::new();
    let stop = Arc::new(AtomicBool::new(false));
    let chunks = if comeback { CHUNKS_WITH_RETURN } else { CHUNKS };
    let server = serve(&n, stop.clone(), chunks);

    let (mut d1, sock1, log1) = start_rvsd(&n.d1, &dir, "d1", layout, 150, comeback);
    assert!(
        wait_for(Duration::from_secs(10), || has_addr(&n.d1, "eth0", VIP)
            && has_addr(&n.d1, "eth1", GATEWAY)),
        "d1 never became master of both addresses\n{}",
        logs(&[&log1])
    );
    let (_d2, sock2, log2) = start_rvsd(&n.d2, &dir, "d2", layout, BACKUP_PRIORITY as u8, comeback);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c2 = rvs_control::Client::new(&sock2);
    let c1 = rvs_control::Client::new(&sock1);
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
    assert!(
        !has_addr(&n.d2, "eth0", VIP) && !has_addr(&n.d2, "eth1", GATEWAY),
        "{}",
        logs(&[&log1, &log2])
    );

    // The long transfer, checked byte for byte.
    let client_stop = stop.clone();
    let long = n
        .client
        .thread(move || -> Result<(usize, Instant), String> {
            let addr: SocketAddr = format!("{VIP}:{LONG}").parse().unwrap();
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(15)))
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            loop {
                if client_stop.load(Ordering::SeqCst) {
                    return Err(format!("stopped after {total} bytes"));
                }
                let k = s
                    .read(&mut buf)
                    .map_err(|e| format!("after {total} bytes: {e}"))?;
                if k == 0 {
                    return Ok((total, Instant::now()));
                }
                if let Some(j) = (0..k).find(|&j| buf[j] != pattern(total + j)) {
                    return Err(format!("byte {} differs", total + j));
                }
                total += k;
            }
        });
    // The loop of short requests, every 20 ms, bounded in count and time;
    // stopped before the server so that no request meets a closed listener.
    let short_stop = Arc::new(AtomicBool::new(false));
    let shared: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let (loop_stop, out) = (short_stop.clone(), shared.clone());
    let short = n.client.thread(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..2000 {
            if loop_stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                break;
            }
            let start = Instant::now();
            let r = short_request();
            out.lock().unwrap().push((start, Instant::now(), r));
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // Short requests that started at or after `t` and succeeded.
    let ok_since = |t: Instant| {
        shared
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, r)| *s >= t && r.is_ok())
            .count()
    };

    // The backup learns the long connection from the master's sync
    // messages before the master dies.
    let client_ip: Ipv4Addr = CLIENT.parse().unwrap();
    assert!(
        wait_for(Duration::from_secs(6), || rt
            .block_on(c2.connections())
            .is_ok_and(|l| l.connections.iter().any(|c| c.client.ip()
                == IpAddr::V4(client_ip)
                && c.virtual_addr.port() == LONG))),
        "the backup never learnt the long connection\n{}",
        logs(&[&log1, &log2])
    );
    // Short requests go through the master meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    // The backup forwarded nothing: it owns neither address yet.
    let idle = rt.block_on(c2.services()).unwrap();
    assert!(
        idle.services
            .iter()
            .all(|s| s.stats.inpkts == 0 && s.stats.outpkts == 0),
        "the backup forwarded packets while backup: {:?}\n{}",
        idle.services
            .iter()
            .map(|s| (s.id, s.stats.inpkts, s.stats.outpkts))
            .collect::<Vec<_>>(),
        logs(&[&log1, &log2])
    );
    // Each director still reaches the real server itself, as its health
    // checks do: the claim takes the server's replies to clients only.
    for (ns, name) in [(&n.d1, "d1"), (&n.d2, "d2")] {
        let r = ns.within(|| direct_request(SERVER)).unwrap();
        assert!(
            r.is_ok(),
            "{name} cannot reach the real server itself: {r:?}"
        );
    }
    let before = rt.block_on(c1.services()).unwrap();
    assert!(
        before.services.iter().all(|s| s.stats.outpkts > 0),
        "the master did not carry both services"
    );

    let observer = Observer::start(&n.obs, &[OBS_LAN, OBS_PRIV]);
    std::thread::sleep(Duration::from_millis(3 * ADVERT_MS));
    let killed_at = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &d1.pid().to_string()])
        .status()
        .unwrap();
    let _ = d1.0.wait();
    for dev in ["eth0", "eth1"] {
        n.d1.ip(&["link", "set", dev, "down"]).unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(5), || has_addr(&n.d2, "eth0", VIP)
            && has_addr(&n.d2, "eth1", GATEWAY)),
        "d2 never took both addresses\n{}",
        logs(&[&log2])
    );
    let took_over_at = Instant::now();
    let seen = observer.stop_after_advert_from(D2_LAN, Duration::from_secs(2));
    let bound = takeover_bound(ADVERT_MS, BACKUP_PRIORITY);
    let lan_takeover = first_from(&seen, D2_LAN)
        .unwrap()
        .duration_since(last_from(&seen, D1_LAN).expect("the master's adverts on the LAN"));
    let mut report = format!("VIP takeover {} ms", lan_takeover.as_millis());
    assert!(
        lan_takeover <= bound,
        "VIP takeover took {lan_takeover:?}, more than {bound:?}\n{}",
        logs(&[&log1, &log2])
    );
    if layout == Layout::SyncGroup {
        // The gateway's own instance, on the private segment.
        let priv_takeover = first_from(&seen, D2_PRIV)
            .expect("the new master's adverts on the private segment")
            .duration_since(
                last_from(&seen, D1_PRIV).expect("the master's adverts on the private segment"),
            );
        report += &format!(", gateway takeover {} ms", priv_takeover.as_millis());
        assert!(
            priv_takeover <= bound,
            "gateway takeover took {priv_takeover:?}, more than {bound:?}\n{}",
            logs(&[&log1, &log2])
        );
    }

    assert!(
        wait_for(Duration::from_secs(10), || ok_since(took_over_at) >= 10),
        "fewer than 10 short requests got through the new master\n{}",
        logs(&[&log2])
    );

    // The old master returns: it must fetch the whole table from d2 before
    // it preempts, then take both addresses back.
    let mut ret = None;
    if comeback {
        ret = Some(comes_back(&n, &dir, &rt, layout, &log2));
        let back_at = ret.as_ref().unwrap().back_at;
        assert!(
            wait_for(Duration::from_secs(10), || ok_since(back_at) >= 10),
            "fewer than 10 short requests got through the returning master\n{}",
            logs(&[&ret.as_ref().unwrap().log, &log2])
        );
    }

    let long = long.join().unwrap().unwrap();
    short_stop.store(true, Ordering::SeqCst);
    short.join().unwrap().unwrap();
    let outcomes = std::mem::take(&mut *shared.lock().unwrap());
    stop.store(true, Ordering::SeqCst);
    let served = server.join().unwrap();
    let (total, ended) = long.unwrap_or_else(|e| {
        panic!(
            "the long transfer broke: {e} (server: {served:?})\n{}",
            logs(&[&log1, &log2])
        )
    });
    assert_eq!(total, CHUNK * chunks, "every byte arrived");
    assert!(
        ended > took_over_at,
        "the transfer ended before the takeover: nothing was tested"
    );
    if let Some(r) = &ret {
        assert!(
            ended > r.back_at,
            "the transfer ended before the old master was back: nothing was tested"
        );
    }

    // Errors only for requests caught in a gap: started before the backup
    // held both addresses and not finished before the kill; or, on the
    // return, started before the old master held both addresses again and
    // not finished before it was started.
    let gaps: Vec<(Instant, Instant)> = std::iter::once((killed_at, took_over_at))
        .chain(ret.as_ref().map(|r| (r.returned_at, r.back_at)))
        .collect();
    let in_gap =
        |start: &Instant, end: &Instant| gaps.iter().any(|(from, to)| *start < *to && *end > *from);
    let bad: Vec<String> = outcomes
        .iter()
        .filter(|(s, e, r)| r.is_err() && !in_gap(s, e))
        .map(|(s, _, r)| {
            format!(
                "{:?} at kill{:+} ms",
                r.as_ref().unwrap_err(),
                s.duration_since(killed_at).as_millis() as i64
                    - killed_at.duration_since(*s).as_millis() as i64
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "short requests failed outside the takeover gap: {bad:?}\n{}",
        logs(&[&log1, &log2])
    );
    let before_kill = outcomes.iter().filter(|(_, e, _)| *e <= killed_at).count();
    let after = outcomes
        .iter()
        .filter(|(s, _, r)| *s >= took_over_at && r.is_ok())
        .count();
    let gap_errors = outcomes.iter().filter(|(_, _, r)| r.is_err()).count();
    let return_errors = ret.as_ref().map(|r| {
        outcomes
            .iter()
            .filter(|(s, e, res)| res.is_err() && *s < r.back_at && *e > r.returned_at)
            .count()
    });
    assert!(
        before_kill >= 10,
        "only {before_kill} short requests before the kill"
    );
    assert!(
        after >= 10,
        "only {after} short requests after the takeover"
    );

    // The new master carried both services.
    let now = rt.block_on(c2.services()).unwrap();
    assert!(
        now.services
            .iter()
            .all(|s| s.stats.inpkts > 0 && s.stats.outpkts > 0),
        "the new master did not forward both services"
    );
    if let Some(r) = &ret {
        let c1b = rvs_control::Client::new(&r.sock);
        let back = rt.block_on(c1b.services()).unwrap();
        assert!(
            back.services
                .iter()
                .all(|s| s.stats.inpkts > 0 && s.stats.outpkts > 0),
            "the returning master did not forward both services"
        );
        report += &format!(
            "; old master back {} ms after its start, {} records resynchronised, \
             {} short requests failed on its return",
            r.back_at.duration_since(r.returned_at).as_millis(),
            r.records,
            return_errors.unwrap_or(0)
        );
    }
    eprintln!(
        "{layout:?}: {report} (bound {} ms); {total} bytes intact; short requests: {} in all, \
         {gap_errors} failed in the gaps, {after} after the takeover",
        bound.as_millis(),
        outcomes.len()
    );
}

/// The old master back: when it was started and when it held both
/// addresses again, its control socket and log, how many records its
/// resynchronisation installed.
struct Returned {
    returned_at: Instant,
    back_at: Instant,
    sock: std::path::PathBuf,
    log: std::path::PathBuf,
    records: u64,
    _rvsd: ChildGuard,
}

/// d1's host comes back as after a reboot (the addresses the dead run left
/// are gone, the links come up) and rvsd starts with `resync`; waits until
/// it holds both addresses and d2 neither, then checks from its log that
/// the table arrived and every instance's ready gate opened before any
/// instance became MASTER, and that it knows the long connection.
fn comes_back(
    n: &Net,
    dir: &Dir,
    rt: &tokio::runtime::Runtime,
    layout: Layout,
    log2: &std::path::Path,
) -> Returned {
    for (dev, addr) in [("eth0", VIP), ("eth1", GATEWAY)] {
        let _ = n.d1.ip(&["addr", "del", &format!("{addr}/24"), "dev", dev]);
        n.d1.ip(&["link", "set", dev, "up"]).unwrap();
    }
    let (rvsd, sock, log) = start_rvsd(&n.d1, dir, "d1b", layout, 150, true);
    let returned_at = Instant::now();
    let both = |ns: &Netns| has_addr(ns, "eth0", VIP) && has_addr(ns, "eth1", GATEWAY);
    let none = |ns: &Netns| !has_addr(ns, "eth0", VIP) && !has_addr(ns, "eth1", GATEWAY);
    assert!(
        wait_for(Duration::from_secs(20), || both(&n.d1) && none(&n.d2)),
        "the returning master never took both addresses back\n{}",
        logs(&[&log, log2])
    );
    let back_at = Instant::now();

    let lines = log_lines(&log);
    let master = line_of(&lines, &["VRRP state", "to=\"MASTER\""]);
    let complete = line_of(&lines, &["resync complete"]);
    assert!(
        master.is_some() && complete.is_some() && complete < master,
        "resync complete at line {complete:?}, first MASTER at {master:?}\n{}",
        logs(&[&log])
    );
    let instances: &[&str] = match layout {
        Layout::SyncGroup => &["VI_1", "VI_2"],
        Layout::OneInstance => &["VI_1"],
    };
    for inst in instances {
        let ready = line_of(&lines, &["ready gate open", inst]);
        assert!(
            ready.is_some() && ready < master,
            "{inst}: ready gate open at line {ready:?}, first MASTER at {master:?}\n{}",
            logs(&[&log])
        );
    }
    let records = lines[complete.unwrap()]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("records="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(records >= 1, "an empty table came back\n{}", logs(&[&log]));
    let client_ip: Ipv4Addr = CLIENT.parse().unwrap();
    let c1b = rvs_control::Client::new(&sock);
    assert!(
        rt.block_on(c1b.connections()).is_ok_and(|l| l
            .connections
            .iter()
            .any(|c| c.client.ip() == IpAddr::V4(client_ip) && c.virtual_addr.port() == LONG)),
        "the returning master does not know the long connection\n{}",
        logs(&[&log, log2])
    );
    Returned {
        returned_at,
        back_at,
        sock,
        log,
        records,
        _rvsd: rvsd,
    }
}

#[test]
fn a_nat_pair_with_a_sync_group_fails_over() {
    if !root_or_skip("a_nat_pair_with_a_sync_group_fails_over") {
        return;
    }
    nat_pair_fails_over(Layout::SyncGroup, "g", false);
}

/// The sync-group pair with `[sync] resync`: after the takeover the old
/// master comes back with its links up, fetches d2's whole table, opens
/// the ready gate of both members of its group, and only then takes the
/// VIP and the gateway back; the long transfer started before the first
/// failover completes byte for byte across both moves.
#[test]
fn a_returning_nat_master_resynchronises_then_takes_both_addresses_back() {
    if !root_or_skip("a_returning_nat_master_resynchronises_then_takes_both_addresses_back") {
        return;
    }
    nat_pair_fails_over(Layout::SyncGroup, "r", true);
}

#[test]
fn a_nat_pair_with_the_gateway_on_another_interface_fails_over() {
    if !root_or_skip("a_nat_pair_with_the_gateway_on_another_interface_fails_over") {
        return;
    }
    nat_pair_fails_over(Layout::OneInstance, "o", false);
}

/// The members of a sync group move together: the master's private link
/// goes down, so the gateway's instance is in FAULT, and the VIP's
/// instance follows it into FAULT although its own link is up; the backup
/// takes both. With the link back, the group leaves FAULT and the master
/// (higher priority, preempting) takes both back, but only after both
/// members' ready gates opened on a new resynchronisation (`[sync]
/// resync`: the table missed the sync messages while the link was down).
/// The group's `notify` hears each change.
#[test]
fn a_sync_group_goes_to_fault_and_back_together() {
    if !root_or_skip("a_sync_group_goes_to_fault_and_back_together") {
        return;
    }
    let n = build("f");
    let dir = Dir::new();
    let record = |name: &str| {
        let path = dir.0.join(format!("{name}.events"));
        (
            path.clone(),
            format!(
                "notify = [\"/bin/sh\", \"-c\", \"echo \\\"$*\\\" >> {}\", \"notify\"]\n",
                path.display()
            ),
        )
    };
    let (ev1, notify1) = record("d1");
    let (ev2, notify2) = record("d2");
    let start = |ns: &Netns, name: &str, priority: u8, notify: &str| {
        let conf = dir.file(
            &format!("{name}.toml"),
            &(config(Layout::SyncGroup, priority, true) + notify),
        );
        let log = dir.0.join(format!("{name}.log"));
        let child = ns
            .command(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--config")
            .arg(&conf)
            .arg("--control")
            .arg(dir.0.join(format!("{name}.sock")))
            .arg("--no-metrics")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (ChildGuard(child), log)
    };
    let both = |ns: &Netns| has_addr(ns, "eth0", VIP) && has_addr(ns, "eth1", GATEWAY);
    let none = |ns: &Netns| !has_addr(ns, "eth0", VIP) && !has_addr(ns, "eth1", GATEWAY);
    let events = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();

    let (_d1, log1) = start(&n.d1, "d1", 150, &notify1);
    assert!(
        wait_for(Duration::from_secs(10), || both(&n.d1)),
        "{}",
        logs(&[&log1])
    );
    let (_d2, log2) = start(&n.d2, "d2", 100, &notify2);
    assert!(
        wait_for(Duration::from_secs(5), || events(&ev2)
            .contains("GROUP G1 BACKUP 0")),
        "d2's group never reported BACKUP: {:?}\n{}",
        events(&ev2),
        logs(&[&log1, &log2])
    );
    assert!(both(&n.d1) && none(&n.d2));

    // Only the private link fails: VI_2 is FAULT, VI_1 follows it.
    n.d1.ip(&["link", "set", "eth1", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || both(&n.d2)
            && !has_addr(&n.d1, "eth0", VIP)),
        "the group did not fail over together: d1 {} {}, d2 {} {}\n{}",
        has_addr(&n.d1, "eth0", VIP),
        has_addr(&n.d1, "eth1", GATEWAY),
        has_addr(&n.d2, "eth0", VIP),
        has_addr(&n.d2, "eth1", GATEWAY),
        logs(&[&log1, &log2])
    );
    assert!(
        wait_for(Duration::from_secs(2), || events(&ev1)
            .contains("GROUP G1 FAULT 0")
            && events(&ev2).contains("GROUP G1 MASTER 0")),
        "d1: {:?}, d2: {:?}",
        events(&ev1),
        events(&ev2)
    );

    // The link is back: the group leaves FAULT and d1 preempts with both.
    n.d1.ip(&["link", "set", "eth1", "up"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || both(&n.d1) && none(&n.d2)),
        "d1 did not take both addresses back: d1 {} {}, d2 {} {}\n{}",
        has_addr(&n.d1, "eth0", VIP),
        has_addr(&n.d1, "eth1", GATEWAY),
        has_addr(&n.d2, "eth0", VIP),
        has_addr(&n.d2, "eth1", GATEWAY),
        logs(&[&log1, &log2])
    );
    assert!(
        wait_for(Duration::from_secs(2), || events(&ev1)
            .ends_with("GROUP G1 MASTER 0\n")
            && events(&ev2).ends_with("GROUP G1 BACKUP 0\n")),
        "d1: {:?}, d2: {:?}",
        events(&ev1),
        events(&ev2)
    );
    // Out of FAULT, the whole group waited for the table: whichever member
    // left FAULT first closed the gate for both.
    let lines = log_lines(&log1);
    let fault = lines
        .iter()
        .rposition(|l| l.contains("VRRP state") && l.contains("to=\"FAULT\""))
        .expect("d1 went to FAULT");
    let after = &lines[fault..];
    let master = line_of(after, &["VRRP state", "to=\"MASTER\""]);
    let complete = line_of(after, &["resync complete"]);
    assert!(
        master.is_some() && complete.is_some() && complete < master,
        "after FAULT: resync complete at {complete:?}, MASTER at {master:?}\n{}",
        logs(&[&log1])
    );
    for inst in ["VI_1", "VI_2"] {
        let ready = line_of(after, &["ready gate open", inst]);
        assert!(
            ready.is_some() && ready < master,
            "after FAULT, {inst}: ready gate open at {ready:?}, MASTER at {master:?}\n{}",
            logs(&[&log1])
        );
    }
}
