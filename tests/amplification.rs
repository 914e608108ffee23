//! Amplification: the most reply bytes per query byte that any query type draws from an
//! unverified source, against full routing tables, a full peer list and a stored 1,000-byte
//! BEP 44 item; and the queries a silent source draws per minute. Run with `--nocapture` to
//! see the figures.
//!
//! Bounds asserted (all from an unverified source, with a 2-byte transaction id, the shortest
//! an asker would use):
//! - no answer is larger than [`MAX_REPLY_LEN`] plus the one field trimming cannot cut (a
//!   stored BEP 44 value, at most 1,000 bytes);
//! - the largest reply/query ratio is under 20;
//! - a silent source, however many queries it sends, draws at most one ping per 15 minutes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use btdht::items::immutable_target;
use btdht::krpc::{Body, Message, PutArgs, QueryKind, RawValue, Want, decode};
use btdht::node::{Config, MAX_REPLY_LEN, Node};
use btdht::routing::{Liveness, Snapshot, SnapshotEntry};
use btdht::{Instant, NodeId, NodeInfo};
use rand::SeedableRng;
use rand::rngs::SmallRng;

const INFO_HASH: [u8; 20] = [0x33; 20];
const TID: &[u8] = b"aa";

/// Full IPv4 and IPv6 tables, 60 peers of each family on `INFO_HASH`, 200 other
/// info-hashes.
fn loaded_node(now: Instant) -> Node {
    let mut rng = SmallRng::seed_from_u64(9);
    let own = NodeId([0x11; 20]);
    let mut node = Node::new(Config::default(), own, 1, now);
    let mut nodes = Vec::new();
    for n in 0..2_000u32 {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x1400_0000 + (n << 8) + 1)), 6881);
        let v6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(
                (0x2a00_u128 << 112) + (u128::from(n) << 64) + 1,
            )),
            6881,
        );
        for addr in [v4, v6] {
            nodes.push(SnapshotEntry {
                node: NodeInfo::new(NodeId::random(&mut rng), addr),
                liveness: Liveness::Good,
                since_response: Some(Duration::from_secs(1)),
                failed_queries: 0,
            });
        }
    }
    node.restore_routing(now, &Snapshot { own_id: own, nodes });
    for n in 0..60u32 {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x3000_0000 + n)), 7000);
        let v6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from((0x2a01_u128 << 112) + (u128::from(n) << 64))),
            7000,
        );
        node.restore_peer(now, NodeId(INFO_HASH), v4, n % 2 == 0);
        node.restore_peer(now, NodeId(INFO_HASH), v6, n % 2 == 0);
    }
    for n in 0..200u32 {
        let mut hash = [0u8; 20];
        hash[..4].copy_from_slice(&n.to_be_bytes());
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x3100_0000 + n)), 7000);
        node.restore_peer(now, NodeId(hash), peer, false);
    }
    node
}

/// Sends `bytes` from `from`; returns every byte sent back to `from` (answer and any ping)
/// and the answer.
fn exchange(
    node: &mut Node,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
) -> (usize, Option<Message>) {
    node.handle_datagram(now, from, bytes);
    let mut total = 0;
    let mut answer = None;
    while let Some(transmit) = node.poll_transmit() {
        if transmit.to == from {
            total += transmit.bytes.len();
            let message = decode(&transmit.bytes).expect("decodes").message;
            if !matches!(message.body, Body::Query(_)) {
                answer = Some(message);
            }
        }
    }
    (total, answer)
}

/// A fresh public asker for each query: every one is unverified and unlimited.
fn asker(n: u32, v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(
                (0x2a05_u128 << 112) + (u128::from(n) << 64) + 9,
            )),
            5000,
        )
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x6300_0000 + (n << 8) + 9)), 5000)
    }
}

