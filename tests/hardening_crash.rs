//! Crash-safe state: the real `btdht node` binary, saving a state of 5,000 peers and
//! 200 nodes every 20 ms, is killed with SIGKILL 100 times, each a random 0-40 ms after a save
//! began; after every kill
//! the state file loads, with the same id and all the peers (the previous snapshot or the new
//! one, never a torn one). Temporary files of interrupted saves are removed at the next start.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use btdht::NodeId;
use btdht::contact::NodeInfo;
use btdht::driver::persist::{SavedNode, SavedPeer, State, load_state, save_state};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const PEERS: usize = 5_000;

fn initial_state() -> State {
    let nodes = (0..200u32)
        .map(|i| SavedNode {
            node: NodeInfo::new(
                NodeId([i as u8; 20]),
                SocketAddr::from(([127, 9, (i >> 8) as u8, i as u8], 7000)),
            ),
            since_response: Some(Duration::from_secs(60)),
        })
        .collect();
    let peers = (0..PEERS as u32)
        .map(|i| {
            let mut info_hash = [0xab; 20];
            info_hash[..4].copy_from_slice(&(i % 1_000).to_be_bytes());
            SavedPeer {
                info_hash: NodeId(info_hash),
                addr: SocketAddr::from(([127, 10, (i >> 8) as u8, i as u8], 6881)),
                seed: i % 2 == 0,
                age: Duration::from_secs(10),
            }
        })
        .collect();
    State {
        id: NodeId([0x42; 20]),
        nodes,
        peers,
    }
}

/// Temporary files of saves in `dir`.
fn temporaries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(".tmp"))
        })
        .count()
}

/// The file's inode: a save renames a new file over the old one.
fn inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn sigkill_during_saves_never_leaves_a_broken_state_file() {
    let dir = support::temp_dir("crash");
    let path = dir.join("state.json");
    save_state(&path, &initial_state()).unwrap();
    let mut rng = SmallRng::seed_from_u64(7);
    let (mut replaced, mut interrupted) = (0, 0);
    for round in 0..100u32 {
        let before = inode(&path);
        let mut child = support::btdht_command()
            .args(["node", "--allow-private", "--quiet", "--state"])
            .arg(&path)
            .args([
                "--bind",
                &format!("127.0.{}.{}:0", 20 + round / 250, 1 + round % 250),
            ])
            .args(["--bootstrap", "127.0.0.1:9"])
            .env("BTDHT_SAVE_INTERVAL_MS", "20")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("btdht binary starts");
        // Wait until a save is under way (its temporary file exists), then kill it a random
        // few milliseconds later: during the write, the fsync, the rename or the next save.
        support::wait_until_every(Duration::from_millis(250), Duration::from_millis(1), || {
            temporaries(&dir) > 0
        });
        std::thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let state = match load_state(&path) {
            Ok(Some(state)) => state,
            other => panic!("round {round}: the state file does not load: {other:?}"),
        };
        assert_eq!(state.id, NodeId([0x42; 20]), "round {round}");
        assert_eq!(state.peers.len(), PEERS, "round {round}");
        replaced += usize::from(inode(&path) != before);
        interrupted += usize::from(temporaries(&dir) > 0);
    }
    eprintln!(
        "100 kills: the state file was replaced in {replaced} rounds; \
         {interrupted} rounds left a temporary file of an interrupted save"
    );
    // Temporary files of interrupted saves do not pile up: each start removes the last one.
    let left = temporaries(&dir);
    assert!(left <= 1, "{left} temporary files left");
}
