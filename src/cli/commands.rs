//! The subcommands: `node` runs until a signal; the others run a short-lived client node,
//! print their results; each returns what went wrong as a [`CliError`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use btdht::{DEFAULT_BOOTSTRAP_NODES, Dht, DhtStats, Error, LookupOutcome, NodeId};
use serde_json::json;

use super::args::{ClientArgs, Command, NodeArgs};
use super::error::{CliError, bind_failed};

/// Runs a subcommand.
pub(crate) fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Node(args) => node(args),
        Command::Ping { addr, client } => ping(addr, &client.into()),
        Command::FindNode { target, client } => find_node(target, &client),
        Command::GetPeers {
            info_hash,
            noseed,
            client,
        } => get_peers(info_hash, noseed, &client),
        Command::Announce {
            info_hash,
            port,
            implied_port,
            seed,
            client,
        } => announce(
            info_hash,
            if implied_port { None } else { port },
            seed,
            &client,
        ),
        Command::Sample {
            addr,
            target,
            client,
        } => sample(addr, target, &client.into()),
        Command::Hathor(args) => super::hathor::run(args),
        Command::Bootstrap(args) => super::bootstrap::run(args),
        Command::Bench(args) => super::bench::run(args),
        Command::UdpEcho(args) => super::bench::echo(args),
        Command::Swarm(args) => super::swarm::run(args),
        Command::Crawl(args) => super::crawl::run(args),
        Command::Metadata(args) => super::metadata::run(args),
        Command::Keygen(args) => super::items::keygen(args),
        Command::Put(args) => super::items::put(args),
        Command::Get(args) => super::items::get(args),
        Command::Db(args) => super::db::run(args),
        Command::Completions { shell } => {
            let mut command = <super::args::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "btdht", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let command = <super::args::Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .map_err(|e| CliError::failed(format!("man: {e}")))
        }
    }
}

/// The addresses of [`DEFAULT_BOOTSTRAP_NODES`], resolved now (only when no other way in is
/// given).
pub(crate) fn public_routers() -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in DEFAULT_BOOTSTRAP_NODES {
        log::debug!("resolving the router {name}");
        match name.to_socket_addrs() {
            Ok(addrs) => out.extend(addrs.filter(|a| a.is_ipv4()).take(1)),
            Err(e) => log::warn!("cannot resolve {name}: {e}"),
        }
    }
    out
}

fn print_json(value: serde_json::Value) {
    println!("{value}");
}

/// Resolves the public routers and hands them to the running `dht` (once it is bound, so that
/// a port in use fails before any name is resolved).
pub(crate) fn add_public_routers(dht: &Dht) {
    let routers = public_routers();
    if routers.is_empty() {
        return;
    }
    if let Err(e) = dht.add_routers(&routers) {
        log::warn!("routers: {e}");
    }
}

/// Starts a read-only client node (BEP 43: it answers nothing and stays out of the tables).
pub(crate) fn client(args: &ClientArgs, needs_bootstrap: bool) -> Result<Dht, CliError> {
    let mut builder = Dht::builder()
        .bind(args.bind)
        .allow_private(args.allow_private)
        .read_only(true)
        .request_timeout(timeout(args));
    let needs_routers = needs_bootstrap && args.bootstrap.is_empty();
    if needs_bootstrap && !needs_routers {
        let nodes = args.bootstrap.clone();
        if !args.allow_private {
            let mut filtered: Vec<String> = nodes
                .iter()
                .filter_map(|a| super::args::needs_allow_private(*a))
                .collect();
            if filtered.len() == nodes.len() {
                // Every node is filtered: the last one's message is the error.
                let last = filtered.pop().unwrap_or_default();
                for message in &filtered {
                    eprintln!("btdht: bootstrap node {message}");
                }
                return Err(CliError::failed(format!("bootstrap node {last}")));
            }
            for message in &filtered {
                eprintln!("btdht: bootstrap node {message}");
            }
        }
        builder = builder.bootstrap(nodes);
    }
    let dht = builder.start().map_err(start_failed)?;
    if needs_routers {
        add_public_routers(&dht);
    }
    Ok(dht)
}

