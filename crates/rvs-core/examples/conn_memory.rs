//! Bytes per connection entry: `ConnTable::memory_bytes() / len()` for
//! tables sized with `reserve(n)` and holding `n` entries, every one with
//! its timer armed.
//!
//! Run with `cargo run --release -p rvs-core --example conn_memory`.

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_core::conn::{Addr, Conn, ConnTable, NO_CONTROL};
use rvs_core::sched::{DestId, SplitMix64};
use rvs_core::timer::TimerWheel;

const HASH_KEY: [u64; 4] = [1, 2, 3, 4];

fn conn<A: Addr>(i: u64, client: impl Fn(u32) -> A, vip: A) -> Conn<A> {
    Conn {
        caddr: client((i >> 16) as u32),
        vaddr: vip,
        cport: i as u16,
        vport: 443,
        dport: 8443,
        proto: 6,
        state: 3,
        flags: 0,
        dest: DestId(0),
        control: NO_CONTROL,
        n_control: 0,
        timeout: 900,
        fwmark: 0,
        seq: i as u32,
    }
}

fn measure<A: Addr>(name: &str, n: usize, client: impl Fn(u32) -> A, vip: A) {
    let mut table = ConnTable::<A>::new(n, HASH_KEY);
    table.reserve(n);
    // The same arms on a lone wheel, to show the timers' share.
    let mut wheel = TimerWheel::new();
    wheel.reserve(n);
    let mut rng = SplitMix64::new(7);
    for i in 0..n as u64 {
        let id = table.insert(conn(i, &client, vip)).expect("room");
        let d = 1 + rng.next_u64() % 900_000;
        table.arm(id, d);
        wheel.arm(id, d);
    }
    let total = table.memory_bytes();
    let slab = n * std::mem::size_of::<Conn<A>>();
    let timers = wheel.memory_bytes();
    let per = |b: usize| b as f64 / table.len() as f64;
    println!(
        "{name:>4} {n:>10} entries: {:>7.2} bytes/entry \
         (total {total} B; slab {:.2} = size_of::<Conn> {}, timers {:.2}, index+free {:.2})",
        per(total),
        per(slab),
        std::mem::size_of::<Conn<A>>(),
        per(timers),
        per(total - slab - timers),
    );
}

fn main() {
    let v4 = |n: u32| Ipv4Addr::from(n.wrapping_mul(0x9E37_79B1));
    let v6 = |n: u32| Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(n) << 16);
    measure("IPv4", 1_000_000, v4, Ipv4Addr::new(203, 0, 113, 1));
    measure("IPv4", 10_000_000, v4, Ipv4Addr::new(203, 0, 113, 1));
    measure(
        "IPv6",
        1_000_000,
        v6,
        Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1),
    );
}
