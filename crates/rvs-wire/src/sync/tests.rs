use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn example_conn() -> SyncConn {
    SyncConn {
        proto: 6,
        flags: 0x83,
        state: 1,
        caddr: "192.0.2.10".parse().unwrap(),
        cport: 40000,
        vaddr: "198.51.100.1".parse().unwrap(),
        vport: 80,
        daddr: "10.0.0.11".parse().unwrap(),
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe: None,
    }
}

const EXAMPLE: &str = "00 01 00 2c 01 01 00 00
    00 06 00 24 00 00 00 83 00 01 9c 40 00 50 00 50
    00 00 00 00 00 00 03 84
    c0 00 02 0a c6 33 64 01 0a 00 00 0b";

#[test]
fn worked_example_44_bytes() {
    let bytes = encode_v1(1, &[example_conn()], DEFAULT_MAXLEN_V4).unwrap();
    assert_eq!(bytes, hex(EXAMPLE));
    assert_eq!(bytes.len(), 44);
    let msg = decode(&bytes).unwrap();
    assert_eq!(
        msg,
        Message {
            sync_id: 1,
            version: Version::V1,
            conns: vec![example_conn()],
            dropped: 0,
            truncated: None,
        }
    );
}

#[test]
fn hashed_flag_is_never_sent() {
    let mut c = example_conn();
    c.flags |= flags::HASHED;
    assert_eq!(encode_v1(1, &[c], 1472).unwrap(), hex(EXAMPLE));
}

#[test]
fn template_follows_the_connection() {
    let mut t = example_conn();
    t.cport = 0;
    t.flags = 0x1183;
    t.timeout = 360;
    let bytes = encode_v1(1, &[example_conn(), t.clone()], 1472).unwrap();
    assert_eq!(bytes.len(), 8 + 36 + 36);
    assert_eq!(&bytes[44..48], &[0, 6, 0, 0x24]);
    assert_eq!(&bytes[48..52], &[0, 0, 0x11, 0x83]);
    assert_eq!(decode(&bytes).unwrap().conns, vec![example_conn(), t]);
}

fn v6_with_seq() -> SyncConn {
    SyncConn {
        proto: 6,
        flags: 0x0600,
        state: 1,
        caddr: "2001:db8::10".parse().unwrap(),
        cport: 40000,
        vaddr: "2001:db8::1".parse().unwrap(),
        vport: 21,
        daddr: "2001:db8:1::11".parse().unwrap(),
        dport: 21,
        fwmark: 7,
        timeout: 900,
        seq: Some(SeqData {
            in_seq: SeqAdjust {
                init_seq: 1,
                delta: 2,
                previous_delta: 3,
            },
            out_seq: SeqAdjust {
                init_seq: 4,
                delta: 5,
                previous_delta: 6,
            },
        }),
        pe: None,
    }
}

#[test]
fn ipv6_record_with_seq_is_98_bytes_and_the_next_is_padded() {
    let a = v6_with_seq();
    assert_eq!(record_len(&a), Ok(98));
    let bytes = encode_v1(3, &[a.clone(), example_conn()], 1452).unwrap();
    // Header 8, record 98 (ends at 106), 2 pad bytes, record 36.
    assert_eq!(bytes.len(), 8 + 98 + 2 + 36);
    assert_eq!(&bytes[106..108], &[0, 0]);
    assert_eq!(bytes[108 + 3], 36);
    assert_eq!(bytes[8], 1, "IPv6 type");
    assert_eq!(&bytes[8 + 72..8 + 74], &[1, 24], "SEQ option header");
    assert_eq!(&bytes[8 + 74..8 + 78], &[0, 0, 0, 1], "big-endian init_seq");
    assert_eq!(decode(&bytes).unwrap().conns, vec![a, example_conn()]);
}

#[test]
fn builder_stops_at_maxlen_and_255_records() {
    // 8 + 40 * n (36-byte records padded to 4: no padding needed).
    let mut b = MessageBuilder::new(0, 8 + 36 * 3);
    assert_eq!(b.push(&example_conn()), Ok(true));
    assert_eq!(b.push(&example_conn()), Ok(true));
    assert_eq!(b.push(&example_conn()), Ok(true));
    assert_eq!(b.push(&example_conn()), Ok(false));
    assert_eq!(b.finish().len(), 8 + 36 * 3);
    let mut b = MessageBuilder::new(0, 65535);
    for _ in 0..255 {
        assert_eq!(b.push(&example_conn()), Ok(true));
    }
    assert_eq!(b.push(&example_conn()), Ok(false));
    assert_eq!(decode(b.finish()).unwrap().conns.len(), 255);
    let mut small = MessageBuilder::new(0, 40);
    assert_eq!(small.push(&example_conn()), Err(EncodeError::TooLarge));
    assert!(small.is_empty());
    let mut mixed = example_conn();
    mixed.daddr = "2001:db8::1".parse().unwrap();
    assert_eq!(
        MessageBuilder::new(0, 1472).push(&mixed),
        Err(EncodeError::MixedFamily)
    );
}

