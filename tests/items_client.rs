//! BEP 44 as a client, in simulated time: a node puts immutable and mutable items on the
//! nodes closest to their targets and another node gets them back; a compare-and-swap
//! mismatch comes back as error 301; forged items in replies are ignored and counted; a put
//! that no node gives a token for, or that every node refuses, reports 0 stored.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::items::{MutableItem, StoredItem, immutable_target};
use btdht::krpc::{Body, Message, QueryKind, RawValue, Response, decode};
use btdht::node::{Event, GetItemResult, Node, PutItemResult, RequestId};
use btdht::sim::dht::{DhtSim, sim_config};
use btdht::sim::{Jitter, LinkModel};
use btdht::{Instant, NodeId};

const SEED: [u8; 32] = [0x44; 32];

fn build(count: usize, seed: u64) -> DhtSim {
    let mut link = LinkModel::new(Duration::from_millis(20));
    link.jitter = Jitter::Uniform {
        max: Duration::from_millis(20),
    };
    link.loss = 0.02;
    let mut sim = DhtSim::build(count, seed, link, &sim_config(), Duration::from_millis(20));
    sim.run_for(Duration::from_secs(60));
    sim
}

/// Gives node `at` a command and runs the network until its get or put completes.
fn run(
    sim: &mut DhtSim,
    at: SocketAddr,
    command: impl FnOnce(&mut Node, Instant) -> RequestId,
) -> Event {
    sim.request(at, Duration::from_secs(60), command)
        .expect("the request completes")
}

fn put_done(event: Event) -> PutItemResult {
    match event {
        Event::PutItemDone { result, .. } => result,
        other => panic!("expected PutItemDone, got {other:?}"),
    }
}

fn get_done(event: Event) -> GetItemResult {
    match event {
        Event::GetItemDone { result, .. } => result,
        other => panic!("expected GetItemDone, got {other:?}"),
    }
}

fn two_nodes(sim: &mut DhtSim) -> (SocketAddr, SocketAddr) {
    let a = sim.random_node();
    let mut b = sim.random_node();
    while b == a {
        b = sim.random_node();
    }
    (a, b)
}

#[test]
fn immutable_put_then_get_from_another_node() {
    let mut sim = build(200, 1);
    let (a, b) = two_nodes(&mut sim);
    let value = RawValue::from_bytes(b"Hello World!");
    let target = immutable_target(&value);
    let put = put_done(run(&mut sim, a, |node, now| {
        node.put_immutable(now, value.clone()).unwrap()
    }));
    assert_eq!(put.target, target);
    assert!(put.sent >= 6, "{put:?}");
    assert!(put.stored >= 6, "{} of {} stored", put.stored, put.sent);
    assert!(put.errors.is_empty(), "{:?}", put.errors);

    let got = get_done(run(&mut sim, b, |node, now| {
        node.get_immutable(now, target)
    }));
    assert_eq!(got.item, Some(StoredItem::Immutable(value)));
    assert_eq!(got.rejected, 0);
    assert!(!got.outcome.partial);

    // Nobody has this one.
    let missing = immutable_target(&RawValue::from_bytes(b"nobody put this"));
    let got = get_done(run(&mut sim, b, |node, now| {
        node.get_immutable(now, missing)
    }));
    assert_eq!(got.item, None);
    assert!(!got.outcome.closest.is_empty());
}

