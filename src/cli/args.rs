//! The command line's argument types (clap derive) and their parsers.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use btdht::NodeId;
use clap::{ArgAction, Args, Parser, Subcommand};

/// A BitTorrent Mainline DHT (BEP 5) node and client.
///
/// Results go to stdout (readable, or one JSON object per line with --json), logs to stderr.
/// Exit status: 0 on success, 1 when nothing answered, 2 on bad arguments.
#[derive(Parser, Debug)]
#[command(
    name = "btdht",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("BTDHT_GIT_REV"), ")"),
    about,
    long_about,
    after_help = "Examples:\n  btdht node --bind 0.0.0.0:6881\n  btdht get-peers 0123456789abcdef0123456789abcdef01234567 --json"
)]
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); without -v or -q the
    /// BTDHT_LOG environment variable (off, error, warn, info, debug, trace) sets the level.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments (exit 2 with a message on bad ones), with the help of
    /// `node --state` naming this user's default state file.
    pub(crate) fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        if let Some(path) = super::state::default_path_from_env() {
            command = command.mut_subcommand("node", |node| {
                node.mut_arg("state", |arg| {
                    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                    arg.help(format!("{help} [default: {}]", path.display()))
                })
            });
        }
        let matches = command.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run a DHT node until SIGINT or SIGTERM, then save its state and exit.
    #[command(
        after_help = "Examples:\n  btdht node --bind 0.0.0.0:6881 --stats 60\n  btdht node --bind 0.0.0.0:6882 --state second-node.json"
    )]
    Node(NodeArgs),
    /// Ping a node and print its id.
    #[command(after_help = "Example:\n  btdht ping 127.0.0.1:6881 --allow-private")]
    Ping {
        /// The node's address (IP:PORT or HOST:PORT).
        #[arg(value_parser = parse_addr)]
        addr: SocketAddr,
        #[command(flatten)]
        client: DirectArgs,
    },
    /// Find the nodes closest to an id.
    #[command(
        name = "find-node",
        after_help = "Example:\n  btdht find-node 0123456789abcdef0123456789abcdef01234567 --json"
    )]
    FindNode {
        /// The target id (40 hex digits).
        #[arg(value_parser = parse_id)]
        target: NodeId,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Find the peers of a torrent (and the nodes closest to its info-hash).
    #[command(
        name = "get-peers",
        after_help = "Example:\n  btdht get-peers 0123456789abcdef0123456789abcdef01234567"
    )]
    GetPeers {
        /// The info-hash (40 hex digits).
        #[arg(value_parser = parse_id)]
        info_hash: NodeId,
        /// Ask for leechers only: the nodes leave out the peers announced as seeds (BEP 33).
        #[arg(long)]
        noseed: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Announce that a peer has a torrent.
    #[command(
        after_help = "Example:\n  btdht announce 0123456789abcdef0123456789abcdef01234567 --port 51413"
    )]
    Announce {
        /// The info-hash (40 hex digits).
        #[arg(value_parser = parse_id)]
        info_hash: NodeId,
        /// The peer's TCP port.
        #[arg(long, required_unless_present = "implied_port", conflicts_with = "implied_port", value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// Let the nodes use the UDP source port of the announce (BEP 5 implied_port).
        #[arg(long)]
        implied_port: bool,
        /// Announce as a seed, a peer with the whole torrent (BEP 33).
        #[arg(long)]
        seed: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Ask a node for a sample of the info-hashes it stores (BEP 51).
    #[command(after_help = "Example:\n  btdht sample 127.0.0.1:6881 --allow-private --json")]
    Sample {
        /// The node's address (IP:PORT or HOST:PORT).
        #[arg(value_parser = parse_addr)]
        addr: SocketAddr,
        /// The target id around which to sample (default: random).
        #[arg(long, value_parser = parse_id)]
        target: Option<NodeId>,
        #[command(flatten)]
        client: DirectArgs,
    },
    /// Hathor Network peer discovery: identities, rendezvous info-hash, announce, discover.
    #[command(
        after_help = "Example:\n  btdht hathor discover --network testnet --verify --ca-cert ca.crt --ca-key ca.key"
    )]
    Hathor(super::hathor::HathorArgs),
    /// Run a bootstrap server: answer find_node and get_peers from a large pool of verified
    /// nodes, until SIGINT or SIGTERM.
    #[command(
        after_help = "Example:\n  btdht bootstrap --bind 0.0.0.0:6881 --threads 2 --state pool.bin --stats 60"
    )]
    Bootstrap(super::bootstrap::BootstrapArgs),
    /// Load a DHT server on loopback and print answered/s, loss and latency as JSON.
    #[command(
        after_help = "Example:\n  btdht bench 127.0.0.1:6881 --query mix --seconds 5 --window 256 --sources 64"
    )]
    Bench(super::bench::BenchArgs),
    /// A raw UDP echo server on loopback (the throughput baseline of benches/throughput.sh).
    #[command(name = "udp-echo", hide = true)]
    UdpEcho(super::bench::EchoArgs),
    /// Run many DHT nodes in one process on distinct loopback addresses (a local swarm). It
    /// keeps no state: every run starts from new nodes.
    #[command(
        after_help = "Example:\n  btdht swarm --nodes 5000 --infohashes 5000 --truth truth.json"
    )]
    Swarm(super::swarm::SwarmArgs),
    /// Enumerate DHT nodes and their BEP 51 info-hashes, as NDJSON.
    #[command(
        after_help = "Example:\n  btdht crawl --bootstrap 127.1.0.1:6881 --allow-private --duration 60 --out crawl.ndjson"
    )]
    Crawl(super::crawl::CrawlArgs),
    /// Fetch a torrent's metadata (info dictionary) from peers, BEP 9; save it as a .torrent.
    #[command(
        after_help = "Example:\n  btdht metadata 0123456789abcdef0123456789abcdef01234567 --peer 127.0.0.1:6881 --save x.torrent"
    )]
    Metadata(super::metadata::MetadataArgs),
    /// Write a new ed25519 secret key for mutable items and print its public key.
    #[command(after_help = "Example:\n  btdht keygen --out my.key")]
    Keygen(super::items::KeygenArgs),
    /// Store a BEP 44 item: immutable, or mutable with --key.
    #[command(
        after_help = "Examples:\n  btdht put 'Hello World!'\n  btdht put --key my.key --salt blog 'new post'"
    )]
    Put(super::items::PutArgs),
    /// Get a BEP 44 item: immutable by its target, or mutable with --public-key.
    #[command(
        after_help = "Examples:\n  btdht get e5f96f6f38320f0f33959cb4d3d656452117aadb\n  btdht get --public-key 77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548 --salt blog"
    )]
    Get(super::items::GetArgs),
    /// Print a shell completion script for SHELL on stdout.
    #[command(
        after_help = "Example:\n  btdht completions bash > ~/.local/share/bash-completion/completions/btdht"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    #[command(after_help = "Example:\n  btdht man > btdht.1 && man ./btdht.1")]
    Man,
    /// Read a crawl database (`btdht crawl --db`): row counts, or everything as NDJSON.
    #[command(
        after_help = "Example:\n  btdht db stats crawl.db\n  btdht db export crawl.db --ndjson"
    )]
    Db(super::db::DbArgs),
}

