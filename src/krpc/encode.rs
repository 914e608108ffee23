//! The canonical encoder: keys in sorted order, minimal integers, one pass into a buffer.
//!
//! Keys are written in a fixed order that is the bytewise sorted order of every key the
//! message can carry, so the output is canonical bencode by construction (a property test
//! checks it against bendy's strict decoder).

use super::compact;
use super::{BodyRef, KrpcError, Outgoing, Query, QueryKind, Response, Want};
use crate::contact::NodeInfo;
use std::net::{IpAddr, SocketAddr};

/// Appends a byte string: `<len>:<bytes>`.
#[inline]
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_decimal(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Appends an integer: `i<n>e`.
pub(crate) fn put_int(out: &mut Vec<u8>, value: i64) {
    out.push(b'i');
    if value < 0 {
        out.push(b'-');
    }
    put_decimal(out, value.unsigned_abs());
    out.push(b'e');
}

/// Appends an integer given as sign and minimal digits.
pub(crate) fn put_raw_int(out: &mut Vec<u8>, negative: bool, digits: &[u8]) {
    out.push(b'i');
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(digits);
    out.push(b'e');
}

/// Appends `value` in decimal. Inlined for the one-digit case (key names, short strings), which
/// then folds to a constant for a key.
#[inline]
fn put_decimal(out: &mut Vec<u8>, value: u64) {
    if value < 10 {
        out.push(b'0' + value as u8);
    } else {
        put_decimal_long(out, value);
    }
}

fn put_decimal_long(out: &mut Vec<u8>, mut value: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

#[inline]
fn key(out: &mut Vec<u8>, name: &str) {
    put_bytes(out, name.as_bytes());
}

#[inline]
fn key_bytes(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    key(out, name);
    put_bytes(out, value);
}

fn key_int(out: &mut Vec<u8>, name: &str, value: i64) {
    key(out, name);
    put_int(out, value);
}

fn key_flag(out: &mut Vec<u8>, name: &str, set: bool) {
    if set {
        key_int(out, name, 1);
    }
}

/// Parts of a reply given as bytes a core already holds, written in place of the response's
/// own fields so that an answer needs no allocation for them: compact node info already
/// encoded (26-byte IPv4 and 38-byte IPv6 entries, concatenated) for `nodes` and `nodes6`,
/// and the token's bytes. A part left `None` is taken from the response.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplyParts<'m> {
    /// `nodes`, if given.
    pub(crate) nodes: Option<&'m [u8]>,
    /// `nodes6`, if given.
    pub(crate) nodes6: Option<&'m [u8]>,
    /// `token`, if given.
    pub(crate) token: Option<&'m [u8]>,
}

pub(crate) fn message(message: &Outgoing<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    match message.body {
        BodyRef::Query(query) => {
            key(out, "a");
            arguments(query, out);
        }
        BodyRef::Error(error) => {
            key(out, "e");
            error_list(error, out);
        }
        BodyRef::Response(_) | BodyRef::ResponseParts(..) => {}
    }
    if let Some(ip) = &message.requester_ip {
        key(out, "ip");
        put_decimal(out, compact::addr_len(ip) as u64);
        out.push(b':');
        compact::encode_addr(out, ip);
    }
    match message.body {
        BodyRef::Query(query) => key_bytes(out, "q", query.kind.method().as_bytes()),
        BodyRef::Response(response) => {
            key(out, "r");
            reply(response, ReplyParts::default(), out);
        }
        BodyRef::ResponseParts(response, parts) => {
            key(out, "r");
            reply(response, parts, out);
        }
        BodyRef::Error(_) => {}
    }
    key_flag(out, "ro", message.read_only);
    key_bytes(out, "t", message.transaction_id);
    if let Some(version) = message.version {
        key_bytes(out, "v", version);
    }
    let kind: &[u8] = match message.body {
        BodyRef::Query(_) => b"q",
        BodyRef::Response(_) | BodyRef::ResponseParts(..) => b"r",
        BodyRef::Error(_) => b"e",
    };
    key_bytes(out, "y", kind);
    out.push(b'e');
}

fn error_list(error: &KrpcError, out: &mut Vec<u8>) {
    out.push(b'l');
    put_int(out, error.code);
    put_bytes(out, &error.message);
    out.push(b'e');
}

fn want(out: &mut Vec<u8>, want: Want) {
    if want.is_specified() {
        key(out, "want");
        out.push(b'l');
        if want.n4 {
            put_bytes(out, b"n4");
        }
        if want.n6 {
            put_bytes(out, b"n6");
        }
        out.push(b'e');
    }
}

/// Argument keys in sorted order: cas, id, implied_port, info_hash, k, noseed, port, salt,
/// scrape, seed, seq, sig, target, token, v, want.
fn arguments(query: &Query, out: &mut Vec<u8>) {
    out.push(b'd');
    let id = query.id.as_bytes();
    match &query.kind {
        QueryKind::Ping => key_bytes(out, "id", id),
        QueryKind::FindNode { target, want: w } => {
            key_bytes(out, "id", id);
            key_bytes(out, "target", target.as_bytes());
            want(out, *w);
        }
        QueryKind::GetPeers {
            info_hash,
            want: w,
            noseed,
            scrape,
        } => {
            key_bytes(out, "id", id);
            key_bytes(out, "info_hash", info_hash.as_bytes());
            key_flag(out, "noseed", *noseed);
            key_flag(out, "scrape", *scrape);
            want(out, *w);
        }
        QueryKind::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            key_bytes(out, "id", id);
            key_flag(out, "implied_port", *implied_port);
            key_bytes(out, "info_hash", info_hash.as_bytes());
            key_int(out, "port", i64::from(*port));
            key_flag(out, "seed", *seed);
            key_bytes(out, "token", token);
        }
        QueryKind::SampleInfohashes { target, want: w } => {
            key_bytes(out, "id", id);
            key_bytes(out, "target", target.as_bytes());
            want(out, *w);
        }
        QueryKind::Get {
            target,
            seq,
            want: w,
        } => {
            key_bytes(out, "id", id);
            if let Some(seq) = seq {
                key_int(out, "seq", *seq);
            }
            key_bytes(out, "target", target.as_bytes());
            want(out, *w);
        }
        QueryKind::Put(put) => {
            if let Some(cas) = put.cas {
                key_int(out, "cas", cas);
            }
            key_bytes(out, "id", id);
            if let Some(k) = &put.key {
                key_bytes(out, "k", k);
            }
            if let Some(salt) = &put.salt {
                key_bytes(out, "salt", salt);
            }
            if let Some(seq) = put.seq {
                key_int(out, "seq", seq);
            }
            if let Some(sig) = &put.signature {
                key_bytes(out, "sig", sig);
            }
            // Not in BEP 44's put, but the mainline crate requires it (others ignore it).
            let target = match &put.key {
                Some(k) => crate::items::mutable_target(k, put.salt.as_deref().unwrap_or(b"")),
                None => crate::items::immutable_target(&put.value),
            };
            key_bytes(out, "target", &target.0);
            key_bytes(out, "token", &put.token);
            key(out, "v");
            out.extend_from_slice(put.value.as_bytes());
        }
    }
    out.push(b'e');
}