#[test]
fn mutable_put_get_and_cas() {
    let mut sim = build(200, 2);
    let (a, b) = two_nodes(&mut sim);
    let public_key = MutableItem::public_key_of(&SEED);
    let first = MutableItem::sign(&SEED, b"salt", 1, RawValue::from_bytes(b"one")).unwrap();
    let put = put_done(run(&mut sim, a, |node, now| {
        node.put_mutable(now, first.clone(), None).unwrap()
    }));
    assert_eq!(put.target, first.target());
    assert!(put.stored >= 6, "{put:?}");

    let got = get_done(run(&mut sim, b, |node, now| {
        node.get_mutable(now, public_key, b"salt", None).unwrap()
    }));
    assert_eq!(got.item, Some(StoredItem::Mutable(first.clone())));
    // Another salt is another item.
    let other = get_done(run(&mut sim, b, |node, now| {
        node.get_mutable(now, public_key, b"pepper", None).unwrap()
    }));
    assert_eq!(other.item, None);

    // seq 2 with cas 1: stored.
    let second = MutableItem::sign(&SEED, b"salt", 2, RawValue::from_bytes(b"two")).unwrap();
    let put = put_done(run(&mut sim, a, |node, now| {
        node.put_mutable(now, second.clone(), Some(1)).unwrap()
    }));
    assert!(put.stored >= 6, "{put:?}");
    // seq 3 with a stale cas: refused with 301 by the nodes that hold seq 2.
    let third = MutableItem::sign(&SEED, b"salt", 3, RawValue::from_bytes(b"three")).unwrap();
    let put = put_done(run(&mut sim, b, |node, now| {
        node.put_mutable(now, third.clone(), Some(1)).unwrap()
    }));
    // A node among the closest that held no item yet stores seq 3 (no cas to check); a get
    // then returns the highest seq that verifies, whichever nodes hold it.
    let latest = if put.stored > 0 {
        third
    } else {
        second.clone()
    };
    assert!(
        put.errors.iter().filter(|&&c| c == 301).count() >= 6,
        "{put:?}"
    );
    assert!(put.stored <= 2, "{put:?}");
    // An older seq than stored: 302.
    let put = put_done(run(&mut sim, b, |node, now| {
        node.put_mutable(now, first.clone(), None).unwrap()
    }));
    assert!(
        put.errors.iter().filter(|&&c| c == 302).count() >= 6,
        "{put:?}"
    );

    let got = get_done(run(&mut sim, a, |node, now| {
        node.get_mutable(now, public_key, b"salt", None).unwrap()
    }));
    assert_eq!(got.item, Some(StoredItem::Mutable(latest.clone())));
    // With min_seq above what is stored, nothing comes back.
    let got = get_done(run(&mut sim, a, |node, now| {
        node.get_mutable(now, public_key, b"salt", Some(4)).unwrap()
    }));
    assert_eq!(got.item, None);
    let got = get_done(run(&mut sim, a, |node, now| {
        node.get_mutable(now, public_key, b"salt", Some(2)).unwrap()
    }));
    assert_eq!(got.item, Some(StoredItem::Mutable(latest)));
}

#[test]
fn unsigned_or_oversized_puts_are_refused_before_sending() {
    let mut node = Node::new(sim_config(), NodeId([1; 20]), 1, Instant::ZERO);
    let mut item = MutableItem::sign(&SEED, b"", 1, RawValue::from_bytes(b"v")).unwrap();
    item.seq = 2;
    assert!(node.put_mutable(Instant::ZERO, item, None).is_err());
    let big = RawValue::from_bytes(&[b'x'; 1000]);
    assert!(node.put_immutable(Instant::ZERO, big).is_err());
    assert!(
        node.get_mutable(Instant::ZERO, [0; 32], &[0; 65], None)
            .is_err()
    );
    assert!(node.poll_transmit().is_none());
}

/// A client node with three fake nodes in its table, each answering `get` as the test says.
struct Harness {
    node: Node,
    now: Instant,
    fakes: Vec<(NodeId, SocketAddr)>,
}

impl Harness {
    fn new() -> Self {
        let node = Node::new(sim_config(), NodeId([0x80; 20]), 7, Instant::ZERO);
        let fakes: Vec<(NodeId, SocketAddr)> = (1..=3u8)
            .map(|n| {
                let mut id = [n; 20];
                id[0] = 0x10 + n;
                (NodeId(id), SocketAddr::from(([10, 0, n, 1], 6881)))
            })
            .collect();
        let mut harness = Harness {
            node,
            now: Instant::ZERO,
            fakes,
        };
        let addrs: Vec<SocketAddr> = harness.fakes.iter().map(|f| f.1).collect();
        harness.node.bootstrap(Instant::ZERO, &addrs);
        // Answer the bootstrap's find_node queries with empty replies: each fake enters the
        // table.
        for _ in 0..5 {
            harness.answer(|_, _| None);
        }
        harness
    }

