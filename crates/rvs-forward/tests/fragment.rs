//! IPv4 packets without DF that no longer fit the route's MTU are cut into
//! fragments as the kernel cuts them: NAT and DR fragment the packet
//! itself, TUN the outer packet; DF packets and IPv6 keep their ICMP path.
//! Every fragment's bytes are checked, and reassembling them gives back
//! the packet as it would have left whole.

mod common;

use common::*;
use rvs_core::model::{Forward, Protocol, Tunnel};
use rvs_forward::{DropReason, ForwarderConfig, Fragments, Verdict};

/// Client → VIP4:80, a SYN carrying `n` bytes, without DF.
fn big(n: usize) -> Vec<u8> {
    let mut f = tcp_frame(
        (CLIENT4, 40000),
        (VIP4, 80),
        Tcp::Syn,
        &(0..n).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    set_df(&mut f, false);
    f
}

fn with(forward: Forward, pmtu_disc: bool) -> rvs_forward::Forwarder {
    let mut fw = rvs_forward::Forwarder::new(ForwarderConfig {
        pmtu_disc,
        ..ForwarderConfig::default()
    });
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(
            RS4,
            if forward == Forward::Masq { 8080 } else { 80 },
            forward,
        ),
    );
    fw
}

fn mtu_to(dst: &str, mtu: u16) -> Table {
    let mut t = table();
    t.hops.get_mut(&ip(dst)).unwrap().mtu = mtu;
    t
}

/// Checks that `frags` are the fragments of the whole frame `whole`: same
/// Ethernet header, each header the whole packet's but for total length,
/// flags, offset and checksum (the later ones with uncopied options blanked
/// as `later_header` says), DF clear, MF on all but the last, offsets
/// contiguous; returns the reassembled IP payload.
#[track_caller]
fn reassemble(whole: &[u8], frags: &[Vec<u8>], later_header: &[u8]) -> Vec<u8> {
    let ihl = usize::from(whole[14] & 0x0f) * 4;
    let mut payload = Vec::new();
    for (k, f) in frags.iter().enumerate() {
        assert_eq!(&f[..14], &whole[..14], "fragment {k}: Ethernet header");
        let h = &f[14..14 + ihl];
        assert_eq!(h[0], whole[14], "fragment {k}: version and IHL");
        assert_eq!(
            usize::from(u16::from_be_bytes([h[2], h[3]])),
            f.len() - 14,
            "fragment {k}: total length"
        );
        assert!(csum_ok(h, 0), "fragment {k}: header checksum");
        let flags = u16::from_be_bytes([h[6], h[7]]);
        assert_eq!(flags & 0x4000, 0, "fragment {k}: DF clear");
        assert_eq!(flags & 0x8000, 0, "fragment {k}: reserved bit clear");
        let last = k + 1 == frags.len();
        assert_eq!(flags & 0x2000 != 0, !last, "fragment {k}: MF");
        assert_eq!(
            usize::from(flags & 0x1fff) * 8,
            payload.len(),
            "fragment {k}: offset"
        );
        if !last {
            assert_eq!((f.len() - 14 - ihl) % 8, 0, "fragment {k}: 8-byte multiple");
        }
        // Identification, TOS, TTL, protocol, addresses: the packet's.
        let model = if k == 0 {
            &whole[14..14 + ihl]
        } else {
            later_header
        };
        assert_eq!(&h[1..2], &model[1..2], "fragment {k}: TOS");
        assert_eq!(&h[4..6], &model[4..6], "fragment {k}: identification");
        assert_eq!(&h[8..10], &model[8..10], "fragment {k}: TTL, protocol");
        assert_eq!(&h[12..], &model[12..], "fragment {k}: addresses, options");
        payload.extend_from_slice(&f[14 + ihl..]);
    }
    payload
}

#[test]
fn dr_fragments_the_packet_itself() {
    let mut fw = with(Forward::Route, true);
    let frame = big(1200);
    let t = mtu_to(RS4, 1000);
    let (whole, frags) = fragmented(
        run_meta(&mut fw, &frame, &meta(CLIENT_IF), &t, 0),
        SERVER_IF,
        1000,
    );
    // 1240 bytes of IP packet: 976 (the largest multiple of 8 under
    // 1000 - 20) and 244.
    assert_eq!(frags.len(), 2);
    assert_eq!(frags[0].len(), 14 + 20 + 976);
    assert_eq!(frags[1].len(), 14 + 20 + 244);
    assert_eq!(&frags[0][14 + 6..14 + 8], &[0x20, 0x00], "MF, offset 0");
    assert_eq!(&frags[1][14 + 6..14 + 8], &[0x00, 122], "offset 976 / 8");
    assert_eq!(&frags[0][..6], &RS_MAC);
    assert_eq!(frags[0][14 + 8], 63, "TTL decremented");
    // The whole frame is the DR packet; reassembled, the payload is the
    // client's TCP segment byte for byte.
    parse_checked(&whole);
    let payload = reassemble(&whole, &frags, &whole[14..34]);
    assert_eq!(payload, &frame[34..]);
    let c = fw.counters();
    assert_eq!((c.forwarded_in, c.fragmented, c.dropped_total()), (1, 1, 0));
}

