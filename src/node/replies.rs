//! Handling replies: responses matched to their queries (routing-table updates, lookups,
//! pings, announces), error replies and timeouts, and the liveness pings they lead to.

use super::*;

impl Node {
    pub(super) fn on_insert(&mut self, now: Instant, outcome: InsertOutcome) {
        match outcome {
            InsertOutcome::Added => {}
            InsertOutcome::Replaced(old) => self.emit(Event::NodeRemoved(old)),
            InsertOutcome::PingCandidate(node) | InsertOutcome::PingFirst(node) => {
                let _ = self.send_query(
                    now,
                    node.addr,
                    QueryKind::Ping,
                    Pending::Ping { request: None },
                );
            }
            InsertOutcome::Refreshed | InsertOutcome::Cached | InsertOutcome::Rejected(_) => {}
        }
    }

    /// Pings the query senders waiting for verification, as many as the rate allows now.
    pub(super) fn send_verifications(&mut self, now: Instant) {
        while let Some(node) = self.verifier.next(now) {
            let _ = self.send_query(
                now,
                node.addr,
                QueryKind::Ping,
                Pending::Ping { request: None },
            );
        }
    }

    pub(super) fn on_failure_outcome(&mut self, now: Instant, outcome: FailureOutcome) {
        match outcome {
            FailureOutcome::Replaced { removed, added } => {
                self.emit(Event::NodeRemoved(removed));
                self.emit(Event::NodeAdded(added));
            }
            FailureOutcome::PingCandidate(node) => {
                if !self.verifier.claim(now, node.addr.ip()) {
                    return;
                }
                let _ = self.send_query(
                    now,
                    node.addr,
                    QueryKind::Ping,
                    Pending::Ping { request: None },
                );
            }
            FailureOutcome::Counted(_) | FailureOutcome::CandidateDropped => {}
        }
    }

