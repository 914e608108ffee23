//! What the simulator can tell an observer about each datagram.
//!
//! Every datagram produces trace events: [`TraceKind::Sent`] when its sender hands it out, then
//! exactly one outcome per copy ([`TraceKind::Delivered`], [`TraceKind::Lost`],
//! [`TraceKind::DroppedUnknown`] or [`TraceKind::DroppedOffline`]), and
//! [`TraceKind::Duplicated`] when the link makes an extra copy. An observer callback sees them
//! borrowed; the bounded trace log keeps owned copies of the most recent ones.

use std::net::SocketAddr;

use crate::time::Instant;

/// What happened to a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// A node handed the datagram to the network.
    Sent,
    /// The link made an extra copy, which will have its own outcome.
    Duplicated,
    /// The link lost the datagram.
    Lost,
    /// No node was ever added at the destination address.
    DroppedUnknown,
    /// The sender or the receiver was offline or removed.
    DroppedOffline,
    /// The datagram reached the receiver, which is handling it now.
    Delivered,
}

/// One trace event, borrowing the datagram's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent<'a> {
    /// Virtual time of the event.
    pub at: Instant,
    /// What happened.
    pub kind: TraceKind,
    /// The sender.
    pub from: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: &'a [u8],
}

impl TraceEvent<'_> {
    /// An owned copy of this event.
    pub fn to_record(&self) -> TraceRecord {
        TraceRecord {
            at: self.at,
            kind: self.kind,
            from: self.from,
            to: self.to,
            bytes: self.bytes.to_vec(),
        }
    }
}

/// One trace event with its own copy of the datagram, as kept in the trace log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceRecord {
    /// Virtual time of the event.
    pub at: Instant,
    /// What happened.
    pub kind: TraceKind,
    /// The sender.
    pub from: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// A 64-bit FNV-1a hash, used for the trace digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) const fn new() -> Self {
        Fnv64(Self::OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(Self::PRIME);
        }
        self.0 = h;
    }

    pub(crate) fn write_u64(&mut self, x: u64) {
        self.write(&x.to_le_bytes());
    }

    pub(crate) fn write_addr(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(a) => {
                self.write(&[4]);
                self.write(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                self.write(&[6]);
                self.write(&a.ip().octets());
            }
        }
        self.write(&addr.port().to_le_bytes());
    }

    pub(crate) const fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Reference values of 64-bit FNV-1a.
        let mut h = Fnv64::new();
        assert_eq!(h.finish(), 0xcbf2_9ce4_8422_2325);
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv64::new();
        h.write(b"foobar");
        assert_eq!(h.finish(), 0x8594_4171_f739_67e8);
    }
}
