//! A long TCP transfer through a VIP survives a director failover (root
//! only): two rvsd directors on the packet data plane (direct routing),
//! VRRP holding the client's next hop (192.0.2.1), and `[sync]` following
//! the VRRP state, so the backup knows the connection when it takes over.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Dir;
use common::logs;
use common::pair::has_addr;
use rvs_testkit::{ChildGuard, Netns, root_or_skip, wait_for};

const ROUTER: &str = "192.0.2.1";
const CLIENT: &str = "192.0.2.10";
const SERVER: &str = "192.0.2.21";
const VIP: &str = "203.0.113.10";
/// 16 KiB × 1200 every 5 ms: about 19 MB over at least 6 s.
const CHUNK: usize = 16 * 1024;
const CHUNKS: usize = 1200;

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

fn build() -> Net {
    let base = format!("fs{}", std::process::id());
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
    // The client reaches the VIPs through the VRRP address; it takes the
    // new master's gratuitous ARP at once.
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

fn config(priority: u8) -> String {
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
"#
    )
}

fn start_rvsd(
    ns: &Netns,
    dir: &Dir,
    name: &str,
    priority: u8,
) -> (ChildGuard, std::path::PathBuf, std::path::PathBuf) {
    let conf = dir.file(&format!("{name}.toml"), &config(priority));
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
        .arg("--no-metrics")
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

#[test]
fn a_long_transfer_survives_the_failover() {
    if !root_or_skip("a_long_transfer_survives_the_failover") {
        return;
    }
    assert!(
        rvs_testkit::have("nft") && rvs_testkit::have("ethtool"),
        "nft and ethtool needed"
    );
    let n = build();
    let dir = Dir::new();

    // The real server streams CHUNKS × CHUNK bytes to its first client.
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = stop.clone();
    let server = n.rs.thread(move || -> std::io::Result<()> {
        let l = TcpListener::bind("0.0.0.0:80")?;
        l.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if server_stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                        return Err(std::io::Error::other("no client"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        s.set_nonblocking(false)?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        let chunk = vec![0x5au8; CHUNK];
        for _ in 0..CHUNKS {
            s.write_all(&chunk)?;
            std::thread::sleep(Duration::from_millis(5));
        }
        s.shutdown(std::net::Shutdown::Write)?;
        Ok(())
    });

    let (mut d1, sock1, log1) = start_rvsd(&n.d1, &dir, "d1", 150);
    assert!(
        wait_for(Duration::from_secs(10), || has(&n.d1, ROUTER)),
        "d1 never became master\n{}",
        logs(&[&log1])
    );
    let (_d2, sock2, log2) = start_rvsd(&n.d2, &dir, "d2", 100);
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
    let l1 = rt.block_on(c1.daemons()).unwrap();
    assert_eq!(
        l1.daemons.iter().map(|d| d.list_line()).collect::<String>(),
        "master sync daemon (mcast=eth0, syncid=1)\n"
    );
    assert!(!has(&n.d2, ROUTER));

    let client = n.client.thread(|| -> std::io::Result<(usize, Instant)> {
        let addr: SocketAddr = format!("{VIP}:80").parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        let mut buf = vec![0u8; 65536];
        let mut total = 0;
        loop {
            let k = s.read(&mut buf)?;
            if k == 0 {
                return Ok((total, Instant::now()));
            }
            total += k;
        }
    });

    // The backup learns the connection from the master's sync messages
    // (the kernel's threshold: the 3rd client packet; a partly filled
    // message leaves within 2 s).
    let client_ip: Ipv4Addr = CLIENT.parse().unwrap();
    assert!(
        wait_for(Duration::from_secs(6), || rt
            .block_on(c2.connections())
            .is_ok_and(|l| l
                .connections
                .iter()
                .any(|c| c.client.ip() == std::net::IpAddr::V4(client_ip)))),
        "the backup never learnt the connection\n{}",
        logs(&[&log1, &log2])
    );

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
        logs(&[&log2])
    );
    let took_over = killed_at.elapsed();

    let result = client.join().unwrap().unwrap();
    stop.store(true, Ordering::SeqCst);
    let served = server.join().unwrap().unwrap();
    let (total, ended) = result.unwrap_or_else(|e| {
        panic!(
            "the transfer broke: {e} (server: {served:?})\n{}",
            logs(&[&log1, &log2])
        )
    });
    assert_eq!(total, CHUNK * CHUNKS, "every byte arrived");
    assert!(
        ended > killed_at + took_over,
        "the transfer ended before the takeover: nothing was tested"
    );
    eprintln!(
        "transfer of {total} bytes survived the failover; d2 held the VIP {} ms after the kill",
        took_over.as_millis()
    );
}
