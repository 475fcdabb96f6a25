//! An indicative request rate through the packet data plane, against the
//! same requests sent straight to one real server, in a namespace topology
//! with veth offloads off (root only).
//!
//! ```text
//! cargo run --release -p rvs-dataplane --example packet_bench -- [REQUESTS] [WORKERS]
//! ```
//!
//! One client thread makes REQUESTS (default 2000) HTTP/1.0 requests, each
//! on a new connection, for each path: direct, DR, NAT. Every run is bounded
//! by its count and by 60 s. Client, director and servers share this
//! machine's CPUs, so only ratios within one run mean anything.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rvs_api::Control;
use rvs_dataplane::{Dataplane, DataplaneConfig};
use rvs_testkit::{
    Backend, DIRECTOR_LAN_IF, DIRECTOR_PRIVATE_IF, Topology, TopologySpec, http_get, vip,
};

fn cmd(line: &str) -> rvs_ipvsadm::Command {
    rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

/// Requests per second for `n` requests to `to` (stops at 60 s).
fn rate(t: &Topology, to: SocketAddr, n: usize) -> (f64, usize) {
    let start = Instant::now();
    let mut done = 0;
    while done < n && start.elapsed() < Duration::from_secs(60) {
        if http_get(&t.client, to, Duration::from_secs(5)).is_ok() {
            done += 1;
        }
    }
    (done as f64 / start.elapsed().as_secs_f64(), done)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(2000, |a| a.parse().expect("REQUESTS"));
    let workers: usize = args.next().map_or(1, |a| a.parse().expect("WORKERS"));
    if !rvs_testkit::root_or_skip("packet_bench") {
        return;
    }
    let t = Topology::build(&TopologySpec {
        tag: "bench".into(),
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
    let dp = t
        .director
        .within(move || {
            Dataplane::start(DataplaneConfig {
                interfaces: vec![DIRECTOR_LAN_IF.into(), DIRECTOR_PRIVATE_IF.into()],
                workers,
                instance: format!("bench{}", std::process::id()),
                ..DataplaneConfig::default()
            })
        })
        .unwrap()
        .unwrap();
    dp.apply(&[
        cmd("-A -t 203.0.113.10:80 -s rr"),
        cmd("-a -t 203.0.113.10:80 -r 192.0.2.21"),
        cmd("-a -t 203.0.113.10:80 -r 192.0.2.22"),
        cmd("-A -t 203.0.113.10:8080 -s rr"),
        cmd("-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m"),
        cmd("-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m"),
    ])
    .unwrap();
    // Warm the neighbour table and the connection paths.
    for port in [80, 8080] {
        for _ in 0..4 {
            let _ = http_get(&t.client, vip(port), Duration::from_secs(5));
        }
    }
    let direct = SocketAddr::new(t.servers[0].lan.into(), 80);
    println!("new connection per request, {n} requests, {workers} worker(s)");
    for (name, to) in [("direct", direct), ("DR", vip(80)), ("NAT", vip(8080))] {
        let (r, done) = rate(&t, to, n);
        println!("{name:>6}: {r:8.0} req/s ({done} done)");
    }
    println!("{:?}", dp.counters());
    dp.stop();
}
