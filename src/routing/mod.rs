//! The routing table of BEP 5: buckets that split, node liveness, replacement caches and the
//! queue of buckets to refresh.
//!
//! This module owns [`RoutingTable`], its [`RoutingConfig`], the outcomes it reports to its
//! caller ([`InsertOutcome`], [`FailureOutcome`]), its errors ([`RoutingError`]) and the
//! persistence [`Snapshot`]. Submodules: [`bucket`] (entries, liveness, replacement caches) and
//! [`split_queue`] (the de-duplicated refresh queue). It sends nothing and reads no clock: the
//! caller passes `now`, feeds in what it heard, and gets back whom to ping.
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
pub(crate) mod hash_key;
pub mod split_queue;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;

pub use bucket::{Bucket, Candidate, Entry, Liveness, classify};
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

/// Errors of the routing table, with the meanings of the original btdht's exceptions.
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

/// One node of a [`Snapshot`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SnapshotEntry {
    /// The node.
    pub node: NodeInfo,
    /// Its state when the snapshot was taken.
    pub liveness: Liveness,
    /// How long before the snapshot it last answered us, if it did in this run.
    pub since_response: Option<Duration>,
    /// Consecutive failed queries when the snapshot was taken.
    pub failed_queries: u32,
}

/// The table's contents in a form fit for persistence: times are relative to the snapshot so
/// they survive a restart (whose clock has another epoch).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Snapshot {
    /// The id the table belonged to.
    pub own_id: NodeId,
    /// Every entry, bucket by bucket.
    pub nodes: Vec<SnapshotEntry>,
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

/// An id as a 160-bit big-endian integer ([`NodeId::sort_key`]).
type SortKey = (u128, u32);

fn sort_key(id: &NodeId) -> SortKey {
    id.sort_key()
}

/// The buckets deeper than `b` (the bucket of `target`) out of `0..=last`, in increasing order of
/// their entries' distance to `target`.
///
/// An entry of bucket `j` (`b < j < last`) agrees with our id on bits `0..j` and differs at
/// bit `j`; `target` agrees with it on bits `0..b` and differs at bit `b`. So the entry's
/// distance to `target` is 0 on bits `0..b`, 1 at bit `b`, `x` (our id XOR `target`) on bits
/// `b + 1..j`, and `!x` at bit `j`: between two buckets `j < j'` (the last one included, whose
/// entries agree with our id on bits `0..last`), bucket `j` is the closer iff `x[j]` is one.
/// The order is therefore: the buckets with `x[j] = 1` in increasing `j`, the last bucket, the
/// buckets with `x[j] = 0` in decreasing `j`. Entries of different buckets never tie.
fn deeper_order(
    own: &NodeId,
    target: &NodeId,
    b: usize,
    last: usize,
) -> impl Iterator<Item = usize> {
    let x = own.distance(target);
    let bit = move |j: usize| (x.0[j / 8] >> (7 - j % 8)) & 1 == 1;
    let middle = (b + 1)..last;
    let closer = middle.clone().filter(move |&j| bit(j));
    let farther = middle.rev().filter(move |&j| !bit(j));
    let last = (last > b).then_some(last);
    closer.chain(last).chain(farther)
}

/// Up to `k` entries closest to a target, from entries offered one by one. Ids in a table are
/// unique, so are their distances: the `k` closest, in order, are well defined.
struct Closest<'t> {
    target: SortKey,
    k: usize,
    /// Entries offered so far.
    offered: usize,
    /// Small `k`: the best so far, sorted once `k` are in (then a bounded insertion, O(n k)
    /// with tiny constants).
    /// Large `k`: every entry offered, selected at the end (O(n)).
    found: Vec<(SortKey, &'t NodeInfo)>,
}

impl<'t> Closest<'t> {
    /// Up to this `k`, insertion into the sorted best-so-far.
    const INSERTION_MAX_K: usize = 32;

    fn new(target: SortKey, k: usize, entries: usize) -> Self {
        let capacity = if k <= Self::INSERTION_MAX_K {
            k + 1
        } else {
            entries
        };
        Closest {
            target,
            k,
            offered: 0,
            found: Vec::with_capacity(capacity),
        }
    }

