//! Buckets: table entries with their BEP 5 liveness bookkeeping, and each bucket's replacement
//! cache.
//!
//! This module owns [`Entry`] (a verified node and what we know of its liveness), [`Liveness`]
//! (good / questionable / bad), [`Candidate`] (a node waiting in a replacement cache) and
//! [`Bucket`]. It does not decide which bucket a node belongs to, when buckets split or which
//! node replaces which: that is the routing table's job (see [`super::RoutingTable`]). Buckets
//! are read-only outside the `routing` module.

use std::net::SocketAddr;
use std::time::Duration;

use super::{RoutingConfig, RoutingError};
use crate::contact::NodeInfo;
use crate::id::NodeId;
use crate::time::Instant;

/// A node's state per BEP 5.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Liveness {
    /// It answered one of our queries within the good window (15 minutes), or it has answered
    /// at least once and queried us within the good window.
    Good,
    /// Neither good nor bad.
    Questionable,
    /// It failed more than `max_failures` of our queries in a row.
    Bad,
}

/// Classifies a node from its bookkeeping, per BEP 5.
///
/// Bad wins over good: a node that failed more than `max_failures` queries in a row is bad even
/// if it answered shortly before. "Within the window" means strictly less than `window` ago; a
/// timestamp in the future (a caller clock going backwards) counts as just now.
pub fn classify(
    now: Instant,
    last_response: Option<Instant>,
    last_query: Option<Instant>,
    ever_responded: bool,
    failed_queries: u32,
    window: Duration,
    max_failures: u32,
) -> Liveness {
    let recent = |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < window);
    if failed_queries > max_failures {
        Liveness::Bad
    } else if recent(last_response) || (ever_responded && recent(last_query)) {
        Liveness::Good
    } else {
        Liveness::Questionable
    }
}

/// A routing table entry: a node that has answered us, with its liveness bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub(crate) info: NodeInfo,
    pub(crate) first_seen: Instant,
    pub(crate) last_response: Option<Instant>,
    pub(crate) last_query: Option<Instant>,
    pub(crate) failed_queries: u32,
    pub(crate) ever_responded: bool,
    /// When the table last asked the caller to ping this entry (pending until a response, a
    /// failure, or the ping timeout).
    pub(crate) ping_requested: Option<Instant>,
    /// When it last failed one of our queries (for the backoff of pings to bad entries).
    pub(crate) last_failure: Option<Instant>,
}

impl Entry {
    /// A node that just answered one of our queries.
    pub(crate) fn responded(now: Instant, info: NodeInfo) -> Self {
        Entry {
            info,
            first_seen: now,
            last_response: Some(now),
            last_query: None,
            failed_queries: 0,
            ever_responded: true,
            ping_requested: None,
            last_failure: None,
        }
    }

    /// The node's id and address.
    pub fn info(&self) -> NodeInfo {
        self.info
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.info.id
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.info.addr
    }

    /// When this entry was first seen (entered the table or its replacement cache).
    pub fn first_seen(&self) -> Instant {
        self.first_seen
    }

    /// When it last answered one of our queries (`None` for an entry restored from a snapshot
    /// that has not answered since).
    pub fn last_response(&self) -> Option<Instant> {
        self.last_response
    }

    /// When it last sent us a query while in the table.
    pub fn last_query(&self) -> Option<Instant> {
        self.last_query
    }

    /// How many of our queries it failed in a row since its last response.
    pub fn failed_queries(&self) -> u32 {
        self.failed_queries
    }

    /// Whether it has ever answered us (always true for table entries, including restored ones).
    pub fn ever_responded(&self) -> bool {
        self.ever_responded
    }

    /// The latest of its last response, last query and first sighting.
    pub fn last_seen(&self) -> Instant {
        let mut t = self.first_seen;
        for s in [self.last_response, self.last_query].into_iter().flatten() {
            t = t.max(s);
        }
        t
    }

    /// Its BEP 5 state at `now` under `config`.
    pub fn liveness(&self, now: Instant, config: &RoutingConfig) -> Liveness {
        classify(
            now,
            self.last_response,
            self.last_query,
            self.ever_responded,
            self.failed_queries,
            config.good_window,
            config.max_failures,
        )
    }

