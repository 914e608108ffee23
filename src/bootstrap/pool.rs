//! The pool of verified nodes: compact records kept in id order, ready to be copied into an
//! answer, with an open-addressing index by address.
//!
//! One [`Pool`] holds one address family: `N` is the length of the compact address (6 bytes
//! for IPv4, 18 for IPv6, as in compact node info). A record is exactly a compact node info
//! entry, the node id and the compact address (26 bytes for IPv4, 38 for IPv6), so an answer
//! copies records as they are. Beside the records:
//! - a parallel `Vec<u32>` of words holding the time each node last answered us (seconds, pool
//!   clock, 28 bits) and flags computed once when the node enters: its id is BEP 42-consistent
//!   with its address; its address is on a network ignored without `allow_private`; the
//!   record is hidden (removed or replaced, waiting for the next rebuild to drop it);
//! - a table of `u32` record numbers by address, open addressing with linear probing and
//!   backward-shift deletion, sized to the next power of two of twice the capacity (8.4 bytes
//!   per node at a capacity of one million), holding only the records not hidden.
//!
//! The records are a **sorted region** (in id order, found through a prefix index: where each
//! prefix of the ids starts, one `u32` per about 16 records, so that a search reads one pair
//! of entries and then a few records in a row) followed by a **tail** of the nodes added since the last rebuild, in arrival order.
//! A record never changes in place once written (only its word does): a node that changes id,
//! or is replaced, or removed, is hidden and, if it stays, appended again. So the sorted region
//! stays sorted, and answers (which read only the sorted region) never see the tail until a
//! rebuild merges it in, which [`Pool::index_stale`] asks for once an eighth of the nodes
//! changed. The records may outgrow the capacity by an eighth (hidden records waiting for the
//! rebuild); an insert that finds them at that limit compacts the pool itself, in O(n).
//!
//! So a full IPv4 pool of one million nodes takes about 38.7 bytes per node right after a
//! rebuild (its newest snapshot, tail and indexes) and at most about 42.4 bytes while hidden records and the tail grow;
//! [`Pool::memory_bytes`] measures it from the allocations and a test checks it stays under
//! 48. The pool never holds more than its capacity of nodes: a new node then replaces the
//! stalest of a few nodes at a rotating cursor.
//!
//! A rebuild is split for a pool shared behind a lock: [`Pool::build_index`] does the work
//! that reads the pool (sorting the tail, merging it with the sorted region, copying the
//! records in their new order and indexing their addresses) and can run under a read lock;
//! [`Pool::set_index`] installs it under the write lock, with one pass over the time words in
//! the new order and the changes made in between (nodes hidden or appended meanwhile).
//!
//! **Answers read no lock.** The sorted region with its words is a [`Snapshot`] behind an
//! `Arc`, published by each [`Pool::set_index`]: its records never change, its words are
//! atomics (relaxed loads and stores, plain moves on x86-64 and AArch64). A [`PoolReader`]
//! (one per shard) keeps a clone of the `Arc` and answers from it; before each answer it
//! loads the pool's published generation (one atomic load, no lock, no reference count
//! touched) and takes the new snapshot only after a rebuild. Between rebuilds the pool
//! writes hidden flags and times into the published snapshot's words, so a node hidden
//! (removed, replaced, swept) is never handed out by an answer that starts after it was
//! hidden: no staleness. A replaced snapshot lives on until the last reader refreshes; the
//! bootstrap shards refresh at every answer and every loop turn (at most 100 ms apart), so
//! for that long after a rebuild the old sorted region and its words (30 bytes per IPv4 node)
//! are held beside the new one, as the rebuild's scratch copy was while it ran.
//!
//! This module knows nothing about the network: it stores what the server tells it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;
use rand::Rng;

use crate::address_policy::is_ignored_ip;
use crate::contact::NodeInfo;
use crate::id::NodeId;
use crate::krpc::compact;

const EMPTY: u32 = u32::MAX;
/// Entries examined to pick the one a new node replaces when the pool is full.
const EVICTION_CHOICES: usize = 4;
/// Candidates examined around the target when answering with the closest nodes.
const CLOSEST_SCAN: usize = 256;
/// Records per entry of a snapshot's prefix index, about (a power of two).
const RECORDS_PER_PREFIX: usize = 16;
/// The most records of one prefix searched linearly rather than by bisection.
const LINEAR_SEARCH_MAX: usize = 64;
/// Records on each side of the target's prefix that [`Snapshot::prefetch`] loads too (an
/// answer reads past its prefix when the prefix holds fewer than twice the nodes asked for).
const PREFETCH_NEIGHBOURS: usize = 8;
/// The most bits of a snapshot's prefix index (4 MiB of entries).
const MAX_PREFIX_BITS: u32 = 20;
/// The most nodes one answer ([`Pool::closest_compact`], [`Pool::sample_compact`]) holds.
pub const MAX_ANSWER: usize = 64;

/// Word flag: the record is hidden (removed or replaced) until the next rebuild drops it.
const HIDDEN: u32 = 1 << 31;
/// Word flag: the node's id is BEP 42-consistent with its address.
const BEP42: u32 = 1 << 30;
/// Word flag: the node's address is on a network ignored without `allow_private`.
const IGNORED: u32 = 1 << 29;
/// Word flag: the node's port is 0.
const PORT_ZERO: u32 = 1 << 28;
/// The time part of a word (seconds, about 8.5 years).
const SEEN: u32 = (1 << 28) - 1;

/// One node of the pool: a compact node info entry (id, then compact address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Record<const N: usize> {
    id: [u8; 20],
    addr: [u8; N],
}

/// What [`Pool::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new node was added.
    Added,
    /// The node was known: its time (and id, if it changed) was refreshed.
    Refreshed,
    /// The pool was full: the new node replaced a stale one.
    Replaced,
    /// The address cannot be stored in this pool (wrong family).
    Refused,
}

/// Which pool nodes an answer may hold, and which it ranks first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Hand out nodes on private, loopback and reserved networks too (nodes on port 0 never).
    pub allow_private: bool,
    /// Hand out only nodes whose id is BEP 42-consistent with their address.
    pub bep42_strict: bool,
    /// Rank BEP 42-consistent nodes before the others (else by distance alone).
    pub prefer_bep42: bool,
    /// Never hand out the node at this address (the asker).
    pub exclude_addr: Option<SocketAddr>,
    /// Never hand out a node with this id (the asker's).
    pub exclude_id: Option<NodeId>,
}

impl NodeFilter {
    /// Every node on a non-zero port, ranked by distance alone.
    pub const ALL: NodeFilter = NodeFilter {
        allow_private: true,
        bep42_strict: false,
        prefer_bep42: false,
        exclude_addr: None,
        exclude_id: None,
    };
}

/// A filter with the asker's address packed for one pool.
struct Packed<const N: usize> {
    /// Word flags that exclude a record.
    refuse: u32,
    /// Word flags a record must have.
    require: u32,
    /// The flag that ranks a record first (0: none does).
    prefer: u32,
    addr: Option<[u8; N]>,
    id: Option<[u8; 20]>,
}

impl<const N: usize> Packed<N> {
    fn new(filter: &NodeFilter) -> Self {
        Packed {
            refuse: HIDDEN | PORT_ZERO | if filter.allow_private { 0 } else { IGNORED },
            require: if filter.bep42_strict { BEP42 } else { 0 },
            prefer: if filter.prefer_bep42 { BEP42 } else { 0 },
            addr: filter.exclude_addr.as_ref().and_then(Pool::<N>::pack),
            id: filter.exclude_id.map(|id| id.0),
        }
    }

    /// Whether a record with word `word` may be handed out.
    #[inline]
    fn takes(&self, record: &Record<N>, word: u32) -> bool {
        word & self.refuse == 0
            && word & self.require == self.require
            && self.addr.is_none_or(|a| a != record.addr)
            && self.id.is_none_or(|id| id != record.id)
    }

