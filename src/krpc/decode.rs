//! Decoding datagrams into [`Message`]s, under a size and a nesting limit.
//!
//! One pass of the strict, zero-copy [`super::reader`] collects every known field of the
//! envelope and of the `a` / `r` dictionaries; a second step checks what the method needs. The
//! reader accepts only canonical bencode (exactly what bendy's strict decoder accepts, which
//! this module used before and which its tests keep as an oracle), so input it refuses goes
//! through [`super::lenient`], which rewrites valid-but-non-canonical bencode (unsorted or
//! duplicate keys, padded integers) canonically and classifies everything else; such messages
//! decode with `canonical == false`.

use std::borrow::Cow;
use std::net::SocketAddr;

use bendy::decoding::{Decoder, Error as BendyError, Object};

use super::compact;
use super::error::{DecodeError, RejectReason};
use super::lenient;
use super::reader::{Reader, Token, parse_i64};
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
    decode_ref(bytes).map(MessageRef::into_decoded)
}

/// A decoded message whose transaction id and version borrow from the datagram (when it was
/// canonical; from the decoder's rewrite otherwise): [`decode`] without the copies, for the
/// cores' hot paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MessageRef<'a> {
    /// `t`.
    pub(crate) transaction_id: Cow<'a, [u8]>,
    /// `v`.
    pub(crate) version: Option<Cow<'a, [u8]>>,
    /// `ro`.
    pub(crate) read_only: bool,
    /// `ip`.
    pub(crate) requester_ip: Option<SocketAddr>,
    /// The query, response or error.
    pub(crate) body: Body,
    /// As [`Decoded::canonical`].
    pub(crate) canonical: bool,
}

impl MessageRef<'_> {
    fn into_decoded(self) -> Decoded {
        Decoded {
            message: Message {
                transaction_id: self.transaction_id.into_owned(),
                version: self.version.map(Cow::into_owned),
                read_only: self.read_only,
                requester_ip: self.requester_ip,
                body: self.body,
            },
            canonical: self.canonical,
        }
    }

    fn into_owned(self) -> MessageRef<'static> {
        MessageRef {
            transaction_id: Cow::Owned(self.transaction_id.into_owned()),
            version: self.version.map(|v| Cow::Owned(v.into_owned())),
            read_only: self.read_only,
            requester_ip: self.requester_ip,
            body: self.body,
            canonical: self.canonical,
        }
    }
}

/// [`decode`], borrowing the transaction id and version.
pub(crate) fn decode_ref(bytes: &[u8]) -> Result<MessageRef<'_>, DecodeError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(DecodeError::drop(RejectReason::TooLarge));
    }
    let mut envelope = Envelope::default();
    match parse_envelope(bytes, &mut envelope) {
        Ok(()) => assemble(&mut envelope, true),
        Err(RejectReason::NotADict) => Err(DecodeError::drop(RejectReason::NotADict)),
        Err(_) => {
            let canonical = lenient::canonicalize(bytes, MAX_DEPTH).map_err(DecodeError::drop)?;
            let mut envelope = Envelope::default();
            parse_envelope(&canonical, &mut envelope).map_err(DecodeError::drop)?;
            assemble(&mut envelope, false).map(MessageRef::into_owned)
        }
    }
}

/// Whether `bytes` is exactly one canonical bencoded value within the nesting limit (checked
/// with bendy, independently of the decoder's own reader).
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
#[derive(Clone, Copy, Debug, Default)]
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
    Integer(&'a [u8]),
}
/// Every known key of the `a` and `r` dictionaries.
#[derive(Debug, Default)]
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
#[derive(Debug, Default)]
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

/// Reads `bytes` into `envelope` (which must be empty: `Envelope::default()`).
fn parse_envelope<'a>(bytes: &'a [u8], envelope: &mut Envelope<'a>) -> Result<(), RejectReason> {
    let mut reader = Reader::new(bytes, MAX_DEPTH);
    match reader.value()? {
        Token::Dict => {}
        other => {
            reader.skip(other, 0)?;
            return Err(RejectReason::NotADict);
        }
    }
    let open = reader.open(0)?;
    let mut previous = None;
    while let Some(key) = reader.key(&mut previous)? {
        let value = reader.value()?;
        match key {
            b"t" => envelope.transaction_id = bytes_field(&mut reader, value, open)?,
            b"y" => envelope.kind = bytes_field(&mut reader, value, open)?,
            b"q" => envelope.method = bytes_field(&mut reader, value, open)?,
            b"v" => envelope.version = bytes_field(&mut reader, value, open)?.ok(),
            b"ip" => {
                envelope.requester_ip = bytes_field(&mut reader, value, open)?
                    .ok()
                    .and_then(compact::decode_addr)
            }
            b"ro" => {
                envelope.read_only = value == Token::Int(b"1");
                reader.skip(value, open)?;
            }
            b"a" => fields(&mut reader, value, open, &mut envelope.arguments)?,
            b"r" => fields(&mut reader, value, open, &mut envelope.reply)?,
            b"e" => envelope.error = error_list(&mut reader, value, open)?,
            _ => reader.skip(value, open)?,
        }
    }
    if reader.at_end() {
        Ok(())
    } else {
        Err(RejectReason::TrailingData)
    }
}

