//! Fetching metadata: one fetch from one peer ([`fetch()`]), and the [`Fetcher`] that runs many.
//!
//! A fetch is one blocking TCP connection with a deadline per stage: the connect, the two
//! handshakes together, and then each metadata piece (the deadline moves on with every valid
//! piece, so a peer that trickles bytes or sends other messages forever times out). Requests are
//! pipelined a few pieces ahead. Messages that are not ours are skipped without being stored;
//! every length is bounded before it is read.
//!
//! The [`Fetcher`] is a fixed pool of worker threads, one connection each, fed from a bounded
//! job queue: the number of threads is the bound on concurrent connections. A peer address
//! whose fetches failed [`FetcherConfig::max_failures_per_peer`] times is not tried again:
//! its new jobs are refused, and its jobs already queued are dropped when a worker takes them
//! (a peer that delivers, like a seedbox holding many torrents, is never barred). Every outcome
//! comes as an [`Event`] on a bounded channel (the workers wait while it is full).

// Metadata fetches are blocking TCP clients with deadlines on the OS clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::info::{DEFAULT_MAX_FILES, Info};
use super::wire::{
    self, EXTENDED, EXTENSION_HANDSHAKE, ExtensionHandshake, HANDSHAKE_LEN, LOCAL_UT_METADATA,
    MetadataMessage, PeerHandshake,
};
use super::{Failure, Metadata, PIECE_SIZE, Stage};
use crate::InfoHash;

/// The longest extension message accepted: a metadata piece with its dictionary, or an
/// extension handshake.
pub const MAX_EXTENDED_MESSAGE: u32 = 64 * 1024;
/// The default cap on `metadata_size`.
pub const DEFAULT_MAX_METADATA_SIZE: usize = 10 * 1024 * 1024;

/// The settings of one fetch.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// Deadline of the TCP connect.
    pub connect_timeout: Duration,
    /// Deadline of the BitTorrent and extension handshakes together.
    pub handshake_timeout: Duration,
    /// Deadline of each piece, from the requests or the previous piece.
    pub piece_timeout: Duration,
    /// The largest `metadata_size` accepted.
    pub max_metadata_size: usize,
    /// The longest other message (bitfield, have, ...) skipped; longer ones fail the fetch.
    pub max_message: u32,
    /// How many piece requests are outstanding at once.
    pub window: usize,
    /// The most files kept in [`Info::files`].
    pub max_files: usize,
    /// Our peer id in the handshake.
    pub peer_id: [u8; 20],
}

impl Default for FetchConfig {
    /// 5 s to connect, 10 s for the handshakes and for each piece, 10 MiB of metadata at most,
    /// other messages up to 2 MiB, 16 requests in flight, and a random peer id.
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            piece_timeout: Duration::from_secs(10),
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
            max_message: 2 * 1024 * 1024,
            window: 16,
            max_files: DEFAULT_MAX_FILES,
            peer_id: random_peer_id(&mut rand::rng()),
        }
    }
}

/// A peer id with the client prefix `-BD0100-` and 12 random bytes.
pub fn random_peer_id<R: rand::Rng + ?Sized>(rng: &mut R) -> [u8; 20] {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-BD0100-");
    rng.fill(&mut id[8..]);
    id
}

/// A message read from the peer.
enum Message {
    /// A keep-alive or a message this module does not use (already skipped).
    Ignored,
    /// An extension message: its extended id and payload.
    Extended(u8, Vec<u8>),
}

/// A blocking connection whose reads and writes end at a deadline.
struct Conn {
    stream: TcpStream,
}

fn io_failure(e: &io::Error, stage: Stage) -> Option<Failure> {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => None,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Some(Failure::Closed(stage)),
        kind => Some(Failure::Io(stage, kind)),
    }
}

fn remaining(deadline: Instant, stage: Stage) -> Result<Duration, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Failure::Timeout(stage))
    } else {
        Ok(left)
    }
}

