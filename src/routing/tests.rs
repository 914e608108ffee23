//! Unit tests of the routing table: insertion, splitting, liveness, policies, refresh.

use super::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::net::{IpAddr, Ipv4Addr};

const MIN: u64 = 60;

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// A distinct public IPv4 address (a distinct /24 too) per `n`.
fn addr(n: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x1400_0000 + (n << 8) + 1), 6881))
}

struct Fixture {
    rng: SmallRng,
    own: NodeId,
    table: RoutingTable,
    next_addr: u32,
}

impl Fixture {
    fn new(config: RoutingConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(42);
        let own = NodeId::random(&mut rng);
        Fixture {
            table: RoutingTable::new(own, t(0), config),
            rng,
            own,
            next_addr: 1,
        }
    }

    fn node(&mut self, prefix: usize) -> NodeInfo {
        let id = self.own.random_at_prefix(prefix, &mut self.rng);
        self.next_addr += 1;
        NodeInfo::new(id, addr(self.next_addr))
    }

    fn respond(&mut self, now: Instant, n: NodeInfo) -> InsertOutcome {
        self.table.heard_response(now, n.id, n.addr)
    }

    fn check(&self) {
        let mut ids = std::collections::HashSet::new();
        let last = self.table.bucket_count() - 1;
        for (i, b) in self.table.buckets().iter().enumerate() {
            assert!(b.len() <= self.table.config().k);
            for e in b.entries() {
                assert_eq!(self.own.shared_prefix_len(&e.id()).min(last), i);
                assert!(ids.insert(e.id()));
            }
        }
        assert_eq!(ids.len(), self.table.len());
    }
}

#[test]
fn splits_after_k_plus_one_verified_nodes_near_own_id() {
    let mut f = Fixture::new(RoutingConfig::default());
    let nodes: Vec<NodeInfo> = (0..9).map(|i| f.node(1 + i % 3)).collect();
    for n in &nodes[..8] {
        assert_eq!(f.respond(t(1), *n), InsertOutcome::Added);
    }
    assert_eq!(f.table.bucket_count(), 1);
    assert_eq!(f.respond(t(2), nodes[8]), InsertOutcome::Added);
    f.check();
    assert_eq!(f.table.len(), 9);
    // Nodes at prefixes 1..=3 need buckets 0..=3 at least; bucket 0 stays empty.
    assert!(f.table.bucket_count() >= 3);
    assert!(f.table.buckets()[0].is_empty());
    assert!(f.table.split_queue().contains(0) && f.table.split_queue().contains(1));
    for n in &nodes {
        assert_eq!(f.table.get(&n.id).map(Entry::info), Some(*n));
        assert_eq!(f.table.get_by_addr(&n.addr).map(Entry::id), Some(n.id));
    }
}

/// Eight good far nodes (bucket 0 full) and one near node (bucket 1).
fn far_bucket_full() -> (Fixture, Vec<NodeInfo>) {
    let mut f = Fixture::new(RoutingConfig::default());
    let far: Vec<NodeInfo> = (0..8).map(|_| f.node(0)).collect();
    for (i, n) in far.iter().enumerate() {
        assert_eq!(f.respond(t(i as u64), *n), InsertOutcome::Added);
    }
    let near = f.node(1);
    assert_eq!(f.respond(t(10), near), InsertOutcome::Added);
    assert_eq!(f.table.bucket_count(), 2);
    (f, far)
}

#[test]
fn full_far_bucket_does_not_split_and_caches() {
    let (mut f, far) = far_bucket_full();
    let extra = f.node(0);
    assert_eq!(f.respond(t(20), extra), InsertOutcome::Cached);
    f.check();
    assert_eq!(f.table.bucket_count(), 2);
    assert_eq!(f.table.len(), 9);
    assert!(f.table.get(&extra.id).is_none());
    let cache = f.table.buckets()[0].replacements();
    assert_eq!(cache.len(), 1);
    assert!(cache[0].is_verified());
    assert_eq!(
        f.table.split_bucket(t(20), 0),
        Err(RoutingError::CannotSplit)
    );
    assert_eq!(
        f.table.split_bucket(t(20), 1),
        Err(RoutingError::BucketNotFull)
    );
    assert_eq!(f.table.split_bucket(t(20), 7), Err(RoutingError::NotFound));
    // A failure of a good entry only counts.
    assert_eq!(
        f.table.record_failure(t(21), far[0].addr),
        Ok(FailureOutcome::Counted(Liveness::Good))
    );
}

