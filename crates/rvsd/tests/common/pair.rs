//! Plumbing of the director-pair tests: hosts (namespaces) plugged into
//! a switch namespace's bridges with the offloads off, names unique per
//! run, and a look at the addresses an instance holds.

use std::sync::atomic::{AtomicU32, Ordering};

use rvs_testkit::Netns;

/// A namespace name unique to this process and call: `prefix` names the
/// test file, `tag` the test, so that parallel tests never collide.
pub fn unique(prefix: &str, tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{tag}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Connects `dev` of `host` (address `addr`) to `bridge` in the switch
/// namespace through port `port`.
pub fn link(switch: &Netns, bridge: &str, port: &str, host: &Netns, dev: &str, addr: &str) {
    switch
        .ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            dev,
            "netns",
            host.name(),
        ])
        .unwrap();
    switch
        .ip(&["link", "set", port, "master", bridge, "up"])
        .unwrap();
    host.ip(&["addr", "add", addr, "dev", dev]).unwrap();
    host.ip(&["link", "set", dev, "up"]).unwrap();
}

/// [`link`], with the offloads off on both ends, as the packet data plane
/// needs (test-machines.md).
pub fn plug(switch: &Netns, bridge: &str, port: &str, host: &Netns, dev: &str, addr: &str) {
    link(switch, bridge, port, host, dev, addr);
    for (ns, d) in [(host, dev), (switch, port)] {
        ns.exec(
            "ethtool",
            &[
                "-K", d, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
            ],
        )
        .unwrap();
    }
}

/// A bridge `br0` without multicast snooping (VRRP adverts reach every
/// port) in a switch namespace named `{base}sw`.
pub fn switch(base: &str) -> Netns {
    let switch = Netns::new(&format!("{base}sw")).unwrap();
    switch
        .ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])
        .unwrap();
    switch.ip(&["link", "set", "br0", "up"]).unwrap();
    switch
}

/// Namespaces on one bridge: a switch namespace holding the bridge, and
/// hosts with `eth0` at 192.0.2.(i+1)/24 (the offloads left on: these
/// tests carry VRRP only).
pub struct Lan {
    // Hosts first: they are deleted before the switch.
    pub hosts: Vec<Netns>,
    _switch: Netns,
}

impl Lan {
    /// `hosts` hosts, the namespaces named after [`unique`]`(prefix, tag)`.
    pub fn new(prefix: &str, tag: &str, hosts: usize) -> Lan {
        let base = unique(prefix, tag);
        let switch = switch(&base);
        let hosts = (0..hosts)
            .map(|i| {
                let h = Netns::new(&format!("{base}h{i}")).unwrap();
                let addr = format!("192.0.2.{}/24", i + 1);
                link(&switch, "br0", &format!("p{i}"), &h, "eth0", &addr);
                h
            })
            .collect();
        Lan {
            hosts,
            _switch: switch,
        }
    }
}

/// Whether `dev` in `ns` holds the IPv4 address `addr` (a VIP the
/// instance added, or not).
pub fn has_addr(ns: &Netns, dev: &str, addr: &str) -> bool {
    ns.ip(&["-j", "addr", "show", "dev", dev])
        .is_ok_and(|s| s.contains(&format!("\"local\":\"{addr}\"")))
}
