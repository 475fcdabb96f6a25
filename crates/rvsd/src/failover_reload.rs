//! SIGHUP for failover: the `[[vrrp_instance]]`s and `[sync]` of the
//! re-read configuration replace the running ones. VRRP instances are
//! reconfigured in place where they can be (see [`rvs_ha::Vrrp::reload`]);
//! the sync daemon restarts only when `[sync]` changed.

use std::sync::{Arc, Mutex};

/// What failover runs, kept across reloads.
pub(crate) struct Failover {
    /// The VRRP instances (`None` until a configuration has one).
    pub vrrp: Option<rvs_ha::Vrrp>,
    /// The `[sync]` running now.
    pub sync: Option<rvs_config::SyncSpec>,
    /// Where VRRP state changes go for `[sync] role = "vrrp"`, replaced
    /// when the sync daemon restarts.
    pub sync_hook: Arc<Mutex<Option<rvs_ha::StateHook>>>,
    /// The hook the VRRP instances call (forwards to `sync_hook`).
    pub vrrp_hook: rvs_ha::StateHook,
    /// The sync daemons (packet data plane only).
    pub syncd: Option<Arc<rvs_ha::sync::SyncDaemons>>,
    /// Where the instances report (`/metrics`).
    pub board: rvs_ha::StatusBoard,
}

impl Failover {
    /// Applies `cfg`'s `[sync]` and `instances` (its `[[vrrp_instance]]`s,
    /// resolved). Errors are logged; what failed keeps running as before.
    pub(crate) fn reload(
        &mut self,
        cfg: &rvs_config::Config,
        instances: Vec<rvs_ha::InstanceConfig>,
    ) {
        let sync_changed = cfg.sync != self.sync;
        if sync_changed {
            self.restart_sync(cfg);
        }
        let n = instances.len();
        match &mut self.vrrp {
            Some(v) => match v.reload(instances) {
                Ok(sum) => tracing::info!(
                    started = ?sum.started,
                    stopped = ?sum.stopped,
                    updated = ?sum.updated,
                    restarted = ?sum.restarted,
                    "VRRP reloaded"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "VRRP reload failed; VRRP instances unchanged")
                }
            },
            None if n > 0 => match rvs_ha::Vrrp::start_on(
                self.board.clone(),
                instances,
                crate::daemon::sync_groups(cfg),
                Some(self.vrrp_hook.clone()),
            ) {
                Ok(v) => {
                    tracing::info!(instances = n, "VRRP running");
                    self.vrrp = Some(v);
                }
                Err(e) => tracing::error!(error = %e, "VRRP: cannot start the new instances"),
            },
            None => {}
        }
        // A daemon that follows an instance takes the role of that
        // instance's present state.
        if sync_changed
            && let (Some(spec), Some(v)) = (&cfg.sync, &self.vrrp)
            && let Some(name) = spec.followed(&cfg.vrrp_instances)
            && let Some(st) = v.status().into_iter().find(|s| s.name == name)
            && let Some(h) = self
                .sync_hook
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        {
            h(&st.name, st.state);
        }
    }

    fn restart_sync(&mut self, cfg: &rvs_config::Config) {
        if let Some(d) = &self.syncd {
            d.stop(rvs_ha::sync::Role::Master);
            d.stop(rvs_ha::sync::Role::Backup);
        }
        *self.sync_hook.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match crate::daemon::start_sync(cfg, self.syncd.as_ref()) {
            Ok(h) => {
                *self.sync_hook.lock().unwrap_or_else(|e| e.into_inner()) = h;
                match &cfg.sync {
                    Some(s) => tracing::info!(role = ?s.role, "sync daemon restarted"),
                    None => tracing::info!("sync daemon stopped ([sync] removed)"),
                }
            }
            Err(e) => tracing::error!(error = %e, "sync daemon not restarted"),
        }
        self.sync = cfg.sync.clone();
    }
}
