//! Lookups among silent nodes, in simulated time: with 30% of the nodes gone silent but still
//! in everyone's tables, lookups do not wait for them and still find the true closest of the
//! live nodes.

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
    }
    println!(
        "{exact}/{lookups} exact, {overlap}/{} of the true closest found, slowest {slowest:?}",
        lookups * 8
    );
    assert!(slowest <= Duration::from_secs(3), "{slowest:?}");
    // The silent nodes are still in every table, so a reply lists fewer than 8 live nodes:
    // the 8th closest live node is sometimes in no reply at all.
    assert!(
        overlap * 100 >= lookups * 8 * 85,
        "{overlap} of {}",
        lookups * 8
    );
}
