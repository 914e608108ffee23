//! Hathor peer identity: the RSA-2048 key, the peer id derived from it, and the peer JSON file.
//!
//! peer id = SHA256(SHA256(DER SubjectPublicKeyInfo)), written as 64 lowercase hex chars. Public
//! keys are accepted as SPKI or PKCS#1 DER and always re-encoded as SPKI before hashing, like
//! hathor-core's `load_der_public_key` + `_calculate_peer_id`. This module does no I/O except
//! reading and writing a peer file when asked.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::entrypoint::{EntrypointListError, PeerAddress, parse_entrypoint_list};

/// Size of Hathor peer keys, in bits.
pub const KEY_BITS: usize = 2048;

/// A Hathor peer id: 32 bytes, shown as 64 lowercase hex chars.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 32]);

impl PeerId {
    /// sha256d of the given SPKI DER bytes.
    pub fn from_spki_der(spki: &[u8]) -> Self {
        let first = Sha256::digest(spki);
        Self(Sha256::digest(first).into())
    }

    /// Parses hex like Python's `bytes.fromhex` followed by Hathor's length check; the error is
    /// the Python `ValueError` text (e.g. `expected 32 bytes, got 1 bytes`).
    pub fn parse_hex(text: &str) -> Result<Self, String> {
        let bytes = python_fromhex(text)?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("expected 32 bytes, got {} bytes", bytes.len()))?;
        Ok(Self(arr))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.to_hex())
    }
}

impl FromStr for PeerId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_hex(s)
    }
}

impl Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Python's `bytes.fromhex`: pairs of hex digits, ASCII whitespace allowed between pairs.
fn python_fromhex(text: &str) -> Result<Vec<u8>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(chars.len() / 2);
    let mut i = 0;
    let err =
        |pos: usize| format!("non-hexadecimal number found in fromhex() arg at position {pos}");
    while i < chars.len() {
        if chars[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let hi = chars[i].to_digit(16).ok_or_else(|| err(i))?;
        let lo = chars
            .get(i + 1)
            .and_then(|c| c.to_digit(16))
            .ok_or_else(|| err(i + 1))?;
        out.push((hi * 16 + lo) as u8);
        i += 2;
    }
    Ok(out)
}

/// An error about a key, an id or a peer file.
#[derive(Debug)]
pub enum IdentityError {
    /// Hathor's `InvalidPeerIdException` with its text (`id does not match public key`,
    /// `private/public pair does not match`, too many entrypoints).
    InvalidPeerId(String),
    /// A field could not be decoded (bad hex, base64, DER, JSON, entrypoint).
    Parse(String),
    /// Key generation or encoding failed.
    Key(String),
    /// Reading or writing a file failed.
    Io(std::io::Error),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPeerId(t) => write!(f, "invalid peer id: {t}"),
            Self::Parse(t) => write!(f, "{t}"),
            Self::Key(t) => write!(f, "key error: {t}"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for IdentityError {}

impl From<std::io::Error> for IdentityError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// An RSA public key with its canonical SPKI DER encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({} bits, id {})",
            self.key.n().bits(),
            self.peer_id()
        )
    }
}

impl PublicKey {
    /// Wraps an RSA public key.
    pub fn from_rsa(key: RsaPublicKey) -> Result<Self, IdentityError> {
        let spki = key
            .to_public_key_der()
            .map_err(|e| IdentityError::Key(e.to_string()))?
            .into_vec();
        Ok(Self { key, spki })
    }

    /// Parses DER: SubjectPublicKeyInfo or PKCS#1 `RSAPublicKey`.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let key = RsaPublicKey::from_public_key_der(der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(der))
            .map_err(|e| IdentityError::Parse(format!("could not deserialize key data: {e}")))?;
        Self::from_rsa(key)
    }

    /// Parses standard base64 of DER (the `pubKey` field).
    pub fn from_base64(text: &str) -> Result<Self, IdentityError> {
        let der = B64
            .decode(text.trim())
            .map_err(|e| IdentityError::Parse(format!("invalid base64 public key: {e}")))?;
        Self::from_der(&der)
    }

    /// The canonical SPKI DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Standard padded base64 of the SPKI DER (the `pubKey` field).
    pub fn to_base64(&self) -> String {
        B64.encode(&self.spki)
    }

    /// The peer id of this key.
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_spki_der(&self.spki)
    }

    /// The RSA key.
    pub fn rsa(&self) -> &RsaPublicKey {
        &self.key
    }
}

/// Adapts a `rand` 0.9 generator to the `rand_core` 0.6 traits the `rsa` crate uses.
struct RngCompat<'a, R: ?Sized>(&'a mut R);

impl<R: rand::RngCore + ?Sized> rsa::rand_core::RngCore for RngCompat<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl<R: rand::CryptoRng + ?Sized> rsa::rand_core::CryptoRng for RngCompat<'_, R> {}

/// Generates a fresh RSA-2048 key (e = 65537).
pub fn generate_rsa_key<R: rand::CryptoRng + ?Sized>(
    rng: &mut R,
) -> Result<RsaPrivateKey, IdentityError> {
    RsaPrivateKey::new(&mut RngCompat(rng), KEY_BITS).map_err(|e| IdentityError::Key(e.to_string()))
}

/// Our own peer identity: private key, public key, id and declared entrypoints.
#[derive(Clone)]
pub struct Identity {
    private: RsaPrivateKey,
    public: PublicKey,
    id: PeerId,
    entrypoints: Vec<PeerAddress>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id)
            .field("entrypoints", &self.entrypoints)
            .finish_non_exhaustive()
    }
}

