use std::net::Ipv4Addr;

use super::*;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 250));

fn addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

fn cfg(n: u8, priority: u8) -> VrrpConfig {
    let mut c = VrrpConfig::new(51, addr(n), vec![VIP]);
    c.priority = priority;
    c
}

/// A shared segment: adverts reach every other instance whose link is up,
/// with no delay. Records every state change with its time.
struct Lan {
    nodes: Vec<VrrpInstance>,
    link_up: Vec<bool>,
    now: u64,
    changes: Vec<(u64, usize, VrrpState, VrrpState, Reason)>,
    sent: Vec<(u64, usize, Advert)>,
    garps: Vec<(u64, usize)>,
    vips: Vec<Vec<IpAddr>>,
    groups: Vec<Vec<usize>>,
}

impl Lan {
    fn new(cfgs: Vec<VrrpConfig>) -> Self {
        let n = cfgs.len();
        Lan {
            nodes: cfgs
                .into_iter()
                .map(|c| VrrpInstance::new(c).unwrap())
                .collect(),
            link_up: vec![true; n],
            now: 0,
            changes: Vec::new(),
            sent: Vec::new(),
            garps: Vec::new(),
            vips: vec![Vec::new(); n],
            groups: Vec::new(),
        }
    }

    fn start(&mut self, i: usize) {
        self.nodes[i].start(self.now);
        self.drain();
    }

