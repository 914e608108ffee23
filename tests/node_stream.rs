//! The core's streamed and cut-short lookups, in simulated time: get_peers reports peers as
//! replies bring them before its completion, a lookup cancelled or past its deadline ends at
//! once with what it found marked partial and nothing left running, and BEP 33 `noseed` and
//! `seed` reach the other nodes.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::node::{Event, RequestId};
use btdht::sim::LinkModel;
use btdht::sim::dht::{DhtSim, sim_config};
use btdht::{InfoHash, NodeId};

fn build() -> DhtSim {
    let mut sim = DhtSim::build(
        150,
        3,
        LinkModel::new(Duration::from_millis(30)),
        &sim_config(),
        Duration::from_millis(10),
    );
    sim.run_for(Duration::from_secs(60));
    sim
}

/// Announces `port` for `info_hash` from the `index`th node and waits for the acknowledgements.
fn announce(sim: &mut DhtSim, index: usize, info_hash: InfoHash, port: u16, seed: bool) {
    let from = sim.nodes[index].1;
    let event = sim
        .request(from, Duration::from_secs(60), |node, now| {
            node.announce(now, info_hash, Some(port), seed)
        })
        .expect("announce completes");
    let Event::AnnounceDone { acknowledged, .. } = event else {
        panic!("{event:?}")
    };
    assert!(acknowledged > 0, "{event:?}");
}

/// Every event of `request` at node `at`, in order, until its completion or `limit` of
/// virtual time.
fn events_of(
    sim: &mut DhtSim,
    at: SocketAddr,
    request: RequestId,
    limit: Duration,
) -> Vec<(Duration, Event)> {
    let start = sim.net.now();
    let mut seen = Vec::new();
    while sim.net.now() < start + limit {
        sim.net.run_for(Duration::from_millis(5));
        let now = sim.net.now();
        let node = sim.net.node_mut(at).expect("node exists");
        while let Some(event) = node.poll_event() {
            let mine = match &event {
                Event::PeersFound { request: r, .. }
                | Event::LookupDone { request: r, .. }
                | Event::AnnounceDone { request: r, .. } => *r == request,
                _ => false,
            };
            if mine {
                seen.push((now - start, event));
            }
        }
    }
    seen
}

fn done_outcome(events: &[(Duration, Event)]) -> &btdht::node::LookupOutcome {
    let done: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::LookupDone { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 1, "one completion: {events:?}");
    done[0]
}

