//! The client side of the Hathor handshake: verify that an address is a Hathor full node of a
//! given network, and learn its identity.
//!
//! Steps, each under its own timeout: TCP connect → TLS 1.3 with mutual authentication (our leaf
//! certificate signed by the configured CA; the server's chain checked against that CA, server
//! name ignored) → `HELLO` both ways → `PEER-ID` both ways → `READY` both ways (optionally a
//! short `GET-PEERS` window) → close. We never stay in READY. Every check of the remote
//! produces a typed [`FailureReason`]; when we refuse the remote we send it the `ERROR` text a
//! Hathor node would send. A failure is never reported as a verified peer.
//!
//! Blocking I/O on one thread per handshake; callers bound concurrency themselves.

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::entrypoint::{PeerAddress, PeerEndpoint};
use super::identity::{Identity, PeerId, PublicKey};
use super::network::NetworkProfile;
use super::protocol::{
    Direction, FailureReason, GossipPeer, HelloCheck, LineConn, PeerIdCheck, PeerIdPayload,
    Resolver, SYNC_V2, TlsFailure, capability, check_hello, check_peer_id, io_failure, parse_peers,
    system_clock,
};
use super::tls::{TlsCredentials, TlsSetupError, certificate_public_key, server_name_for};

/// Default timeout of each step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines tolerated in one step before the expected message (THROTTLE and the like).
const MAX_LINES_PER_STEP: usize = 32;

/// Most gossiped peers kept from one connection (Hathor's per-connection cap).
pub const MAX_GOSSIP_PEERS: usize = 100;

/// The step a handshake was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// TCP connect.
    Connect,
    /// TLS handshake.
    Tls,
    /// Waiting for / checking the remote HELLO.
    Hello,
    /// Waiting for / checking the remote PEER-ID.
    PeerId,
    /// Waiting for the remote READY.
    Ready,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Hello => "hello",
            Self::PeerId => "peer-id",
            Self::Ready => "ready",
        })
    }
}

/// A failed handshake.
#[derive(Clone, Debug, PartialEq)]
pub struct HandshakeFailure {
    /// Where it failed.
    pub stage: Stage,
    /// Why.
    pub reason: FailureReason,
    /// The remote's id if its PEER-ID had been fully verified before the failure (e.g. a
    /// whitelist-only node that refuses us after proving its identity). Not a verified peer.
    pub remote_id: Option<PeerId>,
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.reason)
    }
}

impl std::error::Error for HandshakeFailure {}

/// A peer that completed the handshake and passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedPeer {
    /// The peer id (= sha256d of its key, which is also its TLS certificate key).
    pub id: PeerId,
    /// Its public key.
    pub public_key: PublicKey,
    /// The address we dialled.
    pub dialled: SocketAddr,
    /// Its declared entrypoints (may be empty for NAT'd peers).
    pub entrypoints: Vec<PeerAddress>,
    /// Whether the dialled address is among the declared entrypoints.
    pub entrypoint_confirmed: bool,
    /// Its `app` string (e.g. `Hathor v0.72.0`).
    pub app: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// Its sync versions.
    pub sync_versions: Vec<String>,
    /// Its clock minus ours at receipt of HELLO, seconds.
    pub clock_offset: f64,
    /// Peers it gossiped (unverified), if a gossip window was configured.
    pub gossip: Vec<GossipPeer>,
}

impl VerifiedPeer {
    /// The endpoint to give Hathor (`--bootstrap`, `POST /v1a/p2p/peers`, DNS TXT):
    /// `tcp://ip:port/?id=<id>` for the dialled address.
    pub fn endpoint(&self) -> PeerEndpoint {
        PeerAddress::from_socket_addr(self.dialled).with_id(self.id)
    }
}

