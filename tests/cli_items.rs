//! `btdht keygen`, `put` and `get` through the binary against loopback nodes: immutable and
//! mutable items round-trip, the default sequence number counts up, a stale `--cas` is
//! refused, a missing item exits 1 and bad arguments exit 2 with a message each; `put --json`
//! and `get --json` print one object shape.

mod support;

use std::process::Output;
use std::time::Duration;

use btdht::Dht;
use support::{loopback, temp_dir, wait_until};

const T: Duration = Duration::from_secs(10);

fn btdht(args: &[&str], common: &[String]) -> Output {
    support::btdht_command()
        .args(args)
        .args(common)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

fn nodes() -> Vec<Dht> {
    let first = loopback(210).request_timeout(T).start().unwrap();
    let mut nodes = vec![first];
    for n in 211..214 {
        let node = loopback(n)
            .request_timeout(T)
            .bootstrap([nodes[0].local_addr()])
            .start()
            .unwrap();
        nodes.push(node);
    }
    for node in &nodes {
        assert!(wait_until(T, || node
            .routing_table()
            .is_ok_and(|t| t.len() >= 2)));
    }
    nodes
}

#[test]
fn keygen_put_and_get() {
    let nodes = nodes();
    let common: Vec<String> = [
        "--bootstrap",
        &nodes[0].local_addr().to_string(),
        "--allow-private",
        "--bind",
        "127.0.214.1:0",
        "--timeout",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = temp_dir("items-cli");
    let key = dir.join("my.key");
    let key = key.to_str().unwrap();

    // keygen: 64 hex digits of public key; the file is private and not overwritten.
    let public_key = ok(&btdht(&["keygen", "--out", key], &[]));
    assert_eq!(public_key.len(), 64, "{public_key}");
    assert!(public_key.bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let seed = std::fs::read_to_string(key).unwrap();
    assert_eq!(seed.trim().len(), 64);
    let again = btdht(&["keygen", "--out", key], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(key).unwrap(), seed);

    // Immutable: the target is BEP 44's SHA-1 of "12:Hello World!".
    let target = ok(&btdht(&["put", "Hello World!"], &common));
    assert_eq!(target, "e5f96f6f38320f0f33959cb4d3d656452117aadb");
    assert_eq!(ok(&btdht(&["get", &target], &common)), "Hello World!");
    let json = ok(&btdht(&["get", &target, "--json"], &common));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["type"], "immutable");
    assert_eq!(json["value"], "Hello World!");
    assert_eq!(json["target"], target.as_str());

    // Mutable: seq 0 first, then one more than the highest found.
    let line = ok(&btdht(
        &["put", "--key", key, "--salt", "s", "first"],
        &common,
    ));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 3, "{line}");
    assert_eq!(fields[0], public_key);
    assert_eq!(fields[2], "seq=0");
    let line = ok(&btdht(
        &["put", "--key", key, "--salt", "s", "second"],
        &common,
    ));
    assert!(line.ends_with(" seq=1"), "{line}");
    let got = ok(&btdht(
        &["get", "--public-key", &public_key, "--salt", "s", "--json"],
        &common,
    ));
    let json: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(json["type"], "mutable");
    assert_eq!(json["value"], "second");
    assert_eq!(json["seq"], 1);
    assert_eq!(json["target"], fields[1]);
    assert_eq!(json["public_key"], public_key.as_str());

    // A stale compare-and-swap is refused everywhere: exit 1, the item is unchanged.
    let stale = btdht(
        &[
            "put", "--key", key, "--salt", "s", "--seq", "5", "--cas", "0", "third",
        ],
        &common,
    );
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale.stderr));
    assert!(
        text(&stale.stderr).contains("301"),
        "{}",
        text(&stale.stderr)
    );
    // `--key` is a hidden alias of `--public-key`.
    let got = ok(&btdht(
        &["get", "--key", &public_key, "--salt", "s"],
        &common,
    ));
    assert_eq!(got, "second");

    // Not found: exit 1. Bad arguments: exit 2.
    let missing = btdht(
        &["get", "0123456789abcdef0123456789abcdef01234567"],
        &common,
    );
    assert_eq!(missing.status.code(), Some(1));
    let other_salt = btdht(&["get", "--key", &public_key, "--salt", "t"], &common);
    assert_eq!(other_salt.status.code(), Some(1));
    assert_eq!(btdht(&["get"], &[]).status.code(), Some(2));
    assert_eq!(btdht(&["get", "xyz"], &[]).status.code(), Some(2));
    assert_eq!(
        btdht(&["put", "--salt", "s", "v"], &[]).status.code(),
        Some(2)
    );
    let no_key = dir.join("absent.key");
    let out = btdht(&["put", "--key", no_key.to_str().unwrap(), "v"], &common);
    assert_eq!(out.status.code(), Some(2));

    for node in nodes {
        node.stop().unwrap();
    }
}

