//! A table of malformed and non-canonical inputs, each mapped to the right outcome.

use btdht::krpc::{Body, MAX_DEPTH, MAX_MESSAGE_SIZE, QueryKind, RejectReason, decode};

const ID: &str = "20:aaaaaaaaaaaaaaaaaaaa";
const HASH: &str = "20:bbbbbbbbbbbbbbbbbbbb";

/// What decoding one input must give.
enum Expect {
    /// Rejected, counted, not answered.
    Drop(RejectReason),
    /// Rejected and answered with this code.
    Answer(RejectReason, i64),
    /// Accepted as a query of this method.
    Query(&'static str),
    /// Accepted, but not canonical.
    NonCanonical,
}

fn q(method: &str, args: &str) -> String {
    format!("d1:ad{args}e1:q{}:{method}1:t2:xy1:y1:qe", method.len())
}

fn table() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    use RejectReason as R;
    let deep = format!(
        "d1:a{}{}e",
        "l".repeat(MAX_DEPTH + 1),
        "e".repeat(MAX_DEPTH + 1)
    );
    let huge = vec![b'd'; MAX_MESSAGE_SIZE + 1];
    let s = |text: String| text.into_bytes();
    vec![
        ("empty", vec![], Drop(R::Bencode)),
        ("truncated", b"d1:t2:aa1:y1:q".to_vec(), Drop(R::Bencode)),
        ("truncated string", b"d1:t9:aa".to_vec(), Drop(R::Bencode)),
        (
            "huge declared length",
            b"d1:t99999999999:aae".to_vec(),
            Drop(R::Bencode),
        ),
        (
            "length overflows usize",
            b"d1:t99999999999999999999999999:ae".to_vec(),
            Drop(R::Bencode),
        ),
        ("garbage", b"\xff\x00garbage".to_vec(), Drop(R::Bencode)),
        ("integer key", b"di1ei2ee".to_vec(), Drop(R::Bencode)),
        ("bad integer", b"d1:ti1x2ee".to_vec(), Drop(R::Bencode)),
        ("not a dict", b"li1ee".to_vec(), Drop(R::NotADict)),
        ("string at top", b"4:spam".to_vec(), Drop(R::NotADict)),
        (
            "trailing data",
            s(q("ping", &format!("2:id{ID}")) + "junk"),
            Drop(R::TrailingData),
        ),
        ("deep nesting", s(deep), Drop(R::TooDeep)),
        ("too large", huge, Drop(R::TooLarge)),
        (
            "missing t",
            s(format!("d1:ad2:id{ID}e1:q4:ping1:y1:qe")),
            Drop(R::MissingTransactionId),
        ),
        (
            "t not a string",
            s(format!("d1:ad2:id{ID}e1:q4:ping1:ti5e1:y1:qe")),
            Drop(R::MissingTransactionId),
        ),
        (
            "missing y",
            s(format!("d1:ad2:id{ID}e1:q4:ping1:t2:xye")),
            Drop(R::MissingType),
        ),
        (
            "unknown y",
            s(format!("d1:ad2:id{ID}e1:q4:ping1:t2:xy1:y1:ze")),
            Drop(R::UnknownType),
        ),
        (
            "missing q",
            s(format!("d1:ad2:id{ID}e1:t2:xy1:y1:qe")),
            Answer(R::MissingMethod, 203),
        ),
        (
            "missing a",
            b"d1:q4:ping1:t2:xy1:y1:qe".to_vec(),
            Answer(R::MissingArguments, 203),
        ),
        (
            "a not a dict",
            b"d1:ai1e1:q4:ping1:t2:xy1:y1:qe".to_vec(),
            Answer(R::MissingArguments, 203),
        ),
        ("missing id", s(q("ping", "")), Answer(R::BadId, 203)),
        (
            "short id",
            s(q("ping", "2:id19:aaaaaaaaaaaaaaaaaaa")),
            Answer(R::BadId, 203),
        ),
        (
            "id an integer",
            s(q("ping", "2:idi5e")),
            Answer(R::BadId, 203),
        ),
        (
            "find_node without target",
            s(q("find_node", &format!("2:id{ID}"))),
            Answer(R::BadTarget, 203),
        ),
        (
            "find_node short target",
            s(q("find_node", &format!("2:id{ID}6:target3:abc"))),
            Answer(R::BadTarget, 203),
        ),
        (
            "find_node want not a list",
            s(q("find_node", &format!("2:id{ID}6:target{HASH}4:wanti1e"))),
            Answer(R::BadField, 203),
        ),
        (
            "get_peers short info_hash",
            s(q("get_peers", &format!("2:id{ID}9:info_hash2:ab"))),
            Answer(R::BadInfoHash, 203),
        ),
        (
            "announce negative port",
            s(q(
                "announce_peer",
                &format!("2:id{ID}9:info_hash{HASH}4:porti-1e5:token2:tk"),
            )),
            Answer(R::BadPort, 203),
        ),
        (
            "announce port too large",
            s(q(
                "announce_peer",
                &format!("2:id{ID}9:info_hash{HASH}4:porti70000e5:token2:tk"),
            )),
            Answer(R::BadPort, 203),
        ),
        (
            "announce port zero",
            s(q(
                "announce_peer",
                &format!("2:id{ID}9:info_hash{HASH}4:porti0e5:token2:tk"),
            )),
            Answer(R::BadPort, 203),
        ),
        (
            "announce port a string",
            s(q(
                "announce_peer",
                &format!("2:id{ID}9:info_hash{HASH}4:port4:68815:token2:tk"),
            )),
            Answer(R::BadPort, 203),
        ),
        (
            "announce without token",
            s(q(
                "announce_peer",
                &format!("2:id{ID}9:info_hash{HASH}4:porti6881e"),
            )),
            Answer(R::BadToken, 203),
        ),
        (
            "announce implied port only",
            s(q(
                "announce_peer",
                &format!("2:id{ID}12:implied_porti1e9:info_hash{HASH}5:token2:tk"),
            )),
            Query("announce_peer"),
        ),
        (
            "put without v",
            s(q("put", &format!("2:id{ID}5:token2:tk"))),
            Answer(R::BadItem, 203),
        ),
        (
            "put short key",
            s(q("put", &format!("2:id{ID}1:k3:abc5:token2:tk1:v1:x"))),
            Answer(R::BadItem, 203),
        ),
        (
            "get seq a string",
            s(q("get", &format!("2:id{ID}3:seq1:x6:target{HASH}"))),
            Answer(R::BadItem, 203),
        ),
        (
            "unknown method",
            s(q("vote", &format!("2:id{ID}"))),
            Answer(R::UnknownMethod, 204),
        ),
        (
            "unknown method with target",
            s(q("vote", &format!("2:id{ID}6:target{HASH}"))),
            Query("find_node"),
        ),
        (
            "unknown method with info_hash",
            s(q("vote", &format!("2:id{ID}9:info_hash{HASH}"))),
            Query("get_peers"),
        ),
        (
            "reply without r",
            b"d1:t2:xy1:y1:re".to_vec(),
            Drop(R::MissingReply),
        ),
        (
            "reply short id",
            b"d1:rd2:id3:abce1:t2:xy1:y1:re".to_vec(),
            Drop(R::BadId),
        ),
        (
            "reply nodes an integer",
            s(format!("d1:rd2:id{ID}5:nodesi1ee1:t2:xy1:y1:re")),
            Drop(R::BadNodes),
        ),
        (
            "reply values a string",
            s(format!("d1:rd2:id{ID}6:values2:abe1:t2:xy1:y1:re")),
            Drop(R::BadValues),
        ),
        (
            "reply samples an integer",
            s(format!("d1:rd2:id{ID}7:samplesi1ee1:t2:xy1:y1:re")),
            Drop(R::BadSamples),
        ),
        (
            "reply token a list",
            s(format!("d1:rd2:id{ID}5:tokenlee1:t2:xy1:y1:re")),
            Drop(R::BadToken),
        ),
        (
            "error not a list",
            b"d1:ei201e1:t2:xy1:y1:ee".to_vec(),
            Drop(R::BadError),
        ),
        (
            "error code a string",
            b"d1:el3:abc3:msge1:t2:xy1:y1:ee".to_vec(),
            Drop(R::BadError),
        ),
        (
            "unsorted keys",
            s(format!("d1:t2:xy1:y1:q1:q4:ping1:ad2:id{ID}ee")),
            NonCanonical,
        ),
        (
            "duplicate keys",
            s(format!("d1:ad2:id{ID}e1:q4:ping1:q4:vote1:t2:xy1:y1:qe")),
            NonCanonical,
        ),
        (
            "padded integer",
            s(q(
                "announce_peer",
                &format!("2:id{ID}9:info_hash{HASH}4:porti06881e5:token2:tk"),
            )),
            NonCanonical,
        ),
    ]
}

