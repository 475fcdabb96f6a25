//! AF_PACKET sockets with memory-mapped rings.
//!
//! One [`PacketSocket`] is bound to one interface and owns one mapping
//! holding a receive ring and a transmit ring (receive first, as the
//! kernel lays them out). The ring layout is the socket's TPACKET version,
//! chosen by [`RxLayout`]:
//!
//! - **Frames** (TPACKET_V2, the default): fixed-size receive slots, each
//!   handed over by the kernel as soon as its frame is written, with a
//!   wake-up per frame. A request/response crossing the data plane waits
//!   for nothing but the worker.
//! - **Blocks** (TPACKET_V3): the kernel fills a block with many frames
//!   and hands the whole block over when it is full or when
//!   `block_timeout_ms` passes. Cheaper per frame under a flood, but at
//!   low and moderate rates each crossing waits for the block timer (at
//!   least 1 ms, rounded up to the kernel's timer tick).
//!
//! Either way [`RxRing::next_block`] yields a batch of frames (a block, or
//! the run of slots ready at that moment), and dropping the [`RxBlock`]
//! gives them back. Each frame carries its metadata from the ring header:
//! original length, the `TP_STATUS_CSUMNOTREADY` bit (a frame from a local
//! stack whose L4 checksum is only partial: it must be finished before it
//! is sent on), the VLAN tag the kernel stripped, and the packet type.
//!
//! **Transmit** uses the frame ring of the same version (the TPACKET_V3
//! transmit ring is supported since Linux 4.11): fixed-size slots, each a
//! header followed by the frame at `TPACKET_ALIGN(sizeof header)`; the
//! kernel refuses variable-size V3 slots (`tp_next_offset` must be 0) and
//! a V3 transmit request with a block timeout, private area or feature
//! word. [`TxRing::slot`] fills a slot, and [`TxRing::flush`] sends every
//! filled slot with one `send(2)`.
//!
//! The socket is created with protocol 0, so it receives nothing until it
//! is bound to its interface with `ETH_P_ALL`: no frame from another
//! interface can slip into the ring while it is being set up. It sets
//! `PACKET_IGNORE_OUTGOING`: an `ETH_P_ALL` socket would otherwise see its
//! own transmissions, and forwarding out the receiving interface loops.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};

use crate::cvt;

/// Data offset of a frame in a TPACKET_V3 transmit slot (the kernel's
/// `tp_hdrlen - sizeof(struct sockaddr_ll)`), which is also where the
/// `sockaddr_ll` follows a received frame's header.
const V3_HDR_END: usize = libc::TPACKET3_HDRLEN - std::mem::size_of::<libc::sockaddr_ll>();

/// The same for TPACKET_V2.
const V2_HDR_END: usize = libc::TPACKET2_HDRLEN - std::mem::size_of::<libc::sockaddr_ll>();

/// Size of a receive slot (TPACKET_V2) and the nominal frame size of a
/// TPACKET_V3 block ring: an Ethernet frame of MTU 1500 and its headers
/// fit.
const RX_FRAME_SIZE: u32 = 1 << 11;

/// The most frames one TPACKET_V2 batch holds, so that transmit rings are
/// flushed regularly under a flood.
const V2_BATCH: u32 = 256;

/// How frames are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// A `PACKET_TX_RING` shared with the kernel. The kernel attaches the
    /// ring's pages to each frame (zero copy toward a NIC), so a frame
    /// crossing into another namespace, as over a veth, is copied into a
    /// newly allocated page there.
    Ring,
    /// Slots in the process's own memory, sent with `sendmmsg(2)`, which
    /// copies each frame into a plain socket buffer: cheaper than the
    /// ring for small frames on virtual interfaces.
    Copy,
}

/// How the receive ring hands frames over (the socket's TPACKET version;
/// the transmit ring follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxLayout {
    /// TPACKET_V2: one slot per frame, handed over at once.
    Frames,
    /// TPACKET_V3: blocks handed over when full or at the block timeout.
    Blocks,
}

