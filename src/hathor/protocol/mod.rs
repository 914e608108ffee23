//! The Hathor p2p line protocol: framing, messages and the receiver's checks of HELLO and
//! PEER-ID, shared by the handshake client and the fake node.
//!
//! Each message is one line `CMD` or `CMD SP PAYLOAD` ended by `\r\n`, at most
//! [`MAX_LINE_LENGTH`] bytes. The checks mirror hathor-core's `states/hello.py` and
//! `states/peer_id.py`: same order, and [`FailureReason::hathor_error`] gives the exact `ERROR`
//! text a Hathor node sends for each. Bytes from the network are hostile: nothing here panics on
//! them, and every read is bounded in size and time.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::StreamOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::entrypoint::{EntrypointListError, PeerAddress, parse_entrypoint_list};
use super::identity::{PeerId, PublicKey};
use super::network::NetworkProfile;

mod hello;
mod line;
mod peer_id;
mod peers;

pub use hello::{Hello, HelloCheck, check_hello};
pub use line::{LineConn, Transport, io_failure};
pub use peer_id::{Direction, PeerIdCheck, PeerIdPayload, RemoteIdentity, Resolver, check_peer_id};
pub use peers::{GossipPeer, parse_peers};

/// Longest line accepted (Twisted `LineReceiver.MAX_LENGTH`), without the `\r\n`.
pub const MAX_LINE_LENGTH: usize = 65536;

/// Largest accepted difference between the two nodes' clocks, in seconds
/// (`MAX_FUTURE_TIMESTAMP_ALLOWED / 2`).
pub const MAX_CLOCK_SKEW: f64 = 150.0;

/// The only sync version modern nodes enable.
pub const SYNC_V2: &str = "v2";

/// Capability names.
pub mod capability {
    /// The node honours the peer whitelist.
    pub const WHITELIST: &str = "whitelist";
    /// HELLO carries `sync_versions`.
    pub const SYNC_VERSION: &str = "sync-version";
    /// The node answers GET-BEST-BLOCKCHAIN.
    pub const GET_BEST_BLOCKCHAIN: &str = "get-best-blockchain";
    /// IPv6 entrypoints may be relayed.
    pub const IPV6: &str = "ipv6";
    /// Nano contracts state.
    pub const NANO_STATE: &str = "nano-state";
}

/// Command words of `ProtocolMessages` (hathor-core); any other word closes the connection.
pub const KNOWN_COMMANDS: &[&str] = &[
    "HELLO",
    "PEER-ID",
    "READY",
    "ERROR",
    "THROTTLE",
    "GET-PEERS",
    "PEERS",
    "PING",
    "PONG",
    "GET-BEST-BLOCKCHAIN",
    "BEST-BLOCKCHAIN",
    "GET-NEXT-BLOCKS",
    "BLOCKS",
    "BLOCKS-END",
    "GET-BEST-BLOCK",
    "BEST-BLOCK",
    "GET-TRANSACTIONS-BFS",
    "TRANSACTION",
    "TRANSACTIONS-END",
    "GET-PEER-BLOCK-HASHES",
    "PEER-BLOCK-HASHES",
    "STOP-BLOCK-STREAMING",
    "STOP-TRANSACTIONS-STREAMING",
    "GET-TIPS",
    "TIPS",
    "TIPS-END",
    "GET-DATA",
    "DATA",
    "RELAY",
    "GET-MEMPOOL",
    "MEMPOOL-END",
];

/// Whether `cmd` is a known command word.
pub fn is_known_command(cmd: &str) -> bool {
    KNOWN_COMMANDS.contains(&cmd)
}

/// Hathor's `ERROR` text for a known command received in a state that does not accept it.
pub fn invalid_command_text(cmd: &str, payload: &str) -> String {
    format!(
        "Invalid Command: ProtocolMessages.{} {}",
        cmd.replace('-', "_"),
        payload
    )
}

/// A TLS-level failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The remote sent a fatal alert (e.g. `CertificateRequired`, `UnknownCA`).
    AlertReceived(String),
    /// The remote's certificate was refused (e.g. not issued by the CA).
    InvalidCertificate(String),
    /// The remote presented no certificate.
    NoCertificate,
    /// The remote does not speak TLS (or sent something rustls could not parse).
    NotTls(String),
    /// Any other TLS error.
    Other(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlertReceived(a) => write!(f, "remote sent TLS alert {a}"),
            Self::InvalidCertificate(e) => write!(f, "invalid certificate: {e}"),
            Self::NoCertificate => write!(f, "no certificate"),
            Self::NotTls(e) => write!(f, "not TLS: {e}"),
            Self::Other(e) => write!(f, "TLS error: {e}"),
        }
    }
}

impl TlsFailure {
    fn from_rustls(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::AlertReceived(a) => Self::AlertReceived(format!("{a:?}")),
            rustls::Error::InvalidCertificate(c) => Self::InvalidCertificate(format!("{c:?}")),
            rustls::Error::NoCertificatesPresented => Self::NoCertificate,
            rustls::Error::InvalidMessage(m) => Self::NotTls(format!("{m:?}")),
            other => Self::Other(other.to_string()),
        }
    }
}

