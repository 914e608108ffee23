//! The `node_sequence` fuzz target's harness and checks, shared by
//! `fuzz/fuzz_targets/node_sequence.rs` and `tests/fuzz_regressions.rs`.
//!
//! The input is split by hand into records, each `op, dt, src, len_lo, len_hi, payload[len]`:
//! the clock advances by `dt² × 10 ms` (up to 650 s, so token rotation and peer expiry
//! happen), then by `op`:
//! - raw: `payload` arrives from address `src` (one of [`SOURCES`]);
//! - reply / error: a response (nodes, values and a token taken from `payload`) or an error
//!   answers the newest query the node sent, from the address it was sent to, with its
//!   transaction id: the fuzzer cannot guess ids, the harness can;
//! - announce: an announce_peer from `src` with the token the node last gave that IP;
//! - command: the node starts a ping, find_node, get_peers, announce or bootstrap.
//!
//! After every record: no panic; both routing tables pass `check_invariants`; the
//! transaction map, the announce store, the running operations, the event and outgoing queues
//! and the rate limiter's source table are within their (small) configured caps; and every
//! datagram the node emits decodes as a well-formed, canonical KRPC message no larger than
//! [`MAX_EMITTED`] bytes, sent to an address the node accepts.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use btdht::contact::NodeInfo;
use btdht::krpc::{Body, Message, QueryKind, Response, decode};
use btdht::node::{Config, Node, RateLimit};
use btdht::peers::PeerStoreConfig;
use btdht::transaction::TransactionConfig;
use btdht::{Instant, NodeId};

/// The largest datagram the node may emit: a get_peers reply with 50 IPv6 values, both node
/// lists, both Bloom filters, a token and a transaction id of the largest answered length.
pub(crate) const MAX_EMITTED: usize = 2_500;

/// The sources a record can name: public IPv4 and IPv6 addresses (two sharing an IP), and
/// ones the node must ignore (private, port 0).
pub(crate) const SOURCES: [&str; 8] = [
    "1.2.3.4:6881",
    "1.2.3.4:6882",
    "5.6.7.8:51413",
    "9.9.9.9:1",
    "[2a00:1450::1]:6881",
    "[2a00:1450::2]:443",
    "10.0.0.1:6881",
    "8.8.4.4:0",
];