/// Sizes of the two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// How receive frames are handed over.
    pub rx_layout: RxLayout,
    /// Receive block size in bytes (a multiple of the page size).
    pub rx_block_size: u32,
    /// Receive blocks.
    pub rx_blocks: u32,
    /// Milliseconds after which the kernel hands over a block that is not
    /// full: the worst-case added latency at low rates (at least 1; used
    /// by [`RxLayout::Blocks`] only).
    pub block_timeout_ms: u32,
    /// Transmit slot size in bytes (a multiple of 16 dividing the page
    /// size; a frame fits in `tx_frame_size - 48`).
    pub tx_frame_size: u32,
    /// Transmit slots (a multiple of `page size / tx_frame_size`).
    pub tx_frames: u32,
    /// Bypass the qdisc layer on transmit (`PACKET_QDISC_BYPASS`).
    pub qdisc_bypass: bool,
    /// How frames are sent.
    pub tx_mode: TxMode,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            rx_layout: RxLayout::Frames,
            rx_block_size: 1 << 18,
            rx_blocks: 16,
            block_timeout_ms: 1,
            tx_frame_size: 1 << 11,
            tx_frames: 1024,
            qdisc_bypass: false,
            tx_mode: TxMode::Ring,
        }
    }
}

/// How a fanout group spreads frames over its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutMode {
    /// By the kernel's flow hash (each direction of a flow hashes on its
    /// own 5-tuple), reassembling IP fragments first so that they hash
    /// together.
    Hash,
    /// Round robin over the sockets.
    LoadBalance,
    /// By the CPU the frame arrived on.
    Cpu,
}

impl FanoutMode {
    fn bits(self) -> u32 {
        match self {
            FanoutMode::Hash => libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG,
            FanoutMode::LoadBalance => libc::PACKET_FANOUT_LB,
            FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
        }
    }
}

/// Metadata of one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Length of the frame on the wire (may exceed the captured bytes).
    pub len: u32,
    /// The L4 checksum is partial (`TP_STATUS_CSUMNOTREADY`): the frame
    /// came from a local stack with checksum offload.
    pub csum_not_ready: bool,
    /// The VLAN tag control information the kernel stripped, if any.
    pub vlan_tci: Option<u16>,
    /// `PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_OTHERHOST`, ...
    pub pkttype: u8,
}

impl FrameMeta {
    /// Whether the frame was addressed to another host's MAC
    /// (`PACKET_OTHERHOST`): it reached this socket only because the link
    /// delivered it anyway (a bridge flooding a frame for an unknown
    /// address, promiscuous mode). The kernel drops such frames rather
    /// than routing them.
    pub fn for_other_host(&self) -> bool {
        self.pkttype == libc::PACKET_OTHERHOST
    }
}

/// The shared mapping of both rings.
#[derive(Debug)]
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with the kernel; access to it
// goes through `&mut` of the rings that own disjoint parts of it.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; nothing
        // borrows the mapping any more (the rings borrowing it are fields
        // of the same socket and are dropped with it).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// An AF_PACKET socket bound to one interface with receive and transmit
