//! The `btdht` lookup commands against loopback nodes when the lookup cannot converge before
//! `--timeout`: they print what was found so far, say the result is partial, and exit 0;
//! `announce --seed` stores a seed, which `get-peers --noseed` leaves out.
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock

mod support;

use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use btdht::{Event, InfoHash};
use support::{loopback, wait_until};

const T: Duration = Duration::from_secs(10);
const HASH: &str = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";

fn btdht(args: &[&str]) -> Output {
    support::btdht_command().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn lookups_cut_by_the_timeout_print_the_partial_result_and_exit_0() {
    let live = loopback(200).request_timeout(T).start().unwrap();
    let events = live.subscribe();
    let gone = loopback(201)
        .bootstrap([live.local_addr()])
        .start()
        .unwrap();
    assert!(wait_until(T, || live
        .routing_table()
        .is_ok_and(|t| !t.is_empty())));
    let bootstrap = live.local_addr().to_string();
    let common = [
        "--bootstrap",
        bootstrap.as_str(),
        "--allow-private",
        "--bind",
        "127.0.202.1:0",
    ];

    // A seed announces through the CLI; the live node stores it with the seed flag.
    let mut args = vec!["announce", HASH, "--port", "7202", "--seed", "--json"];
    args.extend(common);
    let out = btdht(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let peer: SocketAddr = "127.0.202.1:7202".parse().unwrap();
    let info_hash = InfoHash::from_hex(HASH).unwrap();
    let deadline = Instant::now() + T;
    loop {
        match events.recv_deadline(deadline) {
            Ok(Event::PeerAnnounced {
                info_hash: h,
                peer: p,
                seed,
            }) if h == info_hash && p == peer => {
                assert!(seed, "stored as a seed");
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("no announce stored: {e}"),
        }
    }

    // The other node goes silent: it stays in the live node's table, so lookups ask it
    // and wait for it past --timeout.
    gone.stop().unwrap();
    let mut args = vec!["get-peers", HASH, "--timeout", "1"];
    args.extend(common);
    let started = Instant::now();
    let out = btdht(&args);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("peer {peer}")),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("timed out after 1 s"),
        "{}",
        text(&out.stderr)
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    let mut args = vec!["find-node", HASH, "--timeout", "1"];
    args.extend(common);
    let out = btdht(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("node "), "{}", text(&out.stdout));

    // --noseed: the seed is left out.
    let mut args = vec!["get-peers", HASH, "--noseed", "--timeout", "1"];
    args.extend(common);
    let out = btdht(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains(&format!("peer {peer}")),
        "{}",
        text(&out.stdout)
    );
    live.stop().unwrap();
}
