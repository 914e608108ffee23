//! Hostile inputs into one `Node` in simulated time: oversized transaction ids.

use std::net::SocketAddr;

use btdht::krpc::{Body, Message, QueryKind, decode};
use btdht::node::{Config, MAX_TRANSACTION_ID_LEN, Node};
use btdht::{Instant, NodeId};

/// A query's transaction id is echoed in the reply: past [`MAX_TRANSACTION_ID_LEN`] bytes the
/// query is dropped (and counted), so no query makes the node send a datagram as large as
/// itself. Without that bound a 3,000-byte id would get a 3,069-byte reply, and a 65,000-byte
/// one a reply too large to send.
#[test]
fn a_huge_transaction_id_is_not_echoed() {
    let from: SocketAddr = "1.2.3.4:6881".parse().unwrap();
    let mut node = Node::new(Config::default(), NodeId([1; 20]), 1, Instant::ZERO);
    let now = Instant::from_secs(1);
    for (len, answered) in [
        (2, true),
        (MAX_TRANSACTION_ID_LEN, true),
        (65, false),
        (3_000, false),
    ] {
        let ping = Message::query(vec![b'T'; len], NodeId([9; 20]), QueryKind::Ping).encode();
        node.handle_datagram(now, from, &ping);
        let replies: Vec<_> = std::iter::from_fn(|| node.poll_transmit())
            .filter(|t| t.to == from)
            .filter(|t| decode(&t.bytes).is_ok_and(|d| matches!(d.message.body, Body::Response(_))))
            .collect();
        assert_eq!(replies.len(), usize::from(answered), "t of {len} bytes");
        // A malformed query (no arguments) with such an id gets no 203 either.
        let mut bad = format!("d1:q4:ping1:t{len}:").into_bytes();
        bad.extend(std::iter::repeat_n(b'T', len));
        bad.extend_from_slice(b"1:y1:qe");
        node.handle_datagram(now, from, &bad);
        let errors = std::iter::from_fn(|| node.poll_transmit()).count();
        assert_eq!(errors, usize::from(answered), "203 for t of {len} bytes");
    }
    assert_eq!(node.stats().oversized_transaction_ids, 4);
}
