//! Decoding datagrams into [`Message`]s with bendy, under a size and a nesting limit.
//!
//! One pass of bendy's streaming decoder collects every known field of the envelope and of the
//! `a` / `r` dictionaries; a second step checks what the method needs. bendy accepts only
//! canonical bencode, so input it refuses goes through [`super::lenient`], which rewrites
//! valid-but-non-canonical bencode (unsorted or duplicate keys, padded integers) canonically
//! and classifies everything else; such messages decode with `canonical == false`.

use std::net::SocketAddr;

use bendy::decoding::{Decoder, DictDecoder, Error as BendyError, ListDecoder, Object};

use super::compact;
use super::error::{DecodeError, RejectReason};
use super::lenient;
use super::{Body, KrpcError, Message, PutArgs, Query, QueryKind, RawValue, Response, Want};
use crate::id::NodeId;

/// The largest datagram the decoder accepts: one UDP datagram.
pub const MAX_MESSAGE_SIZE: usize = 65_536;

/// The deepest nesting of lists and dictionaries the decoder accepts (the top-level
/// dictionary counts as 1). KRPC itself needs 3; BEP 44 items may nest deeper.
pub const MAX_DEPTH: usize = 32;

/// A decoded message, and whether its bencoding was canonical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// False when the input had unsorted or duplicate keys or non-minimal integers; the
    /// message was decoded anyway, and the caller should count it.
    pub canonical: bool,
}

/// Decodes one datagram.
///
/// A malformed query that carried a transaction id yields a [`DecodeError`] whose `reply` is
/// the error the sender must get; anything else malformed is only counted.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(DecodeError::drop(RejectReason::TooLarge));
    }
    match parse_envelope(bytes) {
        Ok(envelope) => assemble(envelope).map(|message| Decoded {
            message,
            canonical: true,
        }),
        Err(RejectReason::NotADict) => Err(DecodeError::drop(RejectReason::NotADict)),
        Err(_) => {
            let canonical = lenient::canonicalize(bytes, MAX_DEPTH).map_err(DecodeError::drop)?;
            let envelope = parse_envelope(&canonical).map_err(DecodeError::drop)?;
            assemble(envelope).map(|message| Decoded {
                message,
                canonical: false,
            })
        }
    }
}

/// Whether `bytes` is exactly one canonical bencoded value within the nesting limit.
pub(crate) fn is_single_canonical_value(bytes: &[u8]) -> bool {
    let mut decoder = Decoder::new(bytes).with_max_depth(MAX_DEPTH);
    let first = match decoder.next_object() {
        Ok(Some(object)) => consume(object).is_ok(),
        _ => false,
    };
    first && matches!(decoder.next_object(), Ok(None))
}

fn consume(object: Object<'_, '_>) -> Result<(), BendyError> {
    match object {
        Object::Dict(mut d) => d.consume_all(),
        Object::List(mut l) => l.consume_all(),
        Object::Integer(_) | Object::Bytes(_) => Ok(()),
    }
}

/// A field as found: absent, present with the expected type, or present with another type.
#[derive(Clone, Debug, Default)]
enum Field<T> {
    #[default]
    Absent,
    Present(T),
    Invalid,
}

impl<T> Field<T> {
    fn ok(self) -> Option<T> {
        match self {
            Field::Present(value) => Some(value),
            _ => None,
        }
    }
}

