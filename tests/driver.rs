//! The driver on real loopback sockets: nodes find each other, announces are found, peers
//! stream in before the outcome, a request timeout gives the partial result, BEP 33 flags reach
//! the other nodes, stop is clean and fast, a restarted node rejoins from its state file,
//! garbage does not disturb, the handle reports the id taken for a voted external address,
//! routers added to a running node bring it in and stay out of its table.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use btdht::{Dht, Error, Event, InfoHash, NodeId};
use support::{loopback, temp_dir, wait_until};

const T: Duration = Duration::from_secs(10);

/// A loopback node whose requests time out after [`T`].
fn test_node(n: u8) -> btdht::Builder {
    loopback(n).request_timeout(T)
}

fn table_len(dht: &Dht) -> usize {
    dht.routing_table().map(|t| t.len()).unwrap_or(0)
}

#[test]
fn ping_round_trip_and_stop_is_fast() {
    let a = test_node(1).start().unwrap();
    let b = test_node(2).start().unwrap();
    let id = b.ping(a.local_addr()).unwrap();
    assert_eq!(id, a.id());
    // a learned b from its query.
    assert!(wait_until(T, || table_len(&a) == 1));
    let stats = a.stats().unwrap();
    assert!(stats.node.responses_out >= 1);
    for dht in [a, b] {
        let started = Instant::now();
        let clone = dht.clone();
        dht.stop().unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
        // Stopping twice is harmless; calls after stop say so.
        clone.stop().unwrap();
        assert!(matches!(clone.stats(), Err(Error::Stopped)));
    }
}

