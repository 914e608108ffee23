//! The I/O thread: the only owner of the [`Node`], run as a [`Role`] on the [`Runtime`]'s loop.
//!
//! The runtime owns the sockets, the clock and the batching; this module adds what is the
//! node's own: each turn it applies the commands of the `Dht` handles (a handle wakes the loop
//! through the `Waker`), saves the state at the save interval, and after each flush dispatches
//! the node's events. Completions of requests go to the waiting caller's own channel (a map
//! from the core's [`RequestId`] to a reply sender); everything else goes to the hook thread.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use parking_lot::Mutex;

use super::channel::{self, TrySendError as ReplyError};

use super::persist::{Job, SavedNode, SavedPeer, State};
use super::{AnnounceResult, DhtStats, LookupUpdate, TableSnapshot};
use crate::contact::NodeInfo;
use crate::id::{InfoHash, NodeId};
use crate::items::{ItemError, MutableItem};
use crate::krpc::RawValue;
use crate::node::{Event, GetItemResult, Node, PutItemResult, QueryError, RequestId, SampleReply};
use crate::routing::{Liveness, Snapshot};
pub(crate) use crate::runtime::{Clock, canonical};
use crate::runtime::{Flow, Role, Runtime, Turn};
use crate::time::Instant;

/// Requests awaiting completion at once; more are refused as busy.
const MAX_WAITERS: usize = 65_536;

/// Where the I/O thread answers a caller.
pub(crate) type Reply<T> = channel::Sender<T>;

/// A request from a `Dht` handle. Lookups and announces end within their `timeout` (the core
/// cuts them short then, with what they found).
pub(crate) enum Command {
    Ping(SocketAddr, Reply<Result<NodeId, QueryError>>),
    /// A find_node (`info_hash: None`) or get_peers lookup.
    Lookup {
        target: NodeId,
        get_peers: Option<GetPeersQuery>,
        timeout: Duration,
        reply: Reply<LookupUpdate>,
    },
    Announce {
        info_hash: InfoHash,
        port: Option<u16>,
        seed: bool,
        timeout: Duration,
        reply: Reply<AnnounceResult>,
    },
    /// A BEP 44 get.
    GetItem {
        item: GetItemQuery,
        timeout: Duration,
        reply: Reply<Result<GetItemResult, ItemError>>,
    },
    /// A BEP 44 put.
    PutItem {
        item: PutItemQuery,
        timeout: Duration,
        reply: Reply<Result<PutItemResult, ItemError>>,
    },
    /// End a running lookup now; its waiter gets the partial outcome.
    Cancel(RequestId),
    Sample(SocketAddr, NodeId, Reply<Result<SampleReply, QueryError>>),
    Bootstrap(Vec<SocketAddr>),
    /// Routers to add to the running node, which joins through them now.
    AddRouters(Vec<SocketAddr>),
    AddNode(NodeInfo),
    RoutingTable(Reply<TableSnapshot>),
    Stats(Reply<DhtStats>),
    Save(Sender<io::Result<()>>),
    Stop,
}

/// The get_peers part of a [`Command::Lookup`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct GetPeersQuery {
    /// BEP 33 `noseed`.
    pub noseed: bool,
}

/// The item a [`Command::GetItem`] looks for.
pub(crate) enum GetItemQuery {
    Immutable(NodeId),
    Mutable {
        public_key: [u8; 32],
        salt: Vec<u8>,
        min_seq: Option<i64>,
    },
}

/// The item a [`Command::PutItem`] stores.
pub(crate) enum PutItemQuery {
    Immutable(RawValue),
    Mutable { item: MutableItem, cas: Option<i64> },
}

/// Who waits for a request's completion.
pub(crate) enum Waiter {
    Ping(Reply<Result<NodeId, QueryError>>),
    Lookup(Reply<LookupUpdate>),
    Announce(Reply<AnnounceResult>),
    Sample(Reply<Result<SampleReply, QueryError>>),
    GetItem(Reply<Result<GetItemResult, ItemError>>),
    PutItem(Reply<Result<PutItemResult, ItemError>>),
}