fn node_list(out: &mut Vec<u8>, name: &str, nodes: &[NodeInfo], v4: bool) {
    let entry_len = if v4 {
        compact::NODE_V4_LEN
    } else {
        compact::NODE_V6_LEN
    };
    let count = nodes.iter().filter(|n| n.addr.is_ipv4() == v4).count();
    key(out, name);
    put_decimal(out, (count * entry_len) as u64);
    out.push(b':');
    for node in nodes.iter().filter(|n| n.addr.is_ipv4() == v4) {
        compact::encode_node(out, node);
    }
}

/// Reply keys in sorted order: BFpe, BFsd, id, interval, k, nodes, nodes6, num, samples,
/// seq, sig, token, v, values. `parts` replaces `r.nodes`, `r.nodes6` and `r.token` where
/// given.
fn reply(r: &Response, parts: ReplyParts<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    if let Some(bloom) = &r.bloom_peers {
        key_bytes(out, "BFpe", &bloom[..]);
    }
    if let Some(bloom) = &r.bloom_seeds {
        key_bytes(out, "BFsd", &bloom[..]);
    }
    key_bytes(out, "id", r.id.as_bytes());
    if let Some(interval) = r.interval {
        key_int(out, "interval", interval);
    }
    if let Some(k) = &r.key {
        key_bytes(out, "k", k);
    }
    if let Some(bytes) = parts.nodes {
        key_bytes(out, "nodes", bytes);
    } else if let Some(nodes) = &r.nodes {
        node_list(out, "nodes", nodes, true);
    }
    if let Some(bytes) = parts.nodes6 {
        key_bytes(out, "nodes6", bytes);
    } else if let Some(nodes) = &r.nodes6 {
        node_list(out, "nodes6", nodes, false);
    }
    if let Some(num) = r.num {
        key_int(out, "num", num);
    }
    if let Some(samples) = &r.samples {
        key(out, "samples");
        put_decimal(out, (samples.len() * 20) as u64);
        out.push(b':');
        for sample in samples {
            out.extend_from_slice(sample.as_bytes());
        }
    }
    if let Some(seq) = r.seq {
        key_int(out, "seq", seq);
    }
    if let Some(sig) = &r.signature {
        key_bytes(out, "sig", sig);
    }
    if let Some(token) = parts.token.or(r.token.as_deref()) {
        key_bytes(out, "token", token);
    }
    if let Some(value) = &r.value {
        key(out, "v");
        out.extend_from_slice(value.as_bytes());
    }
    if let Some(values) = &r.values {
        key(out, "values");
        out.push(b'l');
        out.reserve(values.len() * (compact::PEER_V6_LEN + 3) + 1);
        for peer in values {
            value_string(out, peer);
        }
        out.push(b'e');
    }
    out.push(b'e');
}

