//! The packet data plane's acceptance scenarios, end to end in namespace
//! topologies (root only) with nginx real servers: exact round-robin
//! order over three servers for DR, NAT (IPv4 and IPv6) and TUN (IPv4);
//! nginx's access log shows the client's own address; persistence; a
//! weight-0 server drains while its long transfer completes; deleting a
//! server with `expire_nodest_conn` off and on; a long transfer survives
//! other servers being added and removed.
//!
//! Rules are driven through the [`Control`] API as `rvsadm` sends them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rvs_api::Control;
use rvs_core::director::{ConnSnapshot, DirectorConfig};
use rvs_core::model::Sysctls;
use rvs_dataplane::{Dataplane, DataplaneConfig};
use rvs_forward::{DropReason, ForwarderConfig, Neighbours};
use rvs_testkit::{
    CLIENT, CLIENT6, DIRECTOR_LAN_IF, DIRECTOR_PRIVATE_IF, Decapsulator, Download, Nginx,
    NginxSpec, Topology, TopologySpec, big_file, http_get_path, root_or_skip, vip, vip6, wait_for,
};

/// Size of `/big` and its rate: a transfer of about six seconds, long
/// enough for the rule changes each test makes while it runs.
const BIG_LEN: usize = 768 * 1024;
const BIG_RATE: u32 = 128 * 1024;

fn cmd(line: &str) -> rvs_ipvsadm::Command {
    rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("{line}: {e:?}"))
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Lab {
    // Drop order: the data plane (stopped in `drop`), decapsulators,
    // nginx processes, namespaces, files.
    dp: Dataplane,
    _decaps: Vec<Decapsulator>,
    nginx: Vec<Nginx>,
    t: Topology,
    _dir: Scratch,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.dp.stop();
    }
}

struct LabSpec<'a> {
    tag: &'a str,
    servers: usize,
    expire_nodest_conn: bool,
    /// Userspace decapsulators on the real servers (LVS-TUN).
    tunnels: bool,
    rules: &'a [&'a str],
}

fn lab(spec: LabSpec<'_>) -> Lab {
    assert!(
        rvs_testkit::have("ethtool") && rvs_testkit::have("nft"),
        "ethtool and nft are needed (apt-get install ethtool nftables)"
    );
    let pid = std::process::id();
    let dir = Scratch(std::env::temp_dir().join(format!("rvs-{}-{pid}", spec.tag)));
    std::fs::create_dir_all(&dir.0).unwrap();
    let t = Topology::build(&TopologySpec {
        tag: spec.tag.into(),
        servers: spec.servers,
        offloads_off: true,
    })
    .unwrap();
    let nginx = t
        .servers
        .iter()
        .enumerate()
        .map(|(i, rs)| {
            Nginx::start(
                &rs.ns,
                &dir.0,
                &NginxSpec {
                    name: format!("rs{i}"),
                    ports: vec![80, 81, 82],
                    big_len: BIG_LEN,
                    big_rate: BIG_RATE,
                },
            )
            .unwrap()
        })
        .collect();
    let decaps = if spec.tunnels {
        t.servers
            .iter()
            .map(|rs| Decapsulator::start(&rs.ns, "eth0", Vec::new()).unwrap())
            .collect()
    } else {
        Vec::new()
    };
    let instance = format!("{}{pid}", spec.tag);
    let sysctls = Sysctls {
        expire_nodest_conn: spec.expire_nodest_conn,
        ..Sysctls::default()
    };
    let dp = t
        .director
        .within(move || {
            Dataplane::start(DataplaneConfig {
                interfaces: vec![DIRECTOR_LAN_IF.into(), DIRECTOR_PRIVATE_IF.into()],
                workers: 2,
                instance,
                forwarder: ForwarderConfig {
                    director: DirectorConfig {
                        sysctls,
                        ..DirectorConfig::default()
                    },
                    ..ForwarderConfig::default()
                },
                ..DataplaneConfig::default()
            })
        })
        .unwrap()
        .unwrap();
    let lab = Lab {
        dp,
        _decaps: decaps,
        nginx,
        t,
        _dir: dir,
    };
    apply(&lab, spec.rules);
    let servers: Vec<IpAddr> = lab
        .dp
        .services()
        .iter()
        .flat_map(|s| s.dests.iter().map(|d| d.config.addr))
        .collect();
    assert!(
        wait_for(Duration::from_secs(15), || servers.iter().all(|a| lab
            .dp
            .neighbours()
            .next_hop(*a)
            .is_some_and(|n| n.dst_mac.is_some()))),
        "real servers resolved (ARP and ND): {servers:?}"
    );
    lab
}

