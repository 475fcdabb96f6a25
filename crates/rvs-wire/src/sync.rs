//! IPVS connection synchronisation messages: version 1 (what current
//! kernels send, IPv4 and IPv6 records with options) and version 0 (the
//! legacy IPv4-only format, decoded for compatibility and encoded for tests).
//!
//! All multi-byte fields are big-endian except version 0 sequence data,
//! which the kernel copies in the sender's byte order; this codec reads and
//! writes it little-endian, the order of every x86 and most ARM senders.
//!
//! Decoding follows the kernel's tolerance rules: a malformed header refuses
//! the whole datagram; some record errors drop the rest of the message
//! (reported in [`Message::truncated`], records before it kept); others
//! drop only that record (counted in [`Message::dropped`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The default multicast group (IPv4).
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The default UDP port (with `sync_ports = n`, ports `PORT..PORT+n`).
pub const PORT: u16 = 8848;
/// Version 1 header length.
pub const V1_HEADER_LEN: usize = 8;
/// Version 0 header length.
pub const V0_HEADER_LEN: usize = 4;
/// Version 1 IPv4 record, fixed part.
pub const V4_RECORD_LEN: usize = 36;
/// Version 1 IPv6 record, fixed part.
pub const V6_RECORD_LEN: usize = 72;
/// Version 0 record (without sequence data).
pub const V0_RECORD_LEN: usize = 24;
/// Sequence adjustment data (option payload, and the v0 trailer).
pub const SEQ_DATA_LEN: usize = 24;
/// Most records one message holds (the count is one byte).
pub const MAX_RECORDS: usize = 255;
/// Longest persistence-engine data.
pub const MAX_PE_DATA: usize = 255;
/// Longest persistence-engine name.
pub const MAX_PE_NAME: usize = 16;
/// The master's default message size for an IPv4 group (1500 − 28).
pub const DEFAULT_MAXLEN_V4: usize = 1472;
/// The master's default message size for an IPv6 group (1500 − 48).
pub const DEFAULT_MAXLEN_V6: usize = 1452;

/// Connection flag bits that matter on the wire.
pub mod flags {
    /// In the sender's hash table: never sent.
    pub const HASHED: u32 = 0x0040;
    /// Sequence adjustment in use (the SEQ option / v0 trailer is present).
    pub const SEQ_MASK: u32 = 0x0600;
    /// The bits a receiver takes from the wire: forwarding method,
    /// NOOUTPUT, INACTIVE, the sequence bits, NO_CPORT and TEMPLATE (the
    /// kernel's `IP_VS_CONN_F_BACKUP_MASK`, 0x1F87).
    pub const RECEIVER_MASK: u32 = 0x1F87;
    /// Set by the receiver on entries it creates.
    pub const SYNC: u32 = 0x0020;
    /// Persistence template.
    pub const TEMPLATE: u32 = 0x1000;
    /// Counted as inactive.
    pub const INACTIVE: u32 = 0x0100;
}

const OPT_SEQ: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
const OPT_F_PARAM: u8 = 0x40;

/// Sequence-number adjustment of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqAdjust {
    /// Initial sequence number.
    pub init_seq: u32,
    /// Delta in sequence numbers.
    pub delta: u32,
    /// Delta before the last resized packet.
    pub previous_delta: u32,
}

/// Sequence adjustment of both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqData {
    /// Client to server.
    pub in_seq: SeqAdjust,
    /// Server to client.
    pub out_seq: SeqAdjust,
}

/// Persistence-engine data (the SIP engine's Call-ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeData {
    /// Engine name, 1..=16 bytes, no NUL (e.g. `sip`).
    pub name: Vec<u8>,
    /// Engine data, 1..=255 bytes.
    pub data: Vec<u8>,
}

