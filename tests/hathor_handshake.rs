//! The handshake client against the fake Hathor node on 127.0.0.1 (throwaway CA per run).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use btdht::hathor::entrypoint::PeerAddress;
use btdht::hathor::fake::{
    DeclaredEntrypoints, FakeEvent, FakeNode, FakeNodeConfig, Fault, TestPki,
};
use btdht::hathor::handshake::{
    HandshakeConfig, HandshakeFailure, Stage, VerifiedPeer, handshake, handshake_endpoint,
};
use btdht::hathor::network::NetworkProfile;
use btdht::hathor::protocol::{FailureReason, LineConn, TlsFailure};
use btdht::hathor::tls::{client_config_without_cert, server_name_for};
use rustls::{ClientConnection, StreamOwned};

fn pki() -> &'static TestPki {
    TestPki::shared()
}

fn client_config() -> HandshakeConfig {
    let pki = pki();
    let creds = pki.client_credentials().unwrap();
    let mut cfg =
        HandshakeConfig::new(NetworkProfile::testnet_india(), pki.client.clone(), &creds).unwrap();
    cfg.step_timeout = Duration::from_secs(3);
    cfg
}

fn start(f: impl FnOnce(&mut FakeNodeConfig)) -> FakeNode {
    let mut cfg = FakeNodeConfig::new(pki());
    f(&mut cfg);
    FakeNode::start(cfg).unwrap()
}

fn run(node: &FakeNode, cfg: &HandshakeConfig) -> Result<VerifiedPeer, HandshakeFailure> {
    handshake(node.addr(), None, cfg)
}

fn fail_with(f: impl FnOnce(&mut FakeNodeConfig)) -> (HandshakeFailure, FakeNode) {
    let node = start(f);
    match run(&node, &client_config()) {
        Ok(p) => panic!("verified a faulty node: {p:?}"),
        Err(e) => (e, node),
    }
}

/// The fake received `line` from the client.
fn fake_received(node: &FakeNode, line: &str) -> bool {
    node.wait_for(Duration::from_secs(3), |ev| {
        ev.iter()
            .any(|e| matches!(e, FakeEvent::Received(l) if l == line))
    })
}

fn fake_sent_error(node: &FakeNode, text: &str) -> bool {
    node.wait_for(Duration::from_secs(3), |ev| {
        ev.iter()
            .any(|e| matches!(e, FakeEvent::SentError(t) if t == text))
    })
}

#[test]
fn happy_path() {
    let node = start(|_| {});
    let cfg = client_config();
    let peer = run(&node, &cfg).unwrap();
    assert_eq!(peer.id, node.id());
    assert_eq!(peer.id, pki().server.id());
    assert_eq!(
        peer.entrypoints,
        vec![PeerAddress::from_socket_addr(node.addr())]
    );
    assert!(peer.entrypoint_confirmed);
    assert_eq!(peer.app, "Hathor v0.72.0-fake");
    assert!(peer.capabilities.iter().any(|c| c == "sync-version"));
    assert_eq!(peer.sync_versions, vec!["v2".to_string()]);
    assert!(peer.clock_offset.abs() < 5.0);
    assert_eq!(
        peer.endpoint().to_string(),
        format!("tcp://127.0.0.1:{}/?id={}", node.addr().port(), node.id())
    );
    assert!(node.wait_for(Duration::from_secs(3), |ev| {
        ev.contains(&FakeEvent::Ready(pki().client.id()))
    }));
    // Dialled with ?id= of the right peer.
    let peer = handshake_endpoint(&node.endpoint(), &cfg).unwrap();
    assert_eq!(peer.id, node.id());
}

#[test]
fn gossip_window_collects_peers() {
    let other = btdht::hathor::protocol::GossipPeer {
        id: pki().stranger.id(),
        entrypoints: vec!["tcp://192.0.2.7:40403".parse().unwrap()],
    };
    let node = start(|c| c.peers = vec![other.clone()]);
    let mut cfg = client_config();
    cfg.gossip_window = Some(Duration::from_millis(500));
    let peer = run(&node, &cfg).unwrap();
    assert_eq!(peer.gossip, vec![other]);
}