/// Counters of the driver itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DriverCounters {
    pub send_errors: u64,
    pub no_socket: u64,
    pub events_dropped: u64,
    pub recv_errors: u64,
}

/// Everything the I/O thread owns besides the runtime.
pub(crate) struct IoThread {
    pub node: Node,
    pub clock: Clock,
    pub commands: Receiver<Command>,
    pub events: Sender<Event>,
    pub persist: Option<Sender<Job>>,
    pub save_interval: Duration,
    pub save_peers: bool,
    pub waiters: HashMap<RequestId, Waiter>,
    pub counters: DriverCounters,
    /// The node's current id, shared with the `Dht` handles.
    pub id: Arc<Mutex<NodeId>>,
}

/// The node's role on the runtime: the I/O thread and its next periodic save.
struct NodeRole {
    io: IoThread,
    next_save: Instant,
}

impl Role for NodeRole {
    type Endpoint = Node;

    fn endpoint(&mut self, slot: usize) -> Option<&mut Node> {
        (slot == 0).then_some(&mut self.io.node)
    }

    fn turn(&mut self, now: Instant, turn: &mut Turn<'_>) -> Flow {
        let stats = turn.stats();
        let counters = &mut self.io.counters;
        counters.send_errors = stats.send_errors + stats.send_queue_full;
        counters.no_socket = stats.no_socket;
        counters.recv_errors = stats.recv_errors;
        // Commands may call into the node.
        turn.touch(0);
        loop {
            match self.io.commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                    self.io.shutdown();
                    return Flow::Stop;
                }
                Ok(command) => self.io.command(now, command),
                Err(TryRecvError::Empty) => break,
            }
        }
        if self.io.persist.is_some() && now >= self.next_save {
            self.next_save = now + self.io.save_interval;
            self.io.save(now, None);
        }
        Flow::Continue
    }

    fn after_flush(&mut self, _slot: usize) {
        while let Some(event) = self.io.node.poll_event() {
            self.io.dispatch(event);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        // A save interval shorter than the node's tick would otherwise be stretched to it.
        self.io.persist.is_some().then_some(self.next_save)
    }
}

impl IoThread {
    /// Runs on `runtime` (whose slot 0 holds the node's sockets) until a `Stop` command or
    /// until every handle is gone.
    pub(super) fn run(self, mut runtime: Runtime) {
        let next_save = self.clock.now() + self.save_interval;
        let mut role = NodeRole {
            io: self,
            next_save,
        };
        if let Err(e) = runtime.run(&mut role) {
            log::error!("the I/O loop failed: {e}");
            role.io.shutdown();
        }
    }

