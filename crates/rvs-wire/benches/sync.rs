//! Sync message throughput: encoding 100 000 connection updates into
//! 1472-byte version 1 messages, and decoding those messages.
//!
//! Updates are IPv4 DR connections with distinct clients (and one in eight
//! IPv6), as a master sends them; the message count is printed once.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_wire::sync::{self, DEFAULT_MAXLEN_V4, MessageBuilder, SyncConn};

const UPDATES: usize = 100_000;

fn updates() -> Vec<SyncConn> {
    (0..UPDATES as u32)
        .map(|i| {
            let (caddr, vaddr, daddr) = if i % 8 == 7 {
                (
                    IpAddr::V6(Ipv6Addr::from(0x2001_0db8_0002_u128 << 80 | u128::from(i))),
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11)),
                )
            } else {
                (
                    IpAddr::V4(Ipv4Addr::from(
                        0xc000_0200 | (i.wrapping_mul(2_654_435_761) & 0xff),
                    )),
                    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11 + (i % 4) as u8)),
                )
            };
            SyncConn {
                proto: 6,
                flags: 0x83,
                state: 1,
                caddr,
                cport: 1024 + (i % 60_000) as u16,
                vaddr,
                vport: 80,
                daddr,
                dport: 80,
                fwmark: 0,
                timeout: 900,
                seq: None,
                pe: None,
            }
        })
        .collect()
}

fn encode_all(updates: &[SyncConn], out: &mut Vec<Vec<u8>>) {
    let mut b = MessageBuilder::new(1, DEFAULT_MAXLEN_V4);
    for u in updates {
        if !b.push(u).expect("encodable") {
            out.push(b.finish().to_vec());
            b.clear();
            b.push(u).expect("fits an empty message");
        }
    }
    if !b.is_empty() {
        out.push(b.finish().to_vec());
    }
}

fn bench(c: &mut Criterion) {
    let updates = updates();
    let mut messages = Vec::new();
    encode_all(&updates, &mut messages);
    let bytes: usize = messages.iter().map(Vec::len).sum();
    eprintln!(
        "sync: {UPDATES} updates -> {} messages of at most {DEFAULT_MAXLEN_V4} bytes ({bytes} bytes)",
        messages.len()
    );
    let decoded: usize = messages
        .iter()
        .map(|m| sync::decode(m).expect("decodes").conns.len())
        .sum();
    assert_eq!(decoded, UPDATES);

    let mut g = c.benchmark_group("sync");
    g.throughput(Throughput::Elements(UPDATES as u64));
    g.sample_size(20);
    g.bench_function("encode_100k", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(messages.len());
            encode_all(black_box(&updates), &mut out);
            out
        })
    });
    g.bench_function("decode_100k", |b| {
        b.iter(|| {
            let mut n = 0;
            for m in black_box(&messages) {
                n += sync::decode(m).map_or(0, |msg| msg.conns.len());
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