#[test]
fn nat_fragments_the_rewritten_packet_into_many() {
    let mut fw = with(Forward::Masq, true);
    let frame = big(1400);
    let t = mtu_to(RS4, 576);
    let (whole, frags) = fragmented(
        run_meta(&mut fw, &frame, &meta(CLIENT_IF), &t, 0),
        SERVER_IF,
        576,
    );
    // 1420 bytes of TCP: 552, 552, 316.
    let sizes: Vec<usize> = frags.iter().map(|f| f.len() - 34).collect();
    assert_eq!(sizes, [552, 552, 316]);
    let p = parse_checked(&whole);
    assert_eq!((p.dst, p.dport), (ip(RS4), 8080));
    let payload = reassemble(&whole, &frags, &whole[14..34]);
    assert_eq!(payload, &whole[34..]);
    // The rewritten segment's checksum holds over the reassembled bytes.
    let mut ps = rvs_forward::checksum_sum(0, &v4(CLIENT4));
    ps = rvs_forward::checksum_sum(ps, &v4(RS4));
    ps += 6 + payload.len() as u32;
    assert!(
        csum_ok(&payload, ps),
        "TCP checksum of the reassembled segment"
    );
    assert_eq!(&payload[2..4], &8080u16.to_be_bytes());
    assert_eq!(&payload[20..], &frame[54..], "data untouched");

    // The server's reply, too big for the client's route, is translated
    // and fragmented the same way.
    let mut reply = tcp_frame(
        (RS4, 8080),
        (CLIENT4, 40000),
        Tcp::SynAck,
        &[0x5a; 1000],
        (RS_MAC, DIRECTOR_MAC),
    );
    set_df(&mut reply, false);
    let t = mtu_to(CLIENT4, 600);
    let (whole, frags) = fragmented(
        run_meta(&mut fw, &reply, &meta(SERVER_IF), &t, 1),
        CLIENT_IF,
        600,
    );
    let p = parse_checked(&whole);
    assert_eq!((p.src, p.sport), (ip(VIP4), 80));
    assert_eq!(frags.len(), 2);
    assert_eq!(&frags[0][..6], &ROUTER_MAC);
    assert_eq!(reassemble(&whole, &frags, &whole[14..34]), &whole[34..]);
    let c = fw.counters();
    assert_eq!((c.forwarded_in, c.forwarded_out, c.fragmented), (1, 1, 2));
}

#[test]
fn tun_fragments_the_outer_packet() {
    let mut fw = with(Forward::Tunnel(Tunnel::default()), true);
    let frame = big(1460);
    // 1500 of inner packet + 20 of outer header over a 1500-byte route.
    let (whole, frags) = fragmented(run(&mut fw, &frame, CLIENT_IF, 0), SERVER_IF, 1500);
    let outer = &whole[14..34];
    assert_eq!((outer[9], outer[8]), (4, 63), "IPIP, inner TTL less one");
    assert_eq!(&outer[12..16], &v4(DIRECTOR4));
    assert_eq!(&outer[16..20], &v4(RS4));
    assert_ne!(&outer[4..6], &[0, 0], "an identification to reassemble by");
    assert_eq!(frags.len(), 2);
    assert_eq!(frags[0].len(), 14 + 20 + 1480);
    assert_eq!(frags[1].len(), 14 + 20 + 20);
    let inner = reassemble(&whole, &frags, outer);
    // The reassembled payload is the client's packet, TTL one less.
    assert_eq!(inner, &whole[34..]);
    assert_eq!(inner.len(), frame.len() - 14);
    assert_eq!(&inner[20..], &frame[34..]);
    assert_eq!(inner[8], 63);
}

#[test]
fn tun_with_pmtu_disc_off_fragments_df_packets() {
    let mut fw = with(Forward::Tunnel(Tunnel::default()), false);
    let mut frame = big(1460);
    set_df(&mut frame, true);
    let (whole, frags) = fragmented(run(&mut fw, &frame, CLIENT_IF, 0), SERVER_IF, 1500);
    assert_eq!(
        whole[14 + 6] & 0x40,
        0x40,
        "the whole outer packet copies DF"
    );
    assert_ne!(&whole[18..20], &[0, 0], "but gets an identification");
    let inner = reassemble(&whole, &frags, &whole[14..34]);
    assert_eq!(&inner[20..], &frame[34..]);
    assert_eq!(fw.counters().icmp_sent, 0);
    // With pmtu_disc on, the same packet is answered.
    let mut fw = with(Forward::Tunnel(Tunnel::default()), true);
    replied(run(&mut fw, &frame, CLIENT_IF, 0), CLIENT_IF);
}

