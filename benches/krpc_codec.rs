//! KRPC codec micro-benchmarks, the codec's share of one loopback UDP round trip, and the
//! user-space cost per answered query of the sans-IO cores.
//!
//! Criterion measures decode and encode of four typical messages (kept as criterion baselines,
//! so a regression shows). The same run then measures, in alternating rounds, a blocking UDP
//! round trip on 127.0.0.1 (a ~100-byte datagram to an echo thread and back) and each codec
//! operation, and prints each operation's cost as a share (%) of that round trip: the median over
//! the rounds, with the spread. Only loopback is used.
//!
//! Last comes the **hot path**: prepared query datagrams (ping, find_node, get_peers,
//! announce_peer) from 10,000 distinct loopback sources are fed, on a simulated clock, into a
//! warmed-up [`Node`] and a [`BootstrapServer`] with a 100,000-node pool (and, as `bootstrap1m`,
//! one with a full pool of one million public nodes, half of them BEP 42-consistent), exactly
//! as a driver
//! does. The `node/*_full` and `node/get_peers_50` workloads load the node as
//! `benches/throughput.sh` loads `btdht node` for its `nodefull` runs: a full routing table (8
//! nodes sharing each prefix length 0 to 20 with its id, restored as from a state file) and 50
//! stored peers for one info-hash, and send read-only queries as `btdht bench` does; the driver
//! does (`handle_timeout` when due, `handle_datagram`, drain `poll_transmit` and the events),
//! and every query must be answered. It prints nanoseconds per query, as a ratio against the
//! same run's baseline (copying each datagram into a reply buffer and through an outbox, the
//! user-space work of a raw echo server) and as a share of a loopback round trip, over
//! alternating rounds.
//!
//! `cargo bench --bench krpc_codec` runs everything; `cargo bench --bench krpc_codec --
//! --hot-path [--workload NAME] [--queries N] [--rounds N]` runs only the hot path. For
//! instruction counts, run the bench binary under `valgrind --tool=callgrind
//! --toggle-collect='krpc_codec::feed'` (the timed loop) with `--hot-path --rounds 1 --queries
//! 5000 --workload node/ping` and divide the collected count by the queries (e.g. `--workload
//! bootstrap1m/find_node` for a full-pool bootstrap answer).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock
#![allow(missing_docs)] // criterion_group! makes an undocumented public function

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use btdht::bootstrap::{BootstrapConfig, BootstrapServer, Pools};
use btdht::krpc::{Body, Message, QueryKind, Response, Want, decode};
use btdht::node::{Config, Node, RateLimit};
use btdht::routing::{Liveness, Snapshot, SnapshotEntry};
use btdht::{Endpoint, NodeId, NodeInfo, Transmit};
use criterion::{Criterion, Throughput, criterion_group};
use parking_lot::RwLock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Rounds of the alternating share measurement (at least 5, so that one noisy round does not
/// make the median).
const ROUNDS: usize = 7;
/// Round trips per round.
const ROUND_TRIPS: u32 = 2_000;
/// Wall time spent on each codec operation per round.
const CODEC_TIME: Duration = Duration::from_millis(40);
/// Size of the echoed datagram: about a ping query.
const DATAGRAM: usize = 100;

fn id(seed: u8) -> NodeId {
    let mut bytes = [0u8; 20];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    NodeId(bytes)
}

fn v4(i: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(0x0a00_0000 + i),
        6881 + i as u16,
    ))
}

/// The four messages measured, by name.
fn messages() -> Vec<(&'static str, Message)> {
    let mut ping = Message::query(b"aa".to_vec(), id(1), QueryKind::Ping);
    ping.version = Some(b"BT\x00\x01".to_vec());

    let mut find_node = Response::new(id(2));
    find_node.nodes = Some(
        (0..8)
            .map(|i| NodeInfo::new(id(10 + i as u8), v4(i)))
            .collect(),
    );

    let mut get_peers = Response::new(id(3));
    get_peers.token = Some(b"\x01\x02\x03\x04\x05\x06\x07\x08".to_vec());
    get_peers.values = Some((0..50).map(v4).collect());

    let mut samples = Response::new(id(4));
    samples.interval = Some(21_600);
    samples.num = Some(1_234);
    samples.samples = Some((0..20).map(|i| id(100 + i)).collect());

    let reply = |r| {
        let mut m = Message::response(b"aa".to_vec(), r);
        m.version = Some(b"BT\x00\x01".to_vec());
        m
    };
    vec![
        ("ping_query", ping),
        ("find_node_reply_8_nodes", reply(find_node)),
        ("get_peers_reply_50_values", reply(get_peers)),
        ("sample_infohashes_reply_20", reply(samples)),
    ]
}

