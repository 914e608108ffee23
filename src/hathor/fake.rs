//! A fake Hathor full node: a **test double**, not a Hathor implementation.
//!
//! It listens on `127.0.0.1` (or another loopback address, [`FakeNode::start_on`]) only, speaks TLS 1.3 with mutual authentication using a CA given by
//! the test (mint a throwaway one per run with [`TestPki`]), and runs HELLO → PEER-ID → READY like
//! hathor-core: it sends first, checks the client in Hathor's order and answers refusals with
//! Hathor's exact `ERROR` texts. After READY it sends `GET-PEERS`, answers `GET-PEERS` with one
//! `PEERS` line per configured peer and `PING` with `PONG`, until the client leaves.
//!
//! Misbehaviour is injected through [`FakeNodeConfig`] (other network, genesis, clock offset,
//! capabilities, sync versions, entrypoints, certificate for another key or from another CA,
//! whitelist) and [`Fault`] (garbage, silence, early close, forged PEER-ID fields, ...).
//! Every connection is recorded as [`FakeEvent`]s so tests can assert what the fake saw and said.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};

use super::entrypoint::{PeerAddress, PeerEndpoint};
use super::identity::{Identity, PeerId, generate_rsa_key};
use super::network::NetworkProfile;
use super::protocol::{
    Direction, FailureReason, GossipPeer, Hello, HelloCheck, LineConn, PeerIdCheck, PeerIdPayload,
    SYNC_V2, Transport, capability, check_hello, check_peer_id, invalid_command_text, system_clock,
};
use super::tls::{CertificateAuthority, TlsCredentials, TlsSetupError, certificate_public_key};

/// How long the fake waits for each client message.
const FAKE_STEP: Duration = Duration::from_secs(5);

/// Keys and CAs for tests, generated once per test binary ([`TestPki::shared`]).
pub struct TestPki {
    /// A throwaway CA shaped like Hathor's (RSA, `CN=Hathor Labs`).
    pub ca: Arc<CertificateAuthority>,
    /// Another CA, unknown to everybody (for "unknown CA" faults).
    pub other_ca: Arc<CertificateAuthority>,
    /// The fake node's identity.
    pub server: Arc<Identity>,
    /// The client's identity.
    pub client: Arc<Identity>,
    /// A third identity (for certificates whose key differs from PEER-ID's).
    pub stranger: Arc<Identity>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("server", &self.server.id())
            .field("client", &self.client.id())
            .field("stranger", &self.stranger.id())
            .finish_non_exhaustive()
    }
}

impl TestPki {
    /// Generates three RSA-2048 identities and two CAs (slow-ish: five key generations).
    pub fn generate() -> Result<Self, TlsSetupError> {
        let mut rng = rand::rng();
        let now = system_clock() as i64;
        let key = |rng: &mut rand::rngs::ThreadRng| {
            generate_rsa_key(rng).map_err(|e| TlsSetupError(e.to_string()))
        };
        let identity = |rng: &mut rand::rngs::ThreadRng| -> Result<Arc<Identity>, TlsSetupError> {
            Identity::from_private_key(key(rng)?)
                .map(Arc::new)
                .map_err(|e| TlsSetupError(e.to_string()))
        };
        let ca = Arc::new(CertificateAuthority::self_signed(
            &key(&mut rng)?,
            "Hathor Labs",
            now,
        )?);
        let server = identity(&mut rng)?;
        let client = identity(&mut rng)?;
        let stranger = identity(&mut rng)?;
        // The other CA reuses the stranger's key: it only has to be a different CA.
        let other_ca = Arc::new(CertificateAuthority::self_signed(
            stranger.private_key(),
            "Not Hathor",
            now,
        )?);
        Ok(Self {
            ca,
            other_ca,
            server,
            client,
            stranger,
        })
    }

    /// The instance shared by all tests of this binary.
    pub fn shared() -> &'static TestPki {
        static PKI: OnceLock<TestPki> = OnceLock::new();
        PKI.get_or_init(|| match Self::generate() {
            Ok(p) => p,
            Err(e) => panic!("test PKI generation failed: {e}"),
        })
    }

    /// Client TLS credentials: the client identity's leaf signed by [`TestPki::ca`].
    pub fn client_credentials(&self) -> Result<TlsCredentials, TlsSetupError> {
        TlsCredentials::issue(&self.ca, &self.client, system_clock() as i64)
    }
}

