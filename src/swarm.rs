//! A local test swarm: many full DHT nodes in one thread, on distinct loopback addresses.
//!
//! Every node is a real [`Node`] core with its own UDP socket on its own IP (127.1.0.1,
//! 127.1.0.2, ... by default; Linux routes all of 127.0.0.0/8 over loopback), so per-IP rules
//! hold as on the Internet. All of them run on **one** [`Runtime`] loop (one slot per node, one
//! heap of deadlines), so thousands of nodes cost one thread, not thousands.
//!
//! Nodes join at [`SwarmOptions::join_rate`] per second, each through the first node and two
//! random earlier ones. Once all have joined and the network has settled for
//! [`SwarmOptions::settle`], each info-hash is announced through the DHT by one member, round
//! robin (a get_peers lookup, then announce_peer to the closest nodes with their tokens; again
//! every 20 minutes, before the 30-minute expiry). When every announce has finished (at most
//! 120 s), the swarm is ready: its [`SwarmObserver`] gets the ground truth ([`Ready`]). It runs
//! until its stop flag is set, or [`SwarmOptions::duration`] after it is ready. This module
//! owns the swarm's schedule and its truth; printing and files are the caller's.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::id::{InfoHash, NodeId};
use crate::node::{Config, Event, Node, RateLimit};
use crate::routing::IpPolicy;
use crate::runtime::{Clock, Flow, IoStats, Role, Runtime, Turn};
use crate::time::Instant;

/// Longest sleep of the swarm's loop: a stop request is seen within it.
pub const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Longest wait for the announces before the swarm is ready anyway.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(120);
/// Period of the announces (announced peers expire after 30 minutes).
const REANNOUNCE: Duration = Duration::from_secs(1_200);

/// What to start.
#[derive(Clone, Debug)]
pub struct SwarmOptions {
    /// How many nodes.
    pub nodes: u32,
    /// The first node's IP; the others count up from it ([`node_ip`]).
    pub base_ip: Ipv4Addr,
    /// The UDP port of every node.
    pub port: u16,
    /// Random info-hashes to announce through the swarm.
    pub infohashes: u32,
    /// Seed of the node ids and info-hashes (the same seed gives the same swarm).
    pub seed: u64,
    /// Nodes joining per second (at least 1).
    pub join_rate: u32,
    /// How long to let the network settle after the last join, before announcing.
    pub settle: Duration,
    /// Stop this long after the swarm is ready (default: until stopped).
    pub duration: Option<Duration>,
}

/// Why a swarm could not start.
#[derive(Debug)]
pub enum SwarmError {
    /// The nodes' addresses would leave 127.0.0.0/8.
    OutOfRange,
    /// A node's socket could not be bound (a low `ulimit -n`: each node needs one).
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The loop could not be set up.
    Io(io::Error),
}

impl std::fmt::Display for SwarmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwarmError::OutOfRange => f.write_str("the nodes' addresses leave 127.0.0.0/8"),
            SwarmError::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            SwarmError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SwarmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SwarmError::Bind { source, .. } | SwarmError::Io(source) => Some(source),
            SwarmError::OutOfRange => None,
        }
    }
}

/// The swarm when it became ready.
#[derive(Clone, Debug)]
pub struct Ready {
    /// When.
    pub at: Instant,
    /// The address to bootstrap from (the first node).
    pub bootstrap: SocketAddr,
    /// Every node's id and address, in join order.
    pub nodes: Vec<(NodeId, SocketAddr)>,
    /// The info-hashes announced.
    pub infohashes: Vec<InfoHash>,
    /// Announces that at least one node acknowledged.
    pub acknowledged: usize,
    /// The loop's I/O so far.
    pub io: IoStats,
}

impl Ready {
    /// The ground truth as JSON: `bootstrap`, `nodes` (`id`, `addr`), `infohashes`.
    pub fn truth(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|(id, addr)| serde_json::json!({"id": id.to_hex(), "addr": addr.to_string()}))
            .collect();
        let hashes: Vec<String> = self.infohashes.iter().map(|h| h.to_hex()).collect();
        serde_json::json!({
            "bootstrap": self.bootstrap.to_string(),
            "nodes": nodes,
            "infohashes": hashes,
        })
    }
}

/// What the caller hears of a running swarm.
pub trait SwarmObserver {
    /// Every node has joined; the network settles now.
    fn all_joined(&mut self, nodes: usize) {
        let _ = nodes;
    }

    /// The swarm is ready. An error stops it (and is returned in [`SwarmEnd::error`]).
    fn ready(&mut self, ready: &Ready) -> io::Result<()>;

    /// Called on each turn of the loop (at least every [`MAX_SLEEP`]), for periodic output.
    fn tick(&mut self, now: Instant, members: usize, io: &IoStats) {
        let _ = (now, members, io);
    }
}

