//! The crawl on a real UDP socket: a [`Crawl`] runs the [`Crawler`] core on the
//! [`Runtime`]'s loop and hands what it finds to a [`CrawlSink`].
//!
//! It runs on the calling thread until its stop flag ([`Crawl::stop_flag`], e.g. set by a
//! signal handler) is set, its duration has passed, the sink fails, or, with
//! [`CrawlOptions::until_idle`], the crawler is idle. The loop sleeps at most [`MAX_SLEEP`], the
//! longest a stop request waits to be seen. This module owns only the driving; the NDJSON and
//! progress output is the caller's.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mio::net::UdpSocket;

use super::{CrawlConfig, Crawler, Record};
use crate::runtime::{Clock, Flow, IoStats, Role, Runtime, Turn};
use crate::time::Instant;

/// Longest sleep of the crawl's loop: a stop request is seen within it.
pub const MAX_SLEEP: Duration = Duration::from_millis(100);

/// What to crawl and for how long.
#[derive(Clone, Debug)]
pub struct CrawlOptions {
    /// The crawler's settings.
    pub config: CrawlConfig,
    /// Seed of the crawler's randomness.
    pub seed: u64,
    /// Nodes to start from.
    pub bootstrap: Vec<SocketAddr>,
    /// Stop after this long (default: until stopped).
    pub duration: Option<Duration>,
    /// Stop once the crawler is idle ([`Crawler::is_idle`]).
    pub until_idle: bool,
    /// Addresses not to be sampled before this long after the crawl starts (BEP 51 intervals
    /// of an earlier crawl, see [`Crawler::defer_samples`]).
    pub sample_after: Vec<(SocketAddr, Duration)>,
}

/// Where a crawl's findings go.
pub trait CrawlSink {
    /// Something the crawl found. An error stops the crawl (and is returned in
    /// [`CrawlEnd::error`]).
    fn record(&mut self, record: Record) -> io::Result<()>;

    /// Called on each turn of the loop (at least every [`MAX_SLEEP`]), for work of the sink's
    /// own (e.g. collecting fetched metadata). An error stops the crawl (and is returned in
    /// [`CrawlEnd::error`]).
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Called on each turn of the loop (at least every [`MAX_SLEEP`]), for progress output.
    fn progress(&mut self, crawler: &Crawler, io: &IoStats) {
        let _ = (crawler, io);
    }
}

/// How a crawl ended.
#[derive(Debug)]
pub struct CrawlEnd {
    /// The crawler, for its counters.
    pub crawler: Crawler,
    /// The loop's I/O counters.
    pub io: IoStats,
    /// How long it ran.
    pub elapsed: Duration,
    /// The sink's error, if one stopped the crawl.
    pub error: Option<io::Error>,
}

/// A crawl ready to run on one socket (see the module documentation).
pub struct Crawl {
    runtime: Runtime,
    crawler: Crawler,
    stop: Arc<AtomicBool>,
    end: Option<Instant>,
    until_idle: bool,
}

impl Crawl {
    /// A crawl on `socket` (IPv4), its clock started now and its bootstrap nodes queued.
    pub fn new(socket: UdpSocket, options: CrawlOptions) -> io::Result<Crawl> {
        Crawl::with_sockets(Some(socket), None, options)
    }

    /// A crawl on an IPv4 socket, an IPv6 socket or both (IPv4 and IPv6 crawled together),
    /// its clock started now and its bootstrap nodes queued. The crawler's families
    /// ([`CrawlConfig::ipv4`], [`CrawlConfig::ipv6`]) are those of the sockets given; with
    /// none it fails with [`io::ErrorKind::InvalidInput`].
    pub fn with_sockets(
        sock4: Option<UdpSocket>,
        sock6: Option<UdpSocket>,
        options: CrawlOptions,
    ) -> io::Result<Crawl> {
        if sock4.is_none() && sock6.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a crawl needs an IPv4 or an IPv6 socket",
            ));
        }
        let mut config = options.config;
        config.ipv4 = sock4.is_some();
        config.ipv6 = sock6.is_some();
        let clock = Clock::start();
        let mut runtime = Runtime::new(clock)?.with_max_sleep(MAX_SLEEP);
        runtime.add(sock4, sock6)?;
        let now = clock.now();
        let mut crawler = Crawler::new(config, options.seed, now);
        let deadlines: Vec<(SocketAddr, Instant)> = options
            .sample_after
            .iter()
            .map(|(addr, wait)| (*addr, now + *wait))
            .collect();
        crawler.defer_samples(&deadlines);
        crawler.add_bootstrap(now, &options.bootstrap);
        Ok(Crawl {
            runtime,
            crawler,
            stop: Arc::new(AtomicBool::new(false)),
            end: options.duration.map(|d| now + d),
            until_idle: options.until_idle,
        })
    }

    /// The IPv4 socket's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.runtime.local_addr(0, 0)
    }

    /// The IPv6 socket's address.
    pub fn local_addr6(&self) -> Option<SocketAddr> {
        self.runtime.local_addr(0, 1)
    }

    /// A flag that stops the crawl when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs the crawl on this thread until it stops (see the module documentation). Fails
    /// only if the loop's poll fails.
    pub fn run<S: CrawlSink>(mut self, sink: &mut S) -> io::Result<CrawlEnd> {
        let mut role = CrawlRole {
            crawler: self.crawler,
            sink,
            stop: &self.stop,
            end: self.end,
            until_idle: self.until_idle,
            error: None,
        };
        self.runtime.run(&mut role)?;
        role.drain_records();
        Ok(CrawlEnd {
            io: self.runtime.stats(),
            elapsed: Duration::from_micros(self.runtime.clock().now().as_micros()),
            error: role.error,
            crawler: role.crawler,
        })
    }
}

