//! Health-check settings: `[service.health]`, the health keys of
//! `[[service.server]]` and its `[[service.server.check]]` tables, their
//! rules, and their conversion to the core's state-machine settings
//! ([`ServiceHealthConfig`], [`ServerHealthConfig`], [`CheckerConfig`]) and
//! probe descriptions ([`ProbeSpec`]).
//!
//! Times are seconds, integers or fractions, as in keepalived.conf. The
//! timing keys (`delay_loop`, `connect_timeout`, `retry`,
//! `delay_before_retry`, `rise`, `fall`, `alpha`, `warmup`) may be written
//! in the service's health table, in a server's table and in a check's
//! table; the most specific wins (keepalived's virtual_server ->
//! real_server -> checker inheritance). Unset everywhere, keepalived's
//! defaults apply: `delay_loop` 60, `connect_timeout` 5, `retry` 1 (dns 3,
//! misc 0), `delay_before_retry` 1 (http/https 3, dns = `delay_loop`),
//! `warmup` = `delay_loop`, `rise` 1, `fall` 1, `alpha` false.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rvs_core::health::{CheckerConfig, ServerHealthConfig, ServiceHealthConfig};
use rvs_core::model::ServiceKey;
use rvs_core::probe::{
    DNS_TYPES, DnsProbe, HttpProbe, HttpVersion, MiscProbe, ProbeKind, ProbeSpec, ReplyPattern,
    TlsProbe, UdpProbe, parse_hex_bytes,
};
use rvs_ipvsadm::addr::parse_addr_port;
use serde::{Deserialize, Serialize};

use crate::spec::{Path, ServerSpec, SpecError};

/// A duration in seconds as written: an integer or a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seconds(pub f64);

// Settings are compared for equality (reload diffs); a NaN never passes
// the checks, so equality is an equivalence on every checked value.
impl Eq for Seconds {}

impl Seconds {
    /// Milliseconds, rounded; saturating.
    pub fn ms(self) -> u64 {
        let ms = (self.0 * 1000.0).round();
        if ms >= u64::MAX as f64 {
            u64::MAX
        } else if ms > 0.0 {
            ms as u64
        } else {
            0
        }
    }
}

impl From<u64> for Seconds {
    fn from(s: u64) -> Seconds {
        Seconds(s as f64)
    }
}

/// Adds the timing keys to a settings table, so that the three tables that
/// take them spell them once (serde cannot refuse unknown keys of a
/// flattened struct).
macro_rules! with_timing {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Seconds from a result to the next round of probes.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub delay_loop: Option<$crate::health::Seconds>,
            /// Seconds a probe may take.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub connect_timeout: Option<$crate::health::Seconds>,
            /// Extra attempts before a failure is declared.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub retry: Option<u32>,
            /// Seconds between a failed attempt and the next.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub delay_before_retry: Option<$crate::health::Seconds>,
            /// Consecutive successes that bring a down checker up.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub rise: Option<u32>,
            /// Consecutive declared failures that take an up checker down.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub fall: Option<u32>,
            /// Start down (needs `rise` successes first).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub alpha: Option<bool>,
            /// Upper bound in seconds of the random delay of the first probe.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub warmup: Option<$crate::health::Seconds>,
        }

        impl $name {
            /// The timing keys this table sets.
            pub fn timing(&self) -> $crate::health::Timing {
                $crate::health::Timing {
                    delay_loop: self.delay_loop,
                    connect_timeout: self.connect_timeout,
                    retry: self.retry,
                    delay_before_retry: self.delay_before_retry,
                    rise: self.rise,
                    fall: self.fall,
                    alpha: self.alpha,
                    warmup: self.warmup,
                }
            }
        }
    };
}
pub(crate) use with_timing;

