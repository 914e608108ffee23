//! The iterative lookup state machine (Kademlia-style), used by find_node, get_peers,
//! announce, bootstrap and bucket refresh.
//!
//! A lookup keeps the closest candidates to its target, has at most `alpha` queries in flight,
//! and stops when the `k` closest candidates that did not fail have all answered. It sends
//! nothing itself: [`Lookup::next_query`] says whom to ask, and the node reports each answer
//! or failure back. A silent node is asked again at short intervals while the lookup waits
//! for it ([`Lookup::on_silence`]); past a short timeout it stops counting against `alpha`, so
//! the lookup asks the next candidate too (as libtorrent's traversal does), and once its
//! attempts are used up the lookup stops waiting for it. A late answer is still taken until
//! the node's queries time out. Memory is bounded: at most `max_candidates` candidates and `max_peers`
//! peers are kept.
//!
//! A lookup that precedes an announce or a put ([`LookupParams::prefer_bep42`]) reaches past
//! the closest candidates whose id is not BEP 42-valid for their address (up to `2k`
//! candidates) until its window holds `k` valid ones, and its outcome keeps the closest nodes
//! that gave a token, up to `2k` ([`LookupOutcome::tokens`]): the announce or put goes to the
//! `k` of them [`LookupOutcome::store_targets`] chooses, valid ones first, as libtorrent and the
//! `mainline` crate prefer them. Loopback and private addresses are exempt (BEP 42): any id is
//! valid there.
//!
//! A lookup holds at most one candidate per network ([`network_key`]: an IPv4 /24, an IPv6
//! /64), the first one heard of, so that one host listing many ids next to the target on many
//! addresses of its network gets at most one of the results.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::contact::NodeInfo;
use crate::host::{NetworkKey, network_key};
use crate::id::{Distance, NodeId};
use crate::time::Instant;

/// What a candidate has done so far.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Not asked yet.
    Fresh,
    /// Asked; no answer yet.
    InFlight,
    /// Answered, with the token it gave (if any).
    Responded(Option<Vec<u8>>),
    /// Timed out or answered with an error.
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    node: NodeInfo,
    state: State,
    /// How many hops from our own table (1 = we knew it).
    hops: u32,
    /// Queries sent to it so far.
    attempts: u32,
    /// In flight past the short timeout: not counted in `alpha`.
    slow: bool,
    /// In flight with its attempts used up: not waited for.
    given_up: bool,
    /// In flight and silent for a retry interval: it no longer takes a place among the `k`
    /// closest the lookup may ask (it is still waited for until given up).
    silent: bool,
    /// Its id is BEP 42-valid for its address (or the address is exempt).
    valid: bool,
}

impl Candidate {
    /// Whether the lookup waits for it (or may ask it): it did not fail and was not given up.
    fn counts(&self) -> bool {
        match self.state {
            State::Failed => false,
            State::InFlight => !self.given_up,
            State::Fresh | State::Responded(_) => true,
        }
    }

    /// Whether it takes a place among the `k` closest candidates the lookup may ask.
    fn in_window(&self) -> bool {
        self.counts() && !(self.state == State::InFlight && self.silent)
    }
}

/// The tunables of one lookup.
#[derive(Clone, Copy, Debug)]
pub struct LookupParams {
    /// Queries in flight at once.
    pub alpha: usize,
    /// How many closest nodes must answer before the lookup ends.
    pub k: usize,
    /// How many candidates are remembered (the closest ones win).
    pub max_candidates: usize,
    /// How many distinct peers are collected.
    pub max_peers: usize,
    /// Queries sent to one candidate before it counts as failed (a lost datagram is retried).
    pub max_attempts: u32,
    /// The lookup precedes an announce or a put: its window of closest candidates reaches
    /// past those whose id is not BEP 42-valid for their address, up to `2k` candidates,
    /// until it holds `k` valid ones, so that the nodes chosen to store can be valid ones.
    pub prefer_bep42: bool,
}

/// Which of the closest candidates (in order of distance, those of one kind) make up a
/// lookup's window: the `k` closest, or with [`LookupParams::prefer_bep42`] as many as it
/// takes to hold `k` BEP 42-valid ones, `2k` at most.
struct Window {
    k: usize,
    prefer_bep42: bool,
    taken: usize,
    valid: usize,
}

