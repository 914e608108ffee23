//! The simulated network: a deterministic discrete-event network of sans-IO protocol cores.
//!
//! [`SimNet`] owns many [`Endpoint`]s, each at a virtual [`SocketAddr`], and a queue of future
//! events ordered by (virtual time, sequence number), so that ties break in the order events were
//! scheduled. Running the network pops events in that order: a datagram delivery calls the
//! receiver's [`Endpoint::handle_datagram`], a timer calls [`Endpoint::handle_timeout`]. After
//! every call into an endpoint the simulator drains its [`Endpoint::poll_transmit`] (each datagram
//! goes through the [`LinkModel`]: loss, latency, jitter, duplication, reordering) and re-arms its
//! timer from [`Endpoint::poll_timeout`].
//!
//! Everything is reproducible from the seed given to [`SimNet::new`]: there is no wall clock, no
//! OS randomness, and no hash-map iteration affects what happens. The [`Stats`] count what
//! happened and [`SimNet::trace_digest`] hashes every delivery, so a test can check that the
//! same seed gives the same run.
//!
//! Nodes can go offline and come back ([`SimNet::set_online`], [`SimNet::schedule_online`], or
//! random [`ChurnModel`] churn) or be removed; datagrams to them are dropped and counted. An
//! observer callback ([`SimNet::set_observer`]) and a bounded trace log
//! ([`SimNet::set_trace_log`]) show every datagram's fate, for tests that read like protocol
//! traces.
//!
//! Built for scale (10,000 nodes, millions of events per second in release mode): endpoints
//! live in a `Vec` indexed by a compact node index, with a hash map only for address lookup;
//! heap entries are 24 bytes (payloads wait in a slab with a free list); each node has at most
//! one live timer event, recognised by its sequence number, and a deadline that moves later
//! reuses the pending event. Nothing allocates per event except the datagrams themselves.
//!
//! This module owns the network, the event queue and the churn of nodes; it knows nothing of
//! the DHT protocol. Nothing here touches a real socket: addresses are only names.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use btdht::sim::{LinkModel, SimNet, node_addr};
//! use btdht::{Endpoint, Instant, Transmit};
//!
//! /// Answers every datagram with the same bytes.
//! #[derive(Default)]
//! struct Echo { out: Vec<Transmit> }
//! impl Endpoint for Echo {
//!     fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, bytes: &[u8]) {
//!         self.out.push(Transmit::new(from, bytes.to_vec()));
//!     }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_transmit(&mut self) -> Option<Transmit> { self.out.pop() }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//! }
//!
//! let mut net = SimNet::new(1, LinkModel::new(Duration::from_millis(40)));
//! let (a, b) = (node_addr(0), node_addr(1));
//! net.add_node(a, Echo::default());
//! net.add_node(b, Echo::default());
//! net.node_mut(a).unwrap().out.push(Transmit::new(b, b"hello".to_vec()));
//! net.run_for(Duration::from_millis(100));
//! // a -> b at 40 ms, b -> a at 80 ms, a -> b in flight.
//! assert_eq!(net.stats().delivered, 2);
//! ```

mod churn;
pub mod dht;
mod link;
mod trace;

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

pub use churn::ChurnModel;
pub use link::{Jitter, LinkModel};
pub use trace::{TraceEvent, TraceKind, TraceRecord};

use crate::endpoint::Endpoint;
use crate::time::Instant;
use crate::transmit::Transmit;
use link::{Fate, sample_exp_micros};
use trace::Fnv64;

/// A distinct virtual address for the `n`th simulated node: `10.a.b.c:6881`, counting up from
/// `10.0.0.1`.
///
/// # Panics
/// If `n` does not fit in the 10.0.0.0/8 block (`n >= 2^24 - 1`).
pub fn node_addr(n: u32) -> SocketAddr {
    let host = n.checked_add(1).filter(|h| *h < (1 << 24));
    let host = host.expect("node_addr: n must be below 2^24 - 1");
    let [_, a, b, c] = host.to_be_bytes();
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, a, b, c), 6881))
}

