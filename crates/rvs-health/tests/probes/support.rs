//! Helpers shared by the probe tests: specs, ports, a scripted HTTP server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_core::health::Outcome;
use rvs_core::probe::{ProbeKind, ProbeSpec};
use rvs_health::{CompiledProbe, Prober};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A probe of `kind` at the real server's own address.
pub fn spec(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        connect_ip: None,
        connect_port: None,
        bind: None,
        kind,
    }
}

/// Prepares and runs one probe of `spec` against `server`.
pub async fn run(spec: ProbeSpec, server: SocketAddr, timeout: Duration) -> Outcome {
    let probe = CompiledProbe::new(spec).expect("valid probe");
    Prober::new(8).probe(server, &probe, timeout).await
}

/// Whether `outcome` is a success.
pub fn is_success(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Success { .. })
}

/// A loopback TCP port with nothing listening on it.
pub fn closed_tcp_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A scripted HTTP server: records each request head and answers it with
/// the bytes `respond` returns for it, then closes the connection.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    pub async fn start(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let recorded = heads.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let respond = respond.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let _ = serve_one(stream, |head| {
                        recorded.lock().unwrap().push(head.to_owned());
                        respond(head)
                    })
                    .await;
                });
            }
        });
        HttpServer { addr, heads }
    }

    /// The request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Reads one request head from `stream`, writes `respond(head)` and closes.
pub async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    respond: impl FnOnce(&str) -> Vec<u8>,
) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let answer = respond(&head);
    stream.write_all(&answer).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends a request head.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A complete response with `Content-Length`.
pub fn response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
