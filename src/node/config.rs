//! Every tunable of a node, with documented defaults, in one place.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::address_policy;
use crate::items::ItemStoreConfig;
use crate::node::external_ip::VoteConfig;
use crate::node::ratelimit::RateLimit;
use crate::node::verify::VerifyConfig;
use crate::peers::PeerStoreConfig;
use crate::routing::RoutingConfig;
use crate::transaction::TransactionConfig;

/// The client version btdht sends in `v`: "BD" and version 0.1.
pub const CLIENT_VERSION: [u8; 4] = [b'B', b'D', 0, 1];

/// A node's configuration. [`Default`] gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bucket size and the number of closest nodes a lookup waits for. Default 8 (BEP 5).
    pub k: usize,
    /// Queries a lookup keeps in flight. Default 3 (BEP 5; libtorrent uses 5).
    pub alpha: usize,
    /// How long a query may go unanswered. Default 2 seconds.
    pub query_timeout: Duration,
    /// How long a lookup waits for an answer before it asks the same node again (up to
    /// `lookup_attempts` queries in all; then it stops waiting for the node, and takes its
    /// answer only if it still comes within `query_timeout`). Default 200 ms; zero, or at or
    /// above `query_timeout`, leaves retries to `query_timeout` alone.
    pub lookup_retry_interval: Duration,
    /// How long a node may stay silent before its query stops counting against `alpha`, so
    /// that the lookup asks the next candidate too. Default 1 second.
    pub lookup_short_timeout: Duration,
    /// Queries a lookup sends to one node before giving up on it. Default 4: at 5% loss each
    /// way a query fails about 10% of the time, and a lookup must not lose one of the K
    /// closest nodes to a dropped datagram; a dead node holds a lookup up for
    /// `4 * lookup_retry_interval` at most.
    pub lookup_attempts: u32,
    /// BEP 43: send `ro = 1` and answer no queries. Default false.
    pub read_only: bool,
    /// BEP 42: keep out of the routing table nodes whose id does not match their IP.
    /// Default false (most of the DHT does not comply).
    pub enforce_bep42: bool,
    /// Accept private, loopback, link-local and reserved addresses (for local networks and
    /// tests). Default false: a public node never stores or hands them out.
    pub allow_private: bool,
    /// The node has an IPv4 and an IPv6 socket: its bootstrap lookups ask for both families
    /// (`want n4 n6`, BEP 32) to fill both routing tables. The driver sets it when it binds
    /// both. Default false.
    pub dual_stack: bool,
    /// Lookups running at once (user requests and maintenance). Default 64.
    pub max_lookups: usize,
    /// Candidates one lookup remembers. Default 64.
    pub lookup_candidates: usize,
    /// Distinct peers one get_peers lookup collects. Default 2,000.
    pub lookup_max_peers: usize,
    /// Outgoing datagrams buffered between two drains by the driver. Default 8,192.
    pub max_outbox: usize,
    /// Informational events (nodes, incoming queries) buffered between two drains by the
    /// driver; more are dropped and counted. Completions of requests are always kept.
    /// Default 8,192.
    pub max_events: usize,
    /// Period of the maintenance timer (refreshes, liveness pings, expiry). Default 1 second.
    pub tick_interval: Duration,
    /// Liveness pings sent per maintenance tick. Default 4.
    pub pings_per_tick: usize,
    /// With no good node in the routing tables, how often to bootstrap again through the seeds
    /// (bootstrap nodes and routers). Default 30 s.
    pub rebootstrap_interval: Duration,
    /// Report nodes entering and leaving the routing table as events. Default true.
    pub node_events: bool,
    /// Report incoming announces and get_peers as events. Default true.
    pub incoming_events: bool,
    /// Report every incoming query and response as an event (for hooks). Default false.
    pub query_events: bool,
    /// Token bucket on incoming queries per source IP; a query over it gets no answer
    /// (counted in `Stats::rate_limited`). Default [`RateLimit::PER_IP`] (20/s, bursts of
    /// 100); `None` disables it.
    pub rate_limit_per_ip: Option<RateLimit>,
    /// Token bucket on all incoming queries. Default [`RateLimit::GLOBAL`] (5,000/s, bursts
    /// of 10,000); `None` disables it.
    pub rate_limit_global: Option<RateLimit>,
    /// Token bucket on incoming queries from sources not among the recent ones (the per-IP
    /// table), so that a flood of spoofed distinct addresses cannot take the whole global
    /// rate. Default [`RateLimit::NEW_SOURCES`] (1,000/s, bursts of 5,000); `None` disables
    /// it. Needs `rate_limit_per_ip`.
    pub rate_limit_new_sources: Option<RateLimit>,
    /// Source IPs whose buckets are remembered (older ones are forgotten). Default 65,536.
    pub rate_limit_max_ips: usize,
    /// The `v` sent in every message. Default [`CLIENT_VERSION`].
    pub version: Option<Vec<u8>>,
    /// Routing table settings.
    pub routing: RoutingConfig,
    /// Announce store settings.
    pub peers: PeerStoreConfig,
    /// Transaction map settings.
    pub transactions: TransactionConfig,
    /// BEP 44 item store settings.
    pub items: ItemStoreConfig,
    /// This node's public address, if known: the node takes a BEP 42 id for it (unless its id
    /// already is one, or the address is exempt). The replies' `ip` votes may still move it
    /// later. Default `None`: the votes alone elect it.
    pub external_ip: Option<IpAddr>,
    /// How the replies' `ip` fields elect the external address.
    pub external_ip_vote: VoteConfig,
    /// How unknown query senders are verified: pinged at a bounded rate, each address at
    /// most once per 15 minutes by default.
    pub verify: VerifyConfig,
    /// Bytes of replies (answers and errors) the node sends per second, over all askers, in
    /// bursts of one second's worth; a reply over it is not sent (counted in
    /// `Stats::replies_over_budget`). Default 4,000,000 (a server's uplink share; a home node
    /// can take far less, as libtorrent's 8,000); `u64::MAX` lifts it (benchmarks).
    pub reply_bytes_per_second: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 8,
            alpha: 3,
            query_timeout: Duration::from_secs(2),
            lookup_retry_interval: Duration::from_millis(200),
            lookup_short_timeout: Duration::from_secs(1),
            lookup_attempts: 4,
            read_only: false,
            enforce_bep42: false,
            allow_private: false,
            dual_stack: false,
            max_lookups: 64,
            lookup_candidates: 64,
            lookup_max_peers: 2_000,
            max_outbox: 8_192,
            max_events: 8_192,
            tick_interval: Duration::from_secs(1),
            pings_per_tick: 4,
            rebootstrap_interval: Duration::from_secs(30),
            node_events: true,
            incoming_events: true,
            query_events: false,
            rate_limit_per_ip: Some(RateLimit::PER_IP),
            rate_limit_global: Some(RateLimit::GLOBAL),
            rate_limit_new_sources: Some(RateLimit::NEW_SOURCES),
            rate_limit_max_ips: 65_536,
            version: Some(CLIENT_VERSION.to_vec()),
            routing: RoutingConfig::default(),
            peers: PeerStoreConfig::default(),
            transactions: TransactionConfig::default(),
            items: ItemStoreConfig::default(),
            external_ip: None,
            external_ip_vote: VoteConfig::default(),
            verify: VerifyConfig::default(),
            reply_bytes_per_second: 4_000_000,
        }
    }
}

impl Config {
    /// Whether this node may talk to, store or hand out `addr`.
    pub fn accepts(&self, addr: &SocketAddr) -> bool {
        address_policy::accepts(addr, self.allow_private)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_private_lifts_the_filter_but_not_port_zero() {
        let mut config = Config::default();
        assert!(!config.accepts(&"127.0.0.1:6881".parse().unwrap()));
        config.allow_private = true;
        assert!(config.accepts(&"127.0.0.1:6881".parse().unwrap()));
        assert!(!config.accepts(&"127.0.0.1:0".parse().unwrap()));
    }
}
