//! TLS for the Hathor p2p protocol: the CA, leaf certificates, and rustls configurations.
//!
//! Hathor runs TLS 1.3 only, with mutual authentication, from the first byte of the TCP
//! connection. The trust root is the Hathor CA (whose key is public, so it is a format gate,
//! not security); there is no host name check and no SNI. Each node presents a leaf certificate
//! (`CN=Hathor full node`, `CA:FALSE`, valid from now − 1 h to now + 100 years) for its own peer
//! RSA key, signed by the CA. Peer identity is proved by that key equalling the `pubKey` of
//! PEER-ID, which the handshake checks.
//!
//! This module owns certificate minting (rcgen), PEM loading, the server-certificate verifier
//! (webpki chain check against the given CA, server name ignored) and the client/server rustls
//! configurations. It does no network I/O.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, TrustAnchor, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::identity::{Identity, PublicKey};

/// Subject common name of Hathor's CA.
pub const HATHOR_CA_CN: &str = "Hathor Labs";
/// Subject common name of a node's leaf certificate.
pub const LEAF_CN: &str = "Hathor full node";

/// An error setting up TLS material.
#[derive(Debug)]
pub struct TlsSetupError(pub String);

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

fn err<E: fmt::Display>(context: &str) -> impl FnOnce(E) -> TlsSetupError + '_ {
    move |e| TlsSetupError(format!("{context}: {e}"))
}

/// The ring crypto provider shared by all our configurations.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority able to sign leaf certificates: Hathor's (`ca.crt` + `ca.key` from
/// hathorlib, supplied by the user) or a throwaway one for tests.
pub struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// Turns a private key in PEM (PKCS#1 `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY` or SEC1) into an
/// rcgen signing key; RSA keys sign with sha256WithRSAEncryption.
fn signing_key_from_pem(key_pem: &str) -> Result<KeyPair, TlsSetupError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(err("CA key PEM"))?;
    match key {
        PrivateKeyDer::Pkcs1(der) => {
            let rsa = RsaPrivateKey::from_pkcs1_der(der.secret_pkcs1_der())
                .map_err(err("CA key PKCS#1"))?;
            rsa_signing_key(&rsa)
        }
        PrivateKeyDer::Pkcs8(der) => {
            KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
                .or_else(|_| KeyPair::try_from(der.secret_pkcs8_der()))
                .map_err(err("CA key PKCS#8"))
        }
        other => KeyPair::try_from(&other).map_err(err("CA key")),
    }
}

/// An rcgen signing key (sha256WithRSAEncryption) for an RSA private key.
fn rsa_signing_key(key: &RsaPrivateKey) -> Result<KeyPair, TlsSetupError> {
    let pkcs8 = key.to_pkcs8_der().map_err(err("PKCS#8 encoding"))?;
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .map_err(err("RSA signing key"))
}

fn unix_to_offset(unix: i64) -> Result<time::OffsetDateTime, TlsSetupError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(err("certificate time"))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

impl CertificateAuthority {
    /// Loads a CA from its certificate and private key in PEM (Hathor's `ca.key` is PKCS#1).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsSetupError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(err("CA certificate PEM"))?;
        let key = signing_key_from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(err("CA certificate"))?;
        Ok(Self { cert_der, issuer })
    }

    /// Loads a CA from PEM files (e.g. hathorlib's `cert/ca.crt` and `cert/ca.key`).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsSetupError> {
        let cert =
            std::fs::read_to_string(cert_path).map_err(err(&format!("{}", cert_path.display())))?;
        let key =
            std::fs::read_to_string(key_path).map_err(err(&format!("{}", key_path.display())))?;
        Self::from_pem(&cert, &key)
    }

    /// Mints a self-signed CA shaped like Hathor's (RSA, `CA:TRUE pathlen:1`), valid from
    /// `now_unix − 1 h` for 100 years. For tests and private experiments.
    pub fn self_signed(
        key: &RsaPrivateKey,
        common_name: &str,
        now_unix: i64,
    ) -> Result<Self, TlsSetupError> {
        let signing = rsa_signing_key(key)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = unix_to_offset(now_unix - 3600)?;
        params.not_after = unix_to_offset(now_unix + 100 * 365 * 86400)?;
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&signing)
            .map_err(err("CA self-signing"))?;
        let cert_der = cert.der().clone();
        let issuer = Issuer::new(params, signing);
        Ok(Self { cert_der, issuer })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        let b64 =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &self.cert_der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// Issues a leaf certificate for `key` like a Hathor node does at start: subject
    /// `CN=Hathor full node`, `CA:FALSE`, valid from `now_unix − 1 h` to `now_unix + 100 y`,
    /// random serial, no SAN/EKU/KeyUsage.
    pub fn issue_leaf(
        &self,
        key: &PublicKey,
        now_unix: i64,
    ) -> Result<CertificateDer<'static>, TlsSetupError> {
        let spki =
            rcgen::SubjectPublicKeyInfo::from_der(key.spki_der()).map_err(err("leaf key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, LEAF_CN);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = unix_to_offset(now_unix - 3600)?;
        params.not_after = unix_to_offset(now_unix + 100 * 365 * 86400)?;
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&spki, &self.issuer)
            .map_err(err("leaf signing"))?;
        Ok(cert.der().clone())
    }
}