/// rings.
#[derive(Debug)]
pub struct PacketSocket {
    // Field order matters for drop: rings, then mappings, then descriptor.
    rx: RxRing,
    tx: TxRing,
    _map: Mapping,
    /// The transmit slots in [`TxMode::Copy`].
    _tx_map: Option<Mapping>,
    fd: OwnedFd,
    ifindex: u32,
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live T of the size passed; the kernel copies
    // it in and keeps no reference.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn ctx(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

impl PacketSocket {
    /// Opens a socket on interface index `ifindex` with rings of `cfg`'s
    /// sizes. Needs CAP_NET_RAW.
    pub fn open(ifindex: u32, cfg: &RingConfig) -> io::Result<PacketSocket> {
        let page = page_size();
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_string());
        if cfg.rx_block_size == 0
            || !(cfg.rx_block_size as usize).is_multiple_of(page)
            || cfg.rx_blocks == 0
        {
            return Err(bad(
                "receive block size must be a non-zero multiple of the page size",
            ));
        }
        // One page per transmit block: slots never straddle a block.
        let fs = cfg.tx_frame_size as usize;
        if fs < 128 || !fs.is_multiple_of(16) || !page.is_multiple_of(fs) {
            return Err(bad(
                "transmit slot size must be a multiple of 16, at least 128, dividing the page size",
            ));
        }
        let tx_block_size = page as u32;
        let tx_per_block = (page / fs) as u32;
        if cfg.tx_frames == 0 || !cfg.tx_frames.is_multiple_of(tx_per_block) {
            return Err(bad(
                "transmit slots must be a non-zero multiple of slots per page",
            ));
        }
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })
                .map_err(|e| ctx(e, "AF_PACKET socket"))?;
        // SAFETY: `raw` was just returned by socket(2); nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let v3 = cfg.rx_layout == RxLayout::Blocks;
        let version = if v3 {
            libc::tpacket_versions::TPACKET_V3
        } else {
            libc::tpacket_versions::TPACKET_V2
        } as libc::c_int;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|e| ctx(e, &format!("PACKET_VERSION {version}")))?;
        let one: libc::c_int = 1;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)
            .map_err(|e| ctx(e, "PACKET_IGNORE_OUTGOING"))?;
        if cfg.qdisc_bypass {
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one)
                .map_err(|e| ctx(e, "PACKET_QDISC_BYPASS"))?;
        }
        // Receive frames are variable-size in V3; the frame size only has
        // to divide the block (the kernel checks frame_nr against it). In
        // V2 it is the slot size.
        let rx_per_block = cfg.rx_block_size / RX_FRAME_SIZE;
        let rx_req = libc::tpacket_req3 {
            tp_block_size: cfg.rx_block_size,
            tp_block_nr: cfg.rx_blocks,
            tp_frame_size: RX_FRAME_SIZE,
            tp_frame_nr: rx_per_block * cfg.rx_blocks,
            tp_retire_blk_tov: cfg.block_timeout_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        let tx_block_nr = cfg.tx_frames / tx_per_block;
        let tx_req = libc::tpacket_req3 {
            tp_block_size: tx_block_size,
            tp_block_nr: tx_block_nr,
            tp_frame_size: cfg.tx_frame_size,
            tp_frame_nr: cfg.tx_frames,
            tp_retire_blk_tov: 0,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        let tx_ring = cfg.tx_mode == TxMode::Ring;
        if v3 {
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &rx_req)
                .map_err(|e| ctx(e, "PACKET_RX_RING (TPACKET_V3)"))?;
            if tx_ring {
                setsockopt(raw, libc::SOL_PACKET, libc::PACKET_TX_RING, &tx_req)
                    .map_err(|e| ctx(e, "PACKET_TX_RING (TPACKET_V3)"))?;
            }
        } else {
            // The V2 request is the first four fields of the V3 one.
            let v2 = |r: &libc::tpacket_req3| libc::tpacket_req {
                tp_block_size: r.tp_block_size,
                tp_block_nr: r.tp_block_nr,
                tp_frame_size: r.tp_frame_size,
                tp_frame_nr: r.tp_frame_nr,
            };
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &v2(&rx_req))
                .map_err(|e| ctx(e, "PACKET_RX_RING (TPACKET_V2)"))?;
            if tx_ring {
                setsockopt(raw, libc::SOL_PACKET, libc::PACKET_TX_RING, &v2(&tx_req))
                    .map_err(|e| ctx(e, "PACKET_TX_RING (TPACKET_V2)"))?;
            }
        }
        let rx_len = cfg.rx_block_size as usize * cfg.rx_blocks as usize;
        let tx_len = tx_block_size as usize * tx_block_nr as usize;
        let len = if tx_ring { rx_len + tx_len } else { rx_len };
        // SAFETY: maps the rings just configured on `raw` (length = both
        // rings); the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                raw,
                0,
            )
        };
        let p = if p == libc::MAP_FAILED {
            // Locking can exceed RLIMIT_MEMLOCK; the rings work unlocked.
            // SAFETY: as above, without MAP_LOCKED.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    raw,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(ctx(io::Error::last_os_error(), "mmap of the packet rings"));
            }
            p
        } else {
            p
        };
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let map = Mapping { base, len };
        let rx = RxRing {
            base,
            v3,
            block_size: cfg.rx_block_size as usize,
            blocks: cfg.rx_blocks as usize,
            per_block: rx_per_block as usize,
            frames: (rx_per_block * cfg.rx_blocks) as usize,
            current: 0,
        };
        let (tx_base, tx_map) = if tx_ring {
            // SAFETY: rx_len < len, so the transmit ring's start is inside
            // the mapping.
            (
                unsafe { NonNull::new_unchecked(base.as_ptr().add(rx_len)) },
                None,
            )
        } else {
            // SAFETY: an anonymous private mapping (zeroed: every slot's
            // status is TP_STATUS_AVAILABLE); the result is checked.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    tx_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(ctx(
                    io::Error::last_os_error(),
                    "mmap of the transmit slots",
                ));
            }
            let b = NonNull::new(p.cast::<u8>())
                .ok_or_else(|| io::Error::other("mmap returned null"))?;
            (
                b,
                Some(Mapping {
                    base: b,
                    len: tx_len,
                }),
            )
        };
        let tx = TxRing {
            copy: !tx_ring,
            base: tx_base,
            block_size: tx_block_size as usize,
            per_block: tx_per_block as usize,
            frame_size: cfg.tx_frame_size as usize,
            frames: cfg.tx_frames as usize,
            v3,
            current: 0,
            queued: 0,
            fd: raw,
            wrong_format: 0,
        };
        let sock = PacketSocket {
            rx,
            tx,
            _map: map,
            _tx_map: tx_map,
            fd,
            ifindex,
        };
        sock.bind(ifindex)?;
        Ok(sock)
    }

    fn bind(&self, ifindex: u32) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data; zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid sockaddr_ll of the length passed.
        cvt(unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(|e| ctx(e, &format!("bind to interface index {ifindex}")))?;
        Ok(())
    }

    /// Joins fanout group `group` (an id shared by the sockets of one
    /// interface in this network namespace). Every socket of a group must
    /// use the same mode.
    ///
    /// `PACKET_FANOUT_EBPF` (a program choosing the socket, e.g. by the
    /// client's address in both directions of a NAT flow) would be one
    /// more mode here plus `PACKET_FANOUT_DATA` with the program's
    /// descriptor.
    pub fn join_fanout(&self, group: u16, mode: FanoutMode) -> io::Result<()> {
        let arg: u32 = u32::from(group) | (mode.bits() << 16);
        setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &arg,
        )
        .map_err(|e| ctx(e, &format!("PACKET_FANOUT group {group}")))
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Both rings at once (a worker reads one while filling the other).
    pub fn rings(&mut self) -> (&mut RxRing, &mut TxRing) {
        (&mut self.rx, &mut self.tx)
    }

    /// Both rings and the descriptor (to wait on) at once, so that a
    /// worker can hold the parts of all its sockets for its whole life.
    pub fn parts(&mut self) -> (&mut RxRing, &mut TxRing, BorrowedFd<'_>) {
        (&mut self.rx, &mut self.tx, self.fd.as_fd())
    }

    /// The receive ring.
    pub fn rx(&mut self) -> &mut RxRing {
        &mut self.rx
    }

    /// The transmit ring.
    pub fn tx(&mut self) -> &mut TxRing {
        &mut self.tx
    }

    /// Frames the kernel dropped for want of ring space, and frames
    /// received, since the last call (`PACKET_STATISTICS`, which resets).
    pub fn take_stats(&self) -> io::Result<(u32, u32)> {
        take_stats(self.fd.as_fd())
    }
}

