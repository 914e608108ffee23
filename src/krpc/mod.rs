//! The KRPC wire format: typed messages of BEP 5, 32, 33, 42, 43, 44 and 51.
//!
//! This module owns the message types ([`Message`], [`Query`], [`Response`], [`KrpcError`]), the
//! decoder ([`decode()`]: a strict zero-copy bencode reader that accepts what bendy's does, under a
//! size and a nesting limit, liberal where real implementations are) and the canonical encoder
//! ([`Message::encode`]). It knows nothing about what a node does with a message: answering,
//! routing and lookups live elsewhere.
//!
//! Decoding never panics and never allocates more than a small multiple of the datagram size. A
//! malformed query maps to the error reply that must be sent (203, or 204 for an unknown method);
//! any malformed input maps to a [`RejectReason`] for the statistics.

pub mod compact;
mod decode;
mod encode;
mod error;
mod lenient;
mod peek;
pub(crate) mod reader;

use std::net::SocketAddr;

use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};

#[cfg(feature = "decode-oracle")]
pub use decode::check_against_bendy;
pub use decode::{Decoded, MAX_DEPTH, MAX_MESSAGE_SIZE, decode};
pub(crate) use decode::{MessageRef, decode_ref};
pub use error::{DecodeError, ErrorReply, RejectReason};
pub use peek::{peek_id, peek_target};

/// Error code 201: a generic error.
pub const ERROR_GENERIC: i64 = 201;
/// Error code 202: a server error.
pub const ERROR_SERVER: i64 = 202;
/// Error code 203: a protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// Error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// One KRPC message: the envelope shared by queries, responses and errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `t`: the transaction id, any length, echoed unchanged in the reply.
    pub transaction_id: Vec<u8>,
    /// `v`: the sender's client version (usually 2 letters and 2 version bytes).
    pub version: Option<Vec<u8>>,
    /// `ro`: BEP 43 read-only flag of the sender.
    pub read_only: bool,
    /// `ip`: BEP 42, the requester's address as the responder saw it.
    pub requester_ip: Option<SocketAddr>,
    /// What kind of message this is, with its content.
    pub body: Body,
}

/// The three kinds of KRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `y = q`.
    Query(Query),
    /// `y = r`.
    Response(Response),
    /// `y = e`.
    Error(KrpcError),
}

/// A query: the sender's id and the method with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// `a.id`: the querying node's id.
    pub id: NodeId,
    /// The method and its arguments.
    pub kind: QueryKind,
}

/// BEP 32 `want`: which address families the querier wants nodes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Want {
    /// `n4`: IPv4 nodes wanted.
    pub n4: bool,
    /// `n6`: IPv6 nodes wanted.
    pub n6: bool,
}

impl Want {
    /// No explicit `want`: the reply carries the family of the socket it came in on.
    pub const UNSPECIFIED: Want = Want {
        n4: false,
        n6: false,
    };

    /// Whether the querier stated a preference.
    pub fn is_specified(&self) -> bool {
        self.n4 || self.n6
    }
}

/// The methods btdht speaks, with their arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// BEP 5 `ping`.
    Ping,
    /// BEP 5 `find_node`.
    FindNode {
        /// The id looked for.
        target: NodeId,
        /// BEP 32 `want`.
        want: Want,
    },
    /// BEP 5 `get_peers`, with BEP 33 scrape flags.
    GetPeers {
        /// The torrent's info-hash.
        info_hash: InfoHash,
        /// BEP 32 `want`.
        want: Want,
        /// BEP 33 `noseed`: leave seeds out of `values`.
        noseed: bool,
        /// BEP 33 `scrape`: add the `BFsd` / `BFpe` Bloom filters.
        scrape: bool,
    },
    /// BEP 5 `announce_peer`, with BEP 33 `seed`.
    AnnouncePeer {
        /// The torrent's info-hash.
        info_hash: InfoHash,
        /// The announced port (0 when only `implied_port` is given).
        port: u16,
        /// Use the UDP source port instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` reply.
        token: Vec<u8>,
        /// BEP 33 `seed`: the announcer is a seed.
        seed: bool,
    },
    /// BEP 51 `sample_infohashes`.
    SampleInfohashes {
        /// Where in the id space to sample (also the target for `nodes`).
        target: NodeId,
        /// BEP 32 `want`.
        want: Want,
    },
    /// BEP 44 `get`.
    Get {
        /// SHA-1 of the item (immutable) or of the key and salt (mutable).
        target: NodeId,
        /// Only return the item if its sequence number is greater.
        seq: Option<i64>,
        /// BEP 32 `want`.
        want: Want,
    },
    /// BEP 44 `put`.
    Put(PutArgs),
}

