//! Interoperability with libtorrent (the most deployed Mainline DHT implementation), on
//! loopback, through `tests/peers/lt_node.py`: a libtorrent node's get_peers finds a peer
//! announced with `btdht announce`, and `btdht get-peers` finds a peer libtorrent announced;
//! libtorrent gets the BEP 44 items (immutable and mutable) a btdht node put, and btdht gets
//! the ones libtorrent put.
//!
//! Needs the venv made by `tests/peers/setup.sh` (libtorrent from PyPI); without it each test
//! writes one line saying it is skipped and passes, unless `BTDHT_REQUIRE_INTEROP` is set.
//! `BTDHT_PEERS_PY` may name the venv's python (see `tests/peers/lt_node.py`).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::libtorrent::{libtorrent_or_skip, peers_line};

use btdht::driver::Dht;
use btdht::node::Event;
use support::{loopback, wait_until};

const T: Duration = Duration::from_secs(10);

/// A libtorrent node; its stdout lines are forwarded to a channel.
struct LtNode {
    child: Child,
    lines: crossbeam_channel::Receiver<String>,
}

impl LtNode {
    fn start(python: &PathBuf, script: &PathBuf, listen: &str, args: &[String]) -> LtNode {
        let mut child = Command::new(python)
            .arg(script)
            .args(["--listen", listen, "--duration", "40"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = support::stdout_lines(&mut child).expect("stdout is piped");
        LtNode { child, lines }
    }

    /// Waits (bounded) for a line matching `pred`.
    fn wait_line(&self, limit: Duration, mut pred: impl FnMut(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Ok(line) = self.lines.recv_deadline(deadline) {
            if pred(&line) {
                return Some(line);
            }
        }
        None
    }
}

impl Drop for LtNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our small network: four nodes on their own /24s, joined.
fn network(first: u8) -> Vec<Dht> {
    let seed = loopback(first).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in first + 1..first + 4 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes.iter().all(|d| d
        .with_timeout(T)
        .routing_table()
        .is_ok_and(|t| t.len() >= 3))));
    nodes
}

fn add_nodes(nodes: &[Dht]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|d| ["--add-node".to_string(), d.local_addr().to_string()])
        .collect()
}

