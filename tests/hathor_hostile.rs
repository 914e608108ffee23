//! Hostile input never panics the Hathor parsers and checks.

use btdht::hathor::entrypoint::PeerEndpoint;
use btdht::hathor::identity::PeerId;
use btdht::hathor::network::NetworkProfile;
use btdht::hathor::protocol::{
    Direction, HelloCheck, PeerIdCheck, check_hello, check_peer_id, parse_peers,
};
use proptest::prelude::*;

fn checks(s: &str) {
    let net = NetworkProfile::testnet_india();
    let _ = check_hello(
        s,
        &HelloCheck {
            network: &net,
            now: 1.7e9,
        },
    );
    let _ = check_peer_id(
        s,
        &PeerIdCheck {
            expected: None,
            own_id: PeerId([0; 32]),
            direction: Direction::Outbound("127.0.0.1:1".parse().unwrap()),
            cert_key: None,
            allowed: None,
            resolver: None,
        },
    );
    let _ = parse_peers(s, 100);
    let _ = PeerEndpoint::parse(s);
    let _ = PeerId::parse_hex(s);
}

proptest! {
    #[test]
    fn arbitrary_strings(s in ".{0,300}") {
        checks(&s);
    }

    #[test]
    fn json_shaped(
        k in prop::sample::select(vec!["app","network","timestamp","capabilities","sync_versions","id","pubKey","entrypoints","settings_dict"]),
        v in prop::sample::select(vec!["null","1e999","-1","[]","{}","\"x\"","[1,[2]]","\"tcp://[::1]:1\"","true"]),
    ) {
        checks(&format!("{{\"{k}\":{v}}}"));
        checks(&format!("[{{\"{k}\":{v}}}]"));
        checks(&format!("{{\"app\":\"a\",\"network\":\"testnet-india\",\"remote_address\":\"x\",\"genesis_short_hash\":\"f7438fb\",\"timestamp\":1.7e9,\"capabilities\":[\"sync-version\"],\"sync_versions\":[\"v2\"],\"{k}\":{v}}}"));
    }
}
