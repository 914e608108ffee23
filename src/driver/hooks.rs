//! The hook/event thread: delivers the node's informational events (incoming announces and
//! get_peers, nodes added and removed, and with query hooks every query and response) to user
//! callbacks and subscribers, so that slow user code never stalls the I/O thread.
//!
//! The I/O thread hands events over a bounded channel and drops (and counts) what does not
//! fit; each subscriber has its own bounded channel, and a full subscriber loses events rather
//! than blocking the others. A subscriber whose receiver was dropped is forgotten; when the
//! node stops, every subscription ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::Receiver as EventQueue;
use parking_lot::Mutex;

use super::channel::{self, Receiver, Sender, TrySendError};

use crate::id::NodeId;
use crate::node::{Event, Method};

/// Events a subscriber may have waiting before newer ones are dropped for it.
pub const SUBSCRIBER_CAPACITY: usize = 4_096;

/// A callback for every informational event.
pub type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;
/// A callback for every incoming query: sender, its id, the method.
pub type QueryHook = Arc<dyn Fn(SocketAddr, NodeId, Method) + Send + Sync>;
/// A callback for every reply to our queries: sender and its id.
pub type ResponseHook = Arc<dyn Fn(SocketAddr, NodeId) + Send + Sync>;

/// The callbacks given to the builder.
#[derive(Clone, Default)]
pub struct Hooks {
    pub(crate) on_event: Vec<EventHook>,
    pub(crate) on_query: Vec<QueryHook>,
    pub(crate) on_response: Vec<ResponseHook>,
}

impl Hooks {
    /// Whether query and response events must be produced by the core.
    pub(crate) fn wants_queries(&self) -> bool {
        !self.on_query.is_empty() || !self.on_response.is_empty()
    }
}

/// The subscribers' senders, shared by the `Dht` handles (which add) and the hook thread.
#[derive(Default)]
pub(crate) struct Subscribers {
    pub senders: Mutex<Vec<Sender<Event>>>,
    /// Events dropped because a subscriber was full.
    pub dropped: AtomicU64,
}

impl Subscribers {
    /// A new subscription.
    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = channel::bounded(SUBSCRIBER_CAPACITY);
        self.senders.lock().push(tx);
        rx
    }

    fn deliver(&self, event: &Event) {
        let mut senders = self.senders.lock();
        senders.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}

/// The hook thread: runs until the I/O thread drops its sender.
pub(crate) fn run(events: EventQueue<Event>, hooks: Hooks, subscribers: Arc<Subscribers>) {
    while let Ok(event) = events.recv() {
        match &event {
            Event::QueryReceived { from, id, method } => {
                for hook in &hooks.on_query {
                    hook(*from, *id, *method);
                }
                continue;
            }
            Event::ResponseReceived { from, id } => {
                for hook in &hooks.on_response {
                    hook(*from, *id);
                }
                continue;
            }
            _ => {}
        }
        for hook in &hooks.on_event {
            hook(&event);
        }
        subscribers.deliver(&event);
    }
    // The node stopped: the subscriptions end (their receivers see the channel closed once
    // they have taken what is queued).
    subscribers.senders.lock().clear();
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}