fn apply(lab: &Lab, lines: &[&str]) {
    let cmds: Vec<_> = lines.iter().map(|l| cmd(l)).collect();
    lab.dp
        .apply(&cmds)
        .unwrap_or_else(|e| panic!("{lines:?}: {e:?}"));
}

/// One request `GET /?s=LABEL&i=I` to `addr`; the name of the server that
/// answered.
fn get(lab: &Lab, addr: SocketAddr, label: &str, i: usize) -> String {
    let body = http_get_path(
        &lab.t.client,
        addr,
        &format!("/?s={label}&i={i}"),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{label} request {i} to {addr}: {e}; counters {:?}",
            lab.dp.counters()
        )
    });
    body.trim_end().to_string()
}

/// The server index of a name `rsN`.
fn index(name: &str) -> usize {
    name.strip_prefix("rs")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a server name: {name:?}"))
}

/// Checks that request `i` of `label` is in the access log of the server
/// that answered it, and only there, with the client's own address.
fn check_access_log(lab: &Lab, label: &str, answered: &[String], client: IpAddr) {
    let logs: Vec<Vec<String>> = lab.nginx.iter().map(|n| n.access_log()).collect();
    for (i, name) in answered.iter().enumerate() {
        let uri = format!("/?s={label}&i={i}");
        let hits: Vec<(usize, &String)> = logs
            .iter()
            .enumerate()
            .flat_map(|(k, l)| l.iter().map(move |line| (k, line)))
            .filter(|(_, line)| line.ends_with(&format!(" {uri}")))
            .collect();
        assert_eq!(hits.len(), 1, "{uri} logged once: {hits:?}");
        let (k, line) = hits[0];
        assert_eq!(k, index(name), "{uri} logged by the server that answered");
        assert_eq!(
            line,
            &format!("{client} {uri}"),
            "nginx saw the client's own address"
        );
    }
}

/// The data plane's entry for the download's connection.
fn conn_of(lab: &Lab, d: &Download) -> Option<ConnSnapshot> {
    lab.dp
        .connections()
        .into_iter()
        .find(|c| !c.template && c.cport == d.local().port() && c.caddr == d.local().ip())
}

/// The index of the real server (by any of its addresses) at `addr`.
fn server_at(lab: &Lab, addr: IpAddr) -> usize {
    lab.t
        .servers
        .iter()
        .position(|rs| {
            [
                IpAddr::V4(rs.lan),
                IpAddr::V4(rs.private),
                IpAddr::V6(rs.lan6),
                IpAddr::V6(rs.private6),
            ]
            .contains(&addr)
        })
        .unwrap_or_else(|| panic!("{addr} is no real server"))
}

/// Starts a download of `/big` through `addr` and waits until data flows;
/// the download and the index of the server it went to.
fn long_transfer(lab: &Lab, addr: SocketAddr) -> (Download, usize) {
    let d = Download::start(&lab.t.client, addr, "/big", Duration::from_secs(60)).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || d.received() > 16 * 1024),
        "the transfer through {addr} flows ({} bytes); counters {:?}",
        d.received(),
        lab.dp.counters()
    );
    let c = conn_of(lab, &d).expect("the transfer has a connection entry");
    let k = server_at(lab, c.daddr);
    (d, k)
}

fn complete(d: Download, what: &str) {
    let body = d.finish().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(body.len(), BIG_LEN, "{what}: whole length");
    assert!(body == big_file(BIG_LEN), "{what}: content intact");
}

