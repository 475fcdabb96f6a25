//! Interface lookups by name through `if_nametoindex(3)` and the
//! `SIOCGIFHWADDR`/`SIOCGIFMTU` ioctls (one small syscall each; netlink
//! would need a dump and a parser for three numbers).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::cvt;

/// What the data plane needs to know about one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// Kernel interface index.
    pub index: u32,
    /// Hardware (MAC) address.
    pub mac: [u8; 6],
    /// MTU in bytes (L3).
    pub mtu: u32,
}

fn name_c(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: not an interface name (1 to 15 bytes)"),
        ));
    }
    CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: interface name with a NUL byte"),
        )
    })
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn index(name: &str) -> io::Result<u32> {
    let c = name_c(name)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {name}: {e}")));
    }
    Ok(i)
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let c = name_c(name)?;
    // SAFETY: ifreq is plain old data (integers, arrays and a union of
    // them); all zero bytes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(c.as_bytes_with_nul()) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(name: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
    let s = ioctl_socket()?;
    let mut req = ifreq_for(name)?;
    // SAFETY: `req` is a valid, writable ifreq with the name set, which is
    // what SIOCGIFHWADDR and SIOCGIFMTU read and fill in; `s` is open.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), request as _, &mut req) })
        .map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))?;
    Ok(req)
}

/// The MAC address of interface `name`.
pub fn mac(name: &str) -> io::Result<[u8; 6]> {
    let req = ioctl(name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// The MTU of interface `name`.
pub fn mtu(name: &str) -> io::Result<u32> {
    let req = ioctl(name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other(format!("interface {name}: MTU {mtu}")))
}

/// Index, MAC and MTU of interface `name`.
pub fn lookup(name: &str) -> io::Result<Interface> {
    Ok(Interface {
        index: index(name)?,
        mac: mac(name)?,
        mtu: mtu(name)?,
    })
}

/// Every IPv4 and IPv6 address of every interface in the calling thread's
/// network namespace (`getifaddrs(3)`).
pub fn local_addresses() -> io::Result<Vec<std::net::IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list it allocated, freed below.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, alive until
        // freeifaddrs; `ifa_addr` is null or points to a sockaddr whose
        // family says which struct it is.
        unsafe {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*a.cast::<libc::sockaddr_in>();
                        out.push(std::net::IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*a.cast::<libc::sockaddr_in6>();
                        out.push(std::net::IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_addresses_are_local() {
        let a = local_addresses().unwrap();
        assert!(a.contains(&std::net::IpAddr::from([127, 0, 0, 1])), "{a:?}");
    }

    use super::*;

    #[test]
    fn loopback_is_found() {
        let lo = lookup("lo").unwrap();
        assert!(lo.index > 0);
        assert_eq!(lo.mac, [0; 6]);
        assert!(lo.mtu >= 1500);
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(index("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            index("a-name-much-too-long").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(index("rvs-no-such0").is_err());
        assert!(mtu("rvs-no-such0").is_err());
    }
}
