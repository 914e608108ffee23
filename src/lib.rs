//! # btdht
//!
//! A BitTorrent Mainline DHT (BEP 5) node, bootstrap server and crawler, with Hathor Network
//! peer discovery built on top of it as a DHT client.
//!
//! The protocol logic is a deterministic core that does no I/O: it takes datagrams, time and
//! randomness from its caller and hands back datagrams to send, its next deadline and events.
//! Thin role threads drive it on real sockets; a simulator drives thousands of cores in one
//! process for tests.
//!
//! The DHT on real sockets is [`Dht`]: build one with [`Dht::builder`], then look up nodes and
//! peers, announce, and subscribe to what happens; see the [`driver`] module.
//!
//! Modules:
//! - [`id`]: 160-bit node ids and info-hashes, XOR distance, BEP 42.
//! - [`time`]: the core's caller-supplied clock.
//! - [`contact`]: a node id with its address.
//! - [`address_policy`]: the networks a public node ignores and the rule every role applies.
//! - [`host`]: an address's host (IPv4 address, IPv6 /64) and network (/24, /64) for per-host
//!   and per-network limits.
//! - [`krpc`]: the KRPC wire format (bencode messages of BEP 5, 32, 33, 42, 43, 44, 51).
//! - [`metadata`]: torrent metadata from peers (BEP 9 over BEP 10) and the info dictionary.
//! - [`routing`]: the routing table of splitting buckets, node liveness, the split queue.
//! - [`token`]: announce tokens from a rotating secret.
//! - [`transaction`]: the map of queries awaiting replies.
//! - [`peers`]: the announce store, BEP 33 Bloom filters, BEP 51 samples.
//! - [`node`]: the sans-IO node that ties them together.
//! - [`items`]: BEP 44 immutable and mutable items, their signatures and the item store.
//! - [`transmit`]: a datagram a core wants sent.
//! - [`endpoint`]: the sans-IO contract of every core ([`Endpoint`]).
//! - [`runtime`]: the cores on real sockets: the OS clock, batched UDP I/O (`recvmmsg` /
//!   `sendmmsg`) and the one event loop every role runs on.
//! - [`sim`]: a deterministic simulated network of many cores.
//! - [`crawler`]: the sans-IO crawl planner (nodes and BEP 51 info-hashes) and its driver.
//! - [`swarm`]: a local test swarm of many nodes on loopback addresses, on one thread.
//! - [`driver`]: the node on real UDP sockets: the [`Dht`] handle and its threads.
//! - [`bootstrap`]: the bootstrap server: a sans-IO core answering from a pool of verified
//!   nodes, its sharded driver and its pool file.
//! - `hathor` (cargo feature `hathor`): Hathor peer identity, entrypoints, networks, handshake
//!   client, peer store, and discovery on the DHT (`hathor::Discovery`, `hathor::Announcer`).
//!
//! Cargo features:
//! - `hathor` (default): the `hathor` module and its TLS / RSA dependencies;
//! - `cli` (default): the crates of the `btdht` binary (which needs `cli` and `hathor`);
//! - `test-util`: test doubles of the enabled modules (with `hathor`: `hathor::fake`);
//! - `decode-oracle`: the decoder's bendy-based oracle, for the fuzz targets.
//!
//! With `default-features = false` the library is the DHT alone: the sans-IO core, the role
//! threads on real sockets and the simulator, without any TLS or command-line crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address_policy;
pub mod bootstrap;
pub mod contact;
pub mod crawler;
pub mod driver;
pub mod endpoint;
#[cfg(feature = "hathor")]
pub mod hathor;
pub mod host;
pub mod id;
pub mod items;
pub mod krpc;
pub mod metadata;
pub mod node;
pub mod peers;
pub mod routing;
pub mod runtime;
pub mod sim;
pub mod swarm;
pub mod time;
pub mod token;
pub mod transaction;
pub mod transmit;

pub use contact::NodeInfo;
pub use driver::{
    AnnounceResult, Builder, DEFAULT_BOOTSTRAP_NODES, Dht, DhtStats, Error, GetPeers, Receiver,
    TableSnapshot,
};
pub use endpoint::Endpoint;
pub use id::{Distance, InfoHash, NodeId};
pub use node::{Event, GetItemResult, LookupOutcome, PutItemResult, SampleReply};
pub use time::Instant;
pub use transmit::Transmit;
