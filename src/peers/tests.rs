//! Unit tests of the announce store and its Bloom filters.

use super::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

fn hash(n: u8) -> InfoHash {
    InfoHash::from_bytes([n; 20])
}

fn v4(n: u32, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), port)
}

/// IPv6 peer `n`, on a /64 of its own.
fn v6(n: u128, port: u16) -> SocketAddr {
    let base: u128 = 0x2001_0db8 << 96;
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(base + (n << 64) + 1)), port)
}

fn minutes(m: u64) -> Instant {
    Instant::from_secs(m * 60)
}

fn small(max_info_hashes: usize, per_hash: usize, max_peers: usize) -> PeerStore {
    PeerStore::new(PeerStoreConfig {
        max_info_hashes,
        max_peers_per_info_hash: per_hash,
        max_peers,
        ..PeerStoreConfig::default()
    })
}

fn all(store: &PeerStore, h: &InfoHash, family: AddressFamily) -> HashSet<SocketAddr> {
    let mut rng = SmallRng::seed_from_u64(0);
    store
        .get_peers(h, family, usize::MAX, false, &mut rng)
        .into_iter()
        .collect()
}

/// BEP 33's published test vector.
const BEP33_VECTOR: &str = "\
    F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAE\
    FE5EEDB1FBFAFF67F6ABFF5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B\
    7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEEFE148246C2BC5DBFF7E7EFDCF24F\
    D8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7FD79B3\
    FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5\
    BFAF2E9EBFFFFEECD67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB57\
    62ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5ADFFADFEE1FB737FFFFBFD9F6AEFFEEE76B6\
    FD8F72EF";

#[test]
fn bloom_bep33_test_vector() {
    let mut filter = BloomFilter::new();
    for last in 0..=255u8 {
        filter.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)));
    }
    for n in 0..=0x3e7u16 {
        filter.insert(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)));
    }
    let expected = hex::decode(BEP33_VECTOR).unwrap();
    assert_eq!(filter.as_bytes().as_slice(), expected.as_slice());
    let estimate = filter.estimate_count();
    assert!((estimate - 1224.9308).abs() < 0.001, "{estimate}");
    // Round trip through the wire form.
    let parsed = BloomFilter::from_slice(&expected).unwrap();
    assert_eq!(parsed, filter);
    assert_eq!(BloomFilter::from_bytes(filter.as_bytes()), filter);
    assert_eq!(BloomFilter::from_slice(&expected[..255]), None);
}

#[test]
fn bloom_basics_union_and_edges() {
    let mut a = BloomFilter::new();
    assert!(a.is_empty());
    assert!((a.estimate_count() - 0.5).abs() < 1e-9);
    let x: IpAddr = "192.168.1.1".parse().unwrap();
    let y: IpAddr = "2001:db8::42".parse().unwrap();
    a.insert(x);
    assert!(a.contains(x));
    assert!(a.contains("::ffff:192.168.1.1".parse().unwrap()));
    let mut b = BloomFilter::new();
    b.insert(y);
    a.union(&b);
    assert!(a.contains(x) && a.contains(y));
    assert!((a.estimate_count() - 2.0).abs() < 0.1);
    let full = BloomFilter::from_bytes(&[0xff; BLOOM_BYTES]);
    let saturated = full.estimate_count();
    assert!(saturated.is_finite() && saturated > 7_000.0, "{saturated}");
}

#[test]
fn peers_expire_after_thirty_minutes_unless_reannounced() {
    let mut store = PeerStore::default();
    let h = hash(1);
    store.announce(minutes(0), h, v4(1, 6881), false).unwrap();
    store.announce(minutes(10), h, v4(2, 6881), false).unwrap();
    assert_eq!(store.next_expiry(), Some(minutes(30)));
    assert_eq!(store.expire(minutes(29)), 0);
    assert_eq!(store.peers_for(&h, AddressFamily::V4), 2);
    // Peer 2 re-announces at 25 min: refreshed, with a new port.
    assert_eq!(
        store.announce(minutes(25), h, v4(2, 7000), false),
        Ok(AnnounceOutcome::Refreshed)
    );
    assert_eq!(store.expire(minutes(30)), 1);
    assert_eq!(
        all(&store, &h, AddressFamily::V4),
        HashSet::from([v4(2, 7000)])
    );
    assert_eq!(store.next_expiry(), Some(minutes(55)));
    assert_eq!(store.expire(minutes(54)), 0);
    assert_eq!(store.expire(minutes(55)), 1);
    assert!(store.is_empty() && !store.contains(&h));
    assert_eq!(store.peer_count(), 0);
    assert_eq!(store.next_expiry(), None);
    store.check_invariants();
}

