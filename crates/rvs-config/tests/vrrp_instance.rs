//! `[[vrrp_instance]]`: keepalived's keywords, defaults and located errors.

const GOOD: &str = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
advert_int = 0.2
virtual_ipaddress = ["203.0.113.10", "203.0.113.11/24"]
nopreempt = true
notify_master = "/usr/local/bin/became-master VI_1"
notify = ["/usr/local/bin/any"]

[[vrrp_instance.track_interface]]
name = "eth1"
weight = -20
"#;

#[test]
fn keepalived_keywords_map_to_the_state_machine() {
    let c = rvs_config::parse(GOOD, "f.toml").unwrap();
    let i = &c.vrrp_instances[0];
    assert_eq!(i.name, "VI_1");
    assert_eq!(i.vrrp.vrid, 51);
    assert_eq!(i.vrrp.priority, 150);
    assert_eq!(i.vrrp.advert_int_ms, 200);
    assert!(!i.vrrp.preempt);
    assert_eq!(i.vip_prefix, vec![32, 24]);
    assert_eq!(i.version, 3);
    assert_eq!(i.vrrp.track.len(), 1);
    assert_eq!(i.vrrp.track[0].weight, -20);
    assert_eq!(
        i.notify[0].as_deref(),
        Some(
            &[
                "/usr/local/bin/became-master".to_string(),
                "VI_1".to_string()
            ][..]
        )
    );
    assert!(i.vrrp.check_ttl);
    // Written back, it reads the same.
    let text = toml::to_string(&c.to_file()).unwrap();
    let again = rvs_config::parse(&text, "again.toml").unwrap();
    assert_eq!(again.vrrp_instances, c.vrrp_instances);
}

#[test]
fn defaults_are_keepalived_s() {
    let c = rvs_config::parse(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nvirtual_ipaddress = [\"192.0.2.1\"]\n",
        "f",
    )
    .unwrap();
    let i = &c.vrrp_instances[0];
    assert_eq!(i.vrrp.priority, 100);
    assert_eq!(i.vrrp.advert_int_ms, 1000);
    assert!(i.vrrp.preempt);
    assert_eq!(i.vrrp.garp.master_delay_ms, 5000);
    assert_eq!(i.vrrp.garp.master_repeat, 5);
}

fn err(text: &str) -> String {
    rvs_config::parse(text, "f.toml").unwrap_err().to_string()
}

#[test]
fn errors_point_at_the_value() {
    let base = "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n";
    assert_eq!(
        err(&format!(
            "{base}virtual_ipaddress = [\"192.0.2.1\", \"nope\"]\n"
        )),
        "f.toml:5:35: \"nope\" is not an address (ADDR or ADDR/PREFIX)"
    );
    assert_eq!(
        err(&format!(
            "{base}virtual_ipaddress = [\"192.0.2.1\"]\nadvert_int = 0.005\n"
        )),
        "f.toml:6:14: advert_int must be between 0.01 and 40.95 seconds (VRRPv3 centiseconds)"
    );
    assert_eq!(
        err(&format!(
            "{base}virtual_ipaddress = [\"192.0.2.1\"]\nversion = 2\nadvert_int = 0.5\n"
        )),
        "f.toml:7:14: advert_int must be whole seconds 1..255 with version = 2"
    );
    assert!(
        err(&format!(
            "{base}virtual_ipaddress = [\"192.0.2.1\"]\nbogus = 1\n"
        ))
        .starts_with("f.toml:6:1: unknown field `bogus`")
    );
    let two = format!(
        "{base}virtual_ipaddress = [\"192.0.2.1\"]\n[[vrrp_instance]]\nname = \"b\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nvirtual_ipaddress = [\"192.0.2.2\"]\n"
    );
    assert_eq!(
        err(&two),
        "f.toml:9:21: virtual_router_id 1 is already used on eth0 by vrrp_instance \"a\""
    );
}

#[test]
fn sync_follows_a_named_instance() {
    let c = rvs_config::parse(
        &format!("{GOOD}\n[sync]\nrole = \"vrrp\"\ninterface = \"eth1\"\nsync_id = 3\n"),
        "f",
    )
    .unwrap();
    let s = c.sync.as_ref().unwrap();
    assert_eq!(s.followed(&c.vrrp_instances), Some("VI_1"));
    assert_eq!(s.sync_id, 3);
    assert_eq!(
        err(&format!(
            "{GOOD}\n[sync]\nrole = \"vrrp\"\nvrrp_instance = \"VI_9\"\ninterface = \"eth1\"\n"
        )),
        "f.toml:19:17: no [[vrrp_instance]] is named \"VI_9\""
    );
    assert_eq!(
        err("[sync]\nrole = \"master\"\ninterface = \"eth1\"\nmcast_group = \"192.0.2.1\"\n"),
        "f.toml:4:15: 192.0.2.1 is not a multicast address"
    );
    assert!(err("[sync]\nrole = \"primary\"\ninterface = \"eth1\"\n").starts_with("f.toml:2:8: "));
}

#[test]
fn track_service_follows_the_interfaces() {
    let c = rvs_config::parse(
        &format!(
            "{GOOD}\n[[vrrp_instance.track_service]]\naddress = \"203.0.113.10:80\"\nquorum = 2\nweight = -30\n"
        ),
        "f",
    )
    .unwrap();
    let i = &c.vrrp_instances[0];
    assert_eq!(i.track_interfaces, vec!["eth1".to_string()]);
    assert_eq!(i.track_services.len(), 1);
    assert_eq!(i.track_services[0].1, 2);
    assert_eq!(i.vrrp.track.len(), 2);
    assert_eq!(i.vrrp.track[1].weight, -30);
    assert_eq!(
        err(&format!(
            "{GOOD}\n[[vrrp_instance.track_service]]\nprotocol = \"icmp\"\naddress = \"203.0.113.10:80\"\n"
        )),
        "f.toml:18:12: protocol \"icmp\": use tcp, udp or sctp"
    );
}