    /// Carries out queued actions until none are left.
    fn drain(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(a) = self.nodes[i].poll_action() {
                    any = true;
                    self.act(i, a);
                }
            }
            if !any {
                break;
            }
        }
    }

    fn act(&mut self, i: usize, a: Action) {
        match a {
            Action::SendAdvert(adv) => {
                self.sent.push((self.now, i, adv.clone()));
                if !self.link_up[i] {
                    return;
                }
                let src = self.nodes[i].config().primary_addr;
                // Through the real codec, as the I/O layer would.
                let bytes = adv
                    .to_bytes(src, IpAddr::V4(rvs_wire::vrrp::MCAST_V4))
                    .unwrap();
                let pkt = rvs_wire::vrrp::decode(&bytes, src, IpAddr::V4(rvs_wire::vrrp::MCAST_V4))
                    .unwrap();
                for j in 0..self.nodes.len() {
                    if j != i && self.link_up[j] {
                        let _ = self.nodes[j].handle_advert(self.now, src, 255, &pkt);
                    }
                }
            }
            Action::SendGarp(_) => self.garps.push((self.now, i)),
            Action::AddVips(v) => self.vips[i] = v,
            Action::DelVips(_) => self.vips[i].clear(),
            Action::StateChanged { from, to, reason } => {
                self.changes.push((self.now, i, from, to, reason));
                if reason != Reason::SyncGroup {
                    for g in self.groups.clone() {
                        if let Some(pos) = g.iter().position(|&m| m == i) {
                            let members: Vec<GroupMember> =
                                g.iter().map(|&m| GroupMember::of(&self.nodes[m])).collect();
                            for (k, cmd) in sync_group_follow(&members, pos, from) {
                                self.nodes[g[k]].group(self.now, cmd);
                            }
                        }
                    }
                }
            }
            Action::PriorityChanged { .. } => {}
        }
    }

    /// Runs timers in order up to `until` (inclusive).
    fn run_until(&mut self, until: u64) {
        loop {
            let next = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for i in 0..self.nodes.len() {
                        if self.nodes[i].poll_timeout().is_some_and(|d| d <= self.now) {
                            self.nodes[i].handle_timeout(self.now);
                        }
                    }
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn states(&self) -> Vec<VrrpState> {
        self.nodes.iter().map(|n| n.state()).collect()
    }

    fn became_master(&self, i: usize) -> Vec<u64> {
        self.changes
            .iter()
            .filter(|c| c.1 == i && c.3 == VrrpState::Master)
            .map(|c| c.0)
            .collect()
    }
}

use VrrpState::{Backup, Fault, Master};

#[test]
fn timer_arithmetic_follows_keepalived() {
    let i = VrrpInstance::new(cfg(2, 100)).unwrap();
    assert_eq!(i.master_down_interval_ms(), 3609);
    let i = VrrpInstance::new(cfg(2, 254)).unwrap();
    assert_eq!(i.master_down_interval_ms(), 3007);
    assert_eq!(skew(1, 1000), 996);
}

#[test]
fn owner_starts_as_master_with_advert_vips_and_garps() {
    let mut lan = Lan::new(vec![cfg(1, 255)]);
    lan.start(0);
    assert_eq!(lan.states(), vec![Master]);
    assert_eq!(lan.changes[0].4, Reason::Owner);
    assert_eq!(lan.vips[0], vec![VIP]);
    assert_eq!(lan.sent.len(), 1);
    assert_eq!(lan.sent[0].2.priority, 255);
    assert_eq!(lan.sent[0].2.max_adver_int, 100);
    // garp_master_repeat 5 at once, 5 more after garp_master_delay 5 s.
    assert_eq!(lan.garps.len(), 5);
    lan.run_until(4999);
    assert_eq!(lan.garps.len(), 5);
    lan.run_until(5000);
    assert_eq!(lan.garps.len(), 10);
    assert!(lan.garps[5..].iter().all(|g| g.0 == 5000));
    lan.run_until(20_000);
    assert_eq!(lan.garps.len(), 10, "no refresh by default");
    // One advert per second.
    assert_eq!(lan.sent.len(), 21);
    assert!(lan.nodes[0].accepts_vip_traffic());
}

#[test]
fn garp_refresh_when_configured() {
    let mut c = cfg(1, 255);
    c.garp.master_refresh_ms = 60_000;
    c.garp.master_refresh_repeat = 2;
    c.garp.master_delay_ms = 0;
    let mut lan = Lan::new(vec![c]);
    lan.start(0);
    lan.run_until(120_000);
    assert_eq!(lan.garps.len(), 5 + 2 + 2);
    assert_eq!(lan.garps[5].0, 60_000);
}

#[test]
fn lone_backup_becomes_master_after_master_down_interval() {
    let mut lan = Lan::new(vec![cfg(2, 100)]);
    lan.start(0);
    assert_eq!(lan.states(), vec![Backup]);
    assert!(lan.vips[0].is_empty());
    lan.run_until(3608);
    assert_eq!(lan.states(), vec![Backup]);
    lan.run_until(3609);
    assert_eq!(lan.states(), vec![Master]);
    assert_eq!(lan.changes.last().unwrap().4, Reason::MasterDown);
    assert!(!lan.nodes[0].accepts_vip_traffic(), "accept mode off");
}

#[test]
fn backup_takes_over_when_adverts_stop() {
    let mut lan = Lan::new(vec![cfg(1, 150), cfg(2, 100)]);
    lan.start(0);
    lan.start(1);
    // Node 0 (150): master after its own down interval 3 s + 414 ms.
    lan.run_until(3414);
    assert_eq!(lan.states(), vec![Master, Backup]);
    lan.run_until(10_000);
    assert_eq!(lan.became_master(1), Vec::<u64>::new());
    // Crash: the last advert went out at 9414 (3414 + 6 s).
    lan.link_up[0] = false;
    let last = lan
        .sent
        .iter()
        .filter(|s| s.1 == 0)
        .map(|s| s.0)
        .max()
        .unwrap();
    assert_eq!(last, 9414);
    lan.run_until(20_000);
    assert_eq!(lan.became_master(1), vec![last + 3609]);
}

#[test]
fn priority_zero_lets_the_backup_take_over_after_skew() {
    let mut lan = Lan::new(vec![cfg(1, 150), cfg(2, 100)]);
    lan.start(0);
    lan.start(1);
    lan.run_until(5000);
    assert_eq!(lan.states(), vec![Master, Backup]);
    lan.nodes[0].shutdown(5000);
    lan.drain();
    assert_eq!(lan.sent.last().unwrap().2.priority, 0);
    assert!(lan.vips[0].is_empty());
    lan.run_until(10_000);
    // Skew of priority 100 at 1 s: 609 ms.
    assert_eq!(lan.became_master(1), vec![5609]);
    assert_eq!(lan.states(), vec![VrrpState::Initialize, Master]);
}

#[test]
fn master_answers_priority_zero_with_an_advert() {
    let mut m = VrrpInstance::new(cfg(1, 255)).unwrap();
    m.start(0);
    while m.poll_action().is_some() {}
    let stop = Packet::V3(Advert {
        vrid: 51,
        priority: 0,
        max_adver_int: 100,
        addrs: vec![VIP],
    });
    m.handle_advert(400, addr(2), 255, &stop).unwrap();
    assert!(matches!(m.poll_action(), Some(Action::SendAdvert(a)) if a.priority == 255));
    assert_eq!(m.poll_timeout(), Some(1400));
}

#[test]
fn higher_priority_preempts_and_learns_nothing_when_preempt_off() {
    // Node 1 (100) is master alone; node 0 (200) joins later.
    let mut lan = Lan::new(vec![cfg(1, 200), cfg(2, 100)]);
    lan.start(1);
    lan.run_until(10_000);
    assert_eq!(lan.states()[1], Master);
    lan.start(0);
    // Preempt on: node 0 ignores the lower master and takes over after its
    // own down interval (3 s + 218 ms); node 1 hears it and steps down.
    lan.run_until(20_000);
    assert_eq!(lan.became_master(0), vec![13_218]);
    assert_eq!(lan.states(), vec![Master, Backup]);
    assert!(
        lan.changes
            .iter()
            .any(|c| c.1 == 1 && c.3 == Backup && c.4 == Reason::HigherPriority && c.0 == 13_218)
    );

    let mut c0 = cfg(1, 200);
    c0.preempt = false;
    let mut lan = Lan::new(vec![c0, cfg(2, 100)]);
    lan.start(1);
    lan.run_until(10_000);
    lan.start(0);
    lan.run_until(60_000);
    assert_eq!(lan.states(), vec![Backup, Master], "nopreempt follows");
}

#[test]
fn preempt_delay_postpones_preemption() {
    let mut c0 = cfg(1, 200);
    c0.preempt_delay_ms = 10_000;
    let mut lan = Lan::new(vec![c0, cfg(2, 100)]);
    lan.start(1);
    lan.run_until(10_000);
    // Node 1's adverts go out at 3609 + k s: ..., 9609, 10609, ...
    lan.start(0);
    // Adverts before 20 000 are followed; the last one (19 609) restarts
    // the down timer; the next ones are ignored.
    lan.run_until(40_000);
    assert_eq!(lan.became_master(0), vec![19_609 + 3218]);
}

#[test]
fn split_brain_converges_within_one_advert() {
    // Two masters that could not hear each other (link down on one side),
    // then the link heals. Higher priority wins.
    let mut lan = Lan::new(vec![cfg(1, 150), cfg(2, 100)]);
    lan.link_up[1] = false;
    lan.start(0);
    lan.start(1);
    lan.run_until(10_000);
    assert_eq!(lan.states(), vec![Master, Master]);
    lan.link_up[1] = true;
    lan.run_until(11_000);
    assert_eq!(lan.states(), vec![Master, Backup]);
    let t = lan
        .changes
        .iter()
        .find(|c| c.1 == 1 && c.2 == Master && c.3 == Backup)
        .unwrap()
        .0;
    assert!(t > 10_000 && t <= 11_000, "converged at {t}");
    assert!(lan.vips[1].is_empty());

    // Equal priorities: the higher address wins.
    let mut lan = Lan::new(vec![cfg(1, 100), cfg(2, 100)]);
    lan.link_up[0] = false;
    lan.start(0);
    lan.start(1);
    lan.run_until(10_000);
    assert_eq!(lan.states(), vec![Master, Master]);
    lan.link_up[0] = true;
    lan.run_until(11_000);
    assert_eq!(lan.states(), vec![Backup, Master]);
}

#[test]
fn lower_priority_advert_makes_the_master_reassert() {
    let mut m = VrrpInstance::new(cfg(1, 150)).unwrap();
    m.start(0);
    m.handle_timeout(3414);
    while m.poll_action().is_some() {}
    let low = Packet::V3(Advert {
        vrid: 51,
        priority: 100,
        max_adver_int: 100,
        addrs: vec![VIP],
    });
    m.handle_advert(4000, addr(2), 255, &low).unwrap();
    let acts: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert!(matches!(&acts[0], Action::SendAdvert(a) if a.priority == 150));
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::SendGarp(_)))
            .count(),
        5
    );
    assert_eq!(m.state(), Master);
}

