//! Malformed and truncated frames are dropped with the right counter;
//! fragments are dropped and counted when they are for a VIP; SCTP is
//! forwarded with its CRC32c kept right.

mod common;

use common::*;
use rvs_core::model::{Forward, Protocol};
use rvs_forward::{DropReason, Verdict};

fn fw() -> rvs_forward::Forwarder {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 8080, Forward::Masq),
    );
    service(
        &mut fw,
        key(Protocol::Udp, VIP4, 53),
        dest(RS4, 53, Forward::Masq),
    );
    service(
        &mut fw,
        key(Protocol::Tcp, VIP6, 80),
        dest(RS6, 80, Forward::Route),
    );
    fw
}

/// A client's IPv6 SYN to VIP6:80 with one byte of payload.
fn syn6() -> Vec<u8> {
    tcp_frame(
        (CLIENT6, 1),
        (VIP6, 80),
        Tcp::Syn,
        b"x",
        (ROUTER_MAC, DIRECTOR_MAC),
    )
}

fn fix_ipv4_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let c = rvs_forward::checksum_fold(rvs_forward::checksum_sum(0, &f[14..14 + ihl]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[track_caller]
fn dropped(f: &[u8], why: DropReason) {
    let mut fw = fw();
    let (v, _) = run(&mut fw, f, CLIENT_IF, 0);
    assert_eq!(v, Verdict::Drop(why));
    assert_eq!(fw.counters().dropped(why), 1);
    assert_eq!(fw.counters().dropped_total(), 1);
    assert!(fw.director().connections().is_empty(), "nothing scheduled");
}

#[test]
fn malformed_ipv4_frames() {
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    dropped(&syn[..10], DropReason::Truncated);
    dropped(&syn[..14 + 12], DropReason::Truncated);
    let mut f = syn.clone();
    f[14] = 0x55; // version 5
    dropped(&f, DropReason::BadIpHeader);
    let mut f = syn.clone();
    f[14] = 0x44; // IHL 4
    fix_ipv4_checksum(&mut f);
    dropped(&f, DropReason::BadIpHeader);
    let mut f = syn.clone();
    f[16..18].copy_from_slice(&2000u16.to_be_bytes()); // longer than the frame
    fix_ipv4_checksum(&mut f);
    dropped(&f, DropReason::Truncated);
    let mut f = syn.clone();
    f[16..18].copy_from_slice(&10u16.to_be_bytes()); // shorter than its header
    fix_ipv4_checksum(&mut f);
    dropped(&f, DropReason::BadIpHeader);
    let mut f = syn.clone();
    f[24] ^= 0xff;
    dropped(&f, DropReason::BadIpChecksum);
    // TCP header cut: the IP packet holds 10 bytes of it.
    let mut f = syn[..14 + 20 + 10].to_vec();
    f[16..18].copy_from_slice(&30u16.to_be_bytes());
    fix_ipv4_checksum(&mut f);
    dropped(&f, DropReason::Truncated);
    // TCP data offset beyond the segment.
    let mut f = syn.clone();
    f[14 + 20 + 12] = 0xf0;
    dropped(&f, DropReason::Truncated);
    // UDP length beyond the segment.
    let mut u = udp_frame(
        (CLIENT4, 5000),
        (VIP4, 53),
        b"q",
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    u[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&100u16.to_be_bytes());
    dropped(&u, DropReason::Truncated);
}

#[test]
fn malformed_ipv6_frames() {
    let syn = syn6();
    dropped(&syn[..14 + 39], DropReason::Truncated);
    let mut f = syn.clone();
    f[14 + 4..14 + 6].copy_from_slice(&1000u16.to_be_bytes());
    dropped(&f, DropReason::Truncated);
    let mut f = syn.clone();
    f[14 + 4..14 + 6].copy_from_slice(&0u16.to_be_bytes());
    dropped(&f, DropReason::BadIpHeader);
    // A hop-by-hop header that claims more than the packet holds.
    let mut f = syn[..14 + 40].to_vec();
    f[14 + 6] = 0; // next header: hop-by-hop
    f[14 + 4..14 + 6].copy_from_slice(&8u16.to_be_bytes());
    f.extend_from_slice(&[6, 5, 0, 0, 0, 0, 0, 0]);
    dropped(&f, DropReason::Truncated);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    // A destination-options header before TCP is fine.
    let syn = syn6();
    let mut f = syn[..14 + 40].to_vec();
    let tcp = &syn[14 + 40..];
    f[14 + 6] = 60;
    f[14 + 4..14 + 6].copy_from_slice(&((8 + tcp.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // PadN option
    f.extend_from_slice(tcp);
    let mut fw = fw();
    let out = sent(run(&mut fw, &f, CLIENT_IF, 0), SERVER_IF);
    assert_eq!(&out[0..6], &RS6_MAC);
    assert_eq!(&out[14 + 40..14 + 48], &[6, 0, 1, 4, 0, 0, 0, 0]);
}

#[test]
fn fragments_for_a_vip_are_dropped_and_counted_others_passed() {
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    for (flags, name) in [
        ([0x20u8, 0], "more fragments"),
        ([0x00, 0x10], "offset 128"),
    ] {
        let mut f = syn.clone();
        f[20..22].copy_from_slice(&flags);
        fix_ipv4_checksum(&mut f);
        let mut fw = fw();
        assert_eq!(
            run(&mut fw, &f, CLIENT_IF, 0).0,
            Verdict::Drop(DropReason::Fragment),
            "{name}"
        );
        assert_eq!(fw.counters().dropped(DropReason::Fragment), 1);
        // The same fragment for another address is the host's.
        let mut g = from_client(CLIENT4, 40000, DIRECTOR4, 80, Tcp::Syn);
        g[20..22].copy_from_slice(&flags);
        fix_ipv4_checksum(&mut g);
        assert_eq!(run(&mut fw, &g, CLIENT_IF, 0).0, Verdict::Pass);
    }
    // IPv6 Fragment header.
    let syn6 = syn6();
    let tcp = &syn6[14 + 40..];
    let mut f = syn6[..14 + 40].to_vec();
    f[14 + 6] = 44;
    f[14 + 4..14 + 6].copy_from_slice(&((8 + tcp.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]); // offset 0, M=1
    f.extend_from_slice(tcp);
    let mut fw = fw();
    assert_eq!(
        run(&mut fw, &f, CLIENT_IF, 0).0,
        Verdict::Drop(DropReason::Fragment)
    );
}

#[test]
fn output_buffer_too_small_is_counted() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS4, 80, Forward::Tunnel(Default::default())),
    );
    let syn = from_client(CLIENT4, 40000, VIP4, 80, Tcp::Syn);
    let mut out = vec![0u8; syn.len()];
    let v = fw.process(&syn, &meta(CLIENT_IF), &mut out, &table(), 0);
    assert_eq!(v, Verdict::Drop(DropReason::OutputTooSmall));
    assert_eq!(fw.counters().dropped(DropReason::OutputTooSmall), 1);
}

/// Bitwise CRC32c, independent of the forwarder's table-driven one.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An SCTP INIT frame with a right CRC32c.
fn sctp_init(src: (&str, u16), dst: (&str, u16)) -> Vec<u8> {
    let mut sctp = Vec::new();
    sctp.extend_from_slice(&src.1.to_be_bytes());
    sctp.extend_from_slice(&dst.1.to_be_bytes());
    sctp.extend_from_slice(&[0, 0, 0, 0]); // verification tag 0 on INIT
    sctp.extend_from_slice(&[0, 0, 0, 0]); // CRC
    sctp.extend_from_slice(&[1, 0, 0, 20]); // INIT, length 20
    sctp.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
    let crc = crc32c(&sctp);
    sctp[8..12].copy_from_slice(&crc.to_le_bytes());
    let mut ipv4 = etherparse::Ipv4Header::new(
        sctp.len() as u16,
        64,
        etherparse::IpNumber(132),
        v4(src.0),
        v4(dst.0),
    )
    .unwrap();
    ipv4.header_checksum = ipv4.calc_header_checksum();
    let mut f = Vec::new();
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    ipv4.write(&mut f).unwrap();
    f.extend_from_slice(&sctp);
    f
}

#[test]
fn sctp_nat_rewrites_ports_and_keeps_the_crc() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Sctp, VIP4, 3868),
        dest(RS4, 3869, Forward::Masq),
    );
    let init = sctp_init((CLIENT4, 5000), (VIP4, 3868));
    let out = sent(run(&mut fw, &init, CLIENT_IF, 0), SERVER_IF);
    assert_eq!(&out[30..34], &v4(RS4));
    let sctp = &out[34..];
    assert_eq!(&sctp[2..4], &3869u16.to_be_bytes());
    let mut z = sctp.to_vec();
    z[8..12].copy_from_slice(&[0; 4]);
    assert_eq!(&sctp[8..12], &crc32c(&z).to_le_bytes(), "CRC32c");
    assert!(csum_ok(&out[14..34], 0));
    let c = fw.director().connections();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].proto, 132);
}

#[test]
fn sctp_dr_with_partial_crc_gets_it_finished() {
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Sctp, VIP4, 3868),
        dest(RS4, 3868, Forward::Route),
    );
    let mut init = sctp_init((CLIENT4, 5000), (VIP4, 3868));
    init[34 + 8..34 + 12].copy_from_slice(&[0; 4]);
    let m = rvs_forward::RxMeta {
        iface: CLIENT_IF,
        csum_not_ready: true,
        fwmark: 0,
    };
    let (v, out) = run_meta(&mut fw, &init, &m, &table(), 0);
    assert!(
        matches!(
            v,
            Verdict::Forward {
                iface: SERVER_IF,
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(&out[0..6], &RS_MAC);
    let mut z = out[34..].to_vec();
    z[8..12].copy_from_slice(&[0; 4]);
    assert_eq!(&out[34 + 8..34 + 12], &crc32c(&z).to_le_bytes());
    assert_eq!(
        &out[34..34 + 8],
        &init[34..34 + 8],
        "ports and tag unchanged"
    );
}
