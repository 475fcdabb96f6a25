use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::ProbeKind;
use tokio::net::TcpListener;

use crate::support::{closed_tcp_port, is_success, run, spec};

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn tcp_up_passes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome = run(spec(ProbeKind::Tcp), listener.local_addr().unwrap(), T).await;
    assert!(is_success(&outcome), "{outcome:?}");
    let Outcome::Success { dynamic_weight, .. } = outcome else {
        unreachable!()
    };
    assert_eq!(dynamic_weight, None);
}

#[tokio::test]
async fn tcp_refused() {
    let outcome = run(spec(ProbeKind::Tcp), closed_tcp_port(), T).await;
    assert_eq!(outcome, Outcome::Failure(FailureReason::Refused));
}

#[tokio::test]
async fn connect_port_overrides_the_server_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut s = spec(ProbeKind::Tcp);
    s.connect_port = Some(listener.local_addr().unwrap().port());
    let outcome = run(s, closed_tcp_port(), T).await;
    assert!(is_success(&outcome), "{outcome:?}");
}

#[tokio::test]
async fn bind_sets_the_source_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut s = spec(ProbeKind::Tcp);
    s.bind = Some(source);
    let (outcome, accepted) = tokio::join!(run(s, addr, T), listener.accept());
    assert!(is_success(&outcome), "{outcome:?}");
    assert_eq!(accepted.unwrap().1.ip(), source);
}
