//! The routing table of BEP 5: buckets that split, node liveness, replacement caches and the
//! queue of buckets to refresh.
//!
//! This module owns [`RoutingTable`], its [`RoutingConfig`], the outcomes it reports to its
//! caller ([`InsertOutcome`], [`FailureOutcome`]), its errors ([`RoutingError`]) and the
//! persistence [`Snapshot`]. Submodules: [`bucket`] (entries, liveness, replacement caches) and
//! [`split_queue`] (the de-duplicated refresh queue). It sends nothing and reads no clock: the
//! caller passes `now`, feeds in what it heard, and gets back whom to ping.
//!
//! This file holds the types, the table's state and its invariants; the rest of
//! `impl RoutingTable` is split by concept: `insert.rs` (nodes heard from or about, failures,
//! removals, splits), `closest.rs` (the `k` closest entries to a target), `maintenance.rs`
//! (refreshes, liveness pings, deadlines) and `snapshot.rs` (persistence).
//!
//! # Representation
//!
//! The table is a list of buckets indexed by the length of the prefix an id shares with our own
//! id: bucket `i` holds ids sharing exactly `i` leading bits with us, and the last bucket holds
//! everything deeper. Only the last bucket contains our own id, so it is the only one that ever
//! splits (BEP 5); splitting appends a bucket. There are at most 160 buckets.
//!
//! # How the caller feeds it
//!
//! - [`RoutingTable::heard_response`]: a node answered one of our queries (the transaction layer
//!   matched id and address). Only such *verified* nodes become entries.
//! - [`RoutingTable::heard_query`]: a node sent us a query. Refreshes an entry's liveness; an
//!   unknown node is a candidate the caller may ping.
//! - [`RoutingTable::learned`]: a node appeared in a reply's `nodes`. Never trusted; the answer
//!   says whether it is worth a ping.
//! - [`RoutingTable::record_failure`]: a query to an address timed out.
//!
//! # Full buckets
//!
//! When a node arrives for a full bucket that cannot split, a *replaceable* entry gives way at
//! once: a bad one first, else a questionable one that failed its last query (as libtorrent
//! does). Otherwise the newcomer waits in the bucket's replacement cache and the table asks the
//! caller to ping the least recently seen questionable entry ([`InsertOutcome::PingFirst`]); if
//! that ping fails, [`RoutingTable::record_failure`] promotes the best verified candidate into
//! its slot.
//!
//! # Addresses
//!
//! Two entries never share a socket address. By default two entries never share a host either
//! (an IPv4 address, an IPv6 /64: [`crate::host::host_key`]), and a bucket holds at most one
//! entry per network (an IPv4 /24, an IPv6 /64: [`crate::host::network_key`]), as libtorrent
//! does ([`IpPolicy::OnePerIpAndSubnetPerBucket`]); a private or loopback socket address is a
//! network of its own, so local networks are not limited by it. [`IpPolicy::OnePerIp`] keeps
//! only the per-host rule. IPv4-mapped IPv6 addresses count as IPv4. When a
//! verified node conflicts with a holder that is not good, the holder is dropped; a good holder
//! keeps its place. A node answering from an address held by another id replaces that entry
//! (the node there changed its id); an unverified claim never replaces anything, it only earns a
//! ping. A known id answering from a new address moves there only once its entry at the old
//! address has failed a query: a node that still answers where it is keeps its place, whoever
//! claims its id elsewhere.

pub mod bucket;
mod closest;
pub(crate) mod hash_key;
mod insert;
mod maintenance;
mod snapshot;
pub mod split_queue;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;

pub use bucket::{Bucket, Candidate, Entry, Liveness, classify};
pub use snapshot::{Snapshot, SnapshotEntry};
pub use split_queue::{MAX_BUCKETS, SplitQueue};

use hash_key::{AddrKey, IpKey};

use crate::contact::NodeInfo;
use crate::host::{host_key, network_key};
use crate::id::NodeId;
use crate::time::Instant;

/// How the table limits entries that share an address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum IpPolicy {
    /// Only socket addresses must be unique (for local test networks where every node shares
    /// one IP).
    Unrestricted,
    /// At most one entry per host (IPv4 address, IPv6 /64) in the whole table.
    OnePerIp,
    /// One entry per host, and at most one entry per network (public IPv4 /24 or IPv6 /64; a
    /// private or loopback socket address is its own network) in each bucket, as libtorrent
    /// does (the default).
    #[default]
    OnePerIpAndSubnetPerBucket,
}

