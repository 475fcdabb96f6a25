//! Virtual addresses on the interface, through iproute2's `ip addr`, and
//! the interface's own IPv4 address.
//!
//! `ip` rather than rtnetlink: a few commands per state change are not a
//! hot path, the operator sees the same commands in `ps`, and no netlink
//! message code has to be kept here.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

/// Adds and removes one instance's virtual addresses, each on its own
/// interface (the instance's unless the address names another with `dev`).
#[derive(Debug, Clone)]
pub struct VipManager {
    interface: String,
    vips: Vec<(IpAddr, u8)>,
    /// The interface of each entry of `vips` (same order).
    devs: Vec<String>,
}

fn ip(args: &[&str]) -> io::Result<std::process::Output> {
    Command::new("ip").args(args).output()
}

impl VipManager {
    /// For `vips` (address, prefix length) on `interface`.
    pub fn new(interface: &str, vips: Vec<(IpAddr, u8)>) -> VipManager {
        VipManager {
            interface: interface.to_string(),
            devs: vec![interface.to_string(); vips.len()],
            vips,
        }
    }

    /// The addresses and prefix lengths it knows.
    pub fn vips(&self) -> Vec<(IpAddr, u8)> {
        self.vips.clone()
    }

    /// Puts the `i`th address on `per_vip[i]` rather than on the
    /// instance's interface (keepalived's `ADDR dev IFNAME`); missing
    /// entries keep the instance's interface.
    pub fn on_interfaces(mut self, per_vip: &[String]) -> VipManager {
        for (dev, d) in self.devs.iter_mut().zip(per_vip) {
            dev.clone_from(d);
        }
        self
    }

    /// The interface `a` goes on.
    pub fn interface_of(&self, a: IpAddr) -> &str {
        self.vips
            .iter()
            .position(|(v, _)| *v == a)
            .map_or(&self.interface, |i| &self.devs[i])
    }

    /// Every interface an address goes on, the instance's first, each once.
    pub fn interfaces(&self) -> Vec<String> {
        let mut out = vec![self.interface.clone()];
        for d in &self.devs {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    fn prefix_of(&self, a: IpAddr) -> u8 {
        self.vips
            .iter()
            .find(|(v, _)| *v == a)
            .map_or(if a.is_ipv4() { 32 } else { 128 }, |(_, p)| *p)
    }

    /// Adds `addrs`; an address already there is fine.
    pub fn add(&self, addrs: &[IpAddr]) {
        for a in addrs {
            let cidr = format!("{a}/{}", self.prefix_of(*a));
            let dev = self.interface_of(*a);
            let mut args = vec!["addr", "add", &cidr, "dev", dev];
            // An IPv6 virtual address is usable at once: duplicate address
            // detection would hold it tentative for a second or more, and
            // the other router holding it is what VRRP already rules out.
            if a.is_ipv6() {
                args.push("nodad");
            }
            match ip(&args) {
                Ok(o) if o.status.success() => {
                    tracing::info!(vip = %cidr, interface = %dev, "virtual address added");
                }
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    if !err.contains("File exists") {
                        tracing::error!(vip = %cidr, error = %err.trim(), "cannot add virtual address");
                    }
                }
                Err(e) => tracing::error!(vip = %cidr, error = %e, "cannot run ip"),
            }
        }
    }

    /// Removes `addrs`; an address already gone is fine.
    pub fn del(&self, addrs: &[IpAddr]) {
        for a in addrs {
            let cidr = format!("{a}/{}", self.prefix_of(*a));
            let dev = self.interface_of(*a);
            match ip(&["addr", "del", &cidr, "dev", dev]) {
                Ok(o) if o.status.success() => {
                    tracing::info!(vip = %cidr, interface = %dev, "virtual address removed");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(vip = %cidr, error = %e, "cannot run ip"),
            }
        }
    }

    /// Removes every configured virtual address found on the interface: a
    /// previous run that died as master left them (keepalived does the same
    /// at start-up).
    pub fn remove_leftovers(&self) {
        for dev in self.interfaces() {
            let present = addresses(&dev).unwrap_or_default();
            let left: Vec<IpAddr> = self
                .vips
                .iter()
                .map(|(a, _)| *a)
                .filter(|a| self.interface_of(*a) == dev && present.contains(a))
                .collect();
            if !left.is_empty() {
                tracing::warn!(interface = %dev, vips = ?left, "removing virtual addresses left by a previous run");
                self.del(&left);
            }
        }
    }
}

/// Every address on `interface`, from `ip -j addr show dev IF`.
pub fn addresses(interface: &str) -> io::Result<Vec<IpAddr>> {
    let o = ip(&["-j", "addr", "show", "dev", interface])?;
    if !o.status.success() {
        return Err(io::Error::other(format!(
            "ip addr show dev {interface}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                out.push(ip);
            }
        }
    }
    Ok(out)
}

/// The first IPv4 address of `interface` that is not one of `exclude` (the
/// virtual addresses): the advert source when no `unicast_src_ip` is given.
pub fn interface_ipv4(interface: &str, exclude: &[IpAddr]) -> io::Result<Ipv4Addr> {
    addresses(interface)?
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) if !exclude.contains(&a) => Some(v4),
            _ => None,
        })
        .ok_or_else(|| {
            io::Error::other(format!(
                "interface {interface} has no IPv4 address to send VRRP adverts from (set unicast_src_ip)"
            ))
        })
}

/// The link-local IPv6 address (fe80::/10) of `interface`, not one of
/// `exclude`: the advert source of an IPv6 instance when no
/// `unicast_src_ip` is given (RFC 5798 §5.1.2.1).
pub fn interface_link_local(interface: &str, exclude: &[IpAddr]) -> io::Result<Ipv6Addr> {
    addresses(interface)?
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 && !exclude.contains(&a) => {
                Some(v6)
            }
            _ => None,
        })
        .ok_or_else(|| {
            io::Error::other(format!(
                "interface {interface} has no IPv6 link-local address to send VRRP adverts from \
                 (is IPv6 on and the link up? or set unicast_src_ip)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::VipManager;
    use std::net::IpAddr;

    #[test]
    fn each_address_goes_on_its_own_interface() {
        let a: IpAddr = "192.0.2.100".parse().unwrap();
        let b: IpAddr = "198.51.100.1".parse().unwrap();
        let c: IpAddr = "198.51.100.2".parse().unwrap();
        let m = VipManager::new("eth0", vec![(a, 24), (b, 24), (c, 32)]).on_interfaces(&[
            "eth0".into(),
            "eth1".into(),
            "eth1".into(),
        ]);
        assert_eq!(m.interface_of(a), "eth0");
        assert_eq!(m.interface_of(b), "eth1");
        assert_eq!(m.interface_of(c), "eth1");
        // Not one of ours: the instance's interface.
        assert_eq!(m.interface_of("203.0.113.1".parse().unwrap()), "eth0");
        assert_eq!(m.interfaces(), vec!["eth0", "eth1"]);
        // Without `dev` everything stays on the instance's interface.
        let plain = VipManager::new("eth0", vec![(a, 24), (b, 24)]);
        assert_eq!(plain.interfaces(), vec!["eth0"]);
        assert_eq!(plain.interface_of(b), "eth0");
    }
}