fn codec(c: &mut Criterion) {
    for (name, message) in messages() {
        let bytes = message.encode();
        assert_eq!(decode(&bytes).expect("decodes").message, message);
        let mut group = c.benchmark_group(format!("krpc/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("decode", |b| b.iter(|| decode(black_box(&bytes))));
        let mut out = Vec::with_capacity(2048);
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                black_box(&message).encode_into(&mut out);
                black_box(out.len())
            })
        });
        group.finish();
    }
}

/// A blocking echo pair on 127.0.0.1: an echo thread and the client socket.
struct Loopback {
    client: UdpSocket,
    echo: SocketAddr,
    thread: Option<thread::JoinHandle<()>>,
}

impl Loopback {
    fn new() -> Self {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind echo socket");
        let echo = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind client socket");
        client.connect(echo).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                if n == 0 {
                    break; // the stop datagram
                }
                let _ = server.send_to(&buf[..n], from);
            }
        });
        Loopback {
            client,
            echo,
            thread: Some(thread),
        }
    }

    /// One blocking round trip of a `DATAGRAM`-byte payload.
    fn round_trip(&self, payload: &[u8], buf: &mut [u8]) {
        self.client.send(payload).expect("send");
        let n = self.client.recv(buf).expect("echo answers within 2 s");
        assert_eq!(n, payload.len());
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = self.client.send_to(&[], self.echo);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn udp_round_trip(c: &mut Criterion) {
    let loopback = Loopback::new();
    let payload = [0x5au8; DATAGRAM];
    let mut buf = [0u8; 2048];
    let mut group = c.benchmark_group("udp_loopback");
    group.sample_size(20);
    group.bench_function("round_trip_100B", |b| {
        b.iter(|| loopback.round_trip(&payload, &mut buf))
    });
    group.finish();
}

/// Nanoseconds per call of `op`, run for about `CODEC_TIME`.
fn time_op(mut op: impl FnMut()) -> f64 {
    let mut iterations = 0u64;
    let start = Instant::now();
    let mut elapsed;
    loop {
        for _ in 0..64 {
            op();
        }
        iterations += 64;
        elapsed = start.elapsed();
        if elapsed >= CODEC_TIME {
            break;
        }
    }
    elapsed.as_nanos() as f64 / iterations as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Alternates round trips and codec operations for `ROUNDS` rounds and prints each
/// operation's cost as a share of one round trip.
fn shares(rounds: usize, round_trips: u32) {
    let loopback = Loopback::new();
    let payload = [0x5au8; DATAGRAM];
    let mut buf = [0u8; 2048];
    for _ in 0..200 {
        loopback.round_trip(&payload, &mut buf); // warm up
    }
    let messages = messages();
    let encoded: Vec<Vec<u8>> = messages.iter().map(|(_, m)| m.encode()).collect();
    let ops = messages.len() * 2;
    let mut rtt = Vec::with_capacity(rounds);
    let mut ratios = vec![Vec::with_capacity(rounds); ops];
    let mut nanos = vec![Vec::with_capacity(rounds); ops];
    let mut out = Vec::with_capacity(2048);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..round_trips {
            loopback.round_trip(&payload, &mut buf);
        }
        let round_trip = start.elapsed().as_nanos() as f64 / f64::from(round_trips);
        rtt.push(round_trip);
        for (i, ((_, message), bytes)) in messages.iter().zip(&encoded).enumerate() {
            let decode_ns = time_op(|| {
                black_box(decode(black_box(bytes)).is_ok());
            });
            let encode_ns = time_op(|| {
                out.clear();
                black_box(message).encode_into(&mut out);
                black_box(out.len());
            });
            for (slot, ns) in [(2 * i, decode_ns), (2 * i + 1, encode_ns)] {
                nanos[slot].push(ns);
                ratios[slot].push(ns / round_trip);
            }
        }
    }
    println!();
    println!(
        "KRPC codec cost as a share of one loopback UDP round trip ({DATAGRAM}-byte datagram, \
         blocking send+recv, echo thread on 127.0.0.1)"
    );
    println!(
        "{rounds} alternating rounds of {round_trips} round trips; median (min-max) over rounds"
    );
    println!(
        "round trip: {:.1} us median ({:.1}-{:.1})",
        median(&mut rtt.clone()) / 1e3,
        rtt.iter().copied().fold(f64::INFINITY, f64::min) / 1e3,
        rtt.iter().copied().fold(0.0, f64::max) / 1e3
    );
    println!();
    println!("| message | bytes | op | ns/op | share of round trip |");
    println!("| --- | ---: | --- | ---: | ---: |");
    for (i, ((name, _), bytes)) in messages.iter().zip(&encoded).enumerate() {
        for (slot, op) in [(2 * i, "decode"), (2 * i + 1, "encode")] {
            let share = &mut ratios[slot];
            let lo = share.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = share.iter().copied().fold(0.0, f64::max);
            println!(
                "| {name} | {} | {op} | {:.0} | {:.2}% ({:.2}-{:.2}) |",
                bytes.len(),
                median(&mut nanos[slot]),
                median(share) * 100.0,
                lo * 100.0,
                hi * 100.0
            );
        }
    }
}

// --- the hot path: queries into the sans-IO cores ------------------------------------------

/// Distinct source addresses (and node ids) of the hot-path queries.
const HOT_SOURCES: u32 = 10_000;
/// Queries per workload per round.
const HOT_QUERIES: usize = 50_000;
/// Rounds of the hot-path measurement.
const HOT_ROUNDS: usize = 5;
/// Simulated time between two datagrams (100,000 queries per second).
const HOT_STEP: Duration = Duration::from_micros(10);
/// Nodes in the bootstrap server's pool.
const POOL_NODES: u32 = 100_000;
/// Nodes in the full pool of the `bootstrap1m` workloads.
const FULL_POOL_NODES: u32 = 1_000_000;
/// Info-hashes announced to (the peer store stays small and bounded).
const ANNOUNCED_HASHES: usize = 1_000;
/// The deepest prefix length of the full node's table (one bucket of 8 per length up to it).
const FULL_TABLE_DEPTH: usize = 20;
/// Peers stored for [`STORED_HASH`] in the full node.
const STORED_PEERS: u32 = 50;
/// The info-hash the full node stores [`STORED_PEERS`] peers for.
const STORED_HASH: NodeId = NodeId([0x3c; 20]);

/// Which core a workload drives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CoreKind {
    Node,
    /// A node with a full routing table and [`STORED_PEERS`] peers for [`STORED_HASH`], as
    /// `benches/throughput.sh` starts it.
    NodeFull,
    Bootstrap,
    /// A bootstrap server with a full pool of one million public nodes, half of them with
    /// BEP 42-consistent ids, as on a busy production server.
    BootstrapFull,
}

