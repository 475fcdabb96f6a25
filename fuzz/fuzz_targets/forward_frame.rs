//! Arbitrary frames into the packet forwarder (and the real-server
//! decapsulator): never a panic, and a frame to send always fits the output
//! buffer, and a frame to fragment is cut into fragments that fit the
//! MTU. The first byte chooses the receive flags and the output buffer
//! size; the rest is the frame.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rvs_core::model::{
    DestConfig, Forward, Protocol, SchedulerKind, ServiceConfig, ServiceKey, Tunnel, TunnelCsum,
    TunnelType,
};
use rvs_forward::{Forwarder, ForwarderConfig, Neighbours, NextHop, RxMeta, Verdict};

struct Everywhere;

impl Neighbours for Everywhere {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        let src = match dst {
            IpAddr::V4(_) => "192.0.2.1".parse().ok(),
            IpAddr::V6(_) => "2001:db8:1::1".parse().ok(),
        };
        Some(NextHop {
            iface: 3,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: Some([2, 0, 0, 0, 0, 0x11]),
            mtu: 1500,
            src_ip: src,
        })
    }
}

fn add(
    fw: &mut Forwarder,
    proto: Protocol,
    vip: &str,
    port: u16,
    rs: &str,
    rport: u16,
    f: Forward,
) {
    let key = ServiceKey::Addr {
        proto,
        addr: vip.parse().unwrap(),
        port,
    };
    let mut cfg = ServiceConfig::new(key);
    cfg.scheduler = SchedulerKind::Rr;
    fw.director_mut().add_service(cfg).unwrap();
    fw.director_mut()
        .add_dest(
            &key,
            DestConfig {
                addr: rs.parse().unwrap(),
                port: rport,
                forward: f,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            },
        )
        .unwrap();
}

fn tun(kind: TunnelType, csum: TunnelCsum) -> Forward {
    Forward::Tunnel(Tunnel {
        kind,
        port: if kind == TunnelType::Gue { 6080 } else { 0 },
        csum,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, frame)) = data.split_first() else {
        return;
    };
    let mut fw = Forwarder::new(ForwarderConfig::default());
    add(
        &mut fw,
        Protocol::Tcp,
        "203.0.113.10",
        80,
        "192.0.2.11",
        8080,
        Forward::Masq,
    );
    add(
        &mut fw,
        Protocol::Udp,
        "203.0.113.10",
        53,
        "192.0.2.11",
        53,
        Forward::Masq,
    );
    add(
        &mut fw,
        Protocol::Sctp,
        "203.0.113.10",
        3868,
        "192.0.2.11",
        3868,
        Forward::Masq,
    );
    add(
        &mut fw,
        Protocol::Tcp,
        "203.0.113.10",
        443,
        "192.0.2.12",
        443,
        Forward::Route,
    );
    add(
        &mut fw,
        Protocol::Tcp,
        "203.0.113.10",
        8443,
        "192.0.2.13",
        8443,
        tun(TunnelType::Gue, TunnelCsum::Csum),
    );
    add(
        &mut fw,
        Protocol::Tcp,
        "2001:db8::10",
        80,
        "2001:db8:1::11",
        8080,
        Forward::Masq,
    );
    add(
        &mut fw,
        Protocol::Udp,
        "2001:db8::10",
        53,
        "2001:db8:1::11",
        53,
        tun(TunnelType::Gre, TunnelCsum::Csum),
    );
    add(
        &mut fw,
        Protocol::Tcp,
        "2001:db8::10",
        443,
        "192.0.2.13",
        443,
        tun(TunnelType::Ipip, TunnelCsum::NoCsum),
    );
    let meta = RxMeta {
        iface: 2,
        csum_not_ready: ctl & 1 != 0,
        fwmark: 0,
    };
    let out_len = if ctl & 2 != 0 {
        frame.len() / 2
    } else {
        frame.len() + rvs_forward::MAX_ENCAP_OVERHEAD
    };
    let mut out = vec![0u8; out_len];
    // The frame twice: the first may open a connection the second uses.
    for now in [0, 1] {
        match fw.process(frame, &meta, &mut out, &Everywhere, now) {
            Verdict::Forward { len, .. } | Verdict::Reply { len, .. } => {
                assert!(len <= out.len());
                if len > 14 {
                    let _ = rvs_forward::decapsulate(&out[14..len], &[6080]);
                }
            }
            Verdict::Fragment { len, mtu, .. } => {
                assert!(len <= out.len());
                fragments(&out[..len], mtu, true);
            }
            _ => {}
        }
    }
    let _ = rvs_forward::decapsulate(frame, &[6080]);
    // The cutter alone, on any frame and a small MTU chosen by `ctl`.
    fragments(frame, 68 + u16::from(ctl >> 2) * 8, false);
});

/// Cuts `frame` for `mtu`: every fragment fits the MTU (after its
/// Ethernet header) and the buffer; for a frame the forwarder asked to
/// fragment there is at least one fragment.
fn fragments(frame: &[u8], mtu: u16, must: bool) {
    let Some(mut frags) = rvs_forward::Fragments::new(frame, mtu) else {
        assert!(!must, "the forwarder asked for fragments the cutter refuses");
        return;
    };
    let mut buf = vec![0u8; frags.max_frame_len()];
    let mut n = 0;
    while let Some(k) = frags.next_into(&mut buf) {
        assert!(k <= buf.len() && k <= 14 + usize::from(mtu));
        n += 1;
        assert!(n <= 65_536, "no end to the fragments");
    }
    assert!(n >= 1);
}