    fn dispatch(&mut self, event: Event) {
        if let Event::PeersFound { request, peers } = event {
            let Some(Waiter::Lookup(tx)) = self.waiters.get(&request) else {
                return;
            };
            // The channel holds every update of a lookup (its capacity is the lookup's peer
            // bound): only a caller that went away refuses one. Its lookup is ended.
            if let Err(ReplyError::Disconnected(_)) = tx.try_send(LookupUpdate::Peers(peers)) {
                self.waiters.remove(&request);
                self.node.cancel(self.clock.now(), request);
            }
            return;
        }
        let request = match &event {
            Event::LookupDone { request, .. }
            | Event::AnnounceDone { request, .. }
            | Event::PingDone { request, .. }
            | Event::SampleDone { request, .. }
            | Event::GetItemDone { request, .. }
            | Event::PutItemDone { request, .. } => Some(*request),
            _ => None,
        };
        let Some(request) = request else {
            if let Event::IdChanged {
                new, external_ip, ..
            } = &event
            {
                log::info!("new BEP 42 node id {new} for external address {external_ip}");
                *self.id.lock() = *new;
            }
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.counters.events_dropped += 1,
                Err(TrySendError::Disconnected(_)) => {}
            }
            return;
        };
        let Some(waiter) = self.waiters.remove(&request) else {
            if let Event::LookupDone { kind, outcome, .. } = &event {
                log::debug!(
                    "{kind:?} lookup done: {} answers, {} closest",
                    outcome.responses,
                    outcome.closest.len()
                );
            }
            return;
        };
        // A caller that gave up has dropped its receiver: ignore send errors.
        match (waiter, event) {
            (Waiter::Ping(tx), Event::PingDone { result, .. }) => {
                let _ = tx.try_send(result);
            }
            (Waiter::Lookup(tx), Event::LookupDone { outcome, .. }) => {
                let _ = tx.try_send(LookupUpdate::Done(outcome));
            }
            (
                Waiter::Announce(tx),
                Event::AnnounceDone {
                    outcome,
                    sent,
                    acknowledged,
                    ..
                },
            ) => {
                let _ = tx.try_send(AnnounceResult {
                    outcome,
                    sent,
                    acknowledged,
                });
            }
            (Waiter::Sample(tx), Event::SampleDone { result, .. }) => {
                let _ = tx.try_send(result);
            }
            (Waiter::GetItem(tx), Event::GetItemDone { result, .. }) => {
                let _ = tx.try_send(Ok(result));
            }
            (Waiter::PutItem(tx), Event::PutItemDone { result, .. }) => {
                let _ = tx.try_send(Ok(result));
            }
            _ => log::warn!("completion of request {request:?} does not match its waiter"),
        }
    }

    /// Keeps `waiter` until `request` completes. Past [`MAX_WAITERS`] the waiter is dropped,
    /// and its caller sees the driver stopped answering.
    fn wait(&mut self, request: RequestId, waiter: Waiter) {
        if self.waiters.len() < MAX_WAITERS {
            self.waiters.insert(request, waiter);
        }
    }

    fn command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Ping(addr, tx) => {
                let request = self.node.ping(now, canonical(addr));
                self.wait(request, Waiter::Ping(tx));
            }
            Command::Lookup {
                target,
                get_peers,
                timeout,
                reply,
            } => {
                let request = match get_peers {
                    Some(query) => self.node.get_peers_with(now, target, query.noseed),
                    None => self.node.find_node(now, target),
                };
                if reply.try_send(LookupUpdate::Started(request)).is_err() {
                    self.node.cancel(now, request);
                }
                self.node.set_deadline(request, now + timeout);
                // A lookup that could not start has completed already: its event is queued
                // and meets the waiter at the next flush.
                self.wait(request, Waiter::Lookup(reply));
            }
            Command::Announce {
                info_hash,
                port,
                seed,
                timeout,
                reply,
            } => {
                let request = self.node.announce(now, info_hash, port, seed);
                self.node.set_deadline(request, now + timeout);
                self.wait(request, Waiter::Announce(reply));
            }
            Command::GetItem {
                item,
                timeout,
                reply,
            } => {
                let started = match item {
                    GetItemQuery::Immutable(target) => Ok(self.node.get_immutable(now, target)),
                    GetItemQuery::Mutable {
                        public_key,
                        salt,
                        min_seq,
                    } => self.node.get_mutable(now, public_key, &salt, min_seq),
                };
                match started {
                    Ok(request) => {
                        self.node.set_deadline(request, now + timeout);
                        self.wait(request, Waiter::GetItem(reply));
                    }
                    Err(e) => {
                        let _ = reply.try_send(Err(e));
                    }
                }
            }
            Command::PutItem {
                item,
                timeout,
                reply,
            } => {
                let started = match item {
                    PutItemQuery::Immutable(value) => self.node.put_immutable(now, value),
                    PutItemQuery::Mutable { item, cas } => self.node.put_mutable(now, item, cas),
                };
                match started {
                    Ok(request) => {
                        self.node.set_deadline(request, now + timeout);
                        self.wait(request, Waiter::PutItem(reply));
                    }
                    Err(e) => {
                        let _ = reply.try_send(Err(e));
                    }
                }
            }
            Command::Cancel(request) => {
                self.node.cancel(now, request);
            }
            Command::Sample(addr, target, tx) => {
                let request = self.node.sample_infohashes(now, canonical(addr), target);
                self.wait(request, Waiter::Sample(tx));
            }
            Command::Bootstrap(nodes) => {
                let nodes: Vec<SocketAddr> = nodes.into_iter().map(canonical).collect();
                self.node.bootstrap(now, &nodes);
            }
            Command::AddRouters(routers) => {
                let routers: Vec<SocketAddr> = routers.into_iter().map(canonical).collect();
                self.node.bootstrap_routers(now, &routers);
            }
            Command::AddNode(node) => {
                self.node
                    .add_known_node(now, NodeInfo::new(node.id, canonical(node.addr)));
            }
            Command::RoutingTable(tx) => {
                let _ = tx.try_send(TableSnapshot {
                    id: self.node.id(),
                    ipv4: self.node.routing_table().snapshot(now),
                    ipv6: self.node.routing_table6().snapshot(now),
                });
            }
            Command::Stats(tx) => {
                let _ = tx.try_send(DhtStats {
                    node: self.node.stats().clone(),
                    nodes_ipv4: self.node.routing_table().len(),
                    nodes_ipv6: self.node.routing_table6().len(),
                    info_hashes: self.node.peer_store().len(),
                    peers: self.node.peer_store().peer_count(),
                    queries_in_flight: self.node.queries_in_flight(),
                    operations_running: self.node.operations_running(),
                    send_errors: self.counters.send_errors,
                    recv_errors: self.counters.recv_errors,
                    no_socket: self.counters.no_socket,
                    events_dropped: self.counters.events_dropped,
                });
            }
            Command::Save(tx) => {
                if self.persist.is_some() {
                    self.save(now, Some(tx));
                } else {
                    let _ = tx.send(Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "no state file configured",
                    )));
                }
            }
            Command::Stop => {}
        }
    }

    fn save(&mut self, now: Instant, reply: Option<Sender<io::Result<()>>>) {
        let Some(persist) = &self.persist else { return };
        let state = state_of(&self.node, now, self.save_peers);
        if let Err(e) = persist.send(Job { state, reply })
            && let Some(reply) = e.into_inner().reply
        {
            let _ = reply.send(Err(io::Error::other("persistence thread is gone")));
        }
    }

    fn shutdown(&mut self) {
        let now = self.clock.now();
        self.save(now, None);
        // Dropping `self` closes the persistence and hook channels: those threads finish
        // their queue and end.
    }
}

