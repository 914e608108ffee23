//! Property tests of the routing table: random sequences of what a node hears, with the table's
//! invariants checked against a brute-force model after every operation.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use btdht::routing::{
    FailureOutcome, InsertOutcome, IpPolicy, Liveness, Rejection, RoutingConfig, RoutingError,
    RoutingTable,
};
use btdht::{Instant, NodeId, NodeInfo};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const NODES: usize = 40;
const ADDRS: usize = 60;
const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug)]
enum Op {
    Query(usize, usize),
    Response(usize, usize),
    Learned(usize, usize),
    Failure(usize),
    Remove(usize),
    Advance(u64),
    RefreshDue,
    PopRefresh,
    PingsDue(usize),
}

/// A node and the address it is heard at: mostly its home address (node `n` lives at address
/// `n`), sometimes any address (a moved node, a spoofed or stale claim).
fn node_at() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        4 => (0..NODES).prop_map(|n| (n, n)),
        1 => (0..NODES, 0..ADDRS),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => node_at().prop_map(|(n, a)| Op::Query(n, a)),
        6 => node_at().prop_map(|(n, a)| Op::Response(n, a)),
        2 => node_at().prop_map(|(n, a)| Op::Learned(n, a)),
        4 => prop_oneof![3 => 0..NODES, 1 => 0..ADDRS].prop_map(Op::Failure),
        1 => (0..NODES).prop_map(Op::Remove),
        3 => (0..1200u64).prop_map(Op::Advance),
        1 => Just(Op::RefreshDue),
        1 => Just(Op::PopRefresh),
        1 => (0..5usize).prop_map(Op::PingsDue),
    ]
}

fn policy() -> impl Strategy<Value = IpPolicy> {
    prop_oneof![
        Just(IpPolicy::Unrestricted),
        Just(IpPolicy::OnePerIp),
        Just(IpPolicy::OnePerIpAndSubnetPerBucket),
    ]
}

/// Addresses that share IPs (3 ports per IP), /24s (4 IPs per /24), plus IPv4-mapped IPv6
/// twins of some of them and a few plain IPv6 addresses on two /64s, all public.
fn address(i: usize) -> SocketAddr {
    let i = i as u32;
    if i < 48 {
        let ip = Ipv4Addr::new(20, 0, (i / 12) as u8, (i % 12 / 3 + 1) as u8);
        SocketAddr::new(IpAddr::V4(ip), 6881 + (i % 3) as u16)
    } else if i < 54 {
        let v4 = match address((i - 48) as usize * 7).ip() {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => unreachable!(),
        };
        SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), 7000)
    } else {
        let ip: IpAddr = format!("2a00:db8:0:{}::{}", i % 2, i).parse().unwrap();
        SocketAddr::new(ip, 6881)
    }
}

/// BEP 5, written independently of the crate.
fn bep5(now: Instant, lr: Option<Instant>, lq: Option<Instant>, fails: u32, max: u32) -> Liveness {
    let recent = |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < WINDOW);
    if fails > max {
        Liveness::Bad
    } else if recent(lr) || recent(lq) {
        // Every table entry has answered at least once.
        Liveness::Good
    } else {
        Liveness::Questionable
    }
}

/// One host: an IPv4 address, an IPv6 /64.
fn host(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
    }
}

