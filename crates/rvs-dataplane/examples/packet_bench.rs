//! An indicative request rate through the packet data plane, against the
//! same requests sent straight to one real server, in a namespace topology
//! with veth offloads off (root only).
//!
//! ```text
//! cargo run --release -p rvs-dataplane --example packet_bench -- [REQUESTS] [WORKERS] [ROUNDS]
//! ```
//!
//! One client thread makes REQUESTS (default 2000) HTTP/1.0 requests, each
//! on a new connection, for each path: direct, the kernel's nftables DNAT
//! (`numgen inc mod 2`, measured before the data plane starts so that its
//! ring copies do not tax the kernel path), DR, NAT. It prints the rate and
//! the median and 99th-percentile request times, ROUNDS times (default 1;
//! the data plane is started afresh each round) so that the machine's
//! drifting load hits every path alike, then the median ratios to the
//! kernel's DNAT over the rounds. Every run is bounded by
//! its count and by 60 s. Client, director and servers share this
//! machine's CPUs, so only ratios within one run mean anything.
//!
//! `RVS_BENCH_BACKEND=af_packet` (default), `af_xdp` or `both` chooses the
//! data plane's backend (`af_xdp` and `both` need `--features xdp`; `both`
//! measures AF_PACKET then AF_XDP in every round, and the AF_XDP data
//! plane runs one worker, as a veth has one receive queue).
//! `RVS_BENCH_RX=blocks` runs the data plane on TPACKET_V3 block rings
//! instead of the default TPACKET_V2 frame rings; `RVS_BENCH_TX=ring` or
//! `copy` chooses how the data plane sends; `RVS_BENCH_BUSY_POLL_US=N` sets
//! the workers' busy poll (`DataplaneConfig::busy_poll_us`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rvs_api::Control;
use rvs_dataplane::{Backend as PacketBackend, Dataplane, DataplaneConfig};
use rvs_sys::packet::{RingConfig, RxLayout, TxMode};
use rvs_testkit::{
    Backend, DIRECTOR_LAN_IF, DIRECTOR_PRIVATE_IF, Topology, TopologySpec, http_get, vip,
};

