//! LVS-DR and LVS-NAT end to end through the packet data plane, in a
//! namespace topology (root only): the data plane runs in the director's
//! namespace, the client's requests go to the VIP, the real servers answer.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use rvs_api::Control;
use rvs_core::model::Forward;
use rvs_dataplane::{Dataplane, DataplaneConfig};
use rvs_forward::Neighbours;
use rvs_sys::packet::{RxLayout, TxMode};
use rvs_testkit::{
    Backend, CLIENT, DIRECTOR_LAN_IF, DIRECTOR_PRIVATE_IF, Topology, TopologySpec, http_get,
    root_or_skip, vip, wait_for,
};

fn cmd(line: &str) -> rvs_ipvsadm::Command {
    rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

struct Setup {
    // Drop order: data plane, backends, then the namespaces.
    dp: Dataplane,
    decaps: Vec<rvs_testkit::Decapsulator>,
    _backends: Vec<Backend>,
    t: Topology,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.dp.stop();
    }
}

fn setup(tag: &str, rules: &[&str]) -> Setup {
    setup_with(tag, rules, |_| Vec::new())
}

fn setup_with(
    tag: &str,
    rules: &[&str],
    extra: impl FnOnce(&Topology) -> Vec<rvs_testkit::Decapsulator>,
) -> Setup {
    setup_tuned(tag, rules, extra, |_| {})
}

fn setup_tuned(
    tag: &str,
    rules: &[&str],
    extra: impl FnOnce(&Topology) -> Vec<rvs_testkit::Decapsulator>,
    tune: impl FnOnce(&mut DataplaneConfig) + Send + 'static,
) -> Setup {
    assert!(
        rvs_testkit::have("ethtool"),
        "ethtool is needed (apt-get install ethtool)"
    );
    assert!(
        rvs_testkit::have("nft"),
        "nft is needed (apt-get install nftables)"
    );
    let t = Topology::build(&TopologySpec {
        tag: tag.into(),
        servers: 2,
        offloads_off: true,
    })
    .unwrap();
    let backends: Vec<Backend> = t
        .servers
        .iter()
        .enumerate()
        .map(|(i, rs)| {
            Backend::start(&rs.ns, &format!("rs{i}"), "0.0.0.0:80".parse().unwrap()).unwrap()
        })
        .collect();
    let decaps = extra(&t);
    let instance = format!("{tag}{}", std::process::id());
    let dp = t
        .director
        .within(move || {
            let mut cfg = DataplaneConfig {
                interfaces: vec![DIRECTOR_LAN_IF.into(), DIRECTOR_PRIVATE_IF.into()],
                workers: 2,
                instance,
                ..DataplaneConfig::default()
            };
            tune(&mut cfg);
            Dataplane::start(cfg)
        })
        .unwrap()
        .unwrap();
    let cmds: Vec<_> = rules.iter().map(|l| cmd(l)).collect();
    dp.apply(&cmds).unwrap();
    // The real servers are resolved as soon as they are configured.
    let servers: Vec<IpAddr> = dp
        .services()
        .iter()
        .flat_map(|s| s.dests.iter().map(|d| d.config.addr))
        .collect();
    assert!(
        wait_for(Duration::from_secs(10), || servers.iter().all(|a| dp
            .neighbours()
            .next_hop(*a)
            .is_some_and(|n| n.dst_mac.is_some()))),
        "real servers resolved"
    );
    Setup {
        dp,
        decaps,
        _backends: backends,
        t,
    }
}

/// `n` requests to the VIP, each on a new connection; the answers.
fn requests(s: &Setup, port: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            http_get(&s.t.client, vip(port), Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("request {i}: {e}; counters {:?}", s.dp.counters()))
        })
        .collect()
}

fn check_rr(answers: &[String]) {
    for a in answers {
        assert!(
            a.ends_with(&format!(" {CLIENT}\n")),
            "the server saw the client: {a:?}"
        );
    }
    let names: Vec<&str> = answers
        .iter()
        .map(|a| a.split(' ').next().unwrap())
        .collect();
    for w in names.windows(2) {
        assert_ne!(w[0], w[1], "round robin alternates: {names:?}");
    }
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 2, "{names:?}");
}

