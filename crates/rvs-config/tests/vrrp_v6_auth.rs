//! `[[vrrp_instance]]` over IPv6 (one family per instance) and VRRPv2
//! `auth_type = "PASS"`: what is accepted, and located errors.

fn err(text: &str) -> String {
    rvs_config::parse(text, "f.toml").unwrap_err().to_string()
}

const BASE: &str = "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n";

#[test]
fn an_ipv6_instance_gets_an_ipv6_source_and_full_prefixes() {
    let c = rvs_config::parse(
        &format!(
            "{BASE}virtual_ipaddress = [\"2001:db8::10\", \"2001:db8::11/64\"]\n\
             unicast_peer = [\"fe80::2\", \"2001:db8::2\"]\n"
        ),
        "f",
    )
    .unwrap();
    let i = &c.vrrp_instances[0];
    assert!(i.vrrp.primary_addr.is_ipv6() && i.vrrp.primary_addr.is_unspecified());
    assert_eq!(i.vip_prefix, vec![128, 64]);
    assert_eq!(i.unicast_peers.len(), 2);
    assert_eq!(i.version, 3);
    assert_eq!(i.auth_pass, None);
    // Written back, it reads the same.
    let text = toml::to_string(&c.to_file()).unwrap();
    assert_eq!(
        rvs_config::parse(&text, "again").unwrap().vrrp_instances,
        c.vrrp_instances
    );
}

#[test]
fn one_vrid_may_serve_both_families_on_one_interface() {
    let c = rvs_config::parse(
        &format!(
            "{BASE}virtual_ipaddress = [\"192.0.2.10\"]\n\
             [[vrrp_instance]]\nname = \"b\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
             virtual_ipaddress = [\"2001:db8::10\"]\n"
        ),
        "f",
    )
    .unwrap();
    assert_eq!(c.vrrp_instances.len(), 2);
}

#[test]
fn mixed_families_are_refused_where_written() {
    assert_eq!(
        err(&format!(
            "{BASE}virtual_ipaddress = [\"192.0.2.10\", \"2001:db8::10\"]\n"
        )),
        "f.toml:5:36: 2001:db8::10 is IPv6 but 192.0.2.10 is IPv4: one address family per \
         instance (as keepalived); put the IPv6 addresses in a [[vrrp_instance]] of their own"
    );
    assert_eq!(
        err(&format!(
            "{BASE}virtual_ipaddress = [\"2001:db8::10\"]\nunicast_src_ip = \"192.0.2.1\"\n"
        )),
        "f.toml:6:18: 192.0.2.1 is not IPv6, the family of virtual_ipaddress"
    );
    assert_eq!(
        err(&format!(
            "{BASE}virtual_ipaddress = [\"192.0.2.10\"]\nunicast_peer = [\"192.0.2.2\", \"2001:db8::2\"]\n"
        )),
        "f.toml:6:30: 2001:db8::2 is not IPv4, the family of virtual_ipaddress"
    );
    assert_eq!(
        err(&format!(
            "{BASE}virtual_ipaddress = [\"2001:db8::10\"]\nversion = 2\n"
        )),
        "f.toml:6:11: VRRP version 2 is IPv4 only (RFC 3768): use version = 3 for IPv6 addresses"
    );
}

#[test]
fn pass_authentication_is_padded_and_checked() {
    let v2 = format!("{BASE}virtual_ipaddress = [\"192.0.2.10\"]\nversion = 2\n");
    let c = rvs_config::parse(
        &format!("{v2}auth_type = \"PASS\"\nauth_pass = \"s3cret\"\n"),
        "f",
    )
    .unwrap();
    assert_eq!(c.vrrp_instances[0].auth_pass, Some(*b"s3cret\0\0"));
    // keepalived writes the keyword in either case.
    let c = rvs_config::parse(
        &format!("{v2}auth_type = \"pass\"\nauth_pass = \"12345678\"\n"),
        "f",
    )
    .unwrap();
    assert_eq!(c.vrrp_instances[0].auth_pass, Some(*b"12345678"));

    assert!(
        err(&format!("{v2}auth_type = \"AH\"\nauth_pass = \"x\"\n"))
            .starts_with("f.toml:7:13: auth_type = \"AH\" (IPsec AH) is deprecated")
    );
    assert_eq!(
        err(&format!(
            "{v2}auth_type = \"PASS\"\nauth_pass = \"123456789\"\n"
        )),
        "f.toml:8:13: auth_pass must be 1 to 8 bytes (9 given; keepalived would silently keep \
         only the first 8, rvs refuses rather than guess)"
    );
    assert_eq!(
        err(&format!("{v2}auth_type = \"PASS\"\n")),
        "f.toml:7:13: auth_type = \"PASS\" needs auth_pass"
    );
    assert_eq!(
        err(&format!("{v2}auth_pass = \"x\"\n")),
        "f.toml:7:13: auth_pass needs auth_type = \"PASS\""
    );
    assert!(
        err(&format!(
            "{BASE}virtual_ipaddress = [\"192.0.2.10\"]\nauth_type = \"PASS\"\nauth_pass = \"x\"\n"
        ))
        .starts_with("f.toml:6:13: authentication exists in VRRP version 2 only")
    );
    assert!(
        err(&format!("{v2}auth_type = \"MD5\"\nauth_pass = \"x\"\n"))
            .starts_with("f.toml:7:13: auth_type \"MD5\": use \"PASS\"")
    );
}
