//! The bootstrap server in simulated time: a protocol trace of stateless verification (only
//! nodes that answered a cookie ping are handed out), what `bep42_strict` changes for public
//! addresses (handed out, stored, loaded, pinged, walked), that private addresses are never
//! loaded, queried or handed out without `allow_private`, the pool filling from askers,
//! 1,000 new nodes bootstrapping through it (closest against random answers), and shards
//! answering from the pool's snapshot while another thread holds its write lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use btdht::bootstrap::sim::Peer;
use btdht::bootstrap::{AnswerMode, BootstrapConfig, BootstrapServer, Pools, persist};
use btdht::contact::NodeInfo;
use btdht::krpc::{self, Body, Message, QueryKind, Response, Want};
use btdht::node::{Event, LookupKind, Node};
use btdht::sim::dht::sim_config;
use btdht::sim::{LinkModel, SimNet, node_addr};
use btdht::{Instant, NodeId};
use parking_lot::RwLock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

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

/// The bytes of a `--state` pool file (the format `btdht::bootstrap::persist` documents):
/// magic, IPv4 and IPv6 counts, then compact node info and age in seconds per node.
fn pool_file(v4: &[NodeInfo], v6: &[NodeInfo], age: u32) -> Vec<u8> {
    let mut out = b"BTDHTPL1".to_vec();
    out.extend_from_slice(&(v4.len() as u64).to_le_bytes());
    out.extend_from_slice(&(v6.len() as u64).to_le_bytes());
    for node in v4.iter().chain(v6) {
        krpc::compact::encode_node(&mut out, node);
        out.extend_from_slice(&age.to_le_bytes());
    }
    out
}

/// The response `server` sends to `from` after `bytes`, and every query it sends.
fn exchange(
    server: &mut BootstrapServer,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
) -> (Option<Response>, Vec<(SocketAddr, Message)>) {
    server.handle_datagram(now, from, bytes);
    let mut response = None;
    let mut queries = Vec::new();
    for (to, message) in drain(server) {
        match message.body {
            Body::Response(r) if to == from => response = Some(r),
            Body::Query(_) => queries.push((to, message)),
            _ => {}
        }
    }
    (response, queries)
}

