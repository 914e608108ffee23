//! Tests of the simulated network with toy endpoints (not the DHT): latency in virtual time,
//! loss, duplication, reordering, timers, offline nodes and churn, determinism, and scale.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use btdht::sim::{ChurnModel, Jitter, LinkModel, SimNet, Stats, TraceKind, TraceRecord, node_addr};
use btdht::{Endpoint, Instant, Transmit};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at_ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// A toy endpoint: records what it receives, optionally echoes it, fires requested timers and
/// optionally sends a numbered ping to one peer at a fixed period.
#[derive(Default)]
struct Toy {
    outbox: VecDeque<Transmit>,
    received: Vec<(Instant, SocketAddr, Vec<u8>)>,
    echo: bool,
    /// Requested deadlines, sorted.
    timers: VecDeque<Instant>,
    fired: Vec<Instant>,
    /// (peer, period, next send time)
    ping: Option<(SocketAddr, Duration, Instant)>,
    pings_sent: u32,
}

impl Toy {
    fn echo() -> Self {
        Toy {
            echo: true,
            ..Toy::default()
        }
    }

    fn pinger(peer: SocketAddr, period: Duration, first: Instant) -> Self {
        Toy {
            ping: Some((peer, period, first)),
            ..Toy::default()
        }
    }

    fn send(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.outbox.push_back(Transmit::new(to, bytes.to_vec()));
    }

    /// The numbers of the received pings, in arrival order.
    fn ping_numbers(&self) -> Vec<u32> {
        self.received
            .iter()
            .map(|(_, _, b)| u32::from_be_bytes(b[..4].try_into().unwrap()))
            .collect()
    }
}

