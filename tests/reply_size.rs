//! No reply exceeds `MAX_REPLY_LEN` (1,024 bytes) of UDP payload: the largest reply of every
//! query type, from an IPv4 and an IPv6 asker, with a 64-byte transaction id, `want n4 n6`,
//! full routing tables, 50+ stored peers of each family and `scrape`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use btdht::krpc::{Body, Message, QueryKind, Response, Want, decode};
use btdht::node::{Config, MAX_REPLY_LEN, Node};
use btdht::routing::{Liveness, Snapshot, SnapshotEntry};
use btdht::{Instant, NodeId, NodeInfo};
use rand::SeedableRng;
use rand::rngs::SmallRng;

const INFO_HASH: [u8; 20] = [0x33; 20];

/// A node with full IPv4 and IPv6 tables, 60 peers of each family (half seeds) on
/// `INFO_HASH` and 200 other info-hashes stored.
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
    let restored = node.restore_routing(now, &Snapshot { own_id: own, nodes });
    assert!(restored > 100, "{restored}");
    for n in 0..60u32 {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x3000_0000 + n)), 7000);
        let v6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from((0x2a01_u128 << 112) + (u128::from(n) << 64))),
            7000,
        );
        assert!(node.restore_peer(now, NodeId(INFO_HASH), v4, n % 2 == 0));
        assert!(node.restore_peer(now, NodeId(INFO_HASH), v6, n % 2 == 0));
    }
    for n in 0..200u32 {
        let mut hash = [0u8; 20];
        hash[..4].copy_from_slice(&n.to_be_bytes());
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x3100_0000 + n)), 7000);
        assert!(node.restore_peer(now, NodeId(hash), peer, false));
    }
    node
}

/// Sends `kind` from `from` with a 64-byte transaction id; returns the reply's size and
/// content (the node's own verification ping is not a reply).
fn ask(node: &mut Node, now: Instant, from: SocketAddr, kind: QueryKind) -> (usize, Message) {
    let query = Message::query(vec![b't'; 64], NodeId([0x22; 20]), kind);
    node.handle_datagram(now, from, &query.encode());
    let mut replies = Vec::new();
    while let Some(transmit) = node.poll_transmit() {
        let message = decode(&transmit.bytes)
            .expect("our own output decodes")
            .message;
        if transmit.to == from && !matches!(message.body, Body::Query(_)) {
            replies.push((transmit.bytes.len(), message));
        }
    }
    assert_eq!(replies.len(), 1, "one reply per query");
    replies.remove(0)
}

fn response(message: &Message) -> &Response {
    match &message.body {
        Body::Response(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn no_reply_exceeds_1024_bytes() {
    let now = Instant::from_secs(10);
    let mut node = loaded_node(now);
    let both = Want { n4: true, n6: true };
    let target = NodeId(INFO_HASH);
    let get_peers = |want, scrape| QueryKind::GetPeers {
        info_hash: target,
        want,
        noseed: false,
        scrape,
    };
    let askers = [
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(99, 1, 2, 3)), 5000),
        SocketAddr::new("2a02:1:2:3::9".parse().unwrap(), 5000),
    ];
    let mut largest = 0;
    for (i, from) in askers.into_iter().enumerate() {
        // Each query from a fresh port, so that the rate limit does not interfere.
        let from = SocketAddr::new(from.ip(), 5000 + i as u16);
        let kinds = vec![
            QueryKind::Ping,
            QueryKind::FindNode { target, want: both },
            get_peers(Want::UNSPECIFIED, false),
            get_peers(both, false),
            get_peers(Want::UNSPECIFIED, true),
            get_peers(both, true),
            QueryKind::SampleInfohashes { target, want: both },
            QueryKind::Get {
                target,
                want: both,
                seq: None,
            },
        ];
        for kind in kinds {
            let label = format!("{kind:?} from {from}");
            let (len, message) = ask(&mut node, now, from, kind.clone());
            assert!(len <= MAX_REPLY_LEN, "{len} bytes: {label}");
            largest = largest.max(len);
            let reply = response(&message);
            if let QueryKind::GetPeers { want, scrape, .. } = kind {
                if scrape {
                    assert!(reply.bloom_seeds.is_some() && reply.bloom_peers.is_some());
                    assert!(reply.values.is_none(), "{label}");
                } else {
                    // Values come first: some always fit.
                    let values = reply.values.as_ref().map_or(0, Vec::len);
                    assert!(values >= 20, "{values} values: {label}");
                }
                if want == both {
                    assert!(reply.nodes.is_some() || reply.nodes6.is_some(), "{label}");
                }
            }
            if matches!(kind, QueryKind::FindNode { .. }) {
                assert_eq!(reply.nodes.as_ref().map(Vec::len), Some(8), "{label}");
                assert_eq!(reply.nodes6.as_ref().map(Vec::len), Some(8), "{label}");
            }
        }
    }
    // The limit was actually reached: trimming was needed.
    assert!(largest > MAX_REPLY_LEN - 100, "{largest}");
    assert!(node.stats().replies_trimmed > 0);
}

/// When all stored values would fit the value cap but not the reply size, the values dropped
/// to make the reply fit are drawn at random: the peers stored last are answered as often as
/// the peers stored first.
#[test]
fn trimmed_values_are_a_random_subset() {
    let now = Instant::from_secs(10);
    let own = NodeId([0x11; 20]);
    let mut node = Node::new(Config::default(), own, 3, now);
    // 48 IPv6 peers (all under the cap of 50): 1,008 bytes of values, which with the rest of a
    // reply exceed 1,024.
    let peers: Vec<SocketAddr> = (0..48u32)
        .map(|n| {
            let ip = Ipv6Addr::from((0x2a01_u128 << 112) + (u128::from(n) << 64) + 1);
            SocketAddr::new(IpAddr::V6(ip), 7000)
        })
        .collect();
    for peer in &peers {
        assert!(node.restore_peer(now, NodeId(INFO_HASH), *peer, false));
    }
    let mut counts = vec![0u32; peers.len()];
    for i in 0..400u32 {
        let ip = Ipv6Addr::from((0x2a02_u128 << 112) + (u128::from(i) << 64) + 9);
        let from = SocketAddr::new(IpAddr::V6(ip), 5000);
        let kind = QueryKind::GetPeers {
            info_hash: NodeId(INFO_HASH),
            want: Want::UNSPECIFIED,
            noseed: false,
            scrape: false,
        };
        let (len, message) = ask(&mut node, now, from, kind);
        assert!(len <= MAX_REPLY_LEN, "{len}");
        let values = response(&message).values.clone().unwrap_or_default();
        assert!(values.len() < peers.len(), "trimmed: {}", values.len());
        assert!(values.len() >= 20, "{}", values.len());
        for value in values {
            let at = peers
                .iter()
                .position(|p| *p == value)
                .expect("a stored peer");
            counts[at] += 1;
        }
    }
    assert!(node.stats().replies_trimmed >= 400);
    let first: u32 = counts[..10].iter().sum();
    let last: u32 = counts[38..].iter().sum();
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    assert!(
        last * 10 >= first * 8 && first * 10 >= last * 8,
        "first {first}, last {last}: {counts:?}"
    );
}
