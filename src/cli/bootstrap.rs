//! `btdht bootstrap`: a bootstrap server (see `btdht::bootstrap`), and the `--rate-limit`
//! option it shares with `btdht node`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use btdht::NodeId;
use btdht::bootstrap::driver::{Server, ServerOptions};
use btdht::bootstrap::{AnswerMode, BootstrapStats};
use btdht::node::RateLimit;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::args::{parse_addr, parse_bind, parse_id};
use super::error::{CliError, bind_failed};

/// A `--rate-limit` value: `off`, or a per-source-IP limit `RATE[/BURST]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RateSpec {
    /// No per-IP and no global limit.
    Off,
    /// This per-IP limit (the global limit keeps its default).
    PerIp(RateLimit),
}

/// Parses `off` or `RATE[/BURST]` (burst defaults to 5 × rate).
pub(crate) fn parse_rate(text: &str) -> Result<RateSpec, String> {
    if text == "off" {
        return Ok(RateSpec::Off);
    }
    let (rate, burst) = match text.split_once('/') {
        Some((r, b)) => (r, Some(b)),
        None => (text, None),
    };
    let rate: u32 = rate
        .parse()
        .map_err(|_| "expected off or RATE[/BURST], e.g. 20/100".to_string())?;
    let burst: u32 = match burst {
        Some(b) => b
            .parse()
            .map_err(|_| "expected off or RATE[/BURST], e.g. 20/100".to_string())?,
        None => rate.saturating_mul(5),
    };
    if rate == 0 || burst == 0 {
        return Err("rate and burst must be positive (or use off)".into());
    }
    Ok(RateSpec::PerIp(RateLimit { rate, burst }))
}

/// How the server picks the nodes of its answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Answer {
    /// The K pool nodes closest to the target.
    Closest,
    /// K random pool nodes.
    Random,
}

/// Options of `btdht bootstrap`.
#[derive(Args, Debug)]
pub(crate) struct BootstrapArgs {
    /// Local IPv4 address to bind (shared by all shards through SO_REUSEPORT).
    #[arg(long, default_value = "0.0.0.0:6881", value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// Also serve on this IPv6 address (BEP 32).
    #[arg(long, value_parser = parse_bind)]
    pub bind6: Option<SocketAddr>,
    /// Shards: I/O threads, each with its own socket, sharing the pool.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Most IPv4 nodes in the pool (the IPv6 pool holds a quarter as many).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub capacity: u64,
    /// Load the pool from this file at start; save it there periodically and on exit.
    /// Nodes the server would not talk to (private and loopback addresses without
    /// `--allow-private`, BEP 42-inconsistent ids with `--bep42-strict`) are skipped, and
    /// counted on the start line. Without it the pool lives in memory only and is rebuilt by
    /// walking the DHT at each start: the pool file (tens of MB for a million nodes) is kept
    /// only where the operator puts it, never in a default place.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// A node to walk the DHT from (repeatable). Default: the public routers when the pool
    /// is empty.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub bootstrap: Vec<SocketAddr>,
    /// Load, store, hand out and query only nodes whose id is BEP 42-consistent with their
    /// address.
    #[arg(long)]
    pub bep42_strict: bool,
    /// Talk to private, loopback and reserved addresses.
    #[arg(long)]
    pub allow_private: bool,
    /// Use this node id (40 hex digits) instead of a random one.
    #[arg(long, value_parser = parse_id)]
    pub id: Option<NodeId>,
    /// Our public address: take a BEP 42 id for it (unless `--id` already is one).
    #[arg(long, value_name = "ADDR")]
    pub external_ip: Option<std::net::IpAddr>,
    /// How answers pick their nodes.
    #[arg(long, value_enum, default_value_t = Answer::Closest)]
    pub answer: Answer,
    /// Per-source-IP query limit RATE[/BURST], or `off` to lift all limits (for benchmarks).
    #[arg(long, value_name = "off|RATE[/BURST]", value_parser = parse_rate)]
    pub rate_limit: Option<RateSpec>,
    /// Print counters (totals, then queries in and answered per shard) every SECS seconds and
    /// at exit.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub stats: Option<u64>,
    /// Counters as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Seconds between two saves of the pool.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub save_interval: u64,
}

