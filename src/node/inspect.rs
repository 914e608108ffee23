//! What a [`Node`] lets its caller see and take: its id, configuration, tables, stores,
//! counters, and the datagrams, events and deadline it produces.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Node {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The IPv4 routing table.
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table4
    }

    /// The IPv6 routing table (BEP 32).
    pub fn routing_table6(&self) -> &RoutingTable {
        &self.table6
    }

    /// The announce store.
    pub fn peer_store(&self) -> &PeerStore {
        &self.peers
    }

    /// The BEP 44 item store.
    pub fn item_store(&self) -> &ItemStore {
        &self.items
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The external address of one family (`ipv6` false: IPv4) the replies elected, or the
    /// configured one ([`Config::external_ip`]).
    pub fn external_ip(&self, ipv6: bool) -> Option<IpAddr> {
        if ipv6 {
            self.vote6.elected()
        } else {
            self.vote4.elected()
        }
    }

    /// The counters of the verification of unknown query senders.
    pub fn verify_stats(&self) -> VerifyStats {
        self.verifier.stats()
    }

    /// The counters of the external-address votes: IPv4, IPv6.
    pub fn external_ip_votes(&self) -> (VoteStats, VoteStats) {
        (self.vote4.stats(), self.vote6.stats())
    }

    /// The rate limiters (per source IP, new sources, global).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Informational events and completions waiting in [`Node::poll_event`]'s queue.
    pub fn events_queued(&self) -> usize {
        self.events.len()
    }

    /// Datagrams waiting in [`Node::poll_transmit`]'s queue.
    pub fn transmits_queued(&self) -> usize {
        self.outbox.len()
    }

    /// Lookups and announces still running.
    pub fn operations_running(&self) -> usize {
        self.operations.len()
    }

    /// Queries awaiting an answer.
    pub fn queries_in_flight(&self) -> usize {
        self.transactions.len()
    }

    // --- outputs ---------------------------------------------------------------------------

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at = match self.transactions.next_deadline() {
            Some(deadline) => deadline.min(self.next_tick),
            None => self.next_tick,
        };
        if let Some((deadline, _)) = self.deadlines.first() {
            at = at.min(*deadline);
        }
        if let Some((deadline, ..)) = self.silences.front() {
            at = at.min(*deadline);
        }
        Some(at)
    }
}