/// BEP 42 on public addresses, which the CLI tests cannot use: the server's walk queries
/// its pool nodes, and tests send packets to loopback only (where BEP 42 does not apply).
/// This core has no socket: the documentation addresses below (public for BEP 42) are only
/// data, and what it would send is only decoded.
#[test]
fn bep42_strict_hands_out_stores_and_pings_only_consistent_nodes() {
    let mut rng = SmallRng::seed_from_u64(42);
    let target = NodeId([0x5a; 20]);
    let public = |i: u8| -> SocketAddr { SocketAddr::from(([203, 0, 113, i], 6881)) };
    let public6 =
        |i: u16| -> SocketAddr { SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, i], 6881)) };
    let consistent = |addr: SocketAddr, rng: &mut SmallRng| {
        let node = NodeInfo::new(NodeId::bep42(addr.ip(), rng.random(), rng), addr);
        assert!(node.id.is_bep42_valid_for(addr.ip()), "{node:?}");
        node
    };
    // Inconsistent ids closer to the target than any consistent one: a plain closest answer
    // would put them first.
    let inconsistent = |addr: SocketAddr, i: u8| {
        let mut id = target;
        id.0[19] ^= i + 1;
        let node = NodeInfo::new(id, addr);
        assert!(!node.id.is_bep42_valid_for(addr.ip()), "{node:?}");
        node
    };
    let good4: Vec<NodeInfo> = (10..14).map(|i| consistent(public(i), &mut rng)).collect();
    let bad4: Vec<NodeInfo> = (20..24).map(|i| inconsistent(public(i), i)).collect();
    let good6: Vec<NodeInfo> = (10..12).map(|i| consistent(public6(i), &mut rng)).collect();
    let bad6: Vec<NodeInfo> = (20..22)
        .map(|i| inconsistent(public6(i), i as u8))
        .collect();
    let file = pool_file(
        &[bad4.clone(), good4.clone()].concat(),
        &[bad6.clone(), good6.clone()].concat(),
        60,
    );
    let is_good = |n: &NodeInfo| good4.contains(n) || good6.contains(n);
    let asker: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let both = Want { n4: true, n6: true };

    for strict in [false, true] {
        for answer in [AnswerMode::Closest, AnswerMode::Random] {
            let now = Instant::from_secs(10);
            let mut pools = Pools::new(1000, 7);
            let config = BootstrapConfig {
                allow_private: true,
                answer,
                bep42_strict: strict,
                maintenance: false,
                ..BootstrapConfig::default()
            };
            let loaded =
                persist::restore(&mut pools, &file, BootstrapServer::pool_time(now), &config)
                    .unwrap();
            // With the flag, inconsistent nodes are not even loaded.
            let expect = if strict { (6, 6) } else { (12, 0) };
            assert_eq!((loaded.nodes, loaded.skipped), expect, "strict {strict}");
            for n in bad4.iter().chain(&bad6) {
                assert_eq!(pools.seen(&n.addr).is_some(), !strict, "{n:?}");
            }
            let pools = Arc::new(RwLock::new(pools));
            let mut s = BootstrapServer::new(config, NodeId([0xbb; 20]), 42, 1, now, pools);
            let what = format!("strict {strict}, {answer:?}");

            // Handed out: consistent nodes first; inconsistent ones only without the flag.
            let (r, _) = exchange(
                &mut s,
                now,
                asker,
                &query(
                    NodeId([0x77; 20]),
                    QueryKind::FindNode { target, want: both },
                ),
            );
            let r = r.expect("answered");
            for (nodes, good, bad) in [(r.nodes, &good4, &bad4), (r.nodes6, &good6, &bad6)] {
                let nodes = nodes.expect("both families wanted");
                let first_bad = nodes
                    .iter()
                    .position(|n| !is_good(n))
                    .unwrap_or(nodes.len());
                assert!(
                    nodes[first_bad..].iter().all(|n| bad.contains(n)),
                    "{what}: {nodes:?}"
                );
                assert!(
                    nodes[..first_bad].iter().all(|n| good.contains(n)),
                    "{what}: {nodes:?}"
                );
                if answer == AnswerMode::Closest {
                    // All of them fit in one answer (K = 8): exactly the consistent ones,
                    // then, without the flag, the inconsistent ones.
                    assert_eq!(first_bad, good.len(), "{what}: {nodes:?}");
                    let expect_bad = if strict { 0 } else { bad.len() };
                    assert_eq!(nodes.len() - first_bad, expect_bad, "{what}: {nodes:?}");
                } else {
                    assert!(first_bad > 0, "{what}: {nodes:?}");
                    assert_eq!(first_bad == nodes.len(), strict, "{what}: {nodes:?}");
                }
            }
            if answer == AnswerMode::Random {
                continue;
            }

            // Askers: one with an inconsistent id is pinged back (to be verified) only
            // without the flag; one with a consistent id always.
            let liar = inconsistent(public(50), 50);
            let honest = consistent(public(51), &mut rng);
            let (r, pings) = exchange(&mut s, now, liar.addr, &query(liar.id, QueryKind::Ping));
            assert!(r.is_some(), "{what}: the liar's ping is answered");
            assert_eq!(pings.is_empty(), strict, "{what}: {pings:?}");
            let (_, pings) = exchange(&mut s, now, honest.addr, &query(honest.id, QueryKind::Ping));
            assert_eq!(pings.len(), 1, "{what}");
            let cookie = pings[0].1.transaction_id.clone();
            // Its reply under another, inconsistent id is refused only with the flag.
            let other_id = inconsistent(honest.addr, 51).id;
            let before = *s.stats();
            exchange(&mut s, now, honest.addr, &reply(&cookie, other_id, vec![]));
            assert_eq!(
                s.stats().unsolicited - before.unsolicited,
                u64::from(strict),
                "{what}"
            );
            assert_eq!(
                s.pools().read().seen(&honest.addr).is_some(),
                !strict,
                "{what}"
            );
            // Its reply under its own id verifies it; of the nodes it names, only consistent
            // ones are candidates with the flag.
            let named_good = consistent(public(60), &mut rng);
            let named_bad = inconsistent(public(61), 61);
            let (_, pings) = exchange(
                &mut s,
                now,
                honest.addr,
                &reply(&cookie, honest.id, vec![named_bad, named_good]),
            );
            assert!(s.pools().read().seen(&honest.addr).is_some(), "{what}");
            let pinged: Vec<SocketAddr> = pings.iter().map(|(to, _)| *to).collect();
            let expect = if strict {
                vec![named_good.addr]
            } else {
                vec![named_bad.addr, named_good.addr]
            };
            assert_eq!(pinged, expect, "{what}");
        }
    }
}

