//! Hathor network profiles: name, genesis digest, `settings_dict`, whitelist flag, DNS seeds,
//! and the per-network DHT rendezvous info-hash (a btdht convention, hathor.md §7).
//!
//! The built-in constants were computed with hathor-core's own code from hathorlib's YAML
//! settings. Custom networks are built from a name and genesis hashes, or read from a JSON file.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::id::InfoHash;

/// Prefix of the rendezvous key: `SHA1("hathor-dht-v1:" + name + ":" + hex(genesis digest))`.
pub const RENDEZVOUS_PREFIX: &str = "hathor-dht-v1:";

/// A Hathor network as seen by the p2p handshake.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkProfile {
    /// `NETWORK_NAME`, sent in HELLO as `network`.
    pub name: String,
    /// SHA256(genesis block hash ‖ genesis tx1 hash ‖ genesis tx2 hash), raw 32-byte hashes.
    pub genesis_digest: [u8; 32],
    /// The `settings_dict` a node of this network sends (compared when the remote sends one).
    pub settings_dict: Option<Map<String, Value>>,
    /// `ENABLE_PEER_WHITELIST`: peers must announce the `whitelist` capability.
    pub whitelist: bool,
    /// `BOOTSTRAP_DNS` seeds.
    pub bootstrap_dns: Vec<String>,
}

/// An error building a profile.
#[derive(Debug)]
pub struct NetworkError(pub String);

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetworkError {}

fn settings(
    p2pkh: &str,
    multisig: &str,
    min_block: u64,
    min_tx: u64,
    data_max: u64,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("P2PKH_VERSION_BYTE".into(), Value::from(p2pkh));
    m.insert("MULTISIG_VERSION_BYTE".into(), Value::from(multisig));
    m.insert("MIN_BLOCK_WEIGHT".into(), Value::from(min_block));
    m.insert("MIN_TX_WEIGHT".into(), Value::from(min_tx));
    m.insert("BLOCK_DATA_MAX_SIZE".into(), Value::from(data_max));
    m
}

fn digest_from_hex(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Only called on the literals below, checked by tests.
    if let Ok(v) = hex::decode(text)
        && v.len() == 32
    {
        out.copy_from_slice(&v);
    }
    out
}

impl NetworkProfile {
    /// Hathor mainnet (whitelist-only).
    pub fn mainnet() -> Self {
        Self {
            name: "mainnet".into(),
            genesis_digest: digest_from_hex(
                "3fdff6288666b2b13bfdae9477e240c1ab010b07b69f1a8c9b8614f980185b03",
            ),
            settings_dict: Some(settings("28", "64", 21, 14, 100)),
            whitelist: true,
            bootstrap_dns: vec!["mainnet.hathor.network".into()],
        }
    }

    /// Hathor testnet (`testnet-india`).
    pub fn testnet_india() -> Self {
        Self {
            name: "testnet-india".into(),
            genesis_digest: digest_from_hex(
                "f7438fb5cb5ad844a0b51b5aadd07d06cce6ccb053521e970f6e3a5eaa93e6e4",
            ),
            settings_dict: Some(settings("49", "87", 21, 8, 100)),
            whitelist: false,
            bootstrap_dns: vec!["india.testnet.hathor.network".into()],
        }
    }

    /// Hathor nano-contracts testnet (`nano-testnet-bravo`).
    pub fn nano_testnet_bravo() -> Self {
        Self {
            name: "nano-testnet-bravo".into(),
            genesis_digest: digest_from_hex(
                "042baeb791abdc37672a4d124056f078d97e15a4de6dda63c84a92778b1a0331",
            ),
            settings_dict: Some(settings("49", "87", 21, 8, 100)),
            whitelist: false,
            bootstrap_dns: vec!["bravo.nano-testnet.hathor.network".into()],
        }
    }

    /// hathorlib's `localnet.yml` (`privatenet`).
    pub fn privatenet() -> Self {
        Self {
            name: "privatenet".into(),
            genesis_digest: digest_from_hex(
                "ffb6eca5a8629df95f02d4094d4d46f6b1fb985f3562e6a3523f203754ba298c",
            ),
            settings_dict: Some(settings("49", "87", 21, 1, 100)),
            whitelist: false,
            bootstrap_dns: Vec::new(),
        }
    }

    /// hathorlib's `unittests.yml` (`unittests`).
    pub fn unittests() -> Self {
        Self {
            name: "unittests".into(),
            genesis_digest: digest_from_hex(
                "f1886915cfe1d9d72d3c99d48954cc5f581a79b16152bfa14070c8f99eaeb3d2",
            ),
            settings_dict: Some(settings("28", "64", 2, 2, 100)),
            whitelist: false,
            bootstrap_dns: Vec::new(),
        }
    }

