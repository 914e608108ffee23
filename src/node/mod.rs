//! The sans-IO DHT node: answers queries, runs lookups, keeps its routing table fresh.
//!
//! A [`Node`] owns the routing tables (IPv4 and IPv6, BEP 32), the token manager, the
//! transaction map, the announce store and the running lookups. It never touches a socket or a
//! clock: the caller feeds it datagrams ([`Node::handle_datagram`]) and timer expiries
//! ([`Node::handle_timeout`]) with the current [`Instant`], and drains what it wants sent
//! ([`Node::poll_transmit`]), when it wants to be woken ([`Node::poll_timeout`]) and what
//! happened ([`Node::poll_event`]). Randomness comes from a generator seeded by the caller.
//!
//! This file holds the node's state, its commands and its inputs; the rest of `impl Node` is
//! split by concept: `answer.rs` (replies to queries), `replies.rs` (responses, errors and
//! timeouts of our queries), `operations.rs` (running lookups and announces), `items.rs`
//! (BEP 44 client and server), `identity.rs` (the BEP 42 identity).

mod answer;
mod budget;
pub mod config;
pub mod event;
pub mod external_ip;
mod identity;
mod inspect;
mod items;
pub mod lookup;
mod operations;
pub mod ratelimit;
mod replies;
pub mod stats;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::items::{
    ItemError, ItemStore, MutableItem, StoredItem, check_sizes, immutable_target, mutable_target,
};
use crate::krpc::{
    self, Body, BodyRef, ERROR_PROTOCOL, KrpcError, MessageRef, Outgoing, Query, QueryKind,
    RawValue, Response, Want,
};
use crate::peers::{AddressFamily, PeerStore};
use crate::routing::{FailureOutcome, InsertOutcome, RoutingTable, Snapshot, SnapshotEntry};
use crate::time::Instant;
use crate::token::TokenManager;
use crate::transaction::TransactionMap;
use crate::transmit::{Transmit, TransmitQueue};
use budget::ByteBudget;

pub use config::Config;
pub use event::{
    Event, GetItemResult, LookupKind, PutItemResult, QueryError, RequestId, SampleReply,
};
pub use external_ip::{ExternalIpVote, Vote, VoteConfig, VoteStats};
pub use lookup::{Lookup, LookupOutcome, LookupParams};
pub use ratelimit::{RateLimit, RateLimiter};
pub use stats::{Method, Stats};
pub use verify::{Verifier, VerifyConfig, VerifyStats};

/// The longest transaction id a query may carry and still be answered, in bytes. BEP 5 ids
/// are a few bytes (libtorrent sends 2, uTorrent 4); the decoder keeps any length, but a reply
/// echoes the id, so a longer one would let a query make the node send a datagram as large as
/// the query itself (up to 64 KiB, fragmented or unsendable). Such queries are dropped and
/// counted in [`Stats::oversized_transaction_ids`].
pub const MAX_TRANSACTION_ID_LEN: usize = 64;

/// The largest UDP payload the node sends in reply to a query, in bytes: a reply must not be
/// worth more to an attacker who spoofs the asker's address than it costs to ask, and must
/// pass links with a small MTU unfragmented. A reply over it loses, until it fits, the nodes
/// of the family the asker did not send from (`want n4 n6`), then `values`, then the nodes of
/// its own family, farthest first.
pub const MAX_REPLY_LEN: usize = 1_024;

/// Counts a datagram queued for sending (its bytes), or refused by a full queue.
fn count_queued(stats: &mut Stats, queued: Option<usize>) {
    match queued {
        Some(len) => {
            stats.datagrams_out += 1;
            stats.bytes_out += len as u64;
        }
        None => stats.queue_overflows += 1,
    }
}

