//! The pool of verified nodes: a compact table of packed entries with an open-addressing index
//! by address and a lazily rebuilt index sorted by node id.
//!
//! One [`Pool`] holds one address family: `N` is the length of the compact address (6 bytes
//! for IPv4, 18 for IPv6, as in compact node info). An entry is the node id (20 bytes), the
//! compact address and the time it last answered us (a `u32` of seconds), so 32 bytes for IPv4
//! (30 rounded up to the alignment of the `u32`). The indexes add:
//! - a table of `u32` entry numbers by address, open addressing with linear probing and
//!   backward-shift deletion, sized to the next power of two of twice the capacity (8.4 bytes
//!   per node at a capacity of one million);
//! - a `Vec<u32>` of entry numbers sorted by id (4 bytes per node), rebuilt when enough has
//!   changed, used to find the nodes closest to a target.
//!
//! So a full IPv4 pool of one million nodes takes about 44.4 bytes per node;
//! [`Pool::memory_bytes`] measures it from the allocations and a test checks it stays under
//! 48. The pool never grows past its capacity: a new node then replaces the stalest of a few
//! entries at a rotating cursor.
//!
//! This module knows nothing about the network: it stores what the server tells it.

use std::net::SocketAddr;

use rand::Rng;

use crate::contact::NodeInfo;
use crate::id::NodeId;
use crate::krpc::compact;

const EMPTY: u32 = u32::MAX;
/// Entries examined to pick the one a new node replaces when the pool is full.
const EVICTION_CHOICES: usize = 4;
/// Candidates examined around the target when answering with the closest nodes.
const CLOSEST_SCAN: usize = 256;

/// One node of the pool: id, compact address, last time it answered (seconds, pool clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry<const N: usize> {
    id: [u8; 20],
    addr: [u8; N],
    seen: u32,
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

/// A bounded set of verified nodes of one address family (`N` = compact address length: 6 for
/// IPv4, 18 for IPv6).
#[derive(Debug)]
pub struct Pool<const N: usize> {
    entries: Vec<Entry<N>>,
    table: Vec<u32>,
    mask: usize,
    sorted: Vec<u32>,
    changed: usize,
    capacity: usize,
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

impl<const N: usize> Pool<N> {
    /// An empty pool for at most `capacity` nodes (at least 1, at most 2^31); `hash_key`
    /// randomises the address index against crafted collisions.
    pub fn new(capacity: usize, hash_key: u64) -> Self {
        let capacity = capacity.clamp(1, 1 << 31);
        let slots = (capacity * 2).next_power_of_two();
        Pool {
            entries: Vec::new(),
            table: vec![EMPTY; slots],
            mask: slots - 1,
            sorted: Vec::new(),
            changed: 0,
            capacity,
            evict_cursor: 0,
            sweep_cursor: 0,
            hash_key,
        }
    }

    /// Nodes in the pool.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most nodes the pool holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes allocated by the pool (entries, address index, sorted index).
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry<N>>()
            + self.table.capacity() * 4
            + self.sorted.capacity() * 4
    }