#[test]
fn every_malformed_input_maps_to_its_outcome() {
    for (name, input, expect) in table() {
        let result = decode(&input);
        match expect {
            Expect::Drop(reason) => {
                let err = result.expect_err(name);
                assert_eq!(err.reason, reason, "{name}");
                assert!(err.reply.is_none(), "{name}: must not be answered");
            }
            Expect::Answer(reason, code) => {
                let err = result.expect_err(name);
                assert_eq!(err.reason, reason, "{name}");
                let reply = err
                    .reply
                    .unwrap_or_else(|| panic!("{name}: must be answered"));
                assert_eq!(reply.code, code, "{name}");
                assert_eq!(reply.transaction_id, b"xy", "{name}: t echoed");
                let encoded = reply.to_message().encode();
                let back = decode(&encoded).expect("error reply decodes").message;
                let Body::Error(e) = back.body else {
                    panic!("{name}: not an error")
                };
                assert_eq!(e.code, code);
            }
            Expect::Query(method) => {
                let decoded = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(decoded.canonical, "{name}");
                assert_eq!(decoded.message.method(), Some(method), "{name}");
            }
            Expect::NonCanonical => {
                let decoded = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!decoded.canonical, "{name}: counted as non-canonical");
            }
        }
    }
}

#[test]
fn duplicate_keys_keep_the_first() {
    let input = format!("d1:ad2:id{ID}e1:q4:ping1:q4:vote1:t2:xy1:y1:qe");
    let decoded = decode(input.as_bytes()).unwrap();
    assert_eq!(decoded.message.method(), Some("ping"));
}