/// Why a handshake failed, on either side. Each variant that Hathor answers with an `ERROR` line
/// has its text in [`FailureReason::hathor_error`].
#[derive(Clone, Debug, PartialEq)]
pub enum FailureReason {
    /// TCP connect failed.
    Connect(String),
    /// A step did not finish within its timeout.
    Timeout,
    /// The remote closed the connection.
    Closed,
    /// TLS failed.
    Tls(TlsFailure),
    /// Another I/O error.
    Io(String),
    /// A line longer than [`MAX_LINE_LENGTH`] (connection closed, no ERROR).
    LineTooLong,
    /// A line that is not UTF-8 (connection closed, no ERROR).
    NotUtf8,
    /// An unknown command word (connection closed, no ERROR).
    UnknownCommand(String),
    /// A known command not allowed in the current state.
    UnexpectedCommand {
        /// The command word.
        cmd: String,
        /// Its payload.
        payload: String,
    },
    /// Too many lines without progress.
    TooManyMessages,
    /// The remote sent `ERROR <text>`.
    RemoteError(String),
    /// HELLO is not JSON or lacks a required key.
    InvalidHelloPayload,
    /// We require the `whitelist` capability (whitelisted network) and it is missing.
    MissingWhitelistCapability,
    /// `sync-version` capability without `sync_versions`.
    InvalidSyncProtocol,
    /// No sync version in common (we only speak `v2`).
    NoCompatibleSyncVersion,
    /// The remote is on another network.
    WrongNetwork {
        /// The network the remote announced.
        remote: String,
    },
    /// The remote has another genesis.
    DifferentGenesis {
        /// The genesis short hash the remote announced.
        remote: String,
    },
    /// The clocks differ by more than [`MAX_CLOCK_SKEW`].
    TimestampsTooFarApart {
        /// Remote minus local, seconds.
        offset: f64,
    },
    /// `settings_dict` differs from ours; carries ours as compact JSON.
    SettingsDifferent(String),
    /// PEER-ID fields could not be parsed (`Unable to parse peer id. Reason: ...`).
    UnparsablePeerId(String),
    /// PEER-ID is not JSON or lacks fields.
    InvalidPeerIdPayload,
    /// PEER-ID's id is not sha256d(pubKey).
    IdDoesNotMatchKey,
    /// More than 30 entrypoints.
    TooManyEntrypoints(usize),
    /// We dialled `?id=expected` and the remote is someone else.
    PeerIdNotRequested {
        /// The id we asked for.
        expected: PeerId,
        /// The id the remote proved.
        remote: PeerId,
    },
    /// The remote has our own id.
    Clone,
    /// The remote is not permitted (whitelist).
    NotWhitelisted,
    /// The dialled address (or the remote IP, inbound) is not among the declared entrypoints.
    NotInEntrypoints,
    /// The TLS certificate's key is not PEER-ID's pubKey.
    CertificateKeyMismatch,
}

impl FailureReason {
    /// The `ERROR` text a Hathor node sends in this situation, if it sends one.
    pub fn hathor_error(&self) -> Option<String> {
        Some(match self {
            Self::UnexpectedCommand { cmd, payload } => invalid_command_text(cmd, payload),
            Self::InvalidHelloPayload => "Invalid payload.".into(),
            Self::MissingWhitelistCapability => "Must have whitelist capability.".into(),
            Self::InvalidSyncProtocol => "invalid protocol".into(),
            Self::NoCompatibleSyncVersion => "no compatible sync version to use".into(),
            Self::WrongNetwork { .. } => "Wrong network.".into(),
            Self::DifferentGenesis { .. } => "Different genesis.".into(),
            Self::TimestampsTooFarApart { .. } => "Nodes timestamps too far apart.".into(),
            Self::SettingsDifferent(ours) => format!("Settings values are different. {ours}"),
            Self::UnparsablePeerId(reason) => format!("Unable to parse peer id. Reason: {reason}"),
            Self::InvalidPeerIdPayload | Self::IdDoesNotMatchKey | Self::TooManyEntrypoints(_) => {
                "Error processing \"PEER-ID\" command".into()
            }
            Self::PeerIdNotRequested { .. } => "Peer id different from the requested one.".into(),
            Self::Clone => "Are you my clone?!".into(),
            Self::NotWhitelisted => "Connection rejected.".into(),
            Self::NotInEntrypoints => "Connection string is not in the entrypoints.".into(),
            Self::CertificateKeyMismatch => {
                "Public keys from peer and certificate are not the same.".into()
            }
            _ => return None,
        })
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect failed: {e}"),
            Self::Timeout => write!(f, "timed out"),
            Self::Closed => write!(f, "connection closed by remote"),
            Self::Tls(t) => write!(f, "{t}"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::LineTooLong => write!(f, "line too long"),
            Self::NotUtf8 => write!(f, "line is not UTF-8"),
            Self::UnknownCommand(c) => write!(f, "unknown command {c:?}"),
            Self::TooManyMessages => write!(f, "too many messages"),
            Self::RemoteError(t) => write!(f, "remote error: {t}"),
            Self::WrongNetwork { remote } => write!(f, "Wrong network. (remote: {remote:?})"),
            Self::DifferentGenesis { remote } => {
                write!(f, "Different genesis. (remote: {remote:?})")
            }
            Self::TimestampsTooFarApart { offset } => {
                write!(f, "Nodes timestamps too far apart. (offset {offset:.1} s)")
            }
            Self::PeerIdNotRequested { expected, remote } => write!(
                f,
                "Peer id different from the requested one. (expected {expected}, got {remote})"
            ),
            Self::IdDoesNotMatchKey => write!(f, "id does not match public key"),
            Self::TooManyEntrypoints(n) => write!(f, "too many entrypoints ({n})"),
            other => match other.hathor_error() {
                Some(t) => f.write_str(&t),
                None => write!(f, "{other:?}"),
            },
        }
    }
}

/// The current time, seconds since the epoch.
pub fn system_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