/// The arguments of a BEP 44 `put`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutArgs {
    /// The write token from an earlier `get`.
    pub token: Vec<u8>,
    /// The item: any bencoded value.
    pub value: RawValue,
    /// Mutable items: the ed25519 public key.
    pub key: Option<[u8; 32]>,
    /// Mutable items: the salt.
    pub salt: Option<Vec<u8>>,
    /// Mutable items: the sequence number.
    pub seq: Option<i64>,
    /// Compare-and-swap: the expected current sequence number.
    pub cas: Option<i64>,
    /// Mutable items: the ed25519 signature.
    pub signature: Option<[u8; 64]>,
}

/// A complete bencoded value kept as its raw (canonical) bytes, like a BEP 44 item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawValue(Vec<u8>);

impl RawValue {
    /// Wraps bytes if they are exactly one valid, canonical bencoded value.
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        decode::is_single_canonical_value(&bytes).then_some(RawValue(bytes))
    }

    /// A bencoded byte string.
    pub fn from_bytes(payload: &[u8]) -> Self {
        let mut out = Vec::with_capacity(payload.len() + 8);
        encode::put_bytes(&mut out, payload);
        RawValue(out)
    }

    /// The bencoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn from_trusted(bytes: Vec<u8>) -> Self {
        RawValue(bytes)
    }
}

/// A response. KRPC responses do not name their method, so every field a reply of btdht's
/// methods may carry is optional here; the transaction map knows what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `id`: the responding node's id.
    pub id: NodeId,
    /// `nodes`: IPv4 nodes (26-byte compact entries).
    pub nodes: Option<Vec<NodeInfo>>,
    /// `nodes6`: BEP 32 IPv6 nodes (38-byte compact entries).
    pub nodes6: Option<Vec<NodeInfo>>,
    /// `values`: peers (6- or 18-byte compact entries).
    pub values: Option<Vec<SocketAddr>>,
    /// `token`: for a later `announce_peer` or `put`.
    pub token: Option<Vec<u8>>,
    /// BEP 51 `samples`.
    pub samples: Option<Vec<InfoHash>>,
    /// BEP 51 `interval`: seconds before the sampled node should be asked again.
    pub interval: Option<i64>,
    /// BEP 51 `num`: how many info-hashes the node stores.
    pub num: Option<i64>,
    /// BEP 33 `BFsd`: Bloom filter of seeds.
    pub bloom_seeds: Option<Box<[u8; 256]>>,
    /// BEP 33 `BFpe`: Bloom filter of peers.
    pub bloom_peers: Option<Box<[u8; 256]>>,
    /// BEP 44 `v`: the stored item.
    pub value: Option<RawValue>,
    /// BEP 44 `k`: the mutable item's public key.
    pub key: Option<[u8; 32]>,
    /// BEP 44 `sig`: the mutable item's signature.
    pub signature: Option<[u8; 64]>,
    /// BEP 44 `seq`: the mutable item's sequence number.
    pub seq: Option<i64>,
}

impl Response {
    /// A response carrying only the responder's id (the reply to ping and announce_peer).
    pub fn new(id: NodeId) -> Self {
        Response {
            id,
            nodes: None,
            nodes6: None,
            values: None,
            token: None,
            samples: None,
            interval: None,
            num: None,
            bloom_seeds: None,
            bloom_peers: None,
            value: None,
            key: None,
            signature: None,
            seq: None,
        }
    }