/// [`PacketSocket::take_stats`] through the socket's descriptor (from
/// [`PacketSocket::parts`]).
pub fn take_stats(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: tpacket_stats_v3 is plain old data; zero is valid.
    let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
    // SAFETY: `st` is writable for `len` bytes and `len` is writable.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats_v3).cast(),
            &mut len,
        )
    })?;
    Ok((st.tp_drops, st.tp_packets))
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The receive ring (blocks or frames, see [`RxLayout`]).
#[derive(Debug)]
pub struct RxRing {
    base: NonNull<u8>,
    v3: bool,
    block_size: usize,
    blocks: usize,
    /// Slots per block (TPACKET_V2).
    per_block: usize,
    /// Slots in all (TPACKET_V2).
    frames: usize,
    /// The current block (V3) or slot (V2).
    current: usize,
}

// SAFETY: the ring points into a mapping owned by the same socket; it is
// only used through `&mut`, so moving it to another thread is sound.
unsafe impl Send for RxRing {}

impl RxRing {
    fn block_ptr(&self, i: usize) -> *mut libc::tpacket_block_desc {
        // SAFETY: i < blocks, so the offset stays inside the receive ring.
        unsafe { self.base.as_ptr().add(i * self.block_size).cast() }
    }

    fn slot_ptr(&self, i: usize) -> *mut u8 {
        let off =
            (i / self.per_block) * self.block_size + (i % self.per_block) * RX_FRAME_SIZE as usize;
        // SAFETY: i < frames, so the slot lies inside the receive ring.
        unsafe { self.base.as_ptr().add(off) }
    }

