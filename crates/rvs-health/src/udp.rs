//! UDP_CHECK: a datagram that draws no ICMP error, or a matching reply.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rvs_core::health::FailureReason;
use rvs_core::probe::UdpProbe;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Largest datagram read; longer replies are truncated to this, which is
/// longer than any `max_reply_len` worth configuring.
const RECV_BUF: usize = 65_536;

/// A UDP socket bound to `bind` (or the wildcard of `target`'s family) and
/// connected to `target`, so that ICMP errors about `target` are reported
/// on it and datagrams from anyone else are dropped by the kernel.
pub(crate) async fn connected_socket(
    target: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<UdpSocket, FailureReason> {
    let local = bind.unwrap_or(if target.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))
        .await
        .map_err(|_| FailureReason::Other)?;
    socket.connect(target).await.map_err(|e| udp_error(&e))?;
    Ok(socket)
}

/// An error of a connected UDP socket: ICMP errors are reported as
/// ECONNREFUSED (port unreachable), EHOSTUNREACH or ENETUNREACH.
pub(crate) fn udp_error(e: &io::Error) -> FailureReason {
    match e.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => FailureReason::Unreachable,
        _ => FailureReason::Other,
    }
}

/// Runs a UDP_CHECK that ends at `deadline`.
pub(crate) async fn probe(
    target: SocketAddr,
    bind: Option<IpAddr>,
    spec: &UdpProbe,
    deadline: Instant,
) -> Result<(), FailureReason> {
    let exchange = async {
        let socket = connected_socket(target, bind).await?;
        let mut random = [0u8; 16];
        let payload = if spec.payload.is_empty() {
            getrandom::fill(&mut random).map_err(|_| FailureReason::Other)?;
            &random[..]
        } else {
            &spec.payload[..]
        };
        socket.send(payload).await.map_err(|e| udp_error(&e))?;
        let mut buf = vec![0u8; RECV_BUF];
        let n = socket.recv(&mut buf).await.map_err(|e| udp_error(&e))?;
        buf.truncate(n);
        Ok(buf)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(Ok(reply)) => match &spec.require_reply {
            Some(pattern) if !reply_ok(spec, pattern, &reply) => Err(FailureReason::BadBody),
            _ => Ok(()),
        },
        Ok(Err(reason)) => Err(reason),
        // Silence: keepalived's success unless a reply is required.
        Err(_) if spec.require_reply.is_none() => Ok(()),
        Err(_) => Err(FailureReason::Timeout),
    }
}

/// Whether a reply passes the pattern and the length bounds.
fn reply_ok(spec: &UdpProbe, pattern: &rvs_core::probe::ReplyPattern, reply: &[u8]) -> bool {
    let len_ok = reply.len() >= spec.min_reply_len
        && (spec.max_reply_len == 0 || reply.len() <= spec.max_reply_len);
    len_ok && pattern.matches(reply)
}
