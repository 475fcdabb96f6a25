//! Stats stand-in; replaced by the real estimator.

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections.
    pub conns: u64,
    /// In packets.
    pub inpkts: u64,
    /// Out packets.
    pub outpkts: u64,
    /// In bytes.
    pub inbytes: u64,
    /// Out bytes.
    pub outbytes: u64,
}
/// Rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// cps.
    pub cps: u64,
    /// inpps.
    pub inpps: u64,
    /// outpps.
    pub outpps: u64,
    /// inbps.
    pub inbps: u64,
    /// outbps.
    pub outbps: u64,
}
/// Stats.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    raw: Counters,
    base: Counters,
}
impl Stats {
    /// conn.
    pub fn add_conn(&mut self) {
        self.raw.conns += 1;
    }
    /// in.
    pub fn add_in(&mut self, bytes: u64) {
        self.raw.inpkts += 1;
        self.raw.inbytes += bytes;
    }
    /// out.
    pub fn add_out(&mut self, bytes: u64) {
        self.raw.outpkts += 1;
        self.raw.outbytes += bytes;
    }
    /// counters.
    pub fn counters(&self) -> Counters {
        Counters {
            conns: self.raw.conns - self.base.conns,
            inpkts: self.raw.inpkts - self.base.inpkts,
            outpkts: self.raw.outpkts - self.base.outpkts,
            inbytes: self.raw.inbytes - self.base.inbytes,
            outbytes: self.raw.outbytes - self.base.outbytes,
        }
    }
    /// zero.
    pub fn zero(&mut self) {
        self.base = self.raw;
    }
    /// tick.
    pub fn estimate(&mut self) {}
    /// rates.
    pub fn rates(&self) -> Rates {
        Rates::default()
    }
}
