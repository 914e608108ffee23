//! BEP 44 storage in the node, as protocol traces in simulated time: `get` hands out a token and
//! the stored item, `put` stores immutable and mutable items under BEP 44's rules, and every
//! refusal is answered with its error code and stores nothing.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::items::{ItemStoreConfig, MutableItem, immutable_target};
use btdht::krpc::{Body, Message, PutArgs, QueryKind, RawValue, Response, Want, decode};
use btdht::node::{Config, Node};
use btdht::{Instant, NodeId};

const SEED: [u8; 32] = [0x5e; 32];

fn server(config: Config) -> Node {
    Node::new(config, NodeId([0x11; 20]), 1, Instant::ZERO)
}

fn client() -> SocketAddr {
    "1.2.3.4:6881".parse().unwrap()
}

/// Sends `kind` from the client at `now`; returns the node's reply to it.
fn ask(node: &mut Node, now: Instant, kind: QueryKind) -> Body {
    let query = Message::query(b"tx".to_vec(), NodeId([0x22; 20]), kind);
    node.handle_datagram(now, client(), &query.encode());
    let mut replies = Vec::new();
    while let Some(transmit) = node.poll_transmit() {
        let message = decode(&transmit.bytes).expect("our output decodes").message;
        if transmit.to == client() && !matches!(message.body, Body::Query(_)) {
            replies.push(message.body);
        }
    }
    assert_eq!(replies.len(), 1, "one reply per query: {replies:?}");
    replies.pop().unwrap()
}

