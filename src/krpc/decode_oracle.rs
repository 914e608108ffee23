//! The decoder's former parsing pass, on bendy's streaming decoder, kept as a test oracle: the
//! zero-copy [`super::super::reader`] must give the same envelope, or the same rejection, for
//! any input. The unit tests below hold it to that on enumerated, generated and mutated
//! inputs; with the `decode-oracle` feature, [`agree`] is also the `krpc_oracle` fuzz target.

use std::net::SocketAddr;

use bendy::decoding::{Decoder, DictDecoder, Error as BendyError, ListDecoder, Object};

use super::super::Want;
use super::super::compact;
use super::super::error::RejectReason;
use super::super::reader;
use super::{Envelope, Field, Fields, MAX_DEPTH, RawItem};

fn consume(object: Object<'_, '_>) -> Result<(), BendyError> {
    match object {
        Object::Dict(mut d) => d.consume_all(),
        Object::List(mut l) => l.consume_all(),
        Object::Integer(_) | Object::Bytes(_) => Ok(()),
    }
}

/// Structural failures inside bendy are all reported as `Bencode` here; the lenient pass
/// classifies them precisely.
fn structure(_: BendyError) -> RejectReason {
    RejectReason::Bencode
}

pub(super) fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, RejectReason> {
    let mut decoder = Decoder::new(bytes).with_max_depth(MAX_DEPTH);
    let mut envelope = Envelope::default();
    match decoder.next_object().map_err(structure)? {
        Some(Object::Dict(mut dict)) => {
            while let Some((key, value)) = dict.next_pair().map_err(structure)? {
                match key {
                    b"t" => envelope.transaction_id = bytes_field(value),
                    b"y" => envelope.kind = bytes_field(value),
                    b"q" => envelope.method = bytes_field(value),
                    b"v" => envelope.version = bytes_field(value).ok(),
                    b"ip" => {
                        envelope.requester_ip =
                            bytes_field(value).ok().and_then(compact::decode_addr)
                    }
                    b"ro" => envelope.read_only = matches!(value, Object::Integer("1")),
                    b"a" => envelope.arguments = fields(value)?,
                    b"r" => envelope.reply = fields(value)?,
                    b"e" => envelope.error = error_list(value)?,
                    _ => consume(value).map_err(structure)?,
                }
            }
        }
        Some(other) => {
            consume(other).map_err(structure)?;
            return Err(RejectReason::NotADict);
        }
        None => return Err(RejectReason::Bencode),
    }
    match decoder.next_object() {
        Ok(None) => Ok(envelope),
        _ => Err(RejectReason::TrailingData),
    }
}

fn bytes_field<'a>(value: Object<'_, 'a>) -> Field<&'a [u8]> {
    match value {
        Object::Bytes(bytes) => Field::Present(bytes),
        _ => Field::Invalid,
    }
}

fn int_field(value: Object<'_, '_>) -> Field<i64> {
    match value {
        Object::Integer(digits) => digits.parse().map_or(Field::Invalid, Field::Present),
        _ => Field::Invalid,
    }
}

fn fields<'a>(value: Object<'_, 'a>) -> Result<Field<Fields<'a>>, RejectReason> {
    let Object::Dict(mut dict) = value else {
        consume(value).map_err(structure)?;
        return Ok(Field::Invalid);
    };
    let mut f = Fields::default();
    while let Some((key, value)) = dict.next_pair().map_err(structure)? {
        match key {
            b"id" => f.id = bytes_field(value),
            b"target" => f.target = bytes_field(value),
            b"info_hash" => f.info_hash = bytes_field(value),
            b"token" => f.token = bytes_field(value),
            b"port" => f.port = int_field(value),
            b"implied_port" => f.implied_port = int_field(value),
            b"noseed" => f.noseed = int_field(value),
            b"scrape" => f.scrape = int_field(value),
            b"seed" => f.seed = int_field(value),
            b"want" => f.want = want(value)?,
            b"seq" => f.seq = int_field(value),
            b"cas" => f.cas = int_field(value),
            b"k" => f.key = bytes_field(value),
            b"salt" => f.salt = bytes_field(value),
            b"sig" => f.signature = bytes_field(value),
            b"v" => f.value = Field::Present(raw_item(value)?),
            b"nodes" => f.nodes = bytes_field(value),
            b"nodes6" => f.nodes6 = bytes_field(value),
            b"values" => f.values = values(value)?,
            b"samples" => f.samples = bytes_field(value),
            b"interval" => f.interval = int_field(value),
            b"num" => f.num = int_field(value),
            b"BFsd" => f.bloom_seeds = bytes_field(value),
            b"BFpe" => f.bloom_peers = bytes_field(value),
            _ => consume(value).map_err(structure)?,
        }
    }
    Ok(Field::Present(f))
}

