//! Lookups among silent nodes, in simulated time: with 30% of the nodes gone silent, lookups do
//! not wait for them, and they find the true closest live nodes as soon as the tables know who
//! is gone.
//!
//! Right after the silence, every table still lists the silent nodes as good, and every reply
//! lists the 8 closest entries of its sender's table, silent ones included: near the target
//! about 3 of the 8 places in each reply go to silent nodes. The 8 closest live responders
//! then name only nodes closer than the 6th to 8th closest live node, so a lookup can miss
//! those: no node it can reach knows of them. The first phase checks that this is the only
//! loss (the 5 closest live nodes always found, a live node missed named by none of the
//! closest responders) and that lookups end within 3 s all the same. The second phase lets the
//! network's own maintenance run (a silent entry is questionable after 15 minutes without
//! contact, then pinged and dropped from the replies): every lookup then finds exactly the true
//! 8 closest live nodes.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use btdht::id::NodeId;
use btdht::node::{Event, LookupOutcome};
use btdht::sim::dht::{DhtSim, sim_config};
use btdht::sim::{LinkModel, TraceKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const LOOKUPS: usize = 40;

/// Who one lookup's querier sent to: the addresses that were online and those that were not.
#[derive(Default)]
struct Queried {
    from: Option<SocketAddr>,
    live: HashSet<SocketAddr>,
    silent: HashSet<SocketAddr>,
}

/// A network of 1,000 nodes, 30% of which go silent at once after 2 minutes.
fn network_with_silent_nodes() -> (DhtSim, Rc<RefCell<Queried>>) {
    let mut sim = DhtSim::build(
        1_000,
        21,
        LinkModel::new(Duration::from_millis(30)),
        &sim_config(),
        Duration::from_millis(10),
    );
    sim.run_for(Duration::from_secs(120));
    let mut rng = SmallRng::seed_from_u64(21);
    let addrs: Vec<_> = sim.nodes.iter().map(|n| n.1).collect();
    for addr in &addrs {
        if rng.random_bool(0.3) {
            sim.net.set_online(*addr, false);
        }
    }
    let queried = Rc::new(RefCell::new(Queried::default()));
    let seen = Rc::clone(&queried);
    sim.net.set_observer(move |event| {
        let mut q = seen.borrow_mut();
        if q.from != Some(event.from) {
            return;
        }
        match event.kind {
            TraceKind::Delivered => {
                q.live.insert(event.to);
            }
            TraceKind::DroppedOffline => {
                q.silent.insert(event.to);
            }
            _ => {}
        }
    });
    (sim, queried)
}

/// One lookup for a random target from a random live node: its outcome, the true 8 closest live
/// nodes to the target, and who it sent to.
fn lookup(
    sim: &mut DhtSim,
    queried: &Rc<RefCell<Queried>>,
) -> (SocketAddr, NodeId, LookupOutcome, Vec<NodeId>) {
    let mut from = sim.random_node();
    while sim.net.is_online(from) != Some(true) {
        from = sim.random_node();
    }
    let target = sim.random_id();
    *queried.borrow_mut() = Queried {
        from: Some(from),
        ..Queried::default()
    };
    let event = sim
        .request(from, Duration::from_secs(10), |node, now| {
            node.find_node(now, target)
        })
        .expect("the lookup finishes");
    let Event::LookupDone { outcome, .. } = event else {
        panic!("{event:?}")
    };
    assert!(!outcome.partial);
    let truth = sim.oracle_closest(&target, 8, Some(from));
    (from, target, outcome, truth)
}

fn found(outcome: &LookupOutcome) -> Vec<NodeId> {
    outcome.closest.iter().map(|(n, _)| n.id).collect()
}

#[test]
fn lookups_widen_past_silent_nodes_and_find_the_true_closest_once_tables_know() {
    let (mut sim, queried) = network_with_silent_nodes();

    // Right after the silence.
    let (mut exact, mut overlap, mut live, mut silent) = (0, 0, 0, 0);
    let mut slowest = Duration::ZERO;
    for _ in 0..LOOKUPS {
        let (from, target, outcome, truth) = lookup(&mut sim, &queried);
        slowest = slowest.max(outcome.duration);
        live += queried.borrow().live.len();
        silent += queried.borrow().silent.len();
        let found = found(&outcome);
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
        "fresh silence: {silent} of {} addresses queried were silent; {exact}/{LOOKUPS} exact, \
         {overlap}/{} of the true closest found, slowest {slowest:?}",
        live + silent,
        LOOKUPS * 8
    );
    // The lookups met the silent nodes: over a fifth of the addresses they asked.
    assert!(silent * 5 > live + silent, "{silent} of {}", live + silent);
    assert!(slowest <= Duration::from_secs(3), "{slowest:?}");

    // After the network's own maintenance found the silent entries out.
    sim.run_for(Duration::from_secs(20 * 60));
    let mut slowest = Duration::ZERO;
    for lookup_number in 0..LOOKUPS {
        let (_, _, outcome, truth) = lookup(&mut sim, &queried);
        slowest = slowest.max(outcome.duration);
        assert_eq!(found(&outcome), truth, "lookup {lookup_number}");
    }
    println!("after 20 more minutes: {LOOKUPS}/{LOOKUPS} exact, slowest {slowest:?}");
    assert!(slowest <= Duration::from_secs(3), "{slowest:?}");
}