/// What a node presents in TLS: its leaf chain and the PKCS#8 key, plus the CA it trusts.
#[derive(Debug)]
pub struct TlsCredentials {
    /// The CA certificate used as the only trust anchor.
    pub ca_cert: CertificateDer<'static>,
    /// Our certificate chain (leaf first).
    pub chain: Vec<CertificateDer<'static>>,
    /// Our private key, PKCS#8.
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl Clone for TlsCredentials {
    fn clone(&self) -> Self {
        Self {
            ca_cert: self.ca_cert.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsCredentials {
    /// Mints a leaf for `identity` with `ca` (valid from `now_unix − 1 h`).
    pub fn issue(
        ca: &CertificateAuthority,
        identity: &Identity,
        now_unix: i64,
    ) -> Result<Self, TlsSetupError> {
        let leaf = ca.issue_leaf(identity.public_key(), now_unix)?;
        Self::with_leaf(ca.cert_der().clone(), leaf, identity)
    }

    /// Uses an existing leaf certificate for `identity`.
    pub fn with_leaf(
        ca_cert: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        identity: &Identity,
    ) -> Result<Self, TlsSetupError> {
        let der = identity.pkcs8_der().map_err(err("identity key"))?;
        Ok(Self {
            ca_cert,
            chain: vec![leaf],
            key: PrivatePkcs8KeyDer::from(der),
        })
    }

    /// A rustls client configuration: TLS 1.3 only, our certificate for client auth, and a
    /// server verifier that checks the chain against the CA and ignores the server name.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsSetupError> {
        let provider = provider();
        let verifier = HathorServerVerifier::new(self.ca_cert.clone(), provider.clone())?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(err("TLS versions"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(err("client certificate"))?;
        Ok(Arc::new(config))
    }

    /// A rustls server configuration: TLS 1.3 only; with `require_client_cert` the client must
    /// present a certificate chaining to the CA (Hathor's behaviour), otherwise none is asked.
    pub fn server_config(
        &self,
        require_client_cert: bool,
    ) -> Result<Arc<ServerConfig>, TlsSetupError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(err("TLS versions"))?;
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots
                .add(self.ca_cert.clone())
                .map_err(err("CA certificate"))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(err("client verifier"))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(err("server certificate"))?;
        Ok(Arc::new(config))
    }
}

/// A client configuration that presents no certificate (only useful to test that a server
/// refuses such clients).
pub fn client_config_without_cert(
    ca_cert: CertificateDer<'static>,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let verifier = HathorServerVerifier::new(ca_cert, provider.clone())?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(err("TLS versions"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The public key certified by a certificate (its SPKI, parsed as RSA).
pub fn certificate_public_key(cert: &CertificateDer<'_>) -> Result<PublicKey, TlsSetupError> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(err("certificate"))?;
    let spki = ee.subject_public_key_info();
    PublicKey::from_der(spki.as_ref()).map_err(err("certificate key"))
}

/// The server name to use when dialling an address: its IP (rustls sends no SNI for IPs).
pub fn server_name_for(addr: std::net::SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}

/// Verifies a server's certificate chain against one CA, ignoring the server name (Hathor
/// certificates carry no SAN).
#[derive(Debug)]
pub struct HathorServerVerifier {
    anchor: TrustAnchor<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl HathorServerVerifier {
    /// A verifier trusting only `ca_cert`.
    pub fn new(
        ca_cert: CertificateDer<'static>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsSetupError> {
        let anchor = webpki::anchor_from_trusted_cert(&ca_cert)
            .map_err(err("CA certificate"))?
            .to_owned();
        Ok(Self {
            anchor,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

fn webpki_to_rustls(e: webpki::Error) -> rustls::Error {
    use webpki::Error as W;
    let ce = match e {
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::CertExpired { .. } => CertificateError::Expired,
        W::CertNotValidYet { .. } => CertificateError::NotValidYet,
        W::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        W::CertRevoked => CertificateError::Revoked,
        W::BadDer | W::BadDerTime => CertificateError::BadEncoding,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(ce)
}

impl ServerCertVerifier for HathorServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(webpki_to_rustls)?;
        ee.verify_for_usage(
            self.algorithms.all,
            std::slice::from_ref(&self.anchor),
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(webpki_to_rustls)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
