//! The XDP program of the AF_XDP backend: it redirects to the interface's
//! AF_XDP sockets only the frames the data plane owns and lets the kernel
//! have everything else (`XDP_PASS`: ARP, ND, MLD, VRRP, the director's own
//! traffic, fragments, IPv6 with extension headers).
//!
//! # Why it is hand-assembled
//!
//! BPF programs are normally written in C and compiled with clang, or in
//! Rust with aya-ebpf, which needs nightly, `rust-src` and bpf-linker.
//! Neither toolchain is available where rvs is built, and the program is
//! small and fixed (about a hundred instructions: parse, at most five hash
//! lookups, redirect), so it is written here as instructions with a tiny
//! label-resolving assembler and loaded with a raw `bpf(2)` call
//! ([`crate::bpf`]). No object file, no ELF parsing, no C.
//!
//! # What it matches
//!
//! One hash map, the claim set, keyed by [`ClaimKey`] (20 bytes: kind,
//! L4 protocol, port in network order, address in 16 bytes). Userspace
//! fills it from the service table, mirroring the nftables claim:
//!
//! - [`ClaimKind::Service`]: a service's VIP, protocol and port (port 0:
//!   every port), matched on the destination;
//! - [`ClaimKind::NatSource`]: a masq server's address, protocol and port
//!   (port 0: every port), matched on the source: the replies the data
//!   plane translates back;
//! - [`ClaimKind::Local`]: the director's own addresses (protocol and port
//!   0). A frame that matches only as a NAT source is still passed when its
//!   destination is local: that is the director's own conversation with
//!   the real server (a health check), not a client's.
//!
//! IPv4 and IPv6 TCP, UDP and SCTP only (ports are read right after the
//! IPv4 header of any length, or right after the fixed IPv6 header). IPv4
//! fragments and everything else pass to the kernel, where the nftables
//! claim, which the data plane keeps installed, drops what belongs to a
//! service. Every packet read is preceded by a bounds check against
//! `data_end`, as the verifier demands.

use std::io;
use std::net::IpAddr;

use crate::bpf::{Insn, MAP_TYPE_HASH, MAP_TYPE_XSKMAP, Map, Program, XdpLink, XdpMode};

/// What a [`ClaimKey`] claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClaimKind {
    /// A service: destination address, protocol and port.
    Service,
    /// A masq server: source address, protocol and port.
    NatSource,
    /// One of the director's own addresses (destination).
    Local,
}

/// A key of the claim map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClaimKey {
    /// What it claims.
    pub kind: ClaimKind,
    /// IP protocol number (6, 17, 132; 0 for [`ClaimKind::Local`]).
    pub proto: u8,
    /// Port (0: every port).
    pub port: u16,
    /// Address.
    pub addr: IpAddr,
}

const KIND_SERVICE: u8 = 1;
const KIND_NAT_SOURCE: u8 = 2;
const KIND_LOCAL: u8 = 3;
/// Added to the kind for IPv6 keys.
const KIND_V6: u8 = 4;

/// Size of an encoded [`ClaimKey`].
pub const CLAIM_KEY_LEN: usize = 20;

impl ClaimKey {
    /// The 20 bytes the program builds for a frame: kind (+4 for IPv6),
    /// protocol, port in network order, address (IPv4 in the first four
    /// bytes, the rest zero).
    pub fn encode(&self) -> [u8; CLAIM_KEY_LEN] {
        let mut k = [0u8; CLAIM_KEY_LEN];
        let kind = match self.kind {
            ClaimKind::Service => KIND_SERVICE,
            ClaimKind::NatSource => KIND_NAT_SOURCE,
            ClaimKind::Local => KIND_LOCAL,
        };
        k[1] = self.proto;
        k[2..4].copy_from_slice(&self.port.to_be_bytes());
        match self.addr {
            IpAddr::V4(a) => {
                k[0] = kind;
                k[4..8].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                k[0] = kind + KIND_V6;
                k[4..20].copy_from_slice(&a.octets());
            }
        }
        k
    }
}

// Instruction classes, sizes, modes and operations (linux/bpf.h).
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const W: u8 = 0x00;
const H: u8 = 0x08;
const B: u8 = 0x10;
const DW: u8 = 0x18;
const MEM: u8 = 0x60;
const K: u8 = 0x00;
const X: u8 = 0x08;
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const MOV: u8 = 0xb0;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JNE: u8 = 0x50;
const JLT: u8 = 0xa0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const FP: u8 = 10;

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;
const PSEUDO_MAP_FD: u8 = 1;

/// A label: an instruction index once placed.
#[derive(Debug, Clone, Copy)]
struct Label(usize);