/// The node's persistent state at `now`.
pub(crate) fn state_of(node: &Node, now: Instant, with_peers: bool) -> State {
    let mut nodes: Vec<SavedNode> = Vec::new();
    for snapshot in [
        node.routing_table().snapshot(now),
        node.routing_table6().snapshot(now),
    ] {
        nodes.extend(
            snapshot
                .nodes
                .iter()
                .filter(|n| n.liveness != Liveness::Bad)
                .map(|n| SavedNode {
                    node: n.node,
                    since_response: n.since_response,
                }),
        );
    }
    nodes.sort_by_key(|n| n.since_response.unwrap_or(Duration::MAX));
    let peers = if with_peers {
        node.peer_store()
            .peers()
            .map(|p| SavedPeer {
                info_hash: p.info_hash,
                addr: p.addr,
                seed: p.seed,
                age: now.saturating_duration_since(p.announced_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    State {
        id: node.id(),
        nodes,
        peers,
    }
}

/// Loads a saved state into a fresh node: its nodes into the tables, its announces into the
/// store (those not yet expired). Returns how many nodes became entries.
pub(crate) fn restore(node: &mut Node, now: Instant, state: &State) -> usize {
    let snapshot = Snapshot {
        own_id: state.id,
        nodes: state
            .nodes
            .iter()
            .map(|n| crate::routing::SnapshotEntry {
                node: n.node,
                liveness: Liveness::Questionable,
                since_response: n.since_response,
                failed_queries: 0,
            })
            .collect(),
    };
    let restored = node.restore_routing(now, &snapshot);
    let ttl = node.peer_store().config().peer_ttl;
    for peer in &state.peers {
        if peer.age < ttl {
            node.restore_peer(now, peer.info_hash, peer.addr, peer.seed);
        }
    }
    restored
}
