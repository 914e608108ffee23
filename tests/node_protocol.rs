//! The node's answers, as protocol traces in simulated time: at time t this datagram
//! arrives from that address; expect that one out.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::krpc::{Body, Message, QueryKind, Response, Want, decode};
use btdht::node::{Config, Event, Node};
use btdht::{Instant, NodeId, NodeInfo};

const SERVER: [u8; 20] = [0x11; 20];
const CLIENT: [u8; 20] = [0x22; 20];
const INFO_HASH: [u8; 20] = [0x33; 20];

fn server(config: Config) -> Node {
    Node::new(config, NodeId(SERVER), 1, Instant::ZERO)
}

fn public_config() -> Config {
    Config::default()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Sends `kind` from `from` at `now`; returns the single reply (the node's own verification
/// ping to an unknown querier is not a reply).
fn ask(node: &mut Node, now: Instant, from: SocketAddr, kind: QueryKind) -> Option<Message> {
    let query = Message::query(b"tx".to_vec(), NodeId(CLIENT), kind);
    node.handle_datagram(now, from, &query.encode());
    let mut replies = Vec::new();
    while let Some(transmit) = node.poll_transmit() {
        let message = decode(&transmit.bytes)
            .expect("our own output decodes")
            .message;
        if transmit.to == from && !matches!(message.body, Body::Query(_)) {
            replies.push(message);
        }
    }
    assert!(replies.len() <= 1, "one reply per query: {replies:?}");
    replies.pop()
}

fn response(message: Option<Message>) -> Response {
    match message.map(|m| m.body) {
        Some(Body::Response(r)) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn error_code(message: Option<Message>) -> i64 {
    match message.map(|m| m.body) {
        Some(Body::Error(e)) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn get_peers() -> QueryKind {
    QueryKind::GetPeers {
        info_hash: NodeId(INFO_HASH),
        want: Want::UNSPECIFIED,
        noseed: false,
        scrape: false,
    }
}

fn announce(token: Vec<u8>) -> QueryKind {
    QueryKind::AnnouncePeer {
        info_hash: NodeId(INFO_HASH),
        port: 7000,
        implied_port: false,
        token,
        seed: false,
    }
}

fn stored(node: &mut Node, now: Instant, asker: SocketAddr) -> Vec<SocketAddr> {
    response(ask(node, now, asker, get_peers()))
        .values
        .unwrap_or_default()
}

#[test]
fn tokens_are_valid_for_the_asker_between_5_and_10_minutes() {
    let mut node = server(public_config());
    let client = addr("1.2.3.4:6881");
    let other = addr("5.6.7.8:6881");
    let observer = addr("9.9.9.9:6881");
    let token = response(ask(&mut node, Instant::ZERO, client, get_peers()))
        .token
        .expect("get_peers returns a token");

    // At 9 minutes the token still works, from the IP it was issued to.
    let t9 = Instant::from_secs(9 * 60);
    let reply = response(ask(&mut node, t9, client, announce(token.clone())));
    assert_eq!(reply.id, NodeId(SERVER));
    assert_eq!(stored(&mut node, t9, observer), vec![addr("1.2.3.4:7000")]);
    assert!(matches!(
        node.poll_event(),
        Some(Event::PeerAnnounced { .. }) | Some(Event::GetPeersReceived { .. })
    ));

    // From another IP: 203, not stored.
    let info_hash2 = [0x44; 20];
    let foreign = QueryKind::AnnouncePeer {
        info_hash: NodeId(info_hash2),
        port: 7000,
        implied_port: false,
        token: token.clone(),
        seed: false,
    };
    assert_eq!(error_code(ask(&mut node, t9, other, foreign)), 203);

    // At 11 minutes: expired, 203, and nothing more stored.
    let t11 = Instant::from_secs(11 * 60);
    let late = ask(&mut node, t11, addr("1.2.3.4:6882"), announce(token));
    assert_eq!(error_code(late), 203);
    assert_eq!(node.peer_store().peer_count(), 1);
    assert_eq!(node.stats().bad_tokens, 2);
}

#[test]
fn garbage_and_missing_tokens_get_203() {
    let mut node = server(public_config());
    let client = addr("1.2.3.4:6881");
    assert_eq!(
        error_code(ask(
            &mut node,
            Instant::ZERO,
            client,
            announce(vec![1, 2, 3])
        )),
        203
    );
    // Missing token: rejected by the decoder, still answered with 203 and the same t.
    let raw = format!(
        "d1:ad2:id20:{}9:info_hash20:{}4:porti7000ee1:q13:announce_peer1:t2:tx1:y1:qe",
        "b".repeat(20),
        "c".repeat(20)
    );
    node.handle_datagram(Instant::ZERO, client, raw.as_bytes());
    let out = node.poll_transmit().expect("answered");
    let reply = decode(&out.bytes).unwrap().message;
    assert_eq!(reply.transaction_id, b"tx");
    assert!(matches!(reply.body, Body::Error(ref e) if e.code == 203));
    assert_eq!(node.peer_store().peer_count(), 0);
}

#[test]
fn implied_port_uses_the_source_port() {
    let mut node = server(public_config());
    let client = addr("1.2.3.4:51413");
    let token = response(ask(&mut node, Instant::ZERO, client, get_peers()))
        .token
        .unwrap();
    let kind = QueryKind::AnnouncePeer {
        info_hash: NodeId(INFO_HASH),
        port: 0,
        implied_port: true,
        token,
        seed: true,
    };
    response(ask(&mut node, Instant::from_secs(1), client, kind));
    assert_eq!(
        stored(&mut node, Instant::from_secs(2), addr("9.9.9.9:1")),
        vec![client]
    );
}

#[test]
fn announced_peers_expire_after_30_minutes() {
    let mut node = server(public_config());
    let client = addr("1.2.3.4:6881");
    let token = response(ask(&mut node, Instant::ZERO, client, get_peers()))
        .token
        .unwrap();
    response(ask(&mut node, Instant::ZERO, client, announce(token)));
    node.handle_timeout(Instant::from_secs(29 * 60));
    assert_eq!(node.peer_store().peer_count(), 1);
    node.handle_timeout(Instant::from_secs(31 * 60));
    assert_eq!(node.peer_store().peer_count(), 0);
}

#[test]
fn read_only_nodes_answer_nothing_and_flag_their_queries() {
    let mut config = public_config();
    config.read_only = true;
    let mut node = server(config);
    assert!(
        ask(
            &mut node,
            Instant::ZERO,
            addr("1.2.3.4:6881"),
            QueryKind::Ping
        )
        .is_none()
    );
    node.ping(Instant::ZERO, addr("1.2.3.4:6881"));
    let out = node.poll_transmit().unwrap();
    assert!(
        decode(&out.bytes).unwrap().message.read_only,
        "ro = 1 in our queries"
    );
}

#[test]
fn queries_from_read_only_nodes_are_answered_but_not_routed() {
    let mut node = server(public_config());
    let mut query = Message::query(b"tx".to_vec(), NodeId(CLIENT), QueryKind::Ping);
    query.read_only = true;
    node.handle_datagram(Instant::ZERO, addr("1.2.3.4:6881"), &query.encode());
    let out: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
    assert_eq!(out.len(), 1, "only the reply, no verification ping");
    let mut normal = server(public_config());
    normal.handle_datagram(Instant::ZERO, addr("1.2.3.4:6881"), &query_without_ro());
    let out: Vec<_> = std::iter::from_fn(|| normal.poll_transmit()).collect();
    assert_eq!(
        out.len(),
        2,
        "a normal querier gets the reply and a verification ping"
    );
    assert_eq!(node.stats().read_only_queries, 1);
}

fn query_without_ro() -> Vec<u8> {
    Message::query(b"tx".to_vec(), NodeId(CLIENT), QueryKind::Ping).encode()
}

#[test]
fn replies_carry_the_askers_address_and_want_selects_families() {
    let mut node = server(public_config());
    let client = addr("1.2.3.4:6881");
    let find = |want| QueryKind::FindNode {
        target: NodeId(INFO_HASH),
        want,
    };
    let reply = ask(&mut node, Instant::ZERO, client, find(Want::UNSPECIFIED)).unwrap();
    assert_eq!(reply.requester_ip, Some(client), "BEP 42 ip");
    let Body::Response(r) = reply.body else {
        panic!()
    };
    assert!(r.nodes.is_some() && r.nodes6.is_none());
    let both = response(ask(
        &mut node,
        Instant::ZERO,
        client,
        find(Want { n4: true, n6: true }),
    ));
    assert!(both.nodes.is_some() && both.nodes6.is_some());
}

#[test]
fn unknown_methods_get_204_and_put_is_refused() {
    let mut node = server(public_config());
    let raw = format!("d1:ad2:id20:{}e1:q4:vote1:t2:tx1:y1:qe", "b".repeat(20));
    node.handle_datagram(Instant::ZERO, addr("1.2.3.4:6881"), raw.as_bytes());
    let out = node.poll_transmit().unwrap();
    assert!(
        matches!(decode(&out.bytes).unwrap().message.body, Body::Error(ref e) if e.code == 204)
    );
    assert_eq!(node.stats().rejected_total(), 1);
}

#[test]
fn private_sources_are_ignored_unless_allowed() {
    let mut node = server(public_config());
    assert!(
        ask(
            &mut node,
            Instant::ZERO,
            addr("192.168.1.2:6881"),
            QueryKind::Ping
        )
        .is_none()
    );
    assert_eq!(node.stats().filtered_addresses, 1);
    let mut config = public_config();
    config.allow_private = true;
    let mut node = server(config);
    assert!(
        ask(
            &mut node,
            Instant::ZERO,
            addr("192.168.1.2:6881"),
            QueryKind::Ping
        )
        .is_some()
    );
}

#[test]
fn a_ping_times_out_in_simulated_time() {
    let mut node = server(public_config());
    let request = node.ping(Instant::ZERO, addr("1.2.3.4:6881"));
    assert!(node.poll_transmit().is_some());
    let deadline = node.poll_timeout().unwrap();
    assert!(deadline <= Instant::ZERO + Duration::from_secs(2));
    node.handle_timeout(Instant::from_secs(2));
    match node.poll_event() {
        Some(Event::PingDone {
            request: r,
            result: Err(_),
            ..
        }) => assert_eq!(r, request),
        other => panic!("{other:?}"),
    }
    assert_eq!(node.stats().timeouts, 1);
}

/// Every query `node` has queued, decoded, with its destination.
fn queries(node: &mut Node) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(transmit) = node.poll_transmit() {
        let message = decode(&transmit.bytes)
            .expect("our own output decodes")
            .message;
        if matches!(message.body, Body::Query(_)) {
            out.push((transmit.to, message));
        }
    }
    out
}

/// A node whose routing table holds `peer` (it answered a ping).
fn node_knowing(peer: SocketAddr, now: Instant) -> Node {
    let mut node = server(public_config());
    node.add_known_node(now, NodeInfo::new(NodeId(CLIENT), peer));
    for (to, query) in queries(&mut node) {
        assert_eq!(to, peer);
        let reply = Message::response(query.transaction_id, Response::new(NodeId(CLIENT)));
        node.handle_datagram(now, peer, &reply.encode());
    }
    assert_eq!(node.routing_table().len(), 1);
    node
}

#[test]
fn an_error_reply_is_final_for_a_lookup_query() {
    let peer = addr("1.2.3.4:6881");
    let mut now = Instant::ZERO;
    let mut node = node_knowing(peer, now);
    let request = node.find_node(now, NodeId(INFO_HASH));
    let mut asked = 0;
    let mut done = None;
    for _ in 0..30 {
        for (to, query) in queries(&mut node) {
            if to == peer && query.method() == Some("find_node") {
                asked += 1;
                let error = Message::error(query.transaction_id, 202, "server error");
                node.handle_datagram(now, peer, &error.encode());
            }
        }
        while let Some(event) = node.poll_event() {
            if let Event::LookupDone {
                request: r,
                outcome,
                ..
            } = event
                && r == request
            {
                done = Some(outcome);
            }
        }
        now += Duration::from_secs(1);
        node.handle_timeout(now);
    }
    assert_eq!(
        asked, 1,
        "a node that answered with an error was asked again"
    );
    let outcome = done.expect("the lookup ends");
    assert_eq!(outcome.failures, 1);
    assert!(outcome.closest.is_empty());
}

#[test]
fn a_dual_stack_node_bootstraps_with_want_n4_n6() {
    let seed = addr("1.2.3.4:6881");
    for (dual_stack, want) in [
        (true, Want { n4: true, n6: true }),
        (false, Want::UNSPECIFIED),
    ] {
        let mut node = server(Config {
            dual_stack,
            ..public_config()
        });
        node.bootstrap(Instant::ZERO, &[seed]);
        let sent = queries(&mut node);
        assert_eq!(sent.len(), 1);
        match &sent[0].1.body {
            Body::Query(query) => match query.kind {
                QueryKind::FindNode { want: got, .. } => assert_eq!(got, want),
                ref other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
}

/// The pings `node` sent to `to` (draining everything it sent).
fn pings_to(node: &mut Node, to: impl Fn(&SocketAddr) -> bool) -> usize {
    let mut pings = 0;
    while let Some(transmit) = node.poll_transmit() {
        let message = decode(&transmit.bytes).expect("decodes").message;
        if to(&transmit.to)
            && matches!(&message.body, Body::Query(q) if matches!(q.kind, QueryKind::Ping))
        {
            pings += 1;
        }
    }
    pings
}

#[test]
fn a_silent_sender_draws_at_most_one_ping_in_15_minutes() {
    for queries in [10u64, 10_000] {
        let mut node = server(public_config());
        let silent = addr("93.184.216.34:6881");
        let step = Duration::from_secs(15 * 60).as_micros() as u64 / queries;
        let mut pings = 0;
        for n in 0..queries {
            let now = Instant::from_micros(n * step);
            let query = Message::query(b"tx".to_vec(), NodeId(CLIENT), QueryKind::Ping);
            node.handle_datagram(now, silent, &query.encode());
            node.handle_timeout(now);
            pings += pings_to(&mut node, |to| *to == silent);
        }
        assert!(pings <= 1, "{queries} queries drew {pings} pings");
        assert_eq!(node.verify_stats().pinged, 1);
    }
}

#[test]
fn spoofed_senders_draw_pings_at_the_configured_rate_only() {
    let mut node = server(public_config());
    let rate = node.config().verify.pings_per_second as usize;
    let mut per_second = Vec::new();
    // 100,000 distinct sources over 100 seconds, 1,000 a second.
    for second in 0..100u64 {
        let mut pings = 0;
        for i in 0..1_000u64 {
            let n = (second * 1_000 + i) as u32;
            let from = SocketAddr::from((std::net::Ipv4Addr::from(0x5100_0000 + n), 6881));
            let now = Instant::from_micros(second * 1_000_000 + i * 1_000);
            let query = Message::query(b"tx".to_vec(), NodeId(CLIENT), QueryKind::Ping);
            node.handle_datagram(now, from, &query.encode());
            node.handle_timeout(now);
            pings += pings_to(&mut node, |_| true);
        }
        per_second.push(pings);
    }
    let max = per_second.iter().copied().max().unwrap_or(0);
    let total: usize = per_second.iter().sum();
    // A token bucket of `rate` a second with a burst of `rate`: at most twice the rate in
    // any one second, the rate on average.
    assert!(max <= 2 * rate, "{max} pings in one second");
    assert!(total <= rate * 100 + rate, "{total} pings in 100 s");
    assert!(total >= rate * 50, "verification still happens: {total}");
}

#[test]
fn reply_bytes_stay_within_the_budget() {
    let config = Config {
        reply_bytes_per_second: 10_000,
        ..public_config()
    };
    let mut node = server(config);
    let reply_bytes = |node: &mut Node| -> usize {
        let mut bytes = 0;
        while let Some(transmit) = node.poll_transmit() {
            let message = decode(&transmit.bytes).expect("decodes").message;
            if !matches!(message.body, Body::Query(_)) {
                bytes += transmit.bytes.len();
            }
        }
        bytes
    };
    // 2,000 askers in 2 seconds, each answered with a get_peers reply (about 100 bytes).
    let mut sent = 0;
    for n in 0..2_000u32 {
        let from = SocketAddr::from((std::net::Ipv4Addr::from(0x5200_0000 + n), 6881));
        let now = Instant::from_micros(u64::from(n) * 1_000);
        let query = Message::query(b"tx".to_vec(), NodeId(CLIENT), get_peers());
        node.handle_datagram(now, from, &query.encode());
        sent += reply_bytes(&mut node);
    }
    // One second's burst and two seconds' refill.
    assert!(sent <= 30_000, "{sent} reply bytes in 2 s");
    assert!(sent >= 20_000, "the budget is used: {sent}");
    assert!(node.stats().replies_over_budget > 1_000);
    // Once the budget refills, replies flow again.
    let later = Instant::from_micros(10_000_000);
    let reply = ask(&mut node, later, addr("93.1.2.3:6881"), QueryKind::Ping);
    assert!(reply.is_some());
}

#[test]
fn with_enforce_bep42_invalid_responders_give_no_token_and_are_not_closest() {
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(3);
    let valid_addr = addr("81.1.2.3:6881");
    let valid = NodeId::bep42(valid_addr.ip(), 5, &mut rng);
    let liar_addr = addr("82.1.2.3:6881");
    let liar = NodeId(INFO_HASH); // the target itself: the closest possible, and invalid
    assert!(!liar.is_bep42_valid_for(liar_addr.ip()));
    let config = Config {
        enforce_bep42: true,
        ..public_config()
    };
    let mut now = Instant::ZERO;
    let mut node = server(config);
    node.add_known_node(now, NodeInfo::new(valid, valid_addr));
    for (_, query) in queries(&mut node) {
        let reply = Message::response(query.transaction_id, Response::new(valid));
        node.handle_datagram(now, valid_addr, &reply.encode());
    }
    assert_eq!(node.routing_table().len(), 1);
    let request = node.announce(now, NodeId(INFO_HASH), Some(7000), false);
    let mut announced_to = Vec::new();
    let mut done = None;
    for _ in 0..30 {
        for (to, query) in queries(&mut node) {
            let mut reply = match to {
                t if t == valid_addr => Response::new(valid),
                t if t == liar_addr => Response::new(liar),
                _ => continue,
            };
            match query.method() {
                Some("get_peers") => {
                    reply.token = Some(b"tok".to_vec());
                    if to == valid_addr {
                        reply.nodes = Some(vec![NodeInfo::new(liar, liar_addr)]);
                    }
                }
                Some("announce_peer") => announced_to.push(to),
                _ => {}
            }
            let reply = Message::response(query.transaction_id, reply);
            node.handle_datagram(now, to, &reply.encode());
        }
        while let Some(event) = node.poll_event() {
            if let Event::AnnounceDone {
                request: r,
                outcome,
                ..
            } = event
                && r == request
            {
                done = Some(outcome);
            }
        }
        now += Duration::from_secs(1);
        node.handle_timeout(now);
    }
    let outcome = done.expect("the announce ends");
    assert!(outcome.closest.iter().all(|(n, _)| n.addr != liar_addr));
    assert_eq!(announced_to, vec![valid_addr]);
}

#[test]
fn an_unlimited_reply_budget_answers_every_asker() {
    let config = Config {
        reply_bytes_per_second: u64::MAX,
        ..public_config()
    };
    let mut node = server(config);
    let mut answered = 0;
    // 2,000 askers within 2 ms: far over any finite burst of this size.
    for n in 0..2_000u32 {
        let from = SocketAddr::from((std::net::Ipv4Addr::from(0x5200_0000 + n), 6881));
        let now = Instant::from_micros(u64::from(n));
        let query = Message::query(b"tx".to_vec(), NodeId(CLIENT), get_peers());
        node.handle_datagram(now, from, &query.encode());
        while let Some(transmit) = node.poll_transmit() {
            let message = decode(&transmit.bytes).expect("decodes").message;
            if !matches!(message.body, Body::Query(_)) {
                answered += 1;
            }
        }
    }
    assert_eq!(node.stats().replies_over_budget, 0);
    assert_eq!(answered, 2_000);
}
