//! The ipvsadm command grammar: defaults, forms, and every refusal.

use std::net::IpAddr;

use rvs_core::model::{
    DestConfig, Family, Forward, Netmask, Protocol, SchedFlags, SchedulerKind, ServiceConfig,
    ServiceKey, Timeouts, Tunnel, TunnelCsum, TunnelType,
};
use rvs_ipvsadm::cmd::{
    Command, ListTarget, MethodChoice, SyncRole, parse_args, with_default_method,
};

fn p(line: &str) -> Command {
    let argv: Vec<&str> = line.split_whitespace().collect();
    parse_args(&argv).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The message and the offending word of a refused line.
fn err(line: &str) -> (String, Option<String>) {
    let argv: Vec<&str> = line.split_whitespace().collect();
    match parse_args(&argv) {
        Ok(c) => panic!("{line}: accepted as {c:?}"),
        Err(e) => (e.message, e.index.map(|i| argv[i].to_string())),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(a: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(a),
        port,
    }
}

#[test]
fn add_service_defaults() {
    assert_eq!(
        p("-A -t 192.0.2.1:80"),
        Command::AddService(ServiceConfig::new(tcp("192.0.2.1", 80)))
    );
    assert_eq!(
        p("ipvsadm --add-service --tcp-service 192.0.2.1:80"),
        Command::AddService(ServiceConfig::new(tcp("192.0.2.1", 80)))
    );
    let Command::AddService(s) = p("-At 192.0.2.1:http -s rr -p") else {
        panic!()
    };
    assert_eq!(s.scheduler, SchedulerKind::Rr);
    assert_eq!(s.persistence, Some(360));
    assert_eq!(s.key, tcp("192.0.2.1", 80));
}

#[test]
fn persistent_optional_value() {
    let get = |l: &str| match p(l) {
        Command::AddService(s) | Command::EditService(s) => s.persistence,
        _ => panic!(),
    };
    assert_eq!(get("-A -t 192.0.2.1:80 -p -s rr"), Some(360));
    assert_eq!(get("-A -t 192.0.2.1:80 -p 300"), Some(300));
    assert_eq!(get("-A -t 192.0.2.1:80 -p300"), Some(300));
    assert_eq!(get("-A -t 192.0.2.1:80 --persistent=20"), Some(20));
    assert_eq!(get("-A -t 192.0.2.1:0 -p"), Some(360));
    assert_eq!(get("-E -t 192.0.2.1:80 -s sh"), None);
    assert_eq!(
        err("-A -t 192.0.2.1:80 -p 0").0,
        "invalid timeout value `0' specified"
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 -p 2678401").0,
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 -p abc").0,
        "invalid timeout value `abc' specified"
    );
}

#[test]
fn edit_service_resets_to_defaults() {
    let Command::EditService(s) = p("-E -t 192.0.2.1:80") else {
        panic!()
    };
    assert_eq!(s, ServiceConfig::new(tcp("192.0.2.1", 80)));
}

#[test]
fn service_options() {
    let Command::AddService(s) = p("-A -t 192.0.2.1:443 -s rr -p 360 -M 255.255.255.0 --pe sip")
    else {
        panic!()
    };
    assert_eq!(s.netmask, Netmask::V4(0xffff_ff00));
    assert_eq!(s.pe_name.as_deref(), Some("sip"));
    let Command::AddService(s) = p("-A -u 192.0.2.53:53 -s rr -o") else {
        panic!()
    };
    assert!(s.one_packet);
    let Command::AddService(s) = p("-A -f 7 -s mh -p 300 -b mh-fallback,mh-port") else {
        panic!()
    };
    assert_eq!(
        s.key,
        ServiceKey::FwMark {
            family: Family::V4,
            mark: 7
        }
    );
    assert_eq!(s.sched_flags, SchedFlags(3));
    let Command::AddService(s) = p("-A -f 7 -6 -s sh -b sh-port -p -M 64") else {
        panic!()
    };
    assert_eq!(
        s.key,
        ServiceKey::FwMark {
            family: Family::V6,
            mark: 7
        }
    );
    assert_eq!(s.netmask, Netmask::V6(64));
    let Command::AddService(s) = p("-A -t [2001:db8::80]:80 -p 60 -M 96") else {
        panic!()
    };
    assert_eq!(s.netmask, Netmask::V6(96));
    let Command::AddService(s) = p("-A --sctp-service 192.0.2.1:80 -b flag-1,flag-3") else {
        panic!()
    };
    assert_eq!(s.key.protocol(), Some(Protocol::Sctp));
    assert_eq!(s.sched_flags, SchedFlags(5));
    let Command::AddService(s) = p("-A -f 3 -o") else {
        panic!()
    };
    assert!(s.one_packet, "ops is allowed on fwmark services");
}

#[test]
fn dest_defaults_and_port_forcing() {
    let d = |l: &str| match p(l) {
        Command::AddDest { dest, .. } | Command::EditDest { dest, .. } => dest,
        c => panic!("{c:?}"),
    };
    let route = DestConfig {
        addr: ip("10.0.0.1"),
        port: 80,
        forward: Forward::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    };
    // -e resets every attribute not given.
    assert_eq!(d("-e -t 192.0.2.1:80 -r 10.0.0.1:8080"), route);
    assert_eq!(d("-a -t 192.0.2.1:80 -r 10.0.0.1"), route);
    // Masquerading keeps the port given, or takes the service's.
    assert_eq!(d("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m").port, 8080);
    assert_eq!(d("-a -t 192.0.2.1:80 -r 10.0.0.1 -m").port, 80);
    assert_eq!(
        d("-a -m -t 192.0.2.1:80 -r 10.0.0.1:8080").forward,
        Forward::Masq
    );
    // Tunnelling forces the port too; fwmark services keep it.
    assert_eq!(d("-a -i -t 192.0.2.1:80 -r 10.0.0.1:81").port, 80);
    assert_eq!(d("-a -f 1 -r 10.0.0.1:81 -g").port, 81);
    assert_eq!(d("-a -f 1 -r 10.0.0.1").port, 0);
    let full = d("-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 5 -x 100 -y 50");
    assert_eq!(
        (full.weight, full.u_threshold, full.l_threshold),
        (5, 100, 50)
    );
    assert_eq!(d("-at 192.0.2.1:80 -r 10.0.0.1:80 -w 0").weight, 0);
    assert_eq!(d("-at 192.0.2.1:80 -r 10.0.0.1:80 -w 65535").weight, 65535);
    let gue = d("-a -t 192.0.2.1:80 -r 2001:db8::1 -i --tun-type gue --tun-port 6080 --tun-csum");
    assert_eq!(
        gue.forward,
        Forward::Tunnel(Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            csum: TunnelCsum::Csum
        })
    );
    assert_eq!(gue.addr, ip("2001:db8::1"));
    let gre = d("-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-type gre --tun-nocsum");
    assert_eq!(
        gre.forward,
        Forward::Tunnel(Tunnel {
            kind: TunnelType::Gre,
            port: 0,
            csum: TunnelCsum::NoCsum
        })
    );
}

#[test]
fn unnamed_method_is_recorded_and_defaulted_elsewhere() {
    let method = |l: &str| match p(l) {
        Command::AddDest { method, .. } | Command::EditDest { method, .. } => method,
        c => panic!("{c:?}"),
    };
    for named in ["-m", "-g", "-i", "--masquerading", "--gatewaying", "--ipip"] {
        assert_eq!(
            method(&format!("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 {named}")),
            MethodChoice::Named,
            "{named}"
        );
    }
    // The port as written, before -g forced it; the service's when omitted,
    // as known where -r stands.
    assert_eq!(
        method("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -w 2"),
        MethodChoice::Omitted { port: 8080 }
    );
    assert_eq!(
        method("-e -t 192.0.2.1:80 -r 10.0.0.1"),
        MethodChoice::Omitted { port: 80 }
    );
    assert_eq!(
        method("-a -f 7 -r 10.0.0.1:81"),
        MethodChoice::Omitted { port: 81 }
    );

    let masq = |l: &str| match with_default_method(p(l), Forward::Masq) {
        Command::AddDest { dest, method, .. } | Command::EditDest { dest, method, .. } => {
            assert_eq!(method, MethodChoice::Named);
            (dest.forward, dest.port, dest.weight)
        }
        c => panic!("{c:?}"),
    };
    // No method: masq with the port written with -r (ipvsadm alone gives
    // -g with the service port).
    assert_eq!(
        masq("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -w 2"),
        (Forward::Masq, 8080, 2)
    );
    assert_eq!(
        masq("-e -t 192.0.2.1:80 -r 10.0.0.1"),
        (Forward::Masq, 80, 1)
    );
    assert_eq!(masq("-a -f 7 -r 10.0.0.1:81"), (Forward::Masq, 81, 1));
    // A named method is never replaced.
    assert_eq!(
        masq("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -g"),
        (Forward::Route, 80, 1)
    );
    assert_eq!(
        masq("-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -i").1,
        80,
        "tunnels keep ipvsadm's forced port"
    );
    // A route default behaves as ipvsadm: the same command back.
    let plain = p("-a -t 192.0.2.1:80 -r 10.0.0.1:8080");
    let Command::AddDest { service, dest, .. } = plain.clone() else {
        panic!()
    };
    assert_eq!(
        with_default_method(plain, Forward::Route),
        Command::AddDest {
            service,
            dest,
            method: MethodChoice::Named
        }
    );
    // Other commands pass through; mapping twice changes nothing.
    let del = p("-d -t 192.0.2.1:80 -r 10.0.0.1:8080");
    assert_eq!(with_default_method(del.clone(), Forward::Masq), del);
    let once = with_default_method(p("-a -t 192.0.2.1:80 -r 10.0.0.1:8080"), Forward::Masq);
    assert_eq!(with_default_method(once.clone(), Forward::Route), once);
}

#[test]
fn delete_zero_clear_set_save() {
    assert_eq!(
        p("-D -t 192.0.2.1:80"),
        Command::DeleteService(tcp("192.0.2.1", 80))
    );
    assert_eq!(
        p("-d -t 192.0.2.1:80 -r 10.0.0.1"),
        Command::DeleteDest {
            service: tcp("192.0.2.1", 80),
            addr: ip("10.0.0.1"),
            port: 80
        }
    );
    assert_eq!(p("-C"), Command::Clear);
    assert_eq!(p("--clear"), Command::Clear);
    assert_eq!(p("-Z"), Command::Zero(None));
    assert_eq!(
        p("-Z -u 192.0.2.1:53"),
        Command::Zero(Some(ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: ip("192.0.2.1"),
            port: 53
        }))
    );
    assert_eq!(
        p("--set 900 0 300"),
        Command::SetTimeouts(Timeouts {
            tcp: 900,
            tcp_fin: 0,
            udp: 300
        })
    );
    assert_eq!(p("-Sn"), Command::Save { numeric: true });
    assert_eq!(p("--save"), Command::Save { numeric: false });
    assert_eq!(p("-R"), Command::Restore);
    assert_eq!(p("-h"), Command::Help);
    assert_eq!(p("--version"), Command::Version);
}