/// The entrypoints the fake declares in PEER-ID.
#[derive(Clone, Debug)]
pub enum DeclaredEntrypoints {
    /// `tcp://127.0.0.1:<its port>` (the normal case).
    Own,
    /// `tcp://<this host>:<its port>` (e.g. a name the test resolver maps to 127.0.0.1).
    OwnPortWithHost(String),
    /// None (a NAT'd node).
    None,
    /// Exactly these strings (sent as is).
    List(Vec<String>),
}

/// An injected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    None,
    /// No TLS: accept the TCP connection and close it.
    PlainTcp,
    /// No TLS: write these bytes in clear, then close.
    PlainGarbage(Vec<u8>),
    /// TLS, then send nothing and wait (the client should time out).
    Silent,
    /// Send HELLO, then nothing.
    SilentAfterHello,
    /// Send HELLO, then close.
    CloseAfterHello,
    /// Send PEER-ID, then nothing (no READY).
    SilentAfterPeerId,
    /// Send this raw line (without `\r\n`) before HELLO.
    LineBeforeHello(Vec<u8>),
    /// Send a line longer than 65536 bytes before HELLO.
    OversizeLine,
    /// Send this instead of the HELLO JSON.
    HelloPayload(String),
    /// Send `ERROR <text>` instead of PEER-ID.
    ErrorInsteadOfPeerId(String),
    /// Override PEER-ID's `id` text.
    PeerIdId(String),
    /// Override PEER-ID's `pubKey` text.
    PeerIdPubKey(String),
    /// Send this instead of the PEER-ID JSON.
    PeerIdPayload(String),
}

/// The fake node's configuration.
#[derive(Clone)]
pub struct FakeNodeConfig {
    /// Its network (the client must be on it; its HELLO announces it).
    pub network: NetworkProfile,
    /// Its identity (PEER-ID).
    pub identity: Arc<Identity>,
    /// The CA that signs its certificate and that it trusts for clients.
    pub ca: Arc<CertificateAuthority>,
    /// Sign its certificate with this CA instead (an unknown CA fault).
    pub cert_ca: Option<Arc<CertificateAuthority>>,
    /// Put this identity's key in its certificate instead (cert key ≠ pubKey fault).
    pub cert_identity: Option<Arc<Identity>>,
    /// Require a client certificate (Hathor does).
    pub require_client_cert: bool,
    /// Declared entrypoints.
    pub entrypoints: DeclaredEntrypoints,
    /// Its `app`.
    pub app: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// Its `sync_versions` (`None`: key omitted).
    pub sync_versions: Option<Vec<String>>,
    /// Whether HELLO carries the network's `settings_dict` (genuine nodes send it).
    pub send_settings_dict: bool,
    /// Added to its clock, seconds.
    pub clock_offset: f64,
    /// Peers answered to GET-PEERS.
    pub peers: Vec<GossipPeer>,
    /// Allowed client ids (whitelist); `None` allows everybody.
    pub whitelist: Option<Vec<PeerId>>,
    /// The injected fault.
    pub fault: Fault,
}

impl std::fmt::Debug for FakeNodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNodeConfig")
            .field("network", &self.network.name)
            .field("identity", &self.identity.id())
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

impl FakeNodeConfig {
    /// A well-behaved testnet-india node with the shared test PKI's server identity and CA.
    pub fn new(pki: &TestPki) -> Self {
        Self {
            network: NetworkProfile::testnet_india(),
            identity: pki.server.clone(),
            ca: pki.ca.clone(),
            cert_ca: None,
            cert_identity: None,
            require_client_cert: true,
            entrypoints: DeclaredEntrypoints::Own,
            app: "Hathor v0.72.0-fake".into(),
            capabilities: vec![
                capability::WHITELIST.into(),
                capability::SYNC_VERSION.into(),
                capability::GET_BEST_BLOCKCHAIN.into(),
                capability::IPV6.into(),
            ],
            sync_versions: Some(vec![SYNC_V2.into()]),
            send_settings_dict: true,
            clock_offset: 0.0,
            peers: Vec::new(),
            whitelist: None,
            fault: Fault::None,
        }
    }
}

