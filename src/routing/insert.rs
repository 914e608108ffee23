//! Changes to the entries: what the table does with a node it heard from or about, with a
//! failed query and a removal, and bucket splits with the promotion of replacement
//! candidates.

use super::*;

impl RoutingTable {
    /// Splits bucket `index`: entries and candidates sharing more than `index` prefix bits with
    /// our id move to a new last bucket. Only the last bucket (the one holding our id) may
    /// split, and only when full. Both halves are queued for a refresh, and verified candidates
    /// are promoted into any room the split made.
    pub fn split_bucket(&mut self, now: Instant, index: usize) -> Result<(), RoutingError> {
        if index >= self.buckets.len() {
            return Err(RoutingError::NotFound);
        }
        if !self.can_split(index) {
            return Err(RoutingError::CannotSplit);
        }
        if self.buckets[index].len() < self.config.k {
            return Err(RoutingError::BucketNotFull);
        }
        let depth = index + 1;
        let own = self.own_id;
        let deeper = |id: &NodeId| own.shared_prefix_len(id) >= depth;
        let old = &mut self.buckets[index];
        let mut new = Bucket::new(now);
        new.last_changed = old.last_changed;
        new.last_refresh = old.last_refresh;
        let (moved, stay): (Vec<Entry>, Vec<Entry>) =
            old.entries.drain(..).partition(|e| deeper(&e.info.id));
        old.entries = stay;
        new.entries = moved;
        let (moved, stay): (Vec<Candidate>, Vec<Candidate>) =
            old.replacements.drain(..).partition(|c| deeper(&c.info.id));
        old.replacements = stay;
        new.replacements = moved;
        self.buckets.push(new);
        self.refresh.push(index);
        self.refresh.push(depth);
        self.fill_from_cache(now, index);
        self.fill_from_cache(now, depth);
        Ok(())
    }

