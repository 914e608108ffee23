//! Every real datagram under `tests/data/krpc/` decodes to the kind its MANIFEST names.

use std::path::PathBuf;

use btdht::krpc::{Body, Message, QueryKind, decode};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/krpc")
}

fn load_manifest() -> Vec<serde_json::Value> {
    let path = corpus_dir().join("MANIFEST.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("MANIFEST.json is a JSON list")
}

fn str_field<'a>(entry: &'a serde_json::Value, name: &str) -> &'a str {
    entry[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {entry}"))
}

/// What the probe asked, so a reply can be checked against it.
fn request_method(entry: &serde_json::Value) -> Option<(Vec<u8>, &'static str)> {
    let hex = entry["request_hex"].as_str()?;
    let bytes = hex::decode(hex).expect("request_hex is hex");
    let decoded = decode(&bytes).ok()?;
    let method = decoded.message.method()?;
    Some((decoded.message.transaction_id, method))
}

#[test]
fn every_corpus_datagram_decodes_to_its_manifest_kind() {
    let manifest = load_manifest();
    assert_eq!(
        manifest.len(),
        457,
        "the corpus README promises 457 datagrams"
    );
    let mut checked = 0;
    for entry in &manifest {
        let file = str_field(entry, "file");
        let bytes = std::fs::read(corpus_dir().join(file)).expect("corpus file exists");
        assert_eq!(
            bytes.len() as u64,
            entry["size"].as_u64().unwrap(),
            "{file}: size"
        );
        let decoded = decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            decoded.canonical,
            "{file}: the capture is canonical bencode"
        );
        let message: &Message = &decoded.message;
        let t_len = entry["t_len"].as_u64().unwrap() as usize;
        assert_eq!(message.transaction_id.len(), t_len, "{file}: t length");
        let kind = str_field(entry, "kind");
        match str_field(entry, "direction") {
            "query" => check_query(file, kind, message),
            "response" => check_response(file, kind, entry, message),
            other => panic!("{file}: unknown direction {other}"),
        }
        // Canonical input re-encodes to the very same bytes, except for keys we ignore.
        let reencoded = message.encode();
        let again = decode(&reencoded).unwrap_or_else(|e| panic!("{file}: re-decode {e}"));
        assert_eq!(&again.message, message, "{file}: decode(encode(m)) == m");
        checked += 1;
    }
    assert_eq!(checked, 457);
}

fn check_query(file: &str, kind: &str, message: &Message) {
    let Body::Query(query) = &message.body else {
        panic!("{file}: expected a query, got {:?}", message.body);
    };
    assert_eq!(query.kind.method(), kind, "{file}");
    if let QueryKind::AnnouncePeer {
        port,
        implied_port,
        token,
        ..
    } = &query.kind
    {
        assert!(*implied_port || *port > 0, "{file}: announce has a port");
        assert!(!token.is_empty(), "{file}: announce has a token");
    }
}

fn check_response(file: &str, kind: &str, entry: &serde_json::Value, message: &Message) {
    if let Some((request_t, _)) = request_method(entry) {
        assert_eq!(
            message.transaction_id, request_t,
            "{file}: t echoed unchanged"
        );
    }
    if let Some(rest) = kind.strip_prefix("error_") {
        let code: i64 = rest[..3].parse().expect("error code in kind");
        let Body::Error(error) = &message.body else {
            panic!("{file}: expected error {code}, got {:?}", message.body);
        };
        assert_eq!(error.code, code, "{file}");
        return;
    }
    let Body::Response(reply) = &message.body else {
        panic!("{file}: expected a reply, got {:?}", message.body);
    };
    let (_, method) = request_method(entry).unwrap_or_else(|| panic!("{file}: request decodes"));
    match kind {
        k if k.starts_with("get_peers_values") => {
            assert!(
                reply.values.as_ref().is_some_and(|v| !v.is_empty()),
                "{file}: values"
            );
            assert!(reply.token.is_some(), "{file}: token");
        }
        k if k.starts_with("get_peers") => {
            assert!(
                reply.nodes.is_some() || reply.values.is_some(),
                "{file}: nodes or values"
            );
            assert!(reply.token.is_some(), "{file}: token");
        }
        k if k.starts_with("find_node") || k == "unknown_method_with_target" => {
            assert!(
                reply.nodes.is_some() || reply.nodes6.is_some(),
                "{file}: nodes"
            );
        }
        "sample_infohashes" => {
            assert!(reply.samples.is_some(), "{file}: samples");
            assert!(
                reply.interval.is_some() && reply.num.is_some(),
                "{file}: interval, num"
            );
        }
        "get_immutable_bep44" => {
            assert!(reply.token.is_some(), "{file}: a get reply carries a token");
        }
        k if k.starts_with("ping") || k.starts_with("announce_peer") => {}
        other => panic!("{file}: no check for kind {other} (asked {method})"),
    }
}
