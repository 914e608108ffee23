//! Interoperability with the Rust `mainline` crate (the DHT that pkarr and iroh build on), both
//! ways, on loopback: a `mainline` client announces and looks up through btdht nodes, and a
//! btdht client announces and looks up through a network of `mainline` server nodes.
//!
//! `mainline` is a dev-dependency, so these tests always run. Every node is bound to a
//! 127.0.0.0/8 address and bootstraps only from the others: `mainline` is always given an
//! explicit bootstrap list, so it never falls back to its public routers.

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use btdht::Dht;
use btdht::InfoHash;
use mainline::{Id, Testnet};
use support::{loopback, wait_until_every};

const T: Duration = Duration::from_secs(10);

fn id_of(info_hash: InfoHash) -> Id {
    Id::from_bytes(info_hash.0).expect("20 bytes")
}

/// A `mainline` client node bootstrapping from `bootstrap` only.
fn mainline_client(bootstrap: &[SocketAddr]) -> mainline::Dht {
    let bootstrap: Vec<String> = bootstrap.iter().map(|a| a.to_string()).collect();
    mainline::Dht::builder()
        .bootstrap(&bootstrap)
        .bind_address(Ipv4Addr::LOCALHOST)
        .build()
        .expect("a mainline client on loopback")
}

/// The peers btdht's `get_peers` from `dht` finds for `info_hash`.
fn btdht_peers(dht: &Dht, info_hash: InfoHash) -> Vec<SocketAddr> {
    dht.with_timeout(T)
        .get_peers(info_hash, false)
        .and_then(|lookup| lookup.outcome())
        .map(|outcome| outcome.peers)
        .unwrap_or_default()
}

/// The peers `mainline`'s `get_peers` finds for `info_hash`.
#[allow(deprecated)]
fn mainline_peers(dht: &mainline::Dht, info_hash: InfoHash) -> Vec<SocketAddrV4> {
    dht.get_peers(id_of(info_hash)).flatten().collect()
}

/// A few btdht nodes on loopback that know each other, the first one the others' bootstrap.
fn btdht_network(first: u8, count: u8) -> Vec<Dht> {
    let seed = loopback(first).start().expect("btdht node");
    let mut nodes = vec![seed.clone()];
    for n in first + 1..first + count {
        nodes.push(
            loopback(n)
                .bootstrap([seed.local_addr()])
                .start()
                .expect("btdht node"),
        );
    }
    let joined = wait_until_every(T, Duration::from_millis(50), || {
        nodes.iter().all(|d| {
            d.routing_table()
                .map(|t| t.len() + 1 >= usize::from(count))
                .unwrap_or(false)
        })
    });
    assert!(joined, "the btdht nodes found each other");
    nodes
}

