//! Recovery in simulated time: a node restarted from its saved table after an outage in which
//! its whole neighbourhood went away finds the network again through a router, which stays out
//! of its table.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use btdht::NodeId;
use btdht::node::Node;
use btdht::routing::Liveness;
use btdht::sim::dht::{DhtSim, sim_config};
use btdht::sim::{LinkModel, node_addr};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A node with `id` at `addr` joins `sim` through `via`.
fn join(sim: &mut DhtSim, addr: SocketAddr, id: NodeId, seed: u64, via: SocketAddr) {
    let now = sim.net.now();
    let mut node = Node::new(sim_config(), id, seed, now);
    node.bootstrap(now, &[via]);
    sim.net.add_node(addr, node);
    sim.nodes.push((id, addr));
}

#[test]
fn a_node_back_from_a_long_outage_rebuilds_its_table_through_a_router() {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut sim = DhtSim::build(
        300,
        5,
        LinkModel::new(Duration::from_millis(30)),
        &sim_config(),
        Duration::from_millis(10),
    );
    sim.run_for(Duration::from_secs(120));
    let (id, addr) = sim.nodes[150];
    let now = sim.net.now();
    let saved = sim.net.node(addr).unwrap().routing_table().snapshot(now);
    assert!(saved.nodes.len() >= 20, "{} saved", saved.nodes.len());

    // The node goes down; every node of its saved table and its 16 true neighbours leave.
    sim.net.set_online(addr, false);
    let mut gone: HashSet<SocketAddr> = saved.nodes.iter().map(|n| n.node.addr).collect();
    let neighbours = sim.oracle_closest(&id, 16, Some(addr));
    for (other_id, other) in sim.nodes.clone() {
        if neighbours.contains(&other_id) {
            gone.insert(other);
        }
    }
    for other in &gone {
        sim.net.set_online(*other, false);
    }
    // New nodes join during the outage, a dozen of them next to the node's id.
    let live: Vec<SocketAddr> = sim
        .nodes
        .iter()
        .map(|n| n.1)
        .filter(|a| *a != addr && !gone.contains(a))
        .collect();
    for n in 0..40u32 {
        let mut new_id = NodeId::random(&mut rng);
        if n < 12 {
            for bit in 0..10 {
                new_id.set_bit(bit, id.bit(bit));
            }
        }
        let via = live[rng.random_range(0..live.len())];
        join(&mut sim, node_addr(1_000 + n), new_id, rng.random(), via);
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(2 * 3600));

    // Restart from the saved table, with one surviving node as the router.
    let router = live[0];
    let now = sim.net.now();
    sim.net.remove_node(addr);
    let mut node = Node::new(sim_config(), id, 99, now);
    assert!(node.restore_routing(now, &saved) > 0);
    node.add_router(&[router]);
    node.bootstrap(now, &[]);
    sim.net.add_node(addr, node);
    sim.run_for(Duration::from_secs(120));

    let now = sim.net.now();
    let node = sim.net.node(addr).unwrap();
    let table = node.routing_table();
    let known: Vec<NodeId> = table.closest(&id, 8).iter().map(|n| n.id).collect();
    assert_eq!(known, sim.oracle_closest(&id, 8, Some(addr)));
    let good = table
        .entries()
        .filter(|e| table.liveness(now, e) == Liveness::Good)
        .count();
    println!("{good} good entries of {}", table.len());
    assert!(good >= 24, "{good} good entries");
    assert!(
        table
            .entries()
            .all(|e| !gone.contains(&e.addr()) || table.liveness(now, e) == Liveness::Bad),
        "a departed node counts as live"
    );
    assert!(
        table.get_by_addr(&router).is_none(),
        "the router entered the table"
    );
}
