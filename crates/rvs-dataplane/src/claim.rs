//! Claiming the virtual services from the kernel with nftables.
//!
//! An AF_PACKET socket receives *copies*: without a rule the kernel also
//! handles every frame sent to a VIP (answering a SYN with RST, or
//! forwarding it), and for NAT it would forward the real servers'
//! untranslated replies. rvs therefore owns one `inet` table, `rvs_<instance>`,
//! with a `prerouting` chain at priority `raw - 10` (before conntrack) that
//! drops, on the data plane's interfaces only:
//!
//! - packets to each service's VIP and port (the whole address for a
//!   port-zero service), and
//! - for masq servers, packets from the server's address and port to an
//!   address that is not the director's own (the replies the data plane
//!   translates; a server's answers to the director's health checks stay
//!   the kernel's).
//!
//! An `ETH_P_ALL` packet socket still sees these frames: its tap runs
//! before netfilter. ARP, ND, and all other traffic (SSH, the control API)
//! are untouched. fwmark services cannot be claimed by address; their
//! traffic must be dropped by the operator's own rules.
//!
//! The table is written as one `nft -f -` script (text rather than `nft
//! -j`: it is short, readable in logs and golden tests, and needs no JSON
//! model crate): `table …` then `delete table …` then the full table, in
//! one transaction, so applying is atomic and idempotent whether or not a
//! crashed run left the table behind. Every rule change rewrites the whole
//! table the same way. Rules are one per address, linear in the number of
//! services, which is fine for the tens of services a director has.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::process::{Command, Stdio};

use rvs_core::model::{DestConfig, Forward, Protocol, ServiceConfig, ServiceKey};

/// One claimed endpoint: protocol, address, port (0 = every port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Transport protocol.
    pub proto: Protocol,
    /// Address.
    pub addr: IpAddr,
    /// Port, 0 for every port.
    pub port: u16,
}

/// What the table drops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimSpec {
    /// Interfaces the rules apply to (the data plane's).
    pub interfaces: Vec<String>,
    /// Destinations claimed: the services.
    pub services: Vec<Endpoint>,
    /// Sources claimed: masq servers (their replies).
    pub nat_sources: Vec<Endpoint>,
}

impl ClaimSpec {
    /// The claim for a set of rules.
    pub fn for_rules<'a>(
        interfaces: &[String],
        rules: impl IntoIterator<Item = (&'a ServiceConfig, &'a [DestConfig])>,
    ) -> ClaimSpec {
        let mut spec = ClaimSpec {
            interfaces: interfaces.to_vec(),
            ..ClaimSpec::default()
        };
        for (s, dests) in rules {
            let ServiceKey::Addr { proto, addr, port } = s.key else {
                continue;
            };
            spec.services.push(Endpoint { proto, addr, port });
            for d in dests {
                if d.forward == Forward::Masq {
                    spec.nat_sources.push(Endpoint {
                        proto,
                        addr: d.addr,
                        port: d.port,
                    });
                }
            }
        }
        spec.services.sort();
        spec.services.dedup();
        spec.nat_sources.sort();
        spec.nat_sources.dedup();
        spec
    }
}

