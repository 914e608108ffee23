//! `btdht hathor …`: Hathor Network peer discovery on the DHT.
//!
//! * `id new` writes a fresh RSA-2048 identity as Hathor's peer JSON file;
//! * `infohash` prints a network's rendezvous info-hash;
//! * `announce` keeps a Hathor node's p2p port announced on that info-hash until a signal;
//! * `discover` looks the info-hash up, optionally verifies every candidate with the Hathor
//!   handshake (bounded concurrency, per-address backoff from the peer store, timeouts), prints
//!   the verified entrypoints (never an unverified one as verified) and can push them to a
//!   running node (`POST /v1a/p2p/peers`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use btdht::InfoHash;
use btdht::driver::{Dht, Error};
use btdht::hathor::entrypoint::PeerAddress;
use btdht::hathor::handshake::{HandshakeConfig, HandshakeFailure, VerifiedPeer, handshake};
use btdht::hathor::identity::Identity;
use btdht::hathor::network::NetworkProfile;
use btdht::hathor::store::{PeerStore, Source, StoreError};
use btdht::hathor::tls::{CertificateAuthority, TlsCredentials};
use btdht::node::config::is_ignored_ip;
use clap::{Args, Subcommand, ValueEnum};
use parking_lot::Mutex;
use serde_json::json;

use super::args::{parse_addr, parse_bind};
use super::commands::public_routers;
use super::{EXIT_NO_ANSWER, EXIT_OK, EXIT_USAGE};

/// `btdht hathor …`.
#[derive(Args, Debug)]
pub struct HathorArgs {
    /// The Hathor subcommand.
    #[command(subcommand)]
    pub command: HathorCommand,
}

/// The Hathor subcommands.
#[derive(Subcommand, Debug)]
pub enum HathorCommand {
    /// Hathor peer identities (the peer JSON file of `hathor-cli run_node --peer`).
    #[command(after_help = "Example:\n  btdht hathor id new --out peer.json")]
    Id {
        /// What to do with identities.
        #[command(subcommand)]
        command: IdCommand,
    },
    /// Print a network's DHT rendezvous info-hash.
    #[command(
        after_help = "Example:\n  btdht hathor infohash --network testnet\n  btdht hathor infohash --network mynet --genesis-digest <64 hex> --secret s3cret"
    )]
    Infohash {
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Keep a Hathor node's p2p port announced on the rendezvous info-hash until SIGINT/SIGTERM.
    #[command(
        after_help = "Example:\n  btdht hathor announce --network testnet --port 40403 --state ~/.btdht-hathor.json"
    )]
    Announce(Box<AnnounceArgs>),
    /// Find Hathor nodes on the DHT and (with --verify) prove them with the Hathor handshake.
    #[command(
        after_help = "Example:\n  btdht hathor discover --network testnet --verify --ca-cert ca.crt --ca-key ca.key --push http://127.0.0.1:8080"
    )]
    Discover(Box<DiscoverArgs>),
}

/// `btdht hathor id …`.
#[derive(Subcommand, Debug)]
pub enum IdCommand {
    /// Generate a new RSA-2048 identity and write it as a Hathor peer file (mode 0600); print its id.
    #[command(after_help = "Example:\n  btdht hathor id new --out peer.json")]
    New {
        /// The peer file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// Which Hathor network.
#[derive(Args, Debug, Clone)]
pub struct NetworkArgs {
    /// The network: mainnet, testnet (testnet-india), nano-testnet (nano-testnet-bravo),
    /// privatenet (localnet), unittests, or a custom network's name with --genesis-hashes or
    /// --genesis-digest.
    #[arg(long, value_name = "NET", required_unless_present = "network_file")]
    pub network: Option<String>,
    /// A custom network's genesis hashes (block, tx1, tx2; 64 hex digits each).
    #[arg(
        long,
        value_name = "HEX,HEX,HEX",
        value_delimiter = ',',
        conflicts_with = "genesis_digest"
    )]
    pub genesis_hashes: Vec<String>,
    /// A custom network's genesis digest (SHA-256 of the three genesis hashes, 64 hex digits).
    #[arg(long, value_name = "HEX")]
    pub genesis_digest: Option<String>,
    /// A custom network from a JSON file:
    /// {"network": NAME, "genesis_hashes": [B, TX1, TX2]} or {"network": NAME, "genesis_digest": HEX}.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["network", "genesis_hashes", "genesis_digest"])]
    pub network_file: Option<PathBuf>,
    /// A closed group's secret, appended to the rendezvous key (all members must use it).
    #[arg(long, value_name = "S")]
    pub secret: Option<String>,
}