    /// Until when it stays good if nothing else happens (`None` if it never was good by time).
    pub(crate) fn good_until(&self, window: Duration) -> Option<Instant> {
        let by_response = self.last_response.map(|t| t + window);
        let by_query = if self.ever_responded {
            self.last_query.map(|t| t + window)
        } else {
            None
        };
        by_response.max(by_query)
    }

    pub(crate) fn ping_pending(&self, now: Instant, timeout: Duration) -> bool {
        self.ping_requested
            .is_some_and(|t| now.saturating_duration_since(t) < timeout)
    }
}

/// A node waiting in a bucket's replacement cache for a slot in that bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub(crate) info: NodeInfo,
    pub(crate) first_seen: Instant,
    pub(crate) last_seen: Instant,
    /// When it last answered one of our queries; `None` if it is unverified (it only queried
    /// us, or another node told us about it).
    pub(crate) last_response: Option<Instant>,
    pub(crate) ping_requested: Option<Instant>,
}

impl Candidate {
    /// The node's id and address.
    pub fn info(&self) -> NodeInfo {
        self.info
    }

    /// Whether it has answered one of our queries (only verified candidates are promoted without
    /// a ping).
    pub fn is_verified(&self) -> bool {
        self.last_response.is_some()
    }

    /// When we last heard from or about it.
    pub fn last_seen(&self) -> Instant {
        self.last_seen
    }

    /// When it last answered us, if ever.
    pub fn last_response(&self) -> Option<Instant> {
        self.last_response
    }

    /// The table entry it becomes when promoted.
    pub(crate) fn into_entry(self) -> Entry {
        Entry {
            info: self.info,
            first_seen: self.first_seen,
            last_response: self.last_response,
            last_query: None,
            failed_queries: 0,
            ever_responded: self.last_response.is_some(),
            ping_requested: None,
            last_failure: None,
        }
    }
}

/// A bucket: up to K entries covering a contiguous range of the id space, plus a bounded cache
/// of replacement candidates.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub(crate) entries: Vec<Entry>,
    pub(crate) replacements: Vec<Candidate>,
    /// BEP 5's "last changed": a node was added or replaced, or one answered a query.
    pub(crate) last_changed: Instant,
    /// When a refresh of this bucket was last queued, started, or made unnecessary by a lookup.
    pub(crate) last_refresh: Instant,
}

impl Bucket {
    pub(crate) fn new(now: Instant) -> Self {
        Bucket {
            entries: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
            last_refresh: now,
        }
    }