    /// Answers every query the node sent with what `reply` builds for (fake index, query).
    fn answer(&mut self, reply: impl Fn(usize, &QueryKind) -> Option<Response>) {
        self.now += Duration::from_millis(10);
        let mut out = Vec::new();
        while let Some(t) = self.node.poll_transmit() {
            out.push(t);
        }
        for transmit in out {
            let Some(index) = self.fakes.iter().position(|f| f.1 == transmit.to) else {
                continue;
            };
            let message = decode(&transmit.bytes).unwrap().message;
            let Body::Query(query) = message.body else {
                continue;
            };
            let response =
                reply(index, &query.kind).unwrap_or_else(|| Response::new(self.fakes[index].0));
            let mut response = response;
            response.id = self.fakes[index].0;
            let bytes = Message::response(message.transaction_id, response).encode();
            self.node.handle_datagram(self.now, transmit.to, &bytes);
        }
    }
}

#[test]
fn forged_items_are_ignored_and_counted() {
    let mut h = Harness::new();
    let public_key = MutableItem::public_key_of(&SEED);
    let honest = MutableItem::sign(&SEED, b"", 3, RawValue::from_bytes(b"honest")).unwrap();
    // A higher seq with a signature by another key.
    let forged = MutableItem {
        public_key,
        ..MutableItem::sign(&[9; 32], b"", 9, RawValue::from_bytes(b"forged")).unwrap()
    };
    assert!(forged.verify().is_err());
    // A valid item of another key.
    let other_key = MutableItem::sign(&[9; 32], b"", 10, RawValue::from_bytes(b"other")).unwrap();
    let request = h.node.get_mutable(h.now, public_key, b"", None).unwrap();
    let item_reply = |item: &MutableItem| {
        let mut r = Response::new(NodeId::ZERO);
        r.token = Some(b"tok".to_vec());
        r.key = Some(item.public_key);
        r.seq = Some(item.seq);
        r.signature = Some(item.signature);
        r.value = Some(item.value.clone());
        Some(r)
    };
    for _ in 0..5 {
        h.answer(|index, query| {
            if !matches!(query, QueryKind::Get { .. }) {
                return None;
            }
            assert!(
                matches!(query, QueryKind::Get { seq: None, .. }),
                "{query:?}"
            );
            match index {
                0 => item_reply(&honest),
                1 => item_reply(&forged),
                _ => item_reply(&other_key),
            }
        });
    }
    let mut done = None;
    while let Some(event) = h.node.poll_event() {
        if let Event::GetItemDone { request: r, result } = event {
            assert_eq!(r, request);
            done = Some(result);
        }
    }
    let result = done.expect("the get ended");
    assert_eq!(result.item, Some(StoredItem::Mutable(honest)));
    assert_eq!(result.rejected, 2);
    assert_eq!(result.outcome.closest.len(), 3);

    // An immutable get: a value that does not hash to the target is refused.
    let value = RawValue::from_bytes(b"real");
    let target = immutable_target(&value);
    let request = h.node.get_immutable(h.now, target);
    for _ in 0..5 {
        h.answer(|index, _| {
            let mut r = Response::new(NodeId::ZERO);
            r.token = Some(b"tok".to_vec());
            r.value = Some(if index == 0 {
                value.clone()
            } else {
                RawValue::from_bytes(b"fake")
            });
            Some(r)
        });
    }
    let result = std::iter::from_fn(|| h.node.poll_event())
        .find_map(|e| match e {
            Event::GetItemDone { request: r, result } if r == request => Some(result),
            _ => None,
        })
        .expect("the get ended");
    assert_eq!(result.item, Some(StoredItem::Immutable(value)));
    assert_eq!(result.rejected, 2);
}