#[test]
fn tracked_interface_down_lowers_priority_and_fails_over() {
    let mut c0 = cfg(1, 150);
    c0.track.push(TrackConfig {
        name: "eth1".into(),
        weight: -60,
        reverse: false,
        initially_up: true,
    });
    let mut lan = Lan::new(vec![c0, cfg(2, 100)]);
    lan.start(0);
    lan.start(1);
    lan.run_until(5000);
    assert_eq!(lan.states(), vec![Master, Backup]);
    lan.nodes[0].set_tracker(5000, 0, false);
    assert_eq!(lan.nodes[0].priority(), 90);
    assert_eq!(
        lan.nodes[0].poll_action(),
        Some(Action::PriorityChanged { from: 150, to: 90 })
    );
    lan.drain();
    // Node 0's next advert (5414) carries 90; node 1 (100) now preempts:
    // it ignores adverts of 90 and takes over 3609 ms after the last
    // advert it followed (4414).
    lan.run_until(20_000);
    assert_eq!(lan.became_master(1), vec![4414 + 3609]);
    assert_eq!(lan.states(), vec![Backup, Master]);
}

#[test]
fn weight_zero_tracker_means_fault() {
    let mut c0 = cfg(1, 150);
    c0.track.push(TrackConfig {
        name: "quorum".into(),
        weight: 0,
        reverse: false,
        initially_up: true,
    });
    let mut lan = Lan::new(vec![c0, cfg(2, 100)]);
    lan.start(0);
    lan.start(1);
    lan.run_until(5000);
    lan.nodes[0].set_tracker(5000, 0, false);
    lan.drain();
    assert_eq!(lan.states()[0], Fault);
    assert!(lan.vips[0].is_empty());
    lan.run_until(6000);
    // The fault sent priority 0: the backup took over after its skew.
    assert_eq!(lan.became_master(1), vec![5609]);
    // Recovery: back as backup, then preempts (150 > 100).
    lan.nodes[0].set_tracker(7000, 0, true);
    lan.now = 7000;
    lan.drain();
    assert_eq!(lan.states()[0], Backup);
    lan.run_until(20_000);
    assert_eq!(lan.became_master(0).len(), 2);
    assert_eq!(lan.states(), vec![Master, Backup]);
}

