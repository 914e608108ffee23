//! The sans-IO contract every protocol core fulfils: datagrams and time in, datagrams and a
//! deadline out.
//!
//! [`Endpoint`] is what both drivers of a core rely on: the simulator ([`crate::sim`]) feeds it
//! virtual time and simulated datagrams, the runtime ([`crate::runtime`]) feeds it the OS clock
//! and real sockets. The DHT node ([`crate::node::Node`]), the bootstrap server
//! ([`crate::bootstrap::BootstrapServer`]) and the crawler ([`crate::crawler::Crawler`])
//! implement it. This module owns only the trait.

use std::net::SocketAddr;

use crate::time::Instant;
use crate::transmit::Transmit;

/// A protocol core driven by its caller: it never reads a clock and never touches a socket.
pub trait Endpoint {
    /// A datagram from `from` arrives at `now`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    /// A datagram that will be handled soon, after the others of its batch: a hint to start
    /// loading what answering it will read, so that the batch's cache misses overlap. It
    /// changes nothing that can be observed; the default does nothing.
    fn prefetch(&self, _from: SocketAddr, _bytes: &[u8]) {}
    /// The deadline last returned by [`Endpoint::poll_timeout`] has passed; `now` is at or after
    /// it.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, if any.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The buffer of a datagram from [`Endpoint::poll_transmit`], handed back once it was
    /// sent (or dropped), for the core to reuse for a later datagram instead of allocating
    /// one. It changes nothing that can be observed; the default drops it.
    fn recycle(&mut self, _bytes: Vec<u8>) {}
    /// When [`Endpoint::handle_timeout`] should next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
}
