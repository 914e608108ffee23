//! Answering queries: the reply to each method, the K closest nodes for `nodes`/`nodes6`,
//! trimming to the reply size limit and the reply-byte budget, error replies.

use super::*;
use crate::krpc::ReplyParts;
use crate::token::Token;

impl Node {
    /// Sends `response` with `token` (if any), trimmed to [`MAX_REPLY_LEN`] bytes, if the
    /// reply byte budget allows.
    pub(super) fn reply(
        &mut self,
        now: Instant,
        to: SocketAddr,
        transaction_id: &[u8],
        mut response: Response,
        token: Option<Token>,
    ) {
        self.stats.responses_out += 1;
        if self.outbox.len() >= self.config.max_outbox {
            self.stats.queue_overflows += 1;
            return;
        }
        loop {
            let message = Outgoing {
                transaction_id,
                version: self.config.version.as_deref(),
                read_only: false,
                requester_ip: Some(to),
                body: BodyRef::ResponseParts(
                    &response,
                    ReplyParts {
                        token: token.as_ref().map(AsRef::as_ref),
                        ..ReplyParts::default()
                    },
                ),
            };
            let excess = self.outbox.encode(&message).saturating_sub(MAX_REPLY_LEN);
            if excess == 0 || !trim_reply(&mut response, excess, &to, &mut self.rng) {
                break;
            }
            self.stats.replies_trimmed += 1;
        }
        self.spare.keep(&mut response);
        if !self.reply_budget.take(now, self.outbox.encoded_len()) {
            self.stats.replies_over_budget += 1;
            return;
        }
        let max = self.config.max_outbox;
        count_queued(&mut self.stats, self.outbox.queue_encoded(to, max));
    }

    pub(super) fn reply_error(
        &mut self,
        now: Instant,
        to: SocketAddr,
        transaction_id: &[u8],
        code: i64,
        text: &str,
    ) {
        if self.outbox.len() >= self.config.max_outbox {
            self.stats.queue_overflows += 1;
            return;
        }
        let error = KrpcError {
            code,
            message: text.as_bytes().to_vec(),
        };
        let message = Outgoing {
            transaction_id,
            version: self.config.version.as_deref(),
            read_only: false,
            requester_ip: Some(to),
            body: BodyRef::Error(&error),
        };
        let len = self.outbox.encode(&message);
        if !self.reply_budget.take(now, len) {
            self.stats.replies_over_budget += 1;
            return;
        }
        self.stats.error_sent(code);
        let max = self.config.max_outbox;
        count_queued(&mut self.stats, self.outbox.queue_encoded(to, max));
    }

    /// The K closest nodes for a reply: IPv4 into `nodes`, IPv6 into `nodes6`, by `want` or
    /// by the asker's family.
    pub(super) fn fill_nodes(
        &mut self,
        response: &mut Response,
        target: &NodeId,
        want: Want,
        from: &SocketAddr,
    ) {
        let (n4, n6) = if want.is_specified() {
            (want.n4, want.n6)
        } else {
            (from.is_ipv4(), from.is_ipv6())
        };
        let k = self.config.k;
        // The K closest, the asker left out, into the kept lists.
        if n4 {
            let mut nodes = std::mem::take(&mut self.spare.nodes);
            self.table4.closest_into(target, k, Some(from), &mut nodes);
            response.nodes = Some(nodes);
        }
        if n6 {
            let mut nodes = std::mem::take(&mut self.spare.nodes6);
            self.table6.closest_into(target, k, Some(from), &mut nodes);
            response.nodes6 = Some(nodes);
        }
    }