impl NetworkArgs {
    /// The network profile and the rendezvous info-hash, or a message for the user.
    pub fn resolve(&self) -> Result<(NetworkProfile, InfoHash), String> {
        let profile = if let Some(path) = &self.network_file {
            NetworkProfile::load(path).map_err(|e| e.to_string())?
        } else {
            let name = self.network.as_deref().unwrap_or_default();
            let hash32 = |text: &str| -> Result<[u8; 32], String> {
                let bytes =
                    hex::decode(text.trim()).map_err(|e| format!("invalid hex {text:?}: {e}"))?;
                bytes
                    .try_into()
                    .map_err(|_| format!("{text:?} is not 32 bytes (64 hex digits)"))
            };
            if !self.genesis_hashes.is_empty() {
                if self.genesis_hashes.len() != 3 {
                    return Err("--genesis-hashes needs exactly three hashes: block,tx1,tx2".into());
                }
                let h = [
                    hash32(&self.genesis_hashes[0])?,
                    hash32(&self.genesis_hashes[1])?,
                    hash32(&self.genesis_hashes[2])?,
                ];
                NetworkProfile::custom(name, h).map_err(|e| e.to_string())?
            } else if let Some(digest) = &self.genesis_digest {
                NetworkProfile::custom_with_digest(name, hash32(digest)?)
                    .map_err(|e| e.to_string())?
            } else {
                NetworkProfile::by_name(name).ok_or_else(|| {
                    format!(
                        "unknown network {name:?}: use one of mainnet, testnet, nano-testnet, \
                         privatenet, unittests, or give --genesis-hashes/--genesis-digest/--network-file"
                    )
                })?
            }
        };
        if self.secret.as_deref() == Some("") {
            return Err("--secret must not be empty".into());
        }
        let hash = profile.rendezvous_info_hash(self.secret.as_deref());
        Ok((profile, hash))
    }
}

/// The DHT client options of `announce` and `discover`.
#[derive(Args, Debug, Clone)]
pub struct DhtArgs {
    /// Local IPv4 address to bind.
    #[arg(long, default_value = "0.0.0.0:0", value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// A node to join through (repeatable). Default: the saved nodes, else the public routers.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub bootstrap: Vec<SocketAddr>,
    /// Talk to private, loopback and reserved addresses (and accept such candidates).
    #[arg(long)]
    pub allow_private: bool,
    /// Load the DHT state (routing table) from this file, save it there on exit.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Seconds to wait for a DHT lookup or announce.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Options of `btdht hathor announce`.
#[derive(Args, Debug)]
pub struct AnnounceArgs {
    #[command(flatten)]
    pub network: NetworkArgs,
    /// The Hathor node's p2p (TCP) port.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Seconds between announces (peers expire from DHT nodes after 30 minutes).
    #[arg(long, value_name = "SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=1800))]
    pub interval: u64,
    /// Announce once and exit (status 0 if a node acknowledged).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// Output formats of `discover`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One `tcp://ip:port/?id=<id>` per line (unverified: `tcp://ip:port`, no id).
    Entrypoints,
    /// Hathor's PEERS shape: `[{"id": ..., "entrypoints": [...]}]`.
    Json,
}

/// Options of `btdht hathor discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Verify each candidate with the Hathor handshake; print only verified peers.
    #[arg(long, requires_all = ["ca_cert", "ca_key"])]
    pub verify: bool,
    /// The network's CA certificate (PEM; Hathor's hathorlib `cert/ca.crt`).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The network's CA private key (PEM; signs our leaf certificate).
    #[arg(long, value_name = "FILE")]
    pub ca_key: Option<PathBuf>,
    /// Our identity (a Hathor peer file); default: a fresh one.
    #[arg(long, value_name = "FILE")]
    pub peer: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Entrypoints)]
    pub format: Format,
    /// POST the verified entrypoints to this node API (http://HOST:PORT, /v1a/p2p/peers is added).
    #[arg(long, value_name = "URL", requires = "verify")]
    pub push: Option<String>,
    /// Load, update and save the peer store (JSON) in this file.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Handshakes at the same time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Seconds allowed for each handshake step (connect, TLS, HELLO, PEER-ID, READY).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub handshake_timeout: u64,
    /// At most this many candidates are tried.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub max_candidates: u64,
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// Runs `btdht hathor …` and returns the exit status.
pub fn run(args: HathorArgs) -> i32 {
    match args.command {
        HathorCommand::Id {
            command: IdCommand::New { out, force },
        } => id_new(&out, force),
        HathorCommand::Infohash { network } => infohash(&network),
        HathorCommand::Announce(args) => announce(&args),
        HathorCommand::Discover(args) => discover(&args),
    }
}