#[test]
fn reply_to_query_ratio_and_pings_to_a_silent_source() {
    let now = Instant::from_secs(10);
    let mut node = loaded_node(now);
    let client = NodeId([0x22; 20]);
    let target = NodeId(INFO_HASH);
    let both = Want { n4: true, n6: true };
    let mut n = 0u32;

    // Store a 1,000-byte immutable item (a 996-byte bencoded string).
    let mut value = b"996:".to_vec();
    value.extend(std::iter::repeat_n(b'x', 996));
    let value = RawValue::new(value).expect("bencoded");
    let item = immutable_target(&value);
    let storer = asker(9_999, false);
    let get = Message::query(
        TID.to_vec(),
        client,
        QueryKind::Get {
            target: item,
            seq: None,
            want: Want::UNSPECIFIED,
        },
    );
    let (_, answer) = exchange(&mut node, now, storer, &get.encode());
    let token = match answer.map(|m| m.body) {
        Some(Body::Response(r)) => r.token.expect("a token"),
        other => panic!("{other:?}"),
    };
    let put = QueryKind::Put(PutArgs {
        token: token.clone(),
        value: value.clone(),
        key: None,
        salt: None,
        seq: None,
        cas: None,
        signature: None,
    });
    let (_, answer) = exchange(
        &mut node,
        now,
        storer,
        &Message::query(TID.to_vec(), client, put).encode(),
    );
    assert!(
        matches!(answer.map(|m| m.body), Some(Body::Response(_))),
        "the item is stored"
    );

    let get_peers = |want, scrape| QueryKind::GetPeers {
        info_hash: target,
        want,
        noseed: false,
        scrape,
    };
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut query = |label: &str, kind: QueryKind| {
        cases.push((
            label.to_string(),
            Message::query(TID.to_vec(), client, kind).encode(),
        ));
    };
    query("ping", QueryKind::Ping);
    query(
        "find_node",
        QueryKind::FindNode {
            target,
            want: Want::UNSPECIFIED,
        },
    );
    query(
        "find_node want n4 n6",
        QueryKind::FindNode { target, want: both },
    );
    query("get_peers", get_peers(Want::UNSPECIFIED, false));
    query("get_peers want n4 n6", get_peers(both, false));
    query("get_peers scrape", get_peers(Want::UNSPECIFIED, true));
    query("get_peers scrape want n4 n6", get_peers(both, true));
    query(
        "sample_infohashes",
        QueryKind::SampleInfohashes {
            target,
            want: Want::UNSPECIFIED,
        },
    );
    query(
        "sample_infohashes want n4 n6",
        QueryKind::SampleInfohashes { target, want: both },
    );
    query(
        "get (1,000-byte item)",
        QueryKind::Get {
            target: item,
            seq: None,
            want: Want::UNSPECIFIED,
        },
    );
    query(
        "get (1,000-byte item) want n4 n6",
        QueryKind::Get {
            target: item,
            seq: None,
            want: both,
        },
    );
    query(
        "announce_peer (bad token)",
        QueryKind::AnnouncePeer {
            info_hash: target,
            port: 7000,
            implied_port: false,
            token: b"xx".to_vec(),
            seed: false,
        },
    );
    query(
        "put (bad token)",
        QueryKind::Put(PutArgs {
            token: b"xx".to_vec(),
            value,
            key: None,
            salt: None,
            seq: None,
            cas: None,
            signature: None,
        }),
    );
    let id = String::from_utf8_lossy(&[b'a'; 20]).into_owned();
    cases.push((
        "unknown method".into(),
        format!("d1:ad2:id20:{id}e1:q2:xx1:t2:aa1:y1:qe").into_bytes(),
    ));
    cases.push((
        "find_node without target".into(),
        format!("d1:ad2:id20:{id}e1:q9:find_node1:t2:aa1:y1:qe").into_bytes(),
    ));
    cases.push((
        "malformed arguments".into(),
        b"d1:ai1e1:q4:ping1:t2:aa1:y1:qe".to_vec(),
    ));

    println!(
        "{:<36} {:>6} {:>6} {:>6}",
        "query (unverified source)", "query", "reply", "ratio"
    );
    let mut largest = 0.0f64;
    let mut worst = String::new();
    for v6 in [false, true] {
        for (label, bytes) in &cases {
            n += 1;
            let from = asker(n, v6);
            let (sent, _) = exchange(&mut node, now, from, bytes);
            let ratio = sent as f64 / bytes.len() as f64;
            let family = if v6 { "IPv6" } else { "IPv4" };
            println!(
                "{:<36} {:>6} {:>6} {:>6.1}",
                format!("{label} ({family})"),
                bytes.len(),
                sent,
                ratio
            );
            assert!(sent <= MAX_REPLY_LEN + 1_000, "{sent} bytes for {label}");
            if ratio > largest {
                largest = ratio;
                worst = format!("{label} ({family})");
            }
        }
    }
    println!("largest ratio: {largest:.1} ({worst})");
    assert!(largest < 20.0, "{largest} for {worst}");

    // A silent source querying for 15 minutes, 10 queries a second.
    let silent = asker(1_000_000, false);
    let ping = Message::query(TID.to_vec(), client, QueryKind::Ping).encode();
    let mut pings = 0;
    let minutes = 15u64;
    for step in 0..minutes * 60 * 10 {
        let at = now + Duration::from_millis(step * 100);
        node.handle_datagram(at, silent, &ping);
        node.handle_timeout(at);
        while let Some(transmit) = node.poll_transmit() {
            if transmit.to == silent {
                let message = decode(&transmit.bytes).expect("decodes").message;
                if matches!(message.body, Body::Query(_)) {
                    pings += 1;
                }
            }
        }
    }
    println!(
        "queries sent to a silent source: {pings} in {minutes} minutes ({:.3} per minute)",
        pings as f64 / minutes as f64
    );
    assert!(
        pings <= 1,
        "{pings} pings in 15 minutes: {:?}",
        node.verify_stats()
    );
}
