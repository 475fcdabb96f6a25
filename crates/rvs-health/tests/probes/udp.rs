use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{ProbeKind, ReplyPattern, UdpProbe};
use tokio::net::UdpSocket;

use crate::support::{is_success, run, spec};

const T: Duration = Duration::from_secs(5);

/// A responder answering each datagram with `reply(datagram)`, or staying
/// silent when it returns `None`. The socket lives as long as the task, so
/// no ICMP error is sent.
async fn responder(reply: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            if let Some(r) = reply(&buf[..n]) {
                let _ = socket.send_to(&r, from).await;
            }
        }
    });
    addr
}

fn udp(u: UdpProbe) -> rvs_core::probe::ProbeSpec {
    spec(ProbeKind::Udp(u))
}

fn pattern(hex: &str) -> Option<ReplyPattern> {
    Some(ReplyPattern::parse_hex(hex).unwrap())
}

#[tokio::test]
async fn echo_passes_with_require_reply() {
    let echo = responder(|d| Some(d.to_vec())).await;
    let o = run(
        udp(UdpProbe {
            payload: vec![0xde, 0xad, 0xbe, 0xef],
            require_reply: pattern("de aX"),
            max_reply_len: 255,
            ..UdpProbe::default()
        }),
        echo,
        T,
    )
    .await;
    assert!(is_success(&o), "{o:?}");
}

#[tokio::test]
async fn random_payload_is_sixteen_bytes() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let echo = responder(move |d| {
        let _ = tx.send(d.to_vec());
        Some(d.to_vec())
    })
    .await;
    let probe = udp(UdpProbe {
        require_reply: pattern(""),
        ..UdpProbe::default()
    });
    assert!(is_success(&run(probe.clone(), echo, T).await));
    assert!(is_success(&run(probe, echo, T).await));
    let (a, b) = (rx.recv().await.unwrap(), rx.recv().await.unwrap());
    assert_eq!((a.len(), b.len()), (16, 16));
    assert_ne!(a, b, "each probe draws its own payload");
}

#[tokio::test]
async fn mismatching_reply_fails() {
    let echo = responder(|d| Some(d.to_vec())).await;
    let o = run(
        udp(UdpProbe {
            payload: vec![0xde, 0xad],
            require_reply: pattern("be"),
            ..UdpProbe::default()
        }),
        echo,
        T,
    )
    .await;
    assert_eq!(o, Outcome::Failure(FailureReason::BadBody));
}

#[tokio::test]
async fn reply_length_bounds() {
    let echo = responder(|d| Some(d.to_vec())).await;
    let probe = |min_reply_len, max_reply_len| {
        udp(UdpProbe {
            payload: vec![7; 10],
            require_reply: pattern("07"),
            min_reply_len,
            max_reply_len,
        })
    };
    assert!(is_success(&run(probe(10, 10), echo, T).await));
    assert!(
        is_success(&run(probe(0, 0), echo, T).await),
        "0 = no upper limit"
    );
    assert_eq!(
        run(probe(0, 9), echo, T).await,
        Outcome::Failure(FailureReason::BadBody)
    );
    assert_eq!(
        run(probe(11, 0), echo, T).await,
        Outcome::Failure(FailureReason::BadBody)
    );
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    for require_reply in [None, pattern("")] {
        let o = run(
            udp(UdpProbe {
                require_reply,
                ..UdpProbe::default()
            }),
            closed,
            T,
        )
        .await;
        assert_eq!(o, Outcome::Failure(FailureReason::Unreachable));
    }
}

#[tokio::test]
async fn silent_responder_passes_only_without_require_reply() {
    let silent = responder(|_| None).await;
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let o = run(udp(UdpProbe::default()), silent, timeout).await;
    assert!(is_success(&o), "{o:?}");
    assert!(start.elapsed() >= timeout);
    let start = Instant::now();
    let o = run(
        udp(UdpProbe {
            require_reply: pattern(""),
            ..UdpProbe::default()
        }),
        silent,
        timeout,
    )
    .await;
    assert_eq!(o, Outcome::Failure(FailureReason::Timeout));
    assert!(start.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn any_reply_passes_without_require_reply() {
    let answering = responder(|_| Some(b"whatever".to_vec())).await;
    let start = Instant::now();
    let o = run(udp(UdpProbe::default()), answering, T).await;
    assert!(is_success(&o), "{o:?}");
    assert!(start.elapsed() < T, "a reply ends the wait");
}
