//! 160-bit identifiers: node ids and info-hashes, XOR distance, and BEP 42 ids.
//!
//! This module owns the [`NodeId`] type (also used as [`InfoHash`]), the [`Distance`] between two
//! ids, hex parsing and printing, and the BEP 42 rules that tie a node id to an external IP
//! address. It knows nothing about buckets or the wire format.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rand::Rng;

/// Length of a node id or info-hash in bytes.
pub const ID_LEN: usize = 20;

/// A 160-bit Mainline DHT identifier: a node id or an info-hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; ID_LEN]);

/// An info-hash lives in the same 160-bit space as node ids.
pub type InfoHash = NodeId;

/// The XOR distance between two ids; ordered as a 160-bit big-endian integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Distance(pub [u8; ID_LEN]);

/// Why a string is not a valid hex id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdParseError {
    /// The string does not have exactly 40 hex digits; carries the length found.
    WrongLength(usize),
    /// A character is not a hex digit; carries its byte offset.
    NotHex(usize),
}

impl fmt::Display for IdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdParseError::WrongLength(n) => {
                write!(f, "an id has 40 hex digits, this one has {n} characters")
            }
            IdParseError::NotHex(at) => write!(f, "character {at} is not a hex digit"),
        }
    }
}

impl std::error::Error for IdParseError {}

impl NodeId {
    /// The all-zero id.
    pub const ZERO: NodeId = NodeId([0; ID_LEN]);
    /// The all-ones id (the largest value).
    pub const MAX: NodeId = NodeId([0xff; ID_LEN]);

    /// Wraps 20 raw bytes.
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        NodeId(bytes)
    }

    /// Reads an id from a slice of exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(NodeId)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// A uniformly random id drawn from the caller's generator.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; ID_LEN];
        rng.fill(&mut bytes[..]);
        NodeId(bytes)
    }

    /// A random id that shares exactly the first `prefix_len` bits with `self` and differs at
    /// bit `prefix_len` (when `prefix_len < 160`): an id that falls into bucket `prefix_len` of
    /// a table owned by `self`.
    pub fn random_at_prefix<R: Rng + ?Sized>(&self, prefix_len: usize, rng: &mut R) -> Self {
        let mut out = NodeId::random(rng);
        for bit in 0..prefix_len.min(160) {
            out.set_bit(bit, self.bit(bit));
        }
        if prefix_len < 160 {
            out.set_bit(prefix_len, !self.bit(prefix_len));
        }
        out
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut out = [0u8; ID_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        Distance(out)
    }

    /// The id as a 160-bit big-endian integer (high 128 bits, low 32 bits). The XOR of two keys
    /// orders like [`Distance`], with integer comparisons instead of a byte-wise one.
    pub fn sort_key(&self) -> (u128, u32) {
        let mut hi = [0u8; 16];
        let mut lo = [0u8; 4];
        hi.copy_from_slice(&self.0[..16]);
        lo.copy_from_slice(&self.0[16..]);
        (u128::from_be_bytes(hi), u32::from_be_bytes(lo))
    }

    /// The number of leading bits `self` and `other` have in common (160 when equal).
    pub fn shared_prefix_len(&self, other: &NodeId) -> usize {
        self.distance(other).leading_zeros()
    }

    /// Bit `index` (0 = most significant bit of the first byte).
    pub fn bit(&self, index: usize) -> bool {
        (self.0[index / 8] >> (7 - index % 8)) & 1 == 1
    }

    /// Sets bit `index` (0 = most significant) to `value`.
    pub fn set_bit(&mut self, index: usize, value: bool) {
        let mask = 1u8 << (7 - index % 8);
        if value {
            self.0[index / 8] |= mask;
        } else {
            self.0[index / 8] &= !mask;
        }
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, IdParseError> {
        if text.len() != 2 * ID_LEN {
            return Err(IdParseError::WrongLength(text.len()));
        }
        if let Some(at) = text.bytes().position(|c| !c.is_ascii_hexdigit()) {
            return Err(IdParseError::NotHex(at));
        }
        let mut bytes = [0u8; ID_LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| IdParseError::NotHex(0))?;
        Ok(NodeId(bytes))
    }

    /// A BEP 42 node id for the external address `ip`: the top 21 bits come from
    /// `crc32c((ip & mask) | (r << 29))` with `r = seed & 7`, the last byte is `seed`, and the
    /// rest is drawn from `rng`. An IPv4-mapped IPv6 address is treated as its IPv4 address.
    pub fn bep42<R: Rng + ?Sized>(ip: IpAddr, seed: u8, rng: &mut R) -> Self {
        let crc = bep42_crc(ip, seed);
        let mut id = NodeId::random(rng);
        id.0[0] = (crc >> 24) as u8;
        id.0[1] = (crc >> 16) as u8;
        id.0[2] = ((crc >> 8) as u8 & 0xf8) | (id.0[2] & 0x07);
        id.0[ID_LEN - 1] = seed;
        id
    }

    /// Whether this id satisfies BEP 42 for `ip`. Addresses exempt from BEP 42 (local and
    /// private networks) accept any id. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
    /// treated exactly as its IPv4 address (exemption and id rule).
    pub fn is_bep42_valid_for(&self, ip: IpAddr) -> bool {
        if is_bep42_exempt(ip) {
            return true;
        }
        let crc = bep42_crc(ip, self.0[ID_LEN - 1]);
        self.0[0] == (crc >> 24) as u8
            && self.0[1] == (crc >> 16) as u8
            && (self.0[2] & 0xf8) == ((crc >> 8) as u8 & 0xf8)
    }
}

/// The CRC32-C of the masked address with the 3 random bits, as BEP 42 defines it. An
/// IPv4-mapped IPv6 address takes the IPv4 rule: it is the IPv4 node seen through a dual-stack
/// socket.
fn bep42_crc(ip: IpAddr, seed: u8) -> u32 {
    const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
    const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];
    let r = seed & 0x07;
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut bytes = v4.octets();
            for (b, m) in bytes.iter_mut().zip(V4_MASK) {
                *b &= m;
            }
            bytes[0] |= r << 5;
            crc32c::crc32c(&bytes)
        }
        IpAddr::V6(v6) => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&v6.octets()[..8]);
            for (b, m) in bytes.iter_mut().zip(V6_MASK) {
                *b &= m;
            }
            bytes[0] |= r << 5;
            crc32c::crc32c(&bytes)
        }
    }
}