#[test]
fn padded_port_is_read_as_its_value() {
    let input = q(
        "announce_peer",
        &format!("2:id{ID}9:info_hash{HASH}4:porti06881e5:token2:tk"),
    );
    let decoded = decode(input.as_bytes()).unwrap();
    let Body::Query(query) = decoded.message.body else {
        panic!()
    };
    let QueryKind::AnnouncePeer { port, .. } = query.kind else {
        panic!()
    };
    assert_eq!(port, 6881);
}

#[test]
fn any_transaction_id_length_is_kept() {
    for t in [&b""[..], b"\x00", b"\x00\x01\x00", &[7u8; 40][..]] {
        let mut input = format!("d1:ad2:id{ID}e1:q4:ping1:t{}:", t.len()).into_bytes();
        input.extend_from_slice(t);
        input.extend_from_slice(b"1:y1:qe");
        let decoded = decode(&input).unwrap();
        assert_eq!(decoded.message.transaction_id, t);
        assert_eq!(decoded.message.encode(), input, "re-encodes byte for byte");
    }
}

#[test]
fn liberal_nodes_and_values() {
    // 27 bytes of nodes: one whole entry and a stray byte; values with a 5-byte entry.
    let mut input = format!("d1:rd2:id{ID}5:nodes27:").into_bytes();
    input.extend_from_slice(&[1u8; 27]);
    input.extend_from_slice(b"6:valuesl6:");
    input.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1]);
    input.extend_from_slice(b"5:abcdei3e18:");
    input.extend_from_slice(&[0u8; 18]);
    input.extend_from_slice(b"ee1:t2:xy1:y1:re");
    let decoded = decode(&input).unwrap();
    let Body::Response(r) = decoded.message.body else {
        panic!()
    };
    assert_eq!(r.nodes.unwrap().len(), 1);
    let values = r.values.unwrap();
    assert_eq!(values.len(), 2);
    assert_eq!(values[0], "10.0.0.1:6881".parse().unwrap());
    assert!(values[1].is_ipv6());
}
