//! The configuration file: the shipped example, defaults, and every way a
//! file can be refused, with the place each error points at.

use std::net::IpAddr;

use rvs_config::{ProxyProtocol, parse};
use rvs_core::model::{
    Family, Forward, Netmask, Protocol, SchedFlags, SchedulerKind, ServiceKey, Sysctls, Timeouts,
    TunnelCsum, TunnelType,
};

/// The error of a file that must be refused: (line, column, message).
fn err(text: &str) -> (usize, usize, String) {
    let e = parse(text, "t.toml").expect_err("the file must be refused");
    assert_eq!(e.file, "t.toml");
    assert_eq!(
        e.to_string(),
        format!("t.toml:{}:{}: {}", e.line, e.column, e.message)
    );
    (e.line, e.column, e.message)
}

/// Asserts the place and that the message contains `needle`.
#[track_caller]
fn refused(text: &str, line: usize, column: usize, needle: &str) {
    let (l, c, m) = err(text);
    assert_eq!((l, c), (line, column), "place of: {m}");
    assert!(m.contains(needle), "message {m:?} lacks {needle:?}");
}

const SVC: &str = "[[service]]\naddress = \"192.0.2.1:80\"\n";

#[test]
fn shipped_example_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rvsd.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let cfg = parse(&text, "examples/rvsd.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.sysctls().expire_nodest_conn);
    assert!(cfg.proxy.freebind);
    assert_eq!(cfg.timeouts(), Timeouts::default());
    let services = cfg.services();
    assert_eq!(services.len(), 3);

    let (web, servers) = &services[0];
    assert_eq!(
        web.key,
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "192.0.2.10".parse().unwrap(),
            port: 443
        }
    );
    assert_eq!(web.persistence, Some(600));
    assert_eq!(web.netmask, Netmask::V4(0xffff_ff00));
    assert_eq!(cfg.services[0].proxy_protocol, ProxyProtocol::V2);
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[0].forward, Forward::Masq);
    assert_eq!(servers[0].port, 8443);
    assert_eq!(
        (servers[1].u_threshold, servers[1].l_threshold),
        (1000, 750)
    );
    assert_eq!(servers[2].weight, 0);

    let (dns, servers) = &services[1];
    assert_eq!(dns.scheduler, SchedulerKind::Mh);
    assert_eq!(dns.sched_flags, SchedFlags(3));
    assert!(dns.one_packet);
    assert_eq!(dns.key.family(), Family::V6);
    assert_eq!(servers[0].weight, 1);

    let (fwm, servers) = &services[2];
    assert_eq!(
        fwm.key,
        ServiceKey::FwMark {
            family: Family::V4,
            mark: 7
        }
    );
    assert_eq!(servers[0].forward, Forward::Route);
    assert_eq!(servers[0].port, 0);
    let Forward::Tunnel(t) = servers[1].forward else {
        panic!("tunnel expected")
    };
    assert_eq!(
        (t.kind, t.port, t.csum),
        (TunnelType::Gue, 6080, TunnelCsum::Csum)
    );
}

#[test]
fn example_round_trips_through_toml() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rvsd.toml");
    let cfg = parse(&std::fs::read_to_string(path).unwrap(), "x").unwrap();
    let text = toml::to_string(&cfg.to_file()).unwrap();
    let again = parse(&text, "written").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, cfg);
}

#[test]
fn empty_file_is_all_defaults() {
    let cfg = parse("", "empty").unwrap();
    assert_eq!(cfg.sysctls(), Sysctls::default());
    assert_eq!(cfg.timeouts(), Timeouts::default());
    assert!(cfg.metrics.enabled);
    assert_eq!(cfg.metrics.listen.to_string(), "127.0.0.1:9180");
    assert_eq!(cfg.control.socket, None);
    assert_eq!(cfg.proxy.connect_timeout_ms, 3000);
    assert!(cfg.services().is_empty());
}

#[test]
fn service_defaults() {
    let text = format!("{SVC}[[service.server]]\naddress = \"10.0.0.1\"\n");
    let cfg = parse(&text, "t").unwrap();
    let (svc, dests) = &cfg.services()[0];
    assert_eq!(svc.scheduler, SchedulerKind::Wlc);
    assert_eq!(svc.key.protocol(), Some(Protocol::Tcp));
    assert_eq!(svc.persistence, None);
    assert_eq!(svc.mh_table_size, 4093);
    assert_eq!(cfg.services[0].proxy_protocol, ProxyProtocol::Off);
    // No port: the service's.
    assert_eq!(dests[0].port, 80);
    assert_eq!(dests[0].weight, 1);
    assert_eq!(dests[0].forward, Forward::Masq);
}

