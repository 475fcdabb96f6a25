//! Timer wheel costs at 1 M and 10 M armed ids: per-packet re-arm (later,
//! the lazy path), re-arm earlier (unlink and re-link), and expiry.
//!
//! Run: `cargo bench -p rvs-core --bench timer -- --quick`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rvs_core::timer::{BYTES_PER_ID, TimerWheel};

/// Deadlines spread over 900 s, like established connections.
const SPAN_MS: u64 = 900_000;

/// Cheap deterministic mixing so the bench needs no RNG crate.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn filled(n: u32) -> TimerWheel {
    let mut w = TimerWheel::with_capacity(n as usize);
    for id in 0..n {
        w.arm(id, 1 + mix(id as u64) % SPAN_MS);
    }
    w
}

fn bench_timer(c: &mut Criterion) {
    for &n in &[1_000_000u32, 10_000_000] {
        let mut w = filled(n);
        eprintln!(
            "timer: {n} armed ids: {} bytes total, {:.2} bytes/id (entry {} bytes)",
            w.memory_bytes(),
            w.memory_bytes() as f64 / n as f64,
            BYTES_PER_ID
        );

        let mut g = c.benchmark_group(format!("timer_{}M", n / 1_000_000));
        g.sample_size(20);
        g.warm_up_time(Duration::from_millis(500));

        // Re-arm later: the per-packet path (timeout restart).
        let mut i = 0u64;
        let mut bump = SPAN_MS;
        g.bench_function(BenchmarkId::new("rearm_later", n), |b| {
            b.iter(|| {
                i += 1;
                let id = (mix(i) % n as u64) as u32;
                bump += 1;
                w.arm(black_box(id), black_box(bump + (id as u64 & 1023)));
            })
        });

        // Re-arm earlier: unlink and re-link.
        let mut w = filled(n);
        let mut j = 0u64;
        g.bench_function(BenchmarkId::new("rearm_earlier", n), |b| {
            b.iter(|| {
                j += 1;
                let id = (mix(j) % n as u64) as u32;
                let d = w.deadline(id).unwrap_or(SPAN_MS);
                w.arm(black_box(id), black_box(d.saturating_sub(1).max(1)));
            })
        });

        // Expiry: pop timers as virtual time advances; only the pops are
        // timed, the popped ids are re-armed 900 s later outside the clock so
        // the wheel keeps n armed ids.
        let mut w = filled(n);
        let mut now = 0u64;
        let mut batch: Vec<(u32, u64)> = Vec::with_capacity(4096);
        g.bench_function(BenchmarkId::new("expire", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let want = (iters - done).min(4096) as usize;
                    let t0 = Instant::now();
                    while batch.len() < want {
                        match w.pop_expired(now) {
                            Some(x) => batch.push(x),
                            None => now += 1,
                        }
                    }
                    total += t0.elapsed();
                    done += batch.len() as u64;
                    for (id, d) in batch.drain(..) {
                        w.arm(id, d + SPAN_MS);
                    }
                }
                total
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench_timer);
criterion_main!(benches);
