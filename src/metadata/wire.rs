//! The peer-wire bytes of a metadata fetch: the BitTorrent handshake (BEP 3) with the
//! extension bit (BEP 10), message framing, the extension handshake, and the `ut_metadata`
//! messages (BEP 9).
//!
//! Encoders build whole messages; parsers take a message's payload and never panic. The
//! extension payloads are read with the crate's strict bencode reader: keys of a dictionary
//! must be sorted, as every mainstream client sends them.

use crate::InfoHash;
use crate::krpc::reader::{Reader, Token, parse_i64};

use super::Failure;

/// The protocol string of the handshake.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// The length of a handshake: length byte, protocol, reserved, info-hash, peer id.
pub const HANDSHAKE_LEN: usize = 68;
/// The reserved byte that carries the extension-protocol bit.
pub const EXTENSION_BYTE: usize = 5;
/// The extension-protocol bit in [`EXTENSION_BYTE`].
pub const EXTENSION_BIT: u8 = 0x10;
/// The message id of extension messages (BEP 10).
pub const EXTENDED: u8 = 20;
/// The extended message id of the extension handshake.
pub const EXTENSION_HANDSHAKE: u8 = 0;
/// The id under which we ask peers to send us `ut_metadata` messages.
pub const LOCAL_UT_METADATA: u8 = 1;
/// What our extension handshake says we are.
pub const CLIENT_NAME: &str = concat!("btdht ", env!("CARGO_PKG_VERSION"));

/// Nesting allowed in an extension message.
const MAX_DEPTH: usize = 16;

/// Our handshake for `info_hash`, announcing the extension protocol.
pub fn handshake(info_hash: &InfoHash, peer_id: &[u8; 20]) -> [u8; HANDSHAKE_LEN] {
    let mut out = [0u8; HANDSHAKE_LEN];
    out[0] = PROTOCOL.len() as u8;
    out[1..20].copy_from_slice(PROTOCOL);
    out[20 + EXTENSION_BYTE] |= EXTENSION_BIT;
    out[28..48].copy_from_slice(info_hash.as_bytes());
    out[48..68].copy_from_slice(peer_id);
    out
}

/// A peer's handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHandshake {
    /// The reserved bytes (extension bits).
    pub reserved: [u8; 8],
    /// The info-hash it names.
    pub info_hash: InfoHash,
    /// The peer's id.
    pub peer_id: [u8; 20],
}

impl PeerHandshake {
    /// Parses a handshake; [`Failure::NotBitTorrent`] if the protocol string is not BEP 3's.
    pub fn parse(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, Failure> {
        if bytes[0] as usize != PROTOCOL.len() || &bytes[1..20] != PROTOCOL {
            return Err(Failure::NotBitTorrent);
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[20..28]);
        let mut hash = [0u8; 20];
        hash.copy_from_slice(&bytes[28..48]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&bytes[48..68]);
        Ok(PeerHandshake {
            reserved,
            info_hash: InfoHash::from_bytes(hash),
            peer_id,
        })
    }

    /// Whether the peer supports the extension protocol.
    pub fn supports_extensions(&self) -> bool {
        self.reserved[EXTENSION_BYTE] & EXTENSION_BIT != 0
    }
}

/// An extension message (id 20) with extended id `ext_id` and bencoded `payload`, framed.
pub fn extended(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len() + 2).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(EXTENDED);
    out.push(ext_id);
    out.extend_from_slice(payload);
    out
}

/// Our extension handshake, framed: `ut_metadata` under [`LOCAL_UT_METADATA`], and our name.
pub fn extension_handshake() -> Vec<u8> {
    let payload = format!(
        "d1:md11:ut_metadatai{LOCAL_UT_METADATA}ee1:v{}:{CLIENT_NAME}e",
        CLIENT_NAME.len()
    );
    extended(EXTENSION_HANDSHAKE, payload.as_bytes())
}

/// A `ut_metadata` request for `piece`, framed, to a peer that uses `peer_ut_metadata`.
pub fn request(peer_ut_metadata: u8, piece: u32) -> Vec<u8> {
    let payload = format!("d8:msg_typei0e5:piecei{piece}ee");
    extended(peer_ut_metadata, payload.as_bytes())
}

/// What we use of a peer's extension handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionHandshake {
    /// The peer's id for `ut_metadata` (`None`: absent, or 0 for disabled).
    pub ut_metadata: Option<u8>,
    /// The metadata size it announces.
    pub metadata_size: Option<i64>,
}

impl ExtensionHandshake {
    /// Parses the bencoded payload of an extension handshake; [`Failure::Garbage`] if it is not
    /// a dictionary or `m.ut_metadata` is not a one-byte id.
    pub fn parse(payload: &[u8]) -> Result<Self, Failure> {
        parse_extension_handshake(payload).ok_or(Failure::Garbage)
    }
}

