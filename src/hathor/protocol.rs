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

use rustls::{ClientConnection, ServerConnection, StreamOwned};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::entrypoint::{EntrypointListError, PeerAddress, parse_entrypoint_list};
use super::identity::{PeerId, PublicKey};
use super::network::NetworkProfile;

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

/// A byte stream with an underlying TCP socket (for timeouts and shutdown).
pub trait Transport: Read + Write + Send {
    /// The TCP socket.
    fn socket(&self) -> &TcpStream;
    /// Sends a TLS close_notify if this is TLS (best effort).
    fn close_notify(&mut self) {}
    /// The TLS peer's certificate chain, if any.
    fn peer_certificates(&self) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        None
    }
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl Transport for StreamOwned<ClientConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
    }
    fn peer_certificates(&self) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        self.conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
    }
}

impl Transport for StreamOwned<ServerConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
    }
    fn peer_certificates(&self) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        self.conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
    }
}

/// Maps an I/O error (possibly wrapping a rustls error) to a failure reason.
pub fn io_failure(e: &io::Error) -> FailureReason {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return FailureReason::Tls(TlsFailure::from_rustls(inner));
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FailureReason::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => FailureReason::Closed,
        _ => FailureReason::Io(e.to_string()),
    }
}

/// A `\r\n` line connection over a [`Transport`], with deadlines.
pub struct LineConn<T: Transport> {
    inner: T,
    buf: Vec<u8>,
    eof: bool,
}

impl<T: Transport> fmt::Debug for LineConn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineConn")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<T: Transport> LineConn<T> {
    /// Wraps a transport.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// The transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The transport, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Sends `CMD` or `CMD SP payload`, then `\r\n`, within `timeout`.
    pub fn send(
        &mut self,
        cmd: &str,
        payload: &str,
        timeout: Duration,
    ) -> Result<(), FailureReason> {
        let mut line = Vec::with_capacity(cmd.len() + payload.len() + 3);
        line.extend_from_slice(cmd.as_bytes());
        if !payload.is_empty() {
            line.push(b' ');
            line.extend_from_slice(payload.as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        self.send_raw(&line, timeout)
    }

    /// Sends raw bytes (used by the fake node to inject garbage).
    pub fn send_raw(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), FailureReason> {
        let timeout = timeout.max(Duration::from_millis(1));
        let _ = self.inner.socket().set_write_timeout(Some(timeout));
        self.inner.write_all(bytes).map_err(|e| io_failure(&e))?;
        self.inner.flush().map_err(|e| io_failure(&e))
    }

    /// Reads one line (without `\r\n`) before `deadline`.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, FailureReason> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].windows(2).position(|w| w == b"\r\n") {
                let end = scanned + pos;
                if end > MAX_LINE_LENGTH {
                    return Err(FailureReason::LineTooLong);
                }
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            scanned = self.buf.len().saturating_sub(1);
            if self.buf.len() > MAX_LINE_LENGTH + 1 {
                return Err(FailureReason::LineTooLong);
            }
            if self.eof {
                return Err(FailureReason::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FailureReason::Timeout);
            }
            let _ = self
                .inner
                .socket()
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            let mut chunk = [0u8; 8192];
            match self.inner.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match io_failure(&e) {
                    FailureReason::Timeout if Instant::now() < deadline => {}
                    other => return Err(other),
                },
            }
        }
    }

    /// Reads one message and splits it into command and payload. Non-UTF-8 lines and unknown
    /// command words are failures (Hathor closes without ERROR).
    pub fn read_message(&mut self, deadline: Instant) -> Result<(String, String), FailureReason> {
        let line = self.read_line(deadline)?;
        let text = String::from_utf8(line).map_err(|_| FailureReason::NotUtf8)?;
        let (cmd, payload) = match text.split_once(' ') {
            Some((c, p)) => (c.to_string(), p.to_string()),
            None => (text, String::new()),
        };
        if !is_known_command(&cmd) {
            let mut shown = cmd;
            shown.truncate(64);
            return Err(FailureReason::UnknownCommand(shown));
        }
        Ok((cmd, payload))
    }

    /// Sends `ERROR <text>` (best effort) and closes.
    pub fn fail(mut self, text: &str) {
        let _ = self.send("ERROR", text, Duration::from_secs(1));
        self.close();
    }

    /// Closes gracefully: TLS close_notify (best effort), shutdown of our sending side, then
    /// the remote's remaining bytes are read and dropped until it closes too (at most 500 ms
    /// and 64 KiB). Closing a socket with unread data makes the kernel send a reset, which
    /// can destroy our last line (an ERROR) before the remote reads it.
    pub fn close(mut self) {
        let socket = self.inner.socket();
        let _ = socket.set_write_timeout(Some(Duration::from_millis(500)));
        self.inner.close_notify();
        let socket = self.inner.socket();
        let _ = socket.shutdown(std::net::Shutdown::Write);
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        let mut drained = 0usize;
        let mut buf = [0u8; 4096];
        let mut reader = socket;
        while drained < 64 * 1024 {
            let now = std::time::Instant::now();
            if now >= deadline || reader.set_read_timeout(Some(deadline - now)).is_err() {
                break;
            }
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}

/// The HELLO payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// `Hathor v<version>` for hathor-core.
    pub app: String,
    /// `NETWORK_NAME`.
    pub network: String,
    /// The sender's view of the receiver's address (informational).
    pub remote_address: String,
    /// First 7 hex chars of the genesis digest.
    pub genesis_short_hash: String,
    /// The sender's clock, seconds since the epoch.
    pub timestamp: f64,
    /// Optional network settings (omitted by clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_dict: Option<Map<String, Value>>,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Sync versions (required with the `sync-version` capability).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_versions: Option<Vec<String>>,
}