/// A BEP 44 value as it was found in the input.
#[derive(Clone, Copy, Debug)]
enum RawItem<'a> {
    /// A list or dictionary: its raw bytes.
    Encoded(&'a [u8]),
    /// A byte string's payload.
    String(&'a [u8]),
    /// An integer's digits.
    Integer(&'a str),
}

/// Every known key of the `a` and `r` dictionaries.
#[derive(Default)]
struct Fields<'a> {
    id: Field<&'a [u8]>,
    target: Field<&'a [u8]>,
    info_hash: Field<&'a [u8]>,
    token: Field<&'a [u8]>,
    port: Field<i64>,
    implied_port: Field<i64>,
    noseed: Field<i64>,
    scrape: Field<i64>,
    seed: Field<i64>,
    want: Field<Want>,
    seq: Field<i64>,
    cas: Field<i64>,
    key: Field<&'a [u8]>,
    salt: Field<&'a [u8]>,
    signature: Field<&'a [u8]>,
    value: Field<RawItem<'a>>,
    nodes: Field<&'a [u8]>,
    nodes6: Field<&'a [u8]>,
    values: Field<Vec<SocketAddr>>,
    samples: Field<&'a [u8]>,
    interval: Field<i64>,
    num: Field<i64>,
    bloom_seeds: Field<&'a [u8]>,
    bloom_peers: Field<&'a [u8]>,
}

/// The top-level dictionary.
#[derive(Default)]
struct Envelope<'a> {
    transaction_id: Field<&'a [u8]>,
    kind: Field<&'a [u8]>,
    method: Field<&'a [u8]>,
    version: Option<&'a [u8]>,
    requester_ip: Option<SocketAddr>,
    read_only: bool,
    arguments: Field<Fields<'a>>,
    reply: Field<Fields<'a>>,
    error: Field<(i64, &'a [u8])>,
}

/// Structural failures inside bendy are all reported as `Bencode` here; the lenient pass
/// classifies them precisely.
fn structure(_: BendyError) -> RejectReason {
    RejectReason::Bencode
}

fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, RejectReason> {
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
        Object::Integer(digits) => RawItem::Integer(digits),
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

fn assemble(envelope: Envelope<'_>) -> Result<Message, DecodeError> {
    let Field::Present(transaction_id) = envelope.transaction_id else {
        return Err(DecodeError::drop(RejectReason::MissingTransactionId));
    };
    let Field::Present(kind) = envelope.kind else {
        return Err(DecodeError::drop(RejectReason::MissingType));
    };
    let body = match kind {
        b"q" => Body::Query(query(transaction_id, envelope.method, envelope.arguments)?),
        b"r" => Body::Response(response(envelope.reply).map_err(DecodeError::drop)?),
        b"e" => match envelope.error {
            Field::Present((code, message)) => Body::Error(KrpcError {
                code,
                message: message.to_vec(),
            }),
            _ => return Err(DecodeError::drop(RejectReason::BadError)),
        },
        _ => return Err(DecodeError::drop(RejectReason::UnknownType)),
    };
    Ok(Message {
        transaction_id: transaction_id.to_vec(),
        version: envelope.version.map(<[u8]>::to_vec),
        read_only: envelope.read_only,
        requester_ip: envelope.requester_ip,
        body,
    })
}

fn id20(field: &Field<&[u8]>) -> Option<NodeId> {
    match field {
        Field::Present(bytes) => NodeId::from_slice(bytes),
        _ => None,
    }
}

fn flag(field: &Field<i64>) -> bool {
    matches!(field, Field::Present(1))
}

fn query(
    transaction_id: &[u8],
    method: Field<&[u8]>,
    arguments: Field<Fields<'_>>,
) -> Result<Query, DecodeError> {
    let answer = |reason| DecodeError::answer(reason, transaction_id);
    let Field::Present(method) = method else {
        return Err(answer(RejectReason::MissingMethod));
    };
    let Field::Present(a) = arguments else {
        return Err(answer(RejectReason::MissingArguments));
    };
    let id = id20(&a.id).ok_or_else(|| answer(RejectReason::BadId))?;
    let target = || id20(&a.target).ok_or_else(|| answer(RejectReason::BadTarget));
    let info_hash = || id20(&a.info_hash).ok_or_else(|| answer(RejectReason::BadInfoHash));
    let want = || match a.want {
        Field::Invalid => Err(answer(RejectReason::BadField)),
        Field::Present(want) => Ok(want),
        Field::Absent => Ok(Want::UNSPECIFIED),
    };
    let token = || match a.token {
        Field::Present(token) => Ok(token.to_vec()),
        _ => Err(answer(RejectReason::BadToken)),
    };
    let optional_int = |field: &Field<i64>| match field {
        Field::Invalid => Err(answer(RejectReason::BadItem)),
        Field::Present(value) => Ok(Some(*value)),
        Field::Absent => Ok(None),
    };
    let kind = match method {
        b"ping" => QueryKind::Ping,
        b"find_node" => QueryKind::FindNode {
            target: target()?,
            want: want()?,
        },
        b"get_peers" => QueryKind::GetPeers {
            info_hash: info_hash()?,
            want: want()?,
            noseed: flag(&a.noseed),
            scrape: flag(&a.scrape),
        },
        b"announce_peer" => {
            let info_hash = info_hash()?;
            let implied_port = flag(&a.implied_port);
            let port = match a.port {
                Field::Present(port) if (1..=65535).contains(&port) => port as u16,
                _ if implied_port => 0,
                _ => return Err(answer(RejectReason::BadPort)),
            };
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token: token()?,
                seed: flag(&a.seed),
            }
        }
        b"sample_infohashes" => QueryKind::SampleInfohashes {
            target: target()?,
            want: want()?,
        },
        b"get" => QueryKind::Get {
            target: target()?,
            seq: optional_int(&a.seq)?,
            want: want()?,
        },
        b"put" => {
            let token = token()?;
            let Field::Present(item) = a.value else {
                return Err(answer(RejectReason::BadItem));
            };
            fn present<'a>(field: &Field<&'a [u8]>) -> Result<Option<&'a [u8]>, RejectReason> {
                match field {
                    Field::Invalid => Err(RejectReason::BadItem),
                    Field::Present(bytes) => Ok(Some(bytes)),
                    Field::Absent => Ok(None),
                }
            }
            let fixed = |field| present(field).map_err(answer);
            let key = match fixed(&a.key)? {
                Some(bytes) => {
                    Some(<[u8; 32]>::try_from(bytes).map_err(|_| answer(RejectReason::BadItem))?)
                }
                None => None,
            };
            let signature = match fixed(&a.signature)? {
                Some(bytes) => {
                    Some(<[u8; 64]>::try_from(bytes).map_err(|_| answer(RejectReason::BadItem))?)
                }
                None => None,
            };
            QueryKind::Put(PutArgs {
                token,
                value: raw_value(item),
                key,
                salt: fixed(&a.salt)?.map(<[u8]>::to_vec),
                seq: optional_int(&a.seq)?,
                cas: optional_int(&a.cas)?,
                signature,
            })
        }
        _ => {
            // Like libtorrent: an unknown query that names a target or an info-hash is
            // answered as find_node or get_peers, so that future extensions still route.
            if let Some(target) = id20(&a.target) {
                QueryKind::FindNode {
                    target,
                    want: want()?,
                }
            } else if let Some(info_hash) = id20(&a.info_hash) {
                QueryKind::GetPeers {
                    info_hash,
                    want: want()?,
                    noseed: flag(&a.noseed),
                    scrape: flag(&a.scrape),
                }
            } else {
                return Err(answer(RejectReason::UnknownMethod));
            }
        }
    };
    Ok(Query { id, kind })
}

