//! The bootstrap server: a sans-IO core that answers `find_node` and `get_peers` from a large
//! pool of recently verified nodes, so that new nodes join the DHT in one round trip.
//!
//! [`BootstrapServer`] is driven like the [`crate::node::Node`]: the caller feeds it datagrams
//! and timer expiries with its own [`Instant`], drains [`BootstrapServer::poll_transmit`] and
//! sleeps until [`BootstrapServer::poll_timeout`]; randomness comes from a caller's seed. It
//! owns no routing table, no transaction map and no peer store:
//!
//! - **Verification keeps no per-ping state.** Every query the server sends (a ping to verify
//!   a node, a `find_node` of its walk) carries as transaction id a 4-byte cookie: a keyed
//!   hash of the destination address and a secret that changes every
//!   [`BootstrapConfig::secret_period`]. A reply is accepted only if its id is the cookie of
//!   its source address under the current or the previous secret; its sender is then
//!   verified (it answered at the address we wrote to) and enters the [`pool`]. Nodes named
//!   in replies, and nodes that query the server, are only candidates: they are pinged, and
//!   handed out only once they answered.
//! - **The pool** ([`pool::Pool`]) is shared by every shard of a server behind a
//!   `parking_lot::RwLock` ([`SharedPools`]), held only for the pool operation itself, never
//!   across I/O. Verified nodes take the write lock briefly; answers take no lock: each
//!   shard answers from the pool's published [`pool::Snapshot`] through its own
//!   [`PoolReaders`], checking one atomic generation per answer.
//!   The secrets derive from one master key, so any shard can check any shard's cookie.
//! - **Answers**: `find_node`, `get_peers`, `get` and `sample_infohashes` get up to K nodes,
//!   the closest to the target or a random sample ([`AnswerMode`]), BEP 42-consistent nodes
//!   first (only those with [`BootstrapConfig::bep42_strict`]); the asker is never handed
//!   itself. `get_peers` carries a token (stateless too) and never `values`;
//!   `announce_peer` is acknowledged and not stored. Queries pass the same per-IP and global
//!   token buckets as the node ([`crate::node::RateLimiter`]).
//! - **The walk**: every [`BootstrapConfig::walk_interval`] the server asks a few pool nodes
//!   (or its bootstrap nodes, while the pool is small) for a random target; a sweep re-pings
//!   nodes not heard from for [`BootstrapConfig::refresh_after`] and drops those silent for
//!   [`BootstrapConfig::max_age`].
//! - **Which nodes the server deals with** is one rule, [`BootstrapConfig::keeps`]: a node on
//!   an address the configuration ignores (private, loopback and reserved networks without
//!   [`BootstrapConfig::allow_private`], port 0) or, with [`BootstrapConfig::bep42_strict`],
//!   whose id is not BEP 42-consistent with its address, is never loaded from a pool file
//!   (it is counted as skipped, [`persist::Loaded`]), never added, never handed out, and
//!   never queried by the walk or the sweep (nor pinged as a candidate). The walk skips
//!   ignored bootstrap nodes too (their replies would be filtered anyway). The pool is shared
//!   and public, so the walk, the sweep and the answers check the rule again rather than
//!   trust what is in it.
//!
//! Sockets, threads and persistence live in [`driver`] and [`persist`].

pub mod driver;
pub mod persist;
pub mod pool;
pub mod sim;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::contact::NodeInfo;
use crate::id::NodeId;
use crate::krpc::{
    self, Body, BodyRef, ERROR_GENERIC, ERROR_PROTOCOL, KrpcError, Message, Outgoing, Query,
    QueryKind, ReplyParts, Response, Want,
};
use crate::node::config::CLIENT_VERSION;
use crate::node::{MAX_TRANSACTION_ID_LEN, RateLimit, RateLimiter};
use crate::time::Instant;
use crate::transmit::{Transmit, TransmitQueue};

pub use pool::{Inserted, NodeFilter, Pool4, Pool6, PoolReader, Snapshot};

/// Seconds added to the core's clock to get the pool's clock, so that nodes loaded from a
/// saved pool can keep their age (up to about 11 days) although the core's clock restarts at 0.
pub const POOL_CLOCK_BASE: u32 = 1_000_000;