    fn offer(&mut self, info: &'t NodeInfo) {
        self.offered += 1;
        let (hi, lo) = sort_key(&info.id);
        let key = (hi ^ self.target.0, lo ^ self.target.1);
        if self.k > Self::INSERTION_MAX_K {
            self.found.push((key, info));
            return;
        }
        // The first k are taken as they come, then sorted once; after that, one that beats
        // the worst takes its place.
        if self.found.len() < self.k {
            self.found.push((key, info));
            if self.found.len() == self.k {
                self.found.sort_unstable_by_key(|f| f.0);
            }
            return;
        }
        if self.found.last().is_none_or(|worst| key >= worst.0) {
            return;
        }
        self.found.pop();
        let at = self.found.partition_point(|f| f.0 < key);
        self.found.insert(at, (key, info));
    }

    fn into_sorted(mut self) -> Vec<NodeInfo> {
        if self.k > Self::INSERTION_MAX_K {
            if self.found.len() > self.k {
                self.found.select_nth_unstable_by_key(self.k - 1, |f| f.0);
                self.found.truncate(self.k);
            }
            self.found.sort_unstable_by_key(|f| f.0);
        } else if self.found.len() < self.k {
            // Fewer than k were offered: never sorted.
            self.found.sort_unstable_by_key(|f| f.0);
        }
        self.found.into_iter().map(|(_, info)| *info).collect()
    }
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
            .position(|e| e.info.id != *except && network_key(&e.info.addr) == network)
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

    /// Splits bucket `index`: entries and candidates sharing more than `index` prefix bits with
    /// our id move to a new last bucket. Only the last bucket (the one holding our id) may
    /// split, and only when full. Both halves are queued for a refresh, and verified candidates
    /// are promoted into any room the split made.
    pub fn split_bucket(&mut self, now: Instant, index: usize) -> Result<(), RoutingError> {
        if index >= self.buckets.len() {
            return Err(RoutingError::NotFound);
        }
        if !self.can_split(index) {
            return Err(RoutingError::CannotSplit);
        }
        if self.buckets[index].len() < self.config.k {
            return Err(RoutingError::BucketNotFull);
        }
        let depth = index + 1;
        let own = self.own_id;
        let deeper = |id: &NodeId| own.shared_prefix_len(id) >= depth;
        let old = &mut self.buckets[index];
        let mut new = Bucket::new(now);
        new.last_changed = old.last_changed;
        new.last_refresh = old.last_refresh;
        let (moved, stay): (Vec<Entry>, Vec<Entry>) =
            old.entries.drain(..).partition(|e| deeper(&e.info.id));
        old.entries = stay;
        new.entries = moved;
        let (moved, stay): (Vec<Candidate>, Vec<Candidate>) =
            old.replacements.drain(..).partition(|c| deeper(&c.info.id));
        old.replacements = stay;
        new.replacements = moved;
        self.buckets.push(new);
        self.refresh.push(index);
        self.refresh.push(depth);
        self.fill_from_cache(now, index);
        self.fill_from_cache(now, depth);
        Ok(())
    }

