//! KRPC codec micro-benchmarks, and the codec's share of one loopback UDP round trip.
//!
//! Criterion measures decode and encode of four typical messages (kept as criterion baselines,
//! so a regression shows). The same run then measures, in alternating rounds, a blocking UDP
//! round trip on 127.0.0.1 (a ~100-byte datagram to an echo thread and back) and each codec
//! operation, and prints each operation's cost as a share (%) of that round trip: the median over
//! the rounds, with the spread. Only loopback is used.
//!
//! `cargo bench --bench krpc_codec`

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use btdht::krpc::{Message, QueryKind, Response, decode};
use btdht::{NodeId, NodeInfo};
use criterion::{Criterion, Throughput, criterion_group};

/// Rounds of the alternating share measurement (benchmarks.md asks for at least 5).
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

criterion_group!(benches, codec, udp_round_trip);

fn main() {
    benches();
    // `cargo bench` passes --bench; `cargo test --benches` does not: then only a quick pass.
    if std::env::args().any(|arg| arg == "--bench") {
        shares(ROUNDS, ROUND_TRIPS);
    } else {
        shares(1, 50);
    }
    Criterion::default().configure_from_args().final_summary();
}