/// How `find_node` and `get_peers` are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerMode {
    /// The K pool nodes closest to the target (from the pool's sorted index).
    Closest,
    /// K random pool nodes.
    Random,
}

/// The bootstrap server's settings. Defaults in [`BootstrapConfig::default`].
#[derive(Clone, Debug)]
pub struct BootstrapConfig {
    /// Nodes per answer (K, at most [`pool::MAX_ANSWER`]).
    pub k: usize,
    /// How answers pick their nodes.
    pub answer: AnswerMode,
    /// Load, store, hand out, query and accept as askers only nodes whose id is BEP
    /// 42-consistent with their address (local and private addresses are exempt, as in
    /// BEP 42); see [`BootstrapConfig::keeps`].
    pub bep42_strict: bool,
    /// Talk to private, loopback and reserved addresses.
    pub allow_private: bool,
    /// Per-source-IP limit on queries answered (`None`: unlimited).
    pub rate_limit_per_ip: Option<RateLimit>,
    /// Limit on all queries answered by this core (one shard) (`None`: unlimited).
    pub rate_limit_global: Option<RateLimit>,
    /// Sources tracked by the per-IP limiter.
    pub rate_limit_max_ips: usize,
    /// Verification pings sent per second at most (per shard).
    pub pings_per_second: u32,
    /// Time between two steps of the walk.
    pub walk_interval: Duration,
    /// Nodes asked per walk step.
    pub walk_fanout: usize,
    /// While the pool holds fewer nodes than this, the walk also asks the bootstrap nodes.
    pub walk_bootstrap_below: usize,
    /// A node not heard from for this long is pinged again.
    pub refresh_after: Duration,
    /// A node not heard from for this long leaves the pool (and is no longer handed out).
    pub max_age: Duration,
    /// Pool entries examined per tick by the sweep.
    pub sweep_per_tick: usize,
    /// How often the cookie and token secret changes (a cookie is valid for one to two
    /// periods).
    pub secret_period: Duration,
    /// Time between two maintenance ticks.
    pub tick_interval: Duration,
    /// Whether this core runs the walk, the sweep and the index rebuild (one shard of a
    /// sharded server does).
    pub maintenance: bool,
    /// Datagrams waiting to be sent at most; more are dropped and counted.
    pub max_outbox: usize,
    /// `v` of outgoing messages.
    pub version: Option<Vec<u8>>,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            k: 8,
            answer: AnswerMode::Closest,
            bep42_strict: false,
            allow_private: false,
            rate_limit_per_ip: Some(RateLimit::PER_IP),
            rate_limit_global: Some(RateLimit {
                rate: 200_000,
                burst: 400_000,
            }),
            rate_limit_max_ips: 1 << 18,
            pings_per_second: 2_000,
            walk_interval: Duration::from_secs(1),
            walk_fanout: 4,
            walk_bootstrap_below: 64,
            refresh_after: Duration::from_secs(15 * 60),
            max_age: Duration::from_secs(2 * 60 * 60),
            sweep_per_tick: 2_000,
            secret_period: Duration::from_secs(5 * 60),
            tick_interval: Duration::from_secs(1),
            maintenance: true,
            max_outbox: 16_384,
            version: Some(CLIENT_VERSION.to_vec()),
        }
    }
}

impl BootstrapConfig {
    /// Whether the server may load, store, hand out and query `node` (see the module
    /// documentation): its address is one the server talks to and, with
    /// [`BootstrapConfig::bep42_strict`], its id is BEP 42-consistent with that address.
    pub fn keeps(&self, node: &NodeInfo) -> bool {
        self.accepts(&node.addr) && self.id_ok(&node.id, &node.addr)
    }

    fn accepts(&self, addr: &SocketAddr) -> bool {
        crate::address_policy::accepts(addr, self.allow_private)
    }

    fn id_ok(&self, id: &NodeId, addr: &SocketAddr) -> bool {
        !self.bep42_strict || id.is_bep42_valid_for(addr.ip())
    }