    /// The status word of block (V3) or slot (V2) `i`.
    fn status(&self, i: usize) -> &AtomicU32 {
        let p: *mut u32 = if self.v3 {
            let b = self.block_ptr(i);
            // SAFETY: the block descriptor lies at the start of block i,
            // inside the ring.
            unsafe { std::ptr::addr_of_mut!((*b).hdr.bh1.block_status) }
        } else {
            let h = self.slot_ptr(i).cast::<libc::tpacket2_hdr>();
            // SAFETY: the slot header lies at the start of slot i, inside
            // the ring.
            unsafe { std::ptr::addr_of_mut!((*h).tp_status) }
        };
        // SAFETY: `p` is an aligned u32 inside the mapping, which lives as
        // long as `self`; the kernel writes it concurrently, hence the
        // atomic view.
        unsafe { &*p.cast::<AtomicU32>() }
    }

    /// The next batch the kernel has handed over, if any: a block (V3) or
    /// the run of ready slots (V2). Frames in it are read (and may be
    /// rewritten in place) until the batch is dropped, which gives them
    /// back to the kernel.
    pub fn next_block(&mut self) -> Option<RxBlock<'_>> {
        let st = self.status(self.current).load(Ordering::Acquire);
        if st & libc::TP_STATUS_USER == 0 {
            return None;
        }
        if !self.v3 {
            let mut n = 1;
            while n < V2_BATCH as usize
                && n < self.frames
                && self
                    .status((self.current + n) % self.frames)
                    .load(Ordering::Acquire)
                    & libc::TP_STATUS_USER
                    != 0
            {
                n += 1;
            }
            return Some(RxBlock {
                ring: self,
                left: n as u32,
                next: 0,
            });
        }
        let b = self.block_ptr(self.current);
        // SAFETY: the block is ours (TP_STATUS_USER, read with acquire, so
        // the kernel's writes to it are visible); the header fields are
        // plain integers inside it.
        let (num, first) = unsafe {
            let h = &(*b).hdr.bh1;
            (h.num_pkts, h.offset_to_first_pkt)
        };
        Some(RxBlock {
            ring: self,
            left: num,
            next: first as usize,
        })
    }

    /// Whether the kernel has handed over the current block or slot (the
    /// socket's readability says the same through `poll`).
    pub fn ready(&self) -> bool {
        self.status(self.current).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }
}