#[test]
fn unique_by_ip_and_mapped_addresses_are_ipv4() {
    let mut store = PeerStore::default();
    let h = hash(2);
    store.announce(minutes(0), h, v4(1, 1000), false).unwrap();
    let mapped: SocketAddr = format!("[::ffff:{}]:2000", v4(1, 0).ip()).parse().unwrap();
    assert_eq!(
        store.announce(minutes(1), h, mapped, true),
        Ok(AnnounceOutcome::Refreshed)
    );
    assert_eq!(store.peer_count(), 1);
    let got = store.peers().next().unwrap();
    assert_eq!(got.addr, v4(1, 2000));
    assert!(got.seed);
    assert_eq!(got.announced_at, minutes(1));
    store.check_invariants();
}

#[test]
fn an_ipv6_host_is_its_slash_64() {
    let mut store = PeerStore::default();
    let h = hash(3);
    let at = |text: &str| SocketAddr::new(text.parse().unwrap(), 3000);
    store
        .announce(minutes(0), h, at("2a00:1:2:3::1"), false)
        .unwrap();
    // Another address of the same /64 is the same host: it refreshes the entry.
    assert_eq!(
        store.announce(minutes(1), h, at("2a00:1:2:3::ffff"), true),
        Ok(AnnounceOutcome::Refreshed)
    );
    assert_eq!(store.peer_count(), 1);
    assert_eq!(store.peers().next().unwrap().addr, at("2a00:1:2:3::ffff"));
    // The next /64 is another host.
    assert_eq!(
        store.announce(minutes(1), h, at("2a00:1:2:4::1"), false),
        Ok(AnnounceOutcome::Added)
    );
    assert_eq!(store.peer_count(), 2);
    store.check_invariants();
}

#[test]
fn families_are_kept_apart() {
    let mut store = PeerStore::default();
    let h = hash(3);
    for n in 0..5 {
        store.announce(minutes(0), h, v4(n, 1), false).unwrap();
        store
            .announce(minutes(0), h, v6(n.into(), 1), false)
            .unwrap();
    }
    let four = all(&store, &h, AddressFamily::V4);
    let six = all(&store, &h, AddressFamily::V6);
    assert_eq!(four.len(), 5);
    assert_eq!(six.len(), 5);
    assert!(four.iter().all(|a| a.is_ipv4()));
    assert!(six.iter().all(|a| a.is_ipv6()));
    assert!(all(&store, &hash(99), AddressFamily::V4).is_empty());
}

#[test]
fn get_peers_is_bounded_random_and_reproducible() {
    let mut store = PeerStore::default();
    let h = hash(4);
    for n in 0..200 {
        store.announce(minutes(0), h, v4(n, 1), false).unwrap();
    }
    let mut rng = SmallRng::seed_from_u64(11);
    let a = store.get_peers(&h, AddressFamily::V4, 1000, false, &mut rng);
    assert_eq!(a.len(), DEFAULT_MAX_VALUES);
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), a.len());
    let b = store.get_peers(&h, AddressFamily::V4, 10, false, &mut rng);
    assert_eq!(b.len(), 10);
    let mut again = SmallRng::seed_from_u64(11);
    assert_eq!(
        store.get_peers(&h, AddressFamily::V4, 1000, false, &mut again),
        a
    );
    assert!(
        store
            .get_peers(&h, AddressFamily::V4, 0, false, &mut rng)
            .is_empty()
    );
}