    /// All nodes of the reply, IPv4 then IPv6.
    pub fn all_nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes
            .iter()
            .flatten()
            .chain(self.nodes6.iter().flatten())
    }
}

/// A KRPC error: `e = [code, message]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KrpcError {
    /// 201 generic, 202 server, 203 protocol, 204 method unknown (others are possible).
    pub code: i64,
    /// The human-readable message, as sent.
    pub message: Vec<u8>,
}

impl KrpcError {
    /// The message as text, with invalid UTF-8 replaced.
    pub fn message_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.message)
    }
}

impl Message {
    /// A query message.
    pub fn query(transaction_id: Vec<u8>, id: NodeId, kind: QueryKind) -> Self {
        Message {
            transaction_id,
            version: None,
            read_only: false,
            requester_ip: None,
            body: Body::Query(Query { id, kind }),
        }
    }

    /// A response message.
    pub fn response(transaction_id: Vec<u8>, response: Response) -> Self {
        Message {
            transaction_id,
            version: None,
            read_only: false,
            requester_ip: None,
            body: Body::Response(response),
        }
    }

    /// An error message.
    pub fn error(transaction_id: Vec<u8>, code: i64, message: impl Into<Vec<u8>>) -> Self {
        Message {
            transaction_id,
            version: None,
            read_only: false,
            requester_ip: None,
            body: Body::Error(KrpcError {
                code,
                message: message.into(),
            }),
        }
    }

    /// The canonical bencoding of this message, in a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical bencoding of this message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.as_outgoing().encode_into(out);
    }

    /// This message as borrowed parts.
    pub(crate) fn as_outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            transaction_id: &self.transaction_id,
            version: self.version.as_deref(),
            read_only: self.read_only,
            requester_ip: self.requester_ip,
            body: match &self.body {
                Body::Query(query) => BodyRef::Query(query),
                Body::Response(response) => BodyRef::Response(response),
                Body::Error(error) => BodyRef::Error(error),
            },
        }
    }

    /// The method name of a query (`None` for responses and errors).
    pub fn method(&self) -> Option<&'static str> {
        match &self.body {
            Body::Query(q) => Some(q.kind.method()),
            _ => None,
        }
    }
}

/// A message to encode, as borrowed parts: what a [`Message`] holds, without owning its
/// transaction id, version and body, so that a core can answer with the datagram's
/// transaction id and its configured version without copying them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outgoing<'m> {
    /// `t`.
    pub(crate) transaction_id: &'m [u8],
    /// `v`.
    pub(crate) version: Option<&'m [u8]>,
    /// `ro`.
    pub(crate) read_only: bool,
    /// `ip`.
    pub(crate) requester_ip: Option<SocketAddr>,
    /// The query, response or error.
    pub(crate) body: BodyRef<'m>,
}

pub(crate) use encode::ReplyParts;

/// A borrowed [`Body`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum BodyRef<'m> {
    /// `y = q`.
    Query(&'m Query),
    /// `y = r`.
    Response(&'m Response),
    /// `y = r`, with some of its parts given as borrowed bytes (see [`ReplyParts`]).
    ResponseParts(&'m Response, encode::ReplyParts<'m>),
    /// `y = e`.
    Error(&'m KrpcError),
}

impl Outgoing<'_> {
    /// Appends the canonical bencoding of this message to `out` (as [`Message::encode_into`]).
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        encode::message(self, out);
    }
}

impl QueryKind {
    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            QueryKind::Ping => "ping",
            QueryKind::FindNode { .. } => "find_node",
            QueryKind::GetPeers { .. } => "get_peers",
            QueryKind::AnnouncePeer { .. } => "announce_peer",
            QueryKind::SampleInfohashes { .. } => "sample_infohashes",
            QueryKind::Get { .. } => "get",
            QueryKind::Put(_) => "put",
        }
    }
}
