//! The table as a persistence snapshot, and its restoration after a restart.

use super::*;

/// One node of a [`Snapshot`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SnapshotEntry {
    /// The node.
    pub node: NodeInfo,
    /// Its state when the snapshot was taken.
    pub liveness: Liveness,
    /// How long before the snapshot it last answered us, if it did in this run.
    pub since_response: Option<Duration>,
    /// Consecutive failed queries when the snapshot was taken.
    pub failed_queries: u32,
}

/// The table's contents in a form fit for persistence: times are relative to the snapshot so
/// they survive a restart (whose clock has another epoch).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Snapshot {
    /// The id the table belonged to.
    pub own_id: NodeId,
    /// Every entry, bucket by bucket.
    pub nodes: Vec<SnapshotEntry>,
}

impl RoutingTable {
    /// The entries as a persistence snapshot at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot {
            own_id: self.own_id,
            nodes: self
                .entries()
                .map(|e| SnapshotEntry {
                    node: e.info,
                    liveness: e.liveness(now, &self.config),
                    since_response: e.last_response.map(|t| now.saturating_duration_since(t)),
                    failed_queries: e.failed_queries,
                })
                .collect(),
        }
    }

    /// Loads a snapshot's good and questionable nodes, most recently answered first, through
    /// the ordinary insertion rules (K, splits, address policy). They come back questionable:
    /// they did answer once, but not in this run, so the maintenance pings re-verify them.
    /// Returns how many became entries.
    pub fn restore(&mut self, now: Instant, snapshot: &Snapshot) -> usize {
        let mut nodes: Vec<&SnapshotEntry> = snapshot
            .nodes
            .iter()
            .filter(|n| n.liveness != Liveness::Bad)
            .collect();
        nodes.sort_by_key(|n| n.since_response.unwrap_or(Duration::MAX));
        let mut added = 0;
        for n in nodes {
            let entry = Entry {
                info: n.node,
                first_seen: now,
                last_response: None,
                last_query: None,
                failed_queries: 0,
                ever_responded: true,
                ping_requested: None,
                last_failure: None,
            };
            if matches!(
                self.insert_verified(now, entry),
                InsertOutcome::Added | InsertOutcome::Replaced(_)
            ) {
                added += 1;
            }
        }
        added
    }
}
