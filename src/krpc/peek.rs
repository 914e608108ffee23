//! Hints read from a datagram before it is decoded: the asker's id and the 20-byte id a
//! query asks about.
//!
//! [`peek_target`] finds the bytes of a `target` or `info_hash` argument, and [`peek_id`]
//! those of the asker's `id` in the usual layout, without decoding the datagram, so that a server can start loading what the answer will read while it handles
//! the datagrams before it (see [`crate::Endpoint::prefetch`]). What it returns is only a
//! guess: the datagram may be malformed, or the key may sit inside a string. Nothing may
//! depend on it but where memory is read first.

/// The key of a `find_node` target, with the length of its value.
const TARGET_KEY: &[u8] = b"6:target20:";
/// The key of a `get_peers` (and `announce_peer`) info-hash, with the length of its value.
const INFO_HASH_KEY: &[u8] = b"9:info_hash20:";
/// The asker's id key where the usual layout has it, after `d1:ad`.
const ID_KEY: &[u8] = b"2:id20:";
/// Where [`ID_KEY`] begins in the usual layout.
const USUAL_ID_AT: usize = 5;
/// Where the value of the first argument after the asker's id begins in the usual layout
/// (`d1:ad2:id20:` + 20 bytes of id, then the key).
const USUAL_KEY_AT: usize = 32;
/// Bytes searched for a key outside the usual layout.
const SEARCH_LIMIT: usize = 256;

/// The 20 bytes that follow a `6:target20:` or `9:info_hash20:` key in `bytes`, if any: a
/// guess at a query's target, found in the usual layout at once and otherwise by a search of
/// the datagram's first 256 bytes.
pub fn peek_target(bytes: &[u8]) -> Option<&[u8; 20]> {
    for key in [TARGET_KEY, INFO_HASH_KEY] {
        if bytes.get(USUAL_KEY_AT..USUAL_KEY_AT + key.len()) == Some(key) {
            return value_at(bytes, USUAL_KEY_AT + key.len());
        }
    }
    let head = &bytes[..bytes.len().min(SEARCH_LIMIT)];
    [TARGET_KEY, INFO_HASH_KEY].iter().find_map(|key| {
        head.windows(key.len())
            .position(|window| window == *key)
            .and_then(|at| value_at(bytes, at + key.len()))
    })
}

/// The 20 bytes of the asker's `id` when the datagram begins as most queries do
/// (`d1:ad2:id20:`); a guess, like [`peek_target`]'s.
pub fn peek_id(bytes: &[u8]) -> Option<&[u8; 20]> {
    if bytes.get(USUAL_ID_AT..USUAL_ID_AT + ID_KEY.len()) == Some(ID_KEY) {
        value_at(bytes, USUAL_ID_AT + ID_KEY.len())
    } else {
        None
    }
}

fn value_at(bytes: &[u8], at: usize) -> Option<&[u8; 20]> {
    bytes.get(at..at + 20)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use crate::krpc::{Message, QueryKind};

    fn query(kind: QueryKind) -> Vec<u8> {
        Message::query(b"aa".to_vec(), NodeId([1; 20]), kind).encode()
    }

    #[test]
    fn finds_the_target_of_find_node_and_get_peers() {
        let find = query(QueryKind::FindNode {
            target: NodeId([7; 20]),
            want: Default::default(),
        });
        assert_eq!(peek_target(&find), Some(&[7; 20]));
        assert_eq!(peek_id(&find), Some(&[1; 20]));
        let get = query(QueryKind::GetPeers {
            info_hash: NodeId([9; 20]),
            want: Default::default(),
            noseed: false,
            scrape: false,
        });
        assert_eq!(peek_target(&get), Some(&[9; 20]));
    }

    #[test]
    fn finds_a_key_outside_the_usual_layout_and_nothing_in_a_ping() {
        let mut moved = b"d1:ad4:abcdi1e2:id20:".to_vec();
        moved.extend([1; 20]);
        moved.extend(b"6:target20:");
        moved.extend([5; 20]);
        moved.extend(b"e1:q9:find_node1:t2:aa1:y1:qe");
        assert_eq!(peek_target(&moved), Some(&[5; 20]));
        assert_eq!(peek_target(&query(QueryKind::Ping)), None);
        assert_eq!(peek_target(b"d1:ad2:id20:"), None);
        assert_eq!(peek_target(b"6:target20:short"), None);
        assert_eq!(peek_target(b""), None);
        assert_eq!(peek_id(b"d1:ad2:id20:short"), None);
        assert_eq!(peek_id(&moved), None);
    }

    mod properties {
        use super::super::*;
        use crate::id::NodeId;
        use crate::krpc::{Message, QueryKind, Want};
        use proptest::prelude::*;

        proptest! {
            /// Every find_node and get_peers query the encoder writes, whatever its ids,
            /// transaction id, `want`, flags, version and read-only mark, is peeked right.
            #[test]
            fn encoded_queries_are_peeked_right(
                id in any::<[u8; 20]>(),
                target in any::<[u8; 20]>(),
                transaction_id in proptest::collection::vec(any::<u8>(), 0..12),
                n4 in any::<bool>(),
                n6 in any::<bool>(),
                flags in any::<bool>(),
                version in proptest::option::of(any::<[u8; 4]>()),
                read_only in any::<bool>(),
                find in any::<bool>(),
            ) {
                let want = Want { n4, n6 };
                let kind = if find {
                    QueryKind::FindNode { target: NodeId(target), want }
                } else {
                    QueryKind::GetPeers { info_hash: NodeId(target), want, noseed: flags, scrape: flags }
                };
                let mut message = Message::query(transaction_id, NodeId(id), kind);
                message.version = version.map(|v| v.to_vec());
                message.read_only = read_only;
                let bytes = message.encode();
                prop_assert_eq!(peek_target(&bytes), Some(&target));
                prop_assert_eq!(peek_id(&bytes), Some(&id));
            }

            /// Any bytes at all: a guess or none, never a panic.
            #[test]
            fn any_bytes_are_peeked_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = (peek_target(&bytes), peek_id(&bytes));
            }
        }
    }
}
