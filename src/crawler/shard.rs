//! Crawl shards: one Nth of the id space, so that N crawlers cover the DHT without overlap.
//!
//! The shard of an id or info-hash is its top 32 bits times N, divided by 2³² (rounded down):
//! shard `I/N` is the `I`-th of N equal, contiguous ranges of the id space. A crawler confined
//! to a shard ([`CrawlConfig::shard`](super::CrawlConfig::shard)) aims every query at a target
//! in its shard and records only the info-hashes in it.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

use crate::id::NodeId;

/// One Nth of the id space: shard `index` of `count` (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardError(String);

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShardError {}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl Shard {
    /// The whole id space (`0/1`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`: `count` at least 1, `index` below it.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError(format!(
                "{index}/{count}: the count N must be at least 1"
            )));
        }
        if index >= count {
            return Err(ShardError(format!(
                "{index}/{count}: the index I must be below the count N (0 <= I < N)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// The shard's index (`I`).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The number of shards (`N`).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this is the whole id space.
    pub fn is_all(&self) -> bool {
        self.count == 1
    }

    /// Whether `id` (a node id or an info-hash) is in the shard.
    pub fn contains(&self, id: &NodeId) -> bool {
        let top = u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]);
        (u64::from(top) * u64::from(self.count)) >> 32 == u64::from(self.index)
    }

    /// The top-32-bit values of the shard: `lo..hi`, never empty.
    fn range(&self) -> (u64, u64) {
        let n = u64::from(self.count);
        let lo = (u64::from(self.index) << 32).div_ceil(n);
        let hi = ((u64::from(self.index) + 1) << 32).div_ceil(n);
        (lo, hi)
    }

    /// A uniformly random id in the shard (for the whole space, exactly [`NodeId::random`]).
    pub fn random_id<R: Rng + ?Sized>(&self, rng: &mut R) -> NodeId {
        let mut id = NodeId::random(rng);
        if self.is_all() {
            return id;
        }
        let (lo, hi) = self.range();
        let top = lo + rng.random_range(0..hi - lo);
        let top = u32::try_from(top).unwrap_or(u32::MAX);
        id.0[..4].copy_from_slice(&top.to_be_bytes());
        id
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    /// Parses `I/N`.
    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let bad = || {
            ShardError(format!(
                "{text}: expected I/N, two whole numbers with 0 <= I < N (e.g. 0/4)"
            ))
        };
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn id_with_top(top: u32) -> NodeId {
        let mut id = NodeId([0xab; 20]);
        id.0[..4].copy_from_slice(&top.to_be_bytes());
        id
    }

    #[test]
    fn every_id_is_in_exactly_one_shard_and_the_top_bits_choose_it() {
        for count in [1u32, 2, 3, 7, 16, 1000] {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            for top in [0u32, 1, 0x7fff_ffff, 0x8000_0000, 0xaaaa_aaaa, u32::MAX] {
                let id = id_with_top(top);
                let owners: Vec<u32> = shards
                    .iter()
                    .filter(|s| s.contains(&id))
                    .map(|s| s.index())
                    .collect();
                assert_eq!(owners.len(), 1, "{count} {top:#x}: {owners:?}");
            }
        }
        let half = |i| Shard::new(i, 2).unwrap();
        assert!(half(0).contains(&id_with_top(0x7fff_ffff)));
        assert!(half(1).contains(&id_with_top(0x8000_0000)));
    }

    #[test]
    fn random_ids_stay_in_their_shard_and_the_whole_space_draws_as_before() {
        let mut rng = SmallRng::seed_from_u64(1);
        for count in [2u32, 3, 5, 64] {
            for index in 0..count {
                let shard = Shard::new(index, count).unwrap();
                for _ in 0..200 {
                    assert!(shard.contains(&shard.random_id(&mut rng)));
                }
            }
        }
        let a = Shard::ALL.random_id(&mut SmallRng::seed_from_u64(9));
        assert_eq!(a, NodeId::random(&mut SmallRng::seed_from_u64(9)));
    }

    #[test]
    fn parsing_accepts_i_of_n_and_refuses_the_rest() {
        assert_eq!("1/2".parse::<Shard>(), Shard::new(1, 2));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard::ALL));
        assert_eq!(Shard::new(3, 8).unwrap().to_string(), "3/8");
        for bad in ["3/2", "2/2", "0/0", "x", "1/", "/2", "-1/2", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(
            "3/2"
                .parse::<Shard>()
                .unwrap_err()
                .to_string()
                .contains("below")
        );
    }
}