#[test]
fn builder_clear_reuses_the_header() {
    let mut b = MessageBuilder::new(9, 1472);
    b.push(&example_conn()).unwrap();
    b.finish();
    b.clear();
    b.push(&example_conn()).unwrap();
    let mut want = hex(EXAMPLE);
    want[1] = 9;
    assert_eq!(b.finish(), want.as_slice());
}

#[test]
fn persistence_engine_options() {
    let mut c = example_conn();
    c.proto = 17;
    c.pe = Some(PeData {
        name: b"sip".to_vec(),
        data: b"call-id-1@example".to_vec(),
    });
    let bytes = encode_v1(1, &[c.clone()], 1472).unwrap();
    assert_eq!(decode(&bytes).unwrap().conns, vec![c.clone()]);
    c.pe = Some(PeData {
        name: vec![b'x'; 17],
        data: vec![1],
    });
    assert_eq!(record_len(&c), Err(EncodeError::PeLength));
}

#[test]
fn header_refusals() {
    assert_eq!(decode(&[0, 1, 0]), Err(SyncError::Short(3)));
    let mut b = hex(EXAMPLE);
    b[3] = 45;
    assert_eq!(
        decode(&b),
        Err(SyncError::Size {
            header: 45,
            len: 44
        })
    );
}

#[test]
fn record_errors_drop_the_rest_or_the_record() {
    let two = encode_v1(1, &[example_conn(), example_conn()], 1472).unwrap();
    // Second record's type byte with a stray bit: rest dropped, first kept.
    let mut b = two.clone();
    b[44] = 0x02;
    let m = decode(&b).unwrap();
    assert_eq!(m.conns.len(), 1);
    assert_eq!(m.truncated, Some(RecordError::Type(1)));
    // Record version nibble set.
    let mut b = two.clone();
    b[8 + 2] = 0x10;
    let m = decode(&b).unwrap();
    assert!(m.conns.is_empty());
    assert_eq!(m.truncated, Some(RecordError::Size(0)));
    // Count says three: the third runs past the end.
    let mut b = two.clone();
    b[4] = 3;
    let m = decode(&b).unwrap();
    assert_eq!(m.conns.len(), 2);
    assert_eq!(m.truncated, Some(RecordError::TooShort(2)));
    // An unknown mandatory option drops that record only; with the
    // "optional" bit it is skipped.
    let mut c = hex(EXAMPLE);
    c[3] = 48;
    c[8 + 3] = 40;
    c.extend_from_slice(&[9, 2, 0xaa, 0xbb]);
    let m = decode(&c).unwrap();
    assert_eq!((m.conns.len(), m.dropped, m.truncated), (0, 1, None));
    c[44] = 9 | 0x40;
    let m = decode(&c).unwrap();
    assert_eq!(m.conns, vec![example_conn()]);
    // Zero-length option: rest dropped.
    c[45] = 0;
    assert_eq!(decode(&c).unwrap().truncated, Some(RecordError::Option(0)));
}

#[test]
fn version_0_message() {
    let mut c = example_conn();
    c.fwmark = 0;
    c.timeout = 0;
    let bytes = encode_v0(2, &[c.clone()]).unwrap();
    assert_eq!(
        bytes,
        hex("01 02 00 1c 00 06 9c 40 00 50 00 50 c0 00 02 0a c6 33 64 01 0a 00 00 0b 00 83 00 01")
    );
    let m = decode(&bytes).unwrap();
    assert_eq!(m.version, Version::V0);
    assert_eq!(m.sync_id, 2);
    assert_eq!(m.conns, vec![c]);
    // Sequence data follows in the sender's (little-endian) order.
    let mut s = example_conn();
    s.flags = 0x0403;
    s.timeout = 0;
    s.seq = Some(SeqData {
        in_seq: SeqAdjust {
            init_seq: 0x0102_0304,
            delta: 0,
            previous_delta: 0,
        },
        out_seq: SeqAdjust::default(),
    });
    let bytes = encode_v0(2, &[s.clone(), s.clone()]).unwrap();
    assert_eq!(bytes.len(), 4 + 2 * 48);
    assert_eq!(&bytes[28..32], &[4, 3, 2, 1]);
    assert_eq!(decode(&bytes).unwrap().conns, vec![s.clone(), s]);
    assert_eq!(encode_v0(0, &[v6_with_seq()]), Err(EncodeError::V0Ipv6));
}

