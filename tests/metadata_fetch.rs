//! Metadata fetches (BEP 9 over BEP 10) against scripted fake peers on loopback: a good peer's
//! multi-piece metadata is reassembled, checked and parsed; every hostile peer is dropped with
//! its failure reason and nothing of it is reported; the fetcher's limits hold.

mod metadata_fake;

use std::collections::HashMap;
use std::time::Duration;

use btdht::InfoHash;
use btdht::metadata::{
    Event, Failure, FetchConfig, Fetcher, FetcherConfig, InfoError, MetaVersion, Refused, Stage,
    fetch,
};
use metadata_fake::{Script, closed_port, info_dict, many_files, sha1, spawn};

/// Short deadlines, so the deadline cases end quickly.
fn config() -> FetchConfig {
    FetchConfig {
        connect_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(2),
        piece_timeout: Duration::from_millis(700),
        ..FetchConfig::default()
    }
}

#[test]
fn a_good_peer_serves_multi_piece_metadata() {
    let files = many_files(1000);
    let info = info_dict("many", &files);
    assert!(
        info.len() > 2 * btdht::metadata::PIECE_SIZE,
        "{}",
        info.len()
    );
    let hash = sha1(&info);
    let peer = spawn(info.clone(), Script::Good);
    // A window smaller than the piece count exercises the refills.
    let metadata = fetch(
        hash,
        peer,
        &FetchConfig {
            window: 2,
            ..config()
        },
    )
    .unwrap();
    assert_eq!(metadata.info_hash, hash);
    assert_eq!(metadata.info_bytes, info);
    let parsed = &metadata.info;
    assert_eq!(parsed.name, "many");
    assert_eq!(parsed.piece_length, 16384);
    assert_eq!(parsed.version, MetaVersion::V1);
    assert!(!parsed.private);
    assert_eq!(parsed.file_count, 1000);
    assert_eq!(parsed.files.len(), 1000);
    assert_eq!(parsed.total_size, files.iter().map(|(_, l)| l).sum::<u64>());
    for (got, (path, length)) in parsed.files.iter().zip(&files) {
        assert_eq!(&got.path, path);
        assert_eq!(got.length, *length);
    }
    // The .torrent file's info dictionary is the one received.
    let torrent = metadata.torrent_file();
    assert_eq!(sha1(&torrent[7..torrent.len() - 1]), hash);
    assert!(torrent.starts_with(b"d4:info") && torrent.ends_with(b"e"));
}

#[test]
fn the_file_list_is_capped() {
    let files = many_files(50);
    let info = info_dict("capped", &files);
    let peer = spawn(info.clone(), Script::Good);
    let metadata = fetch(
        sha1(&info),
        peer,
        &FetchConfig {
            max_files: 10,
            ..config()
        },
    )
    .unwrap();
    assert_eq!(metadata.info.files.len(), 10);
    assert_eq!(metadata.info.file_count, 50);
    assert_eq!(
        metadata.info.total_size,
        files.iter().map(|(_, l)| l).sum::<u64>()
    );
}

