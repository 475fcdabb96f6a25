//! `/metrics`: the engine's statistics in the Prometheus/OpenMetrics text
//! format, on the `[metrics] listen` address.
//!
//! Nothing is counted twice: a [`Collector`] reads the engine's snapshots
//! (the same ones `rvsadm -L --stats` lists) and `/proc/self` at scrape
//! time, so a scrape always agrees with the director.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rvs_core::director::ServiceSnapshot;
use rvs_core::model::{Family, ServiceKey, SockAddrDisplay};
use rvs_core::stats::{Counters, Rates};
use rvs_proxy::Engine;

/// The content type of OpenMetrics text, which Prometheus scrapes natively.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A service's label value: `tcp/127.0.0.1:8080`, `udp/[::1]:53`, `fwm/7`.
pub fn service_label(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { proto, addr, port } => format!(
            "{}/{}",
            proto.name().to_ascii_lowercase(),
            SockAddrDisplay(*addr, *port)
        ),
        ServiceKey::FwMark {
            family: Family::V4,
            mark,
        } => format!("fwm/{mark}"),
        ServiceKey::FwMark {
            family: Family::V6,
            mark,
        } => format!("fwm6/{mark}"),
    }
}

type Labels = Vec<(&'static str, String)>;

/// One family: its name (counters without `_total`, the encoder adds it),
/// help, type, and samples.
struct Series<'a, V> {
    name: &'a str,
    help: &'a str,
    samples: Vec<(Labels, V)>,
}

/// Writes one family: a single unlabelled sample for a process-wide value
/// (no `{}` after its name), else one sample per label set.
fn series<V: Copy, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    f: Series<'_, V>,
    kind: MetricType,
    metric: impl Fn(V) -> M,
) -> Result<(), fmt::Error> {
    let mut m = enc.encode_descriptor(f.name, f.help, None, kind)?;
    if let [(labels, v)] = f.samples.as_slice()
        && labels.is_empty()
    {
        return metric(*v).encode(m);
    }
    for (labels, v) in &f.samples {
        metric(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder, f: Series<'_, u64>) -> Result<(), fmt::Error> {
    series(enc, f, MetricType::Counter, ConstCounter::new)
}

fn counter_f64(enc: &mut DescriptorEncoder, f: Series<'_, f64>) -> Result<(), fmt::Error> {
    series(enc, f, MetricType::Counter, ConstCounter::new)
}

fn gauge(enc: &mut DescriptorEncoder, f: Series<'_, i64>) -> Result<(), fmt::Error> {
    series(enc, f, MetricType::Gauge, ConstGauge::new)
}

fn gauge_f64(enc: &mut DescriptorEncoder, f: Series<'_, f64>) -> Result<(), fmt::Error> {
    series(enc, f, MetricType::Gauge, ConstGauge::new)
}

fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The five statistics counters and rates, named as `ipvsadm --stats` and
/// `--rate` name their columns.
/// A family's name suffix, its help, and how to read it.
type Stat<T> = (&'static str, &'static str, fn(&T) -> u64);

const COUNTERS: [Stat<Counters>; 5] = [
    ("connections", "connections scheduled", |c| c.conns),
    (
        "in_packets",
        "packets client to server (for a proxied connection: relay reads)",
        |c| c.inpkts,
    ),
    (
        "out_packets",
        "packets server to client (for a proxied connection: relay reads)",
        |c| c.outpkts,
    ),
    ("in_bytes", "payload bytes client to server", |c| c.inbytes),
    ("out_bytes", "payload bytes server to client", |c| {
        c.outbytes
    }),
];

const RATES: [Stat<Rates>; 5] = [
    (
        "connections_per_second",
        "estimated connections per second",
        |r| r.cps,
    ),
    (
        "in_packets_per_second",
        "estimated packets per second, client to server",
        |r| r.inpps,
    ),
    (
        "out_packets_per_second",
        "estimated packets per second, server to client",
        |r| r.outpps,
    ),
    (
        "in_bytes_per_second",
        "estimated bytes per second, client to server",
        |r| r.inbps,
    ),
    (
        "out_bytes_per_second",
        "estimated bytes per second, server to client",
        |r| r.outbps,
    ),
];

/// Reads the engine and the process at every scrape.
#[derive(Debug)]
pub struct EngineCollector {
    engine: Engine,
}

impl EngineCollector {
    /// A collector over a running engine.
    pub fn new(engine: Engine) -> EngineCollector {
        EngineCollector { engine }
    }
}

impl Collector for EngineCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let services = rvs_api::Control::services(&self.engine);
        encode_services(&mut enc, &services, &self.engine.connect_failures())?;
        gauge(
            &mut enc,
            Series {
                name: "rvs_relays_active",
                help: "Live TCP relays and UDP sessions, all services",
                samples: vec![(Vec::new(), sat(self.engine.active() as u64))],
            },
        )?;
        encode_process(&mut enc)
    }
}

