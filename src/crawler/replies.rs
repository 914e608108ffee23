//! The crawler's inputs: timer expiries, datagrams, the replies matched to their queries (the
//! nodes, samples and peers they carry), failures, and the queues that new work goes into.

use super::*;

impl Crawler {
    /// The deadline from [`Crawler::poll_timeout`] passed (calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        for (_, pending) in self.in_flight.expire(now) {
            self.stats.timeouts += 1;
            self.failed(pending, true);
        }
        while self.delayed.peek().is_some_and(|d| d.at <= now) {
            if let Some(d) = self.delayed.pop() {
                self.push_retry(d.work);
            }
        }
        self.pump(now);
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.now = now;
        self.stats.datagrams_in += 1;
        let Ok(decoded) = krpc::decode(bytes) else {
            self.stats.rejected += 1;
            return;
        };
        let message = decoded.message;
        let response = match message.body {
            Body::Query(_) => {
                self.stats.queries_ignored += 1;
                return;
            }
            Body::Response(r) => Some(r),
            Body::Error(_) => None,
        };
        let Some(pending) = self.take_pending(&message.transaction_id, from) else {
            self.stats.unmatched += 1;
            return;
        };
        match response {
            Some(response) => {
                self.stats.replies += 1;
                self.on_response(now, from, pending, response, message.version);
            }
            None => {
                self.stats.errors += 1;
                self.failed(pending, false);
            }
        }
        self.pump(now);
    }

    /// The query a reply answers: matched on transaction id and source address.
    pub(super) fn take_pending(&mut self, tid: &[u8], from: SocketAddr) -> Option<Pending> {
        self.in_flight.take_reply(tid, from).ok()
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        pending: Pending,
        response: Response,
        version: Option<Vec<u8>>,
    ) {
        // The node itself.
        let key = self.fingerprints.of(&(response.id.0, from));
        if self.nodes_seen.insert(key) {
            self.stats.nodes_found += 1;
            self.add_to_reservoir(from);
            let bep51 = pending.sample && (response.samples.is_some() || response.num.is_some());
            self.record(Record::Node {
                id: response.id,
                addr: from,
                bep51,
                version: version.map(|mut v| {
                    v.truncate(16);
                    v
                }),
                at: now,
            });
        }
        // The nodes it knows.
        let queued_before = self.stats.addrs_queued;
        let nodes: Vec<NodeInfo> = response
            .all_nodes()
            .take(MAX_NODES_PER_REPLY)
            .copied()
            .collect();
        for node in nodes {
            if node.addr != from {
                self.queue_visit(node.addr, Some(node.id));
            }
        }
        if matches!(pending.work, Work::Sweep { .. }) && self.stats.addrs_queued == queued_before {
            self.dry_sweeps = self.dry_sweeps.saturating_add(1);
        }
        // A node whose sample an earlier crawl's interval holds back: sampled at its time.
        let deferred = match pending.work {
            Work::Visit { .. } => self.deferred.remove(&from).filter(|t| *t > now),
            _ => None,
        };
        if let Some(at) = deferred.filter(|_| self.config.sample_infohashes) {
            self.delay(
                at,
                Work::Resample {
                    addr: from,
                    id: response.id,
                    count: 0,
                },
            );
        }
        match pending.work {
            Work::GetPeers { info_hash, .. } => {
                let mut peers: Vec<SocketAddr> = response.values.unwrap_or_default();
                peers.sort_unstable();
                peers.dedup();
                let count = peers.len();
                peers.truncate(MAX_PEERS_PER_RECORD);
                self.record(Record::Peers {
                    info_hash,
                    from,
                    peers: count,
                    addrs: peers,
                    at: now,
                });
                return;
            }
            Work::Visit {
                retry: true,
                timed_out: true,
                ..
            } if self.config.sample_infohashes && deferred.is_none() => {
                // The sample was probably lost, not refused: one more sample.
                self.push_retry(Work::Resample {
                    addr: from,
                    id: response.id,
                    count: 1,
                });
            }
            _ => {}
        }
        // Its BEP 51 sample.
        if !pending.sample {
            return;
        }
        let samples = response.samples.unwrap_or_default();
        let got = samples.len();
        let mut in_shard = 0;
        for info_hash in samples.into_iter().take(MAX_SAMPLES_PER_REPLY) {
            if !self.config.shard.contains(&info_hash) {
                self.stats.other_shards += 1;
                continue;
            }
            in_shard += 1;
            let key = self.fingerprints.of(&info_hash.0);
            if self.hashes_seen.insert(key) {
                self.stats.infohashes_found += 1;
                self.record(Record::InfoHash {
                    info_hash,
                    from,
                    at: now,
                });
                if self.config.get_peers {
                    if self.get_peers.len() < self.config.max_delayed {
                        self.get_peers.push_back(Work::GetPeers {
                            addr: from,
                            info_hash,
                        });
                    } else {
                        self.stats.queue_overflows += 1;
                    }
                }
            }
        }
        let count = match pending.work {
            Work::Resample { count, .. } => count,
            _ => 0,
        };
        let num = response.num.unwrap_or(0);
        let interval = response.interval.map(|i| i.clamp(0, MAX_INTERVAL_SECS));
        if let Some(interval) = interval {
            self.record(Record::Interval {
                id: response.id,
                addr: from,
                next_sample: now + Duration::from_secs(interval as u64),
                at: now,
            });
        }
        // A node outside the shard is sampled again only if its sample reached into it.
        let ours = in_shard > 0 || self.config.shard.contains(&response.id);
        if num > got as i64 && count < self.config.max_resamples && ours {
            let interval = interval.unwrap_or(0);
            let wait = Duration::from_secs(interval as u64).max(self.config.min_interval);
            self.stats.resamples += 1;
            self.delay(
                now + wait,
                Work::Resample {
                    addr: from,
                    id: response.id,
                    count: count + 1,
                },
            );
        }
    }

    /// A query failed: timed out (`timeout`) or answered with an error.
    pub(super) fn failed(&mut self, pending: Pending, timeout: bool) {
        match pending.work {
            Work::Visit {
                addr,
                id,
                retry: false,
                ..
            } => self.push_retry(Work::Visit {
                addr,
                id,
                retry: true,
                timed_out: timeout,
            }),
            Work::Visit { retry: true, .. } if timeout => self.stats.unresponsive += 1,
            Work::Sweep { .. } => self.dry_sweeps = self.dry_sweeps.saturating_add(1),
            _ => {}
        }
    }

    pub(super) fn push_retry(&mut self, work: Work) {
        if self.retries.len() >= self.config.max_delayed {
            self.stats.queue_overflows += 1;
            return;
        }
        self.retries.push_back(work);
    }

    pub(super) fn delay(&mut self, at: Instant, work: Work) {
        if self.delayed.len() >= self.config.max_delayed {
            self.stats.queue_overflows += 1;
            return;
        }
        self.delayed_seq += 1;
        self.delayed.push(Delayed {
            at,
            seq: self.delayed_seq,
            work,
        });
    }

    pub(super) fn queue_visit(&mut self, addr: SocketAddr, id: Option<NodeId>) {
        if !self.config.accepts(&addr) {
            self.stats.filtered += 1;
            return;
        }
        let key = self.fingerprints.of(&addr);
        if !self.queued.insert(key) {
            return;
        }
        self.stats.addrs_queued += 1;
        self.dry_sweeps = 0;
        if self.frontier.len() >= self.config.max_frontier {
            self.stats.queue_overflows += 1;
            return;
        }
        self.frontier.push_back(Work::Visit {
            addr,
            id,
            retry: false,
            timed_out: false,
        });
    }

    pub(super) fn add_to_reservoir(&mut self, addr: SocketAddr) {
        self.reservoir_seen += 1;
        if self.reservoir.len() < RESERVOIR {
            self.reservoir.push(addr);
        } else {
            let j = self.rng.random_range(0..self.reservoir_seen);
            if let Some(slot) = self.reservoir.get_mut(j as usize) {
                *slot = addr;
            }
        }
    }
}