    /// Whether a record with word `word` ranks after the preferred ones.
    #[inline]
    fn later(&self, word: u32) -> bool {
        word & self.prefer != self.prefer
    }
}

/// A rebuilt layout of a pool, from [`Pool::build_index`], for [`Pool::set_index`].
#[derive(Debug)]
pub struct Rebuild<const N: usize> {
    /// The pool's layout number when this was built (it must not have changed since).
    layout: u64,
    /// Records in the pool when this was built.
    len: usize,
    /// The old record number of each new record.
    order: Vec<u32>,
    records: Vec<Record<N>>,
    /// The prefix index of `records`.
    prefixes: PrefixIndex,
    table: Vec<u32>,
}

/// The sorted region of a pool as answers read it: its records in id order and their words.
///
/// Published by each rebuild ([`Pool::set_index`]) and shared, behind an `Arc`, by the pool
/// and every [`PoolReader`]: the records never change once published; the words are atomics
/// that the pool (under its owner's write lock) keeps updating until the next rebuild
/// publishes a new snapshot, so a reader sees a node hidden the moment it is hidden.
#[derive(Debug)]
pub struct Snapshot<const N: usize> {
    /// Number of the rebuild that published it (0: the empty snapshot of a new pool).
    generation: u64,
    records: Vec<Record<N>>,
    words: Vec<AtomicU32>,
    prefixes: PrefixIndex,
}

/// Where each id prefix starts in records kept in id order, so that a search reads one pair
/// of entries and then only the records of one prefix (a few cache lines in a row) instead
/// of a binary search's scattered cache misses over the whole region.
#[derive(Debug, Default)]
struct PrefixIndex {
    /// `starts[p]` is the first record whose id's first `bits` bits are `p` or more
    /// (`2^bits + 1` entries, the last one the number of records).
    starts: Vec<u32>,
    /// The prefix length: about one prefix per [`RECORDS_PER_PREFIX`] records.
    bits: u32,
}

impl PrefixIndex {
    /// The index of `records`, which are in id order.
    fn of<const N: usize>(records: &[Record<N>]) -> Self {
        let bits = (records.len() / RECORDS_PER_PREFIX)
            .checked_ilog2()
            .unwrap_or(0)
            .min(MAX_PREFIX_BITS);
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        for (i, record) in records.iter().enumerate() {
            let prefix = Self::entry(bits, prefix8(&record.id));
            while starts.len() <= prefix {
                starts.push(i as u32);
            }
        }
        starts.resize((1 << bits) + 1, records.len() as u32);
        PrefixIndex { starts, bits }
    }

    /// The entry of an id whose first 8 bytes are `prefix8`.
    #[inline]
    fn entry(bits: u32, prefix8: u64) -> usize {
        prefix8.checked_shr(64 - bits).unwrap_or(0) as usize
    }

    /// The record numbers (of `len` records) of the ids sharing the first `bits` bits of an
    /// id whose first 8 bytes are `prefix8`: where a search for that id looks.
    #[inline]
    fn range(&self, prefix8: u64, len: usize) -> std::ops::Range<usize> {
        let p = Self::entry(self.bits, prefix8);
        match (self.starts.get(p), self.starts.get(p + 1)) {
            (Some(&lo), Some(&hi)) if lo <= hi && hi as usize <= len => lo as usize..hi as usize,
            _ => 0..len,
        }
    }

    /// Bytes allocated.
    fn memory_bytes(&self) -> usize {
        self.starts.capacity() * 4
    }
}

/// Where a pool publishes its snapshots, for its readers.
#[derive(Debug)]
struct Published<const N: usize> {
    /// The generation of `newest`, loaded by readers at every answer.
    generation: AtomicU64,
    /// The newest snapshot; locked only to publish one and for a reader to take it.
    newest: Mutex<Arc<Snapshot<N>>>,
}

/// A reader of a [`Pool`] (one per shard): answers from the pool's newest snapshot without
/// taking the lock the pool lives behind.
///
/// [`PoolReader::refresh`] costs one atomic load when nothing was published since (no lock,
/// no reference count touched); after a rebuild it takes the new snapshot (a short private
/// lock and one reference count increment) and lets go of the old one, which is freed once
/// every reader has let go of it.
#[derive(Debug)]
pub struct PoolReader<const N: usize> {
    published: Arc<Published<N>>,
    snapshot: Arc<Snapshot<N>>,
}

impl<const N: usize> PoolReader<N> {
    /// Takes the pool's newest snapshot if a rebuild published one since the last call;
    /// whether it did.
    pub fn refresh(&mut self) -> bool {
        if self.published.generation.load(Ordering::Acquire) == self.snapshot.generation {
            return false;
        }
        self.snapshot = self.published.newest.lock().clone();
        true
    }

    /// The snapshot this reader answers from (as of its last [`PoolReader::refresh`]).
    pub fn snapshot(&self) -> &Snapshot<N> {
        &self.snapshot
    }
}

/// A bounded set of verified nodes of one address family (`N` = compact address length: 6 for
/// IPv4, 18 for IPv6).
#[derive(Debug)]
pub struct Pool<const N: usize> {
    /// The sorted region (record numbers `0..snapshot.records.len()`), as published.
    snapshot: Arc<Snapshot<N>>,
    published: Arc<Published<N>>,
    /// The tail (record numbers from `snapshot.records.len()` on), in arrival order.
    tail: Vec<Record<N>>,
    /// Time and flags of each tail record.
    tail_words: Vec<u32>,
    /// Records not hidden.
    live: usize,
    table: Vec<u32>,
    mask: usize,
    /// Records appended or hidden since the last rebuild.
    changed: usize,
    capacity: usize,
    /// The most records (live and hidden) kept before an insert compacts the pool.
    limit: usize,
    /// Bumped whenever records move (so that a rebuild built before is refused).
    layout: u64,
    evict_cursor: usize,
    sweep_cursor: usize,
    hash_key: u64,
}

/// The IPv4 pool.
pub type Pool4 = Pool<6>;
/// The IPv6 pool.
pub type Pool6 = Pool<18>;

fn mix(mut x: u64) -> u64 {
    // splitmix64's finalizer.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The XOR distance from `id` to the target `(hi, lo)`, as integers.
#[inline]
fn distance(id: &[u8; 20], target: (u128, u32)) -> (u128, u32) {
    // As `NodeId::sort_key`, straight from the record (without copying the id).
    let mut hi = [0u8; 16];
    let mut lo = [0u8; 4];
    hi.copy_from_slice(&id[..16]);
    lo.copy_from_slice(&id[16..]);
    (
        u128::from_be_bytes(hi) ^ target.0,
        u32::from_be_bytes(lo) ^ target.1,
    )
}

/// The first 8 bytes of `id` as an integer (big-endian, so in id order).
#[inline]
fn prefix8(id: &[u8; 20]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&id[..8]);
    u64::from_be_bytes(bytes)
}

/// `a < b` for the packed keys of [`Pool::closest_each`] (the tuple's own comparison, written
/// out: two integer comparisons).
#[inline]
fn less(a: &(u128, u64), b: &(u128, u64)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Bits of prefix `id` shares with the target.
#[inline]
fn shared(id: &[u8; 20], target: (u128, u32)) -> u32 {
    match distance(id, target) {
        (0, lo) => 128 + lo.leading_zeros(),
        (hi, _) => hi.leading_zeros(),
    }
}

/// The record numbered `i` of a pool whose sorted region is `sorted` and tail `tail`.
#[inline]
fn record_at<'a, const N: usize>(
    sorted: &'a [Record<N>],
    tail: &'a [Record<N>],
    i: usize,
) -> Option<&'a Record<N>> {
    match i.checked_sub(sorted.len()) {
        None => sorted.get(i),
        Some(j) => tail.get(j),
    }
}

/// The node a record holds.
fn info<const N: usize>(record: &Record<N>) -> Option<NodeInfo> {
    compact::decode_addr(&record.addr).map(|addr| NodeInfo::new(NodeId(record.id), addr))
}