/// What a pending query was for.
#[derive(Clone, Debug)]
enum Pending {
    /// A lookup's query to a node whose id we know: the node's `attempt`th.
    Lookup {
        op: RequestId,
        node: NodeInfo,
        attempt: u32,
    },
    /// A lookup's query to a bootstrap address (id unknown).
    Seed { op: RequestId },
    /// An announce_peer of an announce.
    Announce { op: RequestId },
    /// A ping: a user's (`Some`) or the table's liveness check (`None`).
    Ping { request: Option<RequestId> },
    /// A user's sample_infohashes.
    Sample { request: RequestId },
    /// A BEP 44 put of a put request.
    Put { op: RequestId },
}

/// A running multi-step request.
#[derive(Debug)]
enum Operation {
    Lookup {
        kind: LookupKind,
        lookup: Lookup,
        announce: Option<AnnounceParams>,
        /// BEP 33 `noseed` in its get_peers queries.
        noseed: bool,
    },
    Announcing {
        outcome: LookupOutcome,
        sent: usize,
        acknowledged: usize,
        pending: usize,
    },
    /// A BEP 44 put waiting for its acknowledgements.
    Putting {
        result: PutItemResult,
        pending: usize,
    },
}

/// The item part of a BEP 44 get or put lookup, kept next to its [`Operation::Lookup`].
#[derive(Debug)]
struct ItemOp {
    /// What to collect from the replies (`None`: nothing, the get phase of a put).
    want: Option<ItemWant>,
    /// The best item found so far.
    found: Option<StoredItem>,
    /// Replies whose item was refused.
    rejected: u32,
    /// What to put to the closest nodes once the lookup ends (`None`: a get).
    put: Option<ItemPut>,
}

/// Which item a get collects.
#[derive(Debug)]
enum ItemWant {
    /// An immutable item: a value whose SHA-1 is the target.
    Immutable,
    /// A mutable item of this key and salt, at this sequence number or a newer one.
    Mutable {
        public_key: [u8; 32],
        salt: Vec<u8>,
        min_seq: Option<i64>,
    },
}

/// The item a put stores.
#[derive(Debug)]
enum ItemPut {
    /// An immutable item.
    Immutable(RawValue),
    /// A mutable item, with the compare-and-swap sequence number.
    Mutable { item: MutableItem, cas: Option<i64> },
}

/// The announce part of an announce request.
#[derive(Clone, Copy, Debug)]
struct AnnounceParams {
    /// `None`: implied port.
    port: Option<u16>,
    seed: bool,
}

/// The sans-IO Mainline DHT node.
pub struct Node {
    config: Config,
    id: NodeId,
    rng: SmallRng,
    table4: RoutingTable,
    table6: RoutingTable,
    tokens: TokenManager,
    transactions: TransactionMap<Pending>,
    peers: PeerStore,
    items: ItemStore,
    operations: BTreeMap<RequestId, Operation>,
    /// The item part of the running BEP 44 lookups (each also in `operations`).
    item_ops: BTreeMap<RequestId, ItemOp>,
    /// When running operations are cut short ([`Node::set_deadline`]), earliest first.
    deadlines: BTreeSet<(Instant, RequestId)>,
    /// When lookup queries have gone unanswered for `Config::lookup_retry_interval`, earliest
    /// first: when, which lookup, which node, which attempt. At most one per transaction.
    silences: VecDeque<(Instant, RequestId, NodeInfo, u32)>,
    next_request: u64,
    /// Seeds given to [`Node::bootstrap`]: asked when no good node is known, and entries of
    /// the table when they answer.
    bootstrap_nodes: Vec<SocketAddr>,
    /// Seeds given to [`Node::add_router`]: asked when no good node is known, never entries.
    routers: Vec<SocketAddr>,
    last_bootstrap: Option<Instant>,
    outbox: TransmitQueue,
    events: VecDeque<Event>,
    stats: Stats,
    next_tick: Instant,
    limiter: RateLimiter,
    /// The external-address votes (BEP 42 `ip` of replies): IPv4, IPv6.
    vote4: ExternalIpVote,
    vote6: ExternalIpVote,
    /// Unknown query senders waiting for a verification ping.
    verifier: Verifier,
    /// The reply bytes the node may still send ([`Config::reply_bytes_per_second`]).
    reply_budget: ByteBudget,
    /// The lists of the last answer, kept so that the next one allocates none.
    spare: SpareLists,
}

