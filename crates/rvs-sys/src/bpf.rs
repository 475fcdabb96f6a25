//! The raw `bpf(2)` calls the AF_XDP backend needs: creating maps,
//! updating and deleting their elements, loading a program and attaching
//! it to an interface through a BPF link.
//!
//! There is no libbpf here: the attribute unions are written as the few
//! `#[repr(C)]` structs these commands read, zero-padded, which is what the
//! kernel requires of the bytes it does not use. A link detaches its
//! program when its descriptor closes, so a crashed process leaves nothing
//! attached (a program attached through netlink would stay).

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `BPF_MAP_TYPE_HASH`.
pub const MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_XSKMAP`.
pub const MAP_TYPE_XSKMAP: u32 = 17;
const PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP`, the attach type of an XDP link.
const ATTACH_TYPE_XDP: u32 = 37;

/// `XDP_FLAGS_SKB_MODE`.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised `#[repr(C)]` attribute
    // struct of the size passed, laid out as the kernel's `union bpf_attr`
    // member for `cmd`; the pointers inside it (if any) point to buffers
    // that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from(r: libc::c_long) -> OwnedFd {
    // SAFETY: `r` is a new descriptor the kernel returned to this process
    // (a non-negative bpf(2) result of a command that creates one); nobody
    // else owns it.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, s) in n
        .iter_mut()
        .zip(
            name.bytes()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'_'),
        )
        .take(15)
    {
        *d = s;
    }
    n
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u64; 4],
}

/// A BPF map, closed on drop.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

impl Map {
    /// Creates a map (`BPF_MAP_CREATE`). Needs CAP_BPF or CAP_SYS_ADMIN.
    pub fn create(
        map_type: u32,
        name: &str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> io::Result<Map> {
        let mut attr = MapCreateAttr {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_name: name16(name),
            ..MapCreateAttr::default()
        };
        let r = sys_bpf(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| io::Error::new(e.kind(), format!("BPF_MAP_CREATE {name}: {e}")))?;
        Ok(Map {
            fd: fd_from(r),
            key_size: key_size as usize,
            value_size: value_size as usize,
        })
    }

    /// Sets `key` to `value` (`BPF_MAP_UPDATE_ELEM`, `BPF_ANY`).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.len() != self.key_size || value.len() != self.value_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "map key or value of the wrong size",
            ));
        }
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            ..MapElemAttr::default()
        };
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("BPF_MAP_UPDATE_ELEM: {e}")))
    }

    /// Removes `key` (`BPF_MAP_DELETE_ELEM`); a missing key is not an
    /// error.
    pub fn delete(&self, key: &[u8]) -> io::Result<()> {
        if key.len() != self.key_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "map key of the wrong size",
            ));
        }
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..MapElemAttr::default()
        };
        match sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("BPF_MAP_DELETE_ELEM: {e}"),
            )),
        }
    }

    /// The map's descriptor (for `ld_imm64` with `BPF_PSEUDO_MAP_FD`).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One BPF instruction, as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble) and source register (high).
    pub regs: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

/// A loaded program, unloaded when its last reference (this descriptor
/// and any link) goes.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// Loads an XDP program (`BPF_PROG_LOAD`). On refusal the error
    /// carries the verifier's log.
    pub fn load_xdp(name: &str, insns: &[Insn], license: &str) -> io::Result<Program> {
        let lic = std::ffi::CString::new(license)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "licence with NUL"))?;
        let attempt = |log: Option<&mut [u8]>| {
            let (log_level, log_size, log_buf) = match log {
                Some(b) => (1, b.len() as u32, b.as_mut_ptr() as u64),
                None => (0, 0, 0),
            };
            let mut attr = ProgLoadAttr {
                prog_type: PROG_TYPE_XDP,
                insn_cnt: insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: lic.as_ptr() as u64,
                log_level,
                log_size,
                log_buf,
                prog_name: name16(name),
                expected_attach_type: ATTACH_TYPE_XDP,
                ..ProgLoadAttr::default()
            };
            sys_bpf(BPF_PROG_LOAD, &mut attr)
        };
        match attempt(None) {
            Ok(r) => Ok(Program { fd: fd_from(r) }),
            Err(first) => {
                // Load again with the verifier's log, to say why.
                let mut log = vec![0u8; 1 << 16];
                let again = attempt(Some(&mut log));
                if let Ok(r) = again {
                    return Ok(Program { fd: fd_from(r) });
                }
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                let tail: String = text
                    .lines()
                    .rev()
                    .take(12)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                Err(io::Error::new(
                    first.kind(),
                    format!("BPF_PROG_LOAD {name}: {first}; verifier: {tail}"),
                ))
            }
        }
    }

    /// The program's descriptor.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Where an XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Generic (SKB) mode: after the socket buffer is built; works on every
    /// interface.
    #[default]
    Generic,
    /// Native (driver) mode: before any socket buffer exists. On a veth the
    /// peer needs an XDP program too.
    Native,
}

/// A program attached to an interface; detached when dropped (or when the
/// process dies).
#[derive(Debug)]
pub struct XdpLink {
    _fd: OwnedFd,
    ifindex: u32,
}

impl XdpLink {
    /// Attaches `prog` to interface `ifindex` with `BPF_LINK_CREATE`. Fails
    /// with `EBUSY` when another XDP program is attached there.
    pub fn attach(prog: &Program, ifindex: u32, mode: XdpMode) -> io::Result<XdpLink> {
        let mut attr = LinkCreateAttr {
            prog_fd: prog.raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: ATTACH_TYPE_XDP,
            flags: match mode {
                XdpMode::Generic => XDP_FLAGS_SKB_MODE,
                XdpMode::Native => XDP_FLAGS_DRV_MODE,
            },
            ..LinkCreateAttr::default()
        };
        let r = sys_bpf(BPF_LINK_CREATE, &mut attr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("attaching XDP ({mode:?}) to interface {ifindex}: {e}"),
            )
        })?;
        Ok(XdpLink {
            _fd: fd_from(r),
            ifindex,
        })
    }

    /// The interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}