impl Hello {
    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the receiver knows to check a HELLO.
#[derive(Clone, Debug)]
pub struct HelloCheck<'a> {
    /// Our network.
    pub network: &'a NetworkProfile,
    /// Our clock at receipt, seconds since the epoch.
    pub now: f64,
}

/// Checks a HELLO payload in hathor-core's order: JSON and required keys → whitelist capability
/// (whitelisted networks) → sync versions → network → genesis → timestamp → settings_dict.
pub fn check_hello(payload: &str, check: &HelloCheck<'_>) -> Result<Hello, FailureReason> {
    let value: Value =
        serde_json::from_str(payload).map_err(|_| FailureReason::InvalidHelloPayload)?;
    let obj = value
        .as_object()
        .ok_or(FailureReason::InvalidHelloPayload)?;
    for key in [
        "app",
        "network",
        "remote_address",
        "genesis_short_hash",
        "timestamp",
        "capabilities",
    ] {
        if !obj.contains_key(key) {
            return Err(FailureReason::InvalidHelloPayload);
        }
    }
    let as_string = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let capabilities: Vec<String> = match &obj["capabilities"] {
        Value::Array(items) => items.iter().take(64).map(as_string).collect(),
        _ => return Err(FailureReason::InvalidHelloPayload),
    };
    if check.network.whitelist && !capabilities.iter().any(|c| c == capability::WHITELIST) {
        return Err(FailureReason::MissingWhitelistCapability);
    }
    let sync_versions = if capabilities.iter().any(|c| c == capability::SYNC_VERSION) {
        match obj.get("sync_versions") {
            Some(Value::Array(items)) => {
                Some(items.iter().take(64).map(as_string).collect::<Vec<_>>())
            }
            _ => return Err(FailureReason::InvalidSyncProtocol),
        }
    } else {
        None
    };
    // Without the capability the remote is assumed to speak only v1.1.
    let common = sync_versions
        .as_ref()
        .is_some_and(|v| v.iter().any(|s| s == SYNC_V2));
    if !common {
        return Err(FailureReason::NoCompatibleSyncVersion);
    }
    let network = as_string(&obj["network"]);
    if network != check.network.name {
        return Err(FailureReason::WrongNetwork {
            remote: truncated(&network),
        });
    }
    let genesis = as_string(&obj["genesis_short_hash"]);
    if genesis != check.network.genesis_short_hash() {
        return Err(FailureReason::DifferentGenesis {
            remote: truncated(&genesis),
        });
    }
    let timestamp = obj["timestamp"]
        .as_f64()
        .filter(|t| t.is_finite())
        .ok_or(FailureReason::InvalidHelloPayload)?;
    let offset = timestamp - check.now;
    if offset.abs() > MAX_CLOCK_SKEW {
        return Err(FailureReason::TimestampsTooFarApart { offset });
    }
    let settings_dict = match obj.get("settings_dict") {
        None | Some(Value::Null) => None,
        Some(Value::Object(theirs)) => {
            if let Some(ours) = &check.network.settings_dict {
                if theirs != ours {
                    return Err(FailureReason::SettingsDifferent(
                        serde_json::to_string(ours).unwrap_or_default(),
                    ));
                }
            }
            Some(theirs.clone())
        }
        Some(_) => {
            return Err(FailureReason::SettingsDifferent(
                check
                    .network
                    .settings_dict
                    .as_ref()
                    .and_then(|o| serde_json::to_string(o).ok())
                    .unwrap_or_else(|| "{}".into()),
            ));
        }
    };
    Ok(Hello {
        app: truncated(&as_string(&obj["app"])),
        network,
        remote_address: truncated(&as_string(&obj["remote_address"])),
        genesis_short_hash: genesis,
        timestamp,
        settings_dict,
        capabilities,
        sync_versions,
    })
}