#[test]
fn hostile_peers_are_dropped_with_their_reason() {
    let info = info_dict("hostile", &many_files(1000));
    let hash = sha1(&info);
    let other = info_dict("other", &many_files(10));
    let not_a_dict = b"li1ee".to_vec();
    let cases: Vec<(&str, std::net::SocketAddr, InfoHash, Failure)> = vec![
        (
            "wrong hash",
            spawn(other, Script::Good),
            hash,
            Failure::HashMismatch,
        ),
        (
            "hashes right, not an info dictionary",
            spawn(not_a_dict.clone(), Script::Good),
            sha1(&not_a_dict),
            Failure::BadInfo(InfoError::NotADict),
        ),
        (
            "oversized metadata_size",
            spawn(info.clone(), Script::Oversized),
            hash,
            Failure::MetadataTooLarge(11 * 1024 * 1024),
        ),
        (
            "endless slow pieces",
            spawn(info.clone(), Script::SlowPieces),
            hash,
            Failure::Timeout(Stage::Pieces),
        ),
        (
            "garbage handshake",
            spawn(info.clone(), Script::GarbageHandshake),
            hash,
            Failure::NotBitTorrent,
        ),
        (
            "garbage piece",
            spawn(info.clone(), Script::GarbagePiece),
            hash,
            Failure::Garbage,
        ),
        (
            "disconnect mid-way",
            spawn(info.clone(), Script::DisconnectMidway),
            hash,
            Failure::Closed(Stage::Pieces),
        ),
        (
            "reject",
            spawn(info.clone(), Script::Reject),
            hash,
            Failure::Rejected(0),
        ),
        (
            "piece of the wrong size",
            spawn(info.clone(), Script::WrongPieceSize),
            hash,
            Failure::WrongPieceSize {
                piece: 0,
                len: btdht::metadata::PIECE_SIZE - 1,
            },
        ),
        (
            "no extension bit",
            spawn(info.clone(), Script::NoExtensions),
            hash,
            Failure::NoExtensionProtocol,
        ),
        (
            "no ut_metadata",
            spawn(info.clone(), Script::NoMetadata),
            hash,
            Failure::NoMetadataExtension,
        ),
        (
            "4 GiB message",
            spawn(info.clone(), Script::HugeMessage),
            hash,
            Failure::MessageTooLong(u32::MAX),
        ),
        (
            "unrequested piece",
            spawn(info.clone(), Script::UnrequestedPiece),
            hash,
            Failure::UnexpectedPiece(99),
        ),
        (
            "silent",
            spawn(info.clone(), Script::Silent),
            hash,
            Failure::Timeout(Stage::Handshake),
        ),
        (
            "nothing listening",
            closed_port(),
            hash,
            Failure::Io(Stage::Connect, std::io::ErrorKind::ConnectionRefused),
        ),
    ];

    // One at a time through fetch()...
    for (name, peer, hash, expected) in &cases {
        assert_eq!(
            fetch(*hash, *peer, &config()).as_ref().err(),
            Some(expected),
            "{name}"
        );
    }

    // ...and all at once through a fetcher with fewer connections than peers.
    let mut fetcher = Fetcher::new(FetcherConfig {
        fetch: config(),
        connections: 4,
        ..FetcherConfig::default()
    })
    .unwrap();
    for (_, peer, hash, _) in &cases {
        fetcher.submit(*hash, *peer).unwrap();
    }
    let mut failures = HashMap::new();
    for _ in &cases {
        match fetcher
            .events()
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
        {
            Event::Failed { peer, failure, .. } => {
                failures.insert(peer, failure);
            }
            Event::Fetched { peer, .. } => panic!("{peer} reported metadata"),
        }
    }
    for (name, peer, _, expected) in &cases {
        assert_eq!(failures.get(peer), Some(expected), "{name}");
    }
    assert!(fetcher.events().try_recv().is_err());
    fetcher.shutdown();
}

