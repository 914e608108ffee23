//! The Hathor peer book: candidates and verified peers of one network, with reputation and
//! history, persisted as JSON written atomically.
//!
//! A record is keyed by peer id once a handshake has proved it, and by the dialled `ip:port`
//! before (a DHT candidate). Time is always given by the caller (unix seconds), so the rules are
//! testable without sleeping:
//! - retry backoff like hathor-core's `PeerInfo`: 5 s after the first failure, ×5 per further
//!   failure, at most 300 s; reset by a success;
//! - score: +1 per success (at most [`MAX_SCORE`]); a failure halves a positive score, then
//!   subtracts 1 (at least [`MIN_SCORE`]); peers below 0 are not listed as usable;
//! - a record without a success for 3 days ([`FORGET_AFTER`], as in hathor-core PR #1056) is
//!   forgotten (for a never-verified candidate, counted from when it was first seen);
//! - at most `capacity` records (default [`DEFAULT_CAPACITY`], hathor-core's `MAX_VERIFIED_PEERS`).
//!   Eviction, when a new record does not fit: unverified candidates first, then the lowest
//!   score, then the oldest `last_seen`, then the smallest key (deterministic).
//!
//! This module does no network I/O and never reads the clock.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entrypoint::PeerAddress;
use super::handshake::VerifiedPeer;
use super::identity::{PeerId, write_atomic};
use super::network::NetworkProfile;

/// First retry interval, seconds.
pub const RETRY_INITIAL: u64 = 5;
/// Retry interval multiplier.
pub const RETRY_MULTIPLIER: u64 = 5;
/// Longest retry interval, seconds.
pub const RETRY_MAX: u64 = 300;
/// Forget a record after this long without a success, seconds (3 days).
pub const FORGET_AFTER: u64 = 3 * 24 * 3600;
/// Default maximum number of records.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Highest score.
pub const MAX_SCORE: f64 = 10.0;
/// Lowest score.
pub const MIN_SCORE: f64 = -10.0;
/// File format version.
pub const FORMAT_VERSION: u32 = 1;

/// Where a candidate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A DHT `get_peers` answer.
    Dht,
    /// A `PEERS` line from another Hathor node.
    PeersGossip,
    /// A bootstrap entrypoint given by the user.
    Bootstrap,
    /// Added by hand.
    Manual,
}

/// The key of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerKey {
    /// A verified peer.
    Id(PeerId),
    /// A candidate address not verified yet.
    Addr(SocketAddr),
}

/// What we know about one peer or candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer id, once verified.
    pub peer_id: Option<PeerId>,
    /// The address last dialled.
    pub dialled: Option<SocketAddr>,
    /// Entrypoints it declared in PEER-ID.
    pub declared_entrypoints: Vec<PeerAddress>,
    /// Whether the dialled address was among them at the last success.
    pub entrypoint_confirmed: bool,
    /// Its `app` (e.g. `Hathor v0.72.0`).
    pub app: Option<String>,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// Its sync versions.
    pub sync_versions: Vec<String>,
    /// Its clock minus ours, seconds, at the last success.
    pub clock_offset: Option<f64>,
    /// When first seen (unix seconds).
    pub first_seen: u64,
    /// When last seen in any way (candidate, attempt, success).
    pub last_seen: u64,
    /// Last successful handshake.
    pub last_success: Option<u64>,
    /// Last handshake attempt.
    pub last_attempt: Option<u64>,
    /// Current retry interval, seconds (0: no failure since the last success).
    pub retry_interval: u64,
    /// No attempt before this time.
    pub next_retry: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// Failures so far.
    pub failures: u32,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The last failure, as text.
    pub last_error: Option<String>,
    /// Where it came from first.
    pub source: Source,
    /// Reputation.
    pub score: f64,
}