/// Routing table settings. [`Default`] gives the values documented on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Bucket size K. Default 8 (BEP 5). Values below 1 are treated as 1.
    pub k: usize,
    /// An entry is bad after more than this many consecutive failed queries. Default 3.
    pub max_failures: u32,
    /// Replacement candidates kept per bucket. Default 8 (K).
    pub replacement_cache_size: usize,
    /// Address limits. Default [`IpPolicy::OnePerIpAndSubnetPerBucket`].
    pub ip_policy: IpPolicy,
    /// How long a response (or a query from a node that once answered) keeps a node good.
    /// Default 15 minutes (BEP 5).
    pub good_window: Duration,
    /// A bucket with no activity for this long needs a refresh lookup. Default 15 minutes
    /// (BEP 5).
    pub refresh_interval: Duration,
    /// Minimum time between two refresh lookups taken from the split queue. Default 1 second.
    pub refresh_pop_interval: Duration,
    /// How long a ping the table asked for counts as in flight (the table does not ask again
    /// for the same node meanwhile). Default 30 seconds.
    pub ping_timeout: Duration,
    /// How long a bad entry waits after its first failure beyond `max_failures` before it is
    /// pinged again (doubling with each further failure, up to 64 times), when the table has
    /// no good entry left ([`RoutingTable::bad_pings_due`]). Default 15 seconds.
    pub bad_ping_backoff: Duration,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            k: 8,
            max_failures: 3,
            replacement_cache_size: 8,
            ip_policy: IpPolicy::OnePerIpAndSubnetPerBucket,
            good_window: Duration::from_secs(15 * 60),
            refresh_interval: Duration::from_secs(15 * 60),
            refresh_pop_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(30),
            bad_ping_backoff: Duration::from_secs(15),
        }
    }
}

/// Errors of the routing table, with the meanings of the Python btdht's exceptions of the
/// same names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RoutingError {
    /// Insertion into a full bucket that cannot split (btdht's `BucketFull`).
    BucketFull,
    /// Asked to split a bucket that is not full (btdht's `BucketNotFull`).
    BucketNotFull,
    /// Asked to split a bucket that may not split: it does not contain our own id, or the table
    /// already has 160 buckets.
    CannotSplit,
    /// No such node or bucket (btdht's `NotFound`).
    NotFound,
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoutingError::BucketFull => "the bucket is full and cannot split",
            RoutingError::BucketNotFull => "the bucket is not full",
            RoutingError::CannotSplit => "the bucket does not contain our id or is the deepest",
            RoutingError::NotFound => "no such node or bucket",
        })
    }
}

impl std::error::Error for RoutingError {}

/// Why a node was not taken, not even as a candidate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Rejection {
    /// It has our own id.
    OwnId,
    /// Its id is in the table at another address and that entry has not failed a query since
    /// it last answered.
    AddressMismatch,
    /// A good entry already holds its IP address (or its subnet in that bucket).
    IpConflict,
    /// Its bucket is full of good nodes and its replacement cache keeps better candidates.
    CacheFull,
}

/// What the table did with a node it heard from or about, and what the caller should do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[must_use]
pub enum InsertOutcome {
    /// It is already an entry at this address; its liveness was updated (for a query or a
    /// response) or left alone (for a node learned from a reply).
    Refreshed,
    /// It became a new entry (possibly after one or more splits).
    Added,
    /// It became an entry in place of this one (a bad or failing entry, a stale holder of its
    /// address, or a non-good holder of its subnet).
    Replaced(NodeInfo),
    /// It is not verified, and would get a slot if it answered: ping it. Its answer goes to
    /// [`RoutingTable::heard_response`].
    PingCandidate(NodeInfo),
    /// Its bucket is full: it waits in the replacement cache, and this questionable entry
    /// should be pinged first. If the ping fails, [`RoutingTable::record_failure`] puts the
    /// best verified candidate in its place.
    PingFirst(NodeInfo),
    /// Its bucket is full of good (or already pinged) nodes: it waits in the replacement cache.
    Cached,
    /// Not taken.
    Rejected(Rejection),
}

/// What the table did with a failed query.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[must_use]
pub enum FailureOutcome {
    /// The entry stays; this is its state after the failure.
    Counted(Liveness),
    /// The entry was dropped and a verified candidate from the replacement cache took its slot.
    Replaced {
        /// The entry that failed.
        removed: NodeInfo,
        /// The candidate that took its place.
        added: NodeInfo,
    },
    /// The entry may be replaced but only unverified candidates wait: ping this one (its
    /// answer, through [`RoutingTable::heard_response`], replaces the failing entry).
    PingCandidate(NodeInfo),
    /// The address was a replacement candidate; it was dropped from the cache.
    CandidateDropped,
}

