//! Shared helpers of the driver and CLI tests: loopback nodes and bounded waits; the
//! libtorrent peer for interop tests ([`libtorrent`]).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use btdht::driver::{Builder, Dht};

pub(crate) mod libtorrent;

/// A builder for a loopback node on 127.0.`n`.1 with private addresses allowed and a seed.
pub(crate) fn loopback(n: u8) -> Builder {
    Dht::builder()
        .bind(SocketAddr::from(([127, 0, n, 1], 0)))
        .allow_private(true)
        .seed(u64::from(n))
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub(crate) fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh temporary directory for one test.
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("btdht-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `cond` every `every` until it holds or `limit` passes; returns whether it held.
pub(crate) fn wait_until_every(
    limit: Duration,
    every: Duration,
    mut cond: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// The lines `child` prints on its (piped) stdout, as they come, read by a thread of their
/// own; `None` if stdout was not piped or was taken already.
pub(crate) fn stdout_lines(
    child: &mut std::process::Child,
) -> Option<crossbeam_channel::Receiver<String>> {
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take()?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Some(rx)
}