#[test]
fn noseed_leaves_seeds_out() {
    let mut store = PeerStore::default();
    let h = hash(5);
    for n in 0..10 {
        store.announce(minutes(0), h, v4(n, 1), n % 2 == 0).unwrap();
    }
    let mut rng = SmallRng::seed_from_u64(1);
    let got = store.get_peers(&h, AddressFamily::V4, 50, true, &mut rng);
    assert_eq!(got.len(), 5);
    let seeds: HashSet<SocketAddr> = (0..10).step_by(2).map(|n| v4(n, 1)).collect();
    assert!(got.iter().all(|a| !seeds.contains(a)));
    assert_eq!(
        store
            .get_peers(&h, AddressFamily::V4, 50, false, &mut rng)
            .len(),
        10
    );
    // A seed that re-announces as a leecher is a leecher.
    store.announce(minutes(1), h, v4(0, 1), false).unwrap();
    assert_eq!(
        store
            .get_peers(&h, AddressFamily::V4, 50, true, &mut rng)
            .len(),
        6
    );
}

#[test]
fn scrape_filters_split_seeds_and_peers() {
    let mut store = PeerStore::default();
    let h = hash(6);
    assert_eq!(store.scrape(&h), None);
    let mut seeds = BloomFilter::new();
    let mut peers = BloomFilter::new();
    for n in 0..40u32 {
        let addr = if n % 3 == 0 {
            v6(n.into(), 1)
        } else {
            v4(n, 1)
        };
        let seed = n % 4 == 0;
        store.announce(minutes(0), h, addr, seed).unwrap();
        if seed {
            seeds.insert(addr.ip());
        } else {
            peers.insert(addr.ip());
        }
    }
    let scrape = store.scrape(&h).unwrap();
    assert_eq!(scrape.seeds, seeds);
    assert_eq!(scrape.peers, peers);
    assert!((scrape.seeds.estimate_count() - 10.0).abs() < 2.0);
    assert!((scrape.peers.estimate_count() - 30.0).abs() < 3.0);
}

#[test]
fn full_list_replaces_its_oldest_peer() {
    let mut store = small(10, 3, 100);
    let h = hash(7);
    store.announce(minutes(2), h, v4(1, 1), false).unwrap();
    store.announce(minutes(1), h, v4(2, 1), false).unwrap(); // oldest
    store.announce(minutes(3), h, v4(3, 1), false).unwrap();
    store.announce(minutes(3), h, v6(1, 1), false).unwrap(); // other family: room
    assert_eq!(
        store.announce(minutes(4), h, v4(4, 1), false),
        Ok(AnnounceOutcome::ReplacedOldest)
    );
    assert_eq!(
        all(&store, &h, AddressFamily::V4),
        HashSet::from([v4(1, 1), v4(3, 1), v4(4, 1)])
    );
    assert_eq!(store.peers_for(&h, AddressFamily::V6), 1);
    // Refreshing a member of a full list replaces nobody.
    assert_eq!(
        store.announce(minutes(5), h, v4(1, 1), false),
        Ok(AnnounceOutcome::Refreshed)
    );
    assert_eq!(store.peers_for(&h, AddressFamily::V4), 3);
    store.check_invariants();
    // The replaced peer's expiry went with it.
    assert_eq!(store.next_expiry(), Some(minutes(33)));
}

#[test]
fn full_store_evicts_the_info_hash_with_fewest_peers() {
    let mut store = small(3, 10, 100);
    // hash 1: 3 peers; hash 2: 1 peer at 2 min; hash 3: 1 peer at 1 min.
    for n in 0..3 {
        store
            .announce(minutes(0), hash(1), v4(n, 1), false)
            .unwrap();
    }
    store
        .announce(minutes(2), hash(2), v4(10, 1), false)
        .unwrap();
    store
        .announce(minutes(1), hash(3), v4(11, 1), false)
        .unwrap();
    // Ties on size go to the least recently announced: hash 3.
    assert_eq!(
        store.announce(minutes(4), hash(4), v4(12, 1), false),
        Ok(AnnounceOutcome::EvictedInfoHash(hash(3)))
    );
    assert!(!store.contains(&hash(3)));
    // Re-announcing makes hash 2 the most recent one-peer swarm: hash 4 goes next.
    store
        .announce(minutes(5), hash(2), v4(10, 1), false)
        .unwrap();
    assert_eq!(
        store.announce(minutes(6), hash(5), v4(13, 1), false),
        Ok(AnnounceOutcome::EvictedInfoHash(hash(4)))
    );
    // The big swarm, though oldest, survives.
    assert!(store.contains(&hash(1)));
    assert_eq!(store.len(), 3);
    assert_eq!(store.peer_count(), 5);
    store.check_invariants();
}

