//! LVS-DR and LVS-NAT end to end through the AF_XDP backend, in a namespace
//! topology (root only: fails under CI=true when not root): requests from
//! the client reach the real servers in round-robin order, and what the
//! data plane does not own (ARP, the director's own connections, its
//! conversations with the real servers) still reaches the kernel.
#![cfg(feature = "xdp")]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rvs_api::Control;
use rvs_core::model::Forward;
use rvs_dataplane::{Backend, Dataplane, DataplaneConfig};
use rvs_forward::Neighbours;
use rvs_sys::xdp_filter::ClaimKind;
use rvs_testkit::{
    Backend as HttpBackend, CLIENT, DIRECTOR_LAN, DIRECTOR_LAN_IF, DIRECTOR_PRIVATE_IF, Topology,
    TopologySpec, http_get, root_or_skip, vip, wait_for,
};

fn cmd(line: &str) -> rvs_ipvsadm::Command {
    rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

struct Setup {
    // Drop order: data plane, backends, then the namespaces.
    dp: Dataplane,
    _backends: Vec<HttpBackend>,
    t: Topology,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.dp.stop();
    }
}

fn setup(tag: &str, rules: &[&str]) -> Setup {
    setup_on(tag, rules, "0.0.0.0:80")
}

/// [`setup`] with the real servers' HTTP backends listening on `listen`.
fn setup_on(tag: &str, rules: &[&str], listen: &str) -> Setup {
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
    let backends: Vec<HttpBackend> = t
        .servers
        .iter()
        .enumerate()
        .map(|(i, rs)| {
            HttpBackend::start(&rs.ns, &format!("rs{i}"), listen.parse().unwrap()).unwrap()
        })
        .collect();
    let instance = format!("{tag}{}", std::process::id());
    let dp = t
        .director
        .within(move || {
            Dataplane::start(DataplaneConfig {
                backend: Backend::AfXdp,
                interfaces: vec![DIRECTOR_LAN_IF.into(), DIRECTOR_PRIVATE_IF.into()],
                workers: 1,
                instance,
                ..DataplaneConfig::default()
            })
        })
        .unwrap()
        .unwrap();
    let cmds: Vec<_> = rules.iter().map(|l| cmd(l)).collect();
    dp.apply(&cmds).unwrap();
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
        _backends: backends,
        t,
    }
}

fn requests(s: &Setup, port: u16, n: usize) -> Vec<String> {
    requests_to(s, vip(port), n)
}

fn requests_to(s: &Setup, to: SocketAddr, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            http_get(&s.t.client, to, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("request {i}: {e}; counters {:?}", s.dp.counters()))
        })
        .collect()
}

/// Exact round robin: the two servers alternate, each saw the client.
fn check_rr(answers: &[String]) {
    check_rr_from(answers, CLIENT.into());
}

