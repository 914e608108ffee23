//! `btdht swarm` and `btdht crawl` as processes, on loopback: the crawl's NDJSON matches the
//! swarm's ground truth, has no duplicates and ends with a summary; SIGINT ends a crawl with
//! its output flushed and exit status 0; a swarm that would leave 127.0.0.0/8 is refused; two
//! crawls on the two halves of the id space (`--shard 0/2`, `--shard 1/2`) into one database
//! hold what one crawl finds, and a bad `--shard` exits 2; `--until-idle` with a silent or
//! filtered bootstrap node exits 1 long before `--duration`, saying why.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

use std::collections::HashSet;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a swarm and waits (bounded) for its `ready` line; returns it and its bootstrap.
fn swarm(nodes: u32, base: &str, port: u16, truth: &std::path::Path) -> (Guard, String) {
    let mut child = support::btdht_command()
        .args(["swarm", "--nodes", &nodes.to_string(), "--base-ip", base])
        .args([
            "--port",
            &port.to_string(),
            "--infohashes",
            "40",
            "--seed",
            "9",
        ])
        .args(["--join-rate", "200", "--settle", "8", "--duration", "60"])
        .arg("--truth")
        .arg(truth)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = support::stdout_lines(&mut child).expect("stdout is piped");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut boot = None;
    while let Ok(line) = rx.recv_deadline(deadline) {
        if let Some(addr) = line.strip_prefix("bootstrap ") {
            boot = Some(addr.to_string());
        }
        if line == "ready" {
            break;
        }
    }
    (
        Guard(child),
        boot.expect("swarm printed its bootstrap address"),
    )
}