/// Why a node did not start: a port in use or a state file another node keeps exits 1, an
/// address that cannot be bound here exits 2.
pub(crate) fn start_failed(e: Error) -> CliError {
    match e {
        Error::Bind { addr, source } => bind_failed(&addr.to_string(), &source),
        e @ Error::StateInUse { .. } => CliError::failed(format!(
            "{e}: give another --state FILE or --no-state; nothing was started"
        )),
        e => CliError::failed(e),
    }
}

fn timeout(args: &ClientArgs) -> Duration {
    Duration::from_secs(args.timeout)
}

/// Runs `query` (one query to one node) again each time it times out, each time with the
/// time left of `--timeout`, so that the deadline is the one the user gave and not the core's
/// per-query timeout.
fn until_deadline<T>(
    dht: &Dht,
    args: &ClientArgs,
    query: impl Fn(&Dht) -> Result<T, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout(args);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = query(&dht.with_timeout(left));
        let timed_out = matches!(
            result,
            Err(Error::Timeout | Error::Query(btdht::node::QueryError::Timeout))
        );
        if !timed_out || Instant::now() + Duration::from_millis(50) >= deadline {
            return result;
        }
    }
}

/// Runs `lookup` again while it ends with no answer and `--timeout` has time left (a
/// bootstrap node that is slow to answer, or datagrams lost), each time with the time left.
fn lookup_until_deadline(
    dht: &Dht,
    args: &ClientArgs,
    lookup: impl Fn(&Dht) -> Result<LookupOutcome, Error>,
) -> Result<LookupOutcome, Error> {
    let deadline = Instant::now() + timeout(args);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = lookup(&dht.with_timeout(left));
        let empty = matches!(&result, Ok(outcome) if outcome.responses == 0);
        if !empty || Instant::now() + Duration::from_millis(50) >= deadline {
            return result;
        }
        // Not a busy loop when every query fails at once (filtered, unreachable).
        std::thread::sleep(Duration::from_millis(200).min(left));
    }
}

/// Stops the client node and returns `result`.
pub(crate) fn finish(dht: Dht, result: Result<(), CliError>) -> Result<(), CliError> {
    if let Err(e) = dht.stop() {
        log::warn!("{e}");
    }
    result
}

/// Exit 1 if `addr` is ignored without `--allow-private`, saying so.
fn check_target(addr: SocketAddr, args: &ClientArgs) -> Result<(), CliError> {
    match super::args::needs_allow_private(addr) {
        Some(message) if !args.allow_private => Err(CliError::failed(message)),
        _ => Ok(()),
    }
}

fn ping(addr: SocketAddr, args: &ClientArgs) -> Result<(), CliError> {
    check_target(addr, args)?;
    let dht = client(args, false)?;
    let started = Instant::now();
    let result = match until_deadline(&dht, args, |dht| dht.ping(addr)) {
        Ok(id) => {
            let rtt = started.elapsed().as_secs_f64() * 1000.0;
            if args.json {
                print_json(
                    json!({"type": "ping", "addr": addr.to_string(), "id": id.to_hex(), "rtt_ms": rtt}),
                );
            } else {
                println!("{addr} answered: id {id} in {rtt:.1} ms");
            }
            Ok(())
        }
        Err(e) => Err(CliError::failed(format!("{addr}: {e}"))),
    };
    finish(dht, result)
}

/// Why a lookup found nothing (an error, or no node answered); `None` if it found
/// something. A lookup cut short by the timeout is noted.
fn lookup_failed(
    what: &str,
    result: &Result<LookupOutcome, Error>,
    args: &ClientArgs,
) -> Option<CliError> {
    match result {
        Err(e) => Some(CliError::failed(format!("{what}: {e}"))),
        Ok(outcome) if outcome.responses == 0 => {
            Some(CliError::failed(format!("{what}: no node answered")))
        }
        Ok(outcome) => {
            if outcome.partial {
                eprintln!(
                    "btdht: {what}: timed out after {} s; results so far",
                    args.timeout
                );
            }
            None
        }
    }
}