#[test]
fn wrong_expected_id() {
    let node = start(|_| {});
    let err = handshake(node.addr(), Some(pki().stranger.id()), &client_config()).unwrap_err();
    assert_eq!(err.stage, Stage::PeerId);
    assert!(
        matches!(err.reason, FailureReason::PeerIdNotRequested { expected, remote }
        if expected == pki().stranger.id() && remote == node.id())
    );
    assert!(fake_received(
        &node,
        "ERROR Peer id different from the requested one."
    ));
}

#[test]
fn wrong_network() {
    let (err, node) = fail_with(|c| c.network = NetworkProfile::privatenet());
    assert_eq!(err.stage, Stage::Hello);
    assert_eq!(
        err.reason,
        FailureReason::WrongNetwork {
            remote: "privatenet".into()
        }
    );
    assert!(fake_sent_error(&node, "Wrong network."));
}

#[test]
fn different_genesis() {
    let mut other = NetworkProfile::custom("testnet-india", [[7; 32]; 3]).unwrap();
    other.settings_dict = NetworkProfile::testnet_india().settings_dict;
    let short = other.genesis_short_hash();
    let (err, node) = fail_with(move |c| c.network = other);
    assert_eq!(
        err.reason,
        FailureReason::DifferentGenesis { remote: short }
    );
    assert!(fake_sent_error(&node, "Different genesis."));
}

#[test]
fn timestamps() {
    let (err, node) = fail_with(|c| c.clock_offset = 200.0);
    assert!(
        matches!(err.reason, FailureReason::TimestampsTooFarApart { offset } if offset > 190.0)
    );
    assert!(fake_sent_error(&node, "Nodes timestamps too far apart."));
    let node = start(|c| c.clock_offset = 140.0);
    let peer = run(&node, &client_config()).unwrap();
    assert!((peer.clock_offset - 140.0).abs() < 5.0);
}

#[test]
fn sync_versions() {
    let (err, _n) = fail_with(|c| c.capabilities = vec!["whitelist".into()]);
    assert_eq!(err.reason, FailureReason::NoCompatibleSyncVersion);
    let (err, _n) = fail_with(|c| c.sync_versions = None);
    assert_eq!(err.reason, FailureReason::InvalidSyncProtocol);
    let (err, node) = fail_with(|c| c.sync_versions = Some(vec!["v1.1".into()]));
    assert_eq!(err.reason, FailureReason::NoCompatibleSyncVersion);
    assert!(fake_received(
        &node,
        "ERROR no compatible sync version to use"
    ));
}

#[test]
fn settings_dict_differs() {
    let (err, _n) = fail_with(|c| {
        let mut s = c.network.settings_dict.clone().unwrap();
        s.insert("MIN_TX_WEIGHT".into(), 1.into());
        c.network.settings_dict = Some(s);
    });
    assert_eq!(
        err.reason.hathor_error().unwrap(),
        r#"Settings values are different. {"P2PKH_VERSION_BYTE":"49","MULTISIG_VERSION_BYTE":"87","MIN_BLOCK_WEIGHT":21,"MIN_TX_WEIGHT":8,"BLOCK_DATA_MAX_SIZE":100}"#
    );
}

