//! Hathor vectors made with hathor-core's own code (tests/data/hathor/peer-and-entrypoints.json).

use btdht::hathor::entrypoint::{PeerEndpoint, parse_entrypoint_list};
use btdht::hathor::identity::{Identity, IdentityError, PeerFile, PublicKey};
use btdht::hathor::network::NetworkProfile;
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("data/hathor/peer-and-entrypoints.json");
    serde_json::from_str(text).expect("vectors parse")
}

#[test]
fn peer_id_from_fixed_key() {
    let v = vectors();
    let pf = &v["peer_file"];
    let key = PublicKey::from_base64(pf["pubKey"].as_str().unwrap()).unwrap();
    assert_eq!(
        key.spki_der().len() as u64,
        v["spki_der_len"].as_u64().unwrap()
    );
    assert_eq!(key.peer_id().to_hex(), pf["id"].as_str().unwrap());
    assert_eq!(key.to_base64(), pf["pubKey"].as_str().unwrap());
    assert!(
        key.to_base64()
            .starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
    );
}

#[test]
fn pkcs1_public_key_hashes_like_spki() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let v = vectors();
    let key = PublicKey::from_base64(v["peer_file"]["pubKey"].as_str().unwrap()).unwrap();
    let pkcs1 = key.rsa().to_pkcs1_der().unwrap();
    let again = PublicKey::from_der(pkcs1.as_bytes()).unwrap();
    assert_eq!(again.peer_id(), key.peer_id());
    assert_eq!(again.spki_der(), key.spki_der());
}

#[test]
fn peer_file_loads_and_validates() {
    let v = vectors();
    let text = serde_json::to_string(&v["peer_file"]).unwrap();
    let id = Identity::from_peer_json(&text).unwrap();
    assert_eq!(id.id().to_hex(), v["peer_file"]["id"].as_str().unwrap());
    let eps: Vec<String> = id.entrypoints().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        eps,
        ["tcp://127.0.0.1:40403", "tcp://node.example.invalid:40403"]
    );
    // Round trip through the file format.
    let again = Identity::from_peer_json(&id.to_peer_json().unwrap()).unwrap();
    assert_eq!(again.id(), id.id());
    assert_eq!(again.public_key(), id.public_key());

    // Wrong id.
    let mut pf: PeerFile = serde_json::from_value(v["peer_file"].clone()).unwrap();
    pf.id = "11".repeat(32);
    match Identity::from_peer_file(&pf) {
        Err(IdentityError::InvalidPeerId(t)) => assert_eq!(t, "id does not match public key"),
        other => panic!("unexpected {other:?}"),
    }
    // Embedded conflicting ?id= in an entrypoint.
    let mut pf: PeerFile = serde_json::from_value(v["peer_file"].clone()).unwrap();
    pf.entrypoints = vec![format!("tcp://1.2.3.4:1/?id={}", "11".repeat(32))];
    assert!(Identity::from_peer_file(&pf).is_err());
    // Matching embedded id is accepted and dropped.
    let mut pf: PeerFile = serde_json::from_value(v["peer_file"].clone()).unwrap();
    pf.entrypoints = vec![format!("tcp://1.2.3.4:1/?id={}", pf.id)];
    let id2 = Identity::from_peer_file(&pf).unwrap();
    assert_eq!(id2.entrypoints()[0].to_string(), "tcp://1.2.3.4:1");
}

