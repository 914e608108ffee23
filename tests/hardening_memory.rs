//! Bounded memory, scaled down: 100,000 distinct announces from 10,000 sources, with
//! valid tokens, into one `Node` in simulated time, with caps small enough to bind (5,000
//! info-hashes, 20,000 peers, 4,096 tracked sources). The full run (1 million announces from
//! 100,000 sources, default caps, peak RSS) is `cargo bench --bench hardening -- memory`.

#[path = "support/announce_load.rs"]
mod announce_load;

use btdht::node::Config;
use btdht::peers::PeerStoreConfig;

fn config() -> Config {
    Config {
        rate_limit_max_ips: 4_096,
        peers: PeerStoreConfig {
            max_info_hashes: 5_000,
            max_peers: 20_000,
            ..PeerStoreConfig::default()
        },
        ..Config::default()
    }
}

#[test]
fn announces_from_many_sources_stay_within_every_cap() {
    // Over 5,000 info-hashes: the store fills to both caps.
    let report = announce_load::run_announces(config(), 10_000, 10, 5_000);
    eprintln!("{report:?}");
    assert_eq!(report.announces, 100_000);
    // Every announce carried a valid token and was acknowledged.
    assert_eq!(report.acknowledged, 100_000);
    assert_eq!(report.info_hashes, 5_000);
    assert_eq!(report.peers, 20_000);
    assert!(report.max_tracked_ips <= 4_096);
}

#[test]
fn announces_over_too_many_info_hashes_evict_whole_small_swarms() {
    // Over 30,000 info-hashes: new ones keep evicting the smallest swarm (one peer each).
    let report = announce_load::run_announces(config(), 10_000, 10, 30_000);
    eprintln!("{report:?}");
    assert_eq!(report.acknowledged, 100_000);
    assert_eq!(report.info_hashes, 5_000);
    assert!(report.peers <= 20_000);
    assert!(report.max_tracked_ips <= 4_096);
}
