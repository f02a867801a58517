//! Address family handling: v4-mapped IPv6 addresses and raw socket addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{SockAddr, SockAddrStorage};

/// Shows a v4-mapped IPv6 address as the IPv4 address it carries.
pub(crate) fn unmap_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

/// Shows a v4-mapped IPv6 socket address as the IPv4 socket address it carries; any other
/// address is kept whole (a link-local peer's scope id is what routes the answer back).
pub(crate) fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// The destination written in the socket's own family: IPv4 destinations are mapped on IPv6
/// sockets, v4-mapped destinations are unmapped on IPv4 sockets.
pub(crate) fn destination_for(addr: SocketAddr, socket_is_v6: bool) -> io::Result<SocketAddr> {
    match (addr, socket_is_v6) {
        (SocketAddr::V4(v4), true) => Ok(SocketAddr::V6(SocketAddrV6::new(
            v4.ip().to_ipv6_mapped(),
            v4.port(),
            0,
            0,
        ))),
        (SocketAddr::V6(v6), false) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => Ok(SocketAddr::new(IpAddr::V4(v4), v6.port())),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot send to IPv6 address {addr} from an IPv4 socket"),
            )),
        },
        _ => Ok(addr),
    }
}

/// Whether a destination (already in the socket's family) travels over IPv4.
pub(crate) fn travels_over_v4(dest: SocketAddr) -> bool {
    match dest {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some(),
    }
}

/// The source address to request for a datagram, in the family of the path it takes:
/// IPv4 for IPv4 (and v4-mapped) destinations, IPv6 otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceIp {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// Checks that a requested source address fits the destination's path.
pub(crate) fn source_for(source: IpAddr, dest_over_v4: bool) -> io::Result<SourceIp> {
    match (unmap_ip(source), dest_over_v4) {
        (IpAddr::V4(v4), true) => Ok(SourceIp::V4(v4)),
        (IpAddr::V6(v6), false) => Ok(SourceIp::V6(v6)),
        (ip, _) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "source address {ip} does not match an {} destination",
                if dest_over_v4 { "IPv4" } else { "IPv6" }
            ),
        )),
    }
}

/// Reads a socket address the kernel wrote (`len` bytes of `storage`).
pub(crate) fn decode(storage: SockAddrStorage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: `storage` was zero-initialised and then filled in by the kernel, which wrote at most
    // `len` bytes of a socket address into it.
    let addr = unsafe { SockAddr::new(storage, len) };
    addr.as_socket()
}

/// Placeholder for a source address the kernel did not report in a known family.
pub(crate) const UNKNOWN_SOURCE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_unmaps() {
        let v4: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:443".parse().unwrap();
        assert_eq!(destination_for(v4, true).unwrap(), mapped);
        assert_eq!(destination_for(mapped, false).unwrap(), v4);
        assert_eq!(destination_for(v4, false).unwrap(), v4);
        assert_eq!(unmap(mapped), v4);
        assert!(travels_over_v4(mapped));
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        assert!(!travels_over_v4(v6));
        assert_eq!(unmap(v6), v6);
        // A link-local peer keeps its scope id (and flow label): the answer needs it.
        let link_local = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            443,
            7,
            3,
        ));
        assert_eq!(unmap(link_local), link_local);
        let err = destination_for(v6, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn source_family_must_match_path() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            source_for(mapped, true).unwrap(),
            SourceIp::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            source_for(v4, true).unwrap(),
            SourceIp::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            source_for(v6, false).unwrap(),
            SourceIp::V6(Ipv6Addr::LOCALHOST)
        );
        assert!(source_for(v4, false).is_err());
        assert!(source_for(v6, true).is_err());
    }
}
