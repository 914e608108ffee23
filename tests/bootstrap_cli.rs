//! `btdht bootstrap` and `btdht bench` on loopback: a real server process answers, fills its
//! pool from a node that joins through it and hands that node out, keeps its pool across a
//! restart, takes a couple of seconds of `btdht bench`; with `--threads 3` the shards share
//! the askers and one pool; with `--bind6` it serves IPv6 (`nodes6`); `--bep42-strict` is
//! reported and leaves loopback nodes (exempt from BEP 42) alone; without `--allow-private`
//! a pool file's loopback nodes are skipped; the bench refuses non-loopback targets. Every packet goes to 127.0.0.0/8 or [::1]: the servers get
//! `--bootstrap 127.0.0.1:9` (the walk asks it while the pool is small) and pool files hold
//! loopback nodes only, since the walk queries pool nodes. What `--bep42-strict` changes for
//! public addresses is tested on the server core, without sockets, in `tests/bootstrap_sim.rs`.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use btdht::NodeId;
use btdht::contact::NodeInfo;
use btdht::driver::Dht;
use btdht::krpc::{self, Body, Message, QueryKind, Response, Want};
use support::{loopback, stdout_lines, temp_dir, wait_until_every};

/// A running `btdht bootstrap`.
struct Server {
    child: Child,
    /// The IPv4 address it listens on.
    addr: SocketAddr,
    /// The IPv6 address, with `--bind6`.
    addr6: Option<SocketAddr>,
    /// Its start line (`btdht: bootstrap ID listening on ADDR (...)`).
    line: String,
    /// Its id, from the start line.
    id: NodeId,
    /// Its stdout lines (the `--stats` lines).
    stdout: crossbeam_channel::Receiver<String>,
}

/// Starts `btdht bootstrap` on 127.0.0.1:0 with `--allow-private` and `extra` options; waits
/// for its start line (and, with `--bind6`, for its IPv6 line).
fn start(extra: &[&str]) -> Server {
    start_with(&["--allow-private"], extra)
}

