//! The announce store: which peers announced which info-hash, for how long, and what to answer.
//!
//! This module owns the peers stored through `announce_peer` (BEP 5), their expiry, the caps
//! that bound the store and the eviction rules that apply at the caps, the BEP 33 scrape Bloom
//! filters ([`BloomFilter`], [`PeerStore::scrape`]) and the BEP 51 samples
//! ([`PeerStore::sample`]). It does not check tokens (see [`crate::token`]), does not parse or
//! encode messages, reads no clock and draws randomness only from the caller's RNG.
//!
//! # What is stored
//!
//! For each info-hash, a set of peers **unique by host** (BEP 33: "`<Infohash,IP>` tuples
//! must be unique while port numbers, seed status and other values may be updated"; a host is
//! an IPv4 address or an IPv6 /64, [`crate::host::host_key`]): a re-announce from the same host
//! refreshes the entry and updates its address, port and seed flag. An IPv4-mapped IPv6
//! address counts as the IPv4 address. IPv4 and IPv6 peers are kept in separate
//! lists: [`PeerStore::get_peers`] returns the family it is asked for (the node calls it once
//! per family in `want`).
//!
//! # Expiry
//!
//! A peer expires [`DEFAULT_PEER_TTL`] (30 minutes) after its last announce. The caller runs
//! [`PeerStore::expire`] at [`PeerStore::next_expiry`]; until then an expired peer may still be
//! returned. An info-hash whose last peer leaves is removed.
//!
//! # Caps and eviction (defaults in [`PeerStoreConfig`])
//!
//! - **Peers per info-hash**: at most 500 IPv4 *and* at most 500 IPv6 peers (libtorrent's
//!   figure; per family so an IPv6 flood cannot push out IPv4 peers, and far below BEP 33's
//!   advice to keep `max(seeds, peers)` under 6,000). A new peer for a full list **replaces the
//!   oldest peer of that list** (least recently announced): the one most likely gone.
//! - **Info-hashes**: at most 100,000 (libtorrent keeps 2,000; we are also a BEP 51 source for
//!   indexers). A new info-hash in a full store **evicts the info-hash with the fewest peers,
//!   ties broken by the least recently announced**, as libtorrent does for its first criterion:
//!   a flood of one-peer info-hashes then churns among itself rather than pushing out swarms.
//! - **Peers in total**: at most 1,000,000 (about 120 MB at ~120 bytes per peer, see
//!   [`PeerStore::approx_memory_bytes`]),
//!   so the two caps above cannot multiply into gigabytes. A new peer in a full store **evicts
//!   the globally oldest peer**.
//!
//! Every operation is O(log n) except the per-info-hash lookup of a peer by IP, which scans one
//! family's list (at most `max_peers_per_info_hash` entries). No `HashMap` is ever iterated, so
//! outputs depend only on the sequence of calls and the caller's RNG.
//!
//! # Replies
//!
//! [`PeerStore::get_peers`] returns a uniformly random subset of at most `max_values_per_reply`
//! (default [`DEFAULT_MAX_VALUES`] = 50) peers. Each IPv4 value costs 8 bytes in the bencoded
//! reply (`6:` + 6), each IPv6 value 21 bytes (`18:` + 18): 50 IPv4 values take 400 bytes, 50
//! IPv6 values 1,050. A reply that also carries the two BEP 33 filters (about 530 bytes) and
//! nodes must stay under ~1,500 bytes, so the node should ask for fewer IPv6 values (say 25) when
//! it adds filters or several families.
//!
//! With `noseed` (BEP 33), seeds are left out entirely, as libtorrent does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::Rng;
use rand::seq::index;
use sha1::{Digest, Sha1};

use crate::host::host_key;
use crate::id::InfoHash;
use crate::time::Instant;

/// How long an announced peer is kept without a re-announce.
pub const DEFAULT_PEER_TTL: Duration = Duration::from_secs(30 * 60);

/// Default cap on the number of info-hashes stored.
pub const DEFAULT_MAX_INFO_HASHES: usize = 100_000;

/// Default cap on the number of peers per info-hash, for each address family.
pub const DEFAULT_MAX_PEERS_PER_INFO_HASH: usize = 500;

/// Default cap on the total number of peers stored.
pub const DEFAULT_MAX_PEERS: usize = 1_000_000;

/// Default cap on the number of peers returned by one [`PeerStore::get_peers`] call.
pub const DEFAULT_MAX_VALUES: usize = 50;

/// Default number of info-hashes in a BEP 51 sample (libtorrent's figure; 20 × 20 bytes fit one
/// datagram with room for nodes).
pub const DEFAULT_MAX_SAMPLES: usize = 20;

/// Default time between two BEP 51 sample refreshes.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(300);

/// The largest `interval` BEP 51 allows in a reply, in seconds (6 hours).
pub const MAX_SAMPLE_INTERVAL_SECS: u32 = 21_600;

/// Size of a BEP 33 Bloom filter in bytes.
pub const BLOOM_BYTES: usize = 256;

/// Size of a BEP 33 Bloom filter in bits (BEP 33's `m`).
const BLOOM_BITS: usize = BLOOM_BYTES * 8;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    /// IPv4 (including IPv4-mapped IPv6 addresses).
    V4,
    /// IPv6.
    V6,
}

impl AddressFamily {
    /// The family of `ip`, an IPv4-mapped IPv6 address counting as IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// BEP 33 Bloom filters

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