/// One received batch of frames.
#[derive(Debug)]
pub struct RxBlock<'a> {
    ring: &'a mut RxRing,
    left: u32,
    /// V3: offset of the next frame header from the block start. V2: slots
    /// of the batch read so far.
    next: usize,
}

impl RxBlock<'_> {
    /// Frames not yet read from this batch.
    pub fn remaining(&self) -> u32 {
        self.left
    }

    /// The next frame: its bytes (writable, for rewriting in place) and
    /// metadata.
    #[allow(clippy::should_implement_trait)] // lending: items borrow the block
    pub fn next(&mut self) -> Option<(&mut [u8], FrameMeta)> {
        if self.left == 0 {
            return None;
        }
        if !self.ring.v3 {
            return self.next_v2();
        }
        let block = self.ring.block_ptr(self.ring.current).cast::<u8>();
        let bs = self.ring.block_size;
        let hdr_size = std::mem::size_of::<libc::tpacket3_hdr>();
        if self.next + hdr_size > bs {
            self.left = 0;
            return None;
        }
        // SAFETY: `next + sizeof(tpacket3_hdr) <= block_size`, so the
        // header lies inside this block, which we own until drop; the
        // kernel aligns frame headers to 16 bytes.
        let h = unsafe { &*block.add(self.next).cast::<libc::tpacket3_hdr>() };
        let (mac, snap) = (h.tp_mac as usize, h.tp_snaplen as usize);
        if self.next + mac + snap > bs || self.next + V3_HDR_END + 12 > bs {
            self.left = 0;
            return None;
        }
        // SAFETY: the sockaddr_ll follows the header inside the block
        // (checked above); sll_pkttype is one byte at offset 10.
        let pkttype = unsafe { *block.add(self.next + V3_HDR_END + 10) };
        let meta = FrameMeta {
            len: h.tp_len,
            csum_not_ready: h.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0,
            vlan_tci: (h.tp_status & libc::TP_STATUS_VLAN_VALID != 0)
                .then_some(h.hv1.tp_vlan_tci as u16),
            pkttype,
        };
        let at = self.next + mac;
        self.left -= 1;
        self.next = if h.tp_next_offset == 0 {
            self.left = 0;
            bs
        } else {
            self.next + h.tp_next_offset as usize
        };
        // SAFETY: `at + snap <= block_size` (checked above); the bytes are
        // inside the block we own, and the returned borrow ties them to
        // `&mut self`, so no two frames are borrowed at once.
        let data = unsafe { std::slice::from_raw_parts_mut(block.add(at), snap) };
        Some((data, meta))
    }

    fn next_v2(&mut self) -> Option<(&mut [u8], FrameMeta)> {
        let r = &*self.ring;
        let slot = r.slot_ptr((r.current + self.next) % r.frames);
        self.left -= 1;
        self.next += 1;
        let fs = RX_FRAME_SIZE as usize;
        // SAFETY: the slot is ours (its status was TP_STATUS_USER, read
        // with acquire, when the batch was made) until the batch drops; the
        // header lies at its start.
        let h = unsafe { &*slot.cast::<libc::tpacket2_hdr>() };
        let (mac, snap) = (h.tp_mac as usize, h.tp_snaplen as usize);
        if mac + snap > fs || mac < V2_HDR_END + 12 {
            // A malformed header: report it as an empty, truncated frame.
            let meta = FrameMeta {
                len: h.tp_len.max(1),
                csum_not_ready: false,
                vlan_tci: None,
                pkttype: 0,
            };
            return Some((&mut [], meta));
        }
        // SAFETY: the sockaddr_ll follows the header, before the frame
        // (`mac >= V2_HDR_END + 12`, checked above); sll_pkttype is one
        // byte at offset 10.
        let pkttype = unsafe { *slot.add(V2_HDR_END + 10) };
        let meta = FrameMeta {
            len: h.tp_len,
            csum_not_ready: h.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0,
            vlan_tci: (h.tp_status & libc::TP_STATUS_VLAN_VALID != 0).then_some(h.tp_vlan_tci),
            pkttype,
        };
        // SAFETY: `mac + snap <= slot size` (checked above); the bytes are
        // inside the slot we own, and the returned borrow ties them to
        // `&mut self`, so no two frames are borrowed at once.
        let data = unsafe { std::slice::from_raw_parts_mut(slot.add(mac), snap) };
        Some((data, meta))
    }
}

