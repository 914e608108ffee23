//! Hathor peer discovery on the DHT, as a library: [`Discovery`] finds candidates on a
//! network's rendezvous info-hash, filters them, verifies them with the Hathor handshake in a
//! bounded pool of threads and records the results in a [`PeerBook`]; [`Announcer`] keeps a
//! Hathor node's p2p port announced on that info-hash until it is dropped.
//!
//! Every call into the DHT ([`Dht`]) is in this file: [`Discovery::run`] makes one `get_peers`
//! lookup, [`announce_round`] one `announce`.
//!
//! # Output shapes
//!
//! A [`Report`] prints in Hathor's own formats ([`Report::to_json`]), checked against
//! hathor-core's parsers:
//! - verified peers: `[{"id": "<64 hex>", "entrypoints": ["tcp://ip:port"]}, ...]`, the PEERS /
//!   `UnverifiedPeer.create_from_json` shape (an `id` is required there: `PeerId(None)` is
//!   refused);
//! - unverified candidates (no handshake configured): `["tcp://ip:port", ...]`, a plain array
//!   of entrypoint strings without ids, which is the body `POST /v1a/p2p/peers` accepts (each
//!   item goes through `PeerEndpoint.parse`) and is clearly not the PEERS shape.
//!
//! DHT values are unauthenticated: an unverified candidate is never reported as verified.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use parking_lot::Mutex;
use serde_json::json;

use super::entrypoint::{PeerAddress, PeerEndpoint};
use super::handshake::{HandshakeConfig, HandshakeFailure, VerifiedPeer, handshake};
use super::network::NetworkProfile;
use super::store::{PeerBook, Source};
use crate::InfoHash;
use crate::address_policy;
use crate::driver::{self, Dht};

/// Default time allowed for the DHT lookup.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default number of handshakes at the same time.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Default maximum number of candidates tried per run.
pub const DEFAULT_MAX_CANDIDATES: usize = 256;
/// Largest handshake pool.
pub const MAX_CONCURRENCY: usize = 64;

/// Seconds since the Unix epoch from the system clock (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a [`Discovery`] runs.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    /// Time allowed for the DHT lookup.
    pub lookup_timeout: Duration,
    /// Accept candidates on private, loopback and reserved addresses.
    pub allow_private: bool,
    /// At most this many candidates per run; the rest are counted in [`Report::over_limit`].
    pub max_candidates: usize,
    /// Handshakes at the same time (1 to [`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// Verify candidates with this handshake; `None`: report them unverified.
    pub handshake: Option<HandshakeConfig>,
    /// The clock of the peer store, unix seconds.
    pub clock: fn() -> u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            allow_private: false,
            max_candidates: DEFAULT_MAX_CANDIDATES,
            concurrency: DEFAULT_CONCURRENCY,
            handshake: None,
            clock: unix_now,
        }
    }
}

/// Why a discovery run found nothing to report.
#[derive(Debug)]
pub enum DiscoveryError {
    /// The DHT lookup failed.
    Dht(driver::Error),
    /// No DHT node answered the lookup.
    NoAnswer,
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dht(e) => e.fmt(f),
            Self::NoAnswer => f.write_str("no node answered"),
        }
    }
}

impl std::error::Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Dht(e) => Some(e),
            Self::NoAnswer => None,
        }
    }
}

/// What one discovery run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// DHT nodes that answered the lookup.
    pub responses: usize,
    /// The accepted candidates, sorted.
    pub candidates: Vec<SocketAddr>,
    /// Candidates refused: port 0, or a private/reserved address without `allow_private`.
    pub skipped: Vec<SocketAddr>,
    /// Candidates left out over [`DiscoveryConfig::max_candidates`].
    pub over_limit: usize,
    /// Whether a handshake was configured (candidates were verified).
    pub verification: bool,
    /// Candidates not dialled because the store backs off after earlier failures.
    pub backing_off: Vec<SocketAddr>,
    /// Candidates that passed the handshake, by address.
    pub verified: Vec<VerifiedPeer>,
    /// Candidates that failed it, by address.
    pub failed: Vec<(SocketAddr, HandshakeFailure)>,
}

impl Report {
    /// `tcp://ip:port` of every accepted candidate (unverified).
    pub fn candidate_entrypoints(&self) -> Vec<String> {
        self.candidates
            .iter()
            .map(|a| PeerAddress::from_socket_addr(*a).to_string())
            .collect()
    }

