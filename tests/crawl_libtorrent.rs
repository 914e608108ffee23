//! `btdht crawl --metadata` against real libtorrent seeders on loopback: libtorrent
//! (`tests/peers/lt_seed.py`) seeds freshly made torrents, in-process DHT nodes announce them at
//! the seeder's address, and the crawl finds every info-hash through BEP 51 samples, asks for
//! its peers and fetches its metadata from libtorrent: names, sizes and file counts match what
//! libtorrent created.
//!
//! Needs the venv made by `tests/peers/setup.sh`; skipped with one line of output without it,
//! unless `BTDHT_REQUIRE_INTEROP` is set.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use btdht::InfoHash;
use support::libtorrent::{Seeder, libtorrent_or_skip};
use support::{loopback, temp_dir, wait_until};

const TORRENTS: usize = 6;

#[test]
fn a_metadata_crawl_fetches_every_torrent_libtorrent_seeds() {
    let Some((python, _)) = libtorrent_or_skip() else {
        return;
    };
    let seed = loopback(240).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 241..246u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(Duration::from_secs(10), || nodes
        .iter()
        .all(|d| d.routing_table().is_ok_and(|t| t.len() >= 3))));

    // The seeder listens on the announcing node's IP, so the announced peer is the seeder.
    let announcer = &nodes[3];
    let seeder = Seeder::start(
        &python,
        [127, 0, 243, 1].into(),
        TORRENTS,
        &["--duration", "120"],
    );
    let mut want = BTreeMap::new();
    for torrent in &seeder.torrents {
        let hash = InfoHash::from_hex(torrent["infohash"].as_str().unwrap()).unwrap();
        let port = u16::try_from(torrent["port"].as_u64().unwrap()).unwrap();
        let stored = announcer.announce(hash, Some(port), true).unwrap();
        assert!(stored.acknowledged > 0, "{hash} was stored nowhere");
        want.insert(hash.to_hex(), torrent.clone());
    }

    let dir = temp_dir("crawl-libtorrent");
    let out_path = dir.join("crawl.ndjson");
    let out = support::btdht_command()
        .args(["crawl", "--bootstrap", &seed.local_addr().to_string()])
        .args(["--allow-private", "--bind", "127.0.246.1:0", "--metadata"])
        .args(["--per-ip-rate", "0", "--until-idle", "--sweep-rate", "50"])
        .args(["--duration", "90"])
        .arg("--out")
        .arg(&out_path)
        .output()
        .unwrap();
    drop(seeder);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let mut got = BTreeMap::new();
    for torrent in lines.iter().filter(|l| l["type"] == "torrent") {
        got.insert(torrent["infohash"].as_str().unwrap().to_string(), torrent);
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "torrents fetched differ from the torrents seeded\n{stderr}"
    );
    for (hash, torrent) in &got {
        let seeded = &want[hash];
        assert_eq!(torrent["name"], seeded["name"], "{hash}");
        assert_eq!(torrent["size"], seeded["total_size"], "{hash}");
        assert_eq!(
            torrent["files"].as_u64(),
            Some(seeded["files"].as_array().unwrap().len() as u64),
            "{hash}"
        );
        assert_eq!(torrent["private"], false, "{hash}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["torrents"], TORRENTS as u64, "{summary}");
    for node in nodes {
        node.stop().unwrap();
    }
}
