//! Moving one direction of a proxied TCP connection: socket to socket,
//! through a pooled user-space buffer or through a pipe with splice(2).
//!
//! Both paths hold nothing while a connection is idle: they wait for the
//! source to become readable, then lease a buffer or a pipe from a small
//! per-thread pool, move what is there, and give the lease back once the
//! source would block and everything read has been written. An idle
//! proxied connection therefore costs its task and two sockets, not 2 ×
//! 64 KiB of buffers or four pipe descriptors.

use std::cell::RefCell;
use std::io;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// How the bytes of a proxied TCP connection are moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// read(2) into a user-space buffer, write(2) out of it.
    Buffered,
    /// splice(2) socket → pipe → socket: the payload never enters user
    /// space. Falls back to [`RelayMode::Buffered`] for a burst when no
    /// pipe can be created (descriptor limit) and for the rest of the
    /// direction when the kernel refuses to splice these sockets.
    Splice,
    /// Copies through a buffer until a read fills the whole buffer (a bulk
    /// transfer), then splices that direction from there on: small
    /// request/answer turns never pay for a pipe, bulk moves zero-copy.
    Auto,
}

impl RelayMode {
    pub(crate) fn code(self) -> u8 {
        match self {
            RelayMode::Buffered => 0,
            RelayMode::Splice => 1,
            RelayMode::Auto => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> RelayMode {
        match c {
            1 => RelayMode::Splice,
            2 => RelayMode::Auto,
            _ => RelayMode::Buffered,
        }
    }
}

/// One user-space read: the unit reported to the director as a "packet"
/// on the buffered path.
const CHUNK: usize = 64 * 1024;

/// Leases kept per thread. Bounds the memory (buffers) and descriptors
/// (pipes) parked by bursts that ended; anything beyond is freed.
const POOL: usize = 16;

thread_local! {
    static BUFS: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer borrowed from this thread's pool; returned to the pool of the
/// thread that drops it (a task may have moved in between).
struct Buf(Option<Box<[u8]>>);

impl Buf {
    fn take() -> Buf {
        let b = BUFS
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; CHUNK].into_boxed_slice());
        Buf(Some(b))
    }

    fn get(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().expect("present until dropped")
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            BUFS.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL {
                    p.push(b);
                }
            });
        }
    }
}

