//! `[[vrrp_sync_group]]` and `virtual_ipaddress = ["ADDR/P dev IF"]`:
//! keepalived's keywords and located errors.

const TWO: &str = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.100/24"]

[[vrrp_instance]]
name = "VI_2"
interface = "eth1"
virtual_router_id = 52
virtual_ipaddress = ["198.51.100.1/24"]
"#;

fn err(text: &str) -> String {
    rvs_config::parse(text, "f.toml").unwrap_err().to_string()
}

#[test]
fn a_group_names_its_instances() {
    let text = format!(
        "{TWO}\n[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_2\", \"VI_1\"]\n\
         notify_master = \"/usr/local/bin/master G1\"\nnotify = [\"/usr/local/bin/any\"]\n"
    );
    let c = rvs_config::parse(&text, "f.toml").unwrap();
    assert_eq!(c.vrrp_sync_groups.len(), 1);
    let g = &c.vrrp_sync_groups[0];
    assert_eq!(g.name, "G1");
    assert_eq!(g.members, vec![1, 0]);
    assert_eq!(
        g.notify[0].as_deref(),
        Some(&["/usr/local/bin/master".to_string(), "G1".to_string()][..])
    );
    assert!(g.notify[1].is_none() && g.notify[2].is_none() && g.notify[3].is_none());
    assert_eq!(
        g.notify[4].as_deref(),
        Some(&["/usr/local/bin/any".to_string()][..])
    );
    // Written back, it reads the same.
    let again = rvs_config::parse(&toml::to_string(&c.to_file()).unwrap(), "again").unwrap();
    assert_eq!(again.vrrp_sync_groups, c.vrrp_sync_groups);
}

#[test]
fn group_errors_point_at_the_value() {
    // Line 14 is `[[vrrp_sync_group]]`.
    let g = |body: &str| err(&format!("{TWO}\n[[vrrp_sync_group]]\n{body}"));
    assert_eq!(
        g("name = \"G1\"\ngroup = [\"VI_1\", \"VI_9\"]\n"),
        "f.toml:16:18: no [[vrrp_instance]] is named \"VI_9\""
    );
    assert_eq!(
        g("name = \"G1\"\ngroup = [\"VI_1\", \"VI_1\"]\n"),
        "f.toml:16:18: \"VI_1\" is listed twice"
    );
    assert_eq!(
        g("name = \"G1\"\ngroup = []\n"),
        "f.toml:16:9: group needs at least one vrrp_instance name"
    );
    assert_eq!(
        g("name = \"\"\ngroup = [\"VI_1\"]\n"),
        "f.toml:15:8: name must not be empty"
    );
    assert_eq!(
        g("name = \"G1\"\ngroup = [\"VI_1\"]\nnotify_fault = \"\"\n"),
        "f.toml:17:16: notify_fault needs a command"
    );
    assert!(
        g("name = \"G1\"\ngroup = [\"VI_1\"]\npriority = 3\n")
            .starts_with("f.toml:17:1: unknown field `priority`, expected one of `name`, `group`")
    );
    // One instance in two groups: the second mention is at fault.
    assert_eq!(
        g(
            "name = \"G1\"\ngroup = [\"VI_1\"]\n\n[[vrrp_sync_group]]\nname = \"G2\"\ngroup = [\"VI_2\", \"VI_1\"]\n"
        ),
        "f.toml:20:18: vrrp_instance \"VI_1\" is already in vrrp_sync_group \"G1\": an instance belongs to one group at most"
    );
    assert_eq!(
        g(
            "name = \"G1\"\ngroup = [\"VI_1\"]\n\n[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_2\"]\n"
        ),
        "f.toml:19:8: duplicate vrrp_sync_group \"G1\""
    );
}

#[test]
fn a_virtual_address_can_name_its_interface() {
    let text = "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n\
                virtual_ipaddress = [\"192.0.2.100/24\", \"198.51.100.1/24 dev eth1\", \" 198.51.100.2  dev  eth1 \"]\n";
    let c = rvs_config::parse(text, "f.toml").unwrap();
    let i = &c.vrrp_instances[0];
    assert_eq!(i.vip_prefix, vec![24, 24, 32]);
    assert_eq!(i.vip_interfaces, vec!["eth0", "eth1", "eth1"]);
    assert_eq!(
        i.vrrp.vips,
        ["192.0.2.100", "198.51.100.1", "198.51.100.2"]
            .map(|a| a.parse::<std::net::IpAddr>().unwrap())
    );
    let bad = |v: &str| {
        err(&format!(
            "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_ipaddress = [\"{v}\"]\n"
        ))
    };
    assert_eq!(
        bad("198.51.100.1/24 dev"),
        "f.toml:5:22: \"198.51.100.1/24 dev\": dev needs an interface name"
    );
    assert_eq!(
        bad("198.51.100.1/24 dev eth1 dev eth2"),
        "f.toml:5:22: \"198.51.100.1/24 dev eth1 dev eth2\": dev is given twice"
    );
    assert_eq!(
        bad("198.51.100.1/24 label eth1:1"),
        "f.toml:5:22: \"198.51.100.1/24 label eth1:1\": \"label\" is not supported here (ADDR[/PREFIX] [dev IFNAME])"
    );
    assert!(
        bad("198.51.100.1 dev a/b").starts_with("f.toml:5:22: \"198.51.100.1 dev a/b\": "),
        "{}",
        bad("198.51.100.1 dev a/b")
    );
}