    /// `tcp://ip:port/?id=<id>` of every verified peer (for `--bootstrap`, `POST
    /// /v1a/p2p/peers`, DNS TXT records).
    pub fn verified_endpoints(&self) -> Vec<PeerEndpoint> {
        self.verified.iter().map(VerifiedPeer::endpoint).collect()
    }

    /// The peers as JSON: with verification, the PEERS shape
    /// `[{"id": ..., "entrypoints": ["tcp://ip:port"]}]` of the verified peers; without, the
    /// `POST /v1a/p2p/peers` body `["tcp://ip:port", ...]` of the candidates (see the module
    /// documentation).
    pub fn to_json(&self) -> serde_json::Value {
        if self.verification {
            self.verified
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id.to_hex(),
                        "entrypoints": [PeerAddress::from_socket_addr(p.dialled).to_string()],
                    })
                })
                .collect()
        } else {
            self.candidate_entrypoints().into()
        }
    }
}

/// Finds and verifies the Hathor nodes announced on a network's rendezvous info-hash.
#[derive(Debug)]
pub struct Discovery {
    info_hash: InfoHash,
    config: DiscoveryConfig,
    store: PeerBook,
}

impl Discovery {
    /// A discovery of `network`'s peers announced on `info_hash`, with an empty store.
    pub fn new(network: &NetworkProfile, info_hash: InfoHash, config: DiscoveryConfig) -> Self {
        Self::with_store(info_hash, config, PeerBook::new(network))
    }

    /// A discovery that updates `store` (e.g. loaded from a file; its backoff applies).
    pub fn with_store(info_hash: InfoHash, config: DiscoveryConfig, store: PeerBook) -> Self {
        Self {
            info_hash,
            config,
            store,
        }
    }

    /// The rendezvous info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The configuration.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.config
    }

    /// The peer store.
    pub fn store(&self) -> &PeerBook {
        &self.store
    }

    /// Gives the peer store back (to save it).
    pub fn into_store(self) -> PeerBook {
        self.store
    }

    /// Looks the info-hash up on `dht`, then handles the peers found as
    /// [`Discovery::process`] does. Blocks for the lookup and the handshakes.
    pub fn run(&mut self, dht: &Dht) -> Result<Report, DiscoveryError> {
        let outcome = dht
            .with_timeout(self.config.lookup_timeout)
            .get_peers(self.info_hash, false)
            .and_then(|lookup| lookup.outcome())
            .map_err(DiscoveryError::Dht)?;
        if outcome.responses == 0 {
            return Err(DiscoveryError::NoAnswer);
        }
        Ok(self.process(&outcome.peers, outcome.responses as usize))
    }

    /// Filters `peers` (found by `responses` DHT answers) into candidates, records them in the
    /// store, and, with a handshake configured, verifies those the store's backoff allows, at
    /// most [`DiscoveryConfig::concurrency`] at a time, recording every result.
    pub fn process(&mut self, peers: &[SocketAddr], responses: usize) -> Report {
        let mut report = Report {
            responses,
            verification: self.config.handshake.is_some(),
            ..Report::default()
        };
        let mut candidates = BTreeSet::new();
        for addr in peers {
            if !address_policy::accepts(addr, self.config.allow_private) {
                report.skipped.push(*addr);
            } else if candidates.len() >= self.config.max_candidates {
                report.over_limit += 1;
            } else {
                candidates.insert(*addr);
            }
        }
        let now = (self.config.clock)();
        self.store.expire(now);
        for addr in &candidates {
            self.store.add_candidate(*addr, Source::Dht, now);
        }
        report.candidates = candidates.iter().copied().collect();
        let Some(handshake_config) = &self.config.handshake else {
            return report;
        };
        let due: BTreeSet<SocketAddr> = self.store.due(now).into_iter().map(|(a, _)| a).collect();
        let mut to_verify = Vec::new();
        for addr in &candidates {
            if due.contains(addr) {
                to_verify.push(*addr);
                self.store.record_attempt(*addr, now);
            } else {
                report.backing_off.push(*addr);
            }
        }
        let results = verify_all(to_verify, handshake_config, self.config.concurrency);
        let done = (self.config.clock)();
        for (addr, result) in results {
            match result {
                Ok(peer) => {
                    self.store.record_success(&peer, Source::Dht, done);
                    report.verified.push(peer);
                }
                Err(failure) => {
                    self.store
                        .record_failure(addr, failure.remote_id, &failure.to_string(), done);
                    report.failed.push((addr, failure));
                }
            }
        }
        report
    }
}

