//! The sync daemons between two namespaces on a veth pair (root only):
//! a connection the master director establishes appears in the backup
//! director, through 224.0.0.81:8848 by default.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_core::director::{Director, DirectorConfig, PacketInfo, Verdict};
use rvs_core::model::{DestConfig, Forward, Protocol, ServiceConfig, ServiceKey};
use rvs_core::sctp::SctpEvent;
use rvs_core::state::TcpFlags;
use rvs_ha::sync::{DirectorAccess, Role, SyncDaemonConfig, SyncDaemons};
use rvs_testkit::{Netns, root_or_skip, wait_for};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("203.0.113.10"),
        port: 80,
    }
}

fn director() -> Arc<Mutex<Director>> {
    let mut d = Director::new(DirectorConfig::default());
    d.add_service(ServiceConfig::new(key())).unwrap();
    d.add_dest(
        &key(),
        DestConfig {
            addr: ip("198.51.100.11"),
            port: 80,
            forward: Forward::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        },
    )
    .unwrap();
    Arc::new(Mutex::new(d))
}

fn access(d: &Arc<Mutex<Director>>) -> DirectorAccess {
    let d = d.clone();
    let epoch = std::time::Instant::now();
    Arc::new(move |f: &mut dyn FnMut(&mut Director, u64)| {
        f(&mut d.lock().unwrap(), epoch.elapsed().as_millis() as u64)
    })
}

fn packet(flags: TcpFlags) -> PacketInfo {
    PacketInfo {
        proto: Protocol::Tcp,
        src: ip("192.0.2.10"),
        sport: 40000,
        dst: ip("203.0.113.10"),
        dport: 80,
        fwmark: 0,
        tcp: flags,
        sctp: SctpEvent::Data,
        len: 52,
    }
}

#[test]
fn backup_learns_the_masters_connection() {
    if !root_or_skip("backup_learns_the_masters_connection") {
        return;
    }
    let tag = format!("sy{}", std::process::id());
    let a = Netns::new(&format!("{tag}a")).unwrap();
    let b = Netns::new(&format!("{tag}b")).unwrap();
    a.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        b.name(),
    ])
    .unwrap();
    for (ns, addr) in [(&a, "192.0.2.1/24"), (&b, "192.0.2.2/24")] {
        ns.ip(&["addr", "add", addr, "dev", "eth0"]).unwrap();
        ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    }
    let (da, db) = (director(), director());
    let (aa, ab) = (access(&da), access(&db));
    let master = a
        .within(move || {
            let m = SyncDaemons::new(aa);
            m.start(SyncDaemonConfig::new(Role::Master, "eth0", 7))
                .map(|()| m)
        })
        .unwrap()
        .unwrap();
    let backup = b
        .within(move || {
            let s = SyncDaemons::new(ab);
            s.start(SyncDaemonConfig::new(Role::Backup, "eth0", 7))
                .map(|()| s)
        })
        .unwrap()
        .unwrap();
    assert_eq!(master.list(), "master sync daemon (mcast=eth0, syncid=7)\n");
    assert_eq!(backup.list(), "backup sync daemon (mcast=eth0, syncid=7)\n");
    assert!(matches!(
        master.start(SyncDaemonConfig::new(Role::Master, "eth0", 1)),
        Err(rvs_ha::sync::StartError::Running(Role::Master))
    ));
    assert!(da.lock().unwrap().sync_master().is_some());

    for (t, f) in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::ACK]
        .into_iter()
        .enumerate()
    {
        let v = da.lock().unwrap().inbound(&packet(f), t as u64);
        assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    }
    assert_eq!(db.lock().unwrap().conn_count(), 0);
    // A partly filled message leaves 2 s after its first record.
    assert!(
        wait_for(Duration::from_secs(5), || db.lock().unwrap().conn_count()
            == 1),
        "the backup never learnt the connection; master counters {:?}, backup {:?}",
        master.counters(Role::Master),
        backup.counters(Role::Backup)
    );
    let c = db.lock().unwrap().connections().remove(0);
    assert_eq!((c.caddr, c.cport), (ip("192.0.2.10"), 40000));
    assert_eq!((c.daddr, c.dport), (ip("198.51.100.11"), 80));
    assert_eq!(c.state, "ESTABLISHED");

    assert!(master.stop(Role::Master));
    assert!(!master.stop(Role::Master));
    assert!(da.lock().unwrap().sync_master().is_none());
    assert_eq!(master.list(), "");
    drop(backup);
}