/// Everything a handshake needs; cheap to clone and share between threads.
#[derive(Clone)]
pub struct HandshakeConfig {
    /// The network we expect.
    pub network: NetworkProfile,
    /// Our identity (sent in PEER-ID; its key is in our TLS certificate).
    pub identity: Arc<Identity>,
    /// rustls client configuration (see [`TlsCredentials::client_config`]).
    pub tls: Arc<ClientConfig>,
    /// Timeout of each step.
    pub step_timeout: Duration,
    /// Our `app` string.
    pub app: String,
    /// Our capabilities (must include `sync-version`; `whitelist` for whitelisted networks).
    pub capabilities: Vec<String>,
    /// Resolver for entrypoint host names (Hathor resolves them); `None`: names never match.
    pub resolver: Option<Resolver>,
    /// Our clock, seconds since the epoch.
    pub clock: fn() -> f64,
    /// After READY, send `GET-PEERS` and collect `PEERS` for this long (crawl mode).
    pub gossip_window: Option<Duration>,
    /// Dial from this local IP (port chosen by the system), so that a remote checking our
    /// declared entrypoints sees the address they name; `None` or an unspecified IP: the
    /// system's choice. Ignored for remotes of the other address family.
    pub local_ip: Option<IpAddr>,
}

impl fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("network", &self.network.name)
            .field("identity", &self.identity.id())
            .field("step_timeout", &self.step_timeout)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl HandshakeConfig {
    /// A configuration with defaults: 10 s steps, capabilities `whitelist`, `sync-version`,
    /// `ipv6`, no resolver, the system clock, no gossip window, any local address.
    pub fn new(
        network: NetworkProfile,
        identity: Arc<Identity>,
        credentials: &TlsCredentials,
    ) -> Result<Self, TlsSetupError> {
        Ok(Self {
            network,
            identity,
            tls: credentials.client_config()?,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            app: format!("btdht v{}", env!("CARGO_PKG_VERSION")),
            capabilities: vec![
                capability::WHITELIST.into(),
                capability::SYNC_VERSION.into(),
                capability::IPV6.into(),
            ],
            resolver: None,
            clock: system_clock,
            gossip_window: None,
            local_ip: None,
        })
    }
}

/// Resolves host names with the system resolver (blocking, no timeout of its own).
pub fn system_resolver() -> Resolver {
    Arc::new(|host: &str| {
        use std::net::ToSocketAddrs;
        (host, 0u16)
            .to_socket_addrs()
            .map(|it| it.map(|a| a.ip()).take(16).collect())
            .unwrap_or_default()
    })
}

/// Dials an endpoint whose host is an IP literal (names must be resolved by the caller) and
/// verifies it; `?id=` becomes the expected id.
pub fn handshake_endpoint(
    endpoint: &PeerEndpoint,
    config: &HandshakeConfig,
) -> Result<VerifiedPeer, HandshakeFailure> {
    let addr = endpoint
        .addr
        .socket_addr()
        .ok_or_else(|| HandshakeFailure {
            stage: Stage::Connect,
            reason: FailureReason::Connect(format!(
                "host {:?} is not an IP address",
                endpoint.addr.host()
            )),
            remote_id: None,
        })?;
    handshake(addr, endpoint.peer_id, config)
}

