//! Cost of one scheduling decision for every scheduler, with 8 and 256 real
//! servers. Servers carry varied weights and connection counts so that the
//! least-connection family really compares; flows rotate over 1 024 clients
//! (and, for lblc/lblcr, 64 target addresses, so the cache mostly hits).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rvs_core::model::{Protocol, SchedulerKind};
use rvs_core::sched::{DestId, DestStatus, Dests, Flow, SchedCtx, SchedOptions, SplitMix64, build};

fn servers(n: usize) -> (Vec<DestStatus>, Vec<DestId>) {
    let mut rng = SplitMix64::new(n as u64);
    let status: Vec<DestStatus> = (0..n)
        .map(|i| {
            let w = (rng.next_u64() % 10 + 1) as u32;
            DestStatus {
                addr: IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i as u32 + 1)),
                port: 80,
                weight: w,
                last_weight: w,
                active: (rng.next_u64() % 64) as u32,
                inactive: (rng.next_u64() % 256) as u32,
                overloaded: false,
                available: true,
            }
        })
        .collect();
    let order = (0..n as u32).map(DestId).collect();
    (status, order)
}

fn flows() -> Vec<Flow> {
    (0..1024u32)
        .map(|i| Flow {
            proto: Protocol::Tcp,
            src: IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i * 7919)),
            sport: 1024 + (i as u16),
            dst: IpAddr::V4(Ipv4Addr::from(0xC633_6400 + (i % 64))),
            dport: 80,
        })
        .collect()
}

fn bench_sched(c: &mut Criterion) {
    let flows = flows();
    for n in [8usize, 256] {
        let (status, order) = servers(n);
        let dests = Dests {
            order: &order,
            status: &status,
        };
        let mut group = c.benchmark_group(format!("sched/{n}"));
        for kind in SchedulerKind::ALL {
            let mut s = build(kind, &SchedOptions::default(), dests);
            let mut rng = SplitMix64::new(1);
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::from_parameter(kind.name()), &kind, |b, _| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let mut ctx = SchedCtx {
                        now_ms: 1_000,
                        rng: &mut rng,
                        lblc_expiration: 86_400,
                        lblcr_expiration: 86_400,
                    };
                    black_box(s.schedule(dests, black_box(&flows[i]), &mut ctx))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_sched);
criterion_main!(benches);
