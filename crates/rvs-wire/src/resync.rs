//! The rvs resynchronisation messages (an rvs extension, not part of the
//! kernel protocol): a returning director asks the master for its whole
//! connection table, and the master answers with the table cut into
//! numbered chunks, each carrying one IPVS sync version 1 message.
//!
//! Every datagram starts with the same 24-byte header, all fields
//! big-endian:
//!
//! ```text
//!  0..4   magic "RVSY"
//!  4      version = 1
//!  5      kind: 1 request, 2 answer
//!  6      sync id
//!  7      reserved = 0
//!  8..12  request id (chosen by the requester, echoed in the answers)
//! 12..16  snapshot id (request: the snapshot being fetched, 0 = a new one;
//!         answer: the snapshot the chunk belongs to, never 0)
//! 16..20  request: first chunk wanted;  answer: this chunk's number
//! 20..24  request: how many chunks;     answer: chunks in the snapshot
//! ```
//!
//! A request is the header alone. An answer is the header followed by one
//! sync v1 message (see [`crate::sync`]); an empty table is one answer of
//! chunk 0 of 0 with no message.

/// The first four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"RVSY";
/// The only version.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 24;
/// The default UDP port: the one after the kernel sync port (8848).
pub const DEFAULT_PORT: u16 = 8849;

const KIND_REQUEST: u8 = 1;
const KIND_ANSWER: u8 = 2;

/// A request for chunks of a table snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The requester's sync id (0: any master).
    pub sync_id: u8,
    /// Chosen by the requester, echoed in the answers.
    pub request_id: u32,
    /// The snapshot being fetched; 0 asks for a new one.
    pub snapshot: u32,
    /// First chunk wanted.
    pub first: u32,
    /// How many chunks from `first`.
    pub count: u32,
}

/// One chunk of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The master's sync id.
    pub sync_id: u8,
    /// The request id this answers.
    pub request_id: u32,
    /// The snapshot (never 0).
    pub snapshot: u32,
    /// This chunk's number, below `total` (0 of 0 for an empty table).
    pub chunk: u32,
    /// Chunks in the snapshot.
    pub total: u32,
    /// One sync version 1 message (empty for an empty table).
    pub payload: &'a [u8],
}

/// A decoded datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// From a returning director.
    Request(Request),
    /// From the master.
    Answer(Answer<'a>),
}

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResyncError {
    /// Shorter than the header.
    #[error("resync datagram too short ({0} bytes)")]
    Short(usize),
    /// Not an rvs resync datagram.
    #[error("not a resync datagram (bad magic)")]
    Magic,
    /// Another version.
    #[error("resync version {0} is not supported")]
    Version(u8),
    /// Unknown kind, a request with a body, or an answer whose numbers do
    /// not add up.
    #[error("malformed resync datagram")]
    Malformed,
}

fn header(out: &mut Vec<u8>, kind: u8, sync_id: u8, w: [u32; 4]) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, kind, sync_id, 0]);
    for x in w {
        out.extend_from_slice(&x.to_be_bytes());
    }
}

impl Request {
    /// The datagram.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        header(
            &mut out,
            KIND_REQUEST,
            self.sync_id,
            [self.request_id, self.snapshot, self.first, self.count],
        );
        out
    }
}

