//! The crawl's metadata queue: [`Torrents`] fetches the metadata (BEP 9) of the info-hashes a
//! crawl finds, from the peers their nodes returned, on a [`Fetcher`] worker pool.
//!
//! Each info-hash is tried on its peers one at a time, in the order given, until one delivers
//! metadata whose hash matches or none is left. At most [`FetcherConfig::queue`] info-hashes
//! have a fetch queued or running; the others wait in a backlog of at most `backlog` entries
//! (more are dropped and counted). Failures are counted per
//! [`Failure::kind`](crate::metadata::Failure::kind). The queue keeps no clock: the fetches' deadlines are the
//! [`Fetcher`]'s.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use crate::id::InfoHash;
use crate::metadata::{Event, Fetcher, FetcherConfig, Metadata, Refused};

/// Peers tried for one info-hash at most.
pub const MAX_PEERS_PER_TORRENT: usize = 8;

/// Metadata fetched for one info-hash.
#[derive(Clone, Debug)]
pub struct Torrent {
    /// The peer that delivered it.
    pub peer: SocketAddr,
    /// The metadata, its hash checked.
    pub metadata: Box<Metadata>,
}

impl Torrent {
    /// The torrent as one NDJSON object (`type: torrent`); `seen` is a Unix time in seconds.
    pub fn to_json(&self, seen: f64) -> serde_json::Value {
        let info = &self.metadata.info;
        serde_json::json!({
            "type": "torrent",
            "infohash": self.metadata.info_hash.to_hex(),
            "name": info.name,
            "size": info.total_size,
            "files": info.file_count,
            "piece_length": info.piece_length,
            "private": info.private,
            "version": info.version.as_str(),
            "peer": self.peer.to_string(),
            "seen": seen,
        })
    }
}

/// The counters of a [`Torrents`] queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TorrentStats {
    /// Info-hashes whose metadata was fetched.
    pub fetched: u64,
    /// Info-hashes given without any peer.
    pub no_peers: u64,
    /// Info-hashes whose every peer failed.
    pub exhausted: u64,
    /// Info-hashes dropped because the backlog was full.
    pub dropped: u64,
    /// Info-hashes skipped because they were known already (fetched before, or queued).
    pub skipped: u64,
    /// Fetches from one peer that failed, per [`crate::metadata::Failure::kind`] (and
    /// `peer_failures` for peers the fetcher refused because they failed too often).
    pub failures: BTreeMap<&'static str, u64>,
}

impl TorrentStats {
    /// Failed fetches, all kinds.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// The metadata queue of a crawl (see the module documentation).
pub struct Torrents {
    fetcher: Fetcher,
    /// Info-hashes with a fetch queued or running, and the peers left to try.
    active: HashMap<InfoHash, VecDeque<SocketAddr>>,
    max_active: usize,
    /// Info-hashes waiting for a place in `active`.
    backlog: VecDeque<(InfoHash, VecDeque<SocketAddr>)>,
    max_backlog: usize,
    /// Info-hashes not to fetch (fetched in an earlier crawl), given by the caller. Those
    /// fetched in this crawl need no entry: the crawler reports each info-hash once.
    known: HashSet<InfoHash>,
    stats: TorrentStats,
}

impl Torrents {
    /// A queue on a new [`Fetcher`] (`config.connections` fetches at once); at most `backlog`
    /// info-hashes wait for their turn.
    pub fn new(config: FetcherConfig, backlog: usize) -> io::Result<Torrents> {
        let max_active = config.queue.max(1);
        Ok(Torrents {
            fetcher: Fetcher::new(config)?,
            active: HashMap::new(),
            max_active,
            backlog: VecDeque::new(),
            max_backlog: backlog,
            known: HashSet::new(),
            stats: TorrentStats::default(),
        })
    }

    /// Marks info-hashes as fetched already: they are skipped.
    pub fn skip(&mut self, hashes: impl IntoIterator<Item = InfoHash>) {
        self.known.extend(hashes);
    }

    /// The counters.
    pub fn stats(&self) -> &TorrentStats {
        &self.stats
    }

    /// Info-hashes with a fetch queued or running, plus those waiting.
    pub fn pending(&self) -> usize {
        self.active.len() + self.backlog.len()
    }

    /// True when nothing is queued, running or waiting.
    pub fn is_idle(&self) -> bool {
        self.pending() == 0
    }

