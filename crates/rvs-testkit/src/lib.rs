//! Test helpers for rvs's packet tests: network namespaces and a director
//! topology built with `ip`, root gating, and small TCP backends.
//!
//! Everything a test makes is named with the test's tag and the process id
//! (so parallel tests never collide) and is removed on drop: namespaces are
//! deleted (which removes their veths and bridges), started processes are
//! killed by PID and reaped, backend threads are stopped and joined.
//! Only documentation addresses are used (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32), and nothing is routed from the root
//! namespace.
//!
//! # The topology
//!
//! ```text
//!                      switch namespace: bridge "lan" (192.0.2.0/24), bridge "priv" (198.51.100.0/24)
//! client  eth0 192.0.2.10 ── lan ──┬── eth0 192.0.2.1     director   eth1 198.51.100.1 ── priv ──┐
//!   route 203.0.113.0/24 via .1    ├── eth0 192.0.2.21    rs0 (lo: VIP)  eth1 198.51.100.21 ─────┤
//!                                  └── eth0 192.0.2.22    rs1 (lo: VIP)  eth1 198.51.100.22 ─────┘
//! ```
//!
//! The real servers carry the VIP on `lo` with `arp_ignore=1`,
//! `arp_announce=2`, `rp_filter=0` (DR), and a source policy route `from
//! 198.51.100.0/24 table 100 default via 198.51.100.1` so that NAT replies
//! go back through the director while DR replies go straight to the
//! client. The director has `ip_forward=1`, `send_redirects=0`; the client
//! `tcp_tw_reuse=1` and a wide `ip_local_port_range`.
//!
//! Every host also has IPv6 addresses on the same segments: the L2 segment
//! is 2001:db8::/64 (client ::10, director ::1, real servers ::21 up), the
//! private one 2001:db8:1::/64 (director ::1, real servers ::21 up), the
//! IPv6 VIP is 2001:db8:ffff::10 (on the real servers' `lo`; the client
//! routes 2001:db8:ffff::/64 via the director), and the real servers route
//! `from 2001:db8:1::/64` through the director as for IPv4. Duplicate
//! address detection is off in every namespace, so addresses are usable at
//! once; neighbours are found with ND as usual.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Whether the process runs as root. When it does not: under `CI=true`
/// this panics (a root-only test must not pass by skipping there);
/// otherwise it prints that `test` is skipped and returns false.
pub fn root_or_skip(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test} needs root and CI=true: failing rather than skipping"
        );
        eprintln!("SKIPPED {test}: needs root");
    }
    root
}

/// Whether `tool` can be run (found on PATH).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs a command, failing with its standard error when it fails.
pub fn run(prog: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{prog}: {e}")))?;
    checked(prog, args, out)
}