/// The compact address of `addr` for a pool of compact address length `N`, if of its family.
fn pack<const N: usize>(addr: &SocketAddr) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    match addr {
        SocketAddr::V4(a) if N == 6 => out[..4].copy_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) if N == 18 => out[..16].copy_from_slice(&a.ip().octets()),
        _ => return None,
    }
    out[N - 2..].copy_from_slice(&addr.port().to_be_bytes());
    Some(out)
}

/// Records with one id examined by [`Snapshot::fresh`] (ids are not unique across addresses).
const FRESH_SCAN: usize = 8;

impl<const N: usize> Snapshot<N> {
    /// The snapshot of `records` (in id order, indexed by `prefixes`) and their `words`.
    fn new(
        generation: u64,
        records: Vec<Record<N>>,
        words: Vec<AtomicU32>,
        prefixes: PrefixIndex,
    ) -> Self {
        Snapshot {
            generation,
            records,
            words,
            prefixes,
        }
    }

    /// Nodes in the snapshot, hidden ones included.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the snapshot holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The number of the rebuild that published this snapshot (0: none yet).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Starts loading what an answer for `target` will read (the records of the target's
    /// prefix and of a few neighbours on each side, with their words), so that when several
    /// queries arrive together their cache misses overlap instead of each answer waiting for
    /// its own in turn. The loads are real reads kept by `black_box` (safe code has no
    /// prefetch instruction), one per cache line, none depending on another.
    #[inline]
    pub fn prefetch(&self, target: &[u8; 20]) {
        let range = self.prefixes.range(prefix8(target), self.records.len());
        let start = range.start.saturating_sub(PREFETCH_NEIGHBOURS);
        let end = (range.end + PREFETCH_NEIGHBOURS).min(self.records.len());
        let records = &self.records[start..end];
        // Every cache line the records span holds a record's first byte or its last.
        let step = (64 / std::mem::size_of::<Record<N>>()).max(1);
        for record in records.iter().step_by(step) {
            std::hint::black_box(record.id[0]);
        }
        for word in self.words[start..end].iter().step_by(16) {
            std::hint::black_box(word.load(Ordering::Relaxed));
        }
    }

    /// The number of the first record whose id is `id` or greater: within the id's prefix,
    /// a linear count of the records whose first 8 bytes are smaller when the prefix holds
    /// few records (its loads do not depend on each other, so their cache misses overlap,
    /// where a binary search waits for each in turn), else a binary search; then past the
    /// records whose first 8 bytes tie and whose whole id is smaller.
    #[inline]
    fn position(&self, id: &[u8; 20]) -> usize {
        let target_prefix = prefix8(id);
        let range = self.prefixes.range(target_prefix, self.records.len());
        // The answer reads these records' words next: loading the first one now (kept by
        // `black_box`, which the optimiser cannot see through) overlaps its cache miss with
        // the records' instead of waiting for it after them.
        if let Some(word) = self.words.get(range.start) {
            std::hint::black_box(word.load(Ordering::Relaxed));
        }
        let records = &self.records[range.clone()];
        let below = if records.len() <= LINEAR_SEARCH_MAX {
            records
                .iter()
                .map(|r| usize::from(prefix8(&r.id) < target_prefix))
                .sum()
        } else {
            records.partition_point(|r| prefix8(&r.id) < target_prefix)
        };
        range.start
            + below
            + records[below..]
                .iter()
                .take_while(|r| prefix8(&r.id) == target_prefix && r.id < *id)
                .count()
    }

    /// Whether the node `id` at `addr` is in the snapshot, not hidden, and last answered at
    /// or after `since` (pool seconds). A node added since the snapshot was published is not
    /// seen. Binary search by id, then at most a few records of that id.
    pub fn fresh(&self, id: &NodeId, addr: &SocketAddr, since: u32) -> bool {
        let Some(addr) = pack::<N>(addr) else {
            return false;
        };
        let at = self.position(&id.0);
        self.records[at..]
            .iter()
            .zip(&self.words[at..])
            .take(FRESH_SCAN)
            .take_while(|(r, _)| r.id == id.0)
            .any(|(r, w)| {
                let w = w.load(Ordering::Relaxed);
                r.addr == addr && w & HIDDEN == 0 && w & SEEN >= since
            })
    }

    /// Finds up to `n` (at most [`MAX_ANSWER`]) nodes close to `target` that `filter` takes,
    /// those it prefers first, closest first, and calls `each` with each one's record number.
    /// Exact for nodes within the scanned window.
    fn closest_each(
        &self,
        target: &NodeId,
        n: usize,
        filter: &NodeFilter,
        mut each: impl FnMut(&Record<N>),
    ) {
        let n = n.min(MAX_ANSWER);
        if n == 0 {
            return;
        }
        let records = &self.records[..];
        let len = records.len();
        let target_key = target.sort_key();
        let shared_at = |i: usize| shared(&records[i].id, target_key);
        let at = self.position(&target.0);
        // In id order, the prefix an id shares with the target never grows moving away from
        // the target's position, on either side. So taking the neighbour with the longer
        // shared prefix, 2n times, takes the ids by decreasing shared prefix: the last one
        // taken has the deepest prefix of the target that holds 2n ids.
        let (mut lo, mut hi) = (at, at);
        let mut left = (lo > 0).then(|| shared_at(lo - 1));
        let mut right = (hi < len).then(|| shared_at(hi));
        let mut depth = u32::MAX;
        while hi - lo < 2 * n {
            match (left, right) {
                (Some(l), r) if r.is_none_or(|r| l >= r) => {
                    (lo, depth) = (lo - 1, depth.min(l));
                    left = (lo > 0).then(|| shared_at(lo - 1));
                }
                (_, Some(r)) => {
                    (hi, depth) = (hi + 1, depth.min(r));
                    right = (hi < len).then(|| shared_at(hi));
                }
                _ => break,
            }
        }
        // Then the rest of that prefix's ids, on both sides in turn (at most CLOSEST_SCAN in
        // all, around the target's position).
        while hi - lo < CLOSEST_SCAN {
            let mut grew = false;
            if left.is_some_and(|l| l >= depth) {
                lo -= 1;
                left = (lo > 0).then(|| shared_at(lo - 1));
                grew = true;
            }
            if hi - lo < CLOSEST_SCAN && right.is_some_and(|r| r >= depth) {
                hi += 1;
                right = (hi < len).then(|| shared_at(hi));
                grew = true;
            }
            if !grew {
                break;
            }
        }
        // The best n of the window by (not preferred, distance), kept sorted. A key packs
        // the flag, the 160-bit distance and the position in the window (under 2^8, as
        // CLOSEST_SCAN is 256) into a (u128, u64): one comparison of 24 bytes ranks two.
        const _: () = assert!(CLOSEST_SCAN <= 256);
        let packed = Packed::<N>::new(filter);
        let mut best = [(0u128, 0u64); MAX_ANSWER];
        let mut count = 0;
        for (i, (record, word)) in records[lo..hi].iter().zip(&self.words[lo..hi]).enumerate() {
            let word = word.load(Ordering::Relaxed);
            if !packed.takes(record, word) {
                continue;
            }
            let (d_hi, d_lo) = distance(&record.id, target_key);
            let key = (
                (u128::from(packed.later(word)) << 127) | (d_hi >> 1),
                ((d_hi as u64 & 1) << 40) | (u64::from(d_lo) << 8) | i as u64,
            );
            if count == n && !less(&key, &best[n - 1]) {
                continue;
            }
            let mut pos = count.min(n - 1);
            while pos > 0 && less(&key, &best[pos - 1]) {
                best[pos] = best[pos - 1];
                pos -= 1;
            }
            best[pos] = key;
            count = (count + 1).min(n);
        }
        for (_, low) in &best[..count] {
            each(&records[lo + (*low & 0xff) as usize]);
        }
    }