    /// Queues a fetch of `info_hash` from `peers` (the first [`MAX_PEERS_PER_TORRENT`]).
    pub fn add(&mut self, info_hash: InfoHash, peers: &[SocketAddr]) {
        if self.known.contains(&info_hash) || self.active.contains_key(&info_hash) {
            self.stats.skipped += 1;
            return;
        }
        if peers.is_empty() {
            self.stats.no_peers += 1;
            return;
        }
        let peers: VecDeque<SocketAddr> =
            peers.iter().copied().take(MAX_PEERS_PER_TORRENT).collect();
        if self.active.len() < self.max_active {
            self.start(info_hash, peers);
        } else if self.backlog.len() < self.max_backlog {
            self.backlog.push_back((info_hash, peers));
        } else {
            self.stats.dropped += 1;
        }
    }

    /// Submits the next peer of `info_hash`; counts it as exhausted when none is left (the
    /// caller then fills the free place).
    fn start(&mut self, info_hash: InfoHash, mut peers: VecDeque<SocketAddr>) {
        while let Some(peer) = peers.pop_front() {
            match self.fetcher.submit(info_hash, peer) {
                Ok(()) => {
                    self.active.insert(info_hash, peers);
                    return;
                }
                Err(Refused::PeerFailures) => {
                    *self.stats.failures.entry("peer_failures").or_insert(0) += 1;
                }
                // At most `queue` info-hashes are active, so the queue has room; a stopped
                // fetcher fetches nothing more.
                Err(Refused::QueueFull | Refused::Stopped) => break,
            }
        }
        self.stats.exhausted += 1;
    }

    /// Moves waiting info-hashes into the free places.
    fn fill(&mut self) {
        while self.active.len() < self.max_active {
            let Some((info_hash, peers)) = self.backlog.pop_front() else {
                return;
            };
            if self.known.contains(&info_hash) || self.active.contains_key(&info_hash) {
                self.stats.skipped += 1;
                continue;
            }
            self.start(info_hash, peers);
        }
    }

    fn on_event(&mut self, event: Event) -> Option<Torrent> {
        let info_hash = event.info_hash();
        let peers = self.active.remove(&info_hash)?;
        match event {
            Event::Fetched { peer, metadata } => {
                self.stats.fetched += 1;
                self.fill();
                Some(Torrent { peer, metadata })
            }
            Event::Failed { failure, .. } => {
                *self.stats.failures.entry(failure.kind()).or_insert(0) += 1;
                self.start(info_hash, peers);
                self.fill();
                None
            }
        }
    }

    /// The next torrent fetched, without waiting.
    pub fn poll(&mut self) -> Option<Torrent> {
        while let Ok(event) = self.fetcher.events().try_recv() {
            if let Some(torrent) = self.on_event(event) {
                return Some(torrent);
            }
        }
        None
    }

    /// The next torrent fetched, waiting at most `timeout` for each outcome; `None` when
    /// idle or when no outcome came in time.
    pub fn wait(&mut self, timeout: Duration) -> Option<Torrent> {
        while !self.is_idle() {
            match self.fetcher.events().recv_timeout(timeout) {
                Ok(event) => {
                    if let Some(torrent) = self.on_event(event) {
                        return Some(torrent);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
        None
    }
}

impl std::fmt::Debug for Torrents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Torrents")
            .field("active", &self.active.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    /// A loopback address where nothing listens.
    fn closed_port() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[test]
    fn every_peer_is_tried_once_and_failures_are_counted_per_kind() {
        let config = FetcherConfig {
            connections: 2,
            queue: 1,
            ..FetcherConfig::default()
        };
        let mut torrents = Torrents::new(config, 1).unwrap();
        let (a, b) = (closed_port(), closed_port());
        torrents.skip([NodeId([1; 20])]);
        torrents.add(NodeId([1; 20]), &[a]);
        torrents.add(NodeId([2; 20]), &[]);
        torrents.add(NodeId([3; 20]), &[a, b]);
        // The one active place is taken: one waits, the next is dropped.
        torrents.add(NodeId([4; 20]), &[b]);
        torrents.add(NodeId([5; 20]), &[b]);
        assert_eq!(torrents.pending(), 2);
        while !torrents.is_idle() {
            assert!(torrents.wait(Duration::from_secs(10)).is_none());
        }
        let stats = torrents.stats();
        assert_eq!(stats.skipped, 1);
        assert_eq!(stats.no_peers, 1);
        assert_eq!(stats.dropped, 1);
        assert_eq!(stats.exhausted, 2);
        assert_eq!(stats.fetched, 0);
        assert_eq!(stats.failed(), 3, "{stats:?}");
        assert_eq!(stats.failures.get("io"), Some(&3), "{stats:?}");
    }
}