/// Verifies `candidates` with at most `workers` handshakes at a time; results by address.
fn verify_all(
    candidates: Vec<SocketAddr>,
    config: &HandshakeConfig,
    workers: usize,
) -> Vec<(SocketAddr, Result<VerifiedPeer, HandshakeFailure>)> {
    let workers = workers.clamp(1, MAX_CONCURRENCY.min(candidates.len().max(1)));
    let queue = Mutex::new(candidates.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().next();
                    let Some(addr) = next else { break };
                    log::info!("verifying {addr}");
                    let result = handshake(addr, None, config);
                    results.lock().push((addr, result));
                }
            });
        }
    });
    let mut results = results.into_inner();
    results.sort_by_key(|(addr, _)| *addr);
    results
}

/// How an [`Announcer`] repeats its announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// Time between acknowledged announces (DHT nodes forget peers after 30 minutes).
    pub interval: Duration,
    /// Time before trying again after a round nobody acknowledged (at most `interval`).
    pub retry: Duration,
    /// Time allowed for each announce (lookup and `announce_peer` queries).
    pub timeout: Duration,
}

impl Default for AnnounceConfig {
    /// Every 15 minutes, 30 s after a failed round, 20 s per announce.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(900),
            retry: Duration::from_secs(30),
            timeout: DEFAULT_LOOKUP_TIMEOUT,
        }
    }
}

/// What one announce round did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// At least one node acknowledged.
    Acknowledged {
        /// `announce_peer` queries sent.
        sent: usize,
        /// Those acknowledged.
        acknowledged: usize,
    },
    /// No node acknowledged.
    Unacknowledged {
        /// Nodes that answered the lookup.
        responses: usize,
        /// `announce_peer` queries sent.
        sent: usize,
    },
    /// The DHT failed (the error text).
    Failed(String),
}

impl AnnounceOutcome {
    /// Whether a node acknowledged.
    pub fn is_acknowledged(&self) -> bool {
        matches!(self, Self::Acknowledged { .. })
    }
}

/// Announces `port` on `info_hash` once (BEP 5 `announce_peer` to the closest nodes, explicit
/// port) and waits up to `timeout`.
pub fn announce_round(
    dht: &Dht,
    info_hash: InfoHash,
    port: u16,
    timeout: Duration,
) -> AnnounceOutcome {
    match dht
        .with_timeout(timeout)
        .announce(info_hash, Some(port), false)
    {
        Ok(r) if r.acknowledged > 0 => AnnounceOutcome::Acknowledged {
            sent: r.sent,
            acknowledged: r.acknowledged,
        },
        Ok(r) => AnnounceOutcome::Unacknowledged {
            responses: r.outcome.responses as usize,
            sent: r.sent,
        },
        Err(e) => AnnounceOutcome::Failed(e.to_string()),
    }
}

/// A round reported to an [`Announcer`]'s callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRound {
    /// What the round did.
    pub outcome: AnnounceOutcome,
    /// Time until the next round.
    pub next_in: Duration,
}

/// Keeps a port announced on an info-hash from a thread of its own: a round at once, then
/// every [`AnnounceConfig::interval`] (or [`AnnounceConfig::retry`] after a round nobody
/// acknowledged). Between rounds the thread waits on a channel, so [`Announcer::stop`] or a
/// drop ends it at once; a round in progress finishes first (within
/// [`AnnounceConfig::timeout`]).
#[derive(Debug)]
pub struct Announcer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<usize>>,
}

