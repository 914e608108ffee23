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
//! Modules:
//! - [`id`]: 160-bit node ids and info-hashes, XOR distance, BEP 42.
//! - [`time`]: the core's caller-supplied clock.
//! - [`contact`]: a node id with its address.
//! - [`krpc`]: the KRPC wire format (bencode messages of BEP 5, 32, 33, 42, 43, 44, 51).
//! - [`metadata`]: torrent metadata from peers (BEP 9 over BEP 10) and the info dictionary.
//! - [`routing`]: the routing table of splitting buckets, node liveness, the split queue.
//! - [`token`]: announce tokens from a rotating secret.
//! - [`transaction`]: the map of queries awaiting replies.
//! - [`peers`]: the announce store, BEP 33 Bloom filters, BEP 51 samples.
//! - [`node`]: the sans-IO node that ties them together.
//! - [`transmit`]: a datagram a core wants sent.
//! - [`udp`]: batched UDP I/O (`recvmmsg` / `sendmmsg`) shared by every role.
//! - [`sim`]: a deterministic simulated network of many cores.
//! - [`crawler`]: the sans-IO crawl planner (nodes and BEP 51 info-hashes).
//! - [`driver`]: the node on real UDP sockets: the [`driver::Dht`] handle and its threads.
//! - [`bootstrap`]: the bootstrap server: a sans-IO core answering from a pool of verified
//!   nodes, its sharded driver and its pool file.
//! - [`hathor`]: Hathor peer identity, entrypoints, networks, handshake client and peer store.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bootstrap;
pub mod contact;
pub mod crawler;
pub mod driver;
pub mod hathor;
pub mod id;
pub mod items;
pub mod krpc;
pub mod metadata;
pub mod node;
pub mod peers;
pub mod routing;
pub mod sim;
pub mod time;
pub mod token;
pub mod transaction;
pub mod transmit;
pub mod udp;

pub use contact::NodeInfo;
pub use id::{Distance, InfoHash, NodeId};
pub use time::Instant;
pub use transmit::Transmit;