#[test]
fn questionable_entry_is_pinged_before_replacement() {
    let (mut f, far) = far_bucket_full();
    // 16 minutes later every far node is questionable.
    let now = t(16 * MIN + 10);
    let cand = f.node(0);
    // far[0] is the least recently seen.
    assert_eq!(f.respond(now, cand), InsertOutcome::PingFirst(far[0]));
    assert!(f.table.get(&cand.id).is_none());
    // It answers: it stays, and the next candidate gets the next questionable one pinged.
    assert_eq!(f.respond(now, far[0]), InsertOutcome::Refreshed);
    let cand2 = f.node(0);
    assert_eq!(f.respond(now, cand2), InsertOutcome::PingFirst(far[1]));
    // A third candidate: far[1] is already being pinged, so far[2] is next.
    let cand3 = f.node(0);
    let outcome = f.table.learned(now, cand3.id, cand3.addr);
    assert_eq!(outcome, InsertOutcome::PingFirst(far[2]));
    // far[1] fails: the most recent verified candidate takes its place.
    match f
        .table
        .record_failure(now + Duration::from_secs(5), far[1].addr)
    {
        Ok(FailureOutcome::Replaced { removed, added }) => {
            assert_eq!(removed, far[1]);
            assert_eq!(added, cand2);
        }
        other => panic!("{other:?}"),
    }
    f.check();
    assert!(f.table.get(&far[1].id).is_none());
    assert!(f.table.get(&cand2.id).is_some());
    // far[2] fails: only `cand` is verified and waiting.
    match f.table.record_failure(now, far[2].addr) {
        Ok(FailureOutcome::Replaced { added, .. }) => assert_eq!(added, cand),
        other => panic!("{other:?}"),
    }
    // far[3] is not pinged yet but questionable; it fails: only the unverified cand3 waits,
    // so the caller is told to ping it.
    assert_eq!(
        f.table.record_failure(now, far[3].addr),
        Ok(FailureOutcome::PingCandidate(cand3))
    );
    // cand3 answers and replaces the failing far[3] at once.
    assert_eq!(f.respond(now, cand3), InsertOutcome::Replaced(far[3]));
    f.check();
    assert_eq!(f.table.len(), 9);
}

#[test]
fn bad_entry_replaced_from_cache_and_by_newcomer() {
    let (mut f, far) = far_bucket_full();
    let cand = f.node(0);
    assert_eq!(f.respond(t(30), cand), InsertOutcome::Cached);
    for i in 1..=3 {
        assert_eq!(
            f.table.record_failure(t(30 + i), far[5].addr),
            Ok(FailureOutcome::Counted(Liveness::Good))
        );
    }
    // The fourth failure in a row makes it bad: the cached candidate takes its slot.
    assert_eq!(
        f.table.record_failure(t(40), far[5].addr),
        Ok(FailureOutcome::Replaced {
            removed: far[5],
            added: cand
        })
    );
    f.check();
    // A bad entry with an empty cache stays, but is never returned by `closest`.
    for i in 0..4 {
        let _ = f.table.record_failure(t(50 + i), far[6].addr);
    }
    let e = f.table.get(&far[6].id).unwrap();
    assert_eq!(f.table.liveness(t(60), e), Liveness::Bad);
    let all = f.table.closest(&far[6].id, 100);
    assert_eq!(all.len(), 8);
    assert!(!all.contains(&far[6]));
    // A verified newcomer replaces it at once.
    let newcomer = f.node(0);
    assert_eq!(f.respond(t(70), newcomer), InsertOutcome::Replaced(far[6]));
    f.check();
    // Failure of an unknown address.
    assert_eq!(
        f.table.record_failure(t(70), addr(9999)),
        Err(RoutingError::NotFound)
    );
}

