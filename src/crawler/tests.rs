//! Unit tests of the crawl planner.

use super::*;
use crate::krpc::{Message, Response};

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn private() -> CrawlConfig {
    CrawlConfig {
        allow_private: true,
        ..CrawlConfig::default()
    }
}

/// Answers every query in the outbox as a node at its address would: with `nodes`.
fn answer_all(c: &mut Crawler, now: Instant, nodes: &dyn Fn(SocketAddr) -> Vec<NodeInfo>) {
    let out: Vec<Transmit> = std::iter::from_fn(|| c.poll_transmit()).collect();
    for t in out {
        let query = krpc::decode(&t.bytes).unwrap().message;
        let mut r = Response::new(NodeId([t.to.port() as u8; 20]));
        r.nodes = Some(nodes(t.to));
        let reply = Message::response(query.transaction_id, r).encode();
        c.handle_datagram(now, t.to, &reply);
    }
}

#[test]
fn hostile_datagrams_are_counted_not_trusted() {
    let t0 = Instant::from_secs(1);
    let mut c = Crawler::new(private(), 1, t0);
    let node = addr([10, 0, 0, 1], 6881);
    c.add_bootstrap(t0, &[node]);
    let query = c.poll_transmit().unwrap();
    let tid = krpc::decode(&query.bytes).unwrap().message.transaction_id;
    // Garbage, a reply from the wrong address, a reply with an unknown id, a query.
    c.handle_datagram(t0, node, b"d1:t");
    c.handle_datagram(t0, node, &[0xff; 3000]);
    let reply = Message::response(tid.clone(), Response::new(NodeId([7; 20]))).encode();
    c.handle_datagram(t0, addr([10, 0, 0, 2], 6881), &reply);
    let other = Message::response(vec![1, 2, 3, 4], Response::new(NodeId([7; 20]))).encode();
    c.handle_datagram(t0, node, &other);
    let q = Message::query(vec![9], NodeId([1; 20]), QueryKind::Ping).encode();
    c.handle_datagram(t0, node, &q);
    let s = *c.stats();
    assert_eq!((s.rejected, s.unmatched, s.queries_ignored), (2, 2, 1));
    assert_eq!(s.nodes_found, 0);
    // The genuine reply still counts, once.
    c.handle_datagram(t0, node, &reply);
    c.handle_datagram(t0, node, &reply);
    assert_eq!(c.stats().nodes_found, 1);
    assert_eq!(c.stats().unmatched, 3);
    assert!(matches!(c.poll_record(), Some(Record::Node { .. })));
    assert!(c.poll_record().is_none());
}

#[test]
fn one_ip_with_many_ports_gets_at_most_44_queries_in_10_s() {
    let t0 = Instant::from_secs(1);
    let mut c = Crawler::new(private(), 2, t0);
    // Every reply names 8 new ports on the same IP (a host that tries to draw traffic).
    let next = std::cell::Cell::new(1000u16);
    let many = |_: SocketAddr| {
        (0..8)
            .map(|_| {
                next.set(next.get() + 1);
                NodeInfo::new(NodeId([3; 20]), addr([10, 9, 9, 9], next.get()))
            })
            .collect()
    };
    c.add_bootstrap(t0, &[addr([10, 9, 9, 9], 999)]);
    let mut sent = 0;
    for ms in (0..10_000).step_by(10) {
        let now = t0 + Duration::from_millis(ms);
        c.handle_timeout(now);
        sent += c.outbox.len();
        answer_all(&mut c, now, &many);
    }
    assert!((40..=44).contains(&sent), "{sent}");
    assert!(c.stats().per_ip_delayed > 0);
}

#[test]
fn the_global_rate_holds() {
    let t0 = Instant::from_secs(1);
    let config = CrawlConfig {
        rate: 100,
        per_ip_rate: 0,
        ..private()
    };
    let mut c = Crawler::new(config, 3, t0);
    let next = std::cell::Cell::new(0u32);
    let fresh = |_: SocketAddr| {
        (0..8)
            .map(|_| {
                next.set(next.get() + 1);
                let [_, a, b, d] = next.get().to_be_bytes();
                NodeInfo::new(NodeId([4; 20]), addr([10, a, b, d.max(1)], 6881))
            })
            .collect()
    };
    c.add_bootstrap(t0, &[addr([10, 0, 0, 1], 6881)]);
    let mut sent = 0;
    for ms in (0..5_000).step_by(5) {
        let now = t0 + Duration::from_millis(ms);
        c.handle_timeout(now);
        sent += c.outbox.len();
        answer_all(&mut c, now, &fresh);
    }
    // 5 s at 100/s plus a burst of 5.
    assert!((495..=506).contains(&sent), "{sent}");
}