/// The keys of a JSON object, sorted.
fn keys(value: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// The fields of every item object `put --json` and `get --json` print.
const ITEM_FIELDS: [&str; 7] = [
    "nodes",
    "public_key",
    "salt",
    "seq",
    "target",
    "type",
    "value",
];

#[test]
fn get_by_public_key_prints_seq_on_stderr_and_one_json_shape() {
    let nodes = nodes();
    let common: Vec<String> = [
        "--bootstrap",
        &nodes[0].local_addr().to_string(),
        "--allow-private",
        "--bind",
        "127.0.215.1:0",
        "--timeout",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = temp_dir("cli-items-json");
    let key = dir.join("k.key");
    let key = key.to_str().unwrap();
    let public_key = ok(&btdht(&["keygen", "--out", key], &[]));

    // put --json: the same fields as get, `nodes` counting the nodes that stored it.
    let put = ok(&btdht(
        &["put", "--key", key, "--salt", "blog", "--json", "post"],
        &common,
    ));
    let put: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert_eq!(keys(&put), ITEM_FIELDS, "{put}");
    assert_eq!(put["type"], "mutable");
    assert_eq!(put["value"], "post");
    assert_eq!(put["seq"], 0);
    assert_eq!(put["salt"], "blog");
    assert_eq!(put["public_key"], public_key.as_str());
    assert!(put["nodes"].as_u64().unwrap() >= 1, "{put}");

    // Plain get --public-key: the value on stdout, its seq on stderr.
    let out = btdht(
        &["get", "--public-key", &public_key, "--salt", "blog"],
        &common,
    );
    assert_eq!(ok(&out), "post");
    assert!(text(&out.stderr).contains("seq=0"), "{}", text(&out.stderr));

    // get --json: exactly the item fields; `nodes` counts the nodes that answered.
    let got = ok(&btdht(
        &[
            "get",
            "--public-key",
            &public_key,
            "--salt",
            "blog",
            "--json",
        ],
        &common,
    ));
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(keys(&got), ITEM_FIELDS, "{got}");
    assert_eq!(got["target"], put["target"]);
    assert_eq!(got["seq"], 0);
    assert_eq!(got["salt"], "blog");
    assert!(got["nodes"].as_u64().unwrap() >= 1, "{got}");

    // An immutable item that is not text comes back as value_hex; seq, key and salt are null.
    let binary = btdht::krpc::RawValue::from_bytes(&[0xff, 0x00, 0xfe]);
    let stored = nodes[1].put_immutable(binary).unwrap();
    assert!(stored.stored > 0);
    let got = ok(&btdht(&["get", &stored.target.to_hex(), "--json"], &common));
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    let mut fields = ITEM_FIELDS.to_vec();
    let last = fields.len() - 1;
    fields[last] = "value_hex";
    assert_eq!(keys(&got), fields, "{got}");
    assert_eq!(got["type"], "immutable");
    assert_eq!(got["value_hex"], "ff00fe");
    assert!(got["seq"].is_null() && got["public_key"].is_null() && got["salt"].is_null());

    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn bad_keys_values_and_salts_exit_2_with_a_message_each() {
    let dir = temp_dir("cli-items-bad");
    let short = dir.join("short.key");
    std::fs::write(&short, "0123abcd\n").unwrap();
    let not_hex = dir.join("not-hex.key");
    std::fs::write(&not_hex, format!("{}\n", "zz".repeat(32))).unwrap();
    let good = dir.join("good.key");
    let good = good.to_str().unwrap();
    ok(&btdht(&["keygen", "--out", good], &[]));
    // A dead loopback bootstrap node: nothing may be sent before the arguments are checked.
    let common: Vec<String> = ["--bootstrap", "127.0.216.1:1", "--allow-private"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let big = "x".repeat(996); // "996:" + 996 bytes = 1,000 bytes bencoded: the limit
    let too_big = "x".repeat(997);
    let long_salt = "s".repeat(65);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["put", "--key", short.to_str().unwrap(), "v"],
            "64 hex digits",
        ),
        (
            vec!["put", "--key", not_hex.to_str().unwrap(), "v"],
            "64 hex digits",
        ),
        (vec!["put", &too_big], "1000 bytes"),
        (vec!["put", "--key", good, &too_big], "1000 bytes"),
        (
            vec!["put", "--key", good, "--salt", &long_salt, "v"],
            "64 bytes",
        ),
        (
            vec![
                "get",
                "--public-key",
                "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548",
                "--salt",
                &long_salt,
            ],
            "64 bytes",
        ),
        (vec!["get", "--public-key", "0123"], "64 hex digits"),
    ];
    for (args, says) in &cases {
        let out = btdht(args, &common);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: no {says:?} in {err}");
    }
    // A value of exactly 1,000 bytes bencoded is accepted (and then stored nowhere: exit 1).
    let out = btdht(&["put", &big, "--timeout", "1"], &common);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
