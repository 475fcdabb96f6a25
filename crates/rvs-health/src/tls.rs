//! The TLS client side of SSL_GET: one rustls configuration per probe,
//! built when the probe is prepared.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rvs_core::probe::TlsProbe;

/// Builds the client configuration of `spec`: SNI on only when a name is
/// configured, certificates verified against `ca_file` or the system's
/// roots, or not verified at all.
pub(crate) fn client_config(spec: &TlsProbe) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = if spec.verify {
        let roots = match &spec.ca_file {
            Some(path) => load_roots(path)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    };
    config.enable_sni = spec.sni.is_some();
    Ok(Arc::new(config))
}

/// Validates an SNI name.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned()).map_err(|e| format!("invalid TLS name {name:?}: {e}"))
}

/// The system's trusted roots (`SSL_CERT_FILE`, `SSL_CERT_DIR` or the
/// distribution's bundle), read once per process: probes are prepared
/// again on every reload, and the bundle holds over a hundred certificates.
fn system_roots() -> Result<RootCertStore, String> {
    static ROOTS: OnceLock<Result<RootCertStore, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            // Certificates rustls cannot use are skipped, as browsers do.
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(String::new, |e| format!(" ({e})"));
                return Err(format!(
                    "TLS: no system CA certificates found{why}; set ca_file to verify"
                ));
            }
            Ok(roots)
        })
        .clone()
}

/// The trusted roots in the PEM file `path`.
fn load_roots(path: &str) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("CA file {path}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("CA file {path}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("CA file {path}: no certificate in it"));
    }
    Ok(roots)
}

/// keepalived's default: any certificate is accepted, but the handshake
/// signatures are still checked against the certificate presented.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
