//! A set that answers "seen before?" in bounded memory: exact while small, a Bloom filter after.
//!
//! The crawler suppresses duplicate output lines and duplicate queries with this set. Items are
//! 64-bit fingerprints (a keyed hash of the item, computed by the caller with
//! [`Fingerprinter`]). Up to `exact_limit` items the set is an exact `HashSet<u64>` (wrong only
//! on a 64-bit fingerprint collision, about `n² / 2⁶⁵`). When it would grow past that, it
//! moves every fingerprint into a Bloom filter sized for `capacity` items at false-positive
//! rate `fp_rate`, and stays there: memory is then fixed at `-capacity · ln(fp_rate) / ln²2`
//! bits (for 10 million items at 0.1%: 144 Mbit, 18 MB, 10 hash functions).
//!
//! A false positive makes the crawler believe an item was seen: a node is not queried or an
//! info-hash line is not printed. Past `capacity` items the rate grows (at twice the capacity
//! it is about 1.6% for the defaults); [`Dedup::false_positive_rate`] gives the current
//! estimate for the summary.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// Computes keyed 64-bit fingerprints (SipHash-2-4 with a key from the caller's randomness), so
/// that a remote party cannot predict collisions.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprinter {
    key: (u64, u64),
}

impl Fingerprinter {
    /// A fingerprinter keyed with `key`.
    pub fn new(key: (u64, u64)) -> Self {
        Fingerprinter { key }
    }

    /// The fingerprint of `item`.
    pub fn of<T: Hash + ?Sized>(&self, item: &T) -> u64 {
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new_with_keys(self.key.0, self.key.1);
        item.hash(&mut hasher);
        hasher.finish()
    }
}

/// Parameters of a [`Dedup`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DedupConfig {
    /// Items kept exactly before switching to the Bloom filter. Default 262,144 (about 4 MB).
    pub exact_limit: usize,
    /// Items the Bloom filter is sized for. Default 10,000,000.
    pub capacity: usize,
    /// The Bloom filter's false-positive rate at `capacity` items. Default 0.001.
    pub fp_rate: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            exact_limit: 262_144,
            capacity: 10_000_000,
            fp_rate: 0.001,
        }
    }
}

/// A Bloom filter over 64-bit fingerprints (double hashing).
#[derive(Clone, Debug)]
struct Bloom {
    bits: Vec<u64>,
    nbits: u64,
    hashes: u32,
}

impl Bloom {
    fn new(capacity: usize, fp_rate: f64) -> Self {
        let n = capacity.max(1) as f64;
        let p = fp_rate.clamp(1e-9, 0.5);
        let ln2 = std::f64::consts::LN_2;
        let nbits = (-n * p.ln() / (ln2 * ln2)).ceil().max(64.0) as u64;
        let hashes = ((nbits as f64 / n) * ln2).round().clamp(1.0, 32.0) as u32;
        let words = nbits.div_ceil(64);
        Bloom {
            bits: vec![0; words as usize],
            nbits: words * 64,
            hashes,
        }
    }

    /// Sets the item's bits; returns whether at least one was clear (the item is new).
    fn insert(&mut self, fingerprint: u64) -> bool {
        let h1 = mix(fingerprint);
        let h2 = mix(fingerprint ^ 0x9e37_79b9_7f4a_7c15) | 1;
        let mut new = false;
        for i in 0..u64::from(self.hashes) {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % self.nbits;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            if let Some(w) = self.bits.get_mut(word)
                && *w & mask == 0
            {
                new = true;
                *w |= mask;
            }
        }
        new
    }
}

/// A 64-bit finaliser (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A "seen before?" set: exact while small, a Bloom filter after (see the module docs).
#[derive(Clone, Debug)]
pub struct Dedup {
    config: DedupConfig,
    exact: HashSet<u64>,
    bloom: Option<Bloom>,
    inserted: u64,
}

impl Dedup {
    /// An empty set.
    pub fn new(config: DedupConfig) -> Self {
        Dedup {
            config,
            exact: HashSet::new(),
            bloom: None,
            inserted: 0,
        }
    }

    /// Adds `fingerprint`; returns whether it was new (a false "not new" is possible once the
    /// set is a Bloom filter).
    pub fn insert(&mut self, fingerprint: u64) -> bool {
        let new = match &mut self.bloom {
            Some(bloom) => bloom.insert(fingerprint),
            None => {
                if self.exact.contains(&fingerprint) {
                    false
                } else if self.exact.len() < self.config.exact_limit {
                    self.exact.insert(fingerprint)
                } else {
                    let mut bloom = Bloom::new(self.config.capacity, self.config.fp_rate);
                    for f in self.exact.drain() {
                        bloom.insert(f);
                    }
                    self.exact = HashSet::new();
                    let new = bloom.insert(fingerprint);
                    self.bloom = Some(bloom);
                    new
                }
            }
        };
        if new {
            self.inserted += 1;
        }
        new
    }

    /// Items accepted as new so far.
    pub fn len(&self) -> u64 {
        self.inserted
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.inserted == 0
    }

    /// Whether the set has become a Bloom filter.
    pub fn is_approximate(&self) -> bool {
        self.bloom.is_some()
    }

    /// The current false-positive rate: 0 while exact, else the Bloom filter's estimate
    /// `(1 - e^(-k·n/m))^k` for the `n` items inserted so far.
    pub fn false_positive_rate(&self) -> f64 {
        match &self.bloom {
            None => 0.0,
            Some(b) => {
                let k = f64::from(b.hashes);
                let n = self.inserted as f64;
                (1.0 - (-k * n / b.nbits as f64).exp()).powf(k)
            }
        }
    }

    /// Approximate bytes of memory held.
    pub fn memory_bytes(&self) -> usize {
        match &self.bloom {
            Some(b) => b.bits.len() * 8,
            None => self.exact.capacity() * 9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_bloom_with_the_documented_rate() {
        let config = DedupConfig {
            exact_limit: 1_000,
            capacity: 100_000,
            fp_rate: 0.01,
        };
        let mut set = Dedup::new(config);
        let f = Fingerprinter::new((1, 2));
        for i in 0..1_000u64 {
            assert!(set.insert(f.of(&i)));
        }
        assert!(!set.is_approximate());
        assert!(!set.insert(f.of(&5u64)));
        // Past the exact limit: a Bloom filter, no false negatives.
        let mut false_positives = 0;
        for i in 1_000..100_000u64 {
            if !set.insert(f.of(&i)) {
                false_positives += 1;
            }
        }
        assert!(set.is_approximate());
        for i in 0..100_000u64 {
            assert!(!set.insert(f.of(&i)), "no false negative");
        }
        // Fewer false positives than the rate at capacity (the filter filled gradually).
        assert!(false_positives < 99_000 / 100, "{false_positives}");
        let rate = set.false_positive_rate();
        assert!((0.005..0.02).contains(&rate), "{rate}");
        // Memory: 100,000 items at 1% is about 958 kbit = 120 kB.
        assert!(set.memory_bytes() < 130_000, "{}", set.memory_bytes());
    }

    #[test]
    fn ten_million_items_fit_in_the_documented_memory() {
        let bloom = Bloom::new(10_000_000, 0.001);
        assert_eq!(bloom.hashes, 10);
        assert!(bloom.bits.len() * 8 < 18_500_000);
    }
}