/// Dials `addr` and runs the handshake; `expected` is the id we dial for (`?id=`), if any.
pub fn handshake(
    addr: SocketAddr,
    expected: Option<PeerId>,
    config: &HandshakeConfig,
) -> Result<VerifiedPeer, HandshakeFailure> {
    let fail = |stage, reason| HandshakeFailure {
        stage,
        reason,
        remote_id: None,
    };
    let step = config.step_timeout;
    let tcp = dial(addr, config.local_ip, step).map_err(|e| {
        let reason = match io_failure(&e) {
            FailureReason::Timeout => FailureReason::Timeout,
            _ => FailureReason::Connect(e.to_string()),
        };
        fail(Stage::Connect, reason)
    })?;
    let _ = tcp.set_nodelay(true);

    // TLS handshake.
    let conn = ClientConnection::new(config.tls.clone(), server_name_for(addr)).map_err(|e| {
        fail(
            Stage::Tls,
            FailureReason::Tls(TlsFailure::Other(e.to_string())),
        )
    })?;
    let mut stream = StreamOwned::new(conn, tcp);
    let deadline = Instant::now() + step;
    while stream.conn.is_handshaking() {
        let now = Instant::now();
        if now >= deadline {
            return Err(fail(Stage::Tls, FailureReason::Timeout));
        }
        let _ = stream.sock.set_read_timeout(Some(deadline - now));
        let _ = stream.sock.set_write_timeout(Some(deadline - now));
        match stream.conn.complete_io(&mut stream.sock) {
            Ok((0, 0)) if stream.conn.is_handshaking() => {
                return Err(fail(Stage::Tls, FailureReason::Closed));
            }
            Ok(_) => {}
            Err(e) => return Err(fail(Stage::Tls, io_failure(&e))),
        }
    }
    let cert_key = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(certificate_public_key);
    let cert_key = match cert_key {
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            return Err(fail(
                Stage::Tls,
                FailureReason::Tls(TlsFailure::InvalidCertificate(e.to_string())),
            ));
        }
        None => {
            return Err(fail(
                Stage::Tls,
                FailureReason::Tls(TlsFailure::NoCertificate),
            ));
        }
    };
    let mut lines = LineConn::new(stream);

    let mut session = Session {
        lines: &mut lines,
        step,
    };
    let result = session.run(addr, expected, &cert_key, config);
    match result {
        Ok(peer) => {
            lines.close();
            Ok(peer)
        }
        Err(boxed) => {
            let (failure, error_text) = *boxed;
            match error_text {
                Some(text) => lines.fail(&text),
                None => lines.close(),
            }
            Err(failure)
        }
    }
}

/// Connects to `addr` within `timeout`, from `local_ip` (port 0) when it is a specified
/// address of the same family.
fn dial(
    addr: SocketAddr,
    local_ip: Option<IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let local = local_ip.filter(|ip| !ip.is_unspecified() && ip.is_ipv4() == addr.is_ipv4());
    let Some(ip) = local else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.connect_timeout(&addr.into(), timeout)?;
    Ok(socket.into())
}

type StepError = Box<(HandshakeFailure, Option<String>)>;

struct Session<'a> {
    lines: &'a mut LineConn<StreamOwned<ClientConnection, TcpStream>>,
    step: Duration,
}

