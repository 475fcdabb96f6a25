//! Connection-table and director throughput.
//!
//! Tables are built once per size and shared by every case of that size, so
//! the 10 M cases cost one fill rather than one per sample. Each measured
//! iteration is a batch of [`BATCH`] operations (reported as elements/s), so
//! the harness's per-iteration overhead and `Instant` reads are spread over
//! many operations. Keys and ids are drawn from a seeded SplitMix64, so runs
//! are repeatable.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rvs_core::conn::{Addr, Conn, ConnKey, ConnTable, NO_CONTROL};
use rvs_core::director::{Director, DirectorConfig, PacketInfo, Verdict};
use rvs_core::model::{DestConfig, Forward, Protocol, SchedulerKind, ServiceConfig, ServiceKey};
use rvs_core::sched::{DestId, SplitMix64};
use rvs_core::state::TcpFlags;

/// Operations per measured iteration.
const BATCH: usize = 1024;
/// Random lookup keys kept ready, so key generation is outside the timed loop
/// while the touched entries are still spread over the whole table (a small
/// key set would sit in cache and flatter the figure).
const LOOKUP_KEYS: usize = 1 << 20;
/// Spread of timer deadlines: the TCP ESTABLISHED timeout, in ms.
const HORIZON_MS: u64 = 900_000;
const HASH_KEY: [u64; 4] = [0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344];

/// Address types the bench can generate distinct clients for.
trait GenAddr: Addr {
    fn client(n: u32) -> Self;
    fn vip(n: u32) -> Self;
}

impl GenAddr for Ipv4Addr {
    fn client(n: u32) -> Self {
        // An odd multiplier is a bijection on u32: distinct and scattered.
        Ipv4Addr::from(n.wrapping_mul(0x9E37_79B1))
    }
    fn vip(n: u32) -> Self {
        Ipv4Addr::new(203, 0, 113, n as u8)
    }
}

impl GenAddr for Ipv6Addr {
    fn client(n: u32) -> Self {
        Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(n.wrapping_mul(0x9E37_79B1)) << 16)
    }
    fn vip(n: u32) -> Self {
        Ipv6Addr::from((0x2001_0db8_ffffu128 << 80) | u128::from(n & 0xff))
    }
}

/// The `i`-th distinct connection: 65 536 client ports per client address,
/// four VIPs.
fn conn<A: GenAddr>(i: u64) -> Conn<A> {
    Conn {
        caddr: A::client((i >> 16) as u32),
        vaddr: A::vip((i & 3) as u32 + 1),
        cport: i as u16,
        vport: 443,
        dport: 8443,
        proto: 6,
        state: 3,
        flags: 0,
        dest: DestId((i & 7) as u32),
        control: NO_CONTROL,
        n_control: 0,
        timeout: 900,
        fwmark: 0,
        seq: i as u32,
    }
}

fn key<A: GenAddr>(i: u64) -> ConnKey<A> {
    conn::<A>(i).key()
}

/// A table of `n` live entries with armed timers, and the state the cases
/// share.
struct Fixture<A: GenAddr> {
    n: u64,
    table: ConnTable<A>,
    rng: SplitMix64,
    /// Timer clock: every deadline is in `(now, now + HORIZON_MS]`.
    now: u64,
    lookup_keys: Vec<ConnKey<A>>,
}

impl<A: GenAddr> Fixture<A> {
    fn build(n: u64) -> Self {
        let t0 = Instant::now();
        // Room for one extra batch so the insert case never hits TableFull.
        let mut table = ConnTable::new(n as usize + BATCH, HASH_KEY);
        table.reserve(n as usize + BATCH);
        let mut rng = SplitMix64::new(0x5EED);
        let now = 1_000;
        for i in 0..n {
            let id = table.insert(conn::<A>(i)).expect("room");
            table.arm(id, now + 1 + rng.next_u64() % HORIZON_MS);
        }
        let lookup_keys = (0..LOOKUP_KEYS)
            .map(|_| key::<A>(rng.next_u64() % n))
            .collect();
        eprintln!(
            "built {n} entries ({}) in {:.2?}",
            std::any::type_name::<A>(),
            t0.elapsed()
        );
        Fixture {
            n,
            table,
            rng,
            now,
            lookup_keys,
        }
    }

