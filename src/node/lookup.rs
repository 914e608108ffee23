//! The iterative lookup state machine (Kademlia-style), used by find_node, get_peers,
//! announce, bootstrap and bucket refresh.
//!
//! A lookup keeps the closest candidates to its target, has at most `alpha` queries in flight,
//! and stops when the `k` closest candidates that did not fail have all answered. It sends
//! nothing itself: [`Lookup::next_query`] says whom to ask, and the node reports each answer
//! or failure back. Memory is bounded: at most `max_candidates` candidates and `max_peers`
//! peers are kept.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::contact::NodeInfo;
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
}

/// An iterative lookup towards `target`.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: NodeId,
    params: LookupParams,
    candidates: BTreeMap<Distance, Candidate>,
    /// Addresses of bootstrap routers asked before their ids are known.
    seeds_in_flight: usize,
    in_flight: usize,
    peers: Vec<SocketAddr>,
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
    /// Distinct peers found (get_peers lookups).
    pub peers: Vec<SocketAddr>,
    /// Queries sent.
    pub queries: u32,
    /// Answers received.
    pub responses: u32,
    /// Queries that timed out or failed.
    pub failures: u32,
    /// The longest chain of hops to a node among the closest (1 = known at the start).
    pub rounds: u32,
    /// Time from start to end.
    pub duration: Duration,
    /// Whether the lookup ended before it converged (cancelled, or its deadline passed): the
    /// fields hold what was found so far.
    pub partial: bool,
}

impl Lookup {
    /// A lookup towards `target`, starting from `initial` known nodes.
    pub fn new(target: NodeId, params: LookupParams, initial: &[NodeInfo], now: Instant) -> Self {
        let mut lookup = Lookup {
            target,
            params,
            candidates: BTreeMap::new(),
            seeds_in_flight: 0,
            in_flight: 0,
            peers: Vec::new(),
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
        if self.candidates.len() >= self.params.max_candidates {
            let Some((&farthest, _)) = self.candidates.iter().next_back() else {
                return;
            };
            if distance >= farthest {
                return;
            }
            if let Some(dropped) = self.candidates.remove(&farthest) {
                if dropped.state == State::InFlight {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
        }
        self.candidates.insert(
            distance,
            Candidate {
                node,
                state: State::Fresh,
                hops,
                attempts: 0,
            },
        );
    }

    /// The next node to query, if the lookup may send one now; marks it in flight.
    pub fn next_query(&mut self) -> Option<NodeInfo> {
        if self.in_flight + self.seeds_in_flight >= self.params.alpha {
            return None;
        }
        let k = self.params.k;
        let candidate = self
            .candidates
            .values_mut()
            .filter(|c| c.state != State::Failed)
            .take(k)
            .find(|c| c.state == State::Fresh)?;
        candidate.state = State::InFlight;
        candidate.attempts += 1;
        self.in_flight += 1;
        self.queries_sent += 1;
        Some(candidate.node)
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
        let Some(candidate) = self.find_mut(node) else {
            return 0;
        };
        if candidate.state != State::InFlight {
            return 0;
        }
        candidate.state = State::Responded(token);
        let hops = candidate.hops + 1;
        self.in_flight = self.in_flight.saturating_sub(1);
        self.responses += 1;
        for found in nodes {
            self.add_candidate(*found, hops);
        }
        let before = self.peers.len();
        for peer in peers {
            if self.peers.len() >= self.params.max_peers {
                break;
            }
            if !self.peers.contains(peer) {
                self.peers.push(*peer);
            }
        }
        self.peers.len() - before
    }

    /// The distinct peers found so far, in the order they arrived.
    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// `node` timed out or answered with an error: it is asked again until it has had
    /// `max_attempts` queries, then it counts as failed.
    pub fn on_failure(&mut self, node: &NodeInfo) {
        let max_attempts = self.params.max_attempts;
        let Some(candidate) = self.find_mut(node) else {
            return;
        };
        if candidate.state != State::InFlight {
            return;
        }
        candidate.state = if candidate.attempts < max_attempts {
            State::Fresh
        } else {
            State::Failed
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        self.failures += 1;
    }

    /// Whether the lookup is over: the `k` closest candidates that did not fail have all
    /// answered, or nobody is left to ask and nothing is in flight.
    pub fn is_done(&self) -> bool {
        if self.seeds_in_flight > 0 {
            return false;
        }
        let mut live = self
            .candidates
            .values()
            .filter(|c| c.state != State::Failed)
            .take(self.params.k);
        live.all(|c| matches!(c.state, State::Responded(_)))
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
            peers: self.peers.clone(),
            queries: self.queries_sent,
            responses: self.responses,
            failures: self.failures,
            duration: now - self.started,
            partial: !self.is_done(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> LookupParams {
        LookupParams {
            alpha: 3,
            k: 2,
            max_candidates: 8,
            max_peers: 4,
            max_attempts: 1,
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
