//! DNS_CHECK over UDP; the wire format is [`rvs_core::dns_query`].

use std::net::{IpAddr, SocketAddr};

use rvs_core::dns_query::{ReplyCheck, check_reply, encode_query};
use rvs_core::health::FailureReason;
use rvs_core::probe::DnsProbe;

use crate::udp::{connected_socket, udp_error};

/// Largest reply read: the classic DNS-over-UDP limit; only the header is
/// looked at.
const RECV_BUF: usize = 512;

/// Sends one query and waits for its reply (the caller bounds the time).
pub(crate) async fn probe(
    target: SocketAddr,
    bind: Option<IpAddr>,
    spec: &DnsProbe,
) -> Result<(), FailureReason> {
    let id = getrandom::u32().map_err(|_| FailureReason::Other)? as u16;
    let query = encode_query(id, &spec.name, spec.qtype).map_err(|_| FailureReason::Other)?;
    let socket = connected_socket(target, bind).await?;
    socket.send(&query).await.map_err(|e| udp_error(&e))?;
    let mut buf = [0u8; RECV_BUF];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| udp_error(&e))?;
        match check_reply(id, &buf[..n]) {
            ReplyCheck::NotOurs => continue,
            ReplyCheck::Rcode(0) => return Ok(()),
            ReplyCheck::Rcode(_) => return Err(FailureReason::BadStatus),
        }
    }
}
