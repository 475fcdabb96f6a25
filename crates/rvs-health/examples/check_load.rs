//! The cost of health checking at scale: N loopback TCP listeners, each
//! with one TCP check every second, driven the way a daemon drives them
//! (one [`ServerHealth`] per server, a timer on the earliest
//! `poll_timeout`, probes spawned on a shared [`Prober`], results fed back),
//! for D seconds. Prints the process's CPU time as a percentage of one core
//! and the probes per second.
//!
//! ```text
//! cargo run --release -p rvs-health --example check_load -- [N=1000] [D=20] [baseline]
//! ```
//!
//! With `baseline`, the same connects are made instead by a plain loop of
//! blocking `connect` and `close` calls paced at N per second, without
//! tokio, timers or state machines: the floor set by the kernel's own TCP
//! work, to compare the first figure with.
//!
//! The listeners never accept: the kernel completes the handshakes, so the
//! figure is the checker's cost plus the loopback handshake work the kernel
//! accounts to this process. Everything runs on one thread (a current-thread
//! runtime), so the figure is also the share of one core.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use rustix::process::{Resource, getrlimit, setrlimit};
use rustix::time::{ClockId, clock_gettime};
use rvs_core::health::{CheckerConfig, CheckerProbe, Outcome, ServerHealth, ServerHealthConfig};
use rvs_core::probe::{ProbeKind, ProbeSpec};
use rvs_health::{CompiledProbe, Prober};
use socket2::{Domain, Socket, Type};
use tokio::time::Instant;

/// Probes running at once: enough for 1 000 checks a second of ~1 ms each,
/// with room for slow ones.
const MAX_IN_FLIGHT: usize = 256;

fn main() {
    let mut args = std::env::args().skip(1);
    let servers: usize = args
        .next()
        .map_or(1000, |a| a.parse().expect("N: a number of servers"));
    let seconds: u64 = args
        .next()
        .map_or(20, |a| a.parse().expect("D: a number of seconds"));
    raise_fd_limit(servers + MAX_IN_FLIGHT + 64);
    let listeners: Vec<Socket> = (0..servers).map(|_| listener()).collect();
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().as_socket().unwrap())
        .collect();
    let baseline = args.next().is_some_and(|a| a == "baseline");
    let report = if baseline {
        blocking_connects(&addrs, Duration::from_secs(seconds))
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(drive(&addrs, Duration::from_secs(seconds)))
    };
    drop(listeners);
    println!(
        "{servers} servers, {} every 1 s, {seconds} s (indicative: shared machine)\n\
         probes: {} ({:.0}/s), failures: {}, mean latency {:.2} ms\n\
         CPU: {:.2} s user+sys in {:.2} s = {:.2} % of one core \
         (user {:.2} s, system {:.2} s)",
        if baseline {
            "blocking connect+close (baseline)"
        } else {
            "TCP check"
        },
        report.probes,
        report.probes as f64 / report.wall,
        report.failures,
        report.latency_ms_sum as f64 / report.probes.max(1) as f64,
        report.cpu,
        report.wall,
        100.0 * report.cpu / report.wall,
        report.user_sys.0,
        report.user_sys.1,
    );
}

struct Report {
    probes: u64,
    failures: u64,
    latency_ms_sum: u64,
    cpu: f64,
    /// The same split into user and system time (10 ms resolution).
    user_sys: (f64, f64),
    wall: f64,
}

