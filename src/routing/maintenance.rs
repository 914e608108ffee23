//! Keeping the table fresh: refresh lookups from the split queue, liveness pings (and pings
//! of bad entries when no good one is left), and the next deadline.

use super::*;

impl RoutingTable {
    /// Queues every bucket without activity (changes, refresh lookups) for the refresh interval
    /// on the split queue. Returns how many were queued.
    pub fn refresh_due(&mut self, now: Instant) -> usize {
        let mut queued = 0;
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            if now >= bucket.refresh_due(self.config.refresh_interval) && self.refresh.push(i) {
                bucket.last_refresh = now;
                queued += 1;
            }
        }
        queued
    }

    /// Takes the next bucket to refresh from the split queue, if the pop interval allows, with
    /// a random target id in its range for the refresh lookup.
    pub fn pop_refresh<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Option<(usize, NodeId)> {
        let index = self.refresh.pop_due(now)?;
        let target = self.refresh_target(index, rng).ok()?;
        if let Some(bucket) = self.buckets.get_mut(index) {
            bucket.last_refresh = now;
        }
        Some((index, target))
    }

    /// A random id in bucket `index`'s range; [`RoutingError::NotFound`] if there is no such
    /// bucket.
    pub fn refresh_target<R: Rng + ?Sized>(
        &self,
        index: usize,
        rng: &mut R,
    ) -> Result<NodeId, RoutingError> {
        if index >= self.buckets.len() {
            return Err(RoutingError::NotFound);
        }
        if index + 1 < self.buckets.len() {
            return Ok(self.own_id.random_at_prefix(index, rng));
        }
        // The last bucket holds every id sharing at least `index` bits with ours.
        let mut id = NodeId::random(rng);
        for bit in 0..index {
            id.set_bit(bit, self.own_id.bit(bit));
        }
        Ok(id)
    }

    /// A lookup for `target` ran: it counts as a refresh of the bucket covering `target`.
    pub fn note_lookup(&mut self, now: Instant, target: &NodeId) {
        let b = self.bucket_index(target);
        self.buckets[b].last_refresh = self.buckets[b].last_refresh.max(now);
    }

    /// Up to `max` nodes the maintenance timer should ping: questionable entries without a ping
    /// in flight, least recently seen first, then unverified candidates of buckets with room.
    /// They are marked as pinged (for [`RoutingConfig::ping_timeout`]) so the next call names
    /// others.
    pub fn pings_due(&mut self, now: Instant, max: usize) -> Vec<NodeInfo> {
        let timeout = self.config.ping_timeout;
        let mut due: Vec<(Instant, usize, NodeId)> = Vec::new();
        for (b, bucket) in self.buckets.iter().enumerate() {
            for e in &bucket.entries {
                if e.liveness(now, &self.config) == Liveness::Questionable
                    && !e.ping_pending(now, timeout)
                {
                    due.push((e.last_seen(), b, e.info.id));
                }
            }
        }
        due.sort_unstable();
        due.truncate(max);
        let mut out = Vec::with_capacity(due.len());
        for (_, b, id) in due {
            if let Some(p) = self.buckets[b].position(&id) {
                let e = &mut self.buckets[b].entries[p];
                e.ping_requested = Some(now);
                out.push(e.info);
            }
        }
        for bucket in &mut self.buckets {
            if out.len() >= max {
                break;
            }
            if bucket.entries.len() >= self.config.k {
                continue;
            }
            for c in &mut bucket.replacements {
                if out.len() >= max {
                    break;
                }
                let pending = c
                    .ping_requested
                    .is_some_and(|t| now.saturating_duration_since(t) < timeout);
                if !c.is_verified() && !pending {
                    c.ping_requested = Some(now);
                    out.push(c.info);
                }
            }
        }
        out
    }

    /// Whether any entry is good at `now`.
    pub fn has_good(&self, now: Instant) -> bool {
        self.entries()
            .any(|e| e.liveness(now, &self.config) == Liveness::Good)
    }

    /// Up to `max` bad entries due for another ping, longest waiting first, marked as pinged.
    /// A bad entry is left out of lookups and replies, but when the table has no good entry
    /// left (an outage on our side or on theirs) the caller pings them again so that the ones
    /// still there come back: an entry that failed `n` queries beyond `max_failures` waits
    /// [`RoutingConfig::bad_ping_backoff`] times `2^(n - 1)` (at most 64 times) after its last
    /// failure.
    pub fn bad_pings_due(&mut self, now: Instant, max: usize) -> Vec<NodeInfo> {
        let config = &self.config;
        let mut due: Vec<(Instant, usize, NodeId)> = Vec::new();
        for (b, bucket) in self.buckets.iter().enumerate() {
            for e in &bucket.entries {
                if e.liveness(now, config) != Liveness::Bad
                    || e.ping_pending(now, config.ping_timeout)
                {
                    continue;
                }
                let beyond = e
                    .failed_queries
                    .saturating_sub(config.max_failures + 1)
                    .min(6);
                let wait = config.bad_ping_backoff.saturating_mul(1 << beyond);
                let since = e.last_failure.unwrap_or(e.first_seen);
                if now >= since + wait {
                    due.push((since, b, e.info.id));
                }
            }
        }
        due.sort_unstable();
        due.truncate(max);
        let mut out = Vec::with_capacity(due.len());
        for (_, b, id) in due {
            if let Some(p) = self.buckets[b].position(&id) {
                let e = &mut self.buckets[b].entries[p];
                e.ping_requested = Some(now);
                out.push(e.info);
            }
        }
        out
    }

    /// The earliest time something in the table needs attention: the split queue allows a
    /// pop, a bucket needs a refresh, or a good entry turns questionable. `None` when nothing
    /// is pending. The answer may be `now` or earlier (work is due).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next = self.refresh.next_due();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for (i, bucket) in self.buckets.iter().enumerate() {
            if !self.refresh.contains(i) {
                consider(bucket.refresh_due(self.config.refresh_interval));
            }
            for e in &bucket.entries {
                if let Some(t) = e.good_until(self.config.good_window)
                    && t > now
                    && e.failed_queries <= self.config.max_failures
                {
                    consider(t);
                }
            }
        }
        next
    }
}
