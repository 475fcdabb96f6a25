//! The events file: one event a line, `#` comments, times in milliseconds
//! of virtual time, never decreasing.
//!
//! ```text
//! T open PROTO CLIENT:PORT VIP:PORT [mark=N]
//! T close tcp CLIENT:PORT VIP:PORT
//! T ipvsadm ARGS...
//! T list [OPTIONS]
//! ```

use std::fmt;
use std::net::IpAddr;

use rvs_core::model::Protocol;
use rvs_ipvsadm::addr::{AddrError, parse_addr_port};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new connection (TCP: handshake; UDP: one datagram).
    Open {
        /// tcp or udp.
        proto: Protocol,
        /// Client address and port.
        client: (IpAddr, u16),
        /// Virtual address and port.
        vip: (IpAddr, u16),
        /// Firewall mark (0 = none).
        mark: u32,
    },
    /// The client closes a TCP connection and the server answers.
    Close {
        /// Client address and port.
        client: (IpAddr, u16),
        /// Virtual address and port.
        vip: (IpAddr, u16),
    },
    /// An ipvsadm command; the words after `ipvsadm`.
    Ipvsadm(Vec<String>),
    /// `ipvsadm -Ln` with these extra options.
    List(Vec<String>),
}

/// An event with its time and line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// Virtual time in milliseconds.
    pub time_ms: u64,
    /// 1-based line number.
    pub line: usize,
    /// The event.
    pub event: Event,
}

/// A bad line in an events file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct EventError {
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column of the offending word.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl EventError {
    /// `FILE:LINE:COLUMN: message`.
    pub fn with_file(&self, file: &str) -> String {
        format!("{file}:{self}")
    }
}

/// Splits a line into words with their 1-based byte columns.
fn words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, ch) in line.char_indices() {
        if ch.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s + 1, &line[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s + 1, &line[s..]));
    }
    out
}

fn endpoint(word: &str, what: &str) -> Result<(IpAddr, u16), String> {
    match parse_addr_port(word) {
        Ok((addr, Some(port))) => Ok((addr, port)),
        Ok((_, None)) => Err(format!("{what} {word:?} has no port")),
        Err(AddrError::HostName(h)) => Err(format!(
            "{what} {h:?} is a host name; rvs takes numeric addresses only"
        )),
        Err(AddrError::Malformed) => Err(format!("illegal {what} address {word:?}")),
    }
}

fn protocol(word: &str) -> Result<Protocol, String> {
    match word {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => Err(format!("unknown protocol {word:?} (use tcp or udp)")),
    }
}