/// The daemon's loop, for `run_for`.
async fn drive(addrs: &[SocketAddr], run_for: Duration) -> Report {
    let checker = CheckerConfig {
        interval_ms: 1000,
        connect_timeout_ms: 1000,
        retry: 0,
        delay_before_retry_ms: 1000,
        rise: 1,
        fall: 1,
        alpha: false,
        warmup_ms: 1000,
    };
    let config = ServerHealthConfig {
        weight: 1,
        checkers: vec![checker],
        passive_fall: 0,
        passive_retry_ms: 0,
    };
    let probe = CompiledProbe::new(ProbeSpec {
        connect_ip: None,
        connect_port: None,
        bind: None,
        kind: ProbeKind::Tcp,
    })
    .unwrap();
    let prober = Prober::new(MAX_IN_FLIGHT);
    let origin = Instant::now();
    let now_ms = || origin.elapsed().as_millis() as u64;
    let mut jitter = |warmup: u64| getrandom::u64().unwrap() % (warmup + 1);
    let mut health: Vec<ServerHealth> = addrs
        .iter()
        .map(|_| ServerHealth::new(config.clone(), 0, &mut jitter))
        .collect();
    // Each server has at most one entry: its next timer, or none while its
    // probe is out.
    let mut timers: BinaryHeap<Reverse<(u64, usize)>> = health
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.poll_timeout().map(|t| Reverse((t, i))))
        .collect();
    let (results_tx, mut results) =
        tokio::sync::mpsc::unbounded_channel::<(usize, usize, Outcome)>();
    let mut due = Vec::<CheckerProbe>::new();
    let (mut probes, mut failures, mut latency_ms_sum) = (0u64, 0u64, 0u64);
    let end_ms = run_for.as_millis() as u64;
    let cpu_start = cpu_seconds();
    let split_start = user_sys_seconds();

    loop {
        let next = timers.peek().map_or(end_ms, |r| r.0.0).min(end_ms);
        tokio::select! {
            () = tokio::time::sleep_until(origin + Duration::from_millis(next)) => {
                let now = now_ms();
                if now >= end_ms {
                    break;
                }
                while let Some(&Reverse((t, i))) = timers.peek() {
                    if t > now {
                        break;
                    }
                    timers.pop();
                    due.clear();
                    health[i].on_timeout(now, &mut due);
                    for p in due.drain(..) {
                        let (prober, probe, tx, addr) =
                            (prober.clone(), probe.clone(), results_tx.clone(), addrs[i]);
                        let timeout = Duration::from_millis(p.request.timeout_ms);
                        tokio::spawn(async move {
                            let outcome = prober.probe(addr, &probe, timeout).await;
                            let _ = tx.send((i, p.checker, outcome));
                        });
                    }
                    if let Some(t) = health[i].poll_timeout() {
                        timers.push(Reverse((t, i)));
                    }
                }
            }
            Some((i, checker, outcome)) = results.recv() => {
                probes += 1;
                match outcome {
                    Outcome::Success { latency_ms, .. } => latency_ms_sum += latency_ms,
                    Outcome::Failure(_) => failures += 1,
                }
                health[i].on_result(now_ms(), checker, outcome);
                if let Some(t) = health[i].poll_timeout() {
                    timers.push(Reverse((t, i)));
                }
            }
        }
    }
    Report {
        probes,
        failures,
        latency_ms_sum,
        cpu: cpu_seconds() - cpu_start,
        user_sys: {
            let (u, s) = user_sys_seconds();
            (u - split_start.0, s - split_start.1)
        },
        wall: origin.elapsed().as_secs_f64(),
    }
}

/// The baseline: one blocking connect and close per server per second,
/// spread evenly, on this thread.
fn blocking_connects(addrs: &[SocketAddr], run_for: Duration) -> Report {
    let origin = std::time::Instant::now();
    let cpu_start = cpu_seconds();
    let split_start = user_sys_seconds();
    let step = Duration::from_secs(1) / addrs.len().max(1) as u32;
    let (mut probes, mut failures) = (0u64, 0u64);
    let mut next = origin;
    'run: loop {
        for addr in addrs {
            if origin.elapsed() >= run_for {
                break 'run;
            }
            match std::net::TcpStream::connect_timeout(addr, Duration::from_secs(1)) {
                Ok(stream) => drop(stream),
                Err(_) => failures += 1,
            }
            probes += 1;
            next += step;
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
    }
    let (u, s) = user_sys_seconds();
    Report {
        probes,
        failures,
        latency_ms_sum: 0,
        cpu: cpu_seconds() - cpu_start,
        user_sys: (u - split_start.0, s - split_start.1),
        wall: origin.elapsed().as_secs_f64(),
    }
}

/// A listening socket on 127.0.0.1 with a backlog deep enough to hold every
/// handshake of the run unaccepted.
fn listener() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(4096).unwrap();
    s
}

/// User plus system CPU time of the whole process.
fn cpu_seconds() -> f64 {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// User and system CPU time of the process from `/proc/self/stat`, whose
/// clock ticks are USER_HZ, 100 per second on Linux.
fn user_sys_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is the 3rd field
    // of the line, utime the 14th and stime the 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// Raises the soft limit on open files to at least `want` (up to the hard
/// limit).
fn raise_fd_limit(want: usize) {
    let mut limit = getrlimit(Resource::Nofile);
    let want = want as u64;
    if limit.current.is_some_and(|c| c < want) {
        limit.current = Some(limit.maximum.map_or(want, |m| m.min(want)));
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            eprintln!("cannot raise the open-files limit: {e}");
        }
    }
}
