//! `btdht crawl`: runs a [`Crawl`] on a UDP socket (and an IPv6 one with `--bind6`) and writes
//! NDJSON.
//!
//! It writes the crawl's records as NDJSON lines to stdout or `--out`: one line per
//! node (`type: node`), per info-hash (`type: infohash`), per peer count (`type: peers`, with
//! `--get-peers`), per torrent whose metadata was fetched (`type: torrent`, with
//! `--metadata`), and a last `type: summary` line with the counters. Progress (nodes/s,
//! info-hashes/s, packets/s, torrents) goes to stderr when it is a terminal (as plain lines
//! elsewhere with `--progress`); a summary goes to stderr at the end, after `--duration`
//! seconds or on SIGINT/SIGTERM (output flushed, exit 0).
//! With `--db FILE|URL`, everything also goes into a crawl database ([`Store`]: a SQLite file
//! or PostgreSQL), committed in batches, and NDJSON is written only with `--out`; a crawl
//! restarted on the same database starts from the nodes it knows (the [`KNOWN_NODES`] seen
//! last), samples no node before the end of the BEP 51 `interval` it last gave, and does not
//! fetch again the metadata it has. With `--metadata`, a crawl that ends by itself first waits
//! (at most [`METADATA_DRAIN`]) for
//! the metadata fetches under way.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use btdht::crawler::db::{Location, Store};
use btdht::crawler::{
    Crawl, CrawlConfig, CrawlOptions, CrawlSink, CrawlStats, Crawler, Record, Shard, TorrentStats,
    Torrents,
};
use btdht::driver::socket::bind_udp;
use btdht::metadata::FetcherConfig;
use btdht::runtime::IoStats;
use clap::Args;

use super::args::{parse_addr, parse_bind};
use super::error::{CliError, bind_failed};