/// How a swarm ended.
#[derive(Debug)]
pub struct SwarmEnd {
    /// Nodes that had joined.
    pub members: usize,
    /// Mean size of their IPv4 routing tables.
    pub mean_table: f64,
    /// Datagrams the nodes handled.
    pub handled: u64,
    /// The loop's I/O counters.
    pub io: IoStats,
    /// The observer's error, if one stopped the swarm.
    pub error: Option<io::Error>,
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

/// A swarm whose sockets are bound, ready to run (see the module documentation).
#[derive(Debug)]
pub struct Swarm {
    runtime: Runtime,
    addrs: Vec<SocketAddr>,
    options: SwarmOptions,
    stop: Arc<AtomicBool>,
}

impl Swarm {
    /// Binds every node's socket first, so that a bad address or a low file limit fails at
    /// once.
    pub fn bind(options: SwarmOptions) -> Result<Swarm, SwarmError> {
        let mut runtime = Runtime::new(Clock::start())
            .map_err(SwarmError::Io)?
            .with_max_sleep(MAX_SLEEP);
        let mut addrs = Vec::with_capacity(options.nodes as usize);
        for n in 0..options.nodes {
            let ip = node_ip(options.base_ip, n).ok_or(SwarmError::OutOfRange)?;
            let addr = SocketAddr::V4(SocketAddrV4::new(ip, options.port));
            let socket = crate::driver::socket::bind_udp(addr)
                .map_err(|source| SwarmError::Bind { addr, source })?;
            runtime
                .add(Some(socket), None)
                .map_err(|source| SwarmError::Bind { addr, source })?;
            addrs.push(addr);
        }
        Ok(Swarm {
            runtime,
            addrs,
            options,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A flag that stops the swarm when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs the swarm on this thread until it stops. Fails only if the loop's poll fails.
    pub fn run<O: SwarmObserver>(mut self, observer: &mut O) -> io::Result<SwarmEnd> {
        let mut rng = SmallRng::seed_from_u64(self.options.seed);
        let hashes: Vec<InfoHash> = (0..self.options.infohashes)
            .map(|_| NodeId::random(&mut rng))
            .collect();
        let now = self.runtime.clock().now();
        let mut role = SwarmRole {
            members: Vec::with_capacity(self.addrs.len()),
            addrs: self.addrs,
            config: swarm_config(),
            rng,
            hashes,
            join_every: Duration::from_secs(1) / self.options.join_rate.max(1),
            next_join: now,
            settle: self.options.settle,
            duration: self.options.duration,
            settled_at: None,
            announcing_since: None,
            ready_at: None,
            reannounce_at: None,
            announces_pending: 0,
            announces_acknowledged: 0,
            stop: &self.stop,
            observer,
            error: None,
        };
        self.runtime.run(&mut role)?;
        let members = role.members.len();
        let mut table = 0usize;
        let mut handled = 0u64;
        for node in &role.members {
            table += node.routing_table().len();
            handled += node.stats().datagrams_in;
        }
        Ok(SwarmEnd {
            members,
            mean_table: table as f64 / members.max(1) as f64,
            handled,
            io: self.runtime.stats(),
            error: role.error,
        })
    }
}

/// The swarm's role on the runtime: node `i` is slot `i`.
struct SwarmRole<'a, O> {
    members: Vec<Node>,
    addrs: Vec<SocketAddr>,
    config: Config,
    rng: SmallRng,
    hashes: Vec<InfoHash>,
    join_every: Duration,
    next_join: Instant,
    settle: Duration,
    duration: Option<Duration>,
    settled_at: Option<Instant>,
    announcing_since: Option<Instant>,
    ready_at: Option<Instant>,
    reannounce_at: Option<Instant>,
    /// Announces started and not yet finished.
    announces_pending: usize,
    /// Announces that at least one node acknowledged.
    announces_acknowledged: usize,
    stop: &'a AtomicBool,
    observer: &'a mut O,
    error: Option<io::Error>,
}

impl<O: SwarmObserver> SwarmRole<'_, O> {
    /// Joins the nodes due by `now`.
    fn join(&mut self, now: Instant, turn: &mut Turn<'_>) {
        while now >= self.next_join {
            let i = self.members.len();
            if i >= self.addrs.len() {
                break;
            }
            let id = NodeId::random(&mut self.rng);
            let mut node = Node::new(self.config.clone(), id, self.rng.random(), now);
            if i > 0 {
                let mut via = vec![self.addrs[0]];
                for _ in 0..2 {
                    via.push(self.addrs[self.rng.random_range(0..i)]);
                }
                via.dedup();
                node.bootstrap(now, &via);
            }
            self.members.push(node);
            turn.touch(i);
            self.next_join += self.join_every;
            if self.members.len() == self.addrs.len() {
                self.settled_at = Some(now + self.settle);
                self.observer.all_joined(self.members.len());
            }
        }
    }

    /// Announces each info-hash through the DHT from one member (round robin), on that
    /// member's own port.
    fn announce(&mut self, now: Instant, turn: &mut Turn<'_>) {
        let count = self.members.len();
        if count == 0 {
            return;
        }
        for (j, info_hash) in self.hashes.iter().enumerate() {
            let i = j % count;
            let port = self.addrs[i].port();
            self.members[i].announce(now, *info_hash, Some(port), false);
            self.announces_pending += 1;
            turn.touch(i);
        }
    }
}

impl<O: SwarmObserver> Role for SwarmRole<'_, O> {
    type Endpoint = Node;