#[test]
fn three_servers_in_exact_rr_order_seeing_the_client_and_persistence_holds() {
    if !root_or_skip("packet rr order") {
        return;
    }
    let lab = lab(LabSpec {
        tag: "rr3",
        servers: 3,
        expire_nodest_conn: false,
        tunnels: true,
        rules: &[
            "-A -t 203.0.113.10:80 -s rr",
            "-a -t 203.0.113.10:80 -r 192.0.2.21",
            "-a -t 203.0.113.10:80 -r 192.0.2.22",
            "-a -t 203.0.113.10:80 -r 192.0.2.23",
            "-A -t 203.0.113.10:8080 -s rr",
            "-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.23:80 -m",
            "-A -t [2001:db8:ffff::10]:80 -s rr",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::21]:80 -g",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::22]:80 -g",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::23]:80 -g",
            "-A -t [2001:db8:ffff::10]:8080 -s rr",
            "-a -t [2001:db8:ffff::10]:8080 -r [2001:db8:1::21]:80 -m",
            "-a -t [2001:db8:ffff::10]:8080 -r [2001:db8:1::22]:80 -m",
            "-a -t [2001:db8:ffff::10]:8080 -r [2001:db8:1::23]:80 -m",
            "-A -t 203.0.113.10:81 -s rr",
            "-a -t 203.0.113.10:81 -r 192.0.2.21 -i",
            "-a -t 203.0.113.10:81 -r 192.0.2.22 -i",
            "-a -t 203.0.113.10:81 -r 192.0.2.23 -i",
            "-A -t 203.0.113.10:82 -s rr -p 60",
            "-a -t 203.0.113.10:82 -r 192.0.2.21",
            "-a -t 203.0.113.10:82 -r 192.0.2.22",
            "-a -t 203.0.113.10:82 -r 192.0.2.23",
            "-A -t [2001:db8:ffff::10]:82 -s rr -p 60",
            "-a -t [2001:db8:ffff::10]:82 -r [2001:db8:1::21]:80 -m",
            "-a -t [2001:db8:ffff::10]:82 -r [2001:db8:1::22]:80 -m",
            "-a -t [2001:db8:ffff::10]:82 -r [2001:db8:1::23]:80 -m",
        ],
    });
    // As in the kernel, a server added is put at the head of its service's
    // list (the listing shows the newest first) and rr walks the list from
    // its head: rs2, rs1, rs0, rs2, ...
    let expected: Vec<String> = (0..9).map(|i| format!("rs{}", 2 - i % 3)).collect();
    for s in lab
        .dp
        .services()
        .iter()
        .filter(|s| s.config.persistence.is_none())
    {
        let listed: Vec<usize> = s
            .dests
            .iter()
            .map(|d| server_at(&lab, d.config.addr))
            .collect();
        assert_eq!(listed, [2, 1, 0], "newest first in the listing");
    }
    let cases: [(&str, SocketAddr, IpAddr); 5] = [
        ("dr4", vip(80), CLIENT.into()),
        ("nat4", vip(8080), CLIENT.into()),
        ("dr6", vip6(80), CLIENT6.into()),
        ("nat6", vip6(8080), CLIENT6.into()),
        ("tun4", vip(81), CLIENT.into()),
    ];
    for (label, addr, client) in cases {
        let answered: Vec<String> = (0..9).map(|i| get(&lab, addr, label, i)).collect();
        assert_eq!(answered, expected, "{label}: exact rr order");
        check_access_log(&lab, label, &answered, client);
    }
    for (label, addr, client) in [
        ("p4", vip(82), IpAddr::from(CLIENT)),
        ("p6", vip6(82), IpAddr::from(CLIENT6)),
    ] {
        let answered: Vec<String> = (0..6).map(|i| get(&lab, addr, label, i)).collect();
        assert!(
            answered.iter().all(|n| *n == answered[0]),
            "{label}: every connection of the client on one server: {answered:?}"
        );
        check_access_log(&lab, label, &answered, client);
        let templates: Vec<ConnSnapshot> = lab
            .dp
            .connections()
            .into_iter()
            .filter(|c| c.template && c.vport == 82 && c.caddr == client)
            .collect();
        assert_eq!(templates.len(), 1, "{label}: one template: {templates:?}");
        assert_eq!(
            format!("rs{}", server_at(&lab, templates[0].daddr)),
            answered[0],
            "{label}: the template names the server"
        );
    }
    let svc = lab.dp.services();
    let conns: u64 = svc.iter().map(|s| s.stats.conns).sum();
    assert_eq!(conns, 5 * 9 + 2 * 6, "every request a connection");
}

