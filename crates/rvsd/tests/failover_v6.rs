//! VRRPv3 over IPv6 between network namespaces on one bridge (root only):
//! two rvsd directors with the master killed (takeover within the bound,
//! unsolicited neighbour advertisements for the virtual address on the
//! wire), and rvsd against keepalived 2.2.7 over IPv6.

mod common;

use std::net::Ipv6Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Dir;
use common::logs;
use rvs_testkit::{ChildGuard, Netns, root_or_skip, wait_for};

const VIP6: &str = "2001:db8::100";

/// Namespaces on one bridge: a switch namespace holding the bridge, and
/// hosts with `eth0` at 2001:db8::(i+1)/64 plus its link-local address,
/// duplicate address detection off so addresses are usable at once.
struct Lan6 {
    // Hosts first: they are deleted before the switch.
    hosts: Vec<Netns>,
    _switch: Netns,
}

fn unique(tag: &str) -> String {
    common::pair::unique("f6", tag)
}

impl Lan6 {
    fn new(tag: &str, hosts: usize) -> Lan6 {
        let base = unique(tag);
        let switch = common::pair::switch(&base);
        let mut hs = Vec::new();
        for i in 0..hosts {
            let h = Netns::new(&format!("{base}h{i}")).unwrap();
            // Taken by eth0 when it arrives in the namespace.
            h.sysctl("net.ipv6.conf.default.accept_dad", "0").unwrap();
            h.sysctl("net.ipv6.conf.all.accept_dad", "0").unwrap();
            let port = format!("p{i}");
            switch
                .ip(&[
                    "link",
                    "add",
                    &port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    h.name(),
                ])
                .unwrap();
            switch
                .ip(&["link", "set", &port, "master", "br0", "up"])
                .unwrap();
            h.ip(&[
                "addr",
                "add",
                &format!("2001:db8::{}/64", i + 1),
                "dev",
                "eth0",
                "nodad",
            ])
            .unwrap();
            h.ip(&["link", "set", "eth0", "up"]).unwrap();
            hs.push(h);
        }
        for h in &hs {
            assert!(
                wait_for(Duration::from_secs(10), || link_local(h).is_some()),
                "no link-local address on eth0 of {}",
                h.name()
            );
        }
        Lan6 {
            hosts: hs,
            _switch: switch,
        }
    }
}

fn addrs(ns: &Netns) -> Vec<(Ipv6Addr, String)> {
    let out = ns
        .ip(&["-j", "-6", "addr", "show", "dev", "eth0"])
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let mut r = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                let flags = a
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .filter(|k| o[*k] == serde_json::Value::Bool(true))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                r.push((ip, flags));
            }
        }
    }
    r
}

fn link_local(ns: &Netns) -> Option<Ipv6Addr> {
    addrs(ns)
        .into_iter()
        .map(|(a, _)| a)
        .find(|a| a.segments()[0] == 0xfe80)
}

fn has_vip(ns: &Netns) -> bool {
    let vip: Ipv6Addr = VIP6.parse().unwrap();
    addrs(ns).iter().any(|(a, _)| *a == vip)
}