fn list_of<'a>(
    value: Object<'_, 'a>,
    mut each: impl FnMut(Object<'_, 'a>),
) -> Result<bool, RejectReason> {
    let Object::List(mut list) = value else {
        consume(value).map_err(structure)?;
        return Ok(false);
    };
    while let Some(item) = next_item(&mut list)? {
        each(item);
    }
    Ok(true)
}

fn next_item<'i, 'a>(
    list: &'i mut ListDecoder<'_, 'a>,
) -> Result<Option<Object<'i, 'a>>, RejectReason> {
    list.next_object().map_err(structure)
}

fn want(value: Object<'_, '_>) -> Result<Field<Want>, RejectReason> {
    let mut want = Want::default();
    let is_list = list_of(value, |item| match item {
        Object::Bytes(b"n4") => want.n4 = true,
        Object::Bytes(b"n6") => want.n6 = true,
        other => {
            let _ = consume(other);
        }
    })?;
    Ok(if is_list {
        Field::Present(want)
    } else {
        Field::Invalid
    })
}

fn values(value: Object<'_, '_>) -> Result<Field<Vec<SocketAddr>>, RejectReason> {
    let mut peers = Vec::new();
    let is_list = list_of(value, |item| match item {
        Object::Bytes(bytes) => peers.extend(compact::decode_addr(bytes)),
        other => {
            let _ = consume(other);
        }
    })?;
    Ok(if is_list {
        Field::Present(peers)
    } else {
        Field::Invalid
    })
}

fn raw_item<'a>(value: Object<'_, 'a>) -> Result<RawItem<'a>, RejectReason> {
    Ok(match value {
        Object::Bytes(bytes) => RawItem::String(bytes),
        Object::Integer(digits) => RawItem::Integer(digits.as_bytes()),
        Object::Dict(dict) => RawItem::Encoded(dict_raw(dict)?),
        Object::List(list) => RawItem::Encoded(list.into_raw().map_err(structure)?),
    })
}

fn dict_raw<'a>(dict: DictDecoder<'_, 'a>) -> Result<&'a [u8], RejectReason> {
    dict.into_raw().map_err(structure)
}

fn error_list<'a>(value: Object<'_, 'a>) -> Result<Field<(i64, &'a [u8])>, RejectReason> {
    let Object::List(mut list) = value else {
        consume(value).map_err(structure)?;
        return Ok(Field::Invalid);
    };
    let code = match next_item(&mut list)? {
        Some(Object::Integer(digits)) => digits.parse::<i64>().ok(),
        Some(other) => {
            consume(other).map_err(structure)?;
            None
        }
        None => None,
    };
    let message: &'a [u8] = match next_item(&mut list)? {
        Some(Object::Bytes(bytes)) => bytes,
        Some(other) => {
            consume(other).map_err(structure)?;
            b""
        }
        None => b"",
    };
    list.consume_all().map_err(structure)?;
    Ok(code.map_or(Field::Invalid, |code| Field::Present((code, message))))
}

