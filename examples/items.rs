//! BEP 44 items on loopback: four DHT nodes; one stores an immutable and a mutable item,
//! another gets them back.
//!
//! ```sh
//! cargo run --example items
//! ```
//! Every packet stays on 127.0.0.0/8.

use std::net::SocketAddr;
use std::time::Duration;

use btdht::items::{MutableItem, StoredItem};
use btdht::krpc::RawValue;
use btdht::{Dht, Error};

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
    let nodes = [
        node(2, Some(first.local_addr()))?,
        node(3, Some(first.local_addr()))?,
        node(4, Some(first.local_addr()))?,
    ];
    // Let the nodes learn of each other.
    for dht in &nodes {
        dht.find_node(dht.id())?;
    }
    let (writer, reader) = (&nodes[0], &nodes[2]);

    // Immutable: the target is the SHA-1 of the bencoded value.
    let put = writer.put_immutable(RawValue::from_bytes(b"Hello World!"))?;
    println!(
        "immutable item {} stored on {} nodes",
        put.target, put.stored
    );
    let got = reader.get_immutable(put.target)?;
    if let Some(StoredItem::Immutable(value)) = got.item {
        println!(
            "got it back (bencoded): {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }

    // Mutable: signed with an ed25519 key (here a fixed one), under a salt, at a sequence number.
    let seed = [7u8; 32];
    let item = MutableItem::sign(&seed, b"greeting", 1, RawValue::from_bytes(b"hi"))
        .map_err(Error::Item)?;
    let put = writer.put_mutable(item, None)?;
    println!("mutable item {} stored on {} nodes", put.target, put.stored);
    // A newer version, only where the stored one is still seq 1 (compare-and-swap).
    let newer = MutableItem::sign(&seed, b"greeting", 2, RawValue::from_bytes(b"hello"))
        .map_err(Error::Item)?;
    let put = writer.put_mutable(newer, Some(1))?;
    println!(
        "seq 2 stored on {} nodes, refused: {:?}",
        put.stored, put.errors
    );
    let public_key = MutableItem::public_key_of(&seed);
    let got = reader.get_mutable(public_key, b"greeting", None)?;
    if let Some(StoredItem::Mutable(item)) = got.item {
        println!(
            "got seq {}, bencoded value {} ({} replies refused)",
            item.seq,
            String::from_utf8_lossy(item.value.as_bytes()),
            got.rejected
        );
    }

    first.stop()?;
    for dht in nodes {
        dht.stop()?;
    }
    Ok(())
}
