//! The neighbour and route view the forwarder asks for each packet.
//!
//! The per-packet lookup ([`Neighbours::next_hop`]) reads an immutable
//! snapshot (`ArcSwap<HashMap>`) and never blocks: an address not in it is
//! queued for the resolver and the packet is dropped (TCP retransmits; the
//! real servers are queued as soon as they are configured, so their first
//! packet finds them).
//!
//! The resolver asks the kernel through iproute2's JSON output, `ip -j
//! route get ADDR` and `ip -j neigh show`, rather than rtnetlink: the
//! netlink crates add several minutes of build on these machines and
//! break their API often, while these two commands are stable, run only
//! on the slow path (a new address, and one neighbour dump per refresh),
//! and are what an operator would type to check. An address whose
//! neighbour entry is missing is probed by sending one UDP datagram to its
//! discard port (9), which makes the kernel resolve it (ARP or ND); the
//! next refresh picks the answer up.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use arc_swap::ArcSwap;
use rvs_forward::{IfIndex, Mac, Neighbours, NextHop};

/// One interface of the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Name.
    pub name: String,
    /// Index.
    pub index: IfIndex,
    /// Its MAC address.
    pub mac: Mac,
    /// Its MTU.
    pub mtu: u32,
}

impl Port {
    /// Looks interface `name` up in the calling thread's namespace.
    pub fn lookup(name: &str) -> io::Result<Port> {
        let i = rvs_sys::iface::lookup(name)?;
        Ok(Port {
            name: name.to_string(),
            index: i.index,
            mac: i.mac,
            mtu: i.mtu,
        })
    }
}

/// A route as `ip -j route get` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Outgoing interface name.
    pub dev: String,
    /// The gateway, if the destination is not on-link.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// Route MTU, if the route sets one.
    pub mtu: Option<u32>,
}

impl Route {
    /// The neighbour to resolve for `dst` over this route.
    pub fn neighbour(&self, dst: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dst)
    }
}

/// Parses `ip -j route get` output (a one-element array).
pub fn parse_route(json: &str) -> Option<Route> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let r = v.as_array()?.first()?;
    let ip = |k: &str| {
        r.get(k)
            .and_then(|x| x.as_str())
            .and_then(|s| s.parse().ok())
    };
    let mtu = r
        .get("metrics")
        .and_then(|m| m.as_array())
        .and_then(|a| a.iter().find_map(|m| m.get("mtu").and_then(|x| x.as_u64())))
        .and_then(|m| u32::try_from(m).ok());
    Some(Route {
        dev: r.get("dev")?.as_str()?.to_string(),
        gateway: ip("gateway"),
        prefsrc: ip("prefsrc"),
        mtu,
    })
}

