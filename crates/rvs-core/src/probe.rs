//! What a health check probes: the pure description of one checker's probe
//! (keepalived's TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK, DNS_CHECK and
//! MISC_CHECK), shared by the configuration, the control API and the probe
//! executors. The executors live in the I/O crate `rvs-health`; the timing
//! (interval, retries, rise and fall) is [`crate::health::CheckerConfig`].

use std::net::{IpAddr, SocketAddr};

/// One checker: where it probes and what it sends and expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Address probed (`connect_ip`/`connect_port`); `None` fields default
    /// to the real server's address and port.
    pub connect_ip: Option<IpAddr>,
    /// Port probed; the real server's port when `None`.
    pub connect_port: Option<u16>,
    /// Source address of the probe (`bindto`); the kernel's choice if `None`.
    pub bind: Option<IpAddr>,
    /// The probe itself.
    pub kind: ProbeKind,
}

impl ProbeSpec {
    /// The address to probe for a real server at `server`.
    pub fn target(&self, server: SocketAddr) -> SocketAddr {
        SocketAddr::new(
            self.connect_ip.unwrap_or(server.ip()),
            self.connect_port.unwrap_or(server.port()),
        )
    }
}

/// The kinds of probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// A TCP handshake completes within the connect timeout.
    Tcp,
    /// An HTTP or HTTPS GET whose answer passes every configured test.
    Http(HttpProbe),
    /// A UDP datagram that draws no ICMP unreachable (and, if configured,
    /// a matching reply).
    Udp(UdpProbe),
    /// A DNS query answered with NOERROR.
    Dns(DnsProbe),
    /// An external command's exit status.
    Misc(MiscProbe),
}

impl ProbeKind {
    /// keepalived's name of the checker (`TCP_CHECK`, `HTTP_GET`, ...),
    /// used in logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Http(h) if h.tls.is_some() => "https",
            ProbeKind::Http(_) => "http",
            ProbeKind::Udp(_) => "udp",
            ProbeKind::Dns(_) => "dns",
            ProbeKind::Misc(_) => "misc",
        }
    }
}

/// HTTP version of an HTTP probe's request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.0 (keepalived's default `http_protocol`).
    #[default]
    Http10,
    /// HTTP/1.1 with `Connection: close`.
    Http11,
}

/// An HTTP_GET or SSL_GET probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// `Some` for HTTPS.
    pub tls: Option<TlsProbe>,
    /// Request path, `/` by default.
    pub path: String,
    /// `Host` header (`virtualhost`); the target address when `None`.
    pub host: Option<String>,
    /// Request version.
    pub version: HttpVersion,
    /// Accepted status codes as inclusive ranges; 200-299 when empty.
    pub status: Vec<(u16, u16)>,
    /// A regular expression (Rust `regex` syntax) the body must match.
    pub regex: Option<String>,
    /// Invert `regex`: the body must not match.
    pub regex_no_match: bool,
    /// MD5 digest the body must have (`digest`, keepalived's `genhash`).
    pub digest: Option<[u8; 16]>,
    /// Most body bytes read; a longer body fails the digest and regex
    /// tests on what was read.
    pub max_body: usize,
}

impl Default for HttpProbe {
    fn default() -> Self {
        HttpProbe {
            tls: None,
            path: "/".into(),
            host: None,
            version: HttpVersion::Http10,
            status: Vec::new(),
            regex: None,
            regex_no_match: false,
            digest: None,
            max_body: 1 << 20,
        }
    }
}

impl HttpProbe {
    /// Whether `code` is accepted.
    pub fn status_ok(&self, code: u16) -> bool {
        if self.status.is_empty() {
            (200..=299).contains(&code)
        } else {
            self.status
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&code))
        }
    }
}

/// TLS settings of an SSL_GET probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsProbe {
    /// Server name sent in SNI (`sni_name`); without it no SNI is sent.
    pub sni: Option<String>,
    /// Verify the server's certificate chain and name; off by default, as
    /// in keepalived.
    pub verify: bool,
    /// PEM file of trusted roots when verifying; the system's otherwise.
    pub ca_file: Option<String>,
}