#[test]
fn liveness_transitions_in_simulated_time() {
    let mut f = Fixture::new(RoutingConfig::default());
    let n = f.node(3);
    assert_eq!(f.respond(t(0), n), InsertOutcome::Added);
    let live = |f: &Fixture, at: Instant| f.table.liveness(at, f.table.get(&n.id).unwrap());
    assert_eq!(live(&f, t(15 * MIN - 1)), Liveness::Good);
    assert_eq!(live(&f, t(15 * MIN)), Liveness::Questionable);
    // It queries us at 20 min: good again, because it answered once.
    assert_eq!(
        f.table.heard_query(t(20 * MIN), n.id, n.addr),
        InsertOutcome::Refreshed
    );
    assert_eq!(live(&f, t(20 * MIN)), Liveness::Good);
    assert_eq!(live(&f, t(35 * MIN)), Liveness::Questionable);
    assert_eq!(f.table.next_deadline(t(21 * MIN)), Some(t(15 * MIN)));
    // Learned from a third party: no liveness change.
    assert_eq!(
        f.table.learned(t(40 * MIN), n.id, n.addr),
        InsertOutcome::Refreshed
    );
    assert_eq!(live(&f, t(40 * MIN)), Liveness::Questionable);
    for i in 0..4 {
        let _ = f.table.record_failure(t(40 * MIN + i), n.addr);
    }
    assert_eq!(live(&f, t(41 * MIN)), Liveness::Bad);
    // A response resets the failures.
    assert_eq!(f.respond(t(42 * MIN), n), InsertOutcome::Refreshed);
    assert_eq!(live(&f, t(42 * MIN)), Liveness::Good);
    assert_eq!(f.table.get(&n.id).unwrap().failed_queries(), 0);
}

#[test]
fn unverified_nodes_only_earn_pings() {
    let mut f = Fixture::new(RoutingConfig::default());
    let n = f.node(2);
    assert_eq!(
        f.table.heard_query(t(1), n.id, n.addr),
        InsertOutcome::PingCandidate(n)
    );
    assert_eq!(
        f.table.learned(t(1), n.id, n.addr),
        InsertOutcome::PingCandidate(n)
    );
    assert!(f.table.is_empty());
    assert_eq!(f.respond(t(2), n), InsertOutcome::Added);
    assert_eq!(
        f.table.heard_response(t(2), f.own, addr(77)),
        InsertOutcome::Rejected(Rejection::OwnId)
    );
    assert_eq!(
        f.table.learned(t(2), f.own, addr(77)),
        InsertOutcome::Rejected(Rejection::OwnId)
    );
    assert_eq!(f.table.len(), 1);
}