/// [`start`] with `private` (`--allow-private` or nothing) and `extra`.
fn start_with(private: &[&str], extra: &[&str]) -> Server {
    let mut child = support::btdht_command()
        .args([
            "bootstrap",
            "--bind",
            "127.0.0.1:0",
            "--bootstrap",
            "127.0.0.1:9",
            "--capacity",
            "10000",
        ])
        .args(private)
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = stdout_lines(&mut child).unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first_addr = |line: &str, after: &str| -> Option<SocketAddr> {
        let rest = line.split(after).nth(1)?;
        Some(rest.split_whitespace().next()?.parse().unwrap())
    };
    let (addr, line) = loop {
        let line = lines.next().expect("a listening line").unwrap();
        if let Some(addr) = first_addr(&line, "listening on ") {
            break (addr, line);
        }
    };
    let id = line
        .split("bootstrap ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|hex| hex.parse().ok())
        .unwrap_or_else(|| panic!("an id in {line}"));
    let addr6 = if extra.contains(&"--bind6") {
        loop {
            let line = lines.next().expect("an IPv6 listening line").unwrap();
            if let Some(addr) = first_addr(&line, "also listening on ") {
                break Some(addr);
            }
        }
    } else {
        None
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        addr,
        addr6,
        line,
        id,
        stdout,
    }
}

/// SIGTERM, a clean exit, and the stdout lines it printed (`--stats`: the final counters
/// last).
fn stop(server: Server) -> Vec<String> {
    let Server {
        mut child, stdout, ..
    } = server;
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(child.wait().unwrap().success());
    // The reader thread ends with the pipe; the channel then disconnects.
    stdout.iter().collect()
}

/// The last `--stats --json` line.
fn final_stats(lines: &[String]) -> serde_json::Value {
    let last = lines.last().expect("a final stats line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

/// A raw KRPC asker: one UDP socket on a loopback address, sending BEP 43 read-only queries
/// (the server answers and does not ping it back).
struct Asker {
    socket: UdpSocket,
    id: NodeId,
    next_t: u16,
}

impl Asker {
    fn bind(addr: SocketAddr, id: NodeId) -> Asker {
        let socket = UdpSocket::bind(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Asker {
            socket,
            id,
            next_t: 0,
        }
    }

    /// Sends `kind` to `to` (loopback only) and returns the response, waiting up to 1 s
    /// (resending once); `None` if none came.
    fn ask(&mut self, to: SocketAddr, kind: QueryKind) -> Option<Response> {
        assert!(to.ip().is_loopback(), "tests talk to loopback only: {to}");
        self.next_t = self.next_t.wrapping_add(1);
        let t = self.next_t.to_be_bytes().to_vec();
        let mut message = Message::query(t.clone(), self.id, kind);
        message.read_only = true;
        let bytes = message.encode();
        let mut buf = [0u8; 2048];
        for _ in 0..2 {
            self.socket.send_to(&bytes, to).unwrap();
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline {
                let Ok((len, from)) = self.socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(decoded) = krpc::decode(&buf[..len]) else {
                    continue;
                };
                if from != to || decoded.message.transaction_id != t {
                    continue;
                }
                match decoded.message.body {
                    Body::Response(r) => return Some(r),
                    other => panic!("{to} answered {other:?}"),
                }
            }
        }
        None
    }
}

fn find_node(target: NodeId, want: Want) -> QueryKind {
    QueryKind::FindNode { target, want }
}

fn holds(nodes: &Option<Vec<NodeInfo>>, node: &NodeInfo) -> bool {
    nodes.as_ref().is_some_and(|n| n.contains(node))
}

/// Waits (polling every 100 ms, under the per-IP rate limit of 20/s) until a `find_node`
/// for `node.id` with `want` from `asker` hands `node` out.
fn wait_handed_out(asker: &mut Asker, server: SocketAddr, node: &NodeInfo, want: Want) -> bool {
    wait_until_every(Duration::from_secs(5), Duration::from_millis(100), || {
        asker
            .ask(server, find_node(node.id, want))
            .is_some_and(|r| holds(&r.nodes, node) || holds(&r.nodes6, node))
    })
}

#[test]
fn bootstrap_server_answers_verifies_and_persists() {
    let dir = temp_dir("bootstrap-persist");
    let state = dir.join("pool.bin");
    let state_arg = state.to_str().unwrap();
    let running = start(&["--state", state_arg]);
    let server = running.addr;
    // A node joins through it: the server pings it back and adds it to the pool.
    let node = Dht::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .allow_private(true)
        .bootstrap(vec![server])
        .start()
        .unwrap();
    assert!(
        node.with_timeout(Duration::from_secs(5))
            .ping(server)
            .is_ok()
    );
    // A second node's find_node gets the first one (once verified and indexed, within ~1 s).
    let client = Dht::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .allow_private(true)
        .read_only(true)
        .bootstrap(vec![server])
        .start()
        .unwrap();
    let mut found = false;
    for _ in 0..20 {
        let outcome = client
            .with_timeout(Duration::from_secs(5))
            .find_node(node.id())
            .unwrap();
        if outcome.closest.iter().any(|(n, _)| n.id == node.id()) {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(found, "the verified node is handed out");
    // A couple of seconds of load.
    let out = support::btdht_command()
        .args([
            "bench",
            &server.to_string(),
            "--seconds",
            "2",
            "--warmup",
            "0",
        ])
        .args(["--query", "mix", "--window", "32", "--sources", "8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["answered"].as_u64().unwrap() > 100, "{report}");
    assert!(report["latency_us"]["p99"].as_u64().is_some());
    stop(running);
    client.stop().unwrap();
    // The pool was saved; a restarted server loads it.
    assert!(std::fs::metadata(&state).unwrap().len() > 24);
    let running = start(&["--state", state_arg]);
    assert!(
        !running.line.contains(" 0 nodes loaded"),
        "{}",
        running.line
    );
    stop(running);
    node.stop().unwrap();
}

/// Askers from this many loopback sources (distinct addresses and ports) in the shard test.
const SOURCES: u8 = 48;

#[test]
fn bootstrap_shards_share_the_askers_and_one_pool() {
    let server = start(&["--threads", "3", "--stats", "3600", "--json"]);
    assert!(server.line.contains("(3 shards,"), "{}", server.line);
    // A node joins through it (its find_node, the server's cookie ping, its answer); every
    // datagram of one source lands on one shard, so one shard verifies it.
    let node = loopback(2).bootstrap(vec![server.addr]).start().unwrap();
    let joined = NodeInfo::new(node.id(), node.local_addr());
    let mut first = Asker::bind("127.1.0.1:0".parse().unwrap(), NodeId([0x01; 20]));
    assert!(
        wait_handed_out(&mut first, server.addr, &joined, Want::UNSPECIFIED),
        "the joined node is handed out"
    );
    // Many sources: the kernel hashes each onto one of the three SO_REUSEPORT sockets. Every
    // one gets answers to ping, find_node and get_peers, and the find_node and get_peers
    // answers hold the joined node, whichever shard answered (one shared pool).
    let mut answered_here = 0u64;
    for i in 1..=SOURCES {
        let from = SocketAddr::from(([127, 1, i, 1], 0));
        let mut asker = Asker::bind(from, NodeId([i; 20]));
        let pong = asker
            .ask(server.addr, QueryKind::Ping)
            .expect("ping answered");
        assert_eq!(pong.id, server.id);
        let r = asker
            .ask(server.addr, find_node(node.id(), Want::UNSPECIFIED))
            .expect("find_node answered");
        assert!(holds(&r.nodes, &joined), "source {i}: {:?}", r.nodes);
        let r = asker
            .ask(
                server.addr,
                QueryKind::GetPeers {
                    info_hash: node.id(),
                    want: Want::UNSPECIFIED,
                    noseed: false,
                    scrape: false,
                },
            )
            .expect("get_peers answered");
        assert!(r.token.is_some() && r.values.is_none(), "{r:?}");
        assert!(holds(&r.nodes, &joined), "source {i}: {:?}", r.nodes);
        answered_here += 3;
    }
    node.stop().unwrap();
    let lines = stop(server);
    // The final counters (SIGTERM) count this traffic, and each shard's share of it.
    let stats = final_stats(&lines);
    eprintln!("final counters: {stats}");
    let count =
        |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("{key}: {v}"));
    assert!(count(&stats, "answered") >= answered_here, "{stats}");
    assert!(
        count(&stats, "queries_in") >= count(&stats, "answered"),
        "{stats}"
    );
    assert!(count(&stats, "verified") >= 1, "{stats}");
    assert!(count(&stats, "pool") >= 1, "{stats}");
    assert!(
        count(&stats, "nodes_handed_out") >= 2 * u64::from(SOURCES),
        "{stats}"
    );
    let shards = stats["shards"].as_array().expect("per-shard counters");
    assert_eq!(shards.len(), 3, "{stats}");
    let sum = |key: &str| shards.iter().map(|s| count(s, key)).sum::<u64>();
    assert_eq!(sum("answered"), count(&stats, "answered"), "{stats}");
    assert_eq!(sum("queries_in"), count(&stats, "queries_in"), "{stats}");
    // More than one shard answered. The kernel sends all datagrams of one source to one
    // shard, so all of the joined node's (its queries, its answers to the cookie pings) went
    // to one shard, and each asker's find_node answers came from one shard and held the node:
    // any other shard that answered handed out a node it never heard from itself, from the
    // shared pool. (49 sources all on one of three sockets would be a 3^-48 chance, or a
    // broken SO_REUSEPORT group.)
    let busy = shards.iter().filter(|s| count(s, "answered") > 0).count();
    assert!(busy >= 2, "only {busy} shard(s) answered: {stats}");
}

#[test]
fn bootstrap_serves_ipv6_and_hands_out_nodes6() {
    // Skip only when this machine has no IPv6 loopback.
    if let Err(e) = UdpSocket::bind("[::1]:0") {
        eprintln!("skipped: no IPv6 loopback here ([::1]:0 does not bind: {e})");
        return;
    }
    let server = start(&["--bind6", "[::1]:0", "--stats", "3600", "--json"]);
    let server6 = server.addr6.expect("an IPv6 address");
    assert!(server6.ip().is_loopback() && server6.is_ipv6(), "{server6}");
    // A library node pings the server over [::1]; the server pings it back there and adds
    // it to its IPv6 pool.
    let node = loopback(3)
        .bind6("[::1]:0".parse().unwrap())
        .start()
        .unwrap();
    let node6 = node.local_addr6().expect("the node's IPv6 address");
    assert_eq!(
        node.with_timeout(Duration::from_secs(5))
            .ping(server6)
            .unwrap(),
        server.id
    );
    let joined = NodeInfo::new(node.id(), node6);
    // find_node over IPv6 with `want n6`: nodes6 holds it, and no IPv4 `nodes` come.
    let mut asker6 = Asker::bind("[::1]:0".parse().unwrap(), NodeId([0x06; 20]));
    let want6 = Want {
        n4: false,
        n6: true,
    };
    assert!(
        wait_handed_out(&mut asker6, server6, &joined, want6),
        "the IPv6 node is handed out"
    );
    let r = asker6.ask(server6, find_node(node.id(), want6)).unwrap();
    assert!(holds(&r.nodes6, &joined), "{r:?}");
    assert!(r.nodes.is_none(), "{r:?}");
    // Without `want`, an IPv6 asker gets its own family.
    let r = asker6
        .ask(server6, find_node(node.id(), Want::UNSPECIFIED))
        .unwrap();
    assert!(holds(&r.nodes6, &joined) && r.nodes.is_none(), "{r:?}");
    // BEP 32 across families: an IPv4 asker that wants both gets it in nodes6; the node never
    // talked to the server over IPv4, so it is not among the IPv4 nodes.
    let mut asker4 = Asker::bind("127.1.6.1:0".parse().unwrap(), NodeId([0x04; 20]));
    let both = Want { n4: true, n6: true };
    let r = asker4.ask(server.addr, find_node(node.id(), both)).unwrap();
    assert!(holds(&r.nodes6, &joined), "{r:?}");
    let nodes4 = r.nodes.expect("nodes for n4");
    assert!(
        nodes4.iter().all(|n| n.addr.is_ipv4() && n.id != node.id()),
        "{nodes4:?}"
    );
    node.stop().unwrap();
    let stats = final_stats(&stop(server));
    assert!(stats["verified"].as_u64().unwrap() >= 1, "{stats}");
}

/// The bytes of a pool file (the format of `btdht::bootstrap::persist`) holding the IPv4
/// `nodes`, each 5 s old.
fn pool_file(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut file = b"BTDHTPL1".to_vec();
    file.extend_from_slice(&(nodes.len() as u64).to_le_bytes());
    file.extend_from_slice(&0u64.to_le_bytes());
    for n in nodes {
        krpc::compact::encode_node(&mut file, n);
        file.extend_from_slice(&5u32.to_le_bytes());
    }
    file
}

/// Without `--allow-private`, the loopback nodes of a pool file are not loaded: the start
/// line counts them as skipped. (That the server then never sends to such nodes is checked
/// on the core, without sockets, in `tests/bootstrap_sim.rs`.)
#[test]
fn bootstrap_skips_private_pool_nodes_without_allow_private() {
    let dir = temp_dir("bootstrap-private");
    let state = dir.join("pool.bin");
    let nodes = [
        NodeInfo::new(NodeId([0x10; 20]), "127.0.9.1:9".parse().unwrap()),
        NodeInfo::new(NodeId([0x11; 20]), "127.0.9.2:9".parse().unwrap()),
    ];
    let file = pool_file(&nodes);
    std::fs::write(&state, &file).unwrap();
    let state_arg = state.to_str().unwrap();
    let server = start_with(&[], &["--state", state_arg]);
    assert!(
        server.line.contains(" 0 nodes loaded, 2 skipped"),
        "{}",
        server.line
    );
    stop(server);
    std::fs::write(&state, &file).unwrap();
    let server = start(&["--state", state_arg]);
    assert!(
        server.line.contains(" 2 nodes loaded, 0 skipped"),
        "{}",
        server.line
    );
    stop(server);
}

#[test]
fn bootstrap_bep42_strict_is_reported_and_exempts_loopback() {
    // A pool file (the format of `btdht::bootstrap::persist`) with two loopback nodes whose
    // ids are not BEP 42-consistent for a public address, e.g. 81.0.0.1: on loopback BEP 42
    // does not apply, so `--bep42-strict` still hands them out.
    let dir = temp_dir("bootstrap-bep42");
    let state = dir.join("pool.bin");
    let loaded = [
        NodeInfo::new(NodeId([0x10; 20]), "127.0.9.1:9".parse().unwrap()),
        NodeInfo::new(NodeId([0x11; 20]), "127.0.9.2:9".parse().unwrap()),
    ];
    for n in &loaded {
        assert!(!n.id.is_bep42_valid_for("81.0.0.1".parse().unwrap()));
    }
    let file = pool_file(&loaded);
    std::fs::write(&state, &file).unwrap();
    let state_arg = state.to_str().unwrap();

    // Without the flag the start line says nothing of BEP 42.
    let lax = start(&["--state", state_arg]);
    assert!(!lax.line.contains("BEP 42"), "{}", lax.line);
    stop(lax);
    std::fs::write(&state, &file).unwrap();

    let server = start(&["--state", state_arg, "--bep42-strict"]);
    assert!(server.line.contains(", BEP 42 strict)"), "{}", server.line);
    assert!(server.line.contains(" 2 nodes loaded"), "{}", server.line);
    let mut asker = Asker::bind("127.1.42.1:0".parse().unwrap(), NodeId([0x42; 20]));
    let r = asker
        .ask(
            server.addr,
            find_node(NodeId([0x10; 20]), Want::UNSPECIFIED),
        )
        .expect("answered");
    for n in &loaded {
        assert!(holds(&r.nodes, n), "{n:?} not in {:?}", r.nodes);
    }
    // A loopback node with a random id joins, is verified and handed out.
    let node = loopback(4).bootstrap(vec![server.addr]).start().unwrap();
    let joined = NodeInfo::new(node.id(), node.local_addr());
    assert!(
        wait_handed_out(&mut asker, server.addr, &joined, Want::UNSPECIFIED),
        "a loopback node is verified under --bep42-strict"
    );
    node.stop().unwrap();
    stop(server);
}

#[test]
fn bench_refuses_targets_outside_loopback() {
    for target in ["192.0.2.1:6881", "10.0.0.1:6881", "[2001:db8::1]:6881"] {
        let out = support::btdht_command()
            .args(["bench", target, "--seconds", "1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{target}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("only 127.0.0.0/8 and ::1"),
            "{target}"
        );
    }
}
