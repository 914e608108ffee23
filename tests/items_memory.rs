//! The BEP 44 item store's memory, measured: filled to its byte cap (the defaults) and to its
//! item cap with the largest items (1,000-byte values, 64-byte salts), its memory as measured
//! from its allocations stays under [`ItemStoreConfig::memory_cap_bytes`], grows by no more
//! than the cost of each item stored except when its table doubles, stays flat while new items
//! evict old ones, does not move on a refresh or a refused put, and falls back to nothing when
//! every item expires.

use std::time::Duration;

use btdht::Instant;
use btdht::items::{
    ItemError, ItemStore, ItemStoreConfig, MAX_SALT_LEN, MAX_VALUE_LEN, MutableItem, StoredItem,
};
use btdht::krpc::RawValue;

const SEED: [u8; 32] = [0x6d; 32];

/// The `i`th of many largest items: one key, distinct 64-byte salts, a 1,000-byte value.
fn largest(i: u32) -> MutableItem {
    let mut salt = [b's'; MAX_SALT_LEN];
    salt[..4].copy_from_slice(&i.to_be_bytes());
    // "996:" and 996 bytes.
    let value = RawValue::from_bytes(&[b'v'; MAX_VALUE_LEN - 4]);
    assert_eq!(value.as_bytes().len(), MAX_VALUE_LEN);
    MutableItem::sign(&SEED, &salt, 1, value).unwrap()
}

/// What a run measured.
#[derive(Debug, Default)]
struct Fill {
    /// Items stored when full.
    items: usize,
    /// The store's measured memory when full.
    memory: usize,
    /// Times the store grew its item table.
    growths: usize,
}

/// Puts `items` (in order, `passes` times) into a store of `config` and checks after every
/// put that each cap holds and that the accounting moved by exactly what was stored.
fn fill(config: ItemStoreConfig, items: &[MutableItem], passes: usize) -> (ItemStore, Fill) {
    let cost = StoredItem::Mutable(items[0].clone()).cost();
    let cap = config.memory_cap_bytes();
    let mut store = ItemStore::new(config);
    let mut fill = Fill::default();
    let now = Instant::from_secs(1);
    let mut full_memory = None;
    for pass in 0..passes {
        for item in items {
            let (bytes, memory, stats) = (store.bytes(), store.memory_bytes(), store.stats());
            store.put_mutable(now, item.clone(), None).unwrap();
            let after = store.stats();
            assert_eq!(after.stored, stats.stored + 1, "a new item each time");
            let evicted = (after.evicted - stats.evicted) as usize;
            // The accounted bytes move by the item stored less the items evicted.
            assert_eq!(store.bytes() + evicted * cost, bytes + cost);
            // The memory grows by no more (the item's slot in the table was allocated
            // already), unless the item table grew.
            if store.memory_bytes() + evicted * cost > memory + cost {
                fill.growths += 1;
            }
            assert!(store.len() <= config.max_items);
            assert!(store.bytes() <= config.max_bytes);
            assert!(
                store.memory_bytes() <= cap,
                "{} bytes over the cap of {cap}",
                store.memory_bytes()
            );
            // Once full, new items only replace old ones: not a byte more.
            if pass > 0 {
                let full = *full_memory.get_or_insert(store.memory_bytes());
                assert_eq!(store.memory_bytes(), full, "memory moved while full");
            }
        }
        fill.items = store.len();
        fill.memory = store.memory_bytes();
    }
    (store, fill)
}

#[test]
fn the_store_full_of_the_largest_items_stays_under_its_memory_cap() {
    let config = ItemStoreConfig::default();
    // More than fit in 16 MiB, put twice: the second pass evicts all the time.
    let items: Vec<MutableItem> = (0..16_000).map(largest).collect();
    let (mut store, fill) = fill(config, &items, 2);
    let cap = config.memory_cap_bytes();
    let cost = StoredItem::Mutable(items[0].clone()).cost();
    println!(
        "{} items of {cost} bytes: {} bytes measured, {:.0} bytes per item; cap {cap} bytes; \
         {} table growths",
        fill.items,
        fill.memory,
        fill.memory as f64 / fill.items as f64,
        fill.growths
    );
    // The byte cap binds: as many items as fit in it.
    assert_eq!(fill.items, config.max_bytes / cost);
    assert!(fill.items < config.max_items);
    // The memory beyond the items' costs is the item table's free slots: under a sixth here.
    assert!(fill.memory <= cap);
    assert!(fill.memory - store.bytes() < store.bytes() / 6, "{fill:?}");
    // The table was allocated (4 slots) and doubled on the way up to 16,384, and no more.
    assert_eq!(fill.growths, 13, "{fill:?}");

    // A refresh and refused puts allocate nothing.
    let (bytes, memory) = (store.bytes(), store.memory_bytes());
    let now = Instant::from_secs(2);
    let newest = items.last().unwrap().clone();
    store.put_mutable(now, newest.clone(), None).unwrap();
    let mut forged = newest.clone();
    forged.seq = 2;
    assert_eq!(
        store.put_mutable(now, forged, None),
        Err(ItemError::BadSignature)
    );
    let older = MutableItem::sign(&SEED, &newest.salt, 0, newest.value.clone()).unwrap();
    assert_eq!(
        store.put_mutable(now, older, None),
        Err(ItemError::SeqTooOld)
    );
    assert_eq!((store.bytes(), store.memory_bytes()), (bytes, memory));

    // Two hours on, everything expired and the table is given back.
    store.expire(now + Duration::from_secs(2 * 3600));
    assert!(store.is_empty());
    assert_eq!((store.bytes(), store.memory_bytes()), (0, 0));
}

#[test]
fn the_store_full_to_its_item_cap_stays_under_its_memory_cap() {
    let config = ItemStoreConfig {
        max_items: 2_000,
        ..ItemStoreConfig::default()
    };
    let items: Vec<MutableItem> = (0..2_500).map(largest).collect();
    let (store, fill) = fill(config, &items, 2);
    let cost = StoredItem::Mutable(items[0].clone()).cost();
    println!(
        "{} items: {} bytes measured, {:.0} bytes per item; cap {} bytes",
        fill.items,
        fill.memory,
        fill.memory as f64 / fill.items as f64,
        config.memory_cap_bytes()
    );
    assert_eq!(fill.items, 2_000);
    assert_eq!(store.bytes(), 2_000 * cost);
    assert!(fill.memory <= config.memory_cap_bytes());
}