#[test]
fn peer_id_payloads_parse() {
    let v = vectors();
    for name in [
        "peer_id_payload_ipv6_capable",
        "peer_id_payload_ipv4_only",
        "peers_item_ipv4_only",
    ] {
        let p = &v[name];
        let id: btdht::hathor::PeerId = p["id"].as_str().unwrap().parse().unwrap();
        let eps: Vec<String> = p["entrypoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        let parsed = parse_entrypoint_list(&eps, id).unwrap();
        let printed: Vec<String> = parsed.iter().map(|a| a.to_string()).collect();
        assert_eq!(printed, eps);
    }
}

#[test]
fn entrypoint_parse_table() {
    let v = vectors();
    let cases = v["entrypoint_parse"].as_array().unwrap();
    assert_eq!(cases.len(), 17);
    for case in cases {
        let input = case["in"].as_str().unwrap();
        let got = PeerEndpoint::parse(input);
        if case["ok"].as_bool().unwrap() {
            let ep = got.unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(ep.to_string(), case["str"].as_str().unwrap(), "{input}");
            assert_eq!(ep.addr.host(), case["host"].as_str().unwrap(), "{input}");
            assert_eq!(
                u64::from(ep.addr.port()),
                case["port"].as_u64().unwrap(),
                "{input}"
            );
            assert_eq!(
                ep.addr.is_ipv6(),
                case["is_ipv6"].as_bool().unwrap(),
                "{input}"
            );
            assert_eq!(
                ep.peer_id.map(|p| p.to_hex()),
                case["peer_id"].as_str().map(str::to_string),
                "{input}"
            );
        } else {
            let err = got.expect_err(input);
            assert_eq!(
                format!("ValueError: {err}"),
                case["error"].as_str().unwrap(),
                "{input}"
            );
        }
    }
}

#[test]
fn network_constants_and_rendezvous() {
    let table = [
        (
            "mainnet",
            "3fdff62",
            "c578dfdf77f1132b19bb761d5ac70abe1134de0b",
            true,
        ),
        (
            "testnet-india",
            "f7438fb",
            "9dea32b97d5070c89e72b3dea3d493229bbfa862",
            false,
        ),
        (
            "nano-testnet-bravo",
            "042baeb",
            "a7e5d2dbdfabfae8e61d1641d32878a2d7e82e91",
            false,
        ),
        (
            "privatenet",
            "ffb6eca",
            "48b85ee80badd9237c7f2021a5312fc963f1fa86",
            false,
        ),
        (
            "unittests",
            "f188691",
            "7e554ae8152b5531090235c9b874f97ebe1d0ea3",
            false,
        ),
    ];
    for (name, short, rendezvous, whitelist) in table {
        let p = NetworkProfile::by_name(name).unwrap();
        assert_eq!(p.name, name);
        assert_eq!(p.genesis_short_hash(), short, "{name}");
        assert_eq!(p.rendezvous_info_hash(None).to_hex(), rendezvous, "{name}");
        assert_eq!(p.whitelist, whitelist, "{name}");
        assert_ne!(
            p.rendezvous_info_hash(Some("s")),
            p.rendezvous_info_hash(None)
        );
    }
    let t = NetworkProfile::testnet_india();
    assert_eq!(
        serde_json::to_string(t.settings_dict.as_ref().unwrap()).unwrap(),
        r#"{"P2PKH_VERSION_BYTE":"49","MULTISIG_VERSION_BYTE":"87","MIN_BLOCK_WEIGHT":21,"MIN_TX_WEIGHT":8,"BLOCK_DATA_MAX_SIZE":100}"#
    );
}

#[test]
fn custom_networks() {
    let a = NetworkProfile::custom("mychain", [[1; 32], [2; 32], [3; 32]]).unwrap();
    let json = format!(
        r#"{{"network":"mychain","genesis_hashes":["{}","{}","{}"]}}"#,
        "01".repeat(32),
        "02".repeat(32),
        "03".repeat(32)
    );
    let b = NetworkProfile::from_json(&json).unwrap();
    assert_eq!(a, b);
    let c = NetworkProfile::from_json(&format!(
        r#"{{"network":"mychain","genesis_digest":"{}","whitelist":true}}"#,
        a.genesis_hex()
    ))
    .unwrap();
    assert_eq!(c.genesis_digest, a.genesis_digest);
    assert!(c.whitelist);
    assert!(NetworkProfile::from_json(r#"{"network":"x"}"#).is_err());
    assert!(NetworkProfile::from_json("not json").is_err());
}
