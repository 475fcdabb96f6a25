//! AF_XDP sockets: a UMEM (frame memory shared with the kernel), its fill
//! and completion rings, and the socket's receive and transmit rings, all
//! memory-mapped, bound to one receive queue of one interface.
//!
//! Each ring is a power-of-two array of descriptors with a producer and a
//! consumer index that only grow (wrapping at 2^32). The side that produces
//! writes its descriptors, then publishes the producer index with release
//! ordering; the side that consumes reads the producer index with acquire
//! ordering before reading descriptors, and publishes its consumer index
//! with release ordering once it is done with them. Userspace produces on
//! the fill and transmit rings and consumes on the receive and completion
//! rings.
//!
//! The UMEM's chunks are split once, at creation, into two disjoint sets
//! that never mix: receive chunks circulate fill ring → receive ring → fill
//! ring, and transmit chunks circulate free list → transmit ring →
//! completion ring → free list. That is what lets [`XskSocket::split`] hand
//! out a receive half and a transmit half that borrow frames of the same
//! mapping at the same time: a received frame and a frame being built for
//! sending are never the same chunk.
//!
//! The socket is bound in copy mode (`XDP_COPY`): the kernel copies each
//! frame between its own buffers and the UMEM, which is what virtual
//! interfaces (veth) support. With `XDP_USE_NEED_WAKEUP` the kernel says
//! through a ring flag when a transmit kick (`sendto`) is needed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cvt;

/// The kernel's `struct xdp_desc`: a frame in the UMEM.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct XdpDesc {
    addr: u64,
    len: u32,
    options: u32,
}

/// Sizes of an [`XskSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// UMEM chunk size: 2048 or 4096. A received frame holds at most
    /// `chunk_size - 256` bytes (the kernel keeps 256 bytes of headroom);
    /// larger frames are dropped by the kernel.
    pub chunk_size: u32,
    /// Entries of each ring (a power of two). The UMEM has twice as many
    /// chunks: one set for receiving, one for sending.
    pub ring_size: u32,
    /// Ask the kernel to say when a kick is needed (`XDP_USE_NEED_WAKEUP`)
    /// instead of kicking after every transmit batch.
    pub need_wakeup: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            chunk_size: 4096,
            ring_size: 2048,
            need_wakeup: true,
        }
    }
}

#[derive(Debug)]
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: plain memory shared with the kernel; accessed through the rings
// that own disjoint parts of it.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: RawFd, len: usize, offset: libc::off_t, what: &str) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of a ring the socket owns (or,
        // with fd -1, anonymous memory); the result is checked below and
        // owned by the returned value.
        let p = unsafe {
            let (flags, fd) = if fd < 0 {
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
            } else {
                (libc::MAP_SHARED | libc::MAP_POPULATE, fd)
            };
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mmap of {what}: {e}")));
        }
        Ok(Mapping {
            base: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; the rings that
        // point into the mapping are dropped with it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// One mapped ring: entries of `T` (a descriptor or a UMEM address).
#[derive(Debug)]
struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
    mask: u32,
    /// Our copy of our own index (producer or consumer, by role).
    local: u32,
    /// The other side's index as last read.
    cached: u32,
    _map: Mapping,
}

// SAFETY: the ring points into its own mapping and is used through `&mut`.
unsafe impl<T> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
        what: &str,
    ) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mapping::new(fd, len, pgoff as libc::off_t, what)?;
        let at = |o: u64| {
            // SAFETY: the kernel's offsets lie inside the ring's mapping.
            unsafe { NonNull::new_unchecked(map.base.as_ptr().add(o as usize)) }
        };
        Ok(Ring {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            desc: at(off.desc).cast(),
            mask: size - 1,
            local: 0,
            cached: 0,
            _map: map,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: an aligned u32 in the mapping, written concurrently by
        // the kernel (hence atomic), alive as long as `self`.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn entry(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask` < ring size: inside the descriptor array.
        unsafe { self.desc.as_ptr().add((idx & self.mask) as usize) }
    }

    // --- consumer side (receive, completion) ---

    /// Entries ready to consume.
    fn available(&mut self) -> u32 {
        if self.cached == self.local {
            // Acquire: the kernel's descriptor writes happen before its
            // producer store, and become visible with it.
            self.cached = self.producer().load(Ordering::Acquire);
        }
        self.cached.wrapping_sub(self.local)
    }

    fn read(&self, k: u32) -> T {
        // SAFETY: entry `local + k` was published by the producer (k <
        // available()) and is not reused until we release it.
        unsafe { self.entry(self.local.wrapping_add(k)).read() }
    }

    /// Gives `n` consumed entries back.
    fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        // Release: our reads of the entries happen before the kernel may
        // overwrite them.
        self.consumer().store(self.local, Ordering::Release);
    }

    // --- producer side (fill, transmit) ---

    /// Free entries for producing (`size` is the ring size).
    fn free(&mut self, size: u32) -> u32 {
        // Acquire: the kernel is done with the entries it consumed.
        self.cached = self.consumer().load(Ordering::Acquire);
        size - self.local.wrapping_sub(self.cached)
    }

    fn write(&mut self, k: u32, v: T) {
        // SAFETY: entry `local + k` is free (k < free()): the kernel does
        // not read it until the producer index covers it.
        unsafe { self.entry(self.local.wrapping_add(k)).write(v) }
    }

    /// Publishes `n` written entries.
    fn submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        // Release: the entries are written before the kernel sees them.
        self.producer().store(self.local, Ordering::Release);
    }
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, v: &T, what: &str) -> io::Result<()> {
    // SAFETY: `v` points to a live T of the size passed; the kernel copies
    // it.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
    .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

fn getsockopt<T: Copy>(fd: RawFd, name: libc::c_int, v: &mut T, what: &str) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a live, writable T of `len` bytes.
    cvt(unsafe { libc::getsockopt(fd, libc::SOL_XDP, name, (v as *mut T).cast(), &mut len) })
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// Kernel counters of one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XskStats {
    /// Frames dropped for reasons other than a lack of descriptors
    /// (too big for a chunk, among others).
    pub rx_dropped: u64,
    /// Frames dropped because the receive ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Transmit descriptors the kernel refused as invalid.
    pub tx_invalid: u64,
}

