//! An indicative frame rate through one packet data plane worker: ring in →
//! forward → ring out, 64-byte frames (root only).
//!
//! ```text
//! cargo run --release -p rvs-dataplane --example ring_bench -- [FRAMES] [SECONDS]
//! ```
//!
//! The client namespace of a [`Topology`] floods the director's LAN
//! interface, from its own transmit ring, with 60-byte UDP frames (64 on
//! the wire) of 256 flows to a direct-routing service; one worker forwards
//! them to the real servers, which drop them in nftables. The run stops
//! after FRAMES frames (default 2 000 000) or SECONDS seconds (default 5).
//! It prints frames forwarded per second of wall time and per second of
//! the worker thread's CPU time (user + system, from `/proc`), which is the
//! figure that does not depend on how busy the machine's other cores are,
//! though the kernel's work on the generator's side is not in it.
//! `RVS_BENCH_RX=blocks` and `RVS_BENCH_TX=ring|copy` choose the worker's
//! ring layout and transmit mode; `RVS_BENCH_BACKEND=af_xdp` runs the
//! worker on the AF_XDP backend instead (needs `--features xdp`).

use std::time::{Duration, Instant};

use rvs_api::Control;
use rvs_dataplane::{Backend, Dataplane, DataplaneConfig};
use rvs_sys::packet::{PacketSocket, RingConfig, RxLayout, TxMode};
use rvs_testkit::{CLIENT, DIRECTOR_LAN_IF, Topology, TopologySpec, VIP};

fn cmd(line: &str) -> rvs_ipvsadm::Command {
    rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

fn mac_of(ns: &rvs_testkit::Netns, dev: &str) -> [u8; 6] {
    let s = ns
        .exec("cat", &[&format!("/sys/class/net/{dev}/address")])
        .unwrap();
    let mut m = [0u8; 6];
    for (i, b) in s.trim().split(':').enumerate() {
        m[i] = u8::from_str_radix(b, 16).unwrap();
    }
    m
}

/// A 60-byte Ethernet/IPv4/UDP frame from the client's port `sport` to
/// VIP:9 (UDP checksum 0: none).
fn frame(dst: [u8; 6], src: [u8; 6], sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&CLIENT.octets());
    ip[16..20].copy_from_slice(&VIP.octets());
    let mut sum: u32 = 0;
    for w in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// CPU seconds (user + system) of this process's thread named `name`.
fn thread_cpu(name: &str) -> Option<f64> {
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = t.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?;
        return Some(ticks / 100.0);
    }
    None
}

fn main() {
    let mut args = std::env::args().skip(1);
    let frames: u64 = args
        .next()
        .map_or(2_000_000, |a| a.parse().expect("FRAMES"));
    let secs: u64 = args.next().map_or(5, |a| a.parse().expect("SECONDS"));
    if !rvs_testkit::root_or_skip("ring_bench") {
        return;
    }
    let t = Topology::build(&TopologySpec {
        tag: "ringb".into(),
        servers: 2,
        offloads_off: true,
    })
    .unwrap();
    // The test bridge need not run the firewall on bridged frames (with
    // br_netfilter loaded it does, on the worker's time): this measures
    // the data plane, not the switch.
    for k in ["call-iptables", "call-ip6tables", "call-arptables"] {
        let _ = t.switch.sysctl(&format!("net.bridge.bridge-nf-{k}"), "0");
    }
    for rs in &t.servers {
        rs.ns
            .exec(
                "nft",
                &[
                    "add table ip sink; add chain ip sink pre { type filter hook prerouting priority raw; }; add rule ip sink pre udp dport 9 drop",
                ],
            )
            .unwrap();
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
    let backend = match std::env::var("RVS_BENCH_BACKEND").as_deref() {
        Ok("af_xdp") => Backend::AfXdp,
        Ok("af_packet") | Err(_) => Backend::AfPacket,
        Ok(other) => panic!("RVS_BENCH_BACKEND={other}: use af_packet or af_xdp"),
    };
    if !backend.available() {
        eprintln!(
            "ring_bench: the {} backend needs --features xdp",
            backend.name()
        );
        std::process::exit(2);
    }
    let worker_thread = match backend {
        Backend::AfPacket => "rvs-packet-0",
        Backend::AfXdp => "rvs-xdp-0",
    };
    let dp = t
        .director
        .within(move || {
            Dataplane::start(DataplaneConfig {
                backend,
                interfaces: vec![DIRECTOR_LAN_IF.into()],
                workers: 1,
                rings: RingConfig {
                    rx_layout,
                    tx_mode,
                    ..RingConfig::default()
                },
                instance: format!("ringb{}", std::process::id()),
                ..DataplaneConfig::default()
            })
        })
        .unwrap()
        .unwrap();
    dp.apply(&[
        cmd("-A -u 203.0.113.10:9 -s rr"),
        cmd("-a -u 203.0.113.10:9 -r 192.0.2.21"),
        cmd("-a -u 203.0.113.10:9 -r 192.0.2.22"),
    ])
    .unwrap();
    let dmac = mac_of(&t.director, DIRECTOR_LAN_IF);
    let cmac = mac_of(&t.client, "eth0");
    let flows: Vec<Vec<u8>> = (0..256u16)
        .map(|i| frame(dmac, cmac, 20_000 + i * 7))
        .collect();
    // Warm-up: the neighbours of both servers, one connection per flow.
    let warm = flows.clone();
    t.client
        .within(move || {
            let mut s = PacketSocket::open(
                rvs_sys::iface::index("eth0").unwrap(),
                &RingConfig::default(),
            )
            .unwrap();
            for _ in 0..20 {
                for f in &warm {
                    s.tx().push(f);
                }
                s.tx().flush().unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .unwrap();
    let before = dp.counters();
    let cpu0 = thread_cpu(worker_thread).expect("worker thread");
    let start = Instant::now();
    let sent = t
        .client
        .within(move || {
            let mut s = PacketSocket::open(
                rvs_sys::iface::index("eth0").unwrap(),
                &RingConfig::default(),
            )
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut sent = 0u64;
            'outer: while Instant::now() < deadline {
                for f in &flows {
                    if sent >= frames {
                        break 'outer;
                    }
                    if !s.tx().push(f) {
                        s.tx().flush().unwrap();
                        std::thread::yield_now();
                        break;
                    }
                    sent += 1;
                }
                if s.tx().queued() >= 64 {
                    s.tx().flush().unwrap();
                }
            }
            s.tx().flush().unwrap();
            sent
        })
        .unwrap();
    // Let the worker drain its ring.
    std::thread::sleep(Duration::from_millis(200));
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu(worker_thread).expect("worker thread") - cpu0;
    let after = dp.counters();
    let fwd = after.forward.forwarded_in - before.forward.forwarded_in;
    let label = match backend {
        Backend::AfPacket => format!("af_packet {rx_layout:?}/{tx_mode:?} rings"),
        Backend::AfXdp => "af_xdp (copy mode, generic XDP)".to_string(),
    };
    println!(
        "{label}: sent {sent}, forwarded {fwd}, ring drops {}, in {wall:.2} s; worker CPU {cpu:.2} s",
        after.ring_drops - before.ring_drops
    );
    println!(
        "  {:.0} frames/s wall, {:.0} frames/s per worker CPU second",
        fwd as f64 / wall,
        fwd as f64 / cpu.max(0.01)
    );
    dp.stop();
}