/// Which query a workload sends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum QueryMix {
    /// `ping` with BEP 43 `ro = 1`, like `btdht bench`: no routing-table work.
    PingReadOnly,
    Ping,
    FindNode,
    /// `find_node` for random targets, `ro = 1`.
    FindNodeReadOnly,
    GetPeers,
    /// `get_peers` for random info-hashes (no values), `ro = 1`.
    GetPeersReadOnly,
    /// `get_peers` for [`STORED_HASH`] (answered with its values), `ro = 1`.
    GetPeersStoredReadOnly,
    AnnouncePeer,
}

impl QueryMix {
    /// Whether the queries carry BEP 43 `ro = 1`, as `btdht bench` sends them.
    fn read_only(self) -> bool {
        matches!(
            self,
            QueryMix::PingReadOnly
                | QueryMix::FindNodeReadOnly
                | QueryMix::GetPeersReadOnly
                | QueryMix::GetPeersStoredReadOnly
        )
    }
}

const WORKLOADS: [(&str, CoreKind, QueryMix); 16] = [
    ("node/ping_ro", CoreKind::Node, QueryMix::PingReadOnly),
    ("node/ping", CoreKind::Node, QueryMix::Ping),
    ("node/find_node", CoreKind::Node, QueryMix::FindNode),
    ("node/get_peers", CoreKind::Node, QueryMix::GetPeers),
    ("node/announce_peer", CoreKind::Node, QueryMix::AnnouncePeer),
    (
        "node/ping_ro_full",
        CoreKind::NodeFull,
        QueryMix::PingReadOnly,
    ),
    (
        "node/find_node_full",
        CoreKind::NodeFull,
        QueryMix::FindNodeReadOnly,
    ),
    (
        "node/get_peers_full",
        CoreKind::NodeFull,
        QueryMix::GetPeersReadOnly,
    ),
    (
        "node/get_peers_50",
        CoreKind::NodeFull,
        QueryMix::GetPeersStoredReadOnly,
    ),
    (
        "bootstrap/ping_ro",
        CoreKind::Bootstrap,
        QueryMix::PingReadOnly,
    ),
    ("bootstrap/ping", CoreKind::Bootstrap, QueryMix::Ping),
    (
        "bootstrap/find_node",
        CoreKind::Bootstrap,
        QueryMix::FindNode,
    ),
    (
        "bootstrap/get_peers",
        CoreKind::Bootstrap,
        QueryMix::GetPeers,
    ),
    (
        "bootstrap/announce_peer",
        CoreKind::Bootstrap,
        QueryMix::AnnouncePeer,
    ),
    (
        "bootstrap1m/find_node",
        CoreKind::BootstrapFull,
        QueryMix::FindNode,
    ),
    (
        "bootstrap1m/get_peers",
        CoreKind::BootstrapFull,
        QueryMix::GetPeers,
    ),
];

