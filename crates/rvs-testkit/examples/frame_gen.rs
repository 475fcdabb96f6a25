//! A pktgen-like sender of minimum-size frames for `bench/packet.sh`: the
//! packet data plane's raw forwarding rate is measured by blasting
//! 64-byte frames (60 bytes plus the 4-byte FCS the wire would add)
//! at a director from a namespace of its own.
//!
//! `frame_gen DEV DST_MAC SRC_IP DST_IP DST_PORT COUNT MAX_SECONDS FLOWS`
//!
//! Sends `COUNT` Ethernet/IPv4/UDP frames from `DEV` to `DST_MAC` through an
//! AF_PACKET transmit ring (qdisc bypassed), cycling over `FLOWS` source
//! ports so that flows spread; stops after `MAX_SECONDS` at the latest.
//! Prints `sent SECONDS` (frames the kernel accepted, and the time taken).

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rvs_sys::packet::{PacketSocket, RingConfig};

fn csum(b: &[u8]) -> u16 {
    rvs_forward::checksum_fold(rvs_forward::checksum_sum(0, b))
}

/// A 60-byte Ethernet/IPv4/UDP frame with right IP and UDP checksums.
fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let payload = 60 - 14 - 20 - 8;
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let c = csum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let udp_len = (8 + payload) as u16;
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(0x61, payload));
    let mut ps = rvs_forward::checksum_sum(0, &src.octets());
    ps = rvs_forward::checksum_sum(ps, &dst.octets());
    ps += 17 + u32::from(udp_len);
    let c = match rvs_forward::checksum_fold(rvs_forward::checksum_sum(ps, &f[34..])) {
        0 => 0xffff,
        c => c,
    };
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f
}

fn parse_mac(s: &str) -> io::Result<[u8; 6]> {
    let mut m = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(io::Error::other(format!("{s:?}: not a MAC address")));
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| io::Error::other(format!("{s:?}: not a MAC address")))?;
    }
    Ok(m)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> io::Result<T> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{what}: missing or malformed")))
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 8 {
        eprintln!("usage: frame_gen DEV DST_MAC SRC_IP DST_IP DST_PORT COUNT MAX_SECONDS FLOWS");
        std::process::exit(2);
    }
    let dev = &args[0];
    let dst_mac = parse_mac(&args[1])?;
    let src: Ipv4Addr = arg(&args, 2, "SRC_IP")?;
    let dst: Ipv4Addr = arg(&args, 3, "DST_IP")?;
    let dport: u16 = arg(&args, 4, "DST_PORT")?;
    let count: u64 = arg(&args, 5, "COUNT")?;
    let secs: u64 = arg(&args, 6, "MAX_SECONDS")?;
    let flows: u16 = arg(&args, 7, "FLOWS")?;
    let src_mac = rvs_sys::iface::mac(dev)?;
    let frames: Vec<Vec<u8>> = (0..flows.max(1))
        .map(|i| frame(src_mac, dst_mac, src, dst, 10_000 + i, dport))
        .collect();
    let cfg = RingConfig {
        // The receive ring is unused: the smallest the socket accepts.
        rx_block_size: 1 << 12,
        rx_blocks: 1,
        tx_frames: 4096,
        qdisc_bypass: true,
        ..RingConfig::default()
    };
    let mut s = PacketSocket::open(rvs_sys::iface::index(dev)?, &cfg)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut sent = 0u64;
    let mut i = 0usize;
    'send: while sent < count {
        let tx = s.tx();
        // A batch: fill what the ring has free (at most 256), then kick.
        let mut batch = 0;
        while batch < 256 && sent < count && tx.push(&frames[i]) {
            i = (i + 1) % frames.len();
            sent += 1;
            batch += 1;
        }
        tx.flush()?;
        if batch == 0 {
            if Instant::now() >= deadline {
                break 'send;
            }
            std::thread::yield_now();
        } else if sent % 65_536 < batch && Instant::now() >= deadline {
            break;
        }
    }
    // Let the kernel drain the ring before the time is taken.
    let drain = Instant::now() + Duration::from_secs(2);
    while s.tx().queued() > 0 && Instant::now() < drain {
        s.tx().flush()?;
        std::thread::yield_now();
    }
    println!("{sent} {:.6}", start.elapsed().as_secs_f64());
    Ok(())
}
