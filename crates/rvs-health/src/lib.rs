//! The health-check probes of rvsd, with keepalived's semantics: TCP_CHECK,
//! HTTP_GET, SSL_GET, UDP_CHECK, DNS_CHECK and MISC_CHECK.
//!
//! A probe is described by [`rvs_core::probe::ProbeSpec`] and prepared once
//! into a [`CompiledProbe`] (regular expression compiled, TLS configuration
//! built, CA file read), so that a bad configuration is refused when it is
//! loaded and not at the first probe. A [`Prober`] runs prepared probes and
//! returns an [`Outcome`] for the checker state machines of
//! [`rvs_core::health`]. Every probe opens its own socket (or process) and
//! closes it before it returns: no connection is reused between probes.
//!
//! # The probes
//!
//! The address probed is the real server's, with the spec's `connect_ip` and
//! `connect_port` in place of its address and port when set; `bind` sets the
//! source address. Each probe gets a `timeout`; when it has not finished by
//! then it fails with [`FailureReason::Timeout`] (except the silent-UDP rule
//! below).
//!
//! * **TCP** succeeds when the three-way handshake completes. A reset is
//!   [`FailureReason::Refused`], an ICMP host or network unreachable is
//!   [`FailureReason::Unreachable`], any other error is
//!   [`FailureReason::Other`].
//! * **HTTP / HTTPS** connects as TCP does (same failure reasons), then sends
//!   `GET path` as HTTP/1.0, or HTTP/1.1 with `Connection: close`, with a
//!   `Host` header (the spec's `host`, else the target address, IPv6 in
//!   brackets, the port only when it is not the scheme's default) and a
//!   `User-Agent` containing `KeepAliveClient`, like keepalived's, so that
//!   log filters written for keepalived keep working. It succeeds when the
//!   status is in the accepted ranges (200-299 by default), else
//!   [`FailureReason::BadStatus`]; then, when a digest or a regular
//!   expression is configured, the body (at most `max_body` bytes of it,
//!   sized by `Content-Length`, chunked or up to the end of the connection)
//!   must have that MD5 digest and must match the expression (must not with
//!   `regex_no_match`), else [`FailureReason::BadBody`]. Without either
//!   test the body is not read. A malformed response or a body cut short is
//!   [`FailureReason::Other`].
//!
//!   HTTPS (rustls, *ring* provider, TLS 1.2 and 1.3) sends SNI only when the
//!   spec names `sni`. Without `verify` any certificate is accepted, as in
//!   keepalived, but the handshake itself must complete (the server still
//!   proves it holds the key of the certificate it shows). With `verify` the
//!   chain must lead to a root of `ca_file` (PEM) or, without one, to the
//!   system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` or the distribution's
//!   bundle, read once per process; the operator's own CAs added there are
//!   trusted, as by the other tools on the machine; a machine without any
//!   makes such a probe a configuration error), and the certificate must be
//!   valid for the `sni` name, else the `host` (without a port), else the
//!   target IP address. A failed handshake is
//!   [`FailureReason::Tls`].
//! * **UDP** sends `payload` (16 random bytes when empty) from a connected
//!   socket. An ICMP port, host or network unreachable (seen as an error on
//!   send or receive) is [`FailureReason::Unreachable`]. With
//!   `require_reply`, the first reply must arrive within the timeout
//!   ([`FailureReason::Timeout`]), start with the pattern and be
//!   `min_reply_len..=max_reply_len` bytes long ([`FailureReason::BadBody`]);
//!   `max_reply_len == 0` means no upper limit (so keepalived's default of
//!   255 must be written out by the configuration when `max_reply_length`
//!   is absent). Without `require_reply` the
//!   probe succeeds when any reply arrives, **or when nothing at all arrives
//!   before the timeout** — keepalived's rule. That only shows that no ICMP
//!   error came back: a firewall that drops ICMP or a host that is down
//!   without an ICMP-sending router in between passes it. Prefer
//!   `require_reply` whenever the service answers. A silent success reports
//!   the whole timeout as its latency.
//! * **DNS** sends one query (random ID, RD set, `name`/`qtype`, class IN;
//!   see [`rvs_core::dns_query`]) over UDP and succeeds when a reply with the
//!   same ID, QR set and RCODE 0 arrives. Another RCODE is
//!   [`FailureReason::BadStatus`], ICMP unreachable is
//!   [`FailureReason::Unreachable`], silence is [`FailureReason::Timeout`].
//!   Datagrams that are not a reply to this query are ignored.
//! * **MISC** runs `argv` (no shell) with standard input, output and error
//!   on `/dev/null`, in a process group of its own. Exit status 0 is success, 1 is
//!   [`FailureReason::ExitCode`]`(1)`; with `dynamic`, 2..=255 is success
//!   with dynamic weight `status - 2`; without it any other status `s` is
//!   `ExitCode(s)`. Killed by signal `n`: `ExitCode(-n)`. A program that
//!   cannot be started is [`FailureReason::Other`]. When it runs longer than
//!   `timeout_ms` (the probe's `timeout` when `None`) the whole group is
//!   killed (SIGKILL) and the probe fails with [`FailureReason::Timeout`].
//!   `timeout_ms` is the only setting that may make a probe last longer
//!   than the `timeout` argument, because keepalived's `misc_timeout` is
//!   independent of `connect_timeout`; the configuration should give a MISC
//!   checker a connect timeout equal to its `misc_timeout` so that the
//!   checker and the probe agree.
//!
//! Success reports the probe's latency: from the start of the probe to its
//! verdict, in milliseconds.
//!
//! # Bounded concurrency and file descriptors
//!
//! A [`Prober`] runs at most `max_in_flight` probes at once; more wait for a
//! turn. A running probe holds one socket, or for MISC one child process
//! (and at most one descriptor to wait for it), so a prober bounds the
//! file descriptors and processes health checking can take to
//! `max_in_flight`. The
//! timeout of a probe runs **from when it gets its turn**, not from the
//! call: a saturated prober then makes checks late rather than making them
//! fail, since counting the queueing time would report every slow turn as a
//! timeout and could take many healthy servers down at once. A caller that
//! needs an overall bound wraps the call in its own timeout.
//!
//! Probes run on the caller's tokio runtime, which needs its I/O and time
//! drivers, and for MISC probes its signal driver (`enable_all`).
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{ProbeKind, ProbeSpec};
use tokio::sync::Semaphore;

