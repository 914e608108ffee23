//! The crawler core against a simulated swarm of real `Node`s, in virtual time: it finds at
//! least 99% of 2,000 nodes and of the announced info-hashes, checked against the ground truth,
//! with few queries per node, politely, and reproducibly from its seed; two crawlers on the two
//! halves of the id space (`Shard`) find, together and without overlap, what one finds.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use btdht::Endpoint;
use btdht::crawler::{CrawlConfig, CrawlStats, Crawler, Record, Shard};
use btdht::node::Node;
use btdht::sim::dht::sim_config;
use btdht::sim::{Jitter, LinkModel, SimNet, node_addr};
use btdht::{InfoHash, Instant, NodeId, Transmit};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A swarm node or the crawler, in one network.
enum Peer {
    Node(Box<Node>),
    Crawler(Box<Crawler>),
}

impl Endpoint for Peer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match self {
            Peer::Node(n) => n.handle_datagram(now, from, bytes),
            Peer::Crawler(c) => c.handle_datagram(now, from, bytes),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Peer::Node(n) => n.handle_timeout(now),
            Peer::Crawler(c) => c.handle_timeout(now),
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Peer::Node(n) => n.poll_transmit(),
            Peer::Crawler(c) => c.poll_transmit(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Peer::Node(n) => n.poll_timeout(),
            Peer::Crawler(c) => c.poll_timeout(),
        }
    }
}

struct Swarm {
    net: SimNet<Peer>,
    nodes: Vec<(NodeId, SocketAddr)>,
    info_hashes: Vec<InfoHash>,
}

