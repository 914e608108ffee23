//! A datagram the protocol core wants sent.
//!
//! The core hands these out from `poll_transmit`; the driver writes them to a real socket, the
//! simulator ([`crate::sim`]) schedules their delivery. This module owns the type and the
//! bounded queue the cores keep them in until then.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::krpc::Outgoing;

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

/// The datagrams a core has queued for its `poll_transmit`, bounded, and the buffer messages
/// are encoded in (each datagram is then copied out at its exact size, so the queue holds no
/// spare capacity).
#[derive(Debug, Default)]
pub(crate) struct TransmitQueue {
    queue: VecDeque<Transmit>,
    scratch: Vec<u8>,
}

impl TransmitQueue {
    /// Datagrams waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The next datagram to send.
    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }

    /// Encodes `message` into the scratch buffer (replacing what it held); returns its length.
    pub(crate) fn encode(&mut self, message: &Outgoing<'_>) -> usize {
        self.scratch.clear();
        message.encode_into(&mut self.scratch);
        self.scratch.len()
    }

    /// The length of what the scratch buffer holds (the last message encoded).
    pub(crate) fn encoded_len(&self) -> usize {
        self.scratch.len()
    }

    /// Queues what the scratch buffer holds for `to`, unless `max` datagrams already wait;
    /// returns the datagram's length, or `None` if the queue was full.
    pub(crate) fn queue_encoded(&mut self, to: SocketAddr, max: usize) -> Option<usize> {
        if self.queue.len() >= max {
            return None;
        }
        let bytes = self.scratch.as_slice().to_vec();
        let len = bytes.len();
        self.queue.push_back(Transmit { to, bytes });
        Some(len)
    }

    /// Encodes `message` and queues it for `to` (see [`TransmitQueue::queue_encoded`]).
    pub(crate) fn push(
        &mut self,
        to: SocketAddr,
        max: usize,
        message: &Outgoing<'_>,
    ) -> Option<usize> {
        if self.queue.len() >= max {
            return None;
        }
        self.encode(message);
        self.queue_encoded(to, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use crate::krpc::{BodyRef, Query, QueryKind};

    #[test]
    fn a_bounded_queue_of_exact_copies() {
        let query = Query {
            id: NodeId([1; 20]),
            kind: QueryKind::Ping,
        };
        let message = Outgoing {
            transaction_id: b"aa",
            version: None,
            read_only: false,
            requester_ip: None,
            body: BodyRef::Query(&query),
        };
        let to: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let mut queue = TransmitQueue::default();
        let len = queue.push(to, 2, &message).unwrap();
        assert_eq!(queue.push(to, 2, &message), Some(len));
        assert_eq!(queue.push(to, 2, &message), None, "full at 2");
        assert_eq!(queue.len(), 2);
        let first = queue.pop().unwrap();
        assert_eq!(
            (first.to, first.bytes.len(), first.bytes.capacity()),
            (to, len, len)
        );
        let mut expected = Vec::new();
        message.encode_into(&mut expected);
        assert_eq!(first.bytes, expected);
    }
}
