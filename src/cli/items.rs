//! `btdht keygen`, `btdht put` and `btdht get`: BEP 44 items from the command line.
//!
//! `keygen` writes a new ed25519 secret key (the 32-byte seed as 64 hex digits, mode 0600) and
//! prints its public key. `put VALUE` stores VALUE (UTF-8, bencoded as a byte string) as an
//! immutable item and prints its target; with `--key KEYFILE` it stores a mutable item signed
//! with that key and prints `<public key> <target> seq=<N>`. `get TARGET` and
//! `get --public-key PK [--salt SALT]` print the item's value (a mutable item's `seq=<N>` on
//! stderr). With `--json` both print one object: `type`, `target`, `value` (or `value_hex`
//! when it is not UTF-8), `seq`, `public_key`, `salt` and `nodes` (that stored or answered).
//! Exit status: 0 stored or found, 1 not, 2 bad arguments (a key that is not 64 hex digits,
//! a value over 1,000 bytes bencoded, a salt over 64 bytes).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use btdht::items::{MAX_SALT_LEN, MAX_VALUE_LEN, MutableItem, StoredItem, mutable_target};
use btdht::krpc::RawValue;
use btdht::{Dht, NodeId, PutItemResult};
use clap::Args;
use rand::RngCore;
use serde_json::json;

use super::args::{ClientArgs, parse_id};
use super::commands::{client, finish};
use super::error::CliError;

/// Options of `btdht keygen`.
#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Where to write the secret key (refused if the file exists).
    #[arg(long, value_name = "KEYFILE")]
    pub out: PathBuf,
}

/// Options of `btdht put`.
#[derive(Args, Debug)]
pub(crate) struct PutArgs {
    /// The value, stored as a bencoded byte string of its UTF-8 bytes.
    pub value: String,
    /// Store a mutable item signed with the secret key in this file (from `btdht keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub key: Option<PathBuf>,
    /// The mutable item's salt.
    #[arg(long, requires = "key")]
    pub salt: Option<String>,
    /// The mutable item's sequence number. Default: one more than the highest found, else 0.
    #[arg(long, requires = "key")]
    pub seq: Option<i64>,
    /// Compare-and-swap: store only where the stored sequence number is this one.
    #[arg(long, requires = "key")]
    pub cas: Option<i64>,
    /// Options of the DHT client, output and timeout.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `btdht get`.
#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    /// The immutable item's target (40 hex digits).
    #[arg(value_parser = parse_id, required_unless_present = "public_key", conflicts_with = "public_key")]
    pub target: Option<NodeId>,
    /// Get the mutable item of this public key (64 hex digits).
    #[arg(long, alias = "key", value_name = "PK", value_parser = parse_key)]
    pub public_key: Option<[u8; 32]>,
    /// The mutable item's salt.
    #[arg(long, requires = "public_key")]
    pub salt: Option<String>,
    /// Options of the DHT client, output and timeout.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// 32 bytes as 64 hex digits.
pub(crate) fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if let Some(c) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("expected 64 hex digits, found {c:?}"));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key)
        .map_err(|_| format!("expected 64 hex digits, found {}", text.len()))?;
    Ok(key)
}

/// Exit 2 if the value or the salt is over BEP 44's limits.
fn check_sizes(value: Option<&RawValue>, salt: &[u8]) -> Result<(), CliError> {
    if let Some(value) = value {
        let len = value.as_bytes().len();
        if len > MAX_VALUE_LEN {
            return Err(CliError::usage(format!(
                "the value is {len} bytes bencoded; BEP 44 allows at most {MAX_VALUE_LEN} bytes"
            )));
        }
    }
    if salt.len() > MAX_SALT_LEN {
        return Err(CliError::usage(format!(
            "--salt is {} bytes; BEP 44 allows at most {MAX_SALT_LEN} bytes",
            salt.len()
        )));
    }
    Ok(())
}

/// Runs `btdht keygen`.
pub(crate) fn keygen(args: KeygenArgs) -> Result<(), CliError> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    write_key(&args.out, &seed)
        .map_err(|e| CliError::usage(format!("{}: {e}", args.out.display())))?;
    println!("{}", hex::encode(MutableItem::public_key_of(&seed)));
    Ok(())
}

/// Writes `seed` as hex to a new file only its owner may read.
fn write_key(path: &Path, seed: &[u8; 32]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{}", hex::encode(seed))?;
    file.sync_all()
}

/// Reads a secret key written by `btdht keygen`.
fn read_key(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse_key(&text).map_err(|e| format!("not a secret key file of `btdht keygen`: {e}"))
}