/// Options of the short-lived client commands.
#[derive(Args, Debug, Clone)]
pub(crate) struct ClientArgs {
    /// Local IPv4 address to bind.
    #[arg(long, default_value = "0.0.0.0:0", value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// A node to join through (repeatable). Default: the public routers.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub bootstrap: Vec<SocketAddr>,
    /// Talk to private, loopback and reserved addresses.
    #[arg(long)]
    pub allow_private: bool,
    /// One JSON object per line on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Options of the client commands that ask one given node (`ping`, `sample`): the
/// [`ClientArgs`] without `--bootstrap`.
#[derive(Args, Debug, Clone)]
pub(crate) struct DirectArgs {
    /// Local IPv4 address to bind.
    #[arg(long, default_value = "0.0.0.0:0", value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// Talk to private, loopback and reserved addresses.
    #[arg(long)]
    pub allow_private: bool,
    /// One JSON object per line on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

impl From<DirectArgs> for ClientArgs {
    fn from(args: DirectArgs) -> Self {
        ClientArgs {
            bind: args.bind,
            bootstrap: Vec::new(),
            allow_private: args.allow_private,
            json: args.json,
            timeout: args.timeout,
        }
    }
}

/// Options of `btdht node`.
#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    /// Local IPv4 address to bind.
    #[arg(long, default_value = "0.0.0.0:6881", value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// Also bind this IPv6 address (BEP 32).
    #[arg(long, value_parser = parse_bind)]
    pub bind6: Option<SocketAddr>,
    /// A node to join through (repeatable). Default: the saved nodes, else the public routers.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub bootstrap: Vec<SocketAddr>,
    /// Load the state (node id, routing table) from this file at start, save it there
    /// periodically and on exit. Default: $XDG_DATA_HOME/btdht/state.json, else
    /// $HOME/.local/share/btdht/state.json (its directory is created). A file that is not a
    /// btdht state is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Keep no state file: start with a new id and an empty routing table, save nothing.
    #[arg(long, conflicts_with = "state")]
    pub no_state: bool,
    /// BEP 43 read-only: answer no queries.
    #[arg(long)]
    pub read_only: bool,
    /// Talk to private, loopback and reserved addresses.
    #[arg(long)]
    pub allow_private: bool,
    /// Use this node id (40 hex digits) instead of the saved or a random one.
    #[arg(long, value_parser = parse_id)]
    pub id: Option<NodeId>,
    /// Our public address: take a BEP 42 id for it (the replies' `ip` votes may move it later).
    #[arg(long, value_name = "ADDR")]
    pub external_ip: Option<std::net::IpAddr>,
    /// Print counters every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub stats: Option<u64>,
    /// Counters as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Per-source-IP query limit RATE[/BURST] (default 20/100), or `off` to lift the per-IP
    /// and global limits and the reply-byte budget (for benchmarks).
    #[arg(long, value_name = "off|RATE[/BURST]", value_parser = super::bootstrap::parse_rate)]
    pub rate_limit: Option<super::bootstrap::RateSpec>,
}

/// A 40-hex-digit id.
pub(crate) fn parse_id(text: &str) -> Result<NodeId, String> {
    NodeId::from_hex(text).map_err(|e| format!("not a 40-hex-digit id: {e}"))
}

/// An IP:PORT or HOST:PORT address, resolved (IPv4 preferred).
pub(crate) fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected IP:PORT or HOST:PORT".into());
    };
    check_port(port)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let looks_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if (looks_numeric || host.contains(':')) && host.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("{host} is not an IP address"));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| "resolves to no address".into())
}

