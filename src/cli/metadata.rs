//! `btdht metadata`: fetches a torrent's info dictionary from peers (BEP 9 over BEP 10) with the
//! [`Fetcher`], prints it, and can save it as a `.torrent` file.
//!
//! The peers are the `--peer` addresses, else those a DHT get_peers lookup finds. All are tried
//! at once (up to 64 connections); the first metadata whose hash matches wins. Each peer that
//! fails gets a line on stderr saying why. Exit status: 0 fetched, 1 not fetched, 2 bad
//! arguments.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use btdht::Dht;
use btdht::InfoHash;
use btdht::metadata::{Event, FetchConfig, Fetcher, FetcherConfig, Metadata};
use clap::Args;
use serde_json::json;

use super::args::{ClientArgs, parse_addr, parse_id};
use super::commands::{add_public_routers, start_failed};
use super::error::CliError;

/// The most peers connected to at once.
const MAX_CONNECTIONS: usize = 64;

/// Options of `btdht metadata`.
#[derive(Args, Debug)]
pub(crate) struct MetadataArgs {
    /// The info-hash (40 hex digits).
    #[arg(value_parser = parse_id)]
    pub info_hash: InfoHash,
    /// A peer to fetch from (repeatable). Default: the peers a DHT lookup finds.
    #[arg(long = "peer", value_name = "IP:PORT", value_parser = parse_addr)]
    pub peers: Vec<SocketAddr>,
    /// Write the metadata as a .torrent file here (its info-hash is the one asked for).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Options of the DHT lookup, output and timeout (the DHT lookup and then the fetch each
    /// get --timeout seconds).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `btdht metadata`.
pub(crate) fn run(args: MetadataArgs) -> Result<(), CliError> {
    let timeout = Duration::from_secs(args.client.timeout);
    let peers = if args.peers.is_empty() {
        peers_from_dht(args.info_hash, &args.client, timeout)?
    } else {
        args.peers.clone()
    };
    let mut seen = HashSet::new();
    let peers: Vec<SocketAddr> = peers.into_iter().filter(|p| seen.insert(*p)).collect();
    if peers.is_empty() {
        return Err(CliError::failed(format!(
            "metadata: no peers found for {}",
            args.info_hash
        )));
    }
    log::info!("fetching the metadata from {} peers", peers.len());

    let defaults = FetchConfig::default();
    let fetch = FetchConfig {
        connect_timeout: defaults.connect_timeout.min(timeout),
        handshake_timeout: defaults.handshake_timeout.min(timeout),
        piece_timeout: defaults.piece_timeout.min(timeout),
        ..defaults
    };
    let mut fetcher = match Fetcher::new(FetcherConfig {
        fetch,
        connections: peers.len().min(MAX_CONNECTIONS),
        queue: peers.len(),
        ..FetcherConfig::default()
    }) {
        Ok(fetcher) => fetcher,
        Err(e) => {
            return Err(CliError::failed(format!(
                "metadata: cannot start the fetcher: {e}"
            )));
        }
    };
    let mut pending: HashSet<SocketAddr> = HashSet::new();
    for &peer in &peers {
        match fetcher.submit(args.info_hash, peer) {
            Ok(()) => {
                pending.insert(peer);
            }
            Err(why) => eprintln!("btdht: {peer}: not tried: {why}"),
        }
    }
    let deadline = Instant::now() + timeout;
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(event) = fetcher.events().recv_timeout(left) else {
            break;
        };
        pending.remove(&event.peer());
        match event {
            Event::Fetched { peer, metadata } => {
                log::info!("fetched from {peer}");
                return report(&metadata, peer, &args);
            }
            Event::Failed { peer, failure, .. } => eprintln!("btdht: {peer}: {failure}"),
        }
    }
    for peer in pending {
        eprintln!("btdht: {peer}: no answer within {} s", args.client.timeout);
    }
    Err(CliError::failed(format!(
        "metadata: not fetched from any of {} peers",
        peers.len()
    )))
}

/// The peers of `info_hash` found by a get_peers lookup on a read-only client node.
fn peers_from_dht(
    info_hash: InfoHash,
    args: &ClientArgs,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, CliError> {
    let dht = Dht::builder()
        .bind(args.bind)
        .allow_private(args.allow_private)
        .read_only(true)
        .bootstrap(args.bootstrap.iter().copied())
        .start()
        .map_err(start_failed)?;
    // Once bound, so that an address it cannot bind fails before any name is resolved.
    if args.bootstrap.is_empty() {
        add_public_routers(&dht);
    }
    let result = dht
        .with_timeout(timeout)
        .get_peers(info_hash, false)
        .and_then(|lookup| lookup.outcome());
    if let Err(e) = dht.stop() {
        log::warn!("{e}");
    }
    match result {
        Ok(outcome) => {
            log::info!(
                "get_peers: {} peers from {} answers",
                outcome.peers.len(),
                outcome.responses
            );
            Ok(outcome.peers)
        }
        Err(e) => Err(CliError::failed(format!("get_peers: {e}"))),
    }
}

/// The files as (path, length): a single-file torrent's one path is its name; the others'
/// are under the torrent's name, without it.
fn files(metadata: &Metadata) -> Vec<(String, u64)> {
    let info = &metadata.info;
    info.files
        .iter()
        .map(|f| {
            let path = if f.path.is_empty() {
                info.name.clone()
            } else {
                f.path_string()
            };
            (path, f.length)
        })
        .collect()
}

fn save(path: &Path, metadata: &Metadata) -> Result<(), String> {
    std::fs::write(path, metadata.torrent_file())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Prints the metadata and saves it when asked.
fn report(metadata: &Metadata, peer: SocketAddr, args: &MetadataArgs) -> Result<(), CliError> {
    let info = &metadata.info;
    if let Some(path) = &args.save {
        save(path, metadata).map_err(|e| CliError::failed(format!("metadata: {e}")))?;
    }
    let files = files(metadata);
    let mut out = String::new();
    if args.client.json {
        let value = json!({
            "type": "torrent",
            "infohash": metadata.info_hash.to_hex(),
            "name": info.name,
            "size": info.total_size,
            "piece_length": info.piece_length,
            "files": files.iter().map(|(path, length)| json!({"path": path, "length": length})).collect::<Vec<_>>(),
            "file_count": info.file_count,
            "private": info.private,
            "version": info.version.as_str(),
            "peer": peer.to_string(),
            "metadata_size": metadata.info_bytes.len(),
        });
        let _ = writeln!(out, "{value}");
    } else {
        let _ = writeln!(out, "name          {}", info.name);
        let _ = writeln!(out, "infohash      {}", metadata.info_hash);
        let _ = writeln!(out, "size          {} bytes", info.total_size);
        let _ = writeln!(out, "piece length  {}", info.piece_length);
        let _ = writeln!(
            out,
            "private       {}",
            if info.private { "yes" } else { "no" }
        );
        let _ = writeln!(out, "version       {}", info.version.as_str());
        let _ = writeln!(out, "from          {peer}");
        let _ = writeln!(out, "files         {}", info.file_count);
        for (path, length) in &files {
            let _ = writeln!(out, "  {length:>14}  {path}");
        }
        if info.file_count > files.len() as u64 {
            let _ = writeln!(out, "  ... {} more", info.file_count - files.len() as u64);
        }
    }
    // A closed stdout (a pipe to `head`) is not an error of the fetch.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if let Some(path) = &args.save {
        log::info!("saved {}", path.display());
    }
    Ok(())
}
