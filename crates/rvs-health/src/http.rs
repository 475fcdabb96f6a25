//! HTTP_GET and SSL_GET: one GET over a fresh connection, driven by hyper's
//! HTTP/1 client (which handles `Content-Length`, chunked and
//! read-to-close bodies) on a socket this crate connects itself, so that the
//! source address and the timeout stay ours.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, Uri, Version};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use regex::bytes::Regex;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use rvs_core::health::FailureReason;
use rvs_core::probe::{HttpProbe, HttpVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::{tcp, tls};

/// Sent as `User-Agent`; contains keepalived's `KeepAliveClient` so that
/// access-log filters written for keepalived's checks still apply.
const USER_AGENT_VALUE: &str = concat!(
    "KeepAliveClient (rvs-health/",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// An HTTP probe with its regular expression compiled and TLS configuration
/// built.
#[derive(Debug)]
pub(crate) struct PreparedHttp {
    spec: HttpProbe,
    path: Uri,
    host: Option<HeaderValue>,
    regex: Option<Regex>,
    tls: Option<PreparedTls>,
}

#[derive(Debug)]
struct PreparedTls {
    config: Arc<ClientConfig>,
    /// The name sent in SNI (when enabled) and verified: `sni`, else the
    /// `host` when it is a valid name; the target IP address when `None`.
    name: Option<ServerName<'static>>,
}

impl PreparedHttp {
    pub(crate) fn new(spec: &HttpProbe) -> Result<PreparedHttp, String> {
        let path: Uri = spec
            .path
            .parse()
            .map_err(|e| format!("HTTP check: path {:?}: {e}", spec.path))?;
        if path.scheme().is_some() || !spec.path.starts_with('/') {
            return Err(format!(
                "HTTP check: path {:?} must start with '/'",
                spec.path
            ));
        }
        let host = spec
            .host
            .as_deref()
            .map(|h| {
                HeaderValue::from_str(h).map_err(|_| {
                    format!("HTTP check: virtualhost {h:?} is not a valid header value")
                })
            })
            .transpose()?;
        let regex = spec
            .regex
            .as_deref()
            .map(|r| Regex::new(r).map_err(|e| format!("HTTP check: regex {r:?}: {e}")))
            .transpose()?;
        let tls = match &spec.tls {
            None => None,
            Some(t) => {
                let name = match (&t.sni, &spec.host) {
                    (Some(sni), _) => Some(tls::server_name(sni)?),
                    (None, Some(host)) => tls::server_name(host_without_port(host)).ok(),
                    (None, None) => None,
                };
                Some(PreparedTls {
                    config: tls::client_config(t)?,
                    name,
                })
            }
        };
        Ok(PreparedHttp {
            spec: spec.clone(),
            path,
            host,
            regex,
            tls,
        })
    }

    /// Runs the probe against `target` (the caller bounds the time).
    pub(crate) async fn probe(
        &self,
        target: SocketAddr,
        bind: Option<IpAddr>,
    ) -> Result<(), FailureReason> {
        let stream = tcp::connect(target, bind).await?;
        match &self.tls {
            None => self.exchange(stream, target).await,
            Some(t) => {
                let name = t
                    .name
                    .clone()
                    .unwrap_or(ServerName::IpAddress(target.ip().into()));
                let stream = TlsConnector::from(t.config.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|_| FailureReason::Tls)?;
                self.exchange(stream, target).await
            }
        }
    }

    /// The request and the checks of its response over `io`.
    async fn exchange<T>(&self, io: T, target: SocketAddr) -> Result<(), FailureReason>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake::<_, Empty<&'static [u8]>>(TokioIo::new(io))
            .await
            .map_err(|_| FailureReason::Other)?;
        let request = self.request(target)?;
        let work = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| FailureReason::Other)?;
            self.check(response).await
        };
        tokio::pin!(conn, work);
        // The connection task must run while the response is read; when it
        // ends first (the server closed), what it delivered is still read.
        tokio::select! {
            verdict = &mut work => verdict,
            _ = &mut conn => work.await,
        }
    }

    fn request(&self, target: SocketAddr) -> Result<Request<Empty<&'static [u8]>>, FailureReason> {
        let host = match &self.host {
            Some(h) => h.clone(),
            None => HeaderValue::from_str(&host_header(target, self.tls.is_some()))
                .map_err(|_| FailureReason::Other)?,
        };
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(self.path.clone())
            .header(HOST, host)
            .header(USER_AGENT, USER_AGENT_VALUE);
        builder = match self.spec.version {
            HttpVersion::Http10 => builder.version(Version::HTTP_10),
            HttpVersion::Http11 => builder
                .version(Version::HTTP_11)
                .header(CONNECTION, "close"),
        };
        builder.body(Empty::new()).map_err(|_| FailureReason::Other)
    }

    /// Status, then digest and regex on at most `max_body` bytes of body.
    async fn check(&self, response: Response<Incoming>) -> Result<(), FailureReason> {
        if !self.spec.status_ok(response.status().as_u16()) {
            return Err(FailureReason::BadStatus);
        }
        if self.spec.digest.is_none() && self.regex.is_none() {
            return Ok(());
        }
        let mut body = response.into_body();
        let mut read = Vec::new();
        while read.len() < self.spec.max_body {
            match body.frame().await {
                None => break,
                Some(Err(_)) => return Err(FailureReason::Other),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = self.spec.max_body - read.len();
                        read.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
        }
        if let Some(expected) = &self.spec.digest
            && Md5::digest(&read)[..] != expected[..]
        {
            return Err(FailureReason::BadBody);
        }
        if let Some(regex) = &self.regex
            && regex.is_match(&read) == self.spec.regex_no_match
        {
            return Err(FailureReason::BadBody);
        }
        Ok(())
    }
}