/// Source `i`: `127.1.x.y:6881`, one IP each.
fn source(i: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x7f01_0000 + i), 6881))
}

/// The source of the `j`th query: a stride through all sources, so that consecutive queries
/// come from different ones.
fn source_of(j: usize) -> u32 {
    ((j as u64 * 7_919) % u64::from(HOT_SOURCES)) as u32
}

/// A core as the driver sees it, with the counter of queries it answered.
trait Core: Endpoint {
    fn answered(&self) -> u64;
    /// Drains the events the core reported (the driver hands them to the hook thread);
    /// returns how many.
    fn drain_events(&mut self) -> usize;
}

impl Core for Node {
    fn answered(&self) -> u64 {
        self.stats().responses_out + self.stats().errors_out.iter().sum::<u64>()
    }

    fn drain_events(&mut self) -> usize {
        std::iter::from_fn(|| self.poll_event()).count()
    }
}

impl Core for BootstrapServer {
    fn answered(&self) -> u64 {
        self.stats().answered
    }

    fn drain_events(&mut self) -> usize {
        0 // The bootstrap server reports no events.
    }
}

/// A warmed-up core, the datagrams to feed it and the simulated time to start at.
struct Prepared {
    core: Box<dyn Core>,
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    now: btdht::Instant,
}

fn node_config() -> Config {
    Config {
        allow_private: true,
        // The limiter runs (it is part of the per-query work) but never refuses.
        rate_limit_per_ip: Some(RateLimit {
            rate: 1_000,
            burst: 1_000,
        }),
        rate_limit_global: Some(RateLimit {
            rate: 10_000_000,
            burst: 10_000_000,
        }),
        rate_limit_new_sources: Some(RateLimit {
            rate: 10_000_000,
            burst: 10_000_000,
        }),
        ..Config::default()
    }
}

fn bootstrap_config() -> BootstrapConfig {
    BootstrapConfig {
        allow_private: true,
        rate_limit_per_ip: Some(RateLimit {
            rate: 1_000,
            burst: 1_000,
        }),
        rate_limit_global: Some(RateLimit {
            rate: 10_000_000,
            burst: 10_000_000,
        }),
        ..BootstrapConfig::default()
    }
}

/// Feeds one datagram as a driver does and drains the outbox into `replies` (if given).
fn step(
    core: &mut dyn Core,
    now: btdht::Instant,
    from: SocketAddr,
    bytes: &[u8],
    replies: Option<&mut Vec<Transmit>>,
) {
    if core.poll_timeout().is_some_and(|t| t <= now) {
        core.handle_timeout(now);
    }
    core.handle_datagram(now, from, bytes);
    core.drain_events();
    match replies {
        Some(replies) => replies.extend(std::iter::from_fn(|| core.poll_transmit())),
        None => while core.poll_transmit().is_some() {},
    }
}

