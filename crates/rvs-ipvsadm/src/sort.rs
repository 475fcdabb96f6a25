//! ipvsadm's list order: its service and real-server comparators, run by a
//! top-down merge sort with glibc `qsort`'s merge rule.
//!
//! The comparators subtract 32-bit words and keep the difference in an
//! `int`, so two addresses 2^31 or more apart compare "backwards" and the
//! relation is not a total order. The result then depends on the input
//! order and on the exact merge steps, which is why the sort algorithm is
//! reproduced too: halves of `n/2` and `n - n/2`, and on a tie (`<= 0`) the
//! left element goes first.

use std::cmp::Ordering;
use std::net::IpAddr;

use rvs_core::model::{DestConfig, ServiceConfig, ServiceKey};

/// An address as the four big-endian 32-bit words ipvsadm compares; an
/// IPv4 address sits in the first word, the rest zero (the kernel's union).
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            let mut w = [0u32; 4];
            for (i, x) in w.iter_mut().enumerate() {
                *x = u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
            }
            w
        }
    }
}

/// `int r = a - b` on two 32-bit unsigned values.
fn wrapped(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

fn addr_cmp(first_is_v6: bool, a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    if first_is_v6 {
        for i in 0..4 {
            let r = wrapped(wa[i], wb[i]);
            if r != 0 {
                return r;
            }
        }
        0
    } else {
        wrapped(wa[0], wb[0])
    }
}

/// ipvsadm's service comparator: fwmark, family, protocol, address, port.
/// A fwmark service is held by the kernel as TCP with a zero address and
/// port, which is what it is compared as.
pub fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i32 {
    let parts = |k: &ServiceKey| -> (u32, i32, i32, IpAddr, i32) {
        let fam = k.family();
        match *k {
            ServiceKey::FwMark { mark, .. } => {
                (mark, i32::from(fam.number()), 6, fam.unspecified(), 0)
            }
            ServiceKey::Addr { proto, addr, port } => (
                0,
                i32::from(fam.number()),
                i32::from(proto.number()),
                addr,
                i32::from(port),
            ),
        }
    };
    let (ma, fa, pa, aa, qa) = parts(a);
    let (mb, fb, pb, ab, qb) = parts(b);
    let r = wrapped(ma, mb);
    if r != 0 {
        return r;
    }
    if fa != fb {
        return fa - fb;
    }
    if pa != pb {
        return pa - pb;
    }
    let r = addr_cmp(aa.is_ipv6(), &aa, &ab);
    if r != 0 {
        return r;
    }
    qa - qb
}

/// ipvsadm's real-server comparator: address (as the first server's family
/// reads it), then port.
pub fn cmp_dests(a: &DestConfig, b: &DestConfig) -> i32 {
    let r = addr_cmp(a.addr.is_ipv6(), &a.addr, &b.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// Sorts `v` by a C-style comparator with glibc's merge sort steps.
pub fn merge_sort_by<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    merge_sort_by(&mut v[..n1], cmp);
    merge_sort_by(&mut v[n1..], cmp);
    let left: Vec<T> = v[..n1].to_vec();
    let right: Vec<T> = v[n1..].to_vec();
    let (mut i, mut j, mut k) = (0, 0, 0);
    while i < left.len() && j < right.len() {
        if cmp(&left[i], &right[j]) <= 0 {
            v[k] = left[i].clone();
            i += 1;
        } else {
            v[k] = right[j].clone();
            j += 1;
        }
        k += 1;
    }
    for x in left[i..].iter().chain(&right[j..]) {
        v[k] = x.clone();
        k += 1;
    }
}

/// Sorts services into ipvsadm's list order.
pub fn sort_services<T: Clone>(v: &mut [T], key: impl Fn(&T) -> &ServiceConfig) {
    merge_sort_by(v, &|a: &T, b: &T| cmp_services(&key(a).key, &key(b).key));
}

/// Sorts real servers into ipvsadm's list order.
pub fn sort_dests<T: Clone>(v: &mut [T], key: impl Fn(&T) -> &DestConfig) {
    merge_sort_by(v, &|a: &T, b: &T| cmp_dests(key(a), key(b)));
}

/// The comparator's sign as an [`Ordering`], for callers that want one.
pub fn as_ordering(r: i32) -> Ordering {
    r.cmp(&0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::model::{Family, Protocol};

    fn tcp(a: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: a.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn wrapped_compare_is_backwards_far_apart() {
        // 10.0.0.1 - 198.51.100.1 wraps to a positive int.
        assert!(cmp_services(&tcp("10.0.0.1", 80), &tcp("198.51.100.1", 80)) > 0);
        assert!(cmp_services(&tcp("10.0.0.1", 80), &tcp("10.0.0.2", 80)) < 0);
        assert!(cmp_services(&tcp("10.0.0.1", 80), &tcp("10.0.0.1", 443)) < 0);
    }

    #[test]
    fn fwmark_after_address_services() {
        let f = ServiceKey::FwMark {
            family: Family::V4,
            mark: 1,
        };
        assert!(cmp_services(&f, &tcp("203.0.113.1", 80)) > 0);
        let u = ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: "1.1.1.1".parse().unwrap(),
            port: 1,
        };
        assert!(cmp_services(&tcp("9.9.9.9", 9), &u) < 0);
    }

    #[test]
    fn merge_is_stable_and_follows_the_merge_steps() {
        let mut v = vec![(3, 'a'), (1, 'b'), (3, 'c'), (1, 'd'), (2, 'e')];
        merge_sort_by(&mut v, &|a: &(i32, char), b: &(i32, char)| a.0 - b.0);
        assert_eq!(v, vec![(1, 'b'), (1, 'd'), (2, 'e'), (3, 'a'), (3, 'c')]);
    }
}
