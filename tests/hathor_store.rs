//! The Hathor peer store: backoff, score, expiry, capacity, persistence. Time is passed in.

use std::net::SocketAddr;

use btdht::hathor::handshake::VerifiedPeer;
use btdht::hathor::identity::{PeerId, PublicKey};
use btdht::hathor::network::NetworkProfile;
use btdht::hathor::store::{
    FORGET_AFTER, PeerBook, PeerKey, Source, StoreError, next_retry_interval,
};

const T0: u64 = 1_700_000_000;

fn key() -> PublicKey {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("data/hathor/peer-and-entrypoints.json")).unwrap();
    PublicKey::from_base64(v["peer_file"]["pubKey"].as_str().unwrap()).unwrap()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn verified(id_byte: u8, port: u16) -> VerifiedPeer {
    VerifiedPeer {
        id: PeerId([id_byte; 32]),
        public_key: key(),
        dialled: addr(port),
        entrypoints: vec![format!("tcp://127.0.0.1:{port}").parse().unwrap()],
        entrypoint_confirmed: true,
        app: "Hathor v0.72.0".into(),
        capabilities: vec!["whitelist".into(), "sync-version".into()],
        sync_versions: vec!["v2".into()],
        clock_offset: 0.25,
        gossip: vec![],
    }
}

#[test]
fn backoff_sequence() {
    let mut seq = vec![];
    let mut cur = 0;
    for _ in 0..5 {
        cur = next_retry_interval(cur);
        seq.push(cur);
    }
    assert_eq!(seq, [5, 25, 125, 300, 300]);

    let mut store = PeerBook::new(&NetworkProfile::testnet_india());
    assert!(store.add_candidate(addr(1), Source::Dht, T0));
    assert_eq!(store.due(T0), vec![(addr(1), None)]);
    let mut now = T0;
    let mut got = vec![];
    for _ in 0..5 {
        store.record_attempt(addr(1), now);
        let iv = store.record_failure(addr(1), None, "timed out", now);
        got.push(iv);
        assert!(store.due(now + iv - 1).is_empty());
        assert_eq!(store.due(now + iv).len(), 1);
        now += iv;
    }
    assert_eq!(got, [5, 25, 125, 300, 300]);
    let r = store.get(&PeerKey::Addr(addr(1))).unwrap();
    assert_eq!((r.failures, r.consecutive_failures, r.attempts), (5, 5, 5));
    assert_eq!(r.last_error.as_deref(), Some("timed out"));

    // A success resets the backoff and re-keys the record by peer id.
    store.record_success(&verified(1, 1), Source::Dht, now);
    assert!(store.get(&PeerKey::Addr(addr(1))).is_none());
    let r = store.get(&PeerKey::Id(PeerId([1; 32]))).unwrap();
    assert_eq!(
        (r.retry_interval, r.consecutive_failures, r.failures),
        (0, 0, 5)
    );
    assert_eq!(r.first_seen, T0);
    assert_eq!(r.source, Source::Dht);
    assert_eq!(store.len(), 1);
    assert_eq!(store.record_failure(addr(1), None, "x", now), 5);
}

#[test]
fn score_rises_and_decays() {
    let mut store = PeerBook::new(&NetworkProfile::testnet_india());
    let p = verified(2, 2);
    for i in 0..3 {
        store.record_success(&p, Source::Bootstrap, T0 + i);
    }
    let k = PeerKey::Id(p.id);
    assert_eq!(store.get(&k).unwrap().score, 3.0);
    for _ in 0..20 {
        store.record_success(&p, Source::Bootstrap, T0 + 10);
    }
    assert_eq!(store.get(&k).unwrap().score, 10.0);
    store.record_failure(p.dialled, Some(p.id), "Wrong network.", T0 + 20);
    assert_eq!(store.get(&k).unwrap().score, 4.0);
    assert_eq!(store.usable().len(), 1);
    store.record_failure(p.dialled, Some(p.id), "x", T0 + 30);
    store.record_failure(p.dialled, Some(p.id), "x", T0 + 40);
    assert!(store.get(&k).unwrap().score < 0.0);
    assert!(store.usable().is_empty(), "negative scores are hidden");
    for _ in 0..50 {
        store.record_failure(p.dialled, Some(p.id), "x", T0 + 50);
    }
    assert_eq!(store.get(&k).unwrap().score, -10.0);
}