/// Options of `btdht crawl`.
#[derive(Args, Debug)]
pub(crate) struct CrawlArgs {
    /// A node to start from (repeatable). Default: the public routers.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub bootstrap: Vec<SocketAddr>,
    /// Local IPv4 address to bind.
    #[arg(long, default_value = "0.0.0.0:0", value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// Also crawl over IPv6 from this local address (e.g. [::]:0): IPv4 and IPv6 together,
    /// every query asking for both families' nodes (want n4 n6).
    #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
    pub bind6: Option<SocketAddr>,
    /// Stop after SECS seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Global limit on queries sent per second.
    #[arg(long, value_name = "PPS", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
    /// Queries per second to one destination IP (libtorrent bans 50 in 10 s); 0: no limit.
    #[arg(long, value_name = "PPS", default_value_t = 4)]
    pub per_ip_rate: u32,
    /// How many crawler ids the queries rotate through.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub ids: u32,
    /// Write the NDJSON here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only enumerate nodes (find_node), no BEP 51 samples.
    #[arg(long)]
    pub no_infohashes: bool,
    /// Count the peers of each new info-hash (one get_peers to the node that sampled it).
    #[arg(long)]
    pub get_peers: bool,
    /// Talk to private, loopback and reserved addresses.
    #[arg(long)]
    pub allow_private: bool,
    /// Seed of the crawler's randomness (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// find_node sweeps per second (random targets to known nodes) once everything known was
    /// visited; every 4 sweeps in a row that find nothing new halve the rate. 0: none.
    #[arg(long, value_name = "PPS", default_value_t = 20)]
    pub sweep_rate: u32,
    /// Exit once everything known was visited and 16 sweeps in a row found nothing new, or,
    /// when no bootstrap node answers, once their queries and retries have timed out (exit 1).
    #[arg(long)]
    pub until_idle: bool,
    /// Fetch the metadata (BEP 9) of each new info-hash from its peers (implies --get-peers).
    #[arg(long)]
    pub metadata: bool,
    /// Also write everything into this database: a SQLite file (created if needed) or a
    /// PostgreSQL URL (postgres://user@host/dbname; shards and restarts merge into it). A crawl
    /// restarted on it resumes. NDJSON is then written only with --out.
    #[arg(long, value_name = "FILE|URL")]
    pub db: Option<Location>,
    /// Crawl shard I of N (0 <= I < N) of the id space: the top 32 bits of an id or info-hash,
    /// times N and divided by 2^32, give its shard. The crawl aims every query into shard I
    /// and records only the info-hashes of shard I (nodes wherever it meets them), so N
    /// crawls with 0/N .. N-1/N, e.g. into one --db, cover the DHT without overlap.
    #[arg(long, value_name = "I/N", default_value = "0/1")]
    pub shard: Shard,
    /// Metadata fetches (TCP connections) at once, with --metadata.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub metadata_concurrency: u32,
    /// Show the progress line on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// Longest wait, at the end of a crawl that stopped by itself, for the metadata fetches under
/// way.
pub(crate) const METADATA_DRAIN: Duration = Duration::from_secs(60);

/// Nodes of the database that seed a restarted crawl, at most (the ones seen last).
pub(crate) const KNOWN_NODES: usize = 1_000;

/// Nodes of the database whose BEP 51 interval holds back their sample, at most.
const DEFERRED_SAMPLES: usize = 100_000;

/// Info-hashes waiting for a metadata fetch, at most.
const METADATA_BACKLOG: usize = 65_536;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn summary_json(
    stats: &CrawlStats,
    elapsed: f64,
    crawler: &Crawler,
    torrents: Option<&TorrentStats>,
) -> serde_json::Value {
    let per_node = stats.queries_sent as f64 / stats.nodes_found.max(1) as f64;
    let fp = crawler.dedup_false_positive_rates();
    let mut summary = serde_json::json!({
        "type": "summary",
        "duration_s": elapsed,
        "nodes": stats.nodes_found,
        "infohashes": stats.infohashes_found,
        "queries_sent": stats.queries_sent,
        "queries_per_node": per_node,
        "samples_sent": stats.samples_sent,
        "find_nodes_sent": stats.find_nodes_sent,
        "get_peers_sent": stats.get_peers_sent,
        "replies": stats.replies,
        "errors": stats.errors,
        "timeouts": stats.timeouts,
        "unresponsive": stats.unresponsive,
        "rejected": stats.rejected,
        "unmatched": stats.unmatched,
        "addrs_queued": stats.addrs_queued,
        "per_ip_delayed": stats.per_ip_delayed,
        "queue_overflows": stats.queue_overflows,
        "records_dropped": stats.records_dropped,
        "resamples": stats.resamples,
        "shard": crawler.config().shard.to_string(),
        "other_shards": stats.other_shards,
        "dedup_false_positive_rate": fp.iter().copied().fold(0.0, f64::max),
    });
    if let (Some(t), Some(map)) = (torrents, summary.as_object_mut()) {
        map.insert("torrents".into(), t.fetched.into());
        map.insert("torrents_no_peers".into(), t.no_peers.into());
        map.insert("torrents_exhausted".into(), t.exhausted.into());
        map.insert("torrents_dropped".into(), t.dropped.into());
        map.insert("torrents_skipped".into(), t.skipped.into());
        map.insert("metadata_failures".into(), serde_json::json!(t.failures));
    }
    summary
}

/// The failures per reason, as `kind n, kind n`.
fn failures_text(stats: &TorrentStats) -> String {
    let parts: Vec<String> = stats
        .failures
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    parts.join(", ")
}

/// The NDJSON output and the progress line.
struct Output {
    out: Box<dyn Write>,
    start_unix: f64,
    progress: Option<indicatif::ProgressBar>,
    /// `--progress` and stderr is not a terminal: the progress as plain lines.
    progress_lines: bool,
    last_progress: (std::time::Instant, CrawlStats),
    torrents: Option<Torrents>,
    db: Option<Box<dyn Store + Send>>,
}

impl Output {
    /// Writes the torrents fetched so far, without waiting.
    fn write_torrents(&mut self) -> io::Result<()> {
        let Some(torrents) = &mut self.torrents else {
            return Ok(());
        };
        while let Some(torrent) = torrents.poll() {
            let now = unix_now();
            if let Some(db) = &mut self.db {
                db.torrent(&torrent, now)?;
            }
            writeln!(self.out, "{}", torrent.to_json(now))?;
        }
        Ok(())
    }

    /// Commits the database's open batch when it is due, or always with `force`.
    fn commit(&mut self, force: bool) -> io::Result<()> {
        let now = unix_now();
        match &mut self.db {
            Some(db) if force || db.due(now) => db.commit(now),
            _ => Ok(()),
        }
    }

    /// Waits for the fetches under way (at most `limit` in all, and until `stop` is set) and
    /// writes their torrents.
    fn drain_torrents(&mut self, limit: Duration, stop: &AtomicBool) -> io::Result<()> {
        let Some(torrents) = &mut self.torrents else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + limit;
        while !torrents.is_idle() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(torrent) = torrents.wait(left.min(Duration::from_millis(200))) {
                let now = unix_now();
                if let Some(db) = &mut self.db {
                    db.torrent(&torrent, now)?;
                    if db.due(now) {
                        db.commit(now)?;
                    }
                }
                writeln!(self.out, "{}", torrent.to_json(now))?;
            }
        }
        Ok(())
    }
}