impl Window {
    fn new(params: &LookupParams) -> Self {
        Window {
            k: params.k,
            prefer_bep42: params.prefer_bep42,
            taken: 0,
            valid: 0,
        }
    }

    /// Whether the window holds all it may.
    fn is_full(&self) -> bool {
        if self.prefer_bep42 {
            self.valid >= self.k || self.taken >= self.k.saturating_mul(2)
        } else {
            self.taken >= self.k
        }
    }

    /// Takes the next closest candidate if the window has room for it.
    fn admit(&mut self, valid: bool) -> bool {
        if self.is_full() {
            return false;
        }
        self.taken += 1;
        self.valid += usize::from(valid);
        true
    }
}

/// An iterative lookup towards `target`.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: NodeId,
    params: LookupParams,
    candidates: BTreeMap<Distance, Candidate>,
    /// The network of every candidate (one candidate per network).
    networks: HashSet<NetworkKey>,
    /// Candidates turned away because their network already had one.
    same_network: u32,
    /// Addresses of bootstrap routers asked before their ids are known.
    seeds_in_flight: usize,
    in_flight: usize,
    peers: Vec<SocketAddr>,
    /// The members of `peers`, for constant-time de-duplication.
    peer_set: HashSet<SocketAddr>,
    started: Instant,
    queries_sent: u32,
    responses: u32,
    failures: u32,
}

/// What a finished lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupOutcome {
    /// The lookup's target.
    pub target: NodeId,
    /// The closest nodes that answered, closest first, with the token each gave.
    pub closest: Vec<(NodeInfo, Option<Vec<u8>>)>,
    /// The closest nodes that answered with a token, up to `2k`, closest first: where an
    /// announce or a put may go ([`LookupOutcome::store_targets`]).
    pub tokens: Vec<(NodeInfo, Vec<u8>)>,
    /// Distinct peers found (get_peers lookups).
    pub peers: Vec<SocketAddr>,
    /// Queries sent.
    pub queries: u32,
    /// Answers received.
    pub responses: u32,
    /// Queries that timed out or failed.
    pub failures: u32,
    /// Times a node in a reply was not taken as a candidate because a candidate on the same
    /// network (IPv4 /24, IPv6 /64) was already known.
    pub same_network: u32,
    /// The longest chain of hops to a node among the closest (1 = known at the start).
    pub rounds: u32,
    /// Time from start to end.
    pub duration: Duration,
    /// Whether the lookup ended before it converged (cancelled, or its deadline passed): the
    /// fields hold what was found so far.
    pub partial: bool,
}

impl LookupOutcome {
    /// The `k` nodes an announce or a put goes to, from [`LookupOutcome::tokens`]: those whose
    /// id is BEP 42-valid for their address (or whose address is exempt) first, closest first,
    /// then, only when fewer than `k` valid ones answered, the closest of the others.
    pub fn store_targets(&self, k: usize) -> Vec<(NodeInfo, Vec<u8>)> {
        let valid = |node: &NodeInfo| node.id.is_bep42_valid_for(node.addr.ip());
        let (mut targets, others): (Vec<_>, Vec<_>) = self
            .tokens
            .iter()
            .cloned()
            .partition(|(node, _)| valid(node));
        targets.truncate(k);
        let room = k.saturating_sub(targets.len());
        targets.extend(others.into_iter().take(room));
        targets
    }
}

impl Lookup {
    /// A lookup towards `target`, starting from `initial` known nodes.
    pub fn new(target: NodeId, params: LookupParams, initial: &[NodeInfo], now: Instant) -> Self {
        let mut lookup = Lookup {
            target,
            params,
            candidates: BTreeMap::new(),
            networks: HashSet::new(),
            same_network: 0,
            seeds_in_flight: 0,
            in_flight: 0,
            peers: Vec::new(),
            peer_set: HashSet::new(),
            started: now,
            queries_sent: 0,
            responses: 0,
            failures: 0,
        };
        for node in initial {
            lookup.add_candidate(*node, 1);
        }
        lookup
    }

    /// The target.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// Records a query sent to a bootstrap address whose id is unknown.
    pub fn seed_sent(&mut self) {
        self.seeds_in_flight += 1;
        self.queries_sent += 1;
    }

