//! `decode(encode(m)) == m` for generated messages, and the encoding is canonical.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use btdht::krpc::{
    Body, KrpcError, Message, PutArgs, Query, QueryKind, RawValue, Response, Want, decode,
};
use btdht::{NodeId, NodeInfo};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}

fn addr_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
}

fn addr_v6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![addr_v4(), addr_v6()]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn want() -> impl Strategy<Value = Want> {
    (any::<bool>(), any::<bool>()).prop_map(|(n4, n6)| Want { n4, n6 })
}

fn raw_value() -> impl Strategy<Value = RawValue> {
    prop_oneof![
        bytes(40).prop_map(|b| RawValue::from_bytes(&b)),
        any::<i64>().prop_map(|i| RawValue::new(format!("i{i}e").into_bytes()).unwrap()),
        (bytes(10), any::<i32>()).prop_map(|(b, i)| {
            let mut out = format!("d1:a{}:", b.len()).into_bytes();
            out.extend_from_slice(&b);
            out.extend_from_slice(format!("1:bli{i}eee").as_bytes());
            RawValue::new(out).unwrap()
        }),
    ]
}

fn query_kind() -> impl Strategy<Value = QueryKind> {
    prop_oneof![
        Just(QueryKind::Ping),
        (id(), want()).prop_map(|(target, want)| QueryKind::FindNode { target, want }),
        (id(), want(), any::<bool>(), any::<bool>()).prop_map(
            |(info_hash, want, noseed, scrape)| QueryKind::GetPeers {
                info_hash,
                want,
                noseed,
                scrape
            }
        ),
        (id(), 1..=u16::MAX, any::<bool>(), bytes(24), any::<bool>()).prop_map(
            |(info_hash, port, implied_port, token, seed)| QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed
            }
        ),
        (id(), want()).prop_map(|(target, want)| QueryKind::SampleInfohashes { target, want }),
        (id(), option::of(any::<i64>()), want()).prop_map(|(target, seq, want)| QueryKind::Get {
            target,
            seq,
            want
        }),
        (
            bytes(20),
            raw_value(),
            option::of(any::<[u8; 32]>()),
            option::of(bytes(64)),
            option::of(any::<i64>()),
            option::of(any::<i64>()),
            option::of(vec(any::<u8>(), 64..=64)),
        )
            .prop_map(|(token, value, key, salt, seq, cas, sig)| {
                QueryKind::Put(PutArgs {
                    token,
                    value,
                    key,
                    salt,
                    seq,
                    cas,
                    signature: sig.map(|s| s.try_into().unwrap()),
                })
            }),
    ]
}

fn nodes(v4: bool) -> impl Strategy<Value = Vec<NodeInfo>> {
    let a = if v4 {
        addr_v4().boxed()
    } else {
        addr_v6().boxed()
    };
    vec((id(), a).prop_map(|(id, addr)| NodeInfo { id, addr }), 0..9)
}

fn response() -> impl Strategy<Value = Response> {
    (
        id(),
        option::of(nodes(true)),
        option::of(nodes(false)),
        option::of(vec(addr(), 0..20)),
        option::of(bytes(20)),
        option::of(vec(id(), 0..20)),
        option::of((any::<i64>(), any::<i64>())),
        option::of(any::<[u8; 32]>()),
        (
            option::of(raw_value()),
            option::of(any::<i64>()),
            option::of(any::<[u8; 32]>()),
        ),
    )
        .prop_map(
            |(id, nodes, nodes6, values, token, samples, counts, bloom, (value, seq, key))| {
                let mut r = Response::new(id);
                r.nodes = nodes;
                r.nodes6 = nodes6;
                r.values = values;
                r.token = token;
                r.samples = samples;
                r.interval = counts.map(|c| c.0);
                r.num = counts.map(|c| c.1);
                r.bloom_seeds = bloom.map(|b| Box::new([b[0]; 256]));
                r.bloom_peers = bloom.map(|b| Box::new([b[1]; 256]));
                r.value = value;
                r.seq = seq;
                r.key = key;
                r.signature = key.map(|k| {
                    let mut sig = [0u8; 64];
                    sig[..32].copy_from_slice(&k);
                    sig
                });
                r
            },
        )
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (id(), query_kind()).prop_map(|(id, kind)| Body::Query(Query { id, kind })),
        response().prop_map(Body::Response),
        (any::<i64>(), bytes(40))
            .prop_map(|(code, message)| Body::Error(KrpcError { code, message })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        bytes(12),
        option::of(bytes(6)),
        any::<bool>(),
        option::of(addr()),
        body(),
    )
        .prop_map(
            |(transaction_id, version, read_only, requester_ip, body)| Message {
                transaction_id,
                version,
                read_only,
                requester_ip,
                body,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_encode_roundtrip(m in message()) {
        let bytes = m.encode();
        let decoded = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        // bendy's strict decoder accepted it: sorted keys, minimal integers.
        prop_assert!(decoded.canonical);
        prop_assert_eq!(&decoded.message, &m);
        prop_assert_eq!(decoded.message.encode(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..300)) {
        if let Ok(decoded) = decode(&data) {
            let again = decode(&decoded.message.encode()).expect("re-decodes");
            prop_assert_eq!(again.message, decoded.message);
        }
    }
}