#[test]
fn get_peers_reports_peers_before_it_completes() {
    let mut sim = build();
    let info_hash = NodeId([0x42; 20]);
    for (i, port) in [(10, 7001), (20, 7002), (30, 7003)] {
        announce(&mut sim, i, info_hash, port, false);
    }
    let at = sim.nodes[100].1;
    sim.drain_events();
    let now = sim.net.now();
    let request = sim.net.node_mut(at).unwrap().get_peers(now, info_hash);
    let events = events_of(&mut sim, at, request, Duration::from_secs(30));

    let outcome = done_outcome(&events);
    assert!(!outcome.partial);
    assert_eq!(outcome.peers.len(), 3, "{outcome:?}");
    let Some(last) = events.last() else {
        panic!("no events")
    };
    assert!(matches!(last.1, Event::LookupDone { .. }), "{events:?}");
    let streamed: Vec<SocketAddr> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::PeersFound { peers, .. } => Some(peers.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    // Each peer once, and all of them before the completion.
    assert_eq!(streamed, outcome.peers);
    let first_peers = events
        .iter()
        .find(|(_, e)| matches!(e, Event::PeersFound { .. }))
        .map(|(t, _)| *t)
        .expect("peers were streamed");
    assert!(
        first_peers < last.0,
        "streamed at {first_peers:?}, done at {:?}",
        last.0
    );
}

#[test]
fn a_deadline_ends_the_lookup_with_a_partial_outcome() {
    let mut sim = build();
    let info_hash = NodeId([0x17; 20]);
    let at = sim.nodes[50].1;
    sim.drain_events();
    let running = sim.net.node(at).unwrap().operations_running();
    let now = sim.net.now();
    let node = sim.net.node_mut(at).unwrap();
    let request = node.get_peers(now, info_hash);
    // Replies take 60 ms at least; a lookup takes several round trips.
    assert!(node.set_deadline(request, now + Duration::from_millis(100)));
    assert!(node.poll_timeout().unwrap() <= now + Duration::from_millis(100));
    let events = events_of(&mut sim, at, request, Duration::from_secs(30));
    let outcome = done_outcome(&events);
    assert!(outcome.partial, "{outcome:?}");
    assert!(
        outcome.responses > 0,
        "the first round answered: {outcome:?}"
    );
    let done_at = events.last().unwrap().0;
    assert!(done_at <= Duration::from_millis(105), "done at {done_at:?}");
    let now = sim.net.now();
    let node = sim.net.node_mut(at).unwrap();
    assert_eq!(node.operations_running(), running, "nothing left running");
    assert!(!node.cancel(now, request), "already over");
}

#[test]
fn cancel_ends_a_lookup_and_an_announce_at_once() {
    let mut sim = build();
    let info_hash = NodeId([0x99; 20]);
    let at = sim.nodes[70].1;
    sim.run_for(Duration::ZERO);
    let now = sim.net.now();
    let node = sim.net.node_mut(at).unwrap();
    let lookup = node.find_node(now, info_hash);
    let announce = node.announce(now, info_hash, Some(7000), true);
    sim.net.run_for(Duration::from_millis(70));
    let now = sim.net.now();
    let node = sim.net.node_mut(at).unwrap();
    assert!(node.cancel(now, lookup));
    assert!(node.cancel(now, announce));
    let mut completions = Vec::new();
    while let Some(event) = node.poll_event() {
        match event {
            Event::LookupDone {
                request, outcome, ..
            } if request == lookup => completions.push(("lookup", outcome.partial, 0)),
            Event::AnnounceDone {
                request,
                outcome,
                sent,
                ..
            } if request == announce => completions.push(("announce", outcome.partial, sent)),
            _ => {}
        }
    }
    assert_eq!(completions.len(), 2, "{completions:?}");
    assert_eq!((completions[0].0, completions[0].1), ("lookup", true));
    assert_eq!((completions[1].0, completions[1].1), ("announce", true));
    // The nodes that gave tokens in the first round were sent the announce.
    assert!(completions[1].2 > 0, "{completions:?}");
    // Replies to the cancelled lookup's queries are ignored.
    sim.net.run_for(Duration::from_secs(20));
    let node = sim.net.node_mut(at).unwrap();
    while let Some(event) = node.poll_event() {
        assert!(
            !matches!(&event, Event::LookupDone { request, .. } | Event::AnnounceDone { request, .. } if *request == lookup || *request == announce),
            "{event:?}"
        );
    }
}

#[test]
fn noseed_leaves_out_the_peers_announced_as_seeds() {
    let mut sim = build();
    let info_hash = NodeId([0x33; 20]);
    announce(&mut sim, 10, info_hash, 7001, true);
    announce(&mut sim, 20, info_hash, 7002, false);
    let seed = SocketAddr::new(sim.nodes[10].1.ip(), 7001);
    let leecher = SocketAddr::new(sim.nodes[20].1.ip(), 7002);
    let at = sim.nodes[120].1;
    for (noseed, expected) in [(false, vec![seed, leecher]), (true, vec![leecher])] {
        sim.drain_events();
        let now = sim.net.now();
        let request = sim
            .net
            .node_mut(at)
            .unwrap()
            .get_peers_with(now, info_hash, noseed);
        let events = events_of(&mut sim, at, request, Duration::from_secs(30));
        let mut peers = done_outcome(&events).peers.clone();
        peers.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(peers, expected, "noseed {noseed}");
    }
}
