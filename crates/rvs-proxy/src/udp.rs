//! UDP: one socket per service on VIP:port, a session per client and
//! server (a connected socket towards the server), replies sent back from
//! the VIP socket.
//!
//! A datagram is scheduled by the director as the kernel does: without
//! one-packet scheduling the client's entry sends every datagram to the
//! same server until the entry expires (udp timeout), and the session ends
//! with it; with `-o` every datagram is scheduled on its own, so sessions
//! are per (client, server) and end after the udp timeout without traffic
//! (the director keeps no entry to follow).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_core::director::{PacketInfo, Verdict};
use rvs_core::model::Protocol;
use rvs_core::sctp::SctpEvent;
use rvs_core::state::TcpFlags;
use socket2::Type;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::{ActiveGuard, Inner, Svc, Tracked, lock, now_ms};

const MAX_DATAGRAM: usize = 65536;

/// The service socket, SO_REUSEPORT so a re-added service can bind while
/// the old one drains.
pub(crate) fn bind(addr: SocketAddr, freebind: bool) -> io::Result<std::net::UdpSocket> {
    Ok(crate::service_socket(addr, Type::DGRAM, freebind)?.into())
}

struct Session {
    sock: Arc<UdpSocket>,
    tracked: u64,
}

type Sessions = Arc<Mutex<HashMap<(SocketAddr, SocketAddr), Session>>>;

pub(crate) async fn serve(inner: Arc<Inner>, svc: Arc<Svc>, s: std::net::UdpSocket) {
    let vip_sock = match UdpSocket::from_std(s) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(service = %svc.key, error = %e, "udp socket failed");
            return;
        }
    };
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            _ = svc.stop.cancelled() => break,
            _ = inner.stopping.cancelled() => break,
            r = vip_sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(service = %svc.key, error = %e, "udp receive failed");
                    continue;
                }
            },
        };
        let vip = svc.vip();
        let p = PacketInfo {
            proto: Protocol::Udp,
            src: client.ip(),
            sport: client.port(),
            dst: vip.ip(),
            dport: vip.port(),
            fwmark: 0,
            tcp: TcpFlags::default(),
            sctp: SctpEvent::Data,
            len: n as u32,
        };
        let (f, followed) = {
            let mut d = lock(&svc.director);
            match d.inbound(&p, now_ms()) {
                Verdict::Forward(f) => {
                    // A one-packet entry is not in the table: nothing to follow.
                    let followed = d.lookup(
                        Protocol::Udp,
                        (client.ip(), client.port()),
                        (vip.ip(), vip.port()),
                    ) == Some(f.conn);
                    (f, followed)
                }
                other => {
                    tracing::debug!(service = %svc.key, %client, verdict = ?other, "datagram not scheduled");
                    continue;
                }
            }
        };
        let server = SocketAddr::new(f.daddr, f.dport);
        let existing = {
            let m = lock(&sessions);
            m.get(&(client, server))
                .map(|s| (s.sock.clone(), s.tracked))
        };
        let sock = match existing {
            Some((sock, id)) => {
                if f.new_conn && followed {
                    // The previous entry expired and the same server was
                    // chosen again: follow the new entry.
                    if let Some(t) = lock(&svc.relays).get_mut(&id) {
                        t.conn = Some(f.conn);
                    }
                }
                sock
            }
            None => match open(server).await {
                Ok(sock) => {
                    let sock = Arc::new(sock);
                    let kill = CancellationToken::new();
                    let id = svc.track(Tracked {
                        proto: Protocol::Udp,
                        client,
                        conn: followed.then_some(f.conn),
                        dest: (f.daddr, f.dport),
                        kill: kill.clone(),
                    });
                    lock(&sessions).insert(
                        (client, server),
                        Session {
                            sock: sock.clone(),
                            tracked: id,
                        },
                    );
                    let idle = if followed {
                        None
                    } else {
                        Some(Duration::from_secs(u64::from(
                            lock(&inner.ctl).timeouts.udp.max(1),
                        )))
                    };
                    tokio::spawn(replies(
                        ActiveGuard::new(&inner),
                        svc.clone(),
                        sessions.clone(),
                        vip_sock.clone(),
                        sock.clone(),
                        (client, server, id),
                        kill,
                        idle,
                    ));
                    tracing::debug!(service = %svc.key, %client, %server, "udp session");
                    sock
                }
                Err(e) => {
                    tracing::warn!(service = %svc.key, %server, error = %e, "udp session socket failed");
                    continue;
                }
            },
        };
        if let Err(e) = sock.send(&buf[..n]).await {
            tracing::debug!(service = %svc.key, %server, error = %e, "udp send failed");
        }
    }
}

async fn open(server: SocketAddr) -> io::Result<UdpSocket> {
    let any = match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let s = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    s.connect(server).await?;
    Ok(s)
}

#[allow(clippy::too_many_arguments)]
async fn replies(
    _g: ActiveGuard,
    svc: Arc<Svc>,
    sessions: Sessions,
    vip_sock: Arc<UdpSocket>,
    sock: Arc<UdpSocket>,
    (client, server, id): (SocketAddr, SocketAddr, u64),
    kill: CancellationToken,
    idle: Option<Duration>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let idle = idle.unwrap_or(Duration::MAX);
    loop {
        let r = tokio::select! {
            _ = kill.cancelled() => break,
            r = tokio::time::timeout(idle, sock.recv(&mut buf)) => r,
        };
        let n = match r {
            Ok(Ok(n)) => n,
            // Idle (one-packet session) or the server's port is closed
            // (ICMP unreachable on the connected socket).
            _ => break,
        };
        let conn = lock(&svc.relays).get(&id).and_then(|t| t.conn);
        if let Some(conn) = conn {
            let vip = svc.vip();
            let mut d = lock(&svc.director);
            if d.lookup(
                Protocol::Udp,
                (client.ip(), client.port()),
                (vip.ip(), vip.port()),
            ) == Some(conn)
            {
                d.outbound(conn, TcpFlags::default(), n as u32, now_ms());
            }
        }
        let _ = vip_sock.send_to(&buf[..n], client).await;
    }
    lock(&sessions).remove(&(client, server));
    svc.untrack(id);
    tracing::debug!(service = %svc.key, %client, %server, "udp session ended");
}
