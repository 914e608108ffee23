//! The crawler against libtorrent nodes placed in a `btdht swarm`, on loopback: `btdht crawl`
//! enumerates the libtorrent nodes (version `LT..`) and the swarm's nodes, and reads a
//! libtorrent node's BEP 51 sample (an info-hash another libtorrent node announced to it).
//!
//! Needs the venv made by `tests/peers/setup.sh`; without it the test writes one line saying it
//! is skipped and passes, unless `BTDHT_REQUIRE_INTEROP` is set. `BTDHT_PEERS_PY` may name the
//! venv's python (see `tests/peers/lt_node.py`).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use btdht::NodeId;
use btdht::krpc::{Message, QueryKind, Want};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::libtorrent::libtorrent_or_skip;

/// A child process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `child`'s stdout until a line starts with `prefix` (bounded); returns it.
fn wait_line(child: &mut Child, prefix: &str, limit: Duration) -> Option<String> {
    let rx = support::stdout_lines(child)?;
    let deadline = Instant::now() + limit;
    while let Ok(line) = rx.recv_deadline(deadline) {
        if line.starts_with(prefix) {
            return Some(line);
        }
    }
    None
}

/// Whether the node at `addr` answers a `get_peers` for `hash` with values (one query, half a
/// second for the answer; loopback only).
fn holds_peers(addr: SocketAddr, hash: &str) -> bool {
    assert!(addr.ip().is_loopback());
    let mut info_hash = [0u8; 20];
    hex::decode_to_slice(hash, &mut info_hash).unwrap();
    let query = Message::query(
        b"hp".to_vec(),
        NodeId([0x42; 20]),
        QueryKind::GetPeers {
            info_hash: NodeId(info_hash),
            want: Want::UNSPECIFIED,
            noseed: false,
            scrape: false,
        },
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    if socket.send_to(&query.encode(), addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    match socket.recv_from(&mut buf) {
        Ok((len, from)) if from == addr => buf[..len].windows(8).any(|w| w == b"6:values"),
        _ => false,
    }
}

#[test]
fn crawl_enumerates_libtorrent_nodes_and_their_samples() {
    let Some((python, script)) = libtorrent_or_skip() else {
        return;
    };
    // A swarm of 5 btdht nodes on 127.0.190.1-5.
    let mut swarm = support::btdht_command()
        .args([
            "swarm",
            "--nodes",
            "5",
            "--base-ip",
            "127.0.190.1",
            "--port",
            "47811",
        ])
        .args(["--settle", "1", "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_line(&mut swarm, "ready", Duration::from_secs(20));
    let _swarm = Guard(swarm);
    assert!(ready.is_some(), "swarm not ready");
    let boot = "127.0.190.1:47811";
    // Two libtorrent nodes in it; B announces an info-hash, which lands at A (and at the
    // swarm's nodes: with 7 nodes, the 8 closest are all of them).
    let hash = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
    let lt = |listen: &str, extra: &[&str]| {
        Command::new(&python)
            .arg(&script)
            .args(["--listen", listen, "--bootstrap", boot])
            .args(["--duration", "60", "--action-delay", "3"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let a = "127.0.191.1:47812";
    let b = "127.0.192.1:47813";
    let _a = Guard(lt(a, &[]));
    let _b = Guard(lt(b, &["--announce", hash, "--peer-port", "7777"]));
    // Let them join and B announce: wait until A answers a get_peers for the info-hash with
    // values, which shows it stored B's announce (libtorrent's own announce alert fires
    // before the token is checked, so it would not prove that).
    let stored =
        support::wait_until_every(Duration::from_secs(30), Duration::from_millis(300), || {
            holds_peers(a.parse().unwrap(), hash)
        });
    assert!(stored, "A never stored B's announce");
    // Crawl from A alone, so that its sample is the first to carry the info-hash.
    let out = support::btdht_command()
        .args(["crawl", "--bootstrap", a, "--allow-private"])
        .args(["--until-idle", "--duration", "20", "--seed", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let node = |addr: &str| {
        lines
            .iter()
            .find(|r| r["type"] == "node" && r["addr"] == addr)
            .cloned()
    };
    for lt_addr in [a, b] {
        let record = node(lt_addr).unwrap_or_else(|| panic!("{lt_addr} not found:\n{text}"));
        let version = record["version"].as_str().unwrap_or("");
        assert!(version.starts_with("LT"), "{record}");
    }
    for i in 1..=5 {
        let addr = format!("127.0.190.{i}:47811");
        assert!(node(&addr).is_some(), "{addr} not found:\n{text}");
    }
    let sampled = lines
        .iter()
        .find(|r| r["type"] == "infohash" && r["infohash"] == hash)
        .unwrap_or_else(|| panic!("info-hash not found:\n{text}"));
    assert_eq!(sampled["from"], a, "A's BEP 51 sample carried it first");
}