#[test]
fn total_peer_cap_evicts_the_globally_oldest_peer() {
    let mut store = small(10, 10, 4);
    store
        .announce(minutes(1), hash(1), v4(1, 1), false)
        .unwrap();
    store
        .announce(minutes(0), hash(2), v4(2, 1), false)
        .unwrap(); // oldest
    store
        .announce(minutes(2), hash(1), v4(3, 1), false)
        .unwrap();
    store
        .announce(minutes(3), hash(1), v6(4, 1), false)
        .unwrap();
    assert_eq!(
        store.announce(minutes(4), hash(3), v4(5, 1), false),
        Ok(AnnounceOutcome::EvictedOldestPeer)
    );
    assert!(!store.contains(&hash(2)), "its only peer was the oldest");
    assert_eq!(store.peer_count(), 4);
    assert_eq!(
        store.announce(minutes(5), hash(1), v4(6, 1), false),
        Ok(AnnounceOutcome::EvictedOldestPeer)
    );
    assert_eq!(
        all(&store, &hash(1), AddressFamily::V4),
        HashSet::from([v4(3, 1), v4(6, 1)])
    );
    store.check_invariants();
}

#[test]
fn rejects_unusable_announces() {
    let mut store = PeerStore::default();
    let h = hash(8);
    assert_eq!(
        store.announce(minutes(0), h, v4(1, 0), false),
        Err(AnnounceRejected::PortZero)
    );
    for bad in [
        "0.0.0.0:1",
        "224.0.0.1:1",
        "255.255.255.255:1",
        "[::]:1",
        "[ff02::1]:1",
    ] {
        assert_eq!(
            store.announce(minutes(0), h, bad.parse().unwrap(), false),
            Err(AnnounceRejected::UnusableAddress),
            "{bad}"
        );
    }
    let mut off = small(0, 10, 10);
    assert_eq!(
        off.announce(minutes(0), h, v4(1, 1), false),
        Err(AnnounceRejected::Disabled)
    );
    assert!(store.is_empty());
}

#[test]
fn samples_are_stable_within_the_interval_and_refreshed_after() {
    let mut store = PeerStore::default();
    let mut rng = SmallRng::seed_from_u64(3);
    let empty = store.sample(minutes(0), &mut rng);
    assert!(empty.samples.is_empty());
    assert_eq!(empty.num, 0);
    // A small store is returned whole, and the sample follows it as it grows.
    for n in 0..5u8 {
        store
            .announce(minutes(0), hash(n), v4(n.into(), 1), false)
            .unwrap();
    }
    let s = store.sample(minutes(0), &mut rng);
    assert_eq!(s.samples.len(), 5);
    assert_eq!(s.num, 5);
    for n in 5..100u8 {
        store
            .announce(minutes(0), hash(n), v4(n.into(), 1), false)
            .unwrap();
    }
    let first = store.sample(Instant::from_secs(10), &mut rng);
    assert_eq!(first.samples.len(), DEFAULT_MAX_SAMPLES);
    assert_eq!(first.num, 100);
    assert_eq!(first.interval, 300);
    let unique: HashSet<_> = first.samples.iter().collect();
    assert_eq!(unique.len(), DEFAULT_MAX_SAMPLES);
    // Inside the interval: the same sample, and the remaining time counts down.
    let again = store.sample(Instant::from_secs(200), &mut rng);
    assert_eq!(again.samples, first.samples);
    assert_eq!(again.interval, 110);
    let again = store.sample(Instant::from_micros(309_500_000), &mut rng);
    assert_eq!(again.samples, first.samples);
    assert_eq!(again.interval, 1);
    // After it: a new draw.
    let next = store.sample(Instant::from_secs(310), &mut rng);
    assert_ne!(next.samples, first.samples);
    assert_eq!(next.samples.len(), DEFAULT_MAX_SAMPLES);
    assert_eq!(next.interval, 300);
}