/// The timing keys of one table, each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// `delay_loop`.
    pub delay_loop: Option<Seconds>,
    /// `connect_timeout`.
    pub connect_timeout: Option<Seconds>,
    /// `retry`.
    pub retry: Option<u32>,
    /// `delay_before_retry`.
    pub delay_before_retry: Option<Seconds>,
    /// `rise`.
    pub rise: Option<u32>,
    /// `fall`.
    pub fall: Option<u32>,
    /// `alpha`.
    pub alpha: Option<bool>,
    /// `warmup`.
    pub warmup: Option<Seconds>,
}

/// Longest time a timing key may say: one day.
pub const MAX_SECONDS: f64 = 86_400.0;

fn check_seconds(at: &Path, key: &'static str, v: Option<Seconds>) -> Result<(), SpecError> {
    let Some(Seconds(s)) = v else { return Ok(()) };
    if !s.is_finite() || s < 0.0 {
        return Err(SpecError::new(
            at.key(key),
            format!("{key} must be a finite number of seconds, at least 0, not {s}"),
        ));
    }
    if s > MAX_SECONDS {
        return Err(SpecError::new(
            at.key(key),
            format!("{key} must be at most {MAX_SECONDS} seconds, not {s}"),
        ));
    }
    if matches!(key, "delay_loop" | "connect_timeout" | "misc_timeout") && s < 0.001 {
        return Err(SpecError::new(
            at.key(key),
            format!("{key} must be at least 0.001 seconds"),
        ));
    }
    Ok(())
}

impl Timing {
    /// Each key of `self`, else of `base`.
    pub fn over(self, base: Timing) -> Timing {
        Timing {
            delay_loop: self.delay_loop.or(base.delay_loop),
            connect_timeout: self.connect_timeout.or(base.connect_timeout),
            retry: self.retry.or(base.retry),
            delay_before_retry: self.delay_before_retry.or(base.delay_before_retry),
            rise: self.rise.or(base.rise),
            fall: self.fall.or(base.fall),
            alpha: self.alpha.or(base.alpha),
            warmup: self.warmup.or(base.warmup),
        }
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        *self == Timing::default()
    }

    /// The rules of the keys set, with paths relative to their table.
    pub fn check(&self) -> Result<(), SpecError> {
        let at = Path::root();
        check_seconds(&at, "delay_loop", self.delay_loop)?;
        check_seconds(&at, "connect_timeout", self.connect_timeout)?;
        check_seconds(&at, "delay_before_retry", self.delay_before_retry)?;
        check_seconds(&at, "warmup", self.warmup)?;
        for (key, v) in [("rise", self.rise), ("fall", self.fall)] {
            if v == Some(0) {
                return Err(SpecError::new(
                    at.key(key),
                    format!("{key} must be at least 1"),
                ));
            }
        }
        Ok(())
    }