fn parse(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_crawl_finds_the_swarm_ground_truth() {
    let dir = support::temp_dir("crawl-cli");
    let truth_path = dir.join("truth.json");
    let (_swarm, boot) = swarm(60, "127.0.200.1", 47821, &truth_path);
    let out_path = dir.join("crawl.ndjson");
    let status = support::btdht_command()
        .args([
            "crawl",
            "--bootstrap",
            &boot,
            "--allow-private",
            "--until-idle",
        ])
        .args(["--duration", "20", "--seed", "1", "--out"])
        .arg(&out_path)
        .status()
        .unwrap();
    assert!(status.success());
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let records = parse(&std::fs::read_to_string(&out_path).unwrap());

    let truth_nodes: HashSet<(String, String)> = truth["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].to_string(), n["addr"].to_string()))
        .collect();
    let truth_hashes: HashSet<String> = truth["infohashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.to_string())
        .collect();
    assert_eq!((truth_nodes.len(), truth_hashes.len()), (60, 40));
    let mut nodes = HashSet::new();
    let mut hashes = HashSet::new();
    for r in &records {
        match r["type"].as_str() {
            Some("node") => {
                assert!(r["first_seen"].as_f64().is_some_and(|t| t > 1e9), "{r}");
                assert!(nodes.insert((r["id"].to_string(), r["addr"].to_string())));
            }
            Some("infohash") => assert!(hashes.insert(r["infohash"].to_string())),
            _ => {}
        }
    }
    let summary = records.last().unwrap();
    assert_eq!(nodes.len(), truth_nodes.len(), "{summary}");
    assert_eq!(nodes, truth_nodes);
    assert_eq!(hashes, truth_hashes);
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["nodes"], 60);
    assert!(
        summary["queries_per_node"].as_f64().unwrap() <= 1.5,
        "{summary}"
    );
}

#[test]
fn sigint_ends_a_crawl_with_its_output_flushed() {
    let dir = support::temp_dir("crawl-int");
    let (_swarm, boot) = swarm(20, "127.0.201.1", 47822, &dir.join("truth.json"));
    let child = support::btdht_command()
        .args([
            "crawl",
            "--bootstrap",
            &boot,
            "--allow-private",
            "--seed",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let records = parse(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(records.iter().filter(|r| r["type"] == "node").count(), 20);
    assert_eq!(records.last().unwrap()["type"], "summary");
    assert!(String::from_utf8_lossy(&out.stderr).contains("crawl:"));
}

#[test]
fn a_swarm_outside_loopback_is_refused() {
    let out = support::btdht_command()
        .args(["swarm", "--nodes", "10", "--base-ip", "127.255.255.250"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `btdht db stats FILE` as (name, value) pairs.
fn db_stats(db: &std::path::Path) -> Vec<(String, String)> {
    let out = support::btdht_command()
        .args(["db", "stats"])
        .arg(db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

fn stat(stats: &[(String, String)], name: &str) -> u64 {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {stats:?}"))
}

#[test]
fn two_shards_into_one_database_hold_what_one_crawl_finds() {
    let dir = support::temp_dir("crawl-shard");
    let (_swarm, boot) = swarm(60, "127.0.202.1", 47823, &dir.join("truth.json"));
    // One crawl: its summary line (the NDJSON goes to `--out`, the rows to `db`).
    let crawl = |shard: &str, db: &std::path::Path| {
        let out_path = dir.join(format!("crawl-{}.ndjson", shard.replace('/', "-")));
        let out = support::btdht_command()
            .args(["crawl", "--bootstrap", &boot, "--allow-private"])
            .args(["--until-idle", "--duration", "30", "--seed", "3"])
            .args(["--shard", shard, "--db"])
            .arg(db)
            .arg("--out")
            .arg(&out_path)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records = parse(&std::fs::read_to_string(&out_path).unwrap());
        records.last().unwrap().clone()
    };
    let shared = dir.join("shards.db");
    let first = crawl("0/2", &shared);
    let second = crawl("1/2", &shared);
    let single = dir.join("one.db");
    let whole = crawl("0/1", &single);
    let (halves, one) = (db_stats(&shared), db_stats(&single));

    assert_eq!(stat(&one, "infohashes"), 40, "{whole}");
    assert_eq!(stat(&halves, "infohashes"), 40, "{first} {second}");
    assert_eq!(stat(&halves, "nodes"), stat(&one, "nodes"));
    // Each shard found part of them, and together exactly all: no info-hash twice.
    let (a, b) = (
        first["infohashes"].as_u64().unwrap(),
        second["infohashes"].as_u64().unwrap(),
    );
    assert!(a > 0 && b > 0 && a + b == 40, "{first} {second}");
    assert_eq!(
        (first["shard"].as_str(), second["shard"].as_str()),
        (Some("0/2"), Some("1/2"))
    );
}

#[test]
fn a_bad_shard_exits_2_saying_what_is_wrong() {
    for (value, says) in [
        ("3/2", "below the count"),
        ("0/0", "at least 1"),
        ("x", "expected I/N"),
    ] {
        let out = support::btdht_command()
            .args(["crawl", "--shard", value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--shard") && err.contains(says),
            "{value}: {err}"
        );
    }
}

#[test]
fn until_idle_ends_a_crawl_whose_bootstrap_never_answers_long_before_its_duration() {
    // A bound socket that never reads: datagrams to it are neither answered nor refused.
    let silent = std::net::UdpSocket::bind("127.0.203.1:0").unwrap();
    let bootstrap = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = support::btdht_command()
        .args(["crawl", "--bootstrap", &bootstrap, "--allow-private"])
        .args([
            "--bind",
            "127.0.203.2:0",
            "--until-idle",
            "--duration",
            "120",
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("found nothing: no bootstrap node answered (2 queries sent, 2 timeouts"),
        "{err}"
    );
    // Two query timeouts of 2 s, not the 120 s of --duration.
    assert!(took < Duration::from_secs(30), "{took:?}");

    // An IPv6 bootstrap node for a crawl with only an IPv4 socket: filtered, nothing sent.
    let out = support::btdht_command()
        .args(["crawl", "--bootstrap", "[::1]:6881", "--allow-private"])
        .args([
            "--bind",
            "127.0.203.2:0",
            "--until-idle",
            "--duration",
            "120",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("found nothing: every bootstrap node was filtered (1 filtered"),
        "{err}"
    );
}