/// What the fake saw or did on a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum FakeEvent {
    /// A client connected from this address.
    Accepted(SocketAddr),
    /// The TLS handshake failed.
    TlsFailed(String),
    /// A line received (lossy UTF-8, truncated to 512 chars).
    Received(String),
    /// The fake sent `ERROR <text>`.
    SentError(String),
    /// The fake closed without ERROR for this reason.
    Closed(String),
    /// The client reached READY with this id.
    Ready(PeerId),
}

/// A running fake node. Dropping it stops it.
pub struct FakeNode {
    addr: SocketAddr,
    id: PeerId,
    events: Arc<Mutex<Vec<FakeEvent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNode")
            .field("addr", &self.addr)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl FakeNode {
    /// Starts a fake node on `127.0.0.1:0`.
    pub fn start(config: FakeNodeConfig) -> std::io::Result<Self> {
        Self::start_on(config, std::net::Ipv4Addr::LOCALHOST)
    }

    /// Starts a fake node on `ip:0`, a loopback address (e.g. `127.0.0.2`: DHT nodes keep one
    /// peer per IP, so fakes announced on the same info-hash need distinct addresses).
    pub fn start_on(config: FakeNodeConfig, ip: std::net::Ipv4Addr) -> std::io::Result<Self> {
        if !ip.is_loopback() {
            return Err(std::io::Error::other(
                "the fake node only listens on loopback",
            ));
        }
        let listener = TcpListener::bind((ip, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let io_err = |e: TlsSetupError| std::io::Error::other(e.0);
        let now = system_clock() as i64;
        let cert_key_owner = config.cert_identity.as_ref().unwrap_or(&config.identity);
        let signer = config.cert_ca.as_ref().unwrap_or(&config.ca);
        let leaf = signer
            .issue_leaf(cert_key_owner.public_key(), now)
            .map_err(io_err)?;
        let creds = TlsCredentials::with_leaf(config.ca.cert_der().clone(), leaf, cert_key_owner)
            .map_err(io_err)?;
        let tls = creds
            .server_config(config.require_client_cert)
            .map_err(io_err)?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            config,
            addr,
            events: events.clone(),
            stop: stop.clone(),
        });
        let id = shared.config.identity.id();
        let thread = std::thread::Builder::new()
            .name("fake-hathor".into())
            .spawn(move || accept_loop(listener, tls, shared))?;
        Ok(Self {
            addr,
            id,
            events,
            stop,
            thread: Some(thread),
        })
    }

    /// Its listening address (loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its peer id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// `tcp://127.0.0.1:<port>/?id=<id>`.
    pub fn endpoint(&self) -> PeerEndpoint {
        PeerAddress::from_socket_addr(self.addr).with_id(self.id)
    }

    /// The events so far.
    pub fn events(&self) -> Vec<FakeEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The ERROR texts sent so far.
    pub fn errors_sent(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                FakeEvent::SentError(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// Waits until `pred` holds for the events, or `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[FakeEvent]) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if pred(&self.events()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Shared {
    config: FakeNodeConfig,
    addr: SocketAddr,
    events: Arc<Mutex<Vec<FakeEvent>>>,
    stop: Arc<AtomicBool>,
}

impl Shared {
    fn log(&self, e: FakeEvent) {
        if let Ok(mut v) = self.events.lock()
            && v.len() < 10_000
        {
            v.push(e);
        }
    }
    fn now(&self) -> f64 {
        system_clock() + self.config.clock_offset
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopped() {
        match listener.accept() {
            Ok((sock, peer)) => {
                let _ = sock.set_nonblocking(false);
                shared.log(FakeEvent::Accepted(peer));
                let tls = tls.clone();
                let shared = shared.clone();
                if let Ok(h) = std::thread::Builder::new()
                    .name("fake-hathor-conn".into())
                    .spawn(move || serve(sock, peer, tls, &shared))
                {
                    workers.push(h);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Sleeps while the node runs, up to `max`.
fn idle(shared: &Shared, max: Duration) {
    let end = Instant::now() + max;
    while !shared.stopped() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve(mut sock: TcpStream, peer: SocketAddr, tls: Arc<rustls::ServerConfig>, shared: &Shared) {
    let cfg = &shared.config;
    match &cfg.fault {
        Fault::PlainTcp => {
            let _ = sock.shutdown(std::net::Shutdown::Both);
            shared.log(FakeEvent::Closed("plain tcp".into()));
            return;
        }
        Fault::PlainGarbage(bytes) => {
            use std::io::Write;
            let _ = sock.write_all(bytes);
            let _ = sock.flush();
            idle(shared, Duration::from_millis(200));
            let _ = sock.shutdown(std::net::Shutdown::Both);
            shared.log(FakeEvent::Closed("plain garbage".into()));
            return;
        }
        _ => {}
    }
    let Ok(conn) = ServerConnection::new(tls) else {
        return;
    };
    let mut stream = StreamOwned::new(conn, sock);
    let deadline = Instant::now() + FAKE_STEP;
    while stream.conn.is_handshaking() {
        let now = Instant::now();
        if now >= deadline || shared.stopped() {
            shared.log(FakeEvent::TlsFailed("timeout".into()));
            return;
        }
        let _ = stream.sock.set_read_timeout(Some(deadline - now));
        match stream.conn.complete_io(&mut stream.sock) {
            Ok((0, 0)) if stream.conn.is_handshaking() => {
                shared.log(FakeEvent::TlsFailed("closed".into()));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.log(FakeEvent::TlsFailed(e.to_string()));
                return;
            }
        }
    }
    let client_key = stream
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .and_then(|c| certificate_public_key(&c).ok());
    let mut lines = LineConn::new(stream);
    if let Err(reason) = session(&mut lines, peer, client_key.as_ref(), shared) {
        match reason.hathor_error() {
            Some(text) => {
                shared.log(FakeEvent::SentError(text.clone()));
                lines.fail(&text);
            }
            None => {
                shared.log(FakeEvent::Closed(reason.to_string()));
                lines.close();
            }
        }
    } else {
        lines.close();
    }
}

type Conn = LineConn<StreamOwned<ServerConnection, TcpStream>>;

/// Reads the next client message in a handshake state that accepts only `want`.
fn expect(lines: &mut Conn, want: &str, shared: &Shared) -> Result<String, FailureReason> {
    let deadline = Instant::now() + FAKE_STEP;
    loop {
        let line = lines.read_line(deadline)?;
        let mut shown = String::from_utf8_lossy(&line).into_owned();
        shown.truncate(512);
        shared.log(FakeEvent::Received(shown));
        let text = String::from_utf8(line).map_err(|_| FailureReason::NotUtf8)?;
        let (cmd, payload) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        if !super::protocol::is_known_command(cmd) {
            return Err(FailureReason::UnknownCommand(
                cmd.chars().take(64).collect(),
            ));
        }
        if cmd == want {
            return Ok(payload.to_string());
        }
        match cmd {
            "ERROR" | "THROTTLE" => continue,
            _ => {
                return Err(FailureReason::UnexpectedCommand {
                    cmd: cmd.to_string(),
                    payload: payload.to_string(),
                });
            }
        }
    }
}

fn session(
    lines: &mut Conn,
    peer: SocketAddr,
    client_key: Option<&super::identity::PublicKey>,
    shared: &Shared,
) -> Result<(), FailureReason> {
    let cfg = &shared.config;
    let step = FAKE_STEP;
    match &cfg.fault {
        Fault::Silent => {
            idle(shared, Duration::from_secs(30));
            return Err(FailureReason::Closed);
        }
        Fault::LineBeforeHello(raw) => {
            let mut line = raw.clone();
            line.extend_from_slice(b"\r\n");
            lines.send_raw(&line, step)?;
        }
        Fault::OversizeLine => {
            let mut line = vec![b'A'; super::protocol::MAX_LINE_LENGTH + 10];
            line.extend_from_slice(b"\r\n");
            lines.send_raw(&line, step)?;
        }
        _ => {}
    }
    // HELLO
    let hello = match &cfg.fault {
        Fault::HelloPayload(p) => p.clone(),
        _ => Hello {
            app: cfg.app.clone(),
            network: cfg.network.name.clone(),
            remote_address: peer.to_string(),
            genesis_short_hash: cfg.network.genesis_short_hash(),
            timestamp: shared.now(),
            settings_dict: if cfg.send_settings_dict {
                cfg.network.settings_dict.clone()
            } else {
                None
            },
            capabilities: cfg.capabilities.clone(),
            sync_versions: cfg.sync_versions.clone(),
        }
        .to_json(),
    };
    lines.send("HELLO", &hello, step)?;
    match &cfg.fault {
        Fault::SilentAfterHello => {
            idle(shared, Duration::from_secs(30));
            return Err(FailureReason::Closed);
        }
        Fault::CloseAfterHello => return Err(FailureReason::Closed),
        _ => {}
    }
    let payload = expect(lines, "HELLO", shared)?;
    check_hello(
        &payload,
        &HelloCheck {
            network: &cfg.network,
            now: shared.now(),
        },
    )?;

    // PEER-ID
    if let Fault::ErrorInsteadOfPeerId(text) = &cfg.fault {
        shared.log(FakeEvent::SentError(text.clone()));
        lines.send("ERROR", text, step)?;
        return Err(FailureReason::Closed);
    }
    let mut ours = PeerIdPayload {
        id: cfg.identity.id().to_hex(),
        pub_key: cfg.identity.public_key().to_base64(),
        entrypoints: match &cfg.entrypoints {
            DeclaredEntrypoints::Own => {
                vec![PeerAddress::from_socket_addr(shared.addr).to_string()]
            }
            DeclaredEntrypoints::OwnPortWithHost(h) => {
                vec![format!("tcp://{h}:{}", shared.addr.port())]
            }
            DeclaredEntrypoints::None => Vec::new(),
            DeclaredEntrypoints::List(l) => l.clone(),
        },
    };
    match &cfg.fault {
        Fault::PeerIdId(id) => ours.id = id.clone(),
        Fault::PeerIdPubKey(k) => ours.pub_key = k.clone(),
        _ => {}
    }
    let json = match &cfg.fault {
        Fault::PeerIdPayload(p) => p.clone(),
        _ => ours.to_json(),
    };
    lines.send("PEER-ID", &json, step)?;
    if cfg.fault == Fault::SilentAfterPeerId {
        idle(shared, Duration::from_secs(30));
        return Err(FailureReason::Closed);
    }
    let payload = expect(lines, "PEER-ID", shared)?;
    let whitelist = cfg.whitelist.clone();
    let allow = move |id: PeerId| whitelist.as_ref().is_none_or(|w| w.contains(&id));
    let remote = check_peer_id(
        &payload,
        &PeerIdCheck {
            expected: None,
            own_id: cfg.identity.id(),
            direction: Direction::Inbound(peer),
            cert_key: client_key,
            allowed: Some(&allow),
            resolver: None,
        },
    )?;

    // READY
    lines.send("READY", "", step)?;
    expect(lines, "READY", shared)?;
    shared.log(FakeEvent::Ready(remote.id));
    lines.send("GET-PEERS", "", step)?;
    let idle_deadline = || Instant::now() + step;
    let mut deadline = idle_deadline();
    for _ in 0..1000 {
        if shared.stopped() {
            break;
        }
        let line = match lines.read_line(deadline.min(Instant::now() + Duration::from_millis(100)))
        {
            Ok(l) => l,
            Err(FailureReason::Timeout) if Instant::now() < deadline => continue,
            Err(FailureReason::Timeout) => return Ok(()),
            Err(e) => return Err(e),
        };
        deadline = idle_deadline();
        let text = String::from_utf8_lossy(&line).into_owned();
        shared.log(FakeEvent::Received(text.chars().take(512).collect()));
        let (cmd, payload) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        match cmd {
            "GET-PEERS" => {
                if cfg.peers.is_empty() {
                    lines.send("PEERS", "[]", step)?;
                }
                for p in &cfg.peers {
                    let item = serde_json::json!([{ "id": p.id, "entrypoints": p.entrypoints }]);
                    lines.send("PEERS", &item.to_string(), step)?;
                }
            }
            "PING" => lines.send("PONG", payload, step)?,
            "PONG" | "PEERS" | "THROTTLE" | "ERROR" => {}
            c if super::protocol::is_known_command(c) => {}
            _ => {
                return Err(FailureReason::UnknownCommand(
                    cmd.chars().take(64).collect(),
                ));
            }
        }
    }
    Ok(())
}

/// The `ERROR` text the fake (and Hathor) sends for a known command out of state.
pub fn expected_invalid_command(cmd: &str, payload: &str) -> String {
    invalid_command_text(cmd, payload)
}