/// `count` real nodes join one every 10 ms through up to 3 earlier ones; `hashes` random
/// info-hashes are stored at the 8 nodes closest to each (what a successful announce leaves).
fn swarm(count: usize, hashes: usize, seed: u64, loss: f64) -> Swarm {
    let mut link = LinkModel::new(Duration::from_millis(20));
    link.jitter = Jitter::Uniform {
        max: Duration::from_millis(30),
    };
    link.loss = loss;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut net = SimNet::new(seed, link);
    let config = sim_config();
    let mut nodes: Vec<(NodeId, SocketAddr)> = Vec::new();
    for i in 0..count {
        let addr = node_addr(i as u32);
        let id = NodeId::random(&mut rng);
        let mut node = Node::new(config.clone(), id, rng.random(), net.now());
        if i > 0 {
            let via: Vec<SocketAddr> = (0..3).map(|_| nodes[rng.random_range(0..i)].1).collect();
            node.bootstrap(net.now(), &via);
        }
        net.add_node(addr, Peer::Node(Box::new(node)));
        nodes.push((id, addr));
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(Duration::from_secs(30));
    let now = net.now();
    let mut info_hashes = Vec::new();
    for _ in 0..hashes {
        let info_hash = NodeId::random(&mut rng);
        let mut closest = nodes.clone();
        closest.sort_by_key(|(id, _)| info_hash.distance(id));
        for (_, addr) in closest.iter().take(8) {
            if let Some(Peer::Node(node)) = net.node_mut(*addr) {
                let peer = SocketAddr::from(([10, 200, 0, 1], 6881));
                assert!(node.restore_peer(now, info_hash, peer, false));
            }
        }
        info_hashes.push(info_hash);
    }
    Swarm {
        net,
        nodes,
        info_hashes,
    }
}

struct Outcome {
    nodes: HashSet<(NodeId, SocketAddr)>,
    hashes: HashSet<InfoHash>,
    stats: CrawlStats,
    /// (virtual seconds since the crawl started, nodes found, info-hashes found)
    curve: Vec<(u64, usize, usize)>,
}

fn crawl(swarm: &mut Swarm, config: CrawlConfig, seed: u64, limit: Duration) -> Outcome {
    let crawler_addr: SocketAddr = SocketAddr::from(([10, 255, 0, 1], 6881));
    let start = swarm.net.now();
    let mut crawler = Crawler::new(config, seed, start);
    crawler.add_bootstrap(start, &[swarm.nodes[0].1]);
    swarm
        .net
        .add_node(crawler_addr, Peer::Crawler(Box::new(crawler)));
    let mut out = Outcome {
        nodes: HashSet::new(),
        hashes: HashSet::new(),
        stats: CrawlStats::default(),
        curve: Vec::new(),
    };
    let mut t = 0;
    loop {
        swarm.net.run_for(Duration::from_secs(1));
        t += 1;
        let Some(Peer::Crawler(crawler)) = swarm.net.node_mut(crawler_addr) else {
            panic!("crawler gone");
        };
        while let Some(record) = crawler.poll_record() {
            match record {
                Record::Node { id, addr, .. } => {
                    assert!(out.nodes.insert((id, addr)), "duplicate node record");
                }
                Record::InfoHash { info_hash, .. } => {
                    assert!(out.hashes.insert(info_hash), "duplicate info-hash record");
                }
                Record::Peers { .. } | Record::Interval { .. } => {}
            }
        }
        out.stats = *crawler.stats();
        out.curve.push((t, out.nodes.len(), out.hashes.len()));
        if crawler.is_idle() || Duration::from_secs(t) >= limit {
            break;
        }
    }
    out
}

#[test]
fn crawling_two_thousand_nodes_finds_99_percent_of_nodes_and_info_hashes() {
    let mut swarm = swarm(2_000, 2_000, 11, 0.01);
    let config = CrawlConfig {
        allow_private: true,
        ..CrawlConfig::default()
    };
    let out = crawl(&mut swarm, config, 5, Duration::from_secs(60));
    let truth_nodes: HashSet<(NodeId, SocketAddr)> = swarm.nodes.iter().copied().collect();
    let truth_hashes: HashSet<InfoHash> = swarm.info_hashes.iter().copied().collect();
    let found_nodes = out.nodes.intersection(&truth_nodes).count();
    let found_hashes = out.hashes.intersection(&truth_hashes).count();
    let per_node = out.stats.queries_sent as f64 / out.nodes.len().max(1) as f64;
    for (t, n, h) in &out.curve {
        println!("t={t:>3}s nodes={n:>5} infohashes={h:>5}");
    }
    println!("{:?}", out.stats);
    println!(
        "found {found_nodes}/{} nodes, {found_hashes}/{} info-hashes, {per_node:.3} queries per node",
        truth_nodes.len(),
        truth_hashes.len()
    );
    // Nothing outside the ground truth.
    assert_eq!(found_nodes, out.nodes.len());
    assert_eq!(found_hashes, out.hashes.len());
    assert!(found_nodes * 100 >= truth_nodes.len() * 99, "{found_nodes}");
    assert!(
        found_hashes * 100 >= truth_hashes.len() * 99,
        "{found_hashes}"
    );
    assert!(per_node <= 1.5, "{per_node} queries per node found");
}

#[test]
fn two_shards_find_together_what_one_crawl_finds_without_overlap() {
    let run = |shard: Shard| {
        let mut swarm = swarm(600, 600, 21, 0.0);
        let config = CrawlConfig {
            allow_private: true,
            shard,
            ..CrawlConfig::default()
        };
        let out = crawl(&mut swarm, config, 7, Duration::from_secs(60));
        println!(
            "shard {shard}: {} nodes, {} info-hashes, {} queries, {} samples of other shards",
            out.nodes.len(),
            out.hashes.len(),
            out.stats.queries_sent,
            out.stats.other_shards
        );
        (out, swarm.info_hashes)
    };
    let (whole, truth) = run(Shard::ALL);
    let truth: HashSet<InfoHash> = truth.into_iter().collect();
    assert_eq!(whole.hashes, truth, "the unsharded crawl finds them all");
    let halves = [Shard::new(0, 2).unwrap(), Shard::new(1, 2).unwrap()];
    let (a, _) = run(halves[0]);
    let (b, _) = run(halves[1]);
    for (out, shard) in [(&a, halves[0]), (&b, halves[1])] {
        assert!(out.hashes.iter().all(|h| shard.contains(h)), "{shard}");
        assert!(!out.hashes.is_empty() && out.hashes.len() < truth.len());
        // Each half visits about its half of the nodes: the work is split, not repeated.
        assert!(
            out.stats.queries_sent * 4 < whole.stats.queries_sent * 3,
            "{shard}: {} queries",
            out.stats.queries_sent
        );
    }
    assert!(a.hashes.is_disjoint(&b.hashes));
    let union: HashSet<InfoHash> = a.hashes.union(&b.hashes).copied().collect();
    assert_eq!(union, whole.hashes);
    let nodes: HashSet<(NodeId, SocketAddr)> = a.nodes.union(&b.nodes).copied().collect();
    assert_eq!(nodes, whole.nodes);
}