/// Appends `peer` as a compact-address byte string (`6:` and 6 bytes, or `18:` and 18),
/// assembled on the stack and appended at once.
#[inline]
fn value_string(out: &mut Vec<u8>, peer: &SocketAddr) {
    let port = peer.port().to_be_bytes();
    match peer.ip() {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            out.extend_from_slice(&[b'6', b':', a, b, c, d, port[0], port[1]]);
        }
        IpAddr::V6(ip) => {
            let mut entry = [0u8; 3 + compact::PEER_V6_LEN];
            entry[..3].copy_from_slice(b"18:");
            entry[3..19].copy_from_slice(&ip.octets());
            entry[19..].copy_from_slice(&port);
            out.extend_from_slice(&entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for value in [0, 1, 9, 10, 99, 100, 208, 65_535, u64::MAX] {
            let mut out = Vec::new();
            put_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }

    #[test]
    fn integers_are_minimal() {
        for (value, text) in [
            (0, "i0e"),
            (-1, "i-1e"),
            (42, "i42e"),
            (i64::MIN, "i-9223372036854775808e"),
        ] {
            let mut out = Vec::new();
            put_int(&mut out, value);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn values_are_length_prefixed_compact_addresses() {
        for text in ["1.2.3.4:6881", "[2001:db8::1]:443", "[::ffff:1.2.3.4]:1"] {
            let peer: SocketAddr = text.parse().unwrap();
            let mut want = Vec::new();
            put_decimal(&mut want, compact::addr_len(&peer) as u64);
            want.push(b':');
            compact::encode_addr(&mut want, &peer);
            let mut out = Vec::new();
            value_string(&mut out, &peer);
            assert_eq!(out, want, "{text}");
            assert_eq!(
                compact::decode_addr(&out[out.len() - compact::addr_len(&peer)..]),
                Some(peer)
            );
        }
    }
}