impl PeerRecord {
    fn new(source: Source, now: u64) -> Self {
        Self {
            peer_id: None,
            dialled: None,
            declared_entrypoints: Vec::new(),
            entrypoint_confirmed: false,
            app: None,
            capabilities: Vec::new(),
            sync_versions: Vec::new(),
            clock_offset: None,
            first_seen: now,
            last_seen: now,
            last_success: None,
            last_attempt: None,
            retry_interval: 0,
            next_retry: now,
            attempts: 0,
            failures: 0,
            consecutive_failures: 0,
            last_error: None,
            source,
            score: 0.0,
        }
    }

    /// The record's key.
    pub fn key(&self) -> Option<PeerKey> {
        match (self.peer_id, self.dialled) {
            (Some(id), _) => Some(PeerKey::Id(id)),
            (None, Some(a)) => Some(PeerKey::Addr(a)),
            (None, None) => None,
        }
    }

    /// Whether an attempt is allowed at `now`.
    pub fn is_due(&self, now: u64) -> bool {
        now >= self.next_retry
    }

    fn forget_at(&self) -> u64 {
        self.last_success
            .unwrap_or(self.first_seen)
            .saturating_add(FORGET_AFTER)
    }
}

/// The next retry interval after a failure.
pub fn next_retry_interval(current: u64) -> u64 {
    if current == 0 {
        RETRY_INITIAL
    } else {
        current.saturating_mul(RETRY_MULTIPLIER).min(RETRY_MAX)
    }
}