fn print_nodes(outcome: &LookupOutcome, json: bool) {
    for (node, _) in &outcome.closest {
        let distance = node.id.distance(&outcome.target).leading_zeros();
        if json {
            print_json(json!({
                "type": "node",
                "id": node.id.to_hex(),
                "addr": node.addr.to_string(),
                "common_bits": distance,
            }));
        } else {
            println!(
                "node {} {} ({} bits in common)",
                node.id, node.addr, distance
            );
        }
    }
}

fn summary(outcome: &LookupOutcome) {
    log::info!(
        "{} queries, {} answers, {} failures, {} rounds in {:.2} s",
        outcome.queries,
        outcome.responses,
        outcome.failures,
        outcome.rounds,
        outcome.duration.as_secs_f64()
    );
}

fn find_node(target: NodeId, args: &ClientArgs) -> Result<(), CliError> {
    let dht = client(args, true)?;
    let result = lookup_until_deadline(&dht, args, |dht| dht.find_node(target));
    if let Some(e) = lookup_failed("find_node", &result, args) {
        return finish(dht, Err(e));
    }
    if let Ok(outcome) = result {
        summary(&outcome);
        print_nodes(&outcome, args.json);
    }
    finish(dht, Ok(()))
}

fn get_peers(info_hash: NodeId, noseed: bool, args: &ClientArgs) -> Result<(), CliError> {
    let dht = client(args, true)?;
    let mut lookup = match dht.get_peers(info_hash, noseed) {
        Ok(lookup) => lookup,
        Err(e) => return finish(dht, Err(CliError::failed(format!("get_peers: {e}")))),
    };
    // Each peer is printed as soon as a node gives it.
    let mut printed = 0usize;
    for peer in &mut lookup {
        printed += 1;
        if args.json {
            print_json(json!({"type": "peer", "addr": peer.to_string()}));
        } else {
            println!("peer {peer}");
        }
    }
    let result = lookup.outcome();
    if let Some(e) = lookup_failed("get_peers", &result, args) {
        if printed == 0 {
            return finish(dht, Err(e));
        }
        // Peers were found and printed: the failure is only noted.
        eprintln!("btdht: {e}");
        return finish(dht, Ok(()));
    }
    if let Ok(outcome) = result {
        summary(&outcome);
        if outcome.peers.is_empty() && !args.json {
            println!("no peers found");
        }
        print_nodes(&outcome, args.json);
    }
    finish(dht, Ok(()))
}