/// A minimal assembler: instructions and forward jumps to labels.
#[derive(Debug, Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    fn raw(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        });
    }
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    fn place(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }
    fn mov_reg(&mut self, dst: u8, src: u8) {
        self.raw(ALU64 | MOV | X, dst, src, 0, 0);
    }
    fn mov_imm(&mut self, dst: u8, imm: i32) {
        self.raw(ALU64 | MOV | K, dst, 0, 0, imm);
    }
    fn add_imm(&mut self, dst: u8, imm: i32) {
        self.raw(ALU64 | ADD | K, dst, 0, 0, imm);
    }
    fn add_reg(&mut self, dst: u8, src: u8) {
        self.raw(ALU64 | ADD | X, dst, src, 0, 0);
    }
    fn and_imm(&mut self, dst: u8, imm: i32) {
        self.raw(ALU64 | AND | K, dst, 0, 0, imm);
    }
    fn lsh_imm(&mut self, dst: u8, imm: i32) {
        self.raw(ALU64 | LSH | K, dst, 0, 0, imm);
    }
    /// `dst = *(size *)(src + off)`.
    fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.raw(LDX | MEM | size, dst, src, off, 0);
    }
    /// `*(size *)(dst + off) = src`.
    fn stx(&mut self, size: u8, dst: u8, off: i16, src: u8) {
        self.raw(STX | MEM | size, dst, src, off, 0);
    }
    /// `*(size *)(dst + off) = imm`.
    fn st(&mut self, size: u8, dst: u8, off: i16, imm: i32) {
        self.raw(ST | MEM | size, dst, 0, off, imm);
    }
    fn jmp(&mut self, op: u8, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.raw(JMP | op | K, 0, 0, 0, 0);
    }
    fn jmp_imm(&mut self, op: u8, dst: u8, imm: i32, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.raw(JMP | op | K, dst, 0, 0, imm);
    }
    fn jmp_reg(&mut self, op: u8, dst: u8, src: u8, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.raw(JMP | op | X, dst, src, 0, 0);
    }
    fn call(&mut self, helper: i32) {
        self.raw(JMP | CALL, 0, 0, 0, helper);
    }
    fn exit(&mut self) {
        self.raw(JMP | EXIT, 0, 0, 0, 0);
    }
    /// `dst = map` (a two-slot `ld_imm64` the kernel resolves to the map).
    fn ld_map(&mut self, dst: u8, map_fd: i32) {
        self.raw(0x18, dst, PSEUDO_MAP_FD, 0, map_fd);
        self.raw(0, 0, 0, 0, 0);
    }
    fn finish(mut self) -> Vec<Insn> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].expect("every label is placed");
            self.insns[at].off =
                i16::try_from(target as isize - at as isize - 1).expect("jumps fit in 16 bits");
        }
        self.insns
    }
}

// Stack layout (offsets from the frame pointer, all aligned for their
// access size, as the verifier requires of stack accesses).
/// The 20-byte lookup key: kind, protocol, port, address.
const KEY: i16 = -24;
const KEY_PROTO: i16 = KEY + 1;
const KEY_PORT: i16 = KEY + 2;
const KEY_ADDR: i16 = KEY + 4;
/// The frame's source address (16 bytes, IPv4 in the first 4).
const SRC: i16 = -40;
/// The frame's destination address.
const DST: i16 = -56;
/// The destination port, as read (network order).
const DPORT: i16 = -64;

