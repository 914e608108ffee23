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

use std::process::Output;

use support::libtorrent::Seeder;

use metadata_fake::sha1;

fn run(args: &[&str]) -> Output {
    support::btdht_command().args(args).output().unwrap()
}

#[test]
fn fetches_the_metadata_of_a_torrent_libtorrent_seeds() {
    let Some((python, _)) = support::libtorrent::libtorrent_or_skip() else {
        return;
    };
    let seeder = Seeder::start(
        &python,
        [127, 0, 0, 1].into(),
        1,
        &["--many", "300", "--duration", "60"],
    );
    let seeded = seeder.torrents[0].clone();
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
}
