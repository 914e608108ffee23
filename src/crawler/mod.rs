//! The crawl planner: a sans-IO core that enumerates DHT nodes and their BEP 51 info-hashes.
//!
//! A [`Crawler`] is driven like [`crate::node::Node`]: the caller feeds it datagrams
//! ([`Crawler::handle_datagram`]) and timer expiries ([`Crawler::handle_timeout`]) with the
//! current [`Instant`], and drains the datagrams it wants sent ([`Crawler::poll_transmit`]),
//! its next deadline ([`Crawler::poll_timeout`]) and what it found ([`Crawler::poll_record`]).
//! Randomness comes from a generator seeded by the caller, so it runs unchanged in the
//! simulator ([`crate::sim`]) and on a real socket ([`Crawl`], behind `btdht crawl`).
//!
//! It talks KRPC directly rather than through [`crate::node::Node`] lookups: a crawler wants
//! breadth (every node once), not convergence on one target. The plan:
//!
//! - **Visit every node once.** Each newly learned address gets one `sample_infohashes`
//!   (BEP 51): the reply carries both the node's info-hash sample and 8 `nodes` close to the
//!   target. Three targets in four are *neighbour targets* (the node's own id with its low 64
//!   bits randomised), which return the node's closest neighbours: every node is in the tables
//!   of its own neighbours, so this closure reaches nodes that random targets rarely hit. The
//!   rest are random targets, for breadth early on.
//! - **Fallback.** A node that answers with an error (e.g. 204, no BEP 51) or not at all gets
//!   one `find_node`; a node that answered only that retry after a timeout gets one more
//!   `sample_infohashes`. Nothing else is retried, so queries per node found stay near 1.
//! - **BEP 51 intervals.** When a node's `num` exceeds the samples it returned, it is asked
//!   again no sooner than its `interval` (at most `max_resamples` times); no node is ever asked
//!   twice inside its interval. Every interval is reported ([`Record::Interval`]); a crawl
//!   given the deadlines of an earlier one ([`Crawler::defer_samples`], from the crawl
//!   database) visits those nodes with `find_node` and samples them only at their time.
//! - **Peers.** With `get_peers`, each new info-hash gets one `get_peers` to the node that
//!   sampled it (it stores the info-hash), and the peers in `values` are reported; the
//!   [`Torrents`] queue fetches their metadata from them.
//! - **Sweeps.** When nothing is left to visit, `find_node` with random targets go to random
//!   known nodes (a reservoir sample), to reach nodes that the visits' replies did not name
//!   and nodes that joined later. They start at `sweep_rate` per second; every 4 sweeps in a
//!   row that bring no new address double the interval (up to 30 s), and a new address
//!   resets it. The crawl counts as idle ([`Crawler::is_idle`]) after `idle_sweeps` dry sweeps
//!   in a row, or, when no node ever answered (nothing to sweep), once the bootstrap queries
//!   and their retries have all failed.
//! - **Shards.** With [`CrawlConfig::shard`] (`I/N`), every target lies in one Nth of the id
//!   space and only its info-hashes are recorded ([`shard`]), so N crawlers split the DHT.
//! - **IPv4 and IPv6.** With both families ([`CrawlConfig::ipv4`], [`CrawlConfig::ipv6`]),
//!   queries ask `want n4 n6` and the IPv6 nodes of `nodes6` are visited like the others.
//! - **Politeness.** A global token bucket (`rate` queries per second) and one per destination
//!   IP (`per_ip_rate`, default 4/s with bursts of 4, so at most 44 in any 10 s, under
//!   libtorrent's stock ban threshold of 50). Queries over a per-IP bucket wait, they are not
//!   dropped. Queries carry BEP 43 `ro = 1`, so the crawler stays out of routing tables.
//!
//! Memory is bounded: the queues have caps (overflows are counted), "seen" sets are
//! [`Dedup`]s (exact while small, then a Bloom filter of fixed size), transactions at most
//! `max_in_flight`. Hostile replies are matched on transaction id *and* source address, and only
//! the first 32 nodes and 4,096 samples of one reply are read; undecodable datagrams are counted.

mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod dedup;
pub mod driver;
#[cfg(feature = "postgres")]
pub mod pg;
mod plan;
mod record;
mod replies;
pub mod shard;
pub mod torrents;
mod work;

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub use config::CrawlConfig;
pub use dedup::{Dedup, DedupConfig, Fingerprinter};
pub use driver::{Crawl, CrawlEnd, CrawlOptions, CrawlSink};
pub use record::{CrawlStats, Record, version_string};
pub use shard::{Shard, ShardError};
pub use torrents::{Torrent, TorrentStats, Torrents};
use work::{Delayed, Pending, Work};

use crate::address_policy;
use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::krpc::{self, Body, BodyRef, Outgoing, Query, QueryKind, Response, Want};
use crate::node::ratelimit::{Bucket, RateLimit, RateLimiter};
use crate::time::Instant;
use crate::transaction::{TransactionConfig, TransactionMap};
use crate::transmit::{Transmit, TransmitQueue};

/// Nodes read from one reply at most.
const MAX_NODES_PER_REPLY: usize = 32;
/// Samples read from one reply at most.
const MAX_SAMPLES_PER_REPLY: usize = 4_096;
/// Work items tried in one pump at most (the rest continue at the next call).
const MAX_PUMP: usize = 16_384;
/// Known nodes kept for idle sweeps (a uniform reservoir sample).
const RESERVOIR: usize = 4_096;
/// The longest BEP 51 interval honoured (6 hours, libtorrent's refresh period).
const MAX_INTERVAL_SECS: i64 = 21_600;
/// Peer addresses kept in one [`Record::Peers`] (the count covers them all).
pub const MAX_PEERS_PER_RECORD: usize = 32;

/// The sans-IO crawl planner (see the module docs).
pub struct Crawler {
    config: CrawlConfig,
    rng: SmallRng,
    ids: Vec<NodeId>,
    fingerprints: Fingerprinter,
    /// Addresses ever queued for a visit.
    queued: Dedup,
    /// (id, address) pairs ever reported.
    nodes_seen: Dedup,
    /// Info-hashes ever reported.
    hashes_seen: Dedup,
    /// Retries and fallbacks: served first.
    retries: VecDeque<Work>,
    get_peers: VecDeque<Work>,
    frontier: VecDeque<Work>,
    /// Re-samples and per-IP-delayed queries, by due time.
    delayed: BinaryHeap<Delayed>,
    delayed_seq: u64,
    /// Queries awaiting their answer.
    in_flight: TransactionMap<Pending>,
    /// Draws the transaction ids.
    tid_rng: SmallRng,
    per_ip: Option<RateLimiter>,
    /// The global politeness limit and its bucket.
    global_limit: RateLimit,
    global: Bucket,
    next_sweep: Instant,
    /// Sweeps in a row that brought no new address.
    dry_sweeps: u32,
    reservoir: Vec<SocketAddr>,
    reservoir_seen: u64,
    records: VecDeque<Record>,
    outbox: TransmitQueue,
    stats: CrawlStats,
    now: Instant,
    /// Set when a pump stopped at its iteration cap: call again at once.
    more: bool,
    /// Addresses not to be sampled before a time (BEP 51 intervals of an earlier crawl).
    deferred: HashMap<SocketAddr, Instant>,
}