    /// The pool nodes [`BootstrapConfig::keeps`], as a pool filter.
    fn kept(&self) -> NodeFilter {
        NodeFilter {
            allow_private: self.allow_private,
            bep42_strict: self.bep42_strict,
            ..NodeFilter::default()
        }
    }
}

/// The IPv4 and IPv6 pools of one server.
#[derive(Debug)]
pub struct Pools {
    /// IPv4 nodes.
    pub v4: Pool4,
    /// IPv6 nodes (BEP 32).
    pub v6: Pool6,
}

impl Pools {
    /// Empty pools: `capacity` IPv4 nodes and a quarter as many IPv6 nodes.
    pub fn new(capacity: usize, hash_key: u64) -> Self {
        Pools {
            v4: Pool4::new(capacity, hash_key),
            v6: Pool6::new((capacity / 4).max(1), hash_key.rotate_left(17)),
        }
    }

    /// Nodes in both pools.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether both pools are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the node at `addr` last answered (pool seconds), if it is in a pool.
    pub fn seen(&self, addr: &SocketAddr) -> Option<u32> {
        if addr.is_ipv4() {
            self.v4.seen(addr)
        } else {
            self.v6.seen(addr)
        }
    }

    /// Readers of both pools' snapshots, for one shard (see [`PoolReader`]).
    pub fn readers(&self) -> PoolReaders {
        PoolReaders {
            v4: self.v4.reader(),
            v6: self.v6.reader(),
        }
    }

    /// Adds or refreshes a verified node.
    pub fn insert(&mut self, node: NodeInfo, now: u32) -> Inserted {
        if node.addr.is_ipv4() {
            self.v4.insert(node, now)
        } else {
            self.v6.insert(node, now)
        }
    }
}

/// The pools shared by the shards of one server: the lock is taken to change them (and by
/// the walk, the rebuild and the reply path); answers read the pools' snapshots through each
/// shard's [`PoolReaders`] instead.
pub type SharedPools = Arc<RwLock<Pools>>;

/// One shard's readers of the IPv4 and IPv6 pools' snapshots (from [`Pools::readers`]).
#[derive(Debug)]
pub struct PoolReaders {
    /// The IPv4 pool's reader.
    pub v4: PoolReader<6>,
    /// The IPv6 pool's reader.
    pub v6: PoolReader<18>,
}

/// Counters of one bootstrap core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootstrapStats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Queries received (answered or not).
    pub queries_in: u64,
    /// Replies (and KRPC errors) sent to queries.
    pub answered: u64,
    /// Queries dropped by the rate limits.
    pub rate_limited: u64,
    /// Datagrams that did not decode.
    pub rejected: u64,
    /// Datagrams from addresses the server ignores (private networks, port 0).
    pub filtered: u64,
    /// Nodes handed out in answers.
    pub nodes_handed_out: u64,
    /// Verification pings sent.
    pub pings_sent: u64,
    /// Candidates not pinged because the ping budget was spent.
    pub pings_skipped: u64,
    /// Walk `find_node` queries sent.
    pub walk_queries: u64,
    /// Replies whose transaction id was a valid cookie: nodes verified (or refreshed).
    pub verified: u64,
    /// Replies with a wrong or expired cookie, or an id refused (BEP 42, our own id).
    pub unsolicited: u64,
    /// Nodes dropped from the pool by the sweep.
    pub expired: u64,
    /// Datagrams dropped because the outbox was full.
    pub outbox_full: u64,
    /// Queries dropped unanswered because their transaction id was longer than
    /// [`MAX_TRANSACTION_ID_LEN`] bytes (the reply would echo it: an amplifier).
    pub oversized_transaction_ids: u64,
    /// `announce_peer` queries answered with error 203: the server stores no peers.
    pub announces_refused: u64,
    /// Snapshots taken by this core's pool readers: one per pool rebuild and family answered
    /// from. Answers take no lock; this is the only shared state they synchronise on.
    pub snapshot_refreshes: u64,
    /// Read-lock acquisitions of the shared pool that had to wait (a shard held it for
    /// writing, or a writer was queued): the walk, the rebuild and the nodes named in replies,
    /// never an answer. Readers never wait for readers.
    pub pool_read_waits: u64,
    /// Write-lock acquisitions of the shared pool that had to wait (readers or a writer held
    /// it).
    pub pool_write_waits: u64,
}

