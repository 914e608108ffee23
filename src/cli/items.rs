//! `btdht keygen`, `btdht put` and `btdht get`: BEP 44 items from the command line.
//!
//! `keygen` writes a new ed25519 secret key (the 32-byte seed as 64 hex digits, mode 0600) and
//! prints its public key. `put VALUE` stores VALUE (UTF-8, bencoded as a byte string) as an
//! immutable item and prints its target; with `--key KEYFILE` it stores a mutable item signed
//! with that key and prints `<public key> <target> seq=<N>`. `get TARGET` and
//! `get --key PUBKEY [--salt SALT]` print the item's value. Exit status: 0 stored or found,
//! 1 not, 2 bad arguments.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use btdht::items::{MutableItem, StoredItem, mutable_target};
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
    #[arg(value_parser = parse_id, required_unless_present = "key", conflicts_with = "key")]
    pub target: Option<NodeId>,
    /// Get the mutable item of this public key (64 hex digits).
    #[arg(long, value_name = "PUBKEY", value_parser = parse_key)]
    pub key: Option<[u8; 32]>,
    /// The mutable item's salt.
    #[arg(long, requires = "key")]
    pub salt: Option<String>,
    /// Options of the DHT client, output and timeout.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// 32 bytes as 64 hex digits.
pub(crate) fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|e| format!("not 64 hex digits: {e}"))?;
    Ok(key)
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
    parse_key(&text)
}

/// Runs `btdht put`.
pub(crate) fn put(args: PutArgs) -> Result<(), CliError> {
    let value = RawValue::from_bytes(args.value.as_bytes());
    let seed = match &args.key {
        Some(path) => {
            Some(read_key(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?)
        }
        None => None,
    };
    let dht = client(&args.client, true)?;
    let result = match seed {
        None => match dht.put_immutable(value) {
            Ok(result) => report_put(&result, None, &args.client),
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
        Ok(result) => report_put(&result, Some((public_key, seq)), &args.client),
        Err(e) => Err(CliError::failed(format!("put: {e}"))),
    }
}

/// Prints what a put did; an error unless a node stored the item.
fn report_put(
    result: &PutItemResult,
    mutable: Option<([u8; 32], i64)>,
    args: &ClientArgs,
) -> Result<(), CliError> {
    if args.json {
        let mut object = json!({
            "type": if mutable.is_some() { "mutable" } else { "immutable" },
            "target": result.target.to_hex(),
            "sent": result.sent,
            "stored": result.stored,
            "errors": result.errors,
            "partial": result.outcome.partial,
        });
        if let Some((key, seq)) = mutable {
            object["public_key"] = json!(hex::encode(key));
            object["seq"] = json!(seq);
        }
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
    let dht = client(&args.client, true)?;
    let (target, result) = match (args.target, args.key) {
        (Some(target), _) => (target, dht.get_immutable(target)),
        (None, Some(key)) => (
            mutable_target(&key, &salt),
            dht.get_mutable(key, &salt, None),
        ),
        (None, None) => {
            return finish(
                dht,
                Err(CliError::usage("get: a target or --key is needed")),
            );
        }
    };
    let result = match result {
        Ok(found) => match found.item {
            Some(item) => {
                print_item(target, &item, args.client.json);
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

fn print_item(target: NodeId, item: &StoredItem, json: bool) {
    let value = match item {
        StoredItem::Immutable(value) => value,
        StoredItem::Mutable(item) => &item.value,
    };
    if !json {
        println!("{}", value_text(value));
        return;
    }
    let mut object = json!({
        "target": target.to_hex(),
        "value": value_text(value),
        "bencoded": hex::encode(value.as_bytes()),
    });
    match item {
        StoredItem::Immutable(_) => {
            object["type"] = json!("immutable");
            object["seq"] = serde_json::Value::Null;
        }
        StoredItem::Mutable(item) => {
            object["type"] = json!("mutable");
            object["seq"] = json!(item.seq);
            object["public_key"] = json!(hex::encode(item.public_key));
            object["salt"] = json!(String::from_utf8_lossy(&item.salt));
            object["signature"] = json!(hex::encode(item.signature));
        }
    }
    println!("{object}");
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
