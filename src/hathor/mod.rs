//! Hathor Network peer discovery on the BitTorrent DHT.
//!
//! This module owns everything Hathor-specific that btdht needs to find and verify Hathor full
//! nodes: the peer identity and peer file ([`identity`]), entrypoint strings ([`entrypoint`]),
//! network profiles and the DHT rendezvous info-hash ([`network`]), TLS setup with the Hathor CA
//! ([`tls`]), the line protocol and its checks ([`protocol`]), the client side of the
//! HELLO → PEER-ID → READY handshake ([`handshake`](mod@handshake)), a persisted store of
//! verified peers ([`store`]), discovery and announcing on the DHT ([`discovery`]: the only
//! module that calls the DHT), the client of a node's `POST /v1a/p2p/peers` API ([`push`](mod@push))
//! and, with the `test-util` feature, an in-process fake Hathor node for tests (`fake`).
//!
//! Facts and exact texts follow hathor-core (see `docs/hathor.md` of the project notes).

pub mod discovery;
pub mod entrypoint;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod handshake;
pub mod identity;
pub mod network;
pub mod protocol;
pub mod push;
pub mod store;
pub mod tls;

pub use discovery::{
    AnnounceConfig, AnnounceOutcome, Announcer, Discovery, DiscoveryConfig, DiscoveryError, Report,
};
pub use entrypoint::{PeerAddress, PeerEndpoint};
pub use handshake::{HandshakeConfig, HandshakeFailure, Stage, VerifiedPeer, handshake};
pub use identity::{Identity, PeerId, PublicKey};
pub use network::NetworkProfile;
pub use protocol::FailureReason;
pub use push::{PushError, PushUrl, push};
pub use store::PeerBook;
