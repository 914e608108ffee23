//! The bootstrap server on real sockets: N shards, each an I/O thread with its own
//! `SO_REUSEPORT` UDP socket(s) and its own [`BootstrapServer`] core, sharing one pool.
//!
//! The kernel spreads incoming datagrams over the shards' sockets by a hash of the source
//! address. Each shard runs its core on the [`Runtime`]'s loop (batched reads and writes, the
//! core's timer), sleeping at most [`MAX_SLEEP`] so that a stop request is seen quickly, and
//! publishes its counters every 100 ms. Answers read the pool's snapshots
//! without a lock (each turn also refreshes them, so an idle shard lets go of a replaced one);
//! the pool lock is taken inside the core for single pool changes only, never across a socket
//! call. Only shard 0 runs the
//! walk, the sweep and the index rebuild; a reply to any shard's ping may arrive at any shard,
//! which is fine because the cookies are stateless and keyed by a master key all shards share.
//!
//! Persistence is the caller's: [`Server::save`] snapshots the pool under the read lock and
//! writes it from the calling thread.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::UdpSocket;
use parking_lot::{Mutex, RwLock};

use super::{BootstrapConfig, BootstrapServer, BootstrapStats, Pools, SharedPools, persist};
use crate::id::NodeId;
use crate::runtime::{Clock, Flow, Role, Runtime, Turn};
use crate::time::Instant;

/// Longest sleep of a shard, so that a stop request is seen within it.
pub const MAX_SLEEP: Duration = Duration::from_millis(100);
/// How often a shard publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// What to start.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The IPv4 address to bind (port 0: any; all shards then share the port the first got).
    pub bind: SocketAddr,
    /// Also serve on this IPv6 address.
    pub bind6: Option<SocketAddr>,
    /// Shards (I/O threads), at least 1.
    pub threads: usize,
    /// IPv4 pool capacity (the IPv6 pool holds a quarter as many).
    pub capacity: usize,
    /// The cores' settings.
    pub config: BootstrapConfig,
    /// The server's node id (default: random).
    pub id: Option<NodeId>,
    /// Nodes the walk asks while the pool is small.
    pub bootstrap: Vec<SocketAddr>,
    /// Pool file loaded at start (and written by [`Server::save`]).
    pub state: Option<PathBuf>,
}

impl ServerOptions {
    /// Options for one shard on `bind` with the default configuration.
    pub fn new(bind: SocketAddr) -> Self {
        ServerOptions {
            bind,
            bind6: None,
            threads: 1,
            capacity: 1_000_000,
            config: BootstrapConfig::default(),
            id: None,
            bootstrap: Vec::new(),
            state: None,
        }
    }
}

/// A running bootstrap server.
pub struct Server {
    id: NodeId,
    pools: SharedPools,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<Mutex<BootstrapStats>>>,
    local_addr: SocketAddr,
    local_addr6: Option<SocketAddr>,
    clock: Clock,
    state: Option<PathBuf>,
    loaded: persist::Loaded,
}

/// Opens a non-blocking UDP socket with `SO_REUSEPORT` (and `SO_REUSEADDR`) on `addr`.
pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    crate::driver::socket::open_udp(addr, true)
}

impl Server {
    /// Binds every shard's sockets, loads the pool file if any, and starts the shards.
    #[allow(clippy::disallowed_methods)] // the server is seeded from OS randomness
    pub fn start(options: ServerOptions) -> io::Result<Server> {
        let clock = Clock::start();
        let master: u64 = rand::random();
        let id = options
            .id
            .unwrap_or_else(|| NodeId::random(&mut rand::rng()));
        let pools: SharedPools =
            Arc::new(RwLock::new(Pools::new(options.capacity, rand::random())));
        let mut loaded = persist::Loaded::default();
        if let Some(path) = &options.state {
            let now = BootstrapServer::pool_time(clock.now());
            loaded = persist::load(path, &pools, now, &options.config)?;
        }
        let threads = options.threads.max(1);
        let mut sockets = Vec::with_capacity(threads);
        let mut bind4 = options.bind;
        let mut bind6 = options.bind6;
        crate::driver::socket::check_free(bind4)?;
        if let Some(addr) = bind6 {
            crate::driver::socket::check_free(addr)?;
        }
        for _ in 0..threads {
            let s4 = bind_reuse_port(bind4)?;
            bind4 = s4.local_addr()?;
            let s6 = match bind6 {
                Some(addr) => {
                    let s = bind_reuse_port(addr)?;
                    bind6 = Some(s.local_addr()?);
                    Some(s)
                }
                None => None,
            };
            sockets.push((s4, s6));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = Server {
            id,
            pools: pools.clone(),
            stop: stop.clone(),
            threads: Vec::new(),
            stats: Vec::new(),
            local_addr: bind4,
            local_addr6: bind6,
            clock,
            state: options.state.clone(),
            loaded,
        };
        for (shard, (s4, s6)) in sockets.into_iter().enumerate() {
            let mut config = options.config.clone();
            config.maintenance = shard == 0;
            let mut core = BootstrapServer::new(
                config,
                id,
                master,
                rand::random(),
                clock.now(),
                pools.clone(),
            );
            core.set_bootstrap_nodes(options.bootstrap.clone());
            let stats = Arc::new(Mutex::new(BootstrapStats::default()));
            server.stats.push(stats.clone());
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("btdht-bootstrap-{shard}"))
                .spawn(move || {
                    if let Err(e) = run_shard(core, s4, s6, clock, &stop, &stats) {
                        log::error!("bootstrap shard {shard}: {e}");
                    }
                })?;
            server.threads.push(handle);
        }
        Ok(server)
    }

