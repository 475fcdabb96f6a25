//! rvs resynchronisation between two namespaces on a veth pair (root
//! only): a backup daemon started with resync fetches the whole table of
//! the master (here over a unicast peer), then opens its ready gate; alone,
//! it gives up after the timeout and opens the gate anyway.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_core::director::{Director, DirectorConfig, PacketInfo, Verdict};
use rvs_core::model::{DestConfig, Forward, Protocol, ServiceConfig, ServiceKey};
use rvs_core::sctp::SctpEvent;
use rvs_core::state::TcpFlags;
use rvs_ha::sync::{DirectorAccess, ResyncSettings, Role, SyncDaemonConfig, SyncDaemons};
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
    let epoch = Instant::now();
    Arc::new(move |f: &mut dyn FnMut(&mut Director, u64)| {
        f(&mut d.lock().unwrap(), epoch.elapsed().as_millis() as u64)
    })
}

/// `n` established connections from distinct client ports and addresses.
fn establish(d: &Arc<Mutex<Director>>, n: u32) {
    let mut d = d.lock().unwrap();
    for i in 0..n {
        for f in [TcpFlags::SYN, TcpFlags::ACK] {
            let p = PacketInfo {
                proto: Protocol::Tcp,
                src: IpAddr::V4(Ipv4Addr::from(0xc000_0200 + (i >> 14))),
                sport: 1024 + (i & 0x3fff) as u16,
                dst: ip("203.0.113.10"),
                dport: 80,
                fwmark: 0,
                tcp: f,
                sctp: SctpEvent::Data,
                len: 52,
            };
            assert!(matches!(d.inbound(&p, 0), Verdict::Forward(_)));
        }
    }
}

fn pair(tag: &str) -> (Netns, Netns) {
    let tag = format!("rs{tag}{}", std::process::id());
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
    (a, b)
}

fn config(role: Role, peer: &str, timeout_ms: u64) -> SyncDaemonConfig {
    SyncDaemonConfig {
        unicast_peer: Some(peer.parse().unwrap()),
        resync: Some(ResyncSettings {
            timeout_ms,
            ..ResyncSettings::default()
        }),
        ..SyncDaemonConfig::new(role, "eth0", 7)
    }
}

#[test]
fn a_starting_backup_fetches_the_whole_table_then_opens_its_gate() {
    if !root_or_skip("a_starting_backup_fetches_the_whole_table_then_opens_its_gate") {
        return;
    }
    const N: u32 = 20_000;
    let (a, b) = pair("t");
    let (da, db) = (director(), director());
    establish(&da, N);
    let (aa, ab) = (access(&da), access(&db));
    let master = a
        .within(move || {
            let m = SyncDaemons::new(aa);
            m.start(config(Role::Master, "192.0.2.2", 10_000))
                .map(|()| m)
        })
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let backup = b
        .within(move || {
            let s = SyncDaemons::new(ab);
            s.start(config(Role::Backup, "192.0.2.1", 10_000))
                .map(|()| s)
        })
        .unwrap()
        .unwrap();
    let gate = backup.ready_gate();
    assert!(
        wait_for(Duration::from_secs(10), || gate.load(Ordering::SeqCst)),
        "the gate never opened"
    );
    let took = started.elapsed();
    let st = backup.stats();
    assert_eq!(
        st.resync_complete.load(Ordering::Relaxed),
        1,
        "drops {:?}",
        st.drops()
    );
    // Every connection, as the master has it.
    assert_eq!(db.lock().unwrap().conn_count(), N as usize);
    assert_eq!(
        st.resync_conns_received.load(Ordering::Relaxed),
        u64::from(N)
    );
    let chunks = st.resync_chunks_received.load(Ordering::Relaxed);
    assert_eq!(chunks, u64::from(N.div_ceil(40)));
    let m = master.stats();
    assert_eq!(m.resync_conns_sent.load(Ordering::Relaxed), u64::from(N));
    assert!(m.resync_chunks_sent.load(Ordering::Relaxed) >= chunks);
    let c = db.lock().unwrap().connections().remove(0);
    assert_eq!(
        (c.daddr, c.dport, c.state),
        (ip("198.51.100.11"), 80, "ESTABLISHED")
    );
    eprintln!(
        "{N} connections in {chunks} chunks, {} requests ({} repeated), in {} ms \
         (gate open after {} ms)",
        st.resync_requests_sent.load(Ordering::Relaxed),
        st.resync_retries.load(Ordering::Relaxed),
        st.resync_last_duration_ms.load(Ordering::Relaxed),
        took.as_millis()
    );
    // A second backup start in the same process does not ask again.
    assert!(backup.stop(Role::Backup));
    let before = st.resync_requests_sent.load(Ordering::Relaxed);
    let again = b.within({
        let backup = Arc::new(backup);
        move || {
            backup
                .start(config(Role::Backup, "192.0.2.1", 10_000))
                .map(|()| backup)
        }
    });
    let backup = again.unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        backup.stats().resync_requests_sent.load(Ordering::Relaxed),
        before
    );
    drop(master);
}

#[test]
fn alone_the_backup_gives_up_after_the_timeout() {
    if !root_or_skip("alone_the_backup_gives_up_after_the_timeout") {
        return;
    }
    let (_a, b) = pair("o");
    let db = director();
    let ab = access(&db);
    let started = Instant::now();
    let backup = b
        .within(move || {
            let s = SyncDaemons::new(ab);
            s.start(config(Role::Backup, "192.0.2.1", 600)).map(|()| s)
        })
        .unwrap()
        .unwrap();
    let gate = backup.ready_gate();
    assert!(!gate.load(Ordering::SeqCst));
    assert!(wait_for(Duration::from_secs(5), || gate.load(Ordering::SeqCst)));
    assert!(started.elapsed() >= Duration::from_millis(600));
    let st = backup.stats();
    assert_eq!(st.resync_timed_out.load(Ordering::Relaxed), 1);
    assert_eq!(st.resync_complete.load(Ordering::Relaxed), 0);
    // Asked at once, then about every 250 ms.
    let asked = st.resync_requests_sent.load(Ordering::Relaxed);
    assert!((2..=4).contains(&asked), "{asked} requests");
    // Asked to resynchronise again (the instance left FAULT): the gate
    // closes and opens with the second timeout.
    backup.resync();
    assert!(!gate.load(Ordering::SeqCst));
    assert!(wait_for(Duration::from_secs(5), || gate.load(Ordering::SeqCst)));
    assert_eq!(st.resync_timed_out.load(Ordering::Relaxed), 2);
    // Without a backup daemon there is nothing to wait for.
    assert!(backup.stop(Role::Backup));
    backup.resync();
    assert!(gate.load(Ordering::SeqCst));
    assert_eq!(st.resync_timed_out.load(Ordering::Relaxed), 2);
}