/// The BEP 5 routing table of one node id.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own_id: NodeId,
    config: RoutingConfig,
    buckets: Vec<Bucket>,
    /// Every entry's socket address (lookups only; never iterated).
    by_addr: HashMap<AddrKey, NodeId>,
    /// Every entry's canonical IP, when the policy limits entries per IP (lookups only).
    by_ip: HashMap<IpKey, NodeId>,
    len: usize,
    refresh: SplitQueue,
}

/// The key of the per-host index: the host an entry's IP belongs to ([`host_key`]).
fn ip_key(addr: &SocketAddr) -> IpKey {
    IpKey(host_key(addr.ip()))
}

impl RoutingTable {
    /// An empty table (one bucket covering the whole id space) owned by `own_id`.
    pub fn new(own_id: NodeId, now: Instant, config: RoutingConfig) -> Self {
        let mut config = config;
        config.k = config.k.max(1);
        let refresh = SplitQueue::new(config.refresh_pop_interval);
        RoutingTable {
            own_id,
            config,
            buckets: vec![Bucket::new(now)],
            by_addr: HashMap::new(),
            by_ip: HashMap::new(),
            len: 0,
            refresh,
        }
    }

    /// The id this table belongs to.
    pub fn own_id(&self) -> NodeId {
        self.own_id
    }

    /// The settings in force.
    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    /// The number of entries (good, questionable and bad).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of buckets (1 to 160).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The buckets, by shared prefix length with our id.
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Bucket `index`, or [`RoutingError::NotFound`].
    pub fn bucket(&self, index: usize) -> Result<&Bucket, RoutingError> {
        self.buckets.get(index).ok_or(RoutingError::NotFound)
    }

    /// Every entry, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    /// The index of the bucket whose range contains `id`.
    pub fn bucket_index(&self, id: &NodeId) -> usize {
        self.own_id
            .shared_prefix_len(id)
            .min(self.buckets.len().saturating_sub(1))
    }