/// One connection or template as a sync record carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConn {
    /// IP protocol (fwmark templates: 0).
    pub proto: u8,
    /// Connection flags (the sender clears HASHED).
    pub flags: u32,
    /// Protocol state index (templates: 0 or 1 = assured).
    pub state: u16,
    /// Client address (templates: the client network).
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
    /// Firewall mark (v0: 0).
    pub fwmark: u32,
    /// Timeout in seconds (v0: 0, meaning the receiver's default).
    pub timeout: u32,
    /// Sequence adjustment, sent as the SEQ option.
    pub seq: Option<SeqData>,
    /// Persistence-engine data.
    pub pe: Option<PeData>,
}

impl SyncConn {
    /// Whether the record is an IPv6 one.
    pub fn is_ipv6(&self) -> bool {
        self.caddr.is_ipv6()
    }
}

/// Message version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Legacy IPv4-only format.
    V0,
    /// Current format.
    V1,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sync id of the sender.
    pub sync_id: u8,
    /// Format.
    pub version: Version,
    /// The records decoded.
    pub conns: Vec<SyncConn>,
    /// Records skipped on their own (unknown mandatory option, PE data
    /// without a name).
    pub dropped: u32,
    /// Why the rest of the message was dropped, if it was.
    pub truncated: Option<RecordError>,
}

/// Why a datagram was refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Shorter than the smallest header.
    #[error("sync message too short ({0} bytes)")]
    Short(usize),
    /// The header's size field is not the datagram length.
    #[error("bogus sync message size {header} (datagram {len} bytes)")]
    Size {
        /// The header's size.
        header: u16,
        /// The datagram length.
        len: usize,
    },
}

/// Why the rest of a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the header's record count calls for.
    #[error("record {0} runs past the end of the message")]
    TooShort(u8),
    /// An IPv4 type byte with bits other than the family bit.
    #[error("record {0}: unknown record type")]
    Type(u8),
    /// Record version nibble not 0, or a size smaller than the fixed part.
    #[error("record {0}: bad record size or version")]
    Size(u8),
    /// An option of length 0, running past the record, repeated, or of the
    /// wrong length.
    #[error("record {0}: malformed option")]
    Option(u8),
}

/// Why a record cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Client, virtual and real-server addresses of different families.
    #[error("record mixes address families")]
    MixedFamily,
    /// Version 0 carries IPv4 only.
    #[error("version 0 carries IPv4 only")]
    V0Ipv6,
    /// Persistence-engine name or data empty or too long.
    #[error("persistence-engine name or data of bad length")]
    PeLength,
    /// One record does not fit in a message of the configured size.
    #[error("record larger than the message size")]
    TooLarge,
}

fn pe_len(pe: &PeData) -> Result<usize, EncodeError> {
    if pe.name.is_empty()
        || pe.name.len() > MAX_PE_NAME
        || pe.data.is_empty()
        || pe.data.len() > MAX_PE_DATA
    {
        return Err(EncodeError::PeLength);
    }
    Ok(2 + pe.data.len() + 2 + pe.name.len())
}

/// Bytes one version 1 record takes (without alignment padding).
pub fn record_len(c: &SyncConn) -> Result<usize, EncodeError> {
    let fixed = match (c.caddr, c.vaddr, c.daddr) {
        (IpAddr::V4(_), IpAddr::V4(_), IpAddr::V4(_)) => V4_RECORD_LEN,
        (IpAddr::V6(_), IpAddr::V6(_), IpAddr::V6(_)) => V6_RECORD_LEN,
        _ => return Err(EncodeError::MixedFamily),
    };
    let seq = if c.seq.is_some() { 2 + SEQ_DATA_LEN } else { 0 };
    let pe = match &c.pe {
        Some(pe) => pe_len(pe)?,
        None => 0,
    };
    Ok(fixed + seq + pe)
}

fn put_seq(out: &mut Vec<u8>, s: &SeqAdjust, le: bool) {
    for v in [s.init_seq, s.delta, s.previous_delta] {
        out.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
    }
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// Builds one version 1 message record by record, never beyond its size.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    maxlen: usize,
    count: u8,
}