    fn insert_indices(&mut self, indices: [u16; 2]) {
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
fn bloom_indices(ip: IpAddr) -> [u16; 2] {
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

// ---------------------------------------------------------------------------------------------
// The store

/// Sizes and timings of a [`PeerStore`]. A cap of zero disables storing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStoreConfig {
    /// Most info-hashes stored.
    pub max_info_hashes: usize,
    /// Most peers per info-hash, for each address family.
    pub max_peers_per_info_hash: usize,
    /// Most peers stored in total.
    pub max_peers: usize,
    /// How long a peer is kept after its last announce.
    pub peer_ttl: Duration,
    /// Most peers one [`PeerStore::get_peers`] call returns, whatever it asks.
    pub max_values_per_reply: usize,
    /// Most info-hashes in a BEP 51 sample.
    pub max_samples: usize,
    /// How long a BEP 51 sample is kept before a new one is drawn.
    pub sample_interval: Duration,
}

impl Default for PeerStoreConfig {
    fn default() -> Self {
        PeerStoreConfig {
            max_info_hashes: DEFAULT_MAX_INFO_HASHES,
            max_peers_per_info_hash: DEFAULT_MAX_PEERS_PER_INFO_HASH,
            max_peers: DEFAULT_MAX_PEERS,
            peer_ttl: DEFAULT_PEER_TTL,
            max_values_per_reply: DEFAULT_MAX_VALUES,
            max_samples: DEFAULT_MAX_SAMPLES,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
        }
    }
}

/// What an accepted announce did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// A new peer was stored without evicting anything.
    Added,
    /// The peer (same info-hash and IP) was already stored: its time, port and seed flag were
    /// updated.
    Refreshed,
    /// The info-hash's list for this family was full: the new peer replaced its oldest peer.
    ReplacedOldest,
    /// The store held the maximum number of info-hashes: this one (fewest peers, then least
    /// recently announced) was dropped with all its peers to make room.
    EvictedInfoHash(InfoHash),
    /// The store held the maximum number of peers: the globally oldest peer was dropped.
    EvictedOldestPeer,
}

/// Why an announce was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceRejected {
    /// Port 0 cannot be connected to.
    PortZero,
    /// An unspecified, multicast or broadcast address.
    UnusableAddress,
    /// A cap in the configuration is zero: the store keeps nothing.
    Disabled,
}

impl fmt::Display for AnnounceRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnnounceRejected::PortZero => "announced port is 0",
            AnnounceRejected::UnusableAddress => "announced address is not a unicast address",
            AnnounceRejected::Disabled => "the peer store is disabled",
        })
    }
}

impl std::error::Error for AnnounceRejected {}

/// A stored peer, as listed by [`PeerStore::peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPeer {
    /// The info-hash it announced.
    pub info_hash: InfoHash,
    /// Its address (IPv4-mapped IPv6 addresses are stored as IPv4).
    pub addr: SocketAddr,
    /// Whether it announced itself as a seed (BEP 33).
    pub seed: bool,
    /// When it last announced.
    pub announced_at: Instant,
}

/// A BEP 51 `sample_infohashes` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Up to `max_samples` stored info-hashes (`samples`).
    pub samples: Vec<InfoHash>,
    /// How many info-hashes the store holds (`num`).
    pub num: usize,
    /// Seconds until the sample changes (`interval`), at most [`MAX_SAMPLE_INTERVAL_SECS`].
    pub interval: u32,
}

#[derive(Debug, Clone, Copy)]
struct PeerEntry {
    /// Canonical IP: its family decides the list it lives in.
    ip: IpAddr,
    port: u16,
    seed: bool,
    announced_at: Instant,
    /// Unique stamp of the last announce; with `announced_at` the key in `by_age`.
    seq: u64,
    /// BEP 33 bit indices of `ip`, computed once.
    bloom: [u16; 2],
}

/// Key ordering swarms for eviction: fewest peers first, then least recently announced.
type RankKey = (usize, Instant, u64);

#[derive(Debug)]
struct Swarm {
    info_hash: InfoHash,
    v4: Vec<PeerEntry>,
    v6: Vec<PeerEntry>,
    /// This swarm's key in `PeerStore::ranks`.
    rank: RankKey,
}

impl Swarm {
    fn list(&self, family: AddressFamily) -> &Vec<PeerEntry> {
        match family {
            AddressFamily::V4 => &self.v4,
            AddressFamily::V6 => &self.v6,
        }
    }