#[test]
fn positive_weight_and_reverse_trackers() {
    let mut c = cfg(1, 100);
    c.track.push(TrackConfig {
        name: "up-bonus".into(),
        weight: 20,
        reverse: false,
        initially_up: true,
    });
    c.track.push(TrackConfig {
        name: "maintenance-file".into(),
        weight: -50,
        reverse: true,
        initially_up: false,
    });
    let mut i = VrrpInstance::new(c.clone()).unwrap();
    // Reverse: "down" counts as up, so no penalty.
    assert_eq!(i.priority(), 120);
    i.set_tracker(0, 1, true);
    assert_eq!(i.priority(), 70);
    i.set_tracker(0, 0, false);
    assert_eq!(i.priority(), 50);
    c.priority = 255;
    assert_eq!(
        VrrpInstance::new(c).unwrap().priority(),
        255,
        "owner never adjusted"
    );
}

#[test]
fn sync_group_moves_together() {
    let mut a0 = cfg(1, 150);
    a0.vrid = 1;
    a0.track.push(TrackConfig {
        name: "eth0".into(),
        weight: 0,
        reverse: false,
        initially_up: true,
    });
    let mut a1 = cfg(1, 150);
    a1.vrid = 2;
    let mut b0 = cfg(2, 100);
    b0.vrid = 1;
    let mut b1 = cfg(2, 100);
    b1.vrid = 2;
    // Instances 0 and 1 are director A's, 2 and 3 director B's.
    let mut lan = Lan::new(vec![a0, a1, b0, b1]);
    lan.groups = vec![vec![0, 1], vec![2, 3]];
    for i in 0..4 {
        lan.start(i);
    }
    lan.run_until(9000);
    assert_eq!(lan.states(), vec![Master, Master, Backup, Backup]);
    // Only VRID 1's tracker on A fails: A's group goes to FAULT together and
    // B's instances take over (priority-0 adverts: after the skew).
    lan.nodes[0].set_tracker(9000, 0, false);
    lan.drain();
    assert_eq!(lan.states()[..2], [Fault, Fault]);
    lan.run_until(9700);
    assert_eq!(lan.states(), vec![Fault, Fault, Master, Master]);
    let b_master: Vec<u64> = [2, 3].iter().flat_map(|&i| lan.became_master(i)).collect();
    assert_eq!(b_master, vec![9609, 9609]);
    // Recovery: both of A's instances leave FAULT together and preempt.
    lan.nodes[0].set_tracker(10_000, 0, true);
    lan.now = 10_000;
    lan.drain();
    assert_eq!(lan.states()[..2], [Backup, Backup]);
    lan.run_until(20_000);
    assert_eq!(lan.states(), vec![Master, Master, Backup, Backup]);
}

