//! `[sync]`'s rvs resynchronisation keys: off by default, their defaults,
//! and located errors.

const INSTANCE: &str = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["203.0.113.10"]
"#;

fn err(text: &str) -> String {
    rvs_config::parse(text, "f.toml").unwrap_err().to_string()
}

#[test]
fn resync_is_off_by_default_and_has_defaults() {
    let c = rvs_config::parse(
        &format!("{INSTANCE}\n[sync]\nrole = \"vrrp\"\ninterface = \"eth0\"\n"),
        "f.toml",
    )
    .unwrap();
    let s = c.sync.unwrap();
    assert!(!s.resync);
    assert_eq!(s.resync_port, None);
    assert_eq!(s.resync_timeout.0, 10_000);

    let c = rvs_config::parse(
        &format!(
            "{INSTANCE}\n[sync]\nrole = \"vrrp\"\ninterface = \"eth0\"\nresync = true\n\
             resync_port = 9000\nresync_timeout = 2.5\n"
        ),
        "f.toml",
    )
    .unwrap();
    let s = c.sync.unwrap();
    assert!(s.resync);
    assert_eq!(s.resync_port, Some(9000));
    assert_eq!(s.resync_timeout.0, 2500);
}

#[test]
fn bad_resync_keys_are_located() {
    let base = "[sync]\nrole = \"backup\"\ninterface = \"eth0\"\nresync = true\n";
    assert_eq!(
        err(&format!("{base}resync_port = 8848\n")),
        "f.toml:5:15: resync_port 8848 is the sync port: choose another"
    );
    assert_eq!(
        err(&format!("{base}port = 9000\nresync_port = 9000\n")),
        "f.toml:6:15: resync_port 9000 is the sync port: choose another"
    );
    assert_eq!(
        err(&format!("{base}resync_port = 0\n")),
        "f.toml:5:15: resync_port must be 1..65535"
    );
    assert_eq!(
        err(&format!("{base}resync_timeout = 0\n")),
        "f.toml:5:18: resync_timeout must be between 0.1 and 3600 seconds"
    );
    assert!(err(&format!("{base}resync = \"yes\"\n")).starts_with("f.toml:"));
}
