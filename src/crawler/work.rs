//! The crawler's units of work: the query to send (`Work`), the one awaiting its answer
//! (`Pending`) and the one waiting for its time (`Delayed`).

use super::*;

/// A unit of work: one query to send.
#[derive(Clone, Copy, Debug)]
pub(super) enum Work {
    /// The visit of a new address (`retry`: the find_node after a failed sample).
    Visit {
        addr: SocketAddr,
        id: Option<NodeId>,
        retry: bool,
        timed_out: bool,
    },
    /// Another sample of a node (BEP 51 interval passed, or a lossy first visit).
    Resample {
        addr: SocketAddr,
        id: NodeId,
        count: u8,
    },
    /// Count the peers of a new info-hash.
    GetPeers {
        addr: SocketAddr,
        info_hash: InfoHash,
    },
    /// An idle sweep.
    Sweep { addr: SocketAddr },
}

impl Work {
    pub(super) fn addr(&self) -> SocketAddr {
        match self {
            Work::Visit { addr, .. }
            | Work::Resample { addr, .. }
            | Work::GetPeers { addr, .. }
            | Work::Sweep { addr } => *addr,
        }
    }
}

/// A query awaiting its answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) work: Work,
    /// Whether it was a sample_infohashes.
    pub(super) sample: bool,
}

/// A delayed work item, ordered by due time (earliest first in the max-heap).
#[derive(Debug)]
pub(super) struct Delayed {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) work: Work,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}