fn mac(ns: &Netns) -> [u8; 6] {
    let out = ns.ip(&["-j", "link", "show", "dev", "eth0"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = v[0]["address"].as_str().unwrap();
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap();
    }
    m
}

fn rvsd_config(priority: u8, advert_int: &str, extra: &str) -> String {
    format!(
        r#"
[[vrrp_instance]]
name = "VI_6"
interface = "eth0"
virtual_router_id = 61
priority = {priority}
advert_int = {advert_int}
virtual_ipaddress = ["{VIP6}/64"]
{extra}
"#
    )
}

/// rvsd in `ns` with `config`; its standard error goes to `log`.
fn start_rvsd(ns: &Netns, dir: &Dir, name: &str, config: &str) -> (ChildGuard, PathBuf) {
    let conf = dir.file(&format!("{name}.toml"), config);
    let log = dir.0.join(format!("{name}.log"));
    let child = ns
        .command(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--config"])
        .arg(&conf)
        .args(["--no-metrics", "--control"])
        .arg(dir.0.join(format!("{name}.sock")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (ChildGuard(child), log)
}

fn log_has(p: &Path, what: &str) -> bool {
    std::fs::read_to_string(p).is_ok_and(|s| s.contains(what))
}

/// An advert seen on the segment.
#[derive(Debug, Clone, Copy)]
struct SeenAdvert {
    at: Instant,
    src: Ipv6Addr,
    hops: Option<u8>,
    priority: u8,
}

/// A neighbour advertisement frame captured on the segment.
#[derive(Debug, Clone, Copy)]
struct SeenNa {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hops: u8,
    target: Ipv6Addr,
    override_flag: bool,
    lladdr: [u8; 6],
}

/// A neighbour advertisement in an Ethernet frame (no extension headers).
fn parse_na(f: &[u8]) -> Option<SeenNa> {
    if f.len() < 14 + 40 + 32 || f[12..14] != [0x86, 0xdd] {
        return None;
    }
    let ip = &f[14..];
    let icmp = &ip[40..];
    if ip[6] != 58 || icmp[0] != 136 {
        return None;
    }
    let a16 = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap());
    let mut lladdr = [0u8; 6];
    if icmp.len() >= 32 && icmp[24] == 2 && icmp[25] == 1 {
        lladdr.copy_from_slice(&icmp[26..32]);
    }
    Some(SeenNa {
        eth_dst: f[0..6].try_into().unwrap(),
        eth_src: f[6..12].try_into().unwrap(),
        src: a16(&ip[8..24]),
        dst: a16(&ip[24..40]),
        hops: ip[7],
        target: a16(&icmp[8..24]),
        override_flag: icmp[4] & 0x20 != 0,
        lladdr,
    })
}

#[derive(Default)]
struct Seen {
    adverts: Vec<SeenAdvert>,
    nas: Vec<SeenNa>,
}

/// Listens in `ns` (an observer on the bridge) for VRRP adverts on
/// ff02::12, and captures neighbour advertisement frames with an AF_PACKET
/// socket, until `stop`.
fn observe(
    ns: &Netns,
    stop: Arc<AtomicBool>,
) -> (
    Arc<Mutex<Seen>>,
    std::thread::JoinHandle<std::io::Result<()>>,
) {
    use socket2::{Domain, Protocol, Socket, Type};
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let out = seen.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = ns.thread(move || {
        let ifindex = rvs_sys::iface::index("eth0").unwrap();
        let vrrp = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112))).unwrap();
        vrrp.join_multicast_v6(&"ff02::12".parse().unwrap(), ifindex)
            .unwrap();
        rvs_sys::ip6::enable_recv_info(vrrp.as_fd()).unwrap();
        vrrp.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut capture =
            rvs_sys::packet::PacketSocket::open(ifindex, &rvs_sys::packet::RingConfig::default())
                .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            if let Ok(r) = rvs_sys::ip6::recv_with_info(vrrp.as_fd(), &mut buf)
                && r.len >= 8
            {
                out.lock().unwrap().adverts.push(SeenAdvert {
                    at: Instant::now(),
                    src: r.src,
                    hops: r.hop_limit,
                    priority: buf[2],
                });
            }
            while let Some(mut b) = capture.rx().next_block() {
                while let Some((frame, _)) = b.next() {
                    if let Some(na) = parse_na(frame) {
                        out.lock().unwrap().nas.push(na);
                    }
                }
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (seen, h)
}

/// Two rvsd directors over IPv6; the master is killed with SIGKILL and its
/// link goes down: the backup holds the VIP within 3 × advert_int + skew +
/// 200 ms of the last advert it received, its adverts come from its
/// link-local address with hop limit 255, and it announces the VIP with
/// unsolicited neighbour advertisements (Override set, its own MAC).
#[test]
fn ipv6_backup_takes_over_within_the_bound_and_sends_neighbour_adverts() {
    if !root_or_skip("ipv6_backup_takes_over_within_the_bound_and_sends_neighbour_adverts") {
        return;
    }
    let lan = Lan6::new("t", 3);
    let dir = Dir::new();
    let (m, b, obs) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, watcher) = observe(obs, stop.clone());
    let advert_ms = 100u64;
    let backup_prio = 100u64;
    let (mut master, mlog) = start_rvsd(m, &dir, "master", &rvsd_config(200, "0.1", ""));
    assert!(
        wait_for(Duration::from_secs(10), || has_vip(m)),
        "{}",
        logs(&[&mlog])
    );
    let (_backup, blog) = start_rvsd(b, &dir, "backup", &rvsd_config(100, "0.1", ""));
    assert!(
        wait_for(Duration::from_secs(10), || log_has(&blog, "BACKUP")),
        "{}",
        logs(&[&mlog, &blog])
    );
    let master_ll = link_local(m).unwrap();
    let backup_ll = link_local(b).unwrap();
    // The backup follows the master: several adverts later it still has no VIP.
    let n0 = seen.lock().unwrap().adverts.len();
    assert!(wait_for(Duration::from_secs(5), || seen
        .lock()
        .unwrap()
        .adverts
        .len()
        >= n0 + 5));
    assert!(has_vip(m) && !has_vip(b), "{}", logs(&[&mlog, &blog]));
    // The virtual address is usable at once (added with nodad).
    let vip: Ipv6Addr = VIP6.parse().unwrap();
    let flags = addrs(m)
        .into_iter()
        .find(|(a, _)| *a == vip)
        .map(|(_, f)| f)
        .unwrap();
    assert!(!flags.contains("tentative"), "VIP flags: {flags}");

    let pid = master.pid().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    m.ip(&["link", "set", "eth0", "down"]).unwrap();
    let _ = master.0.wait();
    assert!(
        wait_for(Duration::from_secs(5), || has_vip(b)),
        "the backup never took the VIP\n{}",
        logs(&[&mlog, &blog])
    );
    let bmac = mac(b);
    // The new master's adverts and its first burst of neighbour adverts
    // (garp_master_repeat = 5) reach the observer.
    assert!(
        wait_for(Duration::from_secs(3), || {
            let s = seen.lock().unwrap();
            s.adverts.iter().any(|a| a.src == backup_ll)
                && s.nas
                    .iter()
                    .filter(|n| n.target == vip && n.eth_src == bmac)
                    .count()
                    >= 5
        }),
        "no adverts or neighbour advertisements from the new master\n{}",
        logs(&[&mlog, &blog])
    );
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap().unwrap();

    let s = seen.lock().unwrap();
    for a in &s.adverts {
        assert_eq!(a.hops, Some(255), "advert hop limit: {a:?}");
        assert_eq!(a.src.segments()[0], 0xfe80, "advert source: {a:?}");
    }
    // Every neighbour advertisement for the VIP on the wire: to all nodes
    // (33:33:00:00:00:01, ff02::1), hop limit 255, Override set, from the
    // link-local address and MAC of the director that sent it, naming that
    // MAC as the target's link-layer address.
    let nas: Vec<_> = s.nas.iter().filter(|n| n.target == vip).collect();
    assert!(nas.len() >= 5, "{nas:?}");
    for n in nas {
        assert_eq!(n.eth_dst, [0x33, 0x33, 0, 0, 0, 1], "{n:?}");
        assert_eq!(n.dst, "ff02::1".parse::<Ipv6Addr>().unwrap(), "{n:?}");
        assert_eq!(n.hops, 255, "{n:?}");
        assert!(n.override_flag, "{n:?}");
        assert_eq!(n.lladdr, n.eth_src, "{n:?}");
        assert!(n.src == backup_ll || n.src == master_ll, "{n:?}");
    }
    let last_master = s
        .adverts
        .iter()
        .filter(|a| a.src == master_ll && a.priority == 200)
        .map(|a| a.at)
        .max()
        .expect("the observer saw the master's adverts");
    let first_backup = s
        .adverts
        .iter()
        .filter(|a| a.src == backup_ll)
        .map(|a| a.at)
        .min()
        .expect("the observer saw the new master's adverts");
    let takeover = first_backup.duration_since(last_master);
    let skew = (256 - backup_prio) * advert_ms / 256;
    let bound = Duration::from_millis(3 * advert_ms + skew + 200);
    eprintln!(
        "IPv6 takeover: {} ms after the last advert of the master (bound {} ms)",
        takeover.as_millis(),
        bound.as_millis()
    );
    assert!(
        takeover <= bound,
        "takeover took {takeover:?}, more than {bound:?}\n{}",
        logs(&[&mlog, &blog])
    );
    assert!(
        takeover >= Duration::from_millis(3 * advert_ms),
        "takeover after {takeover:?}: sooner than 3 intervals"
    );
}

fn keepalived_or_skip(test: &str) -> bool {
    if rvs_testkit::have("keepalived") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs keepalived and CI=true: failing rather than skipping"
    );
    eprintln!("SKIPPED {test}: keepalived is not installed");
    false
}

/// keepalived 2.2.7 in `ns` with one IPv6 instance.
fn start_keepalived(ns: &Netns, dir: &Dir, name: &str, priority: u8) -> (ChildGuard, PathBuf) {
    let conf = dir.file(
        &format!("{name}.conf"),
        &format!(
            "global_defs {{\n  router_id {name}\n  vrrp_version 3\n}}\n\
             vrrp_instance VI_6 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  \
             priority {priority}\n  advert_int 0.2\n  virtual_ipaddress {{\n    {VIP6}/64\n  }}\n}}\n"
        ),
    );
    let log = dir.0.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = ns
        .command("keepalived")
        .args(["-n", "-l", "-D", "-P", "-R", "-f"])
        .arg(&conf)
        .arg("-p")
        .arg(dir.0.join(format!("{name}.pid")))
        .arg("-r")
        .arg(dir.0.join(format!("{name}.vrrp.pid")))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    (ChildGuard(child), log)
}

/// keepalived (lower) is master over IPv6; rvsd (higher) starts and
/// preempts it; then rvsd stops (priority 0) and keepalived takes the VIP
/// back.
#[test]
fn rvsd_and_keepalived_hand_an_ipv6_vip_over_both_ways() {
    let t = "rvsd_and_keepalived_hand_an_ipv6_vip_over_both_ways";
    if !root_or_skip(t) || !keepalived_or_skip(t) {
        return;
    }
    let lan = Lan6::new("k", 2);
    let dir = Dir::new();
    let (k, r) = (&lan.hosts[0], &lan.hosts[1]);
    let (_ka, klog) = start_keepalived(k, &dir, "ka", 100);
    assert!(
        wait_for(Duration::from_secs(10), || has_vip(k)),
        "keepalived alone never became master\n{}",
        logs(&[&klog])
    );
    let (mut rvsd, rlog) = start_rvsd(r, &dir, "rvsd", &rvsd_config(150, "0.2", ""));
    assert!(
        wait_for(Duration::from_secs(10), || has_vip(r) && !has_vip(k)),
        "rvsd did not preempt keepalived over IPv6\n{}",
        logs(&[&klog, &rlog])
    );
    assert!(rvsd.terminate(Duration::from_secs(10)));
    assert!(
        wait_for(Duration::from_secs(5), || has_vip(k) && !has_vip(r)),
        "keepalived did not take the VIP back\n{}",
        logs(&[&klog, &rlog])
    );
}

/// rvsd alone is master over IPv6; keepalived starts with a higher
/// priority and preempts it.
#[test]
fn keepalived_preempts_rvsd_over_ipv6() {
    let t = "keepalived_preempts_rvsd_over_ipv6";
    if !root_or_skip(t) || !keepalived_or_skip(t) {
        return;
    }
    let lan = Lan6::new("q", 2);
    let dir = Dir::new();
    let (k, r) = (&lan.hosts[0], &lan.hosts[1]);
    let (_rvsd, rlog) = start_rvsd(r, &dir, "rvsd", &rvsd_config(100, "0.2", ""));
    assert!(
        wait_for(Duration::from_secs(10), || has_vip(r)),
        "rvsd alone never became master\n{}",
        logs(&[&rlog])
    );
    let (_ka, klog) = start_keepalived(k, &dir, "ka", 150);
    assert!(
        wait_for(Duration::from_secs(10), || has_vip(k) && !has_vip(r)),
        "keepalived did not preempt rvsd over IPv6\n{}",
        logs(&[&klog, &rlog])
    );
}

/// IPv6 unicast peers: adverts go from `unicast_src_ip` (a global address)
/// to the peer only, never to ff02::12; the backup follows the master and
/// takes over when it is killed.
#[test]
fn ipv6_unicast_peers_elect_and_take_over() {
    if !root_or_skip("ipv6_unicast_peers_elect_and_take_over") {
        return;
    }
    let lan = Lan6::new("u", 3);
    let dir = Dir::new();
    let (m, b, obs) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, watcher) = observe(obs, stop.clone());
    let peer = |me: u8, other: u8| {
        format!("unicast_src_ip = \"2001:db8::{me}\"\nunicast_peer = [\"2001:db8::{other}\"]\n")
    };
    let (mut master, mlog) = start_rvsd(m, &dir, "master", &rvsd_config(200, "0.1", &peer(1, 2)));
    assert!(
        wait_for(Duration::from_secs(10), || has_vip(m)),
        "{}",
        logs(&[&mlog])
    );
    let (_backup, blog) = start_rvsd(b, &dir, "backup", &rvsd_config(100, "0.1", &peer(2, 1)));
    assert!(
        wait_for(Duration::from_secs(10), || log_has(&blog, "BACKUP")),
        "{}",
        logs(&[&mlog, &blog])
    );
    // The backup keeps following: well past its master-down interval
    // (0.36 s) it still has no VIP, the master's adverts reaching it.
    assert!(
        !wait_for(Duration::from_millis(800), || has_vip(b)),
        "the backup did not hear the master's unicast adverts\n{}",
        logs(&[&mlog, &blog])
    );
    assert!(has_vip(m), "{}", logs(&[&mlog, &blog]));

    let pid = master.pid().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    m.ip(&["link", "set", "eth0", "down"]).unwrap();
    let _ = master.0.wait();
    assert!(
        wait_for(Duration::from_secs(5), || has_vip(b)),
        "the backup never took the VIP\n{}",
        logs(&[&mlog, &blog])
    );
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap().unwrap();
    let s = seen.lock().unwrap();
    assert!(
        s.adverts.is_empty(),
        "unicast instances sent to ff02::12: {:?}",
        s.adverts
    );
}