fn parse_extension_handshake(payload: &[u8]) -> Option<ExtensionHandshake> {
    let mut reader = Reader::new(payload, MAX_DEPTH);
    if reader.value().ok()? != Token::Dict {
        return None;
    }
    let open = 1;
    let mut out = ExtensionHandshake::default();
    let mut previous = None;
    while let Some(key) = reader.key(&mut previous).ok()? {
        let value = reader.value().ok()?;
        match (key, value) {
            (b"m", Token::Dict) => {
                let open = reader.open(open).ok()?;
                let mut previous = None;
                while let Some(key) = reader.key(&mut previous).ok()? {
                    let value = reader.value().ok()?;
                    match (key, value) {
                        (b"ut_metadata", Token::Int(digits)) => {
                            let id = parse_i64(digits)?;
                            let id = u8::try_from(id).ok()?;
                            out.ut_metadata = (id != 0).then_some(id);
                        }
                        (_, value) => reader.skip(value, open).ok()?,
                    }
                }
            }
            (b"metadata_size", Token::Int(digits)) => out.metadata_size = parse_i64(digits),
            (_, value) => reader.skip(value, open).ok()?,
        }
    }
    Some(out)
}

/// A `ut_metadata` message (BEP 9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    /// The peer asks us for a piece.
    Request(i64),
    /// A piece: its index, the `total_size` it states, and its bytes.
    Data {
        /// The piece index.
        piece: i64,
        /// The stated total metadata size.
        total_size: Option<i64>,
        /// The piece's bytes (what follows the dictionary).
        payload: &'a [u8],
    },
    /// The peer will not send a piece.
    Reject(i64),
    /// A message type this module does not know (ignored).
    Other,
}

impl<'a> MetadataMessage<'a> {
    /// Parses the payload of a `ut_metadata` message: a dictionary, followed by the piece's
    /// bytes in a data message. [`Failure::Garbage`] if it is not one.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Failure> {
        parse_metadata_message(payload).ok_or(Failure::Garbage)
    }
}

fn parse_metadata_message(payload: &[u8]) -> Option<MetadataMessage<'_>> {
    let mut reader = Reader::new(payload, MAX_DEPTH);
    if reader.value().ok()? != Token::Dict {
        return None;
    }
    let (mut msg_type, mut piece, mut total_size) = (None, None, None);
    let mut previous = None;
    while let Some(key) = reader.key(&mut previous).ok()? {
        let value = reader.value().ok()?;
        match (key, value) {
            (b"msg_type", Token::Int(digits)) => msg_type = Some(parse_i64(digits)?),
            (b"piece", Token::Int(digits)) => piece = Some(parse_i64(digits)?),
            (b"total_size", Token::Int(digits)) => total_size = Some(parse_i64(digits)?),
            (_, value) => reader.skip(value, 1).ok()?,
        }
    }
    let rest = payload.get(reader.pos()..).unwrap_or_default();
    Some(match msg_type? {
        0 => MetadataMessage::Request(piece?),
        1 => MetadataMessage::Data {
            piece: piece?,
            total_size,
            payload: rest,
        },
        2 => MetadataMessage::Reject(piece?),
        _ => MetadataMessage::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips() {
        let hash = InfoHash::from_bytes([7; 20]);
        let bytes = handshake(&hash, &[9; 20]);
        let parsed = PeerHandshake::parse(&bytes).unwrap();
        assert_eq!(parsed.info_hash, hash);
        assert_eq!(parsed.peer_id, [9; 20]);
        assert!(parsed.supports_extensions());
        let mut other = bytes;
        other[3] = b'X';
        assert_eq!(PeerHandshake::parse(&other), Err(Failure::NotBitTorrent));
    }

    #[test]
    fn extension_handshake_is_parsed() {
        let framed = extension_handshake();
        assert_eq!(&framed[4..6], &[EXTENDED, EXTENSION_HANDSHAKE]);
        let ours = ExtensionHandshake::parse(&framed[6..]).unwrap();
        assert_eq!(ours.ut_metadata, Some(LOCAL_UT_METADATA));
        assert_eq!(ours.metadata_size, None);
        let theirs = ExtensionHandshake::parse(
            b"d1:md11:lt_donthavei2e11:ut_metadatai3ee13:metadata_sizei31235e1:pi6881ee",
        )
        .unwrap();
        assert_eq!(theirs.ut_metadata, Some(3));
        assert_eq!(theirs.metadata_size, Some(31235));
        let disabled = ExtensionHandshake::parse(b"d1:md11:ut_metadatai0eee").unwrap();
        assert_eq!(disabled.ut_metadata, None);
        for garbage in [
            &b"li1ee"[..],
            b"d1:md11:ut_metadatai300eee",
            b"d1:mi1e1:ai1ee",
            b"d1:md",
            b"\xff\x00",
        ] {
            assert_eq!(ExtensionHandshake::parse(garbage), Err(Failure::Garbage));
        }
    }

    #[test]
    fn metadata_messages_are_parsed() {
        let framed = request(3, 5);
        assert_eq!(&framed[4..6], &[EXTENDED, 3]);
        assert_eq!(
            MetadataMessage::parse(&framed[6..]),
            Ok(MetadataMessage::Request(5))
        );
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc"),
            Ok(MetadataMessage::Data {
                piece: 0,
                total_size: Some(3),
                payload: b"abc"
            })
        );
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei2e5:piecei4ee"),
            Ok(MetadataMessage::Reject(4))
        );
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei7ee"),
            Ok(MetadataMessage::Other)
        );
        for garbage in [&b"d5:piecei1ee"[..], b"d8:msg_typei1ee", b"i1e", b""] {
            assert_eq!(MetadataMessage::parse(garbage), Err(Failure::Garbage));
        }
    }
}