    /// Appends up to `n` (at most [`MAX_ANSWER`]) nodes close to `target` that `filter`
    /// takes, as compact node info (26 bytes each for IPv4, 38 for IPv6), those it prefers
    /// first, closest first; returns how many. See [`Snapshot::closest`].
    pub fn closest_compact(
        &self,
        target: &NodeId,
        n: usize,
        filter: &NodeFilter,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut count = 0;
        self.closest_each(target, n, filter, |record| {
            out.extend_from_slice(&record.id);
            out.extend_from_slice(&record.addr);
            count += 1;
        });
        count
    }

    /// Up to `n` (at most [`MAX_ANSWER`]) nodes close to `target` that `filter` takes, those
    /// it prefers first, closest first. Exact for nodes within the scanned window.
    pub fn closest(&self, target: &NodeId, n: usize, filter: &NodeFilter) -> Vec<NodeInfo> {
        let mut out = Vec::new();
        self.closest_each(target, n, filter, |record| out.extend(info(record)));
        out
    }

    /// Appends up to `n` (at most [`MAX_ANSWER`]) random nodes that `filter` takes, as
    /// compact node info, those it prefers first (at most `4n` draws); returns how many.
    pub fn sample_compact<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        filter: &NodeFilter,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut count = 0;
        self.sample_each(rng, n, filter, |record| {
            out.extend_from_slice(&record.id);
            out.extend_from_slice(&record.addr);
            count += 1;
        });
        count
    }

    /// Up to `n` (at most [`MAX_ANSWER`]) random nodes that `filter` takes, those it prefers
    /// first (at most `4n` draws).
    pub fn sample<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        filter: &NodeFilter,
    ) -> Vec<NodeInfo> {
        let mut out = Vec::new();
        self.sample_each(rng, n, filter, |record| out.extend(info(record)));
        out
    }

    /// Draws up to `n` (at most [`MAX_ANSWER`]) random distinct nodes that `filter` takes,
    /// those it prefers first (at most `4n` draws), and calls `each` with each.
    fn sample_each<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        filter: &NodeFilter,
        mut each: impl FnMut(&Record<N>),
    ) {
        let n = n.min(MAX_ANSWER);
        let len = self.records.len();
        if len == 0 || n == 0 {
            return;
        }
        let packed = Packed::<N>::new(filter);
        let mut preferred = [0u32; MAX_ANSWER];
        let mut others = [0u32; MAX_ANSWER];
        let (mut np, mut no) = (0, 0);
        for _ in 0..4 * n {
            let i = rng.random_range(0..len);
            let word = self.words[i].load(Ordering::Relaxed);
            if !packed.takes(&self.records[i], word)
                || preferred[..np].contains(&(i as u32))
                || others[..no].contains(&(i as u32))
            {
                continue;
            }
            if !packed.later(word) {
                preferred[np] = i as u32;
                np += 1;
                if np == n {
                    break;
                }
            } else if no < n {
                others[no] = i as u32;
                no += 1;
            }
        }
        for i in preferred[..np].iter().chain(&others[..no]).take(n) {
            each(&self.records[*i as usize]);
        }
    }
}

impl<const N: usize> Pool<N> {
    /// An empty pool for at most `capacity` nodes (at least 1, at most 2^31); `hash_key`
    /// randomises the address index against crafted collisions.
    pub fn new(capacity: usize, hash_key: u64) -> Self {
        let capacity = capacity.clamp(1, 1 << 31);
        let slots = (capacity * 2).next_power_of_two();
        let snapshot = Arc::new(Snapshot::new(
            0,
            Vec::new(),
            Vec::new(),
            PrefixIndex::of::<N>(&[]),
        ));
        Pool {
            published: Arc::new(Published {
                generation: AtomicU64::new(0),
                newest: Mutex::new(snapshot.clone()),
            }),
            snapshot,
            tail: Vec::new(),
            tail_words: Vec::new(),
            live: 0,
            table: vec![EMPTY; slots],
            mask: slots - 1,
            changed: 0,
            capacity,
            limit: capacity + capacity / 8 + 64,
            layout: 0,
            evict_cursor: 0,
            sweep_cursor: 0,
            hash_key,
        }
    }

    /// A reader of this pool's snapshots (see [`PoolReader`]), holding the newest one.
    pub fn reader(&self) -> PoolReader<N> {
        PoolReader {
            published: self.published.clone(),
            snapshot: self.snapshot.clone(),
        }
    }

    /// The pool's newest snapshot (what answers read).
    pub fn snapshot(&self) -> &Snapshot<N> {
        &self.snapshot
    }

    /// Nodes in the pool.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The most nodes the pool holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes allocated by the pool (its newest snapshot's records and words, the tail and its
    /// words, the address index). A snapshot replaced by a rebuild is not counted: it lives on
    /// until every reader has refreshed (see the module documentation).
    pub fn memory_bytes(&self) -> usize {
        let record = std::mem::size_of::<Record<N>>();
        self.snapshot.records.capacity() * record
            + self.snapshot.words.capacity() * 4
            + self.snapshot.prefixes.memory_bytes()
            + self.tail.capacity() * record
            + self.tail_words.capacity() * 4
            + self.table.capacity() * 4
    }

    fn pack(addr: &SocketAddr) -> Option<[u8; N]> {
        pack::<N>(addr)
    }

    /// Records in the sorted region.
    fn sorted(&self) -> usize {
        self.snapshot.records.len()
    }

    /// Records in all (sorted region and tail, hidden ones included).
    fn total(&self) -> usize {
        self.snapshot.records.len() + self.tail.len()
    }

    /// Record number `i` (below [`Pool::total`]).
    fn record(&self, i: usize) -> &Record<N> {
        match i.checked_sub(self.sorted()) {
            None => &self.snapshot.records[i],
            Some(j) => &self.tail[j],
        }
    }

    /// The word of record number `i` (below [`Pool::total`]).
    fn word(&self, i: usize) -> u32 {
        match i.checked_sub(self.sorted()) {
            None => self.snapshot.words[i].load(Ordering::Relaxed),
            Some(j) => self.tail_words[j],
        }
    }

    /// Sets the word of record number `i` (below [`Pool::total`]).
    fn set_word(&mut self, i: usize, word: u32) {
        match i.checked_sub(self.sorted()) {
            None => self.snapshot.words[i].store(word, Ordering::Relaxed),
            Some(j) => self.tail_words[j] = word,
        }
    }