/// Reads the packet data plane and the process at every scrape: the
/// services as for the proxy, plus the frame counters of the forwarder and
/// of the ring I/O.
#[derive(Debug)]
pub struct PacketCollector {
    dataplane: rvs_dataplane::Dataplane,
}

impl PacketCollector {
    /// A collector over a running packet data plane.
    pub fn new(dataplane: rvs_dataplane::Dataplane) -> PacketCollector {
        PacketCollector { dataplane }
    }
}

impl Collector for PacketCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let services = rvs_api::Control::services(&self.dataplane);
        encode_services(&mut enc, &services, &[])?;
        let c = self.dataplane.counters();
        let f = &c.forward;
        let frames: Vec<(Labels, u64)> = [
            ("received", c.rx_frames),
            ("forwarded_in", f.forwarded_in),
            ("forwarded_out", f.forwarded_out),
            ("icmp_forwarded", f.icmp_forwarded),
            ("icmp_sent", f.icmp_sent),
            ("resets_sent", f.resets_sent),
            ("fragmented", f.fragmented),
            ("passed", f.passed),
            ("transmitted", c.tx_frames),
        ]
        .into_iter()
        .map(|(k, v)| (vec![("kind", k.to_string())], v))
        .collect();
        counter(
            &mut enc,
            Series {
                name: "rvs_packet_frames",
                help: "Frames of the packet data plane by what happened to them",
                samples: frames,
            },
        )?;
        let mut drops: Vec<(Labels, u64)> = rvs_forward::DropReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.name().to_string())], f.dropped(*r)))
            .collect();
        for (k, v) in [
            ("tx_ring_full", c.tx_ring_full),
            ("tx_too_big", c.tx_too_big),
            ("rx_truncated", c.rx_truncated),
            ("vlan_tagged", c.vlan_skipped),
            ("other_host", c.other_host),
            ("rx_ring_full", c.ring_drops),
        ] {
            drops.push((vec![("reason", k.to_string())], v));
        }
        counter(
            &mut enc,
            Series {
                name: "rvs_packet_drops",
                help: "Frames the packet data plane dropped, by reason",
                samples: drops,
            },
        )?;
        encode_process(&mut enc)
    }
}

fn server_labels(svc: &str, addr: std::net::IpAddr, port: u16) -> Labels {
    vec![
        ("service", svc.to_string()),
        ("server", SockAddrDisplay(addr, port).to_string()),
    ]
}

/// One sample per service, labelled with the service.
fn per_service<V>(
    labelled: &[(String, &ServiceSnapshot)],
    value: impl Fn(&ServiceSnapshot) -> V,
) -> Vec<(Labels, V)> {
    labelled
        .iter()
        .map(|(l, s)| (vec![("service", l.clone())], value(s)))
        .collect()
}