fn subnet(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut v = vec![4];
            v.extend_from_slice(&v4.octets()[..3]);
            v
        }
        IpAddr::V6(v6) => {
            let mut v = vec![6];
            v.extend_from_slice(&v6.octets()[..8]);
            v
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Stats {
    last_response: Option<Instant>,
    last_query: Option<Instant>,
    failures: u32,
}

struct Harness {
    own: NodeId,
    ids: Vec<NodeId>,
    table: RoutingTable,
    config: RoutingConfig,
    now: Instant,
    model: HashMap<(NodeId, SocketAddr), Stats>,
    rng: SmallRng,
}

impl Harness {
    fn new(seed: u64, config: RoutingConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let own = NodeId::random(&mut rng);
        // Many ids near our own so that buckets fill and split deep.
        let ids = (0..NODES)
            .map(|i| own.random_at_prefix(i % 14, &mut rng))
            .collect();
        Harness {
            own,
            ids,
            table: RoutingTable::new(own, Instant::from_secs(1), config.clone()),
            config,
            now: Instant::from_secs(1),
            model: HashMap::new(),
            rng,
        }
    }

    fn candidate_addrs(&self) -> HashSet<SocketAddr> {
        self.table
            .buckets()
            .iter()
            .flat_map(|b| b.replacements().iter().map(|c| c.info().addr))
            .collect()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let before_count = self.table.bucket_count();
        let last_full_before = self
            .table
            .buckets()
            .last()
            .is_some_and(|b| b.len() >= self.config.k);
        let now = self.now;
        match *op {
            Op::Query(n, a) => {
                let (id, addr) = (self.ids[n], address(a));
                self.model.entry((id, addr)).or_default().last_query = Some(now);
                let out = self.table.heard_query(now, id, addr);
                self.check_insert(out, id, addr, false)?;
            }
            Op::Response(n, a) => {
                let (id, addr) = (self.ids[n], address(a));
                let s = self.model.entry((id, addr)).or_default();
                s.last_response = Some(now);
                s.failures = 0;
                let out = self.table.heard_response(now, id, addr);
                self.check_insert(out, id, addr, true)?;
            }
            Op::Learned(n, a) => {
                let (id, addr) = (self.ids[n], address(a));
                let before = self.table.get(&id).cloned();
                let out = self.table.learned(now, id, addr);
                self.check_insert(out, id, addr, false)?;
                prop_assert_eq!(
                    before.as_ref(),
                    self.table.get(&id),
                    "learned changed an entry"
                );
            }
            Op::Failure(a) => {
                let addr = address(a);
                let holder = self.table.get_by_addr(&addr).map(|e| e.id());
                let cached = self.candidate_addrs().contains(&addr);
                if let Some(id) = holder {
                    self.model.entry((id, addr)).or_default().failures += 1;
                }
                let out = self.table.record_failure(now, addr);
                match (holder, out) {
                    (None, Err(RoutingError::NotFound)) => prop_assert!(!cached),
                    (None, Ok(FailureOutcome::CandidateDropped)) => prop_assert!(cached),
                    (Some(id), Ok(FailureOutcome::Counted(_))) => {
                        prop_assert!(self.table.get(&id).is_some())
                    }
                    (Some(id), Ok(FailureOutcome::Replaced { removed, added })) => {
                        prop_assert_eq!(removed.id, id);
                        prop_assert!(self.table.get(&id).is_none());
                        prop_assert_eq!(
                            self.table.get(&added.id).map(|e| e.addr()),
                            Some(added.addr)
                        );
                    }
                    (Some(id), Ok(FailureOutcome::PingCandidate(c))) => {
                        prop_assert!(self.table.get(&id).is_some());
                        prop_assert!(self.table.get(&c.id).is_none());
                    }
                    (h, o) => prop_assert!(false, "failure at {:?}: {:?} -> {:?}", addr, h, o),
                }
            }
            Op::Remove(n) => {
                let id = self.ids[n];
                let present = self.table.get(&id).is_some();
                let out = self.table.remove(now, &id);
                prop_assert_eq!(present, out.is_ok());
                prop_assert!(self.table.get(&id).is_none());
            }
            Op::Advance(secs) => self.now = now + Duration::from_secs(secs),
            Op::RefreshDue => {
                let _ = self.table.refresh_due(now);
            }
            Op::PopRefresh => {
                if let Some((i, target)) = self.table.pop_refresh(now, &mut self.rng) {
                    let last = self.table.bucket_count() - 1;
                    prop_assert_eq!(self.own.shared_prefix_len(&target).min(last), i);
                }
            }
            Op::PingsDue(max) => {
                let due = self.table.pings_due(now, max);
                prop_assert!(due.len() <= max);
            }
        }
        if self.table.bucket_count() != before_count {
            prop_assert!(self.table.bucket_count() > before_count);
            prop_assert!(matches!(op, Op::Response(..)), "split on {:?}", op);
            prop_assert!(last_full_before, "split of a bucket that was not full");
        }
        self.check_invariants()
    }

    fn check_insert(
        &self,
        out: InsertOutcome,
        id: NodeId,
        addr: SocketAddr,
        verified: bool,
    ) -> Result<(), TestCaseError> {
        let entry = self.table.get(&id);
        match out {
            InsertOutcome::Added | InsertOutcome::Replaced(_) => {
                prop_assert!(verified, "an unverified node became an entry");
                prop_assert_eq!(entry.map(|e| e.addr()), Some(addr));
                if let InsertOutcome::Replaced(old) = out {
                    prop_assert!(
                        self.table
                            .get_by_addr(&old.addr)
                            .is_none_or(|e| e.id() != old.id)
                    );
                }
            }
            InsertOutcome::Refreshed => prop_assert_eq!(entry.map(|e| e.addr()), Some(addr)),
            InsertOutcome::PingCandidate(n) => {
                prop_assert_eq!(n, NodeInfo::new(id, addr));
                prop_assert!(!verified);
            }
            InsertOutcome::PingFirst(n) => {
                let e = self.table.get(&n.id);
                prop_assert!(e.is_some());
                prop_assert_eq!(
                    self.table.liveness(self.now, e.unwrap()),
                    Liveness::Questionable
                );
                prop_assert!(entry.is_none());
            }
            InsertOutcome::Cached => prop_assert!(entry.is_none()),
            InsertOutcome::Rejected(Rejection::OwnId) => prop_assert_eq!(id, self.own),
            InsertOutcome::Rejected(_) => prop_assert!(entry.is_none_or(|e| e.addr() != addr)),
        }
        Ok(())
    }

    fn check_invariants(&mut self) -> Result<(), TestCaseError> {
        let t = &self.table;
        let k = self.config.k;
        let count = t.bucket_count();
        prop_assert!((1..=160).contains(&count));
        let mut ids = HashSet::new();
        let mut addrs = HashSet::new();
        let mut ips = HashSet::new();
        let mut all = Vec::new();
        for (i, b) in t.buckets().iter().enumerate() {
            prop_assert!(b.len() <= k, "bucket {} over K", i);
            prop_assert!(b.replacements().len() <= self.config.replacement_cache_size);
            let mut subnets = HashSet::new();
            for e in b.entries() {
                prop_assert_ne!(e.id(), self.own);
                prop_assert_eq!(self.own.shared_prefix_len(&e.id()).min(count - 1), i);
                prop_assert!(ids.insert(e.id()), "duplicate id");
                prop_assert!(addrs.insert(e.addr()), "duplicate address");
                prop_assert!(e.ever_responded());
                let ip = e.addr().ip().to_canonical();
                if self.config.ip_policy != IpPolicy::Unrestricted {
                    prop_assert!(ips.insert(host(ip)), "two entries on {}", ip);
                }
                if self.config.ip_policy == IpPolicy::OnePerIpAndSubnetPerBucket {
                    prop_assert!(subnets.insert(subnet(ip)), "two entries on one subnet");
                }
                // Liveness bookkeeping matches what was heard, and BEP 5.
                let m = self
                    .model
                    .get(&(e.id(), e.addr()))
                    .copied()
                    .unwrap_or_default();
                prop_assert_eq!(e.last_response(), m.last_response);
                prop_assert_eq!(e.failed_queries(), m.failures);
                prop_assert!(e.last_query().is_none() || e.last_query() == m.last_query);
                let expect = bep5(
                    self.now,
                    e.last_response(),
                    e.last_query(),
                    e.failed_queries(),
                    self.config.max_failures,
                );
                prop_assert_eq!(t.liveness(self.now, e), expect);
                all.push((e.info(), expect));
            }
            for c in b.replacements() {
                prop_assert_eq!(self.own.shared_prefix_len(&c.info().id).min(count - 1), i);
                prop_assert!(t.get(&c.info().id).is_none(), "candidate is also an entry");
            }
        }
        prop_assert_eq!(all.len(), t.len());
        prop_assert_eq!(t.is_empty(), all.is_empty());
        prop_assert_eq!(t.entries().count(), t.len());
        prop_assert!(t.split_queue().len() <= 160);
        prop_assert!(t.split_queue().iter().all(|i| i < count));
        // closest against brute force over non-bad entries.
        let live: Vec<NodeInfo> = all
            .iter()
            .filter(|(_, l)| *l != Liveness::Bad)
            .map(|(n, _)| *n)
            .collect();
        let mut targets = vec![self.own, NodeId::random(&mut self.rng)];
        targets.push(self.ids[targets[1].0[0] as usize % NODES]);
        for target in targets {
            let mut brute = live.clone();
            brute.sort_by_key(|n| target.distance(&n.id));
            for want in [1usize, 3, 8, 50] {
                let got = t.closest(&target, want);
                prop_assert_eq!(&got[..], &brute[..want.min(brute.len())]);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn table_invariants_hold_after_every_operation(
        seed in any::<u64>(),
        k in 1usize..=8,
        max_failures in 0u32..=3,
        cache in 0usize..=4,
        ip_policy in policy(),
        ops in prop::collection::vec(op(), 1..160),
    ) {
        let config = RoutingConfig {
            k,
            max_failures,
            replacement_cache_size: cache,
            ip_policy,
            ..RoutingConfig::default()
        };
        let mut h = Harness::new(seed, config);
        for op in &ops {
            h.apply(op)?;
        }
    }
}
