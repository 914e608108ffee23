//! Contacts: a node id together with the UDP address it was seen at.

use std::fmt;
use std::net::SocketAddr;

use crate::id::NodeId;

/// A DHT node as it appears in compact node info: its id and its UDP address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// The node's UDP address.
    pub addr: SocketAddr,
}

impl NodeInfo {
    /// A contact for `id` at `addr`.
    pub const fn new(id: NodeId, addr: SocketAddr) -> Self {
        NodeInfo { id, addr }
    }
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}