#[test]
fn sync_group_helper_rules() {
    let m = |state, own_fault| GroupMember { state, own_fault };
    assert_eq!(
        sync_group_follow(
            &[m(Master, false), m(Backup, false), m(Master, false)],
            0,
            Backup
        ),
        vec![(1, GroupCommand::Master)]
    );
    assert_eq!(
        sync_group_follow(&[m(Backup, false), m(Master, false)], 0, Master),
        vec![(1, GroupCommand::Backup)]
    );
    assert_eq!(
        sync_group_follow(
            &[m(Backup, false), m(Master, false)],
            0,
            VrrpState::Initialize
        ),
        vec![],
        "starting moves nobody"
    );
    assert_eq!(
        sync_group_follow(
            &[m(Fault, true), m(Master, false), m(Backup, false)],
            0,
            Master
        ),
        vec![(1, GroupCommand::Fault), (2, GroupCommand::Fault)]
    );
    // One member recovers while another still has its own fault: stay.
    assert_eq!(
        sync_group_follow(&[m(Backup, false), m(Fault, true)], 0, Fault),
        vec![]
    );
    assert_eq!(
        sync_group_follow(&[m(Backup, false), m(Fault, false)], 0, Fault),
        vec![(1, GroupCommand::ClearFault)]
    );
}

#[test]
fn ready_gate_holds_a_returning_director_back() {
    // Node 0 (200) returns while node 1 (100) is master; it must fetch the
    // connection table first.
    let mut c0 = cfg(1, 200);
    c0.ready_timeout_ms = Some(30_000);
    let mut lan = Lan::new(vec![c0.clone(), cfg(2, 100)]);
    lan.start(1);
    lan.run_until(10_000);
    lan.start(0);
    assert!(!lan.nodes[0].is_ready());
    lan.run_until(25_000);
    assert_eq!(
        lan.states(),
        vec![Backup, Master],
        "held back while not ready"
    );
    lan.nodes[0].set_ready(25_000);
    lan.run_until(40_000);
    // Adverts of node 1 are at x609; the one at 24 609 was the last followed.
    assert_eq!(lan.became_master(0), vec![24_609 + 3218]);

    // Never told: the timeout opens the gate.
    let mut lan = Lan::new(vec![c0, cfg(2, 100)]);
    lan.start(1);
    lan.run_until(10_000);
    lan.start(0);
    lan.run_until(39_999);
    assert_eq!(lan.states(), vec![Backup, Master]);
    lan.run_until(60_000);
    assert_eq!(lan.became_master(0), vec![39_609 + 3218]);
}

