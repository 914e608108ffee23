//! The `async` feature on loopback: the same requests as futures, under a tokio
//! current-thread runtime and under a plain `block_on` with no runtime at all (the I/O thread
//! wakes the task, and ends lookups at their timeout itself).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock
#![cfg(feature = "async")]

mod support;

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use btdht::{Dht, Error, InfoHash};
use support::{loopback, wait_until};

const T: Duration = Duration::from_secs(10);

/// Three nodes: `live`, an `announcer` that announced `127.0.x.1:7200` as a seed, and a
/// `client`; all know each other.
struct Net {
    live: Dht,
    announcer: Dht,
    client: Dht,
    info_hash: InfoHash,
    peer: SocketAddr,
}

fn net(base: u8) -> Net {
    let live = loopback(base).request_timeout(T).start().unwrap();
    let announcer = loopback(base + 1)
        .request_timeout(T)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    let client = loopback(base + 2)
        .request_timeout(T)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    let known = |d: &Dht| d.routing_table().is_ok_and(|t| t.len() >= 2);
    assert!(wait_until(T, || known(&announcer) && known(&client)));
    Net {
        live,
        announcer,
        client,
        info_hash: InfoHash::from_hex("a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5").unwrap(),
        peer: SocketAddr::new(std::net::Ipv4Addr::new(127, 0, base + 1, 1).into(), 7200),
    }
}

impl Net {
    fn stop(self) {
        for dht in [self.live, self.announcer, self.client] {
            dht.stop().unwrap();
        }
    }
}

/// Every async request once, checked against the network.
async fn exercise(net: &Net) {
    let id = net.client.ping_async(net.live.local_addr()).await.unwrap();
    assert_eq!(id, net.live.id());

    let announced = net
        .announcer
        .announce_async(net.info_hash, Some(7200), true)
        .await
        .unwrap();
    assert!(announced.acknowledged >= 1, "{announced:?}");

    let mut lookup = net.client.get_peers(net.info_hash, false).unwrap();
    assert_eq!(lookup.next_async().await, Some(net.peer));
    assert_eq!(lookup.next_async().await, None);
    let outcome = lookup.outcome_async().await.unwrap();
    assert!(!outcome.partial);
    assert_eq!(outcome.peers, vec![net.peer]);
    // The peer is a seed: noseed leaves it out.
    let outcome = net
        .client
        .get_peers(net.info_hash, true)
        .unwrap()
        .outcome_async()
        .await
        .unwrap();
    assert!(outcome.peers.is_empty(), "{outcome:?}");

    let found = net.client.find_node_async(net.live.id()).await.unwrap();
    assert_eq!(
        found.closest.first().map(|(n, _)| n.id),
        Some(net.live.id())
    );

    let table = net.client.routing_table_async().await.unwrap();
    assert!(table.len() >= 2);
    let stats = net.live.stats_async().await.unwrap();
    assert!(stats.peers >= 1, "{stats:?}");
}

/// A lookup that cannot converge (a silent node in the table) ends at its timeout with the
/// partial result, although the executor has no timer.
async fn partial(net: &Net, silent: SocketAddr) {
    let started = Instant::now();
    let outcome = net
        .client
        .with_timeout(Duration::from_millis(800))
        .find_node_async(net.info_hash)
        .await
        .unwrap();
    assert!(outcome.partial, "{outcome:?}");
    assert!(!outcome.closest.is_empty());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    // A ping to the silent node fails in the core, after its query timeout.
    let result = net.client.ping_async(silent).await;
    assert!(
        matches!(result, Err(Error::Query(btdht::node::QueryError::Timeout))),
        "{result:?}"
    );
}

fn run_both(base: u8, block_on: impl Fn(std::pin::Pin<Box<dyn Future<Output = ()> + '_>>)) {
    let net = net(base);
    block_on(Box::pin(exercise(&net)));
    // A node that joined and then went silent.
    let gone = loopback(base + 3)
        .bootstrap([net.live.local_addr()])
        .start()
        .unwrap();
    let gone_id = gone.id();
    assert!(wait_until(T, || net
        .client
        .routing_table()
        .is_ok_and(|t| t.nodes().any(|n| n.id == gone_id))));
    let gone_addr = gone.local_addr();
    gone.stop().unwrap();
    // Keep the port bound and silent: no ICMP, just no answer.
    let silent = UdpSocket::bind(gone_addr).unwrap();
    block_on(Box::pin(partial(&net, silent.local_addr().unwrap())));
    net.stop();
}

#[test]
fn requests_as_futures_under_tokio() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    run_both(180, |future| runtime.block_on(future));
}

#[test]
fn requests_as_futures_under_a_plain_block_on() {
    run_both(190, |future| pollster::block_on(future));
}