    /// The checker settings with keepalived's defaults for a check `kind`
    /// for what no level sets; `timeout` overrides the connect timeout
    /// (MISC's `misc_timeout`).
    pub fn checker(&self, kind: CheckType, timeout: Option<Seconds>) -> CheckerConfig {
        let interval = self.delay_loop.unwrap_or(Seconds(60.0));
        let retry = self.retry.unwrap_or(match kind {
            CheckType::Dns => 3,
            CheckType::Misc => 0,
            _ => 1,
        });
        let delay_before_retry = self.delay_before_retry.unwrap_or(match kind {
            CheckType::Http | CheckType::Https => Seconds(3.0),
            CheckType::Dns => interval,
            _ => Seconds(1.0),
        });
        CheckerConfig {
            interval_ms: interval.ms(),
            connect_timeout_ms: timeout
                .or(self.connect_timeout)
                .unwrap_or(Seconds(5.0))
                .ms(),
            retry,
            delay_before_retry_ms: delay_before_retry.ms(),
            rise: self.rise.unwrap_or(1).max(1),
            fall: self.fall.unwrap_or(1).max(1),
            alpha: self.alpha.unwrap_or(false),
            warmup_ms: self.warmup.unwrap_or(interval).ms(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

with_timing! {
    /// `[service.health]`: keepalived's virtual_server options, passive
    /// detection, and timing defaults for every check of the service.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HealthSpec {
        /// Least total weight of alive servers for the service to be up;
        /// 1 when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub quorum: Option<u32>,
        /// Margin around `quorum` against flapping; 0 when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hysteresis: Option<u32>,
        /// A failed server is set to weight 0 instead of removed.
        #[serde(default, skip_serializing_if = "is_false")]
        pub inhibit_on_failure: bool,
        /// `IP:PORT` where traffic goes while quorum is lost (the
        /// service's port when omitted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sorry_server: Option<String>,
        /// Command run when the service gains quorum.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub quorum_up: Option<Vec<String>>,
        /// Command run when the service loses quorum.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub quorum_down: Option<Vec<String>>,
        /// Consecutive proxy connect failures that mark a server down;
        /// 0 turns passive detection off; 3 when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub passive_fall: Option<u32>,
        /// Seconds before a passively failed server without checks is
        /// tried again; 10 when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub passive_retry: Option<Seconds>,
    }
}

/// The kinds of check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// TCP connect (keepalived's TCP_CHECK).
    Tcp,
    /// HTTP GET (HTTP_GET).
    Http,
    /// HTTPS GET (SSL_GET).
    Https,
    /// UDP datagram (UDP_CHECK).
    Udp,
    /// DNS query (DNS_CHECK).
    Dns,
    /// External command (MISC_CHECK).
    Misc,
}

impl CheckType {
    /// The name as written.
    pub fn name(self) -> &'static str {
        match self {
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
            CheckType::Https => "https",
            CheckType::Udp => "udp",
            CheckType::Dns => "dns",
            CheckType::Misc => "misc",
        }
    }
}

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

with_timing! {
    /// `[[service.server.check]]`: one checker. Which keys apply depends
    /// on `type`; a key that does not apply is an error.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CheckSpec {
        /// The kind of check.
        #[serde(rename = "type")]
        pub kind: CheckType,
        /// Address probed; the server's when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connect_ip: Option<String>,
        /// Port probed; the server's when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connect_port: Option<u16>,
        /// Source address of the probe.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bindto: Option<String>,
        /// http/https: request path, `/` when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub path: Option<String>,
        /// http/https: `Host` header; the target address when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub virtualhost: Option<String>,
        /// http/https: `"1.0"` (default) or `"1.1"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub http_protocol: Option<String>,
        /// http/https: accepted statuses, `"200"` or `"200-299"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status_code: Option<Vec<String>>,
        /// http/https: a regular expression the body must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub regex: Option<String>,
        /// http/https: the body must not match `regex`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub regex_no_match: Option<bool>,
        /// http/https: MD5 of the body, 32 hex digits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub digest: Option<String>,
        /// https: SNI name (none sent when omitted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sni_name: Option<String>,
        /// https: verify the certificate (default false).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub verify: Option<bool>,
        /// https: PEM file of trusted roots.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ca_file: Option<String>,
        /// udp: payload in hex; 16 random bytes when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub payload: Option<String>,
        /// udp: hex prefix a reply must start with, `X` = any nibble.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub require_reply: Option<String>,
        /// udp: shortest accepted reply (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub min_reply_length: Option<u32>,
        /// udp: longest accepted reply (default 255, keepalived's; 0 = no limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_reply_length: Option<u32>,
        /// dns: name queried, `.` when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// dns: query type (A NS CNAME SOA MX TXT AAAA), SOA when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub qtype: Option<String>,
        /// misc: program and arguments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub misc_path: Option<Vec<String>>,
        /// misc: seconds before the program is killed; `connect_timeout`
        /// when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub misc_timeout: Option<Seconds>,
        /// misc: exit statuses 2..=255 mean up with weight status - 2.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub misc_dynamic: Option<bool>,
    }
}