#[test]
fn a_full_outbox_holds_the_queries_back_until_it_is_drained() {
    let t0 = Instant::from_secs(1);
    let config = CrawlConfig {
        max_outbox: 3,
        per_ip_rate: 0,
        ..private()
    };
    let mut c = Crawler::new(config, 4, t0);
    let nodes: Vec<SocketAddr> = (1..=10).map(|i| addr([10, 0, 0, i], 6881)).collect();
    c.add_bootstrap(t0, &nodes);
    assert_eq!(c.outbox.len(), 3, "the queue is bounded");
    let mut sent = Vec::new();
    for ms in 0..10 {
        let now = t0 + Duration::from_millis(ms * 100);
        c.handle_timeout(now);
        assert!(c.outbox.len() <= 3);
        sent.extend(std::iter::from_fn(|| c.poll_transmit()).map(|t| t.to));
    }
    sent.sort_unstable();
    assert_eq!(sent, nodes, "every node visited once, none lost");
    assert_eq!(c.stats().queue_overflows, 0);
    assert_eq!(c.stats().queries_sent, 10);
}

#[test]
fn a_sharded_crawler_aims_every_query_into_its_shard_and_records_only_its_info_hashes() {
    let t0 = Instant::from_secs(1);
    let shard = Shard::new(1, 4).unwrap();
    let config = CrawlConfig {
        shard,
        per_ip_rate: 0,
        sweep_rate: 50,
        ..private()
    };
    let mut c = Crawler::new(config, 5, t0);
    let mut rng = SmallRng::seed_from_u64(8);
    let mut next = 0u32;
    c.add_bootstrap(t0, &[addr([10, 0, 0, 1], 6881)]);
    let mut targets = 0;
    let mut hashes = Vec::new();
    for ms in (0..3_000).step_by(10) {
        let now = t0 + Duration::from_millis(ms);
        c.handle_timeout(now);
        let out: Vec<Transmit> = std::iter::from_fn(|| c.poll_transmit()).collect();
        for t in out {
            let query = krpc::decode(&t.bytes).unwrap().message;
            let Body::Query(Query { kind, .. }) = &query.body else {
                panic!("a query");
            };
            let (target, sampled) = match kind {
                QueryKind::SampleInfohashes { target, .. } => (*target, true),
                QueryKind::FindNode { target, .. } => (*target, false),
                other => panic!("{other:?}"),
            };
            assert!(shard.contains(&target), "{target:?}");
            targets += 1;
            // A node anywhere in the id space, naming new nodes anywhere and sampling
            // info-hashes anywhere.
            let mut r = Response::new(NodeId::random(&mut rng));
            r.nodes = Some(
                (0..4)
                    .map(|_| {
                        next += 1;
                        let [_, a, b, d] = next.to_be_bytes();
                        NodeInfo::new(NodeId::random(&mut rng), addr([10, a, b, d.max(1)], 6881))
                    })
                    .collect(),
            );
            let sample: Vec<InfoHash> = (0..8).map(|_| NodeId::random(&mut rng)).collect();
            if sampled {
                hashes.extend(sample.iter().copied());
            }
            r.samples = Some(sample);
            r.num = Some(8);
            let reply = Message::response(query.transaction_id, r).encode();
            c.handle_datagram(now, t.to, &reply);
        }
    }
    assert!(targets > 100, "{targets}");
    let recorded: Vec<InfoHash> = std::iter::from_fn(|| c.poll_record())
        .filter_map(|r| match r {
            Record::InfoHash { info_hash, .. } => Some(info_hash),
            _ => None,
        })
        .collect();
    let ours: Vec<InfoHash> = hashes
        .iter()
        .copied()
        .filter(|h| shard.contains(h))
        .collect();
    assert_eq!((recorded.len(), c.stats().records_dropped), (ours.len(), 0));
    assert!(recorded == ours, "the info-hashes of the shard, in order");
    assert_eq!(
        c.stats().other_shards as usize,
        hashes.len() - ours.len(),
        "the rest counted"
    );
}

