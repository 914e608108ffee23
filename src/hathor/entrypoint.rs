//! Hathor entrypoints: `tcp://host:port` addresses with an optional `/?id=<peer id>`.
//!
//! This module owns the parsing, printing and comparison rules of hathor-core's
//! `hathor/p2p/peer_endpoint.py` (which relies on Python's `urllib.parse.urlparse`), including its
//! error texts, so that a string accepted or refused here is accepted or refused by a Hathor node.
//! It does no name resolution.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::identity::PeerId;

/// Hathor's default p2p port (DNS A-record discovery assumes it).
pub const DEFAULT_PORT: u16 = 40403;

/// At most this many entrypoints per peer (`PEER_MAX_ENTRYPOINTS`).
pub const MAX_ENTRYPOINTS: usize = 30;

/// Longest accepted host, in characters.
pub const MAX_HOST_LEN: usize = 63;

/// A refused entrypoint. `Display` gives the text of the Python `ValueError` Hathor raises
/// (without the `ValueError: ` prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrypointError(pub String);

impl fmt::Display for EntrypointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EntrypointError {}

/// A peer's listening address: protocol (always `tcp`), host and port (`PeerAddress`).
///
/// Equality and hashing follow Hathor: `127.0.0.1`, `localhost` and `::1` are the same host.
#[derive(Clone, Debug)]
pub struct PeerAddress {
    host: String,
    port: u16,
}

impl PeerAddress {
    /// Builds an address from a host (a name or an IP literal, IPv6 without brackets) and a port.
    pub fn new(host: impl Into<String>, port: u16) -> Result<Self, EntrypointError> {
        let host = host.into().to_ascii_lowercase();
        if host.is_empty() {
            return Err(EntrypointError(format!(
                "expected a host: \"tcp://:{port}\""
            )));
        }
        if host.chars().count() > MAX_HOST_LEN {
            return Err(EntrypointError("hostname too long".into()));
        }
        Ok(Self { host, port })
    }

    /// The address of a socket address.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// Parses the strict form: like [`PeerEndpoint::parse`] but refusing any query.
    pub fn parse(text: &str) -> Result<Self, EntrypointError> {
        let parts = parse_parts(text)?;
        if !parts.query.is_empty() {
            return Err(EntrypointError(format!(
                "unexpected query: \"{text}\" (did you incorrectly add an id=?)"
            )));
        }
        Ok(parts.addr)
    }

    /// The host, lowercase, IPv6 without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is an IPv6 literal (by its text, as Hathor does; names are never IPv6).
    pub fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }

    /// The host as an IP address, if it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The socket address, if the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Whether the host is a loopback alias (`127.0.0.1`, `localhost`, `::1`).
    fn canonical_host(&self) -> &str {
        match self.host.as_str() {
            "127.0.0.1" | "localhost" | "::1" => "127.0.0.1",
            other => other,
        }
    }

    /// Whether `self` and `other` have the same host under Hathor's rule (ports ignored).
    pub fn same_host(&self, other: &PeerAddress) -> bool {
        self.canonical_host() == other.canonical_host()
    }

    /// This address with a peer id: `tcp://host:port/?id=<id>`.
    pub fn with_id(&self, id: PeerId) -> PeerEndpoint {
        PeerEndpoint {
            addr: self.clone(),
            peer_id: Some(id),
        }
    }
}

impl PartialEq for PeerAddress {
    fn eq(&self, other: &Self) -> bool {
        self.port == other.port && self.same_host(other)
    }
}

impl Eq for PeerAddress {}

