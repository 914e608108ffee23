//! Issue G figures that are too heavy for `cargo test`.
//!
//! `cargo bench --bench hardening -- memory`: 1 million distinct announces from 100,000
//! sources (each with the token of its own get_peers) over 100,000 info-hashes into one `Node`
//! in simulated time, with
//! the default caps; prints the store's size, its own memory estimate, the most sources the
//! rate limiter tracked, and the process's peak RSS (VmHWM) before and after, as JSON.

#[path = "../tests/support/announce_load.rs"]
mod announce_load;

use btdht::node::Config;

fn memory() {
    let before = announce_load::peak_rss_kib();
    let started = std::time::Instant::now();
    let config = Config::default();
    let report = announce_load::run_announces(config.clone(), 100_000, 10, 100_000);
    let after = announce_load::peak_rss_kib();
    assert_eq!(report.announces, 1_000_000);
    assert!(report.info_hashes <= config.peers.max_info_hashes);
    assert!(report.peers <= config.peers.max_peers);
    println!(
        "{{\"bench\":\"memory\",\"announces\":{},\"acknowledged\":{},\"info_hashes\":{},\
         \"peers\":{},\"store_estimate_bytes\":{},\"max_tracked_ips\":{},\"max_in_flight\":{},\
         \"simulated_s\":{:.1},\"wall_s\":{:.1},\"peak_rss_kib_before\":{},\"peak_rss_kib\":{}}}",
        report.announces,
        report.acknowledged,
        report.info_hashes,
        report.peers,
        report.store_bytes,
        report.max_tracked_ips,
        report.max_in_flight,
        report.simulated.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        before.unwrap_or(0),
        after.unwrap_or(0)
    );
}

fn main() {
    // cargo bench passes `--bench`; the first other argument picks the figure.
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match which.first().map(String::as_str) {
        None | Some("memory") => memory(),
        Some(other) => {
            eprintln!("unknown figure {other}; known: memory");
            std::process::exit(2);
        }
    }
}
