//! SIGHUP re-reads `[[vrrp_instance]]` (root only, two rvsd directors in
//! network namespaces on one bridge): a priority raised on the backup makes
//! it preempt, one lowered on the master makes it yield, a virtual address
//! added on the master appears without a state change, and a bad file
//! changes nothing and is reported with FILE:LINE:COLUMN.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::Dir;
use common::logs;
use common::pair::{Lan, has_addr};
use rvs_testkit::{ChildGuard, Netns, root_or_skip, wait_for};

const VIP: &str = "192.0.2.120";
const VIP2: &str = "192.0.2.121";

fn has(ns: &Netns, vip: &str) -> bool {
    has_addr(ns, "eth0", vip)
}

fn count(p: &Path, what: &str) -> usize {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .matches(what)
        .count()
}

fn config(priority: u8, vips: &[&str]) -> String {
    let vips: Vec<String> = vips.iter().map(|v| format!("\"{v}\"")).collect();
    format!(
        r#"
[[vrrp_instance]]
name = "VI_R"
interface = "eth0"
virtual_router_id = 71
priority = {priority}
advert_int = 0.1
virtual_ipaddress = [{}]
skip_check_adv_addr = true
"#,
        vips.join(", ")
    )
}

/// rvsd in `ns` reading `conf`; its standard error goes to `log`.
fn start_rvsd(ns: &Netns, dir: &Dir, name: &str, conf: &Path) -> (ChildGuard, PathBuf) {
    let log = dir.0.join(format!("{name}.log"));
    let child = ns
        .command(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--config"])
        .arg(conf)
        .args(["--no-metrics", "--control"])
        .arg(dir.0.join(format!("{name}.sock")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (ChildGuard(child), log)
}

fn hup(c: &ChildGuard) {
    let st = std::process::Command::new("kill")
        .args(["-HUP", &c.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn sighup_moves_priority_and_addresses_without_a_restart() {
    if !root_or_skip("sighup_moves_priority_and_addresses_without_a_restart") {
        return;
    }
    let lan = Lan::new("fr", "h", 2);
    let dir = Dir::new();
    let (a, b) = (&lan.hosts[0], &lan.hosts[1]);
    let aconf = dir.file("a.toml", &config(200, &[VIP]));
    let bconf = dir.file("b.toml", &config(100, &[VIP]));
    let (ra, alog) = start_rvsd(a, &dir, "a", &aconf);
    assert!(
        wait_for(Duration::from_secs(10), || has(a, VIP)),
        "{}",
        logs(&[&alog])
    );
    let (rb, blog) = start_rvsd(b, &dir, "b", &bconf);
    assert!(
        wait_for(Duration::from_secs(10), || count(&blog, "BACKUP") > 0),
        "{}",
        logs(&[&alog, &blog])
    );
    assert!(has(a, VIP) && !has(b, VIP));

    // The backup's priority raised above the master's: it preempts.
    std::fs::write(&bconf, config(250, &[VIP])).unwrap();
    hup(&rb);
    assert!(
        wait_for(Duration::from_secs(5), || has(b, VIP) && !has(a, VIP)),
        "the backup did not preempt after SIGHUP\n{}",
        logs(&[&alog, &blog])
    );
    assert!(
        count(&blog, "VRRP instance reconfigured") == 1,
        "{}",
        logs(&[&blog])
    );

    // Lowered again below the other: the master yields.
    std::fs::write(&bconf, config(50, &[VIP])).unwrap();
    hup(&rb);
    assert!(
        wait_for(Duration::from_secs(5), || has(a, VIP) && !has(b, VIP)),
        "the master did not yield after SIGHUP\n{}",
        logs(&[&alog, &blog])
    );

    // A second address on the master: added at once, no state change.
    let changes = count(&alog, "VRRP state");
    std::fs::write(&aconf, config(200, &[VIP, VIP2])).unwrap();
    hup(&ra);
    assert!(
        wait_for(Duration::from_secs(5), || has(a, VIP2)),
        "{}",
        logs(&[&alog])
    );
    assert!(has(a, VIP) && !has(b, VIP2));
    // And removed again.
    std::fs::write(&aconf, config(200, &[VIP])).unwrap();
    hup(&ra);
    assert!(
        wait_for(Duration::from_secs(5), || !has(a, VIP2)),
        "{}",
        logs(&[&alog])
    );
    // The address given another prefix length: re-added with it.
    std::fs::write(&aconf, config(200, &[&format!("{VIP}/24")])).unwrap();
    hup(&ra);
    assert!(
        wait_for(Duration::from_secs(5), || a
            .ip(&["-j", "addr", "show", "dev", "eth0"])
            .is_ok_and(
                |s| s.contains(&format!("\"local\":\"{VIP}\",\"prefixlen\":24"))
            )),
        "{}",
        logs(&[&alog])
    );
    assert_eq!(count(&alog, "VRRP state"), changes, "{}", logs(&[&alog]));

    // A bad file: refused with its location, nothing changes.
    std::fs::write(
        &aconf,
        config(200, &[VIP]).replace("priority = 200", "priority = 0"),
    )
    .unwrap();
    hup(&ra);
    assert!(
        wait_for(Duration::from_secs(5), || count(&alog, "reload refused")
            > 0),
        "{}",
        logs(&[&alog])
    );
    let text = std::fs::read_to_string(&alog).unwrap();
    let line = text.lines().find(|l| l.contains("reload refused")).unwrap();
    assert!(
        line.contains("a.toml:6:12: priority must be 1..255"),
        "{line}"
    );
    assert!(has(a, VIP) && !has(b, VIP));
    assert_eq!(count(&alog, "VRRP state"), changes);

    // The instance removed from the file: the master stops (priority 0)
    // and the other takes over after its skew time.
    std::fs::write(&aconf, "").unwrap();
    hup(&ra);
    assert!(
        wait_for(Duration::from_secs(3), || has(b, VIP) && !has(a, VIP)),
        "{}",
        logs(&[&alog, &blog])
    );
}

fn sync_config(role: &str, sync_id: u8) -> String {
    format!(
        r#"
[dataplane]
mode = "packet"
interfaces = ["eth0"]
workers = 1

[sync]
role = "{role}"
interface = "eth0"
sync_id = {sync_id}
"#
    )
}

/// `[sync]` changed in the file: SIGHUP restarts the sync daemon with the
/// new role and id (as `-L --daemon` shows); an unchanged `[sync]` leaves
/// it running.
#[test]
fn sighup_restarts_the_sync_daemon_when_sync_changes() {
    if !root_or_skip("sighup_restarts_the_sync_daemon_when_sync_changes") {
        return;
    }
    let lan = Lan::new("fr", "s", 2);
    let dir = Dir::new();
    let ns = &lan.hosts[0];
    let conf = dir.file("s.toml", &sync_config("master", 1));
    let (rvsd, log) = start_rvsd(ns, &dir, "s", &conf);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rvs_control::Client::new(dir.0.join("s.sock"));
    let listing = || {
        rt.block_on(client.daemons())
            .map(|l| l.daemons.iter().map(|d| d.list_line()).collect::<String>())
            .unwrap_or_default()
    };
    assert!(
        wait_for(Duration::from_secs(10), || listing()
            == "master sync daemon (mcast=eth0, syncid=1)\n"),
        "{}\n{}",
        listing(),
        logs(&[&log])
    );
    std::fs::write(&conf, sync_config("backup", 2)).unwrap();
    hup(&rvsd);
    assert!(
        wait_for(Duration::from_secs(10), || listing()
            == "backup sync daemon (mcast=eth0, syncid=2)\n"),
        "{}\n{}",
        listing(),
        logs(&[&log])
    );
    assert_eq!(count(&log, "sync daemon restarted"), 1);
    // The same [sync] again: nothing restarts.
    hup(&rvsd);
    assert!(wait_for(Duration::from_secs(10), || count(
        &log, "reloaded"
    ) >= 2));
    assert_eq!(count(&log, "sync daemon restarted"), 1, "{}", logs(&[&log]));
    assert_eq!(listing(), "backup sync daemon (mcast=eth0, syncid=2)\n");
}
