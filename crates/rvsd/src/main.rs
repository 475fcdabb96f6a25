//! `rvsd`, the director daemon: runs every service of a TOML config and/or
//! an ipvsadm rules file through the userspace L4 proxy (`rvs-proxy`, the
//! default) or the packet data plane (`rvs-dataplane`).
//!
//! ```text
//! rvsd [--config FILE] [--rules FILE] [--control PATH] [--metrics ADDR | --no-metrics] [--check]
//!      [--dataplane proxy|packet] [--interface IF[,IF...]] [--workers N]
//!      [--busy-poll-us N] [--backend af_packet|af_xdp]
//! rvsd --demo [--control PATH] [--metrics ADDR | --no-metrics]
//! ```
//!
//! `--check` validates and prints the rules as `ipvsadm -Sn` would (exit 2
//! with `FILE:LINE:COLUMN: message` on error). SIGTERM stops accepting and
//! lets connections drain for `[proxy] drain_grace_s`; SIGHUP re-reads the
//! files and applies only the difference.

use std::process::ExitCode;

use rvs_config::{DataplaneMode, DataplaneSettings, PacketBackend};
use rvs_core::director::{Director, DirectorConfig};
use rvs_core::model::{DestConfig, Forward, ServiceConfig};

mod daemon;
mod demo;
mod failover_reload;
mod health;
mod metrics;
mod notify;
mod vrrp_metrics;

/// Command-line options.
#[derive(Debug, Default, Clone)]
pub struct Args {
    config: Option<String>,
    rules: Option<String>,
    control: Option<String>,
    check: bool,
    demo: bool,
    /// `--metrics ADDR`: overrides `[metrics] listen` (and turns them on).
    metrics: Option<std::net::SocketAddr>,
    /// `--no-metrics`: overrides `[metrics] enabled`.
    no_metrics: bool,
    /// `--dataplane`: overrides `[dataplane] mode`.
    dataplane: Option<DataplaneMode>,
    /// `--interface IF[,IF...]`: overrides `[dataplane] interfaces`.
    interfaces: Option<Vec<String>>,
    /// `--workers N`: overrides `[dataplane] workers`.
    workers: Option<usize>,
    /// `--backend`: overrides `[dataplane] backend`.
    backend: Option<PacketBackend>,
    /// `--busy-poll-us N`: overrides `[dataplane] busy_poll_us`.
    busy_poll_us: Option<u32>,
    /// `--help`: print the usage and exit.
    help: bool,
}

impl Args {
    /// Where to serve `/metrics`, if anywhere: the flags win over the file.
    fn metrics_listen(&self, file: &rvs_config::MetricsSettings) -> Option<std::net::SocketAddr> {
        if self.no_metrics {
            None
        } else if let Some(a) = self.metrics {
            Some(a)
        } else {
            file.enabled.then_some(file.listen)
        }
    }

    /// The data plane settings: the flags win over the file.
    fn dataplane(&self, file: &DataplaneSettings) -> Result<DataplaneSettings, String> {
        let d = DataplaneSettings {
            mode: self.dataplane.unwrap_or(file.mode),
            interfaces: self
                .interfaces
                .clone()
                .unwrap_or_else(|| file.interfaces.clone()),
            workers: self.workers.unwrap_or(file.workers),
            backend: self.backend.unwrap_or(file.backend),
            busy_poll_us: self.busy_poll_us.unwrap_or(file.busy_poll_us),
        };
        if d.mode == DataplaneMode::Packet && d.interfaces.is_empty() {
            return Err(format!(
                "rvsd: the packet data plane needs --interface IF[,IF...] or [dataplane] interfaces\n{USAGE}"
            ));
        }
        backend_in_build(d.mode, d.backend)?;
        Ok(d)
    }
}

/// Refuses a packet backend this build lacks.
fn backend_in_build(mode: DataplaneMode, backend: PacketBackend) -> Result<(), String> {
    let b = packet_backend(backend);
    if mode == DataplaneMode::Packet && !b.available() {
        return Err(format!(
            "rvsd: the {} backend is not in this build of rvsd: rebuild it with the `xdp` \
             cargo feature (cargo build --release -p rvsd --features xdp), or use af_packet",
            b.name()
        ));
    }
    Ok(())
}

/// The data plane's backend for a configured one.
pub fn packet_backend(b: PacketBackend) -> rvs_dataplane::Backend {
    match b {
        PacketBackend::AfPacket => rvs_dataplane::Backend::AfPacket,
        PacketBackend::AfXdp => rvs_dataplane::Backend::AfXdp,
    }
}

const USAGE: &str = "usage: rvsd [--config FILE] [--rules FILE] [--control PATH] \
     [--metrics ADDR | --no-metrics] [--check]\n            \
     [--dataplane proxy|packet] [--interface IF[,IF...]] [--workers N]\n            \
     [--busy-poll-us N] [--backend af_packet|af_xdp]\n       \
     rvsd --demo [--control PATH] [--metrics ADDR | --no-metrics]";

