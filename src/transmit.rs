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

/// Most buffers a [`TransmitQueue`] keeps for reuse: enough for the replies to a few batches
/// of reads (32 datagrams each).
const SPARE_BUFFERS: usize = 128;

/// The largest buffer a [`TransmitQueue`] keeps for reuse: larger ones (rare: big BEP 44
/// items, samples) are freed, so the spares hold at most 256 KB.
const SPARE_CAPACITY: usize = 2_048;

/// The datagrams a core has queued for its `poll_transmit`, bounded; the buffer messages are
/// encoded in (each datagram is then copied out into a buffer of its own); and the buffers
/// of sent datagrams handed back by [`crate::Endpoint::recycle`], reused for later datagrams
/// so that a server answering in a steady stream allocates nothing per answer.
#[derive(Debug, Default)]
pub(crate) struct TransmitQueue {
    queue: VecDeque<Transmit>,
    scratch: Vec<u8>,
    spare: Vec<Vec<u8>>,
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
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(&self.scratch);
        let len = bytes.len();
        self.queue.push_back(Transmit { to, bytes });
        Some(len)
    }

    /// Keeps the buffer of a sent datagram for reuse, unless enough are kept already or it is
    /// too large to keep.
    pub(crate) fn recycle(&mut self, bytes: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && bytes.capacity() <= SPARE_CAPACITY {
            self.spare.push(bytes);
        }
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

    fn ping() -> Query {
        Query {
            id: NodeId([1; 20]),
            kind: QueryKind::Ping,
        }
    }

    fn outgoing(query: &Query) -> Outgoing<'_> {
        Outgoing {
            transaction_id: b"aa",
            version: None,
            read_only: false,
            requester_ip: None,
            body: BodyRef::Query(query),
        }
    }

    fn encoded(message: &Outgoing<'_>) -> Vec<u8> {
        let mut bytes = Vec::new();
        message.encode_into(&mut bytes);
        bytes
    }

    #[test]
    fn a_recycled_buffer_carries_the_next_datagram_and_only_it() {
        let query = ping();
        let message = outgoing(&query);
        let to: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let mut queue = TransmitQueue::default();
        // A buffer that held a longer datagram, with bytes of its own.
        let old = vec![0xff; 300];
        let old_ptr = old.as_ptr();
        queue.recycle(old);
        queue.push(to, 8, &message).unwrap();
        let sent = queue.pop().unwrap();
        assert_eq!(sent.bytes.as_ptr(), old_ptr, "the spare buffer was reused");
        assert_eq!(
            sent.bytes,
            encoded(&message),
            "nothing of what it held before is left"
        );
    }

    #[test]
    fn spare_buffers_are_bounded_in_number_and_size() {
        let mut queue = TransmitQueue::default();
        queue.recycle(Vec::with_capacity(SPARE_CAPACITY + 1));
        assert!(queue.spare.is_empty(), "a large buffer is freed");
        for _ in 0..SPARE_BUFFERS + 10 {
            queue.recycle(Vec::with_capacity(100));
        }
        assert_eq!(queue.spare.len(), SPARE_BUFFERS);
    }

    #[test]
    fn a_bounded_queue_of_exact_copies() {
        let query = ping();
        let message = outgoing(&query);
        let to: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let mut queue = TransmitQueue::default();
        let len = queue.push(to, 2, &message).unwrap();
        assert_eq!(queue.push(to, 2, &message), Some(len));
        assert_eq!(queue.push(to, 2, &message), None, "full at 2");
        assert_eq!(queue.len(), 2);
        let first = queue.pop().unwrap();
        assert_eq!((first.to, first.bytes.len()), (to, len));
        assert_eq!(first.bytes, encoded(&message));
    }
}