/// Counters of everything the network did since it was created.
///
/// Every datagram handed out ([`Stats::sent`]) plus every extra copy
/// ([`Stats::duplicated`]) ends up exactly once as delivered, lost, dropped, or still in flight:
/// `sent + duplicated == delivered + lost + dropped_unknown + dropped_offline + in_flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed out by endpoints.
    pub sent: u64,
    /// Bytes of the datagrams handed out.
    pub bytes_sent: u64,
    /// Datagram copies delivered to an endpoint.
    pub delivered: u64,
    /// Bytes of the delivered copies.
    pub bytes_delivered: u64,
    /// Datagrams the link lost.
    pub lost: u64,
    /// Extra copies the link made.
    pub duplicated: u64,
    /// Datagrams to an address where no node was ever added.
    pub dropped_unknown: u64,
    /// Datagram copies dropped because the sender or receiver was offline or removed.
    pub dropped_offline: u64,
    /// Datagram copies scheduled but not yet delivered or dropped.
    pub in_flight: u64,
    /// Calls to [`Endpoint::handle_timeout`].
    pub timeouts: u64,
    /// Events processed (deliveries, drops at delivery time, timers, churn), stale timers not
    /// counted.
    pub events: u64,
}

/// Per-node counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams this node handed out.
    pub sent: u64,
    /// Bytes of the datagrams this node handed out.
    pub bytes_sent: u64,
    /// Datagrams delivered to this node.
    pub received: u64,
    /// Bytes of the datagrams delivered to this node.
    pub bytes_received: u64,
    /// Calls to this node's [`Endpoint::handle_timeout`].
    pub timeouts: u64,
}

/// One node's place in the network.
struct Slot<E> {
    addr: SocketAddr,
    /// `None` once removed; the slot stays so that the index of an address never changes.
    endpoint: Option<E>,
    online: bool,
    /// The time and sequence number of the one live timer event, if any; other timer events
    /// for this node are stale and ignored.
    timer: Option<(Instant, u64)>,
    churn: Option<ChurnModel>,
    /// This node's own link, overriding the network's for datagrams from or to it.
    link: Option<Box<LinkModel>>,
    /// The sequence number of the one live churn event, if any.
    churn_seq: Option<u64>,
    /// Touched through [`SimNet::node_mut`]; flushed before the next event.
    dirty: bool,
    stats: NodeStats,
}

/// What an event does. Events are kept small (24 bytes) so that the heap stays fast: a
/// datagram's payload waits in a slab, and a timer or churn event is recognised as live by its
/// sequence number, recorded in the node's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    /// Deliver the datagram in slab entry `target`.
    Deliver,
    /// Fire node `target`'s timer (if this event is still its live timer).
    Timer,
    /// Random churn brings node `target` online (if this event is still its live churn).
    ChurnOnline,
    /// Random churn takes node `target` offline (if this event is still its live churn).
    ChurnOffline,
    /// A scheduled change brings node `target` online.
    SetOnline,
    /// A scheduled change takes node `target` offline.
    SetOffline,
}

struct Event {
    at: Instant,
    seq: u64,
    target: u32,
    tag: Tag,
}

