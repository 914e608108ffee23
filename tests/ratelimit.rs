//! Rate limits on incoming queries, in simulated time: a flooding source gets its burst and
//! then its rate, others are still answered; the global bucket caps many sources together.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::krpc::{Body, Message, QueryKind};
use btdht::node::{Config, Node, RateLimit};
use btdht::{Instant, NodeId};

fn ping(n: u32) -> Vec<u8> {
    Message::query(n.to_be_bytes().to_vec(), NodeId([9; 20]), QueryKind::Ping).encode()
}

fn node(per_ip: Option<RateLimit>, global: Option<RateLimit>) -> Node {
    let config = Config {
        allow_private: true,
        rate_limit_per_ip: per_ip,
        rate_limit_global: global,
        ..Config::default()
    };
    Node::new(config, NodeId([1; 20]), 1, Instant::ZERO)
}

fn replies_to(node: &mut Node, to: SocketAddr) -> usize {
    let mut n = 0;
    while let Some(t) = node.poll_transmit() {
        n += usize::from(t.to == to && is_reply(&t.bytes));
    }
    n
}

/// Whether a datagram is a reply (the node also pings the new nodes it hears from).
fn is_reply(bytes: &[u8]) -> bool {
    btdht::krpc::decode(bytes).is_ok_and(|d| matches!(d.message.body, Body::Response(_)))
}

#[test]
fn a_flooding_source_gets_its_burst_then_its_rate_and_others_are_answered() {
    let limit = RateLimit {
        rate: 10,
        burst: 20,
    };
    let mut node = node(Some(limit), None);
    let flooder: SocketAddr = "10.0.0.1:6881".parse().unwrap();
    let honest: SocketAddr = "10.0.0.2:6881".parse().unwrap();
    let mut answered_flooder = 0;
    let mut answered_honest = 0;
    // Two simulated seconds: 1,000 queries a second from the flooder, 2 from the honest node.
    for ms in 0..2_000u64 {
        let now = Instant::from_millis(1_000 + ms);
        node.handle_datagram(now, flooder, &ping(ms as u32));
        answered_flooder += replies_to(&mut node, flooder);
        if ms % 500 == 0 {
            node.handle_datagram(now, honest, &ping(ms as u32));
            answered_honest += replies_to(&mut node, honest);
        }
    }
    // Burst of 20 plus 10 per second for 2 seconds (the first token may round either way).
    assert!((39..=41).contains(&answered_flooder), "{answered_flooder}");
    assert_eq!(answered_honest, 4);
    assert_eq!(node.stats().rate_limited, 2_000 - answered_flooder as u64);
    // Once the flood stops the bucket refills.
    let later = Instant::from_secs(10);
    node.handle_datagram(later, flooder, &ping(1));
    assert_eq!(replies_to(&mut node, flooder), 1);
}

#[test]
fn the_global_limit_caps_a_spoofed_flood_from_many_sources() {
    let global = RateLimit {
        rate: 100,
        burst: 100,
    };
    let mut node = node(Some(RateLimit::PER_IP), Some(global));
    let mut answered = 0;
    // 10,000 distinct sources in one simulated second.
    for n in 0..10_000u32 {
        let now = Instant::from_micros(1_000_000 + u64::from(n) * 100);
        let from = SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 6881));
        node.handle_datagram(now, from, &ping(n));
        while let Some(t) = node.poll_transmit() {
            answered += u64::from(is_reply(&t.bytes));
        }
    }
    assert!((195..=201).contains(&answered), "{answered}");
    assert_eq!(node.stats().rate_limited, 10_000 - answered);
}

#[test]
fn defaults_are_documented_values() {
    let config = Config::default();
    assert_eq!(config.rate_limit_per_ip, Some(RateLimit::PER_IP));
    assert_eq!(config.rate_limit_global, Some(RateLimit::GLOBAL));
    assert_eq!(config.rate_limit_max_ips, 65_536);
    let _ = Duration::ZERO;
}