    fn pack(addr: &SocketAddr) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        match addr {
            SocketAddr::V4(a) if N == 6 => out[..4].copy_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) if N == 18 => out[..16].copy_from_slice(&a.ip().octets()),
            _ => return None,
        }
        out[N - 2..].copy_from_slice(&addr.port().to_be_bytes());
        Some(out)
    }

    fn home(&self, addr: &[u8; N]) -> usize {
        let mut h = self.hash_key;
        for chunk in addr.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = mix(h ^ u64::from_le_bytes(word));
        }
        (h as usize) & self.mask
    }

    /// Position in `table` of `addr`, or of the empty slot where it would go.
    fn probe(&self, addr: &[u8; N]) -> (usize, Option<u32>) {
        let mut i = self.home(addr);
        loop {
            let slot = self.table[i];
            if slot == EMPTY {
                return (i, None);
            }
            if self
                .entries
                .get(slot as usize)
                .is_some_and(|e| e.addr == *addr)
            {
                return (i, Some(slot));
            }
            i = (i + 1) & self.mask;
        }
    }

    fn entry_info(entry: &Entry<N>) -> Option<NodeInfo> {
        compact::decode_addr(&entry.addr).map(|addr| NodeInfo::new(NodeId(entry.id), addr))
    }

    /// Whether `addr` is in the pool, and when it last answered.
    pub fn seen(&self, addr: &SocketAddr) -> Option<u32> {
        let packed = Self::pack(addr)?;
        let (_, slot) = self.probe(&packed);
        slot.map(|s| self.entries[s as usize].seen)
    }

    /// Adds a verified node, or refreshes it, at time `now` (pool seconds).
    pub fn insert(&mut self, node: NodeInfo, now: u32) -> Inserted {
        let Some(addr) = Self::pack(&node.addr) else {
            return Inserted::Refused;
        };
        let (pos, slot) = self.probe(&addr);
        if let Some(slot) = slot {
            let entry = &mut self.entries[slot as usize];
            if entry.id != node.id.0 {
                entry.id = node.id.0;
                self.changed += 1;
            }
            entry.seen = entry.seen.max(now);
            return Inserted::Refreshed;
        }
        let entry = Entry {
            id: node.id.0,
            addr,
            seen: now,
        };
        if self.entries.len() < self.capacity {
            if self.entries.len() == self.entries.capacity() {
                let grow = self.entries.len().max(1024);
                self.entries
                    .reserve_exact(grow.min(self.capacity - self.entries.len()));
            }
            self.table[pos] = self.entries.len() as u32;
            self.entries.push(entry);
            self.changed += 1;
            return Inserted::Added;
        }
        // Full: replace the stalest of a few entries at the cursor.
        let len = self.entries.len();
        let mut victim = self.evict_cursor % len;
        for k in 1..EVICTION_CHOICES.min(len) {
            let j = (self.evict_cursor + k) % len;
            if self.entries[j].seen < self.entries[victim].seen {
                victim = j;
            }
        }
        self.evict_cursor = (self.evict_cursor + EVICTION_CHOICES) % len;
        let old = self.entries[victim].addr;
        self.unindex(&old);
        self.entries[victim] = entry;
        let (pos, _) = self.probe(&addr);
        self.table[pos] = victim as u32;
        self.changed += 1;
        Inserted::Replaced
    }

    /// Removes `addr` from the address index (the entry itself stays where it is).
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
            let Some(entry) = self.entries.get(s as usize) else {
                break;
            };
            let k = self.home(&entry.addr);
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
        self.unindex(&packed);
        let slot = slot as usize;
        let last = self.entries.len() - 1;
        if slot != last {
            let moved = self.entries[last].addr;
            let (pos, _) = self.probe(&moved);
            self.table[pos] = slot as u32;
        }
        self.entries.swap_remove(slot);
        self.changed += 1;
        true
    }

    /// Whether enough changed since the sorted index was built to rebuild it (a quarter of
    /// the nodes, or any change while small).
    pub fn index_stale(&self) -> bool {
        self.changed > 0 && (self.changed >= self.entries.len() / 4 || self.entries.len() < 4096)
    }

    /// Rebuilds the index sorted by id (O(n log n); the server calls it from its timer when
    /// [`Pool::index_stale`]).
    pub fn rebuild_index(&mut self) {
        let index = self.build_index();
        self.set_index(index);
    }

    /// A fresh index sorted by id (for [`Pool::set_index`]; lets a caller sort under a read
    /// lock).
    ///
    /// Sorts plain `u64` keys (the id's first 4 bytes, then the entry number) made in one
    /// sequential pass over the entries, then sorts each run of equal first 4 bytes by whole
    /// id. Comparing ids through entry numbers instead costs a cache miss per comparison once
    /// the entries outgrow the cache: two thirds of loading a one-million-node pool. The keys
    /// are 8 bytes per node of scratch memory while it runs.
    pub fn build_index(&self) -> Vec<u32> {
        let entries = &self.entries;
        let prefix = |e: &Entry<N>| u32::from_be_bytes([e.id[0], e.id[1], e.id[2], e.id[3]]);
        // Entry numbers fit in 32 bits: the capacity is at most 2^31.
        let mut keys: Vec<u64> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (u64::from(prefix(e)) << 32) | i as u64)
            .collect();
        keys.sort_unstable();
        let mut sorted: Vec<u32> = keys.iter().map(|k| *k as u32).collect();
        let mut start = 0;
        for run in keys.chunk_by(|a, b| a >> 32 == b >> 32) {
            if run.len() > 1 {
                let by_id =
                    |a: &u32, b: &u32| entries[*a as usize].id.cmp(&entries[*b as usize].id);
                sorted[start..start + run.len()].sort_unstable_by(by_id);
            }
            start += run.len();
        }
        sorted
    }

    /// Installs an index from [`Pool::build_index`].
    pub fn set_index(&mut self, index: Vec<u32>) {
        self.sorted = index;
        self.changed = 0;
    }

    /// Up to `n` nodes close to `target` that `accept` takes, preferring those `prefer`
    /// marks, closest first. Uses the sorted index, so nodes added since its last rebuild are
    /// not seen (and nodes moved since may come out of order): good enough for a bootstrap
    /// answer, and exact right after a rebuild for nodes within the scanned window.
    pub fn closest(
        &self,
        target: &NodeId,
        n: usize,
        accept: impl Fn(&NodeInfo) -> bool,
        prefer: impl Fn(&NodeInfo) -> bool,
    ) -> Vec<NodeInfo> {
        let sorted = &self.sorted;
        let (target_hi, target_lo) = target.sort_key();
        // The XOR distance to the target as integers, and the prefix (in bits) shared with it.
        let distance = |id: &[u8; 20]| {
            let (hi, lo) = NodeId(*id).sort_key();
            (hi ^ target_hi, lo ^ target_lo)
        };
        let shared = |i: usize| {
            sorted
                .get(i)
                .and_then(|slot| self.entries.get(*slot as usize))
                .map_or(0, |entry| match distance(&entry.id) {
                    (0, lo) => 128 + lo.leading_zeros(),
                    (hi, _) => hi.leading_zeros(),
                })
        };
        // In id order, the prefix an id shares with the target never grows moving away from
        // the target's position, on either side. So taking the neighbour with the longer
        // shared prefix, 2n times, takes the ids by decreasing shared prefix: the last one
        // taken has the deepest prefix of the target that holds 2n ids.
        let at = sorted.partition_point(|slot| {
            self.entries
                .get(*slot as usize)
                .is_some_and(|entry| entry.id < target.0)
        });
        let (mut lo, mut hi) = (at, at);
        let mut depth = u32::MAX;
        while hi - lo < 2 * n {
            let left = (lo > 0).then(|| shared(lo - 1));
            let right = (hi < sorted.len()).then(|| shared(hi));
            match (left, right) {
                (Some(l), Some(r)) if l >= r => (lo, depth) = (lo - 1, depth.min(l)),
                (Some(l), None) => (lo, depth) = (lo - 1, depth.min(l)),
                (_, Some(r)) => (hi, depth) = (hi + 1, depth.min(r)),
                (None, None) => break,
            }
        }
        // Then the rest of that prefix's ids, on both sides in turn (at most CLOSEST_SCAN in
        // all, around the target's position).
        while hi - lo < CLOSEST_SCAN {
            let mut grew = false;
            if lo > 0 && shared(lo - 1) >= depth {
                lo -= 1;
                grew = true;
            }
            if hi - lo < CLOSEST_SCAN && hi < sorted.len() && shared(hi) >= depth {
                hi += 1;
                grew = true;
            }
            if !grew {
                break;
            }
        }
        let mut found: Vec<(bool, (u128, u32), NodeInfo)> = Vec::with_capacity(hi - lo);
        found.extend(
            sorted[lo..hi]
                .iter()
                .filter_map(|s| self.entries.get(*s as usize))
                .filter_map(Self::entry_info)
                .filter(|info| accept(info))
                .map(|info| (!prefer(&info), distance(&info.id.0), info)),
        );
        found.sort_unstable_by_key(|f| (f.0, f.1));
        found.dedup_by(|a, b| a.2.addr == b.2.addr);
        found.into_iter().take(n).map(|f| f.2).collect()
    }

    /// Up to `n` random nodes that `accept` takes, those `prefer` marks first (draws at most
    /// `4n` entries).
    pub fn sample<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        accept: impl Fn(&NodeInfo) -> bool,
        prefer: impl Fn(&NodeInfo) -> bool,
    ) -> Vec<NodeInfo> {
        let len = self.entries.len();
        if len == 0 || n == 0 {
            return Vec::new();
        }
        let mut preferred = Vec::with_capacity(n);
        let mut others = Vec::new();
        for _ in 0..4 * n {
            let i = rng.random_range(0..len);
            let Some(info) = Self::entry_info(&self.entries[i]) else {
                continue;
            };
            if !accept(&info)
                || preferred
                    .iter()
                    .chain(others.iter())
                    .any(|o: &NodeInfo| o.addr == info.addr)
            {
                continue;
            }
            if prefer(&info) {
                preferred.push(info);
                if preferred.len() == n {
                    break;
                }
            } else if others.len() < n {
                others.push(info);
            }
        }
        preferred.extend(others);
        preferred.truncate(n);
        preferred
    }

    /// Visits up to `n` entries from a rotating cursor: entries last seen before `drop_before`
    /// are removed; those seen before `stale_before` are returned (to be pinged again).
    pub fn sweep(&mut self, n: usize, stale_before: u32, drop_before: u32) -> Vec<NodeInfo> {
        let mut stale = Vec::new();
        for _ in 0..n.min(self.entries.len()) {
            if self.entries.is_empty() {
                break;
            }
            let i = self.sweep_cursor % self.entries.len();
            let entry = self.entries[i];
            if entry.seen < drop_before {
                if let Some(info) = Self::entry_info(&entry) {
                    self.remove(&info.addr);
                    continue;
                }
            }
            self.sweep_cursor = i + 1;
            if entry.seen < stale_before {
                stale.extend(Self::entry_info(&entry));
            }
        }
        stale
    }

    /// Every node with its last-seen time, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeInfo, u32)> + '_ {
        self.entries
            .iter()
            .filter_map(|e| Self::entry_info(e).map(|info| (info, e.seen)))
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
            let got = pool.closest(&target, 8, |_| true, |_| true);
            let mut want = nodes.clone();
            want.sort_by_key(|n| target.distance(&n.id));
            assert_eq!(got, want[..8].to_vec());
        }
        let sample = pool.sample(&mut rng, 8, |_| true, |_| true);
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
            let got = pool.closest(&target, 8, |_| true, |_| true);
            let mut want = nodes.clone();
            want.sort_by_key(|n| target.distance(&n.id));
            assert_eq!(got, want[..8].to_vec(), "round {round}");
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
        let index = pool.build_index();
        assert_eq!(index.len(), 3000);
        let ids: Vec<[u8; 20]> = index.iter().map(|s| pool.entries[*s as usize].id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] <= w[1]),
            "index not sorted by id"
        );
        let mut slots = index.clone();
        slots.sort_unstable();
        assert_eq!(
            slots,
            (0..3000).collect::<Vec<u32>>(),
            "index misses entries"
        );
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
