//! The split queue: a de-duplicated FIFO of bucket indices that need a refresh lookup.
//!
//! This module owns [`SplitQueue`] only: the queue, its de-duplication and the minimum interval
//! between two pops. It does not decide *which* buckets need a refresh (the routing table pushes
//! both halves after a split and buckets left without activity for the refresh interval) and it
//! does not run lookups (the node pops an index and looks up a random id in that bucket's range).
//!
//! The queue is bounded by construction: an index is below [`MAX_BUCKETS`] and is queued at most
//! once, so it never holds more than 160 entries.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Instant;

/// The largest number of buckets a routing table can have (one per bit of the id space).
pub const MAX_BUCKETS: usize = 160;

/// A de-duplicated FIFO of bucket indices waiting for a refresh lookup, drained at a bounded
/// rate.
#[derive(Clone, Debug)]
pub struct SplitQueue {
    queue: VecDeque<usize>,
    queued: [bool; MAX_BUCKETS],
    min_interval: Duration,
    last_pop: Option<Instant>,
}

impl SplitQueue {
    /// An empty queue that lets at most one index out per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        SplitQueue {
            queue: VecDeque::new(),
            queued: [false; MAX_BUCKETS],
            min_interval,
            last_pop: None,
        }
    }

    /// Queues bucket `index` unless it is already queued. Returns whether it was added; an index
    /// of [`MAX_BUCKETS`] or more is never added.
    pub fn push(&mut self, index: usize) -> bool {
        match self.queued.get_mut(index) {
            Some(flag) if !*flag => {
                *flag = true;
                self.queue.push_back(index);
                true
            }
            _ => false,
        }
    }

    /// Takes the oldest queued index if at least the minimum interval has passed since the
    /// previous pop (the first pop is always allowed).
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        if self.queue.is_empty() {
            return None;
        }
        if let Some(last) = self.last_pop
            && now < last + self.min_interval
        {
            return None;
        }
        let index = self.queue.pop_front()?;
        if let Some(flag) = self.queued.get_mut(index) {
            *flag = false;
        }
        self.last_pop = Some(now);
        Some(index)
    }

    /// When the next pop will be allowed, or `None` when the queue is empty. The answer may be
    /// in the past (a pop is allowed right away).
    pub fn next_due(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        Some(match self.last_pop {
            Some(last) => last + self.min_interval,
            None => Instant::ZERO,
        })
    }

    /// Whether bucket `index` is queued.
    pub fn contains(&self, index: usize) -> bool {
        self.queued.get(index).copied().unwrap_or(false)
    }

    /// How many indices are queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The queued indices, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.queue.iter().copied()
    }

    /// The minimum interval between two pops.
    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedups_and_keeps_fifo_order() {
        let mut q = SplitQueue::new(Duration::ZERO);
        assert!(q.push(3));
        assert!(q.push(1));
        assert!(!q.push(3));
        assert!(q.push(7));
        assert!(!q.push(MAX_BUCKETS));
        assert!(!q.push(usize::MAX));
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![3, 1, 7]);
        assert!(q.contains(1) && !q.contains(2) && !q.contains(usize::MAX));
        let t = Instant::from_secs(1);
        assert_eq!(q.pop_due(t), Some(3));
        // Once popped, an index may be queued again.
        assert!(q.push(3));
        assert_eq!(q.pop_due(t), Some(1));
        assert_eq!(q.pop_due(t), Some(7));
        assert_eq!(q.pop_due(t), Some(3));
        assert_eq!(q.pop_due(t), None);
        assert!(q.is_empty());
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn honours_minimum_interval() {
        let mut q = SplitQueue::new(Duration::from_secs(2));
        for i in 0..4 {
            q.push(i);
        }
        let t0 = Instant::from_secs(100);
        assert_eq!(q.next_due(), Some(Instant::ZERO));
        assert_eq!(q.pop_due(t0), Some(0));
        assert_eq!(q.next_due(), Some(Instant::from_secs(102)));
        assert_eq!(q.pop_due(Instant::from_secs(101)), None);
        // Time going backwards never panics and never releases early.
        assert_eq!(q.pop_due(Instant::from_secs(50)), None);
        assert_eq!(q.pop_due(Instant::from_secs(102)), Some(1));
        assert_eq!(q.pop_due(Instant::from_millis(103_999)), None);
        assert_eq!(q.pop_due(Instant::from_secs(200)), Some(2));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn bounded_by_construction() {
        let mut q = SplitQueue::new(Duration::ZERO);
        for round in 0..3 {
            for i in 0..1000 {
                q.push((i * 7 + round) % 200);
            }
        }
        assert_eq!(q.len(), MAX_BUCKETS);
    }
}