fn truncated(s: &str) -> String {
    s.chars().take(256).collect()
}

/// The PEER-ID payload as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdPayload {
    /// The peer id, hex.
    pub id: String,
    /// Base64 SPKI DER.
    #[serde(rename = "pubKey")]
    pub pub_key: String,
    /// Entrypoints.
    pub entrypoints: Vec<String>,
}

impl PeerIdPayload {
    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A peer proved by PEER-ID (and the TLS certificate).
#[derive(Clone, Debug)]
pub struct RemoteIdentity {
    /// The peer id.
    pub id: PeerId,
    /// Its public key.
    pub public_key: PublicKey,
    /// Declared entrypoints, without `?id=`.
    pub entrypoints: Vec<PeerAddress>,
    /// Whether the dialled address is among them (outbound); `false` when none declared.
    pub entrypoint_confirmed: bool,
}

/// Resolves a host name to IP addresses (for entrypoint validation).
pub type Resolver = Arc<dyn Fn(&str) -> Vec<IpAddr> + Send + Sync>;

/// How the connection was made, for entrypoint validation.
#[derive(Clone, Debug)]
pub enum Direction {
    /// We dialled this address (the dialled `tcp://ip:port` must be declared).
    Outbound(SocketAddr),
    /// The remote connected from this address (only its IP is compared).
    Inbound(SocketAddr),
}

/// What the receiver knows to check a PEER-ID.
#[derive(Clone)]
pub struct PeerIdCheck<'a> {
    /// The id we dialled for (`/?id=`), if any.
    pub expected: Option<PeerId>,
    /// Our own id.
    pub own_id: PeerId,
    /// The direction of the connection.
    pub direction: Direction,
    /// The key in the remote's TLS certificate.
    pub cert_key: Option<&'a PublicKey>,
    /// Whether the remote id is allowed (whitelist); `None` allows all.
    pub allowed: Option<&'a (dyn Fn(PeerId) -> bool + Sync)>,
    /// Resolver for entrypoint host names; without one, names never match.
    pub resolver: Option<&'a Resolver>,
}

