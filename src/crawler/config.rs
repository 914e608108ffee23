//! The crawler's configuration: [`CrawlConfig`] and its defaults.

use super::*;

/// The crawler's configuration. [`Default`] gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct CrawlConfig {
    /// Crawler ids the queries rotate through. Default 4.
    pub ids: usize,
    /// Global limit on queries sent per second. Default 500: a 5,000-node swarm is visited in
    /// about 11 s, and on the public DHT it is a modest 50 kB/s.
    pub rate: u32,
    /// Queries per second to one destination IP (bursts of the same size). Default 4 (at most
    /// 44 in 10 s: libtorrent bans an IP after 50). 0 disables the limit.
    pub per_ip_rate: u32,
    /// How long a query may go unanswered. Default 2 s.
    pub query_timeout: Duration,
    /// Queries awaiting an answer at once. Default 2,048.
    pub max_in_flight: usize,
    /// Ask nodes for BEP 51 samples (else only `find_node`). Default true.
    pub sample_infohashes: bool,
    /// Count the peers of each new info-hash with one `get_peers`. Default false.
    pub get_peers: bool,
    /// Crawl over IPv4: its addresses are visited. Default true.
    pub ipv4: bool,
    /// Crawl over IPv6: its addresses are visited; with both families every query asks
    /// `want n4 n6` (BEP 32), so replies carry `nodes` and `nodes6`. Default false. A
    /// [`Crawl`](super::Crawl) sets both from the sockets it has.
    pub ipv6: bool,
    /// Talk to private, loopback and reserved addresses. Default false.
    pub allow_private: bool,
    /// Of every 4 visits, how many use a neighbour target (the rest random). Default 3.
    pub neighbour_targets_in_4: u32,
    /// Addresses waiting for their first visit. Default 1,000,000.
    pub max_frontier: usize,
    /// Scheduled re-samples (BEP 51 intervals) and per-IP-delayed queries, each. Default
    /// 100,000.
    pub max_delayed: usize,
    /// Re-samples of one node at most. Default 8.
    pub max_resamples: u8,
    /// Shortest wait before a re-sample, whatever the node's `interval`. Default 10 s.
    pub min_interval: Duration,
    /// `find_node` sweeps per second once everything known is visited (slowed down while they
    /// find nothing, see the module docs). Default 20; 0 disables them.
    pub sweep_rate: u32,
    /// Sweeps in a row that find no new address before the crawl counts as idle. Default 16.
    pub idle_sweeps: u32,
    /// Datagrams queued for [`Crawler::poll_transmit`](super::Crawler::poll_transmit) at most;
    /// the crawler sends no more queries while it is full. Default 8,192.
    pub max_outbox: usize,
    /// Records buffered between two drains; more are dropped and counted. Default 65,536.
    pub max_records: usize,
    /// The "seen" sets (nodes printed, addresses queued, info-hashes printed).
    pub dedup: DedupConfig,
    /// The part of the id space crawled: every query's target lies in it and only its
    /// info-hashes are recorded (nodes are recorded wherever they are). Default: all of it.
    pub shard: Shard,
    /// The `v` sent in every query. Default `BD` 0.1.
    pub version: Option<Vec<u8>>,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            ids: 4,
            rate: 500,
            per_ip_rate: 4,
            query_timeout: Duration::from_secs(2),
            max_in_flight: 2_048,
            sample_infohashes: true,
            get_peers: false,
            ipv4: true,
            ipv6: false,
            allow_private: false,
            neighbour_targets_in_4: 3,
            max_frontier: 1_000_000,
            max_delayed: 100_000,
            max_resamples: 8,
            min_interval: Duration::from_secs(10),
            sweep_rate: 20,
            idle_sweeps: 16,
            max_outbox: 8_192,
            max_records: 65_536,
            dedup: DedupConfig::default(),
            shard: Shard::ALL,
            version: Some(crate::node::config::CLIENT_VERSION.to_vec()),
        }
    }
}

impl CrawlConfig {
    /// Whether the crawler may talk to `addr`: its family is crawled and the address policy
    /// allows it.
    pub fn accepts(&self, addr: &SocketAddr) -> bool {
        let family = if addr.is_ipv4() { self.ipv4 } else { self.ipv6 };
        family && address_policy::accepts(addr, self.allow_private)
    }

    /// The `want` of every query: both families when both are crawled, else the default (the
    /// family the query travels on).
    pub fn want(&self) -> Want {
        if self.ipv4 && self.ipv6 {
            Want { n4: true, n6: true }
        } else {
            Want::UNSPECIFIED
        }
    }
}
