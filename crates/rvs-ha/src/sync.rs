//! Connection synchronisation I/O around [`rvs_core::sync`]: the master
//! daemon sends what the director queues ([`Director::drain_sync_updates`]
//! batched by [`SyncSender`]) over UDP, by default to 224.0.0.81:8848 with
//! TTL 1 out of the sync interface; the backup daemon receives on that
//! group and port and installs the records with [`SyncReceiver::handle`].
//! Both may run at once, as in the kernel.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_core::director::Director;
use rvs_core::sync::{SyncConn, SyncReceiver, SyncSender, SyncSenderConfig, SyncSettings};
use socket2::{Domain, Protocol, Socket, Type};

/// Runs `f` on the data plane's director with the data plane's clock
/// (milliseconds), under whatever lock the data plane uses.
pub type DirectorAccess = Arc<dyn Fn(&mut dyn FnMut(&mut Director, u64)) + Send + Sync>;

/// The kernel's default sync group.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The kernel's default sync port.
pub const DEFAULT_PORT: u16 = 8848;

/// How often the master looks for queued records.
const TICK: Duration = Duration::from_millis(20);

/// Master (sends) or backup (receives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends connection state.
    Master,
    /// Receives and installs connection state.
    Backup,
}

impl Role {
    /// ipvsadm's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// One sync daemon's settings (ipvsadm's `--start-daemon` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemonConfig {
    /// Master or backup.
    pub role: Role,
    /// `--mcast-interface`.
    pub interface: String,
    /// `--syncid` (backup: 0 accepts every id).
    pub sync_id: u8,
    /// `--sync-maxlen`; `None`: from the interface MTU.
    pub maxlen: Option<usize>,
    /// `--mcast-group`; `None`: 224.0.0.81.
    pub group: Option<Ipv4Addr>,
    /// `--mcast-port`; `None`: 8848.
    pub port: Option<u16>,
    /// `--mcast-ttl`; `None`: 1.
    pub ttl: Option<u8>,
    /// rvs: a unicast peer the master sends to instead of the group (the
    /// backup then listens on the port without joining the group).
    pub unicast_peer: Option<Ipv4Addr>,
    /// The director's master-side settings (threshold, period...).
    pub settings: SyncSettings,
}

impl SyncDaemonConfig {
    /// keepalived/ipvsadm defaults for `role` on `interface`.
    pub fn new(role: Role, interface: &str, sync_id: u8) -> Self {
        SyncDaemonConfig {
            role,
            interface: interface.to_string(),
            sync_id,
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
            unicast_peer: None,
            settings: SyncSettings::default(),
        }
    }

    /// The `ipvsadm -L --daemon` line (the optional fields only when set).
    pub fn list_line(&self) -> String {
        let mut s = format!(
            "{} sync daemon (mcast={}, syncid={}",
            self.role.name(),
            self.interface,
            self.sync_id
        );
        if let Some(m) = self.maxlen {
            s += &format!(", maxlen={m}");
        }
        if let Some(g) = self.group {
            s += &format!(", group={g}");
        }
        if let Some(p) = self.port {
            s += &format!(", port={p}");
        }
        if let Some(t) = self.ttl {
            s += &format!(", ttl={t}");
        }
        s + ")\n"
    }
}

/// Counters of one daemon.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Datagrams sent (master) or received (backup).
    pub datagrams: AtomicU64,
    /// Records queued (master) or installed (backup).
    pub records: AtomicU64,
    /// Send or receive errors.
    pub errors: AtomicU64,
}

struct Running {
    cfg: SyncDaemonConfig,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<SyncCounters>,
}

impl Running {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The sync daemons of one data plane: at most one master and one backup.
pub struct SyncDaemons {
    access: DirectorAccess,
    running: Mutex<Vec<Running>>,
}

impl std::fmt::Debug for SyncDaemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.list())
    }
}

/// Why a daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// One of this role runs already.
    #[error("the {} sync daemon is already running", .0.name())]
    Running(Role),
    /// A socket could not be set up.
    #[error("{0}")]
    Io(io::Error),
}