impl BootstrapStats {
    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: &BootstrapStats) {
        // Destructured, so that a new counter cannot be forgotten here.
        let BootstrapStats {
            datagrams_in,
            queries_in,
            answered,
            rate_limited,
            rejected,
            filtered,
            nodes_handed_out,
            pings_sent,
            pings_skipped,
            walk_queries,
            verified,
            unsolicited,
            expired,
            outbox_full,
            oversized_transaction_ids,
            announces_refused,
            snapshot_refreshes,
            pool_read_waits,
            pool_write_waits,
        } = *other;
        self.datagrams_in += datagrams_in;
        self.queries_in += queries_in;
        self.answered += answered;
        self.rate_limited += rate_limited;
        self.rejected += rejected;
        self.filtered += filtered;
        self.nodes_handed_out += nodes_handed_out;
        self.pings_sent += pings_sent;
        self.pings_skipped += pings_skipped;
        self.walk_queries += walk_queries;
        self.verified += verified;
        self.unsolicited += unsolicited;
        self.expired += expired;
        self.outbox_full += outbox_full;
        self.oversized_transaction_ids += oversized_transaction_ids;
        self.announces_refused += announces_refused;
        self.snapshot_refreshes += snapshot_refreshes;
        self.pool_read_waits += pool_read_waits;
        self.pool_write_waits += pool_write_waits;
    }

    /// The sum of several cores' counters (e.g. the shards of one server).
    pub fn total(cores: &[BootstrapStats]) -> BootstrapStats {
        let mut total = BootstrapStats::default();
        for core in cores {
            total.add(core);
        }
        total
    }
}

/// Takes the pool's read lock; counts in `waits` an acquisition that could not be had at once.
fn read_pools<'a>(pools: &'a RwLock<Pools>, waits: &mut u64) -> RwLockReadGuard<'a, Pools> {
    pools.try_read().unwrap_or_else(|| {
        *waits += 1;
        pools.read()
    })
}

/// Takes the pool's write lock; counts in `waits` an acquisition that could not be had at
/// once.
fn write_pools<'a>(pools: &'a RwLock<Pools>, waits: &mut u64) -> RwLockWriteGuard<'a, Pools> {
    pools.try_write().unwrap_or_else(|| {
        *waits += 1;
        pools.write()
    })
}

fn keyed(key: u64, data: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    data.hash(&mut h);
    h.finish()
}

/// The nodes of the answer being made, as compact node info copied from the pool, encoded
/// into the reply as they are (kept between answers so that an answer allocates nothing).
#[derive(Default)]
struct AnswerNodes {
    v4: Vec<u8>,
    v6: Vec<u8>,
    has_v4: bool,
    has_v6: bool,
}

impl AnswerNodes {
    fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
        self.has_v4 = false;
        self.has_v6 = false;
    }

    /// The answer's nodes and `token` as the parts of its reply.
    fn parts<'a>(&'a self, token: Option<&'a [u8]>) -> ReplyParts<'a> {
        ReplyParts {
            nodes: self.has_v4.then_some(self.v4.as_slice()),
            nodes6: self.has_v6.then_some(self.v6.as_slice()),
            token,
        }
    }
}

/// The sans-IO bootstrap server core (one per shard).
pub struct BootstrapServer {
    config: BootstrapConfig,
    id: NodeId,
    rng: SmallRng,
    master: u64,
    pools: SharedPools,
    readers: PoolReaders,
    bootstrap_nodes: Vec<SocketAddr>,
    outbox: TransmitQueue,
    nodes: AnswerNodes,
    limiter: RateLimiter,
    ping_budget: RateLimiter,
    stats: BootstrapStats,
    next_tick: Instant,
    next_walk: Instant,
}