#[test]
fn unknown_keys() {
    refused("bogus = 1\n", 1, 1, "unknown field `bogus`");
    refused("[director]\nx = 1\n", 2, 1, "unknown field `x`");
    refused(
        "[director.timeouts]\ntcp = 5\ntcpfin = 1\n",
        3,
        1,
        "unknown field `tcpfin`",
    );
    refused("[metrics]\nport = 1\n", 2, 1, "unknown field `port`");
    refused("[proxy]\n  retries = 1\n", 2, 3, "unknown field `retries`");
    refused(
        &format!("{SVC}weight = 1\n"),
        3,
        1,
        "unknown field `weight`",
    );
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"10.0.0.1:80\"\nscheduler = \"rr\"\n"),
        5,
        1,
        "unknown field `scheduler`",
    );
    refused("[[services]]\n", 1, 3, "unknown field `services`");
}

#[test]
fn wrong_types() {
    refused(
        "[director]\nconn_reuse_mode = \"1\"\n",
        2,
        19,
        "invalid type: string \"1\", expected u8",
    );
    refused("[director]\nsloppy_tcp = 1\n", 2, 14, "expected a boolean");
    refused("[[service]]\naddress = 80\n", 2, 11, "expected a string");
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"10.0.0.1:80\"\nweight = -1\n"),
        5,
        10,
        "expected u32",
    );
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"10.0.0.1:80\"\nmethod = \"nat\"\n"),
        5,
        10,
        "unknown variant `nat`, expected one of `masq`, `route`, `tunnel`, `proxy`",
    );
    refused(
        "[[service]]\nprotocol = \"icmp\"\naddress = \"192.0.2.1:80\"\n",
        2,
        12,
        "unknown variant `icmp`",
    );
    refused(
        &format!("{SVC}proxy_protocol = \"v3\"\n"),
        3,
        18,
        "unknown variant `v3`",
    );
    refused(
        "[metrics]\nlisten = \"localhost:9180\"\n",
        2,
        10,
        "socket address",
    );
    refused("[service]\n", 1, 1, "expected a sequence");
}

#[test]
fn syntax_errors() {
    refused("[director\n", 1, 10, "");
    refused("a = [\n", 1, 6, "");
    refused(
        "[director]\nsloppy_tcp = true\nsloppy_tcp = false\n",
        3,
        1,
        "duplicate key",
    );
}

#[test]
fn bad_addresses() {
    refused(
        "[[service]]\naddress = \"192.0.2.300:80\"\n",
        2,
        11,
        "invalid address `192.0.2.300:80'",
    );
    refused(
        "[[service]]\naddress = \"192.0.2.1\"\n",
        2,
        11,
        "needs a port",
    );
    refused(
        "[[service]]\naddress = \"2001:db8::1:80\"\n",
        2,
        11,
        "needs a port",
    );
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"10.0.0.1:99999\"\n"),
        4,
        11,
        "invalid address",
    );
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"[2001:db8::1]:80\"\n"),
        4,
        11,
        "Operation not supported with specified address family",
    );
}

#[test]
fn host_names_are_refused() {
    refused(
        "[[service]]\naddress = \"www.example.com:80\"\n",
        2,
        11,
        "host names are not resolved: `www.example.com'",
    );
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"backend1:http\"\n"),
        4,
        11,
        "host names are not resolved: `backend1'",
    );
}

#[test]
fn bad_scheduler_and_flags() {
    refused(
        &format!("{SVC}scheduler = \"roundrobin\"\n"),
        3,
        13,
        "unknown scheduler `roundrobin'; expected one of rr, wrr",
    );
    refused(
        &format!("{SVC}scheduler = \"mh\"\nsched_flags = [\"mh-port\", \"mh-sticky\"]\n"),
        4,
        27,
        "unknown scheduler flag `mh-sticky'",
    );
    refused(
        &format!("{SVC}scheduler = \"sh\"\nsched_flags = [\"mh-port\"]\n"),
        4,
        16,
        "scheduler flag `mh-port' needs scheduler mh, not sh",
    );
    // The default scheduler is wlc, which takes no named flag.
    refused(
        &format!("{SVC}sched_flags = [\"sh-port\"]\n"),
        3,
        16,
        "needs scheduler sh, not wlc",
    );
}

