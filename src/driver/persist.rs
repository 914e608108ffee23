//! The saved state of a node and the persistence thread that writes it.
//!
//! A [`State`] holds the node id, the good and questionable nodes of both routing tables and
//! optionally the announce store. It is written as one JSON object (format version
//! [`STATE_VERSION`]) to a temporary file beside the target, fsynced, then renamed over the
//! target, so a crash leaves either the old or the new file, never a torn one. Reading checks
//! the version and every field; a bad file is an error for the caller to log and ignore.
//!
//! Times are stored as ages in seconds relative to the moment of saving, since the core's
//! clock has a new epoch after a restart.

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};

use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};

/// The state file format's version.
pub const STATE_VERSION: u64 = 1;

/// Largest state file read (a full table is a few hundred KiB; peers add at most a few MiB).
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// A saved node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedNode {
    /// The node.
    pub node: NodeInfo,
    /// How long before saving it last answered us, if known.
    pub since_response: Option<Duration>,
}

/// A saved announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedPeer {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer.
    pub addr: SocketAddr,
    /// BEP 33 seed flag.
    pub seed: bool,
    /// How long before saving it announced.
    pub age: Duration,
}

/// What is persisted of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The node id.
    pub id: NodeId,
    /// Nodes of the routing tables (IPv4 and IPv6), good ones first.
    pub nodes: Vec<SavedNode>,
    /// Stored announces (empty unless the driver is configured to save them).
    pub peers: Vec<SavedPeer>,
}

/// Why a state file could not be used.
#[derive(Debug)]
pub enum StateError {
    /// The file could not be read.
    Io(io::Error),
    /// The file is larger than [`MAX_STATE_BYTES`].
    TooLarge(u64),
    /// The file is not valid JSON (corrupt or truncated).
    Json(serde_json::Error),
    /// The JSON is not a state of a known version, or a field is wrong.
    Format(String),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Io(e) => write!(f, "cannot read state file: {e}"),
            StateError::TooLarge(n) => write!(f, "state file is too large ({n} bytes)"),
            StateError::Json(e) => write!(f, "state file is corrupt or truncated: {e}"),
            StateError::Format(what) => write!(f, "state file is invalid: {what}"),
        }
    }
}

impl std::error::Error for StateError {}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

impl State {
    /// The state as a JSON value.
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.node.id.to_hex(),
                    "addr": n.node.addr.to_string(),
                    "since_response": n.since_response.map(secs),
                })
            })
            .collect();
        let peers: Vec<Value> = self
            .peers
            .iter()
            .map(|p| {
                json!({
                    "info_hash": p.info_hash.to_hex(),
                    "addr": p.addr.to_string(),
                    "seed": p.seed,
                    "age": secs(p.age),
                })
            })
            .collect();
        json!({
            "btdht_state": STATE_VERSION,
            "id": self.id.to_hex(),
            "nodes": nodes,
            "peers": peers,
        })
    }

    /// Parses a state from JSON text.
    pub fn from_json(text: &[u8]) -> Result<State, StateError> {
        let value: Value = serde_json::from_slice(text).map_err(StateError::Json)?;
        let bad = |what: &str| StateError::Format(what.to_string());
        match value.get("btdht_state").and_then(Value::as_u64) {
            Some(STATE_VERSION) => {}
            Some(v) => return Err(StateError::Format(format!("unknown version {v}"))),
            None => return Err(bad("no btdht_state version")),
        }
        let id = parse_id(value.get("id")).ok_or_else(|| bad("id"))?;
        let mut state = State {
            id,
            ..State::default()
        };
        for n in value
            .get("nodes")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("nodes"))?
        {
            let id = parse_id(n.get("id")).ok_or_else(|| bad("node id"))?;
            let addr = parse_addr(n.get("addr")).ok_or_else(|| bad("node addr"))?;
            let since_response = n
                .get("since_response")
                .and_then(Value::as_u64)
                .map(Duration::from_secs);
            state.nodes.push(SavedNode {
                node: NodeInfo::new(id, addr),
                since_response,
            });
        }
        if let Some(peers) = value.get("peers").and_then(Value::as_array) {
            for p in peers {
                let info_hash = parse_id(p.get("info_hash")).ok_or_else(|| bad("info_hash"))?;
                let addr = parse_addr(p.get("addr")).ok_or_else(|| bad("peer addr"))?;
                let seed = p.get("seed").and_then(Value::as_bool).unwrap_or(false);
                let age = Duration::from_secs(p.get("age").and_then(Value::as_u64).unwrap_or(0));
                state.peers.push(SavedPeer {
                    info_hash,
                    addr,
                    seed,
                    age,
                });
            }
        }
        Ok(state)
    }
}

fn parse_id(value: Option<&Value>) -> Option<NodeId> {
    NodeId::from_hex(value?.as_str()?).ok()
}