/// The program's instructions for a claim map and an XSK map.
///
/// Registers kept across helper calls: r6 the context, r7 the L4
/// protocol, r8 the source port, r9 the family's kind offset (0 or 4).
pub fn program(claims_fd: i32, xsks_fd: i32) -> Vec<Insn> {
    let mut a = Asm::default();
    let pass = a.label();
    let redirect = a.label();
    let v4 = a.label();
    let v6 = a.label();
    let l4 = a.label();
    let ports = a.label();
    let src_match = a.label();

    a.mov_reg(R6, R1);
    a.ldx(W, R2, R6, 0); // data
    a.ldx(W, R3, R6, 4); // data_end
    a.mov_imm(R0, 0);
    for off in [KEY, KEY + 8, KEY + 16, SRC, SRC + 8, DST, DST + 8, DPORT] {
        a.stx(DW, FP, off, R0);
    }
    a.mov_reg(R4, R2);
    a.add_imm(R4, 14);
    a.jmp_reg(JGT, R4, R3, pass);
    // The EtherType, loaded little-endian: 0x0800 reads 0x0008.
    a.ldx(H, R5, R2, 12);
    a.jmp_imm(JEQ, R5, 0x0008, v4);
    a.jmp_imm(JEQ, R5, 0xdd86, v6);
    a.jmp(JA, pass);

    // IPv4: header of IHL words; fragments pass.
    a.place(v4);
    a.mov_reg(R4, R2);
    a.add_imm(R4, 14 + 20);
    a.jmp_reg(JGT, R4, R3, pass);
    a.ldx(B, R5, R2, 14);
    a.and_imm(R5, 0x0f);
    a.jmp_imm(JLT, R5, 5, pass);
    // Flags and fragment offset: MF or a non-zero offset (0x3fff big
    // endian, read little-endian).
    a.ldx(H, R0, R2, 14 + 6);
    a.and_imm(R0, 0xff3f);
    a.jmp_imm(JNE, R0, 0, pass);
    a.ldx(B, R7, R2, 14 + 9);
    a.ldx(W, R0, R2, 14 + 12);
    a.stx(W, FP, SRC, R0);
    a.ldx(W, R0, R2, 14 + 16);
    a.stx(W, FP, DST, R0);
    a.lsh_imm(R5, 2);
    a.mov_reg(R4, R2);
    a.add_imm(R4, 14);
    a.add_reg(R4, R5);
    a.mov_imm(R9, 0);
    a.jmp(JA, l4);

    // IPv6: the fixed header; the transport header must follow it.
    a.place(v6);
    a.mov_reg(R4, R2);
    a.add_imm(R4, 14 + 40);
    a.jmp_reg(JGT, R4, R3, pass);
    a.ldx(B, R7, R2, 14 + 6);
    for i in 0..4 {
        a.ldx(W, R0, R2, 14 + 8 + 4 * i);
        a.stx(W, FP, SRC + 4 * i, R0);
        a.ldx(W, R0, R2, 14 + 24 + 4 * i);
        a.stx(W, FP, DST + 4 * i, R0);
    }
    a.mov_imm(R9, i32::from(KIND_V6));

    // TCP, UDP and SCTP all start with the two ports.
    a.place(l4);
    a.jmp_imm(JEQ, R7, 6, ports);
    a.jmp_imm(JEQ, R7, 17, ports);
    a.jmp_imm(JEQ, R7, 132, ports);
    a.jmp(JA, pass);
    a.place(ports);
    a.mov_reg(R5, R4);
    a.add_imm(R5, 4);
    a.jmp_reg(JGT, R5, R3, pass);
    a.ldx(H, R8, R4, 0);
    a.ldx(H, R0, R4, 2);
    a.stx(H, FP, DPORT, R0);
    a.stx(B, FP, KEY_PROTO, R7);

    let copy_addr = |a: &mut Asm, from: i16| {
        for i in 0..4 {
            a.ldx(W, R0, FP, from + 4 * i);
            a.stx(W, FP, KEY_ADDR + 4 * i, R0);
        }
    };
    let set_kind = |a: &mut Asm, kind: u8| {
        a.mov_reg(R0, R9);
        a.add_imm(R0, i32::from(kind));
        a.stx(B, FP, KEY, R0);
    };
    let lookup = |a: &mut Asm, claims_fd: i32| {
        a.ld_map(R1, claims_fd);
        a.mov_reg(R2, FP);
        a.add_imm(R2, i32::from(KEY));
        a.call(HELPER_MAP_LOOKUP_ELEM);
    };

    // A service: destination address, protocol, then port or any port.
    set_kind(&mut a, KIND_SERVICE);
    copy_addr(&mut a, DST);
    a.ldx(H, R0, FP, DPORT);
    a.stx(H, FP, KEY_PORT, R0);
    lookup(&mut a, claims_fd);
    a.jmp_imm(JNE, R0, 0, redirect);
    a.st(H, FP, KEY_PORT, 0);
    lookup(&mut a, claims_fd);
    a.jmp_imm(JNE, R0, 0, redirect);

    // A masq server's reply: source address, protocol, port or any port.
    set_kind(&mut a, KIND_NAT_SOURCE);
    copy_addr(&mut a, SRC);
    a.stx(H, FP, KEY_PORT, R8);
    lookup(&mut a, claims_fd);
    a.jmp_imm(JNE, R0, 0, src_match);
    a.st(H, FP, KEY_PORT, 0);
    lookup(&mut a, claims_fd);
    a.jmp_imm(JEQ, R0, 0, pass);

    // ... unless it is addressed to the director itself.
    a.place(src_match);
    set_kind(&mut a, KIND_LOCAL);
    a.st(B, FP, KEY_PROTO, 0);
    a.st(H, FP, KEY_PORT, 0);
    copy_addr(&mut a, DST);
    lookup(&mut a, claims_fd);
    a.jmp_imm(JNE, R0, 0, pass);

    // To the socket of the receive queue; XDP_PASS when there is none.
    a.place(redirect);
    a.ld_map(R1, xsks_fd);
    a.ldx(W, R2, R6, 16); // rx_queue_index
    a.mov_imm(R3, XDP_PASS);
    a.call(HELPER_REDIRECT_MAP);
    a.exit();

    a.place(pass);
    a.mov_imm(R0, XDP_PASS);
    a.exit();
    a.finish()
}