#[test]
fn one_entry_per_ip_and_id_changes() {
    let mut f = Fixture::new(RoutingConfig::default());
    let a = f.node(0);
    assert_eq!(f.respond(t(0), a), InsertOutcome::Added);
    // Same IP, other port, other id: the good holder wins.
    let same_ip = NodeInfo::new(
        f.node(1).id,
        SocketAddr::new(a.addr.ip(), a.addr.port() + 1),
    );
    assert_eq!(
        f.respond(t(1), same_ip),
        InsertOutcome::Rejected(Rejection::IpConflict)
    );
    assert_eq!(
        f.table.learned(t(1), same_ip.id, same_ip.addr),
        InsertOutcome::Rejected(Rejection::IpConflict)
    );
    // ... but once the holder is questionable, the verified newcomer takes over.
    assert_eq!(f.respond(t(16 * MIN), same_ip), InsertOutcome::Added);
    assert!(f.table.get(&a.id).is_none());
    f.check();
    // A new id answering from an existing entry's exact address replaces it, even if good.
    let renamed = NodeInfo::new(f.node(2).id, same_ip.addr);
    assert_eq!(
        f.table.learned(t(16 * MIN), renamed.id, renamed.addr),
        InsertOutcome::PingCandidate(renamed)
    );
    assert!(f.table.get(&same_ip.id).is_some());
    assert_eq!(f.respond(t(16 * MIN), renamed), InsertOutcome::Added);
    assert!(f.table.get(&same_ip.id).is_none());
    assert_eq!(f.table.len(), 1);
    // A known id answering from another address is refused, good or questionable, until
    // its entry fails a query; then it moves.
    let moved = NodeInfo::new(renamed.id, addr(500));
    assert_eq!(
        f.respond(t(17 * MIN), moved),
        InsertOutcome::Rejected(Rejection::AddressMismatch)
    );
    assert_eq!(
        f.respond(t(40 * MIN), moved),
        InsertOutcome::Rejected(Rejection::AddressMismatch)
    );
    assert_eq!(
        f.table.learned(t(40 * MIN), moved.id, moved.addr),
        InsertOutcome::Rejected(Rejection::AddressMismatch)
    );
    assert!(f.table.record_failure(t(40 * MIN), renamed.addr).is_ok());
    assert_eq!(
        f.table.learned(t(40 * MIN), moved.id, moved.addr),
        InsertOutcome::PingCandidate(moved)
    );
    assert_eq!(f.respond(t(40 * MIN), moved), InsertOutcome::Added);
    assert_eq!(f.table.get(&renamed.id).unwrap().addr(), moved.addr);
    assert!(f.table.get_by_addr(&renamed.addr).is_none());
    f.check();
}

#[test]
fn unrestricted_policy_allows_shared_ip() {
    let config = RoutingConfig {
        ip_policy: IpPolicy::Unrestricted,
        ..RoutingConfig::default()
    };
    let mut f = Fixture::new(config);
    let ip = addr(1).ip();
    for port in 0..20u16 {
        let id = f.node(0).id;
        let _ = f
            .table
            .heard_response(t(1), id, SocketAddr::new(ip, 1000 + port));
    }
    assert!(f.table.len() >= 8);
    f.check();
}

