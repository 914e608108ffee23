//! Torrent metadata from peers: BEP 9 (`ut_metadata`) over the BEP 10 extension protocol.
//!
//! Given an info-hash and a peer's TCP address, this module fetches the torrent's info
//! dictionary from the peer, checks it against the info-hash and parses it:
//!
//! - [`wire`] owns the peer-wire bytes: the BitTorrent handshake (BEP 3, with the extension
//!   bit of BEP 10), message framing, the extension handshake and the `ut_metadata` messages.
//! - [`fetch`](mod@fetch) owns one fetch on a blocking socket with a deadline per stage
//!   ([`fetch()`]), and the [`Fetcher`]: a pool of worker threads that runs many fetches at
//!   once and delivers their outcomes on a channel.
//! - [`info`] owns the info dictionary: parsing it ([`Info`]) and writing a `.torrent` file
//!   around it ([`torrent_file`]).
//!
//! Every byte from the peer may be hostile. The metadata size is bounded before anything is
//! allocated, every message length is bounded, every stage has a deadline, and a peer that
//! sends anything wrong is dropped with a [`Failure`] that says why. Nothing is reported
//! before the info dictionary's hash matched the info-hash.

pub mod fetch;
pub mod info;
pub mod wire;

use std::fmt;
use std::io;

pub use fetch::{Event, FetchConfig, Fetcher, FetcherConfig, Refused, fetch};
pub use info::{FileEntry, Info, InfoError, MetaVersion, torrent_file};

use crate::InfoHash;

/// The size of one metadata piece (BEP 9): every piece but the last is this long.
pub const PIECE_SIZE: usize = 16 * 1024;

/// Torrent metadata fetched from a peer, its hash checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The info-hash it was fetched for (and matches).
    pub info_hash: InfoHash,
    /// The bencoded info dictionary, exactly as received.
    pub info_bytes: Vec<u8>,
    /// The parsed info dictionary.
    pub info: Info,
}

impl Metadata {
    /// The bytes of a `.torrent` file holding this info dictionary (its hash is the info-hash).
    pub fn torrent_file(&self) -> Vec<u8> {
        torrent_file(&self.info_bytes)
    }
}

/// The stage of a fetch, for failures that can happen in several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The TCP connect.
    Connect,
    /// The BitTorrent and extension handshakes.
    Handshake,
    /// Waiting for metadata pieces.
    Pieces,
}

impl Stage {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Handshake => "handshake",
            Stage::Pieces => "pieces",
        }
    }
}

/// Why a fetch from one peer failed. The peer is dropped; nothing it sent is reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The stage's deadline passed.
    Timeout(Stage),
    /// The peer closed (or reset) the connection.
    Closed(Stage),
    /// A socket error (connection refused, reset, ...).
    Io(Stage, io::ErrorKind),
    /// The handshake is not the BitTorrent protocol's.
    NotBitTorrent,
    /// The peer's handshake names another info-hash.
    WrongInfoHash,
    /// The peer does not support the extension protocol (BEP 10).
    NoExtensionProtocol,
    /// The peer's extension handshake has no (or a disabled) `ut_metadata`.
    NoMetadataExtension,
    /// The peer's extension handshake has no `metadata_size`.
    NoMetadataSize,
    /// The peer's `metadata_size` is zero or negative.
    BadMetadataSize(i64),
    /// The peer's `metadata_size` is above the configured maximum.
    MetadataTooLarge(i64),
    /// A message longer than allowed for its kind.
    MessageTooLong(u32),
    /// An extension message that is not the bencode it must be.
    Garbage,
    /// The peer rejected a piece request.
    Rejected(i64),
    /// A piece that was not requested, or was already received.
    UnexpectedPiece(i64),
    /// A piece message whose `total_size` is not the announced `metadata_size`.
    WrongTotalSize(i64),
    /// A piece whose length is not the one its index implies.
    WrongPieceSize {
        /// The piece index.
        piece: u32,
        /// Its length.
        len: usize,
    },
    /// The assembled metadata does not hash to the info-hash.
    HashMismatch,
    /// The metadata hashes right but is not a valid info dictionary.
    BadInfo(InfoError),
    /// Not tried: the peer's earlier fetches failed as many times as allowed
    /// ([`FetcherConfig::max_failures_per_peer`](fetch::FetcherConfig::max_failures_per_peer)).
    PeerFailedBefore,
}

impl Failure {
    /// A short stable name of the failure's kind, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Closed(_) => "closed",
            Failure::Io(..) => "io",
            Failure::NotBitTorrent => "not_bittorrent",
            Failure::WrongInfoHash => "wrong_info_hash",
            Failure::NoExtensionProtocol => "no_extension_protocol",
            Failure::NoMetadataExtension => "no_metadata_extension",
            Failure::NoMetadataSize => "no_metadata_size",
            Failure::BadMetadataSize(_) => "bad_metadata_size",
            Failure::MetadataTooLarge(_) => "metadata_too_large",
            Failure::MessageTooLong(_) => "message_too_long",
            Failure::Garbage => "garbage",
            Failure::Rejected(_) => "rejected",
            Failure::UnexpectedPiece(_) => "unexpected_piece",
            Failure::WrongTotalSize(_) => "wrong_total_size",
            Failure::WrongPieceSize { .. } => "wrong_piece_size",
            Failure::HashMismatch => "hash_mismatch",
            Failure::BadInfo(_) => "bad_info",
            Failure::PeerFailedBefore => "peer_failed_before",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout(stage) => write!(f, "timed out ({})", stage.as_str()),
            Failure::Closed(stage) => write!(f, "peer closed the connection ({})", stage.as_str()),
            Failure::Io(stage, kind) => write!(f, "socket error ({}): {kind}", stage.as_str()),
            Failure::NotBitTorrent => f.write_str("not a BitTorrent handshake"),
            Failure::WrongInfoHash => f.write_str("the peer's handshake names another info-hash"),
            Failure::NoExtensionProtocol => {
                f.write_str("the peer does not support the extension protocol (BEP 10)")
            }
            Failure::NoMetadataExtension => {
                f.write_str("the peer does not support ut_metadata (BEP 9)")
            }
            Failure::NoMetadataSize => f.write_str("the peer sent no metadata_size"),
            Failure::BadMetadataSize(size) => write!(f, "bad metadata_size {size}"),
            Failure::MetadataTooLarge(size) => write!(f, "metadata_size {size} is too large"),
            Failure::MessageTooLong(len) => write!(f, "a message of {len} bytes is too long"),
            Failure::Garbage => f.write_str("an extension message is not valid bencode"),
            Failure::Rejected(piece) => write!(f, "the peer rejected piece {piece}"),
            Failure::UnexpectedPiece(piece) => write!(f, "unexpected piece {piece}"),
            Failure::WrongTotalSize(size) => {
                write!(f, "a piece's total_size {size} differs from metadata_size")
            }
            Failure::WrongPieceSize { piece, len } => {
                write!(f, "piece {piece} has a wrong length {len}")
            }
            Failure::HashMismatch => f.write_str("the metadata does not match the info-hash"),
            Failure::BadInfo(e) => write!(f, "the metadata is not a valid info dictionary: {e}"),
            Failure::PeerFailedBefore => f.write_str("not tried: the peer failed too many times"),
        }
    }
}

impl std::error::Error for Failure {}
