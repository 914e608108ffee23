//! The protocol core at scale, in simulated time: 2,000 nodes join, their tables converge,
//! lookups find the true closest nodes at 5% loss, announces are found, runs are reproducible.

use std::collections::HashSet;
use std::time::Duration;

use btdht::NodeId;
use btdht::node::{Event, LookupKind};
use btdht::sim::dht::{DhtSim, sim_config};
use btdht::sim::{Jitter, LinkModel};

const NODES: usize = 2_000;

fn link(loss: f64) -> LinkModel {
    let mut link = LinkModel::new(Duration::from_millis(30));
    link.jitter = Jitter::Uniform {
        max: Duration::from_millis(40),
    };
    link.loss = loss;
    link
}

fn build(seed: u64, loss: f64) -> DhtSim {
    let mut sim = DhtSim::build(
        NODES,
        seed,
        link(loss),
        &sim_config(),
        Duration::from_millis(10),
    );
    // Let bucket refreshes run after the last join.
    sim.run_for(Duration::from_secs(120));
    sim
}

#[test]
fn two_thousand_nodes_converge_and_find_the_true_closest() {
    let mut sim = build(7, 0.05);

    // Convergence: each node's table knows its own 8 true neighbours.
    let mut neighbours_known = 0usize;
    let mut neighbours_total = 0usize;
    for &(id, addr) in &sim.nodes {
        let node = sim.net.node(addr).unwrap();
        let known: HashSet<NodeId> = node
            .routing_table()
            .closest(&id, 8)
            .iter()
            .map(|n| n.id)
            .collect();
        for truth in sim.oracle_closest(&id, 8, Some(addr)) {
            neighbours_total += 1;
            neighbours_known += usize::from(known.contains(&truth));
        }
    }
    let converged = neighbours_known as f64 / neighbours_total as f64;
    println!("tables: {:.2}% of true neighbours known", converged * 100.0);
    assert!(converged >= 0.95, "tables converged to {converged}");

    // find_node from random nodes returns the true 8 closest in >= 99% of lookups.
    let lookups = 200;
    let mut exact = 0;
    let mut queries = 0u64;
    for _ in 0..lookups {
        let from = sim.random_node();
        let target = sim.random_id();
        let event = sim
            .request(from, Duration::from_secs(60), |node, now| {
                node.find_node(now, target)
            })
            .expect("lookup completes");
        let Event::LookupDone { kind, outcome, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(kind, LookupKind::FindNode);
        queries += u64::from(outcome.queries);
        let found: Vec<NodeId> = outcome.closest.iter().map(|(n, _)| n.id).collect();
        if found == sim.oracle_closest(&target, 8, Some(from)) {
            exact += 1;
        }
    }
    println!(
        "find_node: {exact}/{lookups} exact, {:.1} queries per lookup",
        queries as f64 / lookups as f64
    );
    assert!(
        exact * 100 >= lookups * 99,
        "{exact} of {lookups} lookups exact"
    );

    // An announce from one node is found by get_peers from 100 others.
    let announcer = sim.random_node();
    let info_hash = sim.random_id();
    let event = sim
        .request(announcer, Duration::from_secs(60), |node, now| {
            node.announce(now, info_hash, Some(7000), false)
        })
        .expect("announce completes");
    let Event::AnnounceDone {
        sent, acknowledged, ..
    } = event
    else {
        panic!("{event:?}")
    };
    println!("announce: {acknowledged}/{sent} acknowledged");
    assert!(
        acknowledged >= 6,
        "{acknowledged} of {sent} announces acknowledged"
    );
    let peer = std::net::SocketAddr::new(announcer.ip(), 7000);
    let mut found = 0;
    for _ in 0..100 {
        let mut from = sim.random_node();
        while from == announcer {
            from = sim.random_node();
        }
        let event = sim
            .request(from, Duration::from_secs(60), |node, now| {
                node.get_peers(now, info_hash)
            })
            .expect("get_peers completes");
        let Event::LookupDone { outcome, .. } = event else {
            panic!("{event:?}")
        };
        found += usize::from(outcome.peers.contains(&peer));
    }
    println!("get_peers: {found}/100 found the announced peer");
    assert_eq!(found, 100);
}

/// The digest of every delivery in a 300-node run with loss, jitter and duplication.
fn run_digest(seed: u64) -> u64 {
    let mut noisy = link(0.05);
    noisy.duplicate = 0.01;
    let mut sim = DhtSim::build(300, seed, noisy, &sim_config(), Duration::from_millis(10));
    sim.run_for(Duration::from_secs(30));
    let from = sim.random_node();
    let target = sim.random_id();
    sim.request(from, Duration::from_secs(30), |node, now| {
        node.find_node(now, target)
    })
    .expect("lookup completes");
    sim.net.trace_digest()
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let first = run_digest(11);
    assert_eq!(first, run_digest(11));
    assert_ne!(first, run_digest(12));
}