/// `[health]`: the daemon's health-check runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Most probes running at once, all services together (256).
    pub max_in_flight: usize,
    /// Most notify commands running at once (16); more wait their turn.
    pub notify_max: usize,
    /// Seconds a notify command may run before it is killed (10).
    pub notify_timeout: Seconds,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            max_in_flight: 256,
            notify_max: 16,
            notify_timeout: Seconds(10.0),
        }
    }
}

impl HealthSettings {
    /// The first rule broken, with the key at fault (relative to `[health]`).
    pub fn check(&self) -> Result<(), SpecError> {
        let at = Path::root();
        if self.max_in_flight == 0 {
            return Err(SpecError::new(
                at.key("max_in_flight"),
                "max_in_flight must be at least 1",
            ));
        }
        if self.notify_max == 0 {
            return Err(SpecError::new(
                at.key("notify_max"),
                "notify_max must be at least 1",
            ));
        }
        check_seconds(&at, "notify_timeout", Some(self.notify_timeout))
    }
}

/// A service's health settings, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceHealthSettings {
    /// The quorum state machine's settings.
    pub config: ServiceHealthConfig,
    /// `quorum_up` argv.
    pub quorum_up: Option<Vec<String>>,
    /// `quorum_down` argv.
    pub quorum_down: Option<Vec<String>>,
}

/// One real server's health settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealthSettings {
    /// The server's state machine settings; `config.checkers[i]` times
    /// `probes[i]`.
    pub config: ServerHealthConfig,
    /// What each checker probes.
    pub probes: Vec<ProbeSpec>,
    /// `notify_up` argv.
    pub notify_up: Option<Vec<String>>,
    /// `notify_down` argv.
    pub notify_down: Option<Vec<String>>,
}

/// A service's health settings and those of each of its servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthPlan {
    /// The service's.
    pub service: ServiceHealthSettings,
    /// Each server's, in the order written.
    pub servers: Vec<(SocketAddr, ServerHealthSettings)>,
}

fn check_argv(at: Path, argv: &Option<Vec<String>>) -> Result<(), SpecError> {
    if let Some(a) = argv
        && a.first().is_none_or(|p| p.is_empty())
    {
        return Err(SpecError::new(
            at,
            "a command is a non-empty list: program, then arguments",
        ));
    }
    Ok(())
}

impl HealthSpec {
    /// The service-level settings, checked (paths relative to this table).
    pub fn settings(&self, service: &ServiceKey) -> Result<ServiceHealthSettings, SpecError> {
        let at = Path::root();
        self.timing().check()?;
        if self.quorum == Some(0) {
            return Err(SpecError::new(
                at.key("quorum"),
                "quorum must be at least 1",
            ));
        }
        check_seconds(&at, "passive_retry", self.passive_retry)?;
        check_argv(at.key("quorum_up"), &self.quorum_up)?;
        check_argv(at.key("quorum_down"), &self.quorum_down)?;
        let sorry_server = match &self.sorry_server {
            None => None,
            Some(word) => {
                let bad = || {
                    SpecError::new(
                        at.key("sorry_server"),
                        format!("invalid sorry_server `{word}': write a numeric IP:PORT"),
                    )
                };
                let (addr, port) = parse_addr_port(word).map_err(|_| bad())?;
                if addr.is_ipv4() != matches!(service.family(), rvs_core::model::Family::V4) {
                    return Err(SpecError::new(
                        at.key("sorry_server"),
                        "the sorry server must have the service's address family",
                    ));
                }
                Some(SocketAddr::new(addr, port.unwrap_or(service.port())))
            }
        };
        Ok(ServiceHealthSettings {
            config: ServiceHealthConfig {
                quorum: self.quorum.unwrap_or(1),
                hysteresis: self.hysteresis.unwrap_or(0),
                inhibit_on_failure: self.inhibit_on_failure,
                sorry_server,
            },
            quorum_up: self.quorum_up.clone(),
            quorum_down: self.quorum_down.clone(),
        })
    }
}

