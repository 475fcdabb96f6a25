//! DNS_CHECK on the wire: the query a DNS probe sends and the check of the
//! reply's header (RFC 1035 §4.1).
//!
//! The query has a caller-chosen ID (draw it at random), the RD flag set and
//! one question `name`/`qtype`, class IN. A reply is ours when it is at least
//! a header long, carries our ID and has QR set; its RCODE decides the probe.
//! Nothing past the header is read: the check is whether the server answers,
//! not what it answers, as in keepalived.

/// Length of a DNS header.
pub const HEADER_LEN: usize = 12;

/// Class IN.
const CLASS_IN: u16 = 1;
/// Flags of a query: standard query, recursion desired.
const FLAGS_RD: u16 = 0x0100;
/// Longest encoded name (RFC 1035 §3.1).
const MAX_NAME_LEN: usize = 255;
/// Longest label.
const MAX_LABEL_LEN: usize = 63;

/// Encodes a query for `name` (dotted, a trailing dot optional, `.` for the
/// root) of type `qtype`, class IN, with ID `id` and RD set.
///
/// Errors name the problem: an empty label (`a..b`), a label over 63 bytes,
/// a name over 255 bytes encoded. Labels are taken byte for byte (no
/// escapes, no IDNA).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAGS_RD.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let name_start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(format!("DNS name {name:?} has an empty label"));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(format!(
                    "DNS name {name:?} has a label longer than {MAX_LABEL_LEN} bytes"
                ));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - name_start > MAX_NAME_LEN {
        return Err(format!(
            "DNS name {name:?} is longer than {MAX_NAME_LEN} bytes encoded"
        ));
    }
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// What a received datagram says about a query with ID `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCheck {
    /// Not a reply to this query (too short, another ID, QR clear): ignore
    /// it and keep waiting.
    NotOurs,
    /// A reply with this RCODE (0 = NOERROR, 3 = NXDOMAIN, ...).
    Rcode(u8),
}

/// Checks the header of `datagram` against the query ID `id`.
pub fn check_reply(id: u16, datagram: &[u8]) -> ReplyCheck {
    let Some(header) = datagram.get(..HEADER_LEN) else {
        return ReplyCheck::NotOurs;
    };
    let reply_id = u16::from_be_bytes([header[0], header[1]]);
    let qr = header[2] & 0x80 != 0;
    if reply_id != id || !qr {
        return ReplyCheck::NotOurs;
    }
    ReplyCheck::Rcode(header[3] & 0x0f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_soa_query_bytes() {
        let q = encode_query(0xbeef, ".", 6).unwrap();
        assert_eq!(
            q,
            [
                0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, // header
                0x00, // root
                0x00, 0x06, 0x00, 0x01, // SOA IN
            ]
        );
    }

    #[test]
    fn name_query_bytes() {
        let expected = [
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // header
            0x03, b'w', b'w', b'w', 0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'o',
            b'r', b'g', 0x00, // www.example.org
            0x00, 0x1c, 0x00, 0x01, // AAAA IN
        ];
        assert_eq!(
            encode_query(0x1234, "www.example.org", 28).unwrap(),
            expected
        );
        assert_eq!(
            encode_query(0x1234, "www.example.org.", 28).unwrap(),
            expected
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(
            encode_query(1, "a..b", 1)
                .unwrap_err()
                .contains("empty label")
        );
        assert!(encode_query(1, "", 1).is_ok(), "empty reads as the root");
        let long_label = "x".repeat(64);
        assert!(encode_query(1, &long_label, 1).unwrap_err().contains("63"));
        assert!(encode_query(1, &"x".repeat(63), 1).is_ok());
        // 4 labels of 63 bytes: 4 * 64 + 1 = 257 bytes encoded.
        let long_name = vec!["y".repeat(63); 4].join(".");
        assert!(encode_query(1, &long_name, 1).unwrap_err().contains("255"));
        // 3 of 63 and one of 61: 3 * 64 + 62 + 1 = 255, the limit.
        let limit = format!("{}.{}", vec!["y".repeat(63); 3].join("."), "z".repeat(61));
        assert!(encode_query(1, &limit, 1).is_ok());
    }

    #[test]
    fn reply_header_checks() {
        let mut reply = [0u8; 12];
        reply[..4].copy_from_slice(&[0xbe, 0xef, 0x81, 0x80]);
        assert_eq!(check_reply(0xbeef, &reply), ReplyCheck::Rcode(0));
        reply[3] = 0x83;
        assert_eq!(check_reply(0xbeef, &reply), ReplyCheck::Rcode(3));
        assert_eq!(check_reply(0xbeee, &reply), ReplyCheck::NotOurs);
        reply[2] = 0x01; // QR clear: a query, not a reply
        assert_eq!(check_reply(0xbeef, &reply), ReplyCheck::NotOurs);
        assert_eq!(check_reply(0xbeef, &reply[..11]), ReplyCheck::NotOurs);
        assert_eq!(check_reply(0xbeef, &[]), ReplyCheck::NotOurs);
    }
}
