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
//!   twice inside its interval.
//! - **Peers.** With `get_peers`, each new info-hash gets one `get_peers` to the node that
//!   sampled it (it stores the info-hash), and the peers in `values` are reported; the
//!   [`Torrents`] queue fetches their metadata from them.
//! - **Sweeps.** When nothing is left to visit, `find_node` with random targets go to random
//!   known nodes (a reservoir sample), to reach nodes that the visits' replies did not name
//!   and nodes that joined later. They start at `sweep_rate` per second; every 4 sweeps in a
//!   row that bring no new address double the interval (up to 30 s), and a new address
//!   resets it. The crawl counts as idle ([`Crawler::is_idle`]) after `idle_sweeps` dry sweeps
//!   in a row.
//! - **Politeness.** A global token bucket (`rate` queries per second) and one per destination
//!   IP (`per_ip_rate`, default 4/s with bursts of 4, so at most 44 in any 10 s, under
//!   libtorrent's stock ban threshold of 50). Queries over a per-IP bucket wait, they are not
//!   dropped. Queries carry BEP 43 `ro = 1`, so the crawler stays out of routing tables.
//!
//! Memory is bounded: the queues have caps (overflows are counted), "seen" sets are
//! [`Dedup`]s (exact while small, then a Bloom filter of fixed size), transactions at most
//! `max_in_flight`. Hostile replies are matched on transaction id *and* source address, and only
//! the first 32 nodes and 4,096 samples of one reply are read; undecodable datagrams are counted.

#[cfg(feature = "db")]
pub mod db;
pub mod dedup;
pub mod driver;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod torrents;

use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub use dedup::{Dedup, DedupConfig, Fingerprinter};
pub use driver::{Crawl, CrawlEnd, CrawlOptions, CrawlSink};
pub use torrents::{Torrent, TorrentStats, Torrents};

use crate::address_policy;
use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::krpc::{self, Body, Message, Query, QueryKind, Response, Want};
use crate::node::ratelimit::{Bucket, RateLimit, RateLimiter};
use crate::time::Instant;
use crate::transaction::{TransactionConfig, TransactionMap};
use crate::transmit::Transmit;

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

/// The crawler's configuration. [`Default`] gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct CrawlConfig {
    /// Crawler ids the queries rotate through. Default 4.
    pub ids: usize,
    /// Global limit on queries sent per second. Default 500: a 5,000-node swarm is visited in
    /// about 11 s, and on the public DHT it is a modest 50 kB/s.
    pub rate: u32,
    /// Queries per second to one destination IP (bursts of the same size). Default 4 (at most
    /// 44 in 10 s: libtorrent bans an IP after 50). 0 disables the limit.
    pub per_ip_rate: u32,
    /// How long a query may go unanswered. Default 2 s.
    pub query_timeout: Duration,
    /// Queries awaiting an answer at once. Default 2,048.
    pub max_in_flight: usize,
    /// Ask nodes for BEP 51 samples (else only `find_node`). Default true.
    pub sample_infohashes: bool,
    /// Count the peers of each new info-hash with one `get_peers`. Default false.
    pub get_peers: bool,
    /// Talk to private, loopback and reserved addresses. Default false.
    pub allow_private: bool,
    /// Of every 4 visits, how many use a neighbour target (the rest random). Default 3.
    pub neighbour_targets_in_4: u32,
    /// Addresses waiting for their first visit. Default 1,000,000.
    pub max_frontier: usize,
    /// Scheduled re-samples (BEP 51 intervals) and per-IP-delayed queries, each. Default
    /// 100,000.
    pub max_delayed: usize,
    /// Re-samples of one node at most. Default 8.
    pub max_resamples: u8,
    /// Shortest wait before a re-sample, whatever the node's `interval`. Default 10 s.
    pub min_interval: Duration,
    /// `find_node` sweeps per second once everything known is visited (slowed down while they
    /// find nothing, see the module docs). Default 20; 0 disables them.
    pub sweep_rate: u32,
    /// Sweeps in a row that find no new address before the crawl counts as idle. Default 16.
    pub idle_sweeps: u32,
    /// Records buffered between two drains; more are dropped and counted. Default 65,536.
    pub max_records: usize,
    /// The "seen" sets (nodes printed, addresses queued, info-hashes printed).
    pub dedup: DedupConfig,
    /// The `v` sent in every query. Default `BD` 0.1.
    pub version: Option<Vec<u8>>,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            ids: 4,
            rate: 500,
            per_ip_rate: 4,
            query_timeout: Duration::from_secs(2),
            max_in_flight: 2_048,
            sample_infohashes: true,
            get_peers: false,
            allow_private: false,
            neighbour_targets_in_4: 3,
            max_frontier: 1_000_000,
            max_delayed: 100_000,
            max_resamples: 8,
            min_interval: Duration::from_secs(10),
            sweep_rate: 20,
            idle_sweeps: 16,
            max_records: 65_536,
            dedup: DedupConfig::default(),
            version: Some(crate::node::config::CLIENT_VERSION.to_vec()),
        }
    }
}