fn parse_status(word: &str) -> Result<(u16, u16), String> {
    let num = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) => Ok(n),
            _ => Err(format!(
                "invalid status code `{word}': write a code 100..=599 or a range such as 200-299"
            )),
        }
    };
    let (lo, hi) = match word.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(word)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("invalid status range `{word}': {lo} is above {hi}"));
    }
    Ok((lo, hi))
}

fn parse_digest(s: &str) -> Result<[u8; 16], String> {
    let bytes = parse_hex_bytes(s).ok();
    match bytes {
        Some(b) if s.len() == 32 => {
            let mut d = [0u8; 16];
            d.copy_from_slice(&b);
            Ok(d)
        }
        _ => Err(format!(
            "invalid digest `{s}': write the body's MD5 as 32 hex digits"
        )),
    }
}

fn parse_ip(at: Path, word: &str) -> Result<IpAddr, SpecError> {
    word.parse().map_err(|_| {
        SpecError::new(
            at,
            format!("invalid address `{word}': write a numeric IP address"),
        )
    })
}

impl CheckSpec {
    /// A check of a kind with every other key unset.
    pub fn new(kind: CheckType) -> CheckSpec {
        CheckSpec {
            kind,
            connect_ip: None,
            connect_port: None,
            bindto: None,
            path: None,
            virtualhost: None,
            http_protocol: None,
            status_code: None,
            regex: None,
            regex_no_match: None,
            digest: None,
            sni_name: None,
            verify: None,
            ca_file: None,
            payload: None,
            require_reply: None,
            min_reply_length: None,
            max_reply_length: None,
            name: None,
            qtype: None,
            misc_path: None,
            misc_timeout: None,
            misc_dynamic: None,
            delay_loop: None,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            rise: None,
            fall: None,
            alpha: None,
            warmup: None,
        }
    }

    /// The kind-specific keys set, with the kinds they belong to.
    fn kind_keys(&self) -> [(&'static str, bool, &'static [CheckType]); 22] {
        use CheckType::*;
        const ADDR: &[CheckType] = &[Tcp, Http, Https, Udp, Dns];
        const HTTP: &[CheckType] = &[Http, Https];
        [
            ("connect_ip", self.connect_ip.is_some(), ADDR),
            ("connect_port", self.connect_port.is_some(), ADDR),
            ("bindto", self.bindto.is_some(), ADDR),
            ("path", self.path.is_some(), HTTP),
            ("virtualhost", self.virtualhost.is_some(), HTTP),
            ("http_protocol", self.http_protocol.is_some(), HTTP),
            ("status_code", self.status_code.is_some(), HTTP),
            ("regex", self.regex.is_some(), HTTP),
            ("regex_no_match", self.regex_no_match.is_some(), HTTP),
            ("digest", self.digest.is_some(), HTTP),
            ("sni_name", self.sni_name.is_some(), &[Https]),
            ("verify", self.verify.is_some(), &[Https]),
            ("ca_file", self.ca_file.is_some(), &[Https]),
            ("payload", self.payload.is_some(), &[Udp]),
            ("require_reply", self.require_reply.is_some(), &[Udp]),
            ("min_reply_length", self.min_reply_length.is_some(), &[Udp]),
            ("max_reply_length", self.max_reply_length.is_some(), &[Udp]),
            ("name", self.name.is_some(), &[Dns]),
            ("qtype", self.qtype.is_some(), &[Dns]),
            ("misc_path", self.misc_path.is_some(), &[Misc]),
            ("misc_timeout", self.misc_timeout.is_some(), &[Misc]),
            ("misc_dynamic", self.misc_dynamic.is_some(), &[Misc]),
        ]
    }