    /// Nodes of a reply worth keeping: accepted addresses, not us.
    pub(super) fn usable_nodes(&mut self, response: &Response) -> Vec<NodeInfo> {
        let mut nodes = Vec::new();
        for node in response.all_nodes() {
            if node.id == self.id || self.is_router(&node.addr) {
                continue;
            }
            if self.config.accepts(&node.addr) {
                nodes.push(*node);
            } else {
                self.stats.filtered_addresses += 1;
            }
        }
        nodes
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        response: Response,
        requester_ip: Option<SocketAddr>,
    ) {
        let pending = match self.transactions.take_reply(tid, from) {
            Ok(pending) => pending,
            Err(crate::transaction::ReplyMismatch::WrongAddress) => {
                self.stats.replies_wrong_address += 1;
                return;
            }
            Err(_) => {
                self.stats.replies_unknown += 1;
                return;
            }
        };
        self.stats.responses_in += 1;
        self.verifier.answered(from.ip());
        if let Some(reported) = requester_ip {
            self.on_reported_ip(now, from, reported.ip());
        }
        self.emit(Event::ResponseReceived {
            from,
            id: response.id,
        });
        if response.id != self.id
            && self.id_acceptable(&response.id, &from)
            && !self.is_router(&from)
        {
            let outcome = self.table(&from).heard_response(now, response.id, from);
            match outcome {
                InsertOutcome::Added => {
                    self.emit(Event::NodeAdded(NodeInfo::new(response.id, from)))
                }
                InsertOutcome::Replaced(old) => {
                    self.emit(Event::NodeRemoved(old));
                    self.emit(Event::NodeAdded(NodeInfo::new(response.id, from)));
                }
                other => self.on_insert(now, other),
            }
        }
        match pending {
            Pending::Lookup { op, node, attempt } => {
                if response.id == node.id {
                    let target = self.operations.get(&op).and_then(|o| match o {
                        Operation::Lookup { lookup, .. } => Some(lookup.target()),
                        _ => None,
                    });
                    if let Some(target) = target {
                        self.collect_item(op, target, &response);
                    }
                }
                let nodes = self.usable_nodes(&response);
                let peers: Vec<SocketAddr> = response
                    .values
                    .iter()
                    .flatten()
                    .filter(|peer| self.config.accepts(peer))
                    .copied()
                    .collect();
                let mut found = Vec::new();
                // BEP 42 enforcement: a responder whose id does not match its address gives no
                // token and does not count among the closest (its reply is final, as an
                // error).
                let invalid = !self.id_acceptable(&response.id, &from);
                if let Some(Operation::Lookup { kind, lookup, .. }) = self.operations.get_mut(&op) {
                    if invalid {
                        lookup.on_error(&node);
                    } else if response.id == node.id {
                        let new = lookup.on_response(&node, response.token, &nodes, &peers);
                        if new > 0 && *kind == LookupKind::GetPeers {
                            let all = lookup.peers();
                            found = all[all.len().saturating_sub(new)..].to_vec();
                        }
                    } else if lookup.attempts(&node) == attempt {
                        lookup.on_failure(&node);
                    }
                }
                if !found.is_empty() {
                    self.emit(Event::PeersFound {
                        request: op,
                        peers: found,
                    });
                }
                self.drive(now, op);
            }
            Pending::Seed { op } => {
                let mut nodes = self.usable_nodes(&response);
                // A seed given to `bootstrap` is a node too; a router is not.
                if !self.is_router(&from) {
                    nodes.push(NodeInfo::new(response.id, from));
                }
                if let Some(Operation::Lookup { lookup, .. }) = self.operations.get_mut(&op) {
                    lookup.seed_done(true, &nodes);
                }
                self.drive(now, op);
            }
            Pending::Announce { op } => self.announce_reply(op, true),
            Pending::Put { op } => self.put_reply(op, None),
            Pending::Ping { request } => {
                if let Some(request) = request {
                    self.emit(Event::PingDone {
                        request,
                        addr: from,
                        result: Ok(response.id),
                    });
                }
            }
            Pending::Sample { request } => {
                let nodes = self.usable_nodes(&response);
                let reply = SampleReply {
                    id: response.id,
                    samples: response.samples.unwrap_or_default(),
                    num: response.num,
                    interval: response.interval,
                    nodes,
                };
                self.emit(Event::SampleDone {
                    request,
                    addr: from,
                    result: Ok(reply),
                });
            }
        }
    }

    pub(super) fn on_error(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        error: KrpcError,
    ) {
        self.stats.errors_in += 1;
        let Ok(pending) = self.transactions.take_reply(tid, from) else {
            self.stats.replies_unknown += 1;
            return;
        };
        // An error is the node's final answer to this lookup: no retry.
        if let Pending::Lookup { op, node, .. } = pending {
            if let Some(Operation::Lookup { lookup, .. }) = self.operations.get_mut(&op) {
                lookup.on_error(&node);
            }
            self.drive(now, op);
            return;
        }
        let failure = QueryError::Remote {
            code: error.code,
            message: error.message_lossy().into_owned(),
        };
        self.query_failed(now, from, pending, failure);
    }

    pub(super) fn query_failed(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        pending: Pending,
        error: QueryError,
    ) {
        match pending {
            Pending::Lookup { op, node, attempt } => {
                // An earlier query's timeout while a later one waits is no failure yet.
                if let Some(Operation::Lookup { lookup, .. }) = self.operations.get_mut(&op)
                    && lookup.attempts(&node) == attempt
                {
                    lookup.on_failure(&node);
                }
                self.drive(now, op);
            }
            Pending::Seed { op } => {
                if let Some(Operation::Lookup { lookup, .. }) = self.operations.get_mut(&op) {
                    lookup.seed_done(false, &[]);
                }
                self.drive(now, op);
            }
            Pending::Announce { op } => self.announce_reply(op, false),
            Pending::Put { op } => self.put_reply(op, Some(error)),
            Pending::Ping { request } => {
                if let Some(request) = request {
                    self.emit(Event::PingDone {
                        request,
                        addr,
                        result: Err(error),
                    });
                }
            }
            Pending::Sample { request } => self.emit(Event::SampleDone {
                request,
                addr,
                result: Err(error),
            }),
        }
    }
}
