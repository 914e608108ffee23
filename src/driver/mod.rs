//! The driver: btdht on real UDP sockets, as a thread per role.
//!
//! [`Dht::builder`] opens the sockets and starts:
//! - the **I/O thread** (`io_thread.rs`), sole owner of the sans-IO [`Node`] and the sockets;
//! - the **hook thread** ([`hooks`]), which hands events to callbacks and subscribers so user
//!   code never stalls the I/O;
//! - with a state file, the **persistence thread** ([`persist`]), which writes snapshots
//!   atomically, periodically and on stop.
//!
//! A [`Dht`] is a cheap handle (`Clone + Send + Sync`): its methods send a command to the I/O
//! thread, wake it, and wait for the answer on a [`Receiver`] of their own. Each call is bounded
//! by the handle's request timeout ([`Builder::request_timeout`], or per call through
//! [`Dht::with_timeout`]). Lookups and announces are ended by the core at that timeout with
//! what they found so far (`outcome.partial`), so a short timeout loses nothing already found;
//! [`Dht::get_peers`] streams the peers as they arrive. [`Dht::stop`] ends every thread within
//! [`STOP_TIMEOUT`] or says which did not stop.
//!
//! With the `async` feature every request also exists as a future (`ping_async`,
//! `find_node_async`, ..., and [`GetPeers`]'s `next_async`/`outcome_async`) that runs on any
//! executor: the I/O thread wakes the task, and ends lookups at their timeout itself.
//!
//! ```no_run
//! use std::time::Duration;
//! use btdht::Dht;
//!
//! # fn main() -> Result<(), btdht::Error> {
//! let dht = Dht::builder()
//!     .bind("127.0.0.1:0".parse().unwrap())
//!     .allow_private(true)
//!     .bootstrap(["127.0.0.2:6881".parse().unwrap()])
//!     .request_timeout(Duration::from_secs(10))
//!     .start()?;
//! let info_hash = btdht::InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
//! let mut lookup = dht.get_peers(info_hash, false)?;
//! for peer in &mut lookup {
//!     println!("peer {peer}");
//! }
//! let found = lookup.outcome()?;
//! println!(
//!     "{} peers, {} nodes{}",
//!     found.peers.len(),
//!     found.closest.len(),
//!     if found.partial { " (timed out)" } else { "" }
//! );
//! dht.stop()?;
//! # Ok(())
//! # }
//! ```

mod builder;
mod channel;
#[cfg(feature = "async")]
mod futures;
mod get_peers;
pub mod hooks;
mod io_thread;
pub mod persist;
pub mod socket;

pub use builder::Builder;
use builder::IdChoice;
pub use channel::{
    IntoIter, Iter, Receiver, Recv, RecvError, RecvTimeoutError, TryIter, TryRecvError,
};
pub use get_peers::GetPeers;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use mio::Waker;
use parking_lot::Mutex;

use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::items::{ItemError, MutableItem};
use crate::krpc::RawValue;
use crate::node::{
    Event, GetItemResult, LookupOutcome, Node, PutItemResult, QueryError, RequestId, SampleReply,
    Stats,
};
use crate::routing::Snapshot;
use crate::runtime::Runtime;
use hooks::Subscribers;
use io_thread::{Clock, Command, GetItemQuery, GetPeersQuery, IoThread, PutItemQuery, Reply};

/// The public routers of the Mainline DHT, as `host:port` names: a way in for a node with no
/// other ([`Builder::routers`] and [`Dht::add_routers`] take addresses: resolve these first,
/// e.g. with [`std::net::ToSocketAddrs`]).
pub const DEFAULT_BOOTSTRAP_NODES: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
    "router.utorrent.com:6881",
];

