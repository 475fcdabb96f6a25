use std::net::SocketAddr;
use std::time::Duration;

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{DnsProbe, ProbeKind};
use rvs_health::CompiledProbe;
use tokio::net::UdpSocket;

use crate::support::{is_success, run, spec};

const T: Duration = Duration::from_secs(5);

/// A DNS responder: NXDOMAIN for names under `nx.`, NOERROR otherwise. It
/// first sends a datagram with another ID, which the probe must ignore.
/// Each query it receives goes to `queries`.
async fn responder(queries: tokio::sync::mpsc::UnboundedSender<Vec<u8>>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let query = buf[..n].to_vec();
            let _ = queries.send(query.clone());
            let nx = query.get(12..15) == Some(b"\x02nx".as_slice());
            let mut reply = query.clone();
            reply[2] = 0x81; // QR, RD
            reply[3] = 0x80 | if nx { 3 } else { 0 }; // RA, RCODE
            let mut stray = reply.clone();
            stray[0] ^= 0xff;
            let _ = socket.send_to(&stray, from).await;
            let _ = socket.send_to(&reply, from).await;
        }
    });
    addr
}

fn dns(name: &str, qtype: u16) -> rvs_core::probe::ProbeSpec {
    spec(ProbeKind::Dns(DnsProbe {
        name: name.into(),
        qtype,
    }))
}

#[tokio::test]
async fn noerror_passes_and_nxdomain_fails() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = responder(tx).await;
    let o = run(dns("www.example.org", 1), server, T).await;
    assert!(is_success(&o), "{o:?}");
    let o = run(dns("nx.example.org", 1), server, T).await;
    assert_eq!(o, Outcome::Failure(FailureReason::BadStatus));

    let q = rx.recv().await.unwrap();
    assert_eq!(&q[2..12], &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&q[12..], b"\x03www\x07example\x03org\x00\x00\x01\x00\x01");
    let q2 = rx.recv().await.unwrap();
    assert_ne!(q[..2], q2[..2], "each query draws its own ID");
}

#[tokio::test]
async fn default_query_is_root_soa() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = responder(tx).await;
    let o = run(spec(ProbeKind::Dns(DnsProbe::default())), server, T).await;
    assert!(is_success(&o), "{o:?}");
    assert_eq!(&rx.recv().await.unwrap()[12..], &[0, 0, 6, 0, 1]);
}

#[tokio::test]
async fn silent_and_closed_servers() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let o = run(
        dns(".", 6),
        silent.local_addr().unwrap(),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(o, Outcome::Failure(FailureReason::Timeout));
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    assert_eq!(
        run(dns(".", 6), closed, T).await,
        Outcome::Failure(FailureReason::Unreachable)
    );
}

#[test]
fn bad_names_are_refused() {
    let err = CompiledProbe::new(dns("a..b", 1)).unwrap_err();
    assert!(err.contains("empty label"), "{err}");
}
