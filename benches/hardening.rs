//! The hardening figures that are too heavy for `cargo test`: memory and flood.
//!
//! `cargo bench --bench hardening -- memory`: 1 million distinct announces from 100,000
//! sources (each with the token of its own get_peers) over 100,000 info-hashes into one `Node`
//! in simulated time, with
//! the default caps; prints the store's size, its own memory estimate, the most sources the
//! rate limiter tracked, and the process's peak RSS (VmHWM) before and after, as JSON.
//!
//! `cargo bench --bench hardening -- flood`: a real node (the driver, default rate limits) on
//! 127.0.70.1; 100 legitimate sources (127.0.72.1-100) each send 5 pings/s while a flood runs
//! as fast as one thread can send, first from one source (127.0.71.1), then spread over 1,000
//! distinct loopback sources (127.0.73-76.x, standing in for spoofing). Prints, per phase, the
//! share of legitimate pings answered, the flood's sent and answered counts, the node's
//! rate-limited count and the peak RSS, as JSON. `FLOOD_SECONDS` (default 10) per phase.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

#[path = "../tests/support/announce_load.rs"]
mod announce_load;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use btdht::Dht;
use btdht::NodeId;
use btdht::krpc::{Message, QueryKind};
use btdht::node::Config;

fn memory() {
    let before = announce_load::peak_rss_kib();
    let started = std::time::Instant::now();
    let config = Config::default();
    let report = announce_load::run_announces(config.clone(), 100_000, 10, 100_000);
    let after = announce_load::peak_rss_kib();
    assert_eq!(report.announces, 1_000_000);
    assert!(report.info_hashes <= config.peers.max_info_hashes);
    assert!(report.peers <= config.peers.max_peers);
    println!(
        "{{\"bench\":\"memory\",\"announces\":{},\"acknowledged\":{},\"info_hashes\":{},\
         \"peers\":{},\"store_estimate_bytes\":{},\"max_tracked_ips\":{},\"max_in_flight\":{},\
         \"simulated_s\":{:.1},\"wall_s\":{:.1},\"peak_rss_kib_before\":{},\"peak_rss_kib\":{}}}",
        report.announces,
        report.acknowledged,
        report.info_hashes,
        report.peers,
        report.store_bytes,
        report.max_tracked_ips,
        report.max_in_flight,
        report.simulated.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        before.unwrap_or(0),
        after.unwrap_or(0)
    );
}

fn ping_bytes(tid: &[u8]) -> Vec<u8> {
    Message::query(tid.to_vec(), NodeId([7; 20]), QueryKind::Ping).encode()
}

/// Binds `count` non-blocking sockets on consecutive loopback addresses from 127.0.`c`.1.
fn sources(first_c: u8, count: usize) -> Vec<UdpSocket> {
    (0..count)
        .map(|i| {
            let ip = [127, 0, first_c + (i / 250) as u8, 1 + (i % 250) as u8];
            let socket =
                UdpSocket::bind(SocketAddr::from((ip, 0))).expect("bind a loopback source");
            socket.set_nonblocking(true).expect("non-blocking");
            socket
        })
        .collect()
}

/// Counts the replies waiting on `socket` (the node's own verification pings to unknown
/// sources are not replies).
fn drain(socket: &UdpSocket, buf: &mut [u8]) -> u64 {
    let mut n = 0;
    while let Ok(len) = socket.recv(buf) {
        let reply = btdht::krpc::decode(&buf[..len]).map(|d| d.message.body);
        n += u64::from(matches!(reply, Ok(btdht::krpc::Body::Response(_))));
    }
    n
}

/// One phase: legitimate pings at 5/s from 100 sources while `flooders` send as fast as the
/// loop can. Returns (legitimate sent, legitimate answered, flood sent, flood answered).
fn flood_phase(target: SocketAddr, flooders: &[UdpSocket], seconds: u64) -> (u64, u64, u64, u64) {
    let legit = sources(72, 100);
    let mut buf = [0u8; 1500];
    let (mut legit_sent, mut legit_answered, mut flood_sent, mut flood_answered) = (0, 0, 0, 0);
    let started = Instant::now();
    let mut next_legit = started;
    let mut tick = 0u32;
    while started.elapsed() < Duration::from_secs(seconds) {
        // 100 sources x 5/s: one round of legitimate pings every 200 ms.
        if Instant::now() >= next_legit {
            next_legit += Duration::from_millis(200);
            tick += 1;
            for socket in &legit {
                if socket
                    .send_to(&ping_bytes(&tick.to_be_bytes()), target)
                    .is_ok()
                {
                    legit_sent += 1;
                }
            }
        }
        for socket in flooders {
            for _ in 0..4 {
                if socket.send_to(&ping_bytes(b"fl"), target).is_ok() {
                    flood_sent += 1;
                }
            }
            flood_answered += drain(socket, &mut buf);
        }
        for socket in &legit {
            legit_answered += drain(socket, &mut buf);
        }
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        for socket in &legit {
            legit_answered += drain(socket, &mut buf);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (legit_sent, legit_answered, flood_sent, flood_answered)
}

fn flood() {
    let seconds: u64 = std::env::var("FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let config = Config {
        allow_private: true,
        ..Config::default()
    };
    for (phase, flooders) in [
        ("one_source", sources(71, 1)),
        ("1000_sources", sources(73, 1000)),
    ] {
        let node = Dht::builder()
            .config(config.clone())
            .bind(SocketAddr::from(([127, 0, 70, 1], 0)))
            .seed(70)
            .start()
            .expect("node starts");
        let (legit_sent, legit_answered, flood_sent, flood_answered) =
            flood_phase(node.local_addr(), &flooders, seconds);
        let stats = node
            .with_timeout(Duration::from_secs(5))
            .stats()
            .expect("stats");
        println!(
            "{{\"bench\":\"flood\",\"phase\":\"{phase}\",\"seconds\":{seconds},\
             \"legit_sent\":{legit_sent},\"legit_answered\":{legit_answered},\
             \"legit_share\":{:.4},\"flood_sent\":{flood_sent},\"flood_answered\":{flood_answered},\
             \"rate_limited\":{},\"peak_rss_kib\":{}}}",
            legit_answered as f64 / legit_sent.max(1) as f64,
            stats.node.rate_limited,
            announce_load::peak_rss_kib().unwrap_or(0)
        );
        node.stop().expect("node stops");
    }
}

fn main() {
    // cargo bench passes `--bench`; the first other argument picks the figure.
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match which.first().map(String::as_str) {
        None | Some("memory") => memory(),
        Some("flood") => flood(),
        Some(other) => {
            eprintln!("unknown figure {other}; known: memory, flood");
            std::process::exit(2);
        }
    }
}