#[test]
fn with_both_families_queries_want_n4_n6_and_nodes6_are_visited() {
    let t0 = Instant::from_secs(1);
    let v6 = |n: u16| SocketAddr::new("fd00::1".parse().unwrap(), 7000 + n);
    // Answers with one IPv4 and one IPv6 node, new each time; returns the queries' wants and
    // destinations.
    let run = |ipv6: bool| {
        let config = CrawlConfig {
            ipv6,
            per_ip_rate: 0,
            sweep_rate: 0,
            ..private()
        };
        let mut c = Crawler::new(config, 6, t0);
        c.add_bootstrap(t0, &[addr([10, 0, 0, 1], 6881), v6(0)]);
        let mut next = 0u16;
        let mut sent = Vec::new();
        for ms in (0..2_000).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            c.handle_timeout(now);
            let out: Vec<Transmit> = std::iter::from_fn(|| c.poll_transmit()).collect();
            for t in out {
                let query = krpc::decode(&t.bytes).unwrap().message;
                let Body::Query(Query { kind, .. }) = &query.body else {
                    panic!("a query");
                };
                let want = match kind {
                    QueryKind::SampleInfohashes { want, .. } | QueryKind::FindNode { want, .. } => {
                        *want
                    }
                    other => panic!("{other:?}"),
                };
                sent.push((t.to, want));
                if next >= 20 {
                    continue;
                }
                next += 1;
                let mut r = Response::new(NodeId([next as u8; 20]));
                r.nodes = Some(vec![NodeInfo::new(
                    NodeId([100 + next as u8; 20]),
                    addr([10, 0, 1, next as u8], 6881),
                )]);
                r.nodes6 = Some(vec![NodeInfo::new(
                    NodeId([200 - next as u8; 20]),
                    v6(next),
                )]);
                let reply = Message::response(query.transaction_id, r).encode();
                c.handle_datagram(now, t.to, &reply);
            }
        }
        (sent, *c.stats())
    };
    let (sent, stats) = run(true);
    let both = Want { n4: true, n6: true };
    assert!(sent.iter().all(|(_, want)| *want == both));
    let to6 = sent.iter().filter(|(to, _)| to.is_ipv6()).count();
    assert!(
        to6 >= 10,
        "the nodes6 were visited: {to6} of {}",
        sent.len()
    );
    assert_eq!(stats.filtered, 0);

    let (sent, stats) = run(false);
    assert!(
        sent.iter()
            .all(|(to, want)| to.is_ipv4() && *want == Want::UNSPECIFIED)
    );
    assert!(
        stats.filtered >= 10,
        "IPv6 addresses refused: {}",
        stats.filtered
    );
}

/// The queries sent: (destination, whether a sample_infohashes), answered as a BEP 51 node
/// with id `[9; 20]` and `interval` 6 h would answer.
fn answer_samples(c: &mut Crawler, now: Instant) -> Vec<(SocketAddr, bool)> {
    let out: Vec<Transmit> = std::iter::from_fn(|| c.poll_transmit()).collect();
    let mut sent = Vec::new();
    for t in out {
        let query = krpc::decode(&t.bytes).unwrap().message;
        let Body::Query(Query { kind, .. }) = &query.body else {
            panic!("a query");
        };
        let sample = matches!(kind, QueryKind::SampleInfohashes { .. });
        sent.push((t.to, sample));
        let mut r = Response::new(NodeId([9; 20]));
        if sample {
            r.samples = Some(vec![NodeId([1; 20])]);
            r.num = Some(1);
            r.interval = Some(21_600);
        }
        let reply = Message::response(query.transaction_id, r).encode();
        c.handle_datagram(now, t.to, &reply);
    }
    sent
}

#[test]
fn a_node_sampled_with_a_6_h_interval_is_not_sampled_again_by_a_crawl_restarted_a_minute_later() {
    let t0 = Instant::from_secs(1);
    let node = addr([10, 0, 0, 1], 6881);
    let config = CrawlConfig {
        sweep_rate: 0,
        ..private()
    };
    let mut first = Crawler::new(config.clone(), 7, t0);
    first.add_bootstrap(t0, &[node]);
    assert_eq!(answer_samples(&mut first, t0), vec![(node, true)]);
    let next = std::iter::from_fn(|| first.poll_record())
        .find_map(|r| match r {
            Record::Interval {
                addr, next_sample, ..
            } => Some((addr, next_sample)),
            _ => None,
        })
        .expect("the interval is recorded");
    assert_eq!(next, (node, t0 + Duration::from_secs(21_600)));

    // The restart, a minute later, on a fresh clock: the deadline is 6 h minus a minute away.
    let s0 = Instant::from_secs(1);
    let mut second = Crawler::new(config, 8, s0);
    let due = s0 + Duration::from_secs(21_600 - 60);
    second.defer_samples(&[(node, due)]);
    second.add_bootstrap(s0, &[node]);
    let mut sent = answer_samples(&mut second, s0);
    assert_eq!(sent, vec![(node, false)], "a find_node, no sample");
    let mut now = s0;
    while now < due + Duration::from_secs(60) {
        now += Duration::from_secs(30);
        second.handle_timeout(now);
        for (to, sample) in answer_samples(&mut second, now) {
            assert!(!sample || now >= due, "sampled at {now:?}, before {due:?}");
            sent.push((to, sample));
        }
    }
    assert_eq!(
        sent,
        vec![(node, false), (node, true)],
        "sampled once, at its time"
    );
}