/// Small caps, so that a short input reaches them.
pub(crate) fn config() -> Config {
    Config {
        max_lookups: 4,
        max_outbox: 64,
        max_events: 32,
        lookup_candidates: 16,
        lookup_max_peers: 16,
        rate_limit_per_ip: Some(RateLimit { rate: 5, burst: 20 }),
        rate_limit_global: Some(RateLimit {
            rate: 100,
            burst: 200,
        }),
        rate_limit_new_sources: Some(RateLimit {
            rate: 50,
            burst: 100,
        }),
        rate_limit_max_ips: 8,
        query_events: true,
        peers: PeerStoreConfig {
            max_info_hashes: 4,
            max_peers_per_info_hash: 3,
            max_peers: 8,
            max_samples: 4,
            ..PeerStoreConfig::default()
        },
        transactions: TransactionConfig {
            id_len: 1,
            capacity: 16,
            late_memory: 8,
        },
        ..Config::default()
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn id_from(bytes: &[u8], fill: u8) -> NodeId {
    let mut id = [fill; 20];
    let n = bytes.len().min(20);
    id[..n].copy_from_slice(&bytes[..n]);
    NodeId(id)
}

/// Nodes of a reply, 6 bytes of payload each: an id byte, an IPv4 address, a port byte.
fn nodes_from(bytes: &[u8]) -> Vec<NodeInfo> {
    bytes
        .chunks_exact(6)
        .take(16)
        .map(|c| {
            let addr = SocketAddr::from(([c[1], c[2], c[3], c[4]], 1000 + u16::from(c[5])));
            NodeInfo::new(NodeId([c[0]; 20]), addr)
        })
        .collect()
}

/// What the harness remembers of the node's output, to answer it plausibly.
#[derive(Default)]
struct Memory {
    /// The newest queries sent: (to, transaction id).
    queries: Vec<(SocketAddr, Vec<u8>)>,
    /// The newest token given to each IP.
    tokens: HashMap<IpAddr, Vec<u8>>,
}

/// Runs one input; panics when an invariant fails.
pub(crate) fn check_node_sequence(data: &[u8]) {
    let config = config();
    let mut now = Instant::from_secs(1);
    let mut node = Node::new(config.clone(), NodeId([0x42; 20]), 1, now);
    let mut memory = Memory::default();
    let sources: Vec<SocketAddr> = SOURCES.iter().map(|s| s.parse().unwrap()).collect();
    node.bootstrap(now, &sources[..3]);
    check(&mut node, &config, &mut memory);
    let mut input = Reader(data);
    while let Some(op) = input.byte() {
        let dt = u64::from(input.byte().unwrap_or(0));
        let src = sources[usize::from(input.byte().unwrap_or(0)) % sources.len()];
        let len =
            usize::from(input.byte().unwrap_or(0)) | usize::from(input.byte().unwrap_or(0)) << 8;
        let payload = input.bytes(len);
        now += Duration::from_millis(dt * dt * 10);
        node.handle_timeout(now);
        match op % 8 {
            0..=2 => node.handle_datagram(now, src, payload),
            3 | 4 => {
                if let Some((to, tid)) = memory.queries.pop() {
                    let bytes = if op % 8 == 3 {
                        let mut response = Response::new(id_from(payload, 0x77));
                        response.nodes = Some(nodes_from(payload.get(20..).unwrap_or(&[])));
                        if payload.len() % 3 == 0 {
                            response.token = Some(payload[..payload.len().min(8)].to_vec());
                        }
                        if payload.len() % 5 == 0 {
                            response.values =
                                Some(nodes_from(payload).into_iter().map(|n| n.addr).collect());
                        }
                        Message::response(tid, response).encode()
                    } else {
                        Message::error(tid, 201 + (dt % 4) as i64, payload).encode()
                    };
                    node.handle_datagram(now, to, &bytes);
                }
            }
            5 => {
                let token = memory.tokens.get(&src.ip()).cloned().unwrap_or_default();
                let kind = QueryKind::AnnouncePeer {
                    info_hash: id_from(payload, 0),
                    port: u16::from_le_bytes([dt as u8, payload.len() as u8]),
                    implied_port: dt % 2 == 0,
                    token,
                    seed: dt % 3 == 0,
                };
                let tid = payload.get(..2).unwrap_or(b"aa").to_vec();
                let bytes = Message::query(tid, id_from(payload.get(20..).unwrap_or(&[]), 9), kind)
                    .encode();
                node.handle_datagram(now, src, &bytes);
            }
            _ => {
                let target = id_from(payload, 0x33);
                match dt % 5 {
                    0 => drop(node.ping(now, src)),
                    1 => drop(node.find_node(now, target)),
                    2 => drop(node.get_peers(now, target)),
                    3 => drop(node.announce(now, target, Some(6881), false)),
                    _ => drop(node.bootstrap(now, &[src])),
                }
            }
        }
        check(&mut node, &config, &mut memory);
    }
    // Then time runs on: everything pending expires, and the caps still hold.
    for _ in 0..4 {
        now += Duration::from_secs(600);
        node.handle_timeout(now);
        check(&mut node, &config, &mut memory);
    }
}

/// The invariants, then drains the node's queues (checking each datagram).
fn check(node: &mut Node, config: &Config, memory: &mut Memory) {
    if let Err(e) = node.routing_table().check_invariants() {
        panic!("IPv4 routing table: {e}");
    }
    if let Err(e) = node.routing_table6().check_invariants() {
        panic!("IPv6 routing table: {e}");
    }
    assert!(node.queries_in_flight() <= config.transactions.capacity);
    assert!(node.peer_store().len() <= config.peers.max_info_hashes);
    assert!(node.peer_store().peer_count() <= config.peers.max_peers);
    assert!(node.operations_running() <= config.max_lookups * 2);
    assert!(node.transmits_queued() <= config.max_outbox);
    // Completions are always kept; they are bounded by the requests made (a few per record).
    assert!(node.events_queued() <= config.max_events + 2 * config.max_lookups + 8);
    assert!(node.rate_limiter().tracked_ips() <= config.rate_limit_max_ips);
    assert!(
        node.poll_timeout().is_some(),
        "a node always has a next deadline"
    );
    while let Some(t) = node.poll_transmit() {
        assert!(config.accepts(&t.to), "sent to an ignored address {}", t.to);
        assert!(
            t.bytes.len() <= MAX_EMITTED,
            "emitted a datagram of {} bytes",
            t.bytes.len()
        );
        let decoded = decode(&t.bytes).unwrap_or_else(|e| {
            panic!(
                "emitted a datagram that does not decode ({e}): {:?}",
                &t.bytes
            )
        });
        assert!(decoded.canonical, "emitted non-canonical bencode");
        match decoded.message.body {
            Body::Query(_) => {
                memory.queries.push((t.to, decoded.message.transaction_id));
                if memory.queries.len() > 64 {
                    memory.queries.remove(0);
                }
            }
            Body::Response(response) => {
                if let Some(token) = response.token {
                    memory.tokens.insert(t.to.ip(), token);
                }
            }
            Body::Error(_) => {}
        }
    }
    while node.poll_event().is_some() {}
}
