//! Verification of unknown query senders: which of them the node pings, and when.
//!
//! A query from an unknown node makes it a routing-table candidate, but only a reply to our
//! ping proves its address is real. Pinging every sender at once would let anyone make the node
//! send a datagram per datagram received, to any spoofed address. So a sender waits in a
//! bounded queue and is pinged at a bounded rate, at most once per IP address per
//! [`VerifyConfig::interval`]: an address pinged within that time (answered or not) is not
//! pinged again. Time is the caller's.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use crate::contact::NodeInfo;
use crate::node::ratelimit::{RateLimit, RateLimiter};
use crate::time::Instant;

/// The verification's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyConfig {
    /// Verification pings per second (bursts of the same number). Default 50.
    pub pings_per_second: u32,
    /// Time before an address is pinged again. Default 15 minutes.
    pub interval: Duration,
    /// Senders waiting for their ping; more are dropped. Default 256.
    pub max_pending: usize,
    /// Addresses remembered as pinged; the oldest are forgotten first. Default 65,536.
    pub max_recent: usize,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            pings_per_second: 50,
            interval: Duration::from_secs(15 * 60),
            max_pending: 256,
            max_recent: 65_536,
        }
    }
}

/// Counters of the verification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Verification pings handed out.
    pub pinged: u64,
    /// Senders not pinged because their address was pinged within the interval, or already
    /// waits.
    pub recent: u64,
    /// Senders dropped because the queue was full.
    pub dropped: u64,
}

/// The queue of senders to verify and the addresses pinged lately.
#[derive(Debug)]
pub struct Verifier {
    config: VerifyConfig,
    pending: VecDeque<NodeInfo>,
    /// When each address was last pinged (or queued).
    recent: HashMap<IpAddr, Instant>,
    /// `recent`'s keys in the order they were recorded, with the time recorded.
    order: VecDeque<(Instant, IpAddr)>,
    budget: RateLimiter,
    stats: VerifyStats,
}

impl Verifier {
    /// An empty verifier, its rate budget full at `now`.
    pub fn new(config: VerifyConfig, now: Instant) -> Self {
        let rate = config.pings_per_second.max(1);
        Verifier {
            config,
            pending: VecDeque::new(),
            recent: HashMap::new(),
            order: VecDeque::new(),
            budget: RateLimiter::new(None, Some(RateLimit { rate, burst: rate }), 1, now),
            stats: VerifyStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> VerifyStats {
        self.stats
    }

    /// Senders waiting for their ping.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Addresses remembered as pinged.
    pub fn remembered(&self) -> usize {
        self.recent.len()
    }

    /// Whether `ip` was pinged or queued within the interval before `now`.
    fn is_recent(&self, now: Instant, ip: IpAddr) -> bool {
        self.recent
            .get(&ip)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.config.interval)
    }

    fn remember(&mut self, now: Instant, ip: IpAddr) {
        while let Some(&(at, old)) = self.order.front() {
            let expired = now.saturating_duration_since(at) >= self.config.interval;
            if !expired && self.recent.len() < self.config.max_recent.max(1) {
                break;
            }
            self.order.pop_front();
            if self.recent.get(&old) == Some(&at) {
                self.recent.remove(&old);
            }
        }
        self.recent.insert(ip, now);
        self.order.push_back((now, ip));
    }

    /// An unknown node sent a query: queue it for a ping unless its address was pinged or
    /// queued lately. Returns whether it was queued.
    pub fn offer(&mut self, now: Instant, node: NodeInfo) -> bool {
        let ip = node.addr.ip().to_canonical();
        if self.is_recent(now, ip) {
            self.stats.recent += 1;
            return false;
        }
        if self.pending.len() >= self.config.max_pending {
            self.stats.dropped += 1;
            return false;
        }
        self.remember(now, ip);
        self.pending.push_back(node);
        true
    }

    /// Whether a routing-table candidate at `ip` may be pinged now: not when its address was
    /// pinged or queued within the interval. Records the ping if so.
    pub fn claim(&mut self, now: Instant, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.is_recent(now, ip) {
            self.stats.recent += 1;
            return false;
        }
        self.remember(now, ip);
        true
    }

    /// `ip` answered a query of ours: it may be pinged again whenever it is a candidate (only
    /// addresses that stay silent are held back for the interval).
    pub fn answered(&mut self, ip: IpAddr) {
        self.recent.remove(&ip.to_canonical());
    }

    /// The next sender to ping now, if the rate allows one.
    pub fn next(&mut self, now: Instant) -> Option<NodeInfo> {
        if self.pending.is_empty() || !self.budget.allow(now, IpAddr::from([0, 0, 0, 0])) {
            return None;
        }
        let node = self.pending.pop_front()?;
        self.stats.pinged += 1;
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use std::net::SocketAddr;

    fn node(n: u32) -> NodeInfo {
        NodeInfo::new(
            NodeId([n as u8; 20]),
            SocketAddr::from((std::net::Ipv4Addr::from(0x5000_0000 + n), 6881)),
        )
    }

    #[test]
    fn one_address_is_queued_once_per_interval() {
        let mut v = Verifier::new(VerifyConfig::default(), Instant::ZERO);
        assert!(v.offer(Instant::ZERO, node(1)));
        assert!(!v.offer(Instant::from_micros(1_000_000), node(1)));
        assert_eq!(v.next(Instant::ZERO), Some(node(1)));
        assert!(!v.offer(Instant::from_micros(14 * 60 * 1_000_000), node(1)));
        assert!(v.offer(Instant::from_micros(15 * 60 * 1_000_000), node(1)));
        assert_eq!(v.stats().recent, 2);
    }

    #[test]
    fn the_queue_and_the_memory_are_bounded() {
        let config = VerifyConfig {
            max_pending: 4,
            max_recent: 8,
            ..VerifyConfig::default()
        };
        let mut v = Verifier::new(config, Instant::ZERO);
        for n in 0..100 {
            v.offer(Instant::ZERO, node(n));
            while v.next(Instant::ZERO).is_some() {}
        }
        assert!(v.pending() <= 4);
        assert!(v.remembered() <= 8);
        assert!(v.stats().pinged <= 50, "the rate's burst: {:?}", v.stats());
    }
}
