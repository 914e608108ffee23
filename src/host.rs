//! Which addresses count as one host, and which hosts count as one network.
//!
//! This module owns the two groupings every limit on addresses uses:
//!
//! - [`host_key`]: one host. An IPv4 address is one host; an IPv6 host is its /64, since an
//!   ISP hands a whole /64 to one customer, who can use any of its 2^64 addresses. IPv4-mapped
//!   IPv6 addresses count as IPv4. The rate limiter, the routing table's one-entry-per-host rule,
//!   the announce store's one-peer-per-host rule and the announce tokens all count hosts with it.
//! - [`network_key`]: one network, for the sybil limits (one candidate per network in a lookup,
//!   one routing entry per network in a bucket): an IPv4 /24 or an IPv6 /64 for public
//!   addresses. Private, loopback and other addresses a public node ignores (see
//!   [`crate::address_policy::is_ignored_ip`]) only reach a node configured for a local network,
//!   where many nodes share one address: each socket address is its own network there.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::address_policy::is_ignored_ip;

/// The host an IP address belongs to: the address itself for IPv4 (IPv4-mapped IPv6
/// addresses included), its /64 (the low 64 bits cleared) for IPv6.
pub fn host_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

/// The network an address counts in for the sybil limits; see the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NetworkKey {
    /// A public IPv4 /24 (its first address) or IPv6 /64 (the address with its low 64 bits
    /// cleared).
    Subnet(IpAddr),
    /// A private or loopback socket address (canonical IP and port), a network of its own.
    Local(IpAddr, u16),
}

/// The network `addr` counts in: its /24 or /64 if public, else the socket address itself.
pub fn network_key(addr: &SocketAddr) -> NetworkKey {
    let ip = addr.ip().to_canonical();
    if is_ignored_ip(ip) {
        return NetworkKey::Local(ip, addr.port());
    }
    match ip {
        IpAddr::V4(v4) => NetworkKey::Subnet(IpAddr::V4((v4.to_bits() & 0xffff_ff00).into())),
        IpAddr::V6(_) => NetworkKey::Subnet(host_key(ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn sa(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        assert_eq!(host_key(ip("1.2.3.4")), ip("1.2.3.4"));
        assert_ne!(host_key(ip("1.2.3.4")), host_key(ip("1.2.3.5")));
        assert_eq!(host_key(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(host_key(ip("2a00:1:2:3:4:5:6:7")), ip("2a00:1:2:3::"));
        assert_eq!(
            host_key(ip("2a00:1:2:3::1")),
            host_key(ip("2a00:1:2:3:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(host_key(ip("2a00:1:2:3::1")), host_key(ip("2a00:1:2:4::1")));
    }

    #[test]
    fn public_networks_are_slash_24_and_slash_64() {
        assert_eq!(
            network_key(&sa("1.2.3.4:1")),
            network_key(&sa("1.2.3.200:2"))
        );
        assert_eq!(
            network_key(&sa("1.2.3.4:1")),
            network_key(&sa("[::ffff:1.2.3.9]:3"))
        );
        assert_ne!(network_key(&sa("1.2.3.4:1")), network_key(&sa("1.2.4.4:1")));
        assert_eq!(
            network_key(&sa("[2a00:1:2:3::1]:1")),
            network_key(&sa("[2a00:1:2:3::2]:2"))
        );
        assert_ne!(
            network_key(&sa("[2a00:1:2:3::1]:1")),
            network_key(&sa("[2a00:1:2:4::1]:1"))
        );
    }

    #[test]
    fn local_addresses_are_networks_of_their_own() {
        assert_ne!(
            network_key(&sa("127.0.0.1:6881")),
            network_key(&sa("127.0.0.1:6882"))
        );
        assert_ne!(
            network_key(&sa("10.0.0.1:6881")),
            network_key(&sa("10.0.0.2:6881"))
        );
        assert_ne!(
            network_key(&sa("[::1]:6881")),
            network_key(&sa("[::1]:6882"))
        );
        assert_eq!(
            network_key(&sa("10.0.0.1:6881")),
            network_key(&sa("[::ffff:10.0.0.1]:6881"))
        );
    }
}