impl MessageBuilder {
    /// An empty message of sync id `sync_id` that will not grow beyond
    /// `maxlen` bytes (clamped to 65535).
    pub fn new(sync_id: u8, maxlen: usize) -> Self {
        let maxlen = maxlen.min(usize::from(u16::MAX));
        let mut buf = Vec::with_capacity(maxlen.min(9000));
        buf.extend_from_slice(&[0, sync_id, 0, 0, 0, 1, 0, 0]);
        MessageBuilder {
            buf,
            maxlen,
            count: 0,
        }
    }

    /// Records so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `c` would still fit.
    pub fn fits(&self, c: &SyncConn) -> Result<bool, EncodeError> {
        let len = record_len(c)?;
        self.fits_len(len)
    }

    fn fits_len(&self, len: usize) -> Result<bool, EncodeError> {
        if V1_HEADER_LEN + len > self.maxlen {
            return Err(EncodeError::TooLarge);
        }
        let start = (self.buf.len() + 3) & !3;
        Ok(usize::from(self.count) < MAX_RECORDS && start + len <= self.maxlen)
    }

    /// Appends `c` if it fits: `Ok(true)` when added, `Ok(false)` when the
    /// message is full (send it and start another). Errors leave the
    /// message as it was.
    pub fn push(&mut self, c: &SyncConn) -> Result<bool, EncodeError> {
        let len = record_len(c)?;
        if !self.fits_len(len)? {
            return Ok(false);
        }
        let aligned = (self.buf.len() + 3) & !3;
        self.buf.resize(aligned, 0);
        let out = &mut self.buf;
        out.push(u8::from(c.is_ipv6()));
        out.push(c.proto);
        out.extend_from_slice(&(len as u16 & 0x0fff).to_be_bytes());
        out.extend_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
        out.extend_from_slice(&c.state.to_be_bytes());
        out.extend_from_slice(&c.cport.to_be_bytes());
        out.extend_from_slice(&c.vport.to_be_bytes());
        out.extend_from_slice(&c.dport.to_be_bytes());
        out.extend_from_slice(&c.fwmark.to_be_bytes());
        out.extend_from_slice(&c.timeout.to_be_bytes());
        put_addr(out, c.caddr);
        put_addr(out, c.vaddr);
        put_addr(out, c.daddr);
        if let Some(s) = &c.seq {
            out.push(OPT_SEQ);
            out.push(SEQ_DATA_LEN as u8);
            put_seq(out, &s.in_seq, false);
            put_seq(out, &s.out_seq, false);
        }
        if let Some(pe) = &c.pe {
            out.push(OPT_PE_DATA);
            out.push(pe.data.len() as u8);
            out.extend_from_slice(&pe.data);
            out.push(OPT_PE_NAME);
            out.push(pe.name.len() as u8);
            out.extend_from_slice(&pe.name);
        }
        self.count += 1;
        Ok(true)
    }

    /// The message bytes, header completed.
    pub fn finish(&mut self) -> &[u8] {
        let size = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        self.buf[4] = self.count;
        &self.buf
    }

    /// Empties the message for reuse (same sync id and size).
    pub fn clear(&mut self) {
        self.buf.truncate(V1_HEADER_LEN);
        self.buf[2..5].fill(0);
        self.count = 0;
    }
}

/// Encodes `conns` as one version 1 message (for tests and tools; a sender
/// uses [`MessageBuilder`]). Fails if they do not fit in `maxlen`.
pub fn encode_v1(sync_id: u8, conns: &[SyncConn], maxlen: usize) -> Result<Vec<u8>, EncodeError> {
    let mut b = MessageBuilder::new(sync_id, maxlen);
    for c in conns {
        if !b.push(c)? {
            return Err(EncodeError::TooLarge);
        }
    }
    Ok(b.finish().to_vec())
}