/// Addresses BEP 42 does not apply to: loopback, private, link-local and unspecified ranges
/// (for IPv6 also unique-local addresses). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
/// exempt exactly when its IPv4 address is.
pub fn is_bep42_exempt(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00
                || (seg0 & 0xffc0) == 0xfe80
        }
    }
}

impl Distance {
    /// The number of leading zero bits (160 for a zero distance).
    pub fn leading_zeros(&self) -> usize {
        for (i, byte) in self.0.iter().enumerate() {
            if *byte != 0 {
                return i * 8 + byte.leading_zeros() as usize;
            }
        }
        160
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::net::Ipv4Addr;

    /// The table of BEP 42: (ip, rand, first 3 bytes and last byte of a valid id).
    const BEP42_VECTORS: [(&str, u8, [u8; 3]); 5] = [
        ("124.31.75.21", 1, [0x5f, 0xbf, 0xbf]),
        ("21.75.31.124", 86, [0x5a, 0x3c, 0xe9]),
        ("65.23.51.170", 22, [0xa5, 0xd4, 0x32]),
        ("84.124.73.14", 65, [0x1b, 0x03, 0x21]),
        ("43.213.53.83", 90, [0xe5, 0x6f, 0x6c]),
    ];

    #[test]
    fn bep42_published_vectors() {
        let mut rng = SmallRng::seed_from_u64(7);
        for (ip, rand, prefix) in BEP42_VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            let id = NodeId::bep42(ip, rand, &mut rng);
            assert_eq!(id.0[0], prefix[0], "{ip}");
            assert_eq!(id.0[1], prefix[1], "{ip}");
            assert_eq!(id.0[2] & 0xf8, prefix[2] & 0xf8, "{ip}");
            assert_eq!(id.0[19], rand);
            assert!(id.is_bep42_valid_for(ip));
        }
    }

