//! The box's own IP addresses, read from the kernel with `getifaddrs(3)`, for the household
//! server certificate's IP names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address of every interface that is up, loopback included (the caller decides).
/// An error of `getifaddrs` gives an empty list: the certificate then names only DNS names.
#[allow(unsafe_code)] // FFI to glibc; the list is read before it is freed, once.
pub fn addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    // The list is finite; the bound is a guard against a corrupt one.
    for _ in 0..4096 {
        if cur.is_null() {
            break;
        }
        // SAFETY: `cur` is a node of the list returned by getifaddrs, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_UP as libc::c_uint == 0 {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The addresses for the certificate: the interfaces' addresses without loopback, plus
/// `127.0.0.1` and `::1` when `loopback` (a host run whose listeners are on loopback).
pub fn certificate_addresses(all: &[IpAddr], loopback: bool) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = all.iter().copied().filter(|a| !a.is_loopback()).collect();
    if loopback {
        v.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        v.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_loopback_and_filters_it() {
        let all = addresses();
        assert!(all.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{all:?}");
        let lan = certificate_addresses(&all, false);
        assert!(lan.iter().all(|a| !a.is_loopback()), "{lan:?}");
        let host = certificate_addresses(&all, true);
        assert!(host.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(host.contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }
}
