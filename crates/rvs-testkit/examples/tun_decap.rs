//! The userspace LVS-TUN decapsulator of [`rvs_testkit::Decapsulator`] as a
//! process, for benchmarks driven from a shell (`bench/packet.sh`): run it
//! inside a real server's namespace with `ip netns exec`.
//!
//! `tun_decap DEV MAX_SECONDS [GUE_PORT...]`
//!
//! Takes every tunnelled packet arriving on `DEV` (IPIP, GRE, GUE on the
//! given ports) and hands the inner packet to the local stack as a frame
//! on `lo`. Exits after `MAX_SECONDS` (the bench stops it earlier by PID),
//! printing how many packets it decapsulated.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rvs_sys::packet::{PacketSocket, RingConfig};

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dev), Some(secs)) = (args.first(), args.get(1)) else {
        eprintln!("usage: tun_decap DEV MAX_SECONDS [GUE_PORT...]");
        std::process::exit(2);
    };
    let secs: u64 = secs
        .parse()
        .map_err(|_| io::Error::other("MAX_SECONDS: not a number"))?;
    let gue_ports = args[2..]
        .iter()
        .map(|p| p.parse::<u16>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| io::Error::other("GUE_PORT: not a port"))?;
    let cfg = RingConfig::default();
    let mut rx = PacketSocket::open(rvs_sys::iface::index(dev)?, &cfg)?;
    let mut lo = PacketSocket::open(rvs_sys::iface::index("lo")?, &cfg)?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    let mut frame = Vec::with_capacity(2048);
    while Instant::now() < deadline {
        rvs_sys::wait_readable(rx.as_fd(), Duration::from_millis(20))?;
        while let Some(mut b) = rx.rx().next_block() {
            while let Some((data, _)) = b.next() {
                let Ok(d) = rvs_forward::decapsulate_frame(data, &gue_ports) else {
                    continue;
                };
                let inner = &data[d.inner.clone()];
                let ethertype: [u8; 2] = match inner.first().map(|b| b >> 4) {
                    Some(4) => [0x08, 0x00],
                    Some(6) => [0x86, 0xdd],
                    _ => continue,
                };
                frame.clear();
                frame.extend_from_slice(&[0; 12]);
                frame.extend_from_slice(&ethertype);
                frame.extend_from_slice(inner);
                if !lo.tx().push(&frame) {
                    lo.tx().flush()?;
                    if !lo.tx().push(&frame) {
                        continue;
                    }
                }
                n += 1;
            }
        }
        lo.tx().flush()?;
    }
    println!("{n}");
    Ok(())
}