fn response(body: Body) -> Response {
    match body {
        Body::Response(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn error_code(body: Body) -> i64 {
    match body {
        Body::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn get(node: &mut Node, now: Instant, target: NodeId, seq: Option<i64>) -> Response {
    response(ask(
        node,
        now,
        QueryKind::Get {
            target,
            seq,
            want: Want::UNSPECIFIED,
        },
    ))
}

fn put_immutable(token: &[u8], value: RawValue) -> QueryKind {
    QueryKind::Put(PutArgs {
        token: token.to_vec(),
        value,
        key: None,
        salt: None,
        seq: None,
        cas: None,
        signature: None,
    })
}

fn put_mutable(token: &[u8], item: &MutableItem, cas: Option<i64>) -> QueryKind {
    QueryKind::Put(PutArgs {
        token: token.to_vec(),
        value: item.value.clone(),
        key: Some(item.public_key),
        salt: (!item.salt.is_empty()).then(|| item.salt.clone()),
        seq: Some(item.seq),
        cas,
        signature: Some(item.signature),
    })
}

fn signed(salt: &[u8], seq: i64, value: &[u8]) -> MutableItem {
    MutableItem::sign(&SEED, salt, seq, RawValue::from_bytes(value)).unwrap()
}

#[test]
fn immutable_items_are_stored_and_returned() {
    let mut node = server(Config::default());
    let value = RawValue::from_bytes(b"Hello World!");
    let target = immutable_target(&value);
    let first = get(&mut node, Instant::ZERO, target, None);
    assert!(first.value.is_none(), "nothing stored yet");
    let token = first.token.expect("get hands out a token");

    // A bad token: 203, nothing stored.
    let refused = ask(
        &mut node,
        Instant::ZERO,
        put_immutable(b"nope", value.clone()),
    );
    assert_eq!(error_code(refused), 203);
    assert!(node.item_store().is_empty());

    let stored = response(ask(
        &mut node,
        Instant::ZERO,
        put_immutable(&token, value.clone()),
    ));
    assert_eq!(stored.id, node.id());
    let got = get(&mut node, Instant::from_micros(1_000_000), target, None);
    assert_eq!(got.value, Some(value));
    assert!(got.key.is_none() && got.signature.is_none() && got.seq.is_none());
    assert_eq!(node.stats().items_stored, 1);

    // Too big: 205.
    let big = RawValue::from_bytes(&[b'x'; 1000]);
    assert_eq!(
        error_code(ask(&mut node, Instant::ZERO, put_immutable(&token, big))),
        205
    );
    assert_eq!(node.item_store().len(), 1);
}

#[test]
fn mutable_items_follow_bep44_rules() {
    let mut node = server(Config::default());
    let t0 = Instant::ZERO;
    let v1 = signed(b"salt", 1, b"one");
    let target = v1.target();
    let token = get(&mut node, t0, target, None).token.unwrap();

    response(ask(&mut node, t0, put_mutable(&token, &v1, None)));
    let got = get(&mut node, t0, target, None);
    assert_eq!(got.value, Some(v1.value.clone()));
    assert_eq!(got.key, Some(v1.public_key));
    assert_eq!(got.seq, Some(1));
    assert_eq!(got.signature, Some(v1.signature));
    let fetched = MutableItem {
        public_key: got.key.unwrap(),
        salt: b"salt".to_vec(),
        seq: got.seq.unwrap(),
        value: got.value.unwrap(),
        signature: got.signature.unwrap(),
    };
    fetched.verify().expect("what the node returns verifies");

    // With the asker's seq as new as ours, no value, but key, seq and sig.
    let known = get(&mut node, t0, target, Some(1));
    assert!(known.value.is_none());
    assert_eq!(known.seq, Some(1));
    assert!(known.key.is_some() && known.signature.is_some());
    assert!(get(&mut node, t0, target, Some(0)).value.is_some());

    // A forged signature: 206; an older seq: 302; a cas that does not match: 301; a salt
    // over 64 bytes: 207. None of them changes what is stored.
    let mut forged = signed(b"salt", 5, b"five");
    forged.value = RawValue::from_bytes(b"evil");
    assert_eq!(
        error_code(ask(&mut node, t0, put_mutable(&token, &forged, None))),
        206
    );
    let old = signed(b"salt", 0, b"zero");
    assert_eq!(
        error_code(ask(&mut node, t0, put_mutable(&token, &old, None))),
        302
    );
    let v2 = signed(b"salt", 2, b"two");
    assert_eq!(
        error_code(ask(&mut node, t0, put_mutable(&token, &v2, Some(7)))),
        301
    );
    let long_salt = MutableItem {
        salt: vec![b's'; 65],
        ..v2.clone()
    };
    assert_eq!(
        error_code(ask(&mut node, t0, put_mutable(&token, &long_salt, None))),
        207
    );
    assert_eq!(get(&mut node, t0, target, None).seq, Some(1));

    // The right cas replaces it.
    response(ask(&mut node, t0, put_mutable(&token, &v2, Some(1))));
    let got = get(&mut node, t0, target, None);
    assert_eq!((got.seq, got.value), (Some(2), Some(v2.value.clone())));
    assert_eq!(node.stats().items_stored, 2);
}

#[test]
fn items_expire_two_hours_after_their_last_put() {
    let mut node = server(Config::default());
    let value = RawValue::from_bytes(b"short-lived");
    let target = immutable_target(&value);
    let token = get(&mut node, Instant::ZERO, target, None).token.unwrap();
    response(ask(&mut node, Instant::ZERO, put_immutable(&token, value)));
    let before = Instant::ZERO + Duration::from_secs(7199);
    assert!(get(&mut node, before, target, None).value.is_some());
    let after = Instant::ZERO + Duration::from_secs(7201);
    node.handle_timeout(after);
    assert!(get(&mut node, after, target, None).value.is_none());
    assert!(node.item_store().is_empty());
}

#[test]
fn the_store_is_bounded() {
    let config = Config {
        items: ItemStoreConfig {
            max_items: 50,
            ..ItemStoreConfig::default()
        },
        rate_limit_per_ip: None,
        rate_limit_global: None,
        rate_limit_new_sources: None,
        ..Config::default()
    };
    let mut node = server(config);
    let token = get(&mut node, Instant::ZERO, NodeId([0; 20]), None)
        .token
        .unwrap();
    for i in 0..500u32 {
        let value = RawValue::from_bytes(&i.to_be_bytes());
        response(ask(&mut node, Instant::ZERO, put_immutable(&token, value)));
        assert!(node.item_store().len() <= 50);
    }
    assert_eq!(node.item_store().stats().evicted, 450);
    // The most recent items are the ones kept.
    let last = immutable_target(&RawValue::from_bytes(&499u32.to_be_bytes()));
    assert!(get(&mut node, Instant::ZERO, last, None).value.is_some());
}
