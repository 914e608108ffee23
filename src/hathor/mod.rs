//! Hathor Network peer discovery support, independent of the DHT node.
//!
//! This module owns everything Hathor-specific that btdht needs to find and verify Hathor full
//! nodes: the peer identity and peer file ([`identity`]), entrypoint strings ([`entrypoint`]),
//! network profiles and the DHT rendezvous info-hash ([`network`]), TLS setup with the Hathor CA
//! ([`tls`]), the line protocol and its checks ([`protocol`]), the client side of the
//! HELLO → PEER-ID → READY handshake ([`handshake`](mod@handshake)), a persisted store of
//! verified peers ([`store`]) and an in-process fake Hathor node for tests ([`fake`]). It does not talk to the DHT: the announce/discover commands glue the two.
//!
//! Facts and exact texts follow hathor-core (see `docs/hathor.md` of the project notes).

pub mod entrypoint;
pub mod fake;
pub mod handshake;
pub mod identity;
pub mod network;
pub mod protocol;
pub mod store;
pub mod tls;

pub use entrypoint::{PeerAddress, PeerEndpoint};
pub use handshake::{HandshakeConfig, HandshakeFailure, Stage, VerifiedPeer, handshake};
pub use identity::{Identity, PeerId, PublicKey};
pub use network::NetworkProfile;
pub use protocol::FailureReason;
pub use store::PeerStore;