    fn list_mut(&mut self, family: AddressFamily) -> &mut Vec<PeerEntry> {
        match family {
            AddressFamily::V4 => &mut self.v4,
            AddressFamily::V6 => &mut self.v6,
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

#[derive(Debug, Default)]
struct SampleCache {
    hashes: Vec<InfoHash>,
    refreshed_at: Option<Instant>,
}

/// The announce store. See the [module documentation](self) for the rules.
#[derive(Debug)]
pub struct PeerStore {
    config: PeerStoreConfig,
    /// Every swarm, in a dense vector (sampling draws indices into it).
    swarms: Vec<Swarm>,
    /// Info-hash -> position in `swarms`. Only looked up, never iterated.
    index: HashMap<InfoHash, usize>,
    /// Every peer by (last announce, seq): expiry and global eviction order.
    by_age: BTreeMap<(Instant, u64), (InfoHash, IpAddr)>,
    /// Every swarm by eviction rank.
    ranks: BTreeMap<RankKey, InfoHash>,
    peer_count: usize,
    next_seq: u64,
    sample: SampleCache,
}

impl Default for PeerStore {
    fn default() -> Self {
        Self::new(PeerStoreConfig::default())
    }
}

impl PeerStore {
    /// An empty store.
    pub fn new(config: PeerStoreConfig) -> Self {
        PeerStore {
            config,
            swarms: Vec::new(),
            index: HashMap::new(),
            by_age: BTreeMap::new(),
            ranks: BTreeMap::new(),
            peer_count: 0,
            next_seq: 0,
            sample: SampleCache::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &PeerStoreConfig {
        &self.config
    }

    /// Number of info-hashes stored.
    pub fn len(&self) -> usize {
        self.swarms.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.swarms.is_empty()
    }

    /// Number of peers stored, all info-hashes and families together.
    pub fn peer_count(&self) -> usize {
        self.peer_count
    }

    /// Whether some peer is stored for `info_hash`.
    pub fn contains(&self, info_hash: &InfoHash) -> bool {
        self.index.contains_key(info_hash)
    }

    /// Number of peers stored for `info_hash` in `family`.
    pub fn peers_for(&self, info_hash: &InfoHash, family: AddressFamily) -> usize {
        self.swarm(info_hash).map_or(0, |s| s.list(family).len())
    }

    fn swarm(&self, info_hash: &InfoHash) -> Option<&Swarm> {
        self.index.get(info_hash).and_then(|&i| self.swarms.get(i))
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Stores (or refreshes) peer `addr` for `info_hash` at time `now`; `seed` is BEP 33's
    /// `seed` flag. The caller has checked the token and resolved `implied_port`.
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: InfoHash,
        addr: SocketAddr,
        seed: bool,
    ) -> Result<AnnounceOutcome, AnnounceRejected> {
        let cfg = self.config;
        if cfg.max_info_hashes == 0 || cfg.max_peers_per_info_hash == 0 || cfg.max_peers == 0 {
            return Err(AnnounceRejected::Disabled);
        }
        if addr.port() == 0 {
            return Err(AnnounceRejected::PortZero);
        }
        let ip = addr.ip().to_canonical();
        let unusable = match ip {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        };
        if unusable {
            return Err(AnnounceRejected::UnusableAddress);
        }
        let family = AddressFamily::of(ip);
        let port = addr.port();
        let seq = self.next_seq();

        // Known info-hash: refresh, or replace the oldest peer of a full list.
        if let Some(&i) = self.index.get(&info_hash) {
            let swarm = &mut self.swarms[i];
            let list = swarm.list_mut(family);
            let host = host_key(ip);
            let slot = match list.iter().position(|p| host_key(p.ip) == host) {
                Some(j) => Some((j, AnnounceOutcome::Refreshed)),
                None if list.len() >= cfg.max_peers_per_info_hash => list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, p)| (p.announced_at, p.seq))
                    .map(|(j, _)| (j, AnnounceOutcome::ReplacedOldest)),
                None => None,
            };
            if let Some((j, outcome)) = slot {
                let entry = &mut list[j];
                self.by_age.remove(&(entry.announced_at, entry.seq));
                if entry.ip != ip {
                    entry.ip = ip;
                    entry.bloom = bloom_indices(ip);
                }
                entry.port = port;
                entry.seed = seed;
                entry.announced_at = now;
                entry.seq = seq;
                self.by_age.insert((now, seq), (info_hash, ip));
                self.rerank(i, Some((now, seq)));
                return Ok(outcome);
            }
        }

        // A new peer: make room first.
        let mut outcome = AnnounceOutcome::Added;
        if !self.index.contains_key(&info_hash) && self.swarms.len() >= cfg.max_info_hashes {
            if let Some((_, victim)) = self.ranks.first_key_value() {
                let victim = *victim;
                if let Some(&v) = self.index.get(&victim) {
                    self.remove_swarm(v);
                    outcome = AnnounceOutcome::EvictedInfoHash(victim);
                }
            }
        }
        while self.peer_count >= cfg.max_peers {
            let Some((_, (victim_hash, victim_ip))) = self.by_age.pop_first() else {
                break;
            };
            self.remove_peer(&victim_hash, victim_ip);
            if outcome == AnnounceOutcome::Added {
                outcome = AnnounceOutcome::EvictedOldestPeer;
            }
        }

        let i = match self.index.get(&info_hash) {
            Some(&i) => i,
            None => {
                let rank = (0, now, seq);
                self.swarms.push(Swarm {
                    info_hash,
                    v4: Vec::new(),
                    v6: Vec::new(),
                    rank,
                });
                self.ranks.insert(rank, info_hash);
                self.index.insert(info_hash, self.swarms.len() - 1);
                self.swarms.len() - 1
            }
        };
        self.swarms[i].list_mut(family).push(PeerEntry {
            ip,
            port,
            seed,
            announced_at: now,
            seq,
            bloom: bloom_indices(ip),
        });
        self.by_age.insert((now, seq), (info_hash, ip));
        self.peer_count += 1;
        self.rerank(i, Some((now, seq)));
        Ok(outcome)
    }

    /// Recomputes swarm `i`'s eviction rank after its size changed or (with `announced`) it was
    /// announced to.
    fn rerank(&mut self, i: usize, announced: Option<(Instant, u64)>) {
        let swarm = &mut self.swarms[i];
        let (_, mut last, mut last_seq) = swarm.rank;
        if let Some((now, seq)) = announced {
            last = now;
            last_seq = seq;
        }
        let rank = (swarm.len(), last, last_seq);
        if rank != swarm.rank {
            self.ranks.remove(&swarm.rank);
            self.ranks.insert(rank, swarm.info_hash);
            swarm.rank = rank;
        }
    }

    /// Removes the peer with `ip` from `info_hash` (its `by_age` entry is the caller's business)
    /// and the swarm if it becomes empty.
    fn remove_peer(&mut self, info_hash: &InfoHash, ip: IpAddr) {
        let Some(&i) = self.index.get(info_hash) else {
            return;
        };
        let list = self.swarms[i].list_mut(AddressFamily::of(ip));
        let Some(j) = list.iter().position(|p| p.ip == ip) else {
            return;
        };
        list.swap_remove(j);
        self.peer_count -= 1;
        if self.swarms[i].len() == 0 {
            self.remove_swarm(i);
        } else {
            self.rerank(i, None);
        }
    }

    /// Removes swarm `i` and all its peers.
    fn remove_swarm(&mut self, i: usize) {
        let swarm = self.swarms.swap_remove(i);
        if let Some(moved) = self.swarms.get(i) {
            self.index.insert(moved.info_hash, i);
        }
        self.index.remove(&swarm.info_hash);
        self.ranks.remove(&swarm.rank);
        for p in swarm.v4.iter().chain(swarm.v6.iter()) {
            self.by_age.remove(&(p.announced_at, p.seq));
        }
        self.peer_count -= swarm.len();
    }

    /// When the next peer expires, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_age
            .keys()
            .next()
            .map(|(at, _)| *at + self.config.peer_ttl)
    }

    /// Removes every peer whose last announce is `peer_ttl` or more before `now`, and the
    /// info-hashes left without peers. Returns the number of peers removed.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some(entry) = self.by_age.first_entry() {
            if entry.key().0 + self.config.peer_ttl > now {
                break;
            }
            let (info_hash, ip) = entry.remove();
            self.remove_peer(&info_hash, ip);
            removed += 1;
        }
        removed
    }

