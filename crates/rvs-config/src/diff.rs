//! The changes that turn one rule set into another.
//!
//! [`diff`] compares services by their key and servers by address and port,
//! and emits the fewest operations: a service or server whose attributes
//! changed is edited in place (so it keeps its connections, counters and
//! scheduler state), and what did not change is not touched at all.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use rvs_core::director::{CtlError, Director};
use rvs_core::model::{DestConfig, ServiceConfig, ServiceKey};

/// One control operation, as `-A -E -D -a -e -d` are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Add a service (its servers follow as [`Op::AddDest`]).
    AddService(ServiceConfig),
    /// Change a service's attributes.
    EditService(ServiceConfig),
    /// Delete a service and its servers.
    DeleteService(ServiceKey),
    /// Add a server to a service.
    AddDest {
        /// The service.
        service: ServiceKey,
        /// The server.
        dest: DestConfig,
    },
    /// Change a server's attributes.
    EditDest {
        /// The service.
        service: ServiceKey,
        /// The server, found by address and port.
        dest: DestConfig,
    },
    /// Delete a server.
    DeleteDest {
        /// The service.
        service: ServiceKey,
        /// Server address.
        addr: IpAddr,
        /// Server port.
        port: u16,
    },
}

impl Op {
    /// Applies the operation to a director.
    pub fn apply(&self, d: &mut Director) -> Result<(), CtlError> {
        match self {
            Op::AddService(s) => d.add_service(s.clone()),
            Op::EditService(s) => d.edit_service(s.clone()),
            Op::DeleteService(k) => d.del_service(k),
            Op::AddDest { service, dest } => d.add_dest(service, *dest).map(|_| ()),
            Op::EditDest { service, dest } => d.edit_dest(service, *dest),
            Op::DeleteDest {
                service,
                addr,
                port,
            } => d.del_dest(service, *addr, *port),
        }
    }
}

/// The operations that turn `running` into `wanted`, in an order in which
/// they apply: deleted services first, then per wanted service (in
/// `wanted`'s order) its edit, its deleted servers, its edited servers and
/// its added servers. Both sets are taken as valid (no duplicate keys, every
/// rule of the object model kept), as [`crate::parse`] and the director
/// guarantee.
pub fn diff(
    running: &[(ServiceConfig, Vec<DestConfig>)],
    wanted: &[(ServiceConfig, Vec<DestConfig>)],
) -> Vec<Op> {
    let mut ops = Vec::new();
    let wanted_keys: HashSet<ServiceKey> = wanted.iter().map(|(s, _)| s.key).collect();
    let by_key: HashMap<ServiceKey, &(ServiceConfig, Vec<DestConfig>)> =
        running.iter().map(|e| (e.0.key, e)).collect();
    for (svc, _) in running {
        if !wanted_keys.contains(&svc.key) {
            ops.push(Op::DeleteService(svc.key));
        }
    }
    for (svc, dests) in wanted {
        let key = svc.key;
        let Some((old_svc, old_dests)) = by_key.get(&key).copied() else {
            ops.push(Op::AddService(svc.clone()));
            ops.extend(dests.iter().map(|&dest| Op::AddDest { service: key, dest }));
            continue;
        };
        if old_svc != svc {
            ops.push(Op::EditService(svc.clone()));
        }
        let old: HashMap<(IpAddr, u16), &DestConfig> =
            old_dests.iter().map(|d| ((d.addr, d.port), d)).collect();
        let new: HashSet<(IpAddr, u16)> = dests.iter().map(|d| (d.addr, d.port)).collect();
        for d in old_dests {
            if !new.contains(&(d.addr, d.port)) {
                ops.push(Op::DeleteDest {
                    service: key,
                    addr: d.addr,
                    port: d.port,
                });
            }
        }
        let mut added = Vec::new();
        for d in dests {
            match old.get(&(d.addr, d.port)) {
                Some(o) if *o == d => {}
                Some(_) => ops.push(Op::EditDest {
                    service: key,
                    dest: *d,
                }),
                None => added.push(Op::AddDest {
                    service: key,
                    dest: *d,
                }),
            }
        }
        ops.extend(added);
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::model::{Forward, Protocol, SchedulerKind};

    fn svc(port: u16) -> ServiceConfig {
        ServiceConfig::new(ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port,
        })
    }

    fn dest(last: u8, weight: u32) -> DestConfig {
        DestConfig {
            addr: IpAddr::from([10, 0, 0, last]),
            port: 80,
            forward: Forward::Masq,
            weight,
            u_threshold: 0,
            l_threshold: 0,
        }
    }

    #[test]
    fn weight_change_is_an_edit() {
        let running = vec![(svc(80), vec![dest(1, 1), dest(2, 1)])];
        let wanted = vec![(svc(80), vec![dest(1, 1), dest(2, 5)])];
        assert_eq!(
            diff(&running, &wanted),
            vec![Op::EditDest {
                service: svc(80).key,
                dest: dest(2, 5)
            }]
        );
    }

    #[test]
    fn unchanged_is_untouched_and_order_is_delete_edit_add() {
        let mut rr = svc(443);
        rr.scheduler = SchedulerKind::Rr;
        let running = vec![
            (svc(80), vec![dest(1, 1)]),
            (svc(443), vec![dest(1, 1), dest(2, 1)]),
        ];
        let wanted = vec![
            (rr.clone(), vec![dest(3, 1), dest(2, 2)]),
            (svc(8080), vec![dest(9, 1)]),
        ];
        let k = rr.key;
        assert_eq!(
            diff(&running, &wanted),
            vec![
                Op::DeleteService(svc(80).key),
                Op::EditService(rr),
                Op::DeleteDest {
                    service: k,
                    addr: dest(1, 1).addr,
                    port: 80
                },
                Op::EditDest {
                    service: k,
                    dest: dest(2, 2)
                },
                Op::AddDest {
                    service: k,
                    dest: dest(3, 1)
                },
                Op::AddService(svc(8080)),
                Op::AddDest {
                    service: svc(8080).key,
                    dest: dest(9, 1)
                },
            ]
        );
        assert!(diff(&wanted, &wanted).is_empty());
    }
}