impl Answer<'_> {
    /// The datagram.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        header(
            &mut out,
            KIND_ANSWER,
            self.sync_id,
            [self.request_id, self.snapshot, self.chunk, self.total],
        );
        out.extend_from_slice(self.payload);
        out
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a datagram (the answer's payload is not looked into: the sync
/// decoder does that).
pub fn decode(bytes: &[u8]) -> Result<Datagram<'_>, ResyncError> {
    if bytes.len() < HEADER_LEN {
        return Err(ResyncError::Short(bytes.len()));
    }
    if bytes[..4] != MAGIC {
        return Err(ResyncError::Magic);
    }
    if bytes[4] != VERSION {
        return Err(ResyncError::Version(bytes[4]));
    }
    if bytes[7] != 0 {
        return Err(ResyncError::Malformed);
    }
    let (sync_id, request_id, snapshot, a, b) = (
        bytes[6],
        be32(bytes, 8),
        be32(bytes, 12),
        be32(bytes, 16),
        be32(bytes, 20),
    );
    match bytes[5] {
        KIND_REQUEST if bytes.len() == HEADER_LEN => Ok(Datagram::Request(Request {
            sync_id,
            request_id,
            snapshot,
            first: a,
            count: b,
        })),
        KIND_ANSWER => {
            let payload = &bytes[HEADER_LEN..];
            let sane = snapshot != 0
                && if b == 0 {
                    a == 0 && payload.is_empty()
                } else {
                    a < b && !payload.is_empty()
                };
            if !sane {
                return Err(ResyncError::Malformed);
            }
            Ok(Datagram::Answer(Answer {
                sync_id,
                request_id,
                snapshot,
                chunk: a,
                total: b,
                payload,
            }))
        }
        _ => Err(ResyncError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let r = Request {
            sync_id: 1,
            request_id: 0x0102_0304,
            snapshot: 0,
            first: 64,
            count: 32,
        };
        let b = r.to_bytes();
        assert_eq!(
            b,
            [
                b'R', b'V', b'S', b'Y', 1, 1, 1, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0,
                32
            ]
        );
        assert_eq!(decode(&b), Ok(Datagram::Request(r)));
    }

    #[test]
    fn answer_round_trip_and_refusals() {
        let a = Answer {
            sync_id: 1,
            request_id: 7,
            snapshot: 9,
            chunk: 2,
            total: 3,
            payload: &[0, 1, 0, 8, 0, 1, 0, 0],
        };
        let b = a.to_bytes();
        assert_eq!(b.len(), HEADER_LEN + 8);
        assert_eq!(&b[4..8], &[1, 2, 1, 0]);
        assert_eq!(decode(&b), Ok(Datagram::Answer(a)));
        let empty = Answer {
            chunk: 0,
            total: 0,
            payload: &[],
            ..a
        };
        assert_eq!(decode(&empty.to_bytes()), Ok(Datagram::Answer(empty)));

        assert_eq!(decode(&b[..10]), Err(ResyncError::Short(10)));
        let mut bad = b.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(ResyncError::Magic));
        let mut bad = b.clone();
        bad[4] = 2;
        assert_eq!(decode(&bad), Err(ResyncError::Version(2)));
        // Chunk beyond the total; a chunk without a message; snapshot 0;
        // unknown kind; a request with a body.
        for (at, v) in [(19, 3u8), (15, 0), (5, 3), (7, 1)] {
            let mut bad = b.clone();
            bad[at] = v;
            assert_eq!(decode(&bad), Err(ResyncError::Malformed), "byte {at}");
        }
        assert_eq!(decode(&b[..HEADER_LEN]), Err(ResyncError::Malformed));
        let mut req = Request {
            sync_id: 0,
            request_id: 1,
            snapshot: 0,
            first: 0,
            count: 1,
        }
        .to_bytes();
        req.push(0);
        assert_eq!(decode(&req), Err(ResyncError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn requests_and_answers_round_trip(
            sync_id: u8,
            request_id: u32,
            snapshot in 1u32..,
            a: u32,
            b: u32,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 1..64),
        ) {
            let r = Request { sync_id, request_id, snapshot, first: a, count: b };
            let bytes = r.to_bytes();
            proptest::prop_assert_eq!(decode(&bytes), Ok(Datagram::Request(r)));
            let total = b.max(1);
            let ans = Answer {
                sync_id,
                request_id,
                snapshot,
                chunk: a % total,
                total,
                payload: &payload,
            };
            let bytes = ans.to_bytes();
            proptest::prop_assert_eq!(decode(&bytes), Ok(Datagram::Answer(ans)));
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            if let Ok(d) = decode(&bytes) {
                let again = match d {
                    Datagram::Request(r) => r.to_bytes(),
                    Datagram::Answer(a) => a.to_bytes(),
                };
                proptest::prop_assert_eq!(again, bytes);
            }
        }
    }
}