    /// Up to `max` (and at most `max_values_per_reply`) peers of `family` for `info_hash`, drawn
    /// uniformly at random with `rng`, in random order. With `noseed`, seeds are left out.
    pub fn get_peers<R: Rng + ?Sized>(
        &self,
        info_hash: &InfoHash,
        family: AddressFamily,
        max: usize,
        noseed: bool,
        rng: &mut R,
    ) -> Vec<SocketAddr> {
        let Some(swarm) = self.swarm(info_hash) else {
            return Vec::new();
        };
        let list = swarm.list(family);
        let max = max.min(self.config.max_values_per_reply);
        let addr = |p: &PeerEntry| SocketAddr::new(p.ip, p.port);
        if noseed {
            let candidates: Vec<&PeerEntry> = list.iter().filter(|p| !p.seed).collect();
            let amount = max.min(candidates.len());
            index::sample(rng, candidates.len(), amount)
                .into_iter()
                .map(|j| addr(candidates[j]))
                .collect()
        } else {
            let amount = max.min(list.len());
            index::sample(rng, list.len(), amount)
                .into_iter()
                .map(|j| addr(&list[j]))
                .collect()
        }
    }

    /// BEP 33 scrape filters for `info_hash` over both families, or `None` when nothing is
    /// stored for it (BEP 33 adds `BFsd` and `BFpe` only when the node has entries).
    pub fn scrape(&self, info_hash: &InfoHash) -> Option<Scrape> {
        let swarm = self.swarm(info_hash)?;
        let mut scrape = Scrape {
            seeds: BloomFilter::new(),
            peers: BloomFilter::new(),
        };
        for p in swarm.v4.iter().chain(swarm.v6.iter()) {
            if p.seed {
                scrape.seeds.insert_indices(p.bloom);
            } else {
                scrape.peers.insert_indices(p.bloom);
            }
        }
        Some(scrape)
    }