/// An AF_XDP socket bound to one receive queue of one interface, with its
/// own UMEM.
#[derive(Debug)]
pub struct XskSocket {
    // Field order matters for drop: rings, then the UMEM, then the socket.
    rx: XskRx,
    tx: XskTx,
    _umem: Mapping,
    fd: OwnedFd,
    ifindex: u32,
    queue: u32,
}

impl XskSocket {
    /// Creates a socket and its UMEM and binds it, in copy mode, to
    /// receive queue `queue` of interface `ifindex`. Frames reach it only
    /// once an XDP program redirects them to it (see
    /// [`crate::xdp_filter::XdpRedirect::set_socket`]). Needs CAP_NET_RAW.
    pub fn open(ifindex: u32, queue: u32, cfg: &XskConfig) -> io::Result<XskSocket> {
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_string());
        if cfg.chunk_size != 2048 && cfg.chunk_size != 4096 {
            return Err(bad("AF_XDP chunk size must be 2048 or 4096"));
        }
        if !cfg.ring_size.is_power_of_two() || cfg.ring_size < 64 {
            return Err(bad("AF_XDP ring size must be a power of two, at least 64"));
        }
        // SAFETY: plain socket(2); the result is checked.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })
                .map_err(|e| io::Error::new(e.kind(), format!("AF_XDP socket: {e}")))?;
        // SAFETY: `raw` was just returned by socket(2); nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let n = cfg.ring_size;
        let chunks = 2 * n;
        let umem_len = chunks as usize * cfg.chunk_size as usize;
        // Anonymous private memory is zero-filled, as the kernel expects of
        // the UMEM.
        let umem = Mapping::new(-1, umem_len, 0, "the UMEM")?;
        let reg = libc::xdp_umem_reg {
            addr: umem.base.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: cfg.chunk_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        for (opt, what) in [
            (libc::XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING"),
            (libc::XDP_UMEM_COMPLETION_RING, "XDP_UMEM_COMPLETION_RING"),
            (libc::XDP_RX_RING, "XDP_RX_RING"),
            (libc::XDP_TX_RING, "XDP_TX_RING"),
        ] {
            setsockopt(raw, opt, &n, what)?;
        }
        // SAFETY: xdp_mmap_offsets is plain integers; zero is valid.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        getsockopt(raw, libc::XDP_MMAP_OFFSETS, &mut off, "XDP_MMAP_OFFSETS")?;
        let mut fill: Ring<u64> = Ring::map(
            raw,
            &off.fr,
            n,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            "the fill ring",
        )?;
        let comp: Ring<u64> = Ring::map(
            raw,
            &off.cr,
            n,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            "the completion ring",
        )?;
        let rx: Ring<XdpDesc> = Ring::map(
            raw,
            &off.rx,
            n,
            libc::XDP_PGOFF_RX_RING as u64,
            "the receive ring",
        )?;
        let tx: Ring<XdpDesc> = Ring::map(
            raw,
            &off.tx,
            n,
            libc::XDP_PGOFF_TX_RING as u64,
            "the transmit ring",
        )?;
        // Chunks 0..n receive, n..2n send.
        let cs = u64::from(cfg.chunk_size);
        let free = fill.free(n);
        debug_assert_eq!(free, n);
        for k in 0..n {
            fill.write(k, u64::from(k) * cs);
        }
        fill.submit(n);
        let tx_free: Vec<u64> = (n..2 * n).map(|k| u64::from(k) * cs).collect();
        let flags = libc::XDP_COPY
            | if cfg.need_wakeup {
                libc::XDP_USE_NEED_WAKEUP
            } else {
                0
            };
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp of the size passed.
        cvt(unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("binding AF_XDP to interface {ifindex} queue {queue}: {e}"),
            )
        })?;
        let base = umem.base;
        Ok(XskSocket {
            rx: XskRx {
                rx,
                fill,
                size: n,
                base,
                chunk_mask: !(cs - 1),
                umem_len,
            },
            tx: XskTx {
                tx,
                comp,
                size: n,
                free: tx_free,
                base,
                chunk_size: cfg.chunk_size as usize,
                fd: raw,
                need_wakeup: cfg.need_wakeup,
                queued: 0,
            },
            _umem: umem,
            fd,
            ifindex,
            queue,
        })
    }

    /// The receive and transmit halves, usable at the same time, and the
    /// descriptor to poll.
    pub fn split(&mut self) -> (&mut XskRx, &mut XskTx, BorrowedFd<'_>) {
        (&mut self.rx, &mut self.tx, self.fd.as_fd())
    }

    /// The socket's descriptor (for `poll` and the XSK map).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The receive queue.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> io::Result<XskStats> {
        stats(self.fd.as_fd())
    }
}

