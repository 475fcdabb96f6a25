//! Per-packet cost of the forwarder: NAT (both directions), DR and TUN on
//! an established connection, a new connection (SYN, scheduling and table
//! insert), and the plain frame copy every verdict pays, for comparison.
//!
//! `cargo bench -p rvs-forward --bench forward`

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use rvs_core::model::{
    DestConfig, Forward, Protocol, SchedulerKind, ServiceConfig, ServiceKey, Tunnel,
};
use rvs_forward::{Forwarder, ForwarderConfig, Neighbours, NextHop, RxMeta, Verdict};

struct OneHop;

impl Neighbours for OneHop {
    fn next_hop(&self, _dst: IpAddr) -> Option<NextHop> {
        Some(NextHop {
            iface: 3,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: Some([2, 0, 0, 0, 0, 0x11]),
            mtu: 1500,
            src_ip: Some(IpAddr::from([192, 0, 2, 1])),
        })
    }
}

fn csum(b: &[u8]) -> u16 {
    rvs_forward::checksum_fold(rvs_forward::checksum_sum(0, b))
}

/// An Ethernet/IPv4/TCP frame with `payload` bytes, checksums right.
fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let tcp_len = 20 + payload;
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0x0a, 0x08, 0x00];
    let total = (20 + tcp_len) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let c = csum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    f.extend(std::iter::repeat_n(0x61, payload));
    let mut ps = rvs_forward::checksum_sum(0, &src);
    ps = rvs_forward::checksum_sum(ps, &dst);
    ps += 6 + tcp_len as u32;
    let c = rvs_forward::checksum_fold(rvs_forward::checksum_sum(ps, &f[34..]));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

const VIP: [u8; 4] = [203, 0, 113, 10];
const CLIENT: [u8; 4] = [198, 51, 100, 7];

fn forwarder(fwd: Forward, rport: u16) -> Forwarder {
    let mut fw = Forwarder::new(ForwarderConfig::default());
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::from(VIP),
        port: 80,
    };
    let mut cfg = ServiceConfig::new(key);
    cfg.scheduler = SchedulerKind::Wlc;
    fw.director_mut().add_service(cfg).unwrap();
    for i in 0..4u8 {
        fw.director_mut()
            .add_dest(
                &key,
                DestConfig {
                    addr: IpAddr::from([192, 0, 2, 11 + i]),
                    port: rport,
                    forward: fwd,
                    weight: 1,
                    u_threshold: 0,
                    l_threshold: 0,
                },
            )
            .unwrap();
    }
    fw
}

/// Opens a connection (SYN) and returns the real server it went to.
fn open(fw: &mut Forwarder, out: &mut [u8]) -> [u8; 4] {
    let syn = tcp4(CLIENT, VIP, 40000, 80, 0x02, 0);
    let v = fw.process(&syn, &RxMeta::default(), out, &OneHop, 0);
    assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
    let c = &fw.director().connections()[0];
    match c.daddr {
        IpAddr::V4(a) => a.octets(),
        _ => unreachable!(),
    }
}

fn established(c: &mut Criterion, name: &str, fwd: Forward, rport: u16, payload: usize) {
    let mut fw = forwarder(fwd, rport);
    let mut out = vec![0u8; 2048];
    open(&mut fw, &mut out);
    let ack = tcp4(CLIENT, VIP, 40000, 80, 0x10, payload);
    let meta = RxMeta::default();
    c.bench_function(name, |b| {
        b.iter(|| {
            let v = fw.process(black_box(&ack), &meta, &mut out, &OneHop, 1000);
            black_box(v)
        })
    });
}

fn bench(c: &mut Criterion) {
    established(c, "nat_in_established_64B", Forward::Masq, 8080, 64);
    established(c, "nat_in_established_1400B", Forward::Masq, 8080, 1400);
    established(c, "dr_established_64B", Forward::Route, 80, 64);
    established(c, "dr_established_1400B", Forward::Route, 80, 1400);
    established(
        c,
        "tun_ipip_established_64B",
        Forward::Tunnel(Tunnel::default()),
        80,
        64,
    );

    {
        let mut fw = forwarder(Forward::Masq, 8080);
        let mut out = vec![0u8; 2048];
        let rs = open(&mut fw, &mut out);
        let reply = tcp4(rs, CLIENT, 8080, 40000, 0x10, 64);
        let meta = RxMeta::default();
        c.bench_function("nat_out_established_64B", |b| {
            b.iter(|| black_box(fw.process(black_box(&reply), &meta, &mut out, &OneHop, 1000)))
        });
    }

    {
        // A new connection per packet: distinct client tuples, time moving
        // 1 ms per SYN, so the table settles near 60 000 entries (SYN_RECV
        // lasts 60 s) while the benchmark runs.
        let mut fw = forwarder(Forward::Masq, 8080);
        let mut out = vec![0u8; 2048];
        let mut frames = Vec::new();
        for i in 0..4096u32 {
            let client = [198, 51, (100 + (i >> 12)) as u8, (i >> 4) as u8];
            frames.push(tcp4(client, VIP, 1024 + (i as u16 & 0xf) * 2, 80, 0x02, 0));
        }
        let meta = RxMeta::default();
        let mut n: u64 = 0;
        c.bench_function("nat_new_connection_syn", |b| {
            b.iter(|| {
                n += 1;
                let f = &mut frames[(n % 4096) as usize];
                // A fresh source port per lap of the frame list.
                let lap = ((n / 4096) as u16).wrapping_mul(32);
                let p = u16::from_be_bytes([f[34], f[35]]);
                let np = p.wrapping_add(lap) | 1024;
                let old = [f[34], f[35]];
                f[34..36].copy_from_slice(&np.to_be_bytes());
                let c = rvs_forward::checksum_adjust(
                    u16::from_be_bytes([f[50], f[51]]),
                    &old,
                    &f[34..36],
                );
                f[50..52].copy_from_slice(&c.to_be_bytes());
                black_box(fw.process(f, &meta, &mut out, &OneHop, n))
            })
        });
    }

    {
        let f = tcp4(CLIENT, VIP, 40000, 80, 0x10, 1400);
        let mut out = vec![0u8; 2048];
        c.bench_function("copy_only_1400B", |b| {
            b.iter(|| {
                out[..f.len()].copy_from_slice(black_box(&f));
                black_box(out[100])
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