fn check_rr_from(answers: &[String], client: IpAddr) {
    for a in answers {
        assert!(
            a.ends_with(&format!(" {client}\n")),
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

/// A TCP exchange from the client to a listener on the director's own LAN
/// address: ARP and the director's own traffic pass the XDP program.
fn director_own_traffic_passes(s: &Setup) {
    let listener =
        s.t.director
            .within(|| std::net::TcpListener::bind((DIRECTOR_LAN, 7070)).unwrap())
            .unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        c.write_all(&b).unwrap();
    });
    let echoed =
        s.t.client
            .within(|| {
                let mut c = std::net::TcpStream::connect_timeout(
                    &SocketAddr::from((DIRECTOR_LAN, 7070)),
                    Duration::from_secs(5),
                )?;
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                c.write_all(b"ping")?;
                let mut b = [0u8; 4];
                c.read_exact(&mut b)?;
                Ok::<_, std::io::Error>(b)
            })
            .unwrap()
            .expect("the director's own listener answers");
    assert_eq!(&echoed, b"ping");
    server.join().unwrap();
}

#[test]
fn af_xdp_direct_routing_round_robin_and_other_traffic_passes() {
    if !root_or_skip("AF_XDP DR") {
        return;
    }
    let s = setup(
        "xdr",
        &[
            "-A -t 203.0.113.10:80 -s rr",
            "-a -t 203.0.113.10:80 -r 192.0.2.21",
            "-a -t 203.0.113.10:80 -r 192.0.2.22",
        ],
    );
    let claims = s.dp.xdp_claims();
    assert!(
        claims
            .iter()
            .any(|k| k.kind == ClaimKind::Service && k.port == 80),
        "{claims:?}"
    );
    let answers = requests(&s, 80, 6);
    check_rr(&answers);
    let svc = &s.dp.services()[0];
    assert!(svc.dests.iter().all(|d| d.config.forward == Forward::Route));
    assert_eq!(svc.stats.conns, 6);
    let c = s.dp.counters();
    assert!(c.rx_frames >= 6 * 3, "frames came through AF_XDP: {c:?}");
    assert!(c.forward.forwarded_in >= 6 * 3, "{c:?}");
    assert_eq!(c.tx_errors, 0, "{c:?}");
    director_own_traffic_passes(&s);
    // Deleting the service empties the claim map's service entries.
    s.dp.apply(&[cmd("-D -t 203.0.113.10:80")]).unwrap();
    assert!(
        !s.dp
            .xdp_claims()
            .iter()
            .any(|k| k.kind == ClaimKind::Service),
        "{:?}",
        s.dp.xdp_claims()
    );
    s.dp.stop();
    let tables = s.t.director.exec("nft", &["list", "tables"]).unwrap();
    assert!(!tables.contains("rvs_"), "{tables}");
    let xdp =
        s.t.director
            .exec("ip", &["link", "show", DIRECTOR_LAN_IF])
            .unwrap();
    assert!(!xdp.contains("xdp"), "the program is detached: {xdp}");
}

#[test]
fn af_xdp_nat_round_robin_and_the_directors_own_server_traffic_passes() {
    if !root_or_skip("AF_XDP NAT") {
        return;
    }
    let s = setup(
        "xnat",
        &[
            "-A -t 203.0.113.10:8080 -s rr",
            "-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m",
        ],
    );
    let answers = requests(&s, 8080, 6);
    check_rr(&answers);
    let c = s.dp.counters();
    assert!(
        c.forward.forwarded_out >= 6 * 2,
        "replies went through the director: {c:?}"
    );
    assert_eq!(c.tx_errors, 0, "{c:?}");
    // The director's own request to a masq server (a health check's
    // path): its replies come from a claimed source but are addressed to
    // the director, so the program passes them to the kernel.
    let direct = http_get(
        &s.t.director,
        "198.51.100.21:80".parse().unwrap(),
        Duration::from_secs(5),
    )
    .expect("the director reaches a masq server itself");
    assert!(direct.starts_with("rs0 "), "{direct:?}");
    director_own_traffic_passes(&s);
}

#[test]
fn af_xdp_ipv6_direct_routing_and_nat_round_robin() {
    if !root_or_skip("AF_XDP IPv6 DR and NAT") {
        return;
    }
    let s = setup_on(
        "xv6",
        &[
            "-A -t [2001:db8:ffff::10]:80 -s rr",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::21]:80 -g",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::22]:80 -g",
            "-A -t [2001:db8:ffff::10]:8080 -s rr",
            "-a -t [2001:db8:ffff::10]:8080 -r [2001:db8:1::21]:80 -m",
            "-a -t [2001:db8:ffff::10]:8080 -r [2001:db8:1::22]:80 -m",
        ],
        "[::]:80",
    );
    let dr = requests_to(&s, rvs_testkit::vip6(80), 6);
    check_rr_from(&dr, rvs_testkit::CLIENT6.into());
    let nat = requests_to(&s, rvs_testkit::vip6(8080), 6);
    check_rr_from(&nat, rvs_testkit::CLIENT6.into());
    let c = s.dp.counters();
    assert!(
        c.forward.forwarded_out >= 6 * 2,
        "NAT replies went through the director: {c:?}"
    );
    assert_eq!(c.tx_errors, 0, "{c:?}");
}
