//! The address policy: which networks a public node ignores, and the one rule every role
//! (node, bootstrap server, crawler, Hathor discovery) applies before it talks to, stores or
//! hands out an address.
//!
//! A public node never stores, hands out or queries private, loopback, link-local, multicast,
//! reserved or documentation addresses, nor port 0; a node configured with `allow_private`
//! (local networks, tests, swarms) lifts the network filter but never the port rule.

use std::net::{IpAddr, SocketAddr};

/// Whether an address belongs to the networks a public node ignores : private, loopback, link-local, multicast, broadcast, shared (CGNAT), reserved,
/// documentation and unspecified ranges; for IPv6 also unique-local and link-local.
pub fn is_ignored_ip(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// Whether a role may talk to, store or hand out `addr`: never port 0, and ignored networks
/// ([`is_ignored_ip`]) only with `allow_private`.
pub fn accepts(addr: &SocketAddr, allow_private: bool) -> bool {
    addr.port() != 0 && (allow_private || !is_ignored_ip(addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_networks() {
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "192.168.0.1",
            "172.20.0.1",
            "169.254.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "100.64.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(is_ignored_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.2.3.4", "8.8.8.8", "2a00:1450::1", "100.128.0.1"] {
            assert!(!is_ignored_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn port_zero_is_never_accepted() {
        assert!(!accepts(&"1.2.3.4:0".parse().unwrap(), true));
        assert!(accepts(&"1.2.3.4:1".parse().unwrap(), false));
        assert!(!accepts(&"10.0.0.1:1".parse().unwrap(), false));
        assert!(accepts(&"10.0.0.1:1".parse().unwrap(), true));
    }
}
