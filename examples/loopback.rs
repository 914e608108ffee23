//! Three DHT nodes on loopback: one announces a torrent, another finds the peer.
//!
//! ```sh
//! cargo run --example loopback
//! ```
//! Every packet stays on 127.0.0.0/8.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::{Dht, Error, Event, InfoHash};

fn node(n: u8, bootstrap: Option<SocketAddr>) -> Result<Dht, Error> {
    Dht::builder()
        .bind(SocketAddr::from(([127, 0, n, 1], 0)))
        .allow_private(true) // loopback addresses are ignored by default
        .bootstrap(bootstrap)
        .request_timeout(Duration::from_secs(10))
        .start()
}

fn main() -> Result<(), Error> {
    let first = node(1, None)?;
    let second = node(2, Some(first.local_addr()))?;
    let third = node(3, Some(first.local_addr()))?;
    let events = first.subscribe();

    println!(
        "{} pinged: id {}",
        first.local_addr(),
        third.ping(first.local_addr())?
    );

    let info_hash = InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
    // As a seed (BEP 33): the torrent is complete here.
    let announced = second.announce(info_hash, Some(6881), true)?;
    println!("announced to {} nodes", announced.acknowledged);

    // Peers are printed as the nodes give them; the outcome follows.
    let mut lookup = third.get_peers(info_hash, false)?;
    for peer in &mut lookup {
        println!("peer of {info_hash}: {peer}");
    }
    let found = lookup.outcome()?;
    println!(
        "{} peers from {} answers{}",
        found.peers.len(),
        found.responses,
        if found.partial { " (timed out)" } else { "" }
    );

    for event in events.try_iter() {
        if let Event::PeerAnnounced { peer, .. } = event {
            println!("the first node stored an announce from {peer}");
        }
    }
    for dht in [first, second, third] {
        dht.stop()?;
    }
    Ok(())
}
