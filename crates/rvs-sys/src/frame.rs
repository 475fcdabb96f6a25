//! A plain AF_PACKET socket for sending the odd link-layer frame (gratuitous
//! ARP, unsolicited neighbour advertisement) without the rings of
//! [`crate::packet`]: a handful of frames per failover does not need them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::cvt;

/// An AF_PACKET `SOCK_RAW` socket that receives nothing (protocol 0) and
/// sends whole Ethernet frames out of one interface.
#[derive(Debug)]
pub struct FrameSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl FrameSender {
    /// Opens the socket for interface index `ifindex`. Needs CAP_NET_RAW.
    pub fn open(ifindex: u32) -> io::Result<FrameSender> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `raw` was just returned by socket(2); nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(FrameSender { fd, ifindex })
    }

    /// Sends `frame` (destination MAC first) out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an Ethernet frame is at least 14 bytes",
            ));
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = u16::from_ne_bytes([frame[12], frame[13]]);
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` is valid for `frame.len()` bytes and `sll` is a
        // live sockaddr_ll whose size is passed with it.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
