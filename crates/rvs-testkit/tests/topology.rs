//! The topology builds, carries traffic where it should, and leaves
//! nothing behind (root only).

use std::net::SocketAddr;
use std::time::Duration;

use rvs_testkit::{Backend, CLIENT, Topology, TopologySpec, http_get, root_or_skip};

fn namespaces() -> String {
    rvs_testkit::run("ip", &["netns", "list"]).unwrap()
}

#[test]
fn the_topology_connects_the_client_to_the_real_servers_and_is_removed() {
    if !root_or_skip("topology") {
        return;
    }
    let offloads = rvs_testkit::have("ethtool");
    let names;
    {
        let t = Topology::build(&TopologySpec {
            tag: "tk".into(),
            servers: 2,
            offloads_off: offloads,
        })
        .unwrap();
        names = [t.client.name().to_string(), t.switch.name().to_string()];
        let list = namespaces();
        assert!(names.iter().all(|n| list.contains(n.as_str())));
        let mut backends = Vec::new();
        for (i, rs) in t.servers.iter().enumerate() {
            let addr = SocketAddr::new(rs.lan.into(), 80);
            backends.push(Backend::start(&rs.ns, &format!("rs{i}"), addr).unwrap());
        }
        // Straight over the L2 segment: each server answers and sees the client.
        for (i, rs) in t.servers.iter().enumerate() {
            let body = http_get(
                &t.client,
                SocketAddr::new(rs.lan.into(), 80),
                Duration::from_secs(5),
            )
            .unwrap();
            assert_eq!(body, format!("rs{i} {CLIENT}\n"));
        }
        // The real servers' private side reaches the director.
        let out = t.servers[0]
            .ns
            .ip(&["-j", "route", "get", "192.0.2.10", "from", "198.51.100.21"])
            .unwrap();
        assert!(out.contains("198.51.100.1"), "policy route: {out}");
        if offloads {
            let f = t.director.exec("ethtool", &["-k", "eth0"]).unwrap();
            assert!(f.contains("tcp-segmentation-offload: off"), "{f}");
        }
    }
    let list = namespaces();
    assert!(
        names.iter().all(|n| !list.contains(n.as_str())),
        "namespaces left: {list}"
    );
}
