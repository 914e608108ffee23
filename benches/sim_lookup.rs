//! Lookups in a simulated network of 10,000 nodes at 0%, 5% and 20% loss.
//!
//! For each loss rate: build the network (nodes join through earlier ones), let refreshes
//! settle, then run find_node lookups from random nodes to random targets and compare each
//! result with the true 8 closest (brute force). Prints a Markdown table: success rate (the
//! exact true 8 closest), mean rounds (hops), queries per lookup, and virtual lookup time.
//!
//! `cargo bench --bench sim_lookup` (release; about a minute per loss rate on 2 cores).
//! Environment: `SIM_NODES` (default 10000), `SIM_LOOKUPS` (default 200).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

use std::time::{Duration, Instant as WallClock};

use btdht::NodeId;
use btdht::node::Event;
use btdht::sim::dht::{DhtSim, sim_config};
use btdht::sim::{Jitter, LinkModel};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // Criterion-style flags (`--bench`) are accepted and ignored; `--list` prints nothing.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let nodes = env_usize("SIM_NODES", 10_000);
    let lookups = env_usize("SIM_LOOKUPS", 200);
    println!(
        "| loss | nodes | lookups | exact 8 closest | mean rounds | queries/lookup | mean virtual time | wall time |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for loss in [0.0, 0.05, 0.20] {
        let started = WallClock::now();
        let mut link = LinkModel::new(Duration::from_millis(30));
        link.jitter = Jitter::Uniform {
            max: Duration::from_millis(40),
        };
        link.loss = loss;
        let mut sim = DhtSim::build(nodes, 42, link, &sim_config(), Duration::from_millis(5));
        sim.run_for(Duration::from_secs(120));
        let (mut exact, mut rounds, mut queries) = (0usize, 0u64, 0u64);
        let mut virtual_time = Duration::ZERO;
        for _ in 0..lookups {
            let from = sim.random_node();
            let target = sim.random_id();
            let Some(Event::LookupDone { outcome, .. }) =
                sim.request(from, Duration::from_secs(120), |node, now| {
                    node.find_node(now, target)
                })
            else {
                continue;
            };
            let found: Vec<NodeId> = outcome.closest.iter().map(|(n, _)| n.id).collect();
            exact += usize::from(found == sim.oracle_closest(&target, 8, Some(from)));
            rounds += u64::from(outcome.rounds);
            queries += u64::from(outcome.queries);
            virtual_time += outcome.duration;
        }
        let n = lookups.max(1) as f64;
        println!(
            "| {:.0}% | {nodes} | {lookups} | {:.1}% | {:.2} | {:.1} | {:.2} s | {:.0} s |",
            loss * 100.0,
            exact as f64 * 100.0 / n,
            rounds as f64 / n,
            queries as f64 / n,
            virtual_time.as_secs_f64() / n,
            started.elapsed().as_secs_f64(),
        );
    }
}
