//! BEP 42 identity in simulated time: the node learns its public address from the `ip` of
//! replies, takes a BEP 42-valid id for it and restarts its routing tables under it; a few
//! liars do not move it; a configured external address gives a valid id at once; error replies
//! carry `ip` too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use btdht::krpc::{Body, Message, QueryKind, Response, decode};
use btdht::node::{Config, Event, Node};
use btdht::sim::dht::DhtSim;
use btdht::sim::{Jitter, LinkModel};
use btdht::{Instant, NodeId, NodeInfo};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Where the node under test sits: a public-looking address.
const OURS: [u8; 4] = [81, 2, 3, 4];

/// Responder `n`: each on its own public /24.
fn responder(n: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x5000_0000 + (n << 8) + 7), 6881))
}

/// The queries the node sent, by destination.
fn sent_queries(node: &mut Node) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(transmit) = node.poll_transmit() {
        let message = decode(&transmit.bytes).expect("our output decodes").message;
        if matches!(message.body, Body::Query(_)) {
            out.push((transmit.to, message));
        }
    }
    out
}

/// Pings `from` and has it answer with `ip` = `reported`.
fn answer_ping(node: &mut Node, now: Instant, from: SocketAddr, reported: IpAddr) {
    node.ping(now, from);
    let queries = sent_queries(node);
    let (_, query) = queries
        .iter()
        .find(|(to, _)| *to == from)
        .expect("the ping went out");
    let id = NodeId::random(&mut SmallRng::seed_from_u64(
        u64::from(from.port()) ^ hash(from),
    ));
    let mut reply = Message::response(query.transaction_id.clone(), Response::new(id));
    reply.requester_ip = Some(SocketAddr::new(reported, 6881));
    node.handle_datagram(now, from, &reply.encode());
}

fn hash(addr: SocketAddr) -> u64 {
    match addr.ip() {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits() as u64,
    }
}

fn id_changes(node: &mut Node) -> Vec<(NodeId, NodeId, IpAddr)> {
    let mut out = Vec::new();
    while let Some(event) = node.poll_event() {
        if let Event::IdChanged {
            old,
            new,
            external_ip,
        } = event
        {
            out.push((old, new, external_ip));
        }
    }
    out
}

#[test]
fn eight_responders_elect_the_address_and_the_node_takes_a_bep42_id() {
    let ip = IpAddr::from(OURS);
    let old = NodeId([0x42; 20]);
    assert!(!old.is_bep42_valid_for(ip));
    let mut node = Node::new(Config::default(), old, 7, Instant::ZERO);
    // A known contact, to be queried again under the new id.
    let contact = NodeInfo::new(NodeId([0x77; 20]), SocketAddr::from(([93, 1, 1, 1], 6881)));
    node.add_known_node(Instant::ZERO, contact);
    let mut now = Instant::ZERO;
    let ping = sent_queries(&mut node);
    let (_, query) = &ping[0];
    let mut reply = Message::response(query.transaction_id.clone(), Response::new(contact.id));
    reply.requester_ip = None;
    node.handle_datagram(now, contact.addr, &reply.encode());
    assert_eq!(node.routing_table().len(), 1);

    for n in 0..7 {
        now += Duration::from_millis(10);
        answer_ping(&mut node, now, responder(n), ip);
    }
    assert_eq!(node.id(), old, "seven voters elect nothing");
    assert!(id_changes(&mut node).is_empty());

    now += Duration::from_millis(10);
    answer_ping(&mut node, now, responder(7), ip);
    let changes = id_changes(&mut node);
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (was, new, external) = changes[0];
    assert_eq!((was, external), (old, ip));
    assert_eq!(node.id(), new);
    assert!(new.is_bep42_valid_for(ip));
    assert_eq!(node.external_ip(false), Some(ip));
    assert_eq!(node.stats().id_changes, 1);
    // The tables start again under the new id; the old contacts are queried, not trusted.
    // (only the responder whose reply elected the address is in, under the new id).
    let table = node.routing_table().closest(&new, 8);
    assert!(table.iter().all(|n| n.addr == responder(7)), "{table:?}");
    assert_eq!(node.routing_table().own_id(), new);
    let old_contacts: Vec<SocketAddr> = std::iter::once(contact.addr)
        .chain((0..7).map(responder))
        .collect();
    let queries = sent_queries(&mut node);
    assert!(!queries.is_empty(), "the node rejoins at once");
    for (to, message) in &queries {
        assert!(old_contacts.contains(to), "{to} was no contact");
        let Body::Query(query) = &message.body else {
            unreachable!()
        };
        assert_eq!(query.id, new);
        assert!(matches!(query.kind, QueryKind::FindNode { target, .. } if target == new));
    }
}

