//! A scripted fake BitTorrent peer for the metadata tests: it listens on loopback, answers the
//! handshakes, and serves (or mangles) an info dictionary as its [`Script`] says; and a builder
//! of multi-file info dictionaries.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use btdht::InfoHash;
use btdht::metadata::PIECE_SIZE;
use btdht::metadata::wire::{self, ExtensionHandshake, MetadataMessage, PeerHandshake};
use sha1::{Digest, Sha1};

/// What the fake peer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Script {
    /// Serves every piece (after a bitfield and a keep-alive of noise).
    Good,
    /// Announces a `metadata_size` of 11 MiB.
    Oversized,
    /// Trickles each piece message one byte every 100 ms.
    SlowPieces,
    /// Answers the handshake with bytes that are not one.
    GarbageHandshake,
    /// Answers a request with an extension message that is not bencode.
    GarbagePiece,
    /// Sends the first piece, then closes the connection.
    DisconnectMidway,
    /// Rejects every request.
    Reject,
    /// Sends pieces one byte short.
    WrongPieceSize,
    /// A handshake without the extension bit.
    NoExtensions,
    /// An extension handshake without `ut_metadata`.
    NoMetadata,
    /// A message whose length prefix is 4 GiB.
    HugeMessage,
    /// Answers with a piece index that was never requested.
    UnrequestedPiece,
    /// Accepts the connection and says nothing.
    Silent,
}

/// The id the fake peer asks us to use for `ut_metadata` (not ours, to test the mapping).
pub(crate) const PEER_UT_METADATA: u8 = 3;

/// Starts a fake peer on `ip` serving `info`; returns its address. It serves any number of
/// connections, each on a thread of its own, until the test process exits.
pub(crate) fn spawn_on(ip: IpAddr, info: Vec<u8>, script: Script) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let info = info.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &info, script);
            });
        }
    });
    addr
}

/// [`spawn_on`] 127.0.0.1.
pub(crate) fn spawn(info: Vec<u8>, script: Script) -> SocketAddr {
    spawn_on([127, 0, 0, 1].into(), info, script)
}

/// A loopback address where nothing listens.
pub(crate) fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix)?;
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

fn data_message(to: u8, piece: i64, total: usize, chunk: &[u8]) -> Vec<u8> {
    let mut payload = format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{total}ee").into_bytes();
    payload.extend_from_slice(chunk);
    wire::extended(to, &payload)
}

fn serve(mut stream: TcpStream, info: &[u8], script: Script) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut handshake = [0u8; wire::HANDSHAKE_LEN];
    stream.read_exact(&mut handshake)?;
    if script == Script::Silent {
        std::thread::sleep(Duration::from_secs(30));
        return Ok(());
    }
    if script == Script::GarbageHandshake {
        return stream.write_all(&[0xab; wire::HANDSHAKE_LEN]);
    }
    let theirs = PeerHandshake::parse(&handshake).map_err(std::io::Error::other)?;
    let mut ours = wire::handshake(&theirs.info_hash, &[b'F'; 20]);
    if script == Script::NoExtensions {
        ours[20 + wire::EXTENSION_BYTE] = 0;
    }
    stream.write_all(&ours)?;
    // Noise a real peer sends: a bitfield and a keep-alive.
    stream.write_all(&[0, 0, 0, 3, 5, 0xff, 0x80, 0, 0, 0, 0])?;
    let size = if script == Script::Oversized {
        11 * 1024 * 1024
    } else {
        info.len()
    };
    let m = if script == Script::NoMetadata {
        "d11:lt_donthavei7ee".to_string()
    } else {
        format!("d11:ut_metadatai{PEER_UT_METADATA}ee")
    };
    let ext = format!("d1:m{m}13:metadata_sizei{size}e1:v4:fakee");
    stream.write_all(&wire::extended(0, ext.as_bytes()))?;
    if script == Script::HugeMessage {
        stream.write_all(&[0xff, 0xff, 0xff, 0xff, wire::EXTENDED])?;
    }
    let mut to = None;
    let mut sent = 0;
    loop {
        let body = read_message(&mut stream)?;
        let [wire::EXTENDED, ext_id, payload @ ..] = &body[..] else {
            continue;
        };
        if *ext_id == 0 {
            to = ExtensionHandshake::parse(payload)
                .ok()
                .and_then(|h| h.ut_metadata);
            continue;
        }
        let Ok(MetadataMessage::Request(piece)) = MetadataMessage::parse(payload) else {
            continue;
        };
        let to = to.ok_or_else(|| std::io::Error::other("no extension handshake"))?;
        match script {
            Script::Reject => {
                let reject = format!("d8:msg_typei2e5:piecei{piece}ee");
                stream.write_all(&wire::extended(to, reject.as_bytes()))?;
            }
            Script::GarbagePiece => {
                stream.write_all(&wire::extended(to, b"this is not bencode"))?;
            }
            Script::UnrequestedPiece => {
                stream.write_all(&data_message(to, 99, info.len(), b"xyz"))?;
            }
            Script::DisconnectMidway if sent >= 1 => return Ok(()),
            _ => {
                let start = piece as usize * PIECE_SIZE;
                let end = (start + PIECE_SIZE).min(info.len());
                let mut chunk = info[start..end].to_vec();
                if script == Script::WrongPieceSize {
                    chunk.pop();
                }
                let message = data_message(to, piece, info.len(), &chunk);
                if script == Script::SlowPieces {
                    for byte in message {
                        stream.write_all(&[byte])?;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                } else {
                    stream.write_all(&message)?;
                }
                sent += 1;
            }
        }
    }
}

/// The SHA-1 of `bytes` as an info-hash.
pub(crate) fn sha1(bytes: &[u8]) -> InfoHash {
    InfoHash::from_slice(&Sha1::digest(bytes)).unwrap()
}

/// A v1 multi-file info dictionary named `name` with `files` (path components, length).
pub(crate) fn info_dict(name: &str, files: &[(Vec<String>, u64)]) -> Vec<u8> {
    let mut out = b"d5:filesl".to_vec();
    for (path, length) in files {
        out.extend_from_slice(format!("d6:lengthi{length}e4:pathl").as_bytes());
        for part in path {
            out.extend_from_slice(format!("{}:{part}", part.len()).as_bytes());
        }
        out.extend_from_slice(b"ee");
    }
    out.extend_from_slice(format!("e4:name{}:{name}", name.len()).as_bytes());
    out.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
    out.extend_from_slice(&[b'x'; 20]);
    out.push(b'e');
    out
}

/// `count` files spread over a few directories, of lengths 1, 8, 15, ...
pub(crate) fn many_files(count: usize) -> Vec<(Vec<String>, u64)> {
    (0..count)
        .map(|i| {
            (
                vec![format!("dir-{}", i % 7), format!("file-{i:05}.bin")],
                1 + 7 * i as u64,
            )
        })
        .collect()
}