impl SyncDaemons {
    /// No daemon running yet.
    pub fn new(access: DirectorAccess) -> SyncDaemons {
        SyncDaemons {
            access,
            running: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a daemon; an error when one of that role runs already or the
    /// socket cannot be set up (nothing changes then).
    pub fn start(&self, cfg: SyncDaemonConfig) -> Result<(), StartError> {
        let mut running = self.lock();
        if running.iter().any(|r| r.cfg.role == cfg.role) {
            return Err(StartError::Running(cfg.role));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SyncCounters::default());
        let thread = match cfg.role {
            Role::Master => {
                let (sock, to, sender) = open_master(&cfg).map_err(StartError::Io)?;
                let settings = cfg.settings;
                (self.access)(&mut |d, _| d.set_sync_master(Some(settings)));
                let (access, stop, counters) =
                    (self.access.clone(), stop.clone(), counters.clone());
                std::thread::Builder::new()
                    .name("rvs-sync-master".into())
                    .spawn(move || master_loop(&access, &sock, to, sender, &stop, &counters))
                    .map_err(StartError::Io)?
            }
            Role::Backup => {
                let sock = open_backup(&cfg).map_err(StartError::Io)?;
                let rx = SyncReceiver::new(cfg.sync_id);
                let (access, stop, counters) =
                    (self.access.clone(), stop.clone(), counters.clone());
                std::thread::Builder::new()
                    .name("rvs-sync-backup".into())
                    .spawn(move || backup_loop(&access, &sock, rx, &stop, &counters))
                    .map_err(StartError::Io)?
            }
        };
        tracing::info!(line = %cfg.list_line().trim_end(), "sync daemon started");
        running.push(Running {
            cfg,
            stop,
            thread: Some(thread),
            counters,
        });
        Ok(())
    }

    /// Stops the daemon of `role`; false when none ran.
    pub fn stop(&self, role: Role) -> bool {
        let mut running = self.lock();
        let Some(i) = running.iter().position(|r| r.cfg.role == role) else {
            return false;
        };
        let mut r = running.remove(i);
        drop(running);
        r.halt();
        if role == Role::Master {
            (self.access)(&mut |d, _| d.set_sync_master(None));
        }
        tracing::info!(role = role.name(), "sync daemon stopped");
        true
    }

    /// Whether a daemon of `role` runs.
    pub fn running(&self, role: Role) -> bool {
        self.lock().iter().any(|r| r.cfg.role == role)
    }

    /// The configuration of every running daemon (master first).
    pub fn configs(&self) -> Vec<SyncDaemonConfig> {
        let mut v: Vec<_> = self.lock().iter().map(|r| r.cfg.clone()).collect();
        v.sort_by_key(|c| c.role == Role::Backup);
        v
    }

    /// `(datagrams, records, errors)` of the daemon of `role`.
    pub fn counters(&self, role: Role) -> Option<(u64, u64, u64)> {
        self.lock().iter().find(|r| r.cfg.role == role).map(|r| {
            let c = &r.counters;
            (
                c.datagrams.load(Ordering::Relaxed),
                c.records.load(Ordering::Relaxed),
                c.errors.load(Ordering::Relaxed),
            )
        })
    }

    /// What `ipvsadm -L --daemon` prints.
    pub fn list(&self) -> String {
        self.configs()
            .iter()
            .map(SyncDaemonConfig::list_line)
            .collect()
    }
}

impl Drop for SyncDaemons {
    fn drop(&mut self) {
        for mut r in self.lock().drain(..) {
            r.halt();
        }
    }
}

fn ctx(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn open_master(cfg: &SyncDaemonConfig) -> io::Result<(Socket, SocketAddr, SyncSender)> {
    let iface = rvs_sys::iface::lookup(&cfg.interface)
        .map_err(|e| ctx(e, &format!("sync interface {}", cfg.interface)))?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind_device(Some(cfg.interface.as_bytes()))
        .map_err(|e| ctx(e, "SO_BINDTODEVICE"))?;
    // SO_BINDTODEVICE also picks the interface multicast leaves by.
    let _ = iface;
    s.set_multicast_ttl_v4(u32::from(cfg.ttl.unwrap_or(1)))?;
    s.set_multicast_loop_v4(false)?;
    let port = cfg.port.unwrap_or(DEFAULT_PORT);
    let dst = cfg
        .unicast_peer
        .unwrap_or(cfg.group.unwrap_or(DEFAULT_GROUP));
    let maxlen = match cfg.maxlen {
        Some(m) => m,
        None => SyncSenderConfig::maxlen_for_mtu(rvs_sys::iface::mtu(&cfg.interface)?, false),
    };
    let sender = SyncSender::new(SyncSenderConfig {
        sync_id: cfg.sync_id,
        maxlen,
        ..SyncSenderConfig::default()
    });
    Ok((s, SocketAddr::V4(SocketAddrV4::new(dst, port)), sender))
}

fn open_backup(cfg: &SyncDaemonConfig) -> io::Result<Socket> {
    let iface = rvs_sys::iface::lookup(&cfg.interface)
        .map_err(|e| ctx(e, &format!("sync interface {}", cfg.interface)))?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(cfg.interface.as_bytes()))
        .map_err(|e| ctx(e, "SO_BINDTODEVICE"))?;
    let port = cfg.port.unwrap_or(DEFAULT_PORT);
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
        .map_err(|e| ctx(e, &format!("binding UDP port {port}")))?;
    if cfg.unicast_peer.is_none() {
        let g = cfg.group.unwrap_or(DEFAULT_GROUP);
        s.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(iface.index))
            .map_err(|e| ctx(e, &format!("joining {g}")))?;
    }
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

fn master_loop(
    access: &DirectorAccess,
    sock: &Socket,
    to: SocketAddr,
    mut sender: SyncSender,
    stop: &AtomicBool,
    counters: &SyncCounters,
) {
    let to = to.into();
    let mut recs: Vec<SyncConn> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let mut clock = 0;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        access(&mut |d, now| {
            d.drain_sync_updates(&mut recs);
            clock = now;
        });
        counters
            .records
            .fetch_add(recs.len() as u64, Ordering::Relaxed);
        for r in recs.drain(..) {
            sender.push(clock, &r);
        }
        if stopping {
            sender.flush();
        }
        while let Some(n) = sender.poll_datagram(clock, &mut buf) {
            match sock.send_to(&buf[..n], &to) {
                Ok(_) => counters.datagrams.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::debug!(error = %e, "sync send");
                    counters.errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        if stopping {
            return;
        }
        std::thread::sleep(TICK);
    }
}

fn backup_loop(
    access: &DirectorAccess,
    sock: &Socket,
    mut rx: SyncReceiver,
    stop: &AtomicBool,
    counters: &SyncCounters,
) {
    let mut buf = vec![0u8; 65_536];
    let mut s = sock;
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(n) => {
                counters.datagrams.fetch_add(1, Ordering::Relaxed);
                let mut installed = 0;
                access(&mut |d, now| installed = rx.handle(&buf[..n], d, now));
                counters
                    .records
                    .fetch_add(installed as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "sync receive");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
