//! Bounded memory: announces from many sources into one `Node` in simulated time,
//! each source first getting its token with a get_peers, as a real peer does. Shared by
//! `tests/hardening_memory.rs` (scaled down) and `benches/hardening.rs` (1 million announces
//! from 100,000 sources).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use btdht::krpc::{Body, Message, QueryKind, Want, decode};
use btdht::node::{Config, Node};
use btdht::{Instant, NodeId};

/// What a run did, and the largest sizes seen.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    /// Announces sent.
    pub announces: u64,
    /// Announces acknowledged by the node.
    pub acknowledged: u64,
    /// Info-hashes stored at the end, and the most seen.
    pub info_hashes: usize,
    /// Peers stored at the end.
    pub peers: usize,
    /// The announce store's own estimate of its memory at the end, in bytes.
    pub store_bytes: usize,
    /// The most sources the rate limiter tracked.
    pub max_tracked_ips: usize,
    /// The most queries in flight (the node pings the nodes that query it).
    pub max_in_flight: usize,
    /// Entries of the IPv4 routing table at the end.
    pub routing_entries: usize,
    /// Simulated time taken.
    pub simulated: Duration,
}

/// The source address of source `i`: public IPv4, distinct for every `i` below 2^24.
pub(crate) fn source(i: u32) -> SocketAddr {
    let ip = Ipv4Addr::from(0x3200_0000u32 + i);
    SocketAddr::new(IpAddr::V4(ip), 6881)
}

/// `sources` sources each announce `per_source` distinct info-hashes (drawn from `hashes`
/// distinct ones), one query every 250 µs of simulated time (4,000 a second, under the
/// default global limit); every cap of `config` is checked after each source.
pub(crate) fn run_announces(
    config: Config,
    sources: u32,
    per_source: u32,
    hashes: u64,
) -> LoadReport {
    let mut node = Node::new(config.clone(), NodeId([0x5a; 20]), 3, Instant::ZERO);
    let mut report = LoadReport::default();
    let mut now = Instant::from_secs(1);
    let step = Duration::from_micros(250);
    let mut next_timeout = now;
    for i in 0..sources {
        let from = source(i);
        let mut id = [0x77; 20];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let id = NodeId(id);
        let get_peers = Message::query(
            b"gp".to_vec(),
            id,
            QueryKind::GetPeers {
                info_hash: NodeId([0; 20]),
                want: Want::UNSPECIFIED,
                noseed: false,
                scrape: false,
            },
        );
        node.handle_datagram(now, from, &get_peers.encode());
        now += step;
        let mut token = None;
        while let Some(t) = node.poll_transmit() {
            if t.to != from {
                continue;
            }
            if let Ok(d) = decode(&t.bytes)
                && let Body::Response(r) = d.message.body
            {
                token = r.token;
            }
        }
        let token = token.expect("get_peers is answered with a token");
        for j in 0..per_source {
            let n = u64::from(i) * u64::from(per_source) + u64::from(j);
            // A multiplicative hash spreads the announces over `hashes` info-hashes.
            let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) % hashes;
            let mut info_hash = [0u8; 20];
            info_hash[..8].copy_from_slice(&h.to_be_bytes());
            let announce = Message::query(
                (j as u16).to_be_bytes().to_vec(),
                id,
                QueryKind::AnnouncePeer {
                    info_hash: NodeId(info_hash),
                    port: 6881,
                    implied_port: false,
                    token: token.clone(),
                    seed: j % 2 == 0,
                },
            );
            node.handle_datagram(now, from, &announce.encode());
            now += step;
            report.announces += 1;
            while let Some(t) = node.poll_transmit() {
                if t.to == from
                    && decode(&t.bytes).is_ok_and(|d| matches!(d.message.body, Body::Response(_)))
                {
                    report.acknowledged += 1;
                }
            }
        }
        while node.poll_event().is_some() {}
        if now >= next_timeout {
            node.handle_timeout(now);
            next_timeout = now + Duration::from_secs(1);
            while node.poll_transmit().is_some() {}
        }
        let store = node.peer_store();
        assert!(store.len() <= config.peers.max_info_hashes);
        assert!(store.peer_count() <= config.peers.max_peers);
        report.max_tracked_ips = report
            .max_tracked_ips
            .max(node.rate_limiter().tracked_ips());
        report.max_in_flight = report.max_in_flight.max(node.queries_in_flight());
        assert!(report.max_tracked_ips <= config.rate_limit_max_ips);
        assert!(report.max_in_flight <= config.transactions.capacity);
        assert!(node.events_queued() <= config.max_events);
        if i % 10_000 == 0 {
            node.routing_table().check_invariants().unwrap();
        }
    }
    let store = node.peer_store();
    report.info_hashes = store.len();
    report.peers = store.peer_count();
    report.store_bytes = store.approx_memory_bytes();
    report.routing_entries = node.routing_table().len();
    report.simulated = now.saturating_duration_since(Instant::from_secs(1));
    report
}

/// The process's peak resident memory (VmHWM) in KiB, where /proc says it.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