/// A node with id `own` whose table is full (8 nodes on `127.3.x.y` sharing exactly `d`
/// leading bits with `own` for every `d` up to [`FULL_TABLE_DEPTH`], restored as from a state
/// file) and which stores [`STORED_PEERS`] peers (one per host) for [`STORED_HASH`].
fn full_node(own: NodeId, now: btdht::Instant, rng: &mut SmallRng) -> Node {
    let mut node = Node::new(node_config(), own, 7, now);
    let mut nodes = Vec::new();
    for depth in 0..=FULL_TABLE_DEPTH {
        for _ in 0..8 {
            let mut id = NodeId::random(rng).0;
            for bit in 0..=depth {
                let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
                let own_bit = own.0[byte] & mask;
                let wanted = if bit == depth {
                    own_bit ^ mask
                } else {
                    own_bit
                };
                id[byte] = (id[byte] & !mask) | wanted;
            }
            let i = nodes.len() as u32;
            let ip = Ipv4Addr::from(0x7f03_0000 + (i / 250) * 256 + i % 250 + 1);
            nodes.push(SnapshotEntry {
                node: NodeInfo::new(NodeId(id), SocketAddr::V4(SocketAddrV4::new(ip, 6881))),
                liveness: Liveness::Questionable,
                since_response: Some(Duration::ZERO),
                failed_queries: 0,
            });
        }
    }
    let count = nodes.len();
    let restored = node.restore_routing(now, &Snapshot { own_id: own, nodes });
    assert_eq!(restored, count, "every node of the full table is an entry");
    for i in 0..STORED_PEERS {
        let peer = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x7f04_0001 + i), 6881));
        assert!(node.restore_peer(now, STORED_HASH, peer, false));
    }
    node
}

/// Builds `core`, warms it up and prepares `queries` datagrams of `mix` for it.
fn prepare(kind: CoreKind, mix: QueryMix, queries: usize) -> Prepared {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let own = NodeId::random(&mut rng);
    let ids: Vec<NodeId> = (0..HOT_SOURCES).map(|_| NodeId::random(&mut rng)).collect();
    let by_addr: HashMap<SocketAddr, NodeId> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (source(i as u32), *id))
        .collect();
    let mut now = btdht::Instant::from_secs(1);
    let mut core: Box<dyn Core> = match kind {
        CoreKind::Node => Box::new(Node::new(node_config(), own, 7, now)),
        CoreKind::NodeFull => Box::new(full_node(own, now, &mut rng)),
        CoreKind::Bootstrap | CoreKind::BootstrapFull => {
            let full = kind == CoreKind::BootstrapFull;
            let size = if full { FULL_POOL_NODES } else { POOL_NODES };
            let mut pools = Pools::new(size as usize, 0x1234_5678);
            let pool_now = BootstrapServer::pool_time(now);
            for i in 0..size {
                let node = if full {
                    // Public addresses (never contacted: the hot path drops what the core
                    // sends), spread over the IPv4 space.
                    let ip =
                        Ipv4Addr::from(0x0100_0000 + (i.wrapping_mul(0x9e37_79b1) & 0x7fff_ffff));
                    let id = if i % 2 == 0 {
                        NodeId::bep42(ip.into(), rng.random(), &mut rng)
                    } else {
                        NodeId::random(&mut rng)
                    };
                    NodeInfo::new(id, SocketAddr::V4(SocketAddrV4::new(ip, 6881)))
                } else {
                    let ip = Ipv4Addr::from(0x7f40_0000 + i);
                    NodeInfo::new(
                        NodeId::random(&mut rng),
                        SocketAddr::V4(SocketAddrV4::new(ip, 6881)),
                    )
                };
                pools.insert(node, pool_now);
            }
            let pools = Arc::new(RwLock::new(pools));
            let mut server = BootstrapServer::new(bootstrap_config(), own, 0xabcd, 7, now, pools);
            server.handle_timeout(now); // builds the pool's sorted index
            while server.poll_transmit().is_some() {}
            Box::new(server)
        }
    };
    // Warm-up: every source pings (not read-only) and asks get_peers (for its token). The
    // node's own queries (pings of candidates, refreshes) are answered by their targets, so
    // its routing table fills up as on a live node; the bootstrap server's verification
    // pings go unanswered, so the sources stay unverified askers as on a busy server.
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new(); HOT_SOURCES as usize];
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let from = source(i as u32);
        for query in [
            QueryKind::Ping,
            QueryKind::GetPeers {
                info_hash: NodeId::random(&mut rng),
                want: Want::UNSPECIFIED,
                noseed: false,
                scrape: false,
            },
        ] {
            now += HOT_STEP;
            let bytes = Message::query(b"wu".to_vec(), *id, query).encode();
            step(core.as_mut(), now, from, &bytes, Some(&mut out));
        }
        for transmit in out.drain(..) {
            let Ok(decoded) = decode(&transmit.bytes) else {
                continue;
            };
            let message = decoded.message;
            match message.body {
                Body::Response(r) if transmit.to == from => {
                    if let Some(token) = r.token {
                        tokens[i] = token;
                    }
                }
                Body::Query(_) if matches!(kind, CoreKind::Node | CoreKind::NodeFull) => {
                    if let Some(id) = by_addr.get(&transmit.to) {
                        let reply =
                            Message::response(message.transaction_id, Response::new(*id)).encode();
                        now += HOT_STEP;
                        step(core.as_mut(), now, transmit.to, &reply, None);
                    }
                }
                _ => {}
            }
        }
    }
    let hashes: Vec<NodeId> = (0..ANNOUNCED_HASHES)
        .map(|_| NodeId::random(&mut rng))
        .collect();
    let datagrams = (0..queries)
        .map(|j| {
            let s = source_of(j);
            let query = match mix {
                QueryMix::PingReadOnly | QueryMix::Ping => QueryKind::Ping,
                QueryMix::FindNode | QueryMix::FindNodeReadOnly => QueryKind::FindNode {
                    target: NodeId::random(&mut rng),
                    want: Want::UNSPECIFIED,
                },
                QueryMix::GetPeers | QueryMix::GetPeersReadOnly => QueryKind::GetPeers {
                    info_hash: NodeId::random(&mut rng),
                    want: Want::UNSPECIFIED,
                    noseed: false,
                    scrape: false,
                },
                QueryMix::GetPeersStoredReadOnly => QueryKind::GetPeers {
                    info_hash: STORED_HASH,
                    want: Want::UNSPECIFIED,
                    noseed: false,
                    scrape: false,
                },
                QueryMix::AnnouncePeer => QueryKind::AnnouncePeer {
                    info_hash: hashes[rng.random_range(0..hashes.len())],
                    port: 6881,
                    implied_port: false,
                    token: tokens[s as usize].clone(),
                    seed: false,
                },
            };
            let t = (j as u16).to_be_bytes().to_vec();
            let mut message = Message::query(t, ids[s as usize], query);
            message.version = Some(b"LT\x01\x02".to_vec());
            message.read_only = mix.read_only();
            (source(s), message.encode())
        })
        .collect();
    Prepared {
        core,
        datagrams,
        now: now + Duration::from_secs(1),
    }
}

