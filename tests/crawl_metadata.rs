//! `btdht crawl --metadata` through the real binary on loopback: in-process DHT nodes, one of
//! which announced an info-hash whose peer is a fake metadata peer; the crawl samples the
//! info-hash, asks the node for its peers, fetches the metadata and prints the torrent.

mod metadata_fake;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use btdht::InfoHash;
use metadata_fake::{Script, info_dict, many_files, sha1, spawn_on};
use support::{loopback, temp_dir, wait_until};

const T: Duration = Duration::from_secs(10);

fn parse(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_metadata_crawl_prints_the_torrent_of_an_announced_fake_peer() {
    let info = info_dict("crawled-torrent", &many_files(5));
    let hash: InfoHash = sha1(&info);
    // An info-hash whose only peer serves nothing: its fetch fails and is counted.
    let dead_hash = sha1(b"no such torrent");
    let seed = loopback(230).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 231..236u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes
        .iter()
        .all(|d| d.routing_table().is_ok_and(|t| t.len() >= 3))));
    // The fake peer listens on the announcing node's IP, at the announced port.
    let peer: SocketAddr = spawn_on([127, 0, 233, 1].into(), info.clone(), Script::Good);
    assert!(
        nodes[3]
            .announce(hash, Some(peer.port()), false)
            .unwrap()
            .acknowledged
            > 0
    );
    let silent: SocketAddr = spawn_on([127, 0, 234, 1].into(), info.clone(), Script::Reject);
    assert!(
        nodes[4]
            .announce(dead_hash, Some(silent.port()), false)
            .unwrap()
            .acknowledged
            > 0
    );

    let dir = temp_dir("crawl-metadata");
    let out_path = dir.join("crawl.ndjson");
    let out = support::btdht_command()
        .args(["crawl", "--bootstrap", &seed.local_addr().to_string()])
        .args(["--allow-private", "--bind", "127.0.236.1:0", "--metadata"])
        .args(["--metadata-concurrency", "4", "--per-ip-rate", "0"])
        .args(["--until-idle", "--sweep-rate", "50", "--duration", "60"])
        .arg("--out")
        .arg(&out_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = parse(&std::fs::read_to_string(&out_path).unwrap());

    let torrents: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["type"] == "torrent").collect();
    assert_eq!(torrents.len(), 1, "{lines:?}");
    let torrent = torrents[0];
    assert_eq!(torrent["infohash"], hash.to_hex());
    assert_eq!(torrent["name"], "crawled-torrent");
    assert_eq!(torrent["files"], 5);
    assert_eq!(torrent["peer"], peer.to_string());
    assert_eq!(torrent["private"], false);
    assert!(torrent["piece_length"].as_u64().is_some_and(|n| n > 0));
    assert!(torrent["size"].as_u64().is_some_and(|n| n > 0));
    // Both info-hashes were found and their peers listed.
    for h in [hash, dead_hash] {
        assert!(
            lines
                .iter()
                .any(|l| l["type"] == "peers" && l["infohash"] == h.to_hex() && l["peers"] == 1),
            "{h}: {lines:?}"
        );
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["torrents"], 1);
    assert_eq!(summary["torrents_exhausted"], 1);
    assert_eq!(summary["metadata_failures"]["rejected"], 1, "{summary}");
    assert!(stderr.contains("1 torrents fetched"), "{stderr}");
    assert!(stderr.contains("rejected 1"), "{stderr}");
    for node in nodes {
        node.stop().unwrap();
    }
}