impl Endpoint for Toy {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.received.push((now, from, bytes.to_vec()));
        if self.echo {
            self.send(from, bytes);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while self.timers.front().is_some_and(|t| *t <= now) {
            self.timers.pop_front();
            self.fired.push(now);
        }
        if let Some((peer, period, next)) = self.ping.as_mut()
            && *next <= now
        {
            *next += *period;
            let peer = *peer;
            let n = self.pings_sent;
            self.pings_sent += 1;
            self.send(peer, &n.to_be_bytes());
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let ping = self.ping.map(|(_, _, next)| next);
        match (self.timers.front().copied(), ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn two_nodes(seed: u64, link: LinkModel, a: Toy, b: Toy) -> (SimNet<Toy>, SocketAddr, SocketAddr) {
    let mut net = SimNet::new(seed, link);
    let (aa, ba) = (node_addr(0), node_addr(1));
    net.add_node(aa, a);
    net.add_node(ba, b);
    (net, aa, ba)
}

fn assert_conserved(s: &Stats) {
    assert_eq!(
        s.sent + s.duplicated,
        s.delivered + s.lost + s.dropped_unknown + s.dropped_offline + s.in_flight,
        "{s:?}"
    );
}

#[test]
fn delivery_takes_the_link_latency_in_virtual_time() {
    let link = LinkModel::new(ms(40));
    let (mut net, a, b) = two_nodes(1, link, Toy::default(), Toy::echo());
    net.node_mut(a).unwrap().send(b, b"hello");

    net.run_until(at_ms(39));
    assert!(net.node(b).unwrap().received.is_empty());
    assert_eq!(net.now(), at_ms(39));

    net.run_until(at_ms(40));
    assert_eq!(
        net.node(b).unwrap().received,
        [(at_ms(40), a, b"hello".to_vec())]
    );

    net.run_for(ms(100));
    assert_eq!(
        net.node(a).unwrap().received,
        [(at_ms(80), b, b"hello".to_vec())]
    );
    assert_eq!(net.now(), at_ms(140));
    let s = net.stats();
    assert_eq!((s.sent, s.delivered, s.bytes_delivered), (2, 2, 10));
    assert_eq!(s.in_flight, 0);
    assert_conserved(&s);
    let sa = net.node_stats(a).unwrap();
    assert_eq!((sa.sent, sa.received, sa.bytes_sent), (1, 1, 5));
}

#[test]
fn step_processes_one_event_at_a_time_and_ties_keep_send_order() {
    let link = LinkModel::new(ms(10));
    let (mut net, a, b) = two_nodes(1, link, Toy::default(), Toy::default());
    for i in 0..5u32 {
        net.node_mut(a).unwrap().send(b, &i.to_be_bytes());
    }
    for _ in 0..5 {
        assert_eq!(net.step(), Some(at_ms(10)));
    }
    assert_eq!(net.step(), None);
    assert_eq!(net.node(b).unwrap().ping_numbers(), [0, 1, 2, 3, 4]);
}

#[test]
fn timers_fire_at_the_requested_virtual_times() {
    let mut toy = Toy::default();
    let wanted = [
        Instant::from_secs(1),
        Instant::from_millis(2_500),
        Instant::from_micros(2_500_001),
        Instant::from_secs(10),
    ];
    toy.timers.extend(wanted);
    let mut net = SimNet::new(3, LinkModel::default());
    let a = node_addr(0);
    net.add_node(a, toy);
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.node(a).unwrap().fired, wanted);
    assert_eq!(net.stats().timeouts, 4);
    assert_eq!(net.next_event_time(), None);
}

#[test]
fn moved_deadlines_fire_once_at_the_new_time() {
    let mut net = SimNet::new(3, LinkModel::default());
    let a = node_addr(0);
    net.add_node(a, Toy::default());

    // Later: the pending early event must not call handle_timeout.
    net.node_mut(a)
        .unwrap()
        .timers
        .push_back(Instant::from_secs(5));
    net.run_for(Duration::from_secs(1));
    net.node_mut(a).unwrap().timers[0] = Instant::from_secs(7);
    net.run_until(Instant::from_secs(20));
    assert_eq!(net.node(a).unwrap().fired, [Instant::from_secs(7)]);

    // Earlier.
    net.node_mut(a)
        .unwrap()
        .timers
        .push_back(Instant::from_secs(30));
    net.run_for(Duration::from_secs(1));
    net.node_mut(a).unwrap().timers[0] = Instant::from_secs(25);
    net.run_until(Instant::from_secs(40));
    assert_eq!(
        net.node(a).unwrap().fired,
        [Instant::from_secs(7), Instant::from_secs(25)]
    );
    assert_eq!(net.stats().timeouts, 2);
}

/// A core whose deadline never moves forward.
struct Stuck(u64);

impl Endpoint for Stuck {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
    fn handle_timeout(&mut self, _: Instant) {
        self.0 += 1;
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(Instant::ZERO)
    }
}

#[test]
fn a_stuck_deadline_cannot_stall_the_clock() {
    let mut net = SimNet::new(0, LinkModel::default());
    net.add_node(node_addr(0), Stuck(0));
    net.run_for(ms(1));
    // Once per microsecond, 0..=1000.
    assert_eq!(net.node(node_addr(0)).unwrap().0, 1001);
}

#[test]
fn loss_rate_matches_the_configuration() {
    let link = LinkModel::new(ms(5)).with_loss(0.3);
    let (mut net, a, b) = two_nodes(
        42,
        link,
        Toy::pinger(node_addr(1), ms(1), Instant::ZERO),
        Toy::default(),
    );
    net.run_for(Duration::from_secs(10));
    let s = net.stats();
    let received = net.node(b).unwrap().received.len() as u64;
    assert_eq!(s.sent, 10_001);
    assert_eq!(s.delivered, received);
    assert!(
        (2_700..=3_300).contains(&s.lost),
        "lost {} of {}",
        s.lost,
        s.sent
    );
    assert_conserved(&s);
    assert_eq!(net.node_stats(a).unwrap().sent, s.sent);
}

#[test]
fn duplication_delivers_extra_copies() {
    let link = LinkModel::new(ms(5)).with_duplication(0.2);
    let (mut net, _, b) = two_nodes(
        7,
        link,
        Toy::pinger(node_addr(1), ms(1), Instant::ZERO),
        Toy::default(),
    );
    net.run_for(Duration::from_secs(5));
    let s = net.stats();
    assert_eq!(s.lost, 0);
    assert!((800..=1_200).contains(&s.duplicated), "{s:?}");
    assert_eq!(s.delivered, s.sent + s.duplicated - s.in_flight);
    let mut numbers = net.node(b).unwrap().ping_numbers();
    numbers.sort_unstable();
    let dups = numbers.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    assert_eq!(dups, s.duplicated);
    assert_conserved(&s);
}

fn inversions(v: &[u32]) -> usize {
    v.windows(2).filter(|w| w[0] > w[1]).count()
}

#[test]
fn jitter_reorders_and_a_clean_link_does_not() {
    let run = |link: LinkModel| {
        let (mut net, _, b) = two_nodes(
            9,
            link,
            Toy::pinger(node_addr(1), ms(1), Instant::ZERO),
            Toy::default(),
        );
        net.run_for(Duration::from_secs(2));
        net.node(b).unwrap().ping_numbers()
    };
    let clean = run(LinkModel::new(ms(50)));
    assert_eq!(inversions(&clean), 0);
    assert!(clean.len() > 1900);

    let jittery = run(LinkModel::new(ms(50)).with_jitter(Jitter::Uniform { max: ms(20) }));
    assert!(inversions(&jittery) > 100, "{}", inversions(&jittery));

    let tail = run(LinkModel::new(ms(50)).with_jitter(Jitter::Exponential { mean: ms(5) }));
    assert!(inversions(&tail) > 100);

    let explicit = run(LinkModel::new(ms(50)).with_reordering(0.1, ms(30)));
    let n = inversions(&explicit);
    assert!((50..=300).contains(&n), "{n}");
}

#[test]
fn offline_and_removed_nodes_drop_traffic() {
    let link = LinkModel::new(ms(10));
    let (mut net, a, b) = two_nodes(1, link, Toy::default(), Toy::echo());
    let c = node_addr(2);

    net.node_mut(a).unwrap().send(c, b"nobody");
    net.flush();
    assert_eq!(net.stats().dropped_unknown, 1);

    assert!(net.set_online(b, false));
    assert_eq!(net.is_online(b), Some(false));
    net.node_mut(a).unwrap().send(b, b"ping");
    net.run_for(ms(100));
    assert!(net.node(b).unwrap().received.is_empty());
    assert_eq!(net.stats().dropped_offline, 1);

    // In flight when the receiver leaves: dropped on arrival.
    net.set_online(b, true);
    net.node_mut(a).unwrap().send(b, b"ping");
    net.run_for(ms(5));
    net.set_online(b, false);
    net.run_for(ms(100));
    assert_eq!(net.stats().dropped_offline, 2);

    // Back online: delivered and echoed.
    net.set_online(b, true);
    net.node_mut(a).unwrap().send(b, b"ping");
    net.run_for(ms(100));
    assert_eq!(net.node(b).unwrap().received.len(), 1);
    assert_eq!(net.node(a).unwrap().received.len(), 1);

    // Removed: gone, and the address drops traffic.
    let old = net.remove_node(b).unwrap();
    assert_eq!(old.received.len(), 1);
    assert!(!net.contains(b));
    net.node_mut(a).unwrap().send(b, b"ping");
    net.run_for(ms(100));
    assert_eq!(net.stats().dropped_offline, 3);
    assert_eq!(net.len(), 1);

    // The address can be reused by a new node.
    net.add_node(b, Toy::echo());
    net.node_mut(a).unwrap().send(b, b"again");
    net.run_for(ms(100));
    assert_eq!(net.node(b).unwrap().received.len(), 1);
    assert_eq!(net.addrs().collect::<Vec<_>>(), [a, b]);
    assert_conserved(&net.stats());
}

#[test]
fn a_node_can_have_its_own_link() {
    let mut net = SimNet::new(1, LinkModel::new(ms(10)));
    let (a, b, c) = (node_addr(0), node_addr(1), node_addr(2));
    net.add_node(a, Toy::echo());
    net.add_node(b, Toy::echo());
    net.add_node(c, Toy::echo());
    assert!(net.set_node_link(c, Some(LinkModel::new(ms(10)).with_loss(1.0))));
    assert!(net.set_node_link(b, Some(LinkModel::new(ms(100)))));
    assert!(!net.set_node_link(node_addr(3), None));
    net.node_mut(a).unwrap().send(b, b"slow");
    net.node_mut(a).unwrap().send(c, b"cut off");
    net.node_mut(c).unwrap().send(a, b"cut off");
    net.node_mut(b).unwrap().send(c, b"sender wins");
    net.run_for(ms(150));
    assert_eq!(
        net.node(b).unwrap().received,
        [(at_ms(100), a, b"slow".to_vec())]
    );
    assert_eq!(
        net.node(c).unwrap().received,
        [(at_ms(100), b, b"sender wins".to_vec())]
    );
    // c's echo to b is lost; a's echo from b is in flight.
    assert_eq!(net.stats().lost, 3);
    assert!(net.node(a).unwrap().received.is_empty());

    net.set_node_link(b, None);
    net.node_mut(a).unwrap().send(b, b"fast");
    net.run_for(ms(10));
    assert_eq!(
        net.node(b).unwrap().received[1],
        (at_ms(160), a, b"fast".to_vec())
    );
}

#[test]
fn an_offline_node_sleeps_and_catches_up() {
    let mut toy = Toy::default();
    toy.timers
        .extend([Instant::from_secs(1), Instant::from_secs(2)]);
    let mut net = SimNet::new(1, LinkModel::default());
    let a = node_addr(0);
    net.add_node(a, toy);
    assert!(net.schedule_online(at_ms(500), a, false));
    assert!(net.schedule_online(at_ms(3_500), a, true));
    net.run_for(Duration::from_secs(10));
    // Both overdue timers fire when it wakes.
    assert_eq!(net.node(a).unwrap().fired, [at_ms(3_500), at_ms(3_500)]);
}

#[test]
fn churn_follows_the_model_and_the_seed() {
    let model = ChurnModel::new(Duration::from_secs(60), Duration::from_secs(20));
    assert!((model.availability() - 0.75).abs() < 1e-9);
    let run = |seed| {
        let mut net = SimNet::new(seed, LinkModel::default());
        for i in 0..200 {
            net.add_node(node_addr(i), Toy::default());
        }
        net.set_churn_all(model);
        let mut online_samples = 0u64;
        for _ in 0..200 {
            net.run_for(Duration::from_secs(10));
            online_samples += net
                .addrs()
                .filter(|a| net.is_online(*a) == Some(true))
                .count() as u64;
        }
        (online_samples, net.stats().events)
    };
    let (online, events) = run(5);
    let fraction = online as f64 / (200.0 * 200.0);
    assert!((0.70..=0.80).contains(&fraction), "{fraction}");
    assert_eq!(run(5), (online, events));
    assert_ne!(run(6), (online, events));

    // Stopping churn freezes the state.
    let mut net = SimNet::new(1, LinkModel::default());
    let a = node_addr(0);
    net.add_node(a, Toy::default());
    net.set_churn(a, Some(model));
    net.set_churn(a, None);
    net.run_for(Duration::from_secs(10_000));
    assert_eq!(net.is_online(a), Some(true));
}

/// A gossiping toy: every `period` it sends a few bytes to a pseudo-random peer; it counts what
/// it receives.
struct Gossip {
    n: u32,
    state: u64,
    period: Duration,
    next: Instant,
    received: u64,
    outbox: Option<Transmit>,
}

impl Gossip {
    fn new(i: u32, n: u32, period: Duration) -> Self {
        let mut g = Gossip {
            n,
            state: u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            period,
            next: Instant::ZERO,
            received: 0,
            outbox: None,
        };
        // Stagger the first send across the period.
        g.next = Instant::from_micros(g.rand() % (period.as_micros() as u64));
        g
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Endpoint for Gossip {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {
        self.received += 1;
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.next <= now {
            self.next += self.period;
            let peer = node_addr((self.rand() % u64::from(self.n)) as u32);
            let r = self.rand();
            self.outbox = Some(Transmit::new(peer, r.to_le_bytes().to_vec()));
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.take()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next)
    }
}

fn gossip_net(seed: u64, n: u32, link: LinkModel) -> SimNet<Gossip> {
    let mut net = SimNet::new(seed, link);
    for i in 0..n {
        net.add_node(node_addr(i), Gossip::new(i, n, Duration::from_secs(1)));
    }
    net
}

fn lossy_jittery() -> LinkModel {
    LinkModel::new(ms(30))
        .with_jitter(Jitter::Exponential { mean: ms(20) })
        .with_loss(0.05)
        .with_duplication(0.01)
        .with_reordering(0.02, ms(100))
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let run = |seed| {
        let mut net = gossip_net(seed, 300, lossy_jittery());
        net.set_churn_all(ChurnModel::new(
            Duration::from_secs(5),
            Duration::from_secs(2),
        ));
        net.run_for(Duration::from_secs(20));
        (net.trace_digest(), net.stats())
    };
    let (d1, s1) = run(11);
    let (d2, s2) = run(11);
    let (d3, _) = run(12);
    assert_eq!(d1, d2);
    assert_eq!(s1, s2);
    assert_ne!(d1, d3);
    assert!(s1.delivered > 3_000, "{s1:?}");
    assert!(s1.lost > 0 && s1.duplicated > 0 && s1.dropped_offline > 0);
    assert_conserved(&s1);
}

#[test]
fn the_trace_log_reads_like_a_protocol_trace() {
    let link = LinkModel::new(ms(25));
    let (mut net, a, b) = two_nodes(1, link, Toy::default(), Toy::echo());
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = seen.clone();
    net.set_observer(move |e| sink.borrow_mut().push((e.at, e.kind)));
    net.set_trace_log(3);

    net.node_mut(a).unwrap().send(b, b"q");
    net.node_mut(a).unwrap().send(node_addr(9), b"x");
    net.run_for(ms(100));

    let rec = |at, kind, from, to, bytes: &[u8]| TraceRecord {
        at,
        kind,
        from,
        to,
        bytes: bytes.to_vec(),
    };
    // The last three of: a sends q, a sends x (dropped), b receives q, b echoes, a receives q.
    assert_eq!(
        net.take_trace_log(),
        [
            rec(at_ms(25), TraceKind::Delivered, a, b, b"q"),
            rec(at_ms(25), TraceKind::Sent, b, a, b"q"),
            rec(at_ms(50), TraceKind::Delivered, b, a, b"q"),
        ]
    );
    assert_eq!(
        *seen.borrow(),
        [
            (at_ms(0), TraceKind::Sent),
            (at_ms(0), TraceKind::Sent),
            (at_ms(0), TraceKind::DroppedUnknown),
            (at_ms(25), TraceKind::Delivered),
            (at_ms(25), TraceKind::Sent),
            (at_ms(50), TraceKind::Delivered),
        ]
    );
    assert_eq!(net.trace_log().count(), 0);
}

#[test]
fn ten_thousand_nodes_run_quickly() {
    let n = 10_000;
    let mut net = gossip_net(
        1,
        n,
        LinkModel::new(ms(20)).with_jitter(Jitter::Uniform { max: ms(30) }),
    );
    net.run_for(Duration::from_secs(2));
    let s = net.stats();
    // Two rounds of gossip: every node sent twice, at most one round still in flight.
    assert_eq!(s.sent, 2 * u64::from(n));
    assert_eq!(s.timeouts, s.sent);
    let received: u64 = net.nodes().map(|(_, g)| g.received).sum();
    assert_eq!(received, s.delivered);
    assert_eq!(s.delivered + s.in_flight, s.sent);
}

/// Millions of events; run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore = "load test, for release mode"]
fn load_ten_thousand_nodes_millions_of_events() {
    let n = 10_000;
    let mut net = gossip_net(1, n, lossy_jittery());
    let clock = std::time::Instant::now();
    net.run_for(Duration::from_secs(100));
    let elapsed = clock.elapsed();
    let s = net.stats();
    println!(
        "{s:?}\n{elapsed:?}, {:.0} events/s",
        s.events as f64 / elapsed.as_secs_f64()
    );
    assert!(s.events > 1_900_000);
}

#[test]
fn run_until_cond_stops_as_soon_as_the_condition_holds() {
    let link = LinkModel::new(ms(40));
    let (mut net, a, b) = two_nodes(1, link, Toy::default(), Toy::echo());
    net.node_mut(a).unwrap().send(b, b"hi");
    let replied = |net: &SimNet<Toy>| !net.node(a).unwrap().received.is_empty();
    assert!(net.run_until_cond(Instant::from_secs(1), replied));
    assert_eq!(net.now(), at_ms(80));
    // Nothing more happens: the deadline is not reached but the queue is empty.
    assert!(!net.run_until_cond(Instant::from_secs(1), |n| n.stats().delivered > 2));
    assert_eq!(net.now(), at_ms(80));
}