#[test]
fn ready_gate_closes_again_when_leaving_fault() {
    // Node 0 (200, ready gate) is master; its link fails (FAULT), node 1
    // takes over; when the link returns node 0 has missed the sync
    // messages of the meantime and must wait for the table again.
    let mut c0 = cfg(1, 200);
    c0.ready_timeout_ms = Some(30_000);
    c0.track.push(TrackConfig {
        name: "eth0".into(),
        weight: 0,
        reverse: false,
        initially_up: true,
    });
    let mut lan = Lan::new(vec![c0, cfg(2, 100)]);
    lan.start(0);
    lan.start(1);
    lan.nodes[0].set_ready(0);
    lan.run_until(5000);
    assert_eq!(lan.states(), vec![Master, Backup]);
    lan.link_up[0] = false;
    lan.nodes[0].set_tracker(5000, 0, false);
    lan.drain();
    lan.run_until(10_000);
    assert_eq!(lan.states(), vec![Fault, Master]);
    assert!(lan.nodes[0].is_ready(), "FAULT itself changes nothing");
    lan.link_up[0] = true;
    lan.nodes[0].set_tracker(10_000, 0, true);
    lan.now = 10_000;
    lan.drain();
    assert!(!lan.nodes[0].is_ready());
    lan.run_until(20_000);
    assert_eq!(
        lan.states(),
        vec![Backup, Master],
        "held back while not ready"
    );
    lan.nodes[0].set_ready(20_000);
    lan.run_until(30_000);
    assert_eq!(lan.states(), vec![Master, Backup]);
    // Taken over one master-down interval (3 × 1000 + 218) after the last
    // advert of node 1 it followed, the last one before the gate opened.
    let last_followed = lan
        .sent
        .iter()
        .filter(|(t, i, _)| *i == 1 && *t < 20_000)
        .map(|(t, _, _)| *t)
        .max()
        .unwrap();
    assert_eq!(lan.became_master(0), vec![3218, last_followed + 3218]);
}

#[test]
fn ready_gate_holds_the_owner_and_alone_does_not_block() {
    let mut c = cfg(1, 255);
    c.ready_timeout_ms = Some(30_000);
    let mut lan = Lan::new(vec![c.clone()]);
    lan.start(0);
    assert_eq!(lan.states(), vec![Backup]);
    lan.nodes[0].set_ready(1000);
    lan.now = 1000;
    lan.drain();
    assert_eq!(lan.states(), vec![Master]);
    // No master heard at all: the gate does not stop the takeover.
    let mut c = cfg(1, 150);
    c.ready_timeout_ms = Some(30_000);
    let mut lan = Lan::new(vec![c]);
    lan.start(0);
    lan.run_until(3414);
    assert_eq!(lan.states(), vec![Master]);
}

#[test]
fn backup_learns_the_master_interval() {
    let mut b = VrrpInstance::new(cfg(2, 100)).unwrap();
    b.start(0);
    let adv = Packet::V3(Advert {
        vrid: 51,
        priority: 150,
        max_adver_int: 200,
        addrs: vec![VIP],
    });
    b.handle_advert(1000, addr(1), 255, &adv).unwrap();
    assert_eq!(b.master_adver_int_ms(), 2000);
    // 3 × 2000 + (156 × 2000) / 256 = 6000 + 1218.
    assert_eq!(b.poll_timeout(), Some(1000 + 7218));
}

#[test]
fn receive_checks() {
    let mut b = VrrpInstance::new(cfg(2, 100)).unwrap();
    let adv = |vrid, addrs| {
        Packet::V3(Advert {
            vrid,
            priority: 150,
            max_adver_int: 100,
            addrs,
        })
    };
    assert_eq!(
        b.handle_advert(0, addr(1), 255, &adv(51, vec![VIP])),
        Err(RxError::NotRunning)
    );
    b.start(0);
    assert_eq!(
        b.handle_advert(0, addr(1), 64, &adv(51, vec![VIP])),
        Err(RxError::Ttl(64))
    );
    assert_eq!(
        b.handle_advert(0, addr(1), 255, &adv(52, vec![VIP])),
        Err(RxError::Vrid(52))
    );
    assert_eq!(
        b.handle_advert(0, addr(2), 255, &adv(51, vec![VIP])),
        Err(RxError::Own)
    );
    assert_eq!(
        b.handle_advert(0, addr(1), 255, &adv(51, vec![addr(9)])),
        Err(RxError::Addresses)
    );
    assert_eq!(
        b.handle_advert(0, "2001:db8::1".parse().unwrap(), 255, &adv(51, vec![VIP])),
        Err(RxError::Family)
    );
    // None of those restarted the down timer.
    assert_eq!(b.poll_timeout(), Some(3609));
    let mut unicast = cfg(2, 100);
    unicast.check_ttl = false;
    let mut u = VrrpInstance::new(unicast).unwrap();
    u.start(0);
    assert_eq!(u.handle_advert(0, addr(1), 62, &adv(51, vec![VIP])), Ok(()));
    // A v2 advert is followed too.
    let v2 = Packet::V2(rvs_wire::vrrp::AdvertV2 {
        vrid: 51,
        priority: 150,
        auth_type: 0,
        advert_int: 1,
        addrs: vec![Ipv4Addr::new(192, 0, 2, 250)],
        auth_data: [0; 8],
    });
    b.handle_advert(500, addr(1), 255, &v2).unwrap();
    assert_eq!(b.poll_timeout(), Some(4109));
}