    /// Takes the best verified candidate of bucket `b` that is still admissible, drops the
    /// inadmissible ones met on the way, and makes it an entry. Needs room in the bucket.
    fn promote_one(&mut self, now: Instant, b: usize) -> Option<NodeInfo> {
        if self.buckets.get(b)?.len() >= self.config.k {
            return None;
        }
        loop {
            let best = self.buckets[b]
                .replacements
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_verified())
                .max_by_key(|(_, c)| c.last_seen)
                .map(|(i, _)| i)?;
            let cand = self.buckets[b].replacements.swap_remove(best);
            let info = cand.info;
            let admissible = info.id != self.own_id
                && self.bucket_index(&info.id) == b
                && self.locate(&info.id).is_none()
                && !self.by_addr.contains_key(&AddrKey(info.addr))
                && !(self.limits_ip() && self.by_ip.contains_key(&ip_key(&info.addr)))
                && self.subnet_holder(b, &info.addr, &info.id).is_none();
            if admissible && self.push_entry(b, cand.into_entry()).is_ok() {
                self.buckets[b].last_changed = now;
                return Some(info);
            }
        }
    }

    fn fill_from_cache(&mut self, now: Instant, b: usize) {
        while self.promote_one(now, b).is_some() {}
    }

    /// A node answered one of our queries from `addr` (the caller matched the transaction on id
    /// and address): make it an entry if it fits (splitting, replacing a bad or failing entry),
    /// refresh it if known, else cache it and say whom to ping.
    ///
    /// Before placing it, entries it makes stale are dropped: another id at the same socket
    /// address (that node changed its id), its own id at another address when that entry has
    /// failed a query since it last answered (the node moved), and a non-good entry on the same IP (per [`IpPolicy`]). They stay
    /// dropped even if the newcomer then only reaches the replacement cache. A good entry on the
    /// same IP, or on the same subnet in its bucket, wins: the newcomer is rejected.
    pub fn heard_response(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> InsertOutcome {
        self.insert_verified(now, Entry::responded(now, NodeInfo::new(id, addr)))
    }

    fn insert_verified(&mut self, now: Instant, new: Entry) -> InsertOutcome {
        let info = new.info;
        if info.id == self.own_id {
            return InsertOutcome::Rejected(Rejection::OwnId);
        }
        // Known id.
        let mut stale: Vec<NodeId> = Vec::new();
        if let Some((b, p)) = self.locate(&info.id) {
            let entry = &mut self.buckets[b].entries[p];
            if entry.info.addr == info.addr {
                entry.last_response = entry.last_response.max(new.last_response);
                entry.ever_responded = true;
                if new.last_response.is_some() {
                    entry.failed_queries = 0;
                    entry.ping_requested = None;
                    self.buckets[b].last_changed = now;
                }
                return InsertOutcome::Refreshed;
            }
            if entry.failed_queries == 0 {
                return InsertOutcome::Rejected(Rejection::AddressMismatch);
            }
            stale.push(info.id);
        }
        // Another id at this very address: the node there changed its id.
        if let Some(other) = self.by_addr.get(&AddrKey(info.addr)) {
            if *other != info.id {
                stale.push(*other);
            }
        }
        // Another entry on this IP.
        if self.limits_ip() {
            if let Some(other) = self.by_ip.get(&ip_key(&info.addr)).copied() {
                if other != info.id && !stale.contains(&other) {
                    if self.is_good(now, &other) {
                        return InsertOutcome::Rejected(Rejection::IpConflict);
                    }
                    stale.push(other);
                }
            }
        }
        let mut vacated = Vec::new();
        for id in &stale {
            if let Some((b, p)) = self.locate(id) {
                self.remove_at(b, p);
                vacated.push(b);
            }
        }
        let outcome = self.place_verified(now, new);
        for b in vacated {
            self.fill_from_cache(now, b);
        }
        outcome
    }

    fn place_verified(&mut self, now: Instant, new: Entry) -> InsertOutcome {
        let info = new.info;
        // At most one split per bucket level.
        for _ in 0..=MAX_BUCKETS {
            let b = self.bucket_index(&info.id);
            let full = self.buckets[b].len() >= self.config.k;
            if full && self.can_split(b) {
                if self.split_bucket(now, b).is_err() {
                    break;
                }
                continue;
            }
            if let Some(p) = self.subnet_holder(b, &info.addr, &info.id) {
                if self.buckets[b].entries[p].liveness(now, &self.config) == Liveness::Good {
                    return InsertOutcome::Rejected(Rejection::IpConflict);
                }
                let removed = self.remove_at(b, p);
                return self.push_new(now, b, new, InsertOutcome::Replaced(removed.info));
            }
            if !full {
                return self.push_new(now, b, new, InsertOutcome::Added);
            }
            if let Some(p) = self.replaceable(now, b) {
                let removed = self.remove_at(b, p);
                return self.push_new(now, b, new, InsertOutcome::Replaced(removed.info));
            }
            return self.cache_and_ping(now, b, new_candidate(new));
        }
        // Unreachable: each pass either returns or splits, and there are at most 159 splits.
        InsertOutcome::Rejected(Rejection::CacheFull)
    }

    fn push_new(
        &mut self,
        now: Instant,
        b: usize,
        entry: Entry,
        outcome: InsertOutcome,
    ) -> InsertOutcome {
        let id = entry.info.id;
        match self.push_entry(b, entry) {
            Ok(()) => {
                self.buckets[b].remove_candidate(&id);
                self.buckets[b].last_changed = now;
                outcome
            }
            // Unreachable: every caller made room first.
            Err(_) => InsertOutcome::Rejected(Rejection::CacheFull),
        }
    }

    /// Puts a candidate in bucket `b`'s cache and names the questionable entry to ping first.
    fn cache_and_ping(&mut self, now: Instant, b: usize, cand: Candidate) -> InsertOutcome {
        let kept = self.buckets[b].add_candidate(cand, self.config.replacement_cache_size);
        if let Some(p) = self.ping_target(now, b) {
            let entry = &mut self.buckets[b].entries[p];
            entry.ping_requested = Some(now);
            return InsertOutcome::PingFirst(entry.info);
        }
        if kept {
            InsertOutcome::Cached
        } else {
            InsertOutcome::Rejected(Rejection::CacheFull)
        }
    }

    /// A node sent us a query from `addr`. An entry at that address counts it towards its
    /// liveness; an unknown node is a candidate: ping it if it could get a slot, else it waits
    /// in the replacement cache.
    pub fn heard_query(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> InsertOutcome {
        self.consider_unverified(now, NodeInfo::new(id, addr), true)
    }

    /// Another node told us about `id` at `addr` (a reply's `nodes`). Never changes an entry;
    /// says whether the node is worth a ping.
    pub fn learned(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> InsertOutcome {
        self.consider_unverified(now, NodeInfo::new(id, addr), false)
    }

    fn consider_unverified(&mut self, now: Instant, info: NodeInfo, query: bool) -> InsertOutcome {
        if info.id == self.own_id {
            return InsertOutcome::Rejected(Rejection::OwnId);
        }
        if let Some((b, p)) = self.locate(&info.id) {
            let entry = &mut self.buckets[b].entries[p];
            if entry.info.addr == info.addr {
                if query {
                    entry.last_query = Some(now);
                }
                return InsertOutcome::Refreshed;
            }
            return if entry.failed_queries == 0 {
                InsertOutcome::Rejected(Rejection::AddressMismatch)
            } else {
                InsertOutcome::PingCandidate(info)
            };
        }
        if self.by_addr.contains_key(&AddrKey(info.addr)) {
            // The entry at this address may have changed its id; only an answer can tell.
            return InsertOutcome::PingCandidate(info);
        }
        if self.limits_ip() {
            if let Some(other) = self.by_ip.get(&ip_key(&info.addr)).copied() {
                return if self.is_good(now, &other) {
                    InsertOutcome::Rejected(Rejection::IpConflict)
                } else {
                    InsertOutcome::PingCandidate(info)
                };
            }
        }
        let b = self.bucket_index(&info.id);
        let full = self.buckets[b].len() >= self.config.k;
        if full && self.can_split(b) {
            return InsertOutcome::PingCandidate(info);
        }
        if let Some(p) = self.subnet_holder(b, &info.addr, &info.id) {
            let holder = self.buckets[b].entries[p].info.id;
            return if self.is_good(now, &holder) {
                InsertOutcome::Rejected(Rejection::IpConflict)
            } else {
                InsertOutcome::PingCandidate(info)
            };
        }
        if !full || self.replaceable(now, b).is_some() {
            return InsertOutcome::PingCandidate(info);
        }
        let cand = Candidate {
            info,
            first_seen: now,
            last_seen: now,
            last_response: None,
            ping_requested: None,
        };
        self.cache_and_ping(now, b, cand)
    }

    /// A query we sent to `addr` failed (timed out or was answered with garbage). The entry's
    /// failure count grows; once it may be replaced (bad, or questionable with a failure) the
    /// best verified candidate of its bucket takes its place. A failing replacement candidate
    /// leaves the cache. [`RoutingError::NotFound`] if nothing is known at `addr`.
    pub fn record_failure(
        &mut self,
        now: Instant,
        addr: SocketAddr,
    ) -> Result<FailureOutcome, RoutingError> {
        if let Some(id) = self.by_addr.get(&AddrKey(addr)).copied() {
            let (b, p) = self.locate(&id).ok_or(RoutingError::NotFound)?;
            let entry = &mut self.buckets[b].entries[p];
            entry.failed_queries = entry.failed_queries.saturating_add(1);
            entry.ping_requested = None;
            entry.last_failure = Some(now);
            let liveness = entry.liveness(now, &self.config);
            if liveness == Liveness::Good || self.buckets[b].replacements.is_empty() {
                return Ok(FailureOutcome::Counted(liveness));
            }
            let removed = self.remove_at(b, p);
            if let Some(added) = self.promote_one(now, b) {
                return Ok(FailureOutcome::Replaced {
                    removed: removed.info,
                    added,
                });
            }
            // No admissible verified candidate: put the entry back.
            self.push_entry(b, removed)?;
            let unverified = self.buckets[b]
                .replacements
                .iter_mut()
                .filter(|c| {
                    !c.is_verified()
                        && c.ping_requested.is_none_or(|t| {
                            now.saturating_duration_since(t) >= self.config.ping_timeout
                        })
                })
                .max_by_key(|c| c.last_seen);
            if let Some(c) = unverified {
                c.ping_requested = Some(now);
                return Ok(FailureOutcome::PingCandidate(c.info));
            }
            return Ok(FailureOutcome::Counted(liveness));
        }
        for bucket in &mut self.buckets {
            if let Some(at) = bucket.replacements.iter().position(|c| c.info.addr == addr) {
                bucket.replacements.swap_remove(at);
                return Ok(FailureOutcome::CandidateDropped);
            }
        }
        Err(RoutingError::NotFound)
    }

    /// Removes the entry with this id; a verified candidate may take its slot.
    /// [`RoutingError::NotFound`] if there is no such entry.
    pub fn remove(&mut self, now: Instant, id: &NodeId) -> Result<Entry, RoutingError> {
        let (b, p) = self.locate(id).ok_or(RoutingError::NotFound)?;
        let entry = self.remove_at(b, p);
        self.fill_from_cache(now, b);
        Ok(entry)
    }

    /// Up to `k` good or questionable entries closest to `target` by XOR distance, closest
    /// first. Bad entries are left out.
    ///
    /// Buckets are visited in an order where every bucket's entries are farther from `target`
    /// than the previous ones', so only the buckets needed to reach `k` are sorted.
    pub fn closest(&self, target: &NodeId, k: usize) -> Vec<NodeInfo> {
        self.closest_except(target, k, None)
    }

    /// [`RoutingTable::closest`] leaving out the entry at `except` (the asker, in an answer):
    /// the same as the `k + 1` closest without it, cut to `k`.
    pub(crate) fn closest_except<'t>(
        &'t self,
        target: &NodeId,
        k: usize,
        except: Option<&SocketAddr>,
    ) -> Vec<NodeInfo> {
        if k == 0 {
            return Vec::new();
        }
        let last = self.buckets.len() - 1;
        let b = self.own_id.shared_prefix_len(target).min(last);
        let mut best = Closest::new(sort_key(target), k, self.len);
        let max_failures = self.config.max_failures;
        let take = |bucket: &'t Bucket, best: &mut Closest<'t>| {
            for e in &bucket.entries {
                if e.failed_queries <= max_failures && except != Some(&e.info.addr) {
                    best.offer(&e.info);
                }
            }
        };
        // Closest: the target's own bucket. Then the deeper buckets, whose entries all differ
        // from the target first at bit b, closest bucket first (see `deeper_order`), until k
        // entries are in: every later bucket is farther than all of them. Then shallower
        // buckets, deepest first.
        take(&self.buckets[b], &mut best);
        if best.offered < k {
            for j in deeper_order(&self.own_id, target, b, last) {
                take(&self.buckets[j], &mut best);
                if best.offered >= k {
                    break;
                }
            }
        }
        for bucket in self.buckets[..b].iter().rev() {
            if best.offered >= k {
                break;
            }
            take(bucket, &mut best);
        }
        best.into_sorted()
    }

    /// Queues every bucket without activity (changes, refresh lookups) for the refresh interval
    /// on the split queue. Returns how many were queued.
    pub fn refresh_due(&mut self, now: Instant) -> usize {
        let mut queued = 0;
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            if now >= bucket.refresh_due(self.config.refresh_interval) && self.refresh.push(i) {
                bucket.last_refresh = now;
                queued += 1;
            }
        }
        queued
    }

    /// Takes the next bucket to refresh from the split queue, if the pop interval allows, with
    /// a random target id in its range for the refresh lookup.
    pub fn pop_refresh<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Option<(usize, NodeId)> {
        let index = self.refresh.pop_due(now)?;
        let target = self.refresh_target(index, rng).ok()?;
        if let Some(bucket) = self.buckets.get_mut(index) {
            bucket.last_refresh = now;
        }
        Some((index, target))
    }

    /// A random id in bucket `index`'s range; [`RoutingError::NotFound`] if there is no such
    /// bucket.
    pub fn refresh_target<R: Rng + ?Sized>(
        &self,
        index: usize,
        rng: &mut R,
    ) -> Result<NodeId, RoutingError> {
        if index >= self.buckets.len() {
            return Err(RoutingError::NotFound);
        }
        if index + 1 < self.buckets.len() {
            return Ok(self.own_id.random_at_prefix(index, rng));
        }
        // The last bucket holds every id sharing at least `index` bits with ours.
        let mut id = NodeId::random(rng);
        for bit in 0..index {
            id.set_bit(bit, self.own_id.bit(bit));
        }
        Ok(id)
    }

    /// A lookup for `target` ran: it counts as a refresh of the bucket covering `target`.
    pub fn note_lookup(&mut self, now: Instant, target: &NodeId) {
        let b = self.bucket_index(target);
        self.buckets[b].last_refresh = self.buckets[b].last_refresh.max(now);
    }

    /// Up to `max` nodes the maintenance timer should ping: questionable entries without a ping
    /// in flight, least recently seen first, then unverified candidates of buckets with room.
    /// They are marked as pinged (for [`RoutingConfig::ping_timeout`]) so the next call names
    /// others.
    pub fn pings_due(&mut self, now: Instant, max: usize) -> Vec<NodeInfo> {
        let timeout = self.config.ping_timeout;
        let mut due: Vec<(Instant, usize, NodeId)> = Vec::new();
        for (b, bucket) in self.buckets.iter().enumerate() {
            for e in &bucket.entries {
                if e.liveness(now, &self.config) == Liveness::Questionable
                    && !e.ping_pending(now, timeout)
                {
                    due.push((e.last_seen(), b, e.info.id));
                }
            }
        }
        due.sort_unstable();
        due.truncate(max);
        let mut out = Vec::with_capacity(due.len());
        for (_, b, id) in due {
            if let Some(p) = self.buckets[b].position(&id) {
                let e = &mut self.buckets[b].entries[p];
                e.ping_requested = Some(now);
                out.push(e.info);
            }
        }
        for bucket in &mut self.buckets {
            if out.len() >= max {
                break;
            }
            if bucket.entries.len() >= self.config.k {
                continue;
            }
            for c in &mut bucket.replacements {
                if out.len() >= max {
                    break;
                }
                let pending = c
                    .ping_requested
                    .is_some_and(|t| now.saturating_duration_since(t) < timeout);
                if !c.is_verified() && !pending {
                    c.ping_requested = Some(now);
                    out.push(c.info);
                }
            }
        }
        out
    }

    /// Whether any entry is good at `now`.
    pub fn has_good(&self, now: Instant) -> bool {
        self.entries()
            .any(|e| e.liveness(now, &self.config) == Liveness::Good)
    }

    /// Up to `max` bad entries due for another ping, longest waiting first, marked as pinged.
    /// A bad entry is left out of lookups and replies, but when the table has no good entry
    /// left (an outage on our side or on theirs) the caller pings them again so that the ones
    /// still there come back: an entry that failed `n` queries beyond `max_failures` waits
    /// [`RoutingConfig::bad_ping_backoff`] times `2^(n - 1)` (at most 64 times) after its last
    /// failure.
    pub fn bad_pings_due(&mut self, now: Instant, max: usize) -> Vec<NodeInfo> {
        let config = &self.config;
        let mut due: Vec<(Instant, usize, NodeId)> = Vec::new();
        for (b, bucket) in self.buckets.iter().enumerate() {
            for e in &bucket.entries {
                if e.liveness(now, config) != Liveness::Bad
                    || e.ping_pending(now, config.ping_timeout)
                {
                    continue;
                }
                let beyond = e
                    .failed_queries
                    .saturating_sub(config.max_failures + 1)
                    .min(6);
                let wait = config.bad_ping_backoff.saturating_mul(1 << beyond);
                let since = e.last_failure.unwrap_or(e.first_seen);
                if now >= since + wait {
                    due.push((since, b, e.info.id));
                }
            }
        }
        due.sort_unstable();
        due.truncate(max);
        let mut out = Vec::with_capacity(due.len());
        for (_, b, id) in due {
            if let Some(p) = self.buckets[b].position(&id) {
                let e = &mut self.buckets[b].entries[p];
                e.ping_requested = Some(now);
                out.push(e.info);
            }
        }
        out
    }

    /// The earliest time something in the table needs attention: the split queue allows a
    /// pop, a bucket needs a refresh, or a good entry turns questionable. `None` when nothing
    /// is pending. The answer may be `now` or earlier (work is due).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next = self.refresh.next_due();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for (i, bucket) in self.buckets.iter().enumerate() {
            if !self.refresh.contains(i) {
                consider(bucket.refresh_due(self.config.refresh_interval));
            }
            for e in &bucket.entries {
                if let Some(t) = e.good_until(self.config.good_window) {
                    if t > now && e.failed_queries <= self.config.max_failures {
                        consider(t);
                    }
                }
            }
        }
        next
    }

    /// The entries as a persistence snapshot at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot {
            own_id: self.own_id,
            nodes: self
                .entries()
                .map(|e| SnapshotEntry {
                    node: e.info,
                    liveness: e.liveness(now, &self.config),
                    since_response: e.last_response.map(|t| now.saturating_duration_since(t)),
                    failed_queries: e.failed_queries,
                })
                .collect(),
        }
    }

    /// Loads a snapshot's good and questionable nodes, most recently answered first, through
    /// the ordinary insertion rules (K, splits, address policy). They come back questionable:
    /// they did answer once, but not in this run, so the maintenance pings re-verify them.
    /// Returns how many became entries.
    pub fn restore(&mut self, now: Instant, snapshot: &Snapshot) -> usize {
        let mut nodes: Vec<&SnapshotEntry> = snapshot
            .nodes
            .iter()
            .filter(|n| n.liveness != Liveness::Bad)
            .collect();
        nodes.sort_by_key(|n| n.since_response.unwrap_or(Duration::MAX));
        let mut added = 0;
        for n in nodes {
            let entry = Entry {
                info: n.node,
                first_seen: now,
                last_response: None,
                last_query: None,
                failed_queries: 0,
                ever_responded: true,
                ping_requested: None,
                last_failure: None,
            };
            if matches!(
                self.insert_verified(now, entry),
                InsertOutcome::Added | InsertOutcome::Replaced(_)
            ) {
                added += 1;
            }
        }
        added
    }
}

fn new_candidate(entry: Entry) -> Candidate {
    Candidate {
        info: entry.info,
        first_seen: entry.first_seen,
        last_seen: entry.last_seen(),
        last_response: entry.last_response,
        ping_requested: None,
    }
}

#[cfg(test)]
mod tests;
