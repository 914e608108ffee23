//! The bootstrap server in simulated time: a protocol trace of stateless verification (only
//! nodes that answered a cookie ping are handed out), the pool filling from askers, and 1,000
//! new nodes bootstrapping through it (closest against random answers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use btdht::bootstrap::sim::Peer;
use btdht::bootstrap::{AnswerMode, BootstrapConfig, BootstrapServer, Pools};
use btdht::contact::NodeInfo;
use btdht::krpc::{self, Body, Message, QueryKind, Response, Want};
use btdht::node::{Event, LookupKind, Node};
use btdht::sim::dht::sim_config;
use btdht::sim::{LinkModel, SimNet, node_addr};
use btdht::{Instant, NodeId};
use parking_lot::RwLock;
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn server(answer: AnswerMode, now: Instant) -> BootstrapServer {
    let config = BootstrapConfig {
        allow_private: true,
        answer,
        ..BootstrapConfig::default()
    };
    let pools = Arc::new(RwLock::new(Pools::new(100_000, 7)));
    BootstrapServer::new(config, NodeId([0xbb; 20]), 42, 1, now, pools)
}

fn drain(server: &mut BootstrapServer) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(t) = server.poll_transmit() {
        out.push((
            t.to,
            krpc::decode(&t.bytes)
                .expect("server sends valid KRPC")
                .message,
        ));
    }
    out
}

fn query(id: NodeId, kind: QueryKind) -> Vec<u8> {
    Message::query(b"qq".to_vec(), id, kind).encode()
}

fn reply(t: &[u8], id: NodeId, nodes: Vec<NodeInfo>) -> Vec<u8> {
    let mut response = Response::new(id);
    response.nodes = Some(nodes);
    Message::response(t.to_vec(), response).encode()
}

fn find_node(server: &mut BootstrapServer, now: Instant, from: SocketAddr) -> Vec<NodeInfo> {
    let target = NodeId([0x11; 20]);
    server.handle_datagram(
        now,
        from,
        &query(
            NodeId([0x77; 20]),
            QueryKind::FindNode {
                target,
                want: Want::UNSPECIFIED,
            },
        ),
    );
    let answers = drain(server);
    let (_, message) = answers
        .iter()
        .find(|(to, m)| *to == from && matches!(m.body, Body::Response(_)))
        .expect("answered");
    match &message.body {
        Body::Response(r) => r.nodes.clone().unwrap_or_default(),
        _ => unreachable!(),
    }
}