/// The timed loop: feeds every datagram as a driver does, one `HOT_STEP` apart, and drains
/// the replies and events. Returns the bytes sent (plus the events), so that nothing is
/// optimised away.
#[inline(never)]
fn feed(
    core: &mut dyn Core,
    datagrams: &[(SocketAddr, Vec<u8>)],
    mut now: btdht::Instant,
) -> usize {
    let mut sent = 0;
    for (from, bytes) in datagrams {
        now += HOT_STEP;
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        core.handle_datagram(now, *from, bytes);
        while let Some(transmit) = core.poll_transmit() {
            sent += transmit.bytes.len();
            // As the runtime does once the datagram is sent.
            core.recycle(transmit.bytes);
        }
        sent += core.drain_events();
    }
    sent
}

/// The baseline: what a raw echo server does in user space, per datagram: copy it into a
/// reply buffer, through an outbox, and drop it once "sent".
#[inline(never)]
fn copy_baseline(datagrams: &[(SocketAddr, Vec<u8>)]) -> usize {
    let mut outbox: VecDeque<Transmit> = VecDeque::new();
    let mut sent = 0;
    for (from, bytes) in datagrams {
        outbox.push_back(Transmit::new(*from, black_box(bytes).to_vec()));
        while let Some(transmit) = outbox.pop_front() {
            sent += black_box(transmit).bytes.len();
        }
    }
    sent
}

/// Nanoseconds per query of one workload (a fresh core each time; preparation not timed).
fn time_workload(kind: CoreKind, mix: QueryMix, queries: usize) -> f64 {
    let Prepared {
        mut core,
        datagrams,
        now,
    } = prepare(kind, mix, queries);
    let before = core.answered();
    let start = Instant::now();
    black_box(feed(core.as_mut(), &datagrams, now));
    let ns = start.elapsed().as_nanos() as f64 / queries as f64;
    let answered = core.answered() - before;
    assert_eq!(
        answered, queries as u64,
        "{kind:?}/{mix:?}: every query must be answered"
    );
    ns
}

