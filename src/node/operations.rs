//! Running lookups and announces: starting them from the routing tables or the seeds, driving
//! their queries (with resends and widening past silent nodes), finishing them (announce_peer
//! to the closest with their tokens).

use super::*;

impl Node {
    pub(super) fn start_lookup(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: NodeId,
        announce: Option<AnnounceParams>,
    ) -> RequestId {
        self.start_lookup_with(now, kind, target, announce, false)
    }

    pub(super) fn start_lookup_with(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: NodeId,
        announce: Option<AnnounceParams>,
        noseed: bool,
    ) -> RequestId {
        self.start_lookup_from(now, kind, target, announce, noseed, Vec::new())
    }

    /// Starts a lookup from the routing tables' closest nodes and `extra` (nodes to query
    /// that are not in the tables); the bootstrap addresses when there are none.
    pub(super) fn start_lookup_from(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: NodeId,
        announce: Option<AnnounceParams>,
        noseed: bool,
        extra: Vec<NodeInfo>,
    ) -> RequestId {
        let request = self.new_request();
        let params = LookupParams {
            alpha: self.config.alpha.max(1),
            k: self.config.k.max(1),
            max_candidates: self.config.lookup_candidates.max(self.config.k),
            max_peers: self.config.lookup_max_peers,
            max_attempts: self.config.lookup_attempts.max(1),
            prefer_bep42: matches!(kind, LookupKind::Announce | LookupKind::PutItem),
        };
        let mut initial = self.table4.closest(&target, params.k);
        initial.extend(self.table6.closest(&target, params.k));
        initial.extend(extra);
        let mut lookup = Lookup::new(target, params, &initial, now);
        if self.operations.len() >= self.config.max_lookups {
            self.finish_lookup(now, request, kind, lookup, announce);
            return request;
        }
        // With no good node, the table may be all stale (after an outage): ask the seeds too.
        if initial.is_empty() || !self.has_good_node(now) {
            let mut seeds = self.routers.clone();
            seeds.extend_from_slice(&self.bootstrap_nodes);
            for addr in seeds {
                let query = self.item_query(request, self.lookup_query(kind, target, noseed));
                if self
                    .send_query(now, addr, query, Pending::Seed { op: request })
                    .is_ok()
                {
                    lookup.seed_sent();
                }
            }
        }
        self.operations.insert(
            request,
            Operation::Lookup {
                kind,
                lookup,
                announce,
                noseed,
            },
        );
        self.drive(now, request);
        request
    }

    pub(super) fn lookup_query(&self, kind: LookupKind, target: NodeId, noseed: bool) -> QueryKind {
        // BEP 32: a dual-stack node fills both tables while bootstrapping.
        let want = if kind == LookupKind::Bootstrap && self.config.dual_stack {
            Want { n4: true, n6: true }
        } else {
            Want::UNSPECIFIED
        };
        match kind {
            LookupKind::GetPeers | LookupKind::Announce => QueryKind::GetPeers {
                info_hash: target,
                want: Want::UNSPECIFIED,
                noseed,
                scrape: false,
            },
            LookupKind::FindNode | LookupKind::Bootstrap | LookupKind::Refresh => {
                QueryKind::FindNode { target, want }
            }
            LookupKind::GetItem | LookupKind::PutItem => QueryKind::Get {
                target,
                seq: None,
                want: Want::UNSPECIFIED,
            },
        }
    }

    /// Sends what a lookup may send now, and finishes it when it is done.
    pub(super) fn drive(&mut self, now: Instant, request: RequestId) {
        loop {
            let Some(Operation::Lookup {
                kind,
                lookup,
                noseed,
                ..
            }) = self.operations.get_mut(&request)
            else {
                return;
            };
            let (kind, noseed) = (*kind, *noseed);
            let target = lookup.target();
            match lookup.next_query() {
                Some(node) => {
                    let attempt = lookup.attempts(&node);
                    let query = self.item_query(request, self.lookup_query(kind, target, noseed));
                    self.send_lookup_query(now, request, node, attempt, query);
                }
                None => {
                    if lookup.is_done()
                        && let Some(Operation::Lookup {
                            kind,
                            lookup,
                            announce,
                            ..
                        }) = self.operations.remove(&request)
                    {
                        self.finish_lookup(now, request, kind, lookup, announce);
                    }
                    return;
                }
            }
        }
    }

