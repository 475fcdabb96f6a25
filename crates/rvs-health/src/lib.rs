//! Health-check probe executors of rvsd (skeleton; see the module docs as
//! they fill in).
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{ProbeKind, ProbeSpec};
use tokio::sync::Semaphore;

mod tcp;

/// A probe validated and prepared once (regex compiled, TLS configuration
/// built, CA file loaded); cheap to clone.
#[derive(Debug, Clone)]
pub struct CompiledProbe {
    inner: Arc<Prepared>,
}

#[derive(Debug)]
struct Prepared {
    spec: ProbeSpec,
}

impl CompiledProbe {
    /// Validates and prepares `spec`; the error says what is wrong with it.
    pub fn new(spec: ProbeSpec) -> Result<CompiledProbe, String> {
        Ok(CompiledProbe {
            inner: Arc::new(Prepared { spec }),
        })
    }

    /// The probe's description.
    pub fn spec(&self) -> &ProbeSpec {
        &self.inner.spec
    }
}

/// Runs probes, at most `max_in_flight` at once.
#[derive(Debug, Clone)]
pub struct Prober {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

impl Prober {
    /// A prober running at most `max_in_flight` probes at once (at least 1).
    pub fn new(max_in_flight: usize) -> Prober {
        let max_in_flight = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Prober {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    /// Probes the real server `server` (the spec's `connect_ip` and
    /// `connect_port` override its address and port).
    pub async fn probe(
        &self,
        server: SocketAddr,
        probe: &CompiledProbe,
        timeout: Duration,
    ) -> Outcome {
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Failure(FailureReason::Other);
        };
        let spec = probe.spec();
        let target = spec.target(server);
        let start = Instant::now();
        let run = async {
            match &spec.kind {
                ProbeKind::Tcp => tcp::probe(target, spec.bind).await.map(|_| None),
                _ => Err(FailureReason::Other),
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(dynamic_weight)) => Outcome::Success {
                dynamic_weight,
                latency_ms: start.elapsed().as_millis() as u64,
            },
            Ok(Err(reason)) => Outcome::Failure(reason),
            Err(_) => Outcome::Failure(FailureReason::Timeout),
        }
    }

    /// How many probes are running now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits()
    }
}