/// A datagram in flight.
#[derive(Default)]
struct Datagram {
    from: u32,
    to: u32,
    bytes: Vec<u8>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so that the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A callback that sees every trace event.
type Observer = Box<dyn FnMut(&TraceEvent<'_>)>;

/// A deterministic discrete-event network of [`Endpoint`]s.
///
/// See the [module documentation](self).
pub struct SimNet<E> {
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Event>,
    slots: Vec<Slot<E>>,
    /// Datagrams in flight, indexed by their delivery event's target.
    datagrams: Vec<Datagram>,
    /// Free entries of `datagrams`.
    free: Vec<u32>,
    index: HashMap<SocketAddr, usize>,
    live: usize,
    link: LinkModel,
    rng: SmallRng,
    churn_rng: SmallRng,
    seed: u64,
    stats: Stats,
    digest: Fnv64,
    dirty: Vec<usize>,
    scratch: Vec<Transmit>,
    observer: Option<Observer>,
    log: VecDeque<TraceRecord>,
    log_capacity: usize,
}

impl<E: Endpoint> SimNet<E> {
    /// An empty network at time zero whose randomness all comes from `seed`.
    pub fn new(seed: u64, link: LinkModel) -> Self {
        SimNet {
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            datagrams: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            live: 0,
            link,
            rng: SmallRng::seed_from_u64(seed),
            // A separate stream, so that churn does not shift the link's draws.
            churn_rng: SmallRng::seed_from_u64(seed ^ 0x6368_7572_6e21_2121),
            seed,
            stats: Stats::default(),
            digest: Fnv64::new(),
            dirty: Vec::new(),
            scratch: Vec::new(),
            observer: None,
            log: VecDeque::new(),
            log_capacity: 0,
        }
    }

    /// The seed this network was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The link model applied to every datagram.
    pub fn link(&self) -> &LinkModel {
        &self.link
    }

    /// Replaces the link model; it applies to datagrams sent from now on.
    pub fn set_link(&mut self, link: LinkModel) {
        self.link = link;
    }

    /// Gives the node at `addr` its own link model (or back the network's, with `None`): it
    /// applies to datagrams sent from or to that node, the sender's override winning when both
    /// have one. A loss of 1.0 cuts the node off. Kept when the node is removed and re-added.
    /// Returns false if no node was ever added at `addr`.
    pub fn set_node_link(&mut self, addr: SocketAddr, link: Option<LinkModel>) -> bool {
        let Some(&idx) = self.index.get(&addr) else {
            return false;
        };
        self.slots[idx].link = link.map(Box::new);
        true
    }

    /// The network's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// A 64-bit FNV-1a hash of every delivery so far: its time, sender, receiver and bytes, in
    /// order. Two runs with the same seed and the same endpoints give the same digest.
    pub fn trace_digest(&self) -> u64 {
        self.digest.finish()
    }

    /// Adds `endpoint` at `addr`, online, at the current time; its pending datagrams are sent
    /// and its timer armed at once. An address whose node was removed can be reused.
    ///
    /// # Panics
    /// If a node is already at `addr`.
    pub fn add_node(&mut self, addr: SocketAddr, endpoint: E) {
        let idx = match self.index.entry(addr) {
            Entry::Occupied(e) => {
                let idx = *e.get();
                let slot = &mut self.slots[idx];
                assert!(slot.endpoint.is_none(), "a node is already at {addr}");
                slot.endpoint = Some(endpoint);
                slot.online = true;
                slot.stats = NodeStats::default();
                idx
            }
            Entry::Vacant(e) => {
                let idx = self.slots.len();
                assert!(u32::try_from(idx).is_ok(), "too many nodes");
                e.insert(idx);
                self.slots.push(Slot {
                    addr,
                    endpoint: Some(endpoint),
                    online: true,
                    timer: None,
                    churn: None,
                    link: None,
                    churn_seq: None,
                    dirty: false,
                    stats: NodeStats::default(),
                });
                idx
            }
        };
        self.live += 1;
        self.flush_node(idx, self.now);
    }

    /// Removes the node at `addr` and returns it; datagrams to it are dropped from now on, and its
    /// timers and churn are cancelled.
    pub fn remove_node(&mut self, addr: SocketAddr) -> Option<E> {
        let idx = *self.index.get(&addr)?;
        let slot = &mut self.slots[idx];
        let endpoint = slot.endpoint.take()?;
        slot.online = false;
        slot.timer = None;
        slot.churn = None;
        slot.churn_seq = None;
        self.live -= 1;
        Some(endpoint)
    }

    /// The node at `addr`.
    pub fn node(&self, addr: SocketAddr) -> Option<&E> {
        let idx = *self.index.get(&addr)?;
        self.slots[idx].endpoint.as_ref()
    }

    /// The node at `addr`, to inspect or to give it a command. Datagrams it queues and a changed
    /// deadline are picked up before the next event is processed (or by [`SimNet::flush`]).
    pub fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut E> {
        let idx = *self.index.get(&addr)?;
        let slot = &mut self.slots[idx];
        let endpoint = slot.endpoint.as_mut()?;
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(idx);
        }
        Some(endpoint)
    }

    /// Sends the datagrams queued by nodes touched through [`SimNet::node_mut`] and re-arms their
    /// timers, at the current time. Running the network does this first by itself.
    pub fn flush(&mut self) {
        let mut i = 0;
        while i < self.dirty.len() {
            let idx = self.dirty[i];
            self.slots[idx].dirty = false;
            if self.slots[idx].endpoint.is_some() {
                self.flush_node(idx, self.now);
            }
            i += 1;
        }
        self.dirty.clear();
    }

    /// Whether a node is at `addr` (online or not).
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.node(addr).is_some()
    }