/// Addresses a server without `allow_private` must never send to: private, loopback,
/// link-local, shared (CGNAT), unique-local, IPv4-mapped loopback and private, port 0.
const IGNORED: [&str; 12] = [
    "127.0.0.1:6881",
    "127.9.9.9:6881",
    "10.0.0.1:6881",
    "192.168.1.1:6881",
    "172.16.0.1:6881",
    "169.254.1.1:6881",
    "100.64.0.1:6881",
    "81.0.0.99:0",
    "[::1]:6881",
    "[fd00::1]:6881",
    "[::ffff:127.0.0.1]:6881",
    "[::ffff:10.0.0.1]:6881",
];

/// Runs `server`'s timer every second for `secs` seconds from `now`; every datagram it sends.
fn run_timer(
    server: &mut BootstrapServer,
    now: &mut Instant,
    secs: u64,
) -> Vec<(SocketAddr, Message)> {
    let mut sent = Vec::new();
    for _ in 0..secs {
        *now += Duration::from_secs(1);
        server.handle_timeout(*now);
        sent.extend(drain(server));
    }
    sent
}

/// Where `sent` has walk queries (`find_node`) and sweep pings to.
fn walked_and_pinged(sent: &[(SocketAddr, Message)]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let (mut walked, mut pinged) = (Vec::new(), Vec::new());
    for (to, message) in sent {
        match &message.body {
            Body::Query(q) if matches!(q.kind, QueryKind::FindNode { .. }) => walked.push(*to),
            Body::Query(q) if matches!(q.kind, QueryKind::Ping) => pinged.push(*to),
            _ => {}
        }
    }
    (walked, pinged)
}