impl CrawlConfig {
    /// Whether the crawler may talk to `addr`.
    pub fn accepts(&self, addr: &SocketAddr) -> bool {
        address_policy::accepts(addr, self.allow_private)
    }
}

/// Something the crawl found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A node answered for the first time.
    Node {
        /// Its id (from its reply).
        id: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// Its `v` (client version), if it sent one.
        version: Option<Vec<u8>>,
        /// Whether its first answer was a BEP 51 sample.
        bep51: bool,
        /// When it first answered.
        at: Instant,
    },
    /// A BEP 51 sample carried an info-hash for the first time.
    InfoHash {
        /// The info-hash.
        info_hash: InfoHash,
        /// The node whose sample carried it.
        from: SocketAddr,
        /// When.
        at: Instant,
    },
    /// The peers a node returned for a new info-hash (with [`CrawlConfig::get_peers`]).
    Peers {
        /// The info-hash.
        info_hash: InfoHash,
        /// The node asked.
        from: SocketAddr,
        /// Distinct peers in its `values`.
        peers: usize,
        /// The first [`MAX_PEERS_PER_RECORD`] of those peers.
        addrs: Vec<SocketAddr>,
        /// When.
        at: Instant,
    },
}

/// Renders a `v` (2 letters and 2 version bytes, usually) as text: printable ASCII letters as
/// they are, the rest in hex (`LT` 1.2 becomes `LT0102`).
pub fn version_string(v: &[u8]) -> String {
    let letters = v
        .iter()
        .take(2)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let mut out = String::from_utf8_lossy(&v[..letters]).into_owned();
    out.push_str(&hex::encode(&v[letters..]));
    out
}

impl Record {
    /// The record as one NDJSON object; times are `start_unix + at` in seconds since the Unix
    /// epoch (`start_unix` is the wall-clock time of [`Instant::ZERO`], given by the caller).
    pub fn to_json(&self, start_unix: f64) -> serde_json::Value {
        let secs = |at: &Instant| start_unix + at.as_micros() as f64 / 1e6;
        match self {
            Record::Node {
                id,
                addr,
                version,
                bep51,
                at,
            } => serde_json::json!({
                "type": "node",
                "id": id.to_hex(),
                "addr": addr.to_string(),
                "version": version.as_deref().map(version_string),
                "bep51": bep51,
                "first_seen": secs(at),
            }),
            Record::InfoHash {
                info_hash,
                from,
                at,
            } => serde_json::json!({
                "type": "infohash",
                "infohash": info_hash.to_hex(),
                "from": from.to_string(),
                "seen": secs(at),
            }),
            Record::Peers {
                info_hash,
                from,
                peers,
                at,
                ..
            } => serde_json::json!({
                "type": "peers",
                "infohash": info_hash.to_hex(),
                "from": from.to_string(),
                "peers": peers,
                "seen": secs(at),
            }),
        }
    }
}

