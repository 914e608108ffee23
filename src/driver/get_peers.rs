//! [`GetPeers`]: a lookup in progress on the I/O thread, seen from the caller. It yields the
//! peers as replies bring them, then the lookup's outcome; stopping it early or letting its
//! timeout run out gives what was found so far, marked partial.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::channel::{Receiver, RecvTimeoutError};
use super::io_thread::Command;
use super::{Dht, Error, LookupUpdate};
use crate::node::{LookupOutcome, RequestId};

/// How a lookup ended for its caller.
#[derive(Debug)]
enum End {
    Done(LookupOutcome),
    /// The I/O thread went away.
    Stopped,
    /// The I/O thread did not end the lookup in time.
    Timeout,
}

/// A running get_peers lookup, from [`Dht::get_peers`].
///
/// Iterating yields each distinct peer once, as the replies bring it, and ends when the lookup
/// ends: when it converges, or at the request timeout with what it found so far. Then
/// [`GetPeers::outcome`] gives the whole result (every peer again, the closest nodes with
/// their tokens, the counts). [`GetPeers::stop`] ends the lookup early and gives what was found
/// so far, with `partial` set. Dropping it stops the lookup too.
///
/// With the `async` feature, `next_async`, `outcome_async` and `stop_async` do the same
/// without blocking the thread, on any executor.
#[derive(Debug)]
pub struct GetPeers {
    dht: Dht,
    updates: Receiver<LookupUpdate>,
    request: Option<RequestId>,
    peers: VecDeque<SocketAddr>,
    end: Option<End>,
    /// Whether the end was handed to the caller.
    ended: bool,
    /// When the caller gives up waiting for the I/O thread (the timeout and a grace period).
    give_up: std::time::Instant,
}

impl GetPeers {
    pub(super) fn new(
        dht: Dht,
        updates: Receiver<LookupUpdate>,
        give_up: std::time::Instant,
    ) -> Self {
        GetPeers {
            dht,
            updates,
            request: None,
            peers: VecDeque::new(),
            end: None,
            ended: false,
            give_up,
        }
    }

    fn take(&mut self, update: LookupUpdate) {
        match update {
            LookupUpdate::Started(request) => self.request = Some(request),
            LookupUpdate::Peers(peers) => self.peers.extend(peers),
            LookupUpdate::Done(outcome) => self.end = Some(End::Done(outcome)),
        }
    }

    /// Blocks for the next update, until the give-up time.
    fn wait(&mut self) {
        if self.end.is_some() {
            return;
        }
        match self.updates.recv_deadline(self.give_up) {
            Ok(update) => self.take(update),
            Err(RecvTimeoutError::Timeout) => self.end = Some(End::Timeout),
            Err(RecvTimeoutError::Disconnected) => self.end = Some(End::Stopped),
        }
    }

    /// Asks the I/O thread to end the lookup now (it answers with the partial outcome).
    fn cancel(&mut self) {
        if let Some(request) = self.request {
            // If the command queue is full, the request timeout still ends the lookup.
            let _ = self.dht.try_send(Command::Cancel(request));
        }
    }

    fn result(&mut self) -> Result<LookupOutcome, Error> {
        self.ended = true;
        match self.end.take() {
            Some(End::Done(outcome)) => Ok(outcome),
            Some(End::Stopped) => Err(Error::Stopped),
            Some(End::Timeout) | None => Err(Error::Timeout),
        }
    }

    /// The peers received and not yet iterated over; never blocks.
    pub fn ready(&mut self) -> impl Iterator<Item = SocketAddr> + '_ {
        while self.end.is_none() {
            match self.updates.try_recv() {
                Ok(update) => self.take(update),
                Err(_) => break,
            }
        }
        self.peers.drain(..)
    }

    /// Waits for the lookup to end (converged, or at the request timeout with `partial` set)
    /// and returns its outcome. [`Error::Stopped`] if the DHT stopped meanwhile;
    /// [`Error::Timeout`] only if the I/O thread did not answer well after the timeout.
    pub fn outcome(mut self) -> Result<LookupOutcome, Error> {
        while self.end.is_none() {
            self.wait();
        }
        self.result()
    }

    /// Ends the lookup now and returns what it found so far (`partial` set, unless it had
    /// converged already).
    pub fn stop(mut self) -> Result<LookupOutcome, Error> {
        while self.request.is_none() && self.end.is_none() {
            self.wait();
        }
        self.cancel();
        self.outcome()
    }
}

impl Iterator for GetPeers {
    type Item = SocketAddr;

    /// The next new peer; blocks until one arrives or the lookup ends.
    fn next(&mut self) -> Option<SocketAddr> {
        loop {
            if let Some(peer) = self.peers.pop_front() {
                return Some(peer);
            }
            if self.end.is_some() {
                return None;
            }
            self.wait();
        }
    }
}

impl Drop for GetPeers {
    fn drop(&mut self) {
        if self.ended || self.end.is_some() {
            return;
        }
        // The I/O thread sends `Started` first, at once; without it the lookup still ends
        // at its timeout, and the I/O thread forgets it at its next update.
        while self.request.is_none() {
            match self.updates.try_recv() {
                Ok(update) => self.take(update),
                Err(_) => break,
            }
        }
        if self.end.is_none() {
            self.cancel();
        }
    }
}

#[cfg(feature = "async")]
impl GetPeers {
    fn poll_update(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.end.is_some() {
            return std::task::Poll::Ready(());
        }
        match self.updates.poll_recv(cx) {
            std::task::Poll::Ready(Ok(update)) => self.take(update),
            std::task::Poll::Ready(Err(_)) => self.end = Some(End::Stopped),
            std::task::Poll::Pending => return std::task::Poll::Pending,
        }
        std::task::Poll::Ready(())
    }

    async fn update(&mut self) {
        std::future::poll_fn(|cx| self.poll_update(cx)).await;
    }

    /// [`Iterator::next`] as a future: the next new peer, `None` once the lookup ended.
    pub async fn next_async(&mut self) -> Option<SocketAddr> {
        loop {
            if let Some(peer) = self.peers.pop_front() {
                return Some(peer);
            }
            if self.end.is_some() {
                return None;
            }
            self.update().await;
        }
    }

    /// [`GetPeers::outcome`] as a future. The I/O thread ends the lookup at the request
    /// timeout, so this needs no timer of the executor.
    pub async fn outcome_async(mut self) -> Result<LookupOutcome, Error> {
        while self.end.is_none() {
            self.update().await;
        }
        self.result()
    }

    /// [`GetPeers::stop`] as a future.
    pub async fn stop_async(mut self) -> Result<LookupOutcome, Error> {
        while self.request.is_none() && self.end.is_none() {
            self.update().await;
        }
        self.cancel();
        self.outcome_async().await
    }
}
