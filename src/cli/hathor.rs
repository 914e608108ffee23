//! `btdht hathor …`: Hathor Network peer discovery on the DHT.
//!
//! * `id new` writes a fresh RSA-2048 identity as Hathor's peer JSON file;
//! * `infohash` prints a network's rendezvous info-hash;
//! * `announce` keeps a Hathor node's p2p port announced on that info-hash until a signal;
//! * `discover` looks the info-hash up, optionally verifies every candidate with the Hathor
//!   handshake, prints the verified entrypoints (never an unverified one as verified) and can
//!   push them to a running node (`POST /v1a/p2p/peers`).
//!
//! The work is done by the library ([`btdht::hathor::Discovery`],
//! [`btdht::hathor::Announcer`], [`btdht::hathor::push`](mod@btdht::hathor::push)); this
//! file turns flags into their configurations and prints their results.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use btdht::InfoHash;
use btdht::driver::Dht;
use btdht::hathor::discovery::{
    AnnounceConfig, AnnounceOutcome, Announcer, Discovery, DiscoveryConfig, Report, announce_round,
    unix_now,
};
use btdht::hathor::handshake::HandshakeConfig;
use btdht::hathor::identity::Identity;
use btdht::hathor::network::NetworkProfile;
use btdht::hathor::push::{PushUrl, push};
use btdht::hathor::store::{PeerBook, StoreError};
use btdht::hathor::tls::{CertificateAuthority, TlsCredentials};
use clap::{Args, Subcommand, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::args::{parse_addr, parse_bind};
use super::commands::{add_public_routers, start_failed};
use super::error::CliError;

/// `btdht hathor …`.
#[derive(Args, Debug)]
pub(crate) struct HathorArgs {
    /// The Hathor subcommand.
    #[command(subcommand)]
    pub command: HathorCommand,
}

/// The Hathor subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum HathorCommand {
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
pub(crate) enum IdCommand {
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
pub(crate) struct NetworkArgs {
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
    pub(crate) fn resolve(&self) -> Result<(NetworkProfile, InfoHash), String> {
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
pub(crate) struct DhtArgs {
    /// Local IPv4 address to bind (the DHT socket; `discover --verify` also dials its
    /// handshakes from this IP, so a node checking our declared entrypoints sees it).
    #[arg(long, default_value = "0.0.0.0:0", value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// A node to join through (repeatable). Default: the saved nodes, else the public routers.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub bootstrap: Vec<SocketAddr>,
    /// Talk to private, loopback and reserved addresses (and accept such candidates).
    #[arg(long)]
    pub allow_private: bool,
    /// Load the DHT state (routing table) from this file, save it there on exit. Without it
    /// nothing is saved and each run joins afresh: this client does not share the default
    /// state file of `btdht node`, which a running node rewrites.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Seconds to wait for a DHT lookup or announce.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Options of `btdht hathor announce`.
#[derive(Args, Debug)]
pub(crate) struct AnnounceArgs {
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
pub(crate) enum Format {
    /// One `tcp://ip:port/?id=<id>` per line (unverified: `tcp://ip:port`, no id).
    Entrypoints,
    /// Verified: Hathor's PEERS shape `[{"id": ..., "entrypoints": [...]}]`; unverified: the
    /// `POST /v1a/p2p/peers` body `["tcp://ip:port", ...]` (no ids).
    Json,
}

/// Options of `btdht hathor discover`.
#[derive(Args, Debug)]
pub(crate) struct DiscoverArgs {
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
    /// JSON output: the same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
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

/// Runs `btdht hathor …`.
pub(crate) fn run(args: HathorArgs) -> Result<(), CliError> {
    match args.command {
        HathorCommand::Id {
            command: IdCommand::New { out, force },
        } => id_new(&out, force),
        HathorCommand::Infohash { network } => infohash(&network),
        HathorCommand::Announce(args) => announce(&args),
        HathorCommand::Discover(args) => discover(&args),
    }
}

fn id_new(out: &std::path::Path, force: bool) -> Result<(), CliError> {
    if out.exists() && !force {
        return Err(CliError::usage(format!(
            "{} exists (use --force to overwrite)",
            out.display()
        )));
    }
    let identity = Identity::generate(&mut rand::rng())
        .map_err(|e| CliError::failed(format!("key generation failed: {e}")))?;
    identity
        .save(out)
        .map_err(|e| CliError::usage(format!("{}: {e}", out.display())))?;
    println!("{}", identity.id());
    log::info!("wrote {}", out.display());
    Ok(())
}

fn infohash(network: &NetworkArgs) -> Result<(), CliError> {
    let (profile, hash) = network.resolve().map_err(CliError::usage)?;
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
    Ok(())
}

/// Starts a read-only DHT client (BEP 43) with the saved state, the given or public routers.
fn start_dht(args: &DhtArgs) -> Result<Dht, CliError> {
    let mut builder = Dht::builder()
        .bind(args.bind)
        .allow_private(args.allow_private)
        .read_only(true);
    // The same start-up checks as `btdht node --state` (exit 2 before anything starts).
    let state = match &args.state {
        Some(path) => super::state::resolve(Some(path), false)?,
        None => None,
    };
    let has_saved_nodes = state
        .as_deref()
        .is_some_and(|p| matches!(btdht::driver::load(p), Ok(Some(s)) if !s.nodes.is_empty()));
    if let Some(path) = &state {
        builder = builder.state_file(path);
    }
    if !args.bootstrap.is_empty() {
        builder = builder.bootstrap(args.bootstrap.iter().copied());
    }
    let dht = builder.start().map_err(start_failed)?;
    // Once bound, so that an address it cannot bind fails before any name is resolved.
    if args.bootstrap.is_empty() && !has_saved_nodes {
        add_public_routers(&dht);
    }
    Ok(dht)
}

fn stop_dht(dht: &Dht) {
    if let Err(e) = dht.stop() {
        log::warn!("{e}");
    }
}

fn announce(args: &AnnounceArgs) -> Result<(), CliError> {
    let (profile, hash) = args.network.resolve().map_err(CliError::usage)?;
    // Handled in every mode, so that a signal during a round still saves the DHT state.
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| CliError::failed(format!("cannot handle SIGINT/SIGTERM: {e}")))?;
    let dht = start_dht(&args.dht)?;
    eprintln!(
        "btdht: announcing port {} for network {} (genesis {}) on {} from {}",
        args.port,
        profile.name,
        profile.genesis_short_hash(),
        hash,
        dht.local_addr()
    );
    let interval = Duration::from_secs(args.interval);
    let config = AnnounceConfig {
        interval,
        // After a failed round, try again sooner (but never more often than the interval asks).
        retry: interval.min(Duration::from_secs(30)),
        timeout: Duration::from_secs(args.dht.timeout),
    };
    let port = args.port;
    let result = if args.once {
        let outcome = announce_round(&dht, hash, port, config.timeout);
        print_round(hash, port, &outcome).map_err(CliError::failed)
    } else {
        let announcer = Announcer::start(dht.clone(), hash, port, config, move |round| {
            if let Err(problem) = print_round(hash, port, &round.outcome) {
                eprintln!("btdht: {problem}");
            }
            log::info!("next announce in {} s", round.next_in.as_secs());
        });
        match announcer {
            Ok(announcer) => {
                // Blocks until SIGINT or SIGTERM.
                let _ = signals.forever().next();
                eprintln!("btdht: stopping");
                if announcer.stop() > 0 {
                    Ok(())
                } else {
                    Err(CliError::failed("announce: no announce was acknowledged"))
                }
            }
            Err(e) => Err(CliError::failed(format!("cannot start the announcer: {e}"))),
        }
    };
    stop_dht(&dht);
    result
}

/// Prints an acknowledged announce round on stdout; otherwise returns what went wrong.
fn print_round(hash: InfoHash, port: u16, outcome: &AnnounceOutcome) -> Result<(), String> {
    match outcome {
        AnnounceOutcome::Acknowledged { sent, acknowledged } => {
            println!("announced {hash} port {port} to {sent} nodes ({acknowledged} acknowledged)");
            Ok(())
        }
        AnnounceOutcome::Unacknowledged { responses, sent } => Err(format!(
            "announce: no node acknowledged ({responses} answered the lookup, {sent} announces sent)"
        )),
        AnnounceOutcome::Failed(e) => Err(format!("announce: {e}")),
    }
}

fn load_store(path: &std::path::Path, profile: &NetworkProfile) -> Result<PeerBook, CliError> {
    match PeerBook::load(path, profile) {
        Ok(store) => Ok(store),
        Err(e @ StoreError::WrongNetwork { .. }) => Err(CliError::usage(format!(
            "--store {}: {e} (use one store file per network)",
            path.display()
        ))),
        Err(e) => {
            eprintln!(
                "btdht: --store {}: {e}; starting with an empty store",
                path.display()
            );
            Ok(PeerBook::new(profile))
        }
    }
}

/// What `discover --verify` needs before any network traffic.
fn handshake_config(
    args: &DiscoverArgs,
    profile: &NetworkProfile,
) -> Result<HandshakeConfig, CliError> {
    let (Some(cert), Some(key)) = (&args.ca_cert, &args.ca_key) else {
        return Err(CliError::usage("--verify needs --ca-cert and --ca-key"));
    };
    let ca = CertificateAuthority::load(cert, key).map_err(CliError::usage)?;
    let identity = match &args.peer {
        Some(path) => {
            Identity::load(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?
        }
        None => Identity::generate(&mut rand::rng())
            .map_err(|e| CliError::failed(format!("key generation failed: {e}")))?,
    };
    log::info!("our peer id: {}", identity.id());
    let creds =
        TlsCredentials::issue(&ca, &identity, unix_now() as i64).map_err(CliError::usage)?;
    let mut config = HandshakeConfig::new(profile.clone(), Arc::new(identity), &creds)
        .map_err(CliError::usage)?;
    config.step_timeout = Duration::from_secs(args.handshake_timeout);
    config.local_ip = Some(args.dht.bind.ip());
    Ok(config)
}

fn discover(args: &DiscoverArgs) -> Result<(), CliError> {
    let (profile, hash) = args.network.resolve().map_err(CliError::usage)?;
    let push_url = args
        .push
        .as_deref()
        .map(PushUrl::parse)
        .transpose()
        .map_err(|e| CliError::usage(format!("--push {e}")))?;
    let handshake = if args.verify {
        Some(handshake_config(args, &profile)?)
    } else {
        None
    };
    let store = match &args.store {
        Some(path) => load_store(path, &profile)?,
        None => PeerBook::new(&profile),
    };
    let config = DiscoveryConfig {
        lookup_timeout: Duration::from_secs(args.dht.timeout),
        allow_private: args.dht.allow_private,
        max_candidates: usize::try_from(args.max_candidates).unwrap_or(usize::MAX),
        concurrency: usize::try_from(args.concurrency).unwrap_or(1),
        handshake,
        ..DiscoveryConfig::default()
    };
    let mut discovery = Discovery::with_store(hash, config, store);

    let dht = start_dht(&args.dht)?;
    let result = discovery.run(&dht);
    stop_dht(&dht);
    let report = result.map_err(|e| CliError::failed(format!("get_peers {hash}: {e}")))?;
    let result = print_report(&report, args, push_url.as_ref());
    if let Some(path) = &args.store
        && let Err(e) = discovery.store().save(path)
    {
        eprintln!("btdht: --store {}: {e}", path.display());
    }
    result
}

/// Prints what a discovery found and pushes the verified peers.
fn print_report(
    report: &Report,
    args: &DiscoverArgs,
    push_url: Option<&PushUrl>,
) -> Result<(), CliError> {
    for addr in &report.skipped {
        eprintln!("btdht: {addr}: skipped (private or reserved address; see --allow-private)");
    }
    if report.over_limit > 0 {
        eprintln!(
            "btdht: more than {} candidates; the rest are ignored",
            args.max_candidates
        );
    }
    for addr in &report.backing_off {
        eprintln!("btdht: {addr}: not tried (backing off after earlier failures)");
    }
    for peer in &report.verified {
        log::info!("{}: verified as {} ({})", peer.dialled, peer.id, peer.app);
    }
    for (addr, failure) in &report.failed {
        eprintln!("btdht: {addr}: NOT verified: {failure}");
    }
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Json => println!("{}", report.to_json()),
        Format::Entrypoints if report.verification => {
            for endpoint in report.verified_endpoints() {
                println!("{endpoint}");
            }
        }
        Format::Entrypoints => {
            for entrypoint in report.candidate_entrypoints() {
                println!("{entrypoint}");
            }
        }
    }
    if !report.verification {
        if report.candidates.is_empty() {
            return Err(CliError::failed("no candidates"));
        }
        eprintln!(
            "btdht: {} UNVERIFIED candidates (DHT values are unauthenticated; use --verify)",
            report.candidates.len()
        );
        return Ok(());
    }
    if report.verified.is_empty() {
        if push_url.is_some() {
            eprintln!("btdht: nothing to push");
        }
        return Err(CliError::failed(format!(
            "no verified peer ({} candidates)",
            report.candidates.len()
        )));
    }
    if let Some(url) = push_url {
        let list: Vec<String> = report
            .verified_endpoints()
            .iter()
            .map(ToString::to_string)
            .collect();
        let body = push(url, &list, Duration::from_secs(args.handshake_timeout))
            .map_err(|e| CliError::failed(format!("push to {url}: {e}")))?;
        eprintln!("btdht: pushed {} entrypoints to {url}: {body}", list.len());
    }
    Ok(())
}
