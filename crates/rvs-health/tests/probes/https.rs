use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rvs_core::health::{FailureReason, Outcome};
use rvs_core::probe::{HttpProbe, ProbeKind, ProbeSpec, TlsProbe};
use rvs_health::{CompiledProbe, Prober};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::support::{is_success, response, run, serve_one, spec};

const T: Duration = Duration::from_secs(5);

/// A self-signed certificate for `names`: (certificate PEM, server config).
fn certificate(names: &[&str]) -> (String, Arc<ServerConfig>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
    (ck.cert.pem(), Arc::new(config))
}

/// A TLS server answering 200 that records the SNI of each handshake
/// (`None` when the client sent none).
struct TlsServer {
    addr: SocketAddr,
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

impl TlsServer {
    async fn start(config: Arc<ServerConfig>) -> TlsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sni = Arc::new(Mutex::new(Vec::new()));
        let seen = sni.clone();
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    seen.lock()
                        .unwrap()
                        .push(tls.get_ref().1.server_name().map(str::to_owned));
                    let _ = serve_one(tls, |_| response(200, "secure")).await;
                });
            }
        });
        TlsServer { addr, sni }
    }

    fn sni(&self) -> Vec<Option<String>> {
        self.sni.lock().unwrap().clone()
    }
}

/// Writes `pem` to a file of its own and returns its path.
fn pem_file(pem: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "rvs-health-ca-{}-{}.pem",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, pem).unwrap();
    path
}

fn https(tls: TlsProbe) -> ProbeSpec {
    spec(ProbeKind::Http(HttpProbe {
        tls: Some(tls),
        regex: Some("^secure$".into()),
        ..HttpProbe::default()
    }))
}

#[tokio::test]
async fn sni_only_when_configured_and_no_verification_by_default() {
    let (_, config) = certificate(&["rs1.example.org"]);
    let server = TlsServer::start(config).await;
    let o = run(https(TlsProbe::default()), server.addr, T).await;
    assert!(is_success(&o), "{o:?}");
    let o = run(
        https(TlsProbe {
            sni: Some("rs1.example.org".into()),
            ..TlsProbe::default()
        }),
        server.addr,
        T,
    )
    .await;
    assert!(is_success(&o), "{o:?}");
    assert_eq!(server.sni(), vec![None, Some("rs1.example.org".to_owned())]);
}

#[tokio::test]
async fn verify_with_the_ca_file() {
    let (pem, config) = certificate(&["rs1.example.org"]);
    let server = TlsServer::start(config).await;
    let ca = pem_file(&pem);
    let verified = |sni: &str| {
        https(TlsProbe {
            sni: Some(sni.into()),
            verify: true,
            ca_file: Some(ca.to_str().unwrap().into()),
        })
    };
    let o = run(verified("rs1.example.org"), server.addr, T).await;
    assert!(is_success(&o), "{o:?}");
    // Trusted certificate, but for another name.
    assert_eq!(
        run(verified("rs2.example.org"), server.addr, T).await,
        Outcome::Failure(FailureReason::Tls)
    );
    std::fs::remove_file(ca).unwrap();
}

#[tokio::test]
async fn verify_refuses_an_untrusted_certificate() {
    let (_, config) = certificate(&["rs1.example.org"]);
    let (other_pem, _) = certificate(&["rs1.example.org"]);
    let server = TlsServer::start(config).await;
    let ca = pem_file(&other_pem);
    let o = run(
        https(TlsProbe {
            sni: Some("rs1.example.org".into()),
            verify: true,
            ca_file: Some(ca.to_str().unwrap().into()),
        }),
        server.addr,
        T,
    )
    .await;
    assert_eq!(o, Outcome::Failure(FailureReason::Tls));
    // Nor do the system's roots trust a self-signed certificate; a machine
    // without system roots refuses the probe when it is prepared.
    let system = https(TlsProbe {
        sni: Some("rs1.example.org".into()),
        verify: true,
        ca_file: None,
    });
    match CompiledProbe::new(system) {
        Ok(probe) => assert_eq!(
            Prober::new(1).probe(server.addr, &probe, T).await,
            Outcome::Failure(FailureReason::Tls)
        ),
        Err(e) => assert!(e.contains("set ca_file"), "{e}"),
    }
    std::fs::remove_file(ca).unwrap();
    // The handshake happened (and failed) on the client side both times.
    assert!(server.sni().is_empty(), "{:?}", server.sni());
}

#[tokio::test]
async fn plain_http_server_fails_the_handshake() {
    // Answers every connection at once in plain text, as a misconfigured
    // HTTP server on the HTTPS port does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    assert_eq!(
        run(https(TlsProbe::default()), addr, T).await,
        Outcome::Failure(FailureReason::Tls)
    );
}

#[test]
fn bad_tls_settings_are_refused() {
    let missing = CompiledProbe::new(https(TlsProbe {
        verify: true,
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..TlsProbe::default()
    }))
    .unwrap_err();
    assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    let empty = pem_file("not a certificate\n");
    let err = CompiledProbe::new(https(TlsProbe {
        verify: true,
        ca_file: Some(empty.to_str().unwrap().into()),
        ..TlsProbe::default()
    }))
    .unwrap_err();
    assert!(err.contains("no certificate"), "{err}");
    std::fs::remove_file(empty).unwrap();
    let bad_sni = CompiledProbe::new(https(TlsProbe {
        sni: Some("bad name!".into()),
        ..TlsProbe::default()
    }))
    .unwrap_err();
    assert!(bad_sni.contains("bad name!"), "{bad_sni}");
}