#[test]
fn samples_drop_info_hashes_that_left() {
    let mut store = PeerStore::default();
    let mut rng = SmallRng::seed_from_u64(4);
    for n in 0..50u8 {
        let at = if n < 25 { minutes(0) } else { minutes(10) };
        store.announce(at, hash(n), v4(n.into(), 1), false).unwrap();
    }
    let first = store.sample(minutes(10), &mut rng);
    store.expire(minutes(30));
    let after = store.sample(minutes(10) + Duration::from_secs(299), &mut rng);
    assert_eq!(after.num, 25);
    assert!(after.samples.iter().all(|h| store.contains(h)));
    let kept: Vec<InfoHash> = first
        .samples
        .iter()
        .filter(|h| store.contains(h))
        .copied()
        .collect();
    assert_eq!(after.samples, kept);
}

#[test]
fn random_operations_keep_the_store_consistent_and_bounded() {
    let mut rng = SmallRng::seed_from_u64(99);
    let mut store = PeerStore::new(PeerStoreConfig {
        max_info_hashes: 7,
        max_peers_per_info_hash: 4,
        max_peers: 20,
        peer_ttl: Duration::from_secs(100),
        ..PeerStoreConfig::default()
    });
    let mut now = Instant::ZERO;
    for step in 0..5_000u32 {
        now += Duration::from_secs(rng.random_range(0..5));
        let h = hash(rng.random_range(0..12));
        let n: u32 = rng.random_range(0..10);
        let addr = if rng.random_bool(0.5) {
            v4(n, rng.random_range(1..4))
        } else {
            v6(n.into(), rng.random_range(1..4))
        };
        store.announce(now, h, addr, rng.random_bool(0.3)).unwrap();
        if step % 7 == 0 {
            store.expire(now);
        }
        if step % 97 == 0 {
            store.check_invariants();
            let _ = store.sample(now, &mut rng);
        }
    }
    store.check_invariants();
    assert!(store.approx_memory_bytes() > 0);
    assert_eq!(store.peers().count(), store.peer_count());
}

mod draws {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `get_peers_into` against a simple model: the candidates are the family's peers (no
        /// seeds with `noseed`); all of them when they fit, else `max` distinct ones among them.
        #[test]
        fn values_are_a_subset_of_the_model(
            seeds in proptest::collection::vec(any::<bool>(), 0..80),
            max in 0usize..70,
            noseed in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut store = PeerStore::default();
            let h = hash(9);
            for (n, is_seed) in seeds.iter().enumerate() {
                store.announce(minutes(0), h, v4(n as u32, 1), *is_seed).unwrap();
            }
            let model: HashSet<SocketAddr> = seeds
                .iter()
                .enumerate()
                .filter(|(_, s)| !(noseed && **s))
                .map(|(n, _)| v4(n as u32, 1))
                .collect();
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut out = vec![v4(999, 9)];
            store.get_peers_into(&h, AddressFamily::V4, max, noseed, &mut rng, &mut out);
            let got: HashSet<SocketAddr> = out.iter().copied().collect();
            prop_assert_eq!(got.len(), out.len(), "distinct");
            prop_assert_eq!(out.len(), model.len().min(max).min(DEFAULT_MAX_VALUES));
            prop_assert!(got.is_subset(&model));
            if model.len() <= max.min(DEFAULT_MAX_VALUES) {
                prop_assert_eq!(got, model);
            }
        }
    }

    /// When not all fit, every candidate is drawn equally often (3 of 12, 12,000 draws: each
    /// is expected 3,000 times; a bias of a tenth would be far outside the bound).
    #[test]
    fn subsets_are_uniform() {
        let mut store = PeerStore::default();
        let h = hash(10);
        for n in 0..12 {
            store.announce(minutes(0), h, v4(n, 1), false).unwrap();
        }
        let mut rng = SmallRng::seed_from_u64(3);
        let mut counts: HashMap<SocketAddr, u32> = HashMap::new();
        let mut first: HashMap<SocketAddr, u32> = HashMap::new();
        let mut out = Vec::new();
        for _ in 0..12_000 {
            store.get_peers_into(&h, AddressFamily::V4, 3, false, &mut rng, &mut out);
            for peer in &out {
                *counts.entry(*peer).or_default() += 1;
            }
            *first.entry(out[0]).or_default() += 1;
        }
        assert_eq!(counts.len(), 12);
        assert!(
            counts.values().all(|&c| (2_750..=3_250).contains(&c)),
            "{counts:?}"
        );
        assert!(
            first.values().all(|&c| (850..=1_150).contains(&c)),
            "{first:?}"
        );
    }
}