fn usage(message: impl std::fmt::Display) -> i32 {
    eprintln!("btdht: {message}");
    EXIT_USAGE
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn id_new(out: &std::path::Path, force: bool) -> i32 {
    if out.exists() && !force {
        return usage(format!(
            "{} exists (use --force to overwrite)",
            out.display()
        ));
    }
    let identity = match Identity::generate(&mut rand::rng()) {
        Ok(identity) => identity,
        Err(e) => {
            eprintln!("btdht: key generation failed: {e}");
            return EXIT_NO_ANSWER;
        }
    };
    if let Err(e) = identity.save(out) {
        return usage(format!("{}: {e}", out.display()));
    }
    println!("{}", identity.id());
    log::info!("wrote {}", out.display());
    EXIT_OK
}

fn infohash(network: &NetworkArgs) -> i32 {
    match network.resolve() {
        Ok((profile, hash)) => {
            log::info!(
                "network {} (genesis {}){}",
                profile.name,
                profile.genesis_short_hash(),
                if network.secret.is_some() {
                    ", with secret"
                } else {
                    ""
                }
            );
            println!("{}", hash.to_hex());
            EXIT_OK
        }
        Err(e) => usage(e),
    }
}

/// Starts a read-only DHT client (BEP 43) with the saved state, the given or public routers.
fn start_dht(args: &DhtArgs) -> Result<Dht, i32> {
    let mut builder = Dht::builder()
        .bind(args.bind)
        .allow_private(args.allow_private)
        .read_only(true);
    let has_saved_nodes = args
        .state
        .as_deref()
        .is_some_and(|p| matches!(btdht::driver::load(p), Ok(Some(s)) if !s.nodes.is_empty()));
    if let Some(path) = &args.state {
        builder = builder.state_file(path);
    }
    if !args.bootstrap.is_empty() {
        builder = builder.bootstrap(args.bootstrap.iter().copied());
    } else if !has_saved_nodes {
        builder = builder.bootstrap(public_routers());
    }
    builder.start().map_err(|e| {
        eprintln!("btdht: {e}");
        match e {
            Error::Bind { .. } => EXIT_USAGE,
            _ => EXIT_NO_ANSWER,
        }
    })
}

fn stop_dht(dht: &Dht) {
    if let Err(e) = dht.stop() {
        log::warn!("{e}");
    }
}

fn announce(args: &AnnounceArgs) -> i32 {
    let (profile, hash) = match args.network.resolve() {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("btdht: cannot handle signal {signal}: {e}");
            return EXIT_NO_ANSWER;
        }
    }
    let dht = match start_dht(&args.dht) {
        Ok(dht) => dht,
        Err(status) => return status,
    };
    eprintln!(
        "btdht: announcing port {} for network {} (genesis {}) on {} from {}",
        args.port,
        profile.name,
        profile.genesis_short_hash(),
        hash,
        dht.local_addr()
    );
    let interval = Duration::from_secs(args.interval);
    // After a failed round, try again sooner (but never more often than the interval asks).
    let retry = interval.min(Duration::from_secs(30));
    let timeout = Duration::from_secs(args.dht.timeout);
    let mut acknowledged_once = false;
    while !stop.load(Ordering::Relaxed) {
        let ok = match dht
            .with_timeout(timeout)
            .announce(hash, Some(args.port), false)
        {
            Ok(result) if result.acknowledged > 0 => {
                acknowledged_once = true;
                println!(
                    "announced {hash} port {} to {} nodes ({} acknowledged)",
                    args.port, result.sent, result.acknowledged
                );
                true
            }
            Ok(result) => {
                eprintln!(
                    "btdht: announce: no node acknowledged ({} answered the lookup, {} announces sent)",
                    result.outcome.responses, result.sent
                );
                false
            }
            Err(e) => {
                eprintln!("btdht: announce: {e}");
                false
            }
        };
        if args.once {
            break;
        }
        let wait = if ok { interval } else { retry };
        log::info!("next announce in {} s", wait.as_secs());
        let next = Instant::now() + wait;
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if !args.once {
        eprintln!("btdht: stopping");
    }
    stop_dht(&dht);
    if acknowledged_once {
        EXIT_OK
    } else {
        EXIT_NO_ANSWER
    }
}

/// A parsed `--push` URL (plain HTTP only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUrl {
    /// Host (name or IP; IPv6 without brackets).
    pub host: String,
    /// Port (80 by default).
    pub port: u16,
    /// Request path, ending in `/v1a/p2p/peers`.
    pub path: String,
}

