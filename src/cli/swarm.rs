//! `btdht swarm`: many full DHT nodes in one process, on distinct loopback addresses.
//!
//! Every node is a real [`Node`] core with its own UDP socket on its own IP (127.1.0.1,
//! 127.1.0.2, ... by default; Linux routes all of 127.0.0.0/8 over loopback), so per-IP rules
//! hold as on the Internet. All sockets are registered in **one** mio `Poll` on the calling
//! thread, and the nodes' deadlines sit in one binary heap (an entry made stale by an earlier
//! deadline is skipped when popped), so thousands of nodes cost one thread, not thousands.
//!
//! Nodes join at `--join-rate` per second, each through the first node and two random earlier
//! ones. Once all have joined and the network has settled for `--settle` seconds, each
//! info-hash (`--infohashes`) is announced through the DHT by one member, round robin (a
//! get_peers lookup, then announce_peer to the closest nodes with their tokens; again every 20
//! minutes, before the 30-minute expiry). When every announce has finished (at most 120 s),
//! the ground truth is written (`--truth`), and `ready` is printed on stdout after the
//! addresses to bootstrap from. It runs until SIGINT or SIGTERM, or `--duration` seconds after it is ready.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use btdht::driver::socket::bind_udp;
use btdht::node::{Config, Event, Node, RateLimit};
use btdht::routing::IpPolicy;
use btdht::{InfoHash, Instant, NodeId};
use clap::Args;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{EXIT_NO_ANSWER, EXIT_OK, EXIT_USAGE};

/// Options of `btdht swarm`.
#[derive(Args, Debug)]
pub struct SwarmArgs {
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

/// The node configuration of the swarm: private addresses allowed, no informational events,
/// one table entry per IP, a per-IP limit relaxed to 200 queries per second (bursts of
/// 1,000), so that a crawler or a test on one IP is never refused, at most 1,024 source IPs
/// remembered by each node's limiter (memory: thousands of nodes see thousands of IPs), and 1
/// liveness ping per node per second instead of 4 (the swarm's own chatter is what limits how
/// many nodes one thread carries).
pub fn swarm_config() -> Config {
    let mut config = Config {
        allow_private: true,
        node_events: false,
        incoming_events: false,
        rate_limit_per_ip: Some(RateLimit {
            rate: 200,
            burst: 1_000,
        }),
        rate_limit_max_ips: 1_024,
        pings_per_tick: 1,
        ..Config::default()
    };
    config.routing.ip_policy = IpPolicy::OnePerIp;
    config
}

/// The address of node `n`: `base + n` counting only hosts whose last octet is neither 0 nor
/// 255; `None` when it leaves 127.0.0.0/8.
pub fn node_ip(base: Ipv4Addr, n: u32) -> Option<Ipv4Addr> {
    let base = u32::from(base);
    // Index of `base` among valid hosts, then add n.
    let usable = |x: u32| (x >> 8) * 254 + (x & 0xff).saturating_sub(1).min(253);
    let index = usable(base).checked_add(n)?;
    let ip = (index / 254) << 8 | (index % 254 + 1);
    let ip = Ipv4Addr::from(ip);
    (ip.octets()[0] == 127).then_some(ip)
}

struct Member {
    node: Node,
    socket: UdpSocket,
    addr: SocketAddr,
    /// The earliest live entry of this node in the heap.
    scheduled: Option<Instant>,
}

struct Swarm {
    members: Vec<Member>,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    clock: std::time::Instant,
    send_errors: u64,
    datagrams_in: u64,
    datagrams_out: u64,
    /// Announces started and not yet finished.
    announces_pending: usize,
    /// Announces that at least one node acknowledged.
    announces_acknowledged: usize,
}

impl Swarm {
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Sends what node `i` wants sent, counts finished announces (other events are dropped),
    /// re-arms its timer.
    fn flush(&mut self, i: usize) {
        let Some(m) = self.members.get_mut(i) else {
            return;
        };
        while let Some(t) = m.node.poll_transmit() {
            match m.socket.send_to(&t.bytes, t.to) {
                Ok(_) => self.datagrams_out += 1,
                Err(_) => self.send_errors += 1,
            }
        }
        while let Some(event) = m.node.poll_event() {
            if let Event::AnnounceDone { acknowledged, .. } = event {
                self.announces_pending = self.announces_pending.saturating_sub(1);
                self.announces_acknowledged += usize::from(acknowledged > 0);
            }
        }
        if let Some(deadline) = m.node.poll_timeout() {
            if m.scheduled.is_none_or(|s| deadline < s) {
                m.scheduled = Some(deadline);
                self.heap.push(Reverse((deadline, i)));
            }
        }
    }