impl Drop for RxBlock<'_> {
    fn drop(&mut self) {
        let r = &mut *self.ring;
        if r.v3 {
            r.status(r.current)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            r.current = (r.current + 1) % r.blocks;
        } else {
            // Every slot of the batch goes back, read or not (as with a
            // block).
            let n = self.next + self.left as usize;
            for k in 0..n {
                r.status((r.current + k) % r.frames)
                    .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            }
            r.current = (r.current + n) % r.frames;
        }
    }
}

/// The transmit ring: fixed-size slots sent in batches.
#[derive(Debug)]
pub struct TxRing {
    base: NonNull<u8>,
    block_size: usize,
    per_block: usize,
    frame_size: usize,
    frames: usize,
    /// TPACKET_V3 slot headers (else V2).
    v3: bool,
    /// [`TxMode::Copy`]: the slots are in our memory, sent by `sendmmsg`.
    copy: bool,
    current: usize,
    queued: usize,
    fd: RawFd,
    wrong_format: u64,
}

// SAFETY: as for RxRing: it points into its socket's mapping and is used
// through `&mut` only.
unsafe impl Send for TxRing {}

impl TxRing {
    fn slot_ptr(&self, i: usize) -> *mut u8 {
        let off = (i / self.per_block) * self.block_size + (i % self.per_block) * self.frame_size;
        // SAFETY: i < frames, so the slot lies inside the transmit ring.
        unsafe { self.base.as_ptr().add(off) }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        let slot = self.slot_ptr(i);
        let p: *mut u32 = if self.v3 {
            let h = slot.cast::<libc::tpacket3_hdr>();
            // SAFETY: the header lies at the start of the slot.
            unsafe { std::ptr::addr_of_mut!((*h).tp_status) }
        } else {
            let h = slot.cast::<libc::tpacket2_hdr>();
            // SAFETY: the header lies at the start of the slot.
            unsafe { std::ptr::addr_of_mut!((*h).tp_status) }
        };
        // SAFETY: tp_status is an aligned u32 in the slot's header; the
        // kernel writes it concurrently, hence the atomic view.
        unsafe { &*p.cast::<AtomicU32>() }
    }

    /// Where the frame starts in a slot.
    fn data_offset(&self) -> usize {
        if self.v3 { V3_HDR_END } else { V2_HDR_END }
    }

    /// The largest frame a slot holds.
    pub fn max_frame(&self) -> usize {
        self.frame_size - self.data_offset()
    }

    /// Frames queued since the last [`TxRing::flush`].
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Slots the kernel refused as malformed so far (counted as they are
    /// reused).
    pub fn wrong_format(&self) -> u64 {
        self.wrong_format
    }

    /// The next free slot, or `None` when the ring is full (flush, and
    /// wait for the kernel to send).
    pub fn slot(&mut self) -> Option<TxSlot<'_>> {
        let st = self.status(self.current).load(Ordering::Acquire);
        if st & libc::TP_STATUS_WRONG_FORMAT != 0 {
            self.wrong_format += 1;
        } else if st != libc::TP_STATUS_AVAILABLE {
            return None;
        }
        Some(TxSlot { ring: self })
    }

    /// Queues a copy of `frame`; false when the ring is full or the frame
    /// too large.
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

