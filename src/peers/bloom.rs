//! BEP 33 scrape Bloom filters: the `BFsd` / `BFpe` bit arrays of peer addresses.

use std::fmt;
use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// Size of a BEP 33 Bloom filter in bytes.
pub const BLOOM_BYTES: usize = 256;

/// Size of a BEP 33 Bloom filter in bits (BEP 33's `m`).
const BLOOM_BITS: usize = BLOOM_BYTES * 8;

/// A BEP 33 scrape Bloom filter: 2,048 bits (256 bytes), k = 2, over peer IP addresses.
///
/// An address is hashed as `SHA-1(ip)` over its compact form without port (4 bytes for IPv4, an
/// IPv4-mapped IPv6 address counting as IPv4, 16 bytes for IPv6). The two bit indices are
/// `hash[0] | hash[1] << 8` and `hash[2] | hash[3] << 8`, each modulo 2,048; bit `i` is
/// `bytes[i / 8] & (1 << (i % 8))` (least significant bit first), exactly as in BEP 33's
/// pseudocode.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BloomFilter([u8; BLOOM_BYTES]);

impl Default for BloomFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BloomFilter")
            .field("zero_bits", &self.count_zero_bits())
            .field("estimate", &self.estimate_count())
            .finish()
    }
}

impl BloomFilter {
    /// The empty filter.
    pub const fn new() -> Self {
        BloomFilter([0; BLOOM_BYTES])
    }

    /// A filter from its 256 wire bytes (`BFsd` / `BFpe`).
    pub const fn from_bytes(bytes: &[u8; BLOOM_BYTES]) -> Self {
        BloomFilter(*bytes)
    }

    /// A filter from a byte string of the network, if it has exactly 256 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; BLOOM_BYTES]>::try_from(bytes).ok().map(BloomFilter)
    }

    /// The 256 wire bytes.
    pub const fn as_bytes(&self) -> &[u8; BLOOM_BYTES] {
        &self.0
    }

    /// Adds an IP address.
    pub fn insert(&mut self, ip: IpAddr) {
        self.insert_indices(bloom_indices(ip));
    }

    pub(super) fn insert_indices(&mut self, indices: [u16; 2]) {
        for i in indices {
            let i = usize::from(i) % BLOOM_BITS;
            self.0[i / 8] |= 1 << (i % 8);
        }
    }

    /// Whether `ip` may have been inserted (false positives possible, no false negatives).
    pub fn contains(&self, ip: IpAddr) -> bool {
        bloom_indices(ip).iter().all(|&i| {
            let i = usize::from(i) % BLOOM_BITS;
            self.0[i / 8] & (1 << (i % 8)) != 0
        })
    }

    /// Adds every address of `other` (bitwise OR): the filter of the union of both sets.
    pub fn union(&mut self, other: &BloomFilter) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// The number of bits not set.
    pub fn count_zero_bits(&self) -> u32 {
        self.0.iter().map(|b| b.count_zeros()).sum()
    }

    /// BEP 33's estimate of the number of distinct addresses inserted:
    /// `ln(c / m) / (k · ln(1 - 1/m))` with `m = 2048`, `k = 2` and
    /// `c = min(m - 1, zero bits)`.
    ///
    /// As in the BEP, the empty filter estimates 0.5 (because of the `m - 1`). A saturated
    /// filter (no zero bit) would be infinite; `c` is raised to 1 instead, giving about 7,805,
    /// where BEP 33 notes estimates stop meaning anything anyway (~8,000).
    pub fn estimate_count(&self) -> f64 {
        let m = BLOOM_BITS as f64;
        let c = f64::from(self.count_zero_bits()).clamp(1.0, m - 1.0);
        (c / m).ln() / (2.0 * (-1.0 / m).ln_1p())
    }
}

/// The two BEP 33 bit indices (already reduced modulo 2,048) of an address.
pub(super) fn bloom_indices(ip: IpAddr) -> [u16; 2] {
    let hash = match ip.to_canonical() {
        IpAddr::V4(v4) => Sha1::digest(v4.octets()),
        IpAddr::V6(v6) => Sha1::digest(v6.octets()),
    };
    let index1 = u16::from_le_bytes([hash[0], hash[1]]) % BLOOM_BITS as u16;
    let index2 = u16::from_le_bytes([hash[2], hash[3]]) % BLOOM_BITS as u16;
    [index1, index2]
}

/// The BEP 33 filters for one info-hash: `BFsd` (seeds) and `BFpe` (peers that are not seeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scrape {
    /// `BFsd`: every stored seed, both families.
    pub seeds: BloomFilter,
    /// `BFpe`: every stored peer that is not a seed, both families.
    pub peers: BloomFilter,
}