#[test]
fn invalid_hello() {
    let (err, _n) = fail_with(|c| c.fault = Fault::HelloPayload("not json".into()));
    assert_eq!(err.reason, FailureReason::InvalidHelloPayload);
    let (err, node) = fail_with(|c| {
        c.fault = Fault::HelloPayload(r#"{"app":"x","network":"testnet-india"}"#.into())
    });
    assert_eq!(err.reason, FailureReason::InvalidHelloPayload);
    assert!(fake_received(&node, "ERROR Invalid payload."));
}

#[test]
fn bad_peer_ids() {
    let (err, node) = fail_with(|c| c.fault = Fault::PeerIdId("11".repeat(32)));
    assert_eq!(err.stage, Stage::PeerId);
    assert_eq!(err.reason, FailureReason::IdDoesNotMatchKey);
    assert!(fake_received(
        &node,
        r#"ERROR Error processing "PEER-ID" command"#
    ));
    let (err, node) = fail_with(|c| c.fault = Fault::PeerIdId("ab".into()));
    assert_eq!(
        err.reason,
        FailureReason::UnparsablePeerId("expected 32 bytes, got 1 bytes".into())
    );
    assert!(fake_received(
        &node,
        "ERROR Unable to parse peer id. Reason: expected 32 bytes, got 1 bytes"
    ));
    let key = pki().stranger.public_key().to_base64();
    let (err, _n) = fail_with(move |c| c.fault = Fault::PeerIdPubKey(key));
    assert_eq!(err.reason, FailureReason::IdDoesNotMatchKey);
    let (err, _n) = fail_with(|c| c.fault = Fault::PeerIdPubKey("%%%".into()));
    assert!(matches!(err.reason, FailureReason::UnparsablePeerId(_)));
    let (err, _n) = fail_with(|c| c.fault = Fault::PeerIdPayload("[1,2".into()));
    assert_eq!(err.reason, FailureReason::InvalidPeerIdPayload);
}

#[test]
fn certificate_problems() {
    let stranger = pki().stranger.clone();
    let (err, node) = fail_with(move |c| c.cert_identity = Some(stranger));
    assert_eq!(err.reason, FailureReason::CertificateKeyMismatch);
    assert!(fake_received(
        &node,
        "ERROR Public keys from peer and certificate are not the same."
    ));
    let other_ca = pki().other_ca.clone();
    let (err, _n) = fail_with(move |c| c.cert_ca = Some(other_ca));
    assert_eq!(err.stage, Stage::Tls);
    assert_eq!(
        err.reason,
        FailureReason::Tls(TlsFailure::InvalidCertificate("UnknownIssuer".into()))
    );
}

#[test]
fn entrypoints() {
    let (err, node) =
        fail_with(|c| c.entrypoints = DeclaredEntrypoints::List(vec!["tcp://127.0.0.1:1".into()]));
    assert_eq!(err.reason, FailureReason::NotInEntrypoints);
    assert!(fake_received(
        &node,
        "ERROR Connection string is not in the entrypoints."
    ));

    // No entrypoints: accepted, not confirmed.
    let node = start(|c| c.entrypoints = DeclaredEntrypoints::None);
    let peer = run(&node, &client_config()).unwrap();
    assert!(peer.entrypoints.is_empty());
    assert!(!peer.entrypoint_confirmed);

    // Legacy ?id= of its own id: accepted, dropped, and checked like any entrypoint.
    let id = pki().server.id();
    let node = start(move |c| {
        c.entrypoints = DeclaredEntrypoints::List(vec![format!("tcp://10.0.0.1:40403/?id={id}")]);
    });
    let err = run(&node, &client_config()).unwrap_err();
    assert_eq!(err.reason, FailureReason::NotInEntrypoints);

    // Conflicting embedded id.
    let (err, _n) = fail_with(|c| {
        c.entrypoints =
            DeclaredEntrypoints::List(vec![format!("tcp://127.0.0.1:1/?id={}", "11".repeat(32))])
    });
    assert!(
        matches!(&err.reason, FailureReason::UnparsablePeerId(t) if t.starts_with("conflicting peer_id: 1111"))
    );

    // Too many.
    let many: Vec<String> = (1..=31).map(|p| format!("tcp://127.0.0.1:{p}")).collect();
    let (err, _n) = fail_with(move |c| c.entrypoints = DeclaredEntrypoints::List(many));
    assert_eq!(err.reason, FailureReason::TooManyEntrypoints(31));
}

#[test]
fn hostname_entrypoint_with_resolver() {
    // The fake declares a name; an injected resolver maps it to 127.0.0.1 (no DNS is used).
    let node =
        start(|c| c.entrypoints = DeclaredEntrypoints::OwnPortWithHost("fake.node.invalid".into()));
    let mut cfg = client_config();
    let err = run(&node, &cfg).unwrap_err();
    assert_eq!(
        err.reason,
        FailureReason::NotInEntrypoints,
        "no resolver: names never match"
    );
    cfg.resolver = Some(Arc::new(|h: &str| {
        if h == "fake.node.invalid" {
            vec!["127.0.0.1".parse().unwrap()]
        } else {
            vec![]
        }
    }));
    let peer = run(&node, &cfg).unwrap();
    assert!(peer.entrypoint_confirmed);
    assert_eq!(peer.entrypoints[0].host(), "fake.node.invalid");
    // Same name on another port: refused.
    let node = start(|c| {
        c.entrypoints = DeclaredEntrypoints::List(vec!["tcp://fake.node.invalid:1".into()])
    });
    assert_eq!(
        run(&node, &cfg).unwrap_err().reason,
        FailureReason::NotInEntrypoints
    );
}

#[test]
fn whitelist_and_client_cert() {
    // Whitelist-only node: proves its identity, then refuses us.
    let (err, _n) = fail_with(|c| c.whitelist = Some(vec![]));
    assert_eq!(err.stage, Stage::Ready);
    assert_eq!(
        err.reason,
        FailureReason::RemoteError("Connection rejected.".into())
    );
    assert_eq!(err.remote_id, Some(pki().server.id()));

    // A client without certificate is refused by a Hathor-like node (certificate required).
    let node = start(|_| {});
    let mut cfg = client_config();
    cfg.tls = client_config_without_cert(pki().ca.cert_der().clone()).unwrap();
    let err = run(&node, &cfg).unwrap_err();
    assert!(
        matches!(err.reason, FailureReason::Tls(TlsFailure::AlertReceived(ref a)) if a == "CertificateRequired"),
        "{err:?}"
    );

    // A node that does not ask for a client certificate then refuses our PEER-ID.
    let node = start(|c| c.require_client_cert = false);
    let err = run(&node, &cfg).unwrap_err();
    assert_eq!(
        err.reason,
        FailureReason::RemoteError(
            "Public keys from peer and certificate are not the same.".into()
        )
    );
    assert_eq!(err.stage, Stage::Ready);
}

#[test]
fn garbage_and_framing() {
    let (err, _n) = fail_with(|c| c.fault = Fault::LineBeforeHello(b"FOO bar".to_vec()));
    assert_eq!(err.reason, FailureReason::UnknownCommand("FOO".into()));
    let (err, _n) = fail_with(|c| c.fault = Fault::LineBeforeHello(vec![0xff, 0xfe, b' ', b'x']));
    assert_eq!(err.reason, FailureReason::NotUtf8);
    let (err, _n) = fail_with(|c| c.fault = Fault::OversizeLine);
    assert_eq!(err.reason, FailureReason::LineTooLong);
    let (err, node) = fail_with(|c| c.fault = Fault::LineBeforeHello(b"GET-PEERS".to_vec()));
    assert!(
        matches!(err.reason, FailureReason::UnexpectedCommand { ref cmd, .. } if cmd == "GET-PEERS")
    );
    assert!(fake_received(
        &node,
        "ERROR Invalid Command: ProtocolMessages.GET_PEERS "
    ));
    let (err, _n) = fail_with(|c| {
        c.fault =
            Fault::ErrorInsteadOfPeerId("Blocked (by x). Get in touch with Hathor team.".into())
    });
    assert_eq!(err.stage, Stage::PeerId);
    assert_eq!(
        err.reason,
        FailureReason::RemoteError("Blocked (by x). Get in touch with Hathor team.".into())
    );
    assert_eq!(err.remote_id, None);
}

#[test]
fn not_tls() {
    let (err, _n) = fail_with(|c| c.fault = Fault::PlainTcp);
    assert_eq!(err.stage, Stage::Tls);
    assert!(
        matches!(err.reason, FailureReason::Closed | FailureReason::Tls(_)),
        "{err:?}"
    );
    let (err, _n) =
        fail_with(|c| c.fault = Fault::PlainGarbage(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()));
    assert_eq!(err.stage, Stage::Tls);
    assert!(
        matches!(err.reason, FailureReason::Tls(TlsFailure::NotTls(_))),
        "{err:?}"
    );
}

#[test]
fn timeouts_and_closes() {
    let mut cfg = client_config();
    cfg.step_timeout = Duration::from_millis(400);
    for (fault, stage) in [
        (Fault::Silent, Stage::Hello),
        (Fault::SilentAfterHello, Stage::PeerId),
        (Fault::SilentAfterPeerId, Stage::Ready),
    ] {
        let node = start(|c| c.fault = fault.clone());
        let t0 = Instant::now();
        let err = run(&node, &cfg).unwrap_err();
        assert_eq!(
            (err.stage, err.reason.clone()),
            (stage, FailureReason::Timeout),
            "{fault:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(3));
    }
    let node = start(|c| c.fault = Fault::CloseAfterHello);
    let err = run(&node, &cfg).unwrap_err();
    assert_eq!(
        (err.stage, err.reason),
        (Stage::PeerId, FailureReason::Closed)
    );
    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = handshake(SocketAddr::from(([127, 0, 0, 1], port)), None, &cfg).unwrap_err();
    assert_eq!(err.stage, Stage::Connect);
}

// ---- The fake's own checks (Hathor's texts), driven by a raw line client. ----

type Raw = LineConn<StreamOwned<ClientConnection, TcpStream>>;

fn raw(node: &FakeNode) -> Raw {
    let creds = pki().client_credentials().unwrap();
    let conn = ClientConnection::new(creds.client_config().unwrap(), server_name_for(node.addr()))
        .unwrap();
    let tcp = TcpStream::connect(node.addr()).unwrap();
    LineConn::new(StreamOwned::new(conn, tcp))
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(3)
}

fn hello_json(network: &str, genesis: &str, ts_offset: f64, caps: &str, extra: &str) -> String {
    let ts = btdht::hathor::protocol::system_clock() + ts_offset;
    format!(
        r#"{{"app":"raw","network":"{network}","remote_address":"x","genesis_short_hash":"{genesis}","timestamp":{ts},"capabilities":{caps}{extra}}}"#
    )
}

fn good_hello() -> String {
    hello_json(
        "testnet-india",
        "f7438fb",
        0.0,
        r#"["whitelist","sync-version"]"#,
        r#","sync_versions":["v2"]"#,
    )
}

/// Sends `lines`, then returns the first ERROR text received.
fn error_for(node: &FakeNode, lines: &[(&str, String)]) -> String {
    let mut c = raw(node);
    for (cmd, payload) in lines {
        c.send(cmd, payload, Duration::from_secs(3)).unwrap();
    }
    loop {
        let (cmd, payload) = c.read_message(deadline()).unwrap();
        if cmd == "ERROR" {
            return payload;
        }
    }
}

#[test]
fn fake_checks_hello_like_hathor() {
    let node = start(|_| {});
    let cases: Vec<(String, &str)> = vec![
        (
            hello_json(
                "mainnet",
                "f7438fb",
                0.0,
                r#"["whitelist","sync-version"]"#,
                r#","sync_versions":["v2"]"#,
            ),
            "Wrong network.",
        ),
        (
            hello_json(
                "testnet-india",
                "0000000",
                0.0,
                r#"["whitelist","sync-version"]"#,
                r#","sync_versions":["v2"]"#,
            ),
            "Different genesis.",
        ),
        (
            hello_json(
                "testnet-india",
                "f7438fb",
                200.0,
                r#"["whitelist","sync-version"]"#,
                r#","sync_versions":["v2"]"#,
            ),
            "Nodes timestamps too far apart.",
        ),
        (
            hello_json("testnet-india", "f7438fb", 0.0, r#"["whitelist"]"#, ""),
            "no compatible sync version to use",
        ),
        (
            hello_json("testnet-india", "f7438fb", 0.0, r#"["sync-version"]"#, ""),
            "invalid protocol",
        ),
        (
            hello_json(
                "testnet-india",
                "f7438fb",
                0.0,
                r#"["sync-version"]"#,
                r#","sync_versions":["v2"],"settings_dict":{"X":1}"#,
            ),
            r#"Settings values are different. {"P2PKH_VERSION_BYTE":"49","MULTISIG_VERSION_BYTE":"87","MIN_BLOCK_WEIGHT":21,"MIN_TX_WEIGHT":8,"BLOCK_DATA_MAX_SIZE":100}"#,
        ),
        (r#"{"app":"x"}"#.to_string(), "Invalid payload."),
    ];
    for (hello, expected) in cases {
        assert_eq!(
            error_for(&node, &[("HELLO", hello.clone())]),
            expected,
            "{hello}"
        );
    }
    assert_eq!(
        error_for(&node, &[("GET-PEERS", String::new())]),
        "Invalid Command: ProtocolMessages.GET_PEERS "
    );
    // Whitelisted network: the capability is required first.
    let wl = start(|c| c.network = NetworkProfile::mainnet());
    let h = hello_json(
        "mainnet",
        "3fdff62",
        0.0,
        r#"["sync-version"]"#,
        r#","sync_versions":["v2"]"#,
    );
    assert_eq!(
        error_for(&wl, &[("HELLO", h)]),
        "Must have whitelist capability."
    );
}

#[test]
fn fake_checks_peer_id_like_hathor() {
    let node = start(|_| {});
    let client = &pki().client;
    let stranger = &pki().stranger;
    let pid = |id: &str, key: &str, eps: &str| {
        format!(r#"{{"id":"{id}","pubKey":"{key}","entrypoints":{eps}}}"#)
    };
    let ck = client.public_key().to_base64();
    let cases = vec![
        (
            pid("ab", &ck, "[]"),
            "Unable to parse peer id. Reason: expected 32 bytes, got 1 bytes".to_string(),
        ),
        (
            pid(&"11".repeat(32), &ck, "[]"),
            r#"Error processing "PEER-ID" command"#.to_string(),
        ),
        (
            "nope".to_string(),
            r#"Error processing "PEER-ID" command"#.to_string(),
        ),
        (
            pid(
                &stranger.id().to_hex(),
                &stranger.public_key().to_base64(),
                "[]",
            ),
            "Public keys from peer and certificate are not the same.".to_string(),
        ),
        (
            pid(
                &pki().server.id().to_hex(),
                &pki().server.public_key().to_base64(),
                "[]",
            ),
            "Are you my clone?!".to_string(),
        ),
        (
            pid(&client.id().to_hex(), &ck, r#"["tcp://10.0.0.1:40403"]"#),
            "Connection string is not in the entrypoints.".to_string(),
        ),
        (
            pid(
                &client.id().to_hex(),
                &ck,
                &format!(r#"["tcp://1.2.3.4:1/?id={}"]"#, "11".repeat(32)),
            ),
            format!(
                "Unable to parse peer id. Reason: conflicting peer_id: {} != {}",
                "11".repeat(32),
                client.id()
            ),
        ),
    ];
    for (payload, expected) in cases {
        let got = error_for(
            &node,
            &[("HELLO", good_hello()), ("PEER-ID", payload.clone())],
        );
        assert_eq!(got, expected, "{payload}");
    }
    // Whitelist verdict.
    let wl = start(|c| c.whitelist = Some(vec![]));
    let ok = pid(&client.id().to_hex(), &ck, "[]");
    assert_eq!(
        error_for(&wl, &[("HELLO", good_hello()), ("PEER-ID", ok)]),
        "Connection rejected."
    );
}

/// Our identity declares `tcp://127.0.0.2:40403`: the fake checks an inbound connection's IP
/// against it like Hathor, so the handshake passes only when dialled from 127.0.0.2.
#[test]
fn handshakes_dial_from_the_local_ip() {
    let pki = pki();
    let mut identity = (*pki.client).clone();
    identity
        .set_entrypoints(vec!["tcp://127.0.0.2:40403".parse().unwrap()])
        .unwrap();
    let creds = pki.client_credentials().unwrap();
    let mut cfg =
        HandshakeConfig::new(NetworkProfile::testnet_india(), Arc::new(identity), &creds).unwrap();
    cfg.step_timeout = Duration::from_secs(3);
    let from_ip = |node: &FakeNode| -> Vec<std::net::IpAddr> {
        node.events()
            .iter()
            .filter_map(|e| match e {
                FakeEvent::Accepted(a) => Some(a.ip()),
                _ => None,
            })
            .collect()
    };

    // The system's choice of source address (127.0.0.1): refused by the fake.
    let node = start(|_| {});
    assert!(run(&node, &cfg).is_err());
    assert!(fake_sent_error(
        &node,
        "Connection string is not in the entrypoints."
    ));
    assert_eq!(
        from_ip(&node),
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );

    // From the bound IP: accepted, and the fake saw 127.0.0.2.
    let node = start(|_| {});
    cfg.local_ip = Some("127.0.0.2".parse().unwrap());
    let peer = run(&node, &cfg).unwrap();
    assert_eq!(peer.id, node.id());
    assert_eq!(
        from_ip(&node),
        ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(node.wait_for(Duration::from_secs(3), |ev| {
        ev.contains(&FakeEvent::Ready(pki.client.id()))
    }));

    // An unspecified IP, or one of the other family, leaves the choice to the system.
    for ip in ["0.0.0.0", "::1"] {
        let node = start(|_| {});
        cfg.local_ip = Some(ip.parse().unwrap());
        assert!(run(&node, &cfg).is_err());
        assert_eq!(
            from_ip(&node),
            ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
    }
}
