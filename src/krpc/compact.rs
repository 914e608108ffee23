//! Compact node info (26 bytes IPv4, 38 bytes IPv6) and compact peer info (6 or 18 bytes).
//!
//! Byte order is big-endian: the address, then the port. Decoders take whole entries only and
//! ignore a trailing partial entry, as real traffic requires.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::contact::NodeInfo;
use crate::id::{ID_LEN, NodeId};

/// Bytes of one IPv4 compact node entry.
pub const NODE_V4_LEN: usize = ID_LEN + 6;
/// Bytes of one IPv6 compact node entry.
pub const NODE_V6_LEN: usize = ID_LEN + 18;
/// Bytes of an IPv4 compact peer.
pub const PEER_V4_LEN: usize = 6;
/// Bytes of an IPv6 compact peer.
pub const PEER_V6_LEN: usize = 18;

/// Reads a compact address: 6 bytes (IPv4) or 18 bytes (IPv6); any other length is `None`.
pub fn decode_addr(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.len() {
        PEER_V4_LEN => {
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            let port = u16::from_be_bytes([bytes[4], bytes[5]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        PEER_V6_LEN => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16]);
            let port = u16::from_be_bytes([bytes[16], bytes[17]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => None,
    }
}

/// Appends the compact form of `addr` (6 or 18 bytes).
pub fn encode_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The length of the compact form of `addr`.
pub fn addr_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        PEER_V4_LEN
    } else {
        PEER_V6_LEN
    }
}

/// Decodes the whole 26-byte entries of a `nodes` string.
pub fn decode_nodes_v4(bytes: &[u8]) -> Vec<NodeInfo> {
    decode_nodes(bytes, NODE_V4_LEN)
}

/// Decodes the whole 38-byte entries of a `nodes6` string.
pub fn decode_nodes_v6(bytes: &[u8]) -> Vec<NodeInfo> {
    decode_nodes(bytes, NODE_V6_LEN)
}

fn decode_nodes(bytes: &[u8], entry_len: usize) -> Vec<NodeInfo> {
    bytes
        .chunks_exact(entry_len)
        .filter_map(|entry| {
            let id = NodeId::from_slice(&entry[..ID_LEN])?;
            let addr = decode_addr(&entry[ID_LEN..])?;
            Some(NodeInfo { id, addr })
        })
        .collect()
}

/// Appends the compact node info of `node` (26 or 38 bytes by its address family).
pub fn encode_node(out: &mut Vec<u8>, node: &NodeInfo) {
    // Assembled on the stack and appended at once: one copy instead of three.
    let mut entry = [0u8; NODE_V6_LEN];
    entry[..ID_LEN].copy_from_slice(node.id.as_bytes());
    let len = match node.addr.ip() {
        IpAddr::V4(ip) => {
            entry[ID_LEN..ID_LEN + 4].copy_from_slice(&ip.octets());
            NODE_V4_LEN
        }
        IpAddr::V6(ip) => {
            entry[ID_LEN..ID_LEN + 16].copy_from_slice(&ip.octets());
            NODE_V6_LEN
        }
    };
    entry[len - 2..len].copy_from_slice(&node.addr.port().to_be_bytes());
    out.extend_from_slice(&entry[..len]);
}

/// Decodes concatenated 20-byte hashes (BEP 51 `samples`), ignoring a trailing partial one.
pub fn decode_hashes(bytes: &[u8]) -> Vec<NodeId> {
    bytes
        .chunks_exact(ID_LEN)
        .filter_map(NodeId::from_slice)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_roundtrip_v4_v6() {
        for text in [
            "1.2.3.4:6881",
            "[2001:db8::1]:443",
            "127.0.0.1:0",
            "[::1]:65535",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let mut out = Vec::new();
            encode_addr(&mut out, &addr);
            assert_eq!(out.len(), addr_len(&addr));
            assert_eq!(decode_addr(&out), Some(addr));
        }
        assert_eq!(decode_addr(&[1, 2, 3]), None);
        assert_eq!(decode_addr(&[0; 7]), None);
    }

    #[test]
    fn nodes_decode_whole_entries_only() {
        let node = NodeInfo::new(NodeId([7; 20]), "10.0.0.1:1234".parse().unwrap());
        let mut out = Vec::new();
        encode_node(&mut out, &node);
        encode_node(&mut out, &node);
        out.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_nodes_v4(&out), vec![node, node]);
        assert!(decode_nodes_v4(&out[..25]).is_empty());
    }

    #[test]
    fn nodes6_roundtrip() {
        let node = NodeInfo::new(NodeId([9; 20]), "[2001:db8::2]:6881".parse().unwrap());
        let mut out = Vec::new();
        encode_node(&mut out, &node);
        assert_eq!(out.len(), NODE_V6_LEN);
        assert_eq!(decode_nodes_v6(&out), vec![node]);
    }
}