impl Conn {
    fn read_exact(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        stage: Stage,
    ) -> Result<(), Failure> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = remaining(deadline, stage)?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| Failure::Io(stage, e.kind()))?;
            match self.stream.read(buf.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => return Err(Failure::Closed(stage)),
                Ok(n) => filled += n,
                Err(e) => {
                    if let Some(failure) = io_failure(&e, stage) {
                        return Err(failure);
                    }
                }
            }
        }
        Ok(())
    }

    fn write_all(
        &mut self,
        mut bytes: &[u8],
        deadline: Instant,
        stage: Stage,
    ) -> Result<(), Failure> {
        while !bytes.is_empty() {
            let left = remaining(deadline, stage)?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| Failure::Io(stage, e.kind()))?;
            match self.stream.write(bytes) {
                Ok(0) => return Err(Failure::Closed(stage)),
                Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
                Err(e) => {
                    if let Some(failure) = io_failure(&e, stage) {
                        return Err(failure);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads one message; messages other than extension ones are skipped (at most
    /// `max_message` bytes), extension ones are bounded by [`MAX_EXTENDED_MESSAGE`].
    fn message(
        &mut self,
        deadline: Instant,
        stage: Stage,
        max_message: u32,
    ) -> Result<Message, Failure> {
        let mut prefix = [0u8; 4];
        self.read_exact(&mut prefix, deadline, stage)?;
        let len = u32::from_be_bytes(prefix);
        if len == 0 {
            return Ok(Message::Ignored);
        }
        let mut id = [0u8; 1];
        self.read_exact(&mut id, deadline, stage)?;
        if id[0] == EXTENDED {
            if len > MAX_EXTENDED_MESSAGE {
                return Err(Failure::MessageTooLong(len));
            }
            if len < 2 {
                return Err(Failure::Garbage);
            }
            let mut body = vec![0u8; len as usize - 1];
            self.read_exact(&mut body, deadline, stage)?;
            let ext_id = body.first().copied().unwrap_or_default();
            body.remove(0);
            return Ok(Message::Extended(ext_id, body));
        }
        if len > max_message {
            return Err(Failure::MessageTooLong(len));
        }
        let mut left = len as usize - 1;
        let mut scratch = [0u8; 4096];
        while left > 0 {
            let chunk = left.min(scratch.len());
            self.read_exact(&mut scratch[..chunk], deadline, stage)?;
            left -= chunk;
        }
        Ok(Message::Ignored)
    }
}

/// Whether `bytes` hash to `info_hash`: SHA-1 (v1 and hybrid torrents), or SHA-256 truncated to
/// 20 bytes (the info-hash of a v2 torrent on the wire, BEP 52).
pub fn hash_matches(info_hash: &InfoHash, bytes: &[u8]) -> bool {
    let want = info_hash.as_bytes();
    Sha1::digest(bytes).as_slice() == want || Sha256::digest(bytes).get(..20) == Some(&want[..])
}

/// Fetches the metadata of `info_hash` from the peer at `peer`: connect, handshakes, every
/// piece, the hash check and the parse. Blocks until it succeeds or fails, within the
/// configured deadlines.
pub fn fetch(
    info_hash: InfoHash,
    peer: SocketAddr,
    config: &FetchConfig,
) -> Result<Metadata, Failure> {
    let stream = TcpStream::connect_timeout(&peer, config.connect_timeout)
        .map_err(|e| io_failure(&e, Stage::Connect).unwrap_or(Failure::Timeout(Stage::Connect)))?;
    let mut conn = Conn { stream };

    // The BitTorrent handshake, then the extension handshakes.
    let deadline = Instant::now() + config.handshake_timeout;
    let stage = Stage::Handshake;
    conn.write_all(
        &wire::handshake(&info_hash, &config.peer_id),
        deadline,
        stage,
    )?;
    let mut theirs = [0u8; HANDSHAKE_LEN];
    conn.read_exact(&mut theirs, deadline, stage)?;
    let theirs = PeerHandshake::parse(&theirs)?;
    if theirs.info_hash != info_hash {
        return Err(Failure::WrongInfoHash);
    }
    if !theirs.supports_extensions() {
        return Err(Failure::NoExtensionProtocol);
    }
    conn.write_all(&wire::extension_handshake(), deadline, stage)?;
    let ext = loop {
        if let Message::Extended(EXTENSION_HANDSHAKE, payload) =
            conn.message(deadline, stage, config.max_message)?
        {
            break ExtensionHandshake::parse(&payload)?;
        }
    };
    let peer_ut_metadata = ext.ut_metadata.ok_or(Failure::NoMetadataExtension)?;
    let announced = ext.metadata_size.ok_or(Failure::NoMetadataSize)?;
    if announced <= 0 {
        return Err(Failure::BadMetadataSize(announced));
    }
    let size = usize::try_from(announced)
        .ok()
        .filter(|&s| s <= config.max_metadata_size)
        .ok_or(Failure::MetadataTooLarge(announced))?;

    // The pieces, a window of requests ahead. Each piece is stored as it comes, so the memory
    // held for a peer is what it actually sent.
    let stage = Stage::Pieces;
    let pieces = u32::try_from(size.div_ceil(PIECE_SIZE))
        .map_err(|_| Failure::MetadataTooLarge(announced))?;
    let mut chunks: Vec<Option<Vec<u8>>> = vec![None; pieces as usize];
    let window = u32::try_from(config.window.max(1)).unwrap_or(u32::MAX);
    let mut requested = 0u32;
    let mut done = 0u32;
    let mut deadline = Instant::now() + config.piece_timeout;
    while requested < pieces.min(window) {
        conn.write_all(&wire::request(peer_ut_metadata, requested), deadline, stage)?;
        requested += 1;
    }
    while done < pieces {
        let Message::Extended(LOCAL_UT_METADATA, payload) =
            conn.message(deadline, stage, config.max_message)?
        else {
            continue;
        };
        match MetadataMessage::parse(&payload)? {
            MetadataMessage::Data {
                piece,
                total_size,
                payload,
            } => {
                if let Some(total) = total_size.filter(|&t| t != announced) {
                    return Err(Failure::WrongTotalSize(total));
                }
                let index = u32::try_from(piece)
                    .ok()
                    .filter(|&i| i < requested)
                    .ok_or(Failure::UnexpectedPiece(piece))?;
                let slot = chunks
                    .get_mut(index as usize)
                    .filter(|slot| slot.is_none())
                    .ok_or(Failure::UnexpectedPiece(piece))?;
                let expected = PIECE_SIZE.min(size - index as usize * PIECE_SIZE);
                if payload.len() != expected {
                    return Err(Failure::WrongPieceSize {
                        piece: index,
                        len: payload.len(),
                    });
                }
                *slot = Some(payload.to_vec());
                done += 1;
                deadline = Instant::now() + config.piece_timeout;
                if requested < pieces {
                    conn.write_all(&wire::request(peer_ut_metadata, requested), deadline, stage)?;
                    requested += 1;
                }
            }
            MetadataMessage::Reject(piece) => return Err(Failure::Rejected(piece)),
            MetadataMessage::Request(_) | MetadataMessage::Other => {}
        }
    }
    drop(conn);

    let data: Vec<u8> = chunks.into_iter().flatten().flatten().collect();
    if data.len() != size || !hash_matches(&info_hash, &data) {
        return Err(Failure::HashMismatch);
    }
    let info = Info::parse(&data, config.max_files).map_err(Failure::BadInfo)?;
    Ok(Metadata {
        info_hash,
        info_bytes: data,
        info,
    })
}

/// The settings of a [`Fetcher`].
#[derive(Clone, Debug)]
pub struct FetcherConfig {
    /// The settings of each fetch.
    pub fetch: FetchConfig,
    /// Worker threads: the most connections open at once.
    pub connections: usize,
    /// Jobs waiting for a worker, at most.
    pub queue: usize,
    /// Failed fetches after which a peer address is not tried again.
    pub max_failures_per_peer: u32,
    /// Peer addresses whose failures are counted, at most; when full, the counts start over.
    pub max_tracked_peers: usize,
}

impl Default for FetcherConfig {
    /// 64 connections, 4,096 queued jobs, 4 failures per peer, 65,536 peers tracked.
    fn default() -> Self {
        FetcherConfig {
            fetch: FetchConfig::default(),
            connections: 64,
            queue: 4096,
            max_failures_per_peer: 4,
            max_tracked_peers: 65_536,
        }
    }
}

/// The outcome of one job of a [`Fetcher`].
#[derive(Debug)]
pub enum Event {
    /// The metadata was fetched and its hash checked.
    Fetched {
        /// The peer it came from.
        peer: SocketAddr,
        /// The metadata.
        metadata: Box<Metadata>,
    },
    /// The fetch from this peer failed.
    Failed {
        /// The info-hash asked for.
        info_hash: InfoHash,
        /// The peer asked.
        peer: SocketAddr,
        /// Why it failed.
        failure: Failure,
    },
}

impl Event {
    /// The info-hash of the job.
    pub fn info_hash(&self) -> InfoHash {
        match self {
            Event::Fetched { metadata, .. } => metadata.info_hash,
            Event::Failed { info_hash, .. } => *info_hash,
        }
    }

    /// The peer of the job.
    pub fn peer(&self) -> SocketAddr {
        match self {
            Event::Fetched { peer, .. } | Event::Failed { peer, .. } => *peer,
        }
    }
}

/// Why [`Fetcher::submit`] did not take a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The job queue is full.
    QueueFull,
    /// The peer's fetches failed as many times as allowed.
    PeerFailures,
    /// The workers have stopped.
    Stopped,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::QueueFull => "the job queue is full",
            Refused::PeerFailures => "the peer failed too many times",
            Refused::Stopped => "the fetcher has stopped",
        })
    }
}