    pub(super) fn on_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transaction_id: &[u8],
        read_only: bool,
        query: Query,
    ) {
        let method = Method::of(&query.kind);
        self.stats.queries_in[method as usize] += 1;
        self.emit(Event::QueryReceived {
            from,
            id: query.id,
            method,
        });
        if self.config.read_only {
            return;
        }
        if read_only {
            self.stats.read_only_queries += 1;
        } else if query.id != self.id
            && self.id_acceptable(&query.id, &from)
            && !self.is_router(&from)
        {
            match self.table(&from).heard_query(now, query.id, from) {
                InsertOutcome::PingCandidate(node) | InsertOutcome::PingFirst(node) => {
                    self.verifier.offer(now, node);
                    self.send_verifications(now);
                }
                outcome => self.on_insert(now, outcome),
            }
        }
        let mut response = Response::new(self.id);
        let mut token = None;
        match query.kind {
            QueryKind::Ping => {}
            QueryKind::FindNode { target, want } => {
                self.fill_nodes(&mut response, &target, want, &from)
            }
            QueryKind::GetPeers {
                info_hash,
                want,
                noseed,
                scrape,
            } => {
                token = Some(self.tokens.issue(now, from.ip()));
                let family = AddressFamily::of(from.ip());
                // With `scrape`, the Bloom filters stand for the values (BEP 33, as
                // libtorrent answers): both would not fit in one datagram.
                let filters = if scrape {
                    self.peers.scrape(&info_hash)
                } else {
                    None
                };
                if let Some(filters) = filters {
                    response.bloom_seeds = Some(Box::new(*filters.seeds.as_bytes()));
                    response.bloom_peers = Some(Box::new(*filters.peers.as_bytes()));
                }
                if response.bloom_seeds.is_none() {
                    let mut values = std::mem::take(&mut self.spare.values);
                    self.peers.get_peers_into(
                        &info_hash,
                        family,
                        self.config.peers.max_values_per_reply,
                        noseed,
                        &mut self.rng,
                        &mut values,
                    );
                    if values.is_empty() {
                        self.spare.values = values;
                    } else {
                        response.values = Some(values);
                    }
                }
                self.fill_nodes(&mut response, &info_hash, want, &from);
                self.emit(Event::GetPeersReceived { info_hash, from });
            }
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => {
                if !self.tokens.verify(now, from.ip(), &token) {
                    self.stats.bad_tokens += 1;
                    self.reply_error(now, from, transaction_id, ERROR_PROTOCOL, "invalid token");
                    return;
                }
                let port = if implied_port { from.port() } else { port };
                let peer = SocketAddr::new(from.ip(), port);
                if self.config.accepts(&peer)
                    && self.peers.announce(now, info_hash, peer, seed).is_ok()
                {
                    self.stats.announces_stored += 1;
                    self.emit(Event::PeerAnnounced {
                        info_hash,
                        peer,
                        seed,
                    });
                }
            }
            QueryKind::SampleInfohashes { target, want } => {
                let sample = self.peers.sample(now, &mut self.rng);
                response.samples = Some(sample.samples);
                response.num = Some(sample.num as i64);
                response.interval = Some(i64::from(sample.interval));
                self.fill_nodes(&mut response, &target, want, &from);
            }
            QueryKind::Get { target, seq, want } => {
                token = Some(self.tokens.issue(now, from.ip()));
                self.fill_item(now, &mut response, &target, seq);
                self.fill_nodes(&mut response, &target, want, &from);
            }
            QueryKind::Put(args) => {
                if !self.tokens.verify(now, from.ip(), &args.token) {
                    self.stats.bad_tokens += 1;
                    self.reply_error(now, from, transaction_id, ERROR_PROTOCOL, "invalid token");
                    return;
                }
                if let Err((code, text)) = self.store_item(now, args) {
                    self.reply_error(now, from, transaction_id, code, &text);
                    return;
                }
                self.stats.items_stored += 1;
            }
        }
        self.reply(now, from, transaction_id, response, token);
    }
}

/// Removes from `response` at least `excess` encoded bytes: first the nodes of the family the
/// asker did not send from (only there with `want n4 n6`), then values, then the nodes of its
/// own family. Nodes go farthest first; values are dropped uniformly at random with `rng`
/// (their order in the list is the store's, which an early announcer could otherwise use to
/// stay in every trimmed reply), so those kept are still a uniformly random subset. Returns
/// false if nothing is left to remove.
fn trim_reply(
    response: &mut Response,
    excess: usize,
    asker: &SocketAddr,
    rng: &mut SmallRng,
) -> bool {
    fn cut<T>(list: &mut Option<Vec<T>>, excess: usize, each: usize) -> bool {
        let Some(items) = list.as_mut().filter(|items| !items.is_empty()) else {
            return false;
        };
        let keep = items.len().saturating_sub(excess.div_ceil(each));
        items.truncate(keep);
        if items.is_empty() {
            *list = None;
        }
        true
    }
    /// Moves `drop` values drawn uniformly at random to the end of `values` (a partial
    /// Fisher-Yates shuffle from the back), for `cut` to remove.
    fn draw_last(
        values: &mut Option<Vec<SocketAddr>>,
        excess: usize,
        each: usize,
        rng: &mut SmallRng,
    ) {
        if let Some(values) = values.as_mut() {
            let n = values.len();
            let drop = excess.div_ceil(each).min(n);
            for i in 0..drop {
                let last = n - 1 - i;
                values.swap(rng.random_range(0..=last), last);
            }
        }
    }
    // Each value is a bencoded string: `6:` and 6 bytes (IPv4), `18:` and 18 bytes (IPv6).
    let value_len = match response.values.as_ref().and_then(|v| v.first()) {
        Some(SocketAddr::V6(_)) => 21,
        _ => 8,
    };
    let (own, own_len, other, other_len) = if asker.ip().to_canonical().is_ipv4() {
        (&mut response.nodes, 26, &mut response.nodes6, 38)
    } else {
        (&mut response.nodes6, 38, &mut response.nodes, 26)
    };
    if cut(other, excess, other_len) {
        return true;
    }
    draw_last(&mut response.values, excess, value_len, rng);
    cut(&mut response.values, excess, value_len) || cut(own, excess, own_len)
}
