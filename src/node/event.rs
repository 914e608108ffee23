//! What a node reports to its user: finished requests, incoming announces, table changes.

use std::net::{IpAddr, SocketAddr};

use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::items::StoredItem;
use crate::node::lookup::LookupOutcome;
use crate::node::stats::Method;

/// Identifies a request made to a node (a lookup, a ping, a sample) in its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Why a single query got no useful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// No answer before the query timeout.
    Timeout,
    /// The remote answered with a KRPC error.
    Remote {
        /// The error code.
        code: i64,
        /// The error message, lossily decoded.
        message: String,
    },
    /// Too many queries in flight; nothing was sent.
    Busy,
    /// The address is filtered by the configuration (private or reserved network).
    Filtered,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Timeout => f.write_str("no answer before the timeout"),
            QueryError::Remote { code, message } => write!(f, "remote error {code}: {message}"),
            QueryError::Busy => f.write_str("too many queries in flight"),
            QueryError::Filtered => f.write_str("address is in an ignored network"),
        }
    }
}

impl std::error::Error for QueryError {}

/// What a lookup was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    /// A user find_node.
    FindNode,
    /// A user get_peers.
    GetPeers,
    /// The get_peers phase of an announce.
    Announce,
    /// Joining the network.
    Bootstrap,
    /// Refreshing a bucket.
    Refresh,
    /// A user BEP 44 `get` of an item.
    GetItem,
    /// The `get` phase of a BEP 44 `put`: collecting the closest nodes' write tokens.
    PutItem,
}

/// What a BEP 44 `get` lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetItemResult {
    /// The lookup (closest nodes with their write tokens, counts, `partial`).
    pub outcome: LookupOutcome,
    /// The item: an immutable value whose SHA-1 is the target, or the mutable item with the
    /// highest sequence number whose signature verifies. `None` if no node had one.
    pub item: Option<StoredItem>,
    /// Replies whose item was refused: a value that does not hash to the target, a key that
    /// is not the one asked for, a signature that does not verify, a size over the limits.
    pub rejected: u32,
}

/// What a BEP 44 `put` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutItemResult {
    /// The item's target.
    pub target: NodeId,
    /// The `get` lookup that collected the write tokens.
    pub outcome: LookupOutcome,
    /// `put` queries sent.
    pub sent: usize,
    /// Nodes that acknowledged the `put` (stored the item).
    pub stored: usize,
    /// The KRPC error codes the refusing nodes answered with, one per refusal (e.g. 301
    /// compare-and-swap mismatch, 302 sequence number too old).
    pub errors: Vec<i64>,
}

/// A BEP 51 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleReply {
    /// The id of the node that answered.
    pub id: NodeId,
    /// The sampled info-hashes.
    pub samples: Vec<InfoHash>,
    /// How many info-hashes that node stores.
    pub num: Option<i64>,
    /// Seconds before asking it again.
    pub interval: Option<i64>,
    /// The nodes it returned.
    pub nodes: Vec<NodeInfo>,
}

/// Something the user may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A find_node, get_peers, bootstrap or refresh lookup ended (converged, or cut short by
    /// [`Node::cancel`](crate::node::Node::cancel) or its deadline: then `outcome.partial`).
    LookupDone {
        /// The request.
        request: RequestId,
        /// What it was for.
        kind: LookupKind,
        /// What it found.
        outcome: LookupOutcome,
    },
    /// A get_peers lookup received peers it had not seen before (each peer is reported once
    /// per lookup; the [`Event::LookupDone`] that ends the lookup lists them all again).
    PeersFound {
        /// The get_peers request.
        request: RequestId,
        /// The new peers, in the order they arrived.
        peers: Vec<SocketAddr>,
    },
    /// An announce ended: the lookup, then announce_peer to the closest nodes with tokens.
    AnnounceDone {
        /// The request.
        request: RequestId,
        /// The get_peers lookup's result.
        outcome: LookupOutcome,
        /// announce_peer queries sent.
        sent: usize,
        /// announce_peer queries acknowledged.
        acknowledged: usize,
    },
    /// A BEP 44 get ended (converged, or cut short: then `result.outcome.partial`).
    GetItemDone {
        /// The request.
        request: RequestId,
        /// What it found.
        result: GetItemResult,
    },
    /// A BEP 44 put ended: the get lookup, then `put` to the closest nodes with tokens.
    PutItemDone {
        /// The request.
        request: RequestId,
        /// What it did.
        result: PutItemResult,
    },
    /// A ping ended.
    PingDone {
        /// The request.
        request: RequestId,
        /// Whom we pinged.
        addr: SocketAddr,
        /// Its id, or why not.
        result: Result<NodeId, QueryError>,
    },
    /// A sample_infohashes query ended.
    SampleDone {
        /// The request.
        request: RequestId,
        /// Whom we asked.
        addr: SocketAddr,
        /// The answer, or why not.
        result: Result<SampleReply, QueryError>,
    },
    /// A peer announced itself to us with a valid token, and was stored.
    PeerAnnounced {
        /// The torrent.
        info_hash: InfoHash,
        /// The peer's address (with the implied port resolved).
        peer: SocketAddr,
        /// BEP 33 seed flag.
        seed: bool,
    },
    /// Someone asked us for peers.
    GetPeersReceived {
        /// The torrent.
        info_hash: InfoHash,
        /// The asker.
        from: SocketAddr,
    },
    /// This node took a new id, BEP 42-valid for the external address the replies elected
    /// (or [`Config::external_ip`](crate::node::Config::external_ip) set): the routing tables
    /// started again under it. The driver persists `new`.
    IdChanged {
        /// The id before.
        old: NodeId,
        /// The id now.
        new: NodeId,
        /// The external address `new` is valid for.
        external_ip: IpAddr,
    },
    /// A node entered the routing table.
    NodeAdded(NodeInfo),
    /// A node left the routing table.
    NodeRemoved(NodeInfo),
    /// Any query arrived (only with `Config::query_events`).
    QueryReceived {
        /// The sender.
        from: SocketAddr,
        /// Its id.
        id: NodeId,
        /// The method.
        method: Method,
    },
    /// Any reply to our queries arrived (only with `Config::query_events`).
    ResponseReceived {
        /// The sender.
        from: SocketAddr,
        /// Its id.
        id: NodeId,
    },
}