#[test]
fn a_weight_zero_server_drains_while_its_long_transfer_completes() {
    if !root_or_skip("packet weight 0 drain") {
        return;
    }
    let lab = lab(LabSpec {
        tag: "drain",
        servers: 3,
        expire_nodest_conn: false,
        tunnels: false,
        rules: &[
            "-A -t 203.0.113.10:8080 -s rr",
            "-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.23:80 -m",
            "-A -t [2001:db8:ffff::10]:80 -s rr",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::21]:80 -g",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::22]:80 -g",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::23]:80 -g",
        ],
    });
    let (nat, k4) = long_transfer(&lab, vip(8080));
    let (dr, k6) = long_transfer(&lab, vip6(80));
    let rs = &lab.t.servers;
    apply(
        &lab,
        &[
            &format!("-e -t 203.0.113.10:8080 -r {}:80 -m -w 0", rs[k4].private),
            &format!(
                "-e -t [2001:db8:ffff::10]:80 -r [{}]:80 -g -w 0",
                rs[k6].lan6
            ),
        ],
    );
    for (label, addr, k) in [("nat4", vip(8080), k4), ("dr6", vip6(80), k6)] {
        let answered: Vec<String> = (0..6).map(|i| get(&lab, addr, label, i)).collect();
        assert!(
            !answered.contains(&format!("rs{k}")),
            "{label}: no new connection for the weight-0 server rs{k}: {answered:?}"
        );
        for w in answered.windows(2) {
            assert_ne!(
                w[0], w[1],
                "{label}: the other two take turns: {answered:?}"
            );
        }
    }
    assert!(
        !nat.ended() && !dr.ended(),
        "the transfers were running while the weights changed"
    );
    for s in lab.dp.services() {
        let quiesced: Vec<_> = s.dests.iter().filter(|d| d.config.weight == 0).collect();
        assert_eq!(quiesced.len(), 1, "{s:?}");
        assert_eq!(quiesced[0].active, 1, "its transfer is still active");
    }
    complete(nat, "NAT IPv4 transfer on a weight-0 server");
    complete(dr, "DR IPv6 transfer on a weight-0 server");
}

#[test]
fn a_long_transfer_survives_servers_added_and_removed() {
    if !root_or_skip("packet long transfer") {
        return;
    }
    let lab = lab(LabSpec {
        tag: "churn",
        servers: 3,
        expire_nodest_conn: false,
        tunnels: false,
        rules: &[
            "-A -t 203.0.113.10:8080 -s rr",
            "-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m",
            "-A -t [2001:db8:ffff::10]:80 -s rr",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::21]:80 -g",
            "-a -t [2001:db8:ffff::10]:80 -r [2001:db8::22]:80 -g",
        ],
    });
    let (nat, k4) = long_transfer(&lab, vip(8080));
    let (dr, k6) = long_transfer(&lab, vip6(80));
    let rs = &lab.t.servers;
    let nat_rule = |k: usize| format!("-t 203.0.113.10:8080 -r {}:80", rs[k].private);
    let dr_rule = |k: usize| format!("-t [2001:db8:ffff::10]:80 -r [{}]:80", rs[k].lan6);
    // rs2 comes, the other original server goes and comes back, rs2 goes.
    let (o4, o6) = (1 - k4, 1 - k6);
    for step in [
        vec![
            format!("-a {} -m", nat_rule(2)),
            format!("-a {} -g", dr_rule(2)),
        ],
        vec![
            format!("-d {}", nat_rule(o4)),
            format!("-d {}", dr_rule(o6)),
        ],
        vec![
            format!("-a {} -m", nat_rule(o4)),
            format!("-a {} -g", dr_rule(o6)),
        ],
        vec![format!("-d {}", nat_rule(2)), format!("-d {}", dr_rule(2))],
    ] {
        apply(&lab, &step.iter().map(String::as_str).collect::<Vec<_>>());
        for (label, addr) in [("nat4", vip(8080)), ("dr6", vip6(80))] {
            // New connections work after each change.
            for i in 0..2 {
                get(&lab, addr, label, i);
            }
        }
    }
    assert!(
        !nat.ended() && !dr.ended(),
        "the transfers were running through every change"
    );
    assert_eq!(
        server_at(&lab, conn_of(&lab, &nat).unwrap().daddr),
        k4,
        "the NAT transfer stays on its server"
    );
    complete(nat, "NAT IPv4 transfer through server changes");
    complete(dr, "DR IPv6 transfer through server changes");
}

