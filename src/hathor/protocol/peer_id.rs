//! PEER-ID: its payload, the remote identity it proves and the receiver's checks.

use super::*;

/// The PEER-ID payload as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdPayload {
    /// The peer id, hex.
    pub id: String,
    /// Base64 SPKI DER.
    #[serde(rename = "pubKey")]
    pub pub_key: String,
    /// Entrypoints.
    pub entrypoints: Vec<String>,
}

impl PeerIdPayload {
    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A peer proved by PEER-ID (and the TLS certificate).
#[derive(Clone, Debug)]
pub struct RemoteIdentity {
    /// The peer id.
    pub id: PeerId,
    /// Its public key.
    pub public_key: PublicKey,
    /// Declared entrypoints, without `?id=`.
    pub entrypoints: Vec<PeerAddress>,
    /// Whether the dialled address is among them (outbound); `false` when none declared.
    pub entrypoint_confirmed: bool,
}

/// Resolves a host name to IP addresses (for entrypoint validation).
pub type Resolver = Arc<dyn Fn(&str) -> Vec<IpAddr> + Send + Sync>;

/// How the connection was made, for entrypoint validation.
#[derive(Clone, Debug)]
pub enum Direction {
    /// We dialled this address (the dialled `tcp://ip:port` must be declared).
    Outbound(SocketAddr),
    /// The remote connected from this address (only its IP is compared).
    Inbound(SocketAddr),
}

/// What the receiver knows to check a PEER-ID.
#[derive(Clone)]
pub struct PeerIdCheck<'a> {
    /// The id we dialled for (`/?id=`), if any.
    pub expected: Option<PeerId>,
    /// Our own id.
    pub own_id: PeerId,
    /// The direction of the connection.
    pub direction: Direction,
    /// The key in the remote's TLS certificate.
    pub cert_key: Option<&'a PublicKey>,
    /// Whether the remote id is allowed (whitelist); `None` allows all.
    pub allowed: Option<&'a (dyn Fn(PeerId) -> bool + Sync)>,
    /// Resolver for entrypoint host names; without one, names never match.
    pub resolver: Option<&'a Resolver>,
}

/// Checks a PEER-ID payload in hathor-core's order: parse → id/key and entrypoint count →
/// requested id → whitelist → own id → entrypoints → certificate key.
pub fn check_peer_id(
    payload: &str,
    check: &PeerIdCheck<'_>,
) -> Result<RemoteIdentity, FailureReason> {
    let value: Value =
        serde_json::from_str(payload).map_err(|_| FailureReason::InvalidPeerIdPayload)?;
    let obj = value
        .as_object()
        .ok_or(FailureReason::InvalidPeerIdPayload)?;
    let id_text = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or(FailureReason::InvalidPeerIdPayload)?;
    let id = PeerId::parse_hex(id_text).map_err(FailureReason::UnparsablePeerId)?;
    let key_text = obj
        .get("pubKey")
        .and_then(Value::as_str)
        .ok_or(FailureReason::InvalidPeerIdPayload)?;
    let public_key = PublicKey::from_base64(key_text)
        .map_err(|e| FailureReason::UnparsablePeerId(e.to_string()))?;
    let raw_entrypoints: Vec<String> = match obj.get("entrypoints") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > super::super::entrypoint::MAX_ENTRYPOINTS {
                return Err(FailureReason::TooManyEntrypoints(items.len()));
            }
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(FailureReason::InvalidPeerIdPayload)?
        }
        Some(_) => return Err(FailureReason::InvalidPeerIdPayload),
    };
    let entrypoints = parse_entrypoint_list(&raw_entrypoints, id).map_err(|e| match e {
        EntrypointListError::TooMany(n) => FailureReason::TooManyEntrypoints(n),
        EntrypointListError::Invalid(e) => FailureReason::UnparsablePeerId(e.0),
    })?;
    if public_key.peer_id() != id {
        return Err(FailureReason::IdDoesNotMatchKey);
    }
    if let Some(expected) = check.expected
        && expected != id
    {
        return Err(FailureReason::PeerIdNotRequested {
            expected,
            remote: id,
        });
    }
    if let Some(allowed) = check.allowed
        && !allowed(id)
    {
        return Err(FailureReason::NotWhitelisted);
    }
    if id == check.own_id {
        return Err(FailureReason::Clone);
    }
    let entrypoint_confirmed = if entrypoints.is_empty() {
        false
    } else if entrypoint_matches(&entrypoints, &check.direction, check.resolver) {
        true
    } else {
        return Err(FailureReason::NotInEntrypoints);
    };
    match check.cert_key {
        Some(k) if k == &public_key => {}
        _ => return Err(FailureReason::CertificateKeyMismatch),
    }
    Ok(RemoteIdentity {
        id,
        public_key,
        entrypoints,
        entrypoint_confirmed,
    })
}

fn entrypoint_matches(
    declared: &[PeerAddress],
    direction: &Direction,
    resolver: Option<&Resolver>,
) -> bool {
    let (addr, check_port) = match direction {
        Direction::Outbound(a) => (*a, true),
        Direction::Inbound(a) => (*a, false),
    };
    let dialled = PeerAddress::from_socket_addr(addr);
    let ip = normalize_ip(addr.ip());
    declared.iter().any(|ep| {
        let port_ok = !check_port || ep.port() == addr.port();
        if !port_ok {
            return false;
        }
        if ep.same_host(&dialled) {
            return true;
        }
        if let Some(ep_ip) = ep.ip() {
            return normalize_ip(ep_ip) == ip;
        }
        match resolver {
            Some(r) => r(ep.host()).into_iter().any(|r| normalize_ip(r) == ip),
            None => false,
        }
    })
}

fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl std::fmt::Debug for PeerIdCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIdCheck")
            .field("expected", &self.expected)
            .field("own_id", &self.own_id)
            .field("direction", &self.direction)
            .field("whitelist", &self.allowed.is_some())
            .finish_non_exhaustive()
    }
}