/// The `Host` header for `target`: IPv6 in brackets, the port only when it
/// is not the scheme's default.
pub(crate) fn host_header(target: SocketAddr, https: bool) -> String {
    let default_port = if https { 443 } else { 80 };
    let ip = match target.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    if target.port() == default_port {
        ip
    } else {
        format!("{ip}:{}", target.port())
    }
}

/// `host` without a trailing `:port`, for use as a TLS name.
fn host_without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_forms() {
        assert_eq!(
            host_header("192.0.2.1:80".parse().unwrap(), false),
            "192.0.2.1"
        );
        assert_eq!(
            host_header("192.0.2.1:8080".parse().unwrap(), false),
            "192.0.2.1:8080"
        );
        assert_eq!(
            host_header("192.0.2.1:443".parse().unwrap(), true),
            "192.0.2.1"
        );
        assert_eq!(
            host_header("192.0.2.1:80".parse().unwrap(), true),
            "192.0.2.1:80"
        );
        assert_eq!(
            host_header("[2001:db8::1]:80".parse().unwrap(), false),
            "[2001:db8::1]"
        );
        assert_eq!(
            host_header("[2001:db8::1]:8443".parse().unwrap(), true),
            "[2001:db8::1]:8443"
        );
    }

    #[test]
    fn tls_name_from_host() {
        assert_eq!(host_without_port("www.example.org:8443"), "www.example.org");
        assert_eq!(host_without_port("www.example.org"), "www.example.org");
        assert_eq!(host_without_port("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad_regex = HttpProbe {
            regex: Some("(".into()),
            ..HttpProbe::default()
        };
        assert!(PreparedHttp::new(&bad_regex).unwrap_err().contains("regex"));
        let bad_path = HttpProbe {
            path: "health".into(),
            ..HttpProbe::default()
        };
        assert!(PreparedHttp::new(&bad_path).unwrap_err().contains("path"));
        let bad_host = HttpProbe {
            host: Some("a\nb".into()),
            ..HttpProbe::default()
        };
        assert!(
            PreparedHttp::new(&bad_host)
                .unwrap_err()
                .contains("virtualhost")
        );
    }
}