#[test]
fn df_and_ipv6_keep_their_icmp_path() {
    let mut fw = with(Forward::Route, true);
    let mut frame = big(1200);
    set_df(&mut frame, true);
    let t = mtu_to(RS4, 1000);
    replied(
        run_meta(&mut fw, &frame, &meta(CLIENT_IF), &t, 0),
        CLIENT_IF,
    );
    assert_eq!(fw.counters().fragmented, 0);
    // IPv4 without DF over an IPv6 tunnel: the outer packet would need an
    // IPv6 Fragment header; dropped and counted.
    let mut fw = forwarder();
    service(
        &mut fw,
        key(Protocol::Tcp, VIP4, 80),
        dest(RS6, 80, Forward::Tunnel(Tunnel::default())),
    );
    let frame = big(1460);
    assert_eq!(
        run(&mut fw, &frame, CLIENT_IF, 0).0,
        Verdict::Drop(DropReason::TooBig)
    );
    assert_eq!(fw.counters().dropped(DropReason::TooBig), 1);
}

/// `frame` with `opts` (a multiple of 4 bytes) after its IPv4 header.
fn with_options(frame: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut f = frame[..34].to_vec();
    f.extend_from_slice(opts);
    f.extend_from_slice(&frame[34..]);
    let ihl = 20 + opts.len();
    f[14] = 0x40 | (ihl / 4) as u8;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    set_df(&mut f, false);
    f
}

#[test]
fn options_go_whole_into_the_first_fragment_and_copied_ones_into_all() {
    // Record route (7, copy flag clear, 7 bytes), NOP, router alert
    // (0x94, copy flag set, 4 bytes).
    let opts = [7, 7, 4, 0, 0, 0, 0, 1, 0x94, 4, 0, 0];
    let frame = with_options(&big(1000), &opts);
    let mut fw = with(Forward::Route, true);
    let t = mtu_to(RS4, 500);
    let (whole, frags) = fragmented(
        run_meta(&mut fw, &frame, &meta(CLIENT_IF), &t, 0),
        SERVER_IF,
        500,
    );
    // 32-byte headers: 464 payload bytes a fragment (500 - 32 = 468).
    assert!(frags.iter().all(|f| f[14] == 0x48));
    let sizes: Vec<usize> = frags.iter().map(|f| f.len() - 14 - 32).collect();
    assert_eq!(sizes, [464, 464, 92]);
    assert_eq!(&frags[0][34..46], &opts);
    for f in &frags[1..] {
        assert_eq!(&f[34..46], &[1, 1, 1, 1, 1, 1, 1, 1, 0x94, 4, 0, 0]);
    }
    let mut later = whole[14..46].to_vec();
    later[20..27].fill(1);
    let payload = reassemble(&whole, &frags, &later);
    assert_eq!(payload, &frame[46..]);

    // Options that cannot be walked are not cut: dropped as a bad header.
    let bad = with_options(&big(1000), &[0x44, 1, 0, 0]);
    assert_eq!(
        run_meta(&mut fw, &bad, &meta(CLIENT_IF), &t, 1).0,
        Verdict::Drop(DropReason::BadIpHeader)
    );
}

#[test]
fn fragments_api_edges() {
    // A packet that fits is one frame, as it is (Ethernet padding left).
    let mut frame = big(100);
    let len = frame.len();
    frame.extend_from_slice(&[0; 6]);
    let frags = cut(&frame, 1500);
    assert_eq!(frags, [frame[..len].to_vec()]);
    // A buffer too short writes nothing and keeps the fragment for later.
    let frame = big(1200);
    let mut f = Fragments::new(&frame, 1000).unwrap();
    assert_eq!(f.count(), 2);
    let mut small = vec![0u8; 100];
    assert_eq!(f.next_into(&mut small), None);
    let mut buf = vec![0u8; f.max_frame_len()];
    assert_eq!(f.max_frame_len(), 14 + 20 + 976);
    assert_eq!(f.next_into(&mut buf), Some(14 + 20 + 976));
    assert_eq!(f.next_into(&mut buf), Some(14 + 20 + 244));
    assert_eq!(f.next_into(&mut buf), None);
    // Not IPv4, truncated, or an MTU that leaves no 8 bytes: no fragments.
    let six = udp_frame(
        (CLIENT6, 1),
        (VIP6, 2),
        &[0; 10],
        (ROUTER_MAC, DIRECTOR_MAC),
    );
    assert!(Fragments::new(&six, 1280).is_none());
    assert!(Fragments::new(&frame[..100], 1000).is_none());
    assert!(Fragments::new(&frame, 27).is_none());
    assert!(Fragments::new(&frame, 28).is_some());
    // A fragment of a fragment keeps its place: offset 1000/8 and MF.
    let mut part = frame.clone();
    part[20..22].copy_from_slice(&(0x2000u16 | 125).to_be_bytes());
    set_df(&mut part, false);
    let frags = cut(&part, 1000);
    let offs: Vec<u16> = frags
        .iter()
        .map(|f| u16::from_be_bytes([f[20], f[21]]))
        .collect();
    assert_eq!(offs, [0x2000 | 125, 0x2000 | (125 + 122)]);
}