/// Parses an events file. The whole file is checked; the first bad line is
/// reported.
pub fn parse_events(text: &str) -> Result<Vec<EventLine>, EventError> {
    let mut out = Vec::new();
    let mut last_time = 0u64;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let w = words(line);
        let Some(&(c0, first)) = w.first() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let err = |column: usize, message: String| EventError {
            line: line_no,
            column,
            message,
        };
        let time_ms: u64 = first.parse().map_err(|_| {
            err(
                c0,
                format!("expected a time in milliseconds, found {first:?}"),
            )
        })?;
        if time_ms < last_time {
            return Err(err(
                c0,
                format!("time {time_ms} is before the previous event's time {last_time}"),
            ));
        }
        last_time = time_ms;
        let Some(&(c1, verb)) = w.get(1) else {
            return Err(err(
                c0 + first.len(),
                "expected an event: open, close, ipvsadm or list".to_string(),
            ));
        };
        let arg = |k: usize, what: &str| -> Result<(usize, &str), EventError> {
            w.get(k)
                .copied()
                .ok_or_else(|| err(line.trim_end().len() + 1, format!("{verb}: missing {what}")))
        };
        let event = match verb {
            "open" => {
                let (cp, p) = arg(2, "protocol")?;
                let proto = protocol(p).map_err(|m| err(cp, m))?;
                let (cc, c) = arg(3, "client address:port")?;
                let client = endpoint(c, "client").map_err(|m| err(cc, m))?;
                let (cv, v) = arg(4, "virtual address:port")?;
                let vip = endpoint(v, "virtual").map_err(|m| err(cv, m))?;
                let mut mark = 0;
                if let Some(&(cm, m)) = w.get(5) {
                    mark = m
                        .strip_prefix("mark=")
                        .and_then(|n| n.parse::<u32>().ok())
                        .ok_or_else(|| err(cm, format!("expected mark=N, found {m:?}")))?;
                }
                if let Some(&(cx, x)) = w.get(6) {
                    return Err(err(cx, format!("unexpected word {x:?}")));
                }
                if std::mem::discriminant(&client.0) != std::mem::discriminant(&vip.0) {
                    return Err(err(cv, "client and virtual address families differ".into()));
                }
                Event::Open {
                    proto,
                    client,
                    vip,
                    mark,
                }
            }
            "close" => {
                let (cp, p) = arg(2, "protocol")?;
                if p != "tcp" {
                    return Err(err(cp, format!("close takes tcp, found {p:?}")));
                }
                let (cc, c) = arg(3, "client address:port")?;
                let client = endpoint(c, "client").map_err(|m| err(cc, m))?;
                let (cv, v) = arg(4, "virtual address:port")?;
                let vip = endpoint(v, "virtual").map_err(|m| err(cv, m))?;
                if let Some(&(cx, x)) = w.get(5) {
                    return Err(err(cx, format!("unexpected word {x:?}")));
                }
                Event::Close { client, vip }
            }
            "ipvsadm" => Event::Ipvsadm(w[2..].iter().map(|(_, s)| s.to_string()).collect()),
            "list" => Event::List(w[2..].iter().map(|(_, s)| s.to_string()).collect()),
            other => {
                return Err(err(
                    c1,
                    format!("unknown event {other:?} (use open, close, ipvsadm or list)"),
                ));
            }
        };
        out.push(EventLine {
            time_ms,
            line: line_no,
            event,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_event() {
        let ev = parse_events(
            "# comment\n\n0 open tcp 198.51.100.1:1000 203.0.113.1:80\n\
             5 open udp [2001:db8::1]:53 [2001:db8::2]:domain mark=7\n\
             10 close tcp 198.51.100.1:1000 203.0.113.1:http\n\
             10 ipvsadm -a -t 203.0.113.1:80 -r 192.0.2.1 -m\n20 list --stats\n",
        )
        .unwrap();
        assert_eq!(ev.len(), 5);
        assert_eq!(ev[0].line, 3);
        assert!(matches!(
            ev[1].event,
            Event::Open {
                mark: 7,
                proto: Protocol::Udp,
                ..
            }
        ));
        assert!(matches!(&ev[2].event, Event::Close { vip, .. } if vip.1 == 80));
        assert_eq!(
            ev[3].event,
            Event::Ipvsadm(
                ["-a", "-t", "203.0.113.1:80", "-r", "192.0.2.1", "-m"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            )
        );
        assert_eq!(ev[4].event, Event::List(vec!["--stats".into()]));
    }

    #[track_caller]
    fn bad(text: &str, line: usize, column: usize, needle: &str) {
        let e = parse_events(text).unwrap_err();
        assert_eq!((e.line, e.column), (line, column), "{e}");
        assert!(e.message.contains(needle), "{e}");
    }

    #[test]
    fn bad_lines_are_located() {
        bad("x open tcp 1.2.3.4:1 1.2.3.4:2", 1, 1, "time");
        bad(
            "5 open tcp 198.51.100.1:1 203.0.113.1:2\n1 list",
            2,
            1,
            "before",
        );
        bad("0 opne tcp", 1, 3, "unknown event");
        bad("0 open icmp 1.2.3.4:1 1.2.3.4:2", 1, 8, "protocol");
        bad("0 open tcp 198.51.100.1 203.0.113.1:80", 1, 12, "no port");
        bad(
            "0 open tcp host.example:1 203.0.113.1:80",
            1,
            12,
            "host name",
        );
        bad(
            "0 open tcp 198.51.100.1:1 203.0.113.1:80 mark=x",
            1,
            42,
            "mark=N",
        );
        bad("0 open tcp 198.51.100.1:1", 1, 26, "missing virtual");
        bad(
            "0 close udp 198.51.100.1:1 203.0.113.1:80",
            1,
            9,
            "close takes tcp",
        );
        bad(
            "0 open tcp 198.51.100.1:1 [2001:db8::1]:80",
            1,
            27,
            "families",
        );
        bad("0", 1, 2, "expected an event");
    }
}
