//! Service and server identities as URL path segments and JSON strings.
//!
//! The forms use `-` between parts because no address contains one, and
//! they contain no character that a path segment must percent-encode
//! (IPv6 colons are allowed in a segment; brackets are not).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rvs_core::model::{Family, Protocol, ServiceKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A malformed service or server identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{text}': expected {expected}")]
pub struct IdError {
    what: &'static str,
    text: String,
    expected: &'static str,
}

const SERVICE_FORMS: &str = "PROTO-ADDR-PORT (tcp-192.0.2.1-80) or fwm-MARK / fwm6-MARK";
const SERVER_FORMS: &str = "ADDR-PORT (10.0.0.1-8080, 2001:db8::2-80)";

/// A service in a path: `tcp-192.0.2.1-80`, `sctp-2001:db8::1-80`, `fwm-7`
/// (IPv4) or `fwm6-7` (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId(pub ServiceKey);

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ServiceKey::Addr { proto, addr, port } => {
                let p = match proto {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                    Protocol::Sctp => "sctp",
                };
                write!(f, "{p}-{addr}-{port}")
            }
            ServiceKey::FwMark {
                family: Family::V4,
                mark,
            } => write!(f, "fwm-{mark}"),
            ServiceKey::FwMark {
                family: Family::V6,
                mark,
            } => write!(f, "fwm6-{mark}"),
        }
    }
}

impl FromStr for ServiceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<ServiceId, IdError> {
        let bad = || IdError {
            what: "service",
            text: s.to_string(),
            expected: SERVICE_FORMS,
        };
        let parts: Vec<&str> = s.split('-').collect();
        let key = match parts.as_slice() {
            [fwm @ ("fwm" | "fwm6"), mark] => {
                let mark: u32 = mark.parse().map_err(|_| bad())?;
                if mark == 0 {
                    return Err(bad());
                }
                let family = if *fwm == "fwm" {
                    Family::V4
                } else {
                    Family::V6
                };
                ServiceKey::FwMark { family, mark }
            }
            [proto, addr, port] => ServiceKey::Addr {
                proto: match *proto {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    _ => return Err(bad()),
                },
                addr: addr.parse().map_err(|_| bad())?,
                port: port.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        Ok(ServiceId(key))
    }
}

/// A server of a service in a path: `10.0.0.1-8080`, `2001:db8::2-80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerId {
    /// Server address.
    pub addr: IpAddr,
    /// Server port.
    pub port: u16,
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.addr, self.port)
    }
}

impl FromStr for ServerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<ServerId, IdError> {
        let bad = || IdError {
            what: "server",
            text: s.to_string(),
            expected: SERVER_FORMS,
        };
        let (addr, port) = s.split_once('-').ok_or_else(bad)?;
        Ok(ServerId {
            addr: addr.parse().map_err(|_| bad())?,
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(ServiceId);
string_serde!(ServerId);
