//! BEP 44 at scale, in simulated time: on 2,000 nodes at 5% loss, one node puts an immutable
//! item and a salted mutable item (then a newer version of it, with compare-and-swap), and
//! 100 random other nodes each get both back, the mutable one at its newest sequence number.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::Instant;
use btdht::items::{MutableItem, StoredItem, immutable_target};
use btdht::krpc::RawValue;
use btdht::node::{Event, GetItemResult, Node, PutItemResult, RequestId};
use btdht::sim::dht::{DhtSim, sim_config};
use btdht::sim::{Jitter, LinkModel};

const NODES: usize = 2_000;
const GETTERS: usize = 100;
const SEED: [u8; 32] = [0x5a; 32];
const SALT: &[u8] = b"sim-salt";

fn build(seed: u64) -> DhtSim {
    let mut link = LinkModel::new(Duration::from_millis(30));
    link.jitter = Jitter::Uniform {
        max: Duration::from_millis(40),
    };
    link.loss = 0.05;
    let mut sim = DhtSim::build(NODES, seed, link, &sim_config(), Duration::from_millis(10));
    // Let bucket refreshes run after the last join.
    sim.run_for(Duration::from_secs(120));
    sim
}

fn request(
    sim: &mut DhtSim,
    at: SocketAddr,
    command: impl FnOnce(&mut Node, Instant) -> RequestId,
) -> Event {
    sim.request(at, Duration::from_secs(60), command)
        .expect("the request completes")
}

fn put(
    sim: &mut DhtSim,
    at: SocketAddr,
    command: impl FnOnce(&mut Node, Instant) -> RequestId,
) -> PutItemResult {
    match request(sim, at, command) {
        Event::PutItemDone { result, .. } => result,
        other => panic!("expected PutItemDone, got {other:?}"),
    }
}

fn get(
    sim: &mut DhtSim,
    at: SocketAddr,
    command: impl FnOnce(&mut Node, Instant) -> RequestId,
) -> GetItemResult {
    match request(sim, at, command) {
        Event::GetItemDone { result, .. } => result,
        other => panic!("expected GetItemDone, got {other:?}"),
    }
}

#[test]
fn items_put_by_one_node_are_found_from_100_random_nodes_at_5_percent_loss() {
    let mut sim = build(44);
    let putter = sim.random_node();

    let value = RawValue::from_bytes(b"an immutable item on 2,000 nodes");
    let target = immutable_target(&value);
    let stored = put(&mut sim, putter, |node, now| {
        node.put_immutable(now, value.clone()).unwrap()
    });
    println!(
        "immutable put: {}/{} stored, errors {:?}",
        stored.stored, stored.sent, stored.errors
    );
    assert_eq!(stored.target, target);
    assert!(stored.stored >= 6, "{stored:?}");
    assert!(stored.errors.is_empty(), "{:?}", stored.errors);

    // A salted mutable item, then its next version put with compare-and-swap: every get must
    // see the newer one.
    let public_key = MutableItem::public_key_of(&SEED);
    let first = MutableItem::sign(&SEED, SALT, 1, RawValue::from_bytes(b"version one")).unwrap();
    let stored = put(&mut sim, putter, |node, now| {
        node.put_mutable(now, first.clone(), None).unwrap()
    });
    println!(
        "mutable put seq 1: {}/{} stored, errors {:?}",
        stored.stored, stored.sent, stored.errors
    );
    assert!(stored.stored >= 6, "{stored:?}");
    assert!(stored.errors.is_empty(), "{:?}", stored.errors);
    let second = MutableItem::sign(&SEED, SALT, 2, RawValue::from_bytes(b"version two")).unwrap();
    let stored = put(&mut sim, putter, |node, now| {
        node.put_mutable(now, second.clone(), Some(1)).unwrap()
    });
    println!(
        "mutable put seq 2 (cas 1): {}/{} stored, errors {:?}",
        stored.stored, stored.sent, stored.errors
    );
    assert_eq!(stored.target, second.target());
    assert!(stored.stored >= 6, "{stored:?}");
    assert!(stored.errors.is_empty(), "{:?}", stored.errors);

    let mut immutable_found = 0;
    let mut mutable_found = 0;
    let mut queries = 0u64;
    for _ in 0..GETTERS {
        let mut from = sim.random_node();
        while from == putter {
            from = sim.random_node();
        }
        let got = get(&mut sim, from, |node, now| node.get_immutable(now, target));
        assert_eq!(got.rejected, 0, "{got:?}");
        queries += u64::from(got.outcome.queries);
        immutable_found += usize::from(got.item == Some(StoredItem::Immutable(value.clone())));

        let got = get(&mut sim, from, |node, now| {
            node.get_mutable(now, public_key, SALT, None).unwrap()
        });
        assert_eq!(got.rejected, 0, "{got:?}");
        queries += u64::from(got.outcome.queries);
        match &got.item {
            Some(StoredItem::Mutable(item)) if *item == second => mutable_found += 1,
            other => println!("mutable get from {from}: {other:?}"),
        }
    }
    println!(
        "gets: immutable {immutable_found}/{GETTERS}, mutable seq 2 {mutable_found}/{GETTERS}, \
         {:.1} queries per get",
        queries as f64 / (2 * GETTERS) as f64
    );
    assert_eq!(immutable_found, GETTERS);
    assert_eq!(mutable_found, GETTERS);
}
