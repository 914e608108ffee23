//! The properties the fuzz targets check, shared by `fuzz/fuzz_targets/*.rs` and
//! `tests/fuzz_regressions.rs` so that a replayed input goes through exactly the same checks.
//!
//! Each check panics (with the input's story) when a property fails; an input that the decoders
//! reject is not a failure.

#![allow(dead_code)]

use btdht::krpc::compact::{
    NODE_V4_LEN, NODE_V6_LEN, PEER_V4_LEN, PEER_V6_LEN, decode_addr, decode_hashes,
    decode_nodes_v4, decode_nodes_v6, encode_addr, encode_node,
};
use btdht::krpc::{MAX_MESSAGE_SIZE, RejectReason, decode};

/// `krpc_decode`: whatever decodes re-encodes to canonical bytes that decode to the same
/// message, and encoding is a fixed point: `encode(decode(encode(m))) == encode(m)`.
///
/// One exception: a re-encoding may be a few bytes longer than its input (an unknown method
/// with a `target` is read as `find_node`), so a message decoded from a datagram close to
/// [`MAX_MESSAGE_SIZE`] can encode to more than one datagram. The decoder must then refuse
/// that encoding as too large: it cannot be sent anyway.
pub(crate) fn check_krpc_decode(data: &[u8]) {
    // The hints a server reads before decoding take any bytes without panicking.
    let _ = (btdht::krpc::peek_target(data), btdht::krpc::peek_id(data));
    let Ok(first) = decode(data) else {
        return;
    };
    let encoded = first.message.encode();
    if encoded.len() > MAX_MESSAGE_SIZE {
        let refused = decode(&encoded).map(|_| ()).map_err(|e| e.reason);
        assert_eq!(
            refused,
            Err(RejectReason::TooLarge),
            "an encoding of {} bytes must be refused as too large",
            encoded.len()
        );
        return;
    }
    let second = match decode(&encoded) {
        Ok(second) => second,
        Err(e) => panic!(
            "re-encoding does not decode ({e})\n input: {}\n encoded: {}",
            show(data),
            show(&encoded)
        ),
    };
    assert!(
        second.canonical,
        "re-encoding is not canonical\n input: {}\n encoded: {}",
        show(data),
        show(&encoded)
    );
    assert_eq!(
        first.message,
        second.message,
        "decode(encode(m)) != m\n input: {}\n encoded: {}",
        show(data),
        show(&encoded)
    );
    let again = second.message.encode();
    assert_eq!(
        again,
        encoded,
        "encoding is not a fixed point\n input: {}",
        show(data)
    );
    // encode_into appends to what is already there.
    let mut buf = b"prefix".to_vec();
    second.message.encode_into(&mut buf);
    assert_eq!(&buf[6..], &encoded[..], "encode_into differs from encode");
}

/// `compact`: every compact parser, both families, re-encodes the whole entries it read back
/// to the input's prefix of whole entries.
pub(crate) fn check_compact(data: &[u8]) {
    let nodes = decode_nodes_v4(data);
    assert_eq!(
        nodes.len(),
        data.len() / NODE_V4_LEN,
        "nodes: one per entry"
    );
    let mut out = Vec::new();
    for node in &nodes {
        assert!(
            node.addr.is_ipv4(),
            "nodes: an IPv4 entry gave {}",
            node.addr
        );
        encode_node(&mut out, node);
    }
    assert_eq!(
        out,
        &data[..nodes.len() * NODE_V4_LEN],
        "nodes: re-encoding"
    );

    let nodes6 = decode_nodes_v6(data);
    assert_eq!(
        nodes6.len(),
        data.len() / NODE_V6_LEN,
        "nodes6: one per entry"
    );
    out.clear();
    for node in &nodes6 {
        assert!(
            node.addr.is_ipv6(),
            "nodes6: an IPv6 entry gave {}",
            node.addr
        );
        encode_node(&mut out, node);
    }
    assert_eq!(
        out,
        &data[..nodes6.len() * NODE_V6_LEN],
        "nodes6: re-encoding"
    );

    let hashes = decode_hashes(data);
    assert_eq!(hashes.len(), data.len() / 20, "samples: one per hash");
    out.clear();
    for hash in &hashes {
        out.extend_from_slice(hash.as_bytes());
    }
    assert_eq!(out, &data[..hashes.len() * 20], "samples: re-encoding");

    // Peers (`values` items and `ip`): exactly 6 or 18 bytes, anything else refused.
    for (entry_len, v4) in [(PEER_V4_LEN, true), (PEER_V6_LEN, false)] {
        out.clear();
        for entry in data.chunks_exact(entry_len) {
            let addr = decode_addr(entry).expect("a whole peer entry decodes");
            assert_eq!(
                addr.is_ipv4(),
                v4,
                "peer family of a {entry_len}-byte entry"
            );
            encode_addr(&mut out, &addr);
        }
        let whole = data.len() / entry_len * entry_len;
        assert_eq!(
            out,
            &data[..whole],
            "peers ({entry_len} bytes): re-encoding"
        );
    }
    let whole = decode_addr(data);
    assert_eq!(
        whole.is_some(),
        data.len() == PEER_V4_LEN || data.len() == PEER_V6_LEN,
        "decode_addr accepts exactly 6 or 18 bytes, got {}",
        data.len()
    );
}

/// The first 300 bytes, escaped, and the length.
fn show(bytes: &[u8]) -> String {
    let head: String = bytes[..bytes.len().min(300)]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    format!("{} bytes: {head}", bytes.len())
}