/// Most entries of the claim map.
pub const MAX_CLAIMS: u32 = 16_384;
/// Receive queues an interface's XSK map covers.
pub const MAX_QUEUES: u32 = 64;

/// The claim map, shared by the programs of every interface.
#[derive(Debug)]
pub struct ClaimMap {
    map: Map,
    current: std::collections::BTreeSet<ClaimKey>,
}

impl ClaimMap {
    /// Creates an empty claim map.
    pub fn create() -> io::Result<ClaimMap> {
        Ok(ClaimMap {
            map: Map::create(
                MAP_TYPE_HASH,
                "rvs_claims",
                CLAIM_KEY_LEN as u32,
                4,
                MAX_CLAIMS,
            )?,
            current: Default::default(),
        })
    }

    /// Makes the map hold exactly `keys`: new keys are added before stale
    /// ones are removed, so an entry present before and after never
    /// disappears in between.
    pub fn set(&mut self, keys: impl IntoIterator<Item = ClaimKey>) -> io::Result<()> {
        let want: std::collections::BTreeSet<ClaimKey> = keys.into_iter().collect();
        if want.len() > MAX_CLAIMS as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("more than {MAX_CLAIMS} XDP claim entries"),
            ));
        }
        for k in want.difference(&self.current) {
            self.map.update(&k.encode(), &1u32.to_ne_bytes())?;
        }
        for k in self.current.difference(&want) {
            self.map.delete(&k.encode())?;
        }
        self.current = want;
        Ok(())
    }

    /// What the map holds.
    pub fn keys(&self) -> &std::collections::BTreeSet<ClaimKey> {
        &self.current
    }
}

/// The program attached to one interface, with its XSK map: receive queue
/// index → AF_XDP socket. Dropping it detaches the program.
#[derive(Debug)]
pub struct XdpRedirect {
    // Drop order: the link (detach) first.
    link: XdpLink,
    _prog: Program,
    xsks: Map,
}

impl XdpRedirect {
    /// Loads the program for `claims` and attaches it to `ifindex`.
    pub fn attach(claims: &ClaimMap, ifindex: u32, mode: XdpMode) -> io::Result<XdpRedirect> {
        let xsks = Map::create(MAP_TYPE_XSKMAP, "rvs_xsks", 4, 4, MAX_QUEUES)?;
        let insns = program(claims.map.raw_fd(), xsks.raw_fd());
        let prog = Program::load_xdp("rvs_redirect", &insns, "Dual MIT/GPL")?;
        let link = XdpLink::attach(&prog, ifindex, mode)?;
        Ok(XdpRedirect {
            link,
            _prog: prog,
            xsks,
        })
    }

    /// Directs frames of receive queue `queue` to the socket `xsk_fd`.
    pub fn set_socket(&self, queue: u32, xsk_fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = xsk_fd.as_raw_fd() as u32;
        self.xsks.update(&queue.to_ne_bytes(), &fd.to_ne_bytes())
    }

    /// The interface.
    pub fn ifindex(&self) -> u32 {
        self.link.ifindex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_kind_family_protocol_port_and_address() {
        let k = ClaimKey {
            kind: ClaimKind::Service,
            proto: 6,
            port: 80,
            addr: "203.0.113.10".parse().unwrap(),
        };
        assert_eq!(
            k.encode(),
            [
                1, 6, 0, 80, 203, 0, 113, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        let k6 = ClaimKey {
            kind: ClaimKind::NatSource,
            proto: 17,
            port: 0x1234,
            addr: "2001:db8::2".parse().unwrap(),
        };
        let e = k6.encode();
        assert_eq!(&e[..4], &[6, 17, 0x12, 0x34]);
        assert_eq!(&e[4..6], &[0x20, 0x01]);
        assert_eq!(e[19], 2);
        let l = ClaimKey {
            kind: ClaimKind::Local,
            proto: 0,
            port: 0,
            addr: "192.0.2.1".parse().unwrap(),
        };
        assert_eq!(l.encode()[0], 3);
    }

    #[test]
    fn every_jump_lands_inside_the_program_and_it_ends_in_exit() {
        let p = program(3, 4);
        assert!(p.len() < 200, "{}", p.len());
        for (i, insn) in p.iter().enumerate() {
            let class = insn.code & 0x07;
            let op = insn.code & 0xf0;
            if class == JMP && op != CALL && op != EXIT {
                let to = i as isize + 1 + insn.off as isize;
                assert!(to > i as isize && (to as usize) < p.len(), "jump at {i}");
            }
        }
        assert_eq!(p.last().unwrap().code, JMP | EXIT);
    }
}