impl BootstrapServer {
    /// A core with id `id` serving `pools`. `master` keys the cookies and tokens: give every
    /// shard of one server the same value; `seed` seeds this core's randomness. The core takes
    /// its readers of the pools' snapshots here (under the read lock, once): change the pools
    /// in place afterwards, never replace them.
    pub fn new(
        config: BootstrapConfig,
        id: NodeId,
        master: u64,
        seed: u64,
        now: Instant,
        pools: SharedPools,
    ) -> Self {
        let limiter = RateLimiter::new(
            config.rate_limit_per_ip,
            config.rate_limit_global,
            config.rate_limit_max_ips,
            now,
        );
        let pings = config.pings_per_second.max(1);
        let ping_budget = RateLimiter::new(
            None,
            Some(RateLimit {
                rate: pings,
                burst: pings,
            }),
            1,
            now,
        );
        let readers = pools.read().readers();
        BootstrapServer {
            config,
            id,
            rng: SmallRng::seed_from_u64(seed),
            master,
            pools,
            readers,
            bootstrap_nodes: Vec::new(),
            outbox: TransmitQueue::default(),
            nodes: AnswerNodes::default(),
            limiter,
            ping_budget,
            stats: BootstrapStats::default(),
            next_tick: now,
            next_walk: now,
        }
    }