/// The API path that takes new entrypoints.
pub const PEERS_PATH: &str = "/v1a/p2p/peers";

/// Parses `http://HOST[:PORT][/PREFIX]`; `/v1a/p2p/peers` is appended unless present.
pub fn parse_push_url(text: &str) -> Result<PushUrl, String> {
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "--push {text}: https is not supported; --push speaks plain HTTP/1.1 to a node's \
             local API (e.g. http://127.0.0.1:8080); use a local http:// address or a tunnel"
        ));
    }
    let Some(rest) = lower.starts_with("http://").then(|| &text[7..]) else {
        return Err(format!(
            "--push {text}: expected http://HOST:PORT (the node's API)"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#', ' ']) {
        return Err(format!("--push {text}: expected http://HOST:PORT[/PATH]"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("--push {text}: unclosed ["))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("--push {text}: bad address")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("--push {text}: bad port {p:?}"))?,
        None => 80,
    };
    if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("--push {text}: bad host"));
    }
    let base = path.trim_end_matches('/');
    let path = if base.ends_with(PEERS_PATH) {
        base.to_string()
    } else {
        format!("{base}{PEERS_PATH}")
    };
    Ok(PushUrl {
        host: host.to_string(),
        port,
        path,
    })
}

/// Largest HTTP response read.
const MAX_RESPONSE: u64 = 64 * 1024;

/// POSTs `entrypoints` as a JSON array to `url`; returns the response body, or why it failed.
pub fn push(url: &PushUrl, entrypoints: &[String], timeout: Duration) -> Result<String, String> {
    let body = serde_json::Value::from(entrypoints.to_vec()).to_string();
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .take(8)
        .collect();
    let mut last = format!("{} resolves to no address", url.host);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connect {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let host_header = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: btdht/{}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut response = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut limited = (&mut stream).take(MAX_RESPONSE);
    let mut buf = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            break;
        }
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response_complete(&response) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if response.is_empty() => return Err(format!("reading the response: {e}")),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let code = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    let body: String = body.trim().chars().take(512).collect();
    match code {
        Some(c) if (200..300).contains(&c) => {
            // Hathor answers {"success": false, "message": ...} with status 200.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                if v.get("success") == Some(&serde_json::Value::Bool(false)) {
                    return Err(format!("the node refused: {body}"));
                }
            }
            Ok(body)
        }
        Some(c) => Err(format!("HTTP {c}: {body}")),
        None => Err(format!(
            "not an HTTP response: {:?}",
            status_line.chars().take(80).collect::<String>()
        )),
    }
}

/// Whether a response with a Content-Length has been read entirely.
fn response_complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| response.len() >= end + 4 + len)
}

/// Verifies `candidates` with at most `workers` handshakes at a time.
fn verify_all(
    candidates: Vec<SocketAddr>,
    config: &HandshakeConfig,
    workers: usize,
) -> Vec<(SocketAddr, Result<VerifiedPeer, HandshakeFailure>)> {
    let workers = workers.clamp(1, candidates.len().max(1));
    let queue = Mutex::new(candidates.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().next();
                    let Some(addr) = next else { break };
                    log::info!("verifying {addr}");
                    let result = handshake(addr, None, config);
                    results.lock().push((addr, result));
                }
            });
        }
    });
    let mut results = results.into_inner();
    results.sort_by_key(|(addr, _)| *addr);
    results
}

fn load_store(path: &std::path::Path, profile: &NetworkProfile) -> Result<PeerStore, i32> {
    match PeerStore::load(path, profile) {
        Ok(store) => Ok(store),
        Err(e @ StoreError::WrongNetwork { .. }) => Err(usage(format!(
            "--store {}: {e} (use one store file per network)",
            path.display()
        ))),
        Err(e) => {
            eprintln!(
                "btdht: --store {}: {e}; starting with an empty store",
                path.display()
            );
            Ok(PeerStore::new(profile))
        }
    }
}

