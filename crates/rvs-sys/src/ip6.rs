//! IPv6 datagram reception with the ancillary data VRRP needs: the hop
//! limit the packet arrived with (RFC 5798 §7.1 drops anything but 255) and
//! the destination address and interface (the VRRPv3 checksum covers a
//! pseudo-header with the destination). `socket2` has no safe way to read
//! control messages, so the `recvmsg(2)` call and the cmsg walk live here.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::cvt;

/// One datagram received by [`recv_with_info`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received6 {
    /// Bytes written to the buffer (the IPv6 payload: raw IPv6 sockets
    /// deliver no IP header).
    pub len: usize,
    /// The source address.
    pub src: Ipv6Addr,
    /// The source's scope id (the interface index for a link-local source).
    pub src_scope: u32,
    /// The hop limit it arrived with (`IPV6_HOPLIMIT`), when the kernel
    /// reported it.
    pub hop_limit: Option<u8>,
    /// The destination address (`IPV6_PKTINFO`), when reported.
    pub dst: Option<Ipv6Addr>,
    /// The interface it arrived on (`IPV6_PKTINFO`), when reported.
    pub ifindex: Option<u32>,
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` is a live c_int whose size is passed with its address.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Asks the kernel to report the hop limit and the destination of every
/// datagram `fd` (an AF_INET6 socket) receives, for [`recv_with_info`].
pub fn enable_recv_info(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
}

/// Sets `IPV6_CHECKSUM`: the kernel computes (on send) and verifies (on
/// receive) the checksum at byte `offset` of the payload of a raw IPv6
/// socket; -1 turns that off.
pub fn set_checksum_offset(fd: BorrowedFd<'_>, offset: i32) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, offset)
}

/// Receives one datagram on `fd` (an AF_INET6 socket, with
/// [`enable_recv_info`] called) into `buf`, honouring the socket's receive
/// timeout (`WouldBlock` / `TimedOut` when it passes).
pub fn recv_with_info(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received6> {
    // Room for IPV6_HOPLIMIT and IPV6_PKTINFO with their headers, and some
    // to spare for any other message the kernel adds.
    let mut control = [0u64; 32];
    // SAFETY: sockaddr_in6 and msghdr are plain data; all-zero is valid.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` points at a live local (`from`, `iov`
    // over `buf`, `control`) whose length is given with it; they outlive
    // the call.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Received6 {
        len: n as usize,
        src: Ipv6Addr::from(from.sin6_addr.s6_addr),
        src_scope: from.sin6_scope_id,
        hop_limit: None,
        dst: None,
        ifindex: None,
    };
    // SAFETY: `msg` was filled by a successful recvmsg(2): CMSG_FIRSTHDR
    // and CMSG_NXTHDR walk the control bytes the kernel wrote within
    // `msg_controllen`, and each CMSG_DATA read is of the type the level
    // and type name, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::IPPROTO_IPV6 {
                if h.cmsg_type == libc::IPV6_HOPLIMIT {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    out.hop_limit = u8::try_from(v).ok();
                } else if h.cmsg_type == libc::IPV6_PKTINFO {
                    let p =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                    out.dst = Some(Ipv6Addr::from(p.ipi6_addr.s6_addr));
                    out.ifindex = Some(p.ipi6_ifindex);
                }
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn reports_hop_limit_and_destination_of_a_loopback_datagram() {
        let a = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let b = std::net::UdpSocket::bind("[::1]:0").unwrap();
        enable_recv_info(a.as_fd()).unwrap();
        set_int(b.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 77).unwrap();
        b.send_to(b"hello", a.local_addr().unwrap()).unwrap();
        a.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        let r = recv_with_info(a.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..r.len], b"hello");
        assert_eq!(r.src, Ipv6Addr::LOCALHOST);
        assert_eq!(r.hop_limit, Some(77));
        assert_eq!(r.dst, Some(Ipv6Addr::LOCALHOST));
        assert!(r.ifindex.is_some_and(|i| i > 0));
    }
}
