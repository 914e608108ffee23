//! `btdht crawl --bind6 [::1]:0` through the real binary: dual-stack in-process nodes on
//! 127.0.x.1 and [::1]; the crawl starts from the first node's two addresses, follows
//! `nodes6` to the others' IPv6 addresses and samples every node over IPv6 and IPv4.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use btdht::InfoHash;
use btdht::driver::{Builder, Dht};
use support::{temp_dir, wait_until};

/// A node on 127.0.`n`.1 and [::1], with no per-IP limit and a table that takes many nodes of
/// one IP (every node here shares [::1]).
fn dual(n: u8) -> Builder {
    let mut config = btdht::node::Config::default();
    config.routing.ip_policy = btdht::routing::IpPolicy::Unrestricted;
    Dht::builder()
        .config(config)
        .bind(SocketAddr::from(([127, 0, n, 1], 0)))
        .bind6("[::1]:0".parse().unwrap())
        .allow_private(true)
        .rate_limit_per_ip(None)
        .seed(u64::from(n))
}

#[test]
fn a_dual_stack_crawl_follows_nodes6_and_samples_over_ipv6() {
    if let Err(e) = UdpSocket::bind("[::1]:0") {
        println!("skipped: no IPv6 loopback here ([::1]:0 does not bind: {e})");
        return;
    }
    let seed = dual(160).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 161..166u8 {
        nodes.push(dual(n).start().unwrap());
    }
    // Every node and the seed know each other over IPv6.
    let seed6 = seed.local_addr6().unwrap();
    for node in &nodes[1..] {
        node.ping(seed6).unwrap();
        seed.ping(node.local_addr6().unwrap()).unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || seed
        .routing_table()
        .is_ok_and(|t| t.ipv6.nodes.len() >= 5)));
    let hash: InfoHash = btdht::NodeId([0x5a; 20]);
    assert!(
        nodes[3]
            .announce(hash, Some(7000), false)
            .unwrap()
            .acknowledged
            > 0
    );

    let dir = temp_dir("crawl-ipv6");
    let out_path = dir.join("crawl.ndjson");
    let out = support::btdht_command()
        .args(["crawl", "--bootstrap", &seed.local_addr().to_string()])
        .args(["--bootstrap", &seed6.to_string()])
        .args(["--bind", "127.0.167.1:0", "--bind6", "[::1]:0"])
        .args(["--allow-private", "--per-ip-rate", "0", "--until-idle"])
        .args(["--sweep-rate", "50", "--duration", "30", "--out"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_path).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let node_addrs = |v6: bool| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["type"] == "node")
            .filter_map(|r| r["addr"].as_str().map(String::from))
            .filter(|a| a.starts_with('[') == v6)
            .collect()
    };
    let mut want6: Vec<String> = nodes
        .iter()
        .map(|d| d.local_addr6().unwrap().to_string())
        .collect();
    let mut want4: Vec<String> = nodes.iter().map(|d| d.local_addr().to_string()).collect();
    want6.sort();
    want4.sort();
    let (mut got6, mut got4) = (node_addrs(true), node_addrs(false));
    got6.sort();
    got4.sort();
    assert_eq!(got6, want6, "every node found over IPv6");
    // The nodes know each other only over IPv6: over IPv4 the crawl meets the first node.
    assert_eq!(got4, want4[..1], "over IPv4");
    let sampled6 = records
        .iter()
        .filter(|r| r["type"] == "node" && r["bep51"] == true)
        .filter(|r| r["addr"].as_str().is_some_and(|a| a.starts_with('[')))
        .count();
    assert!(sampled6 >= 5, "BEP 51 samples over IPv6: {sampled6}");
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "infohash" && r["infohash"] == hash.to_hex()),
        "{text}"
    );
    for node in nodes {
        node.stop().unwrap();
    }
}