/// Nanoseconds per datagram of the baseline, on `queries` ping datagrams.
fn time_copy(queries: usize) -> f64 {
    let datagrams: Vec<_> = (0..queries)
        .map(|j| {
            let t = (j as u16).to_be_bytes().to_vec();
            let mut message = Message::query(t, NodeId([7; 20]), QueryKind::Ping);
            message.version = Some(b"LT\x01\x02".to_vec());
            (source(source_of(j)), message.encode())
        })
        .collect();
    let start = Instant::now();
    black_box(copy_baseline(&datagrams));
    start.elapsed().as_nanos() as f64 / queries as f64
}

/// One loopback UDP round trip, in nanoseconds (median of a few hundred).
fn time_round_trip(loopback: &Loopback) -> f64 {
    let payload = [0x5au8; DATAGRAM];
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for _ in 0..500 {
        loopback.round_trip(&payload, &mut buf);
    }
    start.elapsed().as_nanos() as f64 / 500.0
}

fn spread(values: &[f64]) -> (f64, f64) {
    (
        values.iter().copied().fold(f64::INFINITY, f64::min),
        values.iter().copied().fold(0.0, f64::max),
    )
}

/// Alternates the baseline, a round trip and every selected workload for `rounds` rounds, and
/// prints nanoseconds per query with the ratios.
fn hot_path(rounds: usize, queries: usize, only: Option<&str>) {
    let workloads: Vec<_> = WORKLOADS
        .iter()
        .filter(|(name, _, _)| only.is_none_or(|o| *name == o))
        .collect();
    assert!(!workloads.is_empty(), "no workload named {only:?}");
    let loopback = Loopback::new();
    let mut copy = Vec::new();
    let mut rtt = Vec::new();
    let mut nanos = vec![Vec::new(); workloads.len()];
    for _ in 0..rounds {
        copy.push(time_copy(queries));
        rtt.push(time_round_trip(&loopback));
        for (slot, (_, kind, mix)) in workloads.iter().enumerate() {
            nanos[slot].push(time_workload(*kind, *mix, queries));
        }
    }
    println!();
    println!(
        "Hot path: user-space ns per answered query of the sans-IO cores ({queries} queries from \
         {HOT_SOURCES} sources per workload, simulated clock)"
    );
    let (lo, hi) = spread(&copy);
    println!(
        "{rounds} alternating rounds; median (min-max). Baseline (copy into an outbox): \
         {:.1} ns ({lo:.1}-{hi:.1}); loopback round trip {:.1} us",
        median(&mut copy.clone()),
        median(&mut rtt.clone()) / 1e3
    );
    println!();
    println!("| workload | ns/query | x baseline | share of round trip |");
    println!("| --- | ---: | ---: | ---: |");
    for (slot, (name, _, _)) in workloads.iter().enumerate() {
        let ns = &nanos[slot];
        let ratios: Vec<f64> = ns.iter().zip(&copy).map(|(n, c)| n / c).collect();
        let shares: Vec<f64> = ns.iter().zip(&rtt).map(|(n, r)| 100.0 * n / r).collect();
        let (lo, hi) = spread(ns);
        let (rlo, rhi) = spread(&ratios);
        println!(
            "| {name} | {:.0} ({lo:.0}-{hi:.0}) | {:.1} ({rlo:.1}-{rhi:.1}) | {:.1}% |",
            median(&mut ns.clone()),
            median(&mut ratios.clone()),
            median(&mut shares.clone()),
        );
    }
}

/// The value after `flag` on the command line.
fn arg_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

criterion_group!(benches, codec, udp_round_trip);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == "--hot-path") {
        let number = |flag, default| {
            arg_value(&args, flag).map_or(default, |v| v.parse().expect("a number"))
        };
        let workload = arg_value(&args, "--workload");
        hot_path(
            number("--rounds", HOT_ROUNDS),
            number("--queries", HOT_QUERIES),
            workload.as_deref(),
        );
        return;
    }
    benches();
    // `cargo bench` passes --bench; `cargo test --benches` does not: then only a quick pass.
    if args.iter().any(|arg| arg == "--bench") {
        shares(ROUNDS, ROUND_TRIPS);
        hot_path(HOT_ROUNDS, HOT_QUERIES, None);
    } else {
        shares(1, 50);
        hot_path(1, 2_000, None);
    }
    Criterion::default().configure_from_args().final_summary();
}
