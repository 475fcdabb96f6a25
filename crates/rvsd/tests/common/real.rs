//! Real servers and the daemon's view of them, for the tests that run
//! against real programs: nginx started as a child per test, a small
//! python3 responder, an `rvsd` with a control socket of its own, the
//! listing read through the control API (what `rvsadm -Ln --stats` prints)
//! and bounded waits on conditions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Dir, Rvsd};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `f` every [`POLL`] until it returns `Some`, failing the test with
/// `what` (and the last listing, if any) once `within` has passed.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(POLL);
    }
}

/// A program the test needs; when it is missing the test fails with what
/// to install (`.ci/run` installs it on CI), never passes silently.
pub fn require(program: &str, package: &str) -> PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    let found = dirs
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file());
    match found {
        Some(p) => p,
        None => panic!(
            "{program} is not installed: these tests run real {program} processes \
             (apt-get install -y {package}; .ci/run does this when CI=true); CI={}",
            std::env::var("CI").unwrap_or_default()
        ),
    }
}

/// A child process stopped by PID (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Kills the process by its PID and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether something accepts TCP connections on `addr`.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// One nginx instance: its own prefix directory, configuration and logs,
/// run in the foreground as a single process (`master_process off`), so
/// that killing its PID stops everything it serves.
pub struct Nginx {
    pub prefix: PathBuf,
    pub name: String,
    /// Ports it listens on (127.0.0.1).
    pub ports: Vec<u16>,
    pub proc: Option<Proc>,
}

impl Nginx {
    /// Writes the configuration around `http_body` (the inside of the
    /// `http {}` block) and starts nginx; returns once every port in
    /// `ports` accepts connections. Its document root is `prefix/www`.
    pub fn start(dir: &Dir, name: &str, ports: &[u16], http_body: &str) -> Nginx {
        let prefix = dir.0.join(format!("nginx-{name}"));
        for sub in ["www", "tmp"] {
            std::fs::create_dir_all(prefix.join(sub)).unwrap();
        }
        let p = prefix.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  default_type text/plain;\n  \
             client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  \
             fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  \
             scgi_temp_path {p}/tmp/scgi;\n  root {p}/www;\n{http_body}\n}}\n"
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let mut n = Nginx {
            prefix,
            name: name.to_string(),
            ports: ports.to_vec(),
            proc: None,
        };
        n.restart();
        n
    }

    /// A file in the document root.
    pub fn www(&self, file: &str) -> PathBuf {
        self.prefix.join("www").join(file)
    }

    /// Starts the (stopped) nginx again with the same configuration and
    /// waits until it listens.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "nginx {} is running", self.name);
        let bin = require("nginx", "nginx");
        let child = Command::new(bin)
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(self.prefix.join("nginx.conf"))
            // Before it reads its configuration nginx opens its built-in
            // error log path; point that at the prefix too.
            .arg("-e")
            .arg(self.prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut proc = Proc {
            child,
            name: format!("nginx {}", self.name),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for &port in &self.ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            while !accepts(addr) {
                if let Some(st) = proc.child.try_wait().unwrap() {
                    panic!(
                        "nginx {} exited ({st}) before listening on {addr}: {}",
                        self.name,
                        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx {} never listened on {addr}",
                    self.name
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.proc = Some(proc);
    }

    /// Stops nginx by its PID (SIGKILL: the server dies, as a crashed
    /// server would) and waits until it is reaped.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// The address of its first port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[0]))
    }
}

/// An `http {}` server block answering `GET /` with `name` and serving the
/// document root under `/www/`.
pub fn named_server(port: u16, name: &str) -> String {
    format!(
        "  server {{\n    listen 127.0.0.1:{port};\n    \
         location = / {{ return 200 \"{name}\\n\"; }}\n    \
         location / {{ add_header X-Server {name}; }}\n  }}\n"
    )
}

/// A small python3 program run as a child; its first line on standard
/// output (read with a deadline) says it is ready.
pub struct Script {
    pub proc: Proc,
    pub stdout: BufReader<ChildStdout>,
}

impl Script {
    pub fn start(dir: &Dir, name: &str, source: &str, args: &[String]) -> Script {
        let python = require("python3", "python3");
        let path = dir.file(name, source);
        let mut child = Command::new(python)
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let proc = Proc {
            child,
            name: name.to_string(),
        };
        // The read blocks; a thread turns it into a wait with a deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send((line, r));
        });
        let (line, stdout) = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{name} never said it was ready"));
        assert_eq!(line.trim(), "ready", "{name}");
        Script { proc, stdout }
    }
}

/// A running `rvsd` with its own control socket, no metrics listener, and
/// its standard error in `dir/rvsd.err`.
pub struct Daemon {
    pub rvsd: Rvsd,
    pub config: PathBuf,
    pub control: PathBuf,
    pub stderr: PathBuf,
}

