//! [`Builder`]: the settings of a [`Dht`] before it starts.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::hooks::Hooks;
use super::{DEFAULT_REQUEST_TIMEOUT, DEFAULT_SAVE_INTERVAL, Dht, Error};
use crate::id::NodeId;
use crate::node::{Config, Event, Method};

/// How the node id is chosen.
#[derive(Clone, Copy, Debug)]
pub(super) enum IdChoice {
    /// The saved one, else random.
    Default,
    /// This one.
    Fixed(NodeId),
}

/// Settings for a [`Dht`]; see [`Dht::builder`].
#[derive(Debug)]
pub struct Builder {
    pub(super) bind: SocketAddr,
    pub(super) bind6: Option<SocketAddr>,
    pub(super) id: IdChoice,
    pub(super) bootstrap: Vec<SocketAddr>,
    pub(super) routers: Vec<SocketAddr>,
    pub(super) config: Config,
    pub(super) state_file: Option<PathBuf>,
    pub(super) save_interval: Duration,
    pub(super) save_peers: bool,
    pub(super) seed: Option<u64>,
    pub(super) hooks: Hooks,
    pub(super) request_timeout: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bind: SocketAddr::from(([0, 0, 0, 0], 6881)),
            bind6: None,
            id: IdChoice::Default,
            bootstrap: Vec::new(),
            routers: Vec::new(),
            config: Config::default(),
            state_file: None,
            save_interval: DEFAULT_SAVE_INTERVAL,
            save_peers: true,
            seed: None,
            hooks: Hooks::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl Builder {
    /// The IPv4 address to bind. Default `0.0.0.0:6881`; port 0 picks a free port.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Also bind this IPv6 address (BEP 32). Default: IPv4 only.
    pub fn bind6(mut self, addr: SocketAddr) -> Self {
        self.bind6 = Some(addr);
        self
    }

    /// Use this node id (default: the saved one, else a random one).
    pub fn node_id(mut self, id: NodeId) -> Self {
        self.id = IdChoice::Fixed(id);
        self
    }

    /// Our public address, if known ([`Config::external_ip`]): the node id is derived from it
    /// per BEP 42, unless the saved id (or the one given to [`Builder::node_id`]) already is
    /// valid for it. The replies' `ip` votes may still move the address later, and the id
    /// with it ([`Dht::id`], [`crate::node::Event::IdChanged`]; the state file then saves the
    /// new id).
    pub fn external_ip(mut self, ip: IpAddr) -> Self {
        self.config.external_ip = Some(ip);
        self
    }

    /// Nodes to join the network through (added to any given before).
    pub fn bootstrap(mut self, nodes: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.bootstrap.extend(nodes);
        self
    }

    /// Routers to join the network through (added to any given before), such as the
    /// resolved [`DEFAULT_BOOTSTRAP_NODES`](crate::DEFAULT_BOOTSTRAP_NODES): asked like [`Builder::bootstrap`] nodes but never
    /// entered into the routing table ([`Node::add_router`](crate::node::Node::add_router)).
    pub fn routers(mut self, routers: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.routers.extend(routers);
        self
    }

    /// Bucket size K (default 8).
    pub fn k(mut self, k: usize) -> Self {
        self.config.k = k.max(1);
        self
    }

    /// Queries a lookup keeps in flight (default 3).
    pub fn alpha(mut self, alpha: usize) -> Self {
        self.config.alpha = alpha.max(1);
        self
    }

    /// BEP 43 read-only mode: answer no queries (default false).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.config.read_only = read_only;
        self
    }

    /// Talk to private, loopback and reserved addresses (default false; needed on a LAN or
    /// loopback).
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.config.allow_private = allow;
        self
    }

    /// The per-source-IP limit on incoming queries (`None`: unlimited).
    pub fn rate_limit_per_ip(mut self, limit: Option<crate::node::RateLimit>) -> Self {
        self.config.rate_limit_per_ip = limit;
        self
    }

    /// The global limit on incoming queries (`None`: unlimited).
    pub fn rate_limit_global(mut self, limit: Option<crate::node::RateLimit>) -> Self {
        self.config.rate_limit_global = limit;
        self
    }

    /// Bytes of replies the node sends per second over all askers
    /// ([`Config::reply_bytes_per_second`]); `None` lifts the budget (benchmarks).
    pub fn reply_bytes_per_second(mut self, rate: Option<u64>) -> Self {
        self.config.reply_bytes_per_second = rate.unwrap_or(u64::MAX);
        self
    }

    /// The whole core configuration (replaces the settings made before; those made after
    /// apply on top).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Load the state from `path` at start (a missing, corrupt or truncated file is logged
    /// and ignored) and save it there periodically and on stop. The node holds an advisory
    /// lock on `path` with `.lock` appended until its last save: [`Builder::start`] fails with
    /// [`crate::driver::Error::StateInUse`] while another process holds it.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// How often the state is saved (default [`DEFAULT_SAVE_INTERVAL`]; at least 1 ms).
    pub fn save_interval(mut self, interval: Duration) -> Self {
        self.save_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Whether the announce store is saved with the routing table (default true).
    pub fn save_peers(mut self, save: bool) -> Self {
        self.save_peers = save;
        self
    }

    /// How long a request may take (default [`DEFAULT_REQUEST_TIMEOUT`]; at least 1 ms): a
    /// lookup or an announce ends then with what it found so far, a ping or a sample fails
    /// with [`Error::Timeout`]. [`Dht::with_timeout`] gives another for some calls.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Seed of the core's random generator (default: from the OS).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Calls `hook` on the hook thread for every informational event (incoming announces and
    /// get_peers, nodes added and removed).
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.hooks.on_event.push(Arc::new(hook));
        self
    }

    /// Calls `hook` on the hook thread for every incoming query.
    pub fn on_query(
        mut self,
        hook: impl Fn(SocketAddr, NodeId, Method) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_query.push(Arc::new(hook));
        self
    }

    /// Calls `hook` on the hook thread for every reply to our queries.
    pub fn on_response(
        mut self,
        hook: impl Fn(SocketAddr, NodeId) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_response.push(Arc::new(hook));
        self
    }

    /// Opens the sockets, loads the state, starts the threads and the bootstrap.
    pub fn start(self) -> Result<Dht, Error> {
        Dht::start(self)
    }
}
