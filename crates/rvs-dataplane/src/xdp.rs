//! The AF_XDP backend ([`crate::Backend::AfXdp`], cargo feature `xdp`).
//!
//! An XDP program on each interface ([`rvs_sys::xdp_filter`]) redirects
//! the frames the data plane owns to AF_XDP sockets and passes everything
//! else to the kernel untouched. What it owns is what the nftables claim
//! claims ([`crate::claim::ClaimSpec`]): frames to a service's VIP and
//! port, and frames from a masq server's address and port (NAT replies),
//! except, for the latter, frames addressed to the director itself (its
//! own conversations with real servers, such as health checks). The
//! program reads that from one hash map, which [`XdpState`] keeps equal to
//! the service table (rewritten on every rule change) and to the
//! director's addresses (re-read every second).
//!
//! Worker `i` owns one socket per interface, bound to receive queue `i`,
//! each with its own UMEM; a forwarded frame is built straight into a
//! transmit chunk of the egress interface's socket and sent through that
//! socket's transmit ring. Sockets are bound in copy mode, which is what
//! veth supports; the program is attached in generic (SKB) mode.
//!
//! Redirected frames never reach netfilter, so the nftables claim is not
//! needed for them; it is installed anyway, for what the program passes:
//! IPv4 fragments and IPv6 frames with extension headers to a service go
//! to the kernel, where the claim keeps the kernel from answering or
//! forwarding them (as with AF_PACKET, they are not forwarded), and frames
//! of a receive queue no worker serves.
//!
//! AF_XDP has no "checksum not ready" flag: frames from a local stack with
//! checksum offload would be forwarded with partial checksums, and frames
//! larger than a UMEM chunk (GSO/GRO) are dropped by the kernel. Turn `tx`,
//! `tso`, `gso` and `gro` offloads off on the interfaces (and on the veth
//! peers), as the test kit does.

use std::io;
use std::net::IpAddr;

use rvs_core::model::Protocol;
use rvs_sys::bpf::XdpMode;
use rvs_sys::xdp_filter::{ClaimKey, ClaimKind, ClaimMap, XdpRedirect};
use rvs_sys::xsk::{XskConfig, XskSocket};

use crate::claim::{ClaimSpec, Endpoint};
use crate::neigh::Port;

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// The program's claim keys for a claim spec and the director's addresses.
pub fn claim_keys(spec: &ClaimSpec, local: &[IpAddr]) -> Vec<ClaimKey> {
    let key = |kind, e: &Endpoint| ClaimKey {
        kind,
        proto: proto_number(e.proto),
        port: e.port,
        addr: e.addr,
    };
    let mut keys: Vec<ClaimKey> = spec
        .services
        .iter()
        .map(|e| key(ClaimKind::Service, e))
        .chain(
            spec.nat_sources
                .iter()
                .map(|e| key(ClaimKind::NatSource, e)),
        )
        .collect();
    keys.extend(local.iter().map(|&addr| ClaimKey {
        kind: ClaimKind::Local,
        proto: 0,
        port: 0,
        addr,
    }));
    keys
}

/// The programs attached to the interfaces and the claim map they read.
/// Dropping it detaches the programs.
#[derive(Debug)]
pub struct XdpState {
    // Drop order: programs first, then the map.
    redirects: Vec<XdpRedirect>,
    claims: ClaimMap,
    spec: ClaimSpec,
    local: Vec<IpAddr>,
}

impl XdpState {
    /// Attaches the program to every port and opens `queues` sockets per
    /// port (socket `q` on receive queue `q`), each registered in its
    /// port's XSK map. Returns the sockets by queue (worker). Runs in the
    /// data plane's namespace.
    pub(crate) fn open(
        ports: &[Port],
        queues: usize,
        xsk: &XskConfig,
    ) -> io::Result<(XdpState, Vec<Vec<XskSocket>>)> {
        let mut claims = ClaimMap::create()?;
        let local = rvs_sys::iface::local_addresses()?;
        claims.set(claim_keys(&ClaimSpec::default(), &local))?;
        let mut redirects = Vec::with_capacity(ports.len());
        for p in ports {
            redirects.push(
                XdpRedirect::attach(&claims, p.index, XdpMode::Generic)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.name)))?,
            );
        }
        let mut sockets = Vec::with_capacity(queues);
        for q in 0..queues {
            let mut mine = Vec::with_capacity(ports.len());
            for (p, r) in ports.iter().zip(&redirects) {
                let s = XskSocket::open(p.index, q as u32, xsk)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.name)))?;
                r.set_socket(q as u32, s.fd())?;
                mine.push(s);
            }
            sockets.push(mine);
        }
        Ok((
            XdpState {
                redirects,
                claims,
                spec: ClaimSpec::default(),
                local,
            },
            sockets,
        ))
    }

    fn apply(&mut self) -> io::Result<()> {
        self.claims.set(claim_keys(&self.spec, &self.local))
    }

    /// Claims what `spec` claims.
    pub(crate) fn set_rules(&mut self, spec: ClaimSpec) -> io::Result<()> {
        if spec.services == self.spec.services && spec.nat_sources == self.spec.nat_sources {
            return Ok(());
        }
        self.spec = spec;
        self.apply()
    }

    /// Re-reads the director's addresses (in the calling thread's
    /// namespace: the data plane's).
    pub(crate) fn refresh_local(&mut self) -> io::Result<()> {
        let local = rvs_sys::iface::local_addresses()?;
        if local != self.local {
            self.local = local;
            self.apply()?;
        }
        Ok(())
    }

    /// Detaches the programs (the sockets stop receiving; everything goes
    /// to the kernel again).
    pub(crate) fn detach(&mut self) {
        self.redirects.clear();
    }

    /// What the program's map holds.
    pub fn keys(&self) -> Vec<ClaimKey> {
        self.claims.keys().iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::model::{DestConfig, Forward, ServiceConfig, ServiceKey};

    #[test]
    fn keys_mirror_the_nftables_claim_plus_the_directors_addresses() {
        let s = ServiceConfig::new(ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "203.0.113.10".parse().unwrap(),
            port: 8080,
        });
        let d = [
            DestConfig {
                addr: "198.51.100.21".parse().unwrap(),
                port: 80,
                forward: Forward::Masq,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            },
            DestConfig {
                addr: "192.0.2.21".parse().unwrap(),
                port: 8080,
                forward: Forward::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            },
        ];
        let spec = ClaimSpec::for_rules(&["eth0".into()], [(&s, &d[..])]);
        let keys = claim_keys(&spec, &["192.0.2.1".parse().unwrap()]);
        let want = [
            ClaimKey {
                kind: ClaimKind::Service,
                proto: 6,
                port: 8080,
                addr: "203.0.113.10".parse().unwrap(),
            },
            ClaimKey {
                kind: ClaimKind::NatSource,
                proto: 6,
                port: 80,
                addr: "198.51.100.21".parse().unwrap(),
            },
            ClaimKey {
                kind: ClaimKind::Local,
                proto: 0,
                port: 0,
                addr: "192.0.2.1".parse().unwrap(),
            },
        ];
        assert_eq!(keys, want);
    }
}