    /// A bootstrap address answered (or failed); its nodes come through [`Lookup::on_response`]
    /// semantics via `nodes`.
    pub fn seed_done(&mut self, answered: bool, nodes: &[NodeInfo]) {
        self.seeds_in_flight = self.seeds_in_flight.saturating_sub(1);
        if answered {
            self.responses += 1;
        } else {
            self.failures += 1;
        }
        for node in nodes {
            self.add_candidate(*node, 1);
        }
    }

    fn add_candidate(&mut self, node: NodeInfo, hops: u32) {
        let distance = self.target.distance(&node.id);
        if self.candidates.contains_key(&distance) {
            return;
        }
        let network = network_key(&node.addr);
        if self.networks.contains(&network) {
            self.same_network = self.same_network.saturating_add(1);
            return;
        }
        if self.candidates.len() >= self.params.max_candidates {
            let Some((&farthest, _)) = self.candidates.iter().next_back() else {
                return;
            };
            if distance >= farthest {
                return;
            }
            if let Some(dropped) = self.candidates.remove(&farthest) {
                self.networks.remove(&network_key(&dropped.node.addr));
                if dropped.state == State::InFlight && !dropped.slow {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
        }
        self.networks.insert(network);
        self.candidates.insert(
            distance,
            Candidate {
                node,
                state: State::Fresh,
                hops,
                attempts: 0,
                slow: false,
                given_up: false,
                silent: false,
                valid: node.id.is_bep42_valid_for(node.addr.ip()),
            },
        );
    }

    /// The next node to query, if the lookup may send one now; marks it in flight.
    pub fn next_query(&mut self) -> Option<NodeInfo> {
        if self.in_flight + self.seeds_in_flight >= self.params.alpha {
            return None;
        }
        let mut window = Window::new(&self.params);
        let candidate = self
            .candidates
            .values_mut()
            .filter(|c| c.in_window())
            .take_while(|c| window.admit(c.valid))
            .find(|c| c.state == State::Fresh)?;
        candidate.state = State::InFlight;
        candidate.slow = false;
        candidate.given_up = false;
        candidate.silent = false;
        candidate.attempts += 1;
        self.in_flight += 1;
        self.queries_sent += 1;
        Some(candidate.node)
    }

    /// Queries sent to `node` so far (0 if it is no candidate).
    pub fn attempts(&self, node: &NodeInfo) -> u32 {
        let distance = self.target.distance(&node.id);
        self.candidates
            .get(&distance)
            .filter(|c| c.node.addr == node.addr)
            .map_or(0, |c| c.attempts)
    }

    /// Query number `attempt` to `node` has gone unanswered for the retry interval. `None` if
    /// that is not the node's latest query or it was answered. Otherwise, with `widen` (the
    /// node has been silent for the short timeout) or when it is given up, it no longer
    /// counts against `alpha`; then
    /// `Some(true)`: ask it again now (counted as attempt `attempt + 1`), or `Some(false)`:
    /// its attempts are used up and the lookup no longer waits for it (a late answer is still
    /// taken).
    pub fn on_silence(&mut self, node: &NodeInfo, attempt: u32, widen: bool) -> Option<bool> {
        let max_attempts = self.params.max_attempts;
        let candidate = self.find_mut(node)?;
        if candidate.state != State::InFlight || candidate.given_up || candidate.attempts != attempt
        {
            return None;
        }
        candidate.silent = true;
        let again = candidate.attempts < max_attempts;
        let freed = (widen || !again) && !candidate.slow;
        if freed {
            candidate.slow = true;
        }
        if again {
            candidate.attempts += 1;
        } else {
            candidate.given_up = true;
        }
        if freed {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if again {
            self.queries_sent += 1;
        }
        Some(again)
    }

    /// Ends `node`'s query: it no longer counts in flight.
    fn end_query(&mut self, node: &NodeInfo) -> bool {
        let Some(candidate) = self.find_mut(node) else {
            return false;
        };
        if candidate.state != State::InFlight {
            return false;
        }
        candidate.given_up = false;
        candidate.silent = false;
        let slow = std::mem::take(&mut candidate.slow);
        if !slow {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        true
    }

    fn find_mut(&mut self, node: &NodeInfo) -> Option<&mut Candidate> {
        let distance = self.target.distance(&node.id);
        self.candidates
            .get_mut(&distance)
            .filter(|c| c.node.addr == node.addr)
    }

    /// `node` answered: record its token, the peers and the closer nodes it gave. Returns how
    /// many of those peers were new: they are the last ones of [`Lookup::peers`].
    pub fn on_response(
        &mut self,
        node: &NodeInfo,
        token: Option<Vec<u8>>,
        nodes: &[NodeInfo],
        peers: &[SocketAddr],
    ) -> usize {
        if !self.end_query(node) {
            return 0;
        }
        let Some(candidate) = self.find_mut(node) else {
            return 0;
        };
        candidate.state = State::Responded(token);
        let hops = candidate.hops + 1;
        self.responses += 1;
        for found in nodes {
            self.add_candidate(*found, hops);
        }
        let before = self.peers.len();
        for peer in peers {
            if self.peers.len() >= self.params.max_peers {
                break;
            }
            if self.peer_set.insert(*peer) {
                self.peers.push(*peer);
            }
        }
        self.peers.len() - before
    }

    /// The distinct peers found so far, in the order they arrived.
    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// `node` timed out: while the lookup still waits (it is not done without the node), it
    /// is asked again until it has had `max_attempts` queries; otherwise it counts as failed.
    pub fn on_failure(&mut self, node: &NodeInfo) {
        let max_attempts = self.params.max_attempts;
        let waiting = !self.is_done();
        if !self.end_query(node) {
            return;
        }
        let Some(candidate) = self.find_mut(node) else {
            return;
        };
        candidate.state = if waiting && candidate.attempts < max_attempts {
            State::Fresh
        } else {
            State::Failed
        };
        self.failures += 1;
    }

    /// `node` answered with a KRPC error: an answer, not a lost datagram, so it counts as
    /// failed at once and is not asked again.
    pub fn on_error(&mut self, node: &NodeInfo) {
        if !self.end_query(node) {
            return;
        }
        if let Some(candidate) = self.find_mut(node) {
            candidate.state = State::Failed;
        }
        self.failures += 1;
    }

    /// Whether the lookup is over: the `k` closest candidates that did not fail and were not
    /// given up have all answered (with [`LookupParams::prefer_bep42`], the closest up to `2k`
    /// it takes to include `k` valid ones; a node given up on is still waited for while fewer
    /// candidates are left), or nobody is left to ask and nothing is in flight.
    pub fn is_done(&self) -> bool {
        if self.seeds_in_flight > 0 {
            return false;
        }
        let mut window = Window::new(&self.params);
        for c in self
            .candidates
            .values()
            .filter(|c| c.counts())
            .take_while(|c| window.admit(c.valid))
        {
            if !matches!(c.state, State::Responded(_)) {
                return false;
            }
        }
        window.is_full() || !self.candidates.values().any(|c| c.given_up)
    }

    /// Queries in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight + self.seeds_in_flight
    }

    /// The result so far (final once [`Lookup::is_done`]; `partial` until then).
    pub fn outcome(&self, now: Instant) -> LookupOutcome {
        let closest: Vec<&Candidate> = self
            .candidates
            .values()
            .filter(|c| matches!(c.state, State::Responded(_)))
            .take(self.params.k)
            .collect();
        LookupOutcome {
            target: self.target,
            rounds: closest.iter().map(|c| c.hops).max().unwrap_or(0),
            closest: closest
                .into_iter()
                .map(|c| match &c.state {
                    State::Responded(token) => (c.node, token.clone()),
                    _ => (c.node, None),
                })
                .collect(),
            tokens: self
                .candidates
                .values()
                .filter_map(|c| match &c.state {
                    State::Responded(Some(token)) => Some((c.node, token.clone())),
                    _ => None,
                })
                .take(self.params.k.saturating_mul(2))
                .collect(),
            peers: self.peers.clone(),
            queries: self.queries_sent,
            responses: self.responses,
            failures: self.failures,
            same_network: self.same_network,
            duration: now - self.started,
            partial: !self.is_done(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn params() -> LookupParams {
        LookupParams {
            alpha: 3,
            k: 2,
            max_candidates: 8,
            max_peers: 4,
            max_attempts: 1,
            prefer_bep42: false,
        }
    }

    fn node(byte: u8) -> NodeInfo {
        let mut id = [0u8; 20];
        id[0] = byte;
        NodeInfo::new(NodeId(id), SocketAddr::from(([10, 0, 0, byte], 6881)))
    }

    #[test]
    fn asks_alpha_then_stops_when_k_closest_answered() {
        let target = NodeId::ZERO;
        let mut lookup = Lookup::new(
            target,
            params(),
            &[node(40), node(30), node(20)],
            Instant::ZERO,
        );
        let first: Vec<_> = std::iter::from_fn(|| lookup.next_query()).collect();
        // Only the k = 2 closest live candidates are eligible.
        assert_eq!(first, vec![node(20), node(30)]);
        lookup.on_response(&node(20), Some(b"t20".to_vec()), &[node(5), node(6)], &[]);
        assert!(!lookup.is_done());
        // 5 and 6 are now the two closest; 30 is in flight but no longer among them.
        assert_eq!(lookup.next_query(), Some(node(5)));
        assert_eq!(lookup.next_query(), Some(node(6)));
        assert_eq!(lookup.next_query(), None, "alpha = 3 in flight");
        lookup.on_failure(&node(30));
        assert_eq!(
            lookup.next_query(),
            None,
            "30 is no longer among the k closest"
        );
        lookup.on_response(&node(5), None, &[], &["1.2.3.4:5".parse().unwrap()]);
        assert!(!lookup.is_done());
        lookup.on_response(&node(6), Some(b"t6".to_vec()), &[], &[]);
        assert!(lookup.is_done());
        let outcome = lookup.outcome(Instant::from_secs(2));
        assert_eq!(
            outcome.closest,
            vec![(node(5), None), (node(6), Some(b"t6".to_vec()))]
        );
        assert_eq!(outcome.peers.len(), 1);
        assert_eq!(outcome.rounds, 2);
        assert_eq!(outcome.queries, 4);
        assert_eq!(outcome.failures, 1);
    }

    #[test]
    fn replies_from_wrong_address_or_unasked_nodes_are_ignored() {
        let mut lookup = Lookup::new(NodeId::ZERO, params(), &[node(1)], Instant::ZERO);
        assert_eq!(lookup.next_query(), Some(node(1)));
        let mut spoofed = node(1);
        spoofed.addr = SocketAddr::from(([9, 9, 9, 9], 1));
        lookup.on_response(&spoofed, None, &[node(2)], &[]);
        assert_eq!(lookup.in_flight(), 1);
        lookup.on_response(&node(3), None, &[], &[]);
        assert!(!lookup.is_done());
    }

    #[test]
    fn candidates_and_peers_are_bounded() {
        let mut lookup = Lookup::new(NodeId::ZERO, params(), &[node(200)], Instant::ZERO);
        lookup.next_query();
        let many: Vec<NodeInfo> = (1..100).map(node).collect();
        let peers: Vec<SocketAddr> = (1..100)
            .map(|p| SocketAddr::from(([1, 1, 1, 1], p)))
            .collect();
        lookup.on_response(&node(200), None, &many, &peers);
        assert!(lookup.candidates.len() <= 8);
        assert_eq!(lookup.peers.len(), 4);
        // The closest survive.
        assert_eq!(lookup.next_query(), Some(node(1)));
    }

    #[test]
    fn one_candidate_per_network() {
        let params = LookupParams {
            alpha: 8,
            k: 8,
            max_candidates: 64,
            max_peers: 4,
            max_attempts: 1,
            prefer_bep42: false,
        };
        let honest = |byte: u8| {
            let mut id = [0u8; 20];
            id[0] = byte;
            NodeInfo::new(NodeId(id), SocketAddr::from(([20, byte, 0, 1], 6881)))
        };
        let first = honest(200);
        let mut lookup = Lookup::new(NodeId::ZERO, params, &[first], Instant::ZERO);
        assert_eq!(lookup.next_query(), Some(first));
        // One host lists 20 ids next to the target on 20 addresses of its /24 and /64, and
        // 8 honest nodes farther away.
        let mut nodes: Vec<NodeInfo> = (1..=10u8)
            .map(|n| {
                let mut id = [0u8; 20];
                id[19] = n;
                NodeInfo::new(NodeId(id), SocketAddr::from(([66, 6, 6, n], 6881)))
            })
            .collect();
        nodes.extend((1..=10u16).map(|n| {
            let mut id = [0u8; 20];
            id[18] = n as u8;
            let ip = std::net::Ipv6Addr::new(0x2a00, 1, 2, 3, 0, 0, 0, n);
            NodeInfo::new(NodeId(id), SocketAddr::new(ip.into(), 6881))
        }));
        nodes.extend((10..18).map(honest));
        lookup.on_response(&first, None, &nodes, &[]);
        let asked: Vec<NodeInfo> = std::iter::from_fn(|| lookup.next_query()).collect();
        for asked in &asked {
            lookup.on_response(asked, None, &nodes, &[]);
        }
        while let Some(next) = lookup.next_query() {
            lookup.on_response(&next, None, &[], &[]);
        }
        assert!(lookup.is_done());
        let outcome = lookup.outcome(Instant::ZERO);
        let closest: Vec<SocketAddr> = outcome.closest.iter().map(|(n, _)| n.addr).collect();
        assert_eq!(closest.len(), 8);
        let v4_sybils = closest
            .iter()
            .filter(|a| a.ip().to_string().starts_with("66.6.6."))
            .count();
        let v6_sybils = closest.iter().filter(|a| a.is_ipv6()).count();
        assert_eq!((v4_sybils, v6_sybils), (1, 1), "{closest:?}");
        assert!(outcome.same_network >= 18, "{}", outcome.same_network);
    }

    #[test]
    fn local_addresses_are_one_network_each() {
        let mut lookup = Lookup::new(NodeId::ZERO, params(), &[], Instant::ZERO);
        let nodes: Vec<NodeInfo> = (1..=4u16)
            .map(|port| {
                let mut id = [0u8; 20];
                id[0] = port as u8;
                NodeInfo::new(NodeId(id), SocketAddr::from(([127, 0, 0, 1], port)))
            })
            .collect();
        lookup.seed_done(true, &nodes);
        assert_eq!(lookup.candidates.len(), 4);
        assert_eq!(lookup.same_network, 0);
    }

    #[test]
    fn peers_are_collected_in_linear_time() {
        // 200,000 values: a scan of the list per value would take some 2 * 10^10 comparisons.
        let params = LookupParams {
            max_peers: 300_000,
            ..params()
        };
        let mut lookup = Lookup::new(NodeId::ZERO, params, &[node(1)], Instant::ZERO);
        lookup.next_query();
        let mut values: Vec<SocketAddr> = (0..200_000u32)
            .map(|n| SocketAddr::from((std::net::Ipv4Addr::from(0x1400_0000 + n), 6881)))
            .collect();
        values.extend_from_within(..1_000);
        lookup.on_response(&node(1), None, &[], &values);
        let outcome = lookup.outcome(Instant::ZERO);
        assert_eq!(outcome.peers.len(), 200_000);
        assert_eq!(outcome.peers[..3], values[..3]);
    }

    #[test]
    fn an_error_fails_a_candidate_at_once() {
        let params = LookupParams {
            max_attempts: 4,
            ..params()
        };
        let mut lookup = Lookup::new(NodeId::ZERO, params, &[node(1)], Instant::ZERO);
        assert_eq!(lookup.next_query(), Some(node(1)));
        lookup.on_error(&node(1));
        assert_eq!(lookup.next_query(), None);
        assert!(lookup.is_done());
        assert_eq!(lookup.outcome(Instant::ZERO).failures, 1);
    }

    #[test]
    fn new_peers_are_counted_once_and_unfinished_outcomes_are_partial() {
        let mut lookup = Lookup::new(NodeId::ZERO, params(), &[node(1), node(2)], Instant::ZERO);
        assert_eq!(lookup.next_query(), Some(node(1)));
        assert_eq!(lookup.next_query(), Some(node(2)));
        let p = |port| SocketAddr::from(([1, 1, 1, 1], port));
        assert_eq!(lookup.on_response(&node(1), None, &[], &[p(1), p(2)]), 2);
        assert!(
            lookup.outcome(Instant::ZERO).partial,
            "node 2 has not answered"
        );
        assert_eq!(
            lookup.on_response(&node(1), None, &[], &[p(3)]),
            0,
            "answered twice"
        );
        assert_eq!(lookup.on_response(&node(2), None, &[], &[p(2), p(3)]), 1);
        assert_eq!(lookup.peers(), &[p(1), p(2), p(3)]);
        assert!(lookup.is_done());
        assert!(!lookup.outcome(Instant::ZERO).partial);
    }

    #[test]
    fn a_store_lookup_reaches_past_invalid_ids_and_prefers_valid_targets() {
        // Public addresses: ids not made for them are not BEP 42-valid. The 2 closest
        // candidates are invalid, the next 2 valid (their ids derived from their addresses,
        // the target placed next to them).
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let valid_addr = |n: u8| SocketAddr::from(([21 + 4 * n, 2, 3, 4], 6881));
        let v1 = NodeInfo::new(
            NodeId::bep42(valid_addr(0).ip(), 1, &mut rng),
            valid_addr(0),
        );
        let v2 = NodeInfo::new(
            NodeId::bep42(valid_addr(1).ip(), 1, &mut rng),
            valid_addr(1),
        );
        let target = v1.id.random_at_prefix(21, &mut rng);
        let mut invalid = |n: u8| {
            let id = target.random_at_prefix(40 + usize::from(n), &mut rng);
            NodeInfo::new(id, SocketAddr::from(([30, n, 0, 1], 6881)))
        };
        let (i1, i2) = (invalid(0), invalid(1));
        assert!(!i1.id.is_bep42_valid_for(i1.addr.ip()));
        assert!(v1.id.is_bep42_valid_for(v1.addr.ip()));
        let store = LookupParams {
            alpha: 8,
            prefer_bep42: true,
            ..params()
        };
        let initial = [v2, i2, v1, i1];
        let mut plain = Lookup::new(
            target,
            LookupParams {
                alpha: 8,
                ..params()
            },
            &initial,
            Instant::ZERO,
        );
        assert_eq!(std::iter::from_fn(|| plain.next_query()).count(), 2);
        let mut lookup = Lookup::new(target, store, &initial, Instant::ZERO);
        let asked: Vec<NodeInfo> = std::iter::from_fn(|| lookup.next_query()).collect();
        assert_eq!(asked.len(), 4, "the window reaches the 2 valid ones");
        for node in &asked[..3] {
            lookup.on_response(node, Some(node.id.0[..4].to_vec()), &[], &[]);
        }
        assert!(!lookup.is_done());
        lookup.on_response(&asked[3], Some(asked[3].id.0[..4].to_vec()), &[], &[]);
        assert!(lookup.is_done());
        let outcome = lookup.outcome(Instant::ZERO);
        let closest: Vec<NodeInfo> = outcome.closest.iter().map(|(n, _)| *n).collect();
        let by_distance = |nodes: &mut Vec<NodeInfo>| nodes.sort_by_key(|n| target.distance(&n.id));
        let mut expected = vec![i1, i2];
        by_distance(&mut expected);
        assert_eq!(closest, expected);
        assert_eq!(outcome.tokens.len(), 4);
        let chosen = |k| -> Vec<NodeInfo> {
            outcome
                .store_targets(k)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        let mut valid = vec![v1, v2];
        by_distance(&mut valid);
        assert_eq!(chosen(2), valid);
        // Fewer valid ones than k: the closest invalid ones fill up.
        assert_eq!(chosen(3), [valid.clone(), expected[..1].to_vec()].concat());
    }

    #[test]
    fn empty_lookup_is_done_at_once() {
        let lookup = Lookup::new(NodeId::ZERO, params(), &[], Instant::ZERO);
        assert!(lookup.is_done());
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn a_failed_candidate_is_retried_up_to_max_attempts() {
        let params = LookupParams {
            alpha: 1,
            k: 1,
            max_candidates: 8,
            max_peers: 4,
            max_attempts: 2,
            prefer_bep42: false,
        };
        let node = NodeInfo::new(NodeId([1; 20]), SocketAddr::from(([10, 0, 0, 1], 1)));
        let mut lookup = Lookup::new(NodeId::ZERO, params, &[node], Instant::ZERO);
        assert_eq!(lookup.next_query(), Some(node));
        lookup.on_failure(&node);
        assert!(!lookup.is_done());
        assert_eq!(lookup.next_query(), Some(node), "asked again");
        lookup.on_failure(&node);
        assert_eq!(lookup.next_query(), None);
        assert!(lookup.is_done(), "failed after two attempts");
        assert_eq!(lookup.outcome(Instant::ZERO).failures, 2);
    }
}
