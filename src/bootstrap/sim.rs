//! Simulating a bootstrap server among DHT nodes: [`Peer`] lets one [`crate::sim::SimNet`]
//! hold both [`Node`]s and [`BootstrapServer`]s.
//!
//! This module only dispatches; the experiments (pool filling, 1,000 nodes joining through
//! the server, closest against random answers) live in `tests/bootstrap_sim.rs`.

use std::net::SocketAddr;

use super::BootstrapServer;
use crate::endpoint::Endpoint;
use crate::node::Node;
use crate::time::Instant;
use crate::transmit::Transmit;

/// A simulated endpoint: a DHT node or a bootstrap server.
#[derive(Debug)]
pub enum Peer {
    /// A DHT node.
    Node(Box<Node>),
    /// A bootstrap server core.
    Bootstrap(Box<BootstrapServer>),
}

impl Peer {
    /// The node, if this is one.
    pub fn as_node(&self) -> Option<&Node> {
        match self {
            Peer::Node(node) => Some(node),
            Peer::Bootstrap(_) => None,
        }
    }

    /// The node, mutably, if this is one.
    pub fn as_node_mut(&mut self) -> Option<&mut Node> {
        match self {
            Peer::Node(node) => Some(node),
            Peer::Bootstrap(_) => None,
        }
    }

    /// The bootstrap server, if this is one.
    pub fn as_bootstrap(&self) -> Option<&BootstrapServer> {
        match self {
            Peer::Bootstrap(server) => Some(server),
            Peer::Node(_) => None,
        }
    }
}

impl Endpoint for Peer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match self {
            Peer::Node(n) => n.handle_datagram(now, from, bytes),
            Peer::Bootstrap(b) => b.handle_datagram(now, from, bytes),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Peer::Node(n) => n.handle_timeout(now),
            Peer::Bootstrap(b) => b.handle_timeout(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Peer::Node(n) => n.poll_transmit(),
            Peer::Bootstrap(b) => b.poll_transmit(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Peer::Node(n) => n.poll_timeout(),
            Peer::Bootstrap(b) => b.poll_timeout(),
        }
    }
}