/// The crawl's role on the runtime.
struct CrawlRole<'a, S> {
    crawler: Crawler,
    sink: &'a mut S,
    stop: &'a AtomicBool,
    end: Option<Instant>,
    until_idle: bool,
    error: Option<io::Error>,
}

impl<S: CrawlSink> CrawlRole<'_, S> {
    fn drain_records(&mut self) {
        while let Some(record) = self.crawler.poll_record() {
            if self.error.is_none()
                && let Err(e) = self.sink.record(record)
            {
                self.error = Some(e);
            }
        }
    }
}

impl<S: CrawlSink> Role for CrawlRole<'_, S> {
    type Endpoint = Crawler;

    fn endpoint(&mut self, slot: usize) -> Option<&mut Crawler> {
        (slot == 0).then_some(&mut self.crawler)
    }

    fn turn(&mut self, now: Instant, turn: &mut Turn<'_>) -> Flow {
        let stop = self.stop.load(Ordering::Relaxed)
            || self.end.is_some_and(|end| now >= end)
            || self.error.is_some()
            || (self.until_idle && self.crawler.is_idle());
        if stop {
            return Flow::Stop;
        }
        if let Err(e) = self.sink.tick() {
            self.error = Some(e);
            return Flow::Stop;
        }
        self.sink.progress(&self.crawler, turn.stats());
        Flow::Continue
    }

    fn after_flush(&mut self, _slot: usize) {
        self.drain_records();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.end
    }
}

impl std::fmt::Debug for Crawl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crawl")
            .field("until_idle", &self.until_idle)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::{Ready, Swarm, SwarmObserver, SwarmOptions};
    use crossbeam_channel::Sender;
    use std::collections::HashSet;

    struct ReadyTo(Sender<Ready>);

    impl SwarmObserver for ReadyTo {
        fn ready(&mut self, ready: &Ready) -> io::Result<()> {
            let _ = self.0.send(ready.clone());
            Ok(())
        }
    }

    #[derive(Default)]
    struct Collect {
        records: Vec<Record>,
        progress_calls: usize,
    }

    impl CrawlSink for Collect {
        fn record(&mut self, record: Record) -> io::Result<()> {
            self.records.push(record);
            Ok(())
        }
        fn progress(&mut self, _crawler: &Crawler, _io: &IoStats) {
            self.progress_calls += 1;
        }
    }

    #[test]
    fn a_crawl_finds_every_node_of_a_loopback_swarm_and_stops_when_idle() {
        let swarm = Swarm::bind(SwarmOptions {
            nodes: 6,
            base_ip: "127.0.214.1".parse().unwrap(),
            port: 47_911,
            infohashes: 0,
            seed: 3,
            join_rate: 100,
            settle: Duration::from_millis(300),
            duration: None,
        })
        .unwrap();
        let stop_swarm = swarm.stop_flag();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::spawn(move || swarm.run(&mut ReadyTo(ready_tx)).map(|_| ()));
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the swarm became ready");

        let socket = crate::driver::socket::bind_udp("127.0.215.1:0".parse().unwrap()).unwrap();
        let options = CrawlOptions {
            config: CrawlConfig {
                allow_private: true,
                sweep_rate: 0,
                ..CrawlConfig::default()
            },
            seed: 5,
            bootstrap: vec![ready.bootstrap],
            duration: Some(Duration::from_secs(30)),
            until_idle: true,
            sample_after: Vec::new(),
        };
        let crawl = Crawl::new(socket, options).unwrap();
        let mut sink = Collect::default();
        let end = crawl.run(&mut sink).unwrap();
        stop_swarm.store(true, Ordering::Relaxed);
        thread.join().unwrap().unwrap();

        assert!(end.error.is_none());
        assert!(
            end.crawler.is_idle(),
            "stopped by idleness, not the duration"
        );
        let found: HashSet<SocketAddr> = sink
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Node { addr, .. } => Some(*addr),
                _ => None,
            })
            .collect();
        let truth: HashSet<SocketAddr> = ready.nodes.iter().map(|(_, addr)| *addr).collect();
        assert_eq!(found, truth);
        assert_eq!(end.crawler.stats().nodes_found, 6);
        assert!(end.io.datagrams_out >= 6 && end.io.datagrams_in >= 6);
        assert!(sink.progress_calls > 0);
    }
}
