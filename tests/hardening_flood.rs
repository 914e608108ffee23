//! Flood: one `Node` in simulated time, with the default configuration (public
//! addresses, default rate limits), receives valid queries from 100 honest sources at a modest
//! rate while (1) one source floods it as fast as it can, then (2) a flood of spoofed distinct
//! source addresses arrives. The honest sources must still get at least 95% of their answers,
//! and the tracked-IP table and every other table stay within their caps.
//!
//! The full-rate figure on real sockets is `cargo bench --bench hardening -- flood`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use btdht::krpc::{Body, Message, QueryKind, Want};
use btdht::node::{Config, Node};
use btdht::{Instant, NodeId};

/// A valid query from `n`: pings, find_nodes and get_peers in turn.
fn query(n: u64, id: NodeId) -> Vec<u8> {
    let tid = (n as u32).to_be_bytes().to_vec();
    let kind = match n % 3 {
        0 => QueryKind::Ping,
        1 => QueryKind::FindNode {
            target: NodeId([n as u8; 20]),
            want: Want::UNSPECIFIED,
        },
        _ => QueryKind::GetPeers {
            info_hash: NodeId([n as u8; 20]),
            want: Want::UNSPECIFIED,
            noseed: false,
            scrape: false,
        },
    };
    Message::query(tid, id, kind).encode()
}

/// Honest source `i` (a public address).
fn honest(i: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(20, 0, (i >> 8) as u8, i as u8)),
        6881,
    )
}

/// A spoofed source: distinct for every `n` (public addresses in 30.0.0.0/8 and beyond).
fn spoofed(n: u64) -> SocketAddr {
    let ip = Ipv4Addr::from(0x1e00_0000u32 + n as u32);
    SocketAddr::new(IpAddr::V4(ip), 1024 + (n % 50_000) as u16)
}

struct Run {
    honest_sent: u64,
    honest_answered: u64,
    flood_sent: u64,
    flood_answered: u64,
    max_tracked_ips: usize,
    max_limiter_bytes: usize,
    max_in_flight: usize,
}