fn announce(
    info_hash: NodeId,
    port: Option<u16>,
    seed: bool,
    args: &ClientArgs,
) -> Result<(), CliError> {
    let dht = client(args, true)?;
    let result = match dht.announce(info_hash, port, seed) {
        Ok(result) if result.acknowledged > 0 => {
            if args.json {
                print_json(json!({
                    "type": "announce",
                    "infohash": info_hash.to_hex(),
                    "port": port,
                    "implied_port": port.is_none(),
                    "seed": seed,
                    "sent": result.sent,
                    "acknowledged": result.acknowledged,
                    "peers": result.outcome.peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "announced {info_hash} to {} nodes ({} acknowledged)",
                    result.sent, result.acknowledged
                );
            }
            Ok(())
        }
        Ok(result) => Err(CliError::failed(format!(
            "announce: no node acknowledged ({} answered the lookup, {} announces sent)",
            result.outcome.responses, result.sent
        ))),
        Err(e) => Err(CliError::failed(format!("announce: {e}"))),
    };
    finish(dht, result)
}

fn sample(addr: SocketAddr, target: Option<NodeId>, args: &ClientArgs) -> Result<(), CliError> {
    check_target(addr, args)?;
    let dht = client(args, false)?;
    let target = target.unwrap_or_else(|| NodeId::random(&mut rand::rng()));
    let result = match until_deadline(&dht, args, |dht| dht.sample_infohashes(addr, target)) {
        Ok(reply) => {
            if args.json {
                print_json(json!({
                    "type": "sample",
                    "addr": addr.to_string(),
                    "id": reply.id.to_hex(),
                    "num": reply.num,
                    "interval_s": reply.interval,
                    "samples": reply.samples.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
                    "nodes": reply.nodes.iter().map(|n| json!({"id": n.id.to_hex(), "addr": n.addr.to_string()})).collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "{addr} (id {}) stores {} info-hashes; ask again in {} s",
                    reply.id,
                    reply.num.map_or("?".into(), |n| n.to_string()),
                    reply.interval.map_or("?".into(), |n| n.to_string())
                );
                for hash in &reply.samples {
                    println!("infohash {hash}");
                }
            }
            Ok(())
        }
        Err(e) => Err(CliError::failed(format!("{addr}: {e}"))),
    };
    finish(dht, result)
}

/// First wait before checking that the node joined, and the first retry interval.
const REJOIN_FIRST: Duration = Duration::from_secs(5);
/// Longest wait between two bootstrap retries.
const REJOIN_MAX: Duration = Duration::from_secs(300);

/// The bootstrap retries of an isolated node: while its routing table is empty it joins again
/// through its bootstrap nodes, waiting twice as long each time (5 s up to 5 minutes).
struct Rejoin {
    /// When to check the table next.
    next: Instant,
    /// The wait after the last retry.
    backoff: Duration,
    /// Retries since the table was last non-empty.
    retries: u32,
}

impl Rejoin {
    fn new(now: Instant) -> Self {
        Rejoin {
            next: now + REJOIN_FIRST,
            backoff: REJOIN_FIRST,
            retries: 0,
        }
    }

    /// The table has nodes: check again later, and start over if it empties.
    fn joined(&mut self, now: Instant) {
        self.retries = 0;
        self.backoff = REJOIN_FIRST;
        self.next = now + REJOIN_FIRST;
    }

    /// The table was empty and the node joins again now.
    fn retried(&mut self, now: Instant) {
        if self.retries > 0 {
            self.backoff = (self.backoff * 2).min(REJOIN_MAX);
        }
        self.retries += 1;
        self.next = now + self.backoff;
    }

    fn isolated(&self) -> bool {
        self.retries > 0
    }
}

fn print_stats(stats: &DhtStats, rejoin: &Rejoin, now: Instant, json: bool) {
    let s = &stats.node;
    let isolated = rejoin.isolated() && stats.nodes_ipv4 + stats.nodes_ipv6 == 0;
    let retry_in = rejoin.next.saturating_duration_since(now).as_secs();
    if json {
        print_json(json!({
            "type": "stats",
            "nodes_ipv4": stats.nodes_ipv4,
            "nodes_ipv6": stats.nodes_ipv6,
            "infohashes": stats.info_hashes,
            "peers": stats.peers,
            "datagrams_in": s.datagrams_in,
            "datagrams_out": s.datagrams_out,
            "queries_in": s.queries_in.iter().sum::<u64>(),
            "responses_in": s.responses_in,
            "timeouts": s.timeouts,
            "rejected": s.rejected_total(),
            "rate_limited": s.rate_limited,
            "announces_stored": s.announces_stored,
            "isolated": isolated,
            "bootstrap_retries": rejoin.retries,
        }));
    } else {
        let isolation = if isolated {
            format!(
                "; isolated: bootstrap retry {}, next in {retry_in} s",
                rejoin.retries
            )
        } else {
            String::new()
        };
        println!(
            "nodes {}+{} (v4+v6), {} info-hashes, {} peers; in {} out {} datagrams, {} queries in, {} timeouts, {} rejected, {} rate-limited{isolation}",
            stats.nodes_ipv4,
            stats.nodes_ipv6,
            stats.info_hashes,
            stats.peers,
            s.datagrams_in,
            s.datagrams_out,
            s.queries_in.iter().sum::<u64>(),
            s.timeouts,
            s.rejected_total(),
            s.rate_limited
        );
    }
}

/// Resolves the public routers and hands them to the running `dht`, which joins through
/// them now. A node restarted from saved nodes gets them too, so that it can recover when
/// none of those answers. Called once the node is bound, so that a port in use fails before
/// any name is resolved; when none resolves, the rejoin loop tries again.
fn join_public_routers(dht: &Dht, has_saved_nodes: bool) {
    if has_saved_nodes {
        log::info!("joining through the saved nodes and the public routers");
    }
    add_public_routers(dht);
}

fn node(args: NodeArgs) -> Result<(), CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::failed(format!("cannot handle signal {signal}: {e}")))?;
    }
    let mut builder = Dht::builder()
        .bind(args.bind)
        .allow_private(args.allow_private)
        .read_only(args.read_only);
    match args.rate_limit {
        Some(super::bootstrap::RateSpec::Off) => {
            builder = builder
                .rate_limit_per_ip(None)
                .rate_limit_global(None)
                .reply_bytes_per_second(None)
        }
        Some(super::bootstrap::RateSpec::PerIp(limit)) => {
            builder = builder.rate_limit_per_ip(Some(limit))
        }
        None => {}
    }
    if let Some(addr) = args.bind6 {
        builder = builder.bind6(addr);
    }
    if let Some(id) = args.id {
        builder = builder.node_id(id);
    }
    if let Some(ip) = args.external_ip {
        builder = builder.external_ip(ip);
    }
    let state = super::state::resolve(args.state.as_deref(), args.no_state)?;
    let has_saved_nodes = state
        .as_deref()
        .is_some_and(|p| matches!(btdht::driver::load(p), Ok(Some(s)) if !s.nodes.is_empty()));
    if let Some(path) = &state {
        log::info!("state file {}", path.display());
        builder = builder.state_file(path);
    }
    // Hidden, for the crash-safety test: save every N milliseconds.
    if let Some(ms) = std::env::var("BTDHT_SAVE_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        builder = builder.save_interval(std::time::Duration::from_millis(ms));
    }
    if !args.bootstrap.is_empty() {
        builder = builder.bootstrap(args.bootstrap.clone());
    }
    let dht = builder.start().map_err(start_failed)?;
    // With -v the node's own log line says it already.
    if !log::log_enabled!(target: "btdht", log::Level::Info) {
        eprintln!("btdht: node {} listening on {}", dht.id(), dht.local_addr());
    }
    if let Some(addr) = dht.local_addr6() {
        eprintln!("btdht: also listening on {addr}");
    }
    if args.bootstrap.is_empty() {
        join_public_routers(&dht, has_saved_nodes);
    }
    let period = args.stats.map(Duration::from_secs);
    let mut next_stats = period.map(|p| Instant::now() + p);
    let mut rejoin = Rejoin::new(Instant::now());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now >= rejoin.next {
            match dht.with_timeout(Duration::from_secs(2)).stats() {
                Ok(stats) if stats.nodes_ipv4 + stats.nodes_ipv6 > 0 => rejoin.joined(now),
                Ok(_) => {
                    // Resolved again on each retry: a router's address may have changed. The
                    // routers stay routers; the node asks them and those it knew already.
                    let routers = args.bootstrap.is_empty().then(public_routers);
                    rejoin.retried(now);
                    log::warn!(
                        "no node in the routing table: bootstrap retry {} through {} nodes, next in {} s",
                        rejoin.retries,
                        routers.as_ref().unwrap_or(&args.bootstrap).len(),
                        rejoin.backoff.as_secs()
                    );
                    let joined = match &routers {
                        Some(routers) => dht.add_routers(routers),
                        None => dht.bootstrap(&args.bootstrap),
                    };
                    if let Err(e) = joined {
                        log::warn!("bootstrap: {e}");
                    }
                }
                Err(e) => log::warn!("stats: {e}"),
            }
        }
        if let (Some(at), Some(period)) = (next_stats, period)
            && now >= at
        {
            next_stats = Some(at + period);
            match dht.with_timeout(Duration::from_secs(2)).stats() {
                Ok(stats) => print_stats(&stats, &rejoin, now, args.json),
                Err(e) => log::warn!("stats: {e}"),
            }
        }
    }
    eprintln!("btdht: stopping");
    dht.stop().map_err(CliError::failed)
}