/// With `bep42_strict`, a node whose id is not BEP 42-consistent with its address is not
/// loaded from a pool file (see above) nor ever queried: nodes in the pool anyway (the pool
/// is shared and public; here put there directly) are neither walked nor re-pinged by the
/// sweep, nor handed out. Without the flag they are all three. Sans-IO: the documentation addresses below are
/// public for BEP 42 and only data.
#[test]
fn bep42_strict_never_walks_or_sweeps_inconsistent_nodes() {
    let mut rng = SmallRng::seed_from_u64(9);
    let addr4 = |i: u8| SocketAddr::from(([203, 0, 113, i], 6881));
    let addr6 = |i: u16| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, i], 6881));
    let addrs: Vec<SocketAddr> = (1..=8).map(addr4).chain((1..=4).map(addr6)).collect();
    // Even-numbered nodes get a BEP 42 id, odd ones the same id with its first bit flipped.
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let mut id = NodeId::bep42(addr.ip(), rng.random(), &mut rng);
        if i % 2 == 0 {
            good.push(NodeInfo::new(id, *addr));
        } else {
            id.0[0] ^= 0x80;
            assert!(!id.is_bep42_valid_for(addr.ip()), "{addr}");
            bad.push(NodeInfo::new(id, *addr));
        }
    }
    for strict in [false, true] {
        let config = BootstrapConfig {
            allow_private: true,
            bep42_strict: strict,
            // Every node is stale at once: the sweep pings them all.
            refresh_after: Duration::from_secs(10),
            ..BootstrapConfig::default()
        };
        let mut now = Instant::from_secs(10);
        let mut pools = Pools::new(1000, 7);
        for n in good.iter().chain(&bad) {
            pools.insert(*n, BootstrapServer::pool_time(now) - 60);
        }
        let pools = Arc::new(RwLock::new(pools));
        let mut s = BootstrapServer::new(config, NodeId([0xbb; 20]), 42, 1, now, pools);
        let (walked, pinged) = walked_and_pinged(&run_timer(&mut s, &mut now, 30));
        for n in &good {
            assert!(
                walked.contains(&n.addr),
                "strict {strict}: {n:?} not walked"
            );
            assert!(
                pinged.contains(&n.addr),
                "strict {strict}: {n:?} not pinged"
            );
        }
        for n in &bad {
            assert_eq!(walked.contains(&n.addr), !strict, "strict {strict}: {n:?}");
            assert_eq!(pinged.contains(&n.addr), !strict, "strict {strict}: {n:?}");
        }
        // All of them fit in one closest answer (K = 8).
        let (r, _) = exchange(
            &mut s,
            now,
            "127.0.0.1:7000".parse().unwrap(),
            &query(
                NodeId([0x77; 20]),
                QueryKind::FindNode {
                    target: NodeId([0x11; 20]),
                    want: Want { n4: true, n6: true },
                },
            ),
        );
        let r = r.expect("answered");
        let handed: Vec<NodeInfo> = [r.nodes, r.nodes6]
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        for n in &good {
            assert!(handed.contains(n), "strict {strict}: {n:?} not handed out");
        }
        for n in &bad {
            assert_eq!(handed.contains(n), !strict, "strict {strict}: {n:?}");
        }
    }
}

