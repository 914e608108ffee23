//! Metadata fetch interop with libtorrent on loopback: `tests/peers/lt_seed.py` creates a hybrid
//! (v1 + v2) torrent of a few hundred files with libtorrent and seeds it; `btdht metadata`
//! fetches its info dictionary, the names, sizes and files match what libtorrent was given, and
//! the saved `.torrent` file hashes to the info-hash.
//!
//! Needs the venv made by `tests/peers/setup.sh` (libtorrent from PyPI; `BTDHT_PEERS_PY` may
//! name its python). Without it the test says it is skipped on stderr and passes, unless
//! `BTDHT_REQUIRE_INTEROP` is set.

mod metadata_fake;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use metadata_fake::sha1;

const BIN: &str = env!("CARGO_BIN_EXE_btdht");

/// The seeding script. Dropping it closes its stdin, which stops it and lets it remove its
/// directory; it is killed if it has not exited after a few seconds.
struct Seeder(Child);

impl Drop for Seeder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let exited = support::wait_until_every(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(50),
            || matches!(self.0.try_wait(), Ok(Some(_))),
        );
        if !exited {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn python_or_skip() -> Option<PathBuf> {
    match support::libtorrent::libtorrent() {
        Ok((python, _)) => Some(python),
        Err(why) => {
            assert!(
                std::env::var_os("BTDHT_REQUIRE_INTEROP").is_none(),
                "BTDHT_REQUIRE_INTEROP is set but {why}"
            );
            let line = format!("metadata_interop: skipped: {why}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn fetches_the_metadata_of_a_torrent_libtorrent_seeds() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/lt_seed.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(["--many", "300", "--duration", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let seeder = Seeder(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let seeded: serde_json::Value = serde_json::from_str(&line).unwrap();
    let hash = seeded["infohash"].as_str().unwrap().to_string();
    let peer = format!("127.0.0.1:{}", seeded["port"]);

    let dir = support::temp_dir("metadata-interop");
    let saved = dir.join("lt.torrent");
    let out = run(&[
        "metadata",
        &hash,
        "--peer",
        &peer,
        "--json",
        "--save",
        saved.to_str().unwrap(),
        "--timeout",
        "20",
    ]);
    drop(seeder);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["infohash"], hash);
    assert_eq!(value["name"], seeded["name"]);
    assert_eq!(value["size"], seeded["total_size"]);
    assert_eq!(value["version"], "hybrid");
    assert_eq!(value["private"], false);
    let mut got: Vec<(String, u64)> = value["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["length"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut want: Vec<(String, u64)> = seeded["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["length"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let torrent = std::fs::read(&saved).unwrap();
    assert!(torrent.starts_with(b"d4:info") && torrent.ends_with(b"e"));
    assert_eq!(sha1(&torrent[7..torrent.len() - 1]).to_hex(), hash);
    let _ = std::fs::remove_dir_all(dir);
}
