//! Watching a director pair's VRRP adverts from an observer namespace, to
//! time a takeover from the wire.

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_testkit::{Netns, wait_for};

/// One advert seen: when, from which source, with which priority.
pub type Seen = (Instant, Ipv4Addr, u8);

/// Records every VRRP advert that reaches the observer's interfaces.
pub struct Observer {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Observer {
    /// Listens in `ns` on the interfaces that hold `locals` (the
    /// observer's own addresses name the interfaces: it has no routes).
    pub fn start(ns: &Netns, locals: &[Ipv4Addr]) -> Observer {
        use socket2::{Domain, Protocol, Socket, Type};
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (out, halt, locals) = (seen.clone(), stop.clone(), locals.to_vec());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = ns.thread(move || {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
            for local in &locals {
                s.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 18), local)
                    .unwrap();
            }
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let _ = ready_tx.send(());
            let mut buf = [0u8; 2048];
            while !halt.load(Ordering::SeqCst) {
                if let Ok(n) = (&s).read(&mut buf)
                    && n >= 20 + 8
                {
                    let ihl = usize::from(buf[0] & 0xf) * 4;
                    let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                    out.lock()
                        .unwrap()
                        .push((Instant::now(), src, buf[ihl + 2]));
                }
            }
        });
        // Listening before the caller starts anything it wants timed.
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the observer could not start");
        Observer {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until an advert from `from` has been seen (the new master's,
    /// after a takeover; panics after `within`), then stops listening and
    /// returns every advert seen.
    pub fn stop_after_advert_from(mut self, from: Ipv4Addr, within: Duration) -> Vec<Seen> {
        let arrived = wait_for(within, || {
            self.seen.lock().unwrap().iter().any(|(_, s, _)| *s == from)
        });
        self.halt();
        assert!(
            arrived,
            "the observer saw no advert from {from} within {within:?}"
        );
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The last advert from `src`.
pub fn last_from(seen: &[Seen], src: Ipv4Addr) -> Option<Instant> {
    seen.iter()
        .filter(|(_, s, _)| *s == src)
        .map(|(t, _, _)| *t)
        .max()
}

/// The first advert from `src`.
pub fn first_from(seen: &[Seen], src: Ipv4Addr) -> Option<Instant> {
    seen.iter()
        .filter(|(_, s, _)| *s == src)
        .map(|(t, _, _)| *t)
        .min()
}

/// The takeover target of issue 6: 3 × advert_int + skew + 200 ms, the
/// skew at the backup's priority as keepalived computes it in ms.
pub fn takeover_bound(advert_ms: u64, backup_priority: u64) -> Duration {
    let skew = (256 - backup_priority) * advert_ms / 256;
    Duration::from_millis(3 * advert_ms + skew + 200)
}

/// The lines of a daemon's log, without terminal colour sequences
/// (ESC [ ... m); empty when the file cannot be read.
pub fn log_lines(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain.lines().map(str::to_string).collect()
}

/// Index of the first of `lines` that contains every one of `words`.
pub fn line_of(lines: &[String], words: &[&str]) -> Option<usize> {
    lines
        .iter()
        .position(|l| words.iter().all(|w| l.contains(w)))
}