/// A local IP:PORT to bind.
pub(crate) fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected a local IP:PORT, e.g. 0.0.0.0:6881".into());
    };
    check_port(port)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Err(format!(
        "{host} is not an IP address (expected a local IP:PORT, e.g. 0.0.0.0:6881)"
    ))
}

/// Says what is wrong with the PORT of an address: not a number, or out of range.
fn check_port(port: &str) -> Result<(), String> {
    match port.parse::<u64>() {
        Ok(n) if n > u64::from(u16::MAX) => Err(format!("port {n} is out of range (0-65535)")),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{port:?} is not a port number")),
    }
}

/// What kind of address a public node ignores `ip` as ("a loopback address"...), or `None`
/// for a public address.
pub(crate) fn ignored_kind(ip: std::net::IpAddr) -> Option<&'static str> {
    if !btdht::address_policy::is_ignored_ip(ip) {
        return None;
    }
    let ip = ip.to_canonical();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else {
        match ip {
            std::net::IpAddr::V4(v4) if v4.is_private() => "a private address",
            std::net::IpAddr::V4(v4) if v4.is_link_local() => "a link-local address",
            _ => "a private or reserved address",
        }
    })
}

/// The message for `addr` when it is ignored without `--allow-private`, or `None`.
pub(crate) fn needs_allow_private(addr: SocketAddr) -> Option<String> {
    ignored_kind(addr.ip())
        .map(|kind| format!("{addr} is {kind}, ignored unless --allow-private is given"))
}
