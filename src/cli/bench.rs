//! `btdht bench`: a loopback load generator for DHT servers, and `btdht udp-echo`, the raw UDP
//! echo server that is the physical-limit baseline (batched like the servers, or with
//! `--per-datagram` one system call per datagram).
//!
//! The generator runs on its own thread with many source sockets (`127.1.x.y`, or `[::1]`
//! ports for an IPv6 target), keeps `--window` queries in flight, writes and reads them in
//! batches of [`BATCH`] per system call (`sendmmsg` / `recvmmsg`, so that it costs less per
//! query than the servers it loads), and prints one JSON object:
//! answered per second, loss, latency percentiles and the mean size of the answers (so that
//! `udp-echo --pad` can echo datagrams of the same size). Queries carry BEP 43 `ro: 1`, so the
//! servers answer without trying to add (and ping) the generator's sockets. It is bounded in
//! time and packets, and it refuses any target outside 127.0.0.0/8 and ::1 (exit 2).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use btdht::NodeId;
use btdht::krpc::{Message, QueryKind, Want};
use btdht::peers::AddressFamily;
use clap::{Args, ValueEnum};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use serde_json::json;

use btdht::runtime::udp::{BATCH, SendError, UdpBatch};

use super::args::{parse_addr, parse_bind, parse_id};
use super::error::CliError;

/// Which queries the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum QueryMix {
    /// `ping` only.
    Ping,
    /// `find_node` for random targets.
    FindNode,
    /// `get_peers` for random info-hashes.
    GetPeers,
    /// ping, find_node and get_peers in turn.
    Mix,
}

/// Options of `btdht bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// The server to load (must be on 127.0.0.0/8 or ::1).
    #[arg(value_parser = parse_addr)]
    pub target: SocketAddr,
    /// The queries to send.
    #[arg(long, value_enum, default_value_t = QueryMix::Ping)]
    pub query: QueryMix,
    /// Seconds of measurement (after the warm-up).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Seconds of warm-up, not counted.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup: u64,
    /// Queries in flight.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub window: u32,
    /// Source sockets (each on its own 127.1.x.y address for an IPv4 target).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=16_384))]
    pub sources: u32,
    /// A query unanswered after this many milliseconds is lost.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub timeout_ms: u64,
    /// Stop after sending this many queries.
    #[arg(long, default_value_t = 200_000_000)]
    pub max_packets: u64,
    /// Ask `get_peers` for this info-hash (40 hex digits) in every query instead of a random
    /// one each time (to load a server that stores values for it).
    #[arg(long, value_parser = parse_id)]
    pub info_hash: Option<NodeId>,
    /// Send each batch with sendmmsg even where UDP segmentation offload (one UDP_SEGMENT
    /// send per batch, cheaper for the generator) is available.
    #[arg(long)]
    pub no_offload: bool,
}