    /// Asks the kernel to send every queued frame (one `send(2)`); does
    /// not wait for it. `WouldBlock` is not an error: the frames stay
    /// queued for the next flush.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.queued == 0 {
            return Ok(());
        }
        if self.copy {
            return self.flush_copies();
        }
        // SAFETY: a zero-length send with no buffer on the socket that owns
        // this ring; the fd is open as long as the ring exists.
        let r = unsafe { libc::send(self.fd, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(ctx(e, "send on the transmit ring"));
        }
        self.queued = 0;
        Ok(())
    }
}

impl TxRing {
    /// [`TxRing::flush`] in [`TxMode::Copy`]: `sendmmsg` of the queued
    /// slots, oldest first, in batches of up to 64.
    fn flush_copies(&mut self) -> io::Result<()> {
        const BATCH: usize = 64;
        while self.queued > 0 {
            let first = (self.current + self.frames - self.queued) % self.frames;
            let n = self.queued.min(BATCH);
            // SAFETY: iovec and mmsghdr are plain old data; zero is valid
            // (null name, no control data).
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for k in 0..n {
                let slot = self.slot_ptr((first + k) % self.frames);
                let len = if self.v3 {
                    // SAFETY: the header lies at the start of the slot,
                    // in memory only this ring touches.
                    unsafe { (*slot.cast::<libc::tpacket3_hdr>()).tp_len }
                } else {
                    // SAFETY: as above.
                    unsafe { (*slot.cast::<libc::tpacket2_hdr>()).tp_len }
                };
                iov[k] = libc::iovec {
                    // SAFETY: the frame's bytes follow the header inside
                    // the slot (commit capped the length at max_frame).
                    iov_base: unsafe { slot.add(self.data_offset()) }.cast(),
                    iov_len: len as usize,
                };
                msgs[k].msg_hdr.msg_iov = &mut iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `msgs[..n]` are valid message headers whose iovecs
            // point into live slots; the kernel copies the data before
            // returning and keeps no reference.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd,
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            let sent = if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    return Ok(());
                }
                // The oldest frame is refused: drop it so the rest can go.
                self.status(first)
                    .store(libc::TP_STATUS_AVAILABLE, Ordering::Relaxed);
                self.queued -= 1;
                return Err(ctx(e, "sendmmsg of queued frames"));
            } else {
                r as usize
            };
            for k in 0..sent {
                self.status((first + k) % self.frames)
                    .store(libc::TP_STATUS_AVAILABLE, Ordering::Relaxed);
            }
            self.queued -= sent;
            if sent < n {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A free transmit slot.
#[derive(Debug)]
pub struct TxSlot<'a> {
    ring: &'a mut TxRing,
}

impl TxSlot<'_> {
    /// The slot's frame buffer ([`TxRing::max_frame`] bytes).
    pub fn buf(&mut self) -> &mut [u8] {
        let r = &*self.ring;
        let p = r.slot_ptr(r.current);
        // SAFETY: the slot is free (status AVAILABLE: the kernel does not
        // touch it) and its data area lies inside the slot; the borrow is
        // tied to `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(p.add(r.data_offset()), r.max_frame()) }
    }

    /// Queues the first `len` bytes of the buffer for sending.
    pub fn commit(self, len: usize) {
        let r = self.ring;
        let len = len.min(r.max_frame());
        let slot = r.slot_ptr(r.current);
        // SAFETY: the header is inside the free slot; the kernel reads it
        // only after the status store below (release ordering).
        unsafe {
            if r.v3 {
                let h = slot.cast::<libc::tpacket3_hdr>();
                (*h).tp_len = len as u32;
                (*h).tp_snaplen = len as u32;
                (*h).tp_next_offset = 0;
            } else {
                let h = slot.cast::<libc::tpacket2_hdr>();
                (*h).tp_len = len as u32;
                (*h).tp_snaplen = len as u32;
            }
        }
        fence(Ordering::Release);
        r.status(r.current)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        r.current = (r.current + 1) % r.frames;
        r.queued += 1;
    }
}
