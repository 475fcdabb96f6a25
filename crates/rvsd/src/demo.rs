//! `rvsd --demo`: three loopback HTTP backends answering with their names
//! and a round-robin service on 127.0.0.1:8080 in front of them. Needs no
//! root and no configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rvs_core::model::{DestConfig, Forward, Protocol, SchedulerKind, ServiceConfig, ServiceKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Loaded;

/// The demo's virtual service.
pub const VIP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Starts the backends; returns the rules and the text telling how to try it.
pub async fn start() -> std::io::Result<(Loaded, String)> {
    let mut dests = Vec::new();
    for i in 1..=3 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = l.local_addr()?;
        tokio::spawn(backend(l, format!("backend-{i}")));
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
    let backends: Vec<String> = dests
        .iter()
        .map(|d| format!("{}:{}", d.addr, d.port))
        .collect();
    let text = format!(
        "rvsd demo: round robin on http://{VIP}/ over backend-1..3 at {}\n\
         try:\n  curl http://{VIP}/        # each request goes to the next backend in turn\n  \
         rvsadm -Ln                     # the table, as ipvsadm prints it\n  \
         curl http://127.0.0.1:9180/metrics\n\
         stop with Ctrl-C",
        backends.join(" ")
    );
    Ok((
        Loaded {
            config: rvs_config::Config::default(),
            services: vec![(svc, dests)],
        },
        text,
    ))
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
