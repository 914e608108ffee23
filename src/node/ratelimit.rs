//! Token buckets on incoming queries: one per source host (an IPv4 address, an IPv6 /64:
//! [`crate::host::host_key`]) and one for the whole node.
//!
//! A query that finds its source's bucket or the global bucket empty is dropped unanswered
//! (counted in `Stats::rate_limited`). Time is the caller's [`Instant`], so the simulator
//! tests this deterministically.
//!
//! The table of per-IP buckets is bounded: it is kept as two generations of at most
//! `max_ips / 2` entries each. When the current generation is full it becomes the previous
//! one and the older is dropped, so memory stays bounded under a flood of spoofed sources, an
//! IP seen recently keeps its bucket (it is moved forward on use), and the cost per query
//! stays O(1). A source evicted by such a flood starts again with a full bucket: the per-IP
//! limit then fails open and the global bucket is what still holds.
//!
//! A source not in the table (never seen, or forgotten) must also take a token from the
//! **new-source bucket**. A flood of spoofed distinct addresses is all new sources: it drains
//! that bucket, not the global one, so sources seen recently (which are in the table) keep
//! the rest of the global rate. Without it such a flood at the global rate starves everyone.
//! A flood that repeats a set of spoofed addresses makes them known; each is then held to the
//! per-IP rate, and only hundreds of them together reach the global rate.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::host::host_key;
use crate::routing::hash_key::IpKey;
use crate::time::Instant;

/// A token bucket's parameters: `rate` queries per second sustained, bursts up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub rate: u32,
    /// Bucket capacity.
    pub burst: u32,
}

impl RateLimit {
    /// The default per-source-IP limit: 20 queries per second, bursts of 100. Generous for
    /// any honest node or crawler (libtorrent itself sends at most a few per second to one
    /// node), small against one flooding host.
    pub const PER_IP: RateLimit = RateLimit {
        rate: 20,
        burst: 100,
    };
    /// The default global limit: 5,000 queries per second, bursts of 10,000. Far above what a
    /// home node sees (tens per second); a bootstrap server raises it.
    pub const GLOBAL: RateLimit = RateLimit {
        rate: 5_000,
        burst: 10_000,
    };
    /// The default limit on queries from sources not in the table of recent sources: 1,000
    /// per second, bursts of 5,000. Well above the new sources a home node sees (a few per
    /// second), a fifth of [`RateLimit::GLOBAL`]; a bootstrap server, whose clients are
    /// mostly new, raises it.
    pub const NEW_SOURCES: RateLimit = RateLimit {
        rate: 1_000,
        burst: 5_000,
    };
}

/// Bytes of one hash table slot of the source table: the entry and its control byte.
const SLOT_BYTES: usize = size_of::<(IpKey, Bucket)>() + 1;

/// Slots of a hash table (hashbrown: a power of two, 7/8 of them usable) of this capacity.
fn slots(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}

/// Micro-tokens in one token.
const UNIT: u64 = 1_000_000;

/// One token bucket, in micro-tokens: the bucket of every rate limit in the crate (incoming
/// queries here, the crawler's outgoing queries).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    level: u64,
    at: Instant,
}

impl Bucket {
    /// A bucket holding its whole burst at `now`.
    pub(crate) fn full(limit: RateLimit, now: Instant) -> Self {
        Bucket {
            level: u64::from(limit.burst) * UNIT,
            at: now,
        }
    }

    /// Adds the tokens earned since the last refill, up to the burst.
    pub(crate) fn refill(&mut self, limit: RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_micros();
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        let cap = u64::from(limit.burst) * UNIT;
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(u64::from(limit.rate)))
            .min(cap);
        if now > self.at {
            self.at = now;
        }
    }

    /// Whether a whole token is there (as of the last refill).
    pub(crate) fn has_token(&self) -> bool {
        self.level >= UNIT
    }

    /// Takes a token if a whole one is there (as of the last refill).
    pub(crate) fn take_token(&mut self) -> bool {
        if self.level >= UNIT {
            self.level -= UNIT;
            true
        } else {
            false
        }
    }

    /// When the bucket next holds a whole token: the last refill if it holds one already.
    pub(crate) fn next_token_at(&self, limit: RateLimit) -> Instant {
        if self.level >= UNIT {
            return self.at;
        }
        let missing = UNIT - self.level;
        let rate = u64::from(limit.rate.max(1));
        self.at + std::time::Duration::from_micros(missing.div_ceil(rate))
    }

    /// Refills for the time since the last call, then takes one token if there is one.
    fn take(&mut self, limit: RateLimit, now: Instant) -> bool {
        self.refill(limit, now);
        self.take_token()
    }
}