impl CrawlSink for Output {
    fn record(&mut self, record: Record) -> io::Result<()> {
        writeln!(self.out, "{}", record.to_json(self.start_unix))?;
        if let Some(db) = &mut self.db {
            db.record(&record, self.start_unix)?;
        }
        if let (
            Some(torrents),
            Record::Peers {
                info_hash, addrs, ..
            },
        ) = (&mut self.torrents, &record)
        {
            torrents.add(*info_hash, addrs);
        }
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        self.write_torrents()?;
        self.commit(false)
    }

    fn progress(&mut self, crawler: &Crawler, _io: &IoStats) {
        if self.progress.is_none() && !self.progress_lines {
            return;
        }
        let elapsed = self.last_progress.0.elapsed();
        if elapsed < Duration::from_millis(500) {
            return;
        }
        let s = *crawler.stats();
        let p = self.last_progress.1;
        let rate = |a: u64, b: u64| (a - b) as f64 / elapsed.as_secs_f64();
        let torrents = self.torrents.as_ref().map_or(String::new(), |t| {
            let stats = t.stats();
            format!(
                "  torrents {} (fetching {}; failed: {})",
                stats.fetched,
                t.pending(),
                failures_text(stats)
            )
        });
        let message = format!(
            "nodes {} ({:.0}/s)  info-hashes {} ({:.0}/s)  packets out {} ({:.0}/s) in {} ({:.0}/s)  in flight {}  queued {}{torrents}",
            s.nodes_found,
            rate(s.nodes_found, p.nodes_found),
            s.infohashes_found,
            rate(s.infohashes_found, p.infohashes_found),
            s.queries_sent,
            rate(s.queries_sent, p.queries_sent),
            s.datagrams_in,
            rate(s.datagrams_in, p.datagrams_in),
            crawler.in_flight(),
            crawler.frontier_len(),
        );
        match &self.progress {
            Some(bar) => bar.set_message(message),
            None => eprintln!("{message}"),
        }
        self.last_progress = (std::time::Instant::now(), s);
    }
}