    /// The probe this check runs, checked (paths relative to this table).
    pub fn probe(&self) -> Result<ProbeSpec, SpecError> {
        let at = Path::root();
        for (key, set, kinds) in self.kind_keys() {
            if set && !kinds.contains(&self.kind) {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(SpecError::new(
                    at.key(key),
                    format!(
                        "`{key}' is not a key of {} checks (it is for {})",
                        self.kind,
                        names.join(", ")
                    ),
                ));
            }
        }
        self.timing().check()?;
        let connect_ip = self
            .connect_ip
            .as_deref()
            .map(|w| parse_ip(at.key("connect_ip"), w))
            .transpose()?;
        let bind = self
            .bindto
            .as_deref()
            .map(|w| parse_ip(at.key("bindto"), w))
            .transpose()?;
        if let (Some(c), Some(b)) = (connect_ip, bind)
            && c.is_ipv4() != b.is_ipv4()
        {
            return Err(SpecError::new(
                at.key("bindto"),
                "bindto and connect_ip must be of the same address family",
            ));
        }
        if self.connect_port == Some(0) {
            return Err(SpecError::new(
                at.key("connect_port"),
                "connect_port must be 1..=65535",
            ));
        }
        let kind = match self.kind {
            CheckType::Tcp => ProbeKind::Tcp,
            CheckType::Http | CheckType::Https => ProbeKind::Http(self.http()?),
            CheckType::Udp => ProbeKind::Udp(self.udp()?),
            CheckType::Dns => {
                let qtype = match &self.qtype {
                    None => 6,
                    Some(q) => DNS_TYPES
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(q))
                        .map(|&(_, v)| v)
                        .ok_or_else(|| {
                            let names: Vec<&str> = DNS_TYPES.iter().map(|(n, _)| *n).collect();
                            SpecError::new(
                                at.key("qtype"),
                                format!(
                                    "unknown qtype `{q}'; expected one of {}",
                                    names.join(", ")
                                ),
                            )
                        })?,
                };
                ProbeKind::Dns(DnsProbe {
                    name: self.name.clone().unwrap_or_else(|| ".".into()),
                    qtype,
                })
            }
            CheckType::Misc => {
                let Some(argv) = &self.misc_path else {
                    return Err(SpecError::new(
                        at.key("type"),
                        "a misc check needs `misc_path' (program and arguments)",
                    ));
                };
                check_argv(at.key("misc_path"), &self.misc_path)?;
                check_seconds(&at, "misc_timeout", self.misc_timeout)?;
                ProbeKind::Misc(MiscProbe {
                    argv: argv.clone(),
                    timeout_ms: self.misc_timeout.map(Seconds::ms),
                    dynamic: self.misc_dynamic.unwrap_or(false),
                })
            }
        };
        Ok(ProbeSpec {
            connect_ip,
            connect_port: self.connect_port,
            bind,
            kind,
        })
    }

    fn http(&self) -> Result<HttpProbe, SpecError> {
        let at = Path::root();
        let mut h = HttpProbe::default();
        if let Some(p) = &self.path {
            if !p.starts_with('/') || p.chars().any(|c| c.is_ascii_whitespace() || c.is_control()) {
                return Err(SpecError::new(
                    at.key("path"),
                    format!("invalid path `{p}': it starts with / and has no spaces"),
                ));
            }
            h.path = p.clone();
        }
        if let Some(v) = &self.virtualhost {
            if v.is_empty() || v.chars().any(|c| c.is_ascii_whitespace() || c.is_control()) {
                return Err(SpecError::new(
                    at.key("virtualhost"),
                    format!("invalid virtualhost `{v}'"),
                ));
            }
            h.host = Some(v.clone());
        }
        h.version = match self.http_protocol.as_deref() {
            None | Some("1.0") => HttpVersion::Http10,
            Some("1.1") => HttpVersion::Http11,
            Some(other) => {
                return Err(SpecError::new(
                    at.key("http_protocol"),
                    format!("unknown http_protocol `{other}'; expected \"1.0\" or \"1.1\""),
                ));
            }
        };
        for (i, w) in self.status_code.iter().flatten().enumerate() {
            h.status.push(
                parse_status(w).map_err(|m| SpecError::new(at.key("status_code").index(i), m))?,
            );
        }
        if let Some(r) = &self.regex {
            regex::Regex::new(r).map_err(|e| {
                SpecError::new(
                    at.key("regex"),
                    format!("invalid regex: {}", e.to_string().replace('\n', " ")),
                )
            })?;
            h.regex = Some(r.clone());
        }
        h.regex_no_match = self.regex_no_match.unwrap_or(false);
        if h.regex_no_match && h.regex.is_none() {
            return Err(SpecError::new(
                at.key("regex_no_match"),
                "regex_no_match needs `regex'",
            ));
        }
        if let Some(d) = &self.digest {
            h.digest = Some(parse_digest(d).map_err(|m| SpecError::new(at.key("digest"), m))?);
        }
        if self.kind == CheckType::Https {
            h.tls = Some(TlsProbe {
                sni: self.sni_name.clone(),
                verify: self.verify.unwrap_or(false),
                ca_file: self.ca_file.clone(),
            });
        }
        Ok(h)
    }

    fn udp(&self) -> Result<UdpProbe, SpecError> {
        let at = Path::root();
        let payload = match &self.payload {
            None => Vec::new(),
            Some(p) => parse_hex_bytes(p)
                .map_err(|m| SpecError::new(at.key("payload"), format!("invalid payload: {m}")))?,
        };
        if self.payload.is_some() && payload.is_empty() {
            return Err(SpecError::new(
                at.key("payload"),
                "an empty payload: omit the key for 16 random bytes",
            ));
        }
        let require_reply = self
            .require_reply
            .as_deref()
            .map(ReplyPattern::parse_hex)
            .transpose()
            .map_err(|m| {
                SpecError::new(
                    at.key("require_reply"),
                    format!("invalid require_reply: {m}"),
                )
            })?;
        let min = self.min_reply_length.unwrap_or(0);
        let max = self.max_reply_length.unwrap_or(255);
        if max > 65_535 {
            return Err(SpecError::new(
                at.key("max_reply_length"),
                "max_reply_length must be at most 65535",
            ));
        }
        if max != 0 && min > max {
            return Err(SpecError::new(
                at.key("min_reply_length"),
                format!("min_reply_length {min} is above max_reply_length {max}"),
            ));
        }
        Ok(UdpProbe {
            payload,
            require_reply,
            min_reply_len: min as usize,
            max_reply_len: max as usize,
        })
    }
}

