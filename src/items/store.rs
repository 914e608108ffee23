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
//! Time is the caller's [`Instant`]. Every operation is O(log n).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{ItemError, MutableItem, check_sizes, immutable_target};
use crate::id::NodeId;
use crate::krpc::RawValue;
use crate::time::Instant;

/// Bytes counted per stored item beyond its value, salt, key and signature: the map entries
/// and bookkeeping.
const ENTRY_OVERHEAD: usize = 128;

/// The store's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemStoreConfig {
    /// Items kept at most. Default 16,384.
    pub max_items: usize,
    /// Bytes kept at most, as counted by [`StoredItem::cost`]. Default 16 MiB.
    pub max_bytes: usize,
    /// How long an item lives after its last put. Default 2 hours.
    pub ttl: Duration,
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
    /// The bytes this item counts for against [`ItemStoreConfig::max_bytes`].
    pub fn cost(&self) -> usize {
        ENTRY_OVERHEAD
            + match self {
                StoredItem::Immutable(value) => value.as_bytes().len(),
                StoredItem::Mutable(item) => item.value.as_bytes().len() + item.salt.len() + 96,
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
        let age_key = self.age_key(now);
        self.by_age.insert(age_key, target);
        self.bytes += cost;
        self.entries.insert(target, Entry { item, age_key });
        self.stats.stored += 1;
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
            max_bytes: 10 * (ENTRY_OVERHEAD + 1000),
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