/// The crawler's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrawlStats {
    /// Queries sent, all kinds.
    pub queries_sent: u64,
    /// `sample_infohashes` sent.
    pub samples_sent: u64,
    /// `find_node` sent (fallbacks and sweeps).
    pub find_nodes_sent: u64,
    /// `get_peers` sent.
    pub get_peers_sent: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Replies matched to a query.
    pub replies: u64,
    /// Error replies matched to a query.
    pub errors: u64,
    /// Queries that timed out.
    pub timeouts: u64,
    /// Nodes that never answered (after the retry).
    pub unresponsive: u64,
    /// Undecodable datagrams.
    pub rejected: u64,
    /// Replies with no matching query (unknown transaction id or wrong source).
    pub unmatched: u64,
    /// Queries received (a crawler answers none).
    pub queries_ignored: u64,
    /// Addresses refused by the address filter (private, port 0).
    pub filtered: u64,
    /// Distinct nodes that answered (records emitted).
    pub nodes_found: u64,
    /// Distinct info-hashes found.
    pub infohashes_found: u64,
    /// Distinct addresses queued for a visit.
    pub addrs_queued: u64,
    /// Queries delayed by the per-IP limit.
    pub per_ip_delayed: u64,
    /// Items dropped because a queue was full.
    pub queue_overflows: u64,
    /// Records dropped because the caller did not drain them.
    pub records_dropped: u64,
    /// Re-samples scheduled because `num` exceeded the sample.
    pub resamples: u64,
}

/// A unit of work: one query to send.
#[derive(Clone, Copy, Debug)]
enum Work {
    /// The visit of a new address (`retry`: the find_node after a failed sample).
    Visit {
        addr: SocketAddr,
        id: Option<NodeId>,
        retry: bool,
        timed_out: bool,
    },
    /// Another sample of a node (BEP 51 interval passed, or a lossy first visit).
    Resample {
        addr: SocketAddr,
        id: NodeId,
        count: u8,
    },
    /// Count the peers of a new info-hash.
    GetPeers {
        addr: SocketAddr,
        info_hash: InfoHash,
    },
    /// An idle sweep.
    Sweep { addr: SocketAddr },
}

impl Work {
    fn addr(&self) -> SocketAddr {
        match self {
            Work::Visit { addr, .. }
            | Work::Resample { addr, .. }
            | Work::GetPeers { addr, .. }
            | Work::Sweep { addr } => *addr,
        }
    }
}

/// A query awaiting its answer.
#[derive(Clone, Copy, Debug)]
struct Pending {
    work: Work,
    /// Whether it was a sample_infohashes.
    sample: bool,
}