    fn home(hash_key: u64, mask: usize, addr: &[u8; N]) -> usize {
        let mut h = hash_key;
        for chunk in addr.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = mix(h ^ u64::from_le_bytes(word));
        }
        (h as usize) & mask
    }

    /// Position in `table` of `addr`, or of the empty slot where it would go, for the records
    /// `sorted` then `tail`.
    fn find(
        table: &[u32],
        mask: usize,
        hash_key: u64,
        (sorted, tail): (&[Record<N>], &[Record<N>]),
        addr: &[u8; N],
    ) -> (usize, Option<u32>) {
        let mut i = Self::home(hash_key, mask, addr);
        loop {
            let slot = table[i];
            if slot == EMPTY {
                return (i, None);
            }
            if record_at(sorted, tail, slot as usize).is_some_and(|r| r.addr == *addr) {
                return (i, Some(slot));
            }
            i = (i + 1) & mask;
        }
    }

    fn probe(&self, addr: &[u8; N]) -> (usize, Option<u32>) {
        Self::find(
            &self.table,
            self.mask,
            self.hash_key,
            (&self.snapshot.records, &self.tail),
            addr,
        )
    }

    /// The flags of a node entering the pool, computed once.
    fn flags(node: &NodeInfo) -> u32 {
        let mut flags = 0;
        if node.id.is_bep42_valid_for(node.addr.ip()) {
            flags |= BEP42;
        }
        if is_ignored_ip(node.addr.ip()) {
            flags |= IGNORED;
        }
        if node.addr.port() == 0 {
            flags |= PORT_ZERO;
        }
        flags
    }

    /// Whether `addr` is in the pool, and when it last answered.
    pub fn seen(&self, addr: &SocketAddr) -> Option<u32> {
        let packed = Self::pack(addr)?;
        let (_, slot) = self.probe(&packed);
        slot.map(|s| self.word(s as usize) & SEEN)
    }

    /// Adds a verified node, or refreshes it, at time `now` (pool seconds, kept to 28 bits).
    pub fn insert(&mut self, node: NodeInfo, now: u32) -> Inserted {
        let Some(addr) = Self::pack(&node.addr) else {
            return Inserted::Refused;
        };
        let now = now.min(SEEN);
        let (_, slot) = self.probe(&addr);
        if let Some(slot) = slot {
            let slot = slot as usize;
            let word = self.word(slot);
            if self.record(slot).id == node.id.0 {
                self.set_word(slot, (word & !SEEN) | (word & SEEN).max(now));
                return Inserted::Refreshed;
            }
            // A new id at a known address: a new record (records never change in place).
            let seen = (word & SEEN).max(now);
            self.hide(slot);
            self.append(node.id.0, addr, Self::flags(&node) | seen);
            return Inserted::Refreshed;
        }
        let word = Self::flags(&node) | now;
        if self.live < self.capacity {
            self.append(node.id.0, addr, word);
            return Inserted::Added;
        }
        // Full: replace the stalest of a few nodes at the cursor.
        let len = self.total();
        let mut victim = None;
        let mut choices = 0;
        for _ in 0..len {
            let j = self.evict_cursor % len;
            self.evict_cursor = j + 1;
            let word = self.word(j);
            if word & HIDDEN != 0 {
                continue;
            }
            if victim.is_none_or(|v: usize| word & SEEN < self.word(v) & SEEN) {
                victim = Some(j);
            }
            choices += 1;
            if choices == EVICTION_CHOICES {
                break;
            }
        }
        if let Some(victim) = victim {
            self.hide(victim);
        }
        self.append(node.id.0, addr, word);
        Inserted::Replaced
    }

    /// Appends a record to the tail and indexes its address (compacting first at the limit).
    fn append(&mut self, id: [u8; 20], addr: [u8; N], word: u32) {
        if self.total() >= self.limit {
            self.rebuild_index();
        }
        if self.tail.len() == self.tail.capacity() {
            let grow = self.tail.len().max(1024).min(self.limit - self.total());
            self.tail.reserve_exact(grow);
            self.tail_words.reserve_exact(grow);
        }
        let (pos, _) = self.probe(&addr);
        self.table[pos] = self.total() as u32;
        self.tail.push(Record { id, addr });
        self.tail_words.push(word);
        self.live += 1;
        self.changed += 1;
    }

    /// Hides record `slot` and removes it from the address index.
    fn hide(&mut self, slot: usize) {
        let addr = self.record(slot).addr;
        self.unindex(&addr);
        let word = self.word(slot);
        self.set_word(slot, word | HIDDEN);
        self.live -= 1;
        self.changed += 1;
    }

    /// Removes `addr` from the address index.
    fn unindex(&mut self, addr: &[u8; N]) {
        let (mut i, slot) = self.probe(addr);
        if slot.is_none() {
            return;
        }
        self.table[i] = EMPTY;
        // Backward-shift deletion: move later members of the cluster into the hole.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.table[j];
            if s == EMPTY {
                break;
            }
            let Some(record) = record_at(&self.snapshot.records, &self.tail, s as usize) else {
                break;
            };
            let k = Self::home(self.hash_key, self.mask, &record.addr);
            let movable = if i <= j {
                k <= i || k > j
            } else {
                k <= i && k > j
            };
            if movable {
                self.table[i] = s;
                self.table[j] = EMPTY;
                i = j;
            }
        }
    }

    /// Removes the node at `addr`; whether it was there.
    pub fn remove(&mut self, addr: &SocketAddr) -> bool {
        let Some(packed) = Self::pack(addr) else {
            return false;
        };
        let (_, Some(slot)) = self.probe(&packed) else {
            return false;
        };
        self.hide(slot as usize);
        true
    }

    /// Whether enough changed since the last rebuild to rebuild (an eighth of the nodes, or
    /// any change while small, or the records near their limit).
    pub fn index_stale(&self) -> bool {
        self.changed > 0
            && (self.changed >= self.live / 8
                || self.live < 4096
                || self.total() + (self.limit - self.capacity) / 2 >= self.limit)
    }

    /// Rebuilds now: drops the hidden records and merges the tail into the sorted region
    /// (O(n + t log t) for a tail of t; the server calls it from its timer when
    /// [`Pool::index_stale`], in two halves, see [`Pool::build_index`]).
    pub fn rebuild_index(&mut self) {
        let rebuild = self.build_index();
        self.set_index(rebuild);
    }

    /// The work of a rebuild that only reads the pool (for [`Pool::set_index`]; lets a caller
    /// run it under a read lock).
    ///
    /// Sorts the tail by plain `u64` keys (the id's first 4 bytes, then the record number)
    /// made in one sequential pass, then each run of equal first 4 bytes by whole id, merges
    /// it with the sorted region (skipping hidden records), copies the records in that order
    /// and indexes their addresses. Scratch memory while it runs: a second copy of the records
    /// and of the address index, 4 bytes per record and 8 per tail record.
    pub fn build_index(&self) -> Rebuild<N> {
        let sorted = &self.snapshot.records[..];
        let sorted_words = &self.snapshot.words[..];
        let tail = &self.tail[..];
        let prefix = |r: &Record<N>| u32::from_be_bytes([r.id[0], r.id[1], r.id[2], r.id[3]]);
        // Record numbers fit in 32 bits, below EMPTY: the limit is under 2^31 + 2^29.
        let mut keys: Vec<u64> = (0..tail.len())
            .filter(|j| self.tail_words[*j] & HIDDEN == 0)
            .map(|j| (u64::from(prefix(&tail[j])) << 32) | (sorted.len() + j) as u64)
            .collect();
        keys.sort_unstable();
        let at = |i: u32| &tail[i as usize - sorted.len()];
        let mut tail_order: Vec<u32> = keys.iter().map(|k| *k as u32).collect();
        let mut start = 0;
        for run in keys.chunk_by(|a, b| a >> 32 == b >> 32) {
            if run.len() > 1 {
                let by_id = |a: &u32, b: &u32| at(*a).id.cmp(&at(*b).id);
                tail_order[start..start + run.len()].sort_unstable_by(by_id);
            }
            start += run.len();
        }
        drop(keys);
        let live_sorted =
            (0..sorted.len()).filter(|i| sorted_words[*i].load(Ordering::Relaxed) & HIDDEN == 0);
        let mut order = Vec::with_capacity(self.live);
        let mut tail_order = tail_order.into_iter().peekable();
        for i in live_sorted {
            while let Some(t) = tail_order.next_if(|t| at(*t).id < sorted[i].id) {
                order.push(t);
            }
            order.push(i as u32);
        }
        order.extend(tail_order);
        let new_records: Vec<Record<N>> = order
            .iter()
            .map(|i| match sorted.get(*i as usize) {
                Some(record) => *record,
                None => *at(*i),
            })
            .collect();
        let mut table = vec![EMPTY; self.table.len()];
        for (j, record) in new_records.iter().enumerate() {
            let (pos, _) = Self::find(
                &table,
                self.mask,
                self.hash_key,
                (&new_records, &[]),
                &record.addr,
            );
            table[pos] = j as u32;
        }
        Rebuild {
            layout: self.layout,
            len: self.total(),
            order,
            prefixes: PrefixIndex::of(&new_records),
            records: new_records,
            table,
        }
    }

    /// Installs a rebuild from [`Pool::build_index`]: one pass over the time words in the new
    /// order, then the changes made since it was built (records hidden are dropped from the
    /// address index, records appended join the new tail); then publishes the new sorted
    /// region as the pool's newest [`Snapshot`] for its readers. Refuses (and returns
    /// `false`) a rebuild of an older layout (the pool compacted itself in between).
    pub fn set_index(&mut self, rebuild: Rebuild<N>) -> bool {
        if rebuild.layout != self.layout {
            return false;
        }
        let words: Vec<AtomicU32> = rebuild
            .order
            .iter()
            .map(|i| AtomicU32::new(self.word(*i as usize)))
            .collect();
        // Appended since the build: the tail records from `rebuild.len` on.
        let kept_from = rebuild.len - self.sorted();
        let old_tail = std::mem::take(&mut self.tail);
        let old_tail_words = std::mem::take(&mut self.tail_words);
        self.snapshot = Arc::new(Snapshot::new(
            self.snapshot.generation + 1,
            rebuild.records,
            words,
            rebuild.prefixes,
        ));
        self.table = rebuild.table;
        self.changed = 0;
        self.layout += 1;
        // Hidden since the build: out of the address index (they go at the next rebuild).
        for j in 0..self.sorted() {
            if self.snapshot.words[j].load(Ordering::Relaxed) & HIDDEN != 0 {
                let addr = self.snapshot.records[j].addr;
                self.unindex(&addr);
                self.changed += 1;
            }
        }
        let extra = old_tail.len() - kept_from;
        self.tail.reserve_exact(extra);
        self.tail_words.reserve_exact(extra);
        for (record, word) in old_tail[kept_from..]
            .iter()
            .zip(&old_tail_words[kept_from..])
        {
            if word & HIDDEN == 0 {
                let (pos, _) = self.probe(&record.addr);
                self.table[pos] = self.total() as u32;
            }
            self.tail.push(*record);
            self.tail_words.push(*word);
            self.changed += 1;
        }
        // Publish: the snapshot first, then its generation (which readers load).
        *self.published.newest.lock() = self.snapshot.clone();
        self.published
            .generation
            .store(self.snapshot.generation, Ordering::Release);
        true
    }

    /// Appends up to `n` (at most [`MAX_ANSWER`]) nodes close to `target` that `filter`
    /// takes, from the newest snapshot; see [`Snapshot::closest_compact`].
    pub fn closest_compact(
        &self,
        target: &NodeId,
        n: usize,
        filter: &NodeFilter,
        out: &mut Vec<u8>,
    ) -> usize {
        self.snapshot.closest_compact(target, n, filter, out)
    }

    /// Up to `n` nodes close to `target` that `filter` takes, from the newest snapshot; see
    /// [`Snapshot::closest`].
    pub fn closest(&self, target: &NodeId, n: usize, filter: &NodeFilter) -> Vec<NodeInfo> {
        self.snapshot.closest(target, n, filter)
    }

    /// Appends up to `n` random nodes that `filter` takes, from the newest snapshot; see
    /// [`Snapshot::sample_compact`].
    pub fn sample_compact<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        filter: &NodeFilter,
        out: &mut Vec<u8>,
    ) -> usize {
        self.snapshot.sample_compact(rng, n, filter, out)
    }

    /// Up to `n` random nodes that `filter` takes, from the newest snapshot; see
    /// [`Snapshot::sample`].
    pub fn sample<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        filter: &NodeFilter,
    ) -> Vec<NodeInfo> {
        self.snapshot.sample(rng, n, filter)
    }

    /// Visits up to `n` records from a rotating cursor: nodes last seen before `drop_before`
    /// are removed; those seen before `stale_before` are returned (to be pinged again).
    pub fn sweep(&mut self, n: usize, stale_before: u32, drop_before: u32) -> Vec<NodeInfo> {
        let mut stale = Vec::new();
        let total = self.total();
        for _ in 0..n.min(total) {
            let i = self.sweep_cursor % total;
            self.sweep_cursor = i + 1;
            let word = self.word(i);
            if word & HIDDEN != 0 {
                continue;
            }
            let seen = word & SEEN;
            if seen < drop_before {
                self.hide(i);
            } else if seen < stale_before {
                stale.extend(info(self.record(i)));
            }
        }
        stale
    }

    /// Every node with its last-seen time, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeInfo, u32)> + '_ {
        (0..self.total()).filter_map(|i| {
            let word = self.word(i);
            if word & HIDDEN != 0 {
                return None;
            }
            info(self.record(i)).map(|node| (node, word & SEEN))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn node(i: u32, rng: &mut SmallRng) -> NodeInfo {
        let ip = std::net::Ipv4Addr::from(0x0100_0000 + i);
        NodeInfo::new(NodeId::random(rng), SocketAddr::from((ip, 6881)))
    }

    #[test]
    fn insert_refresh_remove_and_evict() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut pool = Pool4::new(100, 7);
        let nodes: Vec<NodeInfo> = (0..150).map(|i| node(i, &mut rng)).collect();
        for (i, n) in nodes.iter().take(100).enumerate() {
            assert_eq!(pool.insert(*n, i as u32), Inserted::Added);
        }
        assert_eq!(pool.insert(nodes[5], 500), Inserted::Refreshed);
        assert_eq!(pool.seen(&nodes[5].addr), Some(500));
        for (i, n) in nodes.iter().enumerate().skip(100) {
            assert_eq!(pool.insert(*n, 1000 + i as u32), Inserted::Replaced);
        }
        assert_eq!(pool.len(), 100);
        // Every stored node is findable by address, and nothing else is.
        let stored: Vec<NodeInfo> = pool.iter().map(|(n, _)| n).collect();
        for n in &nodes {
            assert_eq!(pool.seen(&n.addr).is_some(), stored.contains(n));
        }
        for n in &stored[..50] {
            assert!(pool.remove(&n.addr));
            assert!(!pool.remove(&n.addr));
        }
        assert_eq!(pool.len(), 50);
        for n in &stored[50..] {
            assert!(pool.seen(&n.addr).is_some());
        }
        let v6: SocketAddr = "[2001::1]:1".parse().unwrap();
        assert_eq!(
            pool.insert(NodeInfo::new(NodeId([1; 20]), v6), 0),
            Inserted::Refused
        );
    }

    #[test]
    fn closest_matches_brute_force_after_rebuild() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut pool = Pool4::new(5000, 9);
        let nodes: Vec<NodeInfo> = (0..5000).map(|i| node(i, &mut rng)).collect();
        for n in &nodes {
            pool.insert(*n, 0);
        }
        pool.rebuild_index();
        for _ in 0..50 {
            let target = NodeId::random(&mut rng);
            let got = pool.closest(&target, 8, &NodeFilter::ALL);
            let mut want = nodes.clone();
            want.sort_by_key(|n| target.distance(&n.id));
            assert_eq!(got, want[..8].to_vec());
        }
        let sample = pool.sample(&mut rng, 8, &NodeFilter::ALL);
        assert_eq!(sample.len(), 8);
    }

    /// Ids in tight clusters (200 sharing 4 bytes, 200 sharing 16) and targets inside and
    /// beside the clusters: the answer is still the exact closest 8. (A prefix shared by more
    /// ids than `CLOSEST_SCAN` is only scanned around the target: approximate by design.)
    #[test]
    fn closest_matches_brute_force_with_clustered_ids() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut pool = Pool4::new(4000, 3);
        let mut nodes = Vec::new();
        for i in 0..4000u32 {
            let mut id = NodeId::random(&mut rng);
            match i % 20 {
                0 => id.0[..4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]),
                1 => id.0[..16].copy_from_slice(&[0x9a; 16]),
                _ => {}
            }
            let ip = std::net::Ipv4Addr::from(0x0200_0000 + i);
            let node = NodeInfo::new(id, SocketAddr::from((ip, 6881)));
            pool.insert(node, 0);
            nodes.push(node);
        }
        pool.rebuild_index();
        for round in 0..300 {
            let mut target = NodeId::random(&mut rng);
            match round % 3 {
                0 => target.0[..4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]),
                1 => target.0[..15].copy_from_slice(&[0x9a; 15]),
                _ => {}
            }
            let got = pool.closest(&target, 8, &NodeFilter::ALL);
            let mut want = nodes.clone();
            want.sort_by_key(|n| target.distance(&n.id));
            assert_eq!(got, want[..8].to_vec(), "round {round}");
        }
    }

    /// The prefix index finds the same position as a binary search over all records: at
    /// every pool size (no prefix bits up to several), for ids present and absent, and with a
    /// prefix crowded past the linear scan's limit.
    #[test]
    fn prefix_index_finds_what_a_whole_binary_search_finds() {
        let mut rng = SmallRng::seed_from_u64(13);
        for len in (0..120).chain([255, 256, 257, 1000, 5000]) {
            let mut pool = Pool4::new(len.max(1), 1);
            let mut ids = Vec::new();
            for i in 0..len as u32 {
                let mut id = NodeId::random(&mut rng);
                if i % 4 == 0 {
                    // Crowded: a quarter of the ids share their first 3 bytes.
                    id.0[..3].copy_from_slice(&[0x70, 0x01, 0x02]);
                }
                let ip = std::net::Ipv4Addr::from(0x0300_0000 + i);
                pool.insert(NodeInfo::new(id, SocketAddr::from((ip, 6881))), 0);
                ids.push(id);
            }
            pool.rebuild_index();
            let snapshot = pool.snapshot();
            assert_eq!(snapshot.len(), len);
            let mut targets: Vec<[u8; 20]> = ids.iter().map(|id| id.0).collect();
            for _ in 0..200 {
                let mut target = NodeId::random(&mut rng).0;
                if rng.random_bool(0.3) {
                    target[..3].copy_from_slice(&[0x70, 0x01, 0x02]);
                }
                targets.push(target);
            }
            targets.extend([[0; 20], [0xff; 20]]);
            for target in targets {
                let want = snapshot.records.partition_point(|r| r.id < target);
                assert_eq!(snapshot.position(&target), want, "len {len}");
            }
        }
    }

    #[test]
    fn index_sorts_by_whole_id_when_first_bytes_tie() {
        let mut rng = SmallRng::seed_from_u64(5);
        let mut pool = Pool4::new(3000, 11);
        for i in 0..3000u32 {
            let mut id = NodeId::random(&mut rng);
            // Many ids share their first 4 bytes (as crafted ids could); some share 19.
            match i % 3 {
                0 => id.0[..4].copy_from_slice(&[0xab, 0xcd, 0xef, 0x01]),
                1 => id.0[..19].copy_from_slice(&[0x5a; 19]),
                _ => {}
            }
            let ip = std::net::Ipv4Addr::from(0x0100_0000 + i);
            pool.insert(NodeInfo::new(id, SocketAddr::from((ip, 6881))), 0);
        }
        let before: Vec<NodeInfo> = pool.iter().map(|(n, _)| n).collect();
        pool.rebuild_index();
        assert_eq!(pool.sorted(), 3000);
        assert!(
            pool.snapshot.records.windows(2).all(|w| w[0].id <= w[1].id),
            "records not sorted by id"
        );
        let mut after: Vec<NodeInfo> = pool.iter().map(|(n, _)| n).collect();
        let mut before = before;
        before.sort_by_key(|n| n.addr);
        after.sort_by_key(|n| n.addr);
        assert_eq!(before, after, "the rebuild lost or changed nodes");
    }

    #[test]
    fn sweep_drops_old_and_reports_stale() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut pool = Pool4::new(10, 1);
        for i in 0..10 {
            pool.insert(node(i, &mut rng), i * 10);
        }
        let stale = pool.sweep(100, 60, 30);
        assert_eq!(pool.len(), 7);
        assert_eq!(stale.len(), 3); // seen 30, 40, 50
    }

    /// Checks the pool against `model` (address -> node and time): every node findable by
    /// address with its time, nothing else, and the sorted region in id order.
    fn check(pool: &Pool4, model: &std::collections::HashMap<SocketAddr, (NodeInfo, u32)>) {
        assert_eq!(pool.len(), model.len());
        let mut stored: Vec<(NodeInfo, u32)> = pool.iter().collect();
        let mut want: Vec<(NodeInfo, u32)> = model.values().copied().collect();
        stored.sort_by_key(|(n, _)| n.addr);
        want.sort_by_key(|(n, _)| n.addr);
        assert_eq!(stored, want);
        for (node, seen) in model.values() {
            assert_eq!(pool.seen(&node.addr), Some(*seen));
        }
        assert!(pool.snapshot.records.windows(2).all(|w| w[0].id <= w[1].id));
    }

    /// Inserts (new, refreshed, with a new id, replacing), removals and sweeps made between
    /// `build_index` and `set_index` are all kept; after the next rebuild, answers are the
    /// exact closest again.
    #[test]
    fn changes_made_during_a_rebuild_are_kept() {
        let mut rng = SmallRng::seed_from_u64(8);
        let mut pool = Pool4::new(3000, 13);
        let mut model = std::collections::HashMap::new();
        let mut next = 0u32;
        for round in 0..20u32 {
            if pool.index_stale() {
                pool.rebuild_index();
            }
            for _ in 0..200 {
                let node = if next > 0 && rng.random_bool(0.3) {
                    // A known address, half the time with a new id.
                    let i = rng.random_range(0..next);
                    let ip = std::net::Ipv4Addr::from(0x0100_0000 + i);
                    let old = model.get(&SocketAddr::from((ip, 6881))).map(|(n, _)| *n);
                    match old {
                        Some(old) if rng.random_bool(0.5) => old,
                        _ => NodeInfo::new(NodeId::random(&mut rng), SocketAddr::from((ip, 6881))),
                    }
                } else {
                    next += 1;
                    node(next - 1, &mut rng)
                };
                let now = round * 10 + rng.random_range(0..10);
                let seen = model
                    .get(&node.addr)
                    .map_or(now, |(_, s): &(NodeInfo, u32)| now.max(*s));
                match pool.insert(node, now) {
                    Inserted::Replaced => {
                        // Some node left: find which from the pool itself.
                        model.insert(node.addr, (node, seen));
                        model.retain(|addr, _| pool.seen(addr).is_some());
                    }
                    _ => {
                        model.insert(node.addr, (node, seen));
                    }
                }
                if rng.random_bool(0.05) {
                    let victim = *model.keys().next().unwrap();
                    assert!(pool.remove(&victim));
                    model.remove(&victim);
                }
            }
            // Build, change things, install.
            let rebuild = pool.build_index();
            for _ in 0..50 {
                next += 1;
                let n = node(next - 1, &mut rng);
                let now = round * 10 + 9;
                if pool.insert(n, now) == Inserted::Replaced {
                    model.insert(n.addr, (n, now));
                    model.retain(|addr, _| pool.seen(addr).is_some());
                } else {
                    model.insert(n.addr, (n, now));
                }
            }
            let victims: Vec<SocketAddr> = model.keys().take(20).copied().collect();
            for victim in victims {
                assert!(pool.remove(&victim));
                model.remove(&victim);
            }
            assert!(pool.set_index(rebuild));
            check(&pool, &model);
        }
        pool.rebuild_index();
        check(&pool, &model);
        for _ in 0..50 {
            let target = NodeId::random(&mut rng);
            let got = pool.closest(&target, 8, &NodeFilter::ALL);
            let mut want: Vec<NodeInfo> = model.values().map(|(n, _)| *n).collect();
            want.sort_by_key(|n| target.distance(&n.id));
            assert_eq!(got, want[..8].to_vec());
        }
    }

    /// A rebuild built before the pool compacted itself (records at their limit) is refused,
    /// and the pool stays consistent.
    #[test]
    fn a_rebuild_older_than_a_compaction_is_refused() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut pool = Pool4::new(100, 17);
        let mut model = std::collections::HashMap::new();
        for i in 0..100 {
            let n = node(i, &mut rng);
            pool.insert(n, 5);
            model.insert(n.addr, (n, 5));
        }
        let rebuild = pool.build_index();
        // Replacements append records until the limit forces a compaction.
        for i in 100..400 {
            let n = node(i, &mut rng);
            assert_eq!(pool.insert(n, 6), Inserted::Replaced);
            model.insert(n.addr, (n, 6));
            model.retain(|addr, _| pool.seen(addr).is_some());
            assert!(pool.total() <= pool.limit);
        }
        assert!(!pool.set_index(rebuild));
        check(&pool, &model);
    }

    /// The flags computed at insert give the same answers as the checks they replace.
    #[test]
    fn filters_hide_what_they_should() {
        let mut rng = SmallRng::seed_from_u64(10);
        let mut pool = Pool4::new(1000, 19);
        let mut nodes = Vec::new();
        for i in 0..1000u32 {
            let ip = match i % 4 {
                0 => std::net::Ipv4Addr::from(0x0a00_0000 + i), // private
                _ => std::net::Ipv4Addr::from(0x0100_0000 + i * 977),
            };
            let id = if i % 3 == 0 {
                NodeId::bep42(ip.into(), rng.random(), &mut rng)
            } else {
                NodeId::random(&mut rng)
            };
            let port = if i % 50 == 7 { 0 } else { 6881 };
            let n = NodeInfo::new(id, SocketAddr::from((ip, port)));
            pool.insert(n, 0);
            nodes.push(n);
        }
        pool.rebuild_index();
        let asker = nodes[5];
        for (allow_private, strict, prefer) in [
            (false, false, true),
            (true, false, true),
            (false, true, false),
            (true, true, true),
            (true, false, false),
        ] {
            let filter = NodeFilter {
                allow_private,
                bep42_strict: strict,
                prefer_bep42: prefer,
                exclude_addr: Some(asker.addr),
                exclude_id: Some(asker.id),
            };
            let takes = |n: &NodeInfo| {
                n.addr.port() != 0
                    && (allow_private || !is_ignored_ip(n.addr.ip()))
                    && (!strict || n.id.is_bep42_valid_for(n.addr.ip()))
                    && n.addr != asker.addr
                    && n.id != asker.id
            };
            for round in 0..100 {
                // Targets near the asker's id too, so that the exclusion matters.
                let target = if round % 4 == 0 {
                    asker.id
                } else {
                    NodeId::random(&mut rng)
                };
                let got = pool.closest(&target, 8, &filter);
                let later = |n: &NodeInfo| prefer && !n.id.is_bep42_valid_for(n.addr.ip());
                let mut want: Vec<NodeInfo> = nodes.iter().copied().filter(takes).collect();
                want.sort_by_key(|n| target.distance(&n.id));
                want.truncate(8);
                // Fewer than 8 when the scanned window holds fewer that the filter takes (a
                // strict filter on this pool of few BEP 42-consistent nodes).
                assert!(!got.is_empty() && got.len() <= 8);
                assert!(got.iter().all(takes), "{filter:?} round {round}");
                if prefer {
                    // Preferred nodes first, each group by distance; a preferred node among
                    // the 8 closest, within the farthest one handed out, is never displaced.
                    assert!(
                        got.windows(2)
                            .all(|w| (later(&w[0]), target.distance(&w[0].id))
                                <= (later(&w[1]), target.distance(&w[1].id)))
                    );
                    let farthest = got.iter().map(|n| target.distance(&n.id)).max();
                    for n in want
                        .iter()
                        .filter(|n| !later(n) && Some(target.distance(&n.id)) <= farthest)
                    {
                        assert!(got.contains(n), "{filter:?} round {round}");
                    }
                } else {
                    // The closest the filter takes, in order (a window holds every node
                    // closer than one it holds).
                    assert_eq!(got, want[..got.len()], "{filter:?} round {round}");
                }
                let mut compact = Vec::new();
                assert_eq!(
                    pool.closest_compact(&target, 8, &filter, &mut compact),
                    got.len()
                );
                let mut encoded = Vec::new();
                for n in &got {
                    compact::encode_node(&mut encoded, n);
                }
                assert_eq!(compact, encoded);
                let sample = pool.sample(&mut rng, 8, &filter);
                assert!(sample.iter().all(takes));
            }
        }
    }

    /// A reader answers from the snapshot it holds: a node hidden in it is no longer handed
    /// out at once; a rebuild's snapshot is taken at the next refresh, and the replaced one is
    /// freed once its last reader let go of it.
    #[test]
    fn readers_see_hides_at_once_and_rebuilds_at_refresh() {
        let mut rng = SmallRng::seed_from_u64(12);
        let mut pool = Pool4::new(1000, 29);
        let nodes: Vec<NodeInfo> = (0..100).map(|i| node(i, &mut rng)).collect();
        for n in &nodes[..50] {
            pool.insert(*n, 5);
        }
        pool.rebuild_index();
        let mut reader = pool.reader();
        assert!(!reader.refresh());
        let all = |r: &PoolReader<6>| r.snapshot().closest(&NodeId([0; 20]), 64, &NodeFilter::ALL);
        assert_eq!(all(&reader).len(), 50);
        assert!(reader.snapshot().fresh(&nodes[3].id, &nodes[3].addr, 5));
        assert!(!reader.snapshot().fresh(&nodes[3].id, &nodes[3].addr, 6));
        assert!(!reader.snapshot().fresh(&nodes[4].id, &nodes[3].addr, 5));
        assert!(pool.remove(&nodes[3].addr));
        assert_eq!(all(&reader).len(), 49);
        assert!(!all(&reader).contains(&nodes[3]));
        assert!(!reader.snapshot().fresh(&nodes[3].id, &nodes[3].addr, 0));
        for n in &nodes[50..] {
            pool.insert(*n, 5);
        }
        // Not rebuilt yet: the tail is not in the snapshot.
        assert!(!reader.refresh());
        assert_eq!(all(&reader).len(), 49);
        let old = Arc::downgrade(&reader.snapshot);
        pool.rebuild_index();
        assert!(
            old.upgrade().is_some(),
            "the reader still holds the old snapshot"
        );
        assert!(reader.refresh());
        assert!(
            old.upgrade().is_none(),
            "the old snapshot outlived its readers"
        );
        assert_eq!(reader.snapshot().generation(), pool.snapshot().generation());
        assert_eq!(reader.snapshot().len(), 99);
        assert!(reader.snapshot().fresh(&nodes[60].id, &nodes[60].addr, 5));
    }

    /// Replacements on a full pool grow the records by at most an eighth before a rebuild:
    /// still under 48 bytes per IPv4 node.
    #[test]
    fn a_full_pool_with_replacements_stays_under_48_bytes_per_node() {
        let mut rng = SmallRng::seed_from_u64(11);
        let mut pool = Pool4::new(100_000, 23);
        for i in 0..300_000 {
            pool.insert(node(i, &mut rng), i);
            if pool.index_stale() && i % 1000 == 0 {
                pool.rebuild_index();
            }
            let per_node = pool.memory_bytes() as f64 / pool.capacity() as f64;
            assert!(per_node <= 48.0, "{per_node} bytes per node at {i}");
        }
        assert_eq!(pool.len(), 100_000);
    }

    #[test]
    fn a_million_ipv4_nodes_fit_in_48_bytes_each() {
        let mut rng = SmallRng::seed_from_u64(4);
        let mut pool = Pool4::new(1_000_000, 5);
        for i in 0..1_000_000 {
            pool.insert(node(i, &mut rng), 0);
        }
        pool.rebuild_index();
        assert_eq!(pool.len(), 1_000_000);
        let per_node = pool.memory_bytes() as f64 / pool.len() as f64;
        assert!(per_node <= 48.0, "{per_node} bytes per node");
    }
}
