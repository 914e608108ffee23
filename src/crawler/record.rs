//! What a crawl reports: its findings ([`Record`], as NDJSON) and its counters ([`CrawlStats`]).

use super::*;

/// Something the crawl found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A node answered for the first time.
    Node {
        /// Its id (from its reply).
        id: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// Its `v` (client version), if it sent one.
        version: Option<Vec<u8>>,
        /// Whether its first answer was a BEP 51 sample.
        bep51: bool,
        /// When it first answered.
        at: Instant,
    },
    /// A BEP 51 sample carried an info-hash for the first time.
    InfoHash {
        /// The info-hash.
        info_hash: InfoHash,
        /// The node whose sample carried it.
        from: SocketAddr,
        /// When.
        at: Instant,
    },
    /// A node answered a BEP 51 sample with an `interval`: it is not sampled again before
    /// `next_sample` (kept across restarts by the crawl database).
    Interval {
        /// Its id.
        id: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// The sample time plus its `interval` (at most 6 hours).
        next_sample: Instant,
        /// When it answered.
        at: Instant,
    },
    /// The peers a node returned for a new info-hash (with [`CrawlConfig::get_peers`]).
    Peers {
        /// The info-hash.
        info_hash: InfoHash,
        /// The node asked.
        from: SocketAddr,
        /// Distinct peers in its `values`.
        peers: usize,
        /// The first [`MAX_PEERS_PER_RECORD`] of those peers.
        addrs: Vec<SocketAddr>,
        /// When.
        at: Instant,
    },
}

/// Renders a `v` (2 letters and 2 version bytes, usually) as text: printable ASCII letters as
/// they are, the rest in hex (`LT` 1.2 becomes `LT0102`).
pub fn version_string(v: &[u8]) -> String {
    let letters = v
        .iter()
        .take(2)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let mut out = String::from_utf8_lossy(&v[..letters]).into_owned();
    out.push_str(&hex::encode(&v[letters..]));
    out
}

impl Record {
    /// The record as one NDJSON object; times are `start_unix + at` in seconds since the Unix
    /// epoch (`start_unix` is the wall-clock time of [`Instant::ZERO`], given by the caller).
    pub fn to_json(&self, start_unix: f64) -> serde_json::Value {
        let secs = |at: &Instant| start_unix + at.as_micros() as f64 / 1e6;
        match self {
            Record::Node {
                id,
                addr,
                version,
                bep51,
                at,
            } => serde_json::json!({
                "type": "node",
                "id": id.to_hex(),
                "addr": addr.to_string(),
                "version": version.as_deref().map(version_string),
                "bep51": bep51,
                "first_seen": secs(at),
            }),
            Record::InfoHash {
                info_hash,
                from,
                at,
            } => serde_json::json!({
                "type": "infohash",
                "infohash": info_hash.to_hex(),
                "from": from.to_string(),
                "seen": secs(at),
            }),
            Record::Interval {
                id,
                addr,
                next_sample,
                at,
            } => serde_json::json!({
                "type": "interval",
                "id": id.to_hex(),
                "addr": addr.to_string(),
                "next_sample": secs(next_sample),
                "seen": secs(at),
            }),
            Record::Peers {
                info_hash,
                from,
                peers,
                at,
                ..
            } => serde_json::json!({
                "type": "peers",
                "infohash": info_hash.to_hex(),
                "from": from.to_string(),
                "peers": peers,
                "seen": secs(at),
            }),
        }
    }
}

/// The crawler's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrawlStats {
    /// Queries sent, all kinds.
    pub queries_sent: u64,
    /// `sample_infohashes` sent.
    pub samples_sent: u64,
    /// `find_node` sent (fallbacks and sweeps).
    pub find_nodes_sent: u64,
    /// `get_peers` sent.
    pub get_peers_sent: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Replies matched to a query.
    pub replies: u64,
    /// Error replies matched to a query.
    pub errors: u64,
    /// Queries that timed out.
    pub timeouts: u64,
    /// Nodes that never answered (after the retry).
    pub unresponsive: u64,
    /// Undecodable datagrams.
    pub rejected: u64,
    /// Replies with no matching query (unknown transaction id or wrong source).
    pub unmatched: u64,
    /// Queries received (a crawler answers none).
    pub queries_ignored: u64,
    /// Addresses refused by the address filter (private, port 0, a family not crawled).
    pub filtered: u64,
    /// Distinct nodes that answered (records emitted).
    pub nodes_found: u64,
    /// Distinct info-hashes found.
    pub infohashes_found: u64,
    /// Distinct addresses queued for a visit.
    pub addrs_queued: u64,
    /// Queries delayed by the per-IP limit.
    pub per_ip_delayed: u64,
    /// Items dropped because a queue was full.
    pub queue_overflows: u64,
    /// Records dropped because the caller did not drain them.
    pub records_dropped: u64,
    /// Re-samples scheduled because `num` exceeded the sample.
    pub resamples: u64,
    /// Sampled info-hashes outside the crawler's shard (not recorded).
    pub other_shards: u64,
}