/// A delayed work item, ordered by due time (earliest first in the max-heap).
#[derive(Debug)]
struct Delayed {
    at: Instant,
    seq: u64,
    work: Work,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

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
    outbox: VecDeque<Transmit>,
    stats: CrawlStats,
    now: Instant,
    /// Set when a pump stopped at its iteration cap: call again at once.
    more: bool,
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
            outbox: VecDeque::new(),
            stats: CrawlStats::default(),
            now,
            more: false,
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
    /// re-samples aside), and the last `idle_sweeps` sweeps found nothing new.
    pub fn is_idle(&self) -> bool {
        (self.config.sweep_rate == 0 || self.dry_sweeps >= self.config.idle_sweeps)
            && self.in_flight.is_empty()
            && self.frontier.is_empty()
            && self.retries.is_empty()
            && self.get_peers.is_empty()
            && !self
                .delayed
                .iter()
                .any(|d| !matches!(d.work, Work::Resample { .. }))
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
        self.outbox.pop_front()
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

    fn record(&mut self, record: Record) {
        if self.records.len() >= self.config.max_records {
            self.stats.records_dropped += 1;
            return;
        }
        self.records.push_back(record);
    }

    // --- inputs ----------------------------------------------------------------------------

    /// The deadline from [`Crawler::poll_timeout`] passed (calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        for (_, pending) in self.in_flight.expire(now) {
            self.stats.timeouts += 1;
            self.failed(pending, true);
        }
        while self.delayed.peek().is_some_and(|d| d.at <= now) {
            if let Some(d) = self.delayed.pop() {
                self.push_retry(d.work);
            }
        }
        self.pump(now);
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.now = now;
        self.stats.datagrams_in += 1;
        let Ok(decoded) = krpc::decode(bytes) else {
            self.stats.rejected += 1;
            return;
        };
        let message = decoded.message;
        let response = match message.body {
            Body::Query(_) => {
                self.stats.queries_ignored += 1;
                return;
            }
            Body::Response(r) => Some(r),
            Body::Error(_) => None,
        };
        let Some(pending) = self.take_pending(&message.transaction_id, from) else {
            self.stats.unmatched += 1;
            return;
        };
        match response {
            Some(response) => {
                self.stats.replies += 1;
                self.on_response(now, from, pending, response, message.version);
            }
            None => {
                self.stats.errors += 1;
                self.failed(pending, false);
            }
        }
        self.pump(now);
    }

    /// The query a reply answers: matched on transaction id and source address.
    fn take_pending(&mut self, tid: &[u8], from: SocketAddr) -> Option<Pending> {
        self.in_flight.take_reply(tid, from).ok()
    }

    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        pending: Pending,
        response: Response,
        version: Option<Vec<u8>>,
    ) {
        // The node itself.
        let key = self.fingerprints.of(&(response.id.0, from));
        if self.nodes_seen.insert(key) {
            self.stats.nodes_found += 1;
            self.add_to_reservoir(from);
            let bep51 = pending.sample && (response.samples.is_some() || response.num.is_some());
            self.record(Record::Node {
                id: response.id,
                addr: from,
                bep51,
                version: version.map(|mut v| {
                    v.truncate(16);
                    v
                }),
                at: now,
            });
        }
        // The nodes it knows.
        let queued_before = self.stats.addrs_queued;
        let nodes: Vec<NodeInfo> = response
            .all_nodes()
            .take(MAX_NODES_PER_REPLY)
            .copied()
            .collect();
        for node in nodes {
            if node.addr != from {
                self.queue_visit(node.addr, Some(node.id));
            }
        }
        if matches!(pending.work, Work::Sweep { .. }) && self.stats.addrs_queued == queued_before {
            self.dry_sweeps = self.dry_sweeps.saturating_add(1);
        }
        match pending.work {
            Work::GetPeers { info_hash, .. } => {
                let mut peers: Vec<SocketAddr> = response.values.unwrap_or_default();
                peers.sort_unstable();
                peers.dedup();
                let count = peers.len();
                peers.truncate(MAX_PEERS_PER_RECORD);
                self.record(Record::Peers {
                    info_hash,
                    from,
                    peers: count,
                    addrs: peers,
                    at: now,
                });
                return;
            }
            Work::Visit {
                retry: true,
                timed_out: true,
                ..
            } if self.config.sample_infohashes => {
                // The sample was probably lost, not refused: one more sample.
                self.push_retry(Work::Resample {
                    addr: from,
                    id: response.id,
                    count: 1,
                });
            }
            _ => {}
        }
        // Its BEP 51 sample.
        if !pending.sample {
            return;
        }
        let samples = response.samples.unwrap_or_default();
        let got = samples.len();
        for info_hash in samples.into_iter().take(MAX_SAMPLES_PER_REPLY) {
            let key = self.fingerprints.of(&info_hash.0);
            if self.hashes_seen.insert(key) {
                self.stats.infohashes_found += 1;
                self.record(Record::InfoHash {
                    info_hash,
                    from,
                    at: now,
                });
                if self.config.get_peers {
                    if self.get_peers.len() < self.config.max_delayed {
                        self.get_peers.push_back(Work::GetPeers {
                            addr: from,
                            info_hash,
                        });
                    } else {
                        self.stats.queue_overflows += 1;
                    }
                }
            }
        }
        let count = match pending.work {
            Work::Resample { count, .. } => count,
            _ => 0,
        };
        let num = response.num.unwrap_or(0);
        if num > got as i64 && count < self.config.max_resamples {
            let interval = response.interval.unwrap_or(0).clamp(0, MAX_INTERVAL_SECS);
            let wait = Duration::from_secs(interval as u64).max(self.config.min_interval);
            self.stats.resamples += 1;
            self.delay(
                now + wait,
                Work::Resample {
                    addr: from,
                    id: response.id,
                    count: count + 1,
                },
            );
        }
    }

    /// A query failed: timed out (`timeout`) or answered with an error.
    fn failed(&mut self, pending: Pending, timeout: bool) {
        match pending.work {
            Work::Visit {
                addr,
                id,
                retry: false,
                ..
            } => self.push_retry(Work::Visit {
                addr,
                id,
                retry: true,
                timed_out: timeout,
            }),
            Work::Visit { retry: true, .. } if timeout => self.stats.unresponsive += 1,
            Work::Sweep { .. } => self.dry_sweeps = self.dry_sweeps.saturating_add(1),
            _ => {}
        }
    }

    fn push_retry(&mut self, work: Work) {
        if self.retries.len() >= self.config.max_delayed {
            self.stats.queue_overflows += 1;
            return;
        }
        self.retries.push_back(work);
    }

    fn delay(&mut self, at: Instant, work: Work) {
        if self.delayed.len() >= self.config.max_delayed {
            self.stats.queue_overflows += 1;
            return;
        }
        self.delayed_seq += 1;
        self.delayed.push(Delayed {
            at,
            seq: self.delayed_seq,
            work,
        });
    }

    fn queue_visit(&mut self, addr: SocketAddr, id: Option<NodeId>) {
        if !self.config.accepts(&addr) {
            self.stats.filtered += 1;
            return;
        }
        let key = self.fingerprints.of(&addr);
        if !self.queued.insert(key) {
            return;
        }
        self.stats.addrs_queued += 1;
        self.dry_sweeps = 0;
        if self.frontier.len() >= self.config.max_frontier {
            self.stats.queue_overflows += 1;
            return;
        }
        self.frontier.push_back(Work::Visit {
            addr,
            id,
            retry: false,
            timed_out: false,
        });
    }

    fn add_to_reservoir(&mut self, addr: SocketAddr) {
        self.reservoir_seen += 1;
        if self.reservoir.len() < RESERVOIR {
            self.reservoir.push(addr);
        } else {
            let j = self.rng.random_range(0..self.reservoir_seen);
            if let Some(slot) = self.reservoir.get_mut(j as usize) {
                *slot = addr;
            }
        }
    }

    // --- planning --------------------------------------------------------------------------

    /// The next work item, in priority order; `None` when nothing is ready.
    fn next_work(&mut self, now: Instant) -> Option<Work> {
        if let Some(w) = self.retries.pop_front() {
            return Some(w);
        }
        if let Some(w) = self.get_peers.pop_front() {
            return Some(w);
        }
        if let Some(w) = self.frontier.pop_front() {
            return Some(w);
        }
        if self.config.sweep_rate > 0 && now >= self.next_sweep && !self.reservoir.is_empty() {
            let slowdown = 1u32 << (self.dry_sweeps / 4).min(10);
            let interval = (Duration::from_secs(1) / self.config.sweep_rate) * slowdown;
            self.next_sweep = now + interval.min(Duration::from_secs(30));
            let addr = self.reservoir[self.rng.random_range(0..self.reservoir.len())];
            return Some(Work::Sweep { addr });
        }
        None
    }

    /// Sends what the limits allow now.
    fn pump(&mut self, now: Instant) {
        self.more = false;
        for _ in 0..MAX_PUMP {
            if self.in_flight.len() >= self.config.max_in_flight {
                return;
            }
            self.global.refill(self.global_limit, now);
            if !self.global.has_token() {
                return;
            }
            let Some(work) = self.next_work(now) else {
                return;
            };
            let ip = work.addr().ip();
            if let Some(limiter) = &mut self.per_ip {
                if !limiter.allow(now, ip) {
                    self.stats.per_ip_delayed += 1;
                    let wait = Duration::from_secs(1) / self.config.per_ip_rate.max(1);
                    self.delay(now + wait, work);
                    continue;
                }
            }
            self.global.take_token();
            self.send(now, work);
        }
        self.more = true;
    }

    /// A target for a visit of `id`: a neighbour target (its low 64 bits random) or a random one.
    fn target(&mut self, id: Option<NodeId>) -> NodeId {
        let neighbour = self
            .rng
            .random_ratio(self.config.neighbour_targets_in_4.min(4), 4);
        match id {
            Some(id) if neighbour => {
                let mut target = id;
                self.rng.fill(&mut target.0[12..]);
                target
            }
            _ => NodeId::random(&mut self.rng),
        }
    }

    fn send(&mut self, now: Instant, work: Work) {
        let (kind, sample) = match work {
            Work::Visit { id, retry, .. } => {
                let target = self.target(id);
                if self.config.sample_infohashes && !retry {
                    let kind = QueryKind::SampleInfohashes {
                        target,
                        want: Want::UNSPECIFIED,
                    };
                    (kind, true)
                } else {
                    let kind = QueryKind::FindNode {
                        target,
                        want: Want::UNSPECIFIED,
                    };
                    (kind, false)
                }
            }
            Work::Resample { id, .. } => {
                let target = self.target(Some(id));
                let kind = QueryKind::SampleInfohashes {
                    target,
                    want: Want::UNSPECIFIED,
                };
                (kind, true)
            }
            Work::GetPeers { info_hash, .. } => (
                QueryKind::GetPeers {
                    info_hash,
                    want: Want::UNSPECIFIED,
                    noseed: false,
                    scrape: false,
                },
                false,
            ),
            Work::Sweep { .. } => {
                let target = NodeId::random(&mut self.rng);
                let kind = QueryKind::FindNode {
                    target,
                    want: Want::UNSPECIFIED,
                };
                (kind, false)
            }
        };
        let addr = work.addr();
        let deadline = now + self.config.query_timeout;
        let tid =
            match self
                .in_flight
                .insert(deadline, addr, Pending { work, sample }, &mut self.tid_rng)
            {
                Ok(tid) => tid,
                Err(_) => {
                    self.stats.queue_overflows += 1;
                    return;
                }
            };
        match &kind {
            QueryKind::SampleInfohashes { .. } => self.stats.samples_sent += 1,
            QueryKind::FindNode { .. } => self.stats.find_nodes_sent += 1,
            _ => self.stats.get_peers_sent += 1,
        }
        self.stats.queries_sent += 1;
        let id = self.ids[(self.stats.queries_sent as usize) % self.ids.len()];
        let message = Message {
            transaction_id: tid.as_bytes().to_vec(),
            version: self.config.version.clone(),
            read_only: true,
            requester_ip: None,
            body: Body::Query(Query { id, kind }),
        };
        self.outbox.push_back(Transmit::new(addr, message.encode()));
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

    fn poll_timeout(&self) -> Option<Instant> {
        Crawler::poll_timeout(self)
    }
}

#[cfg(test)]
mod tests;