/// How long [`Dht::stop`] waits for the threads to end.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// The default request timeout (see [`Builder::request_timeout`]). 20 seconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long past a lookup's timeout its caller waits for the I/O thread to hand over the
/// partial outcome before it reports [`Error::Timeout`].
const ANSWER_GRACE: Duration = Duration::from_secs(2);
/// Default period of state saves. 5 minutes.
pub const DEFAULT_SAVE_INTERVAL: Duration = Duration::from_secs(300);
/// Commands that may wait for the I/O thread at once.
const COMMAND_QUEUE: usize = 4_096;
/// Events that may wait for the hook thread; more are dropped and counted.
const EVENT_QUEUE: usize = 16_384;

/// What went wrong with a driver call.
#[derive(Debug)]
pub enum Error {
    /// A socket could not be opened.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Another I/O error (poll setup, thread start, state save).
    Io(io::Error),
    /// Another node (in this process or another) keeps its state in the same state file: it
    /// holds the lock file [`persist::lock_path`] beside it. Nothing was started.
    StateInUse {
        /// The state file.
        path: PathBuf,
    },
    /// No answer within the request timeout (pings and samples; lookups and announces end
    /// with a partial outcome instead, and report this only if the I/O thread is stuck).
    Timeout,
    /// The I/O thread's command queue is full; nothing was sent.
    Busy,
    /// The DHT was stopped.
    Stopped,
    /// The remote or the core refused the query.
    Query(QueryError),
    /// A BEP 44 item was refused before anything was sent (too big, bad signature).
    Item(ItemError),
    /// Threads that did not end within [`STOP_TIMEOUT`].
    FailToStop(Vec<&'static str>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::StateInUse { path } => write!(
                f,
                "state file {} is in use by another node (it holds {})",
                path.display(),
                persist::lock_path(path).display()
            ),
            Error::Timeout => f.write_str("no answer before the timeout"),
            Error::Busy => f.write_str("too many commands waiting for the DHT"),
            Error::Stopped => f.write_str("the DHT is stopped"),
            Error::Query(e) => write!(f, "{e}"),
            Error::Item(e) => write!(f, "{e}"),
            Error::FailToStop(names) => {
                write!(f, "threads did not stop in time: {}", names.join(", "))
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            Error::Query(e) => Some(e),
            Error::Item(e) => Some(e),
            _ => None,
        }
    }
}

/// What the I/O thread tells the caller of a lookup, in this order.
#[derive(Debug)]
pub(crate) enum LookupUpdate {
    /// The core's id of the lookup (to cancel it).
    Started(RequestId),
    /// New peers (get_peers).
    Peers(Vec<SocketAddr>),
    /// The end.
    Done(LookupOutcome),
}

/// The result of an announce: the get_peers lookup, then announce_peer to the closest nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResult {
    /// The lookup (peers already known, closest nodes and their tokens). `partial` if the
    /// request timeout cut it short: the announce then went to the closest nodes found by
    /// then, and `acknowledged` counts the acknowledgements received by then.
    pub outcome: LookupOutcome,
    /// announce_peer queries sent.
    pub sent: usize,
    /// announce_peer queries acknowledged.
    pub acknowledged: usize,
}

/// A copy of the routing tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSnapshot {
    /// The node's id.
    pub id: NodeId,
    /// The IPv4 table.
    pub ipv4: Snapshot,
    /// The IPv6 table.
    pub ipv6: Snapshot,
}

