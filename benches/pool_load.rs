//! A bootstrap pool of one million nodes saved and loaded again, against a 5-second budget
//! for the load (the pool persists and reloads, so a restarted server is soon serving again).
//!
//! `cargo bench --bench pool_load -- load`: builds pools of 1,000,000 IPv4 nodes (on
//! 127.0.0.0/8, varied ports) and 50,000 IPv6 nodes (on [::1]), writes them with
//! `persist::save` (temporary file, fsync, rename), then, in alternating rounds, measures
//! - **read**: `fs::read` of the file and a walk over its records (the baseline);
//! - **decode**: `fs::read` and decoding every record into a `NodeInfo` and its age, without
//!   inserting (what a load costs before the pool does any work);
//! - **load**: what `btdht bootstrap --state` does at start: `Pools::new(1_000_000, ..)` and
//!   `persist::load` (read, insert every node into the address index, sort the id index);
//! - **save**: `persist::save` of the same pools.
//!
//! It prints one JSON line per round and a summary: median, min and max of each, nodes per
//! second, the file size, the per-round ratios load/read and load/decode (median and spread)
//! and the median load as a share of the 5-second budget. It panics if a load does not restore
//! every node (each address with its age, the id index built).
//!
//! `cargo bench --bench pool_load -- binary`: the same file through the real binary. In
//! alternating rounds it starts `btdht bootstrap --bind 127.0.0.1:0 --allow-private --bootstrap
//! 127.0.0.1:9 --capacity 1000000` with no state (the baseline: allocation, sockets, threads)
//! and with `--state` on a copy of the file, reads its "N nodes loaded, M skipped in S s" line, sends it
//! one BEP 43 read-only `find_node` and checks that the answer holds 8 nodes of the file, then
//! stops it with SIGTERM (which saves the pool again) and times the stop. It panics if the
//! server did not load every node. Only loopback is contacted: the pool's nodes are on
//! 127.0.0.0/8 and [::1], and their ages (under 10 minutes) are below the 15-minute re-ping
//! age, so the server's only traffic to them is the walk's 4 `find_node`s a second.
//!
//! `cargo bench --bench pool_load -- write PATH`: only writes the pool file (the same nodes) to
//! PATH, for `benches/throughput.sh` to load into `btdht bootstrap --state`.
//!
//! With no figure named both run. `cargo test --benches` (no `--bench` flag) runs a quick
//! pass of 20,000 nodes. Env: `POOL_ROUNDS` (default 7), `POOL_NODES` (default 1,000,000),
//! `BTDHT_BIN` (the binary to start; default: this checkout's).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use btdht::bootstrap::{BootstrapConfig, NodeFilter, POOL_CLOCK_BASE, Pools, SharedPools, persist};
use btdht::krpc::compact;
use btdht::krpc::{Body, Message, QueryKind, Want};
use btdht::{NodeId, NodeInfo};
use parking_lot::RwLock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The budget for loading a one-million-node pool.
const BUDGET: Duration = Duration::from_secs(5);
/// IPv6 nodes saved beside the IPv4 ones (all on [::1], so at most 64,512 distinct ports).
const V6_NODES: usize = 50_000;
/// Pool time of the save (the ages in the file are relative to it).
const SAVED_AT: u32 = POOL_CLOCK_BASE + 3_600;
/// Pool time of the loads (ten minutes later).
const LOADED_AT: u32 = SAVED_AT + 600;
/// Oldest age in the file, below the server's 15-minute re-ping age.
const MAX_AGE: u32 = 600;
const HEADER: usize = 24;
/// Longest wait for the binary to start or to stop.
const DEADLINE: Duration = Duration::from_secs(60);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`-th IPv4 node's address: distinct hosts of 127.0.0.0/8 for `i < 2^24` (an odd
/// multiplier is a bijection modulo 2^24), ports spread over 1024-65535.
fn v4_addr(i: u32) -> SocketAddr {
    let host = i.wrapping_mul(0x9e37_79b1) & 0x00ff_ffff;
    let port = 1024 + (i.wrapping_mul(40_503) % 64_512) as u16;
    SocketAddr::from((Ipv4Addr::from(0x7f00_0000 | host), port))
}

/// The `i`-th IPv6 node's address: [::1] on port 1024 + `i`.
fn v6_addr(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 1024 + i as u16))
}

/// The age (seconds before the save) of node `i`.
fn age(i: u32) -> u32 {
    i.wrapping_mul(7) % MAX_AGE
}

/// Pools of `n4` IPv4 and `n6` IPv6 nodes at capacity `n4`, seen at `SAVED_AT - age(i)`.
fn build(n4: usize, n6: usize) -> (Pools, Vec<NodeId>, Vec<NodeId>) {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut pools = Pools::new(n4, rng.random());
    let ids4: Vec<NodeId> = (0..n4).map(|_| NodeId::random(&mut rng)).collect();
    let ids6: Vec<NodeId> = (0..n6).map(|_| NodeId::random(&mut rng)).collect();
    for (i, id) in ids4.iter().enumerate() {
        let i = i as u32;
        pools.insert(NodeInfo::new(*id, v4_addr(i)), SAVED_AT - age(i));
    }
    for (i, id) in ids6.iter().enumerate() {
        let i = i as u32;
        pools.insert(NodeInfo::new(*id, v6_addr(i)), SAVED_AT - age(i));
    }
    assert_eq!(
        (pools.v4.len(), pools.v6.len()),
        (n4, n6),
        "the generated pool lost nodes (duplicate addresses?)"
    );
    (pools, ids4, ids6)
}

/// The baseline: read the file and walk its records (a fold over each record's last bytes).
fn read_walk(path: &Path) -> (usize, u64) {
    let bytes = fs::read(path).expect("read the pool file");
    let n4 = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let (v4, v6) = bytes[HEADER..].split_at(n4 * 30);
    let mut fold = 0u64;
    let mut records = 0;
    for (chunk, size) in [(v4, 30), (v6, 42)] {
        for record in chunk.chunks_exact(size) {
            fold = fold
                .rotate_left(5)
                .wrapping_add(u64::from(record[0]) ^ u64::from(record[size - 1]));
            records += 1;
        }
    }
    (records, std::hint::black_box(fold))
}

/// Read the file and decode every record into a `NodeInfo` and its age, without a pool.
fn read_decode(path: &Path) -> (usize, u64) {
    let bytes = fs::read(path).expect("read the pool file");
    let n4 = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let (v4, v6) = bytes[HEADER..].split_at(n4 * 30);
    let mut fold = 0u64;
    let mut records = 0;
    for (chunk, addr_len) in [(v4, 6), (v6, 18)] {
        for record in chunk.chunks_exact(20 + addr_len + 4) {
            let id = NodeId::from_slice(&record[..20]);
            let addr = compact::decode_addr(&record[20..20 + addr_len]);
            let age = u32::from_le_bytes(record[20 + addr_len..].try_into().expect("4 bytes"));
            if let (Some(id), Some(addr)) = (id, addr) {
                let node = std::hint::black_box(NodeInfo::new(id, addr));
                fold = fold.rotate_left(5).wrapping_add(
                    u64::from(node.addr.port()) ^ u64::from(node.id.0[0]) ^ u64::from(age),
                );
                records += 1;
            }
        }
    }
    (records, std::hint::black_box(fold))
}

/// What `Server::start` does with `--state`: fresh pools of `capacity`, then `persist::load`.
fn load(path: &Path, capacity: usize) -> (SharedPools, usize) {
    let pools: SharedPools = Arc::new(RwLock::new(Pools::new(capacity, rand::random())));
    // The nodes are on 127.0.0.0/8: the bench's server allows private addresses.
    let config = BootstrapConfig {
        allow_private: true,
        ..BootstrapConfig::default()
    };
    let loaded = persist::load(path, &pools, LOADED_AT, &config).expect("load the pool file");
    assert_eq!(loaded.skipped, 0, "every node in the file is kept");
    (pools, loaded.nodes)
}

/// Panics unless `pools` holds every generated node with its age, and its id index works.
fn check_complete(pools: &Pools, ids4: &[NodeId], ids6: &[NodeId], loaded: usize, full: bool) {
    let want = ids4.len() + ids6.len();
    assert_eq!(
        loaded, want,
        "persist::load restored {loaded} nodes of {want} in the file"
    );
    assert_eq!(
        (pools.v4.len(), pools.v6.len()),
        (ids4.len(), ids6.len()),
        "the loaded pools hold a different number of IPv4/IPv6 nodes than were saved"
    );
    // Every address (or, in later rounds, every 97th) with the age it was saved with.
    let step = if full { 1 } else { 97 };
    for i in (0..ids4.len()).step_by(step) {
        let i = i as u32;
        let seen = pools.v4.seen(&v4_addr(i));
        assert_eq!(seen, Some(LOADED_AT - age(i)), "IPv4 node {i} not restored");
    }
    for i in (0..ids6.len()).step_by(step) {
        let i = i as u32;
        let seen = pools.v6.seen(&v6_addr(i));
        assert_eq!(seen, Some(LOADED_AT - age(i)), "IPv6 node {i} not restored");
    }
    // The id index was built: the closest node to a saved id is that node.
    for i in [0, ids4.len() / 2, ids4.len() - 1] {
        let found = pools.v4.closest(&ids4[i], 8, &NodeFilter::ALL);
        assert_eq!(
            found.first().map(|n| n.id),
            Some(ids4[i]),
            "the id index of the loaded pool does not find node {i}"
        );
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// `{"median":..,"min":..,"max":..}` of `values` (rounded to `digits`).
fn spread(values: &[f64], digits: usize) -> String {
    format!(
        "{{\"median\":{:.digits$},\"min\":{:.digits$},\"max\":{:.digits$}}}",
        median(values),
        min(values),
        max(values)
    )
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("btdht-pool-load-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Writes the pool file once; returns its path and the generated ids.
fn write_file(dir: &Path, n4: usize) -> (PathBuf, Vec<NodeId>, Vec<NodeId>, SharedPools) {
    let started = Instant::now();
    let (pools, ids4, ids6) = build(n4, V6_NODES.min(n4 / 4));
    let built = started.elapsed();
    let shared: SharedPools = Arc::new(RwLock::new(pools));
    let path = dir.join("pool.bin");
    let written = persist::save(&path, &shared, SAVED_AT).expect("save the pool");
    assert_eq!(written, ids4.len() + ids6.len(), "persist::save lost nodes");
    eprintln!(
        "pool_load: {} IPv4 + {} IPv6 nodes built in {:.2} s, saved to {} ({} bytes)",
        ids4.len(),
        ids6.len(),
        built.as_secs_f64(),
        path.display(),
        fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
    );
    (path, ids4, ids6, shared)
}

fn load_figure(dir: &Path, n4: usize, rounds: usize) {
    let (path, ids4, ids6, shared) = write_file(dir, n4);
    let nodes = ids4.len() + ids6.len();
    let file_bytes = fs::metadata(&path).expect("the pool file").len();
    // Warm-up (page cache, allocator), checked in full.
    let (pools, loaded) = load(&path, n4);
    check_complete(&pools.read(), &ids4, &ids6, loaded, true);
    drop(pools);
    let (mut read, mut decode, mut loads, mut saves) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let started = Instant::now();
        let (records, _) = read_walk(&path);
        read.push(started.elapsed().as_secs_f64());
        assert_eq!(
            records, nodes,
            "the file holds {records} records, not {nodes}"
        );

        let started = Instant::now();
        let (decoded, _) = read_decode(&path);
        decode.push(started.elapsed().as_secs_f64());
        assert_eq!(decoded, nodes, "{decoded} records decoded, not {nodes}");

        let started = Instant::now();
        let (pools, loaded) = load(&path, n4);
        loads.push(started.elapsed().as_secs_f64());
        check_complete(&pools.read(), &ids4, &ids6, loaded, false);
        drop(pools);

        let started = Instant::now();
        let written = persist::save(&path, &shared, SAVED_AT).expect("save the pool");
        saves.push(started.elapsed().as_secs_f64());
        assert_eq!(
            written, nodes,
            "persist::save wrote {written} nodes, not {nodes}"
        );
        println!(
            "{{\"bench\":\"pool_load\",\"round\":{round},\"read_s\":{:.4},\"decode_s\":{:.4},\
             \"load_s\":{:.4},\"save_s\":{:.4}}}",
            read[round], decode[round], loads[round], saves[round]
        );
    }
    let over_read: Vec<f64> = loads.iter().zip(&read).map(|(l, r)| l / r).collect();
    let over_decode: Vec<f64> = loads.iter().zip(&decode).map(|(l, d)| l / d).collect();
    let load_median = median(&loads);
    println!(
        "{{\"bench\":\"pool_load\",\"summary\":true,\"nodes_v4\":{},\"nodes_v6\":{},\
         \"capacity\":{n4},\"file_bytes\":{file_bytes},\"rounds\":{rounds},\"read_s\":{},\
         \"decode_s\":{},\"load_s\":{},\"save_s\":{},\"load_nodes_per_s\":{:.0},\
         \"load_over_read\":{},\"load_over_decode\":{},\"load_share_of_5s_budget\":{:.4}}}",
        ids4.len(),
        ids6.len(),
        spread(&read, 4),
        spread(&decode, 4),
        spread(&loads, 4),
        spread(&saves, 4),
        nodes as f64 / load_median,
        spread(&over_read, 2),
        spread(&over_decode, 2),
        load_median / BUDGET.as_secs_f64()
    );
    eprintln!(
        "pool_load: {nodes} nodes ({file_bytes} bytes) load in {:.3} s median ({:.3}-{:.3}), \
         {:.1}x reading the file ({:.1}-{:.1}), {:.1}x decoding it ({:.1}-{:.1}), \
         {:.1}% of the 5 s budget; save {:.3} s median",
        load_median,
        min(&loads),
        max(&loads),
        median(&over_read),
        min(&over_read),
        max(&over_read),
        median(&over_decode),
        min(&over_decode),
        max(&over_decode),
        100.0 * load_median / BUDGET.as_secs_f64(),
        median(&saves)
    );
}

/// A `btdht bootstrap` child, killed if still running when dropped (e.g. on a panic).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What one start of the binary showed.
struct Start {
    server: Server,
    addr: SocketAddr,
    /// Nodes the server said it loaded.
    loaded: usize,
    /// Seconds the server said the start took (2 decimals).
    reported_s: f64,
    /// Spawn to the listening line, measured here.
    wall_s: f64,
}

/// Starts the binary on 127.0.0.1:0 (with `--state` if given) and waits for its start line.
fn start(state: Option<&Path>, capacity: usize) -> Start {
    let bin =
        std::env::var("BTDHT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_btdht").to_string());
    let mut command = Command::new(bin);
    command.args([
        "bootstrap",
        "--bind",
        "127.0.0.1:0",
        "--allow-private",
        "--bootstrap",
        "127.0.0.1:9",
        "--capacity",
        &capacity.to_string(),
    ]);
    if let Some(state) = state {
        command.arg("--state").arg(state);
    }
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start btdht bootstrap");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    // "btdht: bootstrap ID listening on ADDR (1 shards, N nodes loaded, M skipped in S s)"; the rest of
    // stderr is drained by the same thread.
    let (sender, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on ") {
                let _ = sender.send(line);
            }
        }
    });
    let line = listening.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        panic!("btdht bootstrap exited or printed no listening line within {DEADLINE:?}")
    });
    let wall_s = started.elapsed().as_secs_f64();
    let word_after = |marker: &str| -> &str {
        line.split(marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {marker:?} in {line:?}"))
    };
    let addr = word_after("listening on ").parse().expect("an address");
    let loaded = line
        .split(" nodes loaded")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no node count in {line:?}"));
    let reported_s = word_after(" skipped in ")
        .parse()
        .expect("seconds in the listening line");
    Start {
        server,
        addr,
        loaded,
        reported_s,
        wall_s,
    }
}

/// Sends one read-only `find_node` for `target` to `server`; the IPv4 nodes of the answer.
fn ask(server: SocketAddr, target: NodeId) -> Vec<NodeInfo> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut query = Message::query(
        b"pl".to_vec(),
        NodeId([0x42; 20]),
        QueryKind::FindNode {
            target,
            want: Want::UNSPECIFIED,
        },
    );
    query.read_only = true;
    let bytes = query.encode();
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        socket.send_to(&bytes, server).expect("send to the server");
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            if let Ok(decoded) = btdht::krpc::decode(&buf[..len])
                && let Body::Response(response) = decoded.message.body
            {
                return response.nodes.unwrap_or_default();
            }
        }
    }
    panic!("the bootstrap server did not answer find_node");
}

/// SIGTERM (the server saves its pool and exits); seconds until it exited.
fn stop(mut server: Server) -> f64 {
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    let exit = loop {
        if let Some(exit) = server.0.try_wait().expect("wait for btdht bootstrap") {
            break exit;
        }
        // Dropping `server` kills it.
        assert!(
            started.elapsed() < DEADLINE,
            "btdht bootstrap did not exit within {DEADLINE:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let stopped = started.elapsed().as_secs_f64();
    assert!(exit.success(), "btdht bootstrap exited with {exit}");
    stopped
}

fn binary_figure(dir: &Path, n4: usize, rounds: usize) {
    let (path, ids4, ids6, shared) = write_file(dir, n4);
    drop(shared);
    let nodes = ids4.len() + ids6.len();
    let state = dir.join("state.bin");
    let (mut empty_wall, mut empty_stop) = (vec![], vec![]);
    let (mut full_wall, mut full_reported, mut full_stop) = (vec![], vec![], vec![]);
    let mut rng = SmallRng::seed_from_u64(7);
    for round in 0..=rounds {
        // Round 0 warms up (binary and file in the page cache) and is not counted.
        let empty = start(None, n4);
        assert_eq!(empty.loaded, 0, "a server without --state loaded nodes");
        let empty_stopped = stop(empty.server);

        fs::copy(&path, &state).expect("copy the pool file");
        let full = start(Some(&state), n4);
        assert_eq!(
            full.loaded, nodes,
            "btdht bootstrap --state loaded {} nodes of {nodes} in the file",
            full.loaded
        );
        // It serves: a find_node for a saved id gets that node first.
        let i = rng.random_range(0..ids4.len());
        let answer = ask(full.addr, ids4[i]);
        assert_eq!(answer.len(), 8, "the answer holds {} nodes", answer.len());
        assert_eq!(
            (answer[0].id, answer[0].addr),
            (ids4[i], v4_addr(i as u32)),
            "the answer does not start with the node asked for"
        );
        let full_stopped = stop(full.server);
        let saved = fs::metadata(&state).expect("the saved state").len();
        println!(
            "{{\"bench\":\"pool_load_binary\",\"round\":{round},\"warmup\":{},\
             \"empty_start_s\":{:.4},\"empty_reported_s\":{:.2},\"empty_stop_s\":{:.4},\
             \"loaded\":{},\"start_s\":{:.4},\"reported_s\":{:.2},\"stop_and_save_s\":{:.4},\
             \"saved_bytes\":{saved}}}",
            round == 0,
            empty.wall_s,
            empty.reported_s,
            empty_stopped,
            full.loaded,
            full.wall_s,
            full.reported_s,
            full_stopped
        );
        if round > 0 {
            empty_wall.push(empty.wall_s);
            empty_stop.push(empty_stopped);
            full_wall.push(full.wall_s);
            full_reported.push(full.reported_s);
            full_stop.push(full_stopped);
        }
    }
    let extra: Vec<f64> = full_wall
        .iter()
        .zip(&empty_wall)
        .map(|(f, e)| f - e)
        .collect();
    let ratio: Vec<f64> = full_wall
        .iter()
        .zip(&empty_wall)
        .map(|(f, e)| f / e)
        .collect();
    println!(
        "{{\"bench\":\"pool_load_binary\",\"summary\":true,\"nodes\":{nodes},\"capacity\":{n4},\
         \"rounds\":{rounds},\"empty_start_s\":{},\"start_s\":{},\"reported_s\":{},\
         \"start_minus_empty_s\":{},\"start_over_empty\":{},\"stop_and_save_s\":{},\
         \"empty_stop_s\":{},\"start_share_of_5s_budget\":{:.4}}}",
        spread(&empty_wall, 4),
        spread(&full_wall, 4),
        spread(&full_reported, 2),
        spread(&extra, 4),
        spread(&ratio, 2),
        spread(&full_stop, 4),
        spread(&empty_stop, 4),
        median(&full_wall) / BUDGET.as_secs_f64()
    );
    eprintln!(
        "pool_load: btdht bootstrap with {nodes} nodes up in {:.3} s median ({:.3}-{:.3}; it \
         reported {:.2} s), {:.3} s with an empty pool; {:.1}% of the 5 s budget",
        median(&full_wall),
        min(&full_wall),
        max(&full_wall),
        median(&full_reported),
        median(&empty_wall),
        100.0 * median(&full_wall) / BUDGET.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: then only a quick pass.
    let full = args.iter().any(|a| a == "--bench");
    let n4 = if full {
        env_usize("POOL_NODES", 1_000_000)
    } else {
        20_000
    };
    assert!(
        (1..1 << 24).contains(&n4),
        "POOL_NODES must be between 1 and 2^24 - 1 (distinct 127.0.0.0/8 hosts)"
    );
    let rounds = if full {
        env_usize("POOL_ROUNDS", 7).max(1)
    } else {
        1
    };
    let which: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let dir = temp_dir();
    match which.first().copied() {
        None => {
            load_figure(&dir, n4, rounds);
            binary_figure(&dir, n4, rounds.min(5));
        }
        Some("load") => load_figure(&dir, n4, rounds),
        Some("binary") => binary_figure(&dir, n4, rounds),
        Some("write") => {
            let Some(target) = which.get(1) else {
                eprintln!("write needs a path: cargo bench --bench pool_load -- write PATH");
                std::process::exit(2);
            };
            let (path, ..) = write_file(&dir, n4);
            fs::copy(&path, target).expect("copy the pool file");
        }
        Some(other) => {
            eprintln!("unknown figure {other}; known: load, binary, write");
            std::process::exit(2);
        }
    }
    let _ = fs::remove_dir_all(&dir);
}