/// Checks a PEER-ID payload in hathor-core's order: parse → id/key and entrypoint count →
/// requested id → whitelist → own id → entrypoints → certificate key.
pub fn check_peer_id(
    payload: &str,
    check: &PeerIdCheck<'_>,
) -> Result<RemoteIdentity, FailureReason> {
    let value: Value =
        serde_json::from_str(payload).map_err(|_| FailureReason::InvalidPeerIdPayload)?;
    let obj = value
        .as_object()
        .ok_or(FailureReason::InvalidPeerIdPayload)?;
    let id_text = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or(FailureReason::InvalidPeerIdPayload)?;
    let id = PeerId::parse_hex(id_text).map_err(FailureReason::UnparsablePeerId)?;
    let key_text = obj
        .get("pubKey")
        .and_then(Value::as_str)
        .ok_or(FailureReason::InvalidPeerIdPayload)?;
    let public_key = PublicKey::from_base64(key_text)
        .map_err(|e| FailureReason::UnparsablePeerId(e.to_string()))?;
    let raw_entrypoints: Vec<String> = match obj.get("entrypoints") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > super::entrypoint::MAX_ENTRYPOINTS {
                return Err(FailureReason::TooManyEntrypoints(items.len()));
            }
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(FailureReason::InvalidPeerIdPayload)?
        }
        Some(_) => return Err(FailureReason::InvalidPeerIdPayload),
    };
    let entrypoints = parse_entrypoint_list(&raw_entrypoints, id).map_err(|e| match e {
        EntrypointListError::TooMany(n) => FailureReason::TooManyEntrypoints(n),
        EntrypointListError::Invalid(e) => FailureReason::UnparsablePeerId(e.0),
    })?;
    if public_key.peer_id() != id {
        return Err(FailureReason::IdDoesNotMatchKey);
    }
    if let Some(expected) = check.expected {
        if expected != id {
            return Err(FailureReason::PeerIdNotRequested {
                expected,
                remote: id,
            });
        }
    }
    if let Some(allowed) = check.allowed {
        if !allowed(id) {
            return Err(FailureReason::NotWhitelisted);
        }
    }
    if id == check.own_id {
        return Err(FailureReason::Clone);
    }
    let entrypoint_confirmed = if entrypoints.is_empty() {
        false
    } else if entrypoint_matches(&entrypoints, &check.direction, check.resolver) {
        true
    } else {
        return Err(FailureReason::NotInEntrypoints);
    };
    match check.cert_key {
        Some(k) if k == &public_key => {}
        _ => return Err(FailureReason::CertificateKeyMismatch),
    }
    Ok(RemoteIdentity {
        id,
        public_key,
        entrypoints,
        entrypoint_confirmed,
    })
}

fn entrypoint_matches(
    declared: &[PeerAddress],
    direction: &Direction,
    resolver: Option<&Resolver>,
) -> bool {
    let (addr, check_port) = match direction {
        Direction::Outbound(a) => (*a, true),
        Direction::Inbound(a) => (*a, false),
    };
    let dialled = PeerAddress::from_socket_addr(addr);
    let ip = normalize_ip(addr.ip());
    declared.iter().any(|ep| {
        let port_ok = !check_port || ep.port() == addr.port();
        if !port_ok {
            return false;
        }
        if ep.same_host(&dialled) {
            return true;
        }
        if let Some(ep_ip) = ep.ip() {
            return normalize_ip(ep_ip) == ip;
        }
        match resolver {
            Some(r) => r(ep.host()).into_iter().any(|r| normalize_ip(r) == ip),
            None => false,
        }
    })
}

fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One gossiped peer from a `PEERS` line (unverified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipPeer {
    /// The peer id it claims.
    pub id: PeerId,
    /// Its entrypoints.
    pub entrypoints: Vec<PeerAddress>,
}

impl Serialize for PeerAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PeerAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::entrypoint::PeerEndpoint::parse(&s)
            .map(|e| e.addr)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a `PEERS` payload (`[{"id":…,"entrypoints":[…]}, …]`), skipping invalid items.
pub fn parse_peers(payload: &str, limit: usize) -> Vec<GossipPeer> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(payload) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let id = PeerId::parse_hex(item.get("id")?.as_str()?).ok()?;
            let eps: Vec<String> = item
                .get("entrypoints")?
                .as_array()?
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect();
            let entrypoints = parse_entrypoint_list(&eps, id).ok()?;
            Some(GossipPeer { id, entrypoints })
        })
        .take(limit)
        .collect()
}

/// The current time, seconds since the epoch.
pub fn system_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl std::fmt::Debug for PeerIdCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIdCheck")
            .field("expected", &self.expected)
            .field("own_id", &self.own_id)
            .field("direction", &self.direction)
            .field("whitelist", &self.allowed.is_some())
            .finish_non_exhaustive()
    }
}