    #[test]
    fn bep42_published_full_ids_validate() {
        let ids = [
            ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
            ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
            ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
            ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
            ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
        ];
        for (ip, hex) in ids {
            let id: NodeId = hex.parse().unwrap();
            let ip: IpAddr = ip.parse().unwrap();
            assert!(id.is_bep42_valid_for(ip), "{ip}");
            let other: IpAddr = "8.8.8.8".parse().unwrap();
            assert!(!id.is_bep42_valid_for(other), "{ip} vs 8.8.8.8");
        }
    }

    #[test]
    fn bep42_exempts_private_and_loopback() {
        let id = NodeId::ZERO;
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
            "::1",
        ] {
            assert!(id.is_bep42_valid_for(ip.parse().unwrap()), "{ip}");
        }
        assert!(!is_bep42_exempt(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))));
    }

    /// `::ffff:a.b.c.d` is `a.b.c.d`: exempt when the IPv4 address is, and checked (and
    /// generated) with the IPv4 rule, never the IPv6 one.
    #[test]
    fn bep42_treats_ipv4_mapped_ipv6_as_ipv4() {
        let mapped =
            |v4: &str| -> IpAddr { IpAddr::V6(v4.parse::<Ipv4Addr>().unwrap().to_ipv6_mapped()) };
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
        ] {
            assert!(is_bep42_exempt(mapped(ip)), "::ffff:{ip}");
            assert!(NodeId::ZERO.is_bep42_valid_for(mapped(ip)), "::ffff:{ip}");
        }
        assert!(!is_bep42_exempt(mapped("8.8.8.8")));
        // The published ids are valid for the mapped form of their address, and only there.
        for (ip, hex) in [
            ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
            ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
            ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
        ] {
            let id: NodeId = hex.parse().unwrap();
            assert!(id.is_bep42_valid_for(mapped(ip)), "::ffff:{ip}");
            assert!(!id.is_bep42_valid_for(mapped("8.8.8.8")), "{ip}");
        }
        // Generating for the mapped form gives the IPv4 id; the two forms always agree.
        let mut rng = SmallRng::seed_from_u64(11);
        for seed in 0..=255u8 {
            let v4: IpAddr = "1.2.3.4".parse().unwrap();
            let a = NodeId::bep42(mapped("1.2.3.4"), seed, &mut SmallRng::seed_from_u64(9));
            let b = NodeId::bep42(v4, seed, &mut SmallRng::seed_from_u64(9));
            assert_eq!(a, b);
            assert!(a.is_bep42_valid_for(v4));
            let random = NodeId::random(&mut rng);
            assert_eq!(
                random.is_bep42_valid_for(mapped("1.2.3.4")),
                random.is_bep42_valid_for(v4)
            );
        }
    }

    #[test]
    fn bep42_ipv6_roundtrip() {
        let mut rng = SmallRng::seed_from_u64(1);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for seed in 0..=255u8 {
            let id = NodeId::bep42(ip, seed, &mut rng);
            assert!(id.is_bep42_valid_for(ip));
        }
    }

    #[test]
    fn distance_and_prefix() {
        let a = NodeId::ZERO;
        let mut b = NodeId::ZERO;
        b.set_bit(9, true);
        assert_eq!(a.shared_prefix_len(&b), 9);
        assert_eq!(a.shared_prefix_len(&a), 160);
        assert!(a.distance(&b) < a.distance(&NodeId::MAX));
        assert_eq!(a.distance(&b), b.distance(&a));
    }

    #[test]
    fn random_at_prefix_lands_in_bucket() {
        let mut rng = SmallRng::seed_from_u64(3);
        let own = NodeId::random(&mut rng);
        for prefix in [0, 1, 7, 8, 63, 159] {
            let id = own.random_at_prefix(prefix, &mut rng);
            assert_eq!(own.shared_prefix_len(&id), prefix);
        }
    }

    #[test]
    fn hex_roundtrip_and_errors() {
        let mut rng = SmallRng::seed_from_u64(5);
        let id = NodeId::random(&mut rng);
        assert_eq!(id.to_hex().parse::<NodeId>().unwrap(), id);
        assert_eq!(id.to_string(), id.to_hex());
        assert_eq!(id.to_hex().to_uppercase().parse::<NodeId>().unwrap(), id);
        assert_eq!("abc".parse::<NodeId>(), Err(IdParseError::WrongLength(3)));
        let bad = format!("{}zz", &id.to_hex()[..38]);
        assert_eq!(bad.parse::<NodeId>(), Err(IdParseError::NotHex(38)));
    }
}