/// Encodes `conns` as one version 0 message (IPv4 only; fwmark, timeout and
/// persistence-engine data are not carried; flags are cut to 16 bits).
pub fn encode_v0(sync_id: u8, conns: &[SyncConn]) -> Result<Vec<u8>, EncodeError> {
    if conns.len() > MAX_RECORDS {
        return Err(EncodeError::TooLarge);
    }
    let mut out = vec![conns.len() as u8, sync_id, 0, 0];
    for c in conns {
        let (IpAddr::V4(ca), IpAddr::V4(va), IpAddr::V4(da)) = (c.caddr, c.vaddr, c.daddr) else {
            return Err(EncodeError::V0Ipv6);
        };
        let with_seq = c.flags & flags::SEQ_MASK != 0;
        out.push(0);
        out.push(c.proto);
        out.extend_from_slice(&c.cport.to_be_bytes());
        out.extend_from_slice(&c.vport.to_be_bytes());
        out.extend_from_slice(&c.dport.to_be_bytes());
        out.extend_from_slice(&ca.octets());
        out.extend_from_slice(&va.octets());
        out.extend_from_slice(&da.octets());
        out.extend_from_slice(&((c.flags & !flags::HASHED) as u16).to_be_bytes());
        out.extend_from_slice(&c.state.to_be_bytes());
        if with_seq {
            let s = c.seq.unwrap_or_default();
            put_seq(&mut out, &s.in_seq, true);
            put_seq(&mut out, &s.out_seq, true);
        }
    }
    let size = u16::try_from(out.len()).map_err(|_| EncodeError::TooLarge)?;
    out[2..4].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn v4(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

fn v6(b: &[u8], at: usize) -> IpAddr {
    let mut o = [0; 16];
    o.copy_from_slice(&b[at..at + 16]);
    IpAddr::V6(Ipv6Addr::from(o))
}

fn seq_adjust(b: &[u8], le: bool) -> SeqAdjust {
    let w = |i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    SeqAdjust {
        init_seq: w(0),
        delta: w(4),
        previous_delta: w(8),
    }
}

fn seq_data(b: &[u8], le: bool) -> SeqData {
    SeqData {
        in_seq: seq_adjust(&b[0..12], le),
        out_seq: seq_adjust(&b[12..24], le),
    }
}

/// The header of a datagram: sync id, version and record count, after the
/// size check. Lets a receiver filter by sync id before decoding records.
pub fn peek_header(bytes: &[u8]) -> Result<(u8, Version, u8), SyncError> {
    if bytes.len() < V0_HEADER_LEN {
        return Err(SyncError::Short(bytes.len()));
    }
    let size = be16(bytes, 2);
    if usize::from(size) != bytes.len() {
        return Err(SyncError::Size {
            header: size,
            len: bytes.len(),
        });
    }
    let v1 = bytes.len() >= V1_HEADER_LEN && bytes[5] == 1 && bytes[0] == 0 && be16(bytes, 6) == 0;
    if v1 {
        Ok((bytes[1], Version::V1, bytes[4]))
    } else {
        Ok((bytes[1], Version::V0, bytes[0]))
    }
}

/// Decodes a datagram (either version).
pub fn decode(bytes: &[u8]) -> Result<Message, SyncError> {
    let (sync_id, version, count) = peek_header(bytes)?;
    let mut msg = Message {
        sync_id,
        version,
        conns: Vec::with_capacity(usize::from(count)),
        dropped: 0,
        truncated: None,
    };
    match version {
        Version::V1 => decode_v1(bytes, count, &mut msg),
        Version::V0 => decode_v0(bytes, count, &mut msg),
    }
    Ok(msg)
}

fn decode_v0(b: &[u8], count: u8, msg: &mut Message) {
    let mut p = V0_HEADER_LEN;
    for i in 0..count {
        if p + V0_RECORD_LEN > b.len() {
            msg.truncated = Some(RecordError::TooShort(i));
            return;
        }
        let r = &b[p..p + V0_RECORD_LEN];
        let fl = u32::from(be16(r, 20));
        p += V0_RECORD_LEN;
        let seq = if fl & flags::SEQ_MASK != 0 {
            if p + SEQ_DATA_LEN > b.len() {
                msg.truncated = Some(RecordError::TooShort(i));
                return;
            }
            let s = seq_data(&b[p..p + SEQ_DATA_LEN], true);
            p += SEQ_DATA_LEN;
            Some(s)
        } else {
            None
        };
        msg.conns.push(SyncConn {
            proto: r[1],
            flags: fl,
            state: be16(r, 22),
            cport: be16(r, 2),
            vport: be16(r, 4),
            dport: be16(r, 6),
            caddr: v4(r, 8),
            vaddr: v4(r, 12),
            daddr: v4(r, 16),
            fwmark: 0,
            timeout: 0,
            seq,
            pe: None,
        });
    }
}

fn decode_v1(b: &[u8], count: u8, msg: &mut Message) {
    let end = b.len();
    let mut p = V1_HEADER_LEN;
    for i in 0..count {
        p = (p + 3) & !3;
        if p + V4_RECORD_LEN > end {
            msg.truncated = Some(RecordError::TooShort(i));
            return;
        }
        let ipv6 = b[p] & 1 != 0;
        if !ipv6 && b[p] != 0 {
            msg.truncated = Some(RecordError::Type(i));
            return;
        }
        let fixed = if ipv6 { V6_RECORD_LEN } else { V4_RECORD_LEN };
        let ver_size = be16(b, p + 2);
        let size = usize::from(ver_size & 0x0fff);
        if ver_size >> 12 != 0 || size < fixed {
            msg.truncated = Some(RecordError::Size(i));
            return;
        }
        if p + size > end {
            msg.truncated = Some(RecordError::TooShort(i));
            return;
        }
        let r = &b[p..p + size];
        p += size;
        match record_v1(r, ipv6, fixed, i) {
            Ok(Some(c)) => msg.conns.push(c),
            Ok(None) => msg.dropped += 1,
            Err(e) => {
                msg.truncated = Some(e);
                return;
            }
        }
    }
}

/// One record: `Ok(None)` drops just this record.
fn record_v1(r: &[u8], ipv6: bool, fixed: usize, i: u8) -> Result<Option<SyncConn>, RecordError> {
    let (caddr, vaddr, daddr) = if ipv6 {
        (v6(r, 24), v6(r, 40), v6(r, 56))
    } else {
        (v4(r, 24), v4(r, 28), v4(r, 32))
    };
    let mut seq = None;
    let mut pe_data: Option<&[u8]> = None;
    let mut pe_name: Option<&[u8]> = None;
    let mut keep = true;
    let mut q = fixed;
    while q < r.len() {
        if q + 2 > r.len() {
            return Err(RecordError::Option(i));
        }
        let (ty, len) = (r[q], usize::from(r[q + 1]));
        q += 2;
        if len == 0 || q + len > r.len() {
            return Err(RecordError::Option(i));
        }
        let data = &r[q..q + len];
        q += len;
        match ty & !OPT_F_PARAM {
            OPT_SEQ => {
                if len != SEQ_DATA_LEN || seq.is_some() {
                    return Err(RecordError::Option(i));
                }
                seq = Some(seq_data(data, false));
            }
            OPT_PE_DATA => {
                if pe_data.is_some() {
                    return Err(RecordError::Option(i));
                }
                pe_data = Some(data);
            }
            OPT_PE_NAME => {
                if pe_name.is_some() || len > MAX_PE_NAME {
                    return Err(RecordError::Option(i));
                }
                pe_name = Some(data);
            }
            _ if ty & OPT_F_PARAM != 0 => {}
            _ => keep = false,
        }
    }
    let pe = match (pe_data, pe_name) {
        (None, None) => None,
        (Some(d), Some(n)) => Some(PeData {
            name: n.to_vec(),
            data: d.to_vec(),
        }),
        // Data without a name (or the reverse): the engine is unknown.
        _ => return Ok(None),
    };
    if !keep {
        return Ok(None);
    }
    Ok(Some(SyncConn {
        proto: r[1],
        flags: be32(r, 4),
        state: be16(r, 8),
        cport: be16(r, 10),
        vport: be16(r, 12),
        dport: be16(r, 14),
        fwmark: be32(r, 16),
        timeout: be32(r, 20),
        caddr,
        vaddr,
        daddr,
        seq,
        pe,
    }))
}

#[cfg(test)]
mod tests;
