//! Every unsafe system interface of rvs, each behind a safe wrapper that
//! returns `io::Result`:
//!
//! - [`packet`]: AF_PACKET sockets with TPACKET_V2 or V3 receive and transmit
//!   rings, fanout groups, batch receive and batch send;
//! - [`frame`]: a plain AF_PACKET socket sending single frames (gratuitous
//!   ARP);
//! - [`iface`]: interface index, MAC address and MTU;
//! - [`wait_readable`] and [`wait_any`]: `poll(2)` with a timeout;
//! - [`ip6`]: IPv6 receive with hop limit and destination (recvmsg cmsgs);
//! - [`netns`]: moving the calling thread into a named network namespace;
//! - with the `xdp` feature, [`bpf`] (raw `bpf(2)`: maps, program loading,
//!   XDP links), [`xdp_filter`] (the hand-assembled XDP program that
//!   redirects the data plane's frames) and [`xsk`] (AF_XDP sockets and
//!   their UMEM rings).
//!
//! The rest of the workspace denies `unsafe_code`; this crate is the one
//! place allowed to use it, and every `unsafe` block says why it is sound.

// This crate exists to hold the workspace's unsafe code (see above).
#![allow(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "xdp")]
pub mod bpf;
pub mod frame;
pub mod iface;
pub mod ip6;
pub mod netns;
pub mod packet;
#[cfg(feature = "xdp")]
pub mod xdp_filter;
#[cfg(feature = "xdp")]
pub mod xsk;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Waits until `fd` is readable or `timeout` passes: `Ok(true)` when
/// readable (or in error, which the next read reports), `Ok(false)` on
/// timeout. An interrupted wait counts as a timeout (the caller loops).
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    wait_any(&[fd], timeout)
}

/// [`wait_readable`] on several descriptors: true when any is readable.
pub fn wait_any(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<bool> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfds for the
    // duration of the call; the descriptors are borrowed, so they stay
    // open meanwhile.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(n > 0 && pfds.iter().any(|p| p.revents != 0))
}

/// Turns a `-1` return into the thread's `errno`.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn wait_times_out_on_a_silent_socket_and_wakes_on_data() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!wait_readable(a.as_fd(), Duration::from_millis(10)).unwrap());
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        assert!(wait_readable(a.as_fd(), Duration::from_secs(5)).unwrap());
    }
}