#[test]
fn deleting_a_server_with_expire_nodest_conn_off_holds_its_connections_until_it_returns() {
    if !root_or_skip("packet expire_nodest_conn off") {
        return;
    }
    let lab = lab(LabSpec {
        tag: "nodest0",
        servers: 2,
        expire_nodest_conn: false,
        tunnels: false,
        rules: &[
            "-A -t 203.0.113.10:8080 -s rr",
            "-a -t 203.0.113.10:8080 -r 198.51.100.21:80 -m",
            "-a -t 203.0.113.10:8080 -r 198.51.100.22:80 -m",
        ],
    });
    let (d, k) = long_transfer(&lab, vip(8080));
    let rule = format!("-t 203.0.113.10:8080 -r {}:80", lab.t.servers[k].private);
    apply(&lab, &[&format!("-d {rule}")]);
    // The client's packets for the deleted server are dropped: the
    // transfer stops, and its entry stays, still bound to the server.
    assert!(
        d.stalls(Duration::from_millis(1500), Duration::from_secs(15)),
        "the transfer stalls once its server is deleted ({} bytes)",
        d.received()
    );
    assert!(d.received() < BIG_LEN, "stalled before the end");
    let c = conn_of(&lab, &d).expect("the entry is kept (expire_nodest_conn off)");
    assert_eq!(server_at(&lab, c.daddr), k);
    assert!(
        lab.dp.counters().forward.drops[DropReason::DestUnavailable.index()] > 0,
        "{:?}",
        lab.dp.counters()
    );
    // New connections go to the remaining server.
    for i in 0..3 {
        assert_eq!(
            get(&lab, vip(8080), "after-delete", i),
            format!("rs{}", 1 - k)
        );
    }
    // The server comes back (as a health checker would re-add it): the
    // held connection carries on and completes.
    apply(&lab, &[&format!("-a {rule} -m")]);
    complete(d, "transfer resumed after its server came back");
}

/// With `expire_nodest_conn` on, the first packet of a connection whose
/// server is deleted expires the entry (and is dropped); the client's next
/// segment matches nothing and is answered with a reset, as the kernel's
/// director answers it: the client is told at once that its connection is
/// gone. New connections go to the remaining server.
#[test]
fn deleting_a_server_with_expire_nodest_conn_on_resets_its_connections() {
    if !root_or_skip("packet expire_nodest_conn on") {
        return;
    }
    let lab = lab(LabSpec {
        tag: "nodest1",
        servers: 2,
        expire_nodest_conn: true,
        tunnels: false,
        rules: &[
            "-A -t 203.0.113.10:80 -s rr",
            "-a -t 203.0.113.10:80 -r 192.0.2.21",
            "-a -t 203.0.113.10:80 -r 192.0.2.22",
        ],
    });
    let (d, k) = long_transfer(&lab, vip(80));
    apply(
        &lab,
        &[&format!(
            "-d -t 203.0.113.10:80 -r {}",
            lab.t.servers[k].lan
        )],
    );
    assert!(
        wait_for(Duration::from_secs(15), || d.ended()),
        "the client learns that its connection is gone ({} bytes); counters {:?}",
        d.received(),
        lab.dp.counters()
    );
    let e = d.finish().expect_err("the transfer cannot complete");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    let c = lab.dp.counters().forward;
    assert!(c.drops[DropReason::DestUnavailable.index()] > 0, "{c:?}");
    assert!(c.resets_sent > 0, "{c:?}");
    assert!(
        lab.dp
            .connections()
            .iter()
            .all(|c| c.daddr != IpAddr::V4(lab.t.servers[k].lan)),
        "no entry left on the deleted server"
    );
    for i in 0..3 {
        assert_eq!(
            get(&lab, vip(80), "after-delete", i),
            format!("rs{}", 1 - k)
        );
    }
}
