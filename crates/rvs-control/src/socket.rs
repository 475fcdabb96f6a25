//! Where the control socket lives and how it is created.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// The socket path used when none is given (`--control PATH`), the same
/// for `rvsd` and `rvsadm`:
///
/// - `/run/rvs/rvsd.sock` when running as root (effective uid 0);
/// - else `$XDG_RUNTIME_DIR/rvs/rvsd.sock`, the per-user runtime directory;
/// - else, when `XDG_RUNTIME_DIR` is unset or empty (no login session, as
///   in a container or a cron job), `/tmp/rvs-$UID/rvsd.sock`. [`bind`]
///   creates that directory owner-only, so another user cannot plant a
///   socket there for us to talk to.
pub fn default_socket_path() -> PathBuf {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return PathBuf::from("/run/rvs/rvsd.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("rvs").join("rvsd.sock"),
        _ => PathBuf::from(format!("/tmp/rvs-{}/rvsd.sock", euid.as_raw())),
    }
}

/// Binds the control socket at `path`: creates its parent directory
/// (mode 0700) when missing, removes a stale socket left by a daemon that
/// died, binds, and makes the socket file owner-only (0600).
///
/// A socket that still answers belongs to a running daemon: it is left
/// alone and the error is `AddrInUse`. A path that exists and is not a
/// socket is never removed.
pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
    let path = path.as_ref();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: a daemon is already listening there", path.display()),
                ));
            }
            fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    // Between bind and chmod the file has the umask's mode; the 0700
    // directory (ours, or the administrator's) covers that window.
    fs::set_permissions(path, Permissions::from_mode(0o600))?;
    Ok(listener)
}