/// Prints one counters line: the server's totals, then each shard's queries in and answers
/// (`shards` in shard order), which show how the kernel spread the sources over the shards.
fn print_stats(shards: &[BootstrapStats], pool: usize, json: bool) {
    let stats = BootstrapStats::total(shards);
    if json {
        let per_shard: Vec<_> = shards
            .iter()
            .map(|s| json!({"queries_in": s.queries_in, "answered": s.answered}))
            .collect();
        println!(
            "{}",
            json!({
                "type": "stats",
                "pool": pool,
                "datagrams_in": stats.datagrams_in,
                "queries_in": stats.queries_in,
                "answered": stats.answered,
                "rate_limited": stats.rate_limited,
                "rejected": stats.rejected,
                "nodes_handed_out": stats.nodes_handed_out,
                "pings_sent": stats.pings_sent,
                "verified": stats.verified,
                "unsolicited": stats.unsolicited,
                "walk_queries": stats.walk_queries,
                "expired": stats.expired,
                "snapshot_refreshes": stats.snapshot_refreshes,
                "pool_read_waits": stats.pool_read_waits,
                "pool_write_waits": stats.pool_write_waits,
                "shards": per_shard,
            })
        );
    } else {
        let per_shard: Vec<String> = shards
            .iter()
            .map(|s| format!("{}/{}", s.queries_in, s.answered))
            .collect();
        println!(
            "pool {pool}; {} queries in, {} answered, {} rate-limited, {} rejected; {} pings sent, {} verified, {} unsolicited; {} snapshot refreshes; pool lock waits {} read, {} write; shards (queries in/answered) {}",
            stats.queries_in,
            stats.answered,
            stats.rate_limited,
            stats.rejected,
            stats.pings_sent,
            stats.verified,
            stats.unsolicited,
            stats.snapshot_refreshes,
            stats.pool_read_waits,
            stats.pool_write_waits,
            per_shard.join(" ")
        );
    }
}

/// Runs `btdht bootstrap` until SIGINT or SIGTERM.
pub(crate) fn run(args: BootstrapArgs) -> Result<(), CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::failed(format!("cannot handle signal {signal}: {e}")))?;
    }
    let mut options = ServerOptions::new(args.bind);
    options.bind6 = args.bind6;
    options.threads = usize::from(args.threads);
    options.capacity = usize::try_from(args.capacity).unwrap_or(usize::MAX);
    options.id = match (args.id, args.external_ip) {
        (id, Some(ip)) if !id.is_some_and(|id| id.is_bep42_valid_for(ip)) => {
            Some(NodeId::bep42(ip, rand::random(), &mut rand::rng()))
        }
        (id, _) => id,
    };
    options.state = args.state.clone();
    options.config.bep42_strict = args.bep42_strict;
    options.config.allow_private = args.allow_private;
    options.config.answer = match args.answer {
        Answer::Closest => AnswerMode::Closest,
        Answer::Random => AnswerMode::Random,
    };
    match args.rate_limit {
        Some(RateSpec::Off) => {
            options.config.rate_limit_per_ip = None;
            options.config.rate_limit_global = None;
        }
        Some(RateSpec::PerIp(limit)) => options.config.rate_limit_per_ip = Some(limit),
        None => {}
    }
    options.bootstrap = if args.bootstrap.is_empty() {
        // The shards bind once the routers are known: a port in use fails here first, before
        // any name is resolved.
        for addr in std::iter::once(args.bind).chain(args.bind6) {
            btdht::driver::socket::check_free(addr)
                .map_err(|e| bind_failed(&addr.to_string(), &e))?;
        }
        super::commands::public_routers()
    } else {
        args.bootstrap.clone()
    };
    let started = Instant::now();
    let server = match Server::start(options) {
        Ok(server) => server,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
            ) =>
        {
            let addrs = match args.bind6 {
                Some(addr6) => format!("{} or {addr6}", args.bind),
                None => args.bind.to_string(),
            };
            return Err(bind_failed(&addrs, &e));
        }
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot start the bootstrap server: {e}"
            )));
        }
    };
    eprintln!(
        "btdht: bootstrap {} listening on {} ({} shards, {} nodes loaded, {} skipped in {:.2} s{})",
        server.id(),
        server.local_addr(),
        args.threads,
        server.loaded(),
        server.skipped(),
        started.elapsed().as_secs_f64(),
        if args.bep42_strict {
            ", BEP 42 strict"
        } else {
            ""
        }
    );
    if let Some(addr) = server.local_addr6() {
        eprintln!("btdht: also listening on {addr}");
    }
    let period = args.stats.map(Duration::from_secs);
    let mut next_stats = period.map(|p| Instant::now() + p);
    let save_every = Duration::from_secs(args.save_interval);
    let mut next_save = Instant::now() + save_every;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if let (Some(at), Some(period)) = (next_stats, period)
            && now >= at
        {
            next_stats = Some(at + period);
            let pool = server.pools().read().len();
            print_stats(&server.shard_stats(), pool, args.json);
        }
        if now >= next_save {
            next_save = now + save_every;
            if let Err(e) = server.save() {
                log::warn!("cannot save the pool: {e}");
            }
        }
    }
    eprintln!("btdht: stopping");
    let pool = server.pools().read().len();
    let shards = server
        .stop_per_shard()
        .map_err(|e| CliError::failed(format!("cannot save the pool: {e}")))?;
    if args.stats.is_some() {
        print_stats(&shards, pool, args.json);
    }
    Ok(())
}