/// Runs `btdht put`.
pub(crate) fn put(args: PutArgs) -> Result<(), CliError> {
    let value = RawValue::from_bytes(args.value.as_bytes());
    check_sizes(Some(&value), args.salt.as_deref().unwrap_or("").as_bytes())?;
    let seed = match &args.key {
        Some(path) => {
            Some(read_key(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?)
        }
        None => None,
    };
    let dht = client(&args.client, true)?;
    let result = match seed {
        None => match dht.put_immutable(value) {
            Ok(result) => report_put(&result, &args, None),
            Err(e) => Err(CliError::failed(format!("put: {e}"))),
        },
        Some(seed) => put_mutable(&dht, &seed, value, &args),
    };
    finish(dht, result)
}

fn put_mutable(
    dht: &Dht,
    seed: &[u8; 32],
    value: RawValue,
    args: &PutArgs,
) -> Result<(), CliError> {
    let salt = args.salt.as_deref().unwrap_or("").as_bytes();
    let public_key = MutableItem::public_key_of(seed);
    let seq = match args.seq {
        Some(seq) => seq,
        None => match dht.get_mutable(public_key, salt, None) {
            Ok(found) => match found.item {
                Some(StoredItem::Mutable(item)) => item.seq.saturating_add(1),
                _ => 0,
            },
            Err(e) => return Err(CliError::failed(format!("get: {e}"))),
        },
    };
    let item = MutableItem::sign(seed, salt, seq, value)
        .map_err(|e| CliError::usage(format!("put: {e}")))?;
    match dht.put_mutable(item, args.cas) {
        Ok(result) => report_put(&result, args, Some((public_key, seq))),
        Err(e) => Err(CliError::failed(format!("put: {e}"))),
    }
}

/// Prints what a put did; an error unless a node stored the item.
fn report_put(
    result: &PutItemResult,
    args: &PutArgs,
    mutable: Option<([u8; 32], i64)>,
) -> Result<(), CliError> {
    if args.client.json {
        let value = RawValue::from_bytes(args.value.as_bytes());
        let salt = args.salt.as_deref().unwrap_or("");
        let object = item_json(
            result.target,
            &value,
            mutable.map(|(key, seq)| (key, seq, salt.as_bytes())),
            result.stored,
        );
        println!("{object}");
    } else {
        match mutable {
            Some((key, seq)) => println!("{} {} seq={seq}", hex::encode(key), result.target),
            None => println!("{}", result.target),
        }
    }
    if result.stored > 0 {
        Ok(())
    } else if result.errors.is_empty() {
        Err(CliError::failed("put: no node stored the item"))
    } else {
        Err(CliError::failed(format!(
            "put: refused with errors {:?}",
            result.errors
        )))
    }
}

/// Runs `btdht get`.
pub(crate) fn get(args: GetArgs) -> Result<(), CliError> {
    let salt = args.salt.as_deref().unwrap_or("").as_bytes().to_vec();
    check_sizes(None, &salt)?;
    let dht = client(&args.client, true)?;
    let (target, result) = match (args.target, args.public_key) {
        (Some(target), _) => (target, dht.get_immutable(target)),
        (None, Some(key)) => (
            mutable_target(&key, &salt),
            dht.get_mutable(key, &salt, None),
        ),
        (None, None) => {
            return finish(
                dht,
                Err(CliError::usage("get: a target or --public-key is needed")),
            );
        }
    };
    let result = match result {
        Ok(found) => match found.item {
            Some(item) => {
                print_item(
                    target,
                    &item,
                    found.outcome.responses as usize,
                    args.client.json,
                );
                Ok(())
            }
            None => Err(CliError::failed(format!(
                "get: not found ({} nodes answered{})",
                found.outcome.responses,
                if found.outcome.partial {
                    ", timed out"
                } else {
                    ""
                }
            ))),
        },
        Err(e) => Err(CliError::failed(format!("get: {e}"))),
    };
    finish(dht, result)
}

/// The payload of a bencoded byte string; `None` for another bencoded value.
fn byte_string(raw: &[u8]) -> Option<&[u8]> {
    let colon = raw.iter().position(|b| *b == b':')?;
    let len: usize = std::str::from_utf8(&raw[..colon]).ok()?.parse().ok()?;
    let payload = &raw[colon + 1..];
    (payload.len() == len).then_some(payload)
}

/// A value as text: a byte string's payload, else the bencoded value itself.
fn value_text(value: &RawValue) -> String {
    let bytes = byte_string(value.as_bytes()).unwrap_or(value.as_bytes());
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON object of an item: `type`, `target`, `value` (or `value_hex`), `seq`,
/// `public_key`, `salt` (the last three null for an immutable item) and `nodes`.
fn item_json(
    target: NodeId,
    value: &RawValue,
    mutable: Option<([u8; 32], i64, &[u8])>,
    nodes: usize,
) -> serde_json::Value {
    let payload = byte_string(value.as_bytes()).unwrap_or(value.as_bytes());
    let mut object = json!({
        "type": if mutable.is_some() { "mutable" } else { "immutable" },
        "target": target.to_hex(),
    });
    match std::str::from_utf8(payload) {
        Ok(text) => object["value"] = json!(text),
        Err(_) => object["value_hex"] = json!(hex::encode(payload)),
    }
    let (seq, public_key, salt) = match mutable {
        Some((key, seq, salt)) => (
            json!(seq),
            json!(hex::encode(key)),
            json!(String::from_utf8_lossy(salt)),
        ),
        None => Default::default(),
    };
    object["seq"] = seq;
    object["public_key"] = public_key;
    object["salt"] = salt;
    object["nodes"] = json!(nodes);
    object
}

/// Prints a found item: its value (a mutable item's `seq=<N>` on stderr), or its JSON
/// object with `nodes` the nodes that answered.
fn print_item(target: NodeId, item: &StoredItem, answered: usize, json: bool) {
    let (value, mutable) = match item {
        StoredItem::Immutable(value) => (value, None),
        StoredItem::Mutable(item) => (
            &item.value,
            Some((item.public_key, item.seq, item.salt.as_slice())),
        ),
    };
    if json {
        println!("{}", item_json(target, value, mutable, answered));
        return;
    }
    println!("{}", value_text(value));
    if let Some((_, seq, _)) = mutable {
        eprintln!("seq={seq}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_strings_are_unwrapped() {
        assert_eq!(byte_string(b"5:hello"), Some(&b"hello"[..]));
        assert_eq!(byte_string(b"0:"), Some(&b""[..]));
        assert_eq!(byte_string(b"i5e"), None);
        assert_eq!(byte_string(b"5:hell"), None);
        assert_eq!(
            value_text(&RawValue::new(b"li1ee".to_vec()).unwrap()),
            "li1ee"
        );
    }
}