    /// The number of nodes (online or not).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the network has no nodes.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The nodes with their addresses, in the order they were first added.
    pub fn nodes(&self) -> impl Iterator<Item = (SocketAddr, &E)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.endpoint.as_ref().map(|e| (s.addr, e)))
    }

    /// The addresses of the nodes, in the order they were first added.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.slots
            .iter()
            .filter(|s| s.endpoint.is_some())
            .map(|s| s.addr)
    }

    /// The counters of the node at `addr` (reset when a node is added there).
    pub fn node_stats(&self, addr: SocketAddr) -> Option<NodeStats> {
        let idx = *self.index.get(&addr)?;
        let slot = &self.slots[idx];
        slot.endpoint.as_ref().map(|_| slot.stats)
    }

    /// Whether the node at `addr` is online (`None` if there is none).
    pub fn is_online(&self, addr: SocketAddr) -> Option<bool> {
        let idx = *self.index.get(&addr)?;
        let slot = &self.slots[idx];
        slot.endpoint.as_ref().map(|_| slot.online)
    }

    /// Takes the node at `addr` offline or brings it back, now. An offline node keeps its state
    /// but receives nothing (datagrams arriving meanwhile are dropped), sends nothing and its
    /// timer waits; back online, an overdue timer fires at once. Returns false if there is no
    /// node at `addr`.
    pub fn set_online(&mut self, addr: SocketAddr, online: bool) -> bool {
        match self.index.get(&addr) {
            Some(&idx) if self.slots[idx].endpoint.is_some() => {
                self.set_online_idx(idx, online);
                true
            }
            _ => false,
        }
    }

    /// Takes the node at `addr` offline (or brings it back) at virtual time `at` (or now, if
    /// `at` has passed). Applies to whatever node is at `addr` then. Returns false if no node
    /// was ever added at `addr`.
    pub fn schedule_online(&mut self, at: Instant, addr: SocketAddr, online: bool) -> bool {
        let Some(&node) = self.index.get(&addr) else {
            return false;
        };
        let tag = if online {
            Tag::SetOnline
        } else {
            Tag::SetOffline
        };
        self.push(at, tag, node);
        true
    }

    /// Starts random churn of the node at `addr` (or stops it, with `None`): its online and
    /// offline periods are drawn from `model`, starting from its current state. Returns false if
    /// there is no node at `addr`.
    pub fn set_churn(&mut self, addr: SocketAddr, model: Option<ChurnModel>) -> bool {
        match self.index.get(&addr) {
            Some(&idx) if self.slots[idx].endpoint.is_some() => {
                self.set_churn_idx(idx, model);
                true
            }
            _ => false,
        }
    }

    /// Starts random churn of every node, in the order they were added.
    pub fn set_churn_all(&mut self, model: ChurnModel) {
        for idx in 0..self.slots.len() {
            if self.slots[idx].endpoint.is_some() {
                self.set_churn_idx(idx, Some(model));
            }
        }
    }

    /// Calls `observer` with every trace event from now on (replacing any previous observer).
    pub fn set_observer(&mut self, observer: impl FnMut(&TraceEvent<'_>) + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Stops calling the observer.
    pub fn clear_observer(&mut self) {
        self.observer = None;
    }

    /// Keeps the last `capacity` trace events in the trace log (0 turns it off and clears it).
    pub fn set_trace_log(&mut self, capacity: usize) {
        self.log_capacity = capacity;
        while self.log.len() > capacity {
            self.log.pop_front();
        }
    }

    /// The most recent trace events, oldest first.
    pub fn trace_log(&self) -> impl Iterator<Item = &TraceRecord> + '_ {
        self.log.iter()
    }

    /// Empties the trace log and returns what it held, oldest first.
    pub fn take_trace_log(&mut self) -> Vec<TraceRecord> {
        self.log.drain(..).collect()
    }

    /// The time of the next event in the queue, if any (it may be a cancelled timer).
    pub fn next_event_time(&self) -> Option<Instant> {
        self.queue.peek().map(|e| e.at)
    }

    /// Processes the next event, advancing the clock to it, and returns its time; `None` if no
    /// event is left.
    pub fn step(&mut self) -> Option<Instant> {
        self.flush();
        while let Some(event) = self.queue.pop() {
            let at = event.at;
            if self.process(event) {
                return Some(at);
            }
        }
        None
    }

    /// Processes every event up to and including virtual time `t`, then sets the clock to `t`
    /// (if it is not already later).
    pub fn run_until(&mut self, t: Instant) {
        self.flush();
        while self.queue.peek().is_some_and(|e| e.at <= t) {
            let event = self.queue.pop().expect("peeked");
            self.process(event);
        }
        self.now = self.now.max(t);
    }

    /// Runs the network for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Processes events until `done` returns true (checked before each event) or no event is
    /// left at or before `deadline`; returns whether `done` became true. The clock stays at the
    /// last event processed.
    pub fn run_until_cond(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&SimNet<E>) -> bool,
    ) -> bool {
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            match self.queue.peek() {
                Some(e) if e.at <= deadline => {
                    let event = self.queue.pop().expect("peeked");
                    self.process(event);
                }
                _ => return false,
            }
        }
    }

    // ---- internals ----

    /// Queues an event at `at` (or now, if that has passed) and returns its sequence number.
    fn push(&mut self, at: Instant, tag: Tag, target: usize) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Event {
            at: at.max(self.now),
            seq,
            // Node indices are checked to fit in add_node, slab indices in schedule_delivery.
            target: target as u32,
            tag,
        });
        seq
    }

    /// Handles one popped event; returns false if it was stale (and did nothing).
    fn process(&mut self, event: Event) -> bool {
        let target = event.target as usize;
        match event.tag {
            Tag::Deliver => {
                self.now = event.at;
                self.stats.events += 1;
                let d = std::mem::take(&mut self.datagrams[target]);
                self.free.push(event.target);
                self.deliver(d.from as usize, d.to as usize, d.bytes);
            }
            Tag::Timer => {
                let slot = &mut self.slots[target];
                if slot.timer.is_none_or(|(_, seq)| seq != event.seq) {
                    return false;
                }
                self.now = event.at;
                self.stats.events += 1;
                slot.timer = None;
                let now = self.now;
                let endpoint = slot.endpoint.as_mut().expect("a live timer has a node");
                if endpoint.poll_timeout().is_some_and(|d| d <= now) {
                    endpoint.handle_timeout(now);
                    slot.stats.timeouts += 1;
                    self.stats.timeouts += 1;
                    // A core whose deadline does not move past `now` must not stall the clock.
                    self.flush_node(target, now + Duration::from_micros(1));
                } else {
                    self.flush_node(target, now);
                }
            }
            Tag::ChurnOnline | Tag::ChurnOffline => {
                let slot = &mut self.slots[target];
                if slot.churn_seq != Some(event.seq) {
                    return false;
                }
                slot.churn_seq = None;
                self.now = event.at;
                self.stats.events += 1;
                self.set_online_idx(target, event.tag == Tag::ChurnOnline);
                self.schedule_churn(target);
            }
            Tag::SetOnline | Tag::SetOffline => {
                self.now = event.at;
                self.stats.events += 1;
                if self.slots[target].endpoint.is_some() {
                    self.set_online_idx(target, event.tag == Tag::SetOnline);
                }
            }
        }
        true
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.stats.in_flight -= 1;
        let from_addr = self.slots[from].addr;
        let to_addr = self.slots[to].addr;
        let slot = &self.slots[to];
        if slot.endpoint.is_none() || !slot.online {
            self.stats.dropped_offline += 1;
            self.trace(TraceKind::DroppedOffline, from_addr, to_addr, &bytes);
            return;
        }
        let len = bytes.len() as u64;
        self.stats.delivered += 1;
        self.stats.bytes_delivered += len;
        self.digest.write_u64(self.now.as_micros());
        self.digest.write_addr(from_addr);
        self.digest.write_addr(to_addr);
        self.digest.write_u64(len);
        self.digest.write(&bytes);
        self.trace(TraceKind::Delivered, from_addr, to_addr, &bytes);
        let slot = &mut self.slots[to];
        slot.stats.received += 1;
        slot.stats.bytes_received += len;
        let endpoint = slot.endpoint.as_mut().expect("checked");
        endpoint.handle_datagram(self.now, from_addr, &bytes);
        self.flush_node(to, self.now);
    }

    /// Sends everything the node at `idx` queued, then re-arms its timer no earlier than
    /// `earliest`.
    fn flush_node(&mut self, idx: usize, earliest: Instant) {
        let mut out = std::mem::take(&mut self.scratch);
        if let Some(endpoint) = self.slots[idx].endpoint.as_mut() {
            while let Some(t) = endpoint.poll_transmit() {
                out.push(t);
            }
        }
        for t in out.drain(..) {
            self.send(idx, t);
        }
        self.scratch = out;
        self.arm_timer(idx, earliest);
    }

    /// Makes sure a live timer event is pending for the node's deadline. A pending event that is
    /// earlier than the deadline is kept: when it fires it finds the deadline not yet reached and
    /// re-arms, so a deadline that moves later costs no queue entry.
    fn arm_timer(&mut self, idx: usize, earliest: Instant) {
        let slot = &self.slots[idx];
        if !slot.online {
            return;
        }
        let Some(endpoint) = slot.endpoint.as_ref() else {
            return;
        };
        let Some(deadline) = endpoint.poll_timeout() else {
            return;
        };
        let at = deadline.max(earliest).max(self.now);
        if slot.timer.is_some_and(|(pending, _)| pending <= at) {
            return;
        }
        let seq = self.push(at, Tag::Timer, idx);
        self.slots[idx].timer = Some((at, seq));
    }

    fn send(&mut self, from: usize, t: Transmit) {
        let from_addr = self.slots[from].addr;
        let len = t.bytes.len() as u64;
        self.stats.sent += 1;
        self.stats.bytes_sent += len;
        let slot = &mut self.slots[from];
        slot.stats.sent += 1;
        slot.stats.bytes_sent += len;
        let online = slot.online;
        self.trace(TraceKind::Sent, from_addr, t.to, &t.bytes);
        if !online {
            self.stats.dropped_offline += 1;
            self.trace(TraceKind::DroppedOffline, from_addr, t.to, &t.bytes);
            return;
        }
        let Some(&to) = self.index.get(&t.to) else {
            self.stats.dropped_unknown += 1;
            self.trace(TraceKind::DroppedUnknown, from_addr, t.to, &t.bytes);
            return;
        };
        let link = self.slots[from]
            .link
            .as_deref()
            .or(self.slots[to].link.as_deref())
            .unwrap_or(&self.link);
        match link.fate(&mut self.rng) {
            Fate::Lost => {
                self.stats.lost += 1;
                self.trace(TraceKind::Lost, from_addr, t.to, &t.bytes);
            }
            Fate::Once(delay) => self.schedule_delivery(delay, from, to, t.bytes),
            Fate::Twice(d1, d2) => {
                self.stats.duplicated += 1;
                self.trace(TraceKind::Duplicated, from_addr, t.to, &t.bytes);
                let copy = t.bytes.clone();
                self.schedule_delivery(d1, from, to, t.bytes);
                self.schedule_delivery(d2, from, to, copy);
            }
        }
    }

    /// Puts a datagram in flight, to arrive `delay` microseconds from now.
    fn schedule_delivery(&mut self, delay: u64, from: usize, to: usize, bytes: Vec<u8>) {
        self.stats.in_flight += 1;
        let datagram = Datagram {
            from: from as u32,
            to: to as u32,
            bytes,
        };
        let entry = match self.free.pop() {
            Some(i) => {
                self.datagrams[i as usize] = datagram;
                i as usize
            }
            None => {
                assert!(
                    u32::try_from(self.datagrams.len()).is_ok(),
                    "too many datagrams in flight"
                );
                self.datagrams.push(datagram);
                self.datagrams.len() - 1
            }
        };
        let at = Instant::from_micros(self.now.as_micros().saturating_add(delay));
        self.push(at, Tag::Deliver, entry);
    }

    fn set_online_idx(&mut self, idx: usize, online: bool) {
        let slot = &mut self.slots[idx];
        if slot.online == online {
            return;
        }
        slot.online = online;
        if online {
            // Anything queued while offline goes out now; an overdue timer fires now.
            self.flush_node(idx, self.now);
        } else {
            slot.timer = None;
        }
    }

    fn set_churn_idx(&mut self, idx: usize, model: Option<ChurnModel>) {
        let slot = &mut self.slots[idx];
        slot.churn = model;
        slot.churn_seq = None;
        self.schedule_churn(idx);
    }

    /// Schedules the end of the node's current online or offline period, if it churns.
    fn schedule_churn(&mut self, idx: usize) {
        let slot = &self.slots[idx];
        let Some(model) = slot.churn else { return };
        let (mean, tag) = if slot.online {
            (model.mean_uptime, Tag::ChurnOffline)
        } else {
            (model.mean_downtime, Tag::ChurnOnline)
        };
        // At least a microsecond, so that a zero mean cannot stall the clock.
        let period = sample_exp_micros(&mut self.churn_rng, mean).max(1);
        let at = Instant::from_micros(self.now.as_micros().saturating_add(period));
        let seq = self.push(at, tag, idx);
        self.slots[idx].churn_seq = Some(seq);
    }

    fn trace(&mut self, kind: TraceKind, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        if self.observer.is_none() && self.log_capacity == 0 {
            return;
        }
        let event = TraceEvent {
            at: self.now,
            kind,
            from,
            to,
            bytes,
        };
        if let Some(observer) = self.observer.as_mut() {
            observer(&event);
        }
        if self.log_capacity > 0 {
            if self.log.len() == self.log_capacity {
                self.log.pop_front();
            }
            self.log.push_back(event.to_record());
        }
    }
}