/// What `--help` prints after the usage: the packet data plane's options.
fn help() -> String {
    let max = rvs_config::MAX_BUSY_POLL_US;
    format!(
        "packet data plane (--dataplane packet; each flag overrides its [dataplane] key):
  --interface IF[,IF...]  interfaces to forward on (required)
  --workers N             worker threads; 0 = one per CPU (default)
  --backend B             af_packet (default) or af_xdp (built with the
                          `xdp` feature)
  --busy-poll-us N        microseconds a worker keeps checking its rings after
                          its last frame before it sleeps, 0..={max}; 0 = off
                          (default): shorter request/response times for that
                          much CPU time after every batch when traffic is sparse"
    )
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(x) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("rvsd: {name} needs a value\n{USAGE}"))
        };
        match x.as_str() {
            "--config" => a.config = Some(value("--config")?),
            "--rules" => a.rules = Some(value("--rules")?),
            "--control" => a.control = Some(value("--control")?),
            "--check" => a.check = true,
            "--demo" => a.demo = true,
            "--metrics" => {
                let v = value("--metrics")?;
                a.metrics = Some(v.parse().map_err(|_| {
                    format!("rvsd: --metrics {v:?}: not an address such as 127.0.0.1:9180\n{USAGE}")
                })?);
            }
            "--no-metrics" => a.no_metrics = true,
            "--dataplane" => {
                let v = value("--dataplane")?;
                a.dataplane = Some(match v.as_str() {
                    "proxy" => DataplaneMode::Proxy,
                    "packet" => DataplaneMode::Packet,
                    _ => {
                        return Err(format!(
                            "rvsd: --dataplane {v:?}: use proxy or packet\n{USAGE}"
                        ));
                    }
                });
            }
            "--interface" => {
                let v = value("--interface")?;
                let list: Vec<String> = v.split(',').map(str::to_string).collect();
                for i in &list {
                    rvs_config::check_interface_name(i)
                        .map_err(|m| format!("rvsd: --interface: {m}\n{USAGE}"))?;
                }
                a.interfaces = Some(list);
            }
            "--backend" => {
                let v = value("--backend")?;
                a.backend = Some(match v.as_str() {
                    "af_packet" => PacketBackend::AfPacket,
                    "af_xdp" => PacketBackend::AfXdp,
                    _ => {
                        return Err(format!(
                            "rvsd: --backend {v:?}: use af_packet or af_xdp\n{USAGE}"
                        ));
                    }
                });
            }
            "--workers" => {
                let v = value("--workers")?;
                a.workers = Some(v.parse().map_err(|_| {
                    format!("rvsd: --workers {v:?}: not a number (0 = one per CPU)\n{USAGE}")
                })?);
            }
            "--busy-poll-us" => {
                let v = value("--busy-poll-us")?;
                let us = v.parse().map_err(|_| {
                    format!("rvsd: --busy-poll-us {v:?}: not a number of microseconds\n{USAGE}")
                })?;
                rvs_config::check_busy_poll_us(us)
                    .map_err(|m| format!("rvsd: --busy-poll-us: {m}\n{USAGE}"))?;
                a.busy_poll_us = Some(us);
            }
            "--help" | "-h" => a.help = true,
            other => return Err(format!("rvsd: unknown option {other:?}\n{USAGE}")),
        }
    }
    if a.help {
        return Ok(a);
    }
    if a.metrics.is_some() && a.no_metrics {
        return Err(format!(
            "rvsd: --metrics and --no-metrics contradict each other\n{USAGE}"
        ));
    }
    if a.demo && a.dataplane == Some(DataplaneMode::Packet) {
        return Err(format!(
            "rvsd: the demo runs on the proxy data plane (loopback backends)\n{USAGE}"
        ));
    }
    if !a.demo && a.config.is_none() && a.rules.is_none() {
        return Err(format!(
            "rvsd: give --config FILE, --rules FILE or --demo\n{USAGE}"
        ));
    }
    Ok(a)
}

/// What the files say: the config (defaults when only rules are given),
/// every service, config first, and the data plane that runs them.
#[derive(Debug)]
pub struct Loaded {
    config: rvs_config::Config,
    services: Vec<(ServiceConfig, Vec<DestConfig>)>,
    dataplane: DataplaneSettings,
}

