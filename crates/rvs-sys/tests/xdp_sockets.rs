//! The XDP redirect program and an AF_XDP socket on one end of a veth pair,
//! each end in a namespace of its own made by this test (root only: fails
//! under CI=true when not root, says it skipped otherwise).
#![cfg(feature = "xdp")]

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use rvs_sys::bpf::XdpMode;
use rvs_sys::packet::{PacketSocket, RingConfig};
use rvs_sys::xdp_filter::{ClaimKey, ClaimKind, ClaimMap, XdpRedirect};
use rvs_sys::xsk::{XskConfig, XskSocket};
use rvs_sys::{iface, netns, wait_readable};

fn root_or_skip() -> bool {
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

/// Two namespaces joined by a veth pair `va` (192.0.2.1) / `vb`
/// (192.0.2.10), deleted on drop.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let pid = std::process::id();
        let p = Pair {
            a: format!("rvs-xsk-{tag}-a-{pid}"),
            b: format!("rvs-xsk-{tag}-b-{pid}"),
        };
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        ip(&[
            "-n", &p.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &p.b,
        ]);
        ip(&["-n", &p.a, "addr", "add", "192.0.2.1/24", "dev", "va"]);
        ip(&["-n", &p.b, "addr", "add", "192.0.2.10/24", "dev", "vb"]);
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

fn in_ns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        netns::enter(&ns).unwrap();
        f()
    })
    .join()
    .unwrap()
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];

/// An Ethernet/IPv4/UDP frame; `tag` is the first payload byte.
fn udp4(src: &str, sport: u16, dst: &str, dport: u16, tag: u8) -> Vec<u8> {
    let (s, d): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&MAC_A);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&29u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&s.octets());
    f[30..34].copy_from_slice(&d.octets());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&9u16.to_be_bytes());
    f[42] = tag;
    f
}

/// An Ethernet/IPv6/UDP frame; `tag` is the first payload byte.
fn udp6(src: &str, dst: &str, dport: u16, tag: u8) -> Vec<u8> {
    let (s, d): (std::net::Ipv6Addr, std::net::Ipv6Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = vec![0u8; 14 + 40 + 8 + 1];
    f[0..6].copy_from_slice(&MAC_A);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&9u16.to_be_bytes());
    f[20] = 17;
    f[21] = 64;
    f[22..38].copy_from_slice(&s.octets());
    f[38..54].copy_from_slice(&d.octets());
    f[54..56].copy_from_slice(&5000u16.to_be_bytes());
    f[56..58].copy_from_slice(&dport.to_be_bytes());
    f[58..60].copy_from_slice(&9u16.to_be_bytes());
    f[62] = tag;
    f
}

fn key(kind: ClaimKind, proto: u8, port: u16, addr: &str) -> ClaimKey {
    ClaimKey {
        kind,
        proto,
        port,
        addr: addr.parse::<IpAddr>().unwrap(),
    }
}

#[test]
fn only_claimed_frames_reach_the_socket_and_the_kernel_keeps_the_rest() {
    if !root_or_skip() {
        return;
    }
    let p = Pair::new("claim");
    let (claims, redirect, mut xsk) = in_ns(&p.a, || {
        let va = iface::index("va").unwrap();
        let mut claims = ClaimMap::create().unwrap();
        claims
            .set([
                key(ClaimKind::Service, 17, 9, "203.0.113.10"),
                key(ClaimKind::Service, 17, 0, "2001:db8::10"),
                key(ClaimKind::NatSource, 17, 53, "198.51.100.21"),
                key(ClaimKind::Local, 0, 0, "192.0.2.1"),
            ])
            .unwrap();
        let redirect = XdpRedirect::attach(&claims, va, XdpMode::Generic).unwrap();
        let xsk = XskSocket::open(va, 0, &XskConfig::default()).unwrap();
        redirect.set_socket(0, xsk.fd()).unwrap();
        (claims, redirect, xsk)
    });
    assert_eq!(claims.keys().len(), 4);
    let mut sender = in_ns(&p.b, || {
        PacketSocket::open(iface::index("vb").unwrap(), &RingConfig::default()).unwrap()
    });
    // Frames the kernel keeps first, then the claimed ones: one queue
    // keeps order, so once the claimed ones are in, any unclaimed one
    // would be too.
    let unclaimed = [
        udp4("192.0.2.10", 5000, "203.0.113.10", 10, 1), // another port
        udp4("198.51.100.21", 53, "192.0.2.1", 5000, 2), // to the director
        udp4("198.51.100.21", 54, "192.0.2.10", 5000, 3), // another port
        udp6("2001:db8::99", "2001:db8::11", 9, 4),      // another address
    ];
    let claimed = [
        udp4("192.0.2.10", 5000, "203.0.113.10", 9, 11),
        udp4("198.51.100.21", 53, "192.0.2.10", 5000, 12),
        udp6("2001:db8::99", "2001:db8::10", 1234, 13),
    ];
    for f in unclaimed.iter().chain(claimed.iter()) {
        assert!(sender.tx().push(f));
    }
    sender.tx().flush().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < claimed.len() && Instant::now() < deadline {
        let _ = wait_readable(xsk.fd(), Duration::from_millis(100));
        let (rx, _, _) = xsk.split();
        if let Some(mut b) = rx.batch(64) {
            while let Some(f) = b.next() {
                let tag = if f.len() > 42 && f[12] == 0x08 {
                    f[42]
                } else if f.len() > 62 {
                    f[62]
                } else {
                    0
                };
                got.push(tag);
            }
        }
    }
    assert_eq!(got, vec![11, 12, 13], "only the claimed frames, in order");

    // ARP and the director's own traffic still reach the kernel: a UDP
    // datagram from b's stack to a socket on a (b resolves a's address
    // first, with ARP through the program).
    let listener = in_ns(&p.a, || {
        std::net::UdpSocket::bind("192.0.2.1:7000").unwrap()
    });
    let talker = in_ns(&p.b, || std::net::UdpSocket::bind("192.0.2.10:0").unwrap());
    talker.send_to(b"hello", "192.0.2.1:7000").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = listener
        .recv_from(&mut buf)
        .expect("datagram through XDP_PASS");
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(from.ip().to_string(), "192.0.2.10");

    // Sending: a frame from the AF_XDP socket arrives on the other end.
    let mut tagged = udp4("192.0.2.1", 7, "192.0.2.10", 7, 0x5a);
    tagged[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    tagged[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    {
        let (_, tx, _) = xsk.split();
        assert!(tx.push(&tagged));
        tx.flush().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        use std::os::fd::AsFd;
        let _ = wait_readable(sender.as_fd(), Duration::from_millis(100));
        while let Some(mut b) = sender.rx().next_block() {
            while let Some((d, _)) = b.next() {
                seen |= d.len() > 42 && d[12..14] == [0x88, 0xb5] && d[42] == 0x5a;
            }
        }
    }
    assert!(seen, "the transmitted frame arrived");
    let stats = xsk.stats().unwrap();
    assert_eq!(stats.tx_invalid, 0, "{stats:?}");
    drop(redirect);
}
