//! VRRP instances in `/metrics`: state, priority and advert counters of
//! every `[[vrrp_instance]]`, read from the instances' status board at
//! scrape time.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use rvs_core::vrrp::VrrpState;

type Labels = Vec<(&'static str, String)>;

/// Reads the VRRP instances' status board at every scrape.
#[derive(Debug)]
pub struct VrrpCollector {
    board: rvs_ha::StatusBoard,
}

impl VrrpCollector {
    /// The instances on `board`.
    pub fn new(board: rvs_ha::StatusBoard) -> VrrpCollector {
        VrrpCollector { board }
    }
}

fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: Vec<(Labels, M)>,
) -> Result<(), fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in &samples {
        v.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for VrrpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let status = self.board.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if status.is_empty() {
            return Ok(());
        }
        let mut state = Vec::new();
        let mut priority = Vec::new();
        let (mut rx, mut tx, mut dropped, mut auth) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for s in &status {
            let l: Labels = vec![("instance", s.name.clone())];
            for st in [
                VrrpState::Initialize,
                VrrpState::Backup,
                VrrpState::Master,
                VrrpState::Fault,
            ] {
                let mut sl = l.clone();
                sl.push(("state", st.name().to_string()));
                state.push((sl, ConstGauge::new(i64::from(s.state == st))));
            }
            priority.push((l.clone(), ConstGauge::new(i64::from(s.priority))));
            rx.push((l.clone(), ConstCounter::new(s.adverts_in)));
            tx.push((l.clone(), ConstCounter::new(s.adverts_out)));
            dropped.push((l.clone(), ConstCounter::new(s.adverts_dropped)));
            auth.push((l, ConstCounter::new(s.auth_failures)));
        }
        family(
            &mut enc,
            "rvs_vrrp_state",
            "1 for the VRRP instance's present state (INIT, BACKUP, MASTER, FAULT), 0 for the others",
            MetricType::Gauge,
            state,
        )?;
        family(
            &mut enc,
            "rvs_vrrp_priority",
            "Effective priority of the VRRP instance (configured priority adjusted by trackers)",
            MetricType::Gauge,
            priority,
        )?;
        family(
            &mut enc,
            "rvs_vrrp_adverts_received",
            "VRRP adverts accepted",
            MetricType::Counter,
            rx,
        )?;
        family(
            &mut enc,
            "rvs_vrrp_adverts_sent",
            "VRRP adverts sent",
            MetricType::Counter,
            tx,
        )?;
        family(
            &mut enc,
            "rvs_vrrp_adverts_dropped",
            "VRRP adverts dropped (malformed, wrong TTL or hop limit, VRID, addresses, authentication)",
            MetricType::Counter,
            dropped,
        )?;
        family(
            &mut enc,
            "rvs_vrrp_auth_failures",
            "VRRPv2 adverts dropped for a wrong authentication type or password",
            MetricType::Counter,
            auth,
        )
    }
}
