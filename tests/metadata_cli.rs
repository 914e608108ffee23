//! `btdht metadata` through the real binary against fake peers on loopback: `--json` and
//! `--save` from a good peer, peers found through an in-process DHT, exit 1 with a reason per
//! peer against hostile ones, and exit 2 on bad arguments.

mod metadata_fake;
mod support;

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use btdht::InfoHash;
use metadata_fake::{Script, closed_port, info_dict, many_files, sha1, spawn, spawn_on};
use support::{loopback, temp_dir, wait_until};

const T: Duration = Duration::from_secs(10);

fn btdht(args: &[&str]) -> Output {
    support::btdht_command().args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn json_and_save_from_a_good_peer() {
    let files = many_files(600);
    let info = info_dict("cli-torrent", &files);
    let hash = sha1(&info);
    let peer = spawn(info.clone(), Script::Good);
    let dir = temp_dir("metadata-cli");
    let saved = dir.join("out.torrent");
    let out = btdht(&[
        "metadata",
        &hash.to_hex(),
        "--peer",
        &peer.to_string(),
        "--json",
        "--save",
        saved.to_str().unwrap(),
        "--timeout",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(value["type"], "torrent");
    assert_eq!(value["infohash"], hash.to_hex());
    assert_eq!(value["name"], "cli-torrent");
    assert_eq!(value["piece_length"], 16384);
    assert_eq!(value["private"], false);
    assert_eq!(value["version"], "v1");
    assert_eq!(
        value["size"].as_u64(),
        Some(files.iter().map(|(_, l)| l).sum::<u64>())
    );
    let listed = value["files"].as_array().unwrap();
    assert_eq!(listed.len(), files.len());
    for (got, (path, length)) in listed.iter().zip(&files) {
        assert_eq!(got["path"], path.join("/"));
        assert_eq!(got["length"].as_u64(), Some(*length));
    }
    let torrent = std::fs::read(&saved).unwrap();
    let mut expected = b"d4:info".to_vec();
    expected.extend_from_slice(&info);
    expected.push(b'e');
    assert_eq!(torrent, expected);
    assert_eq!(sha1(&torrent[7..torrent.len() - 1]), hash);

    // Readable output.
    let out = btdht(&["metadata", &hash.to_hex(), "--peer", &peer.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("name          cli-torrent"), "{text}");
    assert!(text.contains("dir-0/file-00000.bin"), "{text}");
}

#[test]
fn hostile_peers_exit_1_with_a_reason_each() {
    let info = info_dict("hostile-cli", &many_files(100));
    let hash = sha1(&info).to_hex();
    let rejecting = spawn(info.clone(), Script::Reject);
    let wrong = spawn(info_dict("other", &many_files(3)), Script::Good);
    let closed = closed_port();
    let out = btdht(&[
        "metadata",
        &hash,
        "--peer",
        &rejecting.to_string(),
        "--peer",
        &wrong.to_string(),
        "--peer",
        &closed.to_string(),
        "--timeout",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{rejecting}: the peer rejected piece 0")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{wrong}: the metadata does not match the info-hash"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{closed}: socket error (connect)")),
        "{err}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["metadata", "not-a-hash"][..],
        &[
            "metadata",
            "0123456789abcdef0123456789abcdef01234567",
            "--peer",
            "nowhere",
        ],
        &[
            "metadata",
            "0123456789abcdef0123456789abcdef01234567",
            "--timeout",
            "0",
        ],
    ] {
        let out = btdht(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn peers_found_through_the_dht() {
    let info = info_dict("from-the-dht", &many_files(20));
    let hash: InfoHash = sha1(&info);
    let seed = loopback(150).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in 151..156u8 {
        nodes.push(loopback(n).bootstrap([seed.local_addr()]).start().unwrap());
    }
    assert!(wait_until(T, || nodes
        .iter()
        .all(|d| d.routing_table().is_ok_and(|t| t.len() >= 3))));
    // The fake peer listens on the announcing node's IP, at the announced port.
    let peer: SocketAddr = spawn_on([127, 0, 153, 1].into(), info.clone(), Script::Good);
    let result = nodes[3].announce(hash, Some(peer.port()), false).unwrap();
    assert!(result.acknowledged > 0);

    let boot = seed.local_addr().to_string();
    let out = btdht(&[
        "metadata",
        &hash.to_hex(),
        "--bootstrap",
        &boot,
        "--allow-private",
        "--bind",
        "127.0.157.1:0",
        "--json",
        "--timeout",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(value["name"], "from-the-dht");
    assert_eq!(value["peer"], peer.to_string());
    for node in nodes {
        node.stop().unwrap();
    }
}