/// Parses `ip -j neigh show` output into (device, address) → MAC, leaving
/// out entries without a link-layer address or in state FAILED or
/// INCOMPLETE.
pub fn parse_neighbours(json: &str) -> HashMap<(String, IpAddr), Mac> {
    let mut out = HashMap::new();
    let Ok(serde_json::Value::Array(a)) = serde_json::from_str(json) else {
        return out;
    };
    for n in a {
        let (Some(dst), Some(dev), Some(ll)) = (
            n.get("dst")
                .and_then(|x| x.as_str())
                .and_then(|s| s.parse::<IpAddr>().ok()),
            n.get("dev").and_then(|x| x.as_str()),
            n.get("lladdr").and_then(|x| x.as_str()).and_then(parse_mac),
        ) else {
            continue;
        };
        let bad = n.get("state").and_then(|s| s.as_array()).is_some_and(|s| {
            s.iter()
                .any(|x| matches!(x.as_str(), Some("FAILED" | "INCOMPLETE")))
        });
        if !bad {
            out.insert((dev.to_string(), dst), ll);
        }
    }
    out
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

fn ip_json(args: &[&str]) -> io::Result<String> {
    let out = Command::new("ip").arg("-j").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip -j {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where an address goes, as resolved: the route (or none through the
/// data plane's interfaces) and the neighbour to ask for.
#[derive(Debug, Clone)]
struct Resolved {
    /// `None`: the route leaves by an interface the data plane does not own.
    route: Option<(Route, IpAddr)>,
}

/// The neighbour table of the data plane's interfaces.
#[derive(Debug)]
pub struct NeighbourTable {
    ports: Vec<Port>,
    snapshot: ArcSwap<HashMap<IpAddr, Option<NextHop>>>,
    routes: Mutex<HashMap<IpAddr, Resolved>>,
    wanted: SyncSender<IpAddr>,
    queue: Mutex<Receiver<IpAddr>>,
}

impl NeighbourTable {
    /// A table for `ports`, empty until [`NeighbourTable::refresh`].
    pub fn new(ports: Vec<Port>) -> NeighbourTable {
        let (tx, rx) = sync_channel(4096);
        NeighbourTable {
            ports,
            snapshot: ArcSwap::from_pointee(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            wanted: tx,
            queue: Mutex::new(rx),
        }
    }

    /// The interfaces.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// Asks for `ip` to be resolved (by the next refresh).
    pub fn want(&self, ip: IpAddr) {
        // A full queue drops the request: the address is asked for again
        // by its next packet.
        let _ = self.wanted.try_send(ip);
    }

    /// Resolves queued addresses and re-reads every known neighbour: one
    /// `ip -j neigh show` plus one `ip -j route get` per new address.
    /// Returns how many addresses are known with a MAC.
    pub fn refresh(&self) -> io::Result<usize> {
        let new: Vec<IpAddr> = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_iter()
            .collect();
        self.refresh_with(new)
    }

    fn refresh_with(&self, new: Vec<IpAddr>) -> io::Result<usize> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for ip in new {
            if routes.contains_key(&ip) {
                continue;
            }
            let route = match ip_json(&["route", "get", &ip.to_string()]) {
                Ok(j) => parse_route(&j),
                Err(e) => {
                    tracing::debug!(%ip, error = %e, "no route");
                    None
                }
            };
            let route = route
                .filter(|r| self.ports.iter().any(|p| p.name == r.dev))
                .map(|r| {
                    let n = r.neighbour(ip);
                    (r, n)
                });
            routes.insert(ip, Resolved { route });
        }
        let neigh = parse_neighbours(&ip_json(&["neigh", "show"])?);
        let mut map = HashMap::with_capacity(routes.len());
        let mut known = 0;
        for (ip, r) in routes.iter() {
            let Some((route, n)) = &r.route else {
                map.insert(*ip, None);
                continue;
            };
            let Some(port) = self.ports.iter().find(|p| p.name == route.dev) else {
                continue;
            };
            let dst_mac = neigh.get(&(route.dev.clone(), *n)).copied();
            if dst_mac.is_some() {
                known += 1;
            } else {
                probe(*n);
            }
            let mtu = route.mtu.unwrap_or(port.mtu);
            map.insert(
                *ip,
                Some(NextHop {
                    iface: port.index,
                    src_mac: port.mac,
                    dst_mac,
                    mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
                    src_ip: route.prefsrc,
                }),
            );
        }
        self.snapshot.store(Arc::new(map));
        Ok(known)
    }

    /// Runs [`NeighbourTable::refresh`] every `period` and as soon as
    /// addresses are wanted, until `stop` returns true (checked at least
    /// every 100 ms).
    pub fn run(&self, period: Duration, stop: impl Fn() -> bool) {
        let mut last = std::time::Instant::now();
        let _ = self.refresh();
        while !stop() {
            let new: Vec<IpAddr> = {
                let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                let first = q.recv_timeout(period.min(Duration::from_millis(100))).ok();
                first.into_iter().chain(q.try_iter()).collect()
            };
            if !new.is_empty() || last.elapsed() >= period {
                if let Err(e) = self.refresh_with(new) {
                    tracing::warn!(error = %e, "neighbour refresh failed");
                }
                last = std::time::Instant::now();
            }
        }
    }
}

/// Makes the kernel resolve `ip` by sending it one UDP datagram to the
/// discard port.
fn probe(ip: IpAddr) {
    let bind: SocketAddr = if ip.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    if let Ok(s) = UdpSocket::bind(bind) {
        let _ = s.send_to(b"", SocketAddr::new(ip, 9));
    }
}

impl Neighbours for NeighbourTable {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        match self.snapshot.load().get(&dst) {
            Some(nh) => *nh,
            None => {
                self.want(dst);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let r = parse_route(
            r#"[{"dst":"192.0.2.7","dev":"v0","prefsrc":"192.0.2.1","flags":[],"uid":0,"cache":[]}]"#,
        )
        .unwrap();
        assert_eq!(r.dev, "v0");
        assert_eq!(r.gateway, None);
        assert_eq!(r.prefsrc, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            r.neighbour("192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let r = parse_route(
            r#"[{"dst":"203.0.113.9","gateway":"192.0.2.254","dev":"eth0","prefsrc":"192.0.2.1","metrics":[{"mtu":1400}],"flags":[],"uid":0,"cache":[]}]"#,
        )
        .unwrap();
        assert_eq!(r.gateway, Some("192.0.2.254".parse().unwrap()));
        assert_eq!(r.mtu, Some(1400));
        assert_eq!(
            r.neighbour("203.0.113.9".parse().unwrap()),
            "192.0.2.254".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_route("[]"), None);
        assert_eq!(parse_route("not json"), None);
    }

    #[test]
    fn neighbours_parse_and_unusable_ones_are_left_out() {
        let n = parse_neighbours(
            r#"[{"dst":"192.0.2.2","dev":"v0","lladdr":"02:00:00:00:00:02","state":["REACHABLE"]},
                {"dst":"192.0.2.3","dev":"v0","state":["FAILED"]},
                {"dst":"192.0.2.4","dev":"v0","lladdr":"02:00:00:00:00:04","state":["INCOMPLETE"]},
                {"dst":"2001:db8::2","dev":"v1","lladdr":"02:00:00:00:00:06","router":null,"state":["STALE"]}]"#,
        );
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[&("v0".to_string(), "192.0.2.2".parse().unwrap())],
            [2, 0, 0, 0, 0, 2]
        );
        assert!(n.contains_key(&("v1".to_string(), "2001:db8::2".parse().unwrap())));
        assert!(parse_neighbours("garbage").is_empty());
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("0a:1b:2c:3d:4e:5f"),
            Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f])
        );
        assert_eq!(parse_mac("0a:1b:2c:3d:4e"), None);
        assert_eq!(parse_mac("0a:1b:2c:3d:4e:5f:00"), None);
        assert_eq!(parse_mac("zz:1b:2c:3d:4e:5f"), None);
    }

    #[test]
    fn a_miss_is_queued_and_answers_no_route() {
        let t = NeighbourTable::new(Vec::new());
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(t.next_hop(ip), None);
        assert_eq!(t.queue.lock().unwrap().try_recv().unwrap(), ip);
    }
}