    /// `BATCH` distinct live ids, scattered over the table: key indices
    /// `start + k * STRIDE (mod n)` are distinct because the stride is prime
    /// to n (odd, not a multiple of 5, and n is a round decimal number).
    fn random_ids(&mut self, ids: &mut Vec<u32>) {
        const STRIDE: u64 = 0x9E37_79B1;
        let start = self.rng.next_u64() % self.n;
        ids.clear();
        for k in 0..BATCH as u64 {
            let i = (start + k * STRIDE) % self.n;
            ids.push(self.table.lookup(&key::<A>(i)).expect("present"));
        }
    }
}

fn label(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else {
        n.to_string()
    }
}

fn bench_lookup<A: GenAddr>(g: &mut BenchmarkGroup<'_, WallTime>, f: &mut Fixture<A>, name: &str) {
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut pos = 0usize;
    g.bench_function(name, |b| {
        b.iter(|| {
            let keys = &f.lookup_keys[pos..pos + BATCH];
            pos = (pos + BATCH) % LOOKUP_KEYS;
            let mut acc = 0u32;
            for k in keys {
                acc ^= f.table.lookup(black_box(k)).unwrap_or(u32::MAX);
            }
            acc
        })
    });
}

fn bench_table_size<A: GenAddr>(c: &mut Criterion, n: u64) {
    let mut f = Fixture::<A>::build(n);
    let fam = if std::mem::size_of::<A>() == 4 {
        "v4"
    } else {
        "v6"
    };
    let mut g = c.benchmark_group(format!("conn_{fam}_{}", label(n)));
    g.sample_size(10);
    bench_lookup(&mut g, &mut f, "lookup_hit");
    if fam == "v6" {
        g.finish();
        return;
    }
    g.throughput(Throughput::Elements(BATCH as u64));

    // Insert of new keys into a table with room; the batch is removed again
    // outside the timing so the table stays at n entries.
    g.bench_function("insert", |b| {
        let mut ids = Vec::with_capacity(BATCH);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                for k in 0..BATCH as u64 {
                    ids.push(f.table.insert(conn::<A>(f.n + k)).expect("room"));
                }
                total += t.elapsed();
                for id in ids.drain(..) {
                    f.table.remove(id);
                }
            }
            total
        })
    });

    // Removal of random live entries (unhash, timer cancel, slot free); they
    // are put back, re-armed, outside the timing.
    g.bench_function("remove", |b| {
        let mut ids = Vec::with_capacity(BATCH);
        let mut gone = Vec::with_capacity(BATCH);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                f.random_ids(&mut ids);
                let t = Instant::now();
                for &id in &ids {
                    gone.push(f.table.remove(black_box(id)));
                }
                total += t.elapsed();
                for c in gone.drain(..) {
                    let id = f.table.insert(c).expect("room");
                    let d = f.now + 1 + f.rng.next_u64() % HORIZON_MS;
                    f.table.arm(id, d);
                }
            }
            total
        })
    });

    // Re-arm of random existing entries, as every packet on a flow does.
    g.bench_function("timer_rearm", |b| {
        let mut work = Vec::with_capacity(BATCH);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                work.clear();
                for _ in 0..BATCH {
                    let id = (f.rng.next_u64() % f.n) as u32;
                    let d = f.now + 1 + f.rng.next_u64() % HORIZON_MS;
                    work.push((id, d));
                }
                let t = Instant::now();
                for &(id, d) in &work {
                    f.table.arm(black_box(id), d);
                }
                total += t.elapsed();
            }
            total
        })
    });

    // Expiry: the clock steps 1 ms at a time and every due entry is popped
    // and removed, until a batch has gone. The entries come back outside the
    // timing with a deadline one horizon later, so the table stays full.
    g.bench_function("timer_expire", |b| {
        let mut gone = Vec::with_capacity(BATCH);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                while gone.len() < BATCH {
                    match f.table.pop_expired(f.now) {
                        Some((id, d)) => gone.push((f.table.remove(id), d)),
                        None => f.now += 1,
                    }
                }
                total += t.elapsed();
                for (c, d) in gone.drain(..) {
                    let id = f.table.insert(c).expect("room");
                    f.table.arm(id, d + HORIZON_MS);
                }
            }
            total
        })
    });
    g.finish();
}