/// The peer JSON file (`--peer FILE` of hathor-core, `hathor-cli gen_peer_id`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerFile {
    /// The peer id, 64 hex chars.
    pub id: String,
    /// Declared entrypoints (may be absent).
    #[serde(default)]
    pub entrypoints: Vec<String>,
    /// Base64 DER SPKI.
    #[serde(rename = "pubKey")]
    pub pub_key: String,
    /// Base64 DER PKCS#8 unencrypted private key.
    #[serde(rename = "privKey")]
    pub priv_key: String,
}

impl Identity {
    /// Generates a new identity with an RSA-2048 key and no entrypoints.
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, IdentityError> {
        Self::from_private_key(generate_rsa_key(rng)?)
    }

    /// Builds the identity of a private key, with no entrypoints.
    pub fn from_private_key(private: RsaPrivateKey) -> Result<Self, IdentityError> {
        let public = PublicKey::from_rsa(private.to_public_key())?;
        let id = public.peer_id();
        Ok(Self {
            private,
            public,
            id,
            entrypoints: Vec::new(),
        })
    }

    /// Builds the identity of a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, IdentityError> {
        let key = RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|e| IdentityError::Parse(format!("invalid private key: {e}")))?;
        Self::from_private_key(key)
    }

    /// The peer id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The RSA private key.
    pub fn private_key(&self) -> &RsaPrivateKey {
        &self.private
    }

    /// The private key as PKCS#8 DER (unencrypted; handle with care).
    pub fn pkcs8_der(&self) -> Result<Vec<u8>, IdentityError> {
        Ok(self
            .private
            .to_pkcs8_der()
            .map_err(|e| IdentityError::Key(e.to_string()))?
            .as_bytes()
            .to_vec())
    }

    /// Declared entrypoints.
    pub fn entrypoints(&self) -> &[PeerAddress] {
        &self.entrypoints
    }

    /// Replaces the declared entrypoints (at most 30).
    pub fn set_entrypoints(&mut self, entrypoints: Vec<PeerAddress>) -> Result<(), IdentityError> {
        if entrypoints.len() > super::entrypoint::MAX_ENTRYPOINTS {
            return Err(IdentityError::InvalidPeerId(
                EntrypointListError::TooMany(entrypoints.len()).to_string(),
            ));
        }
        self.entrypoints = entrypoints;
        Ok(())
    }

    /// Reads a peer file's fields, checking like `PrivatePeer.create_from_json` + `validate`:
    /// `id does not match public key`, `private/public pair does not match`.
    pub fn from_peer_file(file: &PeerFile) -> Result<Self, IdentityError> {
        let id = PeerId::parse_hex(&file.id).map_err(IdentityError::Parse)?;
        let public = PublicKey::from_base64(&file.pub_key)?;
        let der = B64
            .decode(file.priv_key.trim())
            .map_err(|e| IdentityError::Parse(format!("invalid base64 private key: {e}")))?;
        let private = RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|e| IdentityError::Parse(format!("invalid private key: {e}")))?;
        let entrypoints = parse_entrypoint_list(&file.entrypoints, id).map_err(|e| match e {
            EntrypointListError::TooMany(_) => IdentityError::InvalidPeerId(e.to_string()),
            EntrypointListError::Invalid(e) => IdentityError::Parse(e.to_string()),
        })?;
        if public.peer_id() != id {
            return Err(IdentityError::InvalidPeerId(
                "id does not match public key".into(),
            ));
        }
        if private.to_public_key() != *public.rsa() {
            return Err(IdentityError::InvalidPeerId(
                "private/public pair does not match".into(),
            ));
        }
        Ok(Self {
            private,
            public,
            id,
            entrypoints,
        })
    }

    /// Parses and checks a peer JSON file's text.
    pub fn from_peer_json(text: &str) -> Result<Self, IdentityError> {
        let file: PeerFile = serde_json::from_str(text)
            .map_err(|e| IdentityError::Parse(format!("invalid peer file: {e}")))?;
        Self::from_peer_file(&file)
    }

    /// The peer file's fields.
    pub fn to_peer_file(&self) -> Result<PeerFile, IdentityError> {
        Ok(PeerFile {
            id: self.id.to_hex(),
            entrypoints: self.entrypoints.iter().map(|e| e.to_string()).collect(),
            pub_key: self.public.to_base64(),
            priv_key: B64.encode(self.pkcs8_der()?),
        })
    }

    /// The peer file as pretty JSON.
    pub fn to_peer_json(&self) -> Result<String, IdentityError> {
        serde_json::to_string_pretty(&self.to_peer_file()?)
            .map_err(|e| IdentityError::Parse(e.to_string()))
    }

    /// Loads and checks a peer file.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        Self::from_peer_json(&std::fs::read_to_string(path)?)
    }

    /// Writes the peer file atomically (temporary file, fsync, rename), mode 0600 on Unix.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        let mut json = self.to_peer_json()?;
        json.push('\n');
        write_atomic(path, json.as_bytes(), true)?;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// then a best-effort fsync of the directory. `private` makes the file mode 0600 on Unix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fromhex_errors_match_python() {
        assert_eq!(
            PeerId::parse_hex("123").unwrap_err(),
            "non-hexadecimal number found in fromhex() arg at position 3"
        );
        assert_eq!(
            PeerId::parse_hex("ab").unwrap_err(),
            "expected 32 bytes, got 1 bytes"
        );
        assert_eq!(
            PeerId::parse_hex("zz").unwrap_err(),
            "non-hexadecimal number found in fromhex() arg at position 0"
        );
        let upper = "AB".repeat(32);
        assert_eq!(PeerId::parse_hex(&upper).unwrap().to_hex(), "ab".repeat(32));
    }
}