#[test]
fn direct_routing_round_robin_over_two_real_servers() {
    if !root_or_skip("packet DR") {
        return;
    }
    let s = setup(
        "dr",
        &[
            "-A -t 203.0.113.10:80 -s rr",
            // No method named: direct routing, as in ipvsadm.
            "-a -t 203.0.113.10:80 -r 192.0.2.21",
            "-a -t 203.0.113.10:80 -r 192.0.2.22",
        ],
    );
    let answers = requests(&s, 80, 6);
    check_rr(&answers);
    let svc = &s.dp.services()[0];
    assert!(svc.dests.iter().all(|d| d.config.forward == Forward::Route));
    assert_eq!(svc.stats.conns, 6);
    let c = s.dp.counters();
    assert!(c.forward.forwarded_in >= 6 * 3, "{c:?}");
    assert_eq!(
        c.forward.forwarded_out, 0,
        "DR replies bypass the director: {c:?}"
    );
    // Stopping removes the claim from the director's namespace.
    s.dp.stop();
    let tables = s.t.director.exec("nft", &["list", "tables"]).unwrap();
    assert!(!tables.contains("rvs_"), "{tables}");
}

#[test]
fn nat_round_robin_replies_come_back_from_the_vip() {
    if !root_or_skip("packet NAT") {
        return;
    }
    let s = setup(
        "nat",
        &[
            "-A -t 203.0.113.10:8080 -s rr",
            "-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m",
        ],
    );
    // A completed TCP exchange with 203.0.113.10:8080 means the client saw
    // every reply come from the VIP.
    let answers = requests(&s, 8080, 6);
    check_rr(&answers);
    let c = s.dp.counters();
    assert!(
        c.forward.forwarded_out >= 6 * 2,
        "replies went through the director: {c:?}"
    );
    let conns = s.dp.connections();
    assert!(!conns.is_empty());
}

#[test]
fn nat_through_block_rings_sendmmsg_and_busy_polling_workers() {
    if !root_or_skip("packet NAT, other ring modes") {
        return;
    }
    let s = setup_tuned(
        "natv3",
        &[
            "-A -t 203.0.113.10:8080 -s rr",
            "-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m",
        ],
        |_| Vec::new(),
        |cfg| {
            cfg.rings.rx_layout = RxLayout::Blocks;
            cfg.rings.tx_mode = TxMode::Copy;
            cfg.busy_poll_us = 50;
        },
    );
    let answers = requests(&s, 8080, 6);
    check_rr(&answers);
    let c = s.dp.counters();
    assert!(
        c.forward.forwarded_out >= 6 * 2,
        "replies went through the director: {c:?}"
    );
    assert_eq!(c.tx_errors, 0, "{c:?}");
}

#[test]
fn tunnel_round_robin_through_userspace_decapsulators() {
    if !root_or_skip("packet TUN") {
        return;
    }
    let mut s = setup_with(
        "tun",
        &[
            "-A -t 203.0.113.10:80 -s rr",
            "-a -t 203.0.113.10:80 -r 192.0.2.21 -i",
            "-a -t 203.0.113.10:80 -r 192.0.2.22 -i",
        ],
        |t| {
            t.servers
                .iter()
                .map(|rs| rvs_testkit::Decapsulator::start(&rs.ns, "eth0", Vec::new()).unwrap())
                .collect()
        },
    );
    let answers = requests(&s, 80, 6);
    check_rr(&answers);
    let c = s.dp.counters();
    assert!(c.forward.forwarded_in >= 6 * 3, "{c:?}");
    assert_eq!(
        c.forward.forwarded_out, 0,
        "TUN replies bypass the director: {c:?}"
    );
    for d in std::mem::take(&mut s.decaps) {
        assert!(
            d.stop().unwrap() >= 3 * 3,
            "each server decapsulated its share"
        );
    }
}