/// A rules file as a data plane takes it: ipvsadm's `-R` lines, where a
/// server whose line names no method is direct routing (`-g`) on the packet
/// data plane, as in ipvsadm, and masq with the port written on the proxy
/// data plane (a default `-g` means nothing to a proxy); what the data
/// plane cannot run (for the proxy `-g`, `-i`, fwmark, SCTP; for the packet
/// plane the proxy method) is refused at its line. Errors are
/// `FILE:LINE:COLUMN: message`; nothing is applied then.
fn load_rules(text: &str, file: &str, mode: DataplaneMode) -> Result<Director, String> {
    type Refuse = fn(&rvs_ipvsadm::Command) -> Result<(), rvs_api::ControlError>;
    let (default, refuse): (Forward, Refuse) = match mode {
        DataplaneMode::Proxy => (Forward::Masq, rvs_proxy::refuse_unsupported),
        DataplaneMode::Packet => (Forward::Route, rvs_dataplane::refuse_unsupported),
    };
    let rules = rvs_ipvsadm::parse_rules(text).map_err(|e| e.with_file(file))?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut d = Director::new(DirectorConfig::default());
    for r in rules {
        // A refused line is blamed as a whole, at its first word.
        let at = |message: String| {
            let l = lines.get(r.line - 1).copied().unwrap_or("");
            let column = l.len() - l.trim_start().len() + 1;
            rvs_ipvsadm::error_at(r.line, column, message).with_file(file)
        };
        let c = rvs_ipvsadm::with_default_method(r.command, default);
        refuse(&c).map_err(|e| at(e.message))?;
        rvs_ipvsadm::director::apply(&mut d, &c).map_err(|e| at(e.0))?;
    }
    Ok(d)
}

/// Reads and checks the files; errors are `FILE:LINE:COLUMN: message`.
pub fn load(args: &Args) -> Result<Loaded, String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let config = match &args.config {
        Some(p) => rvs_config::parse(&read(p)?, p).map_err(|e| e.to_string())?,
        None => rvs_config::Config::default(),
    };
    let dataplane = args.dataplane(&config.dataplane)?;
    let mut services = config.services();
    if let Some(p) = &args.rules {
        let d = load_rules(&read(p)?, p, dataplane.mode)?;
        for s in d.services() {
            if services.iter().any(|(c, _)| c.key == s.config.key) {
                return Err(format!(
                    "{p}: service {} is defined in both {} and {p}",
                    s.config.key,
                    args.config.as_deref().unwrap_or("")
                ));
            }
            let dests = s.dests.iter().rev().map(|d| d.config).collect();
            services.push((s.config, dests));
        }
    }
    Ok(Loaded {
        config,
        services,
        dataplane,
    })
}

fn check(args: &Args) -> ExitCode {
    if let (None, Some(p)) = (&args.config, &args.rules) {
        // A rules file alone is printed back from the director it loads into.
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{p}: {e}");
                return ExitCode::from(2);
            }
        };
        let mode = args.dataplane.unwrap_or_default();
        if let Err(e) = backend_in_build(mode, args.backend.unwrap_or_default()) {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        return match load_rules(&text, p, mode) {
            Ok(d) => {
                print!("{}", rvs_ipvsadm::director::save(&d));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    let loaded = match load(args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // The probes are prepared as a start would prepare them (TLS settings,
    // CA files), so that --check refuses what the start would refuse.
    for s in &loaded.config.services {
        for (server, h) in &s.health.servers {
            for p in &h.probes {
                if let Err(e) = rvs_health::CompiledProbe::new(p.clone()) {
                    eprintln!(
                        "{}: service {} server {server}: {e}",
                        args.config.as_deref().unwrap_or(""),
                        health::service_name(&s.config.key)
                    );
                    return ExitCode::from(2);
                }
            }
        }
    }
    let mut d = Director::new(DirectorConfig {
        sysctls: loaded.config.sysctls(),
        ..DirectorConfig::default()
    });
    d.set_timeouts(loaded.config.timeouts());
    for (s, dests) in &loaded.services {
        if let Err(e) = d.add_service(s.clone()) {
            eprintln!("{}: {e}", s.key);
            return ExitCode::from(2);
        }
        for x in dests {
            if let Err(e) = d.add_dest(&s.key, *x) {
                eprintln!("{}: {e}", s.key);
                return ExitCode::from(2);
            }
        }
    }
    print!("{}", rvs_ipvsadm::director::save(&d));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}\n\n{}", help());
        return ExitCode::SUCCESS;
    }
    if args.check {
        return check(&args);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    daemon::run(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_poll_flag_overrides_the_file() {
        let file = DataplaneSettings {
            mode: DataplaneMode::Packet,
            interfaces: vec!["eth0".into()],
            workers: 2,
            busy_poll_us: 30,
            ..DataplaneSettings::default()
        };
        let from_file = Args::default().dataplane(&file).unwrap();
        assert_eq!(from_file.busy_poll_us, 30);
        let flagged = Args {
            busy_poll_us: Some(50),
            ..Args::default()
        };
        let d = flagged.dataplane(&file).unwrap();
        assert_eq!((d.busy_poll_us, d.workers), (50, 2));
        let off = Args {
            busy_poll_us: Some(0),
            ..Args::default()
        };
        assert_eq!(off.dataplane(&file).unwrap().busy_poll_us, 0);
    }
}