fn raw_value(item: RawItem<'_>) -> RawValue {
    match item {
        RawItem::Encoded(bytes) => RawValue::from_trusted(bytes.to_vec()),
        RawItem::String(payload) => RawValue::from_bytes(payload),
        RawItem::Integer(digits) => RawValue::from_trusted(format!("i{digits}e").into_bytes()),
    }
}

fn response(reply: Field<Fields<'_>>) -> Result<Response, RejectReason> {
    let Field::Present(r) = reply else {
        return Err(RejectReason::MissingReply);
    };
    let id = id20(&r.id).ok_or(RejectReason::BadId)?;
    fn opt<T, U>(
        field: Field<T>,
        reason: RejectReason,
        map: impl FnOnce(T) -> U,
    ) -> Result<Option<U>, RejectReason> {
        match field {
            Field::Absent => Ok(None),
            Field::Present(value) => Ok(Some(map(value))),
            Field::Invalid => Err(reason),
        }
    }
    let bloom = |field: Field<&[u8]>| {
        field
            .ok()
            .and_then(|bytes| <[u8; 256]>::try_from(bytes).ok())
            .map(Box::new)
    };
    fn fixed_item(field: Field<&[u8]>, len: usize) -> Result<Option<&[u8]>, RejectReason> {
        match field {
            Field::Absent => Ok(None),
            Field::Present(bytes) if bytes.len() == len => Ok(Some(bytes)),
            _ => Err(RejectReason::BadItem),
        }
    }
    Ok(Response {
        id,
        nodes: opt(r.nodes, RejectReason::BadNodes, compact::decode_nodes_v4)?,
        nodes6: opt(r.nodes6, RejectReason::BadNodes, compact::decode_nodes_v6)?,
        values: opt(r.values, RejectReason::BadValues, |v| v)?,
        token: opt(r.token, RejectReason::BadToken, <[u8]>::to_vec)?,
        samples: opt(r.samples, RejectReason::BadSamples, compact::decode_hashes)?,
        interval: opt(r.interval, RejectReason::BadSamples, |v| v)?,
        num: opt(r.num, RejectReason::BadSamples, |v| v)?,
        bloom_seeds: bloom(r.bloom_seeds),
        bloom_peers: bloom(r.bloom_peers),
        value: opt(r.value, RejectReason::BadItem, raw_value)?,
        key: fixed_item(r.key, 32)?.and_then(|b| b.try_into().ok()),
        signature: fixed_item(r.signature, 64)?.and_then(|b| b.try_into().ok()),
        seq: opt(r.seq, RejectReason::BadItem, |v| v)?,
    })
}
