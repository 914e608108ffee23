//! Hash-map keys for addresses, hashed in one or two writes.
//!
//! The maps keyed by addresses that come from the network (the routing table's address and IP
//! indexes, the rate limiter's sources) keep std's `HashMap` and its SipHash with a random key:
//! attackers choose these addresses, so the hash must stay keyed. What this module changes is
//! only how an address is fed to the hasher: the derived `Hash` of [`SocketAddr`] and
//! [`IpAddr`] makes four to six small writes (discriminants, a length prefix, the octets, the
//! port), each with SipHash's buffering overhead; these keys write the same information as one
//! or two integers. Equality is the address's own, so the maps behave exactly as before.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// An IP address as a hash-map key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IpKey(pub(crate) IpAddr);

impl Hash for IpKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.0 {
            IpAddr::V4(ip) => state.write_u32(ip.to_bits()),
            IpAddr::V6(ip) => state.write_u128(ip.to_bits()),
        }
    }
}

/// A socket address as a hash-map key (every field that its equality compares is hashed).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct AddrKey(pub(crate) SocketAddr);

impl Hash for AddrKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.0 {
            SocketAddr::V4(a) => {
                state.write_u64((u64::from(a.ip().to_bits()) << 16) | u64::from(a.port()))
            }
            SocketAddr::V6(a) => {
                state.write_u128(a.ip().to_bits());
                state.write_u128(
                    u128::from(a.port())
                        | (u128::from(a.flowinfo()) << 16)
                        | (u128::from(a.scope_id()) << 48),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddrV6;

    #[test]
    fn keys_are_the_addresses() {
        let addrs: Vec<SocketAddr> = vec![
            "1.2.3.4:6881".parse().unwrap(),
            "1.2.3.4:6882".parse().unwrap(),
            "[::ffff:1.2.3.4]:6881".parse().unwrap(),
            "[2001:db8::1]:6881".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new(
                "2001:db8::1".parse().unwrap(),
                6881,
                7,
                0,
            )),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 6881, 0, 3)),
        ];
        let map: HashMap<AddrKey, usize> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (AddrKey(*a), i))
            .collect();
        assert_eq!(map.len(), addrs.len());
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(map.get(&AddrKey(*a)), Some(&i));
        }
        let ips: HashMap<IpKey, usize> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (IpKey(a.ip()), i))
            .collect();
        // 1.2.3.4 (twice), ::ffff:1.2.3.4, 2001:db8::1 (twice), fe80::1.
        assert_eq!(ips.len(), 4);
        assert_eq!(ips.get(&IpKey("1.2.3.4".parse().unwrap())), Some(&1));
    }
}