/// Options of the hidden `btdht udp-echo`.
#[derive(Args, Debug)]
pub(crate) struct EchoArgs {
    /// Loopback address to bind.
    #[arg(long, value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// Seconds to run.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// One blocking `recv_from` and `send_to` per datagram instead of the batched system
    /// calls the servers use (to measure what batching is worth).
    #[arg(long)]
    pub per_datagram: bool,
    /// Pad each echoed datagram with zero bytes to this size (if shorter), so that the echo
    /// moves as many bytes through the kernel as the server it is compared with.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1400))]
    pub pad: u16,
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Runs the raw echo server: receive a datagram, send it back, nothing else.
pub(crate) fn echo(args: EchoArgs) -> Result<(), CliError> {
    if !is_loopback(args.bind.ip()) {
        return Err(CliError::usage("udp-echo binds only loopback addresses"));
    }
    let socket = std::net::UdpSocket::bind(args.bind)
        .map_err(|e| CliError::usage(format!("cannot bind {}: {e}", args.bind)))?;
    eprintln!("btdht: udp-echo listening on {}", args.bind);
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut echoed: u64 = 0;
    if args.per_datagram {
        let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < end {
            for _ in 0..4096 {
                match socket.recv_from(&mut buf) {
                    Ok((got, from)) => {
                        let len = got.max(usize::from(args.pad));
                        buf[got..len].fill(0);
                        if socket.send_to(&buf[..len], from).is_ok() {
                            echoed += 1;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    } else {
        // The same batched system calls as the servers: wait in mio's poll, then read and
        // write a batch per call.
        echoed = echo_batched(socket, end, usize::from(args.pad))
            .map_err(|e| CliError::failed(format!("udp-echo: {e}")))?;
    }
    eprintln!("btdht: udp-echo echoed {echoed} datagrams");
    Ok(())
}

/// The batched echo loop, each datagram padded with zeros to `pad` bytes: returns how many
/// datagrams it echoed before `end`.
fn echo_batched(socket: std::net::UdpSocket, end: Instant, pad: usize) -> io::Result<u64> {
    let family = AddressFamily::of(socket.local_addr()?.ip());
    socket.set_nonblocking(true)?;
    let mut socket = UdpSocket::from_std(socket);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut socket, Token(0), Interest::READABLE)?;
    let mut events = Events::with_capacity(4);
    let mut batch = UdpBatch::new();
    let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(BATCH);
    let mut echoed = 0u64;
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        loop {
            let mut used = 0;
            let count = batch.recv(&socket, family, |from, bytes| {
                if out.len() <= used {
                    out.push((from, Vec::with_capacity(2048)));
                }
                let (to, buf) = &mut out[used];
                *to = from;
                buf.clear();
                buf.extend_from_slice(bytes);
                if buf.len() < pad {
                    buf.resize(pad, 0);
                }
                used += 1;
            });
            let count = match count {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            echoed += batch.send(&socket, &out[..used]).sent as u64;
            if count < BATCH {
                break;
            }
        }
    }
    Ok(echoed)
}

/// A query template: the encoded bytes and where its transaction id and target sit.
struct Template {
    bytes: Vec<u8>,
    t_at: usize,
    target_at: Option<usize>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The template of `kind`; a `get_peers` asks for `info_hash` if given, else for a random
/// info-hash each time.
fn template(kind: QueryMix, info_hash: Option<NodeId>) -> Template {
    let id = NodeId([0x5a; 20]);
    let marker = NodeId([0xa5; 20]);
    let query = match kind {
        QueryMix::FindNode => QueryKind::FindNode {
            target: marker,
            want: Want::UNSPECIFIED,
        },
        QueryMix::GetPeers => QueryKind::GetPeers {
            info_hash: info_hash.unwrap_or(marker),
            want: Want::UNSPECIFIED,
            noseed: false,
            scrape: false,
        },
        _ => QueryKind::Ping,
    };
    let mut message = Message::query(b"\xee\xee\xee\xee".to_vec(), id, query);
    message.read_only = true;
    let bytes = message.encode();
    let t_at = find(&bytes, b"1:t4:\xee\xee\xee\xee").map_or(0, |p| p + 5);
    let target_at = find(&bytes, &marker.0);
    Template {
        bytes,
        t_at,
        target_at,
    }
}

/// The transaction id of a reply: the last `1:t4:` (top-level keys come after `r`).
fn reply_t(bytes: &[u8]) -> Option<u32> {
    let at = bytes.windows(5).rposition(|w| w == b"1:t4:")? + 5;
    let t = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
}

/// One slot of the in-flight ring, indexed by `seq & RING_MASK`.
#[derive(Clone, Copy, Default)]
struct Slot {
    seq: u32,
    sent_us: u64,
    live: bool,
}

const RING: usize = 1 << 20;
const RING_MASK: u32 = (RING - 1) as u32;
const MAX_LATENCIES: usize = 50_000_000;

fn source_addr(target: SocketAddr, i: u32) -> SocketAddr {
    if target.is_ipv4() {
        let ip = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
        SocketAddr::from((ip, 0))
    } else {
        "[::1]:0".parse().expect("valid address")
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `btdht bench`.
pub(crate) fn run(args: BenchArgs) -> Result<(), CliError> {
    if !is_loopback(args.target.ip()) {
        return Err(CliError::usage(format!(
            "bench refuses {}: only 127.0.0.0/8 and ::1 targets are allowed",
            args.target
        )));
    }
    let report = generate(&args).map_err(|e| CliError::failed(format!("bench: {e}")))?;
    println!("{report}");
    explain(&report, args.target)
}

/// Loss above this share of the queries is explained on stderr.
const NOTABLE_LOSS: f64 = 0.01;

/// Says on stderr what the numbers of a bench `report` mean when they are not a clean run:
/// KRPC error replies, or queries lost (a server's rate limit drops them); no answer at all
/// is an error.
fn explain(report: &serde_json::Value, target: SocketAddr) -> Result<(), CliError> {
    let count = |key: &str| report[key].as_u64().unwrap_or(0);
    let (sent, answered, errors) = (count("sent"), count("answered"), count("errors"));
    let loss = report["loss"].as_f64().unwrap_or(0.0);
    if answered == 0 {
        return Err(CliError::failed(format!(
            "bench: no answer from {target} to {sent} queries: is a DHT server running there?"
        )));
    }
    if errors > 0 {
        eprintln!(
            "btdht: bench: {errors} of the {answered} answers were KRPC errors (a server may answer \
             a query over its rate limit with an error)"
        );
    }
    if loss > NOTABLE_LOSS {
        eprintln!(
            "btdht: bench: {:.1}% of the queries were lost: a server with a per-source rate limit \
             (btdht's default is 20/s, bursts of 100, per IP) drops the queries over it; start \
             the server with --rate-limit off to measure its throughput",
            loss * 100.0
        );
    }
    Ok(())
}

/// CPU seconds (user + system) this process has used, where the OS tells.
fn cpu_seconds() -> Option<f64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::sys::resource::{UsageWho, getrusage};
        use nix::sys::time::TimeValLike;
        let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
        let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
        Some(micros as f64 / 1e6)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

fn generate(args: &BenchArgs) -> io::Result<serde_json::Value> {
    let target = SocketAddr::new(args.target.ip().to_canonical(), args.target.port());
    let mut poll = Poll::new()?;
    let mut sockets = Vec::with_capacity(args.sources as usize);
    for i in 0..args.sources {
        let std = std::net::UdpSocket::bind(source_addr(target, i))?;
        std.set_nonblocking(true)?;
        let mut socket = UdpSocket::from_std(std);
        poll.registry()
            .register(&mut socket, Token(i as usize), Interest::READABLE)?;
        sockets.push(socket);
    }
    let templates: Vec<Template> = match args.query {
        QueryMix::Mix => vec![
            template(QueryMix::Ping, None),
            template(QueryMix::FindNode, None),
            template(QueryMix::GetPeers, args.info_hash),
        ],
        kind => vec![template(kind, args.info_hash)],
    };
    let mut ring = vec![Slot::default(); RING];
    let mut order: VecDeque<u32> = VecDeque::new();
    let window = args.window as usize;
    let timeout_us = args.timeout_ms * 1000;
    let cpu_at_start = cpu_seconds();
    let started = Instant::now();
    let now_us = || started.elapsed().as_micros() as u64;
    let measure_from = args.warmup * 1_000_000;
    let send_until = measure_from + args.seconds * 1_000_000;
    let mut events = Events::with_capacity(1024);
    let mut batch = UdpBatch::new();
    let mut packets: Vec<u8> = Vec::with_capacity(BATCH * 256);
    let mut batches = 0usize;
    let mut offload = !args.no_offload;
    let (mut seq, mut in_flight, mut next_source) = (0u32, 0usize, 0usize);
    let (mut sent, mut measured_sent, mut answered, mut lost, mut errors, mut send_errors) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut answer_bytes = 0u64;
    let mut latencies: Vec<u32> = Vec::new();
    loop {
        let now = now_us();
        let sending = now < send_until && sent < args.max_packets;
        if !sending && in_flight == 0 {
            break;
        }
        if now > send_until + timeout_us + 1_000_000 {
            break;
        }
        // Fill the window: a batch of equal queries on one source socket per system call
        // (one UDP_SEGMENT send where the kernel offers it, else one sendmmsg), rotating
        // over the sources; `mix` alternates the query kind from batch to batch.
        while sending && in_flight < window && sent < args.max_packets {
            let room = (window - in_flight)
                .min(BATCH)
                .min(usize::try_from(args.max_packets - sent).unwrap_or(BATCH));
            let tpl = &templates[batches % templates.len()];
            let size = tpl.bytes.len();
            packets.clear();
            let mut count = 0;
            while count < room {
                let next = seq.wrapping_add(count as u32);
                if ring[(next & RING_MASK) as usize].live {
                    break; // the ring is full of unanswered queries younger than the timeout
                }
                let start = packets.len();
                packets.extend_from_slice(&tpl.bytes);
                let packet = &mut packets[start..];
                packet[tpl.t_at..tpl.t_at + 4].copy_from_slice(&next.to_be_bytes());
                if let Some(at) = tpl.target_at {
                    let mix = u64::from(next).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    packet[at..at + 8].copy_from_slice(&mix.to_be_bytes());
                }
                count += 1;
            }
            if count == 0 {
                break;
            }
            let socket = &sockets[next_source];
            next_source = (next_source + 1) % sockets.len();
            batches += 1;
            let mut outcome = None;
            if offload {
                match batch.send_segments(socket, target, &packets, size as u16) {
                    Ok(taken) => outcome = Some(Ok(taken)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        outcome = Some(Err(SendError::Full));
                    }
                    // No offload here (or not for this size): batches of datagrams instead.
                    Err(_) => offload = false,
                }
            }
            let outcome = outcome.unwrap_or_else(|| {
                let datagrams: Vec<(SocketAddr, &[u8])> =
                    packets.chunks(size).map(|p| (target, p)).collect();
                batch.send_batch(socket, &datagrams)
            });
            match outcome {
                Ok(taken) => {
                    let sent_us = now_us();
                    for _ in 0..taken {
                        ring[(seq & RING_MASK) as usize] = Slot {
                            seq,
                            sent_us,
                            live: true,
                        };
                        order.push_back(seq);
                        seq = seq.wrapping_add(1);
                    }
                    sent += taken as u64;
                    if sent_us >= measure_from {
                        measured_sent += taken as u64;
                    }
                    in_flight += taken;
                    if taken < count {
                        break; // the send buffer filled up
                    }
                }
                Err(SendError::Full) => break,
                Err(SendError::First) => {
                    send_errors += 1;
                    break;
                }
            }
        }
        // Receive: read every readable source a batch at a time.
        poll.poll(&mut events, Some(Duration::from_millis(1)))?;
        for event in events.iter() {
            let Some(socket) = sockets.get(event.token().0) else {
                continue;
            };
            loop {
                let at = now_us();
                let read = batch.recv(socket, AddressFamily::of(target.ip()), |_, bytes| {
                    let Some(t) = reply_t(bytes) else { return };
                    let slot = &mut ring[(t & RING_MASK) as usize];
                    if !slot.live || slot.seq != t {
                        return;
                    }
                    slot.live = false;
                    in_flight -= 1;
                    if slot.sent_us >= measure_from && at <= send_until + timeout_us {
                        answered += 1;
                        answer_bytes += bytes.len() as u64;
                        if find(bytes, b"1:y1:e").is_some() {
                            errors += 1;
                        }
                        if latencies.len() < MAX_LATENCIES {
                            let latency = at.saturating_sub(slot.sent_us);
                            latencies.push(latency.min(u64::from(u32::MAX)) as u32);
                        }
                    }
                });
                match read {
                    Ok(count) if count == BATCH => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    _ => break,
                }
            }
        }
        // Expire.
        let now = now_us();
        while let Some(&front) = order.front() {
            let slot = &mut ring[(front & RING_MASK) as usize];
            if !slot.live || slot.seq != front {
                order.pop_front();
            } else if now.saturating_sub(slot.sent_us) > timeout_us {
                slot.live = false;
                in_flight -= 1;
                if slot.sent_us >= measure_from {
                    lost += 1;
                }
                order.pop_front();
            } else {
                break;
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    // The generator's own CPU use: near 100% of its core means it may be what limits the
    // rate; well below means the server is.
    let cpu_share = match (cpu_at_start, cpu_seconds()) {
        (Some(a), Some(b)) if wall > 0.0 => json!((b - a) / wall),
        _ => serde_json::Value::Null,
    };
    latencies.sort_unstable();
    let seconds = args.seconds as f64;
    Ok(json!({
        "type": "bench",
        "target": target.to_string(),
        "query": format!("{:?}", args.query).to_lowercase(),
        "duration_s": args.seconds,
        "warmup_s": args.warmup,
        "window": args.window,
        "sources": args.sources,
        "sent": measured_sent,
        "answered": answered,
        "errors": errors,
        "lost": lost,
        "loss": if measured_sent > 0 { lost as f64 / measured_sent as f64 } else { 0.0 },
        "answered_per_sec": answered as f64 / seconds,
        "answer_bytes_mean": if answered > 0 { answer_bytes as f64 / answered as f64 } else { 0.0 },
        "latency_us": {
            "p50": percentile(&latencies, 0.50),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last().copied().unwrap_or(0),
        },
        "send_errors": send_errors,
        "total_sent": sent,
        "generator_cpu_share": cpu_share,
        "segmentation_offload": offload,
    }))
}
