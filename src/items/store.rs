//! The BEP 44 item store: the immutable and mutable items a node keeps for others.
//!
//! It owns the storing rules of BEP 44 (sizes, signatures, `seq` never going backwards, `cas`),
//! its bounds and its expiry; it does not check write tokens (the node does, before calling
//! [`ItemStore::put_immutable`] or [`ItemStore::put_mutable`]), and nothing is stored when a put
//! is refused.
//!
//! - An item not put again for [`ItemStoreConfig::ttl`] (2 hours) expires.
//! - At most [`ItemStoreConfig::max_items`] items and [`ItemStoreConfig::max_bytes`] bytes (as
//!   counted by [`StoredItem::cost`]) are kept; when a new item does not fit, the items put least
//!   recently are evicted first.
//!
//! **Memory.** An item's cost is what storing it allocates: its value and salt (kept in
//! allocations of exactly their length), its slot in the item table (which holds a mutable
//! item's key, sequence number and signature) and its entry in the age index. The store sizes
//! its item table itself, so that it grows only with the items stored (never to make room for
//! the slots that removed items leave behind) and shrinks when expiry empties it. So
//! [`ItemStore::memory_bytes`], measured from the allocations, is the costs of the items stored
//! plus the table's free slots, and never exceeds [`ItemStoreConfig::memory_cap_bytes`]:
//! `max_bytes` plus a table for `max_items` and an eighth. At the defaults, full of the largest
//! items (1,000-byte values, 64-byte salts), that is 12,183 items of 1,377 bytes each in
//! 17.6 MB: 1,444 bytes per item with the free slots, under the 23.1 MB cap
//! (`tests/items_memory.rs` fills the store and measures it).
//!
//! Time is the caller's [`Instant`]. Every operation is O(log n), amortised where the item
//! table is resized.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{ItemError, MutableItem, check_sizes, immutable_target};
use crate::id::NodeId;
use crate::krpc::RawValue;
use crate::time::Instant;

/// Bytes of one slot of the item table: the target and its entry, and the slot's control byte.
const SLOT_BYTES: usize = size_of::<(NodeId, Entry)>() + 1;

/// Bytes counted per entry of the age index. Its B-tree nodes hold 5 to 11 entries besides a
/// 12-byte header, and inner nodes 12 child pointers more: at most about 2.8 times the entry
/// itself, counted as 3.
const AGE_ENTRY_BYTES: usize = 3 * size_of::<((Instant, u64), NodeId)>();

/// Bytes counted per stored item besides its value and salt: its slot in the item table and its
/// entry in the age index.
const ENTRY_BYTES: usize = SLOT_BYTES + AGE_ENTRY_BYTES;

/// The store's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemStoreConfig {
    /// Items kept at most. Default 16,384.
    pub max_items: usize,
    /// Bytes kept at most, as counted by [`StoredItem::cost`]. Default 16 MiB.
    ///
    /// The store's memory is this plus its item table's free slots: see
    /// [`ItemStoreConfig::memory_cap_bytes`].
    pub max_bytes: usize,
    /// How long an item lives after its last put. Default 2 hours.
    pub ttl: Duration,
}

impl ItemStoreConfig {
    /// The most memory the store can take, in bytes, as [`ItemStore::memory_bytes`] measures
    /// it: [`ItemStoreConfig::max_bytes`] of items, plus an item table sized for
    /// [`ItemStoreConfig::max_items`] and an eighth (the most the store grows it to). About
    /// 23.1 MB at the defaults.
    pub fn memory_cap_bytes(&self) -> usize {
        let table = table_slots_for(table_limit(self.max_items));
        self.max_bytes
            .saturating_add(table.saturating_mul(SLOT_BYTES))
    }
}

/// The most entries the store sizes its item table for: `max_items` and an eighth, so that a
/// full store still has free slots and rebuilds its table at most once every `max_items / 8`
/// new items.
fn table_limit(max_items: usize) -> usize {
    max_items.saturating_add(max_items / 8)
}

/// The slots of a hash table allocated for `capacity` entries (hashbrown: a power of two, 7/8
/// of them usable; at least 4).
fn table_slots_for(capacity: usize) -> usize {
    match capacity {
        0 => 0,
        1..=3 => 4,
        4..=7 => 8,
        _ => (capacity.saturating_mul(8) / 7)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX),
    }
}

impl Default for ItemStoreConfig {
    fn default() -> Self {
        ItemStoreConfig {
            max_items: 16_384,
            max_bytes: 16 << 20,
            ttl: Duration::from_secs(2 * 3600),
        }
    }
}

/// A stored item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredItem {
    /// An immutable item: its bencoded value.
    Immutable(RawValue),
    /// A mutable item, signature checked.
    Mutable(MutableItem),
}

