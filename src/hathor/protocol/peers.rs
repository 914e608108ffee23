//! PEERS: the gossiped peer list.

use super::*;

/// One gossiped peer from a `PEERS` line (unverified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipPeer {
    /// The peer id it claims.
    pub id: PeerId,
    /// Its entrypoints.
    pub entrypoints: Vec<PeerAddress>,
}

impl Serialize for PeerAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PeerAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::super::entrypoint::PeerEndpoint::parse(&s)
            .map(|e| e.addr)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a `PEERS` payload (`[{"id":…,"entrypoints":[…]}, …]`), skipping invalid items.
pub fn parse_peers(payload: &str, limit: usize) -> Vec<GossipPeer> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(payload) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let id = PeerId::parse_hex(item.get("id")?.as_str()?).ok()?;
            let eps: Vec<String> = item
                .get("entrypoints")?
                .as_array()?
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect();
            let entrypoints = parse_entrypoint_list(&eps, id).ok()?;
            Some(GossipPeer { id, entrypoints })
        })
        .take(limit)
        .collect()
}