/// Failed fetches per peer address, shared by a [`Fetcher`] and its workers.
#[derive(Debug)]
struct PeerFailures {
    counts: Mutex<HashMap<SocketAddr, u32>>,
    max_failures: u32,
    max_tracked: usize,
}

impl PeerFailures {
    /// True when `peer` failed as many times as allowed.
    fn barred(&self, peer: SocketAddr) -> bool {
        self.counts.lock().get(&peer).copied().unwrap_or(0) >= self.max_failures
    }

    /// Counts one failed fetch from `peer`; the counts start over when too many peers are
    /// tracked.
    fn failed(&self, peer: SocketAddr) {
        let mut counts = self.counts.lock();
        if !counts.contains_key(&peer) && counts.len() >= self.max_tracked {
            counts.clear();
        }
        *counts.entry(peer).or_insert(0) += 1;
    }
}

/// A pool of worker threads fetching metadata; see the [module documentation](self).
pub struct Fetcher {
    jobs: Option<Sender<(InfoHash, SocketAddr)>>,
    events: Receiver<Event>,
    failures: Arc<PeerFailures>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Fetcher {
    /// Starts `config.connections` worker threads (at least one).
    pub fn new(config: FetcherConfig) -> io::Result<Fetcher> {
        let (jobs, job_rx) =
            crossbeam_channel::bounded::<(InfoHash, SocketAddr)>(config.queue.max(1));
        let (event_tx, events) =
            crossbeam_channel::bounded(config.queue.max(1) + config.connections.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(PeerFailures {
            counts: Mutex::new(HashMap::new()),
            max_failures: config.max_failures_per_peer,
            max_tracked: config.max_tracked_peers.max(1),
        });
        let fetch_config = Arc::new(config.fetch);
        let mut workers = Vec::new();
        for n in 0..config.connections.max(1) {
            let job_rx = job_rx.clone();
            let event_tx: Sender<Event> = event_tx.clone();
            let stopped = stop.clone();
            let failures = failures.clone();
            let fetch_config = fetch_config.clone();
            let worker = std::thread::Builder::new()
                .name(format!("metadata-{n}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    for (info_hash, peer) in job_rx.iter() {
                        if stopped.load(Ordering::Relaxed) {
                            break;
                        }
                        // Jobs queued before the peer ran out of failures are not tried.
                        let outcome = if failures.barred(peer) {
                            Err(Failure::PeerFailedBefore)
                        } else {
                            fetch(info_hash, peer, &fetch_config).inspect_err(|_| {
                                failures.failed(peer);
                            })
                        };
                        let event = match outcome {
                            Ok(metadata) => Event::Fetched {
                                peer,
                                metadata: Box::new(metadata),
                            },
                            Err(failure) => Event::Failed {
                                info_hash,
                                peer,
                                failure,
                            },
                        };
                        if event_tx.send(event).is_err() {
                            break;
                        }
                    }
                });
            match worker {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(Fetcher {
            jobs: Some(jobs),
            events,
            failures,
            stop,
            workers,
        })
    }

    /// Queues a fetch of `info_hash` from `peer`; its outcome comes as one [`Event`].
    pub fn submit(&mut self, info_hash: InfoHash, peer: SocketAddr) -> Result<(), Refused> {
        if self.failures.barred(peer) {
            return Err(Refused::PeerFailures);
        }
        let jobs = self.jobs.as_ref().ok_or(Refused::Stopped)?;
        match jobs.try_send((info_hash, peer)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Refused::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(Refused::Stopped),
        }
    }

    /// The channel of outcomes, one per submitted job.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Stops taking jobs, drops the queued ones and waits for the workers: each finishes its
    /// current fetch (within that fetch's deadlines) first.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        // Workers waiting to deliver an event see the channel closed.
        self.events = crossbeam_channel::never();
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.join();
        }
    }
}

impl Drop for Fetcher {
    /// Stops the workers without waiting: each exits after its current fetch.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
    }
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("workers", &self.workers.len())
            .field("tracked_peers", &self.failures.counts.lock().len())
            .finish_non_exhaustive()
    }
}
