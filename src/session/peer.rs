//! A peer's address, kept small: one per session.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A peer's address in 24 bytes, where a `SocketAddr` takes 32: the IPv6
/// flow information is left out (Linux reports none for an accepted socket
/// unless `IPV6_FLOWINFO_SEND` is set, which the runtime does not do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAddr {
    /// An IPv4 peer.
    V4(SocketAddrV4),
    /// An IPv6 peer.
    V6 {
        /// The address.
        ip: Ipv6Addr,
        /// The port.
        port: u16,
        /// The scope (interface) of a link-local address.
        scope_id: u32,
    },
}

impl PeerAddr {
    /// The IP address.
    pub fn ip(&self) -> IpAddr {
        match self {
            Self::V4(addr) => IpAddr::V4(*addr.ip()),
            Self::V6 { ip, .. } => IpAddr::V6(*ip),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(addr) => Self::V4(addr),
            SocketAddr::V6(addr) => Self::V6 { ip: *addr.ip(), port: addr.port(), scope_id: addr.scope_id() },
        }
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(addr: PeerAddr) -> Self {
        match addr {
            PeerAddr::V4(addr) => Self::V4(addr),
            PeerAddr::V6 { ip, port, scope_id } => Self::V6(SocketAddrV6::new(ip, port, 0, scope_id)),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&SocketAddr::from(*self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_address_reads_back_as_it_came() {
        for addr in ["192.0.2.1:443", "[2001:db8::1]:8080", "[fe80::1%3]:80", "[::ffff:192.0.2.1]:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let peer = PeerAddr::from(addr);
            assert_eq!(SocketAddr::from(peer), addr);
            assert_eq!(peer.to_string(), addr.to_string());
            assert_eq!(peer.ip(), addr.ip());
        }
        assert_eq!(std::mem::size_of::<PeerAddr>(), 24);
    }
}
