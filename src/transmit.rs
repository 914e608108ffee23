//! A datagram the protocol core wants sent.
//!
//! The core hands these out from `poll_transmit`; the driver writes them to a real socket, the
//! simulator ([`crate::sim`]) schedules their delivery. This module owns only the type.

use std::net::SocketAddr;

/// A datagram a core wants sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// Where to send it.
    pub to: SocketAddr,
    /// The datagram's payload.
    pub bytes: Vec<u8>,
}

impl Transmit {
    /// A datagram of `bytes` to `to`.
    pub fn new(to: SocketAddr, bytes: Vec<u8>) -> Self {
        Transmit { to, bytes }
    }
}
