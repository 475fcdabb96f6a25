//! `rvsd --demo`: three loopback HTTP backends answering with their names
//! and a round-robin service on 127.0.0.1:8080 in front of them. Needs no
//! root and no configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use rvs_core::model::{DestConfig, Forward, Protocol, SchedulerKind, ServiceConfig, ServiceKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Loaded;

/// The demo's virtual service.
pub const VIP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Starts the backends; returns the rules and the backends' addresses.
pub async fn start() -> std::io::Result<(Loaded, Vec<SocketAddr>)> {
    let mut dests = Vec::new();
    let mut backends = Vec::new();
    for i in 1..=3 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = l.local_addr()?;
        tokio::spawn(backend(l, format!("backend-{i}")));
        backends.push(addr);
        dests.push(DestConfig {
            addr: addr.ip(),
            port: addr.port(),
            forward: Forward::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        });
    }
    let mut svc = ServiceConfig::new(ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: VIP.ip(),
        port: VIP.port(),
    });
    svc.scheduler = SchedulerKind::Rr;
    Ok((
        Loaded {
            config: rvs_config::Config::default(),
            services: vec![(svc, dests)],
            dataplane: rvs_config::DataplaneSettings::default(),
        },
        backends,
    ))
}

/// What the demo prints once everything listens: only commands that work
/// against this very process (its control socket, its metrics address).
pub fn banner(
    backends: &[SocketAddr],
    control: &Path,
    default_control: &Path,
    metrics: Option<SocketAddr>,
) -> String {
    let backends: Vec<String> = backends.iter().map(ToString::to_string).collect();
    let rvsadm = if control == default_control {
        "rvsadm -Ln".to_string()
    } else {
        format!("rvsadm --control {} -Ln", control.display())
    };
    // Comments line up; a long socket path still leaves two spaces.
    let pad = |cmd: &str| {
        if cmd.len() < 44 {
            format!("{cmd:<44}")
        } else {
            format!("{cmd}  ")
        }
    };
    let metrics = match metrics {
        Some(a) => format!(
            "  {}# the statistics, for Prometheus\n",
            pad(&format!("curl http://{a}/metrics"))
        ),
        None => "  (metrics are off)\n".to_string(),
    };
    format!(
        "rvsd demo: round robin on http://{VIP}/ over backend-1..3 at {}\n\
         try:\n  \
         {}# each request goes to the next backend in turn\n  \
         {}# the table, as ipvsadm prints it\n\
         {metrics}\
         (rvsadm from the source tree: cargo run --release -p rvsadm -- {})\n\
         stop with Ctrl-C",
        backends.join(" "),
        pad(&format!("curl http://{VIP}/")),
        pad(&rvsadm),
        rvsadm.trim_start_matches("rvsadm "),
    )
}

/// A minimal HTTP/1.x server: reads a request head, answers with its name
/// and closes.
async fn backend(l: TcpListener, name: String) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            // Bounded: a request head of at most 16 KiB.
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = format!("{name}\n");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_a_non_default_socket_and_the_bound_metrics() {
        let b: [SocketAddr; 1] = ["127.0.0.1:4000".parse().unwrap()];
        let dflt = Path::new("/run/rvs/rvsd.sock");
        let m = Some("127.0.0.1:9999".parse().unwrap());
        let t = banner(&b, dflt, dflt, m);
        assert!(t.contains("  rvsadm -Ln "), "{t}");
        assert!(t.contains("curl http://127.0.0.1:9999/metrics"), "{t}");
        let t = banner(&b, Path::new("/tmp/x/s.sock"), dflt, None);
        assert!(t.contains("rvsadm --control /tmp/x/s.sock -Ln"), "{t}");
        assert!(
            t.contains("metrics are off") && !t.contains("/metrics"),
            "{t}"
        );
    }
}