    /// Takes the best verified candidate of bucket `b` that is still admissible, drops the
    /// inadmissible ones met on the way, and makes it an entry. Needs room in the bucket.
    fn promote_one(&mut self, now: Instant, b: usize) -> Option<NodeInfo> {
        if self.buckets.get(b)?.len() >= self.config.k {
            return None;
        }
        loop {
            let best = self.buckets[b]
                .replacements
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_verified())
                .max_by_key(|(_, c)| c.last_seen)
                .map(|(i, _)| i)?;
            let cand = self.buckets[b].replacements.swap_remove(best);
            let info = cand.info;
            let admissible = info.id != self.own_id
                && self.bucket_index(&info.id) == b
                && self.locate(&info.id).is_none()
                && !self.by_addr.contains_key(&AddrKey(info.addr))
                && !(self.limits_ip() && self.by_ip.contains_key(&ip_key(&info.addr)))
                && self.subnet_holder(b, &info.addr, &info.id).is_none();
            if admissible && self.push_entry(b, cand.into_entry()).is_ok() {
                self.buckets[b].last_changed = now;
                return Some(info);
            }
        }
    }

    fn fill_from_cache(&mut self, now: Instant, b: usize) {
        while self.promote_one(now, b).is_some() {}
    }

    /// A node answered one of our queries from `addr` (the caller matched the transaction on id
    /// and address): make it an entry if it fits (splitting, replacing a bad or failing entry),
    /// refresh it if known, else cache it and say whom to ping.
    ///
    /// Before placing it, entries it makes stale are dropped: another id at the same socket
    /// address (that node changed its id), its own id at another address when that entry has
    /// failed a query since it last answered (the node moved), and a non-good entry on the same IP (per [`IpPolicy`]). They stay
    /// dropped even if the newcomer then only reaches the replacement cache. A good entry on the
    /// same IP, or on the same subnet in its bucket, wins: the newcomer is rejected.
    pub fn heard_response(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> InsertOutcome {
        self.insert_verified(now, Entry::responded(now, NodeInfo::new(id, addr)))
    }

    pub(super) fn insert_verified(&mut self, now: Instant, new: Entry) -> InsertOutcome {
        let info = new.info;
        if info.id == self.own_id {
            return InsertOutcome::Rejected(Rejection::OwnId);
        }
        // Known id.
        let mut stale: Vec<NodeId> = Vec::new();
        if let Some((b, p)) = self.locate(&info.id) {
            let entry = &mut self.buckets[b].entries[p];
            if entry.info.addr == info.addr {
                entry.last_response = entry.last_response.max(new.last_response);
                entry.ever_responded = true;
                if new.last_response.is_some() {
                    entry.failed_queries = 0;
                    entry.ping_requested = None;
                    self.buckets[b].last_changed = now;
                }
                return InsertOutcome::Refreshed;
            }
            if entry.failed_queries == 0 {
                return InsertOutcome::Rejected(Rejection::AddressMismatch);
            }
            stale.push(info.id);
        }
        // Another id at this very address: the node there changed its id.
        if let Some(other) = self.by_addr.get(&AddrKey(info.addr))
            && *other != info.id
        {
            stale.push(*other);
        }
        // Another entry on this IP.
        if self.limits_ip()
            && let Some(other) = self.by_ip.get(&ip_key(&info.addr)).copied()
            && other != info.id
            && !stale.contains(&other)
        {
            if self.is_good(now, &other) {
                return InsertOutcome::Rejected(Rejection::IpConflict);
            }
            stale.push(other);
        }
        let mut vacated = Vec::new();
        for id in &stale {
            if let Some((b, p)) = self.locate(id) {
                self.remove_at(b, p);
                vacated.push(b);
            }
        }
        let outcome = self.place_verified(now, new);
        for b in vacated {
            self.fill_from_cache(now, b);
        }
        outcome
    }

    fn place_verified(&mut self, now: Instant, new: Entry) -> InsertOutcome {
        let info = new.info;
        // At most one split per bucket level.
        for _ in 0..=MAX_BUCKETS {
            let b = self.bucket_index(&info.id);
            let full = self.buckets[b].len() >= self.config.k;
            if full && self.can_split(b) {
                if self.split_bucket(now, b).is_err() {
                    break;
                }
                continue;
            }
            if let Some(p) = self.subnet_holder(b, &info.addr, &info.id) {
                if self.buckets[b].entries[p].liveness(now, &self.config) == Liveness::Good {
                    return InsertOutcome::Rejected(Rejection::IpConflict);
                }
                let removed = self.remove_at(b, p);
                return self.push_new(now, b, new, InsertOutcome::Replaced(removed.info));
            }
            if !full {
                return self.push_new(now, b, new, InsertOutcome::Added);
            }
            if let Some(p) = self.replaceable(now, b) {
                let removed = self.remove_at(b, p);
                return self.push_new(now, b, new, InsertOutcome::Replaced(removed.info));
            }
            return self.cache_and_ping(now, b, new_candidate(new));
        }
        // Unreachable: each pass either returns or splits, and there are at most 159 splits.
        InsertOutcome::Rejected(Rejection::CacheFull)
    }

    fn push_new(
        &mut self,
        now: Instant,
        b: usize,
        entry: Entry,
        outcome: InsertOutcome,
    ) -> InsertOutcome {
        let id = entry.info.id;
        match self.push_entry(b, entry) {
            Ok(()) => {
                self.buckets[b].remove_candidate(&id);
                self.buckets[b].last_changed = now;
                outcome
            }
            // Unreachable: every caller made room first.
            Err(_) => InsertOutcome::Rejected(Rejection::CacheFull),
        }
    }

    /// Puts a candidate in bucket `b`'s cache and names the questionable entry to ping first.
    fn cache_and_ping(&mut self, now: Instant, b: usize, cand: Candidate) -> InsertOutcome {
        let kept = self.buckets[b].add_candidate(cand, self.config.replacement_cache_size);
        if let Some(p) = self.ping_target(now, b) {
            let entry = &mut self.buckets[b].entries[p];
            entry.ping_requested = Some(now);
            return InsertOutcome::PingFirst(entry.info);
        }
        if kept {
            InsertOutcome::Cached
        } else {
            InsertOutcome::Rejected(Rejection::CacheFull)
        }
    }

    /// A node sent us a query from `addr`. An entry at that address counts it towards its
    /// liveness; an unknown node is a candidate: ping it if it could get a slot, else it waits
    /// in the replacement cache.
    pub fn heard_query(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> InsertOutcome {
        self.consider_unverified(now, NodeInfo::new(id, addr), true)
    }

    /// Another node told us about `id` at `addr` (a reply's `nodes`). Never changes an entry;
    /// says whether the node is worth a ping.
    pub fn learned(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> InsertOutcome {
        self.consider_unverified(now, NodeInfo::new(id, addr), false)
    }

    fn consider_unverified(&mut self, now: Instant, info: NodeInfo, query: bool) -> InsertOutcome {
        if info.id == self.own_id {
            return InsertOutcome::Rejected(Rejection::OwnId);
        }
        if let Some((b, p)) = self.locate(&info.id) {
            let entry = &mut self.buckets[b].entries[p];
            if entry.info.addr == info.addr {
                if query {
                    entry.last_query = Some(now);
                }
                return InsertOutcome::Refreshed;
            }
            return if entry.failed_queries == 0 {
                InsertOutcome::Rejected(Rejection::AddressMismatch)
            } else {
                InsertOutcome::PingCandidate(info)
            };
        }
        if self.by_addr.contains_key(&AddrKey(info.addr)) {
            // The entry at this address may have changed its id; only an answer can tell.
            return InsertOutcome::PingCandidate(info);
        }
        if self.limits_ip()
            && let Some(other) = self.by_ip.get(&ip_key(&info.addr)).copied()
        {
            return if self.is_good(now, &other) {
                InsertOutcome::Rejected(Rejection::IpConflict)
            } else {
                InsertOutcome::PingCandidate(info)
            };
        }
        let b = self.bucket_index(&info.id);
        let full = self.buckets[b].len() >= self.config.k;
        if full && self.can_split(b) {
            return InsertOutcome::PingCandidate(info);
        }
        if let Some(p) = self.subnet_holder(b, &info.addr, &info.id) {
            let holder = self.buckets[b].entries[p].info.id;
            return if self.is_good(now, &holder) {
                InsertOutcome::Rejected(Rejection::IpConflict)
            } else {
                InsertOutcome::PingCandidate(info)
            };
        }
        if !full || self.replaceable(now, b).is_some() {
            return InsertOutcome::PingCandidate(info);
        }
        let cand = Candidate {
            info,
            first_seen: now,
            last_seen: now,
            last_response: None,
            ping_requested: None,
        };
        self.cache_and_ping(now, b, cand)
    }

    /// A query we sent to `addr` failed (timed out or was answered with garbage). The entry's
    /// failure count grows; once it may be replaced (bad, or questionable with a failure) the
    /// best verified candidate of its bucket takes its place. A failing replacement candidate
    /// leaves the cache. [`RoutingError::NotFound`] if nothing is known at `addr`.
    pub fn record_failure(
        &mut self,
        now: Instant,
        addr: SocketAddr,
    ) -> Result<FailureOutcome, RoutingError> {
        if let Some(id) = self.by_addr.get(&AddrKey(addr)).copied() {
            let (b, p) = self.locate(&id).ok_or(RoutingError::NotFound)?;
            let entry = &mut self.buckets[b].entries[p];
            entry.failed_queries = entry.failed_queries.saturating_add(1);
            entry.ping_requested = None;
            entry.last_failure = Some(now);
            let liveness = entry.liveness(now, &self.config);
            if liveness == Liveness::Good || self.buckets[b].replacements.is_empty() {
                return Ok(FailureOutcome::Counted(liveness));
            }
            let removed = self.remove_at(b, p);
            if let Some(added) = self.promote_one(now, b) {
                return Ok(FailureOutcome::Replaced {
                    removed: removed.info,
                    added,
                });
            }
            // No admissible verified candidate: put the entry back.
            self.push_entry(b, removed)?;
            let unverified = self.buckets[b]
                .replacements
                .iter_mut()
                .filter(|c| {
                    !c.is_verified()
                        && c.ping_requested.is_none_or(|t| {
                            now.saturating_duration_since(t) >= self.config.ping_timeout
                        })
                })
                .max_by_key(|c| c.last_seen);
            if let Some(c) = unverified {
                c.ping_requested = Some(now);
                return Ok(FailureOutcome::PingCandidate(c.info));
            }
            return Ok(FailureOutcome::Counted(liveness));
        }
        for bucket in &mut self.buckets {
            if let Some(at) = bucket.replacements.iter().position(|c| c.info.addr == addr) {
                bucket.replacements.swap_remove(at);
                return Ok(FailureOutcome::CandidateDropped);
            }
        }
        Err(RoutingError::NotFound)
    }

    /// Removes the entry with this id; a verified candidate may take its slot.
    /// [`RoutingError::NotFound`] if there is no such entry.
    pub fn remove(&mut self, now: Instant, id: &NodeId) -> Result<Entry, RoutingError> {
        let (b, p) = self.locate(id).ok_or(RoutingError::NotFound)?;
        let entry = self.remove_at(b, p);
        self.fill_from_cache(now, b);
        Ok(entry)
    }

    /// Forgets everything at `addr`: its replacement candidates first, so that none of them
    /// takes the slot, then its entry (a verified candidate may take that slot). Returns the
    /// entry removed, if there was one.
    pub fn forget_addr(&mut self, now: Instant, addr: &SocketAddr) -> Option<Entry> {
        for bucket in &mut self.buckets {
            bucket.replacements.retain(|c| c.info.addr != *addr);
        }
        let id = self.by_addr.get(&AddrKey(*addr)).copied()?;
        self.remove(now, &id).ok()
    }
}

fn new_candidate(entry: Entry) -> Candidate {
    Candidate {
        info: entry.info,
        first_seen: entry.first_seen,
        last_seen: entry.last_seen(),
        last_response: entry.last_response,
        ping_requested: None,
    }
}