impl StoredItem {
    /// The bytes this item counts for against [`ItemStoreConfig::max_bytes`]: what storing it
    /// allocates (its value and salt, its slot in the item table, its entry in the age index).
    pub fn cost(&self) -> usize {
        ENTRY_BYTES
            + match self {
                StoredItem::Immutable(value) => value.as_bytes().len(),
                StoredItem::Mutable(item) => item.value.as_bytes().len() + item.salt.len(),
            }
    }

    /// The item with its value and salt in allocations of exactly their length.
    fn exact(self) -> Self {
        let exact = |value: RawValue| RawValue::from_trusted(value.as_bytes().to_vec());
        match self {
            StoredItem::Immutable(value) => StoredItem::Immutable(exact(value)),
            StoredItem::Mutable(mut item) => {
                item.value = exact(item.value);
                item.salt.shrink_to_fit();
                StoredItem::Mutable(item)
            }
        }
    }
}

/// Counters of the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemStoreStats {
    /// Puts that stored a new item or replaced one.
    pub stored: u64,
    /// Puts that only refreshed an item already stored.
    pub refreshed: u64,
    /// Puts refused (any [`ItemError`]).
    pub refused: u64,
    /// Items evicted to make room.
    pub evicted: u64,
    /// Items expired.
    pub expired: u64,
}

#[derive(Debug)]
struct Entry {
    item: StoredItem,
    /// The key of this entry in the age index.
    age_key: (Instant, u64),
}

/// The items a node stores for others.
#[derive(Debug)]
pub struct ItemStore {
    config: ItemStoreConfig,
    entries: HashMap<NodeId, Entry>,
    /// The entries `entries` was sized for, and its slots, when the store last sized it (it
    /// never lets the table grow by itself).
    table_capacity: usize,
    table_slots: usize,
    /// Targets by (last put, insertion sequence): the oldest first.
    by_age: BTreeMap<(Instant, u64), NodeId>,
    next_sequence: u64,
    bytes: usize,
    stats: ItemStoreStats,
}

impl ItemStore {
    /// An empty store.
    pub fn new(config: ItemStoreConfig) -> Self {
        ItemStore {
            config,
            entries: HashMap::new(),
            table_capacity: 0,
            table_slots: 0,
            by_age: BTreeMap::new(),
            next_sequence: 0,
            bytes: 0,
            stats: ItemStoreStats::default(),
        }
    }

    /// The store's bounds.
    pub fn config(&self) -> &ItemStoreConfig {
        &self.config
    }

    /// Items stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes stored, as counted by [`StoredItem::cost`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The heap memory of the store, in bytes, from its allocations: the item table's slots, the
    /// age index (its B-tree nodes estimated as in [`StoredItem::cost`]) and the items' values
    /// and salts. That is [`ItemStore::bytes`] plus the free slots of the item table, at most
    /// [`ItemStoreConfig::memory_cap_bytes`].
    pub fn memory_bytes(&self) -> usize {
        // The table never grows by itself (see `resize_table`); if it did, its capacity shows it.
        let slots = self
            .table_slots
            .max(table_slots_for(self.entries.capacity()));
        let free_slots = slots.saturating_sub(self.entries.len());
        self.bytes
            .saturating_add(free_slots.saturating_mul(SLOT_BYTES))
    }

    /// The counters so far.
    pub fn stats(&self) -> ItemStoreStats {
        self.stats
    }

    /// The item stored under `target`, if any and not expired at `now`.
    pub fn get(&self, now: Instant, target: &NodeId) -> Option<&StoredItem> {
        let entry = self.entries.get(target)?;
        let alive = now.saturating_duration_since(entry.age_key.0) < self.config.ttl;
        alive.then_some(&entry.item)
    }

    /// Stores an immutable item; returns its target.
    pub fn put_immutable(&mut self, now: Instant, value: RawValue) -> Result<NodeId, ItemError> {
        if let Err(e) = check_sizes(&value, &[]) {
            self.stats.refused += 1;
            return Err(e);
        }
        let target = immutable_target(&value);
        if self.entries.contains_key(&target) {
            self.touch(now, target);
            self.stats.refreshed += 1;
        } else {
            self.insert(now, target, StoredItem::Immutable(value));
        }
        Ok(target)
    }