#[test]
fn only_nodes_that_answered_a_cookie_ping_are_handed_out() {
    let mut now = Instant::from_secs(10);
    let mut s = server(AnswerMode::Closest, now);
    let (a, fake1, fake2, asker): (SocketAddr, SocketAddr, SocketAddr, SocketAddr) = (
        "10.0.0.1:1000".parse().unwrap(),
        "10.0.0.2:1000".parse().unwrap(),
        "10.0.0.3:1000".parse().unwrap(),
        "10.0.0.9:1000".parse().unwrap(),
    );
    let id_a = NodeId([0xa0; 20]);
    // A pings the server: answered, and A is pinged back with a 4-byte cookie.
    s.handle_datagram(now, a, &query(id_a, QueryKind::Ping));
    let out = drain(&mut s);
    assert_eq!(out.len(), 2);
    let cookie = out
        .iter()
        .find(|(_, m)| m.method() == Some("ping"))
        .map(|(to, m)| {
            assert_eq!(*to, a);
            m.transaction_id.clone()
        })
        .expect("a verification ping");
    assert_eq!(cookie.len(), 4);
    // Not verified yet: nothing to hand out.
    assert!(find_node(&mut s, now, asker).is_empty());
    // A reply with a wrong transaction id verifies nothing.
    s.handle_datagram(now, a, &reply(b"zzzz", id_a, vec![]));
    assert_eq!(s.stats().unsolicited, 1);
    assert!(find_node(&mut s, now, asker).is_empty());
    // The right cookie, from another address, verifies nothing either.
    s.handle_datagram(now, fake1, &reply(&cookie, NodeId([0xf1; 20]), vec![]));
    assert_eq!(s.stats().unsolicited, 2);
    // A answers: it is verified; the nodes it names are only pinged.
    now += Duration::from_millis(30);
    let named = vec![
        NodeInfo::new(NodeId([0xf1; 20]), fake1),
        NodeInfo::new(NodeId([0xf2; 20]), fake2),
    ];
    s.handle_datagram(now, a, &reply(&cookie, id_a, named));
    let out = drain(&mut s);
    let pinged: Vec<SocketAddr> = out
        .iter()
        .filter(|(_, m)| m.method() == Some("ping"))
        .map(|(to, _)| *to)
        .collect();
    assert_eq!(pinged, vec![fake1, fake2]);
    let cookie1 = out[0].1.transaction_id.clone();
    let cookie2 = out[1].1.transaction_id.clone();
    // Answers come from the sorted index, rebuilt on the next tick.
    s.handle_timeout(now);
    let handed = find_node(&mut s, now, asker);
    assert_eq!(handed, vec![NodeInfo::new(id_a, a)]);
    // The asker is never handed itself.
    assert!(find_node(&mut s, now, a).is_empty());
    // fake2 answers its ping (cookie of the previous secret period still valid): verified.
    now += Duration::from_secs(6 * 60);
    s.handle_datagram(now, fake2, &reply(&cookie2, NodeId([0xf2; 20]), vec![]));
    s.handle_timeout(now);
    // fake1 never answers: never handed out.
    let handed = find_node(&mut s, now, asker);
    assert!(handed.iter().any(|n| n.addr == fake2));
    assert!(!handed.iter().any(|n| n.addr == fake1));
    // Two periods later the cookie is dead.
    now += Duration::from_secs(11 * 60);
    let before = s.stats().unsolicited;
    s.handle_datagram(now, fake1, &reply(&cookie1, NodeId([0xf1; 20]), vec![]));
    assert_eq!(s.stats().unsolicited, before + 1);
    s.handle_timeout(now);
    assert!(
        !find_node(&mut s, now, asker)
            .iter()
            .any(|n| n.addr == fake1)
    );
    // Announces are acknowledged, get_peers gives a token and no values.
    s.handle_datagram(
        now,
        asker,
        &query(
            NodeId([0x77; 20]),
            QueryKind::GetPeers {
                info_hash: NodeId([1; 20]),
                want: Want::UNSPECIFIED,
                noseed: false,
                scrape: false,
            },
        ),
    );
    let out = drain(&mut s);
    let Body::Response(r) = &out
        .iter()
        .find(|(to, _)| *to == asker)
        .expect("answered")
        .1
        .body
    else {
        panic!("get_peers answered")
    };
    assert!(r.token.is_some() && r.values.is_none() && r.nodes.is_some());
}

/// One node joining: when its bootstrap lookup finished, and how many of its true 8
/// closest it found.
struct Join {
    done_at: Option<Duration>,
    queries: u32,
    exact: usize,
}

struct Outcome {
    pool: usize,
    joins: Vec<Join>,
}

