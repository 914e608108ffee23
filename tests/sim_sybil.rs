//! Sybils in simulated time: 2,000 honest nodes, each on its own public /24, and an attacker
//! running 200 nodes on one /24 with the 200 ids closest to a target. Lookups for the target
//! return at most one of the attacker's nodes among their 8 results, and get_peers still finds
//! an honest announce.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use btdht::NodeId;
use btdht::node::{Config, Event, Node};
use btdht::sim::dht::DhtSim;
use btdht::sim::{Jitter, LinkModel};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const HONEST: u32 = 2_000;
const SYBILS: u32 = 200;

/// Honest node `n`: one public /24 each, the host part varying.
fn honest_addr(n: u32) -> SocketAddr {
    let ip = Ipv4Addr::from(0x1400_0000 + (n << 8) + 1 + n % 200);
    SocketAddr::from((ip, 6881))
}

/// Sybil `n`: all on 66.6.6.0/24.
fn sybil_addr(n: u32) -> SocketAddr {
    SocketAddr::from(([66, 6, 6, (n + 1) as u8], 6881))
}

fn is_sybil(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V4(v4) if v4.ip().octets()[..3] == [66, 6, 6])
}

/// The defaults, public addresses only, no informational events.
fn config() -> Config {
    Config {
        node_events: false,
        incoming_events: false,
        ..Config::default()
    }
}

fn join(sim: &mut DhtSim, rng: &mut SmallRng, id: NodeId, addr: SocketAddr) {
    let node = Node::new(config(), id, rng.random(), sim.net.now());
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

#[test]
fn an_attacker_on_one_slash_24_gets_at_most_one_result() {
    let mut link = LinkModel::new(Duration::from_millis(30));
    link.jitter = Jitter::Uniform {
        max: Duration::from_millis(40),
    };
    link.loss = 0.02;
    let mut sim = DhtSim::build(0, 5, link, &config(), Duration::ZERO);
    let mut rng = SmallRng::seed_from_u64(5);
    let target = NodeId::random(&mut rng);
    for n in 0..HONEST {
        let id = NodeId::random(&mut rng);
        join(&mut sim, &mut rng, id, honest_addr(n));
    }
    // The attacker's ids share 24 to 40 bits with the target: far closer than any honest id.
    for n in 0..SYBILS {
        let id = target.random_at_prefix(24 + (n % 17) as usize, &mut rng);
        join(&mut sim, &mut rng, id, sybil_addr(n));
    }
    sim.run_for(Duration::from_secs(60));

    for _ in 0..10 {
        let from = honest_addr(rng.random_range(0..HONEST));
        let event = sim
            .request(from, Duration::from_secs(60), |node, now| {
                node.find_node(now, target)
            })
            .expect("lookup completes");
        let Event::LookupDone { outcome, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(outcome.closest.len(), 8);
        let sybils = outcome
            .closest
            .iter()
            .filter(|(n, _)| is_sybil(&n.addr))
            .count();
        assert!(sybils <= 1, "{sybils} of 8 results are the attacker's");
    }

    // An honest announce on the target is found by get_peers from honest nodes.
    let announcer = honest_addr(17);
    let event = sim
        .request(announcer, Duration::from_secs(60), |node, now| {
            node.announce(now, target, Some(7000), false)
        })
        .expect("announce completes");
    let Event::AnnounceDone { acknowledged, .. } = event else {
        panic!("{event:?}")
    };
    assert!(acknowledged >= 6, "{acknowledged} announces acknowledged");
    let peer = SocketAddr::new(announcer.ip(), 7000);
    for n in [3, 500, 1_000, 1_500, 1_999] {
        let event = sim
            .request(honest_addr(n), Duration::from_secs(60), |node, now| {
                node.get_peers(now, target)
            })
            .expect("get_peers completes");
        let Event::LookupDone { outcome, .. } = event else {
            panic!("{event:?}")
        };
        assert!(outcome.peers.contains(&peer), "node {n} missed the peer");
    }
}