/// One sample per server of every service, labelled with both.
fn per_server<V>(
    labelled: &[(String, &ServiceSnapshot)],
    value: impl Fn(&rvs_core::director::DestSnapshot) -> V,
) -> Vec<(Labels, V)> {
    labelled
        .iter()
        .flat_map(|(l, s)| {
            s.dests
                .iter()
                .map(|d| (server_labels(l, d.config.addr, d.config.port), value(d)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn encode_services(
    enc: &mut DescriptorEncoder,
    services: &[ServiceSnapshot],
    failures: &[(ServiceKey, std::net::IpAddr, u16, u64)],
) -> Result<(), fmt::Error> {
    let labelled: Vec<(String, &ServiceSnapshot)> = services
        .iter()
        .map(|s| (service_label(&s.config.key), s))
        .collect();
    for (what, help, get) in COUNTERS {
        counter(
            enc,
            Series {
                name: &format!("rvs_service_{what}"),
                help: &format!("Service {help}, since it was added or last zeroed"),
                samples: per_service(&labelled, |s| get(&s.stats)),
            },
        )?;
        counter(
            enc,
            Series {
                name: &format!("rvs_server_{what}"),
                help: &format!("Server {help}, since it was added or last zeroed"),
                samples: per_server(&labelled, |d| get(&d.stats)),
            },
        )?;
    }
    for (what, help, get) in RATES {
        gauge(
            enc,
            Series {
                name: &format!("rvs_service_{what}"),
                help: &format!("Service {help}"),
                samples: per_service(&labelled, |s| sat(get(&s.rates))),
            },
        )?;
        gauge(
            enc,
            Series {
                name: &format!("rvs_server_{what}"),
                help: &format!("Server {help}"),
                samples: per_server(&labelled, |d| sat(get(&d.rates))),
            },
        )?;
    }
    type DestGauge = fn(&rvs_core::director::DestSnapshot) -> i64;
    let dest_gauges: [(&str, &str, DestGauge); 5] = [
        (
            "active_connections",
            "connections in ESTABLISHED (ActiveConn)",
            |d| i64::from(d.active),
        ),
        (
            "inactive_connections",
            "connections in any other state (InActConn)",
            |d| i64::from(d.inactive),
        ),
        (
            "persistent_templates",
            "persistence templates (PersistConn)",
            |d| i64::from(d.persistent),
        ),
        ("weight", "current weight (0: quiesced)", |d| {
            i64::from(d.config.weight)
        }),
        (
            "overloaded",
            "overloaded: 1 while the upper threshold stops scheduling to it",
            |d| i64::from(d.overloaded),
        ),
    ];
    for (i, (what, help, get)) in dest_gauges.into_iter().enumerate() {
        // Connection counts also per service (the sum over its servers).
        if i < 3 {
            gauge(
                enc,
                Series {
                    name: &format!("rvs_service_{what}"),
                    help: &format!("Service {help}, all its servers"),
                    samples: per_service(&labelled, |s| s.dests.iter().map(get).sum()),
                },
            )?;
        }
        gauge(
            enc,
            Series {
                name: &format!("rvs_server_{what}"),
                help: &format!("Server {help}"),
                samples: per_server(&labelled, get),
            },
        )?;
    }
    // Every current server has a series (0 until it fails); a deleted
    // server's failures stay listed while its service exists.
    let mut fails: Vec<(Labels, u64)> = Vec::new();
    for (l, s) in &labelled {
        for d in &s.dests {
            let n = failures
                .iter()
                .find(|f| f.0 == s.config.key && f.1 == d.config.addr && f.2 == d.config.port)
                .map_or(0, |f| f.3);
            fails.push((server_labels(l, d.config.addr, d.config.port), n));
        }
    }
    for &(key, addr, port, n) in failures {
        let listed = services.iter().any(|s| {
            s.config.key == key
                && s.dests
                    .iter()
                    .any(|d| d.config.addr == addr && d.config.port == port)
        });
        if !listed {
            fails.push((server_labels(&service_label(&key), addr, port), n));
        }
    }
    counter(
        enc,
        Series {
            name: "rvs_server_connect_failures",
            help: "Connects to the server refused or timed out, since its service was added",
            samples: fails,
        },
    )
}

/// What `/proc/self` says about this process.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ProcStats {
    cpu_seconds: f64,
    start_time: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
}

/// Parses `/proc/self/stat`: (utime + stime ticks, start ticks after boot,
/// vsize bytes, rss pages). The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime is field 14, stime 15, starttime 22,
    // vsize 23, rss 24.
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some((n(11)? + n(12)?, n(19)?, n(20)?, n(21)?))
}

fn read_proc() -> Option<ProcStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (cpu_ticks, start_ticks, vsize, rss_pages) = parse_stat(&stat)?;
    let hz = rustix::param::clock_ticks_per_second().max(1) as f64;
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse()
                .ok()
        });
    Some(ProcStats {
        cpu_seconds: cpu_ticks as f64 / hz,
        start_time: btime as f64 + start_ticks as f64 / hz,
        resident_bytes: rss_pages * rustix::param::page_size() as u64,
        virtual_bytes: vsize,
        open_fds,
        max_fds,
    })
}

