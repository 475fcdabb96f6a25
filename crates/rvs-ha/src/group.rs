//! keepalived's `vrrp_sync_group` across the instances' threads.
//!
//! Each instance runs on a thread of its own; the members of a group share
//! a [`Shared`] view (every member's state and whether its own trackers
//! hold it in FAULT). When a member changes state by itself (not on the
//! group's command), its thread asks the pure rule
//! [`rvs_core::vrrp::sync_group_follow`] which members must follow and
//! posts them [`GroupCommand`]s; each member's thread takes its commands
//! at its next loop turn (at most [`POLL`] later) and feeds them to its
//! state machine. The group's own state (MASTER once every member is,
//! BACKUP once every member is, FAULT while any member is) drives the
//! group's notify commands.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_core::vrrp::{GroupCommand, GroupMember, Reason, VrrpState, sync_group_follow};

use crate::Notify;
use crate::instance::run_commands;

/// Longest wait of a group member between two looks at its commands.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// A sync group as the I/O layer runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupConfig {
    /// keepalived's group name (notify arguments, logs).
    pub name: String,
    /// The members, as indices into the instances given to
    /// [`crate::Vrrp::start_with_groups`]; each instance in one group at most.
    pub members: Vec<usize>,
    /// The group's notify commands (`notify` gets `GROUP NAME STATE 0`).
    pub notify: Notify,
}

struct Shared {
    name: String,
    notify: Notify,
    views: Vec<GroupMember>,
    inboxes: Vec<Sender<GroupCommand>>,
    state: VrrpState,
}

/// One member's handle on its group.
pub(crate) struct Membership {
    shared: Arc<Mutex<Shared>>,
    pos: usize,
    inbox: Receiver<GroupCommand>,
}

/// The memberships of a group's members, in the order of `cfg.members`.
pub(crate) fn memberships(cfg: &SyncGroupConfig) -> Vec<Membership> {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        cfg.members.iter().map(|_| mpsc::channel()).unzip();
    let shared = Arc::new(Mutex::new(Shared {
        name: cfg.name.clone(),
        notify: cfg.notify.clone(),
        views: vec![
            GroupMember {
                state: VrrpState::Initialize,
                own_fault: false,
            };
            cfg.members.len()
        ],
        inboxes: senders,
        state: VrrpState::Initialize,
    }));
    receivers
        .into_iter()
        .enumerate()
        .map(|(pos, inbox)| Membership {
            shared: shared.clone(),
            pos,
            inbox,
        })
        .collect()
}

/// The group's state given its members': FAULT while any member is, MASTER
/// or BACKUP (or stopped) once all are; unchanged while members differ.
fn group_state(views: &[GroupMember], current: VrrpState) -> VrrpState {
    if views.iter().any(|m| m.state == VrrpState::Fault) {
        return VrrpState::Fault;
    }
    match views.first() {
        Some(first) if views.iter().all(|m| m.state == first.state) => first.state,
        _ => current,
    }
}

impl Membership {
    /// The commands posted to this member since the last call.
    pub(crate) fn commands(&self) -> Vec<GroupCommand> {
        self.inbox.try_iter().collect()
    }

    /// Whether this member's published view says its trackers hold it in
    /// FAULT.
    pub(crate) fn published_own_fault(&self) -> bool {
        let s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.views[self.pos].own_fault
    }

    /// Publishes whether this member's own trackers hold it in FAULT
    /// (the group's fault clears only once no member's do).
    pub(crate) fn set_own_fault(&self, own_fault: bool) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.views[self.pos].own_fault = own_fault;
    }

    /// This member moved from `from` to `view.state` for `reason`: records
    /// it, tells the other members to follow unless the move was the
    /// group's own command, and runs the group's notify commands when the
    /// group's state changes.
    pub(crate) fn moved(&self, view: GroupMember, from: VrrpState, reason: Reason) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.views[self.pos] = view;
        if reason != Reason::SyncGroup {
            for (pos, cmd) in sync_group_follow(&s.views, self.pos, from) {
                tracing::debug!(group = %s.name, member = pos, ?cmd, "sync group command");
                let _ = s.inboxes[pos].send(cmd);
            }
        }
        let to = group_state(&s.views, s.state);
        if to == s.state {
            return;
        }
        let was = std::mem::replace(&mut s.state, to);
        tracing::info!(group = %s.name, from = was.name(), to = to.name(), "VRRP sync group state");
        let specific = match to {
            VrrpState::Master => &s.notify.master,
            VrrpState::Backup => &s.notify.backup,
            VrrpState::Fault => &s.notify.fault,
            VrrpState::Initialize => &s.notify.stop,
        };
        let mut cmds: Vec<Vec<String>> = specific.iter().cloned().collect();
        if let Some(argv) = &s.notify.any {
            let state = if to == VrrpState::Initialize {
                "STOP"
            } else {
                to.name()
            };
            let mut a = argv.clone();
            a.extend([
                "GROUP".to_string(),
                s.name.clone(),
                state.to_string(),
                "0".to_string(),
            ]);
            cmds.push(a);
        }
        run_commands(&s.name, cmds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(state: VrrpState) -> GroupMember {
        GroupMember {
            state,
            own_fault: false,
        }
    }

    #[test]
    fn the_group_state_settles_when_every_member_agrees() {
        use VrrpState::*;
        assert_eq!(group_state(&[m(Master), m(Backup)], Backup), Backup);
        assert_eq!(group_state(&[m(Master), m(Master)], Backup), Master);
        assert_eq!(group_state(&[m(Fault), m(Master)], Master), Fault);
        assert_eq!(group_state(&[m(Backup), m(Backup)], Fault), Backup);
        assert_eq!(
            group_state(&[m(Initialize), m(Initialize)], Backup),
            Initialize
        );
    }

    #[test]
    fn a_member_becoming_master_posts_the_others_a_command() {
        let cfg = SyncGroupConfig {
            name: "G1".into(),
            members: vec![0, 1, 2],
            notify: Notify::default(),
        };
        let ms = memberships(&cfg);
        for x in &ms {
            x.moved(m(VrrpState::Backup), VrrpState::Initialize, Reason::Startup);
        }
        assert!(ms.iter().all(|x| x.commands().is_empty()));
        ms[1].moved(m(VrrpState::Master), VrrpState::Backup, Reason::MasterDown);
        assert_eq!(ms[0].commands(), vec![GroupCommand::Master]);
        assert_eq!(ms[2].commands(), vec![GroupCommand::Master]);
        assert!(ms[1].commands().is_empty());
        // The followers' moves are the group's doing: no echo.
        ms[0].moved(m(VrrpState::Master), VrrpState::Backup, Reason::SyncGroup);
        ms[2].moved(m(VrrpState::Master), VrrpState::Backup, Reason::SyncGroup);
        assert!(ms.iter().all(|x| x.commands().is_empty()));
        let s = ms[0].shared.lock().unwrap();
        assert_eq!(s.state, VrrpState::Master);
    }
}
