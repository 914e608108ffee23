//! `btdht keygen`, `put` and `get` through the binary against loopback nodes: immutable and
//! mutable items round-trip, the default sequence number counts up, a stale `--cas` is
//! refused, a missing item exits 1 and bad arguments exit 2.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use btdht::Dht;
use support::{loopback, temp_dir, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_btdht");
const T: Duration = Duration::from_secs(10);

fn btdht(args: &[&str], common: &[String]) -> Output {
    Command::new(BIN).args(args).args(common).output().unwrap()
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
        &["get", "--key", &public_key, "--salt", "s", "--json"],
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
    let _ = std::fs::remove_dir_all(dir);
}