fn parse_addr(value: Option<&Value>) -> Option<SocketAddr> {
    value?.as_str()?.parse().ok()
}

/// Reads a state file. A missing file is `Ok(None)`; anything else wrong is an error.
pub fn load_state(path: &Path) -> Result<Option<State>, StateError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Io(e)),
    };
    if meta.len() > MAX_STATE_BYTES {
        return Err(StateError::TooLarge(meta.len()));
    }
    let bytes = fs::read(path).map_err(StateError::Io)?;
    State::from_json(&bytes).map(Some)
}

/// Removes the temporary files that [`save_state`] of a killed process left beside `path`
/// (`.NAME.tmpPID`), so that repeated crashes during saves do not fill the disk. Called once at
/// start, before the persistence thread runs; returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> usize {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name() else {
        return 0;
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let is_temporary = file_name
            .strip_prefix(&prefix)
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if is_temporary && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The lock file a node holds while it keeps its state in `path`: `NAME.lock` beside it (the
/// state file itself cannot carry the lock, as each save replaces it by a rename).
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// What [`lock_state`] found.
#[derive(Debug)]
pub(crate) enum Lock {
    /// The lock is held by this process until the file is closed.
    Held(fs::File),
    /// Another node holds it (in another process, or in this one through another open file).
    InUse,
    /// The lock file could not be opened or locked (e.g. a read-only directory).
    Unavailable(io::Error),
}

/// Takes the advisory lock ([`lock_path`]) that keeps two nodes from sharing one state file:
/// both would save over each other, and each would remove the other's temporary files at
/// start. The OS drops the lock when the process ends, however it ends.
pub(crate) fn lock_state(path: &Path) -> Lock {
    let file = match fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(path))
    {
        Ok(file) => file,
        Err(e) => return Lock::Unavailable(e),
    };
    match file.try_lock() {
        Ok(()) => Lock::Held(file),
        Err(fs::TryLockError::WouldBlock) => Lock::InUse,
        Err(fs::TryLockError::Error(e)) => Lock::Unavailable(e),
    }
}

/// Writes `state` to `path` atomically: a temporary file in the same directory, fsync,
/// rename, then an fsync of the directory (best effort).
pub fn save_state(path: &Path, state: &State) -> io::Result<()> {
    let mut text = serde_json::to_vec(&state.to_json()).map_err(io::Error::other)?;
    text.push(b'\n');
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "state path has no name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A write for the persistence thread, with whom to tell the result.
pub(crate) struct Job {
    pub state: State,
    pub reply: Option<Sender<io::Result<()>>>,
}

/// The persistence thread: writes each job's state to `path` until the channel closes.
pub(crate) fn run(path: PathBuf, jobs: Receiver<Job>) {
    while let Ok(mut job) = jobs.recv() {
        // Only the latest state matters: skip to the newest queued job, answering the others.
        while let Ok(newer) = jobs.try_recv() {
            if let Some(reply) = job.reply.take() {
                let _ = reply.send(Ok(()));
            }
            job = newer;
        }
        let result = save_state(&path, &job.state);
        match &result {
            Ok(()) => log::debug!(
                "state saved to {} ({} nodes, {} peers)",
                path.display(),
                job.state.nodes.len(),
                job.state.peers.len()
            ),
            Err(e) => log::warn!("cannot save state to {}: {e}", path.display()),
        }
        if let Some(reply) = job.reply {
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            id: NodeId([7; 20]),
            nodes: vec![
                SavedNode {
                    node: NodeInfo::new(NodeId([1; 20]), "1.2.3.4:6881".parse().unwrap()),
                    since_response: Some(Duration::from_secs(30)),
                },
                SavedNode {
                    node: NodeInfo::new(NodeId([2; 20]), "[2001:db8::1]:6881".parse().unwrap()),
                    since_response: None,
                },
            ],
            peers: vec![SavedPeer {
                info_hash: NodeId([3; 20]),
                addr: "5.6.7.8:51413".parse().unwrap(),
                seed: true,
                age: Duration::from_secs(60),
            }],
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = std::env::temp_dir().join(format!("btdht-persist-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert!(load_state(&path).unwrap().is_none());
        save_state(&path, &sample()).unwrap();
        assert_eq!(load_state(&path).unwrap(), Some(sample()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_errors() {
        let text = serde_json::to_vec(&sample().to_json()).unwrap();
        for cut in [0, 1, text.len() / 2, text.len() - 1] {
            assert!(State::from_json(&text[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            State::from_json(br#"{"btdht_state": 99, "id": "00"}"#),
            Err(StateError::Format(_))
        ));
        assert!(State::from_json(b"\xff\xfe garbage").is_err());
        let bad_id = br#"{"btdht_state": 1, "id": "xyz", "nodes": []}"#;
        assert!(State::from_json(bad_id).is_err());
    }
}