    /// The server's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The settings.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &BootstrapStats {
        &self.stats
    }

    /// The shared pools.
    pub fn pools(&self) -> &SharedPools {
        &self.pools
    }

    /// Takes the pools' newest snapshots if a rebuild published new ones, so that a core that
    /// gets no query lets go of the old ones (answers refresh by themselves; the driver also
    /// calls this at every loop turn).
    pub fn refresh_snapshots(&mut self) {
        let refreshed = u64::from(self.readers.v4.refresh()) + u64::from(self.readers.v6.refresh());
        self.stats.snapshot_refreshes += refreshed;
    }

    /// Whether the node `id` at `addr` answered at or after `since` (pool seconds), as the
    /// snapshot of its family says (no lock; a node added since the last rebuild is not seen).
    fn fresh_in_snapshot(&mut self, id: &NodeId, addr: &SocketAddr, since: u32) -> bool {
        if addr.is_ipv4() {
            self.stats.snapshot_refreshes += u64::from(self.readers.v4.refresh());
            self.readers.v4.snapshot().fresh(id, addr, since)
        } else {
            self.stats.snapshot_refreshes += u64::from(self.readers.v6.refresh());
            self.readers.v6.snapshot().fresh(id, addr, since)
        }
    }

    /// Nodes the walk asks while the pool is small (e.g. the public routers, other servers).
    pub fn set_bootstrap_nodes(&mut self, nodes: Vec<SocketAddr>) {
        self.bootstrap_nodes = nodes;
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// When [`BootstrapServer::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.config.maintenance {
            Some(self.next_tick)
        } else {
            None
        }
    }

    /// The pool's clock at `now` (seconds).
    pub fn pool_time(now: Instant) -> u32 {
        u32::try_from(now.as_micros() / 1_000_000)
            .unwrap_or(u32::MAX - POOL_CLOCK_BASE)
            .saturating_add(POOL_CLOCK_BASE)
    }

    fn epoch(&self, now: Instant) -> u64 {
        let period = self.config.secret_period.as_micros().max(1) as u64;
        now.as_micros() / period
    }

    fn cookie(&self, epoch: u64, addr: &SocketAddr) -> [u8; 4] {
        let secret = keyed(self.master, ("cookie", epoch));
        (keyed(secret, addr) as u32).to_be_bytes()
    }

    fn cookie_valid(&self, now: Instant, addr: &SocketAddr, t: &[u8]) -> bool {
        let epoch = self.epoch(now);
        t == self.cookie(epoch, addr) || (epoch > 0 && t == self.cookie(epoch - 1, addr))
    }

    fn token(&self, now: Instant, addr: &SocketAddr) -> [u8; 4] {
        let secret = keyed(self.master, ("token", self.epoch(now)));
        (keyed(secret, addr.ip()) as u32).to_be_bytes()
    }

    fn push(&mut self, to: SocketAddr, message: &Message) {
        if self
            .outbox
            .push(to, self.config.max_outbox, &message.as_outgoing())
            .is_none()
        {
            self.stats.outbox_full += 1;
        }
    }

    fn send_query(&mut self, now: Instant, to: SocketAddr, kind: QueryKind) {
        let t = self.cookie(self.epoch(now), &to);
        let query = Query { id: self.id, kind };
        let message = Outgoing {
            transaction_id: &t,
            version: self.config.version.as_deref(),
            read_only: false,
            requester_ip: None,
            body: BodyRef::Query(&query),
        };
        if self
            .outbox
            .push(to, self.config.max_outbox, &message)
            .is_none()
        {
            self.stats.outbox_full += 1;
        }
    }

    /// Pings `to` to verify it, if the ping budget allows.
    fn verify(&mut self, now: Instant, to: SocketAddr) {
        if self.ping_budget.allow(now, to.ip()) {
            self.stats.pings_sent += 1;
            self.send_query(now, to, QueryKind::Ping);
        } else {
            self.stats.pings_skipped += 1;
        }
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        if !self.config.accepts(&from) {
            self.stats.filtered += 1;
            return;
        }
        let message = match krpc::decode_ref(bytes) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.stats.rejected += 1;
                if let Some(reply) = error.reply {
                    if reply.transaction_id.len() > MAX_TRANSACTION_ID_LEN {
                        self.stats.oversized_transaction_ids += 1;
                    } else if self.limiter.allow(now, from.ip()) {
                        self.stats.answered += 1;
                        self.push(from, &reply.to_message());
                    } else {
                        self.stats.rate_limited += 1;
                    }
                }
                return;
            }
        };
        match message.body {
            Body::Query(query) => {
                self.stats.queries_in += 1;
                if message.transaction_id.len() > MAX_TRANSACTION_ID_LEN {
                    self.stats.oversized_transaction_ids += 1;
                    return;
                }
                if !self.limiter.allow(now, from.ip()) {
                    self.stats.rate_limited += 1;
                    return;
                }
                self.answer(now, from, &message.transaction_id, &query.id, query.kind);
                // The asker is a candidate, unless read-only (BEP 43) or already fresh in the
                // snapshot (read without a lock, as the answer: an asker verified since the
                // last rebuild may be pinged again, within the ping budget).
                if !message.read_only && query.id != self.id && self.config.id_ok(&query.id, &from)
                {
                    let stale = Self::pool_time(now)
                        .saturating_sub(self.config.refresh_after.as_secs() as u32);
                    if !self.fresh_in_snapshot(&query.id, &from, stale) {
                        self.verify(now, from);
                    }
                }
            }
            Body::Response(response) => {
                self.on_response(now, from, &message.transaction_id, response)
            }
            Body::Error(_) => {}
        }
    }

    fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transaction_id: &[u8],
        asker: &NodeId,
        kind: QueryKind,
    ) {
        self.nodes.clear();
        let mut response = Response::new(self.id);
        let mut token = None;
        match kind {
            QueryKind::Ping => {}
            QueryKind::FindNode { target, want } => {
                self.fill_nodes(&mut response, &target, want, &from, asker)
            }
            QueryKind::GetPeers {
                info_hash, want, ..
            } => {
                token = Some(self.token(now, &from));
                self.fill_nodes(&mut response, &info_hash, want, &from, asker);
            }
            QueryKind::Get { target, want, .. } => {
                token = Some(self.token(now, &from));
                self.fill_nodes(&mut response, &target, want, &from, asker);
            }
            QueryKind::SampleInfohashes { target, want } => {
                response.interval = Some(6 * 60 * 60);
                response.num = Some(0);
                response.samples = Some(Vec::new());
                self.fill_nodes(&mut response, &target, want, &from, asker);
            }
            QueryKind::AnnouncePeer { .. } | QueryKind::Put(_) => {
                self.stats.answered += 1;
                let code = if matches!(kind, QueryKind::AnnouncePeer { .. }) {
                    self.stats.announces_refused += 1;
                    ERROR_PROTOCOL
                } else {
                    ERROR_GENERIC
                };
                let error = KrpcError {
                    code,
                    message: b"bootstrap server stores nothing".to_vec(),
                };
                let message = Outgoing {
                    transaction_id,
                    version: self.config.version.as_deref(),
                    read_only: false,
                    requester_ip: None,
                    body: BodyRef::Error(&error),
                };
                if self
                    .outbox
                    .push(from, self.config.max_outbox, &message)
                    .is_none()
                {
                    self.stats.outbox_full += 1;
                }
                return;
            }
        }
        self.stats.answered += 1;
        let message = Outgoing {
            transaction_id,
            version: self.config.version.as_deref(),
            read_only: false,
            requester_ip: Some(from),
            body: BodyRef::ResponseParts(
                &response,
                self.nodes.parts(token.as_ref().map(|t| &t[..])),
            ),
        };
        if self
            .outbox
            .push(from, self.config.max_outbox, &message)
            .is_none()
        {
            self.stats.outbox_full += 1;
        }
    }

    /// Copies the nodes of the answer from the pools' snapshots into `self.nodes` (they are
    /// encoded from there in place of `response`'s lists), taking no lock: the asker is never
    /// handed itself, nodes the configuration does not keep are never handed out, BEP
    /// 42-consistent ones first.
    fn fill_nodes(
        &mut self,
        _response: &mut Response,
        target: &NodeId,
        want: Want,
        from: &SocketAddr,
        asker: &NodeId,
    ) {
        let (n4, n6) = if want.is_specified() {
            (want.n4, want.n6)
        } else {
            (from.is_ipv4(), from.is_ipv6())
        };
        let k = self.config.k;
        let filter = NodeFilter {
            prefer_bep42: true,
            exclude_addr: Some(*from),
            exclude_id: Some(*asker),
            ..self.config.kept()
        };
        let nodes = &mut self.nodes;
        let mut handed_out = 0;
        if n4 {
            self.stats.snapshot_refreshes += u64::from(self.readers.v4.refresh());
            let pool = self.readers.v4.snapshot();
            handed_out += match self.config.answer {
                AnswerMode::Closest => pool.closest_compact(target, k, &filter, &mut nodes.v4),
                AnswerMode::Random => pool.sample_compact(&mut self.rng, k, &filter, &mut nodes.v4),
            };
            nodes.has_v4 = true;
        }
        if n6 {
            self.stats.snapshot_refreshes += u64::from(self.readers.v6.refresh());
            let pool = self.readers.v6.snapshot();
            handed_out += match self.config.answer {
                AnswerMode::Closest => pool.closest_compact(target, k, &filter, &mut nodes.v6),
                AnswerMode::Random => pool.sample_compact(&mut self.rng, k, &filter, &mut nodes.v6),
            };
            nodes.has_v6 = true;
        }
        self.stats.nodes_handed_out += handed_out as u64;
    }

    fn on_response(&mut self, now: Instant, from: SocketAddr, t: &[u8], response: Response) {
        if !self.cookie_valid(now, &from, t)
            || response.id == self.id
            || !self.config.id_ok(&response.id, &from)
        {
            self.stats.unsolicited += 1;
            return;
        }
        self.stats.verified += 1;
        let pool_now = Self::pool_time(now);
        write_pools(&self.pools, &mut self.stats.pool_write_waits)
            .insert(NodeInfo::new(response.id, from), pool_now);
        // Nodes it named are candidates: ping those we do not know yet.
        let stale = pool_now.saturating_sub(self.config.refresh_after.as_secs() as u32);
        let candidates: Vec<SocketAddr> = {
            let pools = read_pools(&self.pools, &mut self.stats.pool_read_waits);
            response
                .all_nodes()
                .take(2 * self.config.k)
                .filter(|n| {
                    n.id != self.id
                        && self.config.accepts(&n.addr)
                        && self.config.id_ok(&n.id, &n.addr)
                        && pools.seen(&n.addr).is_none_or(|s| s < stale)
                })
                .map(|n| n.addr)
                .collect()
        };
        for addr in candidates {
            self.verify(now, addr);
        }
    }

    /// The deadline from [`BootstrapServer::poll_timeout`] passed (early calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.config.maintenance || now < self.next_tick {
            return;
        }
        self.next_tick = now + self.config.tick_interval;
        let pool_now = Self::pool_time(now);
        let stale = pool_now.saturating_sub(self.config.refresh_after.as_secs() as u32);
        let dead = pool_now.saturating_sub(self.config.max_age.as_secs() as u32);
        let (to_ping, expired) = {
            let mut pools = write_pools(&self.pools, &mut self.stats.pool_write_waits);
            let before = pools.len();
            let n = self.config.sweep_per_tick;
            let mut stale_nodes = pools.v4.sweep(n, stale, dead);
            stale_nodes.extend(pools.v6.sweep(n / 4 + 1, stale, dead));
            (stale_nodes, before - pools.len())
        };
        self.stats.expired += expired as u64;
        for node in to_ping {
            // A node the server would not store is left to expire, never pinged.
            if self.config.keeps(&node) {
                self.verify(now, node.addr);
            }
        }
        self.rebuild_indexes();
        if now >= self.next_walk {
            self.next_walk = now + self.config.walk_interval;
            self.walk(now);
        }
    }

    /// Rebuilds the pools if stale ([`pool::Pool::index_stale`]): the tail sorted, merged
    /// with the sorted region and the records copied and indexed under the read lock;
    /// installed and published under the write lock, which costs one pass over the 4-byte
    /// time words in the new order plus the changes made in between (a few milliseconds for a
    /// million nodes, during which writers wait; answers never do: they read the snapshots).
    /// A rebuild made stale by the pool compacting itself meanwhile is dropped and redone at
    /// the next tick.
    fn rebuild_indexes(&mut self) {
        let (stale4, stale6) = {
            let pools = read_pools(&self.pools, &mut self.stats.pool_read_waits);
            (pools.v4.index_stale(), pools.v6.index_stale())
        };
        if stale4 {
            let index = read_pools(&self.pools, &mut self.stats.pool_read_waits)
                .v4
                .build_index();
            write_pools(&self.pools, &mut self.stats.pool_write_waits)
                .v4
                .set_index(index);
        }
        if stale6 {
            let index = read_pools(&self.pools, &mut self.stats.pool_read_waits)
                .v6
                .build_index();
            write_pools(&self.pools, &mut self.stats.pool_write_waits)
                .v6
                .set_index(index);
        }
    }

    fn walk(&mut self, now: Instant) {
        let target = NodeId::random(&mut self.rng);
        let config = &self.config;
        let keep = config.kept();
        let (targets, small) = {
            let pools = read_pools(&self.pools, &mut self.stats.pool_read_waits);
            let mut nodes = pools.v4.sample(&mut self.rng, config.walk_fanout, &keep);
            nodes.extend(
                pools
                    .v6
                    .sample(&mut self.rng, config.walk_fanout / 2, &keep),
            );
            (nodes, pools.len() < config.walk_bootstrap_below)
        };
        let mut addrs: Vec<SocketAddr> = targets.iter().map(|n| n.addr).collect();
        if small {
            addrs.extend(
                self.bootstrap_nodes
                    .iter()
                    .filter(|addr| self.config.accepts(addr)),
            );
        }
        for addr in addrs {
            self.stats.walk_queries += 1;
            self.send_query(
                now,
                addr,
                QueryKind::FindNode {
                    target,
                    want: Want::UNSPECIFIED,
                },
            );
        }
    }
}

impl std::fmt::Debug for BootstrapServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapServer")
            .field("id", &self.id)
            .field("queued", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl crate::Endpoint for BootstrapServer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        BootstrapServer::handle_datagram(self, now, from, bytes);
    }

    /// Loads the pool records that answering the query will read: around its target, and
    /// around the asker's id (whether the asker is already fresh in the pool).
    fn prefetch(&self, from: SocketAddr, bytes: &[u8]) {
        for id in [krpc::peek_target(bytes), krpc::peek_id(bytes)]
            .into_iter()
            .flatten()
        {
            match from {
                SocketAddr::V4(_) => self.readers.v4.snapshot().prefetch(id),
                SocketAddr::V6(_) => self.readers.v6.snapshot().prefetch(id),
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        BootstrapServer::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        BootstrapServer::poll_transmit(self)
    }

    fn recycle(&mut self, bytes: Vec<u8>) {
        self.outbox.recycle(bytes);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        BootstrapServer::poll_timeout(self)
    }
}
