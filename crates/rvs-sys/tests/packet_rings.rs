//! AF_PACKET rings between the two ends of a veth pair, each end in a
//! namespace of its own made by this test (root only: fails under
//! CI=true when not root, says it skipped otherwise).

use std::process::Command;
use std::time::{Duration, Instant};

use rvs_sys::packet::{FanoutMode, PacketSocket, RingConfig, RxLayout, TxMode};
use rvs_sys::{iface, netns, wait_readable};

fn root_or_skip() -> bool {
    // The effective uid, from /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "this test needs root (CI=true)"
        );
        eprintln!("SKIPPED: not root");
    }
    root
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair `a` / `b`, deleted on drop.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let pid = std::process::id();
        let p = Pair {
            a: format!("rvs-sys-{tag}-a-{pid}"),
            b: format!("rvs-sys-{tag}-b-{pid}"),
        };
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        ip(&[
            "-n", &p.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &p.b,
        ]);
        ip(&["-n", &p.a, "link", "set", "va", "up"]);
        ip(&["-n", &p.b, "link", "set", "vb", "up"]);
        p
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

fn frame(i: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    // A local experimental ethertype: nothing in the kernel consumes it.
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..16].copy_from_slice(&i.to_be_bytes());
    f
}

/// Opens a socket on `dev` in namespace `ns` from a thread that entered it
/// (sockets keep the namespace they were made in).
fn open_in(ns: &str, dev: &str, cfg: RingConfig) -> PacketSocket {
    let (ns, dev) = (ns.to_string(), dev.to_string());
    std::thread::spawn(move || {
        netns::enter(&ns).unwrap();
        let i = iface::lookup(&dev).unwrap();
        assert_eq!(i.mtu, 1500);
        PacketSocket::open(i.index, &cfg).unwrap()
    })
    .join()
    .unwrap()
}

fn receive_within(
    s: &mut PacketSocket,
    want: usize,
    within: Duration,
) -> Vec<(Vec<u8>, rvs_sys::packet::FrameMeta)> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        use std::os::fd::AsFd;
        wait_readable(s.as_fd(), Duration::from_millis(100)).unwrap();
        while let Some(mut b) = s.rx().next_block() {
            while let Some((data, meta)) = b.next() {
                if data.len() >= 14 && data[12..14] == [0x88, 0xb5] {
                    got.push((data.to_vec(), meta));
                }
            }
        }
    }
    got
}

fn receive(s: &mut PacketSocket, want: usize) -> Vec<(Vec<u8>, rvs_sys::packet::FrameMeta)> {
    receive_within(s, want, Duration::from_secs(10))
}

#[test]
fn a_batch_sent_on_one_end_arrives_whole_on_the_other() {
    batch_round_trip(RxLayout::Frames, TxMode::Ring, "batch2");
}

#[test]
fn a_batch_arrives_whole_when_sent_by_copy() {
    batch_round_trip(RxLayout::Frames, TxMode::Copy, "batchc");
}

#[test]
fn a_batch_arrives_whole_through_block_rings_too() {
    batch_round_trip(RxLayout::Blocks, TxMode::Ring, "batch3");
}

fn batch_round_trip(rx_layout: RxLayout, tx_mode: TxMode, tag: &str) {
    if !root_or_skip() {
        return;
    }
    let p = Pair::new(tag);
    let cfg = RingConfig {
        rx_layout,
        tx_mode,
        ..RingConfig::default()
    };
    let mut tx = open_in(&p.a, "va", cfg);
    let mut rx = open_in(&p.b, "vb", cfg);
    assert!(tx.tx().max_frame() >= 1514);
    let n = 200u16;
    for i in 0..n {
        assert!(tx.tx().push(&frame(i, 60 + usize::from(i % 1400))));
    }
    assert_eq!(tx.tx().queued(), usize::from(n));
    tx.tx().flush().unwrap();
    let got = receive(&mut rx, usize::from(n));
    assert_eq!(got.len(), usize::from(n), "frames received");
    for (i, (data, meta)) in got.iter().enumerate() {
        let i = i as u16;
        assert_eq!(data, &frame(i, 60 + usize::from(i % 1400)), "frame {i}");
        assert_eq!(meta.len as usize, data.len());
        assert!(!meta.csum_not_ready);
        assert_eq!(meta.vlan_tci, None);
    }
    // The sender's own socket does not see its transmissions.
    assert!(receive_within(&mut tx, 1, Duration::from_millis(300)).is_empty());
    assert_eq!(tx.tx().wrong_format(), 0);
    // The slots come back: a second, larger batch than the first goes too.
    for round in 0..6u16 {
        for i in 0..n {
            let mut sent = tx.tx().push(&frame(i, 64));
            let deadline = Instant::now() + Duration::from_secs(5);
            while !sent && Instant::now() < deadline {
                tx.tx().flush().unwrap();
                std::thread::yield_now();
                sent = tx.tx().push(&frame(i, 64));
            }
            assert!(sent, "round {round} frame {i}: no free slot");
        }
        tx.tx().flush().unwrap();
        assert_eq!(receive(&mut rx, usize::from(n)).len(), usize::from(n));
    }
}