impl TableSnapshot {
    /// Every node of both tables.
    pub fn nodes(&self) -> impl Iterator<Item = NodeInfo> + '_ {
        self.ipv4
            .nodes
            .iter()
            .chain(&self.ipv6.nodes)
            .map(|n| n.node)
    }

    /// How many nodes both tables hold.
    pub fn len(&self) -> usize {
        self.ipv4.nodes.len() + self.ipv6.nodes.len()
    }

    /// Whether both tables are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The core's counters with the driver's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DhtStats {
    /// The core's counters.
    pub node: Stats,
    /// IPv4 routing table entries.
    pub nodes_ipv4: usize,
    /// IPv6 routing table entries.
    pub nodes_ipv6: usize,
    /// Info-hashes in the announce store.
    pub info_hashes: usize,
    /// Peers in the announce store.
    pub peers: usize,
    /// Queries awaiting an answer.
    pub queries_in_flight: usize,
    /// Lookups and announces running.
    pub operations_running: usize,
    /// Datagrams the OS refused to send (full buffer, unreachable).
    pub send_errors: u64,
    /// Errors reading the sockets.
    pub recv_errors: u64,
    /// Datagrams for an address family without a socket.
    pub no_socket: u64,
    /// Events dropped because the hook thread was behind.
    pub events_dropped: u64,
}

/// Signals on drop that a thread ended, even if it panicked.
struct DoneGuard(&'static str, Sender<&'static str>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

fn spawn(
    name: &'static str,
    done: &Sender<&'static str>,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, Error> {
    let guard = DoneGuard(name, done.clone());
    std::thread::Builder::new()
        .name(format!("btdht-{name}"))
        .spawn(move || {
            let _guard = guard;
            f();
        })
        .map_err(Error::Io)
}

struct Threads {
    handles: HashMap<&'static str, JoinHandle<()>>,
    done: crossbeam_channel::Receiver<&'static str>,
}

struct Inner {
    commands: Sender<Command>,
    waker: Waker,
    /// The node's current id: the I/O thread updates it when the node takes a BEP 42 id.
    id: Arc<Mutex<NodeId>>,
    local_addr: SocketAddr,
    local_addr6: Option<SocketAddr>,
    subscribers: Arc<Subscribers>,
    threads: Mutex<Option<Threads>>,
    /// Updates a lookup may send: its peer bound, `Started` and `Done`.
    lookup_updates: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: tell the threads to end, without waiting for them.
        let _ = self.commands.try_send(Command::Stop);
        let _ = self.waker.wake();
    }
}

/// A running DHT node on real sockets. Cheap to clone; every clone drives the same node (and
/// has its own request timeout, see [`Dht::with_timeout`]).
#[derive(Clone)]
pub struct Dht {
    inner: Arc<Inner>,
    timeout: Duration,
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("id", &self.id())
            .field("local_addr", &self.inner.local_addr)
            .field("local_addr6", &self.inner.local_addr6)
            .field("request_timeout", &self.timeout)
            .finish()
    }
}

impl Dht {
    /// Settings for a new DHT node, with the defaults of [`Config`](crate::node::Config).
    pub fn builder() -> Builder {
        Builder::default()
    }