    /// The entry with this id.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        let b = self.bucket_index(id);
        self.buckets[b].entries.iter().find(|e| e.info.id == *id)
    }

    /// The entry at this address.
    pub fn get_by_addr(&self, addr: &SocketAddr) -> Option<&Entry> {
        self.by_addr
            .get(&AddrKey(*addr))
            .and_then(|id| self.get(id))
    }

    /// An entry's state at `now`.
    pub fn liveness(&self, now: Instant, entry: &Entry) -> Liveness {
        entry.liveness(now, &self.config)
    }

    /// Checks the table's structural invariants, for tests and fuzz targets: 1 to 160
    /// buckets; at most K entries per bucket and at most `replacement_cache_size`
    /// candidates; every entry and candidate in the bucket its id belongs to; no entry with
    /// our own id; ids and socket addresses unique, and IPs unique when the policy says so;
    /// the address and IP indexes and the length agree with the buckets; the split queue
    /// names existing buckets. Returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let count = self.buckets.len();
        if !(1..=MAX_BUCKETS).contains(&count) {
            return Err(format!("{count} buckets"));
        }
        let last = count - 1;
        let mut ids = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        let mut ips = std::collections::HashSet::new();
        for (i, bucket) in self.buckets.iter().enumerate() {
            if bucket.entries.len() > self.config.k {
                return Err(format!("bucket {i} holds {} > K", bucket.entries.len()));
            }
            if bucket.replacements.len() > self.config.replacement_cache_size {
                return Err(format!(
                    "bucket {i}: {} candidates",
                    bucket.replacements.len()
                ));
            }
            let mut subnets = std::collections::HashSet::new();
            for entry in &bucket.entries {
                let info = entry.info;
                if info.id == self.own_id {
                    return Err("our own id is an entry".into());
                }
                if self.own_id.shared_prefix_len(&info.id).min(last) != i {
                    return Err(format!("{} is in bucket {i}", info.id));
                }
                if !ids.insert(info.id) {
                    return Err(format!("duplicate id {}", info.id));
                }
                if !addrs.insert(info.addr) {
                    return Err(format!("duplicate address {}", info.addr));
                }
                if self.by_addr.get(&AddrKey(info.addr)) != Some(&info.id) {
                    return Err(format!("address index misses {}", info.addr));
                }
                let ip = host_key(info.addr.ip());
                if self.limits_ip() {
                    if !ips.insert(ip) {
                        return Err(format!("two entries on {ip}"));
                    }
                    if self.by_ip.get(&IpKey(ip)) != Some(&info.id) {
                        return Err(format!("IP index misses {ip}"));
                    }
                }
                if self.limits_subnet() && !subnets.insert(network_key(&info.addr)) {
                    return Err(format!("bucket {i}: two entries on the network of {ip}"));
                }
            }
            for candidate in &bucket.replacements {
                let id = candidate.info().id;
                if self.own_id.shared_prefix_len(&id).min(last) != i {
                    return Err(format!("candidate {id} is in bucket {i}"));
                }
            }
        }
        if ids.len() != self.len || self.by_addr.len() != self.len {
            return Err(format!(
                "length {} but {} entries, {} indexed addresses",
                self.len,
                ids.len(),
                self.by_addr.len()
            ));
        }
        if self.limits_ip() && self.by_ip.len() != self.len {
            return Err(format!(
                "{} indexed IPs for {} entries",
                self.by_ip.len(),
                self.len
            ));
        }
        if let Some(i) = self.refresh.iter().find(|&i| i >= count) {
            return Err(format!("split queue names bucket {i} of {count}"));
        }
        Ok(())
    }

    /// The split queue of buckets waiting for a refresh lookup.
    pub fn split_queue(&self) -> &SplitQueue {
        &self.refresh
    }

    fn locate(&self, id: &NodeId) -> Option<(usize, usize)> {
        let b = self.bucket_index(id);
        self.buckets[b].position(id).map(|p| (b, p))
    }

    fn is_good(&self, now: Instant, id: &NodeId) -> bool {
        self.get(id)
            .is_some_and(|e| e.liveness(now, &self.config) == Liveness::Good)
    }

    fn limits_ip(&self) -> bool {
        self.config.ip_policy != IpPolicy::Unrestricted
    }

    fn limits_subnet(&self) -> bool {
        self.config.ip_policy == IpPolicy::OnePerIpAndSubnetPerBucket
    }

    /// Appends an entry to bucket `b` and indexes it. The caller has checked room and policy.
    fn push_entry(&mut self, b: usize, entry: Entry) -> Result<(), RoutingError> {
        let info = entry.info;
        self.buckets
            .get_mut(b)
            .ok_or(RoutingError::NotFound)?
            .push(entry, self.config.k)?;
        self.by_addr.insert(AddrKey(info.addr), info.id);
        if self.limits_ip() {
            self.by_ip.insert(ip_key(&info.addr), info.id);
        }
        self.len += 1;
        Ok(())
    }

    fn remove_at(&mut self, b: usize, p: usize) -> Entry {
        let entry = self.buckets[b].entries.swap_remove(p);
        self.by_addr.remove(&AddrKey(entry.info.addr));
        let ip = ip_key(&entry.info.addr);
        if self.by_ip.get(&ip) == Some(&entry.info.id) {
            self.by_ip.remove(&ip);
        }
        self.len -= 1;
        entry
    }

    /// Where in bucket `b` an entry of the same subnet as `addr` sits (policy permitting).
    fn subnet_holder(&self, b: usize, addr: &SocketAddr, except: &NodeId) -> Option<usize> {
        if !self.limits_subnet() {
            return None;
        }
        let network = network_key(addr);
        self.buckets[b]
            .entries
            .iter()
            .position(|e| e.info.id != *except && network.holds(&e.info.addr))
    }

    /// The entry of bucket `b` that a newcomer may replace without a ping: the bad entry with
    /// the most failures, else the least recently seen questionable entry that failed a query.
    fn replaceable(&self, now: Instant, b: usize) -> Option<usize> {
        let entries = &self.buckets[b].entries;
        let bad = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.liveness(now, &self.config) == Liveness::Bad)
            .max_by_key(|(_, e)| (e.failed_queries, std::cmp::Reverse(e.last_seen())))
            .map(|(i, _)| i);
        bad.or_else(|| {
            entries
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.failed_queries > 0 && e.liveness(now, &self.config) == Liveness::Questionable
                })
                .min_by_key(|(_, e)| e.last_seen())
                .map(|(i, _)| i)
        })
    }

    /// The least recently seen questionable entry of bucket `b` without a ping in flight.
    fn ping_target(&self, now: Instant, b: usize) -> Option<usize> {
        self.buckets[b]
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.liveness(now, &self.config) == Liveness::Questionable
                    && !e.ping_pending(now, self.config.ping_timeout)
            })
            .min_by_key(|(_, e)| e.last_seen())
            .map(|(i, _)| i)
    }

    fn can_split(&self, b: usize) -> bool {
        b + 1 == self.buckets.len() && self.buckets.len() < MAX_BUCKETS
    }
}

#[cfg(test)]
mod tests;
