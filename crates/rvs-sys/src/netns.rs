//! Network namespace entry for the calling thread.
//!
//! `setns(2)` changes the namespace of one thread only: a thread that
//! enters a namespace and then opens sockets works there, while the rest
//! of the process stays where it was. Child processes spawned from that
//! thread start in it too.

use std::io;
use std::os::fd::AsRawFd;

use crate::cvt;

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// Moves the calling thread into the network namespace `name` (as made by
/// `ip netns add NAME`).
pub fn enter(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: not a namespace name"),
        ));
    }
    let path = format!("{NETNS_RUN_DIR}/{name}");
    let f =
        std::fs::File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    // SAFETY: `f` is an open namespace file for the duration of the call;
    // setns only reads the descriptor.
    cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) })
        .map_err(|e| io::Error::new(e.kind(), format!("setns {path}: {e}")))?;
    Ok(())
}