#[test]
fn put_errors_are_not_acknowledgements() {
    let mut h = Harness::new();
    let item = MutableItem::sign(&SEED, b"", 5, RawValue::from_bytes(b"v")).unwrap();
    let request = h.node.put_mutable(h.now, item, Some(4)).unwrap();
    // The get phase: tokens from all three.
    h.answer(|_, query| {
        if !matches!(query, QueryKind::Get { .. }) {
            return None;
        }
        let mut r = Response::new(NodeId::ZERO);
        r.token = Some(b"tok".to_vec());
        Some(r)
    });
    // The put phase: fake 0 acknowledges, 1 answers 301, 2 never answers.
    let mut out = Vec::new();
    while let Some(t) = h.node.poll_transmit() {
        out.push(t);
    }
    assert_eq!(out.len(), 3, "one put per node with a token");
    for transmit in out {
        let message = decode(&transmit.bytes).unwrap().message;
        let Body::Query(query) = message.body else {
            panic!()
        };
        let QueryKind::Put(args) = query.kind else {
            panic!("{:?}", query.kind)
        };
        assert_eq!(
            (args.seq, args.cas, args.token),
            (Some(5), Some(4), b"tok".to_vec())
        );
        let index = h.fakes.iter().position(|f| f.1 == transmit.to).unwrap();
        let reply = match index {
            0 => Message::response(message.transaction_id, Response::new(h.fakes[0].0)),
            1 => Message::error(message.transaction_id, 301, "cas mismatch"),
            _ => continue,
        };
        h.node.handle_datagram(h.now, transmit.to, &reply.encode());
    }
    assert!(
        h.node
            .poll_event()
            .is_none_or(|e| !matches!(e, Event::PutItemDone { .. }))
    );
    // The third times out (with its retries).
    for _ in 0..10 {
        h.now += Duration::from_secs(5);
        h.node.handle_timeout(h.now);
    }
    let result = std::iter::from_fn(|| h.node.poll_event())
        .find_map(|e| match e {
            Event::PutItemDone { request: r, result } if r == request => Some(result),
            _ => None,
        })
        .expect("the put ended");
    assert_eq!((result.sent, result.stored), (3, 1));
    assert_eq!(result.errors, vec![301]);
    assert_eq!(result.outcome.closest.len(), 3);
}

/// The put's completion, if the node emitted it.
fn put_result(node: &mut Node, request: RequestId) -> Option<PutItemResult> {
    std::iter::from_fn(|| node.poll_event()).find_map(|e| match e {
        Event::PutItemDone { request: r, result } if r == request => Some(result),
        _ => None,
    })
}

#[test]
fn a_put_with_no_token_is_stored_nowhere() {
    let mut h = Harness::new();
    let value = RawValue::from_bytes(b"no token");
    let request = h.node.put_immutable(h.now, value.clone()).unwrap();
    // Every node answers the get, none with a token.
    for _ in 0..5 {
        h.answer(|_, query| {
            assert!(matches!(query, QueryKind::Get { .. }), "{query:?}");
            None
        });
    }
    assert!(h.node.poll_transmit().is_none(), "no put is sent");
    let result = put_result(&mut h.node, request).expect("the put ended");
    assert_eq!(result.target, immutable_target(&value));
    assert_eq!((result.sent, result.stored), (0, 0));
    assert!(result.errors.is_empty());
    assert_eq!(result.outcome.closest.len(), 3);
    assert!(
        result
            .outcome
            .closest
            .iter()
            .all(|(_, token)| token.is_none())
    );
}

#[test]
fn a_put_every_node_refuses_is_stored_nowhere() {
    let mut h = Harness::new();
    let request = h
        .node
        .put_immutable(h.now, RawValue::from_bytes(b"refused"))
        .unwrap();
    h.answer(|_, query| {
        assert!(matches!(query, QueryKind::Get { .. }), "{query:?}");
        let mut r = Response::new(NodeId::ZERO);
        r.token = Some(b"stale".to_vec());
        Some(r)
    });
    // Every put is answered with error 203 (bad token).
    let mut out = Vec::new();
    while let Some(t) = h.node.poll_transmit() {
        out.push(t);
    }
    assert_eq!(out.len(), 3, "one put per node with a token");
    for transmit in out {
        let message = decode(&transmit.bytes).unwrap().message;
        let Body::Query(query) = message.body else {
            panic!("not a query")
        };
        assert!(matches!(query.kind, QueryKind::Put(_)), "{:?}", query.kind);
        let reply = Message::error(message.transaction_id, 203, "bad token");
        h.node.handle_datagram(h.now, transmit.to, &reply.encode());
    }
    let result = put_result(&mut h.node, request).expect("the put ended with the last error");
    assert_eq!((result.sent, result.stored), (3, 0));
    assert_eq!(result.errors, vec![203, 203, 203]);
}