#[test]
fn list_forms() {
    let l = |s: &str| match p(s) {
        Command::List(o) => o,
        c => panic!("{c:?}"),
    };
    let o = l("-Ln");
    assert!(o.numeric && o.target() == ListTarget::All);
    let o = l("-Lnc");
    assert!(o.connection && o.target() == ListTarget::Connections);
    let o = l("-l -n --stats --exact");
    assert!(o.stats && o.exact);
    let o = l("-L -n -t 192.0.2.1:80 --rate");
    assert_eq!(o.target(), ListTarget::Service(tcp("192.0.2.1", 80)));
    assert!(o.rate);
    assert_eq!(l("-L --timeout").target(), ListTarget::Timeout);
    assert_eq!(l("-L --daemon").target(), ListTarget::Daemon);
    let o = l("-Ln --thresholds --nosort --sort --tun-info -X --persistent-conn");
    assert!(o.thresholds && o.nosort && o.tun_info && o.exact && o.persistent_conn);
    let o = l("-Lnc --persistent-conn");
    assert!(o.format().persistent_conn);
}

#[test]
fn daemons() {
    let Command::StartDaemon(d) = p(
        "--start-daemon master --mcast-interface eth1 --syncid 5 --mcast-group 239.1.1.1 --mcast-port 9000 --mcast-ttl 2 --sync-maxlen 1400",
    ) else {
        panic!()
    };
    assert_eq!(d.role, SyncRole::Master);
    assert_eq!(d.mcast_ifn, "eth1");
    assert_eq!(d.syncid, 5);
    assert_eq!(d.mcast_group, Some(ip("239.1.1.1")));
    assert_eq!(
        (d.mcast_port, d.mcast_ttl, d.sync_maxlen),
        (Some(9000), Some(2), Some(1400))
    );
    let Command::StartDaemon(d) = p("--start-daemon backup") else {
        panic!()
    };
    assert_eq!(
        (d.role, d.mcast_ifn.as_str(), d.syncid),
        (SyncRole::Backup, "eth0", 0)
    );
    assert_eq!(
        p("--stop-daemon backup --syncid 3"),
        Command::StopDaemon {
            role: SyncRole::Backup,
            syncid: 3
        }
    );
    assert_eq!(
        err("--start-daemon primary").0,
        "illegal start-daemon parameter specified"
    );
    assert_eq!(err("--stop-daemon x").0, "illegal start_daemon specified");
    assert_eq!(
        err("--start-daemon master --mcast-group 10.0.0.1").0,
        "invalid IPv4 mcast-group `10.0.0.1'"
    );
    assert_eq!(
        err("--start-daemon master --mcast-group 2001:db8::1").0,
        "invalid IPv6 mcast-group `2001:db8::1'"
    );
    assert_eq!(
        err("--start-daemon master --mcast-port 0").0,
        "illegal mcast-port specified"
    );
    assert_eq!(
        err("--start-daemon master --mcast-ttl 256").0,
        "illegal mcast-ttl specified"
    );
    assert_eq!(
        err("--start-daemon master --sync-maxlen 65508").0,
        "illegal sync-maxlen specified"
    );
    assert_eq!(
        err("--start-daemon master --syncid 256").0,
        "illegal syncid specified"
    );
    assert_eq!(
        err("--stop-daemon master --mcast-ttl 2").0,
        "Illegal 'mcast-ttl' option with the 'stop-daemon' command"
    );
}