#[test]
fn config_validation() {
    let mut c = cfg(1, 100);
    c.vrid = 0;
    assert_eq!(VrrpInstance::new(c).unwrap_err(), VrrpConfigError::Vrid);
    let mut c = cfg(1, 100);
    c.advert_int_ms = 5;
    assert_eq!(VrrpInstance::new(c).unwrap_err(), VrrpConfigError::Interval);
    let mut c = cfg(1, 100);
    c.vips.push("2001:db8::1".parse().unwrap());
    assert!(matches!(
        VrrpInstance::new(c).unwrap_err(),
        VrrpConfigError::Family(_)
    ));
    let d = VrrpConfig::new(7, addr(1), vec![]);
    assert_eq!(
        (
            d.priority,
            d.advert_int_ms,
            d.preempt,
            d.garp.master_repeat,
            d.garp.master_delay_ms
        ),
        (100, 1000, true, 5, 5000)
    );
}

#[test]
fn ipv6_instance_through_the_codec() {
    let vip6: IpAddr = "2001:db8::250".parse().unwrap();
    let me: IpAddr = "fe80::2".parse().unwrap();
    let peer: IpAddr = "fe80::1".parse().unwrap();
    let mut c = VrrpConfig::new(53, me, vec![vip6]);
    c.priority = 100;
    let mut b = VrrpInstance::new(c).unwrap();
    b.start(0);
    let adv = Advert {
        vrid: 53,
        priority: 120,
        max_adver_int: 100,
        addrs: vec![vip6],
    };
    let dst = IpAddr::V6(rvs_wire::vrrp::MCAST_V6);
    let bytes = adv.to_bytes(peer, dst).unwrap();
    let pkt = rvs_wire::vrrp::decode(&bytes, peer, dst).unwrap();
    b.handle_advert(500, peer, 255, &pkt).unwrap();
    assert_eq!(b.poll_timeout(), Some(500 + 3609));
    b.handle_timeout(4109);
    assert_eq!(b.state(), Master);
    let acts: Vec<Action> = std::iter::from_fn(|| b.poll_action()).collect();
    assert!(acts.contains(&Action::AddVips(vec![vip6])));
    assert!(acts.contains(&Action::SendGarp(vip6)));
    // Its own advert encodes for IPv6 from the link-local source.
    let Some(Action::SendAdvert(mine)) = acts.iter().find(|a| matches!(a, Action::SendAdvert(_)))
    else {
        panic!("no advert");
    };
    assert_eq!(mine.to_bytes(me, dst).unwrap().len(), 8 + 16);
}

proptest::proptest! {
    /// Whatever the priorities and the master's interval, a backup that
    /// stops hearing the master takes over exactly 3 × interval + skew
    /// after the last advert it followed, and never before.
    #[test]
    fn takeover_bound(master_prio in 2u8..=254, gap in 1u8..=100, int_cs in 1u16..=400,
                      adverts in 1u64..6) {
        let backup_prio = master_prio.saturating_sub(gap).max(1);
        let mut b = VrrpInstance::new(cfg(2, backup_prio)).unwrap();
        b.start(0);
        let adv = Packet::V3(Advert { vrid: 51, priority: master_prio, max_adver_int: int_cs, addrs: vec![VIP] });
        let int_ms = u64::from(int_cs) * 10;
        let mut last = 0;
        for k in 0..adverts {
            last = k * int_ms;
            b.handle_advert(last, addr(1), 255, &adv).unwrap();
        }
        let expect = last + 3 * int_ms + (256 - u64::from(backup_prio)) * int_ms / 256;
        proptest::prop_assert_eq!(b.poll_timeout(), Some(expect));
        b.handle_timeout(expect - 1);
        proptest::prop_assert_eq!(b.state(), Backup);
        b.handle_timeout(expect);
        proptest::prop_assert_eq!(b.state(), Master);
    }
}
