//! Shared helpers of the driver and CLI tests: loopback nodes and bounded waits, the `btdht`
//! binary in a home directory of its own ([`btdht_command`]); the libtorrent peer for interop
//! tests ([`libtorrent`]).
#![allow(clippy::disallowed_methods)] // tests and benchmarks measure and wait on the OS clock
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The `btdht` binary under test (`BTDHT_BIN` overrides it, e.g. for a copy outside a build
/// directory shared between checkouts, where another checkout's build may replace it).
pub(crate) fn btdht_bin() -> String {
    std::env::var("BTDHT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_btdht").to_string())
}

/// A command that runs the `btdht` binary under test with `HOME` and `XDG_DATA_HOME` in a
/// fresh directory of its own ([`fresh_home`]), so that no test reads or writes the user's
/// data directory (where `btdht node` keeps its state by default) and no two spawned nodes
/// share a default state file. Every test that starts `btdht` starts it through this.
pub(crate) fn btdht_command() -> Command {
    btdht_command_in(&fresh_home())
}

/// A command that runs the `btdht` binary under test with `HOME` set to `home` and
/// `XDG_DATA_HOME` to `home/.local/share` (a test of the default state file may override or
/// remove either).
pub(crate) fn btdht_command_in(home: &Path) -> Command {
    let mut command = Command::new(btdht_bin());
    command
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join(".local/share"));
    command
}

/// A new empty directory to serve as a spawned binary's home: one per call, under one
/// directory per test process (emptied on first use).
pub(crate) fn fresh_home() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let root = ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("btdht-home-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    });
    let home = root.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&home).unwrap();
    home
}
