use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{HttpProbe, ProbeKind};
use rvs_health::{CompiledProbe, Prober};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Barrier;

use crate::support::{is_success, read_head, response, spec};

/// An HTTP server that counts the requests it is handling at once. Each
/// request is counted from its arrival until just before its answer is
/// written, so a probe's request can only be counted while that probe runs.
/// Requests are held until `batch` of them are in, so that the server sees
/// as many at once as the prober lets through.
async fn counting_server(batch: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let max_seen = Arc::new(AtomicUsize::new(0));
    let current = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(batch));
    let seen = max_seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (current, seen, barrier) = (current.clone(), seen.clone(), barrier.clone());
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_err() {
                    return;
                }
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                seen.fetch_max(now, Ordering::SeqCst);
                barrier.wait().await;
                current.fetch_sub(1, Ordering::SeqCst);
                let _ = stream.write_all(&response(200, "")).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, max_seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_in_flight_probes_run_at_once() {
    let (addr, max_seen) = counting_server(4).await;
    let prober = Prober::new(4);
    let probe = CompiledProbe::new(spec(ProbeKind::Http(HttpProbe::default()))).unwrap();
    let in_flight_max = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (prober, probe, in_flight_max) = (prober.clone(), probe.clone(), in_flight_max.clone());
        tasks.push(tokio::spawn(async move {
            let o = prober.probe(addr, &probe, Duration::from_secs(20)).await;
            in_flight_max.fetch_max(prober.in_flight(), Ordering::SeqCst);
            o
        }));
    }
    for t in tasks {
        let o = t.await.unwrap();
        assert!(is_success(&o), "{o:?}");
    }
    assert_eq!(
        max_seen.load(Ordering::SeqCst),
        4,
        "four at once, never more"
    );
    assert!(in_flight_max.load(Ordering::SeqCst) <= 4);
    assert_eq!(prober.in_flight(), 0);
}

#[tokio::test]
async fn waiting_for_a_turn_does_not_count_towards_the_timeout() {
    // A server that accepts and never answers holds the only turn for the
    // whole first timeout.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prober = Prober::new(1);
    let http = CompiledProbe::new(spec(ProbeKind::Http(HttpProbe::default()))).unwrap();
    let tcp = CompiledProbe::new(spec(ProbeKind::Tcp)).unwrap();
    let t = Duration::from_millis(300);
    let (first, second) = tokio::join!(
        prober.probe(silent_addr, &http, t),
        prober.probe(up.local_addr().unwrap(), &tcp, t),
    );
    assert_eq!(first, Outcome::Failure(FailureReason::Timeout));
    assert!(is_success(&second), "{second:?}");
    holder.abort();
}