mod dns;
mod http;
mod misc;
mod tcp;
mod tls;
mod udp;

/// Extra time beyond a probe's timeout before the prober gives up on an
/// executor that did not honour its own deadline.
const SLACK: Duration = Duration::from_millis(250);

/// A probe validated and prepared once (regex compiled, TLS configuration
/// built, CA file loaded); cheap to clone.
#[derive(Debug, Clone)]
pub struct CompiledProbe {
    inner: Arc<Prepared>,
}

#[derive(Debug)]
struct Prepared {
    spec: ProbeSpec,
    /// HTTP and HTTPS state; `None` for other kinds.
    http: Option<http::PreparedHttp>,
}

impl CompiledProbe {
    /// Validates and prepares `spec`; the error says what is wrong with it
    /// (a regular expression that does not compile, an unreadable CA file,
    /// an invalid SNI or DNS name, an empty MISC command, ...).
    pub fn new(spec: ProbeSpec) -> Result<CompiledProbe, String> {
        let http = match &spec.kind {
            ProbeKind::Tcp => None,
            ProbeKind::Http(h) => Some(http::PreparedHttp::new(h)?),
            ProbeKind::Udp(u) => {
                if u.max_reply_len != 0 && u.min_reply_len > u.max_reply_len {
                    return Err(format!(
                        "UDP check: min_reply_length {} is above max_reply_length {}",
                        u.min_reply_len, u.max_reply_len
                    ));
                }
                None
            }
            ProbeKind::Dns(d) => {
                rvs_core::dns_query::encode_query(0, &d.name, d.qtype)
                    .map_err(|e| format!("DNS check: {e}"))?;
                None
            }
            ProbeKind::Misc(m) => {
                if m.argv.first().is_none_or(|p| p.is_empty()) {
                    return Err("MISC check: empty command".into());
                }
                None
            }
        };
        Ok(CompiledProbe {
            inner: Arc::new(Prepared { spec, http }),
        })
    }

    /// The probe's description.
    pub fn spec(&self) -> &ProbeSpec {
        &self.inner.spec
    }
}

/// Runs probes, at most `max_in_flight` at once (see the crate
/// documentation); clones share the bound.
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
    /// `connect_port` override its address and port). Returns within
    /// `timeout` (plus a little slack) of getting a turn, with
    /// [`FailureReason::Timeout`] then; MISC probes use their own
    /// `timeout_ms` when set.
    pub async fn probe(
        &self,
        server: SocketAddr,
        probe: &CompiledProbe,
        timeout: Duration,
    ) -> Outcome {
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Failure(FailureReason::Other);
        };
        let start = Instant::now();
        let spec = probe.spec();
        let limit = match &spec.kind {
            ProbeKind::Misc(m) => m.timeout_ms.map_or(timeout, Duration::from_millis),
            _ => timeout,
        };
        let deadline = tokio::time::Instant::from_std(start) + limit;
        let run = run(
            spec,
            probe.inner.http.as_ref(),
            spec.target(server),
            deadline,
        );
        match tokio::time::timeout_at(deadline + SLACK, run).await {
            Ok(Ok(dynamic_weight)) => Outcome::Success {
                dynamic_weight,
                latency_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
            Ok(Err(reason)) => Outcome::Failure(reason),
            Err(_) => Outcome::Failure(FailureReason::Timeout),
        }
    }

    /// How many probes are running now (waiting ones not counted).
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits()
    }
}

/// Runs one probe against `target`; the dynamic weight on success.
async fn run(
    spec: &ProbeSpec,
    http: Option<&http::PreparedHttp>,
    target: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<Option<u32>, FailureReason> {
    let bind = spec.bind;
    // Executors that must tell silence from failure (UDP, MISC) watch the
    // deadline themselves; the others simply time out at it.
    match (&spec.kind, http) {
        (ProbeKind::Tcp, _) => timed(deadline, tcp::probe(target, bind))
            .await
            .map(|()| None),
        (ProbeKind::Http(_), Some(prepared)) => timed(deadline, prepared.probe(target, bind))
            .await
            .map(|()| None),
        (ProbeKind::Http(_), None) => Err(FailureReason::Other),
        (ProbeKind::Udp(u), _) => udp::probe(target, bind, u, deadline).await.map(|()| None),
        (ProbeKind::Dns(d), _) => timed(deadline, dns::probe(target, bind, d))
            .await
            .map(|()| None),
        (ProbeKind::Misc(m), _) => misc::probe(m, deadline).await,
    }
}

/// `f`'s result, or a timeout at `deadline`.
async fn timed(
    deadline: tokio::time::Instant,
    f: impl Future<Output = Result<(), FailureReason>>,
) -> Result<(), FailureReason> {
    tokio::time::timeout_at(deadline, f)
        .await
        .unwrap_or(Err(FailureReason::Timeout))
}