impl Announcer {
    /// Starts announcing `port` on `info_hash` through `dht`; `on_round` sees every round
    /// (on the announcer's thread).
    pub fn start(
        dht: Dht,
        info_hash: InfoHash,
        port: u16,
        config: AnnounceConfig,
        mut on_round: impl FnMut(&AnnounceRound) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let retry = config.retry.min(config.interval);
        let thread = std::thread::Builder::new()
            .name("hathor-announce".into())
            .spawn(move || {
                let mut acknowledged = 0;
                loop {
                    if !matches!(
                        stopped.try_recv(),
                        Err(crossbeam_channel::TryRecvError::Empty)
                    ) {
                        break;
                    }
                    let outcome = announce_round(&dht, info_hash, port, config.timeout);
                    let next_in = if outcome.is_acknowledged() {
                        acknowledged += 1;
                        config.interval
                    } else {
                        retry
                    };
                    on_round(&AnnounceRound { outcome, next_in });
                    match stopped.recv_timeout(next_in) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                acknowledged
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops announcing and waits for the thread; returns how many rounds were acknowledged.
    pub fn stop(mut self) -> usize {
        self.shutdown()
    }

    fn shutdown(&mut self) -> usize {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        self.thread
            .take()
            .map_or(0, |t| t.join().unwrap_or_default())
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::hathor::fake::{FakeEvent, FakeNode, FakeNodeConfig, TestPki};
    use crate::hathor::handshake::Stage;
    use crate::hathor::store::PeerKey;

    const T: Duration = Duration::from_secs(10);
    /// The store's clock in these tests: fixed, so a failure's backoff holds for the second run.
    const NOW: u64 = 1_000_000;

    fn loopback_dht(ip: [u8; 4], bootstrap: Option<SocketAddr>) -> Dht {
        Dht::builder()
            .bind(SocketAddr::from((ip, 0)))
            .allow_private(true)
            .seed(u64::from(ip[2]) << 8 | u64::from(ip[3]))
            .bootstrap(bootstrap)
            .start()
            .unwrap()
    }

    fn verifying_config(pki: &TestPki) -> DiscoveryConfig {
        let creds = pki.client_credentials().unwrap();
        let mut handshake =
            HandshakeConfig::new(NetworkProfile::testnet_india(), pki.client.clone(), &creds)
                .unwrap();
        handshake.step_timeout = Duration::from_secs(3);
        DiscoveryConfig {
            lookup_timeout: T,
            allow_private: true,
            handshake: Some(handshake),
            clock: || NOW,
            ..DiscoveryConfig::default()
        }
    }

    /// Announces `port` from `dht` with an [`Announcer`] until a node acknowledges.
    fn announced(dht: &Dht, hash: InfoHash, port: u16) -> Announcer {
        let (tx, rx) = crossbeam_channel::unbounded();
        let config = AnnounceConfig {
            interval: Duration::from_secs(900),
            retry: Duration::from_millis(200),
            timeout: T,
        };
        let announcer = Announcer::start(dht.clone(), hash, port, config, move |round| {
            let _ = tx.send(round.clone());
        })
        .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let round = rx.recv_deadline(end).expect("no acknowledged announce");
            if round.outcome.is_acknowledged() {
                assert_eq!(round.next_in, config.interval);
                return announcer;
            }
            assert_eq!(round.next_in, config.retry);
        }
    }

    /// Two fake Hathor nodes announced on the rendezvous info-hash by loopback DHT nodes: the
    /// genuine one on 127.0.0.1, one with a certificate from an unknown CA on 127.0.0.2.
    #[test]
    fn discovery_verifies_only_the_genuine_node_and_backs_off_the_other() {
        let pki = TestPki::shared();
        let network = NetworkProfile::testnet_india();
        let hash = network.rendezvous_info_hash(None);
        let good = FakeNode::start(FakeNodeConfig::new(pki)).unwrap();
        let mut bad_config = FakeNodeConfig::new(pki);
        bad_config.cert_ca = Some(pki.other_ca.clone());
        let bad = FakeNode::start_on(bad_config, [127, 0, 0, 2].into()).unwrap();

        let seed = loopback_dht([127, 0, 40, 1], None);
        let good_side = loopback_dht([127, 0, 0, 1], Some(seed.local_addr()));
        let bad_side = loopback_dht([127, 0, 0, 2], Some(seed.local_addr()));
        let _good_announcer = announced(&good_side, hash, good.addr().port());
        let _bad_announcer = announced(&bad_side, hash, bad.addr().port());

        let client = loopback_dht([127, 0, 40, 2], Some(seed.local_addr()));
        let mut discovery = Discovery::new(&network, hash, verifying_config(pki));
        let report = discovery.run(&client).unwrap();
        assert!(report.responses > 0);
        assert!(report.verification);
        assert_eq!(report.candidates, [good.addr(), bad.addr()]);
        assert_eq!(report.verified.len(), 1, "{report:?}");
        assert_eq!(report.verified[0].id, good.id());
        assert_eq!(report.verified_endpoints(), [good.endpoint()]);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, bad.addr());
        assert_eq!(report.failed[0].1.stage, Stage::Tls);
        assert_eq!(
            report.to_json(),
            json!([{"id": good.id().to_hex(), "entrypoints": [format!("tcp://{}", good.addr())]}])
        );
        let record = discovery.store().get(&PeerKey::Id(good.id())).unwrap();
        assert_eq!(record.last_success, Some(NOW));
        let failed = discovery.store().get(&PeerKey::Addr(bad.addr())).unwrap();
        assert_eq!(
            (failed.consecutive_failures, failed.next_retry),
            (1, NOW + 5)
        );

        // Again at the same time: the impostor is backing off and not dialled. (Connections
        // accepted are counted: the fake logs the end of the first one's TLS failure on a
        // thread of its own, maybe later, but each accept before its handshake begins.)
        let accepted = |node: &FakeNode| {
            node.events()
                .iter()
                .filter(|e| matches!(e, FakeEvent::Accepted(_)))
                .count()
        };
        let bad_accepts = accepted(&bad);
        assert_eq!(bad_accepts, 1);
        let report = discovery.run(&client).unwrap();
        assert_eq!(report.backing_off, [bad.addr()]);
        assert_eq!(report.verified.len(), 1);
        assert!(report.failed.is_empty());
        assert_eq!(accepted(&bad), bad_accepts);

        // Without a handshake: both candidates, unverified, as the POST /v1a/p2p/peers body.
        let config = DiscoveryConfig {
            handshake: None,
            ..verifying_config(pki)
        };
        let report = Discovery::new(&network, hash, config).run(&client).unwrap();
        assert!(!report.verification && report.verified.is_empty());
        assert_eq!(
            report.to_json(),
            json!([
                format!("tcp://{}", good.addr()),
                format!("tcp://{}", bad.addr())
            ])
        );
        for node in [seed, good_side, bad_side, client] {
            node.stop().unwrap();
        }
    }

    #[test]
    fn candidates_are_filtered_and_bounded() {
        let network = NetworkProfile::testnet_india();
        let hash = network.rendezvous_info_hash(None);
        let config = DiscoveryConfig {
            max_candidates: 2,
            clock: || NOW,
            ..DiscoveryConfig::default()
        };
        let mut discovery = Discovery::new(&network, hash, config);
        let peers: Vec<SocketAddr> = [
            "127.0.0.1:40403",
            "10.0.0.1:40403",
            "203.0.113.9:40403",
            "8.8.8.8:0",
            "1.1.1.1:40403",
            "9.9.9.9:40403",
            "1.0.0.1:40403",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let report = discovery.process(&peers, 3);
        assert_eq!(report.responses, 3);
        assert_eq!(
            report.skipped,
            [peers[0], peers[1], peers[2], peers[3]],
            "loopback, private, documentation, port 0"
        );
        assert_eq!(report.candidates, [peers[4], peers[5]]);
        assert_eq!(report.over_limit, 1);
        assert!(report.failed.is_empty() && report.backing_off.is_empty());
        assert_eq!(discovery.store().len(), 2);
        assert_eq!(
            report.to_json(),
            json!(["tcp://1.1.1.1:40403", "tcp://9.9.9.9:40403"])
        );
    }

    #[test]
    fn dropping_an_announcer_ends_it_at_once() {
        // A node alone: every round ends unacknowledged, then waits `retry` (an hour).
        let dht = loopback_dht([127, 0, 40, 3], None);
        let (tx, rx) = crossbeam_channel::unbounded();
        let config = AnnounceConfig {
            interval: Duration::from_secs(7200),
            retry: Duration::from_secs(3600),
            timeout: Duration::from_secs(2),
        };
        let announcer =
            Announcer::start(dht.clone(), InfoHash::from_bytes([7; 20]), 40403, config, {
                move |round| {
                    let _ = tx.send(round.clone());
                }
            })
            .unwrap();
        let round = rx.recv_timeout(T).unwrap();
        assert!(!round.outcome.is_acknowledged(), "{round:?}");
        assert_eq!(round.next_in, config.retry);
        let started = Instant::now();
        drop(announcer);
        assert!(started.elapsed() < Duration::from_secs(1));
        // The callback went with the thread: no further round.
        assert!(rx.recv().is_err());

        // stop() reports the acknowledged rounds (none here).
        let announcer = Announcer::start(
            dht.clone(),
            InfoHash::from_bytes([7; 20]),
            40403,
            config,
            |_| {},
        )
        .unwrap();
        assert_eq!(announcer.stop(), 0);
        dht.stop().unwrap();
    }
}
