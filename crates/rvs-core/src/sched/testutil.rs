//! Test fixtures: a destination list kept the way the director keeps it.

use std::net::{IpAddr, Ipv4Addr};

use super::{DestChange, DestId, DestStatus, Dests, Flow, SchedCtx, Scheduler, SplitMix64};
use crate::model::Protocol;

/// A service's destination list and status arena.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fixture {
    pub status: Vec<DestStatus>,
    pub order: Vec<DestId>,
}

pub(crate) fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

impl Fixture {
    /// A list whose order is `weights` as given (first = head), as a
    /// freshly bound scheduler would see it. Addresses are 10.0.0.1, .2, …
    pub fn list(weights: &[u32]) -> (Fixture, Vec<DestId>) {
        let mut f = Fixture::default();
        let ids: Vec<DestId> = weights.iter().map(|&w| f.create(w)).collect();
        f.order = ids.clone();
        (f, ids)
    }

    /// Creates a destination object without listing it.
    pub fn create(&mut self, weight: u32) -> DestId {
        let n = self.status.len();
        let id = DestId(n as u32);
        self.status.push(DestStatus {
            addr: v4(10, 0, (n >> 8) as u8, (n & 0xff) as u8 + 1),
            port: 80,
            weight,
            last_weight: weight,
            active: 0,
            inactive: 0,
            overloaded: false,
            available: true,
        });
        id
    }

    pub fn dests(&self) -> Dests<'_> {
        Dests {
            order: &self.order,
            status: &self.status,
        }
    }

    pub fn st(&mut self, id: DestId) -> &mut DestStatus {
        &mut self.status[id.index()]
    }

    /// `ipvsadm -a`: inserts at the head and tells the scheduler.
    pub fn add(&mut self, s: &mut dyn Scheduler, weight: u32) -> DestId {
        let id = self.create(weight);
        self.order.insert(0, id);
        s.on_change(self.dests(), DestChange::Added(id));
        id
    }

    /// `ipvsadm -d`: unlinks, marks unavailable and tells the scheduler.
    pub fn remove(&mut self, s: &mut dyn Scheduler, id: DestId) {
        let pos = self.order.iter().position(|&x| x == id).expect("listed");
        let predecessor = pos.checked_sub(1).map(|p| self.order[p]);
        self.order.remove(pos);
        self.st(id).available = false;
        s.on_change(self.dests(), DestChange::Removed { id, predecessor });
    }

    /// `ipvsadm -e -w`: edits the weight in place (last_weight follows a
    /// non-zero weight) and tells the scheduler.
    pub fn set_weight(&mut self, s: &mut dyn Scheduler, id: DestId, weight: u32) {
        let st = self.st(id);
        st.weight = weight;
        if weight != 0 {
            st.last_weight = weight;
        }
        s.on_change(self.dests(), DestChange::Updated(id));
    }

    /// One decision at `now_ms` with a fixed random source.
    pub fn pick(&self, s: &mut dyn Scheduler, flow: &Flow, now_ms: u64) -> Option<DestId> {
        let mut rng = SplitMix64::new(1);
        self.pick_rng(s, flow, now_ms, &mut rng)
    }

    pub fn pick_rng(
        &self,
        s: &mut dyn Scheduler,
        flow: &Flow,
        now_ms: u64,
        rng: &mut SplitMix64,
    ) -> Option<DestId> {
        let mut ctx = SchedCtx {
            now_ms,
            rng,
            lblc_expiration: 24 * 3600,
            lblcr_expiration: 24 * 3600,
        };
        s.schedule(self.dests(), flow, &mut ctx)
    }

    /// `n` decisions for the same flow at time 0.
    pub fn seq(&self, s: &mut dyn Scheduler, n: usize) -> Vec<Option<DestId>> {
        let fl = flow(v4(192, 0, 2, 1), 1000, v4(198, 51, 100, 1));
        (0..n).map(|_| self.pick(s, &fl, 0)).collect()
    }
}

/// A TCP flow.
pub(crate) fn flow(src: IpAddr, sport: u16, dst: IpAddr) -> Flow {
    Flow {
        proto: Protocol::Tcp,
        src,
        sport,
        dst,
        dport: 80,
    }
}