/// The kernel's counters for the AF_XDP socket `fd` (since it was opened).
pub fn stats(fd: BorrowedFd<'_>) -> io::Result<XskStats> {
    // SAFETY: plain integers; zero is valid.
    let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    getsockopt(
        fd.as_raw_fd(),
        libc::XDP_STATISTICS,
        &mut s,
        "XDP_STATISTICS",
    )?;
    Ok(XskStats {
        rx_dropped: s.rx_dropped,
        rx_ring_full: s.rx_ring_full,
        rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
        tx_invalid: s.tx_invalid_descs,
    })
}

/// The receive half: the receive ring and the fill ring.
#[derive(Debug)]
pub struct XskRx {
    rx: Ring<XdpDesc>,
    fill: Ring<u64>,
    size: u32,
    base: NonNull<u8>,
    chunk_mask: u64,
    umem_len: usize,
}

// SAFETY: points into the socket's mappings; used through `&mut` only.
unsafe impl Send for XskRx {}

impl XskRx {
    /// Whether frames are waiting.
    pub fn ready(&mut self) -> bool {
        self.rx.available() > 0
    }

    /// The frames received so far (at most `max`), or `None`. Dropping the
    /// batch gives their chunks back to the kernel.
    pub fn batch(&mut self, max: u32) -> Option<XskRxBatch<'_>> {
        let n = self.rx.available().min(max);
        (n > 0).then_some(XskRxBatch {
            rx: self,
            n,
            next: 0,
        })
    }
}

/// A batch of received frames.
#[derive(Debug)]
pub struct XskRxBatch<'a> {
    rx: &'a mut XskRx,
    n: u32,
    next: u32,
}

impl XskRxBatch<'_> {
    /// The next frame's bytes (`None` at the end of the batch). A
    /// descriptor the kernel should never produce (outside the UMEM) reads
    /// as an empty frame.
    #[allow(clippy::should_implement_trait)] // lending: items borrow the batch
    pub fn next(&mut self) -> Option<&[u8]> {
        if self.next == self.n {
            return None;
        }
        let d = self.rx.rx.read(self.next);
        self.next += 1;
        let end = d.addr as usize + d.len as usize;
        if end > self.rx.umem_len {
            return Some(&[]);
        }
        // SAFETY: the frame lies inside the UMEM (checked) in a receive
        // chunk the kernel handed over (published on the receive ring,
        // read after an acquire load) and does not touch until the chunk
        // is back on the fill ring, which happens when the batch drops;
        // no transmit slice ever covers a receive chunk.
        Some(unsafe {
            std::slice::from_raw_parts(self.rx.base.as_ptr().add(d.addr as usize), d.len as usize)
        })
    }
}