    /// All built-in profiles.
    pub fn builtin() -> Vec<Self> {
        vec![
            Self::mainnet(),
            Self::testnet_india(),
            Self::nano_testnet_bravo(),
            Self::privatenet(),
            Self::unittests(),
        ]
    }

    /// A built-in profile by network name (`localnet` is accepted for `privatenet`, `testnet`
    /// for `testnet-india`, `nano-testnet` for `nano-testnet-bravo`).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "mainnet" => Some(Self::mainnet()),
            "testnet" | "testnet-india" => Some(Self::testnet_india()),
            "nano-testnet" | "nano-testnet-bravo" => Some(Self::nano_testnet_bravo()),
            "localnet" | "privatenet" => Some(Self::privatenet()),
            "unittests" => Some(Self::unittests()),
            _ => None,
        }
    }

    /// A custom network from its name and the three genesis hashes (raw 32 bytes each, in the
    /// order block, tx1, tx2). No `settings_dict`, whitelist off, no DNS seeds.
    pub fn custom(name: &str, genesis_hashes: [[u8; 32]; 3]) -> Result<Self, NetworkError> {
        let mut h = Sha256::new();
        for g in &genesis_hashes {
            h.update(g);
        }
        Self::custom_with_digest(name, h.finalize().into())
    }

    /// A custom network from its name and the genesis digest itself.
    pub fn custom_with_digest(name: &str, genesis_digest: [u8; 32]) -> Result<Self, NetworkError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control()) {
            return Err(NetworkError(format!("invalid network name {name:?}")));
        }
        Ok(Self {
            name: name.to_string(),
            genesis_digest,
            settings_dict: None,
            whitelist: false,
            bootstrap_dns: Vec::new(),
        })
    }

    /// Parses a custom network from JSON:
    /// `{"network": NAME, "genesis_hashes": [BLOCK, TX1, TX2]}` (hex) or
    /// `{"network": NAME, "genesis_digest": HEX}`, with optional `"settings_dict": {...}`,
    /// `"whitelist": bool`, `"bootstrap_dns": [...]`.
    pub fn from_json(text: &str) -> Result<Self, NetworkError> {
        #[derive(Deserialize)]
        struct File {
            network: String,
            genesis_hashes: Option<Vec<String>>,
            genesis_digest: Option<String>,
            settings_dict: Option<Map<String, Value>>,
            #[serde(default)]
            whitelist: bool,
            #[serde(default)]
            bootstrap_dns: Vec<String>,
        }
        let f: File = serde_json::from_str(text)
            .map_err(|e| NetworkError(format!("invalid network file: {e}")))?;
        let hash32 = |s: &str| -> Result<[u8; 32], NetworkError> {
            let v = hex::decode(s).map_err(|e| NetworkError(format!("invalid hash {s:?}: {e}")))?;
            v.try_into()
                .map_err(|_| NetworkError(format!("hash {s:?} is not 32 bytes")))
        };
        let mut profile = match (&f.genesis_hashes, &f.genesis_digest) {
            (Some(h), None) if h.len() == 3 => {
                Self::custom(&f.network, [hash32(&h[0])?, hash32(&h[1])?, hash32(&h[2])?])?
            }
            (None, Some(d)) => Self::custom_with_digest(&f.network, hash32(d)?)?,
            _ => {
                return Err(NetworkError(
                    "need exactly one of genesis_hashes (3 hex hashes) or genesis_digest".into(),
                ));
            }
        };
        profile.settings_dict = f.settings_dict;
        profile.whitelist = f.whitelist;
        profile.bootstrap_dns = f.bootstrap_dns;
        Ok(profile)
    }

    /// Reads [`NetworkProfile::from_json`] from a file.
    pub fn load(path: &Path) -> Result<Self, NetworkError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NetworkError(format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// The full genesis digest as lowercase hex.
    pub fn genesis_hex(&self) -> String {
        hex::encode(self.genesis_digest)
    }

    /// `genesis_short_hash`: the first 7 hex chars of the genesis digest.
    pub fn genesis_short_hash(&self) -> String {
        self.genesis_hex()[..7].to_string()
    }

    /// The DHT rendezvous info-hash:
    /// `SHA1("hathor-dht-v1:" + name + ":" + hex(genesis digest) [+ ":" + secret])`.
    pub fn rendezvous_info_hash(&self, secret: Option<&str>) -> InfoHash {
        let mut h = Sha1::new();
        h.update(RENDEZVOUS_PREFIX.as_bytes());
        h.update(self.name.as_bytes());
        h.update(b":");
        h.update(self.genesis_hex().as_bytes());
        if let Some(s) = secret {
            h.update(b":");
            h.update(s.as_bytes());
        }
        crate::id::NodeId(h.finalize().into())
    }
}