fn encode_process(enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    // Outside Linux's /proc there is nothing to report; the engine's
    // metrics stand alone.
    let Some(p) = read_proc() else {
        return Ok(());
    };
    let one = |v| vec![(Vec::new(), v)];
    counter_f64(
        enc,
        Series {
            name: "process_cpu_seconds",
            help: "User and system CPU time spent, in seconds",
            samples: one(p.cpu_seconds),
        },
    )?;
    gauge_f64(
        enc,
        Series {
            name: "process_start_time_seconds",
            help: "Start time of the process since the Unix epoch, in seconds",
            samples: one(p.start_time),
        },
    )?;
    gauge(
        enc,
        Series {
            name: "process_resident_memory_bytes",
            help: "Resident memory size, in bytes",
            samples: vec![(Vec::new(), sat(p.resident_bytes))],
        },
    )?;
    gauge(
        enc,
        Series {
            name: "process_virtual_memory_bytes",
            help: "Virtual memory size, in bytes",
            samples: vec![(Vec::new(), sat(p.virtual_bytes))],
        },
    )?;
    gauge(
        enc,
        Series {
            name: "process_open_fds",
            help: "Open file descriptors",
            samples: vec![(Vec::new(), sat(p.open_fds))],
        },
    )?;
    if let Some(max) = p.max_fds {
        gauge(
            enc,
            Series {
                name: "process_max_fds",
                help: "Most open file descriptors allowed (soft limit)",
                samples: vec![(Vec::new(), sat(max))],
            },
        )?;
    }
    Ok(())
}

/// The registry of a daemon: one collector over its data plane, one over
/// health checking when it runs, and `extra` ones (VRRP, connection
/// synchronisation).
pub fn registry(
    collector: Box<dyn Collector>,
    health: Option<crate::health::Health>,
    extra: Vec<Box<dyn Collector>>,
) -> Registry {
    let mut r = Registry::default();
    r.register_collector(collector);
    for c in extra {
        r.register_collector(c);
    }
    if let Some(h) = health {
        r.register_collector(Box::new(HealthCollector { health: h }));
    }
    r
}

/// Reads the sync daemons' counters at every scrape.
#[derive(Debug)]
pub struct SyncCollector {
    sync: Arc<rvs_ha::sync::SyncDaemons>,
}

impl SyncCollector {
    /// A collector over `sync`'s counters.
    pub fn new(sync: Arc<rvs_ha::sync::SyncDaemons>) -> SyncCollector {
        SyncCollector { sync }
    }
}

impl Collector for SyncCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let st = self.sync.stats();
        let one = |v: &std::sync::atomic::AtomicU64| vec![(Vec::new(), v.load(Relaxed))];
        let plain: [(&str, &str, &std::sync::atomic::AtomicU64); 12] = [
            (
                "rvs_sync_messages_sent",
                "Sync messages sent by the master daemon",
                &st.messages_sent,
            ),
            (
                "rvs_sync_connections_sent",
                "Connection records sent by the master daemon",
                &st.conns_sent,
            ),
            (
                "rvs_sync_messages_received",
                "Sync messages accepted by the backup daemon",
                &st.messages_received,
            ),
            (
                "rvs_sync_connections_received",
                "Connection records installed by the backup daemon",
                &st.conns_received,
            ),
            (
                "rvs_resync_requests_sent",
                "Full-table requests sent by this director while returning (first and repeated)",
                &st.resync_requests_sent,
            ),
            (
                "rvs_resync_request_retries",
                "Full-table requests repeated because nothing new arrived",
                &st.resync_retries,
            ),
            (
                "rvs_resync_chunks_received",
                "Chunks of a master's table received",
                &st.resync_chunks_received,
            ),
            (
                "rvs_resync_connections_received",
                "Connection records installed from a master's table",
                &st.resync_conns_received,
            ),
            (
                "rvs_resync_requests_answered",
                "Full-table requests this director answered as master",
                &st.resync_requests_answered,
            ),
            (
                "rvs_resync_chunks_sent",
                "Chunks of this director's table sent to returning directors",
                &st.resync_chunks_sent,
            ),
            (
                "rvs_resync_connections_sent",
                "Connection records put into snapshots for returning directors",
                &st.resync_conns_sent,
            ),
            (
                "rvs_resync_runs_complete",
                "Resynchronisations that got the whole table",
                &st.resync_complete,
            ),
        ];
        for (name, help, v) in plain {
            counter(
                &mut enc,
                Series {
                    name,
                    help,
                    samples: one(v),
                },
            )?;
        }
        counter(
            &mut enc,
            Series {
                name: "rvs_resync_runs_incomplete",
                help: "Resynchronisations that ended without the whole table, by reason",
                samples: vec![
                    (
                        vec![("reason", "timeout".to_string())],
                        st.resync_timed_out.load(Relaxed),
                    ),
                    (
                        vec![("reason", "became_master".to_string())],
                        st.resync_stopped.load(Relaxed),
                    ),
                ],
            },
        )?;
        counter(
            &mut enc,
            Series {
                name: "rvs_sync_dropped",
                help: "Sync and resync datagrams or records dropped, by reason",
                samples: st
                    .drops()
                    .into_iter()
                    .map(|(r, n)| (vec![("reason", r.to_string())], n))
                    .collect(),
            },
        )?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let age = |v: &std::sync::atomic::AtomicU64| {
            let t = v.load(Relaxed);
            (t > 0).then(|| now_ms.saturating_sub(t) as f64 / 1000.0)
        };
        let mut ages = Vec::new();
        for (dir, v) in [
            ("received", &st.last_received_unix_ms),
            ("sent", &st.last_sent_unix_ms),
        ] {
            if let Some(a) = age(v) {
                ages.push((vec![("direction", dir.to_string())], a));
            }
        }
        gauge_f64(
            &mut enc,
            Series {
                name: "rvs_sync_last_message_age_seconds",
                help: "Seconds since the last sync message was received (backup) or sent (master): \
                       the sync lag bound while connections are active",
                samples: ages,
            },
        )?;
        let end = st.resync_last_end_unix_ms.load(Relaxed);
        if end > 0 {
            gauge_f64(
                &mut enc,
                Series {
                    name: "rvs_resync_last_duration_seconds",
                    help: "Duration of the last resynchronisation",
                    samples: vec![(
                        Vec::new(),
                        st.resync_last_duration_ms.load(Relaxed) as f64 / 1000.0,
                    )],
                },
            )?;
            gauge_f64(
                &mut enc,
                Series {
                    name: "rvs_resync_last_end_timestamp_seconds",
                    help: "Unix time at which the last resynchronisation ended",
                    samples: vec![(Vec::new(), end as f64 / 1000.0)],
                },
            )?;
        }
        Ok(())
    }
}

