//! The nftables claim and the neighbour table in a namespace topology
//! (root only).

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rvs_core::model::{DestConfig, Forward, Protocol, ServiceConfig, ServiceKey};
use rvs_dataplane::claim::{Claim, ClaimSpec, table_name};
use rvs_dataplane::neigh::{NeighbourTable, Port};
use rvs_forward::Neighbours;
use rvs_sys::packet::{PacketSocket, RingConfig};
use rvs_testkit::{
    DIRECTOR_LAN_IF, DIRECTOR_PRIVATE_IF, Topology, TopologySpec, VIP, root_or_skip,
};

fn topology(tag: &str) -> Topology {
    Topology::build(&TopologySpec {
        tag: tag.into(),
        servers: 2,
        offloads_off: false,
    })
    .unwrap()
}

fn spec() -> ClaimSpec {
    let s = ServiceConfig::new(ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 80,
    });
    let d = [DestConfig {
        addr: "198.51.100.21".parse().unwrap(),
        port: 80,
        forward: Forward::Masq,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    }];
    ClaimSpec::for_rules(
        &[DIRECTOR_LAN_IF.to_string(), DIRECTOR_PRIVATE_IF.to_string()],
        [(&s, &d[..])],
    )
}

/// Connects from the client to VIP:80 with a 1 s timeout.
fn connect_vip(t: &Topology) -> std::io::Error {
    t.client
        .within(|| {
            TcpStream::connect_timeout(&SocketAddr::new(VIP.into(), 80), Duration::from_secs(1))
        })
        .unwrap()
        .expect_err("nothing listens on the VIP")
}

#[test]
fn the_claim_silences_the_kernel_but_not_the_packet_socket_and_goes_away() {
    if !root_or_skip("claim") {
        return;
    }
    let t = topology("claim");
    // Without a claim the director's kernel answers (no route: unreachable).
    let e = connect_vip(&t);
    assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");

    let instance = format!("t{}", std::process::id());
    let table = table_name(&instance);
    let (i2, i3) = (instance.clone(), instance.clone());
    // A leftover table from a "crashed" run is replaced, not an error.
    let leftover = t
        .director
        .within(move || Claim::create(&i2, ClaimSpec::default()))
        .unwrap()
        .unwrap();
    std::mem::forget(leftover);
    let claim = t
        .director
        .within(move || Claim::create(&i3, spec()))
        .unwrap()
        .unwrap();
    let listed = t
        .director
        .exec("nft", &["list", "table", "inet", &table])
        .unwrap();
    assert!(listed.contains("priority raw - 10"), "{listed}");
    assert!(
        listed.contains("ip daddr 203.0.113.10 tcp dport 80 drop"),
        "{listed}"
    );
    assert!(
        listed.contains("ip saddr 198.51.100.21 tcp sport 80 fib daddr type != local drop"),
        "{listed}"
    );

    let mut sock = t
        .director
        .within(|| {
            PacketSocket::open(
                rvs_sys::iface::index(DIRECTOR_LAN_IF).unwrap(),
                &RingConfig::default(),
            )
        })
        .unwrap()
        .unwrap();
    let e = connect_vip(&t);
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::TimedOut,
        "the kernel stayed silent: {e}"
    );
    // The SYNs were still seen by the packet socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut syns = 0;
    while syns == 0 && Instant::now() < deadline {
        rvs_sys::wait_readable(sock.as_fd(), Duration::from_millis(100)).unwrap();
        while let Some(mut b) = sock.rx().next_block() {
            while let Some((f, _)) = b.next() {
                let ipv4 = f.len() >= 34 && f[12..14] == [8, 0];
                if ipv4 && f[30..34] == VIP.octets() && f[23] == 6 {
                    syns += 1;
                }
            }
        }
    }
    assert!(syns > 0, "the packet socket saw the SYNs to the VIP");

    // The claim follows rule changes and is deleted on drop.
    let mut claim = claim;
    let t2 = t.director.within(move || {
        claim.update(ClaimSpec::default()).unwrap();
        claim
    });
    let claim = t2.unwrap();
    let listed = t
        .director
        .exec("nft", &["list", "table", "inet", &table])
        .unwrap();
    assert!(!listed.contains("drop"), "{listed}");
    t.director.within(move || drop(claim)).unwrap();
    let tables = t.director.exec("nft", &["list", "tables"]).unwrap();
    assert!(!tables.contains(&table), "{tables}");
}

#[test]
fn neighbours_are_resolved_on_demand_through_the_data_plane_interfaces() {
    if !root_or_skip("neighbours") {
        return;
    }
    let t = topology("neigh");
    let rs_mac = {
        let j = t.servers[0].ns.ip(&["-j", "link", "show", "eth1"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        rvs_dataplane::neigh::parse_mac(v[0]["address"].as_str().unwrap()).unwrap()
    };
    let r = t
        .director
        .within(move || {
            let ports = vec![
                Port::lookup(DIRECTOR_LAN_IF).unwrap(),
                Port::lookup(DIRECTOR_PRIVATE_IF).unwrap(),
            ];
            let table = NeighbourTable::new(ports.clone());
            let rs: IpAddr = "198.51.100.21".parse().unwrap();
            let lo: IpAddr = "127.0.0.1".parse().unwrap();
            assert_eq!(table.next_hop(rs), None, "unknown before the first refresh");
            assert_eq!(table.next_hop(lo), None);
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut nh = None;
            while Instant::now() < deadline {
                table.refresh().unwrap();
                nh = table.next_hop(rs);
                if nh.is_some_and(|n| n.dst_mac.is_some()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (nh, table.next_hop(lo), ports)
        })
        .unwrap();
    let (nh, lo, ports) = r;
    let nh = nh.expect("a route through eth1");
    assert_eq!(nh.iface, ports[1].index);
    assert_eq!(nh.src_mac, ports[1].mac);
    assert_eq!(nh.dst_mac, Some(rs_mac), "resolved by the probe");
    assert_eq!(nh.mtu, 1500);
    assert_eq!(nh.src_ip, Some("198.51.100.1".parse().unwrap()));
    assert_eq!(lo, None, "loopback is not a data plane interface");
}