#[test]
#[allow(deprecated)]
fn a_mainline_client_announces_and_finds_through_btdht_nodes() {
    let nodes = btdht_network(150, 8);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|d| d.local_addr()).collect();
    let client = mainline_client(&addrs[..1]);

    // find_node: mainline's lookup through btdht returns btdht's nodes.
    let found = client.find_node(id_of(nodes[3].id()));
    let found: Vec<SocketAddrV4> = found.iter().map(|n| n.address()).collect();
    assert!(
        found.iter().any(|a| SocketAddr::V4(*a) == addrs[3]),
        "mainline's find_node through btdht: {found:?}"
    );

    // announce_peer from mainline is stored by btdht nodes and found by a btdht client.
    let from_mainline = btdht::NodeId([0x4d; 20]);
    client
        .announce_peer(id_of(from_mainline), Some(40_001))
        .expect("mainline's announce through btdht");
    let btdht_client = loopback(170).bootstrap([addrs[0]]).start().unwrap();
    let seen = wait_until_every(T, Duration::from_millis(200), || {
        btdht_peers(&btdht_client, from_mainline)
            .iter()
            .any(|p| p.port() == 40_001)
    });
    assert!(seen, "btdht finds the peer mainline announced");

    // A btdht announce is found by mainline's get_peers.
    let from_btdht = btdht::NodeId([0xb7; 20]);
    let announced = btdht_client
        .announce(from_btdht, Some(40_002), false)
        .unwrap();
    assert!(announced.acknowledged > 0, "{announced:?}");
    let seen = wait_until_every(T, Duration::from_millis(200), || {
        mainline_peers(&client, from_btdht)
            .iter()
            .any(|p| p.port() == 40_002)
    });
    assert!(seen, "mainline finds the peer btdht announced");

    btdht_client.stop().unwrap();
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
#[allow(deprecated)]
fn a_btdht_client_announces_and_finds_through_mainline_nodes() {
    let testnet = Testnet::builder(8)
        .bind_address(Ipv4Addr::LOCALHOST)
        .build()
        .expect("a mainline testnet on loopback");
    let bootstrap: Vec<SocketAddr> = testnet
        .bootstrap
        .iter()
        .map(|a| a.parse().expect("a socket address"))
        .collect();
    assert!(bootstrap.iter().all(|a| a.ip().is_loopback()));

    let btdht = loopback(171).bootstrap(bootstrap.clone()).start().unwrap();
    // btdht's find_node through mainline servers returns mainline's nodes.
    let target = btdht::NodeId([0x5a; 20]);
    let outcome = btdht.find_node(target).unwrap();
    assert!(
        outcome
            .closest
            .iter()
            .filter(|(n, _)| bootstrap.contains(&n.addr))
            .count()
            >= 6,
        "btdht's find_node through mainline: {:?}",
        outcome.closest
    );

    // A btdht announce is stored by mainline servers and found by a mainline client.
    let from_btdht = btdht::NodeId([0x3c; 20]);
    let announced = btdht.announce(from_btdht, Some(40_003), false).unwrap();
    assert!(announced.acknowledged > 0, "{announced:?}");
    let client = mainline_client(&bootstrap[..1]);
    let seen = wait_until_every(T, Duration::from_millis(200), || {
        mainline_peers(&client, from_btdht)
            .iter()
            .any(|p| p.port() == 40_003)
    });
    assert!(seen, "mainline finds the peer btdht announced");

    // mainline's announce is found by btdht's get_peers.
    let from_mainline = btdht::NodeId([0xc3; 20]);
    client
        .announce_peer(id_of(from_mainline), Some(40_004))
        .expect("mainline's announce");
    let seen = wait_until_every(T, Duration::from_millis(200), || {
        btdht_peers(&btdht, from_mainline)
            .iter()
            .any(|p| p.port() == 40_004)
    });
    assert!(seen, "btdht finds the peer mainline announced");
    btdht.stop().unwrap();
}