/// Writes all of `buf` to `dst` as it becomes writable.
pub(crate) async fn write_all(dst: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // async_io waits for readiness, clears it on EAGAIN and takes
        // tokio's cooperative budget, so a relay that never blocks still
        // lets the worker's other tasks run.
        let n = dst
            .async_io(Interest::WRITABLE, || {
                // NOSIGNAL: a peer that reset must not raise SIGPIPE.
                rustix::net::send(dst, buf, rustix::net::SendFlags::NOSIGNAL).map_err(Into::into)
            })
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Relays `src` to `dst` until `src` reaches end of file (returns Ok, the
/// caller half-closes `dst`) or either side fails. `moved` is called with
/// the size of every read, before its bytes are written.
pub(crate) async fn one_way(
    mode: RelayMode,
    src: &TcpStream,
    dst: &TcpStream,
    moved: impl Fn(usize),
) -> io::Result<()> {
    match mode {
        RelayMode::Buffered => buffered(src, dst, &moved).await,
        RelayMode::Splice => splice::one_way(src, dst, &moved, false).await,
        RelayMode::Auto => splice::one_way(src, dst, &moved, true).await,
    }
}

/// What one burst of the buffered path ended with.
enum Burst {
    /// The source would block: wait for it again.
    Drained,
    /// The source reached end of file.
    Eof,
    /// A read filled the whole buffer (reported only when asked for).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Full,
    /// splice(2) refused the source before anything entered the pipe.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Refused(io::Error),
}

async fn buffered(src: &TcpStream, dst: &TcpStream, moved: &impl Fn(usize)) -> io::Result<()> {
    loop {
        src.readable().await?;
        match buffered_burst(src, dst, moved, false).await? {
            Burst::Eof => return Ok(()),
            Burst::Drained | Burst::Full => {}
            Burst::Refused(e) => return Err(e),
        }
    }
}

/// Moves what `src` has, holding one buffer from the pool meanwhile;
/// with `until_full`, stops after a read that filled the buffer.
async fn buffered_burst(
    src: &TcpStream,
    dst: &TcpStream,
    moved: &impl Fn(usize),
    until_full: bool,
) -> io::Result<Burst> {
    let mut buf = Buf::take();
    loop {
        let n = match src.try_read(buf.get()) {
            Ok(0) => return Ok(Burst::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Burst::Drained),
            Err(e) => return Err(e),
        };
        moved(n);
        write_all(dst, &buf.get()[..n]).await?;
        if until_full && n == CHUNK {
            return Ok(Burst::Full);
        }
    }
}

#[cfg(target_os = "linux")]
mod splice {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::OwnedFd;

    use rustix::io::Errno;
    use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use super::{Burst, POOL, buffered_burst};

    const FLAGS: SpliceFlags = SpliceFlags::NONBLOCK.union(SpliceFlags::MOVE);

    /// As much as one splice may move into an empty pipe; the pipe's own
    /// capacity (64 KiB by default, less once the user's pipe pages pass
    /// fs.pipe-user-pages-soft) is the real bound.
    const MAX: usize = 1 << 20;

    const PIPE_SIZE: usize = 256 * 1024;

    /// An empty pipe: read end, write end.
    struct Pipe(OwnedFd, OwnedFd);

    thread_local! {
        static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    }

    fn lease() -> io::Result<Pipe> {
        if let Some(p) = PIPES.with(|p| p.borrow_mut().pop()) {
            return Ok(p);
        }
        let (r, w) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // Larger than the 64 KiB default: fewer splice round trips per
        // GiB (crate documentation). Refused once the user's pipe pages
        // pass fs.pipe-user-pages-soft; the pipe then keeps its size.
        let _ = rustix::pipe::fcntl_setpipe_size(&w, PIPE_SIZE);
        Ok(Pipe(r, w))
    }

    /// Only an empty pipe goes back; one dropped with bytes in it (an
    /// error, a cancelled relay) is closed with them.
    fn give_back(p: Pipe) {
        PIPES.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL {
                pool.push(p);
            }
        });
    }

    /// The kernel cannot splice these descriptors at all.
    fn unsupported(e: &io::Error) -> bool {
        [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP]
            .iter()
            .any(|x| e.raw_os_error() == Some(x.raw_os_error()))
    }

    /// With `copy_first`, bursts are copied until one fills the buffer.
    pub(super) async fn one_way(
        src: &TcpStream,
        dst: &TcpStream,
        moved: &impl Fn(usize),
        copy_first: bool,
    ) -> io::Result<()> {
        let mut copying = copy_first;
        loop {
            src.readable().await?;
            if copying {
                match buffered_burst(src, dst, moved, true).await? {
                    Burst::Eof => return Ok(()),
                    Burst::Drained => {}
                    // Readiness is kept: the next turn splices at once.
                    Burst::Full => copying = false,
                    Burst::Refused(e) => return Err(e),
                }
                continue;
            }
            let pipe = match lease() {
                Ok(p) => p,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE): this burst goes
                    // through a buffer; the next one tries a pipe again.
                    tracing::debug!(error = %e, "no pipe for splice; copying this burst");
                    match buffered_burst(src, dst, moved, false).await? {
                        Burst::Eof => return Ok(()),
                        Burst::Drained | Burst::Full => continue,
                        Burst::Refused(e) => return Err(e),
                    }
                }
            };
            let b = burst(src, dst, &pipe, moved).await?;
            give_back(pipe);
            match b {
                Burst::Eof => return Ok(()),
                Burst::Drained | Burst::Full => {}
                Burst::Refused(e) => {
                    // The pipe is empty and the socket's bytes are still
                    // queued: the buffered path takes the direction over.
                    tracing::debug!(error = %e, "splice refused; copying instead");
                    return super::buffered(src, dst, moved).await;
                }
            }
        }
    }

    /// Moves what `src` has through `pipe`, leaving it empty on success.
    async fn burst(
        src: &TcpStream,
        dst: &TcpStream,
        pipe: &Pipe,
        moved: &impl Fn(usize),
    ) -> io::Result<Burst> {
        loop {
            let r = src.try_io(Interest::READABLE, || {
                splice(src, None, &pipe.1, None, MAX, FLAGS).map_err(Into::into)
            });
            let n = match r {
                Ok(0) => return Ok(Burst::Eof),
                Ok(n) => n,
                // The pipe is empty, so EAGAIN is the socket's.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Burst::Drained),
                Err(e) if unsupported(&e) => return Ok(Burst::Refused(e)),
                Err(e) => return Err(e),
            };
            moved(n);
            let mut left = n;
            while left > 0 {
                // The pipe holds `left` bytes, so EAGAIN is the socket's
                // (send buffer full); async_io waits for it to drain.
                let m = dst
                    .async_io(Interest::WRITABLE, || {
                        splice(&pipe.0, None, dst, None, left, FLAGS).map_err(Into::into)
                    })
                    .await?;
                if m == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                left -= m;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod splice {
    use std::io;

    use tokio::net::TcpStream;

    /// No splice(2) here: the buffered path.
    pub(super) async fn one_way(
        src: &TcpStream,
        dst: &TcpStream,
        moved: &impl Fn(usize),
        _copy_first: bool,
    ) -> io::Result<()> {
        super::buffered(src, dst, moved).await
    }
}

/// Half-closes `s` for writing: its peer reads end of file.
pub(crate) fn shutdown_write(s: &TcpStream) -> io::Result<()> {
    rustix::net::shutdown(s, rustix::net::Shutdown::Write).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_pooled_and_bounded() {
        BUFS.with(|p| p.borrow_mut().clear());
        let leases: Vec<Buf> = (0..POOL + 4).map(|_| Buf::take()).collect();
        drop(leases);
        assert_eq!(BUFS.with(|p| p.borrow().len()), POOL);
        let b = Buf::take();
        assert_eq!(BUFS.with(|p| p.borrow().len()), POOL - 1);
        drop(b);
        assert_eq!(BUFS.with(|p| p.borrow().len()), POOL);
    }
}