/// `value`'s payload if it is a byte string; anything else is read past and `Invalid`.
fn bytes_field<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
) -> Result<Field<&'a [u8]>, RejectReason> {
    Ok(match value {
        Token::Bytes(bytes) => Field::Present(bytes),
        other => {
            reader.skip(other, open)?;
            Field::Invalid
        }
    })
}

fn int_field<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
) -> Result<Field<i64>, RejectReason> {
    Ok(match value {
        Token::Int(digits) => parse_i64(digits).map_or(Field::Invalid, Field::Present),
        other => {
            reader.skip(other, open)?;
            Field::Invalid
        }
    })
}

/// Reads `value` into `out`: its fields if it is a dictionary, else `Invalid`. The dictionary
/// is read in place (a `Fields` is several hundred bytes).
fn fields<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
    out: &mut Field<Fields<'a>>,
) -> Result<(), RejectReason> {
    if value != Token::Dict {
        reader.skip(value, open)?;
        *out = Field::Invalid;
        return Ok(());
    }
    let open = reader.open(open)?;
    *out = Field::Present(Fields::default());
    let Field::Present(f) = out else {
        return Ok(());
    };
    let mut previous = None;
    while let Some(key) = reader.key(&mut previous)? {
        let value = reader.value()?;
        let r = &mut *reader;
        match key {
            b"id" => f.id = bytes_field(r, value, open)?,
            b"target" => f.target = bytes_field(r, value, open)?,
            b"info_hash" => f.info_hash = bytes_field(r, value, open)?,
            b"token" => f.token = bytes_field(r, value, open)?,
            b"port" => f.port = int_field(r, value, open)?,
            b"implied_port" => f.implied_port = int_field(r, value, open)?,
            b"noseed" => f.noseed = int_field(r, value, open)?,
            b"scrape" => f.scrape = int_field(r, value, open)?,
            b"seed" => f.seed = int_field(r, value, open)?,
            b"want" => f.want = want(r, value, open)?,
            b"seq" => f.seq = int_field(r, value, open)?,
            b"cas" => f.cas = int_field(r, value, open)?,
            b"k" => f.key = bytes_field(r, value, open)?,
            b"salt" => f.salt = bytes_field(r, value, open)?,
            b"sig" => f.signature = bytes_field(r, value, open)?,
            b"v" => f.value = Field::Present(raw_item(r, value, open)?),
            b"nodes" => f.nodes = bytes_field(r, value, open)?,
            b"nodes6" => f.nodes6 = bytes_field(r, value, open)?,
            b"values" => f.values = values(r, value, open)?,
            b"samples" => f.samples = bytes_field(r, value, open)?,
            b"interval" => f.interval = int_field(r, value, open)?,
            b"num" => f.num = int_field(r, value, open)?,
            b"BFsd" => f.bloom_seeds = bytes_field(r, value, open)?,
            b"BFpe" => f.bloom_peers = bytes_field(r, value, open)?,
            _ => r.skip(value, open)?,
        }
    }
    Ok(())
}

/// Calls `each` with every item of `value` if it is a list (the items `each` does not read
/// past are read past here); `false` if it is not a list.
fn list_of<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
    mut each: impl FnMut(Token<'a>),
) -> Result<bool, RejectReason> {
    if value != Token::List {
        reader.skip(value, open)?;
        return Ok(false);
    }
    let open = reader.open(open)?;
    loop {
        match reader.token()? {
            Token::End => return Ok(true),
            item => {
                each(item);
                reader.skip(item, open)?;
            }
        }
    }
}

fn want<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
) -> Result<Field<Want>, RejectReason> {
    let mut want = Want::default();
    let is_list = list_of(reader, value, open, |item| match item {
        Token::Bytes(b"n4") => want.n4 = true,
        Token::Bytes(b"n6") => want.n6 = true,
        _ => {}
    })?;
    Ok(if is_list {
        Field::Present(want)
    } else {
        Field::Invalid
    })
}