    /// Sends a lookup's query number `attempt` to `node`, and sets its retry timer; a query
    /// that cannot be sent counts as failed.
    pub(super) fn send_lookup_query(
        &mut self,
        now: Instant,
        request: RequestId,
        node: NodeInfo,
        attempt: u32,
        query: QueryKind,
    ) {
        let pending = Pending::Lookup {
            op: request,
            node,
            attempt,
        };
        if self.send_query(now, node.addr, query, pending).is_err() {
            if let Some(Operation::Lookup { lookup, .. }) = self.operations.get_mut(&request) {
                lookup.on_failure(&node);
            }
            return;
        }
        let interval = self.config.lookup_retry_interval;
        if !interval.is_zero()
            && interval < self.config.query_timeout
            && self.silences.len() < self.transactions.capacity()
        {
            self.silences
                .push_back((now + interval, request, node, attempt));
        }
    }

    /// A lookup query's retry interval passed: ask again, or widen, or stop waiting.
    pub(super) fn on_silence(
        &mut self,
        now: Instant,
        request: RequestId,
        node: NodeInfo,
        attempt: u32,
    ) {
        let interval = self.config.lookup_retry_interval;
        let widen = interval.saturating_mul(attempt) >= self.config.lookup_short_timeout;
        let Some(Operation::Lookup {
            kind,
            lookup,
            noseed,
            ..
        }) = self.operations.get_mut(&request)
        else {
            return;
        };
        let (kind, noseed, target) = (*kind, *noseed, lookup.target());
        match lookup.on_silence(&node, attempt, widen) {
            None => return,
            Some(true) => {
                let query = self.lookup_query(kind, target, noseed);
                self.send_lookup_query(now, request, node, attempt + 1, query);
            }
            Some(false) => {}
        }
        self.drive(now, request);
    }

    pub(super) fn finish_lookup(
        &mut self,
        now: Instant,
        request: RequestId,
        kind: LookupKind,
        lookup: Lookup,
        announce: Option<AnnounceParams>,
    ) {
        let outcome = lookup.outcome(now);
        self.table4.note_lookup(now, &outcome.target);
        self.table6.note_lookup(now, &outcome.target);
        if let Some(op) = self.item_ops.remove(&request) {
            self.finish_item_lookup(now, request, op, outcome);
            return;
        }
        let Some(params) = announce else {
            self.emit(Event::LookupDone {
                request,
                kind,
                outcome,
            });
            return;
        };
        let mut sent = 0;
        for (node, token) in outcome.store_targets(self.config.k) {
            let query = QueryKind::AnnouncePeer {
                info_hash: outcome.target,
                port: params.port.unwrap_or(0),
                implied_port: params.port.is_none(),
                token,
                seed: params.seed,
            };
            if self
                .send_query(now, node.addr, query, Pending::Announce { op: request })
                .is_ok()
            {
                sent += 1;
            }
        }
        if sent == 0 {
            self.emit(Event::AnnounceDone {
                request,
                outcome,
                sent: 0,
                acknowledged: 0,
            });
        } else {
            self.operations.insert(
                request,
                Operation::Announcing {
                    outcome,
                    sent,
                    acknowledged: 0,
                    pending: sent,
                },
            );
        }
    }

    pub(super) fn announce_reply(&mut self, request: RequestId, acknowledged: bool) {
        let Some(Operation::Announcing {
            acknowledged: acks,
            pending,
            ..
        }) = self.operations.get_mut(&request)
        else {
            return;
        };
        *pending = pending.saturating_sub(1);
        if acknowledged {
            *acks += 1;
        }
        if *pending == 0 {
            self.complete_sending(request);
        }
    }

    /// Ends an announce or a put in its sending phase: removes it and emits its completion
    /// with the acknowledgements counted so far. A lookup still running is left alone.
    pub(super) fn complete_sending(&mut self, request: RequestId) {
        match self.operations.remove(&request) {
            Some(Operation::Announcing {
                outcome,
                sent,
                acknowledged,
                ..
            }) => self.emit(Event::AnnounceDone {
                request,
                outcome,
                sent,
                acknowledged,
            }),
            Some(Operation::Putting { result, .. }) => {
                self.emit(Event::PutItemDone { request, result })
            }
            Some(lookup) => {
                self.operations.insert(request, lookup);
            }
            None => {}
        }
    }
}