impl Crawler {
    /// A crawler with its randomness seeded by `seed`, started at `now`.
    pub fn new(config: CrawlConfig, seed: u64, now: Instant) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let ids = (0..config.ids.max(1))
            .map(|_| NodeId::random(&mut rng))
            .collect();
        let fingerprints = Fingerprinter::new((rng.random(), rng.random()));
        let per_ip = (config.per_ip_rate > 0).then(|| {
            let limit = RateLimit {
                rate: config.per_ip_rate,
                burst: config.per_ip_rate,
            };
            RateLimiter::new(Some(limit), None, 65_536, now)
        });
        let global_limit = RateLimit {
            rate: config.rate.max(1),
            burst: (config.rate / 20).max(1),
        };
        Crawler {
            queued: Dedup::new(config.dedup),
            nodes_seen: Dedup::new(config.dedup),
            hashes_seen: Dedup::new(config.dedup),
            retries: VecDeque::new(),
            get_peers: VecDeque::new(),
            frontier: VecDeque::new(),
            delayed: BinaryHeap::new(),
            delayed_seq: 0,
            in_flight: TransactionMap::with_config(TransactionConfig {
                capacity: config.max_in_flight.max(1),
                ..TransactionConfig::default()
            }),
            tid_rng: {
                let high: u32 = rng.random();
                let low: u32 = rng.random();
                SmallRng::seed_from_u64(u64::from(high) << 32 | u64::from(low))
            },
            per_ip,
            global_limit,
            global: Bucket::full(global_limit, now),
            next_sweep: now,
            dry_sweeps: 0,
            reservoir: Vec::new(),
            reservoir_seen: 0,
            records: VecDeque::new(),
            outbox: TransmitQueue::default(),
            stats: CrawlStats::default(),
            now,
            more: false,
            deferred: HashMap::new(),
            rng,
            ids,
            fingerprints,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CrawlConfig {
        &self.config
    }

    /// The crawler's ids.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The counters.
    pub fn stats(&self) -> &CrawlStats {
        &self.stats
    }

    /// Queries awaiting an answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Addresses waiting for their first visit.
    pub fn frontier_len(&self) -> usize {
        self.frontier.len()
    }

    /// The estimated false-positive rates of the "seen" sets (addresses queued, nodes
    /// reported, info-hashes reported); 0 while they are exact.
    pub fn dedup_false_positive_rates(&self) -> [f64; 3] {
        [
            self.queued.false_positive_rate(),
            self.nodes_seen.false_positive_rate(),
            self.hashes_seen.false_positive_rate(),
        ]
    }

    /// Whether every known address was visited, nothing is in flight or waiting (scheduled
    /// re-samples aside), and the last `idle_sweeps` sweeps found nothing new. A crawler that
    /// no node ever answered has nothing to sweep: it is idle once its queries to the
    /// bootstrap nodes (and their retries) have failed or timed out, or at once if every
    /// bootstrap node was filtered.
    pub fn is_idle(&self) -> bool {
        (self.config.sweep_rate == 0
            || self.reservoir.is_empty()
            || self.dry_sweeps >= self.config.idle_sweeps)
            && self.in_flight.is_empty()
            && self.frontier.is_empty()
            && self.retries.is_empty()
            && self.get_peers.is_empty()
            && !self
                .delayed
                .iter()
                .any(|d| !matches!(d.work, Work::Resample { .. }))
    }

    /// BEP 51 deadlines from an earlier crawl (its [`Record::Interval`]s): the address is not
    /// sampled before its time. Its visit is a `find_node` and its sample waits for the time.
    /// At most `max_delayed` are kept; more are counted in `queue_overflows`.
    pub fn defer_samples(&mut self, deadlines: &[(SocketAddr, Instant)]) {
        for (addr, at) in deadlines {
            if self.deferred.len() >= self.config.max_delayed && !self.deferred.contains_key(addr) {
                self.stats.queue_overflows += 1;
                continue;
            }
            self.deferred.insert(*addr, *at);
        }
    }

    /// Adds addresses to start from (bootstrap nodes, routers); each gets a visit.
    pub fn add_bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) {
        self.now = now;
        for addr in addrs {
            self.queue_visit(*addr, None);
        }
        self.pump(now);
    }

    // --- outputs ---------------------------------------------------------------------------

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// The next thing found.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// When [`Crawler::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.more {
            return Some(self.now);
        }
        let mut next: Option<Instant> = self.in_flight.next_deadline();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(d) = self.delayed.peek() {
            consider(d.at);
        }
        let ready = !self.retries.is_empty()
            || !self.get_peers.is_empty()
            || !self.frontier.is_empty()
            || (self.config.sweep_rate > 0 && !self.reservoir.is_empty());
        if ready && self.in_flight.len() < self.config.max_in_flight {
            let mut at = self.global.next_token_at(self.global_limit);
            if self.retries.is_empty() && self.get_peers.is_empty() && self.frontier.is_empty() {
                at = at.max(self.next_sweep);
            }
            consider(at);
        }
        next
    }

    pub(super) fn record(&mut self, record: Record) {
        if self.records.len() >= self.config.max_records {
            self.stats.records_dropped += 1;
            return;
        }
        self.records.push_back(record);
    }
}

impl std::fmt::Debug for Crawler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crawler").finish_non_exhaustive()
    }
}

impl crate::Endpoint for Crawler {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Crawler::handle_datagram(self, now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Crawler::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Crawler::poll_transmit(self)
    }

    fn recycle(&mut self, bytes: Vec<u8>) {
        self.outbox.recycle(bytes);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Crawler::poll_timeout(self)
    }
}

#[cfg(test)]
mod tests;
