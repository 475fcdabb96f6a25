//! Address, port and number syntax as ipvsadm accepts it, without DNS.
//!
//! IPv4 addresses follow `inet_aton` (so `10.1` and `0x0a000001` are
//! addresses, as they are to ipvsadm); IPv6 addresses need brackets when a
//! port follows. Ports are numbers or one of the well-known service names of
//! [`SERVICES`]. Host names are recognised only to refuse them with a clear
//! message: rvs does no name resolution.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Well-known service names (the standard `/etc/services` entries) that a
/// port may be written as, e.g. `-t 192.0.2.1:http`.
pub const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("time", 37),
    ("whois", 43),
    ("tacacs", 49),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("gopher", 70),
    ("finger", 79),
    ("http", 80),
    ("www", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("nntp", 119),
    ("ntp", 123),
    ("imap", 143),
    ("imap2", 143),
    ("snmp", 161),
    ("snmp-trap", 162),
    ("bgp", 179),
    ("irc", 194),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("ftps-data", 989),
    ("ftps", 990),
    ("telnets", 992),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("radius", 1812),
    ("radius-acct", 1813),
    ("nfs", 2049),
    ("mysql", 3306),
    ("postgresql", 5432),
    ("x11", 6000),
    ("http-alt", 8080),
];

/// The port of a well-known service name.
pub fn service_port(name: &str) -> Option<u16> {
    SERVICES.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
}

/// C `strtol(s, &end, 10)` over the whole string, range-checked: what
/// ipvsadm's `string_to_number` accepts (leading blanks and a sign allowed,
/// nothing after the digits).
pub fn c_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Overlong digit strings are ERANGE in C; i128 covers every i64 text.
    let v: i128 = digits.parse().ok()?;
    let v = if neg { -v } else { v };
    if v < i128::from(min) || v > i128::from(max) {
        return None;
    }
    i64::try_from(v).ok()
}

/// One `inet_aton` component: decimal, `0x` hex or leading-zero octal.
fn aton_part(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (radix, body) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if body.is_empty() {
        // "0x" alone is 0 to strtoul; ipvsadm never meets it in practice.
        return if radix == 16 { Some(0) } else { None };
    }
    if !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(body, radix).ok().or(Some(u64::MAX))
}

/// IPv4 parsing with `inet_aton`'s forms: `a.b.c.d`, `a.b.c`, `a.b`, `a`.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let vals: Vec<u64> = parts.iter().map(|p| aton_part(p)).collect::<Option<_>>()?;
    let (head, last) = vals.split_at(vals.len() - 1);
    if head.iter().any(|&v| v > 255) {
        return None;
    }
    let last_max: u64 = match head.len() {
        0 => u64::from(u32::MAX),
        1 => 0x00ff_ffff,
        2 => 0xffff,
        _ => 0xff,
    };
    if last[0] > last_max {
        return None;
    }
    let mut v: u32 = 0;
    for (i, &h) in head.iter().enumerate() {
        v |= (h as u32) << (24 - 8 * i);
    }
    v |= last[0] as u32;
    Some(Ipv4Addr::from(v))
}

/// Whether a word looks like a host name (so it is refused as one rather
/// than reported as a malformed address).
pub fn looks_like_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !s.starts_with(['-', '.'])
}

/// Why an `addr[:port]` word was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    /// Not an address (nor a host name).
    Malformed,
    /// A host name, which rvs does not resolve.
    HostName(String),
}

/// A parsed `addr[:port]`; `port` is `None` when the word had none.
pub type AddrPort = (IpAddr, Option<u16>);

/// Parses `a.b.c.d[:port]`, `[v6]:port` or a bare IPv6 address, as
/// ipvsadm's `parse_service` does (a word of digits only is not an address).
pub fn parse_addr_port(word: &str) -> Result<AddrPort, AddrError> {
    if word.is_empty() || word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::Malformed);
    }
    let (host, port_text) = if let Some(rest) = word.strip_prefix('[') {
        let close = rest.find(']').ok_or(AddrError::Malformed)?;
        let after = &rest[close + 1..];
        let port = after.strip_prefix(':').ok_or(AddrError::Malformed)?;
        (&rest[..close], Some(port))
    } else {
        (word, None)
    };
    if let Ok(a6) = host.parse::<Ipv6Addr>() {
        let port = port_text.map(parse_port).transpose()?;
        return Ok((IpAddr::V6(a6), port));
    }
    if port_text.is_some() {
        // Brackets around something that is not IPv6.
        return Err(AddrError::Malformed);
    }
    let (host, port_text) = match word.rfind(':') {
        Some(i) => (&word[..i], Some(&word[i + 1..])),
        None => (word, None),
    };
    let addr = match inet_aton(host) {
        Some(a) => a,
        None if looks_like_host_name(host) => return Err(AddrError::HostName(host.to_string())),
        None => return Err(AddrError::Malformed),
    };
    let port = port_text.map(parse_port).transpose()?;
    Ok((IpAddr::V4(addr), port))
}

/// A port: a number 0..=65535 or a well-known service name.
pub fn parse_port(s: &str) -> Result<u16, AddrError> {
    if let Some(n) = c_number(s, 0, 65535) {
        return Ok(n as u16);
    }
    service_port(s).ok_or(AddrError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aton_forms() {
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("0x0a000001"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(inet_aton("256.0.0.1"), None);
        assert_eq!(inet_aton("1..2"), None);
        assert_eq!(inet_aton("10\\.0\\.0\\.1"), None);
    }

    #[test]
    fn addr_ports() {
        assert_eq!(
            parse_addr_port("192.0.2.1:http"),
            Ok(("192.0.2.1".parse().unwrap(), Some(80)))
        );
        assert_eq!(
            parse_addr_port("[2001:db8::1]:443"),
            Ok(("2001:db8::1".parse().unwrap(), Some(443)))
        );
        assert_eq!(
            parse_addr_port("2001:db8::1"),
            Ok(("2001:db8::1".parse().unwrap(), None))
        );
        assert_eq!(parse_addr_port("[2001:db8::1]"), Err(AddrError::Malformed));
        assert_eq!(parse_addr_port("80"), Err(AddrError::Malformed));
        assert_eq!(parse_addr_port("192.0.2.1:"), Err(AddrError::Malformed));
        assert_eq!(
            parse_addr_port("192.0.2.1:nosuch"),
            Err(AddrError::Malformed)
        );
        assert_eq!(
            parse_addr_port("ns1.example.net:https"),
            Err(AddrError::HostName("ns1.example.net".into()))
        );
    }

    #[test]
    fn numbers_like_strtol() {
        assert_eq!(c_number(" +5", 0, 10), Some(5));
        assert_eq!(c_number("5x", 0, 10), None);
        assert_eq!(c_number("", 0, 10), None);
        assert_eq!(c_number("-1", 0, 10), None);
        assert_eq!(c_number("99999999999999999999999", 0, 10), None);
    }
}
