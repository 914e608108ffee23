//! The PostgreSQL crawl database (`--db postgres://…`) against a real, throwaway PostgreSQL
//! server that each test starts on loopback ([`Server`]): the sink's upserts, a crawl of a
//! loopback swarm into PostgreSQL with the same totals as into SQLite, `btdht db stats` and
//! `db export` on the URL, and a resumed crawl that does not fetch its torrents again.
//!
//! Without PostgreSQL installed (no `initdb`), each test prints one line and passes, unless
//! `BTDHT_REQUIRE_POSTGRES=1` (set by `.ci/run`), which makes it fail.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod metadata_fake;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use btdht::crawler::db::Store;
use btdht::crawler::pg::PgDb;
use btdht::crawler::{Record, Torrent};
use btdht::metadata::{Info, Metadata};
use btdht::{InfoHash, Instant, NodeId};
use metadata_fake::{Script, info_dict, many_files, sha1, spawn_on};
use support::{TempDir, loopback, temp_dir, wait_until};

const T: Duration = Duration::from_secs(10);

/// The directory of `initdb` and `pg_ctl`: on `PATH`, else Debian's newest
/// `/usr/lib/postgresql/VERSION/bin`.
fn postgres_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A throwaway PostgreSQL server: `initdb` into a temporary directory, `pg_ctl start` on a
/// free loopback port with its unix socket in that directory (as the `postgres` user when
/// running as root, since PostgreSQL refuses root), stopped when dropped.
struct Server {
    bin: PathBuf,
    dir: TempDir,
    as_postgres: bool,
    port: u16,
}