    #[allow(clippy::disallowed_methods)] // the node is seeded from OS randomness when no seed is given
    fn start(builder: Builder) -> Result<Dht, Error> {
        let Builder {
            bind,
            bind6,
            id,
            bootstrap,
            routers,
            mut config,
            state_file,
            save_interval,
            save_peers,
            seed,
            hooks,
            request_timeout,
        } = builder;
        if hooks.wants_queries() {
            config.query_events = true;
        }
        // BEP 32: a node on both families asks for both while bootstrapping.
        config.dual_stack = bind6.is_some();
        let mut sock4 =
            Some(socket::bind_udp(bind).map_err(|source| Error::Bind { addr: bind, source })?);
        let mut sock6 = match bind6 {
            Some(addr) => {
                Some(socket::bind_udp(addr).map_err(|source| Error::Bind { addr, source })?)
            }
            None => None,
        };
        let local_addr = sock4
            .as_ref()
            .map(|s| s.local_addr())
            .transpose()
            .map_err(Error::Io)?
            .unwrap_or(bind);
        let local_addr6 = sock6
            .as_ref()
            .map(|s| s.local_addr())
            .transpose()
            .map_err(Error::Io)?;

        // Held by the persistence thread until its last save.
        let state_lock = match &state_file {
            Some(path) => match persist::lock_state(path) {
                persist::Lock::Held(file) => Some(file),
                persist::Lock::InUse => return Err(Error::StateInUse { path: path.clone() }),
                persist::Lock::Unavailable(e) => {
                    log::warn!(
                        "cannot lock {} ({e}): nothing keeps another node from sharing the state file",
                        persist::lock_path(path).display()
                    );
                    None
                }
            },
            None => None,
        };
        if let Some(path) = &state_file {
            let removed = persist::remove_stale_temporaries(path);
            if removed > 0 {
                log::info!("removed {removed} temporary files of interrupted saves");
            }
        }
        let state = match &state_file {
            Some(path) => match persist::load_state(path) {
                Ok(state) => state,
                Err(e) => {
                    log::warn!("ignoring state file {}: {e}", path.display());
                    None
                }
            },
            None => None,
        };
        let mut rng = rand::rng();
        let id = match id {
            IdChoice::Fixed(id) => id,
            IdChoice::Default => state
                .as_ref()
                .map(|s| s.id)
                .unwrap_or_else(|| NodeId::random(&mut rng)),
        };
        let clock = Clock::start();
        let now = clock.now();
        let lookup_updates = config.lookup_max_peers.saturating_add(2);
        let mut node = Node::new(config, id, seed.unwrap_or_else(rand::random), now);
        // A configured external address may have given the node a BEP 42 id of its own.
        let id = node.id();
        let shared_id = Arc::new(Mutex::new(id));
        let restored = match &state {
            Some(state) => io_thread::restore(&mut node, now, state),
            None => 0,
        };
        if restored > 0 {
            log::info!("restored {restored} nodes from the state file");
        }
        let bootstrap: Vec<SocketAddr> = bootstrap.into_iter().map(io_thread::canonical).collect();
        let routers: Vec<SocketAddr> = routers.into_iter().map(io_thread::canonical).collect();
        node.add_router(&routers);
        if !bootstrap.is_empty() || !routers.is_empty() || restored > 0 {
            node.bootstrap(now, &bootstrap);
        }

        let mut runtime = Runtime::new(clock).map_err(Error::Io)?;
        let waker = runtime.waker().map_err(Error::Io)?;
        runtime.add(sock4.take(), sock6.take()).map_err(Error::Io)?;

        let (commands_tx, commands_rx) = crossbeam_channel::bounded(COMMAND_QUEUE);
        let (events_tx, events_rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let subscribers = Arc::new(Subscribers::default());
        let mut handles = HashMap::new();

        let persist_tx = match state_file {
            Some(path) => {
                let (tx, rx) = crossbeam_channel::bounded(4);
                handles.insert(
                    "persist",
                    spawn("persist", &done_tx, move || {
                        let _lock = state_lock;
                        persist::run(path, rx)
                    })?,
                );
                Some(tx)
            }
            None => None,
        };
        let subs = subscribers.clone();
        handles.insert(
            "hooks",
            spawn("hooks", &done_tx, move || {
                hooks::run(events_rx, hooks, subs)
            })?,
        );
        let io = IoThread {
            node,
            clock,
            commands: commands_rx,
            events: events_tx,
            persist: persist_tx,
            save_interval,
            save_peers,
            waiters: HashMap::new(),
            counters: Default::default(),
            id: shared_id.clone(),
        };
        handles.insert("io", spawn("io", &done_tx, move || io.run(runtime))?);
        log::info!("DHT node {id} listening on {local_addr}");
        Ok(Dht {
            inner: Arc::new(Inner {
                commands: commands_tx,
                waker,
                id: shared_id,
                local_addr,
                local_addr6,
                subscribers,
                threads: Mutex::new(Some(Threads {
                    handles,
                    done: done_rx,
                })),
                lookup_updates,
            }),
            timeout: request_timeout,
        })
    }

    /// This node's current id: it changes when the node takes a BEP 42 id for the external
    /// address the replies elect (each change is also reported by
    /// [`crate::node::Event::IdChanged`]).
    pub fn id(&self) -> NodeId {
        *self.inner.id.lock()
    }

    /// The bound IPv4 address (with the port picked when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The bound IPv6 address, if any.
    pub fn local_addr6(&self) -> Option<SocketAddr> {
        self.inner.local_addr6
    }

    /// This handle's request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// A handle on the same node whose calls have `timeout` (at least 1 ms) as their request
    /// timeout: `dht.with_timeout(Duration::from_secs(5)).find_node(target)`.
    pub fn with_timeout(&self, timeout: Duration) -> Dht {
        Dht {
            inner: self.inner.clone(),
            timeout: timeout.max(Duration::from_millis(1)),
        }
    }

    fn wake(&self) -> Result<(), Error> {
        self.inner.waker.wake().map_err(Error::Io)
    }

    /// Sends `command`, waiting for room in the queue at most `timeout`.
    fn send(&self, command: Command, timeout: Duration) -> Result<(), Error> {
        self.inner
            .commands
            .send_timeout(command, timeout)
            .map_err(|e| match e {
                crossbeam_channel::SendTimeoutError::Timeout(_) => Error::Timeout,
                crossbeam_channel::SendTimeoutError::Disconnected(_) => Error::Stopped,
            })?;
        self.wake()
    }

    /// Sends `command` if the queue has room now.
    fn try_send(&self, command: Command) -> Result<(), Error> {
        self.inner.commands.try_send(command).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => Error::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => Error::Stopped,
        })?;
        self.wake()
    }

    /// Sends the command `make` builds around a reply channel, and waits for its single
    /// answer until `deadline`.
    fn request<T>(
        &self,
        deadline: std::time::Instant,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = channel::bounded(1);
        self.send(make(tx), self.timeout)?;
        wait_reply(&rx, deadline)
    }

    /// The request timeout and `extra` from now (a year at most).
    #[allow(clippy::disallowed_methods)] // a blocking call waits on the OS clock
    fn deadline(&self, extra: Duration) -> std::time::Instant {
        let now = std::time::Instant::now();
        let wait = self
            .timeout
            .saturating_add(extra)
            .min(Duration::from_secs(86_400 * 365));
        now.checked_add(wait).unwrap_or(now)
    }

    fn start_lookup(
        &self,
        target: NodeId,
        get_peers: Option<GetPeersQuery>,
    ) -> Result<GetPeers, Error> {
        let (tx, rx) = channel::bounded(self.inner.lookup_updates);
        self.try_send(Command::Lookup {
            target,
            get_peers,
            timeout: self.timeout,
            reply: tx,
        })?;
        Ok(GetPeers::new(self.clone(), rx, self.deadline(ANSWER_GRACE)))
    }

    /// Pings `addr` and returns its node id ([`Error::Timeout`] after the request timeout).
    pub fn ping(&self, addr: SocketAddr) -> Result<NodeId, Error> {
        self.request(self.deadline(Duration::ZERO), |tx| Command::Ping(addr, tx))?
            .map_err(Error::Query)
    }

    /// Looks up the nodes closest to `target` (`closest` of the outcome; `partial` if the
    /// request timeout cut the lookup short).
    pub fn find_node(&self, target: NodeId) -> Result<LookupOutcome, Error> {
        self.start_lookup(target, None)?.outcome()
    }

    /// Starts a lookup of the peers of `info_hash`: the [`GetPeers`] yields them as they
    /// arrive, then the outcome (the closest nodes with their tokens, the counts). With
    /// `noseed` (BEP 33) the nodes leave out the peers that announced themselves as seeds.
    /// Never blocks ([`Error::Busy`] if the command queue is full).
    pub fn get_peers(&self, info_hash: InfoHash, noseed: bool) -> Result<GetPeers, Error> {
        self.start_lookup(info_hash, Some(GetPeersQuery { noseed }))
    }

    /// Announces that we have `info_hash`, reachable on `port` (`None`: the port of our DHT
    /// socket, BEP 5's implied_port), as a seed if `seed` (BEP 33).
    pub fn announce(
        &self,
        info_hash: InfoHash,
        port: Option<u16>,
        seed: bool,
    ) -> Result<AnnounceResult, Error> {
        self.request(self.deadline(ANSWER_GRACE), |reply| {
            self.announce_command(info_hash, port, seed, reply)
        })
    }

    fn announce_command(
        &self,
        info_hash: InfoHash,
        port: Option<u16>,
        seed: bool,
        reply: Reply<AnnounceResult>,
    ) -> Command {
        Command::Announce {
            info_hash,
            port,
            seed,
            timeout: self.timeout,
            reply,
        }
    }

    /// Asks `addr` for a BEP 51 sample of the info-hashes it stores, around `target`.
    pub fn sample_infohashes(
        &self,
        addr: SocketAddr,
        target: NodeId,
    ) -> Result<SampleReply, Error> {
        self.request(self.deadline(Duration::ZERO), |tx| {
            Command::Sample(addr, target, tx)
        })?
        .map_err(Error::Query)
    }

    /// Stores the BEP 44 immutable item `value` (any bencoded value, at most
    /// [`MAX_VALUE_LEN`](crate::items::MAX_VALUE_LEN) bytes) on the nodes closest to its
    /// target: the result's `target` is how to get it back, `stored` how many nodes took it.
    pub fn put_immutable(&self, value: RawValue) -> Result<PutItemResult, Error> {
        self.put_item(PutItemQuery::Immutable(value))
    }

    /// Stores the signed BEP 44 mutable item `item` on the nodes closest to its target; with
    /// `cas`, only where the stored sequence number is `cas` (the refusals' error codes, e.g.
    /// 301, are in the result's `errors`).
    pub fn put_mutable(&self, item: MutableItem, cas: Option<i64>) -> Result<PutItemResult, Error> {
        self.put_item(PutItemQuery::Mutable { item, cas })
    }

    /// Gets the BEP 44 immutable item `target`: the result's `item` is the value whose SHA-1
    /// is `target`, if a node had it.
    pub fn get_immutable(&self, target: NodeId) -> Result<GetItemResult, Error> {
        self.get_item(GetItemQuery::Immutable(target))
    }

    /// Gets the BEP 44 mutable item of `public_key` under `salt` (empty: none): the result's
    /// `item` is the one with the highest sequence number, at least `min_seq`, whose
    /// signature verifies.
    pub fn get_mutable(
        &self,
        public_key: [u8; 32],
        salt: &[u8],
        min_seq: Option<i64>,
    ) -> Result<GetItemResult, Error> {
        self.get_item(GetItemQuery::Mutable {
            public_key,
            salt: salt.to_vec(),
            min_seq,
        })
    }

    fn get_item(&self, item: GetItemQuery) -> Result<GetItemResult, Error> {
        self.request(self.deadline(ANSWER_GRACE), |reply| Command::GetItem {
            item,
            timeout: self.timeout,
            reply,
        })?
        .map_err(Error::Item)
    }

    fn put_item(&self, item: PutItemQuery) -> Result<PutItemResult, Error> {
        self.request(self.deadline(ANSWER_GRACE), |reply| Command::PutItem {
            item,
            timeout: self.timeout,
            reply,
        })?
        .map_err(Error::Item)
    }

    /// Joins (again) through `nodes`; does not wait.
    pub fn bootstrap(&self, nodes: &[SocketAddr]) -> Result<(), Error> {
        self.send(Command::Bootstrap(nodes.to_vec()), STOP_TIMEOUT)
    }

    /// Adds `routers` (such as the resolved [`DEFAULT_BOOTSTRAP_NODES`]) to the running node,
    /// as [`Builder::routers`] does at start: they are asked like bootstrap nodes but never
    /// enter the routing table (one the table learned as an ordinary node before leaves it).
    /// The node joins through them and its other seeds now; does not wait. For a node that
    /// binds before it knows its routers, e.g. while their names resolve.
    pub fn add_routers(&self, routers: &[SocketAddr]) -> Result<(), Error> {
        self.send(Command::AddRouters(routers.to_vec()), STOP_TIMEOUT)
    }

    /// Adds a node believed live; it is pinged and enters the table if it answers.
    pub fn add_node(&self, node: NodeInfo) -> Result<(), Error> {
        self.send(Command::AddNode(node), STOP_TIMEOUT)
    }

    /// A copy of the routing tables.
    pub fn routing_table(&self) -> Result<TableSnapshot, Error> {
        self.request(self.deadline(Duration::ZERO), Command::RoutingTable)
    }

    /// The counters.
    pub fn stats(&self) -> Result<DhtStats, Error> {
        self.request(self.deadline(Duration::ZERO), Command::Stats)
    }

    /// A new receiver of the informational events (incoming announces and get_peers, nodes
    /// added and removed). It holds up to [`hooks::SUBSCRIBER_CAPACITY`] events; a receiver
    /// that falls behind loses the newest ones. Dropping it ends the subscription.
    pub fn subscribe(&self) -> Receiver<Event> {
        self.inner.subscribers.subscribe()
    }

    /// Saves the state to the state file now and waits for the write.
    pub fn save(&self) -> Result<(), Error> {
        let deadline = self.deadline(Duration::ZERO);
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Save(tx), self.timeout)?;
        rx.recv_deadline(deadline)
            .map_err(|e| match e {
                crossbeam_channel::RecvTimeoutError::Timeout => Error::Timeout,
                crossbeam_channel::RecvTimeoutError::Disconnected => Error::Stopped,
            })?
            .map_err(Error::Io)
    }

    /// Stops the node: saves the state (if a state file is set), ends every thread and joins
    /// them, within [`STOP_TIMEOUT`]. Returns [`Error::FailToStop`] naming the threads that
    /// did not end (they are left detached). Stopping twice is harmless.
    #[allow(clippy::disallowed_methods)] // waits for the threads on the OS clock
    pub fn stop(&self) -> Result<(), Error> {
        let Some(threads) = self.inner.threads.lock().take() else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        let _ = self.inner.commands.send_deadline(Command::Stop, deadline);
        let _ = self.inner.waker.wake();
        let Threads {
            mut handles, done, ..
        } = threads;
        let mut finished = Vec::new();
        while finished.len() < handles.len() {
            match done.recv_deadline(deadline) {
                Ok(name) => finished.push(name),
                Err(_) => break,
            }
        }
        let mut panicked = false;
        for name in &finished {
            if let Some(handle) = handles.remove(name) {
                panicked |= handle.join().is_err();
            }
        }
        if panicked {
            log::error!("a DHT thread panicked");
        }
        if handles.is_empty() {
            Ok(())
        } else {
            let mut names: Vec<&'static str> = handles.keys().copied().collect();
            names.sort_unstable();
            Err(Error::FailToStop(names))
        }
    }
}

/// Waits for the answer on `rx` until `deadline`.
fn wait_reply<T>(rx: &Receiver<T>, deadline: std::time::Instant) -> Result<T, Error> {
    rx.recv_deadline(deadline).map_err(|e| match e {
        RecvTimeoutError::Timeout => Error::Timeout,
        RecvTimeoutError::Disconnected => Error::Stopped,
    })
}

/// Loads a state file written by a [`Dht`] (see [`persist`]); `Ok(None)` if it is missing.
pub fn load(path: &std::path::Path) -> Result<Option<persist::State>, persist::StateError> {
    persist::load_state(path)
}