#[test]
fn model_rules_point_at_their_key() {
    refused(
        "[[service]]\naddress = \"192.0.2.1:0\"\n",
        2,
        11,
        "Zero port specified for non-persistent service",
    );
    refused(
        &format!("{SVC}one_packet = true\n"),
        3,
        14,
        "One-Packet Scheduling is only for UDP virtual services",
    );
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"10.0.0.1:80\"\nweight = 65536\n"),
        5,
        10,
        "Illegal weight specified",
    );
    refused(
        &format!("{SVC}mh_table_size = 4096\n"),
        3,
        17,
        "Invalid Maglev table size 4096",
    );
    refused(
        &format!("{SVC}persistence_timeout = 0\n"),
        3,
        23,
        "Invalid persistence timeout value 0",
    );
    refused(
        &format!(
            "{SVC}[[service.server]]\naddress = \"10.0.0.1:80\"\nu_threshold = 10\nl_threshold = 20\n"
        ),
        6,
        15,
        "Numerical result out of range",
    );
    refused(
        &format!(
            "{SVC}[[service.server]]\naddress = \"10.0.0.1\"\nmethod = \"tunnel\"\ntun_type = \"gue\"\n"
        ),
        6,
        12,
        "GUE tunnel requires a tunnel port",
    );
    refused(
        &format!(
            "{SVC}[[service.server]]\naddress = \"10.0.0.1\"\nmethod = \"tunnel\"\ntun_csum = \"remcsum\"\n"
        ),
        6,
        12,
        "Checksum option --tun-remcsum is not valid for tunnel type ipip",
    );
}

#[test]
fn rvs_rules_point_at_their_key() {
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"10.0.0.1\"\ntun_port = 6080\n"),
        5,
        12,
        "`tun_port' is only for servers with method = \"tunnel\"",
    );
    refused(
        &format!("{SVC}[[service.server]]\naddress = \"10.0.0.1:8080\"\nmethod = \"route\"\n"),
        4,
        11,
        "a route server keeps the service port 80",
    );
    refused(
        "[[service]]\naddress = \"192.0.2.1:80\"\nfwmark = 3\n",
        3,
        10,
        "either `address` or `fwmark`",
    );
    refused("[[service]]\nscheduler = \"rr\"\n", 1, 1, "needs `address`");
    refused("[[service]]\nfwmark = 0\n", 2, 10, "greater than zero");
    refused(
        "[[service]]\nfwmark = 1\nprotocol = \"udp\"\n",
        3,
        12,
        "`protocol` is for address services",
    );
    refused(
        &format!("{SVC}family = \"ipv6\"\n"),
        3,
        10,
        "`family` is for fwmark services",
    );
    refused(
        &format!("{SVC}persistence_timeout = 60\npersistence_netmask = 33\n"),
        4,
        23,
        "invalid IPv4 prefix length 33",
    );
    refused(
        "[[service]]\naddress = \"[2001:db8::1]:80\"\npersistence_timeout = 60\npersistence_netmask = \"255.0.0.0\"\n",
        4,
        23,
        "for an IPv6 service",
    );
    refused(
        &format!("{SVC}persistence_engine = \"http\"\n"),
        3,
        22,
        "unknown persistence engine `http'",
    );
    refused(
        "[director]\nconn_reuse_mode = 4\n",
        2,
        19,
        "use 0..=3, not 4",
    );
    refused(
        "[director.timeouts]\nudp = 0\n",
        2,
        7,
        "timeout udp must be 1..=2678400 seconds, not 0",
    );
    refused("[proxy]\nconnect_timeout_ms = 0\n", 2, 22, "at least 1");
}