impl Session<'_> {
    fn lines(&mut self) -> &mut LineConn<StreamOwned<ClientConnection, TcpStream>> {
        self.lines
    }

    /// Reads until `want`, handling ERROR/THROTTLE; other known commands are unexpected.
    fn expect(
        &mut self,
        want: &str,
        stage: Stage,
        remote_id: Option<PeerId>,
    ) -> Result<String, StepError> {
        let deadline = Instant::now() + self.step;
        let mk = |reason: FailureReason| {
            let text = reason.hathor_error();
            Box::new((
                HandshakeFailure {
                    stage,
                    reason,
                    remote_id,
                },
                text,
            ))
        };
        for _ in 0..MAX_LINES_PER_STEP {
            let (cmd, payload) = self.lines().read_message(deadline).map_err(|r| {
                Box::new((
                    HandshakeFailure {
                        stage,
                        reason: r,
                        remote_id,
                    },
                    None,
                ))
            })?;
            if cmd == want {
                return Ok(payload);
            }
            match cmd.as_str() {
                "ERROR" => {
                    let mut text = payload;
                    text.truncate(1024);
                    return Err(Box::new((
                        HandshakeFailure {
                            stage,
                            reason: FailureReason::RemoteError(text),
                            remote_id,
                        },
                        None,
                    )));
                }
                "THROTTLE" => continue,
                _ => {
                    let mut payload = payload;
                    payload.truncate(256);
                    return Err(mk(FailureReason::UnexpectedCommand { cmd, payload }));
                }
            }
        }
        Err(Box::new((
            HandshakeFailure {
                stage,
                reason: FailureReason::TooManyMessages,
                remote_id,
            },
            None,
        )))
    }

    fn send(
        &mut self,
        cmd: &str,
        payload: &str,
        stage: Stage,
        remote_id: Option<PeerId>,
    ) -> Result<(), StepError> {
        let step = self.step;
        self.lines().send(cmd, payload, step).map_err(|reason| {
            Box::new((
                HandshakeFailure {
                    stage,
                    reason,
                    remote_id,
                },
                None,
            ))
        })
    }

    fn run(
        &mut self,
        addr: SocketAddr,
        expected: Option<PeerId>,
        cert_key: &PublicKey,
        config: &HandshakeConfig,
    ) -> Result<VerifiedPeer, StepError> {
        let refuse = |stage, reason: FailureReason, remote_id| {
            let text = reason.hathor_error();
            Box::new((
                HandshakeFailure {
                    stage,
                    reason,
                    remote_id,
                },
                text,
            ))
        };
        // HELLO both ways (symmetric: both sides send at once).
        let hello = super::protocol::Hello {
            app: config.app.clone(),
            network: config.network.name.clone(),
            remote_address: addr.to_string(),
            genesis_short_hash: config.network.genesis_short_hash(),
            timestamp: (config.clock)(),
            settings_dict: None,
            capabilities: config.capabilities.clone(),
            sync_versions: Some(vec![SYNC_V2.into()]),
        };
        self.send("HELLO", &hello.to_json(), Stage::Hello, None)?;
        let payload = self.expect("HELLO", Stage::Hello, None)?;
        let now = (config.clock)();
        let remote_hello = check_hello(
            &payload,
            &HelloCheck {
                network: &config.network,
                now,
            },
        )
        .map_err(|r| refuse(Stage::Hello, r, None))?;

        // PEER-ID both ways.
        let ours = PeerIdPayload {
            id: config.identity.id().to_hex(),
            pub_key: config.identity.public_key().to_base64(),
            entrypoints: config
                .identity
                .entrypoints()
                .iter()
                .map(|e| e.to_string())
                .collect(),
        };
        self.send("PEER-ID", &ours.to_json(), Stage::PeerId, None)?;
        let payload = self.expect("PEER-ID", Stage::PeerId, None)?;
        let remote = check_peer_id(
            &payload,
            &PeerIdCheck {
                expected,
                own_id: config.identity.id(),
                direction: Direction::Outbound(addr),
                cert_key: Some(cert_key),
                allowed: None,
                resolver: config.resolver.as_ref(),
            },
        )
        .map_err(|r| refuse(Stage::PeerId, r, None))?;

        // READY both ways, then leave.
        let id = Some(remote.id);
        self.send("READY", "", Stage::Ready, id)?;
        self.expect("READY", Stage::Ready, id)?;

        let mut gossip = Vec::new();
        if let Some(window) = config.gossip_window {
            self.collect_gossip(window, &mut gossip);
        }
        Ok(VerifiedPeer {
            id: remote.id,
            public_key: remote.public_key,
            dialled: addr,
            entrypoints: remote.entrypoints,
            entrypoint_confirmed: remote.entrypoint_confirmed,
            app: remote_hello.app,
            capabilities: remote_hello.capabilities,
            sync_versions: remote_hello.sync_versions.unwrap_or_default(),
            clock_offset: remote_hello.timestamp - now,
            gossip,
        })
    }

    /// Sends GET-PEERS and collects PEERS until the window ends; answers PING. Errors end the
    /// window quietly (the handshake already succeeded).
    fn collect_gossip(&mut self, window: Duration, out: &mut Vec<GossipPeer>) {
        let step = self.step;
        if self.lines().send("GET-PEERS", "", step).is_err() {
            return;
        }
        let deadline = Instant::now() + window;
        for _ in 0..1000 {
            if out.len() >= MAX_GOSSIP_PEERS {
                break;
            }
            let Ok((cmd, payload)) = self.lines().read_message(deadline) else {
                break;
            };
            match cmd.as_str() {
                "PEERS" => {
                    let room = MAX_GOSSIP_PEERS - out.len();
                    for p in parse_peers(&payload, room) {
                        if !out.iter().any(|q| q.id == p.id) {
                            out.push(p);
                        }
                    }
                }
                "PING"
                    if payload.len() <= 128
                        && self.lines().send("PONG", &payload, step).is_err() =>
                {
                    break;
                }
                "ERROR" => break,
                _ => {}
            }
        }
    }
}