/// The oracle and the decoder agree on `bytes`: same envelope (all fields), or same
/// rejection; and the reader agrees with bendy on whether it is one canonical value. Panics
/// if they differ.
pub(super) fn agree(bytes: &[u8]) {
    let old = parse_envelope(bytes).map(|e| format!("{e:?}"));
    let mut envelope = Envelope::default();
    let new = super::parse_envelope(bytes, &mut envelope).map(|()| format!("{envelope:?}"));
    assert_eq!(old, new, "input {:?}", String::from_utf8_lossy(bytes));
    assert_eq!(
        super::is_single_canonical_value(bytes),
        reader::is_single_value(bytes, MAX_DEPTH),
        "input {:?}",
        String::from_utf8_lossy(bytes)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::NodeInfo;
    use crate::id::NodeId;
    use crate::krpc::{Message, QueryKind, Response};
    use proptest::prelude::*;

    #[test]
    fn every_short_input_over_a_bencode_alphabet() {
        const ALPHABET: &[u8] = b"dlei01:-a";
        let mut input = Vec::new();
        for len in 0..=5u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                input.clear();
                for _ in 0..len {
                    input.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                agree(&input);
            }
        }
    }

    /// The inputs kept from fuzzing (both KRPC targets) agree too.
    #[test]
    fn fuzz_regressions_agree() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
        let mut seen = 0;
        for target in ["krpc_decode", "krpc_oracle"] {
            let Ok(dir) = std::fs::read_dir(root.join(target)) else {
                continue;
            };
            for entry in dir.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    agree(&bytes);
                    seen += 1;
                }
            }
        }
        assert!(seen > 0, "tests/fuzz_regressions/krpc_decode holds inputs");
    }

    #[test]
    fn nesting_at_and_over_the_limit() {
        for depth in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            let mut bytes = b"d1:a".to_vec();
            bytes.extend(std::iter::repeat_n(b'l', depth));
            bytes.extend(std::iter::repeat_n(b'e', depth + 1));
            agree(&bytes);
            let mut bytes = b"d1:ad1:q".to_vec();
            bytes.extend(std::iter::repeat_n(b'l', depth));
            bytes.extend(std::iter::repeat_n(b'e', depth + 2));
            agree(&bytes);
            let mut bytes = Vec::new();
            bytes.extend(std::iter::repeat_n(b'l', depth));
            bytes.extend(std::iter::repeat_n(b'e', depth));
            agree(&bytes);
        }
    }

    /// Typical messages of every kind, as the sender encodes them.
    fn samples() -> Vec<Vec<u8>> {
        let id = NodeId([0x11; 20]);
        let addr: SocketAddr = "1.2.3.4:6881".parse().expect("valid");
        let want = Want { n4: true, n6: true };
        let kinds = [
            QueryKind::Ping,
            QueryKind::FindNode { target: id, want },
            QueryKind::GetPeers {
                info_hash: id,
                want,
                noseed: true,
                scrape: true,
            },
            QueryKind::AnnouncePeer {
                info_hash: id,
                port: 6881,
                implied_port: true,
                token: b"tok".to_vec(),
                seed: true,
            },
            QueryKind::SampleInfohashes { target: id, want },
            QueryKind::Get {
                target: id,
                seq: Some(-3),
                want,
            },
        ];
        let mut out: Vec<Vec<u8>> = kinds
            .into_iter()
            .map(|kind| {
                let mut m = Message::query(b"ab".to_vec(), id, kind);
                m.version = Some(b"LT01".to_vec());
                m.read_only = true;
                m.encode()
            })
            .collect();
        let mut r = Response::new(id);
        r.nodes = Some(vec![NodeInfo::new(id, addr)]);
        r.token = Some(b"xy".to_vec());
        r.values = Some(vec![addr, addr]);
        r.samples = Some(vec![id]);
        r.interval = Some(60);
        r.num = Some(2);
        r.seq = Some(7);
        r.bloom_seeds = Some(Box::new([1; 256]));
        let mut m = Message::response(b"ab".to_vec(), r);
        m.requester_ip = Some(addr);
        out.push(m.encode());
        out.push(Message::error(b"ab".to_vec(), 203, "bad").encode());
        out.push(
            b"d1:ad1:v1:x2:id20:aaaaaaaaaaaaaaaaaaaa5:token1:te1:q3:put1:t1:a1:y1:qe".to_vec(),
        );
        out.push(
            b"d1:ad1:vli1ed1:ai2eee2:id20:aaaaaaaaaaaaaaaaaaaae1:q3:put1:t1:a1:y1:qe".to_vec(),
        );
        out.push(b"d1:eli201ei5ee1:t1:a1:y1:ee".to_vec());
        out.push(b"d1:eli-0ee1:t1:a1:y1:ee".to_vec());
        out
    }

    #[test]
    fn typical_messages() {
        for bytes in samples() {
            agree(&bytes);
            for cut in 0..bytes.len() {
                agree(&bytes[..cut]);
            }
        }
    }

    /// A generated bencode value, keys drawn from KRPC's so that the decoder's fields are hit.
    #[derive(Clone, Debug)]
    enum Value {
        Int(i64),
        Bytes(Vec<u8>),
        List(Vec<Value>),
        Dict(Vec<(Vec<u8>, Value)>),
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::sample::select(vec![
                "a",
                "e",
                "ip",
                "q",
                "r",
                "ro",
                "t",
                "v",
                "y",
                "id",
                "target",
                "info_hash",
                "token",
                "port",
                "implied_port",
                "noseed",
                "scrape",
                "seed",
                "want",
                "seq",
                "cas",
                "k",
                "salt",
                "sig",
                "nodes",
                "nodes6",
                "values",
                "samples",
                "interval",
                "num",
                "BFsd",
                "BFpe",
                "ping",
                "n4",
                "n6",
            ])
            .prop_map(|k| k.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..4),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            prop_oneof![Just(0i64), Just(1), Just(-1), any::<i64>()].prop_map(Value::Int),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..8),
                prop::collection::vec(any::<u8>(), 6..=6),
                prop::collection::vec(any::<u8>(), 20..=20),
                key(),
            ]
            .prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                prop::collection::vec((key(), inner), 0..8).prop_map(Value::Dict),
            ]
        })
    }

    /// Writes `value`; `sort` sorts and de-duplicates dictionary keys (canonical) or leaves them
    /// as generated.
    fn write(value: &Value, sort: bool, out: &mut Vec<u8>) {
        match value {
            Value::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    write(item, sort, out);
                }
                out.push(b'e');
            }
            Value::Dict(pairs) => {
                let mut pairs = pairs.clone();
                if sort {
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                    pairs.dedup_by(|a, b| a.0 == b.0);
                }
                out.push(b'd');
                for (k, v) in &pairs {
                    write(&Value::Bytes(k.clone()), sort, out);
                    write(v, sort, out);
                }
                out.push(b'e');
            }
        }
    }

    /// A change to a datagram: cut it, drop, replace or insert a byte.
    #[derive(Clone, Debug)]
    enum Mutation {
        None,
        Truncate(usize),
        Remove(usize),
        Replace(usize, u8),
        Insert(usize, u8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let byte = prop::sample::select(b"dlei0123456789:-ax".to_vec());
        prop_oneof![
            2 => Just(Mutation::None),
            1 => any::<usize>().prop_map(Mutation::Truncate),
            1 => any::<usize>().prop_map(Mutation::Remove),
            1 => (any::<usize>(), byte.clone()).prop_map(|(at, b)| Mutation::Replace(at, b)),
            1 => (any::<usize>(), byte).prop_map(|(at, b)| Mutation::Insert(at, b)),
        ]
    }

    fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match *mutation {
            Mutation::None => {}
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len() + 1)),
            Mutation::Remove(i) if !bytes.is_empty() => {
                bytes.remove(at(i, bytes.len()));
            }
            Mutation::Replace(i, b) if !bytes.is_empty() => {
                let i = at(i, bytes.len());
                bytes[i] = b;
            }
            Mutation::Insert(i, b) => bytes.insert(at(i, bytes.len() + 1), b),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        #[test]
        fn generated_values_agree(
            envelope in prop::collection::vec((key(), value()), 0..8),
            sort in any::<bool>(),
            mutations in prop::collection::vec(mutation(), 0..3),
        ) {
            let mut bytes = Vec::new();
            write(&Value::Dict(envelope), sort, &mut bytes);
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            agree(&bytes);
        }

        #[test]
        fn mutated_messages_agree(
            which in any::<usize>(),
            mutations in prop::collection::vec(mutation(), 1..4),
        ) {
            let samples = samples();
            let mut bytes = samples[which % samples.len()].clone();
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            agree(&bytes);
        }
    }
}