    /// A BEP 51 sample at time `now`.
    ///
    /// The sample is drawn with `rng` (uniformly, up to `max_samples` info-hashes) and then kept
    /// for `sample_interval`: calls inside the interval return the same info-hashes (minus any
    /// that have left the store since), so asking again gains an indexer nothing. While the
    /// store holds no more than the sample size, or the sample is not yet full and the store has
    /// grown, a new sample is drawn on every call. `num` is always the current count and
    /// `interval` the whole seconds (rounded up) until the next refresh.
    pub fn sample<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) -> Sample {
        let max = self.config.max_samples;
        let interval = self.config.sample_interval;
        let stale = match self.sample.refreshed_at {
            None => true,
            Some(at) => {
                now.saturating_duration_since(at) >= interval
                    || (self.sample.hashes.len() < max
                        && self.sample.hashes.len() < self.swarms.len())
            }
        };
        if stale {
            let amount = max.min(self.swarms.len());
            self.sample.hashes = index::sample(rng, self.swarms.len(), amount)
                .into_iter()
                .map(|j| self.swarms[j].info_hash)
                .collect();
            self.sample.refreshed_at = Some(now);
        }
        let refreshed_at = self.sample.refreshed_at.unwrap_or(now);
        let remaining = (refreshed_at + interval).saturating_duration_since(now);
        let mut secs = remaining.as_secs();
        if remaining.subsec_nanos() > 0 {
            secs += 1;
        }
        let samples = self
            .sample
            .hashes
            .iter()
            .filter(|h| self.index.contains_key(h))
            .copied()
            .collect();
        Sample {
            samples,
            num: self.swarms.len(),
            interval: u32::try_from(secs)
                .unwrap_or(u32::MAX)
                .min(MAX_SAMPLE_INTERVAL_SECS),
        }
    }

    /// Every stored peer, oldest announce first (for snapshots and inspection).
    pub fn peers(&self) -> impl Iterator<Item = StoredPeer> + '_ {
        self.by_age.iter().filter_map(|(_, (info_hash, ip))| {
            let swarm = self.swarm(info_hash)?;
            let p = swarm
                .list(AddressFamily::of(*ip))
                .iter()
                .find(|p| p.ip == *ip)?;
            Some(StoredPeer {
                info_hash: *info_hash,
                addr: SocketAddr::new(p.ip, p.port),
                seed: p.seed,
                announced_at: p.announced_at,
            })
        })
    }

    /// An estimate of the heap memory the store uses, in bytes: entries times their sizes plus
    /// a rough allowance for map overhead. Not exact (allocator slack and vector growth are
    /// partly ignored), but proportional, for hardening decisions and statistics.
    pub fn approx_memory_bytes(&self) -> usize {
        // A BTreeMap costs roughly 1.5 times its keys and values (half-full nodes, pointers).
        let btree = |entry: usize, len: usize| len.saturating_mul(entry).saturating_mul(3) / 2;
        let peers = self.peer_count.saturating_mul(size_of::<PeerEntry>());
        let swarms = self.swarms.capacity().saturating_mul(size_of::<Swarm>());
        let index = self
            .index
            .capacity()
            .saturating_mul(size_of::<(InfoHash, usize)>() + 1);
        let by_age = btree(
            size_of::<(Instant, u64)>() + size_of::<(InfoHash, IpAddr)>(),
            self.by_age.len(),
        );
        let ranks = btree(
            size_of::<RankKey>() + size_of::<InfoHash>(),
            self.ranks.len(),
        );
        let sample = self
            .sample
            .hashes
            .capacity()
            .saturating_mul(size_of::<InfoHash>());
        peers
            .saturating_add(swarms)
            .saturating_add(index)
            .saturating_add(by_age)
            .saturating_add(ranks)
            .saturating_add(sample)
    }

    /// Checks the internal cross-references (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.index.len(), self.swarms.len());
        assert_eq!(self.ranks.len(), self.swarms.len());
        assert_eq!(self.by_age.len(), self.peer_count);
        let mut total = 0;
        for (i, s) in self.swarms.iter().enumerate() {
            assert_eq!(self.index.get(&s.info_hash), Some(&i));
            assert!(s.len() > 0, "empty swarm kept");
            assert_eq!(s.rank.0, s.len());
            assert_eq!(self.ranks.get(&s.rank), Some(&s.info_hash));
            assert!(s.v4.len() <= self.config.max_peers_per_info_hash);
            assert!(s.v6.len() <= self.config.max_peers_per_info_hash);
            for (family, list) in [(AddressFamily::V4, &s.v4), (AddressFamily::V6, &s.v6)] {
                for p in list {
                    assert_eq!(AddressFamily::of(p.ip), family);
                    assert_eq!(
                        self.by_age.get(&(p.announced_at, p.seq)),
                        Some(&(s.info_hash, p.ip))
                    );
                    let host = host_key(p.ip);
                    assert_eq!(list.iter().filter(|q| host_key(q.ip) == host).count(), 1);
                }
            }
            total += s.len();
        }
        assert_eq!(total, self.peer_count);
        assert!(self.swarms.len() <= self.config.max_info_hashes);
        assert!(self.peer_count <= self.config.max_peers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn hash(n: u8) -> InfoHash {
        InfoHash::from_bytes([n; 20])
    }

    fn v4(n: u32, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), port)
    }

    /// IPv6 peer `n`, on a /64 of its own.
    fn v6(n: u128, port: u16) -> SocketAddr {
        let base: u128 = 0x2001_0db8 << 96;
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(base + (n << 64) + 1)), port)
    }

    fn minutes(m: u64) -> Instant {
        Instant::from_secs(m * 60)
    }

    fn small(max_info_hashes: usize, per_hash: usize, max_peers: usize) -> PeerStore {
        PeerStore::new(PeerStoreConfig {
            max_info_hashes,
            max_peers_per_info_hash: per_hash,
            max_peers,
            ..PeerStoreConfig::default()
        })
    }

    fn all(store: &PeerStore, h: &InfoHash, family: AddressFamily) -> HashSet<SocketAddr> {
        let mut rng = SmallRng::seed_from_u64(0);
        store
            .get_peers(h, family, usize::MAX, false, &mut rng)
            .into_iter()
            .collect()
    }

    /// BEP 33's published test vector.
    const BEP33_VECTOR: &str = "\
        F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAE\
        FE5EEDB1FBFAFF67F6ABFF5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B\
        7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEEFE148246C2BC5DBFF7E7EFDCF24F\
        D8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7FD79B3\
        FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5\
        BFAF2E9EBFFFFEECD67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB57\
        62ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5ADFFADFEE1FB737FFFFBFD9F6AEFFEEE76B6\
        FD8F72EF";

    #[test]
    fn bloom_bep33_test_vector() {
        let mut filter = BloomFilter::new();
        for last in 0..=255u8 {
            filter.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)));
        }
        for n in 0..=0x3e7u16 {
            filter.insert(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)));
        }
        let expected = hex::decode(BEP33_VECTOR).unwrap();
        assert_eq!(filter.as_bytes().as_slice(), expected.as_slice());
        let estimate = filter.estimate_count();
        assert!((estimate - 1224.9308).abs() < 0.001, "{estimate}");
        // Round trip through the wire form.
        let parsed = BloomFilter::from_slice(&expected).unwrap();
        assert_eq!(parsed, filter);
        assert_eq!(BloomFilter::from_bytes(filter.as_bytes()), filter);
        assert_eq!(BloomFilter::from_slice(&expected[..255]), None);
    }

    #[test]
    fn bloom_basics_union_and_edges() {
        let mut a = BloomFilter::new();
        assert!(a.is_empty());
        assert!((a.estimate_count() - 0.5).abs() < 1e-9);
        let x: IpAddr = "192.168.1.1".parse().unwrap();
        let y: IpAddr = "2001:db8::42".parse().unwrap();
        a.insert(x);
        assert!(a.contains(x));
        assert!(a.contains("::ffff:192.168.1.1".parse().unwrap()));
        let mut b = BloomFilter::new();
        b.insert(y);
        a.union(&b);
        assert!(a.contains(x) && a.contains(y));
        assert!((a.estimate_count() - 2.0).abs() < 0.1);
        let full = BloomFilter::from_bytes(&[0xff; BLOOM_BYTES]);
        let saturated = full.estimate_count();
        assert!(saturated.is_finite() && saturated > 7_000.0, "{saturated}");
    }

    #[test]
    fn peers_expire_after_thirty_minutes_unless_reannounced() {
        let mut store = PeerStore::default();
        let h = hash(1);
        store.announce(minutes(0), h, v4(1, 6881), false).unwrap();
        store.announce(minutes(10), h, v4(2, 6881), false).unwrap();
        assert_eq!(store.next_expiry(), Some(minutes(30)));
        assert_eq!(store.expire(minutes(29)), 0);
        assert_eq!(store.peers_for(&h, AddressFamily::V4), 2);
        // Peer 2 re-announces at 25 min: refreshed, with a new port.
        assert_eq!(
            store.announce(minutes(25), h, v4(2, 7000), false),
            Ok(AnnounceOutcome::Refreshed)
        );
        assert_eq!(store.expire(minutes(30)), 1);
        assert_eq!(
            all(&store, &h, AddressFamily::V4),
            HashSet::from([v4(2, 7000)])
        );
        assert_eq!(store.next_expiry(), Some(minutes(55)));
        assert_eq!(store.expire(minutes(54)), 0);
        assert_eq!(store.expire(minutes(55)), 1);
        assert!(store.is_empty() && !store.contains(&h));
        assert_eq!(store.peer_count(), 0);
        assert_eq!(store.next_expiry(), None);
        store.check_invariants();
    }

    #[test]
    fn unique_by_ip_and_mapped_addresses_are_ipv4() {
        let mut store = PeerStore::default();
        let h = hash(2);
        store.announce(minutes(0), h, v4(1, 1000), false).unwrap();
        let mapped: SocketAddr = format!("[::ffff:{}]:2000", v4(1, 0).ip()).parse().unwrap();
        assert_eq!(
            store.announce(minutes(1), h, mapped, true),
            Ok(AnnounceOutcome::Refreshed)
        );
        assert_eq!(store.peer_count(), 1);
        let got = store.peers().next().unwrap();
        assert_eq!(got.addr, v4(1, 2000));
        assert!(got.seed);
        assert_eq!(got.announced_at, minutes(1));
        store.check_invariants();
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        let mut store = PeerStore::default();
        let h = hash(3);
        let at = |text: &str| SocketAddr::new(text.parse().unwrap(), 3000);
        store
            .announce(minutes(0), h, at("2a00:1:2:3::1"), false)
            .unwrap();
        // Another address of the same /64 is the same host: it refreshes the entry.
        assert_eq!(
            store.announce(minutes(1), h, at("2a00:1:2:3::ffff"), true),
            Ok(AnnounceOutcome::Refreshed)
        );
        assert_eq!(store.peer_count(), 1);
        assert_eq!(store.peers().next().unwrap().addr, at("2a00:1:2:3::ffff"));
        // The next /64 is another host.
        assert_eq!(
            store.announce(minutes(1), h, at("2a00:1:2:4::1"), false),
            Ok(AnnounceOutcome::Added)
        );
        assert_eq!(store.peer_count(), 2);
        store.check_invariants();
    }

    #[test]
    fn families_are_kept_apart() {
        let mut store = PeerStore::default();
        let h = hash(3);
        for n in 0..5 {
            store.announce(minutes(0), h, v4(n, 1), false).unwrap();
            store
                .announce(minutes(0), h, v6(n.into(), 1), false)
                .unwrap();
        }
        let four = all(&store, &h, AddressFamily::V4);
        let six = all(&store, &h, AddressFamily::V6);
        assert_eq!(four.len(), 5);
        assert_eq!(six.len(), 5);
        assert!(four.iter().all(|a| a.is_ipv4()));
        assert!(six.iter().all(|a| a.is_ipv6()));
        assert!(all(&store, &hash(99), AddressFamily::V4).is_empty());
    }

    #[test]
    fn get_peers_is_bounded_random_and_reproducible() {
        let mut store = PeerStore::default();
        let h = hash(4);
        for n in 0..200 {
            store.announce(minutes(0), h, v4(n, 1), false).unwrap();
        }
        let mut rng = SmallRng::seed_from_u64(11);
        let a = store.get_peers(&h, AddressFamily::V4, 1000, false, &mut rng);
        assert_eq!(a.len(), DEFAULT_MAX_VALUES);
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), a.len());
        let b = store.get_peers(&h, AddressFamily::V4, 10, false, &mut rng);
        assert_eq!(b.len(), 10);
        let mut again = SmallRng::seed_from_u64(11);
        assert_eq!(
            store.get_peers(&h, AddressFamily::V4, 1000, false, &mut again),
            a
        );
        assert!(
            store
                .get_peers(&h, AddressFamily::V4, 0, false, &mut rng)
                .is_empty()
        );
    }

    #[test]
    fn noseed_leaves_seeds_out() {
        let mut store = PeerStore::default();
        let h = hash(5);
        for n in 0..10 {
            store.announce(minutes(0), h, v4(n, 1), n % 2 == 0).unwrap();
        }
        let mut rng = SmallRng::seed_from_u64(1);
        let got = store.get_peers(&h, AddressFamily::V4, 50, true, &mut rng);
        assert_eq!(got.len(), 5);
        let seeds: HashSet<SocketAddr> = (0..10).step_by(2).map(|n| v4(n, 1)).collect();
        assert!(got.iter().all(|a| !seeds.contains(a)));
        assert_eq!(
            store
                .get_peers(&h, AddressFamily::V4, 50, false, &mut rng)
                .len(),
            10
        );
        // A seed that re-announces as a leecher is a leecher.
        store.announce(minutes(1), h, v4(0, 1), false).unwrap();
        assert_eq!(
            store
                .get_peers(&h, AddressFamily::V4, 50, true, &mut rng)
                .len(),
            6
        );
    }

    #[test]
    fn scrape_filters_split_seeds_and_peers() {
        let mut store = PeerStore::default();
        let h = hash(6);
        assert_eq!(store.scrape(&h), None);
        let mut seeds = BloomFilter::new();
        let mut peers = BloomFilter::new();
        for n in 0..40u32 {
            let addr = if n % 3 == 0 {
                v6(n.into(), 1)
            } else {
                v4(n, 1)
            };
            let seed = n % 4 == 0;
            store.announce(minutes(0), h, addr, seed).unwrap();
            if seed {
                seeds.insert(addr.ip());
            } else {
                peers.insert(addr.ip());
            }
        }
        let scrape = store.scrape(&h).unwrap();
        assert_eq!(scrape.seeds, seeds);
        assert_eq!(scrape.peers, peers);
        assert!((scrape.seeds.estimate_count() - 10.0).abs() < 2.0);
        assert!((scrape.peers.estimate_count() - 30.0).abs() < 3.0);
    }

    #[test]
    fn full_list_replaces_its_oldest_peer() {
        let mut store = small(10, 3, 100);
        let h = hash(7);
        store.announce(minutes(2), h, v4(1, 1), false).unwrap();
        store.announce(minutes(1), h, v4(2, 1), false).unwrap(); // oldest
        store.announce(minutes(3), h, v4(3, 1), false).unwrap();
        store.announce(minutes(3), h, v6(1, 1), false).unwrap(); // other family: room
        assert_eq!(
            store.announce(minutes(4), h, v4(4, 1), false),
            Ok(AnnounceOutcome::ReplacedOldest)
        );
        assert_eq!(
            all(&store, &h, AddressFamily::V4),
            HashSet::from([v4(1, 1), v4(3, 1), v4(4, 1)])
        );
        assert_eq!(store.peers_for(&h, AddressFamily::V6), 1);
        // Refreshing a member of a full list replaces nobody.
        assert_eq!(
            store.announce(minutes(5), h, v4(1, 1), false),
            Ok(AnnounceOutcome::Refreshed)
        );
        assert_eq!(store.peers_for(&h, AddressFamily::V4), 3);
        store.check_invariants();
        // The replaced peer's expiry went with it.
        assert_eq!(store.next_expiry(), Some(minutes(33)));
    }

    #[test]
    fn full_store_evicts_the_info_hash_with_fewest_peers() {
        let mut store = small(3, 10, 100);
        // hash 1: 3 peers; hash 2: 1 peer at 2 min; hash 3: 1 peer at 1 min.
        for n in 0..3 {
            store
                .announce(minutes(0), hash(1), v4(n, 1), false)
                .unwrap();
        }
        store
            .announce(minutes(2), hash(2), v4(10, 1), false)
            .unwrap();
        store
            .announce(minutes(1), hash(3), v4(11, 1), false)
            .unwrap();
        // Ties on size go to the least recently announced: hash 3.
        assert_eq!(
            store.announce(minutes(4), hash(4), v4(12, 1), false),
            Ok(AnnounceOutcome::EvictedInfoHash(hash(3)))
        );
        assert!(!store.contains(&hash(3)));
        // Re-announcing makes hash 2 the most recent one-peer swarm: hash 4 goes next.
        store
            .announce(minutes(5), hash(2), v4(10, 1), false)
            .unwrap();
        assert_eq!(
            store.announce(minutes(6), hash(5), v4(13, 1), false),
            Ok(AnnounceOutcome::EvictedInfoHash(hash(4)))
        );
        // The big swarm, though oldest, survives.
        assert!(store.contains(&hash(1)));
        assert_eq!(store.len(), 3);
        assert_eq!(store.peer_count(), 5);
        store.check_invariants();
    }

    #[test]
    fn total_peer_cap_evicts_the_globally_oldest_peer() {
        let mut store = small(10, 10, 4);
        store
            .announce(minutes(1), hash(1), v4(1, 1), false)
            .unwrap();
        store
            .announce(minutes(0), hash(2), v4(2, 1), false)
            .unwrap(); // oldest
        store
            .announce(minutes(2), hash(1), v4(3, 1), false)
            .unwrap();
        store
            .announce(minutes(3), hash(1), v6(4, 1), false)
            .unwrap();
        assert_eq!(
            store.announce(minutes(4), hash(3), v4(5, 1), false),
            Ok(AnnounceOutcome::EvictedOldestPeer)
        );
        assert!(!store.contains(&hash(2)), "its only peer was the oldest");
        assert_eq!(store.peer_count(), 4);
        assert_eq!(
            store.announce(minutes(5), hash(1), v4(6, 1), false),
            Ok(AnnounceOutcome::EvictedOldestPeer)
        );
        assert_eq!(
            all(&store, &hash(1), AddressFamily::V4),
            HashSet::from([v4(3, 1), v4(6, 1)])
        );
        store.check_invariants();
    }

    #[test]
    fn rejects_unusable_announces() {
        let mut store = PeerStore::default();
        let h = hash(8);
        assert_eq!(
            store.announce(minutes(0), h, v4(1, 0), false),
            Err(AnnounceRejected::PortZero)
        );
        for bad in [
            "0.0.0.0:1",
            "224.0.0.1:1",
            "255.255.255.255:1",
            "[::]:1",
            "[ff02::1]:1",
        ] {
            assert_eq!(
                store.announce(minutes(0), h, bad.parse().unwrap(), false),
                Err(AnnounceRejected::UnusableAddress),
                "{bad}"
            );
        }
        let mut off = small(0, 10, 10);
        assert_eq!(
            off.announce(minutes(0), h, v4(1, 1), false),
            Err(AnnounceRejected::Disabled)
        );
        assert!(store.is_empty());
    }

    #[test]
    fn samples_are_stable_within_the_interval_and_refreshed_after() {
        let mut store = PeerStore::default();
        let mut rng = SmallRng::seed_from_u64(3);
        let empty = store.sample(minutes(0), &mut rng);
        assert!(empty.samples.is_empty());
        assert_eq!(empty.num, 0);
        // A small store is returned whole, and the sample follows it as it grows.
        for n in 0..5u8 {
            store
                .announce(minutes(0), hash(n), v4(n.into(), 1), false)
                .unwrap();
        }
        let s = store.sample(minutes(0), &mut rng);
        assert_eq!(s.samples.len(), 5);
        assert_eq!(s.num, 5);
        for n in 5..100u8 {
            store
                .announce(minutes(0), hash(n), v4(n.into(), 1), false)
                .unwrap();
        }
        let first = store.sample(Instant::from_secs(10), &mut rng);
        assert_eq!(first.samples.len(), DEFAULT_MAX_SAMPLES);
        assert_eq!(first.num, 100);
        assert_eq!(first.interval, 300);
        let unique: HashSet<_> = first.samples.iter().collect();
        assert_eq!(unique.len(), DEFAULT_MAX_SAMPLES);
        // Inside the interval: the same sample, and the remaining time counts down.
        let again = store.sample(Instant::from_secs(200), &mut rng);
        assert_eq!(again.samples, first.samples);
        assert_eq!(again.interval, 110);
        let again = store.sample(Instant::from_micros(309_500_000), &mut rng);
        assert_eq!(again.samples, first.samples);
        assert_eq!(again.interval, 1);
        // After it: a new draw.
        let next = store.sample(Instant::from_secs(310), &mut rng);
        assert_ne!(next.samples, first.samples);
        assert_eq!(next.samples.len(), DEFAULT_MAX_SAMPLES);
        assert_eq!(next.interval, 300);
    }

    #[test]
    fn samples_drop_info_hashes_that_left() {
        let mut store = PeerStore::default();
        let mut rng = SmallRng::seed_from_u64(4);
        for n in 0..50u8 {
            let at = if n < 25 { minutes(0) } else { minutes(10) };
            store.announce(at, hash(n), v4(n.into(), 1), false).unwrap();
        }
        let first = store.sample(minutes(10), &mut rng);
        store.expire(minutes(30));
        let after = store.sample(minutes(10) + Duration::from_secs(299), &mut rng);
        assert_eq!(after.num, 25);
        assert!(after.samples.iter().all(|h| store.contains(h)));
        let kept: Vec<InfoHash> = first
            .samples
            .iter()
            .filter(|h| store.contains(h))
            .copied()
            .collect();
        assert_eq!(after.samples, kept);
    }

    #[test]
    fn random_operations_keep_the_store_consistent_and_bounded() {
        let mut rng = SmallRng::seed_from_u64(99);
        let mut store = PeerStore::new(PeerStoreConfig {
            max_info_hashes: 7,
            max_peers_per_info_hash: 4,
            max_peers: 20,
            peer_ttl: Duration::from_secs(100),
            ..PeerStoreConfig::default()
        });
        let mut now = Instant::ZERO;
        for step in 0..5_000u32 {
            now += Duration::from_secs(rng.random_range(0..5));
            let h = hash(rng.random_range(0..12));
            let n: u32 = rng.random_range(0..10);
            let addr = if rng.random_bool(0.5) {
                v4(n, rng.random_range(1..4))
            } else {
                v6(n.into(), rng.random_range(1..4))
            };
            store.announce(now, h, addr, rng.random_bool(0.3)).unwrap();
            if step % 7 == 0 {
                store.expire(now);
            }
            if step % 97 == 0 {
                store.check_invariants();
                let _ = store.sample(now, &mut rng);
            }
        }
        store.check_invariants();
        assert!(store.approx_memory_bytes() > 0);
        assert_eq!(store.peers().count(), store.peer_count());
    }
}