    /// The server's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The bound IPv4 address (all shards share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound IPv6 address, if any.
    pub fn local_addr6(&self) -> Option<SocketAddr> {
        self.local_addr6
    }

    /// Nodes loaded from the pool file at start.
    pub fn loaded(&self) -> usize {
        self.loaded.nodes
    }

    /// Nodes of the pool file left out at start (see [`persist::Loaded::skipped`]).
    pub fn skipped(&self) -> usize {
        self.loaded.skipped
    }

    /// The shared pools.
    pub fn pools(&self) -> &SharedPools {
        &self.pools
    }

    /// The counters of all shards (as of their last publication, at most ~100 ms old).
    pub fn stats(&self) -> BootstrapStats {
        BootstrapStats::total(&self.shard_stats())
    }

    /// Each shard's counters, in shard order (as of their last publication, at most ~100 ms
    /// old). They show how the kernel spread the sources over the shards.
    pub fn shard_stats(&self) -> Vec<BootstrapStats> {
        self.stats.iter().map(|s| *s.lock()).collect()
    }

    /// Writes the pool file (if one was given); returns the nodes written.
    pub fn save(&self) -> io::Result<usize> {
        match &self.state {
            Some(path) => persist::save(
                path,
                &self.pools,
                BootstrapServer::pool_time(self.clock.now()),
            ),
            None => Ok(0),
        }
    }

    /// Stops and joins every shard, then saves the pool; returns the final counters.
    pub fn stop(self) -> io::Result<BootstrapStats> {
        self.stop_per_shard()
            .map(|shards| BootstrapStats::total(&shards))
    }

    /// Like [`Server::stop`], but returns each shard's final counters, in shard order.
    pub fn stop_per_shard(mut self) -> io::Result<Vec<BootstrapStats>> {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                log::error!("a bootstrap shard panicked");
            }
        }
        self.save()?;
        Ok(self.shard_stats())
    }
}

/// One shard's role on the runtime: its core, the stop flag, its published counters.
struct Shard<'a> {
    core: BootstrapServer,
    stop: &'a AtomicBool,
    published: &'a Mutex<BootstrapStats>,
    next_publish: Instant,
}

impl Role for Shard<'_> {
    type Endpoint = BootstrapServer;

    fn endpoint(&mut self, slot: usize) -> Option<&mut BootstrapServer> {
        (slot == 0).then_some(&mut self.core)
    }

    fn turn(&mut self, now: Instant, _turn: &mut Turn<'_>) -> Flow {
        if self.stop.load(Ordering::Relaxed) {
            return Flow::Stop;
        }
        // An idle shard lets go of the snapshots a rebuild replaced.
        self.core.refresh_snapshots();
        if now >= self.next_publish {
            self.next_publish = now + PUBLISH_EVERY;
            *self.published.lock() = *self.core.stats();
        }
        Flow::Continue
    }

    fn next_deadline(&self) -> Option<Instant> {
        Some(self.next_publish)
    }
}

fn run_shard(
    core: BootstrapServer,
    s4: std::net::UdpSocket,
    s6: Option<std::net::UdpSocket>,
    clock: Clock,
    stop: &AtomicBool,
    published: &Mutex<BootstrapStats>,
) -> io::Result<()> {
    let mut runtime = Runtime::new(clock)?.with_max_sleep(MAX_SLEEP);
    runtime.add(Some(UdpSocket::from_std(s4)), s6.map(UdpSocket::from_std))?;
    let mut shard = Shard {
        core,
        stop,
        published,
        next_publish: clock.now(),
    };
    let result = runtime.run(&mut shard);
    *published.lock() = *shard.core.stats();
    result
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .field("local_addr6", &self.local_addr6)
            .field("shards", &self.threads.len())
            .finish_non_exhaustive()
    }
}