/// A server's health settings: its checks with the timing inherited from
/// the service's health table (`service`) and the server's own keys, and
/// passive detection from the service's. Paths are relative to the
/// server's table.
pub fn server_settings(
    service: Option<&HealthSpec>,
    server: &ServerSpec,
) -> Result<ServerHealthSettings, SpecError> {
    let at = Path::root();
    let server_timing = server.timing();
    server_timing.check()?;
    check_argv(at.key("notify_up"), &server.notify_up)?;
    check_argv(at.key("notify_down"), &server.notify_down)?;
    let base = service.map(HealthSpec::timing).unwrap_or_default();
    let inherited = server_timing.over(base);
    let mut checkers = Vec::new();
    let mut probes = Vec::new();
    for (i, c) in server.check.iter().flatten().enumerate() {
        let here = at.key("check").index(i);
        let probe = c.probe().map_err(|e| e.under(&here))?;
        let timeout = if c.kind == CheckType::Misc {
            c.misc_timeout
        } else {
            None
        };
        checkers.push(c.timing().over(inherited).checker(c.kind, timeout));
        probes.push(probe);
    }
    let defaults = ServerHealthConfig::default();
    Ok(ServerHealthSettings {
        config: ServerHealthConfig {
            weight: server.weight,
            checkers,
            passive_fall: service
                .and_then(|h| h.passive_fall)
                .unwrap_or(defaults.passive_fall),
            passive_retry_ms: service
                .and_then(|h| h.passive_retry)
                .map_or(defaults.passive_retry_ms, Seconds::ms),
        },
        probes,
        notify_up: server.notify_up.clone(),
        notify_down: server.notify_down.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inheritance_and_kind_defaults() {
        let mut svc = HealthSpec {
            delay_loop: Some(Seconds(2.0)),
            rise: Some(2),
            ..HealthSpec::default()
        };
        svc.connect_timeout = Some(Seconds(0.5));
        let mut server = ServerSpec::new("127.0.0.1:80");
        server.fall = Some(3);
        let mut dns = CheckSpec::new(CheckType::Dns);
        dns.rise = Some(4);
        server.check = Some(vec![CheckSpec::new(CheckType::Http), dns]);
        let s = server_settings(Some(&svc), &server).unwrap();
        let http = s.config.checkers[0];
        assert_eq!(
            (http.interval_ms, http.connect_timeout_ms, http.retry),
            (2000, 500, 1)
        );
        assert_eq!(
            (http.delay_before_retry_ms, http.rise, http.fall),
            (3000, 2, 3)
        );
        assert_eq!(http.warmup_ms, 2000);
        let dns = s.config.checkers[1];
        assert_eq!(
            (dns.retry, dns.delay_before_retry_ms, dns.rise),
            (3, 2000, 4)
        );
        // Nothing set anywhere: keepalived's defaults.
        assert_eq!(
            Timing::default().checker(CheckType::Tcp, None),
            CheckerConfig::default()
        );
        assert_eq!(Timing::default().checker(CheckType::Misc, None).retry, 0);
    }

    #[test]
    fn rules() {
        let mut c = CheckSpec::new(CheckType::Tcp);
        c.path = Some("/".into());
        let e = c.probe().unwrap_err();
        assert_eq!(e.path.to_string(), "path");
        let mut c = CheckSpec::new(CheckType::Http);
        c.regex = Some("(".into());
        assert_eq!(c.probe().unwrap_err().path.to_string(), "regex");
        c.regex = None;
        c.digest = Some("abc".into());
        assert_eq!(c.probe().unwrap_err().path.to_string(), "digest");
        c.digest = Some("9e107d9d372bb6826bd81d3542a419d6".into());
        c.status_code = Some(vec!["200".into(), "302-301".into()]);
        assert_eq!(c.probe().unwrap_err().path.to_string(), "status_code[1]");
        c.status_code = Some(vec!["200-204".into(), "301".into()]);
        let ProbeKind::Http(h) = c.probe().unwrap().kind else {
            panic!("not http")
        };
        assert_eq!(h.status, vec![(200, 204), (301, 301)]);
        assert_eq!(h.digest.unwrap()[0], 0x9e);
        let mut c = CheckSpec::new(CheckType::Dns);
        c.qtype = Some("PTR".into());
        assert_eq!(c.probe().unwrap_err().path.to_string(), "qtype");
        let mut c = CheckSpec::new(CheckType::Udp);
        c.payload = Some("zz".into());
        assert_eq!(c.probe().unwrap_err().path.to_string(), "payload");
        let mut c = CheckSpec::new(CheckType::Tcp);
        c.delay_loop = Some(Seconds(f64::NAN));
        assert_eq!(c.probe().unwrap_err().path.to_string(), "delay_loop");
        c.delay_loop = Some(Seconds(-1.0));
        assert!(c.probe().is_err());
        c.delay_loop = None;
        c.rise = Some(0);
        assert_eq!(c.probe().unwrap_err().path.to_string(), "rise");
        let c = CheckSpec::new(CheckType::Misc);
        assert_eq!(c.probe().unwrap_err().path.to_string(), "type");
    }

    #[test]
    fn sorry_server() {
        let key = ServiceKey::Addr {
            proto: rvs_core::model::Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let mut h = HealthSpec {
            sorry_server: Some("127.0.0.1".into()),
            ..HealthSpec::default()
        };
        assert_eq!(
            h.settings(&key).unwrap().config.sorry_server,
            Some("127.0.0.1:80".parse().unwrap())
        );
        h.sorry_server = Some("[::1]:80".into());
        assert_eq!(
            h.settings(&key).unwrap_err().path.to_string(),
            "sorry_server"
        );
        h.sorry_server = Some("nope".into());
        assert!(h.settings(&key).is_err());
    }
}