fn check(line: &str, message: &str, word: Option<&str>) {
    let (m, w) = err(line);
    assert_eq!(m, message, "{line}");
    assert_eq!(w.as_deref(), word, "{line}");
}

#[test]
fn refusals_of_options_and_arguments() {
    check(
        "-A -t 192.0.2.1:80 --bogus",
        "--bogus: unknown option",
        Some("--bogus"),
    );
    check(
        "-A -t 192.0.2.1:80 -z 1.2.3.4",
        "-z: unknown option",
        Some("-z"),
    );
    check("-A -t", "-t: missing argument", Some("-t"));
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 --weight",
        "--weight: missing argument",
        Some("--weight"),
    );
    check("-C --clear", "multiple commands specified", Some("--clear"));
    check(
        "-t 192.0.2.1:80 -A",
        "no command given: the first option must be a command such as -A, -a or -L (try -h)",
        Some("-t"),
    );
    check("", "no command given (try -h)", None);
    check(
        "-A -t 192.0.2.1:80 -t 192.0.2.1:81",
        "multiple 'service-address' options specified",
        Some("-t"),
    );
    check(
        "-A -t 192.0.2.1:80 extra",
        "unexpected argument extra",
        Some("extra"),
    );
    check(
        "-a -t 10.10.11.77:http -r 10.10.11.66:http (null) -w 100",
        "unexpected argument (null)",
        Some("(null)"),
    );
    check(
        "--set 900 120",
        "--set option requires 3 timeout values",
        Some("--set"),
    );
    check(
        "--set 900 120 x",
        "invalid timeout value `x' specified",
        Some("x"),
    );
    check("--set 900 120 300 1", "unexpected argument 1", Some("1"));
    check(
        "--set 900 120 2678401",
        "invalid timeout value `2678401' specified",
        Some("2678401"),
    );
    check(
        "-C --clear=1",
        "--clear: option does not take an argument",
        Some("--clear=1"),
    );
}