#[test]
fn a_fanout_group_spreads_frames_over_its_sockets() {
    if !root_or_skip() {
        return;
    }
    let p = Pair::new("fanout");
    let cfg = RingConfig::default();
    let mut tx = open_in(&p.a, "va", cfg);
    let mut r1 = open_in(&p.b, "vb", cfg);
    let mut r2 = open_in(&p.b, "vb", cfg);
    r1.join_fanout(7, FanoutMode::LoadBalance).unwrap();
    r2.join_fanout(7, FanoutMode::LoadBalance).unwrap();
    // A different mode in the same group is refused by the kernel.
    let r3 = open_in(&p.b, "vb", cfg);
    assert!(r3.join_fanout(7, FanoutMode::Cpu).is_err());
    drop(r3);
    for i in 0..100 {
        assert!(tx.tx().push(&frame(i, 64)));
    }
    tx.tx().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut n1, mut n2) = (0, 0);
    while n1 + n2 < 100 && Instant::now() < deadline {
        n1 += receive_within(&mut r1, 100, Duration::from_millis(50)).len();
        n2 += receive_within(&mut r2, 100, Duration::from_millis(50)).len();
    }
    assert_eq!(n1 + n2, 100);
    assert!(
        n1 > 0 && n2 > 0,
        "round robin used both sockets: {n1} / {n2}"
    );
}

#[test]
fn bad_ring_sizes_are_refused() {
    let cfg = RingConfig {
        tx_frame_size: 1000,
        ..RingConfig::default()
    };
    let e = PacketSocket::open(1, &cfg).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let cfg = RingConfig {
        rx_block_size: 5000,
        ..RingConfig::default()
    };
    assert_eq!(
        PacketSocket::open(1, &cfg).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn a_frame_longer_than_a_receive_slot_arrives_truncated_and_says_so() {
    if !root_or_skip() {
        return;
    }
    let p = Pair::new("trunc");
    ip(&["-n", &p.a, "link", "set", "va", "mtu", "4000"]);
    ip(&["-n", &p.b, "link", "set", "vb", "mtu", "4000"]);
    let cfg = RingConfig::default();
    let (ns, dev) = (p.a.clone(), "va".to_string());
    // A default transmit slot is 2 KiB too: the sender has larger ones.
    let mut tx = std::thread::spawn(move || {
        netns::enter(&ns).unwrap();
        let i = iface::lookup(&dev).unwrap();
        PacketSocket::open(
            i.index,
            &RingConfig {
                tx_frame_size: 4096,
                tx_frames: 64,
                ..RingConfig::default()
            },
        )
        .unwrap()
    })
    .join()
    .unwrap();
    let (ns, dev) = (p.b.clone(), "vb".to_string());
    let mut rx = std::thread::spawn(move || {
        netns::enter(&ns).unwrap();
        PacketSocket::open(iface::lookup(&dev).unwrap().index, &cfg).unwrap()
    })
    .join()
    .unwrap();
    assert!(tx.tx().push(&frame(1, 3000)));
    assert!(tx.tx().push(&frame(2, 100)));
    tx.tx().flush().unwrap();
    let got = receive(&mut rx, 2);
    assert_eq!(got.len(), 2, "frames received");
    let (big, meta) = &got[0];
    assert_eq!(meta.len, 3000, "the wire length");
    assert!(big.len() < 2048, "captured {} bytes", big.len());
    assert_eq!(big[..], frame(1, 3000)[..big.len()]);
    assert_eq!(got[1].0, frame(2, 100), "the next slot is intact");
}