/// The lists of an answer's [`Response`], kept between answers (cleared, with their
/// capacity) so that answering allocates none of them.
#[derive(Debug, Default)]
struct SpareLists {
    nodes: Vec<NodeInfo>,
    nodes6: Vec<NodeInfo>,
    values: Vec<SocketAddr>,
}

impl SpareLists {
    /// Takes back the lists of `response`, once it is encoded.
    fn keep(&mut self, response: &mut Response) {
        if let Some(nodes) = response.nodes.take() {
            self.nodes = nodes;
        }
        if let Some(nodes6) = response.nodes6.take() {
            self.nodes6 = nodes6;
        }
        if let Some(values) = response.values.take() {
            self.values = values;
        }
    }
}

impl Node {
    /// A node with id `id`, its randomness seeded with `seed`, started at `now`. With
    /// [`Config::external_ip`] set to a public address `id` is not BEP 42-valid for, the node
    /// takes a BEP 42 id for that address instead and queues [`Event::IdChanged`].
    pub fn new(config: Config, id: NodeId, seed: u64, now: Instant) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut routing = config.routing.clone();
        routing.k = config.k;
        let mut vote4 = ExternalIpVote::new(false, config.external_ip_vote);
        let mut vote6 = ExternalIpVote::new(true, config.external_ip_vote);
        let mut events = VecDeque::new();
        let mut stats = Stats::default();
        let mut id = id;
        if let Some(ip) = config.external_ip {
            let ip = ip.to_canonical();
            if ip.is_ipv4() {
                vote4.set(ip);
            } else {
                vote6.set(ip);
            }
            if !id.is_bep42_valid_for(ip) {
                let old = id;
                id = NodeId::bep42(ip, rng.random(), &mut rng);
                stats.id_changes += 1;
                events.push_back(Event::IdChanged {
                    old,
                    new: id,
                    external_ip: ip,
                });
            }
        }
        Node {
            vote4,
            vote6,
            verifier: Verifier::new(config.verify, now),
            reply_budget: ByteBudget::new(config.reply_bytes_per_second, now),
            spare: SpareLists::default(),
            table4: RoutingTable::new(id, now, routing.clone()),
            table6: RoutingTable::new(id, now, routing),
            tokens: TokenManager::new(&mut rng, now),
            transactions: TransactionMap::with_config(config.transactions),
            peers: PeerStore::new(config.peers),
            items: ItemStore::new(config.items),
            operations: BTreeMap::new(),
            item_ops: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            silences: VecDeque::new(),
            next_request: 1,
            bootstrap_nodes: Vec::new(),
            routers: Vec::new(),
            last_bootstrap: None,
            outbox: TransmitQueue::default(),
            events,
            stats,
            next_tick: now,
            limiter: RateLimiter::new(
                config.rate_limit_per_ip,
                config.rate_limit_global,
                config.rate_limit_max_ips,
                now,
            )
            .with_new_sources(config.rate_limit_new_sources, now),
            config,
            id,
            rng,
        }
    }

    /// Queues an event. Completions of requests are always kept (they are bounded by the
    /// requests made); informational events are subject to the configuration and the cap.
    fn emit(&mut self, event: Event) {
        let wanted = match &event {
            Event::LookupDone { .. }
            | Event::AnnounceDone { .. }
            | Event::PingDone { .. }
            | Event::SampleDone { .. }
            | Event::GetItemDone { .. }
            | Event::PutItemDone { .. }
            | Event::PeersFound { .. }
            | Event::IdChanged { .. } => {
                self.events.push_back(event);
                return;
            }
            Event::NodeAdded(_) | Event::NodeRemoved(_) => self.config.node_events,
            Event::PeerAnnounced { .. } | Event::GetPeersReceived { .. } => {
                self.config.incoming_events
            }
            Event::QueryReceived { .. } | Event::ResponseReceived { .. } => {
                self.config.query_events
            }
        };
        if !wanted {
            return;
        }
        if self.events.len() >= self.config.max_events {
            self.stats.queue_overflows += 1;
            return;
        }
        self.events.push_back(event);
    }

    fn table(&mut self, addr: &SocketAddr) -> &mut RoutingTable {
        if addr.is_ipv4() || addr.ip().to_canonical().is_ipv4() {
            &mut self.table4
        } else {
            &mut self.table6
        }
    }

    fn new_request(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    // --- commands --------------------------------------------------------------------------

    /// Joins the network through `nodes` (addresses of any DHT nodes) and the routers
    /// ([`Node::add_router`]). They stay seeds: lookups also ask them whenever no node of the
    /// routing tables is good, and the node bootstraps again through them now and then while
    /// that lasts. A node given here enters the table when it answers, like any other.
    /// Addresses the configuration does not accept (port 0; private ones unless
    /// `allow_private`) are skipped, as [`Node::ping`] does. At most 64 seeds are kept.
    pub fn bootstrap(&mut self, now: Instant, nodes: &[SocketAddr]) -> RequestId {
        for node in nodes {
            if self.seed_acceptable(node) {
                self.bootstrap_nodes.push(*node);
            }
        }
        self.last_bootstrap = Some(now);
        self.start_lookup(now, LookupKind::Bootstrap, self.id, None)
    }

    /// Adds `routers` (well-known entry points such as [`crate::DEFAULT_BOOTSTRAP_NODES`]) as
    /// seeds: asked like the nodes of [`Node::bootstrap`], but never entered into the routing
    /// tables nor handed out, and ignored when they appear in replies (libtorrent keeps its
    /// routers out of its table too); an address given to [`Node::bootstrap`] before becomes
    /// a router. Starts nothing: [`Node::bootstrap`] (with no other nodes, or more) or
    /// [`Node::bootstrap_routers`] joins through them.
    pub fn add_router(&mut self, routers: &[SocketAddr]) {
        for router in routers {
            if self.routers.contains(router) {
                continue;
            }
            self.bootstrap_nodes.retain(|node| node != router);
            if self.seed_acceptable(router) {
                self.routers.push(*router);
            }
        }
    }

    /// Adds `routers` ([`Node::add_router`]) to a node that may be running already and joins
    /// through them and the other seeds now ([`Node::bootstrap`]). A router that a routing
    /// table learned as an ordinary node before it was named a router leaves the table.
    pub fn bootstrap_routers(&mut self, now: Instant, routers: &[SocketAddr]) -> RequestId {
        self.add_router(routers);
        for router in routers {
            if !self.is_router(router) {
                continue;
            }
            if let Some(entry) = self.table(router).forget_addr(now, router) {
                self.emit(Event::NodeRemoved(entry.info()));
            }
        }
        self.bootstrap(now, &[])
    }

    /// Whether `addr` may become a new seed (counts it if filtered).
    fn seed_acceptable(&mut self, addr: &SocketAddr) -> bool {
        if !self.config.accepts(addr) {
            self.stats.filtered_addresses += 1;
            return false;
        }
        !self.bootstrap_nodes.contains(addr)
            && !self.routers.contains(addr)
            && self.bootstrap_nodes.len() + self.routers.len() < 64
    }

    /// Whether `addr` is a router ([`Node::add_router`]).
    fn is_router(&self, addr: &SocketAddr) -> bool {
        !self.routers.is_empty() && self.routers.contains(addr)
    }

    /// Whether a node of either routing table is good.
    fn has_good_node(&self, now: Instant) -> bool {
        self.table4.has_good(now) || self.table6.has_good(now)
    }

    /// Looks up the nodes closest to `target`.
    pub fn find_node(&mut self, now: Instant, target: NodeId) -> RequestId {
        self.start_lookup(now, LookupKind::FindNode, target, None)
    }

    /// Looks up peers of `info_hash` (and the closest nodes, with their tokens). Peers are
    /// reported as they arrive ([`Event::PeersFound`]), then all together when it ends.
    pub fn get_peers(&mut self, now: Instant, info_hash: InfoHash) -> RequestId {
        self.get_peers_with(now, info_hash, false)
    }

    /// [`Node::get_peers`], asking with BEP 33 `noseed` set (seeds left out of the answers)
    /// when `noseed` is true.
    pub fn get_peers_with(&mut self, now: Instant, info_hash: InfoHash, noseed: bool) -> RequestId {
        self.start_lookup_with(now, LookupKind::GetPeers, info_hash, None, noseed)
    }

    /// Ends a running lookup or announce now with what it has found so far: its completion
    /// event comes with `outcome.partial` set (an announce still in its lookup sends its
    /// announce_peer queries to the nodes with tokens found so far, without waiting for their
    /// acknowledgements). Returns false if `request` is not running.
    pub fn cancel(&mut self, now: Instant, request: RequestId) -> bool {
        match self.operations.get(&request) {
            None => return false,
            Some(Operation::Lookup { .. }) => {
                if let Some(Operation::Lookup {
                    kind,
                    lookup,
                    announce,
                    ..
                }) = self.operations.remove(&request)
                {
                    self.finish_lookup(now, request, kind, lookup, announce);
                }
            }
            Some(Operation::Announcing { .. }) | Some(Operation::Putting { .. }) => {}
        }
        self.complete_sending(request);
        true
    }

    /// Cuts the running lookup or announce `request` short at `deadline`, as
    /// [`Node::cancel`] would then (a later call replaces nothing: the earliest deadline
    /// wins). Returns false if `request` is not running.
    pub fn set_deadline(&mut self, request: RequestId, deadline: Instant) -> bool {
        if !self.operations.contains_key(&request) {
            return false;
        }
        if self.deadlines.len() >= self.config.max_lookups.saturating_mul(2) {
            // Forget the deadlines of operations that already ended: at most `max_lookups`
            // stay.
            let operations = &self.operations;
            self.deadlines.retain(|(_, r)| operations.contains_key(r));
        }
        self.deadlines.insert((deadline, request));
        true
    }

    /// Announces that we have `info_hash` on `port` (`None`: the port our datagrams come
    /// from, BEP 5's `implied_port`).
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: InfoHash,
        port: Option<u16>,
        seed: bool,
    ) -> RequestId {
        let params = AnnounceParams { port, seed };
        self.start_lookup(now, LookupKind::Announce, info_hash, Some(params))
    }

    /// Pings `addr`.
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> RequestId {
        let request = self.new_request();
        if !self.config.accepts(&addr) {
            self.emit(Event::PingDone {
                request,
                addr,
                result: Err(QueryError::Filtered),
            });
            return request;
        }
        let pending = Pending::Ping {
            request: Some(request),
        };
        if self
            .send_query(now, addr, QueryKind::Ping, pending)
            .is_err()
        {
            self.emit(Event::PingDone {
                request,
                addr,
                result: Err(QueryError::Busy),
            });
        }
        request
    }

    /// Asks `addr` for a BEP 51 sample of its info-hashes around `target`.
    pub fn sample_infohashes(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        target: NodeId,
    ) -> RequestId {
        let request = self.new_request();
        if !self.config.accepts(&addr) {
            self.emit(Event::SampleDone {
                request,
                addr,
                result: Err(QueryError::Filtered),
            });
            return request;
        }
        let kind = QueryKind::SampleInfohashes {
            target,
            want: Want::UNSPECIFIED,
        };
        if self
            .send_query(now, addr, kind, Pending::Sample { request })
            .is_err()
        {
            self.emit(Event::SampleDone {
                request,
                addr,
                result: Err(QueryError::Busy),
            });
        }
        request
    }

    /// Adds a node we trust to be live (from a saved state) as a candidate: it is pinged and
    /// enters the table when it answers.
    pub fn add_known_node(&mut self, now: Instant, node: NodeInfo) {
        if !self.config.accepts(&node.addr) || node.id == self.id || self.is_router(&node.addr) {
            return;
        }
        let outcome = self.table(&node.addr).learned(now, node.id, node.addr);
        self.on_insert(now, outcome);
    }

    /// Loads saved nodes (from a previous run) into the routing tables through the ordinary
    /// insertion rules; each family's nodes go to its table. They come back questionable, so
    /// the maintenance pings re-verify them, and lookups use them as seeds at once. Returns
    /// how many became entries.
    pub fn restore_routing(&mut self, now: Instant, snapshot: &Snapshot) -> usize {
        let accepted =
            |n: &SnapshotEntry| self.config.accepts(&n.node.addr) && n.node.id != self.id;
        let (v4, v6): (Vec<SnapshotEntry>, Vec<SnapshotEntry>) = snapshot
            .nodes
            .iter()
            .filter(|n| accepted(n))
            .partition(|n| n.node.addr.ip().to_canonical().is_ipv4());
        let v4 = Snapshot {
            own_id: snapshot.own_id,
            nodes: v4,
        };
        let v6 = Snapshot {
            own_id: snapshot.own_id,
            nodes: v6,
        };
        self.table4.restore(now, &v4) + self.table6.restore(now, &v6)
    }

    /// Stores a saved announce (from a previous run) as if `peer` announced `info_hash` at
    /// `now`. Returns whether it was stored.
    pub fn restore_peer(
        &mut self,
        now: Instant,
        info_hash: InfoHash,
        peer: SocketAddr,
        seed: bool,
    ) -> bool {
        self.config.accepts(&peer) && self.peers.announce(now, info_hash, peer, seed).is_ok()
    }

    fn send_query(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        kind: QueryKind,
        pending: Pending,
    ) -> Result<(), Pending> {
        let deadline = now + self.config.query_timeout;
        let tid = match self
            .transactions
            .insert(deadline, addr, pending, &mut self.rng)
        {
            Ok(tid) => tid,
            Err(full) => {
                self.stats.transactions_full += 1;
                return Err(full.0);
            }
        };
        self.stats.queries_out[Method::of(&kind) as usize] += 1;
        let query = Query { id: self.id, kind };
        let message = Outgoing {
            transaction_id: tid.as_bytes(),
            version: self.config.version.as_deref(),
            read_only: self.config.read_only,
            requester_ip: None,
            body: BodyRef::Query(&query),
        };
        let max = self.config.max_outbox;
        count_queued(&mut self.stats, self.outbox.push(addr, max, &message));
        Ok(())
    }

    // --- inputs ----------------------------------------------------------------------------

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        if !self.config.accepts(&from) {
            self.stats.filtered_addresses += 1;
            return;
        }
        let decoded = match krpc::decode_ref(bytes) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.stats.reject(error.reason);
                if let Some(reply) = error.reply {
                    if reply.transaction_id.len() > MAX_TRANSACTION_ID_LEN {
                        self.stats.oversized_transaction_ids += 1;
                        return;
                    }
                    if !self.config.read_only && self.rate_allows(now, &from) {
                        self.reply_error(
                            now,
                            from,
                            &reply.transaction_id,
                            reply.code,
                            reply.message,
                        );
                    }
                }
                return;
            }
        };
        if !decoded.canonical {
            self.stats.non_canonical += 1;
        }
        let MessageRef {
            transaction_id,
            read_only,
            requester_ip,
            body,
            ..
        } = decoded;
        match body {
            Body::Query(query) => {
                if transaction_id.len() > MAX_TRANSACTION_ID_LEN {
                    self.stats.oversized_transaction_ids += 1;
                    return;
                }
                if !self.rate_allows(now, &from) {
                    return;
                }
                self.on_query(now, from, &transaction_id, read_only, query)
            }
            Body::Response(response) => {
                self.on_response(now, from, &transaction_id, response, requester_ip)
            }
            Body::Error(error) => self.on_error(now, from, &transaction_id, error),
        }
    }

    /// Whether the rate limits let a query from `from` be answered (counts it if not).
    fn rate_allows(&mut self, now: Instant, from: &SocketAddr) -> bool {
        if self.limiter.allow(now, from.ip()) {
            true
        } else {
            self.stats.rate_limited += 1;
            false
        }
    }

    /// The deadline from [`Node::poll_timeout`] passed (calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, request)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.cancel(now, request);
        }
        while let Some(&(deadline, request, node, attempt)) = self.silences.front() {
            if deadline > now {
                break;
            }
            self.silences.pop_front();
            self.on_silence(now, request, node, attempt);
        }
        for (addr, pending) in self.transactions.expire(now) {
            self.stats.timeouts += 1;
            if let Ok(outcome) = self.table(&addr).record_failure(now, addr) {
                self.on_failure_outcome(now, outcome);
            }
            self.query_failed(now, addr, pending, QueryError::Timeout);
        }
        if now >= self.next_tick {
            self.next_tick = now + self.config.tick_interval;
            self.maintain(now);
        }
    }

    fn maintain(&mut self, now: Instant) {
        self.peers.expire(now);
        self.items.expire(now);
        // Refresh stale buckets, one lookup per tick at most (the split queue's rate).
        self.table4.refresh_due(now);
        self.table6.refresh_due(now);
        if self.operations.len() < self.config.max_lookups / 2 {
            let refresh = self
                .table4
                .pop_refresh(now, &mut self.rng)
                .or_else(|| self.table6.pop_refresh(now, &mut self.rng));
            if let Some((_, target)) = refresh
                && (!self.table4.is_empty() || !self.table6.is_empty())
            {
                self.start_lookup(now, LookupKind::Refresh, target, None);
            }
        }
        self.send_verifications(now);
        // Liveness pings: questionable entries first, then candidates.
        let mut due = self.table4.pings_due(now, self.config.pings_per_tick);
        due.extend(self.table6.pings_due(now, self.config.pings_per_tick));
        for node in due {
            // A candidate (not yet an entry) is pinged at most once per interval, as a query
            // sender is.
            let entry = self.table(&node.addr).get_by_addr(&node.addr).is_some();
            if !entry && !self.verifier.claim(now, node.addr.ip()) {
                continue;
            }
            let _ = self.send_query(
                now,
                node.addr,
                QueryKind::Ping,
                Pending::Ping { request: None },
            );
        }
        // With no good node left (an empty table, or one gone stale in an outage), ping the
        // bad entries again with backoff and go back to the seeds now and then.
        if !self.has_good_node(now) {
            let mut bad = self.table4.bad_pings_due(now, self.config.pings_per_tick);
            bad.extend(self.table6.bad_pings_due(now, self.config.pings_per_tick));
            for node in bad {
                let _ = self.send_query(
                    now,
                    node.addr,
                    QueryKind::Ping,
                    Pending::Ping { request: None },
                );
            }
            let due = self
                .last_bootstrap
                .is_none_or(|last| now >= last + self.config.rebootstrap_interval);
            if due && !(self.bootstrap_nodes.is_empty() && self.routers.is_empty()) {
                self.last_bootstrap = Some(now);
                self.start_lookup(now, LookupKind::Bootstrap, self.id, None);
            }
        }
    }

    fn id_acceptable(&self, id: &NodeId, from: &SocketAddr) -> bool {
        !self.config.enforce_bep42 || id.is_bep42_valid_for(from.ip())
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("nodes", &(self.table4.len() + self.table6.len()))
            .field("operations", &self.operations.len())
            .field("queries_in_flight", &self.transactions.len())
            .finish_non_exhaustive()
    }
}

impl crate::Endpoint for Node {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Node::handle_datagram(self, now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Node::poll_transmit(self)
    }

    fn recycle(&mut self, bytes: Vec<u8>) {
        self.outbox.recycle(bytes);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }
}
