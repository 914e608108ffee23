//! Counters of everything a node sends, receives and rejects.
//!
//! Plain integers updated on the I/O path; the driver copies a [`Stats`] out on request.

use crate::krpc::RejectReason;

/// Per-method counters, in the order of [`Method::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode,
    /// `get_peers`.
    GetPeers,
    /// `announce_peer`.
    AnnouncePeer,
    /// `sample_infohashes`.
    SampleInfohashes,
    /// BEP 44 `get`.
    Get,
    /// BEP 44 `put`.
    Put,
}

impl Method {
    /// Every method, in counter order.
    pub const ALL: [Method; 7] = [
        Method::Ping,
        Method::FindNode,
        Method::GetPeers,
        Method::AnnouncePeer,
        Method::SampleInfohashes,
        Method::Get,
        Method::Put,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ping => "ping",
            Method::FindNode => "find_node",
            Method::GetPeers => "get_peers",
            Method::AnnouncePeer => "announce_peer",
            Method::SampleInfohashes => "sample_infohashes",
            Method::Get => "get",
            Method::Put => "put",
        }
    }

    /// The method of a decoded query.
    pub fn of(kind: &crate::krpc::QueryKind) -> Method {
        use crate::krpc::QueryKind as Q;
        match kind {
            Q::Ping => Method::Ping,
            Q::FindNode { .. } => Method::FindNode,
            Q::GetPeers { .. } => Method::GetPeers,
            Q::AnnouncePeer { .. } => Method::AnnouncePeer,
            Q::SampleInfohashes { .. } => Method::SampleInfohashes,
            Q::Get { .. } => Method::Get,
            Q::Put(_) => Method::Put,
        }
    }
}

/// A node's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes queued for sending.
    pub bytes_out: u64,
    /// Queries received, by method ([`Method::ALL`] order).
    pub queries_in: [u64; 7],
    /// Queries sent, by method.
    pub queries_out: [u64; 7],
    /// Replies received that matched a pending query.
    pub responses_in: u64,
    /// Replies sent.
    pub responses_out: u64,
    /// Error messages received.
    pub errors_in: u64,
    /// Error messages sent, by code: 201, 202, 203, 204.
    pub errors_out: [u64; 4],
    /// Datagrams rejected, by reason ([`RejectReason::ALL`] order).
    pub rejected: [u64; RejectReason::ALL.len()],
    /// Datagrams that decoded but were not canonical bencode.
    pub non_canonical: u64,
    /// Replies whose transaction id matched nothing pending (late, unknown or forged).
    pub replies_unknown: u64,
    /// Replies whose id matched a query sent to another address.
    pub replies_wrong_address: u64,
    /// Queries that timed out.
    pub timeouts: u64,
    /// Announces refused for a missing, expired or foreign token.
    pub bad_tokens: u64,
    /// Announces stored.
    pub announces_stored: u64,
    /// Queries dropped by the per-IP or global rate limit.
    pub rate_limited: u64,
    /// Addresses ignored (private, reserved or otherwise filtered).
    pub filtered_addresses: u64,
    /// Queries from read-only nodes (answered, not added to the table).
    pub read_only_queries: u64,
    /// Outgoing datagrams or events dropped because a queue was full.
    pub queue_overflows: u64,
    /// Queries not sent because the transaction map was full.
    pub transactions_full: u64,
    /// Queries left unanswered because their transaction id was longer than
    /// [`crate::node::MAX_TRANSACTION_ID_LEN`].
    pub oversized_transaction_ids: u64,
    /// BEP 44 items stored or refreshed by a `put` (refusals are counted by the item store and
    /// in `errors_out`).
    pub items_stored: u64,
    /// Times a reply over [`crate::node::MAX_REPLY_LEN`] bytes lost values or nodes to fit.
    pub replies_trimmed: u64,
    /// Times the node took a new BEP 42 id for its external address.
    pub id_changes: u64,
    /// Replies and error replies not sent because the reply byte budget
    /// (`Config::reply_bytes_per_second`) was spent.
    pub replies_over_budget: u64,
}

impl Stats {
    /// Counts a rejected datagram.
    pub fn reject(&mut self, reason: RejectReason) {
        self.rejected[reason.index()] += 1;
    }

    /// Counts an error sent with `code`.
    pub fn error_sent(&mut self, code: i64) {
        let slot = match code {
            201 => 0,
            202 => 1,
            203 => 2,
            _ => 3,
        };
        self.errors_out[slot] += 1;
    }

    /// The count for one reject reason.
    pub fn rejected_for(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()]
    }

    /// Total rejected datagrams.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Queries received for `method`.
    pub fn queries_in_for(&self, method: Method) -> u64 {
        self.queries_in[method as usize]
    }
}