fn conn_v4_1m(c: &mut Criterion) {
    bench_table_size::<Ipv4Addr>(c, 1_000_000);
}

fn conn_v4_10m(c: &mut Criterion) {
    bench_table_size::<Ipv4Addr>(c, 10_000_000);
}

fn conn_v6_1m(c: &mut Criterion) {
    bench_table_size::<Ipv6Addr>(c, 1_000_000);
}

/// Entries a director case holds before its table is emptied by expiry.
const DIRECTOR_CAPACITY: usize = 1 << 21;
/// Decisions timed between checks for room.
const DIRECTOR_CHUNK: u64 = 1 << 16;

struct DirectorFixture {
    d: Director,
    now: u64,
    client: u64,
    vip: IpAddr,
}

impl DirectorFixture {
    fn build(kind: SchedulerKind, servers: u32) -> Self {
        let mut d = Director::new(DirectorConfig {
            conn_capacity: DIRECTOR_CAPACITY,
            ..DirectorConfig::default()
        });
        let vip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: vip,
            port: 80,
        };
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = kind;
        d.add_service(cfg).expect("service");
        for s in 0..servers {
            d.add_dest(
                &key,
                DestConfig {
                    addr: IpAddr::V4(Ipv4Addr::from(0x0A01_0000 + s)),
                    port: 8080,
                    forward: Forward::Masq,
                    weight: 1 + s % 3,
                    u_threshold: 0,
                    l_threshold: 0,
                },
            )
            .expect("dest");
        }
        let mut f = DirectorFixture {
            d,
            now: 1_000,
            client: 0,
            vip,
        };
        match f.syn() {
            Verdict::Forward(fw) if fw.new_conn => {}
            v => panic!("a SYN to the service should create a connection: {v:?}"),
        }
        // Fill once and expire, so that the slab and the index have reached
        // their final size and no timed decision pays for growth.
        f.fill_and_expire(DIRECTOR_CAPACITY as u64 - 1);
        f
    }

    /// One SYN from a client never seen in this table's life.
    fn syn(&mut self) -> Verdict {
        let c = self.client;
        self.client += 1;
        let p = PacketInfo {
            proto: Protocol::Tcp,
            src: IpAddr::V4(Ipv4Addr::from(
                0x6400_0000u32.wrapping_add((c / 60_000) as u32),
            )),
            sport: 1024 + (c % 60_000) as u16,
            dst: self.vip,
            dport: 80,
            fwmark: 0,
            tcp: TcpFlags::SYN,
            sctp: rvs_core::sctp::SctpEvent::Data,
            len: 60,
        };
        self.d.inbound(black_box(&p), self.now)
    }

    fn fill_and_expire(&mut self, n: u64) {
        for _ in 0..n {
            black_box(self.syn());
        }
        self.expire_all();
    }

    fn expire_all(&mut self) {
        // Well past every SYN_RECV timeout.
        self.now += 3_600_000;
        self.d.advance(self.now);
        assert_eq!(self.d.conn_count(), 0);
    }
}

fn director(c: &mut Criterion) {
    let mut g = c.benchmark_group("director_schedule_insert");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    let cases = [
        (SchedulerKind::Rr, 8),
        (SchedulerKind::Wlc, 8),
        (SchedulerKind::Mh, 8),
        (SchedulerKind::Wlc, 256),
    ];
    for (kind, servers) in cases {
        let mut f = DirectorFixture::build(kind, servers);
        let name = format!("{}_{servers}", format!("{kind:?}").to_lowercase());
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(DIRECTOR_CHUNK);
                    if f.d.conn_count() as u64 + chunk > DIRECTOR_CAPACITY as u64 {
                        f.expire_all();
                    }
                    let t = Instant::now();
                    for _ in 0..chunk {
                        black_box(f.syn());
                    }
                    total += t.elapsed();
                    left -= chunk;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, conn_v4_1m, conn_v6_1m, director, conn_v4_10m);
criterion_main!(benches);