#[test]
fn a_ping_to_nobody_times_out_in_the_core() {
    let a = test_node(3).start().unwrap();
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.3.2:0").unwrap();
    let started = Instant::now();
    let result = a.ping(silent.local_addr().unwrap());
    assert!(
        matches!(result, Err(Error::Query(btdht::node::QueryError::Timeout))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // A caller's own timeout is shorter than the core's.
    assert!(matches!(
        a.with_timeout(Duration::from_millis(50))
            .ping(silent.local_addr().unwrap()),
        Err(Error::Timeout)
    ));
    a.stop().unwrap();
}

#[test]
fn fifty_nodes_find_each_other_and_announces_are_found() {
    let seed = test_node(10).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 11..60u8 {
        nodes.push(test_node(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    // Every node's table fills up with others.
    assert!(
        wait_until(Duration::from_secs(20), || nodes
            .iter()
            .all(|d| table_len(d) >= 8)),
        "tables: {:?}",
        nodes.iter().map(table_len).collect::<Vec<_>>()
    );
    // find_node from any node finds the true closest among the 50.
    let ids: Vec<NodeId> = nodes.iter().map(|d| d.id()).collect();
    for (i, dht) in nodes.iter().enumerate().step_by(7) {
        let target = ids[(i + 13) % ids.len()];
        let outcome = dht.find_node(target).unwrap();
        let found: Vec<NodeId> = outcome.closest.iter().map(|(n, _)| n.id).collect();
        if i != (i + 13) % ids.len() {
            assert_eq!(found.first(), Some(&target), "lookup from {i}");
        }
        let mut truth: Vec<NodeId> = ids.iter().copied().filter(|id| *id != dht.id()).collect();
        truth.sort_by_key(|id| id.distance(&target));
        truth.truncate(8);
        let found: HashSet<NodeId> = found.into_iter().collect();
        let hits = truth.iter().filter(|id| found.contains(id)).count();
        assert!(hits >= 7, "lookup from {i}: {hits}/8 of the true closest");
    }

    // Announce from one node, find it from another, see the incoming events.
    let events: Vec<_> = nodes.iter().map(|d| d.subscribe()).collect();
    let info_hash = InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
    let announced = nodes[5].announce(info_hash, Some(7777), false).unwrap();
    assert!(announced.acknowledged >= 4, "{announced:?}");
    assert!(!announced.outcome.partial);
    let found = nodes[40]
        .get_peers(info_hash, false)
        .unwrap()
        .outcome()
        .unwrap();
    assert!(!found.partial);
    let expected = SocketAddr::new(nodes[5].local_addr().ip(), 7777);
    assert!(found.peers.contains(&expected), "{:?}", found.peers);
    // Implied port: the announcer's DHT port.
    let other = InfoHash::from_hex("89abcdef0123456789abcdef0123456789abcdef").unwrap();
    nodes[6].announce(other, None, false).unwrap();
    let found = nodes[30]
        .get_peers(other, false)
        .unwrap()
        .outcome()
        .unwrap();
    assert!(
        found.peers.contains(&nodes[6].local_addr()),
        "{:?}",
        found.peers
    );
    // Events reach subscribers through the event thread: wait for them rather than race it.
    let mut announces = 0;
    wait_until(T, || {
        announces += events
            .iter()
            .flat_map(|rx| rx.try_iter())
            .filter(|e| matches!(e, Event::PeerAnnounced { peer, .. } if *peer == expected))
            .count();
        announces >= 4
    });
    assert!(announces >= 4, "{announces} PeerAnnounced events");

    let started = Instant::now();
    for dht in nodes {
        dht.stop().unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_restarted_node_rejoins_from_its_state_file_without_routers() {
    let dir = temp_dir("restart");
    let state = dir.join("state.json");
    let seed = test_node(70).start().unwrap();
    let mut others = vec![seed.clone()];
    for n in 71..78u8 {
        others.push(test_node(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    let node = test_node(78)
        .state_file(&state)
        .bootstrap([seed.local_addr()])
        .start()
        .unwrap();
    assert!(wait_until(T, || table_len(&node) >= 7));
    let id = node.id();
    node.stop().unwrap();
    let saved = btdht::driver::load(&state).unwrap().unwrap();
    assert_eq!(saved.id, id);
    assert!(saved.nodes.len() >= 7);

    // Restart on another port, no bootstrap nodes at all.
    let node = test_node(78).state_file(&state).start().unwrap();
    assert_eq!(node.id(), id);
    let target = others[3].id();
    let outcome = node.find_node(target).unwrap();
    assert_eq!(outcome.closest.first().map(|(n, _)| n.id), Some(target));
    // The restored nodes answered from the first lookup on: they are verified again.
    assert!(wait_until(T, || {
        node.routing_table().is_ok_and(|t| {
            t.ipv4
                .nodes
                .iter()
                .filter(|n| n.since_response.is_some())
                .count()
                >= 5
        })
    }));
    node.save().unwrap();
    node.stop().unwrap();
    for dht in others {
        dht.stop().unwrap();
    }
}

/// A network of a router (a node the others joined through) and 5 nodes.
fn router_and_nodes(base: u8) -> (Dht, Vec<Dht>) {
    let router = test_node(base).start().unwrap();
    let nodes: Vec<Dht> = (1..=5u8)
        .map(|n| {
            test_node(base + n)
                .bootstrap([router.local_addr()])
                .start()
                .unwrap()
        })
        .collect();
    for node in &nodes {
        assert!(wait_until(T, || table_len(node) >= 1));
    }
    (router, nodes)
}

/// Whether `dht`'s routing tables have an entry at `addr` or with `id`.
fn in_table(dht: &Dht, addr: SocketAddr, id: NodeId) -> bool {
    let table = dht.routing_table().unwrap();
    table
        .ipv4
        .nodes
        .iter()
        .chain(&table.ipv6.nodes)
        .any(|e| e.node.addr == addr || e.node.id == id)
}

#[test]
fn routers_added_to_a_running_node_bring_it_in_and_stay_out_of_its_table() {
    let (router, nodes) = router_and_nodes(100);
    let node = test_node(106).start().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(table_len(&node), 0, "a node with no seeds knows nobody");

    node.add_routers(&[router.local_addr()]).unwrap();
    assert!(
        wait_until(T, || table_len(&node) >= nodes.len()),
        "joined through the router: {} nodes",
        table_len(&node)
    );
    // A lookup of the router's own id meets it in every reply; it still stays out.
    let outcome = node.find_node(router.id()).unwrap();
    assert!(outcome.responses > 0);
    let stats = node.stats().unwrap();
    assert!(stats.node.responses_in > 0);
    assert!(
        !in_table(&node, router.local_addr(), router.id()),
        "the router entered the routing table"
    );
    node.stop().unwrap();
    for dht in nodes.into_iter().chain([router]) {
        dht.stop().unwrap();
    }
}

#[test]
fn a_bootstrap_node_named_a_router_leaves_the_table() {
    let (router, nodes) = router_and_nodes(110);
    let node = test_node(116)
        .bootstrap([router.local_addr()])
        .start()
        .unwrap();
    assert!(wait_until(T, || in_table(
        &node,
        router.local_addr(),
        router.id()
    )));
    node.add_routers(&[router.local_addr()]).unwrap();
    assert!(
        wait_until(T, || !in_table(&node, router.local_addr(), router.id())),
        "the router stayed in the routing table"
    );
    // It answers the node's lookups and still stays out.
    assert!(node.find_node(router.id()).unwrap().responses > 0);
    assert!(!in_table(&node, router.local_addr(), router.id()));
    assert!(table_len(&node) >= nodes.len());
    node.stop().unwrap();
    for dht in nodes.into_iter().chain([router]) {
        dht.stop().unwrap();
    }
}

#[test]
fn a_corrupt_state_file_is_ignored() {
    let dir = temp_dir("corrupt");
    let state = dir.join("state.json");
    std::fs::write(&state, b"{\"btdht_state\": 1, \"id\": \"0102").unwrap();
    let node = test_node(80).state_file(&state).start().unwrap();
    // On stop, a good state replaces the corrupt one.
    node.stop().unwrap();
    let saved = btdht::driver::load(&state).unwrap().unwrap();
    assert_eq!(saved.id, node.id());
}

#[test]
fn malformed_datagrams_do_not_disturb_a_running_node() {
    let a = test_node(90).start().unwrap();
    let b = test_node(91).start().unwrap();
    let attacker = UdpSocket::bind("127.0.92.1:0").unwrap();
    let garbage: &[&[u8]] = &[
        b"",
        b"d",
        b"de",
        b"i42e",
        b"d1:t2:aa1:y1:qe",
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        b"d1:ad2:id3:abce1:q9:find_node1:t2:aa1:y1:qe",
        b"d1:rd2:id20:abcdefghij0123456789e1:t2:zz1:y1:re",
        b"d1:eli201e3:abce1:t2:zz1:y1:ee",
        b"l99999999999:",
        &[0xff; 1400],
        &[b'l'; 5000],
    ];
    for _ in 0..20 {
        for g in garbage {
            attacker.send_to(g, a.local_addr()).unwrap();
        }
    }
    assert_eq!(b.ping(a.local_addr()).unwrap(), a.id());
    let stats = a.stats().unwrap();
    assert!(stats.node.rejected_total() > 0);
    assert!(stats.node.datagrams_in >= 200);
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn hooks_see_queries_and_a_stuck_hook_is_reported_by_stop() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let a = test_node(95)
        .on_query(move |from, _, method| {
            let _ = tx.send((from, method));
            if method == btdht::node::Method::FindNode {
                std::thread::sleep(Duration::from_secs(5));
            }
        })
        .start()
        .unwrap();
    let b = test_node(96).start().unwrap();
    b.ping(a.local_addr()).unwrap();
    let (from, method) = rx.recv_timeout(T).unwrap();
    assert_eq!(from, b.local_addr());
    assert_eq!(method, btdht::node::Method::Ping);
    // A hook stuck in user code does not stall the I/O thread...
    let _ = b.with_timeout(Duration::from_millis(500)).find_node(a.id());
    assert!(rx.recv_timeout(T).is_ok());
    assert_eq!(b.ping(a.local_addr()).unwrap(), a.id());
    // ...and stop() names it.
    let started = Instant::now();
    match a.stop() {
        Err(Error::FailToStop(names)) => assert_eq!(names, vec!["hooks"]),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(2_500));
    b.stop().unwrap();
}

#[test]
fn ipv6_sockets_on_the_ipv6_loopback() {
    if UdpSocket::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let six: SocketAddr = "[::1]:0".parse().unwrap();
    let a = test_node(130).bind6(six).start().unwrap();
    let b = test_node(131)
        .bind6(six)
        .bootstrap(a.local_addr6())
        .start()
        .unwrap();
    let a6 = a.local_addr6().unwrap();
    assert!(a6.is_ipv6());
    assert_eq!(b.ping(a6).unwrap(), a.id());
    // Both families' tables: b learned a over IPv6.
    assert!(wait_until(T, || b.routing_table().is_ok_and(|t| t
        .ipv6
        .nodes
        .iter()
        .any(|n| n.node.addr == a6))));
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn the_handle_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Dht>();
}

/// A small network where `info_hash` has the peer `127.0.140.1:7140` stored at a live node,
/// and the client's table holds a node that stopped answering: a get_peers lookup from the
/// client gets the peer in its first round but cannot converge for several query timeouts.
struct Stalled {
    live: Dht,
    announcer: Dht,
    client: Dht,
    info_hash: InfoHash,
    peer: SocketAddr,
}

fn stalled(base: u8) -> Stalled {
    let live = test_node(base).start().unwrap();
    let announcer = test_node(base + 1)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    let gone = test_node(base + 2)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    let client = test_node(base + 3)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    assert!(wait_until(T, || table_len(&client) >= 3 && table_len(&announcer) >= 3));
    let info_hash = InfoHash::from_hex("00112233445566778899aabbccddeeff00112233").unwrap();
    let announced = announcer.announce(info_hash, Some(7140), false).unwrap();
    assert!(announced.acknowledged >= 1, "{announced:?}");
    let peer = SocketAddr::new(announcer.local_addr().ip(), 7140);
    gone.stop().unwrap();
    Stalled {
        live,
        announcer,
        client,
        info_hash,
        peer,
    }
}

impl Stalled {
    fn stop(self) {
        for dht in [self.live, self.announcer, self.client] {
            dht.stop().unwrap();
        }
    }
}

#[test]
fn get_peers_streams_peers_before_the_outcome() {
    let net = stalled(140);
    let timeout = Duration::from_millis(1_500);
    let started = Instant::now();
    let mut lookup = net
        .client
        .with_timeout(timeout)
        .get_peers(net.info_hash, false)
        .unwrap();
    let first = lookup.next();
    let first_at = started.elapsed();
    assert_eq!(first, Some(net.peer));
    assert_eq!(lookup.next(), None, "no other peer");
    let outcome = lookup.outcome().unwrap();
    let done_at = started.elapsed();
    // The peer came with the first replies; the lookup went on until its timeout.
    assert!(
        first_at < Duration::from_millis(500),
        "first peer at {first_at:?}"
    );
    assert!(done_at >= timeout, "done at {done_at:?}");
    assert_eq!(outcome.peers, vec![net.peer]);
    net.stop();
}

#[test]
fn a_short_timeout_returns_the_partial_result() {
    let net = stalled(150);
    let timeout = Duration::from_millis(1_200);
    let started = Instant::now();
    let outcome = net
        .client
        .with_timeout(timeout)
        .get_peers(net.info_hash, false)
        .unwrap()
        .outcome()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(outcome.partial, "{outcome:?}");
    assert_eq!(outcome.peers, vec![net.peer]);
    assert!(outcome.responses >= 2, "{outcome:?}");
    assert!(!outcome.closest.is_empty());
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_millis(800),
        "{elapsed:?}"
    );
    // find_node too.
    let outcome = net
        .client
        .with_timeout(timeout)
        .find_node(net.info_hash)
        .unwrap();
    assert!(
        outcome.partial && !outcome.closest.is_empty(),
        "{outcome:?}"
    );
    // Stopping early gives what was found so far, and leaves nothing running.
    let mut lookup = net.client.get_peers(net.info_hash, false).unwrap();
    assert_eq!(lookup.next(), Some(net.peer));
    let started = Instant::now();
    let outcome = lookup.stop().unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(outcome.partial);
    assert_eq!(outcome.peers, vec![net.peer]);
    assert!(wait_until(T, || net
        .client
        .stats()
        .is_ok_and(|s| s.operations_running == 0)));
    // A dropped lookup is cancelled too.
    let lookup = net.client.get_peers(net.info_hash, false).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(lookup);
    assert!(wait_until(Duration::from_millis(500), || net
        .client
        .stats()
        .is_ok_and(|s| s.operations_running == 0)));
    net.stop();
}

#[test]
fn seed_and_noseed_reach_the_other_nodes() {
    let live = test_node(160).start().unwrap();
    let events = live.subscribe();
    let seeder = test_node(161)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    let leecher = test_node(162)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    let client = test_node(163)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    assert!(wait_until(T, || [&seeder, &leecher, &client]
        .iter()
        .all(|d| table_len(d) >= 2)));
    let info_hash = InfoHash::from_hex("feedfacefeedfacefeedfacefeedfacefeedface").unwrap();
    assert!(
        seeder
            .announce(info_hash, Some(7161), true)
            .unwrap()
            .acknowledged
            >= 1
    );
    assert!(
        leecher
            .announce(info_hash, Some(7162), false)
            .unwrap()
            .acknowledged
            >= 1
    );
    let seed_peer = SocketAddr::new(seeder.local_addr().ip(), 7161);
    let leech_peer = SocketAddr::new(leecher.local_addr().ip(), 7162);
    // The live node stored each with its flag (its events come through the hook thread).
    let mut stored: Vec<(SocketAddr, bool)> = Vec::new();
    let deadline = Instant::now() + T;
    while stored.len() < 2 {
        match events.recv_deadline(deadline) {
            Ok(Event::PeerAnnounced {
                info_hash: h,
                peer,
                seed,
            }) if h == info_hash => stored.push((peer, seed)),
            Ok(_) => {}
            Err(e) => panic!("{e}: {stored:?}"),
        }
    }
    assert!(stored.contains(&(seed_peer, true)), "{stored:?}");
    assert!(stored.contains(&(leech_peer, false)), "{stored:?}");
    // With noseed the nodes leave the seed out.
    let mut all = client
        .get_peers(info_hash, false)
        .unwrap()
        .outcome()
        .unwrap()
        .peers;
    all.sort();
    let mut expected = vec![seed_peer, leech_peer];
    expected.sort();
    assert_eq!(all, expected);
    let leechers: Vec<SocketAddr> = client.get_peers(info_hash, true).unwrap().collect();
    assert_eq!(leechers, vec![leech_peer]);
    for dht in [live, seeder, leecher, client] {
        dht.stop().unwrap();
    }
}

#[test]
fn subscriptions_are_crate_receivers() {
    let a = test_node(170).start().unwrap();
    let events: btdht::Receiver<Event> = a.subscribe();
    assert!(events.is_empty());
    assert_eq!(events.try_recv(), Err(btdht::driver::TryRecvError::Empty));
    let b = test_node(171).bootstrap([a.local_addr()]).start().unwrap();
    let added = events.recv_timeout(T).unwrap();
    assert!(
        matches!(added, Event::NodeAdded(n) if n.addr == b.local_addr()),
        "{added:?}"
    );
    a.stop().unwrap();
    // The hook thread ended: the receiver ends too.
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, Event::PeerAnnounced { .. }))
    );
    assert_eq!(
        events.recv_timeout(T),
        Err(btdht::driver::RecvTimeoutError::Disconnected)
    );
    b.stop().unwrap();
}

#[test]
fn the_handle_reports_the_id_taken_for_the_voted_external_address() {
    use btdht::krpc::{Body, Message, Response, decode};
    let dht = test_node(1).start().unwrap();
    let started = dht.id();
    let ours: std::net::IpAddr = "81.2.3.4".parse().unwrap();
    assert!(!started.is_bep42_valid_for(ours));
    // 8 responders, each on its own loopback /24 (distinct voters), all report `ours`.
    for n in 1..=8u8 {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, n, 9], 0))).unwrap();
        socket.set_read_timeout(Some(T)).unwrap();
        let at = socket.local_addr().unwrap();
        let responder = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let (len, from) = socket.recv_from(&mut buf).unwrap();
            let query = decode(&buf[..len]).unwrap().message;
            assert!(matches!(query.body, Body::Query(_)));
            let id = NodeId([n; 20]);
            let mut reply = Message::response(query.transaction_id.clone(), Response::new(id));
            reply.requester_ip = Some(SocketAddr::new(ours, 6881));
            socket.send_to(&reply.encode(), from).unwrap();
        });
        assert_eq!(dht.ping(at).unwrap(), NodeId([n; 20]));
        responder.join().unwrap();
    }
    assert!(
        wait_until(T, || dht.id().is_bep42_valid_for(ours)),
        "{} is still not valid for {ours}",
        dht.id()
    );
    assert_ne!(dht.id(), started);
    assert_eq!(dht.routing_table().unwrap().id, dht.id());
    dht.stop().unwrap();
}