    fn endpoint(&mut self, slot: usize) -> Option<&mut Node> {
        self.members.get_mut(slot)
    }

    fn turn(&mut self, now: Instant, turn: &mut Turn<'_>) -> Flow {
        if self.stop.load(Ordering::Relaxed) || self.error.is_some() {
            return Flow::Stop;
        }
        self.join(now, turn);
        if self.announcing_since.is_none() && self.settled_at.is_some_and(|t| now >= t) {
            self.announce(now, turn);
            self.announcing_since = Some(now);
        }
        let announced = self
            .announcing_since
            .is_some_and(|since| self.announces_pending == 0 || now >= since + ANNOUNCE_WAIT);
        if self.ready_at.is_none() && announced {
            let ready = Ready {
                at: now,
                bootstrap: self.addrs[0],
                nodes: self
                    .members
                    .iter()
                    .zip(&self.addrs)
                    .map(|(node, addr)| (node.id(), *addr))
                    .collect(),
                infohashes: self.hashes.clone(),
                acknowledged: self.announces_acknowledged,
                io: *turn.stats(),
            };
            if let Err(e) = self.observer.ready(&ready) {
                self.error = Some(e);
                return Flow::Stop;
            }
            self.ready_at = Some(now);
            self.reannounce_at = Some(now + REANNOUNCE);
        }
        if self.reannounce_at.is_some_and(|t| now >= t) {
            self.announce(now, turn);
            self.reannounce_at = Some(now + REANNOUNCE);
        }
        if let (Some(ready), Some(duration)) = (self.ready_at, self.duration)
            && now >= ready + duration
        {
            return Flow::Stop;
        }
        self.observer.tick(now, self.members.len(), turn.stats());
        Flow::Continue
    }

    fn after_flush(&mut self, slot: usize) {
        let Some(node) = self.members.get_mut(slot) else {
            return;
        };
        // Finished announces are counted; the other events are dropped.
        while let Some(event) = node.poll_event() {
            if let Event::AnnounceDone { acknowledged, .. } = event {
                self.announces_pending = self.announces_pending.saturating_sub(1);
                self.announces_acknowledged += usize::from(acknowledged > 0);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        (self.members.len() < self.addrs.len()).then_some(self.next_join)
    }
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

    /// Remembers what the swarm reported.
    #[derive(Default)]
    struct Seen {
        joined: Option<usize>,
        ready: Option<Ready>,
    }

    impl SwarmObserver for Seen {
        fn all_joined(&mut self, nodes: usize) {
            self.joined = Some(nodes);
        }
        fn ready(&mut self, ready: &Ready) -> io::Result<()> {
            self.ready = Some(ready.clone());
            Ok(())
        }
    }

    #[test]
    fn a_small_swarm_joins_announces_and_reports_its_truth() {
        let options = SwarmOptions {
            nodes: 4,
            base_ip: "127.0.213.1".parse().unwrap(),
            port: 47_901,
            infohashes: 2,
            seed: 7,
            join_rate: 100,
            settle: Duration::from_millis(300),
            duration: Some(Duration::ZERO),
        };
        let swarm = Swarm::bind(options).unwrap();
        let mut seen = Seen::default();
        let end = swarm.run(&mut seen).unwrap();
        assert!(end.error.is_none());
        assert_eq!(seen.joined, Some(4));
        let ready = seen.ready.expect("the swarm became ready");
        assert_eq!(ready.nodes.len(), 4);
        assert_eq!(ready.bootstrap, "127.0.213.1:47901".parse().unwrap());
        assert_eq!(ready.infohashes.len(), 2);
        assert_eq!(ready.acknowledged, 2, "each announce reached a node");
        let truth = ready.truth();
        assert_eq!(truth["nodes"].as_array().map(Vec::len), Some(4));
        assert_eq!(truth["nodes"][3]["addr"], "127.0.213.4:47901");
        assert_eq!(end.members, 4);
        assert!(end.io.datagrams_in > 0 && end.handled > 0);
        assert!(end.mean_table > 0.0, "the nodes know each other");
    }

    #[test]
    fn a_swarm_leaving_loopback_is_refused() {
        let options = SwarmOptions {
            nodes: 10,
            base_ip: "127.255.255.250".parse().unwrap(),
            port: 47_902,
            infohashes: 0,
            seed: 1,
            join_rate: 100,
            settle: Duration::ZERO,
            duration: None,
        };
        assert!(matches!(Swarm::bind(options), Err(SwarmError::OutOfRange)));
    }
}
