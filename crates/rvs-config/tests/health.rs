//! Health-check settings in the configuration file: the documented format,
//! inheritance, and errors pointing at the key at fault.

use rvs_config::parse;
use rvs_core::probe::ProbeKind;

#[track_caller]
fn refused(text: &str, line: usize, column: usize, needle: &str) {
    let e = parse(text, "h.toml").expect_err("the file must be refused");
    assert_eq!(
        e.to_string(),
        format!("h.toml:{}:{}: {}", e.line, e.column, e.message)
    );
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "place of: {}",
        e.message
    );
    assert!(
        e.message.contains(needle),
        "{:?} lacks {needle:?}",
        e.message
    );
}

const FORMAT: &str = r#"
[[service]]
address = "127.0.0.1:8080"
scheduler = "rr"

[service.health]
quorum = 2
hysteresis = 1
inhibit_on_failure = true
sorry_server = "127.0.0.1:9000"
quorum_up = ["/bin/true", "web"]
quorum_down = ["/bin/true", "web"]
passive_fall = 2
passive_retry = 0.5
delay_loop = 1
connect_timeout = 1
retry = 0
rise = 2
fall = 1

[[service.server]]
address = "127.0.0.1:8081"
weight = 2
notify_up = ["/bin/true"]
notify_down = ["/bin/true"]
fall = 3

[[service.server.check]]
type = "tcp"
connect_ip = "127.0.0.1"
connect_port = 8081
bindto = "127.0.0.1"

[[service.server.check]]
type = "https"
path = "/health"
virtualhost = "www.example.test"
http_protocol = "1.1"
status_code = ["200-299", "301"]
regex = "ok"
regex_no_match = false
digest = "9e107d9d372bb6826bd81d3542a419d6"
sni_name = "www.example.test"
verify = false
ca_file = "/etc/rvs/ca.pem"
delay_loop = 0.25

[[service.server.check]]
type = "udp"
payload = "68656c6c6f"
require_reply = "6865XX"
min_reply_length = 0
max_reply_length = 255

[[service.server.check]]
type = "dns"
name = "example.test."
qtype = "A"

[[service.server.check]]
type = "misc"
misc_path = ["/usr/local/bin/check", "--fast"]
misc_timeout = 5
misc_dynamic = false
"#;

#[test]
fn documented_format_loads_with_inheritance() {
    let cfg = parse(FORMAT, "h.toml").unwrap_or_else(|e| panic!("{e}"));
    let plan = &cfg.services[0].health;
    let svc = plan.service.config;
    assert_eq!(
        (svc.quorum, svc.hysteresis, svc.inhibit_on_failure),
        (2, 1, true)
    );
    assert_eq!(svc.sorry_server, Some("127.0.0.1:9000".parse().unwrap()));
    assert_eq!(plan.service.quorum_up.as_deref().unwrap()[1], "web");
    let (addr, server) = &plan.servers[0];
    assert_eq!(*addr, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(server.config.weight, 2);
    assert_eq!(server.config.passive_fall, 2);
    assert_eq!(server.config.passive_retry_ms, 500);
    assert_eq!(server.probes.len(), 5);
    let tcp = server.config.checkers[0];
    // Service: delay_loop 1, retry 0, rise 2; server: fall 3.
    assert_eq!(
        (
            tcp.interval_ms,
            tcp.connect_timeout_ms,
            tcp.retry,
            tcp.rise,
            tcp.fall
        ),
        (1000, 1000, 0, 2, 3)
    );
    assert_eq!(server.config.checkers[1].interval_ms, 250);
    assert_eq!(server.config.checkers[4].connect_timeout_ms, 5000);
    assert!(matches!(&server.probes[1].kind, ProbeKind::Http(h) if h.tls.is_some()));
    // Written back and read again, nothing changes.
    let text = toml::to_string(&cfg.to_file()).unwrap();
    assert_eq!(parse(&text, "again.toml").unwrap(), cfg);
}

#[test]
fn bad_checker_keys_point_at_the_key() {
    let head = "[[service]]\naddress = \"127.0.0.1:80\"\n[[service.server]]\naddress = \"127.0.0.1:81\"\n[[service.server.check]]\n";
    refused(
        &format!("{head}type = \"tcp\"\nbogus = 1\n"),
        7,
        1,
        "unknown field `bogus`",
    );
    refused(&format!("{head}type = \"ftp\"\n"), 6, 8, "unknown variant");
    refused(
        &format!("{head}type = \"tcp\"\npath = \"/\"\n"),
        7,
        8,
        "not a key of tcp checks",
    );
    refused(
        &format!("{head}type = \"http\"\nregex = \"(\"\n"),
        7,
        9,
        "invalid regex",
    );
    refused(
        &format!("{head}type = \"http\"\ndigest = \"abc\"\n"),
        7,
        10,
        "32 hex digits",
    );
    refused(
        &format!("{head}type = \"http\"\nstatus_code = [\"200\", \"99\"]\n"),
        7,
        23,
        "invalid status code",
    );
    refused(
        &format!("{head}type = \"dns\"\nqtype = \"PTR\"\n"),
        7,
        9,
        "unknown qtype",
    );
    refused(
        &format!("{head}type = \"udp\"\npayload = \"6g\"\n"),
        7,
        11,
        "invalid payload",
    );
    refused(
        &format!("{head}type = \"tcp\"\ndelay_loop = -1\n"),
        7,
        14,
        "at least 0",
    );
    refused(
        &format!("{head}type = \"tcp\"\nrise = 0\n"),
        7,
        8,
        "rise must be at least 1",
    );
    refused(
        &format!("{head}type = \"tcp\"\ndelay_loop = nan\n"),
        7,
        14,
        "finite",
    );
}

#[test]
fn bad_service_health_points_at_the_key() {
    let head = "[[service]]\naddress = \"127.0.0.1:80\"\n[service.health]\n";
    refused(
        &format!("{head}quorum = 0\n"),
        4,
        10,
        "quorum must be at least 1",
    );
    refused(
        &format!("{head}sorry_server = \"x\"\n"),
        4,
        16,
        "invalid sorry_server",
    );
    refused(&format!("{head}quorum_up = []\n"), 4, 13, "non-empty list");
    refused(
        &format!("{head}flap = true\n"),
        4,
        1,
        "unknown field `flap`",
    );
    refused("[health]\nmax_in_flight = 0\n", 2, 17, "max_in_flight");
}
