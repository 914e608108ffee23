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
//! - [`hathor`]: Hathor peer identity, entrypoints, networks, handshake client and peer store.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod contact;
pub mod hathor;
pub mod id;
pub mod krpc;
pub mod time;

pub use contact::NodeInfo;
pub use id::{Distance, InfoHash, NodeId};
pub use time::Instant;