#[test]
fn a_handful_of_liars_do_not_move_the_address() {
    let ip = IpAddr::from(OURS);
    let lie = IpAddr::from([66, 6, 6, 6]);
    let mut node = Node::new(Config::default(), NodeId([0x42; 20]), 7, Instant::ZERO);
    let mut now = Instant::ZERO;
    for n in 0..20 {
        now += Duration::from_millis(10);
        answer_ping(&mut node, now, responder(n), ip);
    }
    let id = node.id();
    assert!(id.is_bep42_valid_for(ip));
    let _ = id_changes(&mut node);
    // Liars on 5 networks, and one liar with many addresses on one /24.
    for n in 100..105 {
        now += Duration::from_millis(10);
        answer_ping(&mut node, now, responder(n), lie);
    }
    for host in 1..50u8 {
        now += Duration::from_millis(10);
        answer_ping(
            &mut node,
            now,
            SocketAddr::from(([66, 1, 1, host], 6881)),
            lie,
        );
    }
    assert_eq!(node.id(), id);
    assert_eq!(node.external_ip(false), Some(ip));
    assert!(id_changes(&mut node).is_empty());
    assert_eq!(node.stats().id_changes, 1);
}

#[test]
fn a_configured_external_address_gives_a_bep42_id_at_once() {
    let ip = IpAddr::from(OURS);
    let old = NodeId([0x42; 20]);
    let config = Config {
        external_ip: Some(ip),
        ..Config::default()
    };
    let mut node = Node::new(config.clone(), old, 7, Instant::ZERO);
    assert!(node.id().is_bep42_valid_for(ip));
    assert_eq!(node.external_ip(false), Some(ip));
    assert_eq!(id_changes(&mut node), vec![(old, node.id(), ip)]);

    // An id that already fits is kept, and a private address changes nothing.
    let valid = node.id();
    let mut kept = Node::new(config, valid, 8, Instant::ZERO);
    assert_eq!(kept.id(), valid);
    assert!(id_changes(&mut kept).is_empty());
    let private = Config {
        external_ip: Some(IpAddr::from([192, 168, 1, 2])),
        ..Config::default()
    };
    let mut exempt = Node::new(private, old, 9, Instant::ZERO);
    assert_eq!(exempt.id(), old);
    assert!(id_changes(&mut exempt).is_empty());
}

#[test]
fn error_replies_carry_the_askers_address() {
    let mut node = Node::new(Config::default(), NodeId([0x11; 20]), 1, Instant::ZERO);
    let from = SocketAddr::from(([93, 4, 5, 6], 4000));
    // announce_peer with a bad token draws a 203 error.
    let query = Message::query(
        b"tx".to_vec(),
        NodeId([0x22; 20]),
        QueryKind::AnnouncePeer {
            info_hash: NodeId([0x33; 20]),
            port: 7000,
            implied_port: false,
            token: b"bad".to_vec(),
            seed: false,
        },
    );
    node.handle_datagram(Instant::ZERO, from, &query.encode());
    let mut errors = Vec::new();
    while let Some(transmit) = node.poll_transmit() {
        let message = decode(&transmit.bytes).expect("decodes").message;
        if matches!(message.body, Body::Error(_)) {
            errors.push(message);
        }
    }
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].requester_ip, Some(from));
}

/// Node `n` of the simulation: one public /24 each.
fn public_addr(n: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x2800_0000 + (n << 8) + 1 + n % 200), 6881))
}

#[test]
fn nodes_on_public_addresses_converge_to_bep42_ids() {
    const NODES: u32 = 300;
    let mut link = LinkModel::new(Duration::from_millis(30));
    link.jitter = Jitter::Uniform {
        max: Duration::from_millis(40),
    };
    link.loss = 0.02;
    let config = Config {
        node_events: false,
        incoming_events: false,
        ..Config::default()
    };
    let mut sim = DhtSim::build(0, 11, link, &config, Duration::ZERO);
    let mut rng = SmallRng::seed_from_u64(11);
    for n in 0..NODES {
        let addr = public_addr(n);
        let id = NodeId::random(&mut rng);
        let node = Node::new(config.clone(), id, rng.random(), sim.net.now());
        sim.net.add_node(addr, node);
        if n > 0 {
            let via: Vec<SocketAddr> = (0..3)
                .map(|_| public_addr(rng.random_range(0..n)))
                .collect();
            let now = sim.net.now();
            if let Some(node) = sim.net.node_mut(addr) {
                node.bootstrap(now, &via);
            }
        }
        sim.nodes.push((id, addr));
        sim.net.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(600));

    let mut valid = 0;
    for (_, addr) in &sim.nodes {
        let node = sim.net.node(*addr).expect("node");
        if node.id().is_bep42_valid_for(addr.ip()) {
            valid += 1;
            assert_eq!(node.external_ip(false), Some(addr.ip()));
        }
        assert!(node.stats().id_changes <= 1, "{addr}: id changed twice");
    }
    assert_eq!(valid, NODES, "every node took a BEP 42 id for its address");

    // The network still answers lookups under the new ids.
    for _ in 0..5 {
        let from = public_addr(rng.random_range(0..NODES));
        let target = NodeId::random(&mut rng);
        let event = sim
            .request(from, Duration::from_secs(60), |node, now| {
                node.find_node(now, target)
            })
            .expect("lookup completes");
        let Event::LookupDone { outcome, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(outcome.closest.len(), 8);
        assert!(
            outcome
                .closest
                .iter()
                .all(|(n, _)| n.id.is_bep42_valid_for(n.addr.ip())),
            "results carry the new ids"
        );
    }
}