/// The table name for an instance name: `rvs_` and the name with every
/// character other than ASCII letters, digits and `_` made `_`.
pub fn table_name(instance: &str) -> String {
    let clean: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("rvs_{clean}")
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn rule(out: &mut String, ifs: &str, e: &Endpoint, dir: &str) {
    let fam = if e.addr.is_ipv4() { "ip" } else { "ip6" };
    let (addr_key, port_key) = if dir == "d" {
        ("daddr", "dport")
    } else {
        ("saddr", "sport")
    };
    let _ = write!(
        out,
        "\t\tiifname {ifs} meta l4proto {} {fam} {addr_key} {}",
        proto_name(e.proto),
        e.addr
    );
    if e.port != 0 {
        let _ = write!(out, " th {port_key} {}", e.port);
    }
    if dir != "d" {
        // A server's packets to the director's own addresses (answers to
        // its health checks, to an operator's ssh or curl) are the
        // kernel's: only replies on their way to clients are the data
        // plane's.
        out.push_str(" fib daddr type != local");
    }
    out.push_str(" drop\n");
}

/// The `nft -f` script that (re)creates the table for `spec` atomically.
pub fn script(table: &str, spec: &ClaimSpec) -> String {
    let mut s = format!("table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n");
    s.push_str("\tchain prerouting {\n");
    s.push_str("\t\ttype filter hook prerouting priority raw - 10; policy accept;\n");
    if !spec.interfaces.is_empty() {
        let ifs: Vec<String> = spec.interfaces.iter().map(|i| format!("\"{i}\"")).collect();
        let ifs = format!("{{ {} }}", ifs.join(", "));
        for e in &spec.services {
            rule(&mut s, &ifs, e, "d");
        }
        for e in &spec.nat_sources {
            rule(&mut s, &ifs, e, "s");
        }
    }
    s.push_str("\t}\n}\n");
    s
}

/// The script that deletes the table if it exists.
pub fn delete_script(table: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\n")
}

/// Runs `nft -f -` with `script` on its standard input.
pub fn run_nft(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run nft: {e} (install nftables)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "nft refused the claim table: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The claim table while it is held: [`Claim::update`] rewrites it, drop
/// deletes it.
#[derive(Debug)]
pub struct Claim {
    table: String,
    current: ClaimSpec,
}

impl Claim {
    /// Creates (or re-creates, after a crash) the table for `spec`.
    pub fn create(instance: &str, spec: ClaimSpec) -> io::Result<Claim> {
        let table = table_name(instance);
        run_nft(&script(&table, &spec))?;
        tracing::info!(table = %table, services = spec.services.len(), nat_sources = spec.nat_sources.len(), "nftables claim installed");
        Ok(Claim {
            table,
            current: spec,
        })
    }

    /// Rewrites the table for `spec` (nothing to do when it is unchanged).
    pub fn update(&mut self, spec: ClaimSpec) -> io::Result<()> {
        if spec == self.current {
            return Ok(());
        }
        run_nft(&script(&self.table, &spec))?;
        self.current = spec;
        Ok(())
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// What is claimed now.
    pub fn spec(&self) -> &ClaimSpec {
        &self.current
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        match run_nft(&delete_script(&self.table)) {
            Ok(()) => tracing::info!(table = %self.table, "nftables claim removed"),
            Err(e) => {
                tracing::error!(table = %self.table, error = %e, "cannot remove the nftables claim")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::model::Tunnel;

    fn svc(proto: Protocol, addr: &str, port: u16) -> ServiceConfig {
        ServiceConfig::new(ServiceKey::Addr {
            proto,
            addr: addr.parse().unwrap(),
            port,
        })
    }

    fn dest(addr: &str, port: u16, forward: Forward) -> DestConfig {
        DestConfig {
            addr: addr.parse().unwrap(),
            port,
            forward,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }

    #[test]
    fn the_script_claims_services_and_masq_replies_only() {
        let s1 = svc(Protocol::Tcp, "203.0.113.10", 80);
        let d1 = [
            dest("198.51.100.2", 8080, Forward::Masq),
            dest("198.51.100.3", 80, Forward::Route),
        ];
        let s2 = svc(Protocol::Udp, "2001:db8::10", 0);
        let d2 = [dest("2001:db8:1::2", 0, Forward::Masq)];
        let s3 = ServiceConfig::new(ServiceKey::FwMark {
            family: rvs_core::model::Family::V4,
            mark: 1,
        });
        let d3 = [dest("198.51.100.4", 0, Forward::Tunnel(Tunnel::default()))];
        let ifs = vec!["eth0".to_string(), "eth1".to_string()];
        let spec = ClaimSpec::for_rules(&ifs, [(&s1, &d1[..]), (&s2, &d2[..]), (&s3, &d3[..])]);
        let got = script(&table_name("a-b.c"), &spec);
        let want = "table inet rvs_a_b_c\n\
delete table inet rvs_a_b_c\n\
table inet rvs_a_b_c {\n\
\tchain prerouting {\n\
\t\ttype filter hook prerouting priority raw - 10; policy accept;\n\
\t\tiifname { \"eth0\", \"eth1\" } meta l4proto tcp ip daddr 203.0.113.10 th dport 80 drop\n\
\t\tiifname { \"eth0\", \"eth1\" } meta l4proto udp ip6 daddr 2001:db8::10 drop\n\
\t\tiifname { \"eth0\", \"eth1\" } meta l4proto tcp ip saddr 198.51.100.2 th sport 8080 fib daddr type != local drop\n\
\t\tiifname { \"eth0\", \"eth1\" } meta l4proto udp ip6 saddr 2001:db8:1::2 fib daddr type != local drop\n\
\t}\n\
}\n";
        assert_eq!(got, want);
    }

    #[test]
    fn no_interfaces_means_no_rules() {
        let s1 = svc(Protocol::Tcp, "203.0.113.10", 80);
        let spec = ClaimSpec::for_rules(&[], [(&s1, &[][..])]);
        assert!(!script("rvs_x", &spec).contains("drop"));
    }
}

/// A [`Claim`] owned by a thread of its own, started in the namespace the
/// data plane runs in: every `nft` command runs there, whichever thread
/// asks for the update (a caller on a thread of another namespace cannot
/// touch that namespace's tables). Dropping it deletes the table and joins
/// the thread.
#[derive(Debug)]
pub struct ClaimKeeper {
    tx: Option<std::sync::mpsc::Sender<(ClaimSpec, std::sync::mpsc::SyncSender<io::Result<()>>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClaimKeeper {
    /// Creates the table for `spec` from a new thread (which inherits the
    /// calling thread's namespace) and keeps it there.
    pub fn start(instance: &str, spec: ClaimSpec) -> io::Result<ClaimKeeper> {
        let (tx, rx) =
            std::sync::mpsc::channel::<(ClaimSpec, std::sync::mpsc::SyncSender<io::Result<()>>)>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let instance = instance.to_string();
        let thread = std::thread::Builder::new()
            .name("rvs-claim".into())
            .spawn(move || {
                let mut claim = match Claim::create(&instance, spec) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for (spec, reply) in rx {
                    let _ = reply.send(claim.update(spec));
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the claim thread died"))??;
        Ok(ClaimKeeper {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Rewrites the table for `spec`.
    pub fn update(&self, spec: ClaimSpec) -> io::Result<()> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.tx
            .as_ref()
            .ok_or_else(|| io::Error::other("claim released"))?
            .send((spec, reply))
            .map_err(|_| io::Error::other("the claim thread died"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the claim thread died"))?
    }
}

impl Drop for ClaimKeeper {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