    /// Runs due timers.
    fn timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, i))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(m) = self.members.get_mut(i) else {
                continue;
            };
            if m.scheduled != Some(at) {
                continue;
            }
            m.scheduled = None;
            m.node.handle_timeout(now);
            self.flush(i);
        }
    }

    /// Drains node `i`'s socket.
    fn receive(&mut self, i: usize, buf: &mut [u8]) {
        loop {
            let Some(m) = self.members.get_mut(i) else {
                return;
            };
            match m.socket.recv_from(buf) {
                Ok((len, from)) => {
                    self.datagrams_in += 1;
                    let now = self.now();
                    let m = &mut self.members[i];
                    m.node.handle_datagram(now, from, &buf[..len]);
                    self.flush(i);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors (port unreachable) surface here on Linux; keep reading.
                Err(_) => continue,
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }
}

/// Announces each of `hashes` through the DHT from one member (round robin), on that
/// member's own port; the announces run like any node's (a get_peers lookup, then
/// announce_peer to the closest nodes with their tokens).
fn announce(swarm: &mut Swarm, hashes: &[InfoHash], now: Instant) {
    let count = swarm.members.len();
    if count == 0 {
        return;
    }
    for (j, info_hash) in hashes.iter().enumerate() {
        let i = j % count;
        let port = swarm.members[i].addr.port();
        swarm.members[i]
            .node
            .announce(now, *info_hash, Some(port), false);
        swarm.announces_pending += 1;
        swarm.flush(i);
    }
}

fn write_truth(path: &PathBuf, swarm: &Swarm, hashes: &[InfoHash]) -> io::Result<()> {
    let nodes: Vec<serde_json::Value> = swarm
        .members
        .iter()
        .map(|m| serde_json::json!({"id": m.node.id().to_hex(), "addr": m.addr.to_string()}))
        .collect();
    let hashes: Vec<String> = hashes.iter().map(|h| h.to_hex()).collect();
    let truth = serde_json::json!({
        "bootstrap": swarm.members.first().map(|m| m.addr.to_string()),
        "nodes": nodes,
        "infohashes": hashes,
    });
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    serde_json::to_writer(&mut file, &truth)?;
    file.write_all(b"\n")?;
    file.flush()
}

/// Runs `btdht swarm`; returns the exit status.
pub fn run(args: SwarmArgs) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("btdht: cannot handle signal {signal}: {e}");
            return EXIT_NO_ANSWER;
        }
    }
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("btdht: {e}");
            return EXIT_NO_ANSWER;
        }
    };
    // Bind every socket first, so that a bad address or a low file limit fails at once.
    let mut sockets = Vec::with_capacity(args.nodes as usize);
    for n in 0..args.nodes {
        let Some(ip) = node_ip(args.base_ip, n) else {
            eprintln!(
                "btdht: {} nodes from {} leave 127.0.0.0/8",
                args.nodes, args.base_ip
            );
            return EXIT_USAGE;
        };
        let addr = SocketAddr::V4(SocketAddrV4::new(ip, args.port));
        match bind_udp(addr) {
            Ok(mut socket) => {
                if let Err(e) =
                    poll.registry()
                        .register(&mut socket, Token(n as usize), Interest::READABLE)
                {
                    eprintln!("btdht: {addr}: {e}");
                    return EXIT_NO_ANSWER;
                }
                sockets.push((addr, socket));
            }
            Err(e) => {
                eprintln!(
                    "btdht: cannot bind {addr}: {e} (a low `ulimit -n`? each node needs a socket)"
                );
                return EXIT_USAGE;
            }
        }
    }
    let hashes: Vec<InfoHash> = (0..args.infohashes)
        .map(|_| NodeId::random(&mut rng))
        .collect();
    let mut swarm = Swarm {
        members: Vec::with_capacity(sockets.len()),
        heap: BinaryHeap::new(),
        clock: std::time::Instant::now(),
        send_errors: 0,
        datagrams_in: 0,
        datagrams_out: 0,
        announces_pending: 0,
        announces_acknowledged: 0,
    };
    let config = swarm_config();
    let mut pending = sockets.into_iter();
    let join_every = Duration::from_secs(1) / args.join_rate;
    let mut next_join = swarm.now();
    let mut ready_at: Option<Instant> = None;
    let mut settled_at: Option<Instant> = None;
    let mut announcing_since: Option<Instant> = None;
    let mut reannounce_at: Option<Instant> = None;
    let mut events = Events::with_capacity(1_024);
    let mut buf = vec![0u8; 65_536];
    let mut last_stats = (swarm.now(), 0u64, 0u64);
    eprintln!(
        "swarm: {} nodes from {}:{}, joining at {}/s",
        args.nodes, args.base_ip, args.port, args.join_rate
    );
    while !stop.load(Ordering::Relaxed) {
        let now = swarm.now();
        // Joins.
        while now >= next_join {
            let Some((addr, socket)) = pending.next() else {
                break;
            };
            let i = swarm.members.len();
            let mut node = Node::new(config.clone(), NodeId::random(&mut rng), rng.random(), now);
            if i > 0 {
                let mut via = vec![swarm.members[0].addr];
                for _ in 0..2 {
                    via.push(swarm.members[rng.random_range(0..i)].addr);
                }
                via.dedup();
                node.bootstrap(now, &via);
            }
            swarm.members.push(Member {
                node,
                socket,
                addr,
                scheduled: None,
            });
            swarm.flush(i);
            next_join += join_every;
            if swarm.members.len() == args.nodes as usize {
                settled_at = Some(now + Duration::from_secs(args.settle));
                eprintln!("swarm: all {} nodes joined, settling", args.nodes);
            }
        }
        // Settled: announce the info-hashes through the DHT.
        if announcing_since.is_none() && settled_at.is_some_and(|t| now >= t) {
            announce(&mut swarm, &hashes, now);
            announcing_since = Some(now);
        }
        // Ready once every announce finished (at most 120 s): write the truth, print the
        // bootstrap address.
        let announced = announcing_since.is_some_and(|since| {
            swarm.announces_pending == 0 || now >= since + Duration::from_secs(120)
        });
        if ready_at.is_none() && announced {
            if let Some(path) = &args.truth {
                if let Err(e) = write_truth(path, &swarm, &hashes) {
                    eprintln!("btdht: cannot write {}: {e}", path.display());
                    return EXIT_USAGE;
                }
            }
            let stats = (swarm.datagrams_in, swarm.datagrams_out);
            eprintln!(
                "swarm: ready after {:.1} s: {} of {} info-hashes announced and acknowledged; {} datagrams in, {} out so far",
                now.as_micros() as f64 / 1e6,
                swarm.announces_acknowledged,
                hashes.len(),
                stats.0,
                stats.1
            );
            println!("bootstrap {}", swarm.members[0].addr);
            println!("ready");
            let _ = io::stdout().flush();
            ready_at = Some(now);
            reannounce_at = Some(now + Duration::from_secs(1_200));
        }
        // Announced peers expire after 30 minutes: announce again every 20.
        if reannounce_at.is_some_and(|t| now >= t) {
            announce(&mut swarm, &hashes, now);
            reannounce_at = Some(now + Duration::from_secs(1_200));
        }
        if let (Some(ready), Some(duration)) = (ready_at, args.duration) {
            if now >= ready + Duration::from_secs(duration) {
                break;
            }
        }
        if let Some(every) = args.stats {
            let every = Duration::from_secs(every);
            if now >= last_stats.0 + every {
                let secs = now.saturating_duration_since(last_stats.0).as_secs_f64();
                eprintln!(
                    "swarm: {:.0} s: {} nodes, {:.0} datagrams/s in, {:.0} out",
                    now.as_micros() as f64 / 1e6,
                    swarm.members.len(),
                    (swarm.datagrams_in - last_stats.1) as f64 / secs,
                    (swarm.datagrams_out - last_stats.2) as f64 / secs,
                );
                last_stats = (now, swarm.datagrams_in, swarm.datagrams_out);
            }
        }
        swarm.timers(now);
        // Sleep until a socket is readable, the next deadline or the next join.
        let mut wake = now + Duration::from_millis(100);
        if let Some(d) = swarm.next_deadline() {
            wake = wake.min(d);
        }
        if swarm.members.len() < args.nodes as usize {
            wake = wake.min(next_join);
        }
        let sleep = wake.saturating_duration_since(swarm.now());
        if let Err(e) = poll.poll(&mut events, Some(sleep)) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("btdht: poll: {e}");
                return EXIT_NO_ANSWER;
            }
        }
        for event in events.iter() {
            swarm.receive(event.token().0, &mut buf);
        }
    }
    let mut queries_answered = 0u64;
    let mut table = 0usize;
    for m in &swarm.members {
        table += m.node.routing_table().len();
        queries_answered += m.node.stats().datagrams_in;
    }
    eprintln!(
        "swarm: stopped: {} nodes, mean table size {:.1}, {} datagrams in, {} out, {} send errors, {} handled by nodes",
        swarm.members.len(),
        table as f64 / swarm.members.len().max(1) as f64,
        swarm.datagrams_in,
        swarm.datagrams_out,
        swarm.send_errors,
        queries_answered
    );
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ips_skip_network_and_broadcast_octets() {
        let base: Ipv4Addr = "127.1.0.1".parse().unwrap();
        assert_eq!(node_ip(base, 0), Some("127.1.0.1".parse().unwrap()));
        assert_eq!(node_ip(base, 253), Some("127.1.0.254".parse().unwrap()));
        assert_eq!(node_ip(base, 254), Some("127.1.1.1".parse().unwrap()));
        let base: Ipv4Addr = "127.255.255.250".parse().unwrap();
        assert_eq!(node_ip(base, 10), None);
    }
}