#[test]
fn refusals_of_addresses() {
    check(
        "-A -t 10\\.0\\.0\\.1:80",
        "illegal virtual server address[:port] specified",
        Some("10\\.0\\.0\\.1:80"),
    );
    check(
        "-A -t 80",
        "illegal virtual server address[:port] specified",
        Some("80"),
    );
    check(
        "-A -t 192.0.2.1:99999",
        "illegal virtual server address[:port] specified",
        Some("192.0.2.1:99999"),
    );
    check(
        "-A -t 192.0.2.1:nosuchsvc",
        "illegal virtual server address[:port] specified",
        Some("192.0.2.1:nosuchsvc"),
    );
    check(
        "-A -t [2001:db8::1]",
        "illegal virtual server address[:port] specified",
        Some("[2001:db8::1]"),
    );
    check(
        "-A -t 256.1.1.1:80",
        "illegal virtual server address[:port] specified",
        Some("256.1.1.1:80"),
    );
    check(
        "-A -t www.example.com:80",
        "host name `www.example.com' refused: rvs does no DNS lookups, give a numeric address",
        Some("www.example.com:80"),
    );
    check(
        "-a -t 192.0.2.1:80 -r ns1.example.net:https -g",
        "host name `ns1.example.net' refused: rvs does no DNS lookups, give a numeric address",
        Some("ns1.example.net:https"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1:x",
        "illegal real server address[:port] specified",
        Some("10.0.0.1:x"),
    );
    check("-A -f 0", "invalid fwmark value `0' specified", Some("0"));
    check(
        "-A -f abc",
        "invalid fwmark value `abc' specified",
        Some("abc"),
    );
    check("-A -6 -f 1", "-6 used before -f", Some("-6"));
    check(
        "-a -t 192.0.2.1:80 -r 2001:db8::1 -m",
        "Different address family is allowed only for tunneling servers",
        Some("-r"),
    );
}

#[test]
fn refusals_of_values() {
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -w 65536",
        "illegal weight specified",
        Some("65536"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -w -1",
        "illegal weight specified",
        Some("-1"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -w x",
        "illegal weight specified",
        Some("x"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -x 2147483648",
        "illegal u_threshold specified",
        Some("2147483648"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -y -5",
        "illegal l_threshold specified",
        Some("-5"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -x 10 -y 20",
        "Numerical result out of range",
        Some("-y"),
    );
    check(
        "-A -t 192.0.2.1:80 -s bogus",
        "Scheduler or persistence engine not found",
        Some("bogus"),
    );
    check(
        "-A -t 192.0.2.1:80 --pe http",
        "Scheduler or persistence engine not found",
        Some("http"),
    );
    check(
        "-A -t 192.0.2.1:80 -b sh-port",
        "incompatible scheduler flag `sh-port'",
        Some("sh-port"),
    );
    check(
        "-A -t 192.0.2.1:80 -s sh -b mh-port",
        "incompatible scheduler flag `mh-port'",
        Some("mh-port"),
    );
    check(
        "-A -t 192.0.2.1:80 -s mh -b mh-fallback,nope",
        "invalid scheduler flag `nope'",
        Some("mh-fallback,nope"),
    );
    check(
        "-A -t 192.0.2.1:80 -s rr -b ,",
        "invalid scheduler flag `,'",
        Some(","),
    );
    check(
        "-A -t 192.0.2.1:80 -p -M 255.255.255.300",
        "illegal virtual server persistent mask specified",
        Some("255.255.255.300"),
    );
    check(
        "-A -t [2001:db8::1]:80 -p -M 129",
        "illegal ipv6 netmask specified",
        Some("129"),
    );
    check(
        "-A -t [2001:db8::1]:80 -p -M 0",
        "illegal ipv6 netmask specified",
        Some("0"),
    );
    check(
        "-A -p -M 64 -t [2001:db8::1]:80",
        "-M used before the IPv6 service address; write -M after -t/-u/--sctp-service (or after -f N -6)",
        Some("-M"),
    );
    check(
        "-A -f 1 -p -M 64 -6",
        "-M used before the IPv6 service address; write -M after -t/-u/--sctp-service (or after -f N -6)",
        Some("-M"),
    );
}

#[test]
fn refusals_of_service_rules() {
    check(
        "-A -t 192.0.2.1 -s rr",
        "Zero port specified for non-persistent service",
        Some("-t"),
    );
    check(
        "-E -t 192.0.2.1:0",
        "Zero port specified for non-persistent service",
        Some("-t"),
    );
    check(
        "-A -t 192.0.2.1:53 -o",
        "One-Packet Scheduling is only for UDP virtual services",
        Some("-o"),
    );
    check(
        "-A --sctp-service 192.0.2.1:53 --ops",
        "One-Packet Scheduling is only for UDP virtual services",
        Some("--ops"),
    );
}

#[test]
fn refusals_of_the_legality_matrix() {
    check(
        "-A -s rr",
        "You need to supply the 'service-address' option for the 'add-service' command",
        None,
    );
    check(
        "-a -t 192.0.2.1:80 -m",
        "You need to supply the 'real-server' option for the 'add-server' command",
        None,
    );
    check(
        "-A -t 192.0.2.1:80 -w 1",
        "Illegal 'weight' option with the 'add-service' command",
        Some("-w"),
    );
    check(
        "-A -t 192.0.2.1:80 -n",
        "Illegal 'numeric' option with the 'add-service' command",
        Some("-n"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -s rr",
        "Illegal 'scheduler' option with the 'add-server' command",
        Some("-s"),
    );
    check(
        "-d -t 192.0.2.1:80 -r 10.0.0.1 -m",
        "Illegal 'forwarding-method' option with the 'delete-server' command",
        Some("-m"),
    );
    check(
        "-D -t 192.0.2.1:80 -s rr",
        "Illegal 'scheduler' option with the 'delete-service' command",
        Some("-s"),
    );
    check(
        "-C -t 192.0.2.1:80",
        "Illegal 'service-address' option with the 'flush' command",
        Some("-t"),
    );
    check(
        "-Z -n",
        "Illegal 'numeric' option with the 'zero' command",
        Some("-n"),
    );
    check(
        "-S --stats",
        "Illegal 'stats' option with the 'save' command",
        Some("--stats"),
    );
    check(
        "--set 1 2 3 -n",
        "Illegal 'numeric' option with the 'set' command",
        Some("-n"),
    );
    check(
        "-R -n",
        "Illegal 'numeric' option with the 'restore' command",
        Some("-n"),
    );
    check(
        "-L -w 1",
        "Illegal 'weight' option with the 'list' command",
        Some("-w"),
    );
    check(
        "-L -c -t 192.0.2.1:80",
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
        Some("-t"),
    );
    check(
        "-L --timeout --daemon",
        "The option 'daemon' conflicts with the 'timeout' option in the 'list' command",
        Some("--daemon"),
    );
    check("-Lc --stats", "options conflicts in the list command", None);
    check(
        "-L --timeout --persistent-conn",
        "options conflicts in the list command",
        None,
    );
}

#[test]
fn refusals_of_the_tunnel_matrix() {
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -m --tun-type gue",
        "Tunnel options conflict with forward method",
        Some("--tun-type"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-type foo",
        "illegal tunnel type specified",
        Some("foo"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-port 0",
        "illegal tunnel port specified",
        Some("0"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-port 6080",
        "Illegal 'tun-port' option with the 'ipip' tunnel type",
        Some("--tun-port"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-csum",
        "Illegal 'tun-csum' option with the 'ipip' tunnel type",
        Some("--tun-csum"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-type gue",
        "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        None,
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-type gue --tun-port 1 --tun-csum --tun-remcsum",
        "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type",
        Some("--tun-remcsum"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-type gre --tun-port 1",
        "Illegal 'tun-port' option with the 'gre' tunnel type",
        Some("--tun-port"),
    );
    check(
        "-a -t 192.0.2.1:80 -r 10.0.0.1 -i --tun-type gre --tun-remcsum",
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        Some("--tun-remcsum"),
    );
}