fn arb_addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    any::<u128>().prop_map(move |r| {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(r))
        } else {
            IpAddr::V4(Ipv4Addr::from(r as u32))
        }
    })
}

fn arb_seq() -> impl Strategy<Value = SeqData> {
    any::<[u32; 6]>().prop_map(|w| SeqData {
        in_seq: SeqAdjust {
            init_seq: w[0],
            delta: w[1],
            previous_delta: w[2],
        },
        out_seq: SeqAdjust {
            init_seq: w[3],
            delta: w[4],
            previous_delta: w[5],
        },
    })
}

fn arb_conn() -> impl Strategy<Value = SyncConn> {
    any::<bool>().prop_flat_map(|v6| {
        (
            (any::<u8>(), any::<u32>(), any::<u16>()),
            (arb_addr(v6), arb_addr(v6), arb_addr(v6)),
            any::<[u16; 3]>(),
            (any::<u32>(), any::<u32>()),
            proptest::option::of(arb_seq()),
            proptest::option::of((
                proptest::collection::vec(any::<u8>(), 1..=MAX_PE_NAME),
                proptest::collection::vec(any::<u8>(), 1..=MAX_PE_DATA),
            )),
        )
            .prop_map(
                |((proto, fl, state), (caddr, vaddr, daddr), ports, (fwmark, timeout), seq, pe)| {
                    SyncConn {
                        proto,
                        flags: fl & !flags::HASHED,
                        state,
                        caddr,
                        cport: ports[0],
                        vaddr,
                        vport: ports[1],
                        daddr,
                        dport: ports[2],
                        fwmark,
                        timeout,
                        seq,
                        pe: pe.map(|(name, data)| PeData { name, data }),
                    }
                },
            )
    })
}

proptest! {
    #[test]
    fn v1_round_trip(sync_id: u8, conns in proptest::collection::vec(arb_conn(), 0..40)) {
        let bytes = encode_v1(sync_id, &conns, 65535).unwrap();
        let m = decode(&bytes).unwrap();
        prop_assert_eq!(m, Message { sync_id, version: Version::V1, conns, dropped: 0, truncated: None });
    }

    #[test]
    fn v0_round_trip(sync_id: u8, conns in proptest::collection::vec(arb_conn(), 1..40)) {
        let conns: Vec<SyncConn> = conns.into_iter().map(|mut c| {
            c.caddr = IpAddr::V4(Ipv4Addr::from(c.cport as u32 * 7));
            c.vaddr = IpAddr::V4(Ipv4Addr::from(c.vport as u32 * 11));
            c.daddr = IpAddr::V4(Ipv4Addr::from(c.dport as u32 * 13));
            c.flags &= 0xffff;
            c.fwmark = 0;
            c.timeout = 0;
            c.pe = None;
            if c.flags & flags::SEQ_MASK == 0 { c.seq = None } else if c.seq.is_none() { c.seq = Some(SeqData::default()) }
            c
        }).collect();
        let bytes = encode_v0(sync_id, &conns).unwrap();
        // A v0 message whose first record count byte happens to read as a v1
        // header is impossible: nr_conns >= 1 makes byte 0 non-zero.
        let m = decode(&bytes).unwrap();
        prop_assert_eq!(m, Message { sync_id, version: Version::V0, conns, dropped: 0, truncated: None });
    }

    #[test]
    fn builder_never_exceeds_maxlen(maxlen in 44usize..3000, conns in proptest::collection::vec(arb_conn(), 1..60)) {
        let mut b = MessageBuilder::new(0, maxlen);
        let mut pushed = Vec::new();
        for c in &conns {
            match b.push(c) {
                Ok(true) => pushed.push(c.clone()),
                Ok(false) => break,
                Err(_) => {}
            }
        }
        let bytes = b.finish().to_vec();
        prop_assert!(bytes.len() <= maxlen);
        prop_assert_eq!(decode(&bytes).unwrap().conns, pushed);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_with_consistent_size(mut bytes in proptest::collection::vec(any::<u8>(), 8..1500), v1: bool) {
        let n = bytes.len() as u16;
        bytes[2..4].copy_from_slice(&n.to_be_bytes());
        if v1 {
            bytes[0] = 0;
            bytes[5] = 1;
            bytes[6] = 0;
            bytes[7] = 0;
        }
        let _ = decode(&bytes);
    }
}
