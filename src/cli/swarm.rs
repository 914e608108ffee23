//! `btdht swarm`: many full DHT nodes in one process, on distinct loopback addresses.
//!
//! It runs a [`Swarm`] (see that module for how nodes join, announce and become ready) and
//! prints: progress on stderr, then the address to bootstrap from and `ready` on stdout once
//! the swarm is ready, after writing the ground truth (`--truth`). It runs until SIGINT or
//! SIGTERM, or `--duration` seconds after it is ready.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use btdht::Instant;
use btdht::runtime::IoStats;
use btdht::swarm::{Ready, Swarm, SwarmError, SwarmObserver, SwarmOptions};
use clap::Args;

use super::error::{CliError, bind_failed};

/// Options of `btdht swarm`.
#[derive(Args, Debug)]
pub(crate) struct SwarmArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub nodes: u32,
    /// The first node's IP; the others count up from it (skipping .0 and .255), inside
    /// 127.0.0.0/8.
    #[arg(long, default_value = "127.1.0.1")]
    pub base_ip: Ipv4Addr,
    /// The UDP port of every node.
    #[arg(long, default_value_t = 6881, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Random info-hashes to announce through the swarm (each by one member, round robin).
    #[arg(long, default_value_t = 0)]
    pub infohashes: u32,
    /// Seed of the node ids and info-hashes (the same seed gives the same swarm).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the ground truth (every node id and address, every info-hash) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Nodes joining per second. Each join costs a few hundred datagrams of lookups and
    /// refreshes; at 100/s a 5,000-node swarm stays within what one thread handles (about
    /// 40,000 datagrams/s here), faster joins overload it and queries time out.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub join_rate: u32,
    /// Seconds to let the network settle after the last join, before `ready`.
    #[arg(long, default_value_t = 20)]
    pub settle: u64,
    /// Exit this many seconds after `ready` (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Print the datagram rates on stderr every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub stats: Option<u64>,
}

/// The output of the swarm: the truth file, `ready` on stdout, rates on stderr.
struct Output {
    truth: Option<PathBuf>,
    stats_every: Option<Duration>,
    last_stats: (Instant, u64, u64),
}

impl SwarmObserver for Output {
    fn all_joined(&mut self, nodes: usize) {
        eprintln!("swarm: all {nodes} nodes joined, settling");
    }

    fn ready(&mut self, ready: &Ready) -> io::Result<()> {
        if let Some(path) = &self.truth {
            write_truth(path, ready).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
            })?;
        }
        eprintln!(
            "swarm: ready after {:.1} s: {} of {} info-hashes announced and acknowledged; {} datagrams in, {} out so far",
            ready.at.as_micros() as f64 / 1e6,
            ready.acknowledged,
            ready.infohashes.len(),
            ready.io.datagrams_in,
            ready.io.datagrams_out
        );
        println!("bootstrap {}", ready.bootstrap);
        println!("ready");
        let _ = io::stdout().flush();
        Ok(())
    }

    fn tick(&mut self, now: Instant, members: usize, io: &IoStats) {
        let Some(every) = self.stats_every else {
            return;
        };
        if now < self.last_stats.0 + every {
            return;
        }
        let secs = now
            .saturating_duration_since(self.last_stats.0)
            .as_secs_f64();
        eprintln!(
            "swarm: {:.0} s: {} nodes, {:.0} datagrams/s in, {:.0} out",
            now.as_micros() as f64 / 1e6,
            members,
            (io.datagrams_in - self.last_stats.1) as f64 / secs,
            (io.datagrams_out - self.last_stats.2) as f64 / secs,
        );
        self.last_stats = (now, io.datagrams_in, io.datagrams_out);
    }
}

fn write_truth(path: &PathBuf, ready: &Ready) -> io::Result<()> {
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    serde_json::to_writer(&mut file, &ready.truth())?;
    file.write_all(b"\n")?;
    file.flush()
}

/// Runs `btdht swarm`.
pub(crate) fn run(args: SwarmArgs) -> Result<(), CliError> {
    let options = SwarmOptions {
        nodes: args.nodes,
        base_ip: args.base_ip,
        port: args.port,
        infohashes: args.infohashes,
        seed: args.seed,
        join_rate: args.join_rate,
        settle: Duration::from_secs(args.settle),
        duration: args.duration.map(Duration::from_secs),
    };
    let swarm = match Swarm::bind(options) {
        Ok(swarm) => swarm,
        Err(SwarmError::OutOfRange) => {
            return Err(CliError::usage(format!(
                "{} nodes from {} leave 127.0.0.0/8",
                args.nodes, args.base_ip
            )));
        }
        Err(SwarmError::Bind { addr, source })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            return Err(bind_failed(&addr.to_string(), &source));
        }
        Err(SwarmError::Bind { addr, source }) => {
            return Err(CliError::usage(format!(
                "cannot bind {addr}: {source} (a low `ulimit -n`? each node needs a socket)"
            )));
        }
        Err(SwarmError::Io(e)) => return Err(CliError::failed(e)),
    };
    let stop = swarm.stop_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::failed(format!("cannot handle signal {signal}: {e}")))?;
    }
    eprintln!(
        "swarm: {} nodes from {}:{}, joining at {}/s",
        args.nodes, args.base_ip, args.port, args.join_rate
    );
    let mut output = Output {
        truth: args.truth.clone(),
        stats_every: args.stats.map(Duration::from_secs),
        last_stats: (Instant::ZERO, 0, 0),
    };
    let end = swarm
        .run(&mut output)
        .map_err(|e| CliError::failed(format!("poll: {e}")))?;
    if let Some(e) = end.error {
        return Err(CliError::usage(e));
    }
    eprintln!(
        "swarm: stopped: {} nodes, mean table size {:.1}, {} datagrams in, {} out, {} send errors, {} handled by nodes",
        end.members,
        end.mean_table,
        end.io.datagrams_in,
        end.io.datagrams_out,
        end.io.send_errors + end.io.send_queue_full,
        end.handled
    );
    Ok(())
}