/// Reads the health runtime at every scrape.
#[derive(Debug)]
pub struct HealthCollector {
    health: crate::health::Health,
}

impl Collector for HealthCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let report = self.health.report();
        let mut up = Vec::new();
        let mut changed = Vec::new();
        let mut latency = Vec::new();
        let mut failures = Vec::new();
        let mut quorum = Vec::new();
        let mut sorry = Vec::new();
        for s in &report.services {
            let svc = service_label(&s.id.0);
            quorum.push((vec![("service", svc.clone())], i64::from(s.quorum_up)));
            sorry.push((vec![("service", svc.clone())], i64::from(s.sorry_in_use)));
            for x in &s.servers {
                let labels: Labels = vec![("service", svc.clone()), ("server", x.server.clone())];
                up.push((labels.clone(), i64::from(x.up)));
                if let Some(t) = x.last_transition_unix {
                    changed.push((labels.clone(), t));
                }
                for (i, c) in x.checkers.iter().enumerate() {
                    if let Some(ms) = c.last_latency_ms {
                        let mut l = labels.clone();
                        l.push(("checker", format!("{i}-{}", c.kind)));
                        latency.push((l, ms as f64 / 1000.0));
                    }
                }
                for (reason, n) in &x.failures {
                    let mut l = labels.clone();
                    l.push(("reason", reason.clone()));
                    failures.push((l, *n));
                }
            }
        }
        gauge(
            &mut enc,
            Series {
                name: "rvs_health_up",
                help: "1 while the real server passes its health checks, 0 while it is down",
                samples: up,
            },
        )?;
        gauge_f64(
            &mut enc,
            Series {
                name: "rvs_health_last_transition_timestamp_seconds",
                help: "Unix time of the real server's last change of health state",
                samples: changed,
            },
        )?;
        gauge_f64(
            &mut enc,
            Series {
                name: "rvs_health_check_latency_seconds",
                help: "Latency of the checker's last successful probe",
                samples: latency,
            },
        )?;
        counter(
            &mut enc,
            Series {
                name: "rvs_health_check_failures",
                help: "Failed probes of the real server's checkers by reason, since it was added",
                samples: failures,
            },
        )?;
        gauge(
            &mut enc,
            Series {
                name: "rvs_health_quorum_up",
                help: "1 while the service has quorum",
                samples: quorum,
            },
        )?;
        gauge(
            &mut enc,
            Series {
                name: "rvs_health_sorry_in_use",
                help: "1 while the service's sorry server is in its table",
                samples: sorry,
            },
        )?;
        gauge(
            &mut enc,
            Series {
                name: "rvs_health_probes_in_flight",
                help: "Health probes running now, all services",
                samples: vec![(Vec::new(), sat(report.probes_in_flight))],
            },
        )
    }
}

