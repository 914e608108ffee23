//! BEP 44 through the `Dht` handle on loopback: blocking and async puts and gets, and items
//! refused before anything is sent.

mod support;

use std::time::Duration;

use btdht::items::{ItemError, MutableItem, StoredItem};
use btdht::krpc::RawValue;
use btdht::{Dht, Error};
use support::{loopback, wait_until};

const T: Duration = Duration::from_secs(10);

fn network(first: u8) -> Vec<Dht> {
    let seed = loopback(first).request_timeout(T).start().unwrap();
    let mut nodes = vec![seed.clone()];
    for n in first + 1..first + 4 {
        let node = loopback(n)
            .request_timeout(T)
            .bootstrap([seed.local_addr()])
            .start()
            .unwrap();
        nodes.push(node);
    }
    assert!(wait_until(T, || nodes
        .iter()
        .all(|d| d.routing_table().is_ok_and(|t| t.len() >= 3))));
    nodes
}

#[test]
fn items_round_trip_through_the_handle() {
    let nodes = network(220);
    let value = RawValue::new(b"d1:ai1ee".to_vec()).unwrap();
    let put = nodes[0].put_immutable(value.clone()).unwrap();
    assert!(put.stored >= 2, "{put:?}");
    let got = nodes[3].get_immutable(put.target).unwrap();
    assert_eq!(got.item, Some(StoredItem::Immutable(value)));

    let seed = [0x51; 32];
    let item = MutableItem::sign(&seed, b"", 1, RawValue::from_bytes(b"async")).unwrap();
    // The async variants (feature `async`).
    #[cfg(feature = "async")]
    {
        let put = pollster::block_on(nodes[1].put_mutable_async(item.clone(), None)).unwrap();
        assert!(put.stored >= 2, "{put:?}");
        let got =
            pollster::block_on(nodes[2].get_mutable_async(item.public_key, b"", Some(1))).unwrap();
        assert_eq!(got.item, Some(StoredItem::Mutable(item.clone())));
        let got = pollster::block_on(nodes[2].get_immutable_async(put.target)).unwrap();
        assert_eq!(got.item, None, "a mutable target holds no immutable item");
    }

    // Refused before sending.
    let mut forged = item;
    forged.seq = 2;
    assert!(matches!(
        nodes[0].put_mutable(forged, None),
        Err(Error::Item(ItemError::BadSignature))
    ));
    assert!(matches!(
        nodes[0].put_immutable(RawValue::from_bytes(&[0; 1000])),
        Err(Error::Item(ItemError::ValueTooBig))
    ));
    for node in nodes {
        node.stop().unwrap();
    }
}