#[test]
fn the_fetcher_bars_a_peer_after_its_failures_but_never_one_that_delivers() {
    let info = info_dict("limits", &many_files(3));
    let hash = sha1(&info);
    let peer = spawn(info.clone(), Script::Good);
    let mut fetcher = Fetcher::new(FetcherConfig {
        fetch: config(),
        connections: 1,
        queue: 8,
        max_failures_per_peer: 2,
        ..FetcherConfig::default()
    })
    .unwrap();
    // A peer that delivers is given every job (a seedbox serves many torrents).
    for _ in 0..4 {
        fetcher.submit(hash, peer).unwrap();
    }
    for _ in 0..4 {
        match fetcher
            .events()
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
        {
            Event::Fetched {
                peer: from,
                metadata,
            } => {
                assert_eq!(from, peer);
                assert_eq!(metadata.info.name, "limits");
                assert_eq!(metadata.info_bytes, info);
            }
            Event::Failed { failure, .. } => panic!("{failure}"),
        }
    }
    // A peer that fails: the jobs queued behind its second failure are not tried, and new
    // ones are refused.
    let dead = closed_port();
    for _ in 0..4 {
        fetcher.submit(hash, dead).unwrap();
    }
    let mut kinds = Vec::new();
    for _ in 0..4 {
        match fetcher
            .events()
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
        {
            Event::Failed { failure, .. } => kinds.push(failure.kind()),
            Event::Fetched { .. } => panic!("a closed port delivered"),
        }
    }
    assert_eq!(
        kinds,
        ["io", "io", "peer_failed_before", "peer_failed_before"]
    );
    assert_eq!(fetcher.submit(hash, dead), Err(Refused::PeerFailures));
    fetcher.submit(hash, peer).unwrap();

    // A silent peer holds the one connection; the queue takes one job, then refuses.
    let silent = spawn(info.clone(), Script::Silent);
    let mut fetcher = Fetcher::new(FetcherConfig {
        fetch: config(),
        connections: 1,
        queue: 1,
        ..FetcherConfig::default()
    })
    .unwrap();
    fetcher.submit(hash, silent).unwrap();
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        fetcher.submit(hash, closed_port()) == Err(Refused::QueueFull)
    });
    assert!(refused);
    fetcher.shutdown();
}

#[test]
fn a_v2_torrent_is_checked_against_its_truncated_sha256() {
    use sha2::{Digest, Sha256};
    let info =
        b"d9:file treed5:a.txtd0:d6:lengthi5e11:pieces root32:rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrreee\
12:meta versioni2e4:name2:v212:piece lengthi16384ee"
            .to_vec();
    let hash = InfoHash::from_slice(&Sha256::digest(&info)[..20]).unwrap();
    let peer = spawn(info.clone(), Script::Good);
    let metadata = fetch(hash, peer, &config()).unwrap();
    assert_eq!(metadata.info.version, MetaVersion::V2);
    assert_eq!(metadata.info.name, "v2");
    assert_eq!(metadata.info.total_size, 5);
    assert_eq!(metadata.info.files[0].path, vec!["a.txt".to_string()]);
    // The same bytes under another hash are refused.
    let wrong = InfoHash::from_slice(&Sha256::digest(b"other")[..20]).unwrap();
    assert_eq!(fetch(wrong, peer, &config()), Err(Failure::HashMismatch));
}

mod no_panic {
    use btdht::metadata::Info;
    use btdht::metadata::wire::{
        ExtensionHandshake, HANDSHAKE_LEN, MetadataMessage, PeerHandshake,
    };
    use proptest::prelude::*;

    proptest! {
        /// The parsers of peer bytes return an error on anything, never panic.
        #[test]
        fn parsers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ExtensionHandshake::parse(&bytes);
            let _ = MetadataMessage::parse(&bytes);
            let _ = Info::parse(&bytes, 10);
            let mut handshake = [0u8; HANDSHAKE_LEN];
            for (slot, byte) in handshake.iter_mut().zip(&bytes) {
                *slot = *byte;
            }
            let _ = PeerHandshake::parse(&handshake);
        }

        /// Bencode-shaped input reaches deeper into the parsers.
        #[test]
        fn parsers_take_bencode_shaped_bytes(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("d".to_string()), Just("l".to_string()), Just("e".to_string()),
                    Just("4:name".to_string()), Just("5:files".to_string()), Just("6:length".to_string()),
                    Just("4:path".to_string()), Just("12:piece length".to_string()),
                    Just("9:file tree".to_string()), Just("0:".to_string()), Just("i-1e".to_string()),
                    Just("i16384e".to_string()), Just("8:msg_type".to_string()), Just("5:piece".to_string()),
                    Just("1:m".to_string()), Just("11:ut_metadata".to_string()), Just("i1e".to_string()),
                ],
                0..40,
            )
        ) {
            let bytes = parts.concat().into_bytes();
            let _ = ExtensionHandshake::parse(&bytes);
            let _ = MetadataMessage::parse(&bytes);
            let _ = Info::parse(&bytes, 10);
        }
    }
}