impl Server {
    /// Starts one, or `None` (after saying so) when PostgreSQL is not installed.
    fn start(name: &str) -> Option<Server> {
        let Some(bin) = postgres_bin() else {
            if std::env::var("BTDHT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL is not installed (no initdb) and BTDHT_REQUIRE_POSTGRES=1");
            }
            println!(
                "skipped: PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql)"
            );
            return None;
        };
        let dir = temp_dir(&format!("pg-{name}"));
        let as_postgres = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.as_os_str())
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", dir.display());
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server {
            bin,
            dir,
            as_postgres,
            port,
        };
        let data = server.dir.join("data");
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "btdht",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", text(&out.stderr));
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c full_page_writes=off",
            server.dir.display()
        );
        let out = server
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(server.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .unwrap();
        let log = std::fs::read_to_string(server.dir.join("log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{log}",
            text(&out.stderr)
        );
        Some(server)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            // util-linux's runuser is in sbin, which a root PATH may lack.
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser"]
                .into_iter()
                .find(|p| Path::new(p).is_file())
                .unwrap_or("runuser");
            let mut c = Command::new(runuser);
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn url(&self) -> String {
        format!("postgres://btdht@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

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

/// `btdht db stats` as (name, count) pairs, and its integrity word.
fn stats(db: &str) -> (Vec<(String, u64)>, String) {
    let out = btdht(&["db", "stats", db]);
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

fn export(db: &mut PgDb) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    db.export_ndjson(&mut out).unwrap();
    parse(&text(&out))
}

fn torrent(name: &str, files: usize) -> Torrent {
    let info_bytes = info_dict(name, &many_files(files));
    Torrent {
        peer: "127.0.0.5:6881".parse().unwrap(),
        metadata: Box::new(Metadata {
            info_hash: sha1(&info_bytes),
            info: Info::parse(&info_bytes, 1_000).unwrap(),
            info_bytes,
        }),
    }
}

#[test]
fn the_sink_upserts_merge_times_flags_and_counts_across_batches() {
    let Some(server) = Server::start("sink") else {
        return;
    };
    let addr: SocketAddr = "127.0.0.9:6881".parse().unwrap();
    let other: SocketAddr = "127.0.0.10:6881".parse().unwrap();
    let node = |bep51, version: Option<&[u8]>| Record::Node {
        id: NodeId([7; 20]),
        addr,
        version: version.map(<[u8]>::to_vec),
        bep51,
        at: Instant::ZERO,
    };
    let hash = NodeId([9; 20]);
    let sample = |from| Record::InfoHash {
        info_hash: hash,
        from,
        at: Instant::ZERO,
    };
    let peers = |n| Record::Peers {
        info_hash: hash,
        from: addr,
        peers: n,
        addrs: Vec::new(),
        at: Instant::ZERO,
    };
    let mut db = PgDb::connect(&server.url()).unwrap();
    // One batch: the node twice (an upsert within the transaction) and an info-hash.
    db.record(&node(false, Some(b"LT\x01\x02")), 200.0).unwrap();
    db.record(&node(false, None), 250.0).unwrap();
    db.record(&sample(other), 300.0).unwrap();
    db.record(&peers(3), 300.0).unwrap();
    db.torrent(&torrent("first", 4), 300.0).unwrap();
    db.commit(300.0).unwrap();
    // A second batch, as a restart or another shard would write it: earlier and later times.
    let mut db = PgDb::connect(&server.url()).unwrap();
    db.record(&node(false, None), 100.0).unwrap();
    db.record(&sample(addr), 150.0).unwrap();
    db.record(&peers(2), 400.0).unwrap();
    db.torrent(&torrent("first", 4), 400.0).unwrap();
    db.commit(400.0).unwrap();
    // A third batch that is never committed.
    db.record(&node(true, None), 900.0).unwrap();
    drop(db);

    let mut db = PgDb::connect(&server.url()).unwrap();
    let s = db.stats().unwrap();
    assert_eq!((s.nodes, s.infohashes, s.with_peers), (1, 1, 1), "{s:?}");
    assert_eq!(
        (s.torrents, s.files),
        (1, 4),
        "files replaced, not added: {s:?}"
    );
    assert_eq!(s.bep51_nodes, 1, "its sample marked it");
    assert_eq!(db.integrity().unwrap(), "ok");
    let lines = export(&mut db);
    let n = lines.iter().find(|l| l["type"] == "node").unwrap();
    assert_eq!(n["first_seen"], 100.0, "{n}");
    assert_eq!(n["last_seen"], 250.0, "the uncommitted 900 is lost: {n}");
    assert_eq!(
        n["version"], "LT0102",
        "a missing version keeps the known one: {n}"
    );
    assert_eq!(n["bep51"], true);
    let i = lines.iter().find(|l| l["type"] == "infohash").unwrap();
    assert_eq!(i["first_seen"], 150.0, "{i}");
    assert_eq!(i["last_seen"], 300.0, "{i}");
    assert_eq!(
        i["from"],
        addr.to_string(),
        "the node that saw it first: {i}"
    );
    assert_eq!(i["peers"], 3, "the largest count: {i}");
    let t = lines.iter().find(|l| l["type"] == "torrent").unwrap();
    assert_eq!(t["name"], "first");
    assert_eq!(t["seen"], 400.0);
    assert_eq!(t["file_list"].as_array().unwrap().len(), 4, "{t}");
    assert_eq!(
        db.known_nodes(10).unwrap(),
        vec![addr],
        "the committed node seeds a crawl"
    );
    assert_eq!(
        db.fetched_infohashes().unwrap(),
        vec![sha1(&info_dict("first", &many_files(4)))]
    );
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_swarm_crawled_into_postgres_gives_the_totals_of_sqlite() {
    let Some(server) = Server::start("swarm") else {
        return;
    };
    let url = server.url();
    let dir = temp_dir("crawl-pg-swarm");
    let mut swarm = support::btdht_command()
        .args(["swarm", "--nodes", "60", "--base-ip", "127.0.251.1"])
        .args(["--port", "47951", "--infohashes", "60", "--seed", "5"])
        .args(["--join-rate", "200", "--settle", "8", "--duration", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = support::stdout_lines(&mut swarm).expect("stdout is piped");
    let swarm = Guard(swarm);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
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
    let sqlite = dir.join("crawl.db");
    let sqlite = sqlite.to_str().unwrap();
    let crawl = |db: &str, bind: &str| {
        let out = btdht(&[
            "crawl",
            "--bootstrap",
            &boot,
            "--allow-private",
            "--bind",
            bind,
            "--get-peers",
            "--per-ip-rate",
            "0",
            "--until-idle",
            "--sweep-rate",
            "50",
            "--duration",
            "60",
            "--db",
            db,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    };
    crawl(sqlite, "127.0.252.1:0");
    crawl(&url, "127.0.253.1:0");
    let (lite, integrity) = stats(sqlite);
    assert_eq!(integrity, "ok");
    let (pg, integrity) = stats(&url);
    assert_eq!(integrity, "ok");
    assert_eq!(count(&pg, "nodes"), 60, "{pg:?}");
    assert_eq!(count(&pg, "infohashes"), 60, "{pg:?}");
    for name in [
        "nodes",
        "bep51_nodes",
        "infohashes",
        "infohashes_with_peers",
        "torrents",
    ] {
        assert_eq!(
            count(&pg, name),
            count(&lite, name),
            "{name}: {pg:?} vs {lite:?}"
        );
    }
    let out = btdht(&["db", "export", &url, "--ndjson"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = parse(&text(&out.stdout));
    let of = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
    assert_eq!((of("node"), of("infohash")), (60, 60));
    drop(swarm);
}

#[test]
fn a_metadata_crawl_into_postgres_resumes_without_fetching_again() {
    let Some(server) = Server::start("resume") else {
        return;
    };
    let url = server.url();
    let info = info_dict("pg-torrent", &many_files(3));
    let hash: InfoHash = sha1(&info);
    let seed = loopback(230).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 231..235u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes
        .iter()
        .all(|d| d.routing_table().is_ok_and(|t| t.len() >= 3))));
    let peer: SocketAddr = spawn_on([127, 0, 232, 1].into(), info.clone(), Script::Good);
    assert!(
        nodes[2]
            .announce(hash, Some(peer.port()), false)
            .unwrap()
            .acknowledged
            > 0
    );
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
            &url,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "no NDJSON without --out");
        text(&out.stderr)
    };
    let first = crawl(&seed.local_addr().to_string(), "127.0.238.1:0");
    assert!(first.contains("1 torrents fetched"), "{first}");
    let (counts, _) = stats(&url);
    assert_eq!(count(&counts, "nodes"), 5, "{counts:?}");
    assert_eq!(count(&counts, "torrents"), 1, "{counts:?}");
    assert_eq!(count(&counts, "files"), 3, "{counts:?}");

    // Seeded only by the database's nodes (the given address is dead); the torrent it has is
    // not fetched again.
    let second = crawl("127.0.0.1:9", "127.0.239.1:0");
    assert!(second.contains("5 nodes"), "{second}");
    assert!(second.contains("0 torrents fetched"), "{second}");
    let (counts, integrity) = stats(&url);
    assert_eq!(integrity, "ok");
    assert_eq!(count(&counts, "nodes"), 5, "upserts: {counts:?}");
    assert_eq!(count(&counts, "torrents"), 1, "{counts:?}");
    for node in nodes {
        node.stop().unwrap();
    }
}
