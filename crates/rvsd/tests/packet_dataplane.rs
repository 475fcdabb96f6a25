//! `rvsd --dataplane packet` end to end in a namespace topology (root
//! only): a rules file with direct-routing servers (no method named, so
//! `-g` as in ipvsadm), NAT servers added through the control API as
//! `rvsadm` adds them, requests from the client to the VIP, the listing,
//! the metrics, and the nftables claim removed at exit.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use common::Dir;
use rvs_testkit::{
    Backend, CLIENT, ChildGuard, Topology, TopologySpec, http_get, root_or_skip, vip, wait_for,
};

fn cmd(line: &str) -> rvs_ipvsadm::Command {
    rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `n` requests; the names of the servers that answered, each answer
/// checked to carry the client's own address.
fn names(t: &Topology, port: u16, n: usize, log: &std::path::Path) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = http_get(&t.client, vip(port), Duration::from_secs(5)).unwrap_or_else(|e| {
                panic!(
                    "request {i} to port {port}: {e}\nrvsd log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            });
            assert!(body.ends_with(&format!(" {CLIENT}\n")), "{body:?}");
            body.split(' ').next().unwrap().to_string()
        })
        .collect()
}

fn alternates(names: &[String]) {
    for w in names.windows(2) {
        assert_ne!(w[0], w[1], "rr alternates: {names:?}");
    }
}

#[test]
fn rvsd_runs_dr_from_a_rules_file_and_nat_from_the_control_api() {
    if !root_or_skip("rvsd packet data plane") {
        return;
    }
    run("rvsd", "af_packet", "2");
}

/// The same through the AF_XDP backend (one worker: a veth has one
/// receive queue); the XDP program is on the interfaces while rvsd runs
/// and gone after it exits.
#[cfg(feature = "xdp")]
#[test]
fn rvsd_runs_dr_and_nat_through_the_af_xdp_backend() {
    if !root_or_skip("rvsd packet data plane, AF_XDP") {
        return;
    }
    run("rvsdx", "af_xdp", "1");
}

fn run(tag: &str, backend: &str, workers: &str) {
    assert!(
        rvs_testkit::have("nft") && rvs_testkit::have("ethtool"),
        "nft and ethtool needed"
    );
    let t = Topology::build(&TopologySpec {
        tag: tag.into(),
        servers: 2,
        offloads_off: true,
    })
    .unwrap();
    let _backends: Vec<Backend> = t
        .servers
        .iter()
        .enumerate()
        .map(|(i, rs)| {
            Backend::start(&rs.ns, &format!("rs{i}"), "0.0.0.0:80".parse().unwrap()).unwrap()
        })
        .collect();
    let dir = Dir::new();
    let rules = dir.file(
        "dr.rules",
        "-A -t 203.0.113.10:80 -s rr\n-a -t 203.0.113.10:80 -r 192.0.2.21\n-a -t 203.0.113.10:80 -r 192.0.2.22\n",
    );
    let sock = dir.0.join("control.sock");
    let log = dir.0.join("rvsd.log");
    let child = t
        .director
        .command(env!("CARGO_BIN_EXE_rvsd"))
        .args([
            "--dataplane",
            "packet",
            "--interface",
            "eth0,eth1",
            "--workers",
            workers,
            "--backend",
            backend,
        ])
        .arg("--rules")
        .arg(&rules)
        .arg("--control")
        .arg(&sock)
        .args(["--metrics", "127.0.0.1:9180"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut rvsd = ChildGuard(child);
    let client = rvs_control::Client::new(&sock);
    let rt = rt();
    assert!(
        wait_for(Duration::from_secs(20), || rt
            .block_on(client.services())
            .is_ok()),
        "rvsd answers on its control socket; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // As `rvsadm -A`/`-a` send them.
    rt.block_on(client.apply(&[
        cmd("-A -t 203.0.113.10:8080 -s rr"),
        cmd("-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m"),
        cmd("-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m"),
    ]))
    .unwrap();
    // An rvsadm command with no method gets -g here, as in ipvsadm.
    rt.block_on(client.apply(&[
        cmd("-A -t 203.0.113.10:81 -s rr"),
        cmd("-a -t 203.0.113.10:81 -r 192.0.2.21:8081"),
    ]))
    .unwrap();
    let list = rt.block_on(client.services()).unwrap();
    let rows: Vec<_> = list
        .services
        .iter()
        .map(|s| rvs_control::list_service(s).unwrap())
        .collect();
    let text = format!("{rows:?}");
    assert_eq!(text.matches("Route").count(), 3, "{text}");
    assert_eq!(text.matches("Masq").count(), 2, "{text}");

    let dr = names(&t, 80, 4, &log);
    alternates(&dr);
    let nat = names(&t, 8080, 4, &log);
    alternates(&nat);

    let list = rt.block_on(client.services()).unwrap();
    let conns: u64 = list.services.iter().map(|s| s.stats.conns).sum();
    assert_eq!(conns, 8, "{list:?}");

    let metrics = t
        .director
        .within(|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], 9180)),
                Duration::from_secs(5),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })
        .unwrap()
        .unwrap();
    assert!(
        metrics.contains("rvs_packet_frames_total{kind=\"forwarded_out\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rvs_packet_drops_total{reason=\"no_neighbour\"}"),
        "{metrics}"
    );

    assert!(
        t.director
            .exec("nft", &["list", "table", "inet", "rvs_rvsd"])
            .is_ok()
    );
    let xdp_attached = || {
        t.director
            .exec("ip", &["link", "show", "eth0"])
            .unwrap()
            .contains("xdp")
    };
    assert_eq!(xdp_attached(), backend == "af_xdp");
    assert!(
        rvsd.terminate(Duration::from_secs(10)),
        "rvsd exits on SIGTERM"
    );
    assert!(!xdp_attached(), "no XDP program left after exit");
    let tables = t.director.exec("nft", &["list", "tables"]).unwrap();
    assert!(
        !tables.contains("rvs_rvsd"),
        "claim removed at exit: {tables}"
    );
}
