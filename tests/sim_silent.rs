//! Lookups among silent nodes, in simulated time: with 30% of the nodes gone silent but still
//! in everyone's tables, lookups do not wait for them and find the closest of the live nodes.
//!
//! Not always all 8: every reply lists the 8 closest entries of its sender's table, silent
//! ones included, so near the target about 3 of the 8 places in each reply go to silent nodes.
//! The 8 closest live responders then name only nodes that are closer than the 6th to 8th
//! closest live node, and the lookup, done once those 8 answered, never hears of it. The test
//! measures that gap (seed 21: 17 of 40 lookups exact, 288 of 320 of the true closest found,
//! each miss among the 6th to 8th) and checks that it is only that: the 5 closest live nodes
//! are always found, and a live node missed is named in the reply of none of the 8 closest
//! responders.

use std::time::Duration;

use btdht::node::Event;
use btdht::sim::LinkModel;
use btdht::sim::dht::{DhtSim, sim_config};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[test]
fn lookups_widen_past_silent_nodes_and_finish_in_three_seconds() {
    let mut sim = DhtSim::build(
        1_000,
        21,
        LinkModel::new(Duration::from_millis(30)),
        &sim_config(),
        Duration::from_millis(10),
    );
    sim.run_for(Duration::from_secs(120));
    // 30% of the nodes go silent at once: the others' tables still list them as good.
    let mut rng = SmallRng::seed_from_u64(21);
    let addrs: Vec<_> = sim.nodes.iter().map(|n| n.1).collect();
    for addr in &addrs {
        if rng.random_bool(0.3) {
            sim.net.set_online(*addr, false);
        }
    }
    let lookups = 40;
    let mut exact = 0;
    let mut overlap = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..lookups {
        let mut from = sim.random_node();
        while sim.net.is_online(from) != Some(true) {
            from = sim.random_node();
        }
        let target = sim.random_id();
        let event = sim
            .request(from, Duration::from_secs(10), |node, now| {
                node.find_node(now, target)
            })
            .expect("the lookup finishes");
        let Event::LookupDone { outcome, .. } = event else {
            panic!("{event:?}")
        };
        assert!(!outcome.partial);
        slowest = slowest.max(outcome.duration);
        let found: Vec<_> = outcome.closest.iter().map(|(n, _)| n.id).collect();
        let truth = sim.oracle_closest(&target, 8, Some(from));
        exact += usize::from(found == truth);
        overlap += found.iter().filter(|id| truth.contains(id)).count();
        for (rank, id) in truth.iter().enumerate() {
            if found.contains(id) {
                continue;
            }
            assert!(rank >= 5, "the live node ranked {rank} was missed");
            // What each of the closest responders answers `from`: its 8 closest entries but
            // `from` itself.
            for (node, _) in &outcome.closest {
                let table = sim
                    .net
                    .node(node.addr)
                    .expect("a responder")
                    .routing_table();
                let reply: Vec<_> = table
                    .closest(&target, 9)
                    .into_iter()
                    .filter(|n| n.addr != from)
                    .take(8)
                    .collect();
                assert!(
                    reply.iter().all(|n| n.id != *id),
                    "{} names {id}, which the lookup missed",
                    node.id
                );
            }
        }
    }
    println!(
        "{exact}/{lookups} exact, {overlap}/{} of the true closest found, slowest {slowest:?}",
        lookups * 8
    );
    assert!(slowest <= Duration::from_secs(3), "{slowest:?}");
    // Measured: 288 of 320 (90%), the misses explained above.
    assert!(
        overlap * 100 >= lookups * 8 * 88,
        "{overlap} of {}",
        lookups * 8
    );
}