    /// Stores a mutable item after checking its sizes and signature, and against the stored
    /// version: `seq` may not go backwards (302), an equal `seq` must carry the same value (302),
    /// and with `cas` the stored `seq` must be `cas` (301). Returns its target.
    pub fn put_mutable(
        &mut self,
        now: Instant,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<NodeId, ItemError> {
        match self.check_mutable(now, &item, cas) {
            Err(e) => {
                self.stats.refused += 1;
                Err(e)
            }
            Ok(Some(target)) => {
                self.touch(now, target);
                self.stats.refreshed += 1;
                Ok(target)
            }
            Ok(None) => {
                let target = item.target();
                self.remove(&target);
                self.insert(now, target, StoredItem::Mutable(item));
                Ok(target)
            }
        }
    }

    /// `Ok(Some(target))` when the item is the one stored (a refresh), `Ok(None)` when it is to
    /// be stored.
    fn check_mutable(
        &self,
        now: Instant,
        item: &MutableItem,
        cas: Option<i64>,
    ) -> Result<Option<NodeId>, ItemError> {
        item.verify()?;
        let target = item.target();
        let Some(StoredItem::Mutable(stored)) = self.get(now, &target) else {
            return Ok(None);
        };
        if cas.is_some_and(|cas| cas != stored.seq) {
            return Err(ItemError::CasMismatch);
        }
        if item.seq < stored.seq || (item.seq == stored.seq && item.value != stored.value) {
            return Err(ItemError::SeqTooOld);
        }
        Ok((item.seq == stored.seq).then_some(target))
    }

    /// Drops the items not put again within the TTL before `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some((&(at, _), &target)) = self.by_age.iter().next() {
            if now.saturating_duration_since(at) < self.config.ttl {
                break;
            }
            self.remove(&target);
            self.stats.expired += 1;
        }
        // A table mostly emptied by expiry is made smaller again.
        if self.table_capacity > 64 && self.entries.len() < self.table_capacity / 8 {
            self.resize_table(2 * self.entries.len());
        }
    }

    /// When the next item expires, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_age
            .keys()
            .next()
            .map(|&(at, _)| at + self.config.ttl)
    }

    fn age_key(&mut self, now: Instant) -> (Instant, u64) {
        self.next_sequence += 1;
        (now, self.next_sequence)
    }

    fn touch(&mut self, now: Instant, target: NodeId) {
        let key = self.age_key(now);
        if let Some(entry) = self.entries.get_mut(&target) {
            self.by_age.remove(&entry.age_key);
            entry.age_key = key;
            self.by_age.insert(key, target);
        }
    }

    fn insert(&mut self, now: Instant, target: NodeId, item: StoredItem) {
        let cost = item.cost();
        while !self.entries.is_empty()
            && (self.entries.len() >= self.config.max_items
                || self.bytes + cost > self.config.max_bytes)
        {
            let Some((_, &oldest)) = self.by_age.iter().next() else {
                break;
            };
            self.remove(&oldest);
            self.stats.evicted += 1;
        }
        if self.config.max_items == 0 || cost > self.config.max_bytes {
            return;
        }
        let len = self.entries.len();
        if len >= self.entries.capacity() {
            // Full: of items, or of the slots removed items left behind.
            let wanted = if len + len / 8 < self.table_capacity {
                self.table_capacity
            } else {
                (2 * len).min(table_limit(self.config.max_items))
            };
            self.resize_table(wanted.max(len + 1));
        }
        let item = item.exact();
        let age_key = self.age_key(now);
        self.by_age.insert(age_key, target);
        self.bytes += cost;
        self.entries.insert(target, Entry { item, age_key });
        self.stats.stored += 1;
    }

    /// Moves the items into a new item table sized for `capacity` entries (at least the items
    /// stored). The store calls it when the table is full: with the same size when the slots
    /// that removed items left behind fill it, twice as large (at most [`table_limit`] of
    /// `max_items`) when items do; and when expiry leaves it mostly empty. A hash table left
    /// to grow by itself would double in the first case too.
    fn resize_table(&mut self, capacity: usize) {
        let capacity = capacity.max(self.entries.len());
        let old = std::mem::replace(&mut self.entries, HashMap::with_capacity(capacity));
        self.entries.extend(old);
        self.table_capacity = self.entries.capacity();
        self.table_slots = table_slots_for(self.table_capacity);
    }

    fn remove(&mut self, target: &NodeId) {
        if let Some(entry) = self.entries.remove(target) {
            self.by_age.remove(&entry.age_key);
            self.bytes -= entry.item.cost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    fn signed(seed: u8, salt: &[u8], seq: i64, value: &[u8]) -> MutableItem {
        MutableItem::sign(&[seed; 32], salt, seq, RawValue::from_bytes(value)).unwrap()
    }

    #[test]
    fn immutable_items_are_stored_under_their_hash() {
        let mut store = ItemStore::new(ItemStoreConfig::default());
        let value = RawValue::from_bytes(b"Hello World!");
        let target = store.put_immutable(at(0), value.clone()).unwrap();
        assert_eq!(target, immutable_target(&value));
        assert_eq!(
            store.get(at(1), &target),
            Some(&StoredItem::Immutable(value.clone()))
        );
        assert_eq!(store.put_immutable(at(2), value).unwrap(), target);
        assert_eq!(store.stats().refreshed, 1);
        let too_big = RawValue::from_bytes(&[0; 1000]);
        assert_eq!(
            store.put_immutable(at(3), too_big),
            Err(ItemError::ValueTooBig)
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn mutable_rules() {
        let mut store = ItemStore::new(ItemStoreConfig::default());
        let v1 = signed(1, b"s", 1, b"one");
        let target = store.put_mutable(at(0), v1.clone(), None).unwrap();
        assert_eq!(target, v1.target());
        // Older seq: 302; same seq with another value: 302; same item: refresh.
        assert_eq!(
            store.put_mutable(at(1), signed(1, b"s", 0, b"zero"), None),
            Err(ItemError::SeqTooOld)
        );
        assert_eq!(
            store.put_mutable(at(1), signed(1, b"s", 1, b"uno"), None),
            Err(ItemError::SeqTooOld)
        );
        assert_eq!(store.put_mutable(at(1), v1.clone(), None), Ok(target));
        // cas must match the stored seq.
        assert_eq!(
            store.put_mutable(at(2), signed(1, b"s", 2, b"two"), Some(0)),
            Err(ItemError::CasMismatch)
        );
        assert_eq!(
            store.put_mutable(at(2), signed(1, b"s", 2, b"two"), Some(1)),
            Ok(target)
        );
        // A bad signature is refused before anything else.
        let mut forged = signed(1, b"s", 9, b"nine");
        forged.value = RawValue::from_bytes(b"evil");
        assert_eq!(
            store.put_mutable(at(3), forged, None),
            Err(ItemError::BadSignature)
        );
        let Some(StoredItem::Mutable(stored)) = store.get(at(3), &target) else {
            panic!("the item is stored");
        };
        assert_eq!(stored.seq, 2);
        assert_eq!(stored.value, RawValue::from_bytes(b"two"));
        assert_eq!(store.stats().refused, 4);
        // Other salts and other keys are other targets.
        store
            .put_mutable(at(4), signed(1, b"t", 0, b"x"), None)
            .unwrap();
        store
            .put_mutable(at(4), signed(2, b"s", 0, b"x"), None)
            .unwrap();
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn items_expire_two_hours_after_their_last_put() {
        let mut store = ItemStore::new(ItemStoreConfig::default());
        let a = store
            .put_immutable(at(0), RawValue::from_bytes(b"a"))
            .unwrap();
        let b = store
            .put_immutable(at(0), RawValue::from_bytes(b"b"))
            .unwrap();
        store
            .put_immutable(at(3600), RawValue::from_bytes(b"a"))
            .unwrap();
        assert_eq!(store.next_expiry(), Some(at(7200)));
        store.expire(at(7200));
        assert!(store.get(at(7200), &a).is_some());
        assert!(store.get(at(7200), &b).is_none());
        assert_eq!(store.len(), 1);
        assert!(
            store.get(at(3600 + 7200), &a).is_none(),
            "gone even before expire() runs"
        );
        store.expire(at(3600 + 7200));
        assert!(store.is_empty());
        assert_eq!(store.bytes(), 0);
        assert_eq!(store.stats().expired, 2);
    }

    #[test]
    fn the_least_recently_put_are_evicted_first() {
        let config = ItemStoreConfig {
            max_items: 3,
            ..ItemStoreConfig::default()
        };
        let mut store = ItemStore::new(config);
        let targets: Vec<NodeId> = (0..3u8)
            .map(|i| {
                store
                    .put_immutable(at(u64::from(i)), RawValue::from_bytes(&[i]))
                    .unwrap()
            })
            .collect();
        // Refresh the oldest: the second becomes the least recently put.
        store
            .put_immutable(at(5), RawValue::from_bytes(&[0]))
            .unwrap();
        store
            .put_immutable(at(6), RawValue::from_bytes(&[9]))
            .unwrap();
        assert_eq!(store.len(), 3);
        assert!(store.get(at(6), &targets[0]).is_some());
        assert!(store.get(at(6), &targets[1]).is_none());
        assert!(store.get(at(6), &targets[2]).is_some());
        assert_eq!(store.stats().evicted, 1);
    }

    #[test]
    fn bytes_are_bounded() {
        let config = ItemStoreConfig {
            max_bytes: 10 * (ENTRY_BYTES + 1000),
            ..ItemStoreConfig::default()
        };
        let mut store = ItemStore::new(config);
        for i in 0..1000u32 {
            let mut value = vec![0u8; 996];
            value[..4].copy_from_slice(&i.to_be_bytes());
            store
                .put_immutable(at(1), RawValue::from_bytes(&value))
                .unwrap();
            assert!(store.bytes() <= config.max_bytes);
        }
        assert_eq!(store.len(), 10);
        assert_eq!(store.stats().evicted, 990);
    }
}