/// An error loading or saving the store.
#[derive(Debug)]
pub enum StoreError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The file is not a valid store.
    Corrupt(String),
    /// The file belongs to another network.
    WrongNetwork {
        /// The network in the file.
        found: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "peer store I/O error: {e}"),
            Self::Corrupt(e) => write!(f, "peer store file is corrupt: {e}"),
            Self::WrongNetwork { found } => {
                write!(f, "peer store file belongs to network {found:?}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    network: String,
    genesis_short_hash: String,
    peers: Vec<PeerRecord>,
}

/// The peer book of one network: every Hathor peer seen, by id once verified, else by address
/// (distinct from [`crate::peers::PeerStore`], the DHT announce store).
#[derive(Clone, Debug)]
pub struct PeerBook {
    network: String,
    genesis_short_hash: String,
    capacity: usize,
    records: BTreeMap<PeerKey, PeerRecord>,
}

impl PeerBook {
    /// An empty store for `network`.
    pub fn new(network: &NetworkProfile) -> Self {
        Self {
            network: network.name.clone(),
            genesis_short_hash: network.genesis_short_hash(),
            capacity: DEFAULT_CAPACITY,
            records: BTreeMap::new(),
        }
    }

    /// Sets the maximum number of records (at least 1), evicting if needed.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.records.len() > self.capacity {
            if !self.evict_one() {
                break;
            }
        }
    }

    /// The usual file name for a network: `hathor-peers-<network>-<genesis short hash>.json`.
    pub fn file_name(network: &NetworkProfile) -> PathBuf {
        let safe: String = network
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        PathBuf::from(format!(
            "hathor-peers-{safe}-{}.json",
            network.genesis_short_hash()
        ))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// A record by key.
    pub fn get(&self, key: &PeerKey) -> Option<&PeerRecord> {
        self.records.get(key)
    }

    /// All records, by key order.
    pub fn records(&self) -> impl Iterator<Item = &PeerRecord> {
        self.records.values()
    }

    fn key_for_addr(&self, addr: SocketAddr) -> Option<PeerKey> {
        if self.records.contains_key(&PeerKey::Addr(addr)) {
            return Some(PeerKey::Addr(addr));
        }
        self.records
            .iter()
            .find(|(_, r)| r.dialled == Some(addr))
            .map(|(k, _)| *k)
    }

    /// Adds a candidate address (from the DHT, gossip, ...). Known addresses are only marked
    /// seen. Returns false if the store is full of better records.
    pub fn add_candidate(&mut self, addr: SocketAddr, source: Source, now: u64) -> bool {
        if let Some(key) = self.key_for_addr(addr) {
            if let Some(r) = self.records.get_mut(&key) {
                r.last_seen = r.last_seen.max(now);
            }
            return true;
        }
        let mut r = PeerRecord::new(source, now);
        r.dialled = Some(addr);
        self.insert(PeerKey::Addr(addr), r)
    }

    fn insert(&mut self, key: PeerKey, record: PeerRecord) -> bool {
        if !self.records.contains_key(&key) && self.records.len() >= self.capacity {
            // A new unverified candidate never evicts a verified peer.
            let victim = self.victim();
            let Some(victim) = victim else { return false };
            if matches!(key, PeerKey::Addr(_)) && matches!(victim, PeerKey::Id(_)) {
                return false;
            }
            self.records.remove(&victim);
        }
        self.records.insert(key, record);
        true
    }

    fn victim(&self) -> Option<PeerKey> {
        self.records
            .iter()
            .min_by(|(ka, a), (kb, b)| {
                let verified = |k: &PeerKey| matches!(k, PeerKey::Id(_));
                verified(ka)
                    .cmp(&verified(kb))
                    .then(a.score.total_cmp(&b.score))
                    .then(a.last_seen.cmp(&b.last_seen))
                    .then(ka.cmp(kb))
            })
            .map(|(k, _)| *k)
    }

    fn evict_one(&mut self) -> bool {
        match self.victim() {
            Some(k) => self.records.remove(&k).is_some(),
            None => false,
        }
    }

    /// Candidates and peers whose backoff allows an attempt at `now`, best first (score, then
    /// most recent success), as (address, expected id).
    pub fn due(&self, now: u64) -> Vec<(SocketAddr, Option<PeerId>)> {
        let mut v: Vec<&PeerRecord> = self
            .records
            .values()
            .filter(|r| r.is_due(now) && r.dialled.is_some())
            .collect();
        v.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.last_success.cmp(&a.last_success))
                .then(a.dialled.cmp(&b.dialled))
        });
        v.into_iter()
            .filter_map(|r| r.dialled.map(|a| (a, r.peer_id)))
            .collect()
    }

    /// Marks an attempt starting at `now`.
    pub fn record_attempt(&mut self, addr: SocketAddr, now: u64) {
        let key = self.key_for_addr(addr);
        if let Some(r) = key.and_then(|k| self.records.get_mut(&k)) {
            r.attempts = r.attempts.saturating_add(1);
            r.last_attempt = Some(now);
            r.last_seen = r.last_seen.max(now);
        }
    }

    /// Records a successful handshake: the record is keyed by the peer id from now on.
    pub fn record_success(&mut self, peer: &VerifiedPeer, source: Source, now: u64) {
        let addr_key = PeerKey::Addr(peer.dialled);
        let id_key = PeerKey::Id(peer.id);
        let candidate = self.records.remove(&addr_key);
        let mut r = self
            .records
            .remove(&id_key)
            .or(candidate.clone())
            .unwrap_or_else(|| PeerRecord::new(source, now));
        if let Some(c) = candidate {
            r.first_seen = r.first_seen.min(c.first_seen);
        }
        r.peer_id = Some(peer.id);
        r.dialled = Some(peer.dialled);
        r.declared_entrypoints = peer.entrypoints.clone();
        r.entrypoint_confirmed = peer.entrypoint_confirmed;
        r.app = Some(peer.app.clone());
        r.capabilities = peer.capabilities.clone();
        r.sync_versions = peer.sync_versions.clone();
        r.clock_offset = Some(peer.clock_offset);
        r.last_seen = r.last_seen.max(now);
        r.last_success = Some(now);
        r.last_attempt = Some(r.last_attempt.map_or(now, |a| a.max(now)));
        r.retry_interval = 0;
        r.next_retry = now;
        r.consecutive_failures = 0;
        r.last_error = None;
        r.score = (r.score + 1.0).min(MAX_SCORE);
        self.insert(id_key, r);
    }

    /// Records a failed attempt on `addr` (`remote_id` if the remote proved its id before
    /// failing). Returns the retry interval now in force.
    pub fn record_failure(
        &mut self,
        addr: SocketAddr,
        remote_id: Option<PeerId>,
        error: &str,
        now: u64,
    ) -> u64 {
        let key = match remote_id {
            Some(id) if self.records.contains_key(&PeerKey::Id(id)) => Some(PeerKey::Id(id)),
            _ => self.key_for_addr(addr),
        };
        let key = match key {
            Some(k) => k,
            None => {
                let mut r = PeerRecord::new(Source::Manual, now);
                r.dialled = Some(addr);
                if !self.insert(PeerKey::Addr(addr), r) {
                    return RETRY_INITIAL;
                }
                PeerKey::Addr(addr)
            }
        };
        let Some(r) = self.records.get_mut(&key) else {
            return RETRY_INITIAL;
        };
        r.failures = r.failures.saturating_add(1);
        r.consecutive_failures = r.consecutive_failures.saturating_add(1);
        r.last_attempt = Some(r.last_attempt.map_or(now, |a| a.max(now)));
        r.last_seen = r.last_seen.max(now);
        r.last_error = Some(error.chars().take(512).collect());
        r.retry_interval = next_retry_interval(r.retry_interval);
        r.next_retry = now.saturating_add(r.retry_interval);
        // Positive scores halve, then every failure costs 1.
        r.score = (r.score.min(r.score * 0.5) - 1.0).max(MIN_SCORE);
        r.retry_interval
    }

    /// Forgets records without a success for [`FORGET_AFTER`]; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.records.len();
        self.records.retain(|_, r| now < r.forget_at());
        before - self.records.len()
    }

    /// Verified peers with a non-negative score, best first.
    pub fn usable(&self) -> Vec<&PeerRecord> {
        let mut v: Vec<&PeerRecord> = self
            .records
            .values()
            .filter(|r| r.peer_id.is_some() && r.last_success.is_some() && r.score >= 0.0)
            .collect();
        v.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.last_success.cmp(&a.last_success))
                .then(a.peer_id.cmp(&b.peer_id))
        });
        v
    }

    /// Serialises to JSON.
    pub fn to_json(&self) -> String {
        let file = StoreFile {
            version: FORMAT_VERSION,
            network: self.network.clone(),
            genesis_short_hash: self.genesis_short_hash.clone(),
            peers: self.records.values().cloned().collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Parses JSON written by [`PeerBook::to_json`] for `network`.
    pub fn from_json(text: &str, network: &NetworkProfile) -> Result<Self, StoreError> {
        let file: StoreFile =
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(StoreError::Corrupt(format!(
                "unsupported version {}",
                file.version
            )));
        }
        if file.network != network.name || file.genesis_short_hash != network.genesis_short_hash() {
            return Err(StoreError::WrongNetwork {
                found: format!("{} ({})", file.network, file.genesis_short_hash),
            });
        }
        let mut store = Self::new(network);
        for r in file.peers {
            if let Some(k) = r.key() {
                store.records.insert(k, r);
            }
        }
        store.set_capacity(DEFAULT_CAPACITY);
        Ok(store)
    }

    /// Writes the store atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        write_atomic(path, self.to_json().as_bytes(), false).map_err(StoreError::Io)
    }

    /// Loads a store; a missing file gives an empty store.
    pub fn load(path: &Path, network: &NetworkProfile) -> Result<Self, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(&text, network),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::new(network)),
            Err(e) => Err(StoreError::Io(e)),
        }
    }

    /// Loads a store, or starts empty when the file is unreadable or corrupt; the error is
    /// returned for the caller to report, never fatal.
    pub fn load_or_empty(path: &Path, network: &NetworkProfile) -> (Self, Option<StoreError>) {
        match Self::load(path, network) {
            Ok(s) => (s, None),
            Err(e) => (Self::new(network), Some(e)),
        }
    }
}