/// Without `allow_private`, a pool file's private and loopback nodes are skipped at load
/// (and counted), and nodes on such addresses that are in the pool anyway (the pool is a
/// shared, public structure) are never queried by the walk or the sweep, nor handed out;
/// nor is a private bootstrap node asked. Checked on what the core would send: this core
/// has no socket, and the public addresses below are only data.
#[test]
fn private_addresses_are_never_loaded_queried_or_handed_out() {
    let mut rng = SmallRng::seed_from_u64(7);
    let ignored: Vec<SocketAddr> = IGNORED.iter().map(|a| a.parse().unwrap()).collect();
    let public: Vec<SocketAddr> = (1..=4)
        .map(|i| SocketAddr::from(([81, 0, 0, i], 6881)))
        .chain((1..=2).map(|i| SocketAddr::from(([0x2a00, 0, 0, 0, 0, 0, 0, i], 6881))))
        .collect();
    let node = |addr: &SocketAddr, rng: &mut SmallRng| NodeInfo::new(NodeId::random(rng), *addr);
    let (v4, v6): (Vec<NodeInfo>, Vec<NodeInfo>) = public
        .iter()
        .chain(&ignored)
        .map(|a| node(a, &mut rng))
        .partition(|n| n.addr.is_ipv4());
    let file = pool_file(&v4, &v6, 60);
    let config = BootstrapConfig {
        // Every loaded node is stale at once: the sweep pings them all.
        refresh_after: Duration::from_secs(10),
        ..BootstrapConfig::default()
    };
    assert!(!config.allow_private);
    let mut now = Instant::from_secs(10);
    let mut pools = Pools::new(1000, 7);
    let loaded =
        persist::restore(&mut pools, &file, BootstrapServer::pool_time(now), &config).unwrap();
    assert_eq!(loaded.nodes, public.len());
    assert_eq!(loaded.skipped, ignored.len());
    for addr in &ignored {
        assert_eq!(pools.seen(addr), None, "{addr} loaded");
    }
    // The same addresses put in the pool directly, as stale as the loaded ones.
    let pool_now = BootstrapServer::pool_time(now);
    for addr in &ignored {
        pools.insert(node(addr, &mut rng), pool_now - 60);
    }
    let pools = Arc::new(RwLock::new(pools));
    let mut s = BootstrapServer::new(config, NodeId([0xbb; 20]), 42, 1, now, pools);
    let router: SocketAddr = "81.0.0.200:6881".parse().unwrap();
    s.set_bootstrap_nodes(vec!["10.0.0.200:6881".parse().unwrap(), router]);
    let sent: Vec<SocketAddr> = run_timer(&mut s, &mut now, 30)
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    for to in &sent {
        assert!(!ignored.contains(to), "sent to {to}");
        assert!(public.contains(to) || *to == router, "sent to {to}");
    }
    // Not vacuous: the sweep pinged and the walk asked the public nodes.
    for addr in &public {
        assert!(sent.contains(addr), "{addr} never queried: {sent:?}");
    }
    assert!(sent.contains(&router));
    assert!(s.stats().walk_queries >= 30, "{:?}", s.stats());
    // Answers hand out public nodes only.
    let (r, _) = exchange(
        &mut s,
        now,
        "81.0.0.100:7000".parse().unwrap(),
        &query(
            NodeId([0x77; 20]),
            QueryKind::FindNode {
                target: NodeId([0x11; 20]),
                want: Want { n4: true, n6: true },
            },
        ),
    );
    let r = r.expect("answered");
    let handed: Vec<NodeInfo> = [r.nodes, r.nodes6]
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert_eq!(handed.len(), public.len(), "{handed:?}");
    assert!(
        handed.iter().all(|n| public.contains(&n.addr)),
        "{handed:?}"
    );
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
                    && r == *request
                    && join.done_at.is_none()
                {
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

#[test]
fn long_transaction_ids_are_dropped_and_announces_refused() {
    let now = Instant::from_secs(10);
    let mut server = server(AnswerMode::Closest, now);
    let from = node_addr(1);
    let ping = |t: Vec<u8>| Message::query(t, NodeId([0x77; 20]), QueryKind::Ping).encode();

    // A 60,000-byte transaction id would come back in a reply of the same size: dropped.
    server.handle_datagram(now, from, &ping(vec![b'x'; 60_000]));
    assert!(drain(&mut server).is_empty());
    assert_eq!(server.stats().oversized_transaction_ids, 1);
    assert_eq!(server.stats().answered, 0);
    // 64 bytes, like the node, is still answered.
    server.handle_datagram(now, from, &ping(vec![b'x'; 64]));
    let sent = drain(&mut server);
    assert!(
        sent.iter()
            .any(|(to, m)| *to == from && matches!(m.body, Body::Response(_)))
    );
    assert_eq!(server.stats().oversized_transaction_ids, 1);

    // announce_peer: the server stores nothing, so it says so with 203.
    let announce = QueryKind::AnnouncePeer {
        info_hash: NodeId([0x33; 20]),
        port: 6881,
        implied_port: false,
        token: b"whatever".to_vec(),
        seed: false,
    };
    server.handle_datagram(now, from, &query(NodeId([0x77; 20]), announce));
    let sent = drain(&mut server);
    let codes: Vec<i64> = sent
        .iter()
        .filter(|(to, _)| *to == from)
        .filter_map(|(_, m)| match &m.body {
            Body::Error(e) => Some(e.code),
            Body::Response(_) => Some(0),
            Body::Query(_) => None,
        })
        .collect();
    assert_eq!(codes, vec![203]);
    assert_eq!(server.stats().announces_refused, 1);
}

/// Shards answer from the pool's published snapshot, not under its lock: while another
/// thread holds the write lock, three shards sharing the pool go on answering; when that
/// thread rebuilds the pool (still holding the lock), every shard answers from the new
/// snapshot at its next query; a node it removes after the rebuild is never handed out.
#[test]
fn shards_answer_while_another_thread_holds_the_write_lock() {
    let now = Instant::from_secs(10);
    let pool_now = BootstrapServer::pool_time(now);
    let node = |id: u8, host: u8| {
        let addr = SocketAddr::from(([10, 0, 1, host], 6881));
        NodeInfo::new(NodeId([id; 20]), addr)
    };
    // find_node's target is 0x11..: the new nodes are closer to it than all old ones.
    let old: Vec<NodeInfo> = (0..8).map(|i| node(0x20 + i, i)).collect();
    let new: Vec<NodeInfo> = (0..4).map(|i| node(0x11, 100 + i)).collect();
    let mut pools = Pools::new(10_000, 7);
    for n in &old {
        pools.insert(*n, pool_now);
    }
    pools.v4.rebuild_index();
    let pools = Arc::new(RwLock::new(pools));
    let config = BootstrapConfig {
        allow_private: true,
        maintenance: false,
        ..BootstrapConfig::default()
    };
    let mut shards: Vec<BootstrapServer> = (0..3)
        .map(|seed| {
            BootstrapServer::new(
                config.clone(),
                NodeId([0xbb; 20]),
                42,
                seed,
                now,
                pools.clone(),
            )
        })
        .collect();
    let asker = |i: usize| SocketAddr::from(([10, 0, 2, i as u8], 7000));
    let sorted = |mut nodes: Vec<NodeInfo>| {
        nodes.sort_by_key(|n| n.addr);
        nodes
    };

    let (step_tx, step_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn({
        let pools = pools.clone();
        let (new, removed) = (new.clone(), old[0]);
        move || {
            let mut guard = pools.write();
            step_tx.send(()).unwrap();
            // A bound, not a pause: it passes only if an answer waited for this lock.
            let mut timely = go_rx.recv_timeout(Duration::from_secs(60)).is_ok();
            for n in &new {
                guard.insert(*n, pool_now);
            }
            guard.v4.rebuild_index();
            assert!(guard.v4.remove(&removed.addr));
            step_tx.send(()).unwrap();
            timely &= go_rx.recv_timeout(Duration::from_secs(60)).is_ok();
            timely
        }
    });

    // The write lock is held; nothing changed yet: every shard answers the old nodes.
    step_rx.recv().unwrap();
    assert!(pools.try_read().is_none(), "the writer holds the lock");
    for (i, shard) in shards.iter_mut().enumerate() {
        assert_eq!(sorted(find_node(shard, now, asker(i))), old, "shard {i}");
    }
    go_tx.send(()).unwrap();
    // Rebuilt with the new nodes, then old[0] removed, the lock still held: every shard takes
    // the new snapshot and answers the 8 closest, the new nodes first, never old[0].
    step_rx.recv().unwrap();
    assert!(pools.try_read().is_none(), "the writer holds the lock");
    let mut want = new.clone();
    want.extend_from_slice(&old[1..]);
    want.sort_by_key(|n| NodeId([0x11; 20]).distance(&n.id));
    want.truncate(8);
    for (i, shard) in shards.iter_mut().enumerate() {
        let before = shard.stats().snapshot_refreshes;
        let got = find_node(shard, now, asker(i));
        assert_eq!(sorted(got), sorted(want.clone()), "shard {i}");
        assert_eq!(shard.stats().snapshot_refreshes, before + 1, "shard {i}");
        assert_eq!(shard.stats().pool_read_waits, 0, "shard {i}");
    }
    go_tx.send(()).unwrap();
    assert!(
        writer.join().unwrap(),
        "an answer waited for the write lock"
    );
    // Unlocked, nothing published since: no further refresh, the same answers.
    for (i, shard) in shards.iter_mut().enumerate() {
        let before = shard.stats().snapshot_refreshes;
        assert_eq!(
            sorted(find_node(shard, now, asker(i))),
            sorted(want.clone())
        );
        assert_eq!(shard.stats().snapshot_refreshes, before);
    }
}