/// `seconds` of simulated time: every honest source sends one query every 500 ms (2/s,
/// staggered), and `flood_per_ms` flood datagrams arrive each millisecond from `flood(n)`.
fn run(config: Config, seconds: u64, flood_per_ms: u64, flood: impl Fn(u64) -> SocketAddr) -> Run {
    let mut node = Node::new(config, NodeId([0x55; 20]), 7, Instant::ZERO);
    let mut r = Run {
        honest_sent: 0,
        honest_answered: 0,
        flood_sent: 0,
        flood_answered: 0,
        max_tracked_ips: 0,
        max_limiter_bytes: 0,
        max_in_flight: 0,
    };
    let mut n = 0u64;
    for ms in 0..seconds * 1_000 {
        let now = Instant::from_millis(1_000 + ms);
        for _ in 0..flood_per_ms {
            n += 1;
            let mut id = [0xee; 20];
            id[..8].copy_from_slice(&n.to_be_bytes());
            node.handle_datagram(now, flood(n), &query(n, NodeId(id)));
            r.flood_sent += 1;
        }
        // Honest source i speaks at ms % 500 == i * 5.
        if ms % 5 == 0 && (ms % 500) / 5 < 100 {
            let i = ((ms % 500) / 5) as u32;
            let mut id = [0x11; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            node.handle_datagram(now, honest(i), &query(ms, NodeId(id)));
            r.honest_sent += 1;
        }
        node.handle_timeout(now);
        while let Some(t) = node.poll_transmit() {
            let reply = btdht::krpc::decode(&t.bytes)
                .is_ok_and(|d| matches!(d.message.body, Body::Response(_)));
            if !reply {
                continue;
            }
            if let IpAddr::V4(v4) = t.to.ip() {
                if v4.octets()[0] == 20 {
                    r.honest_answered += 1;
                } else {
                    r.flood_answered += 1;
                }
            }
        }
        while node.poll_event().is_some() {}
        if ms % 100 == 0 {
            r.max_tracked_ips = r.max_tracked_ips.max(node.rate_limiter().tracked_ips());
            r.max_limiter_bytes = r
                .max_limiter_bytes
                .max(node.rate_limiter().approx_memory_bytes());
            r.max_in_flight = r.max_in_flight.max(node.queries_in_flight());
        }
        if ms % 1_000 == 0 {
            node.routing_table().check_invariants().unwrap();
        }
    }
    assert!(node.peer_store().len() <= node.config().peers.max_info_hashes);
    r
}

#[test]
fn one_flooding_source_does_not_starve_honest_ones() {
    // 10 simulated seconds, 20 flood queries per millisecond (20,000/s) from one address.
    let flooder = SocketAddr::from(([40, 1, 2, 3], 6881));
    let r = run(Config::default(), 10, 20, |_| flooder);
    let share = r.honest_answered as f64 / r.honest_sent as f64;
    eprintln!(
        "one source: honest {}/{} answered ({:.1}%), flood {}/{} answered",
        r.honest_answered,
        r.honest_sent,
        100.0 * share,
        r.flood_answered,
        r.flood_sent
    );
    assert!(share >= 0.95, "honest share {share}");
    // The flooder gets its burst (100) and its rate (20/s), nothing more.
    assert!(
        r.flood_answered <= 100 + 20 * 10 + 1,
        "{}",
        r.flood_answered
    );
}

#[test]
fn a_spoofed_flood_does_not_starve_honest_ones_and_stays_bounded() {
    // 10 simulated seconds, 20,000 spoofed distinct sources a second: four times the global
    // limit, and 200,000 addresses in all, three times the tracked-IP cap (65,536).
    let r = run(Config::default(), 10, 20, spoofed);
    let share = r.honest_answered as f64 / r.honest_sent as f64;
    let config = Config::default();
    eprintln!(
        "spoofed: honest {}/{} answered ({:.1}%), flood {}/{} answered, tracked IPs <= {}, \
         limiter <= {} bytes, in flight <= {}",
        r.honest_answered,
        r.honest_sent,
        100.0 * share,
        r.flood_answered,
        r.flood_sent,
        r.max_tracked_ips,
        r.max_limiter_bytes,
        r.max_in_flight
    );
    assert!(share >= 0.95, "honest share {share}");
    assert!(r.max_tracked_ips <= config.rate_limit_max_ips);
    assert!(
        r.max_limiter_bytes
            <= btdht::node::RateLimiter::memory_cap_bytes(config.rate_limit_max_ips),
        "{} bytes",
        r.max_limiter_bytes
    );
    assert!(r.max_in_flight <= config.transactions.capacity);
    // Spoofed sources get at most the new-source rate (plus its burst).
    let new = btdht::node::RateLimit::NEW_SOURCES;
    assert!(
        r.flood_answered <= u64::from(new.burst) + u64::from(new.rate) * 10 + 1,
        "{}",
        r.flood_answered
    );
}

/// Two defences against a spoofed flood, each shown alone. Without the new-source bucket the
/// light reserve still keeps honest sources (known, well under their rate) answered, but the
/// spoofed sources then take the whole global rate: the new-source bucket is what bounds the
/// work spent answering them (compare the bound asserted in the test above).
#[test]
fn without_the_new_source_bucket_honest_sources_are_served_but_the_flood_takes_the_global_rate() {
    let config = Config {
        rate_limit_new_sources: None,
        ..Config::default()
    };
    let r = run(config, 5, 20, spoofed);
    let share = r.honest_answered as f64 / r.honest_sent as f64;
    eprintln!(
        "spoofed, no new-source bucket: honest {:.1}% answered, flood {} answered",
        100.0 * share,
        r.flood_answered
    );
    assert!(share >= 0.95, "honest share {share}");
    let new = btdht::node::RateLimit::NEW_SOURCES;
    assert!(
        r.flood_answered > u64::from(new.burst) + u64::from(new.rate) * 5 + 1,
        "without the new-source bucket the flood is not held to its rate: {}",
        r.flood_answered
    );
}