/// A UDP_CHECK probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpProbe {
    /// Payload sent; empty means a random 16 bytes, as keepalived does.
    pub payload: Vec<u8>,
    /// A reply must arrive and start with this pattern (`require_reply`).
    pub require_reply: Option<ReplyPattern>,
    /// Shortest accepted reply.
    pub min_reply_len: usize,
    /// Longest accepted reply.
    pub max_reply_len: usize,
}

/// A byte pattern in which some nibbles are wildcards (keepalived's `X`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyPattern {
    /// Expected bytes.
    pub bytes: Vec<u8>,
    /// Mask per byte: bits set must equal `bytes`, bits clear are free.
    pub mask: Vec<u8>,
}

impl ReplyPattern {
    /// Parses keepalived's hex form: pairs of hex digits, each digit may be
    /// `X`/`x` (any value). Spaces are ignored.
    pub fn parse_hex(s: &str) -> Result<ReplyPattern, String> {
        let digits: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err("hex pattern has an odd number of digits".into());
        }
        let mut p = ReplyPattern::default();
        for pair in digits.chunks(2) {
            let mut b = 0u8;
            let mut m = 0u8;
            for &c in pair {
                b <<= 4;
                m <<= 4;
                if c == 'x' || c == 'X' {
                    continue;
                }
                let v = c
                    .to_digit(16)
                    .ok_or_else(|| format!("'{c}' is not a hex digit or X"))?;
                b |= v as u8;
                m |= 0xf;
            }
            p.bytes.push(b);
            p.mask.push(m);
        }
        Ok(p)
    }

    /// Whether `reply` starts with the pattern.
    pub fn matches(&self, reply: &[u8]) -> bool {
        reply.len() >= self.bytes.len()
            && self
                .bytes
                .iter()
                .zip(&self.mask)
                .zip(reply)
                .all(|((b, m), r)| r & m == b & m)
    }
}

/// Parses a plain hex string (no wildcards), e.g. a UDP payload.
pub fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let p = ReplyPattern::parse_hex(s)?;
    if p.mask.iter().any(|&m| m != 0xff) {
        return Err("wildcards are not allowed here".into());
    }
    Ok(p.bytes)
}

/// A DNS_CHECK probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsProbe {
    /// Name queried; `.` by default.
    pub name: String,
    /// Query type number (`SOA` = 6 by default).
    pub qtype: u16,
}

impl Default for DnsProbe {
    fn default() -> Self {
        DnsProbe {
            name: ".".into(),
            qtype: 6,
        }
    }
}

/// DNS query types a DNS_CHECK may name, as keepalived lists them.
pub const DNS_TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
];

/// A MISC_CHECK probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscProbe {
    /// Program and arguments (`misc_path`, split into words).
    pub argv: Vec<String>,
    /// Longest run before the program is killed and the probe fails
    /// (`misc_timeout`); the checker's connect timeout when `None`.
    pub timeout_ms: Option<u64>,
    /// Exit statuses 2..=255 mean up with weight `status - 2`.
    pub dynamic: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_pattern_wildcards() {
        let p = ReplyPattern::parse_hex("de aX").unwrap();
        assert!(p.matches(&[0xde, 0xa7, 0x00]));
        assert!(p.matches(&[0xde, 0xaf]));
        assert!(!p.matches(&[0xde, 0xb7]));
        assert!(!p.matches(&[0xde]));
        assert!(ReplyPattern::parse_hex("abc").is_err());
        assert!(ReplyPattern::parse_hex("zz").is_err());
        assert_eq!(parse_hex_bytes("00ff").unwrap(), vec![0, 0xff]);
        assert!(parse_hex_bytes("0X").is_err());
    }

    #[test]
    fn status_ranges() {
        let mut h = HttpProbe::default();
        assert!(h.status_ok(200) && h.status_ok(299) && !h.status_ok(301));
        h.status = vec![(301, 302), (404, 404)];
        assert!(h.status_ok(302) && h.status_ok(404) && !h.status_ok(200));
    }

    #[test]
    fn target_defaults_to_server() {
        let server: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let mut s = ProbeSpec {
            connect_ip: None,
            connect_port: None,
            bind: None,
            kind: ProbeKind::Tcp,
        };
        assert_eq!(s.target(server), server);
        s.connect_port = Some(8080);
        assert_eq!(s.target(server), "192.0.2.1:8080".parse().unwrap());
    }
}