/// A datagram bigger than the real servers' segment (MTU 1280 on the
/// director's private interface) and sent without DF is fragmented by the
/// director, as the kernel's IPVS does: the real server's kernel reassembles
/// every fragment into the client's datagram, byte for byte.
#[test]
fn nat_fragments_datagrams_without_df_for_a_smaller_mtu() {
    if !root_or_skip("packet NAT fragmentation") {
        return;
    }
    const SIZE: usize = 1400;
    const ROUNDS: usize = 20;
    let s = setup_with(
        "frag",
        &[
            "-A -u 203.0.113.10:5353 -s rr",
            "-a -u 203.0.113.10:5353 -r 198.51.100.21:5353 -m",
        ],
        |t| {
            // Before the data plane starts: it reads the interface's MTU.
            t.director
                .ip(&["link", "set", DIRECTOR_PRIVATE_IF, "mtu", "1280"])
                .unwrap();
            // The client's datagrams leave without DF.
            t.client.sysctl("net.ipv4.ip_no_pmtu_disc", "1").unwrap();
            Vec::new()
        },
    );
    // The real server answers each datagram with its length and a digest.
    // Until told to stop (or 60 s); how many datagrams it answered.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let halt = stop.clone();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    // Bound to its private address: the answers leave from it, through
    // the director (an unbound socket would answer from the LAN address,
    // straight to the client).
    let private = s.t.servers[0].private;
    let server = s.t.servers[0].ns.thread(move || -> std::io::Result<usize> {
        let sock = std::net::UdpSocket::bind((private, 5353))?;
        let _ = bound_tx.send(());
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut buf = vec![0u8; 65_536];
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while !halt.load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < deadline
        {
            if let Ok((k, from)) = sock.recv_from(&mut buf) {
                sock.send_to(format!("{k} {}", digest(&buf[..k])).as_bytes(), from)?;
                served += 1;
            }
        }
        Ok(served)
    });
    bound_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the real server's socket is bound");
    let got =
        s.t.client
            .within(|| -> std::io::Result<Vec<String>> {
                let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
                sock.set_read_timeout(Some(Duration::from_secs(2)))?;
                sock.connect(vip(5353))?;
                let mut answers = Vec::new();
                let mut buf = [0u8; 256];
                for round in 0..ROUNDS {
                    let msg: Vec<u8> = (0..SIZE).map(|i| (i * 7 + round) as u8).collect();
                    // A lost datagram is sent again, at most 5 times.
                    let mut answer = None;
                    for _ in 0..5 {
                        sock.send(&msg)?;
                        if let Ok(k) = sock.recv(&mut buf) {
                            answer = Some(String::from_utf8_lossy(&buf[..k]).into_owned());
                            break;
                        }
                    }
                    let want = format!("{SIZE} {}", digest(&msg));
                    match answer {
                        Some(a) if a == want => answers.push(a),
                        other => {
                            return Err(std::io::Error::other(format!(
                                "round {round}: {other:?}, want {want:?}"
                            )));
                        }
                    }
                }
                Ok(answers)
            })
            .unwrap()
            .unwrap_or_else(|e| {
                let stats = s.t.servers[0]
                    .ns
                    .exec("nstat", &["-az"])
                    .unwrap_or_default();
                let stats: Vec<&str> = stats
                    .lines()
                    .filter(|l| l.contains("Reasm") || l.contains("Udp") || l.contains("IpIn"))
                    .collect();
                panic!(
                    "{e}; counters {:?}; the real server's IP and UDP counters {stats:?}",
                    s.dp.counters()
                )
            });
    assert_eq!(got.len(), ROUNDS);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let served = server.join().unwrap().unwrap().unwrap();
    assert!(served >= ROUNDS, "{served} datagrams served");
    let c = s.dp.counters();
    assert!(
        c.forward.fragmented >= ROUNDS as u64,
        "every datagram went out in fragments: {c:?}"
    );
}

/// FNV-1a of `b`: a lost, repeated or misplaced fragment changes it.
fn digest(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}