#[test]
fn duplicates() {
    let text =
        format!("{SVC}\n# again\n[[service]]\nprotocol = \"tcp\"\naddress = \"192.0.2.1:80\"\n");
    refused(
        &text,
        7,
        11,
        "duplicate service TCP  192.0.2.1:80 (first defined at line 1)",
    );
    // The same address and port on another protocol is another service.
    let text = format!("{SVC}[[service]]\nprotocol = \"udp\"\naddress = \"192.0.2.1:80\"\n");
    assert_eq!(parse(&text, "t").unwrap().services().len(), 2);
    let text = "[[service]]\nfwmark = 1\n[[service]]\nfwmark = 1\n";
    refused(text, 4, 10, "duplicate service FWM  1");
    let text = "[[service]]\nfwmark = 1\n[[service]]\nfwmark = 1\nfamily = \"ipv6\"\n";
    assert_eq!(parse(text, "t").unwrap().services().len(), 2);
    // A server written without its port is the same server as with it.
    let text = format!(
        "{SVC}[[service.server]]\naddress = \"10.0.0.1:80\"\n[[service.server]]\naddress = \"10.0.0.1\"\nweight = 2\n"
    );
    refused(&text, 6, 11, "duplicate server 10.0.0.1:80 in this service");
}

#[test]
fn ipv6_service_and_prefix_netmask() {
    let text = "[[service]]\naddress = \"[2001:db8::1]:443\"\npersistence_timeout = 60\npersistence_netmask = 64\n[[service.server]]\naddress = \"[2001:db8::2]:443\"\n[[service.server]]\naddress = \"192.0.2.7\"\nmethod = \"tunnel\"\n";
    let cfg = parse(text, "t").unwrap();
    let (svc, dests) = &cfg.services()[0];
    assert_eq!(svc.netmask, Netmask::V6(64));
    assert_eq!(dests[0].addr, "2001:db8::2".parse::<IpAddr>().unwrap());
    // A tunnelled server may be of the other family.
    assert_eq!(dests[1].port, 443);
}

#[test]
fn columns_count_characters() {
    // A multi-byte character before the value shifts bytes, not columns.
    let text = "[[service]] # é\naddress = \"192.0.2.1:80\"\nscheduler = \"é\"\n";
    refused(text, 3, 13, "unknown scheduler `é'");
}

#[test]
fn dataplane_table() {
    use rvs_config::DataplaneMode;
    let cfg = parse("", "t.toml").unwrap();
    assert_eq!(cfg.dataplane.mode, DataplaneMode::Proxy);
    assert!(cfg.dataplane.interfaces.is_empty());
    assert_eq!(cfg.dataplane.workers, 0);
    assert_eq!(cfg.dataplane.busy_poll_us, 0);
    let cfg = parse(
        "[dataplane]\nmode = \"packet\"\ninterfaces = [\"eth0\", \"eth1\"]\nworkers = 2\nbusy_poll_us = 50\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(cfg.dataplane.mode, DataplaneMode::Packet);
    assert_eq!(cfg.dataplane.interfaces, ["eth0", "eth1"]);
    assert_eq!(cfg.dataplane.workers, 2);
    assert_eq!(cfg.dataplane.busy_poll_us, 50);
    // Written back, it reads the same.
    let again = parse(&toml::to_string(&cfg.to_file()).unwrap(), "t.toml").unwrap();
    assert_eq!(again.dataplane, cfg.dataplane);
    refused(
        "[dataplane]\nmode = \"xdp\"\n",
        2,
        8,
        "unknown variant `xdp`",
    );
    refused("[dataplane]\nmode = \"packet\"\n", 2, 8, "needs interfaces");
    refused(
        "[dataplane]\nmode = \"packet\"\ninterfaces = [\"eth0\", \"a/b\"]\n",
        3,
        23,
        "not an interface name",
    );
    refused("[dataplane]\nqueues = 2\n", 2, 1, "unknown field `queues`");
    refused(
        "[dataplane]\nbusy_poll_us = 10001\n",
        2,
        16,
        "busy_poll_us must be 0..=10000 microseconds",
    );
    refused("[dataplane]\nbusy_poll_us = -1\n", 2, 16, "invalid value");
}

#[test]
fn dataplane_backend() {
    use rvs_config::PacketBackend;
    let cfg = parse(
        "[dataplane]\nmode = \"packet\"\ninterfaces = [\"eth0\"]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(cfg.dataplane.backend, PacketBackend::AfPacket);
    let cfg = parse(
        "[dataplane]\nmode = \"packet\"\ninterfaces = [\"eth0\"]\nbackend = \"af_xdp\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(cfg.dataplane.backend, PacketBackend::AfXdp);
    let again = parse(&toml::to_string(&cfg.to_file()).unwrap(), "t.toml").unwrap();
    assert_eq!(again.dataplane, cfg.dataplane);
    refused(
        "[dataplane]\nbackend = \"xdp\"\n",
        2,
        11,
        "unknown variant `xdp`",
    );
}
