//! TCP: listeners, scheduling with connect retries, and the relay.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rvs_core::director::{ConnRef, PacketInfo, Verdict};
use rvs_core::model::Protocol;
use rvs_core::sctp::SctpEvent;
use rvs_core::state::TcpFlags;
use socket2::Type;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::relay::{self, RelayMode};
use crate::{ActiveGuard, Inner, Svc, Tracked, lock, now_ms, proxy_protocol};

const ACK: TcpFlags = TcpFlags {
    syn: false,
    fin: false,
    ack: true,
    rst: false,
};
const FIN: TcpFlags = TcpFlags {
    syn: false,
    fin: true,
    ack: true,
    rst: false,
};
const RST: TcpFlags = TcpFlags {
    syn: false,
    fin: false,
    ack: false,
    rst: true,
};

/// A listening socket on `addr` with SO_REUSEPORT, so that one listener
/// per worker shares the port (and a re-added service can bind while the
/// old one drains).
pub(crate) fn bind(addr: SocketAddr, freebind: bool) -> io::Result<std::net::TcpListener> {
    let s = crate::service_socket(addr, Type::STREAM, freebind)?;
    s.listen(1024)?;
    Ok(s.into())
}

pub(crate) async fn listen(inner: Arc<Inner>, svc: Arc<Svc>, l: std::net::TcpListener) {
    let l = match TcpListener::from_std(l) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(service = %svc.key, error = %e, "listener failed");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = svc.stop.cancelled() => break,
            _ = inner.stopping.cancelled() => break,
            r = l.accept() => match r {
                Ok((s, peer)) => {
                    let g = ActiveGuard::new(&inner);
                    tokio::spawn(handle(inner.clone(), svc.clone(), s, peer, g));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(service = %svc.key, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

fn packet(svc: &Svc, client: SocketAddr, tcp: TcpFlags, len: usize) -> PacketInfo {
    let vip = svc.vip();
    PacketInfo {
        proto: Protocol::Tcp,
        src: client.ip(),
        sport: client.port(),
        dst: vip.ip(),
        dport: vip.port(),
        fwmark: 0,
        tcp,
        sctp: SctpEvent::Data,
        len: u32::try_from(len).unwrap_or(u32::MAX),
    }
}

/// Reports a client-side event.
fn inbound(svc: &Svc, client: SocketAddr, tcp: TcpFlags, len: usize) -> Verdict {
    lock(&svc.director).inbound(&packet(svc, client, tcp, len), now_ms())
}

/// Reports a server-side event, if the entry is still this relay's (its
/// slot may have been reused after expiry).
fn outbound(svc: &Svc, client: SocketAddr, conn: ConnRef, tcp: TcpFlags, len: usize) {
    let vip = svc.vip();
    let mut d = lock(&svc.director);
    if d.lookup(
        Protocol::Tcp,
        (client.ip(), client.port()),
        (vip.ip(), vip.port()),
    ) == Some(conn)
    {
        d.outbound(conn, tcp, u32::try_from(len).unwrap_or(u32::MAX), now_ms());
    }
}

async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// Schedules the client through the director, connecting with retries
/// (the policy is in the crate documentation).
async fn schedule(
    inner: &Inner,
    svc: &Svc,
    client: SocketAddr,
) -> Option<(TcpStream, ConnRef, (IpAddr, u16))> {
    let p = &inner.cfg.proxy;
    let timeout = Duration::from_millis(p.connect_timeout_ms);
    let mut failed: Vec<(IpAddr, u16)> = Vec::new();
    loop {
        let f = match inbound(svc, client, TcpFlags::SYN, 0) {
            Verdict::Forward(f) => f,
            other => {
                tracing::debug!(service = %svc.key, %client, verdict = ?other, "not scheduled");
                return None;
            }
        };
        let dest = (f.daddr, f.dport);
        if failed.contains(&dest) {
            outbound(svc, client, f.conn, RST, 0);
            tracing::warn!(service = %svc.key, %client, server = %SocketAddr::from(dest),
                "scheduler chose a server that already failed; closing the client");
            return None;
        }
        match connect(SocketAddr::from(dest), timeout).await {
            Ok(s) => {
                svc.count_success(inner, dest);
                return Some((s, f.conn, dest));
            }
            Err(e) => {
                svc.count_failure(inner, dest);
                // The refusal is the server's answer: an outbound RST takes
                // the entry to CLOSE (a client RST would leave SYN_RECV as
                // it is, the kernel's guard against spoofed resets).
                outbound(svc, client, f.conn, RST, 0);
                tracing::warn!(service = %svc.key, %client, server = %SocketAddr::from(dest),
                    error = %e, "connect to server failed");
                failed.push(dest);
                if failed.len() > p.connect_retries as usize {
                    return None;
                }
            }
        }
    }
}

async fn handle(
    inner: Arc<Inner>,
    svc: Arc<Svc>,
    client: TcpStream,
    peer: SocketAddr,
    _g: ActiveGuard,
) {
    let Some((server, conn, dest)) = schedule(&inner, &svc, peer).await else {
        return;
    };
    outbound(&svc, peer, conn, TcpFlags::SYN_ACK, 0);
    inbound(&svc, peer, ACK, 0);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let kill = CancellationToken::new();
    let id = svc.track(Tracked {
        proto: Protocol::Tcp,
        client: peer,
        conn: Some(conn),
        dest,
        kill: kill.clone(),
    });
    tracing::debug!(service = %svc.key, client = %peer, server = %SocketAddr::from(dest), "relaying");
    let r = tokio::select! {
        r = relay(&svc, peer, conn, inner.relay_mode(), client, server) => r,
        _ = kill.cancelled() => Err(io::Error::other("closed by the director")),
    };
    svc.untrack(id);
    match r {
        // The client's last ACK after both FINs.
        Ok(()) => {
            inbound(&svc, peer, ACK, 0);
        }
        Err(e) => {
            tracing::debug!(service = %svc.key, client = %peer, error = %e, "relay aborted");
            inbound(&svc, peer, RST, 0);
        }
    }
}

async fn relay(
    svc: &Svc,
    peer: SocketAddr,
    conn: ConnRef,
    mode: RelayMode,
    client: TcpStream,
    server: TcpStream,
) -> io::Result<()> {
    let pp = svc.proxy_protocol();
    if pp != rvs_config::ProxyProtocol::Off {
        // Before any client byte, so the server reads it first.
        let local = client.local_addr()?;
        relay::write_all(&server, &proxy_protocol::header(pp, peer, local)).await?;
    }
    let up = async {
        relay::one_way(mode, &client, &server, |n| {
            inbound(svc, peer, ACK, n);
        })
        .await?;
        inbound(svc, peer, FIN, 0);
        relay::shutdown_write(&server)
    };
    let down = async {
        relay::one_way(mode, &server, &client, |n| {
            outbound(svc, peer, conn, ACK, n)
        })
        .await?;
        outbound(svc, peer, conn, FIN, 0);
        relay::shutdown_write(&client)
    };
    tokio::try_join!(up, down).map(|_| ())
}