fn checked(prog: &str, args: &[&str], out: Output) -> io::Result<String> {
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{prog} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace made by `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with `lo` up.
    pub fn new(name: &str) -> io::Result<Netns> {
        // A namespace left by a crashed run of the same PID is replaced.
        let _ = run("ip", &["netns", "del", name]);
        run("ip", &["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `prog` inside the namespace.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs `prog args` inside the namespace; its standard output, or an
    /// error carrying its standard error.
    pub fn exec(&self, prog: &str, args: &[&str]) -> io::Result<String> {
        let out = self.command(prog).args(args).output()?;
        checked(prog, args, out)
    }

    /// `ip -n NAME args`.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Sets a sysctl (`net.ipv4.ip_forward` style) inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec("sh", &["-c", &format!("echo '{value}' > {path}")])
            .map(drop)
    }

    /// Spawns `prog args` inside the namespace; the child is killed by PID
    /// when the guard drops.
    pub fn spawn(&self, prog: &str, args: &[&str]) -> io::Result<ChildGuard> {
        let child = self.command(prog).args(args).stdin(Stdio::null()).spawn()?;
        Ok(ChildGuard(child))
    }

    /// Runs `f` on a new thread that has entered the namespace (sockets it
    /// opens live there).
    pub fn thread<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> JoinHandle<io::Result<R>> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            rvs_sys::netns::enter(&name)?;
            Ok(f())
        })
    }

    /// Runs `f` inside the namespace on a thread and waits for it.
    pub fn within<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> io::Result<R> {
        self.thread(f)
            .join()
            .map_err(|_| io::Error::other("thread inside the namespace panicked"))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("cannot delete namespace {}: {e}", self.name);
        }
    }
}

/// A child process killed (by its PID) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits up to `within` for the exit; true when it
    /// exited.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        wait_for(within, || self.0.try_wait().ok().flatten().is_some())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 10 ms until it holds (true) or `within` passes (false).
pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How to build a [`Topology`].
#[derive(Debug, Clone)]
pub struct TopologySpec {
    /// Tag in every name (the test's), besides the PID.
    pub tag: String,
    /// Real servers (1 to 9).
    pub servers: usize,
    /// Turn off `tso gso gro tx` on every veth end (needs ethtool).
    pub offloads_off: bool,
}

/// The client's address on the L2 segment.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The director's address on the L2 segment.
pub const DIRECTOR_LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The director's address on the private segment.
pub const DIRECTOR_PRIVATE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The virtual IP (on the real servers' `lo`; the client routes
/// 203.0.113.0/24 via the director).
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The client's IPv6 address on the L2 segment.
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// The director's IPv6 address on the L2 segment.
pub const DIRECTOR_LAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The director's IPv6 address on the private segment.
pub const DIRECTOR_PRIVATE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The IPv6 virtual IP (on the real servers' `lo`; the client routes
/// 2001:db8:ffff::/64 via the director).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10);
/// The director's interface on the L2 segment.
pub const DIRECTOR_LAN_IF: &str = "eth0";
/// The director's interface on the private segment.
pub const DIRECTOR_PRIVATE_IF: &str = "eth1";

/// One real server.
#[derive(Debug)]
pub struct RealServer {
    /// Its namespace.
    pub ns: Netns,
    /// Its address on the L2 segment (DR).
    pub lan: Ipv4Addr,
    /// Its address on the private segment (NAT).
    pub private: Ipv4Addr,
    /// Its IPv6 address on the L2 segment (DR).
    pub lan6: Ipv6Addr,
    /// Its IPv6 address on the private segment (NAT).
    pub private6: Ipv6Addr,
}

/// Client, director and real servers around two bridges (module docs).
#[derive(Debug)]
pub struct Topology {
    // Drop order: hosts first, the switch last.
    /// The client.
    pub client: Netns,
    /// The director.
    pub director: Netns,
    /// The real servers.
    pub servers: Vec<RealServer>,
    /// The namespace holding the bridges.
    pub switch: Netns,
}

fn veth(host: &Netns, host_if: &str, switch: &Netns, port: &str, bridge: &str) -> io::Result<()> {
    host.ip(&[
        "link",
        "add",
        host_if,
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        switch.name(),
    ])?;
    switch.ip(&["link", "set", port, "master", bridge, "up"])?;
    host.ip(&["link", "set", host_if, "up"])?;
    Ok(())
}

fn offloads_off(ns: &Netns, dev: &str) -> io::Result<()> {
    ns.exec(
        "ethtool",
        &[
            "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
        ],
    )
    .map(drop)
}

/// Turns duplicate address detection off for interfaces made from now on
/// in `ns` (addresses are then usable at once, not "tentative").
fn no_dad(ns: &Netns) -> io::Result<()> {
    for k in ["all", "default"] {
        ns.sysctl(&format!("net.ipv6.conf.{k}.accept_dad"), "0")?;
        ns.sysctl(&format!("net.ipv6.conf.{k}.dad_transmits"), "0")?;
    }
    Ok(())
}

fn addr6(ns: &Netns, addr: &str, dev: &str) -> io::Result<()> {
    ns.ip(&["-6", "addr", "add", addr, "dev", dev, "nodad"])
        .map(drop)
}

impl Topology {
    /// Builds the topology (root only).
    pub fn build(spec: &TopologySpec) -> io::Result<Topology> {
        assert!((1..=9).contains(&spec.servers), "1 to 9 real servers");
        let pid = std::process::id();
        let name = |role: &str| format!("rvs-{}-{role}-{pid}", spec.tag);
        let switch = Netns::new(&name("sw"))?;
        no_dad(&switch)?;
        for br in ["lan", "priv"] {
            // Without snooping, ND multicast is flooded like broadcast.
            switch.ip(&["link", "add", br, "type", "bridge", "mcast_snooping", "0"])?;
            switch.ip(&["link", "set", br, "up"])?;
        }
        let client = Netns::new(&name("client"))?;
        let director = Netns::new(&name("dir"))?;
        let mut servers = Vec::new();
        for i in 0..spec.servers {
            servers.push(RealServer {
                ns: Netns::new(&name(&format!("rs{i}")))?,
                lan: Ipv4Addr::new(192, 0, 2, 21 + i as u8),
                private: Ipv4Addr::new(198, 51, 100, 21 + i as u8),
                lan6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x21 + i as u16),
                private6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x21 + i as u16),
            });
        }
        let t = Topology {
            client,
            director,
            servers,
            switch,
        };
        let (sw, c, d) = (&t.switch, &t.client, &t.director);
        no_dad(c)?;
        no_dad(d)?;
        for rs in &t.servers {
            no_dad(&rs.ns)?;
        }
        veth(c, "eth0", sw, "c0", "lan")?;
        c.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", "eth0"])?;
        c.ip(&[
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            &DIRECTOR_LAN.to_string(),
        ])?;
        addr6(c, &format!("{CLIENT6}/64"), "eth0")?;
        c.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:ffff::/64",
            "via",
            &DIRECTOR_LAN6.to_string(),
        ])?;
        c.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
        c.sysctl("net.ipv4.ip_local_port_range", "10000 65000")?;
        veth(d, DIRECTOR_LAN_IF, sw, "d0", "lan")?;
        veth(d, DIRECTOR_PRIVATE_IF, sw, "d1", "priv")?;
        d.ip(&[
            "addr",
            "add",
            &format!("{DIRECTOR_LAN}/24"),
            "dev",
            DIRECTOR_LAN_IF,
        ])?;
        d.ip(&[
            "addr",
            "add",
            &format!("{DIRECTOR_PRIVATE}/24"),
            "dev",
            DIRECTOR_PRIVATE_IF,
        ])?;
        addr6(d, &format!("{DIRECTOR_LAN6}/64"), DIRECTOR_LAN_IF)?;
        addr6(d, &format!("{DIRECTOR_PRIVATE6}/64"), DIRECTOR_PRIVATE_IF)?;
        d.sysctl("net.ipv4.ip_forward", "1")?;
        d.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        d.sysctl("net.ipv4.conf.all.send_redirects", "0")?;
        d.sysctl("net.ipv4.conf.default.send_redirects", "0")?;
        for (i, rs) in t.servers.iter().enumerate() {
            let n = &rs.ns;
            veth(n, "eth0", sw, &format!("s{i}l"), "lan")?;
            veth(n, "eth1", sw, &format!("s{i}p"), "priv")?;
            n.ip(&["addr", "add", &format!("{}/24", rs.lan), "dev", "eth0"])?;
            n.ip(&["addr", "add", &format!("{}/24", rs.private), "dev", "eth1"])?;
            n.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            addr6(n, &format!("{}/64", rs.lan6), "eth0")?;
            addr6(n, &format!("{}/64", rs.private6), "eth1")?;
            addr6(n, &format!("{VIP6}/128"), "lo")?;
            for (k, v) in [
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.eth0.rp_filter", "0"),
                ("net.ipv4.conf.eth1.rp_filter", "0"),
            ] {
                n.sysctl(k, v)?;
            }
            n.ip(&["rule", "add", "from", "198.51.100.0/24", "table", "100"])?;
            n.ip(&[
                "route",
                "add",
                "default",
                "via",
                &DIRECTOR_PRIVATE.to_string(),
                "table",
                "100",
            ])?;
            n.ip(&[
                "-6",
                "rule",
                "add",
                "from",
                "2001:db8:1::/64",
                "table",
                "100",
            ])?;
            n.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &DIRECTOR_PRIVATE6.to_string(),
                "table",
                "100",
            ])?;
        }
        if spec.offloads_off {
            offloads_off(c, "eth0")?;
            offloads_off(d, DIRECTOR_LAN_IF)?;
            offloads_off(d, DIRECTOR_PRIVATE_IF)?;
            for (i, rs) in t.servers.iter().enumerate() {
                offloads_off(&rs.ns, "eth0")?;
                offloads_off(&rs.ns, "eth1")?;
                offloads_off(sw, &format!("s{i}l"))?;
                offloads_off(sw, &format!("s{i}p"))?;
            }
            for p in ["c0", "d0", "d1"] {
                offloads_off(sw, p)?;
            }
        }
        Ok(t)
    }
}

/// A TCP server answering each connection with one HTTP/1.0-style reply
/// whose body is `NAME PEER_ADDRESS\n` (so a test sees which server answered
/// and which client address it saw); stopped and joined on drop.
#[derive(Debug)]
pub struct Backend {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<io::Result<()>>>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Backend {
    /// Starts a backend named `name` listening on `addr` inside `ns`.
    pub fn start(ns: &Netns, name: &str, addr: SocketAddr) -> io::Result<Backend> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (st, name) = (stop.clone(), name.to_string());
        let thread = ns.thread(move || -> io::Result<()> {
            let l = match TcpListener::bind(addr) {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(());
                }
            };
            l.set_nonblocking(true)?;
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, peer)) => {
                        let _ = serve(s, &name, peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Wait for the next connection (not a fixed sleep:
                        // that would add up to its length to every
                        // request a benchmark times).
                        use std::os::fd::AsFd;
                        rvs_sys::wait_readable(l.as_fd(), Duration::from_millis(50))?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Backend {
                stop,
                thread: Some(thread),
                addr,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("backend did not start")),
        }
    }
}

fn serve(mut s: TcpStream, name: &str, peer: SocketAddr) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let body = format!("{name} {}\n", peer.ip());
    write!(
        s,
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP GET of `/` to `addr` from inside `ns`; the response body.
pub fn http_get(ns: &Netns, addr: SocketAddr, timeout: Duration) -> io::Result<String> {
    http_get_path(ns, addr, "/", timeout)
}

/// One HTTP/1.0 GET of `path` to `addr` from inside `ns`; the body of a
/// 200 answer (HTTP/1.0 or 1.1), else an error.
pub fn http_get_path(
    ns: &Netns,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> io::Result<String> {
    let path = path.to_string();
    ns.within(move || -> io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        match r.split_once("\r\n\r\n") {
            Some((head, body))
                if head.starts_with("HTTP/1.0 200 ") || head.starts_with("HTTP/1.1 200 ") =>
            {
                Ok(body.to_string())
            }
            _ => Err(io::Error::other(format!("bad response {r:?}"))),
        }
    })?
}

/// The address of the VIP's service port `port`.
pub fn vip(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(VIP), port)
}

/// The address of the IPv6 VIP's service port `port`.
pub fn vip6(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(VIP6), port)
}

/// A userspace LVS-TUN decapsulator for a real server (this kernel has no
/// tunnel drivers): an AF_PACKET socket on the server's interface takes
/// every tunnelled packet addressed to it (IPIP, GUE on `gue_ports`, GRE),
/// and hands the inner packet to the server's own stack by sending it as
/// a frame on `lo`, where it arrives as if received. Stopped and joined on
/// drop. The server's kernel still sees the outer packet and answers it
/// with an ICMP protocol unreachable, which the director ignores.
#[derive(Debug)]
pub struct Decapsulator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<io::Result<u64>>>>,
}

impl Decapsulator {
    /// Starts decapsulating what arrives on `dev` inside `ns`.
    pub fn start(ns: &Netns, dev: &str, gue_ports: Vec<u16>) -> io::Result<Decapsulator> {
        use rvs_sys::packet::{PacketSocket, RingConfig};
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let dev = dev.to_string();
        let thread = ns.thread(move || -> io::Result<u64> {
            let open = || -> io::Result<(PacketSocket, PacketSocket)> {
                let cfg = RingConfig::default();
                let rx = PacketSocket::open(rvs_sys::iface::index(&dev)?, &cfg)?;
                let lo = PacketSocket::open(rvs_sys::iface::index("lo")?, &cfg)?;
                Ok((rx, lo))
            };
            let (mut rx, mut lo) = match open() {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(0);
                }
            };
            let mut n = 0u64;
            let mut frame = Vec::with_capacity(2048);
            while !st.load(Ordering::Relaxed) {
                use std::os::fd::AsFd;
                rvs_sys::wait_readable(rx.as_fd(), Duration::from_millis(20))?;
                while let Some(mut b) = rx.rx().next_block() {
                    while let Some((data, _)) = b.next() {
                        let Ok(d) = rvs_forward::decapsulate_frame(data, &gue_ports) else {
                            continue;
                        };
                        let inner = &data[d.inner.clone()];
                        let ethertype: [u8; 2] = match inner.first().map(|b| b >> 4) {
                            Some(4) => [0x08, 0x00],
                            Some(6) => [0x86, 0xdd],
                            _ => continue,
                        };
                        frame.clear();
                        frame.extend_from_slice(&[0; 12]);
                        frame.extend_from_slice(&ethertype);
                        frame.extend_from_slice(inner);
                        if lo.tx().push(&frame) {
                            n += 1;
                        }
                    }
                }
                lo.tx().flush()?;
            }
            Ok(n)
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Decapsulator {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("decapsulator did not start")),
        }
    }

    /// Stops it; how many packets it decapsulated.
    pub fn stop(mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r?,
            _ => Err(io::Error::other("decapsulator thread panicked")),
        }
    }
}

impl Drop for Decapsulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The bytes of the large file every [`Nginx`] serves as `/big`: `len`
/// bytes of a pattern that makes a lost, duplicated or misplaced segment
/// visible.
pub fn big_file(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// How a real server's [`Nginx`] runs.
#[derive(Debug, Clone)]
pub struct NginxSpec {
    /// The name `GET /` answers (`NAME\n`).
    pub name: String,
    /// Ports it listens on, IPv4 and IPv6 (all addresses).
    pub ports: Vec<u16>,
    /// Size of `/big`.
    pub big_len: usize,
    /// nginx's `limit_rate` for `/big`, bytes per second (a long transfer).
    pub big_rate: u32,
}

/// A real nginx in a namespace, run as one process (`master_process off`,
/// so it keeps root and reads its files; its PID is the child's) with its
/// own prefix directory, removed on drop. `GET /` answers its name, `/big`
/// is [`big_file`] sent at a limited rate, and its access log has one line
/// per request: `REMOTE_ADDR REQUEST_URI`.
#[derive(Debug)]
pub struct Nginx {
    // The process goes before its directory.
    child: ChildGuard,
    /// Its prefix directory.
    pub prefix: PathBuf,
}

fn nginx_binary() -> PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    dirs.split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("nginx is not installed (apt-get install -y nginx; .ci/run installs it)")
        })
}

impl Nginx {
    /// Starts nginx `spec` in `ns` with its files under `dir` and returns
    /// once every port accepts connections (10 s at most).
    pub fn start(ns: &Netns, dir: &Path, spec: &NginxSpec) -> io::Result<Nginx> {
        let prefix = dir.join(format!("nginx-{}-{}", spec.name, ns.name()));
        let _ = std::fs::remove_dir_all(&prefix);
        std::fs::create_dir_all(prefix.join("www"))?;
        std::fs::create_dir_all(prefix.join("tmp"))?;
        std::fs::write(prefix.join("www/big"), big_file(spec.big_len))?;
        let p = prefix.display();
        let listen: String = spec
            .ports
            .iter()
            .map(|port| format!("    listen {port};\n    listen [::]:{port};\n"))
            .collect();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  log_format peer '$remote_addr $request_uri';\n  \
             access_log {p}/access.log peer;\n  default_type text/plain;\n  \
             client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  \
             fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  \
             scgi_temp_path {p}/tmp/scgi;\n  root {p}/www;\n  keepalive_timeout 0;\n  \
             server {{\n{listen}    location = / {{ return 200 \"{name}\\n\"; }}\n    \
             location = /big {{ limit_rate {rate}; }}\n  }}\n}}\n",
            name = spec.name,
            rate = spec.big_rate,
        );
        std::fs::write(prefix.join("nginx.conf"), conf)?;
        let conf_path = prefix.join("nginx.conf");
        let err_path = prefix.join("error.log");
        let child = ns
            .command(nginx_binary().to_str().unwrap_or("nginx"))
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            // Before reading its configuration nginx opens its built-in
            // error log path: point that into the prefix too.
            .arg("-e")
            .arg(&err_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut n = Nginx {
            child: ChildGuard(child),
            prefix,
        };
        for &port in &spec.ports {
            for ip in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                let addr = SocketAddr::new(ip, port);
                let listening = wait_for(Duration::from_secs(10), || {
                    n.child.exited().is_none()
                        && ns
                            .within(move || {
                                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                                    .is_ok()
                            })
                            .unwrap_or(false)
                });
                if !listening {
                    return Err(io::Error::other(format!(
                        "nginx {} does not listen on {addr}: {}",
                        spec.name,
                        std::fs::read_to_string(&err_path).unwrap_or_default()
                    )));
                }
            }
        }
        Ok(n)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The access log's lines (`REMOTE_ADDR REQUEST_URI`).
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.prefix.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// A long HTTP download running on a thread inside a namespace: progress
/// is readable while it runs. It ends when the server closes the
/// connection, on an error, after `limit` without completing, or when
/// dropped (the connection is closed then).
#[derive(Debug)]
pub struct Download {
    received: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    local: SocketAddr,
    thread: Option<JoinHandle<io::Result<io::Result<Vec<u8>>>>>,
}

impl Download {
    /// Connects from `ns` to `addr` (5 s at most), sends `GET path` and
    /// reads on; gives up `limit` after the start.
    pub fn start(
        ns: &Netns,
        addr: SocketAddr,
        path: &str,
        limit: Duration,
    ) -> io::Result<Download> {
        let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st, path) = (received.clone(), stop.clone(), path.to_string());
        let thread = ns.thread(move || -> io::Result<Vec<u8>> {
            let deadline = Instant::now() + limit;
            let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let _ = tx.send(s.local_addr());
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            let mut all = Vec::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Ok(all),
                    Ok(n) => {
                        all.extend_from_slice(&buf[..n]);
                        r.store(all.len(), Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(e),
                }
                if Instant::now() >= deadline || st.load(Ordering::Relaxed) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("incomplete after {limit:?}: {} bytes", all.len()),
                    ));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(local)) => Ok(Download {
                received,
                stop,
                local,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the download did not connect")),
        }
    }

    /// The client's own address and port of its connection.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Bytes received so far (headers included).
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Whether the thread has ended.
    pub fn ended(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until no byte has arrived for `quiet`, at most `within`;
    /// true when it stalled so (and has not ended).
    pub fn stalls(&self, quiet: Duration, within: Duration) -> bool {
        let mut last = (self.received(), Instant::now());
        wait_for(within, || {
            let now = self.received();
            if now != last.0 {
                last = (now, Instant::now());
            }
            !self.ended() && last.1.elapsed() >= quiet
        })
    }

    /// Waits for the end; the body of a 200 answer, or what went wrong.
    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        let all = match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r??,
            _ => return Err(io::Error::other("download thread panicked")),
        };
        let at = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| io::Error::other("no header end"))?;
        let head = String::from_utf8_lossy(&all[..at]);
        if !(head.starts_with("HTTP/1.1 200 ") || head.starts_with("HTTP/1.0 200 ")) {
            return Err(io::Error::other(format!("bad answer: {head}")));
        }
        Ok(all[at + 4..].to_vec())
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