#[test]
fn default_policy_one_entry_per_network_per_bucket_but_local_addresses_are_free() {
    let mut f = Fixture::new(RoutingConfig::default());
    // Sybils on one public /24, ids all in bucket 0: one entry.
    let sybils: Vec<NodeInfo> = (1..=8u8)
        .map(|last| NodeInfo::new(f.node(0).id, SocketAddr::from(([66, 6, 6, last], 6881))))
        .collect();
    let added = sybils
        .iter()
        .filter(|n| f.respond(t(0), **n) == InsertOutcome::Added)
        .count();
    assert_eq!(added, 1);
    f.check();
    // Loopback nodes on one IP and many ports (a local swarm) each get an entry.
    let mut f = Fixture::new(RoutingConfig {
        ip_policy: IpPolicy::Unrestricted,
        ..RoutingConfig::default()
    });
    for port in 1..=8u16 {
        let n = NodeInfo::new(f.node(0).id, SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(f.respond(t(0), n), InsertOutcome::Added);
    }
    // Private addresses on one /24 with the default policy too.
    let mut f = Fixture::new(RoutingConfig::default());
    for last in 1..=8u8 {
        let n = NodeInfo::new(f.node(0).id, SocketAddr::from(([10, 0, 0, last], 6881)));
        assert_eq!(f.respond(t(0), n), InsertOutcome::Added);
    }
    f.check();
}

#[test]
fn an_ipv6_host_is_its_slash_64() {
    let config = RoutingConfig {
        ip_policy: IpPolicy::OnePerIp,
        ..RoutingConfig::default()
    };
    let mut f = Fixture::new(config);
    let at = |text: &str| SocketAddr::new(text.parse().unwrap(), 6881);
    let a = NodeInfo::new(f.node(0).id, at("2a00:1:2:3::1"));
    assert_eq!(f.respond(t(0), a), InsertOutcome::Added);
    // Another address of the same /64, in another bucket: the same host.
    let b = NodeInfo::new(f.node(3).id, at("2a00:1:2:3::ffff"));
    assert_eq!(
        f.respond(t(1), b),
        InsertOutcome::Rejected(Rejection::IpConflict)
    );
    // The next /64 is another host.
    let c = NodeInfo::new(f.node(3).id, at("2a00:1:2:4::1"));
    assert_eq!(f.respond(t(1), c), InsertOutcome::Added);
    f.check();
}

#[test]
fn subnet_policy_limits_each_bucket() {
    let config = RoutingConfig {
        k: 1,
        ip_policy: IpPolicy::OnePerIpAndSubnetPerBucket,
        ..RoutingConfig::default()
    };
    let mut f = Fixture::new(config);
    let a = f.node(0);
    assert_eq!(f.respond(t(0), a), InsertOutcome::Added);
    let neighbour = |n: &NodeInfo, last: u8| match n.addr.ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            SocketAddr::from((Ipv4Addr::new(o[0], o[1], o[2], last), 6881))
        }
        IpAddr::V6(_) => unreachable!(),
    };
    let b = NodeInfo::new(f.node(0).id, neighbour(&a, 200));
    assert_eq!(
        f.respond(t(1), b),
        InsertOutcome::Rejected(Rejection::IpConflict)
    );
    // Same /24 in another bucket (after a split) is fine.
    let c = NodeInfo::new(f.node(1).id, neighbour(&a, 201));
    assert_eq!(f.respond(t(1), c), InsertOutcome::Added);
    assert_eq!(f.table.bucket_count(), 2);
    f.check();
    // IPv4-mapped IPv6 counts as the same IPv4 address.
    let mapped = match c.addr.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), 7000),
        IpAddr::V6(_) => unreachable!(),
    };
    let d = NodeInfo::new(f.node(5).id, mapped);
    assert_eq!(
        f.respond(t(2), d),
        InsertOutcome::Rejected(Rejection::IpConflict)
    );
    // A questionable holder gives way to a verified node of its subnet.
    assert_eq!(f.respond(t(20 * MIN), b), InsertOutcome::Replaced(a));
    f.check();
}