/// The text of one scrape.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; a collector's error would be a
    // bug, and a partial page is still better than none.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    out
}

/// Binds the metrics address now (so a taken or foreign address is a
/// startup error) and serves `/metrics` on it until the process exits.
pub fn start(
    collector: Box<dyn Collector>,
    health: Option<crate::health::Health>,
    extra: Vec<Box<dyn Collector>>,
    listen: SocketAddr,
) -> Result<SocketAddr, String> {
    let bind_err = |e: std::io::Error| {
        format!(
            "metrics address {listen}: {e} (set [metrics] listen or --metrics ADDR, \
             or turn metrics off with [metrics] enabled = false or --no-metrics)"
        )
    };
    let std_listener = std::net::TcpListener::bind(listen).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let registry = Arc::new(registry(collector, health, extra));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    render(&registry),
                )
            }
        }),
    );
    tracing::info!(%addr, "metrics listening on http://{addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (rv s) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 0 0 20 0 3 0 777 123456 89 18446744073709551615";
        assert_eq!(parse_stat(line), Some((200, 777, 123456, 89)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn service_labels() {
        use rvs_core::model::Protocol;
        let k = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 8080,
        };
        assert_eq!(service_label(&k), "tcp/127.0.0.1:8080");
        let k = ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: "::1".parse().unwrap(),
            port: 53,
        };
        assert_eq!(service_label(&k), "udp/[::1]:53");
    }

    #[derive(Debug)]
    struct Nothing;
    impl Collector for Nothing {
        fn encode(&self, _: DescriptorEncoder) -> Result<(), fmt::Error> {
            Ok(())
        }
    }

    #[test]
    fn sync_counters_and_ages() {
        use std::sync::atomic::Ordering::Relaxed;
        let access: rvs_ha::sync::DirectorAccess = Arc::new(|_| {});
        let sync = Arc::new(rvs_ha::sync::SyncDaemons::new(access));
        let page = render(&registry(
            Box::new(Nothing),
            None,
            vec![Box::new(SyncCollector::new(sync.clone()))],
        ));
        assert!(page.contains("rvs_sync_messages_sent_total 0\n"), "{page}");
        assert!(page.contains("rvs_sync_dropped_total{reason=\"sync_id\"} 0\n"));
        // No message yet: no age; no resynchronisation yet: no duration.
        assert!(!page.contains("rvs_sync_last_message_age_seconds{"));
        assert!(!page.contains("rvs_resync_last_duration_seconds "));

        let st = sync.stats();
        st.messages_received.fetch_add(3, Relaxed);
        st.dropped[1].fetch_add(2, Relaxed);
        st.resync_complete.fetch_add(1, Relaxed);
        st.resync_timed_out.fetch_add(4, Relaxed);
        st.resync_last_duration_ms.store(1500, Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        st.resync_last_end_unix_ms.store(now, Relaxed);
        st.last_received_unix_ms.store(now - 2000, Relaxed);
        let page = render(&registry(
            Box::new(Nothing),
            None,
            vec![Box::new(SyncCollector::new(sync))],
        ));
        assert!(
            page.contains("rvs_sync_messages_received_total 3\n"),
            "{page}"
        );
        assert!(page.contains("rvs_sync_dropped_total{reason=\"sync_id\"} 2\n"));
        assert!(page.contains("rvs_resync_runs_complete_total 1\n"));
        assert!(page.contains("rvs_resync_runs_incomplete_total{reason=\"timeout\"} 4\n"));
        assert!(page.contains("rvs_resync_last_duration_seconds 1.5\n"));
        let age: f64 = page
            .lines()
            .find_map(|l| {
                l.strip_prefix("rvs_sync_last_message_age_seconds{direction=\"received\"} ")
            })
            .expect("an age")
            .parse()
            .unwrap();
        assert!((2.0..10.0).contains(&age), "{age}");
        assert!(!page.contains("direction=\"sent\""));
    }

    #[test]
    fn proc_is_read_on_linux() {
        let p = read_proc().expect("/proc/self is readable");
        assert!(p.resident_bytes > 0 && p.open_fds > 0);
        assert!(p.start_time > 1.0e9, "{p:?}");
    }
}