/// Runs `c` in simulated time from `t0`, dropping every datagram it sends, until it is idle or
/// `limit` passes; returns when it became idle and the datagrams it sent.
fn run_unanswered(c: &mut Crawler, t0: Instant, limit: Duration) -> (Option<Instant>, usize) {
    let mut now = t0;
    let mut sent = 0;
    loop {
        sent += std::iter::from_fn(|| c.poll_transmit()).count();
        if c.is_idle() {
            return (Some(now), sent);
        }
        match c.poll_timeout() {
            Some(at) if at <= t0 + limit => {
                now = now.max(at);
                c.handle_timeout(now);
            }
            _ => return (None, sent),
        }
    }
}

#[test]
fn a_crawler_whose_only_seed_never_answers_is_idle_after_its_retry_times_out() {
    let t0 = Instant::from_secs(1);
    let mut c = Crawler::new(private(), 6, t0);
    c.add_bootstrap(t0, &[addr([10, 0, 0, 1], 6881)]);
    assert!(!c.is_idle(), "its first query is in flight");
    let (idle_at, sent) = run_unanswered(&mut c, t0, Duration::from_secs(3600));
    let timeout = c.config().query_timeout;
    // The sample_infohashes, then one find_node, each timed out.
    assert_eq!(idle_at, Some(t0 + timeout * 2));
    assert_eq!(sent, 2);
    let s = *c.stats();
    assert_eq!((s.queries_sent, s.timeouts, s.replies), (2, 2, 0));
    assert_eq!(
        (s.samples_sent, s.find_nodes_sent, s.unresponsive),
        (1, 1, 1)
    );
    assert_eq!(c.poll_timeout(), None, "nothing is left to do");
}

#[test]
fn a_crawler_whose_seeds_answer_only_errors_is_idle_once_both_are_refused() {
    let t0 = Instant::from_secs(1);
    let mut c = Crawler::new(private(), 7, t0);
    c.add_bootstrap(t0, &[addr([10, 0, 0, 1], 6881), addr([10, 0, 0, 2], 6881)]);
    for _ in 0..2 {
        assert!(!c.is_idle());
        let out: Vec<Transmit> = std::iter::from_fn(|| c.poll_transmit()).collect();
        assert_eq!(out.len(), 2);
        for t in out {
            let query = krpc::decode(&t.bytes).unwrap().message;
            let error = Message::error(query.transaction_id, 204, "Method Unknown").encode();
            c.handle_datagram(t0, t.to, &error);
        }
    }
    assert!(c.is_idle());
    let s = *c.stats();
    assert_eq!(
        (s.queries_sent, s.errors, s.replies, s.timeouts),
        (4, 4, 0, 0)
    );
}

#[test]
fn a_crawler_whose_seeds_are_all_filtered_is_idle_at_once_without_sending() {
    let t0 = Instant::from_secs(1);
    // Private addresses without allow_private, and an IPv6 one with no IPv6 socket.
    let mut c = Crawler::new(CrawlConfig::default(), 8, t0);
    let v6: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
    c.add_bootstrap(
        t0,
        &[addr([10, 0, 0, 1], 6881), addr([192, 168, 1, 1], 6881), v6],
    );
    assert!(c.is_idle());
    assert!(c.poll_transmit().is_none());
    assert_eq!((c.stats().filtered, c.stats().queries_sent), (3, 0));
}

#[test]
fn a_crawler_that_found_a_node_is_idle_only_after_its_dry_sweeps() {
    let t0 = Instant::from_secs(1);
    let mut c = Crawler::new(private(), 9, t0);
    c.add_bootstrap(t0, &[addr([10, 0, 0, 1], 6881)]);
    answer_all(&mut c, t0, &|_| Vec::new());
    assert_eq!(c.stats().nodes_found, 1);
    let mut now = t0;
    let mut sweeps = 0;
    loop {
        sweeps += c.outbox.len();
        answer_all(&mut c, now, &|_| Vec::new());
        if c.is_idle() {
            break;
        }
        now = c.poll_timeout().expect("a sweep is due").max(now);
        c.handle_timeout(now);
        assert!(now < t0 + Duration::from_secs(3600), "never idle");
    }
    // Sweeps held back by the per-IP limit are sent too before it counts as idle.
    let idle_sweeps = c.config().idle_sweeps as usize;
    assert!(sweeps >= idle_sweeps, "{sweeps} sweeps");
    assert_eq!(c.dry_sweeps as usize, sweeps);
}