#[test]
fn split_queue_dedup_rate_and_stale_refresh() {
    let mut f = Fixture::new(RoutingConfig::default());
    for i in 0..9 {
        let n = f.node(i % 2);
        let _ = f.respond(t(0), n);
    }
    assert_eq!(f.table.bucket_count(), 2);
    assert_eq!(f.table.split_queue().iter().collect::<Vec<_>>(), vec![0, 1]);
    let mut rng = SmallRng::seed_from_u64(9);
    let (i, target) = f.table.pop_refresh(t(1), &mut rng).unwrap();
    assert_eq!(i, 0);
    assert_eq!(f.own.shared_prefix_len(&target), 0);
    // Rate limit: nothing until a second has passed.
    assert_eq!(f.table.pop_refresh(t(1), &mut rng), None);
    assert_eq!(f.table.next_deadline(t(1)), Some(t(2)));
    let (i, target) = f.table.pop_refresh(t(2), &mut rng).unwrap();
    assert_eq!(i, 1);
    assert!(f.own.shared_prefix_len(&target) >= 1);
    // Nothing is stale yet.
    assert_eq!(f.table.refresh_due(t(10 * MIN)), 0);
    assert_eq!(f.table.next_deadline(t(10 * MIN)), Some(t(15 * MIN)));
    // A lookup into bucket 1 counts as its refresh.
    f.table
        .note_lookup(t(10 * MIN), &f.own.random_at_prefix(3, &mut rng));
    assert_eq!(f.table.refresh_due(t(15 * MIN + 2)), 1);
    assert_eq!(f.table.split_queue().iter().collect::<Vec<_>>(), vec![0]);
    // De-duplicated: asking again queues nothing.
    assert_eq!(f.table.refresh_due(t(30 * MIN)), 1);
    assert_eq!(f.table.split_queue().iter().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(f.table.refresh_due(t(30 * MIN)), 0);
    assert_eq!(
        f.table.refresh_target(2, &mut rng),
        Err(RoutingError::NotFound)
    );
}

#[test]
fn pings_due_lists_questionable_least_recent_first() {
    let (mut f, far) = far_bucket_full();
    assert!(f.table.pings_due(t(11), 5).is_empty());
    let now = t(16 * MIN + 10);
    assert_eq!(f.table.pings_due(now, 3), far[..3].to_vec());
    // They are in flight now; the next call names others.
    assert_eq!(f.table.pings_due(now, 3), far[3..6].to_vec());
    // After the ping timeout they are due again.
    let later = now + Duration::from_secs(31);
    assert_eq!(f.table.pings_due(later, 2), far[..2].to_vec());
}

#[test]
fn closest_is_sorted_and_skips_bad() {
    let mut f = Fixture::new(RoutingConfig::default());
    let mut all = Vec::new();
    for i in 0..60 {
        let n = f.node(i % 12);
        if f.respond(t(1), n) == InsertOutcome::Added {
            all.push(n);
        }
    }
    f.check();
    let mut rng = SmallRng::seed_from_u64(1);
    for _ in 0..50 {
        let target = NodeId::random(&mut rng);
        let mut brute = all.clone();
        brute.sort_by_key(|n| target.distance(&n.id));
        for k in [0, 1, 8, 20, 1000] {
            let got = f.table.closest(&target, k);
            assert_eq!(got, brute[..k.min(brute.len())].to_vec());
        }
    }
    assert_eq!(f.table.closest(&f.own, 3).len(), 3);
}

#[test]
fn closest_matches_brute_force_in_deep_tables() {
    let config = RoutingConfig {
        ip_policy: IpPolicy::Unrestricted,
        ..RoutingConfig::default()
    };
    for seed in 0..20u64 {
        let mut f = Fixture::new(config.clone());
        f.rng = SmallRng::seed_from_u64(seed);
        // Nodes at every depth, many near our id: a table of many buckets.
        for i in 0..600 {
            let prefix = if i % 3 == 0 {
                f.rng.random_range(0..40)
            } else {
                f.rng.random_range(0..4)
            };
            let n = f.node(prefix);
            let _ = f.respond(t(1), n);
        }
        // Some entries fail until bad: `closest` leaves them out.
        let entries: Vec<NodeInfo> = f.table.entries().map(Entry::info).collect();
        for n in entries.iter().step_by(7) {
            for _ in 0..=config.max_failures {
                let _ = f.table.record_failure(t(2), n.addr);
            }
        }
        f.check();
        let eligible: Vec<NodeInfo> = f
            .table
            .entries()
            .filter(|e| e.failed_queries() <= config.max_failures)
            .map(Entry::info)
            .collect();
        for i in 0..200 {
            let target = if i % 2 == 0 {
                NodeId::random(&mut f.rng)
            } else {
                let prefix = f.rng.random_range(0..48);
                f.own.random_at_prefix(prefix, &mut f.rng)
            };
            let mut brute = eligible.clone();
            brute.sort_by_key(|n| target.distance(&n.id));
            for k in [1, 8, 9, 17, 32, 33, 500] {
                let got = f.table.closest(&target, k);
                assert_eq!(got, brute[..k.min(brute.len())].to_vec(), "k {k}");
                // Leaving out one of the closest, or an address not in the table.
                let except = brute[f.rng.random_range(0..brute.len().min(k + 1))].addr;
                for except in [except, addr(1_000_000)] {
                    let got = f.table.closest_except(&target, k, Some(&except));
                    let want: Vec<NodeInfo> = brute
                        .iter()
                        .filter(|n| n.addr != except)
                        .take(k)
                        .copied()
                        .collect();
                    assert_eq!(got, want, "k {k}");
                }
            }
        }
        assert_eq!(f.table.closest(&f.own, 9), {
            let mut brute = eligible.clone();
            brute.sort_by_key(|n| f.own.distance(&n.id));
            brute.truncate(9);
            brute
        });
    }
}

#[test]
fn snapshot_roundtrip_and_remove() {
    let mut f = Fixture::new(RoutingConfig::default());
    let nodes: Vec<NodeInfo> = (0..20).map(|i| f.node(i % 5)).collect();
    for n in &nodes {
        let _ = f.respond(t(5), *n);
    }
    let snap = f.table.snapshot(t(65));
    assert_eq!(snap.nodes.len(), f.table.len());
    assert!(
        snap.nodes
            .iter()
            .all(|n| n.since_response == Some(Duration::from_secs(60)))
    );
    let mut restored = RoutingTable::new(f.own, t(0), RoutingConfig::default());
    assert_eq!(restored.restore(t(0), &snap), snap.nodes.len());
    for n in &snap.nodes {
        let e = restored.get(&n.node.id).unwrap();
        assert_eq!(e.addr(), n.node.addr);
        assert_eq!(restored.liveness(t(0), e), Liveness::Questionable);
    }
    let first = snap.nodes[0].node;
    assert_eq!(
        restored.remove(t(1), &first.id).map(|e| e.info()),
        Ok(first)
    );
    assert_eq!(
        restored.remove(t(1), &first.id).map(|e| e.info()),
        Err(RoutingError::NotFound)
    );
    assert_eq!(restored.len(), snap.nodes.len() - 1);
}

#[test]
fn forget_addr_drops_the_entry_and_candidates_at_an_address() {
    let (mut f, far) = far_bucket_full();
    let cached = f.node(0);
    let other = f.node(0);
    assert_eq!(f.respond(t(20), cached), InsertOutcome::Cached);
    assert_eq!(f.respond(t(20), other), InsertOutcome::Cached);
    // A candidate at the address leaves the cache; nothing else changes.
    assert!(f.table.forget_addr(t(21), &cached.addr).is_none());
    assert_eq!(f.table.buckets()[0].replacements().len(), 1);
    assert_eq!(f.table.len(), 9);
    // An entry at the address leaves the table; a verified candidate takes its slot.
    let removed = f.table.forget_addr(t(22), &far[2].addr).map(|e| e.info());
    assert_eq!(removed, Some(far[2]));
    assert!(f.table.get_by_addr(&far[2].addr).is_none());
    assert_eq!(f.table.get(&other.id).map(Entry::info), Some(other));
    assert!(f.table.get(&cached.id).is_none());
    assert_eq!(f.table.len(), 9);
    f.check();
    assert!(f.table.forget_addr(t(23), &addr(9999)).is_none());
}

#[test]
fn table_reaches_160_buckets_without_panicking() {
    let config = RoutingConfig {
        k: 1,
        ..RoutingConfig::default()
    };
    let mut f = Fixture::new(config);
    for prefix in (0..160).rev() {
        let n = f.node(prefix);
        assert_eq!(f.respond(t(1), n), InsertOutcome::Added, "{prefix}");
    }
    assert_eq!(f.table.bucket_count(), MAX_BUCKETS);
    f.check();
    // Only one id shares exactly 159 bits with ours: another address for it is refused.
    let extra = f.node(159);
    assert_eq!(
        f.respond(t(1), extra),
        InsertOutcome::Rejected(Rejection::AddressMismatch)
    );
    let far = f.node(0);
    assert_eq!(f.respond(t(1), far), InsertOutcome::Cached);
    assert_eq!(
        f.table.split_bucket(t(1), 159),
        Err(RoutingError::CannotSplit)
    );
    let mut rng = SmallRng::seed_from_u64(2);
    let target = f.table.refresh_target(159, &mut rng).unwrap();
    assert!(f.own.shared_prefix_len(&target) >= 159);
}