    /// The entries, in no particular order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The replacement candidates, in no particular order.
    pub fn replacements(&self) -> &[Candidate] {
        &self.replacements
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the bucket has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// BEP 5's "last changed" time: when a node was last added or replaced, or answered us.
    pub fn last_changed(&self) -> Instant {
        self.last_changed
    }

    /// When this bucket next needs a refresh lookup if nothing happens in it.
    pub fn refresh_due(&self, interval: Duration) -> Instant {
        self.last_changed.max(self.last_refresh) + interval
    }

    pub(crate) fn position(&self, id: &NodeId) -> Option<usize> {
        self.entries.iter().position(|e| e.info.id == *id)
    }

    /// Adds an entry; [`RoutingError::BucketFull`] if it already holds `k`.
    pub(crate) fn push(&mut self, entry: Entry, k: usize) -> Result<(), RoutingError> {
        if self.entries.len() >= k {
            return Err(RoutingError::BucketFull);
        }
        self.entries.push(entry);
        Ok(())
    }

    pub(crate) fn remove_candidate(&mut self, id: &NodeId) -> Option<Candidate> {
        let at = self.replacements.iter().position(|c| c.info.id == *id)?;
        Some(self.replacements.swap_remove(at))
    }

    /// Adds or refreshes a candidate, keeping at most `capacity`. Returns whether the candidate
    /// is in the cache afterwards.
    pub(crate) fn add_candidate(&mut self, cand: Candidate, capacity: usize) -> bool {
        let id = cand.info.id;
        if let Some(old) = self.replacements.iter_mut().find(|c| c.info.id == id) {
            if old.info.addr == cand.info.addr {
                old.last_seen = old.last_seen.max(cand.last_seen);
                old.last_response = old.last_response.max(cand.last_response);
                return true;
            }
            if old.is_verified() && !cand.is_verified() {
                // An unverified claim does not move a verified candidate.
                return true;
            }
            *old = cand;
            return true;
        }
        // Another id at the same address: the newer claim wins unless it would replace a
        // verified candidate with an unverified one.
        if let Some(at) = self
            .replacements
            .iter()
            .position(|c| c.info.addr == cand.info.addr)
        {
            if self.replacements[at].is_verified() && !cand.is_verified() {
                return false;
            }
            self.replacements[at] = cand;
            return true;
        }
        self.replacements.push(cand);
        while self.replacements.len() > capacity {
            // Evict the least recently seen unverified candidate, else the least recently seen.
            let victim = self
                .replacements
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| (c.is_verified(), c.last_seen))
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    self.replacements.swap_remove(i);
                }
                None => break,
            }
        }
        self.replacements.iter().any(|c| c.info.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> Instant {
        Instant::from_secs(secs)
    }

    #[test]
    fn classification_follows_bep5() {
        let w = Duration::from_secs(900);
        // Answered 14:59 ago: good; 15:00 ago: questionable.
        assert_eq!(
            classify(t(1000), Some(t(101)), None, true, 0, w, 3),
            Liveness::Good
        );
        assert_eq!(
            classify(t(1000), Some(t(100)), None, true, 0, w, 3),
            Liveness::Questionable
        );
        // Queried us recently and answered once: good. Never answered: questionable.
        assert_eq!(
            classify(t(5000), Some(t(1)), Some(t(4990)), true, 0, w, 3),
            Liveness::Good
        );
        assert_eq!(
            classify(t(5000), None, Some(t(4990)), false, 0, w, 3),
            Liveness::Questionable
        );
        // More than max_failures failures: bad, even when recent.
        assert_eq!(
            classify(t(1000), Some(t(999)), None, true, 3, w, 3),
            Liveness::Good
        );
        assert_eq!(
            classify(t(1000), Some(t(999)), None, true, 4, w, 3),
            Liveness::Bad
        );
        // A clock going backwards counts as "just now".
        assert_eq!(
            classify(t(10), Some(t(20)), None, true, 0, w, 3),
            Liveness::Good
        );
    }

    #[test]
    fn candidate_cache_is_bounded_and_prefers_verified() {
        use std::net::{Ipv4Addr, SocketAddr};
        let mut b = Bucket::new(t(0));
        let cand = |n: u8, verified: bool, seen: u64| Candidate {
            info: NodeInfo::new(
                NodeId([n; 20]),
                SocketAddr::from((Ipv4Addr::new(1, 2, 3, n), 6881)),
            ),
            first_seen: t(seen),
            last_seen: t(seen),
            last_response: verified.then(|| t(seen)),
            ping_requested: None,
        };
        assert!(b.add_candidate(cand(1, true, 1), 2));
        assert!(b.add_candidate(cand(2, false, 2), 2));
        // A third one evicts the unverified candidate, not the older verified one.
        assert!(b.add_candidate(cand(3, true, 3), 2));
        let ids: Vec<u8> = b.replacements().iter().map(|c| c.info.id.0[0]).collect();
        assert!(ids.contains(&1) && ids.contains(&3) && ids.len() == 2);
        // An unverified newcomer into a cache full of verified ones does not stay.
        assert!(!b.add_candidate(cand(4, false, 4), 2));
        // Refreshing an existing candidate keeps it verified.
        assert!(b.add_candidate(cand(1, false, 9), 2));
        let one = b
            .replacements()
            .iter()
            .find(|c| c.info.id.0[0] == 1)
            .unwrap();
        assert!(one.is_verified());
        assert_eq!(one.last_seen(), t(9));
        // Zero capacity keeps nothing.
        let mut z = Bucket::new(t(0));
        assert!(!z.add_candidate(cand(1, true, 1), 0));
        assert!(z.replacements().is_empty());
    }
}
