//! Full-table resynchronisation without a network: a master director with
//! 100 000 established DR connections answers a returning director, which
//! installs every chunk into its own director.
//!
//! - `snapshot`: the master's side of the first request (table walk into
//!   sync records, cut into 1472-byte chunks);
//! - `transfer`: the whole exchange, request by request in windows of 32,
//!   including the returning director's installs.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_core::director::{Director, DirectorConfig, PacketInfo};
use rvs_core::model::{DestConfig, Forward, Protocol, ServiceConfig, ServiceKey};
use rvs_core::resync::{
    Outcome, ResyncClient, ResyncClientConfig, ResyncServer, ResyncServerConfig,
};
use rvs_core::sctp::SctpEvent;
use rvs_core::state::TcpFlags;
use rvs_core::sync::SyncReceiver;
use rvs_wire::resync::{Datagram, Request, decode};

const CONNS: u32 = 100_000;

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
        port: 80,
    }
}

fn director() -> Director {
    let mut d = Director::new(DirectorConfig::default());
    d.add_service(ServiceConfig::new(key())).unwrap();
    d.add_dest(
        &key(),
        DestConfig {
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11)),
            port: 80,
            forward: Forward::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        },
    )
    .unwrap();
    d
}

fn master() -> Director {
    let mut d = director();
    for i in 0..CONNS {
        for f in [TcpFlags::SYN, TcpFlags::ACK] {
            d.inbound(
                &PacketInfo {
                    proto: Protocol::Tcp,
                    src: IpAddr::V4(Ipv4Addr::from(0xc000_0200 + (i >> 14))),
                    sport: 1024 + (i & 0x3fff) as u16,
                    dst: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
                    dport: 80,
                    fwmark: 0,
                    tcp: f,
                    sctp: SctpEvent::Data,
                    len: 52,
                },
                0,
            );
        }
    }
    assert_eq!(d.conn_count(), CONNS as usize);
    d
}

fn peer() -> SocketAddr {
    "192.0.2.2:40000".parse().unwrap()
}

fn transfer(m: &Director) -> Director {
    let mut server = ResyncServer::new(ResyncServerConfig::default(), 1);
    let mut client = ResyncClient::new(ResyncClientConfig::default(), 7, 0);
    let mut backup = director();
    let mut rx = SyncReceiver::new(0);
    let mut now = 0;
    while client.outcome().is_none() {
        if let Some(req) = client.poll_request(now) {
            for d in server.handle_request(now, peer(), &req, || m.sync_snapshot()) {
                if let Ok(Datagram::Answer(a)) = decode(&d)
                    && let Some(p) = client.handle_answer(now, &a)
                {
                    rx.handle(p, &mut backup, now);
                }
            }
        }
        now += 1;
    }
    assert!(matches!(client.outcome(), Some(Outcome::Complete { .. })));
    backup
}

fn bench(c: &mut Criterion) {
    let m = master();
    let b = transfer(&m);
    assert_eq!(b.conn_count(), CONNS as usize);
    let mut g = c.benchmark_group("resync_100k");
    g.throughput(Throughput::Elements(u64::from(CONNS)));
    g.sample_size(10);
    g.bench_function("snapshot", |bch| {
        bch.iter(|| {
            let mut s = ResyncServer::new(ResyncServerConfig::default(), 1);
            let req = Request {
                sync_id: 0,
                request_id: 1,
                snapshot: 0,
                first: 0,
                count: 32,
            };
            black_box(s.handle_request(0, peer(), &req, || m.sync_snapshot()))
        })
    });
    g.bench_function("transfer", |bch| bch.iter(|| black_box(transfer(&m))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