#[test]
fn an_external_address_on_the_builder_gives_a_bep42_id() {
    let ours: std::net::IpAddr = "81.2.3.4".parse().unwrap();
    let invalid = NodeId([7; 20]);
    assert!(!invalid.is_bep42_valid_for(ours));
    let dht = test_node(1)
        .node_id(invalid)
        .external_ip(ours)
        .start()
        .unwrap();
    let derived = dht.id();
    assert!(derived.is_bep42_valid_for(ours), "{derived}");
    dht.stop().unwrap();
    // An id already valid for the address is kept.
    let dht = test_node(1)
        .node_id(derived)
        .external_ip(ours)
        .start()
        .unwrap();
    assert_eq!(dht.id(), derived);
    dht.stop().unwrap();
}

#[test]
fn two_nodes_never_share_a_state_file() {
    let dir = temp_dir("state-lock");
    let state = dir.join("state.json");
    let first = test_node(180).state_file(&state).start().unwrap();
    match test_node(181).state_file(&state).start() {
        Err(btdht::driver::Error::StateInUse { path }) => assert_eq!(path, state),
        Err(e) => panic!("a second node on the same state file failed otherwise: {e}"),
        Ok(_) => panic!("a second node started on a state file in use"),
    }
    // Another state file in the same directory is free.
    let other = test_node(181)
        .state_file(dir.join("other.json"))
        .start()
        .unwrap();
    other.stop().unwrap();
    // Once the first node stopped (its last save done), the file is free again.
    let id = first.id();
    first.stop().unwrap();
    let again = test_node(181).state_file(&state).start().unwrap();
    assert_eq!(again.id(), id, "the restarted node took the saved id");
    again.stop().unwrap();
}
