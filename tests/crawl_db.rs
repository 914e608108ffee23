//! `btdht crawl --db` and `btdht db` through the real binary on loopback: a metadata crawl into
//! a database, its stats and export, a second crawl that resumes from it (seeded by its nodes,
//! sampling none of them inside their BEP 51 intervals, not fetching its torrents again); and
//! a crawl killed with SIGKILL whose database opens consistent and grows with the next crawl.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod metadata_fake;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use btdht::InfoHash;
use metadata_fake::{Script, info_dict, many_files, sha1, spawn_on};
use support::{loopback, temp_dir, wait_until};

const T: Duration = Duration::from_secs(10);

fn btdht(args: &[&str]) -> Output {
    support::btdht_command().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `btdht db stats` as (name, count) pairs, and its integrity line.
fn stats(db: &Path) -> (Vec<(String, u64)>, String) {
    let out = btdht(&["db", "stats", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut counts = Vec::new();
    let mut integrity = String::new();
    for line in text(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        match value.parse() {
            Ok(n) => counts.push((name.to_string(), n)),
            Err(_) => integrity = value.to_string(),
        }
    }
    (counts, integrity)
}

fn count(stats: &[(String, u64)], name: &str) -> u64 {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no {name} in {stats:?}"))
}

#[test]
fn a_metadata_crawl_fills_the_database_and_a_second_crawl_resumes_from_it() {
    let info = info_dict("db-torrent", &many_files(4));
    let hash: InfoHash = sha1(&info);
    let seed = loopback(240).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 241..245u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes
        .iter()
        .all(|d| d.routing_table().is_ok_and(|t| t.len() >= 3))));
    let peer: SocketAddr = spawn_on([127, 0, 242, 1].into(), info.clone(), Script::Good);
    assert!(
        nodes[2]
            .announce(hash, Some(peer.port()), false)
            .unwrap()
            .acknowledged
            > 0
    );

    let dir = temp_dir("crawl-db");
    let db = dir.join("crawl.db");
    let db_arg = db.to_str().unwrap();
    let crawl = |bootstrap: &str, bind: &str| {
        let out = btdht(&[
            "crawl",
            "--bootstrap",
            bootstrap,
            "--allow-private",
            "--bind",
            bind,
            "--metadata",
            "--per-ip-rate",
            "0",
            "--until-idle",
            "--sweep-rate",
            "50",
            "--duration",
            "60",
            "--db",
            db_arg,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "no NDJSON without --out");
        text(&out.stderr)
    };
    let first = crawl(&seed.local_addr().to_string(), "127.0.246.1:0");
    assert!(first.contains("1 torrents fetched"), "{first}");

    let (counts, integrity) = stats(&db);
    assert_eq!(integrity, "ok");
    assert_eq!(count(&counts, "nodes"), 5, "{counts:?}");
    assert_eq!(count(&counts, "infohashes"), 1, "{counts:?}");
    assert_eq!(count(&counts, "torrents"), 1, "{counts:?}");
    assert_eq!(count(&counts, "files"), 4, "{counts:?}");

    let out = btdht(&["db", "export", db_arg, "--ndjson"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = parse(&text(&out.stdout));
    let of = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
    assert_eq!((of("node"), of("infohash"), of("torrent")), (5, 1, 1));
    let torrent = lines.iter().find(|l| l["type"] == "torrent").unwrap();
    assert_eq!(torrent["infohash"], hash.to_hex());
    assert_eq!(torrent["name"], "db-torrent");
    assert_eq!(torrent["file_list"].as_array().unwrap().len(), 4);
    let infohash = lines.iter().find(|l| l["type"] == "infohash").unwrap();
    assert_eq!(infohash["peers"], 1);
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "node" && l["bep51"] == true)
    );

    // The second crawl's only given way in is a dead address: the database's nodes seed it,
    // and the torrent it has is not fetched again.
    let second = crawl("127.0.0.1:9", "127.0.247.1:0");
    assert!(second.contains("5 nodes"), "{second}");
    // The nodes' BEP 51 intervals (5 minutes) have not passed: none is sampled again.
    assert!(second.contains(" 0 info-hashes"), "{second}");
    assert!(second.contains("0 torrents fetched"), "{second}");
    let (counts, integrity) = stats(&db);
    assert_eq!(integrity, "ok");
    assert_eq!(count(&counts, "nodes"), 5, "upserts: {counts:?}");
    assert_eq!(count(&counts, "torrents"), 1, "{counts:?}");
    for node in nodes {
        node.stop().unwrap();
    }
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_crawl_killed_with_sigkill_leaves_a_consistent_database_that_the_next_crawl_extends() {
    let dir = temp_dir("crawl-db-kill");
    let truth = dir.join("truth.json");
    let mut swarm = support::btdht_command()
        .args(["swarm", "--nodes", "60", "--base-ip", "127.0.248.1"])
        .args(["--port", "47931", "--infohashes", "60", "--seed", "4"])
        .args(["--join-rate", "200", "--settle", "8", "--duration", "90"])
        .arg("--truth")
        .arg(&truth)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = support::stdout_lines(&mut swarm).expect("stdout is piped");
    let swarm = Guard(swarm);
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
    let boot = boot.expect("the swarm printed its bootstrap address");
    let db = dir.join("crawl.db");
    let db_arg = db.to_str().unwrap();
    let crawl_args = |bind: &'static str| {
        vec![
            "crawl".to_string(),
            "--bootstrap".into(),
            boot.clone(),
            "--allow-private".into(),
            "--bind".into(),
            bind.into(),
            "--get-peers".into(),
            "--db".into(),
            db_arg.into(),
        ]
    };
    // A slow crawl (10 queries/s), killed part-way.
    let mut slow = support::btdht_command()
        .args(crawl_args("127.0.249.1:0"))
        .args(["--rate", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a batch is committed (every second, or every 1,000 writes).
    let committed = || {
        let out = btdht(&["db", "stats", db.to_str().unwrap()]);
        out.status.success()
            && text(&out.stdout).lines().any(|line| {
                let mut words = line.split_whitespace();
                words.next() == Some("nodes")
                    && words.next().and_then(|n| n.parse::<u64>().ok()) > Some(0)
            })
    };
    support::wait_until_every(
        Duration::from_secs(20),
        Duration::from_millis(200),
        committed,
    );
    slow.kill().unwrap(); // SIGKILL
    slow.wait().unwrap();

    let (counts, integrity) = stats(&db);
    assert_eq!(integrity, "ok");
    let nodes_before = count(&counts, "nodes");
    assert!(nodes_before > 0, "committed batches survive: {counts:?}");
    assert!(
        nodes_before < 60,
        "the kill came before the end: {counts:?}"
    );
    assert!(count(&counts, "infohashes_with_peers") <= count(&counts, "infohashes"));

    let out = support::btdht_command()
        .args(crawl_args("127.0.250.1:0"))
        .args(["--per-ip-rate", "0", "--until-idle", "--sweep-rate", "50"])
        .args(["--duration", "60"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (counts, integrity) = stats(&db);
    assert_eq!(integrity, "ok");
    assert_eq!(count(&counts, "nodes"), 60, "{counts:?}");
    assert_eq!(count(&counts, "infohashes"), 60, "{counts:?}");
    drop(swarm);
}