impl Hash for PeerAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical_host().hash(state);
        self.port.hash(state);
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ipv6() {
            write!(f, "tcp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "tcp://{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for PeerAddress {
    type Err = EntrypointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An address with an optional peer id (`PeerEndpoint`): `tcp://host:port[/?id=<64 hex>]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerEndpoint {
    /// The address.
    pub addr: PeerAddress,
    /// The peer id the address must lead to, if given.
    pub peer_id: Option<PeerId>,
}

impl PeerEndpoint {
    /// Parses with Hathor's rules (`PeerEndpoint.parse`). Errors carry Hathor's texts.
    pub fn parse(text: &str) -> Result<Self, EntrypointError> {
        let parts = parse_parts(text)?;
        let mut peer_id = None;
        if !parts.query.is_empty() {
            let ids: Vec<String> = parse_qs(&parts.query)
                .into_iter()
                .filter(|(k, _)| k == "id")
                .map(|(_, v)| v)
                .collect();
            if !ids.is_empty() {
                if ids.len() != 1 {
                    return Err(EntrypointError(format!(
                        "unexpected id count: {}",
                        ids.len()
                    )));
                }
                peer_id = Some(PeerId::parse_hex(&ids[0]).map_err(EntrypointError)?);
            }
        }
        Ok(Self {
            addr: parts.addr,
            peer_id,
        })
    }
}

impl fmt::Display for PeerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.peer_id {
            Some(id) => write!(f, "{}/?id={}", self.addr, id),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl FromStr for PeerEndpoint {
    type Err = EntrypointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Parses a list of entrypoints as received in a peer file, PEER-ID or PEERS: at most
/// [`MAX_ENTRYPOINTS`], each parsed with [`PeerEndpoint::parse`]; an embedded id must equal
/// `owner` (`conflicting peer_id: X != Y`) and is dropped.
pub fn parse_entrypoint_list<S: AsRef<str>>(
    items: &[S],
    owner: PeerId,
) -> Result<Vec<PeerAddress>, EntrypointListError> {
    if items.len() > MAX_ENTRYPOINTS {
        return Err(EntrypointListError::TooMany(items.len()));
    }
    let mut out: Vec<PeerAddress> = Vec::with_capacity(items.len());
    for item in items {
        let ep = PeerEndpoint::parse(item.as_ref()).map_err(EntrypointListError::Invalid)?;
        if let Some(id) = ep.peer_id
            && id != owner
        {
            return Err(EntrypointListError::Invalid(EntrypointError(format!(
                "conflicting peer_id: {id} != {owner}"
            ))));
        }
        // Exact duplicates only: Hathor keeps `127.0.0.1` and `::1` entries side by side.
        if !out
            .iter()
            .any(|a| a.host == ep.addr.host && a.port == ep.addr.port)
        {
            out.push(ep.addr);
        }
    }
    Ok(out)
}

/// Why a list of entrypoints was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntrypointListError {
    /// One entry is invalid (a `ValueError` in Hathor).
    Invalid(EntrypointError),
    /// More than [`MAX_ENTRYPOINTS`] entries (an `InvalidPeerIdException` in Hathor).
    TooMany(usize),
}

impl fmt::Display for EntrypointListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(e) => write!(f, "{e}"),
            Self::TooMany(n) => write!(f, "too many entrypoints: {n} > {MAX_ENTRYPOINTS}"),
        }
    }
}

impl std::error::Error for EntrypointListError {}

struct Parts {
    addr: PeerAddress,
    query: String,
}

/// The C0 controls and space that `urlsplit` strips from the start.
fn is_c0_or_space(c: char) -> bool {
    c <= ' '
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'
}

/// `urllib.parse.urlparse` + hathor's `_parse_address_parts`.
fn parse_parts(description: &str) -> Result<Parts, EntrypointError> {
    let cleaned: String = description
        .trim_start_matches(is_c0_or_space)
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = cleaned.as_str();
    // Scheme: letters first, then scheme chars, up to the first ':'.
    let mut scheme = String::new();
    if let Some(colon) = rest.find(':') {
        let candidate = &rest[..colon];
        if candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && candidate.chars().all(is_scheme_char)
        {
            scheme = candidate.to_ascii_lowercase();
            rest = &rest[colon + 1..];
        }
    }
    let mut netloc = "";
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = &after[..end];
        rest = &after[end..];
    }
    let rest = rest.split('#').next().unwrap_or("");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    if netloc.contains('[') != netloc.contains(']') {
        return Err(EntrypointError("Invalid IPv6 URL".into()));
    }
    if scheme != "tcp" {
        return Err(EntrypointError(format!(
            "'{scheme}' is not a valid Protocol"
        )));
    }
    // _hostinfo
    let hostinfo = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let (hostname, port) = match hostinfo.split_once('[') {
        Some((_, bracketed)) => {
            let (h, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            let port = after.split_once(':').map_or("", |(_, p)| p);
            if !h.is_empty() {
                let bare = h.split('%').next().unwrap_or("");
                if bare.parse::<Ipv6Addr>().is_err() {
                    if bare.parse::<std::net::Ipv4Addr>().is_ok() {
                        return Err(EntrypointError(
                            "An IPv4 address cannot be in brackets".into(),
                        ));
                    }
                    return Err(EntrypointError(format!(
                        "'{h}' does not appear to be an IPv4 or IPv6 address"
                    )));
                }
            }
            (h, port)
        }
        None => match hostinfo.split_once(':') {
            Some((h, p)) => (h, p),
            None => (hostinfo, ""),
        },
    };
    if hostname.is_empty() {
        return Err(EntrypointError(format!(
            "expected a host: \"{description}\""
        )));
    }
    let host = hostname.to_lowercase();
    if host.chars().count() > MAX_HOST_LEN {
        return Err(EntrypointError("hostname too long".into()));
    }
    if port.is_empty() {
        return Err(EntrypointError(format!(
            "expected a port: \"{description}\""
        )));
    }
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(EntrypointError(format!(
            "Port could not be cast to integer value as '{port}'"
        )));
    }
    let trimmed = port.trim_start_matches('0');
    let port: u16 = if trimmed.is_empty() {
        0
    } else if trimmed.len() > 5 {
        return Err(EntrypointError("Port out of range 0-65535".into()));
    } else {
        match trimmed.parse::<u32>() {
            Ok(p) if p <= 65535 => p as u16,
            _ => return Err(EntrypointError("Port out of range 0-65535".into())),
        }
    };
    if !(path.is_empty() || path == "/") {
        return Err(EntrypointError(format!(
            "unexpected path: \"{description}\""
        )));
    }
    Ok(Parts {
        addr: PeerAddress { host, port },
        query: query.to_string(),
    })
}

/// `urllib.parse.parse_qs` without blank values, as (name, value) pairs in order.
fn parse_qs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            if v.is_empty() {
                return None;
            }
            Some((unquote_plus(k), unquote_plus(v)))
        })
        .collect()
}

fn unquote_plus(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hi = char::from(bytes[i + 1]).to_digit(16);
                let lo = char::from(bytes[i + 2]).to_digit(16);
                if let (Some(h), Some(l)) = (hi, lo) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_aliases_are_equal() {
        let a = PeerAddress::parse("tcp://127.0.0.1:40403").unwrap();
        let b = PeerAddress::parse("tcp://localhost:40403").unwrap();
        let c = PeerAddress::parse("tcp://[::1]:40403").unwrap();
        let d = PeerAddress::parse("tcp://[::1]:40404").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, d);
        assert_eq!(c.to_string(), "tcp://[::1]:40403");
    }

    #[test]
    fn strict_form_refuses_query() {
        assert!(PeerAddress::parse("tcp://1.2.3.4:1/?id=ab").is_err());
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        for s in [
            "",
            "tcp",
            "tcp:",
            "tcp://",
            "tcp://[",
            "tcp://]",
            "tcp://[::1",
            "tcp://[x]:1",
            "tcp://[1.2.3.4]:1",
            "tcp://h:-1",
            "tcp://h:1x",
            "tcp://h:%",
            "tcp://h:1/?id=%",
            "tcp://h:1/?id=%4",
            "tcp://h:1/?id=%zz",
            "tcp://é:1",
            "tcp://h:00000000001",
            "\u{0}tcp://h:1",
            "tcp://h:1?&&=&id",
        ] {
            let _ = PeerEndpoint::parse(s);
        }
        assert_eq!(PeerEndpoint::parse("tcp://h:00001").unwrap().addr.port(), 1);
    }

    #[test]
    fn unquote() {
        assert_eq!(unquote_plus("a+b%41%4"), "a bA%4");
        assert_eq!(unquote_plus("%"), "%");
    }
}
