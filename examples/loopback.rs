//! Three DHT nodes on loopback: one announces a torrent, another finds the peer.
//!
//! ```sh
//! cargo run --example loopback
//! ```
//! Every packet stays on 127.0.0.0/8.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::InfoHash;
use btdht::driver::{Dht, Error};
use btdht::node::Event;

fn node(n: u8, bootstrap: Option<SocketAddr>) -> Result<Dht, Error> {
    Dht::builder()
        .bind(SocketAddr::from(([127, 0, n, 1], 0)))
        .allow_private(true) // loopback addresses are ignored by default
        .bootstrap(bootstrap)
        .start()
}

fn main() -> Result<(), Error> {
    let timeout = Duration::from_secs(10);
    let first = node(1, None)?;
    let second = node(2, Some(first.local_addr()))?;
    let third = node(3, Some(first.local_addr()))?;
    let events = first.subscribe();

    println!(
        "{} pinged: id {}",
        first.local_addr(),
        third.ping(first.local_addr(), timeout)?
    );

    let info_hash = InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
    let announced = second.announce(info_hash, Some(6881), timeout)?;
    println!("announced to {} nodes", announced.acknowledged);

    let found = third.get_peers(info_hash, timeout)?;
    println!("peers of {info_hash}: {:?}", found.peers);

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