impl Daemon {
    /// Writes `config` to `dir/rvsd.toml` and starts `rvsd` on it; returns
    /// once its control API answers.
    pub fn start(dir: &Dir, config: &str) -> Daemon {
        let path = dir.file("rvsd.toml", config);
        let control = dir.0.join("rvsd.sock");
        let stderr = dir.0.join("rvsd.err");
        let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--config")
            .arg(&path)
            .arg("--control")
            .arg(&control)
            .arg("--no-metrics")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut d = Daemon {
            rvsd: Rvsd(child),
            config: path,
            control,
            stderr,
        };
        wait_for(
            Duration::from_secs(10),
            "rvsd's control API answers",
            || {
                if let Some(st) = d.rvsd.0.try_wait().unwrap() {
                    panic!("rvsd exited ({st}): {}", d.log());
                }
                d.try_services().ok()
            },
        );
        d
    }

    /// What rvsd wrote on standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends a signal to rvsd by its PID.
    pub fn signal(&self, sig: &str) {
        let pid = self.rvsd.0.id().to_string();
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {pid}");
    }

    /// `GET /v1/services`: every service with servers, counters and rates.
    pub fn try_services(&self) -> Result<rvs_api::ServiceList, String> {
        let client = rvs_control::Client::new(&self.control);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(client.services())
            .map_err(|e| e.to_string())
    }

    /// `GET /v1/health`: every service's health as the daemon reports it.
    pub fn health(&self) -> rvs_api::HealthList {
        let client = rvs_control::Client::new(&self.control);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(client.health())
            .unwrap()
    }

    /// Whether `GET /v1/health` reports the server `addr` up.
    pub fn server_up(&self, addr: SocketAddr) -> bool {
        let h = self.health();
        let s = h
            .services
            .iter()
            .flat_map(|s| &s.servers)
            .find(|s| s.server == addr.to_string())
            .unwrap_or_else(|| panic!("{addr} not in /v1/health: {h:?}"));
        s.up
    }

    /// The one service of the daemon's table.
    pub fn service(&self) -> rvs_api::ServiceStatus {
        let mut list = self.try_services().unwrap();
        assert_eq!(list.services.len(), 1, "{list:?}");
        list.services.remove(0)
    }

    /// The listing as `rvsadm -Ln --stats` prints it (same client, same
    /// formatter).
    pub fn listing(&self) -> String {
        let list = self.try_services().unwrap();
        let rows: Vec<_> = list
            .services
            .iter()
            .map(|s| rvs_control::list_service(s).unwrap())
            .collect();
        let f = rvs_ipvsadm::list::ListFormat {
            stats: true,
            ..Default::default()
        };
        rvs_ipvsadm::list::list_all(&rows, &f)
    }

    /// The listing as `rvsadm -Ln` prints it.
    pub fn listing_plain(&self) -> String {
        let list = self.try_services().unwrap();
        let rows: Vec<_> = list
            .services
            .iter()
            .map(|s| rvs_control::list_service(s).unwrap())
            .collect();
        rvs_ipvsadm::list::list_all(&rows, &Default::default())
    }
}

/// The servers of a service, by address, with their weight.
pub fn servers(s: &rvs_api::ServiceStatus) -> Vec<(SocketAddr, u32)> {
    s.servers
        .iter()
        .map(|d| (SocketAddr::new(d.id.addr, d.id.port), d.server.weight))
        .collect()
}

/// The server `addr` of a service, if it is in the table.
pub fn server(s: &rvs_api::ServiceStatus, addr: SocketAddr) -> Option<&rvs_api::ServerStatus> {
    s.servers
        .iter()
        .find(|d| SocketAddr::new(d.id.addr, d.id.port) == addr)
}

/// The weight `rvsadm -Ln` shows for `server` (the `Weight` column of its
/// `->` line), if the server is listed.
pub fn listed_weight(listing: &str, server: SocketAddr) -> Option<u32> {
    listing.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == "->" && w.next()? == server.to_string()).then_some(())?;
        let _forward = w.next()?;
        w.next()?.parse().ok()
    })
}

/// One HTTP/1.0 GET; the status and body, or why it failed.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let t = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, t).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(t)).unwrap();
    s.set_write_timeout(Some(t)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    Ok((code, body.to_string()))
}

/// `GET /` through `vip`: the name of the nginx that answered.
pub fn who(vip: SocketAddr) -> Result<String, String> {
    match http_get(vip, "/")? {
        (200, body) => Ok(body.trim().to_string()),
        (code, body) => Err(format!("status {code}: {body}")),
    }
}
