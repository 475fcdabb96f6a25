//! TCP_CHECK: a handshake, and the connection that HTTP probes run over.

use std::io;
use std::net::{IpAddr, SocketAddr};

use rvs_core::health::FailureReason;
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `target` from `bind` (any port) if given.
pub(crate) async fn connect(
    target: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<TcpStream, FailureReason> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|_| FailureReason::Other)?;
    if let Some(ip) = bind {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|_| FailureReason::Other)?;
    }
    socket.connect(target).await.map_err(|e| connect_error(&e))
}

/// A TCP_CHECK: the handshake completes.
pub(crate) async fn probe(target: SocketAddr, bind: Option<IpAddr>) -> Result<(), FailureReason> {
    connect(target, bind).await.map(drop)
}

/// The reason an operator needs for a failed connect or send.
pub(crate) fn connect_error(e: &io::Error) -> FailureReason {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => FailureReason::Refused,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            FailureReason::Unreachable
        }
        io::ErrorKind::TimedOut => FailureReason::Timeout,
        _ => FailureReason::Other,
    }
}