fn cmd(line: &str) -> rvs_ipvsadm::Command {
    rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

/// Requests per second for `n` requests to `to` (stops at 60 s), requests
/// done, and the median and 99th-percentile request times in ms.
fn rate(t: &Topology, to: SocketAddr, n: usize) -> (f64, usize, f64, f64) {
    let start = Instant::now();
    let mut times = Vec::with_capacity(n);
    while times.len() < n && start.elapsed() < Duration::from_secs(60) {
        let t0 = Instant::now();
        if http_get(&t.client, to, Duration::from_secs(5)).is_ok() {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let done = times.len();
    times.sort_by(f64::total_cmp);
    let q = |f: f64| times.get(((done as f64 * f) as usize).min(done.max(1) - 1));
    (
        done as f64 / start.elapsed().as_secs_f64(),
        done,
        q(0.5).copied().unwrap_or(f64::NAN),
        q(0.99).copied().unwrap_or(f64::NAN),
    )
}

fn report(name: &str, (r, done, p50, p99): (f64, usize, f64, f64)) {
    println!("{name:>6}: {r:8.0} req/s  p50 {p50:6.3} ms  p99 {p99:6.3} ms  ({done} done)");
}

/// The kernel's own DNAT for comparison: 203.0.113.10:9090 to the real
/// servers' port 81 (ports the data plane neither claims nor serves).
const NFT_DNAT: &str = "table ip rvs_bench_dnat {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr 203.0.113.10 tcp dport 9090 dnat to numgen inc mod 2 map { 0 : 198.51.100.21, 1 : 198.51.100.22 } : 81
  }
}
";

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(2000, |a| a.parse().expect("REQUESTS"));
    let workers: usize = args.next().map_or(1, |a| a.parse().expect("WORKERS"));
    let rounds: usize = args.next().map_or(1, |a| a.parse().expect("ROUNDS"));
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
    let _nft_backends: Vec<Backend> = t
        .servers
        .iter()
        .enumerate()
        .map(|(i, rs)| {
            Backend::start(&rs.ns, &format!("rs{i}"), "0.0.0.0:81".parse().unwrap()).unwrap()
        })
        .collect();
    let nft = t
        .director
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn();
    let nft_ok = nft.and_then(|mut c| {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(NFT_DNAT.as_bytes())?;
        c.wait()
    });
    assert!(
        matches!(nft_ok, Ok(s) if s.success()),
        "nft DNAT rules: {nft_ok:?}"
    );
    for _ in 0..4 {
        let _ = http_get(&t.client, vip(9090), Duration::from_secs(5));
    }
    let rx_layout = match std::env::var("RVS_BENCH_RX").as_deref() {
        Ok("blocks") => RxLayout::Blocks,
        _ => RxLayout::Frames,
    };
    let tx_mode = match std::env::var("RVS_BENCH_TX").as_deref() {
        Ok("copy") => TxMode::Copy,
        Ok("ring") => TxMode::Ring,
        _ => RingConfig::default().tx_mode,
    };
    let busy_poll_us: u32 = std::env::var("RVS_BENCH_BUSY_POLL_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let backends: Vec<PacketBackend> = match std::env::var("RVS_BENCH_BACKEND").as_deref() {
        Ok("af_xdp") => vec![PacketBackend::AfXdp],
        Ok("both") => vec![PacketBackend::AfPacket, PacketBackend::AfXdp],
        Ok("af_packet") | Err(_) => vec![PacketBackend::AfPacket],
        Ok(other) => panic!("RVS_BENCH_BACKEND={other}: use af_packet, af_xdp or both"),
    };
    if let Some(b) = backends.iter().find(|b| !b.available()) {
        eprintln!(
            "packet_bench: the {} backend needs --features xdp",
            b.name()
        );
        std::process::exit(2);
    }
    let direct = SocketAddr::new(t.servers[0].lan.into(), 80);
    println!("data plane busy poll: {busy_poll_us} us");
    println!(
        "new connection per request, {n} requests per path and round, {rounds} round(s), {workers} worker(s), {rx_layout:?}/{tx_mode:?} rings"
    );
    let mut ratios: Vec<Vec<[f64; 4]>> = vec![Vec::new(); backends.len()];
    for round in 1..=rounds {
        println!("round {round}");
        // The kernel paths run while the data plane is stopped, so that
        // its rings' copies of their frames do not tax them.
        let d = rate(&t, direct, n);
        report("direct", d);
        let k = rate(&t, vip(9090), n);
        report("nftNAT", k);
        for (bi, &backend) in backends.iter().enumerate() {
            let workers = match backend {
                PacketBackend::AfPacket => workers,
                PacketBackend::AfXdp => 1,
            };
            let dp = t
                .director
                .within(move || {
                    Dataplane::start(DataplaneConfig {
                        backend,
                        interfaces: vec![DIRECTOR_LAN_IF.into(), DIRECTOR_PRIVATE_IF.into()],
                        workers,
                        rings: RingConfig {
                            rx_layout,
                            tx_mode,
                            ..RingConfig::default()
                        },
                        instance: format!("bench{}", std::process::id()),
                        busy_poll_us,
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
            let tag = match backend {
                PacketBackend::AfPacket => "",
                PacketBackend::AfXdp => "/xdp",
            };
            let dr = rate(&t, vip(80), n);
            report(&format!("DR{tag}"), dr);
            let nat = rate(&t, vip(8080), n);
            report(&format!("NAT{tag}"), nat);
            let c = dp.counters();
            println!(
                "  {} data plane ({workers} worker(s)): rx {} tx {} ring drops {} forward drops {}",
                backend.name(),
                c.rx_frames,
                c.tx_frames,
                c.ring_drops,
                c.forward.dropped_total()
            );
            dp.stop();
            ratios[bi].push([dr.0 / k.0, nat.0 / k.0, dr.3 / k.3, nat.3 / k.3]);
        }
    }
    for (bi, backend) in backends.iter().enumerate() {
        let median = |i: usize| {
            let mut v: Vec<f64> = ratios[bi].iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{}: median over rounds: DR/nftNAT req/s {:.2}  NAT/nftNAT req/s {:.2}  DR/nftNAT p99 {:.2}  NAT/nftNAT p99 {:.2}",
            backend.name(),
            median(0),
            median(1),
            median(2),
            median(3)
        );
    }
}
