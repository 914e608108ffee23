//! A sequence of (time step, source address, datagram) records into one `Node`, with the
//! harness answering the node's own queries; after every record the routing tables, caps and
//! emitted datagrams are checked (see `tests/support/node_sequence.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/node_sequence.rs"]
mod node_sequence;

fuzz_target!(|data: &[u8]| {
    node_sequence::check_node_sequence(data);
});