#[test]
#[allow(deprecated)]
fn a_mainline_client_stores_and_gets_bep44_items_on_btdht_nodes() {
    let nodes = btdht_network(180, 8);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|d| d.local_addr()).collect();
    // Client-mode mainline nodes answer no queries: whatever a second client gets back was
    // stored by btdht nodes.
    let writer = mainline_client(&addrs[..1]);
    let reader = mainline_client(&addrs[1..2]);

    let value = b"stored by mainline, kept by btdht";
    let target = writer
        .put_immutable(value)
        .expect("immutable put through btdht");
    let expected = btdht::items::immutable_target(&btdht::krpc::RawValue::from_bytes(value));
    assert_eq!(target.as_bytes(), &expected.0);
    assert_eq!(reader.get_immutable(target).as_deref(), Some(&value[..]));

    let key = mainline::SigningKey::from_bytes(&[0x42; 32]);
    let first = mainline::MutableItem::new(key.clone(), b"first", 1, Some(b"salt"));
    writer
        .put_mutable(first, None)
        .expect("mutable put through btdht");
    let second = mainline::MutableItem::new(key.clone(), b"second", 2, Some(b"salt"));
    writer
        .put_mutable(second, Some(1))
        .expect("compare-and-swap through btdht");
    let public_key = key.verifying_key().to_bytes();
    let got = reader
        .get_mutable_most_recent(&public_key, Some(b"salt"))
        .expect("the mutable item from btdht nodes");
    assert_eq!((got.seq(), got.value()), (2, &b"second"[..]));
    // The same item, read the btdht way, verifies with btdht's own check.
    let item = btdht::items::MutableItem {
        public_key,
        salt: b"salt".to_vec(),
        seq: got.seq(),
        value: btdht::krpc::RawValue::from_bytes(got.value()),
        signature: *got.signature(),
    };
    item.verify()
        .expect("mainline's signature verifies in btdht");
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
#[allow(deprecated)]
fn a_btdht_client_stores_and_gets_bep44_items_on_mainline_nodes() {
    use btdht::items::{MutableItem, StoredItem};
    use btdht::krpc::RawValue;

    let testnet = Testnet::builder(8)
        .bind_address(Ipv4Addr::LOCALHOST)
        .build()
        .expect("a mainline testnet on loopback");
    let bootstrap: Vec<SocketAddr> = testnet
        .bootstrap
        .iter()
        .map(|a| a.parse().expect("a socket address"))
        .collect();
    let writer = loopback(190).bootstrap(bootstrap.clone()).start().unwrap();
    let reader = loopback(191).bootstrap(bootstrap.clone()).start().unwrap();
    let client = mainline_client(&bootstrap[..1]);

    // Immutable: btdht puts, btdht and mainline get.
    let value = b"stored by btdht, kept by mainline";
    let put = writer.put_immutable(RawValue::from_bytes(value)).unwrap();
    assert!(put.stored >= 6, "{put:?}");
    let got = reader.get_immutable(put.target).unwrap();
    assert_eq!(
        got.item,
        Some(StoredItem::Immutable(RawValue::from_bytes(value)))
    );
    let target = Id::from_bytes(put.target.0).unwrap();
    assert_eq!(client.get_immutable(target).as_deref(), Some(&value[..]));

    // Mutable: btdht puts seq 1, then seq 2 with cas 1; a stale cas is refused with 301.
    let seed = [0x24; 32];
    let first = MutableItem::sign(&seed, b"salt", 1, RawValue::from_bytes(b"first")).unwrap();
    let put = writer.put_mutable(first, None).unwrap();
    assert!(put.stored >= 6, "{put:?}");
    let second = MutableItem::sign(&seed, b"salt", 2, RawValue::from_bytes(b"second")).unwrap();
    let put = writer.put_mutable(second.clone(), Some(1)).unwrap();
    assert!(put.stored >= 6, "{put:?}");
    let third = MutableItem::sign(&seed, b"salt", 3, RawValue::from_bytes(b"third")).unwrap();
    let put = writer.put_mutable(third, Some(1)).unwrap();
    assert!(put.errors.contains(&301), "{put:?}");
    let got = reader
        .get_mutable(second.public_key, b"salt", None)
        .unwrap();
    assert_eq!(got.item, Some(StoredItem::Mutable(second.clone())));
    let from_mainline = client
        .get_mutable_most_recent(&second.public_key, Some(b"salt"))
        .expect("mainline gets the item btdht put");
    assert_eq!(
        (from_mainline.seq(), from_mainline.value()),
        (2, &b"second"[..])
    );

    // mainline puts, btdht gets.
    let key = mainline::SigningKey::from_bytes(&[0x43; 32]);
    let item = mainline::MutableItem::new(key.clone(), b"from mainline", 7, None);
    client.put_mutable(item, None).expect("mainline's put");
    let public_key = key.verifying_key().to_bytes();
    let got = reader.get_mutable(public_key, b"", None).unwrap();
    match got.item {
        Some(StoredItem::Mutable(item)) => {
            assert_eq!(item.seq, 7);
            assert_eq!(item.value, RawValue::from_bytes(b"from mainline"));
        }
        other => panic!("btdht gets mainline's item: {other:?}"),
    }
    let target = client
        .put_immutable(b"immutable from mainline")
        .expect("mainline's immutable put");
    let got = reader
        .get_immutable(btdht::NodeId(*target.as_bytes()))
        .unwrap();
    assert_eq!(
        got.item,
        Some(StoredItem::Immutable(RawValue::from_bytes(
            b"immutable from mainline"
        )))
    );
    writer.stop().unwrap();
    reader.stop().unwrap();
}
