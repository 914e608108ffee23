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

/// A fresh temporary directory for one test, removed with what it holds when dropped (also
/// when the test fails).
pub(crate) fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("btdht-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A directory from [`temp_dir`]: a [`std::path::Path`] that removes itself when dropped.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
/// directory per test process (emptied on first use). A process's homes outlive it (its
/// spawned binaries may write there until it ends); the next test process removes them.
pub(crate) fn fresh_home() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let root = ROOT.get_or_init(|| {
        remove_homes_of_ended_processes();
        let root = std::env::temp_dir().join(format!("{HOME_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    });
    let home = root.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&home).unwrap();
    home
}

/// The name of a test process's directory of homes, before its process id.
const HOME_PREFIX: &str = "btdht-home-";

/// Removes the directories of homes ([`fresh_home`]) of test processes that have ended (where
/// `/proc` tells; elsewhere none).
fn remove_homes_of_ended_processes() {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(HOME_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
