//! A malformed storm at a running node on loopback.
//!
//! 16 source addresses (127.0.61.1-16) send, as fast as the sockets take them, random
//! mutations of the real KRPC corpus (`tests/data/krpc`: bytes flipped, truncated,
//! spliced, garbage inserted) mixed with malformed queries that BEP 5 says must be answered
//! with error 203. The node's rate limits are lifted for this test (`Config` with no per-IP,
//! global or new-source limit): with them, a storm from 16 sources is mostly dropped unanswered,
//! which is the point of the limits but would hide whether the 203s are right.
//!
//! Checked: every answer to a malformed probe is a 203 carrying the probe's transaction id;
//! most probes are answered (UDP drops some under the storm); the node counts the rejects;
//! afterwards it answers a ping as usual. `STORM_SECONDS` (default 3) sets the duration; the
//! 30-second figure: `STORM_SECONDS=30 cargo test --release --test hardening_storm -- --nocapture`.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use btdht::driver::Dht;
use btdht::krpc::{Body, decode};
use btdht::node::Config;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Malformed queries that must get error 203, with `{t}` for the transaction id.
const PROBES: [&str; 6] = [
    // ping without an id
    "d1:ad2:xx1:ye1:q4:ping1:t7:{t}1:y1:qe",
    // find_node with a short target
    "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa6:target3:abce1:q9:find_node1:t7:{t}1:y1:qe",
    // get_peers with a short info_hash
    "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa9:info_hash2:abe1:q9:get_peers1:t7:{t}1:y1:qe",
    // announce_peer with a negative port
    "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa9:info_hash20:bbbbbbbbbbbbbbbbbbbb4:porti-1e5:token2:tke1:q13:announce_peer1:t7:{t}1:y1:qe",
    // announce_peer with a token never issued
    "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa9:info_hash20:bbbbbbbbbbbbbbbbbbbb4:porti6881e5:token2:tke1:q13:announce_peer1:t7:{t}1:y1:qe",
    // a query without arguments
    "d1:q4:ping1:t7:{t}1:y1:qe",
];

fn corpus() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/krpc");
    let mut out = Vec::new();
    for implementation in ["libtorrent", "mainline", "rtorrent"] {
        let dir = root.join(implementation);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        files.sort();
        out.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    assert!(out.len() >= 400, "the corpus has its datagrams");
    out
}

fn mutate(rng: &mut SmallRng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] = rng.random(),
            1 => bytes.truncate(at),
            2 => {
                let end = rng.random_range(at..=bytes.len());
                let slice = bytes[at..end].to_vec();
                bytes.splice(at..at, slice);
            }
            _ => {
                let garbage: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                bytes.splice(at..at, garbage);
            }
        }
    }
    bytes
}

/// A probe's transaction id: "PRB" and a counter, 7 bytes, unlike any id in the corpus.
fn probe_tid(counter: u32) -> [u8; 7] {
    let mut tid = *b"PRB\0\0\0\0";
    tid[3..].copy_from_slice(&counter.to_be_bytes());
    tid
}

fn probe(index: usize, tid: u32) -> Vec<u8> {
    let template = PROBES[index % PROBES.len()];
    let (head, tail) = template.split_once("{t}").expect("template has {t}");
    let mut out = head.as_bytes().to_vec();
    out.extend_from_slice(&probe_tid(tid));
    out.extend_from_slice(tail.as_bytes());
    out
}

#[test]
fn a_malformed_storm_gets_203s_and_leaves_the_node_serving() {
    let seconds: u64 = std::env::var("STORM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let config = Config {
        allow_private: true,
        rate_limit_per_ip: None,
        rate_limit_global: None,
        rate_limit_new_sources: None,
        ..Config::default()
    };
    let node = Dht::builder()
        .config(config)
        .bind(SocketAddr::from(([127, 0, 60, 1], 0)))
        .seed(60)
        .start()
        .expect("node starts");
    let target = node.local_addr();

    let sources: Vec<UdpSocket> = (1..=16u8)
        .map(|i| {
            let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 61, i], 0))).unwrap();
            socket.set_nonblocking(true).unwrap();
            socket
        })
        .collect();
    let corpus = corpus();
    let mut rng = SmallRng::seed_from_u64(61);
    let mut buf = [0u8; 2048];
    let (mut sent, mut probes_sent, mut probe_203s, mut wrong_answers) = (0u64, 0u64, 0u64, 0u64);
    let mut next_probe = 0u32;

    let started = Instant::now();
    let mut drain = |sources: &[UdpSocket], probe_203s: &mut u64, wrong: &mut u64| {
        for socket in sources {
            while let Ok(n) = socket.recv(&mut buf) {
                let Ok(reply) = decode(&buf[..n]) else {
                    panic!(
                        "the node sent a datagram that does not decode: {:?}",
                        &buf[..n]
                    );
                };
                let message = reply.message;
                // Answers to mutated datagrams are not judged here; only the probes'.
                if message.transaction_id.len() != 7 || !message.transaction_id.starts_with(b"PRB")
                {
                    continue;
                }
                match message.body {
                    Body::Error(e) if e.code == 203 => *probe_203s += 1,
                    _ => *wrong += 1,
                }
            }
        }
    };
    while started.elapsed() < Duration::from_secs(seconds) {
        for (i, socket) in sources.iter().enumerate() {
            for _ in 0..8 {
                let seed = &corpus[rng.random_range(0..corpus.len())];
                if socket.send_to(&mutate(&mut rng, seed), target).is_ok() {
                    sent += 1;
                }
            }
            let tid = next_probe;
            next_probe += 1;
            if socket
                .send_to(&probe(i + next_probe as usize, tid), target)
                .is_ok()
            {
                probes_sent += 1;
            }
        }
        drain(&sources, &mut probe_203s, &mut wrong_answers);
        // Let the node's socket breathe now and then so probes are not all lost in the queue.
        std::thread::yield_now();
    }
    // Collect the last answers.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        drain(&sources, &mut probe_203s, &mut wrong_answers);
        std::thread::sleep(Duration::from_millis(10));
    }

    let stats = node
        .with_timeout(Duration::from_secs(5))
        .stats()
        .expect("the node still answers its handle");
    println!(
        "storm: {seconds} s, {sent} mutated datagrams + {probes_sent} probes from 16 sources; \
         {probe_203s} probes answered 203; node rejected {}, non-canonical {}",
        stats.node.rejected_total(),
        stats.node.non_canonical
    );
    assert_eq!(wrong_answers, 0, "every answer to a probe is a 203");
    assert!(
        probe_203s * 2 >= probes_sent,
        "most probes answered: {probe_203s} of {probes_sent}"
    );
    assert!(stats.node.rejected_total() > 0);

    // Afterwards the node serves a ping as usual.
    let client = support::loopback(62).start().expect("client starts");
    let id = client
        .with_timeout(Duration::from_secs(5))
        .ping(target)
        .expect("the node answers a ping after the storm");
    assert_eq!(
        id,
        node.with_timeout(Duration::from_secs(5))
            .routing_table()
            .expect("snapshot")
            .id
    );
    client.stop().expect("client stops");
    node.stop().expect("node stops");
}