/// The per-IP and global buckets of a node.
#[derive(Debug)]
pub struct RateLimiter {
    per_ip: Option<RateLimit>,
    global: Option<(RateLimit, Bucket)>,
    /// Used when the global bucket is empty, only by light sources (see [`RateLimiter::allow`]).
    light_reserve: Option<Bucket>,
    new_sources: Option<(RateLimit, Bucket)>,
    generation_cap: usize,
    current: HashMap<IpKey, Bucket>,
    previous: HashMap<IpKey, Bucket>,
}

impl RateLimiter {
    /// Limiters with these limits (`None`: unlimited), tracking at most `max_ips` sources.
    /// No new-source limit (see [`RateLimiter::with_new_sources`]).
    pub fn new(
        per_ip: Option<RateLimit>,
        global: Option<RateLimit>,
        max_ips: usize,
        now: Instant,
    ) -> Self {
        RateLimiter {
            per_ip,
            global: global.map(|limit| (limit, Bucket::full(limit, now))),
            light_reserve: global.map(|limit| Bucket::full(limit, now)),
            new_sources: None,
            generation_cap: (max_ips / 2).max(1),
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// Adds a bucket that queries from sources not in the table must also pass (`None`:
    /// none). It needs the per-IP limit: without a table every source counts as known.
    pub fn with_new_sources(mut self, limit: Option<RateLimit>, now: Instant) -> Self {
        self.new_sources = limit.map(|limit| (limit, Bucket::full(limit, now)));
        self
    }

    /// An estimate of the heap memory of the table of sources, in bytes (hash table slots
    /// of both generations, from their capacities).
    pub fn approx_memory_bytes(&self) -> usize {
        slots(self.current.capacity()) * SLOT_BYTES + slots(self.previous.capacity()) * SLOT_BYTES
    }

    /// The most [`RateLimiter::approx_memory_bytes`] can reach with `max_ips`: two
    /// generations of `max_ips / 2` sources each. About 5.4 MB for the default 65,536.
    pub fn memory_cap_bytes(max_ips: usize) -> usize {
        let generation = (max_ips / 2).max(1);
        2 * slots(generation) * SLOT_BYTES
    }

    /// Sources with a bucket (at most the configured `max_ips`).
    pub fn tracked_ips(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether a query from `ip` at `now` may be answered; takes a token if so.
    ///
    /// A query passes the source's own bucket, the new-source bucket if the source is not in
    /// the table, and the global bucket. When the global bucket is empty, a *light* source (one
    /// already in the table that still has more than half of its own burst left, i.e. sends
    /// well under its rate) may draw from a reserve of the same size instead. So sources that
    /// flood at their full per-IP rate, however many, cannot starve the quiet ones, and the
    /// total stays at most twice the global rate.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let mut known = true;
        let mut light = false;
        if let Some(limit) = self.per_ip {
            let ip = IpKey(host_key(ip));
            let bucket = match self.current.get_mut(&ip) {
                Some(bucket) => bucket,
                None => {
                    let bucket = self.previous.remove(&ip).unwrap_or_else(|| {
                        known = false;
                        Bucket::full(limit, now)
                    });
                    if self.current.len() >= self.generation_cap {
                        self.previous = std::mem::take(&mut self.current);
                    }
                    self.current.entry(ip).or_insert(bucket)
                }
            };
            if !bucket.take(limit, now) {
                return false;
            }
            light = known && bucket.level * 2 >= u64::from(limit.burst) * UNIT;
        }
        if !known
            && let Some((limit, bucket)) = &mut self.new_sources
            && !bucket.take(*limit, now)
        {
            return false;
        }
        match &mut self.global {
            Some((limit, bucket)) => {
                bucket.take(*limit, now)
                    || (light
                        && self
                            .light_reserve
                            .as_mut()
                            .is_some_and(|reserve| reserve.take(*limit, now)))
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let limit = RateLimit { rate: 10, burst: 5 };
        let mut limiter = RateLimiter::new(Some(limit), None, 100, Instant::ZERO);
        let t0 = Instant::from_secs(1);
        let allowed = (0..20).filter(|_| limiter.allow(t0, ip(1))).count();
        assert_eq!(allowed, 5);
        // Another source is unaffected.
        assert!(limiter.allow(t0, ip(2)));
        // 100 ms later: one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.allow(t1, ip(1)));
        assert!(!limiter.allow(t1, ip(1)));
        // Over one simulated minute at 100 queries/s, about 10/s get through.
        let mut allowed = 0;
        for i in 0..6_000u64 {
            let t = t1 + Duration::from_millis(10 * i);
            allowed += usize::from(limiter.allow(t, ip(1)));
        }
        assert!((595..=606).contains(&allowed), "{allowed}");
    }

    #[test]
    fn an_ipv6_source_is_its_slash_64() {
        let limit = RateLimit { rate: 10, burst: 5 };
        let mut limiter = RateLimiter::new(Some(limit), None, 100, Instant::ZERO);
        let base: u128 = 0x2a00_0001_0002_0003 << 64;
        // Five addresses of one /64 share one bucket: every address after the burst is refused.
        let allowed = (0..20u128)
            .filter(|n| limiter.allow(Instant::ZERO, IpAddr::V6((base + n).into())))
            .count();
        assert_eq!(allowed, 5);
        assert_eq!(limiter.tracked_ips(), 1);
        // The next /64 is another source.
        assert!(limiter.allow(Instant::ZERO, IpAddr::V6((base + (1 << 64)).into())));
    }

    #[test]
    fn the_global_bucket_limits_many_sources() {
        let limit = RateLimit {
            rate: 100,
            burst: 100,
        };
        let mut limiter = RateLimiter::new(None, Some(limit), 100, Instant::ZERO);
        let allowed = (0..1_000)
            .filter(|&n| limiter.allow(Instant::ZERO, ip(n)))
            .count();
        assert_eq!(allowed, 100);
    }

    #[test]
    fn a_spoofed_flood_cannot_grow_the_table() {
        let mut limiter = RateLimiter::new(Some(RateLimit::PER_IP), None, 1_000, Instant::ZERO);
        for n in 0..100_000 {
            limiter.allow(Instant::from_micros(u64::from(n)), ip(n));
            assert!(limiter.tracked_ips() <= 1_000);
        }
        // A source active during the flood keeps its (drained) bucket.
        let mut limiter = RateLimiter::new(
            Some(RateLimit { rate: 1, burst: 3 }),
            None,
            100,
            Instant::ZERO,
        );
        for n in 0..10_000u32 {
            let now = Instant::from_micros(u64::from(n));
            limiter.allow(now, ip(1_000_000 + n));
            if n % 10 == 0 {
                limiter.allow(now, ip(7));
            }
        }
        assert!(!limiter.allow(Instant::from_micros(10_000), ip(7)));
    }

    #[test]
    fn sources_at_full_rate_cannot_starve_quiet_ones() {
        // 1,000 known sources each at 100/s (far over their 20/s) and 100 quiet sources at
        // 2/s, for 10 s: the flood empties the global bucket, the quiet sources still pass.
        let start = Instant::ZERO;
        let mut limiter = RateLimiter::new(
            Some(RateLimit::PER_IP),
            Some(RateLimit::GLOBAL),
            65_536,
            start,
        )
        .with_new_sources(Some(RateLimit::NEW_SOURCES), start);
        let (mut quiet_sent, mut quiet_allowed, mut total_allowed) = (0u64, 0u64, 0u64);
        for ms in 0..10_000u64 {
            let now = start + Duration::from_millis(ms);
            if ms % 10 == 0 {
                for flooder in 0..1_000 {
                    total_allowed += u64::from(limiter.allow(now, ip(1_000_000 + flooder)));
                }
            }
            if ms % 500 == 0 {
                for quiet in 0..100 {
                    quiet_sent += 1;
                    let allowed = limiter.allow(now, ip(quiet));
                    quiet_allowed += u64::from(allowed);
                    total_allowed += u64::from(allowed);
                }
            }
        }
        assert!(
            quiet_allowed * 100 >= quiet_sent * 95,
            "quiet sources: {quiet_allowed} of {quiet_sent}"
        );
        // Global and reserve: at most twice the global rate plus the two bursts.
        let bound =
            2 * (10 * u64::from(RateLimit::GLOBAL.rate) + u64::from(RateLimit::GLOBAL.burst));
        assert!(total_allowed <= bound, "{total_allowed} > {bound}");
    }
}