/// What `discover --verify` needs before any network traffic.
fn handshake_config(args: &DiscoverArgs, profile: &NetworkProfile) -> Result<HandshakeConfig, i32> {
    let (Some(cert), Some(key)) = (&args.ca_cert, &args.ca_key) else {
        return Err(usage("--verify needs --ca-cert and --ca-key"));
    };
    let ca = CertificateAuthority::load(cert, key).map_err(usage)?;
    let identity = match &args.peer {
        Some(path) => {
            Identity::load(path).map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        None => Identity::generate(&mut rand::rng()).map_err(|e| {
            eprintln!("btdht: key generation failed: {e}");
            EXIT_NO_ANSWER
        })?,
    };
    log::info!("our peer id: {}", identity.id());
    let creds = TlsCredentials::issue(&ca, &identity, now_unix() as i64).map_err(usage)?;
    let mut config =
        HandshakeConfig::new(profile.clone(), Arc::new(identity), &creds).map_err(usage)?;
    config.step_timeout = Duration::from_secs(args.handshake_timeout);
    Ok(config)
}

fn discover(args: &DiscoverArgs) -> i32 {
    let (profile, hash) = match args.network.resolve() {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let push_url = match args.push.as_deref().map(parse_push_url).transpose() {
        Ok(url) => url,
        Err(e) => return usage(e),
    };
    let config = if args.verify {
        match handshake_config(args, &profile) {
            Ok(c) => Some(c),
            Err(status) => return status,
        }
    } else {
        None
    };
    let mut store = match &args.store {
        Some(path) => match load_store(path, &profile) {
            Ok(s) => s,
            Err(status) => return status,
        },
        None => PeerStore::new(&profile),
    };

    // 1. Candidates from the DHT.
    let dht = match start_dht(&args.dht) {
        Ok(dht) => dht,
        Err(status) => return status,
    };
    let result = dht
        .with_timeout(Duration::from_secs(args.dht.timeout))
        .get_peers(hash, false)
        .and_then(|lookup| lookup.outcome());
    stop_dht(&dht);
    let outcome = match result {
        Ok(o) if o.responses > 0 => o,
        Ok(_) => {
            eprintln!("btdht: get_peers {hash}: no node answered");
            return EXIT_NO_ANSWER;
        }
        Err(e) => {
            eprintln!("btdht: get_peers {hash}: {e}");
            return EXIT_NO_ANSWER;
        }
    };
    log::info!(
        "get_peers {hash}: {} peers from {} answers",
        outcome.peers.len(),
        outcome.responses
    );
    let mut candidates = BTreeSet::new();
    for addr in &outcome.peers {
        if addr.port() == 0 || (!args.dht.allow_private && is_ignored_ip(addr.ip())) {
            eprintln!("btdht: {addr}: skipped (private or reserved address; see --allow-private)");
            continue;
        }
        if candidates.len() as u64 >= args.max_candidates {
            eprintln!(
                "btdht: more than {} candidates; the rest are ignored",
                args.max_candidates
            );
            break;
        }
        candidates.insert(*addr);
    }
    let now = now_unix();
    store.expire(now);
    for addr in &candidates {
        store.add_candidate(*addr, Source::Dht, now);
    }

    let status = match &config {
        None => print_unverified(&candidates, args.format),
        Some(config) => {
            let due: BTreeSet<SocketAddr> = store.due(now).into_iter().map(|(a, _)| a).collect();
            let mut to_verify = Vec::new();
            for addr in &candidates {
                if due.contains(addr) {
                    to_verify.push(*addr);
                    store.record_attempt(*addr, now);
                } else {
                    eprintln!("btdht: {addr}: not tried (backing off after earlier failures)");
                }
            }
            let results = verify_all(to_verify, config, args.concurrency as usize);
            let done = now_unix();
            let mut verified = Vec::new();
            for (addr, result) in results {
                match result {
                    Ok(peer) => {
                        log::info!("{addr}: verified as {} ({})", peer.id, peer.app);
                        store.record_success(&peer, Source::Dht, done);
                        verified.push(peer);
                    }
                    Err(failure) => {
                        let text = failure.to_string();
                        eprintln!("btdht: {addr}: NOT verified: {text}");
                        store.record_failure(addr, failure.remote_id, &text, done);
                    }
                }
            }
            print_verified(&verified, args.format);
            let mut status = if verified.is_empty() {
                eprintln!("btdht: no verified peer ({} candidates)", candidates.len());
                EXIT_NO_ANSWER
            } else {
                EXIT_OK
            };
            if let Some(url) = &push_url {
                if verified.is_empty() {
                    eprintln!("btdht: nothing to push");
                } else {
                    let list: Vec<String> =
                        verified.iter().map(|p| p.endpoint().to_string()).collect();
                    match push(url, &list, Duration::from_secs(args.handshake_timeout)) {
                        Ok(body) => eprintln!(
                            "btdht: pushed {} entrypoints to {}:{}{}: {body}",
                            list.len(),
                            url.host,
                            url.port,
                            url.path
                        ),
                        Err(e) => {
                            eprintln!("btdht: push to {}:{}{}: {e}", url.host, url.port, url.path);
                            status = EXIT_NO_ANSWER;
                        }
                    }
                }
            }
            status
        }
    };
    if let Some(path) = &args.store {
        if let Err(e) = store.save(path) {
            eprintln!("btdht: --store {}: {e}", path.display());
        }
    }
    status
}

fn print_unverified(candidates: &BTreeSet<SocketAddr>, format: Format) -> i32 {
    let entrypoints: Vec<String> = candidates
        .iter()
        .map(|a| PeerAddress::from_socket_addr(*a).to_string())
        .collect();
    match format {
        Format::Entrypoints => {
            for e in &entrypoints {
                println!("{e}");
            }
        }
        Format::Json => {
            let items: Vec<_> = entrypoints
                .iter()
                .map(|e| json!({"id": null, "entrypoints": [e], "verified": false}))
                .collect();
            println!("{}", serde_json::Value::from(items));
        }
    }
    if candidates.is_empty() {
        eprintln!("btdht: no candidates");
        EXIT_NO_ANSWER
    } else {
        eprintln!(
            "btdht: {} UNVERIFIED candidates (DHT values are unauthenticated; use --verify)",
            candidates.len()
        );
        EXIT_OK
    }
}

fn print_verified(verified: &[VerifiedPeer], format: Format) {
    match format {
        Format::Entrypoints => {
            for peer in verified {
                println!("{}", peer.endpoint());
            }
        }
        Format::Json => {
            let items: Vec<_> = verified
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id.to_hex(),
                        "entrypoints": [PeerAddress::from_socket_addr(p.dialled).to_string()],
                    })
                })
                .collect();
            println!("{}", serde_json::Value::from(items));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls() {
        let u = parse_push_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, PEERS_PATH)
        );
        let u = parse_push_url("HTTP://localhost/api/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("localhost", 80, "/api/v1a/p2p/peers")
        );
        let u = parse_push_url("http://[::1]:8080/v1a/p2p/peers").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, PEERS_PATH)
        );
        assert!(
            parse_push_url("https://node.example")
                .unwrap_err()
                .contains("https")
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://a:0",
            "http://a:x",
            "http://u@a:1",
            "http://a:1/p?q",
            "http://[::1",
        ] {
            assert!(parse_push_url(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot server on 127.0.0.1 that reads the request head and writes `reply`.
    fn server(reply: Vec<u8>) -> PushUrl {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(&reply);
            }
        });
        parse_push_url(&format!("http://127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn hostile_push_responses_are_bounded_failures() {
        let t = Duration::from_secs(5);
        let list = ["tcp://127.0.0.1:1/?id=00".to_string()];
        let e = push(&server(b"garbage\r\n\r\n".to_vec()), &list, t).unwrap_err();
        assert!(e.contains("not an HTTP response"), "{e}");
        let e = push(&server(b"HTTP/1.1 500 Oops\r\n\r\nboom".to_vec()), &list, t).unwrap_err();
        assert!(e.contains("HTTP 500") && e.contains("boom"), "{e}");
        let mut huge = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'x', 1 << 20));
        let body = push(&server(huge), &list, t).unwrap();
        assert_eq!(body.len(), 512);
        let e = push(&server(vec![0xff, 0xfe, 0, 1]), &list, t).unwrap_err();
        assert!(e.contains("not an HTTP response"), "{e}");
        assert!(push(&server(Vec::new()), &list, t).is_err());
    }

    #[test]
    fn complete_responses() {
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\n"));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        ));
    }
}