fn values<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
) -> Result<Field<Vec<SocketAddr>>, RejectReason> {
    let mut peers = Vec::new();
    let is_list = list_of(reader, value, open, |item| {
        if let Token::Bytes(bytes) = item {
            peers.extend(compact::decode_addr(bytes));
        }
    })?;
    Ok(if is_list {
        Field::Present(peers)
    } else {
        Field::Invalid
    })
}

fn raw_item<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
) -> Result<RawItem<'a>, RejectReason> {
    Ok(match value {
        Token::Bytes(bytes) => RawItem::String(bytes),
        Token::Int(digits) => RawItem::Integer(digits),
        container => {
            // The container's first byte (`l` or `d`) was just read.
            let start = reader.pos().saturating_sub(1);
            reader.skip(container, open)?;
            RawItem::Encoded(reader.since(start))
        }
    })
}

fn error_list<'a>(
    reader: &mut Reader<'a>,
    value: Token<'a>,
    open: usize,
) -> Result<Field<(i64, &'a [u8])>, RejectReason> {
    if value != Token::List {
        reader.skip(value, open)?;
        return Ok(Field::Invalid);
    }
    let open = reader.open(open)?;
    let mut ended = false;
    let code = match reader.token()? {
        Token::End => {
            ended = true;
            None
        }
        Token::Int(digits) => parse_i64(digits),
        other => {
            reader.skip(other, open)?;
            None
        }
    };
    let mut message: &'a [u8] = b"";
    if !ended {
        match reader.token()? {
            Token::End => ended = true,
            Token::Bytes(bytes) => message = bytes,
            other => reader.skip(other, open)?,
        }
    }
    while !ended {
        match reader.token()? {
            Token::End => ended = true,
            other => reader.skip(other, open)?,
        }
    }
    Ok(code.map_or(Field::Invalid, |code| Field::Present((code, message))))
}

fn assemble<'a>(
    envelope: &mut Envelope<'a>,
    canonical: bool,
) -> Result<MessageRef<'a>, DecodeError> {
    let Field::Present(transaction_id) = envelope.transaction_id else {
        return Err(DecodeError::drop(RejectReason::MissingTransactionId));
    };
    let Field::Present(kind) = envelope.kind else {
        return Err(DecodeError::drop(RejectReason::MissingType));
    };
    let body = match kind {
        b"q" => Body::Query(query(
            transaction_id,
            &envelope.method,
            &envelope.arguments,
        )?),
        b"r" => Body::Response(response(&mut envelope.reply).map_err(DecodeError::drop)?),
        b"e" => match envelope.error {
            Field::Present((code, message)) => Body::Error(KrpcError {
                code,
                message: message.to_vec(),
            }),
            _ => return Err(DecodeError::drop(RejectReason::BadError)),
        },
        _ => return Err(DecodeError::drop(RejectReason::UnknownType)),
    };
    Ok(MessageRef {
        transaction_id: Cow::Borrowed(transaction_id),
        version: envelope.version.map(Cow::Borrowed),
        read_only: envelope.read_only,
        requester_ip: envelope.requester_ip,
        body,
        canonical,
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
    method: &Field<&[u8]>,
    arguments: &Field<Fields<'_>>,
) -> Result<Query, DecodeError> {
    let answer = |reason| DecodeError::answer(reason, transaction_id);
    let &Field::Present(method) = method else {
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
        RawItem::Integer(digits) => {
            let mut bytes = Vec::with_capacity(digits.len() + 2);
            bytes.push(b'i');
            bytes.extend_from_slice(digits);
            bytes.push(b'e');
            RawValue::from_trusted(bytes)
        }
    }
}

fn response(reply: &mut Field<Fields<'_>>) -> Result<Response, RejectReason> {
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
        values: opt(
            std::mem::take(&mut r.values),
            RejectReason::BadValues,
            |v| v,
        )?,
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

#[cfg(any(test, feature = "decode-oracle"))]
#[path = "decode_oracle.rs"]
mod oracle;

/// Decodes `bytes` both with the zero-copy reader and with the former bendy-based pass (the
/// oracle) and panics unless they agree: the same envelope or the same rejection. Only with the
/// `decode-oracle` feature, for the `krpc_oracle` fuzz target.
#[cfg(feature = "decode-oracle")]
pub fn check_against_bendy(bytes: &[u8]) {
    oracle::agree(bytes);
}
