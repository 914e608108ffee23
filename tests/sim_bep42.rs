//! Announces prefer BEP 42-valid nodes, in simulated time: the 8 nodes closest to an
//! info-hash have ids that are not valid for their addresses, and 8 valid nodes are just
//! behind them (nodes of clients that do not implement BEP 42 keep such ids). The announce goes
//! to the 8 valid ones.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use btdht::NodeId;
use btdht::node::{Config, Event, Node};
use btdht::sim::LinkModel;
use btdht::sim::dht::DhtSim;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const BACKGROUND: u32 = 300;
const K: usize = 8;

/// Background node `n`: one public /24 each.
fn background_addr(n: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x1400_0000 + (n << 8) + 1), 6881))
}

/// Valid node `n`: addresses that differ only in bits BEP 42 masks out (the top 6 bits of the
/// first octet), so the ids valid for them all share their first 21 bits. Each is on its own
/// /24.
fn valid_addr(n: u32) -> SocketAddr {
    SocketAddr::from(([21 + 4 * n as u8, 2, 3, 4], 6881))
}

/// Invalid node `n`: one public /24 each.
fn invalid_addr(n: u32) -> SocketAddr {
    SocketAddr::from(([30, n as u8, 0, 1], 6881))
}

/// The defaults, public addresses only, no informational events.
fn config() -> Config {
    Config {
        node_events: false,
        incoming_events: false,
        ..Config::default()
    }
}

/// Nodes that do not implement BEP 42: they never take an id for their external address.
fn legacy_config() -> Config {
    let mut config = config();
    config.external_ip_vote.min_voters = usize::MAX;
    config
}

fn join(sim: &mut DhtSim, rng: &mut SmallRng, id: NodeId, addr: SocketAddr, config: Config) {
    let node = Node::new(config, id, rng.random(), sim.net.now());
    sim.net.add_node(addr, node);
    if !sim.nodes.is_empty() {
        let mut via: Vec<SocketAddr> = Vec::new();
        for _ in 0..3 {
            let (_, at) = sim.nodes[rng.random_range(0..sim.nodes.len())];
            if !via.contains(&at) {
                via.push(at);
            }
        }
        let now = sim.net.now();
        if let Some(node) = sim.net.node_mut(addr) {
            node.bootstrap(now, &via);
        }
    }
    sim.nodes.push((id, addr));
    sim.net.run_for(Duration::from_millis(10));
}

/// Whether the node at `addr` stores an announce of `info_hash`.
fn stores(sim: &DhtSim, addr: SocketAddr, info_hash: &NodeId) -> bool {
    let node = sim.net.node(addr).expect("a node");
    node.peer_store().peers().any(|p| p.info_hash == *info_hash)
}

#[test]
fn announces_go_to_valid_nodes_behind_invalid_closest_ones() {
    let mut sim = DhtSim::build(
        0,
        42,
        LinkModel::new(Duration::from_millis(30)),
        &config(),
        Duration::ZERO,
    );
    let mut rng = SmallRng::seed_from_u64(42);
    for n in 0..BACKGROUND {
        let addr = background_addr(n);
        let id = NodeId::bep42(addr.ip(), rng.random(), &mut rng);
        join(&mut sim, &mut rng, id, addr, config());
    }
    // The valid ids share their first 21 bits; the target shares them too.
    let valid: Vec<(NodeId, SocketAddr)> = (0..K as u32)
        .map(|n| {
            let addr = valid_addr(n);
            (NodeId::bep42(addr.ip(), 1, &mut rng), addr)
        })
        .collect();
    let target = valid[0].0.random_at_prefix(21, &mut rng);
    // The invalid ids share at least 40 bits with the target: closer than any valid one.
    let invalid: Vec<(NodeId, SocketAddr)> = (0..K as u32)
        .map(|n| {
            let id = target.random_at_prefix(40 + n as usize, &mut rng);
            (id, invalid_addr(n))
        })
        .collect();
    for (id, addr) in &valid {
        join(&mut sim, &mut rng, *id, *addr, config());
    }
    for (id, addr) in &invalid {
        join(&mut sim, &mut rng, *id, *addr, legacy_config());
    }
    assert!(valid.iter().all(|(id, a)| id.is_bep42_valid_for(a.ip())));
    assert!(invalid.iter().all(|(id, a)| !id.is_bep42_valid_for(a.ip())));
    let truth = sim.oracle_closest(&target, 2 * K, None);
    assert!(
        truth[..K]
            .iter()
            .all(|id| invalid.iter().any(|(i, _)| i == id))
    );
    assert!(
        truth[K..]
            .iter()
            .all(|id| valid.iter().any(|(v, _)| v == id))
    );
    sim.run_for(Duration::from_secs(60));

    let announcer = background_addr(17);
    let event = sim
        .request(announcer, Duration::from_secs(60), |node, now| {
            node.announce(now, target, Some(7000), false)
        })
        .expect("announce completes");
    let Event::AnnounceDone {
        outcome,
        sent,
        acknowledged,
        ..
    } = event
    else {
        panic!("{event:?}")
    };
    // The 8 closest that answered are the invalid ones ...
    let closest: Vec<NodeId> = outcome.closest.iter().map(|(n, _)| n.id).collect();
    assert_eq!(closest, truth[..K].to_vec());
    // ... but the announce went to the valid ones just behind.
    assert_eq!((sent, acknowledged), (K, K));
    for (id, addr) in &valid {
        assert!(
            stores(&sim, *addr, &target),
            "valid {id} was not announced to"
        );
    }
    for (id, addr) in &invalid {
        assert!(
            !stores(&sim, *addr, &target),
            "invalid {id} was announced to"
        );
    }
}
