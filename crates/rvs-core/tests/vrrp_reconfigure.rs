//! `VrrpInstance::reconfigure` (SIGHUP): what changes in place, in virtual
//! time.

use std::net::{IpAddr, Ipv4Addr};

use rvs_core::vrrp::{Action, ReconfigureError, TrackConfig, VrrpConfig, VrrpInstance, VrrpState};
use rvs_wire::vrrp::{Advert, Packet};

fn addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

fn cfg(priority: u8, vips: &[u8]) -> VrrpConfig {
    let mut c = VrrpConfig::new(51, addr(1), vips.iter().map(|n| addr(*n)).collect());
    c.priority = priority;
    c.advert_int_ms = 1000;
    c
}

fn drain(i: &mut VrrpInstance) -> Vec<Action> {
    std::iter::from_fn(|| i.poll_action()).collect()
}

fn advert(priority: u8, vips: &[u8]) -> Packet {
    Packet::V3(Advert {
        vrid: 51,
        priority,
        max_adver_int: 100,
        addrs: vips.iter().map(|n| addr(*n)).collect(),
    })
}

/// Runs `i` as master: started alone, the master-down interval passes.
fn master(c: VrrpConfig) -> (VrrpInstance, u64) {
    let mut i = VrrpInstance::new(c).unwrap();
    i.start(0);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    assert_eq!(i.state(), VrrpState::Master);
    drain(&mut i);
    (i, t)
}

#[test]
fn a_master_adds_and_removes_vips_without_leaving_master() {
    let (mut i, t) = master(cfg(150, &[100, 101]));
    let mut c = cfg(150, &[101, 102]);
    c.garp.master_repeat = 2;
    i.reconfigure(t + 10, c).unwrap();
    let acts = drain(&mut i);
    assert_eq!(i.state(), VrrpState::Master);
    assert!(acts.contains(&Action::DelVips(vec![addr(100)])), "{acts:?}");
    assert!(acts.contains(&Action::AddVips(vec![addr(102)])), "{acts:?}");
    assert_eq!(
        acts.iter()
            .filter(|a| **a == Action::SendGarp(addr(102)))
            .count(),
        2
    );
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::StateChanged { .. }))
    );
    // The next advert carries the new list.
    let next = i.poll_timeout().unwrap();
    i.handle_timeout(next);
    let sent: Vec<_> = drain(&mut i)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendAdvert(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(sent[0].addrs, vec![addr(101), addr(102)]);
}

#[test]
fn a_lowered_master_priority_goes_out_in_the_next_advert_and_it_yields() {
    let (mut i, t) = master(cfg(150, &[100]));
    i.reconfigure(t + 10, cfg(90, &[100])).unwrap();
    assert_eq!(i.priority(), 90);
    let acts = drain(&mut i);
    assert!(acts.contains(&Action::PriorityChanged { from: 150, to: 90 }));
    assert_eq!(i.state(), VrrpState::Master);
    let next = i.poll_timeout().unwrap();
    assert!(next <= t + 1000);
    i.handle_timeout(next);
    let acts = drain(&mut i);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::SendAdvert(a) if a.priority == 90)),
        "{acts:?}"
    );
    // The backup (priority 100) now preempts: its advert makes us yield.
    i.handle_advert(next + 5, addr(2), 255, &advert(100, &[100]))
        .unwrap();
    assert_eq!(i.state(), VrrpState::Backup);
}

#[test]
fn a_raised_backup_priority_preempts_a_lower_master_after_the_down_interval() {
    let mut i = VrrpInstance::new(cfg(100, &[100])).unwrap();
    i.start(0);
    // The master (priority 120, address .2) advertises every second.
    let mut now = 0;
    for _ in 0..5 {
        now += 1000;
        i.handle_advert(now, addr(2), 255, &advert(120, &[100]))
            .unwrap();
    }
    assert_eq!(i.state(), VrrpState::Backup);
    drain(&mut i);
    i.reconfigure(now + 100, cfg(200, &[100])).unwrap();
    assert_eq!(i.state(), VrrpState::Backup);
    // The master's lower adverts no longer hold the down timer back.
    let mut t = now;
    while i.state() == VrrpState::Backup && t < now + 10_000 {
        t += 1000;
        let _ = i.handle_advert(t, addr(2), 255, &advert(120, &[100]));
        if let Some(d) = i.poll_timeout()
            && d <= t + 1000
        {
            i.handle_timeout(d.max(t));
        }
    }
    assert_eq!(i.state(), VrrpState::Master);
    // Within the master-down interval (at priority 200, skew 218 ms) of the
    // last advert that held it back.
    assert!(t - now <= 4000, "took over {} ms after the change", t - now);
}

#[test]
fn trackers_keep_their_state_by_name_and_a_new_down_one_faults() {
    let mut c = cfg(100, &[100]);
    c.track.push(TrackConfig {
        name: "interface eth1".into(),
        weight: -20,
        reverse: false,
        initially_up: true,
    });
    let mut i = VrrpInstance::new(c.clone()).unwrap();
    i.start(0);
    i.set_tracker(10, 0, false);
    assert_eq!(i.priority(), 80);
    drain(&mut i);
    // Same tracker behind a new one: still down, still -20.
    let mut c2 = c.clone();
    c2.track.insert(
        0,
        TrackConfig {
            name: "interface eth2".into(),
            weight: 0,
            reverse: false,
            initially_up: true,
        },
    );
    i.reconfigure(20, c2.clone()).unwrap();
    assert_eq!(i.priority(), 80);
    assert_eq!(i.state(), VrrpState::Backup);
    // Its weight changed by the reload: applied at once.
    c2.track[1].weight = -50;
    i.reconfigure(30, c2.clone()).unwrap();
    assert_eq!(i.priority(), 50);
    // A new weight-0 tracker that starts down: FAULT.
    c2.track.push(TrackConfig {
        name: "service tcp 192.0.2.100:80".into(),
        weight: 0,
        reverse: false,
        initially_up: false,
    });
    i.reconfigure(40, c2).unwrap();
    assert_eq!(i.state(), VrrpState::Fault);
}

#[test]
fn a_new_vrid_or_source_is_another_instance() {
    let (mut i, t) = master(cfg(150, &[100]));
    let mut c = cfg(150, &[100]);
    c.vrid = 52;
    assert_eq!(i.reconfigure(t, c), Err(ReconfigureError::Identity));
    let mut c = cfg(150, &[100]);
    c.primary_addr = addr(9);
    assert_eq!(i.reconfigure(t, c), Err(ReconfigureError::Identity));
    let mut c = cfg(150, &[100]);
    c.advert_int_ms = 5;
    assert!(matches!(
        i.reconfigure(t, c),
        Err(ReconfigureError::Config(_))
    ));
    // Nothing changed.
    assert_eq!(i.state(), VrrpState::Master);
    assert_eq!(i.config().vrid, 51);
    assert!(drain(&mut i).is_empty());
}

#[test]
fn a_shorter_interval_applies_at_once() {
    let (mut i, t) = master(cfg(150, &[100]));
    let mut c = cfg(150, &[100]);
    c.advert_int_ms = 100;
    i.reconfigure(t + 10, c).unwrap();
    assert_eq!(i.poll_timeout(), Some(t + 110));
}
