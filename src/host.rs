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
    NetworkKey::Subnet(subnet(ip))
}

/// The /24 of an IPv4 address, the /64 of an IPv6 one (`ip` canonical).
fn subnet(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((v4.to_bits() & 0xffff_ff00).into()),
        IpAddr::V6(_) => host_key(ip),
    }
}

impl NetworkKey {
    /// Whether `addr` counts in this network: `network_key(addr) == *self`, but the address
    /// checks ([`is_ignored_ip`]) are made only for an address in the same subnet, so that
    /// scanning a bucket for a network costs a few comparisons per entry.
    pub fn holds(&self, addr: &SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        match *self {
            NetworkKey::Local(local, port) => ip == local && addr.port() == port,
            NetworkKey::Subnet(network) => subnet(ip) == network && !is_ignored_ip(ip),
        }
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

    proptest::proptest! {
        /// `holds` is `network_key` equality, for addresses near each other and near the
        /// ignored ranges (loopback, private, link-local, mapped, documentation...).
        #[test]
        fn holds_is_network_key_equality(
            a in addr_strategy(),
            b in addr_strategy(),
        ) {
            proptest::prop_assert_eq!(network_key(&a).holds(&b), network_key(&a) == network_key(&b));
            proptest::prop_assert!(network_key(&a).holds(&a));
        }
    }

    fn addr_strategy() -> impl proptest::strategy::Strategy<Value = SocketAddr> {
        use proptest::prelude::*;
        // Few distinct prefixes, so that equal networks are frequent.
        let v4_prefix = prop::sample::select(vec![
            [1u8, 2, 3],
            [1, 2, 4],
            [10, 0, 0],
            [127, 0, 0],
            [192, 168, 1],
            [169, 254, 0],
            [100, 64, 0],
            [0, 0, 0],
            [255, 255, 255],
        ]);
        let v4 = (v4_prefix, 0u8..4, 1u16..3).prop_map(|(p, last, port)| {
            SocketAddr::new(IpAddr::from([p[0], p[1], p[2], last]), port)
        });
        let mapped = v4.clone().prop_map(|a| {
            let IpAddr::V4(ip) = a.ip() else {
                unreachable!()
            };
            SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port())
        });
        let v6_prefix = prop::sample::select(vec![
            0x2a00_0001_0002_0003u64,
            0x2a00_0001_0002_0004,
            0xfe80_0000_0000_0000,
            0xfd00_0000_0000_0001,
            0x2001_0db8_0000_0000,
            0,
        ]);
        let v6 = (v6_prefix, 0u64..3, 1u16..3).prop_map(|(p, low, port)| {
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from_bits((u128::from(p) << 64) | u128::from(low))),
                port,
            )
        });
        prop_oneof![v4, mapped, v6]
    }
}