#[test]
fn libtorrent_finds_a_peer_announced_with_btdht_announce() {
    let Some((python, script)) = libtorrent_or_skip() else {
        return;
    };
    let nodes = network(150);
    let hash = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    let announced: SocketAddr = "127.0.158.1:7777".parse().unwrap();
    let boot = nodes[0].local_addr().to_string();
    let out = support::btdht_command()
        .args(["announce", hash, "--port", "7777", "--allow-private"])
        .args(["--bootstrap", &boot, "--bind", "127.0.158.1:0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // libtorrent sends its get_peers once, `--action-delay` seconds after it starts; if its
    // routing table is still empty then, it finds nothing. So up to three fresh libtorrent
    // nodes (each on its own address) try, each waiting longer before asking.
    let mut line = None;
    for (attempt, delay) in [(0u8, "2"), (1, "4"), (2, "6")] {
        let mut args = add_nodes(&nodes);
        args.extend([
            "--get-peers".into(),
            hash.into(),
            "--action-delay".into(),
            delay.into(),
        ]);
        let listen = format!("127.0.{}.1:46881", 159 + attempt);
        let lt = LtNode::start(&python, &script, &listen, &args);
        line = lt.wait_line(Duration::from_secs(12), |l| {
            peers_line(l, hash).is_some_and(|peers| peers.contains(&announced))
        });
        if line.is_some() {
            break;
        }
    }
    assert!(
        line.is_some(),
        "libtorrent's get_peers did not find {announced}"
    );
    for dht in nodes {
        dht.stop().unwrap();
    }
}

#[test]
fn btdht_get_peers_finds_a_peer_libtorrent_announced() {
    let Some((python, script)) = libtorrent_or_skip() else {
        return;
    };
    let nodes = network(160);
    let events: Vec<_> = nodes.iter().map(|d| d.subscribe()).collect();
    let hash = "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5";
    let mut args = add_nodes(&nodes);
    args.extend([
        "--announce".into(),
        hash.into(),
        "--peer-port".into(),
        "8888".into(),
        "--action-delay".into(),
        "2".into(),
    ]);
    let _lt = LtNode::start(&python, &script, "127.0.169.1:46881", &args);
    let peer: SocketAddr = "127.0.169.1:8888".parse().unwrap();
    // Bounded wait for a valid announce to reach one of our nodes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stored = false;
    while !stored && Instant::now() < deadline {
        for rx in &events {
            if let Ok(Event::PeerAnnounced { peer: p, .. }) =
                rx.recv_timeout(Duration::from_millis(50))
            {
                stored |= p == peer;
            }
        }
    }
    assert!(stored, "libtorrent's announce did not reach our nodes");

    let boot = nodes[0].local_addr().to_string();
    let out = support::btdht_command()
        .args(["get-peers", hash, "--json", "--allow-private"])
        .args(["--bootstrap", &boot, "--bind", "127.0.168.1:0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"addr\":\"127.0.169.1:8888\""),
        "btdht get-peers output: {stdout}"
    );
    for dht in nodes {
        dht.stop().unwrap();
    }
}

/// The bencoded byte string of `text`, as hex (how the script prints an item's value).
fn bencoded_hex(text: &str) -> String {
    hex::encode(btdht::krpc::RawValue::from_bytes(text.as_bytes()).as_bytes())
}

#[test]
fn libtorrent_gets_bep44_items_btdht_put() {
    use btdht::items::MutableItem;
    use btdht::krpc::RawValue;

    let Some((python, script)) = libtorrent_or_skip() else {
        return;
    };
    let nodes = network(170);
    let writer = &nodes[3];
    let put = writer
        .put_immutable(RawValue::from_bytes(b"immutable from btdht"))
        .unwrap();
    assert!(put.stored >= 2, "{put:?}");
    let immutable = put.target.to_hex();
    let seed = [0x31; 32];
    let item =
        MutableItem::sign(&seed, b"s", 4, RawValue::from_bytes(b"mutable from btdht")).unwrap();
    let public_key = hex::encode(item.public_key);
    let put = writer.put_mutable(item, None).unwrap();
    assert!(put.stored >= 2, "{put:?}");

    let (mut got_immutable, mut got_mutable) = (false, false);
    for (attempt, delay) in [(0u8, "2"), (1, "4"), (2, "6")] {
        let mut args = add_nodes(&nodes);
        args.extend([
            "--get-immutable".into(),
            immutable.clone(),
            "--get-mutable".into(),
            public_key.clone(),
            "--salt".into(),
            "s".into(),
            "--action-delay".into(),
            delay.into(),
        ]);
        let listen = format!("127.0.{}.1:46881", 175 + attempt);
        let lt = LtNode::start(&python, &script, &listen, &args);
        let want_immutable = format!(
            "immutable_item {immutable} {}",
            bencoded_hex("immutable from btdht")
        );
        let want_mutable = format!(
            "mutable_item {public_key} seq 4 {}",
            bencoded_hex("mutable from btdht")
        );
        lt.wait_line(Duration::from_secs(12), |l| {
            got_immutable |= l == want_immutable;
            got_mutable |= l == want_mutable;
            got_immutable && got_mutable
        });
        if got_immutable && got_mutable {
            break;
        }
    }
    assert!(
        got_immutable,
        "libtorrent gets the immutable item btdht put"
    );
    assert!(got_mutable, "libtorrent gets the mutable item btdht put");
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn btdht_gets_bep44_items_libtorrent_put() {
    use btdht::items::{MutableItem, StoredItem, immutable_target};
    use btdht::krpc::RawValue;

    let Some((python, script)) = libtorrent_or_skip() else {
        return;
    };
    let nodes = network(180);
    let reader = &nodes[3];
    let value = RawValue::from_bytes(b"immutable from libtorrent");
    let target = immutable_target(&value);
    let seed = [0x32; 32];
    let public_key = MutableItem::public_key_of(&seed);

    let mut args = add_nodes(&nodes);
    args.extend([
        "--put-immutable".into(),
        "immutable from libtorrent".into(),
        "--put-mutable".into(),
        hex::encode(seed),
        "--public-key".into(),
        hex::encode(public_key),
        "--mutable-value".into(),
        "mutable from libtorrent".into(),
        "--salt".into(),
        "lt".into(),
        "--action-delay".into(),
        "3".into(),
    ]);
    let lt = LtNode::start(&python, &script, "127.0.185.1:46881", &args);
    let mut puts = 0;
    lt.wait_line(Duration::from_secs(20), |l| {
        if l.starts_with("put ") && !l.ends_with(" stored 0") {
            puts += 1;
        }
        puts == 2
    });
    assert_eq!(puts, 2, "libtorrent's puts were stored");

    let reader = reader.with_timeout(T);
    let got = reader.get_immutable(target).unwrap();
    assert_eq!(got.item, Some(StoredItem::Immutable(value)));
    let got = reader.get_mutable(public_key, b"lt", None).unwrap();
    match got.item {
        Some(StoredItem::Mutable(item)) => {
            assert_eq!(item.value, RawValue::from_bytes(b"mutable from libtorrent"));
            item.verify().expect("libtorrent's signature verifies");
        }
        other => panic!("btdht gets libtorrent's mutable item: {other:?}"),
    }
    assert_eq!(got.rejected, 0);
    drop(lt);
    for node in nodes {
        node.stop().unwrap();
    }
}