impl Drop for XskRxBatch<'_> {
    fn drop(&mut self) {
        let r = &mut *self.rx;
        // Every chunk of the batch goes back to the fill ring, read or not.
        // The fill ring always has room: it and the receive ring share the
        // `size` receive chunks.
        let free = r.fill.free(r.size);
        let n = self.n.min(free);
        for k in 0..n {
            let addr = r.rx.read(k).addr & r.chunk_mask;
            r.fill.write(k, addr);
        }
        r.rx.release(self.n);
        r.fill.submit(n);
    }
}

/// The transmit half: the transmit ring, the completion ring and the free
/// transmit chunks.
#[derive(Debug)]
pub struct XskTx {
    tx: Ring<XdpDesc>,
    comp: Ring<u64>,
    size: u32,
    free: Vec<u64>,
    base: NonNull<u8>,
    chunk_size: usize,
    fd: RawFd,
    need_wakeup: bool,
    /// Written since the last submit.
    queued: u32,
}

// SAFETY: points into the socket's mappings; used through `&mut` only.
unsafe impl Send for XskTx {}

impl XskTx {
    /// The largest frame a transmit chunk holds.
    pub fn max_frame(&self) -> usize {
        self.chunk_size
    }

    /// Frames queued since the last [`XskTx::flush`].
    pub fn queued(&self) -> u32 {
        self.queued
    }

    /// Takes back the chunks the kernel has sent.
    fn reap(&mut self) {
        let n = self.comp.available();
        for k in 0..n {
            let a = self.comp.read(k);
            self.free.push(a);
        }
        if n > 0 {
            self.comp.release(n);
        }
    }

    /// A free transmit chunk, or `None` when every chunk is in flight or
    /// the transmit ring is full (flush, and let the kernel send).
    pub fn slot(&mut self) -> Option<XskTxSlot<'_>> {
        if self.free.is_empty() {
            self.reap();
        }
        if self.free.is_empty() || self.tx.free(self.size) <= self.queued {
            return None;
        }
        let addr = *self.free.last()?;
        Some(XskTxSlot { tx: self, addr })
    }

    /// Queues a copy of `frame`; false when no chunk is free or the frame
    /// is too large.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.max_frame() {
            return false;
        }
        match self.slot() {
            Some(mut s) => {
                s.buf()[..frame.len()].copy_from_slice(frame);
                s.commit(frame.len());
                true
            }
            None => false,
        }
    }

    /// Publishes the queued frames and kicks the kernel to send them (in
    /// copy mode the kernel sends a bounded number per kick, so it kicks
    /// until the ring is drained or the kernel says it is busy). Reaps the
    /// completion ring.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.queued > 0 {
            self.tx.submit(self.queued);
            self.queued = 0;
        }
        for _ in 0..64 {
            self.reap();
            let pending = self.tx.local != self.tx.consumer().load(Ordering::Acquire);
            if !pending {
                break;
            }
            if self.need_wakeup && !self.tx.needs_wakeup() {
                break;
            }
            // SAFETY: a zero-length sendto with no buffer or address on
            // our own socket: the kernel's transmit kick.
            let r = unsafe {
                libc::sendto(
                    self.fd,
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // More to send (the kernel's per-kick budget) or the
                    // device is busy: kick again.
                    Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => {}
                    Some(libc::ENOBUFS) | Some(libc::ENETDOWN) => break,
                    _ => {
                        self.reap();
                        return Err(io::Error::new(
                            e.kind(),
                            format!("AF_XDP transmit kick: {e}"),
                        ));
                    }
                }
            }
        }
        self.reap();
        Ok(())
    }
}

/// A free transmit chunk.
#[derive(Debug)]
pub struct XskTxSlot<'a> {
    tx: &'a mut XskTx,
    addr: u64,
}

impl XskTxSlot<'_> {
    /// The chunk's bytes ([`XskTx::max_frame`]).
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: a transmit chunk on the free list: neither the kernel nor
        // any other slice touches it (receive chunks are disjoint), and the
        // borrow is tied to `&mut self`.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.tx.base.as_ptr().add(self.addr as usize),
                self.tx.chunk_size,
            )
        }
    }

    /// Queues the first `len` bytes for sending (at the next flush).
    pub fn commit(self, len: usize) {
        let t = self.tx;
        let len = len.min(t.chunk_size);
        t.free.pop();
        let k = t.queued;
        t.tx.write(
            k,
            XdpDesc {
                addr: self.addr,
                len: len as u32,
                options: 0,
            },
        );
        t.queued += 1;
    }
}