/// Runs `btdht crawl`.
pub(crate) fn run(args: CrawlArgs) -> Result<(), CliError> {
    let mut db = match &args.db {
        Some(location) => match location.open() {
            Ok(db) => Some(db),
            Err(e) => {
                return Err(CliError::usage(format!("database {location}: {e}")));
            }
        },
        None => None,
    };
    let socket = match bind_udp(args.bind) {
        Ok(s) => s,
        Err(e) => {
            return Err(bind_failed(&args.bind.to_string(), &e));
        }
    };
    let socket6 = match args.bind6.map(bind_udp).transpose() {
        Ok(s) => s,
        Err(e) => {
            let addr = args.bind6.map(|a| a.to_string()).unwrap_or_default();
            return Err(bind_failed(&addr, &e));
        }
    };
    // Bound first, so that a port in use fails before any name is resolved.
    let mut bootstrap = if args.bootstrap.is_empty() {
        super::commands::public_routers()
    } else {
        args.bootstrap.clone()
    };
    let mut skip = Vec::new();
    let mut sample_after = Vec::new();
    if let Some(db) = &mut db {
        let now = unix_now();
        match db.known_nodes(KNOWN_NODES).and_then(|known| {
            skip = db.fetched_infohashes()?;
            for (addr, due) in db.sample_deadlines(now, DEFERRED_SAMPLES)? {
                sample_after.push((addr, Duration::from_secs_f64((due - now).max(0.0))));
            }
            Ok(known)
        }) {
            Ok(known) => bootstrap.extend(known),
            Err(e) => return Err(CliError::failed(format!("database: {e}"))),
        }
    }
    if bootstrap.is_empty() {
        return Err(CliError::failed("no node to start from"));
    }
    if !args.allow_private {
        let filtered: Vec<String> = bootstrap
            .iter()
            .filter_map(|a| super::args::needs_allow_private(*a))
            .collect();
        for message in &filtered {
            eprintln!("btdht: bootstrap node {message}");
        }
        if filtered.len() == bootstrap.len() {
            return Err(CliError::failed(
                "crawl: no bootstrap node left to start from",
            ));
        }
    }
    let out: Box<dyn Write> = match &args.out {
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => {
                return Err(CliError::usage(format!(
                    "cannot create {}: {e}",
                    path.display()
                )));
            }
        },
        None if db.is_some() => Box::new(io::sink()),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let start_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let config = CrawlConfig {
        ids: args.ids as usize,
        rate: args.rate,
        per_ip_rate: args.per_ip_rate,
        sample_infohashes: !args.no_infohashes,
        get_peers: args.get_peers || args.metadata,
        allow_private: args.allow_private,
        sweep_rate: args.sweep_rate,
        shard: args.shard,
        ..CrawlConfig::default()
    };
    let options = CrawlOptions {
        config,
        seed,
        bootstrap,
        duration: args.duration.map(|s| Duration::from_secs_f64(s.max(0.0))),
        until_idle: args.until_idle,
        sample_after,
    };
    let crawl = match Crawl::with_sockets(Some(socket), socket6, options) {
        Ok(crawl) => crawl,
        Err(e) => return Err(CliError::failed(e)),
    };
    let stop = crawl.stop_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            return Err(CliError::failed(format!(
                "cannot handle signal {signal}: {e}"
            )));
        }
    }
    // indicatif draws only on a terminal: --progress elsewhere prints plain lines.
    let progress_lines = args.progress && !io::stderr().is_terminal();
    let progress = io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let torrents = if args.metadata {
        let config = FetcherConfig {
            connections: args.metadata_concurrency as usize,
            ..FetcherConfig::default()
        };
        match Torrents::new(config, METADATA_BACKLOG) {
            Ok(mut t) => {
                t.skip(skip);
                Some(t)
            }
            Err(e) => {
                return Err(CliError::failed(format!(
                    "cannot start the metadata fetchers: {e}"
                )));
            }
        }
    } else {
        None
    };
    let mut output = Output {
        out,
        start_unix,
        progress,
        progress_lines,
        last_progress: (std::time::Instant::now(), CrawlStats::default()),
        torrents,
        db,
    };
    let end = match crawl.run(&mut output) {
        Ok(end) => end,
        Err(e) => return Err(CliError::failed(format!("poll: {e}"))),
    };
    if let Some(bar) = output.progress.take() {
        bar.finish_and_clear();
    }
    let mut write_error = end.error;
    // A crawl that ended by itself waits for its metadata fetches; a stopped one does not.
    if write_error.is_none()
        && !stop.load(Ordering::Relaxed)
        && let Err(e) = output.drain_torrents(METADATA_DRAIN, &stop)
    {
        write_error = Some(e);
    }
    if let Err(e) = output.commit(true) {
        write_error.get_or_insert(e);
    }
    let elapsed = end.elapsed.as_secs_f64();
    let stats = *end.crawler.stats();
    let torrent_stats = output.torrents.as_ref().map(|t| t.stats().clone());
    let summary = summary_json(&stats, elapsed, &end.crawler, torrent_stats.as_ref());
    if write_error.is_none()
        && let Err(e) = writeln!(output.out, "{summary}").and_then(|_| output.out.flush())
    {
        write_error = Some(e);
    }
    eprintln!(
        "crawl: {:.1} s: {} nodes, {} info-hashes, {} queries ({:.3} per node found), {} replies, {} timeouts, {} errors, {} per-IP delays, {} send errors",
        elapsed,
        stats.nodes_found,
        stats.infohashes_found,
        stats.queries_sent,
        stats.queries_sent as f64 / stats.nodes_found.max(1) as f64,
        stats.replies,
        stats.timeouts,
        stats.errors,
        stats.per_ip_delayed,
        end.io.send_errors + end.io.send_queue_full
    );
    if let Some(t) = &torrent_stats {
        eprintln!(
            "metadata: {} torrents fetched, {} info-hashes without peers, {} whose peers all failed, {} dropped; failed fetches: {}",
            t.fetched,
            t.no_peers,
            t.exhausted,
            t.dropped,
            if t.failures.is_empty() {
                "none".to_string()
            } else {
                failures_text(t)
            }
        );
    }
    match write_error {
        // A closed pipe (e.g. `| head`) is a normal way to stop.
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("output: {e}")))
        }
        _ if stats.replies == 0 => Err(CliError::failed(found_nothing(&stats))),
        _ => Ok(()),
    }
}

/// Why a crawl that no node answered found nothing: every bootstrap node filtered (nothing
/// was sent), or the ones asked were silent or answered only errors.
fn found_nothing(stats: &CrawlStats) -> String {
    if stats.queries_sent == 0 && stats.filtered > 0 {
        format!(
            "crawl: found nothing: every bootstrap node was filtered ({} filtered: private \
             without --allow-private, or of a family without a socket); no query was sent",
            stats.filtered
        )
    } else {
        format!(
            "crawl: found nothing: no bootstrap node answered ({} queries sent, {} timeouts, \
             {} errors)",
            stats.queries_sent, stats.timeouts, stats.errors
        )
    }
}
