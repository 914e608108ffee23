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

mod bloom;

use bloom::bloom_indices;
pub use bloom::{BLOOM_BYTES, BloomFilter, Scrape};

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
        if !self.index.contains_key(&info_hash)
            && self.swarms.len() >= cfg.max_info_hashes
            && let Some((_, victim)) = self.ranks.first_key_value()
        {
            let victim = *victim;
            if let Some(&v) = self.index.get(&victim) {
                self.remove_swarm(v);
                outcome = AnnounceOutcome::EvictedInfoHash(victim);
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
    /// uniformly at random with `rng` (see [`PeerStore::get_peers_into`]). With `noseed`, seeds
    /// are left out.
    pub fn get_peers<R: Rng + ?Sized>(
        &self,
        info_hash: &InfoHash,
        family: AddressFamily,
        max: usize,
        noseed: bool,
        rng: &mut R,
    ) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        self.get_peers_into(info_hash, family, max, noseed, rng, &mut out);
        out
    }

    /// [`PeerStore::get_peers`] into `out` (cleared first), so that a caller keeping `out`
    /// between answers allocates nothing.
    ///
    /// When every candidate fits, all of them are returned in stored order, and `rng` is not
    /// used: the set is then the whole list, and the order within a reply carries nothing a
    /// client relies on (a caller that must drop some values afterwards draws which ones at
    /// random, as the node's reply trimming does, so that an early announcer gains no place).
    /// Otherwise a partial Fisher-Yates shuffle draws a uniformly random subset of `max`, in
    /// random order.
    pub fn get_peers_into<R: Rng + ?Sized>(
        &self,
        info_hash: &InfoHash,
        family: AddressFamily,
        max: usize,
        noseed: bool,
        rng: &mut R,
        out: &mut Vec<SocketAddr>,
    ) {
        out.clear();
        let Some(swarm) = self.swarm(info_hash) else {
            return;
        };
        let max = max.min(self.config.max_values_per_reply);
        if max == 0 {
            return;
        }
        let list = swarm.list(family);
        let addr = |p: &PeerEntry| SocketAddr::new(p.ip, p.port);
        if noseed {
            out.extend(list.iter().filter(|p| !p.seed).map(addr));
        } else {
            // An exact length: reserved once, copied without per-item checks.
            out.extend(list.iter().map(addr));
        }
        let n = out.len();
        if n <= max {
            return;
        }
        for i in 0..max {
            let j = rng.random_range(i..n);
            out.swap(i, j);
        }
        out.truncate(max);
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
mod tests;