/// `existing` nodes join through the server (one every 5 ms), the network settles for 60 s,
/// then `new` nodes join through the server only (one every 1 ms), and we wait 30 s.
fn scenario(answer: AnswerMode, existing: usize, new: usize, seed: u64) -> Outcome {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut net: SimNet<Peer> = SimNet::new(seed, LinkModel::new(Duration::from_millis(30)));
    let server_addr = node_addr(0);
    net.add_node(
        server_addr,
        Peer::Bootstrap(Box::new(server(answer, net.now()))),
    );
    let config = sim_config();
    let mut ids: Vec<(NodeId, SocketAddr)> = Vec::new();
    let add = |net: &mut SimNet<Peer>, i: usize, rng: &mut SmallRng| {
        let id = NodeId::random(rng);
        let addr = node_addr(i as u32 + 1);
        let now = net.now();
        let mut node = Node::new(config.clone(), id, rand::Rng::random(rng), now);
        let request = node.bootstrap(now, &[server_addr]);
        net.add_node(addr, Peer::Node(Box::new(node)));
        (id, addr, request)
    };
    for i in 0..existing {
        let (id, addr, _) = add(&mut net, i, &mut rng);
        ids.push((id, addr));
        net.run_for(Duration::from_millis(5));
    }
    net.run_for(Duration::from_secs(60));
    let pool = net
        .node(server_addr)
        .and_then(Peer::as_bootstrap)
        .map_or(0, |s| s.pools().read().len());
    let start = net.now();
    let mut joining = Vec::new();
    for i in existing..existing + new {
        let (id, addr, request) = add(&mut net, i, &mut rng);
        ids.push((id, addr));
        joining.push((id, addr, request));
        net.run_for(Duration::from_millis(1));
    }
    let mut joins: Vec<Join> = joining
        .iter()
        .map(|_| Join {
            done_at: None,
            queries: 0,
            exact: 0,
        })
        .collect();
    let until = net.now() + Duration::from_secs(30);
    while net.now() < until {
        net.run_for(Duration::from_millis(50));
        for ((id, addr, request), join) in joining.iter().zip(joins.iter_mut()) {
            let Some(node) = net.node_mut(*addr).and_then(Peer::as_node_mut) else {
                continue;
            };
            while let Some(event) = node.poll_event() {
                if let Event::LookupDone {
                    request: r,
                    kind: LookupKind::Bootstrap,
                    outcome,
                } = event
                {
                    if r == *request && join.done_at.is_none() {
                        join.done_at = Some(outcome.duration);
                        join.queries = outcome.queries;
                        // Good answers: as close as the true 8th closest of the nodes
                        // that joined before this one (later ones may count too).
                        let index = ids.iter().position(|(_, a)| a == addr).unwrap_or(0);
                        let mut truth: Vec<NodeId> = ids[..index].iter().map(|(i, _)| *i).collect();
                        truth.sort_by_key(|other| id.distance(other));
                        let threshold = id.distance(&truth[7.min(truth.len() - 1)]);
                        join.exact = outcome
                            .closest
                            .iter()
                            .take(8)
                            .filter(|(n, _)| id.distance(&n.id) <= threshold)
                            .count();
                    }
                }
            }
        }
    }
    let _ = start;
    Outcome { pool, joins }
}

fn summary(name: &str, o: &Outcome) -> (f64, f64, f64) {
    let done: Vec<&Join> = o.joins.iter().filter(|j| j.done_at.is_some()).collect();
    let n = done.len().max(1) as f64;
    let mean_ms = done
        .iter()
        .map(|j| j.done_at.unwrap_or_default().as_secs_f64() * 1000.0)
        .sum::<f64>()
        / n;
    let queries = done.iter().map(|j| f64::from(j.queries)).sum::<f64>() / n;
    let exact = done.iter().map(|j| j.exact as f64).sum::<f64>() / (8.0 * n);
    println!(
        "{name}: pool {}, {}/{} bootstrapped, mean {mean_ms:.0} ms, {queries:.1} queries, {:.1}% of the 8 answers at least as close as the true 8th closest",
        o.pool,
        done.len(),
        o.joins.len(),
        exact * 100.0
    );
    (mean_ms, queries, exact)
}

#[test]
fn a_thousand_new_nodes_bootstrap_through_the_server() {
    let closest = scenario(AnswerMode::Closest, 500, 1_000, 5);
    // The pool filled from the nodes that asked: nearly every one was verified.
    assert!(closest.pool >= 490, "pool {}", closest.pool);
    let (_, _, exact) = summary("closest", &closest);
    assert_eq!(
        closest.joins.iter().filter(|j| j.done_at.is_some()).count(),
        1_000
    );
    assert!(exact > 0.95, "{exact}");
    let random = scenario(AnswerMode::Random, 500, 1_000, 5);
    summary("random", &random);
    assert_eq!(
        random.joins.iter().filter(|j| j.done_at.is_some()).count(),
        1_000
    );
}
