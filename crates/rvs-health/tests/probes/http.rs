use std::time::{Duration, Instant};

use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{HttpProbe, HttpVersion, ProbeKind};
use tokio::net::TcpListener;

use crate::support::{HttpServer, is_success, response, run, spec};

const T: Duration = Duration::from_secs(5);

fn http(h: HttpProbe) -> rvs_core::probe::ProbeSpec {
    spec(ProbeKind::Http(h))
}

/// MD5 of "hello world" (`printf 'hello world' | md5sum`).
const HELLO_WORLD_MD5: [u8; 16] = [
    0x5e, 0xb6, 0x3b, 0xbb, 0xe0, 0x1e, 0xee, 0xd0, 0x93, 0xcb, 0x22, 0xbb, 0x8f, 0x5a, 0xcd, 0xc3,
];

#[tokio::test]
async fn status_ranges() {
    let server = HttpServer::start(|head| {
        let code = if head.starts_with("GET /missing ") {
            404
        } else if head.starts_with("GET /moved ") {
            301
        } else {
            200
        };
        response(code, "x")
    })
    .await;
    let probe = |path: &str, status: Vec<(u16, u16)>| {
        http(HttpProbe {
            path: path.into(),
            status,
            ..HttpProbe::default()
        })
    };
    assert!(is_success(&run(probe("/", vec![]), server.addr, T).await));
    assert_eq!(
        run(probe("/missing", vec![]), server.addr, T).await,
        Outcome::Failure(FailureReason::BadStatus)
    );
    assert_eq!(
        run(probe("/moved", vec![]), server.addr, T).await,
        Outcome::Failure(FailureReason::BadStatus)
    );
    let ok_404 = run(probe("/missing", vec![(404, 404)]), server.addr, T).await;
    assert!(is_success(&ok_404), "{ok_404:?}");
    let ok_3xx = run(
        probe("/moved", vec![(200, 200), (300, 399)]),
        server.addr,
        T,
    )
    .await;
    assert!(is_success(&ok_3xx), "{ok_3xx:?}");
    assert_eq!(
        run(probe("/", vec![(300, 399)]), server.addr, T).await,
        Outcome::Failure(FailureReason::BadStatus)
    );
}

#[tokio::test]
async fn request_line_host_and_user_agent() {
    let server = HttpServer::start(|_| response(200, "")).await;
    let port = server.addr.port();
    let o = run(
        http(HttpProbe {
            path: "/health?full=1".into(),
            ..HttpProbe::default()
        }),
        server.addr,
        T,
    )
    .await;
    assert!(is_success(&o), "{o:?}");
    let o = run(
        http(HttpProbe {
            path: "/health".into(),
            version: HttpVersion::Http11,
            host: Some("www.example.org".into()),
            ..HttpProbe::default()
        }),
        server.addr,
        T,
    )
    .await;
    assert!(is_success(&o), "{o:?}");

    let heads = server.heads();
    assert_eq!(heads.len(), 2);
    let h10 = &heads[0];
    assert!(h10.starts_with("GET /health?full=1 HTTP/1.0\r\n"), "{h10}");
    assert!(
        h10.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{h10}"
    );
    assert!(h10.contains("\r\nUser-Agent: KeepAliveClient"), "{h10}");
    assert!(!h10.to_ascii_lowercase().contains("connection:"), "{h10}");
    let h11 = &heads[1];
    assert!(h11.starts_with("GET /health HTTP/1.1\r\n"), "{h11}");
    assert!(h11.contains("\r\nHost: www.example.org\r\n"), "{h11}");
    assert!(h11.contains("\r\nConnection: close\r\n"), "{h11}");
}

#[tokio::test]
async fn chunked_body_and_digest() {
    let server = HttpServer::start(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            .to_vec()
    })
    .await;
    let with_digest = |digest| {
        http(HttpProbe {
            version: HttpVersion::Http11,
            digest: Some(digest),
            ..HttpProbe::default()
        })
    };
    let o = run(with_digest(HELLO_WORLD_MD5), server.addr, T).await;
    assert!(is_success(&o), "{o:?}");
    let mut wrong = HELLO_WORLD_MD5;
    wrong[0] ^= 1;
    assert_eq!(
        run(with_digest(wrong), server.addr, T).await,
        Outcome::Failure(FailureReason::BadBody)
    );
}

#[tokio::test]
async fn body_to_end_of_connection_and_max_body() {
    // HTTP/1.0 without Content-Length: the body ends when the server closes.
    let server =
        HttpServer::start(|_| b"HTTP/1.0 200 OK\r\n\r\nhello world, and more".to_vec()).await;
    let probe = |max_body, digest| {
        http(HttpProbe {
            digest: Some(digest),
            max_body,
            ..HttpProbe::default()
        })
    };
    // Only the first 11 bytes are read, and they are "hello world".
    let o = run(probe(11, HELLO_WORLD_MD5), server.addr, T).await;
    assert!(is_success(&o), "{o:?}");
    // The whole body is not "hello world".
    assert_eq!(
        run(probe(1 << 20, HELLO_WORLD_MD5), server.addr, T).await,
        Outcome::Failure(FailureReason::BadBody)
    );
}

#[tokio::test]
async fn regex_match_and_no_match() {
    let server = HttpServer::start(|_| response(200, "<p>status: ok</p>")).await;
    let probe = |regex: &str, regex_no_match| {
        http(HttpProbe {
            regex: Some(regex.into()),
            regex_no_match,
            ..HttpProbe::default()
        })
    };
    let o = run(probe(r"status: (ok|fine)", false), server.addr, T).await;
    assert!(is_success(&o), "{o:?}");
    assert_eq!(
        run(probe("error", false), server.addr, T).await,
        Outcome::Failure(FailureReason::BadBody)
    );
    let o = run(probe("error", true), server.addr, T).await;
    assert!(is_success(&o), "{o:?}");
    assert_eq!(
        run(probe("status", true), server.addr, T).await,
        Outcome::Failure(FailureReason::BadBody)
    );
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, keeps the connection open, never answers.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let o = run(http(HttpProbe::default()), addr, timeout).await;
    let elapsed = start.elapsed();
    assert_eq!(o, Outcome::Failure(FailureReason::Timeout));
    assert!(elapsed >= timeout, "{elapsed:?}");
    // The deadline plus the prober's slack, with room for a busy machine.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    holder.abort();
}

#[tokio::test]
async fn garbage_answer_is_other() {
    let server = HttpServer::start(|_| b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()).await;
    assert_eq!(
        run(http(HttpProbe::default()), server.addr, T).await,
        Outcome::Failure(FailureReason::Other)
    );
}