#[test]
fn forget_after_three_days() {
    let mut store = PeerBook::new(&NetworkProfile::testnet_india());
    store.record_success(&verified(3, 3), Source::Dht, T0);
    store.add_candidate(addr(4), Source::Dht, T0 + 100);
    assert_eq!(store.expire(T0 + FORGET_AFTER - 1), 0);
    assert_eq!(store.expire(T0 + FORGET_AFTER), 1);
    assert!(store.get(&PeerKey::Id(PeerId([3; 32]))).is_none());
    // Failures do not keep a record alive.
    store.record_failure(addr(4), None, "x", T0 + FORGET_AFTER + 50);
    assert_eq!(store.expire(T0 + 100 + FORGET_AFTER), 1);
    assert!(store.is_empty());
    assert_eq!(FORGET_AFTER, 3 * 86400);
}

#[test]
fn capacity_and_eviction() {
    let mut store = PeerBook::new(&NetworkProfile::testnet_india());
    store.set_capacity(3);
    store.record_success(&verified(1, 1), Source::Dht, T0);
    store.record_success(&verified(2, 2), Source::Dht, T0);
    assert!(store.add_candidate(addr(10), Source::Dht, T0));
    // Full: a new candidate evicts the older candidate, never a verified peer.
    assert!(store.add_candidate(addr(11), Source::Dht, T0 + 1));
    assert_eq!(store.len(), 3);
    assert!(store.get(&PeerKey::Addr(addr(10))).is_none());
    // A verified peer evicts the candidate.
    store.record_success(&verified(3, 3), Source::Dht, T0 + 2);
    assert_eq!(store.len(), 3);
    assert!(store.get(&PeerKey::Addr(addr(11))).is_none());
    // Only verified peers left: a candidate is refused.
    assert!(!store.add_candidate(addr(12), Source::Dht, T0 + 3));
    // A better verified peer evicts the lowest-scored one.
    store.record_failure(addr(2), Some(PeerId([2; 32])), "x", T0 + 4);
    store.record_success(&verified(4, 4), Source::Dht, T0 + 5);
    assert!(store.get(&PeerKey::Id(PeerId([2; 32]))).is_none());
    assert_eq!(store.len(), 3);
}

#[test]
fn save_load_round_trip_and_corruption() {
    let dir = std::env::temp_dir().join(format!("btdht-hathor-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let net = NetworkProfile::testnet_india();
    let path = dir.join(PeerBook::file_name(&net));
    assert_eq!(
        PeerBook::file_name(&net).to_str().unwrap(),
        "hathor-peers-testnet-india-f7438fb.json"
    );

    let mut store = PeerBook::new(&net);
    store.record_success(&verified(5, 5), Source::PeersGossip, T0);
    store.add_candidate(addr(6), Source::Dht, T0);
    store.record_failure(addr(6), None, "Different genesis.", T0 + 1);
    store.save(&path).unwrap();
    let loaded = PeerBook::load(&path, &net).unwrap();
    let a: Vec<_> = store.records().cloned().collect();
    let b: Vec<_> = loaded.records().cloned().collect();
    assert_eq!(a, b);
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1);

    // Another network's file is refused.
    assert!(matches!(
        PeerBook::load(&path, &NetworkProfile::mainnet()),
        Err(StoreError::WrongNetwork { .. })
    ));

    // Corrupt file: reported, not fatal.
    std::fs::write(&path, b"{\"version\":1,\"peers\":[tru").unwrap();
    let (empty, err) = PeerBook::load_or_empty(&path, &net);
    assert!(empty.is_empty());
    assert!(matches!(err, Some(StoreError::Corrupt(_))));
    // Missing file: empty, no error.
    std::fs::remove_file(&path).unwrap();
    let (empty, err) = PeerBook::load_or_empty(&path, &net);
    assert!(empty.is_empty() && err.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
