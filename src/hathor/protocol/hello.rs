//! HELLO: its payload and the receiver's checks, in hathor-core's order.

use super::*;

/// The HELLO payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// `Hathor v<version>` for hathor-core.
    pub app: String,
    /// `NETWORK_NAME`.
    pub network: String,
    /// The sender's view of the receiver's address (informational).
    pub remote_address: String,
    /// First 7 hex chars of the genesis digest.
    pub genesis_short_hash: String,
    /// The sender's clock, seconds since the epoch.
    pub timestamp: f64,
    /// Optional network settings (omitted by clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_dict: Option<Map<String, Value>>,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Sync versions (required with the `sync-version` capability).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_versions: Option<Vec<String>>,
}

impl Hello {
    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the receiver knows to check a HELLO.
#[derive(Clone, Debug)]
pub struct HelloCheck<'a> {
    /// Our network.
    pub network: &'a NetworkProfile,
    /// Our clock at receipt, seconds since the epoch.
    pub now: f64,
}

/// Checks a HELLO payload in hathor-core's order: JSON and required keys → whitelist capability
/// (whitelisted networks) → sync versions → network → genesis → timestamp → settings_dict.
pub fn check_hello(payload: &str, check: &HelloCheck<'_>) -> Result<Hello, FailureReason> {
    let value: Value =
        serde_json::from_str(payload).map_err(|_| FailureReason::InvalidHelloPayload)?;
    let obj = value
        .as_object()
        .ok_or(FailureReason::InvalidHelloPayload)?;
    for key in [
        "app",
        "network",
        "remote_address",
        "genesis_short_hash",
        "timestamp",
        "capabilities",
    ] {
        if !obj.contains_key(key) {
            return Err(FailureReason::InvalidHelloPayload);
        }
    }
    let as_string = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let capabilities: Vec<String> = match &obj["capabilities"] {
        Value::Array(items) => items.iter().take(64).map(as_string).collect(),
        _ => return Err(FailureReason::InvalidHelloPayload),
    };
    if check.network.whitelist && !capabilities.iter().any(|c| c == capability::WHITELIST) {
        return Err(FailureReason::MissingWhitelistCapability);
    }
    let sync_versions = if capabilities.iter().any(|c| c == capability::SYNC_VERSION) {
        match obj.get("sync_versions") {
            Some(Value::Array(items)) => {
                Some(items.iter().take(64).map(as_string).collect::<Vec<_>>())
            }
            _ => return Err(FailureReason::InvalidSyncProtocol),
        }
    } else {
        None
    };
    // Without the capability the remote is assumed to speak only v1.1.
    let common = sync_versions
        .as_ref()
        .is_some_and(|v| v.iter().any(|s| s == SYNC_V2));
    if !common {
        return Err(FailureReason::NoCompatibleSyncVersion);
    }
    let network = as_string(&obj["network"]);
    if network != check.network.name {
        return Err(FailureReason::WrongNetwork {
            remote: truncated(&network),
        });
    }
    let genesis = as_string(&obj["genesis_short_hash"]);
    if genesis != check.network.genesis_short_hash() {
        return Err(FailureReason::DifferentGenesis {
            remote: truncated(&genesis),
        });
    }
    let timestamp = obj["timestamp"]
        .as_f64()
        .filter(|t| t.is_finite())
        .ok_or(FailureReason::InvalidHelloPayload)?;
    let offset = timestamp - check.now;
    if offset.abs() > MAX_CLOCK_SKEW {
        return Err(FailureReason::TimestampsTooFarApart { offset });
    }
    let settings_dict = match obj.get("settings_dict") {
        None | Some(Value::Null) => None,
        Some(Value::Object(theirs)) => {
            if let Some(ours) = &check.network.settings_dict
                && theirs != ours
            {
                return Err(FailureReason::SettingsDifferent(
                    serde_json::to_string(ours).unwrap_or_default(),
                ));
            }
            Some(theirs.clone())
        }
        Some(_) => {
            return Err(FailureReason::SettingsDifferent(
                check
                    .network
                    .settings_dict
                    .as_ref()
                    .and_then(|o| serde_json::to_string(o).ok())
                    .unwrap_or_else(|| "{}".into()),
            ));
        }
    };
    Ok(Hello {
        app: truncated(&as_string(&obj["app"])),
        network,
        remote_address: truncated(&as_string(&obj["remote_address"])),
        genesis_short_hash: genesis,
        timestamp,
        settings_dict,
        capabilities,
        sync_versions,
    })
}

fn truncated(s: &str) -> String {
    s.chars().take(256).collect()
}