impl<E> std::fmt::Debug for SimNet<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNet")
            .field("now", &self.now)
            .field("seed", &self.seed)
            .field("nodes", &self.live)
            .field("queued", &self.queue.len())
            .field("link", &self.link)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addrs_are_distinct_and_private() {
        assert_eq!(node_addr(0), "10.0.0.1:6881".parse().unwrap());
        assert_eq!(node_addr(255), "10.0.1.0:6881".parse().unwrap());
        assert_eq!(node_addr(65_535), "10.1.0.0:6881".parse().unwrap());
        let mut seen = std::collections::HashSet::new();
        for n in 0..100_000 {
            assert!(seen.insert(node_addr(n)));
        }
    }

    #[test]
    #[should_panic(expected = "node_addr")]
    fn node_addr_bounds() {
        let _ = node_addr((1 << 24) - 1);
    }

    #[test]
    fn events_are_small() {
        assert_eq!(std::mem::size_of::<Event>(), 24);
    }

    #[test]
    fn events_order_by_time_then_sequence() {
        let mut heap = BinaryHeap::new();
        let ev = |at, seq| Event {
            at: Instant::from_micros(at),
            seq,
            target: 0,
            tag: Tag::SetOnline,
        };
        heap.push(ev(5, 2));
        heap.push(ev(5, 1));
        heap.push(ev(1, 3));
        heap.push(ev(9, 0));
        let order: Vec<_> = std::iter::from_fn(|| heap.pop())
            .map(|e| (e.at.as_micros(), e.seq))
            .collect();
        assert_eq!(order, [(1, 3), (5, 1), (5, 2), (9, 0)]);
    }
}
