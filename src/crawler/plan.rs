//! The crawler's planning: which work goes next, sending what the rate limits allow, the
//! targets of the queries, and encoding them.

use super::*;

impl Crawler {
    /// The next work item, in priority order; `None` when nothing is ready.
    pub(super) fn next_work(&mut self, now: Instant) -> Option<Work> {
        if let Some(w) = self.retries.pop_front() {
            return Some(w);
        }
        if let Some(w) = self.get_peers.pop_front() {
            return Some(w);
        }
        if let Some(w) = self.frontier.pop_front() {
            return Some(w);
        }
        if self.config.sweep_rate > 0 && now >= self.next_sweep && !self.reservoir.is_empty() {
            let slowdown = 1u32 << (self.dry_sweeps / 4).min(10);
            let interval = (Duration::from_secs(1) / self.config.sweep_rate) * slowdown;
            self.next_sweep = now + interval.min(Duration::from_secs(30));
            let addr = self.reservoir[self.rng.random_range(0..self.reservoir.len())];
            return Some(Work::Sweep { addr });
        }
        None
    }

    /// Sends what the limits allow now.
    pub(super) fn pump(&mut self, now: Instant) {
        self.more = false;
        for _ in 0..MAX_PUMP {
            if self.in_flight.len() >= self.config.max_in_flight
                || self.outbox.len() >= self.config.max_outbox
            {
                return;
            }
            self.global.refill(self.global_limit, now);
            if !self.global.has_token() {
                return;
            }
            let Some(work) = self.next_work(now) else {
                return;
            };
            let ip = work.addr().ip();
            if let Some(limiter) = &mut self.per_ip
                && !limiter.allow(now, ip)
            {
                self.stats.per_ip_delayed += 1;
                let wait = Duration::from_secs(1) / self.config.per_ip_rate.max(1);
                self.delay(now + wait, work);
                continue;
            }
            self.global.take_token();
            self.send(now, work);
        }
        self.more = true;
    }

    /// A target for a visit of `id`: a neighbour target (its low 64 bits random) or a random one,
    /// in the shard (a node outside it gets a random target).
    pub(super) fn target(&mut self, id: Option<NodeId>) -> NodeId {
        let neighbour = self
            .rng
            .random_ratio(self.config.neighbour_targets_in_4.min(4), 4);
        match id {
            Some(id) if neighbour && self.config.shard.contains(&id) => {
                let mut target = id;
                self.rng.fill(&mut target.0[12..]);
                target
            }
            _ => self.config.shard.random_id(&mut self.rng),
        }
    }

    pub(super) fn send(&mut self, now: Instant, work: Work) {
        let (kind, sample) = match work {
            Work::Visit {
                addr, id, retry, ..
            } => {
                let target = self.target(id);
                let deferred = self.deferred.get(&addr).is_some_and(|t| *t > now);
                if self.config.sample_infohashes && !retry && !deferred {
                    let kind = QueryKind::SampleInfohashes {
                        target,
                        want: self.config.want(),
                    };
                    (kind, true)
                } else {
                    let kind = QueryKind::FindNode {
                        target,
                        want: self.config.want(),
                    };
                    (kind, false)
                }
            }
            Work::Resample { id, .. } => {
                let target = self.target(Some(id));
                let kind = QueryKind::SampleInfohashes {
                    target,
                    want: self.config.want(),
                };
                (kind, true)
            }
            Work::GetPeers { info_hash, .. } => (
                QueryKind::GetPeers {
                    info_hash,
                    want: self.config.want(),
                    noseed: false,
                    scrape: false,
                },
                false,
            ),
            Work::Sweep { .. } => {
                let target = self.config.shard.random_id(&mut self.rng);
                let kind = QueryKind::FindNode {
                    target,
                    want: self.config.want(),
                };
                (kind, false)
            }
        };
        let addr = work.addr();
        let deadline = now + self.config.query_timeout;
        let tid =
            match self
                .in_flight
                .insert(deadline, addr, Pending { work, sample }, &mut self.tid_rng)
            {
                Ok(tid) => tid,
                Err(_) => {
                    self.stats.queue_overflows += 1;
                    return;
                }
            };
        match &kind {
            QueryKind::SampleInfohashes { .. } => self.stats.samples_sent += 1,
            QueryKind::FindNode { .. } => self.stats.find_nodes_sent += 1,
            _ => self.stats.get_peers_sent += 1,
        }
        self.stats.queries_sent += 1;
        let id = self.ids[(self.stats.queries_sent as usize) % self.ids.len()];
        let query = Query { id, kind };
        let message = Outgoing {
            transaction_id: tid.as_bytes(),
            version: self.config.version.as_deref(),
            read_only: true,
            requester_ip: None,
            body: BodyRef::Query(&query),
        };
        if self
            .outbox
            .push(addr, self.config.max_outbox, &message)
            .is_none()
        {
            // Its transaction times out and fails like a lost query.
            self.stats.queue_overflows += 1;
        }
    }
}
