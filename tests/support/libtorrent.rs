//! Finding the libtorrent peer of `../shared/peers` for the interop tests, and skipping them
//! cleanly when it is not installed (unless `BTDHT_REQUIRE_INTEROP` says they must run).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The folder of `lt_peer.py`: `BTDHT_PEERS_DIR`, or `shared/peers` beside the checkout.
pub fn peers_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BTDHT_PEERS_DIR") {
        return Some(dir.into());
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join("../shared/peers"),
        manifest.join("../../shared/peers"),
    ]
    .into_iter()
    .find(|d| d.join("lt_peer.py").is_file())
}

/// The venv's python and the script, or why the test is skipped.
pub fn libtorrent() -> Result<(PathBuf, PathBuf), String> {
    let dir = peers_dir().ok_or("shared/peers/lt_peer.py not found")?;
    let python = match std::env::var_os("BTDHT_PEERS_PY") {
        Some(py) => PathBuf::from(py),
        None => {
            let home = std::env::var_os("HOME").ok_or("no HOME")?;
            PathBuf::from(home).join(".cache/btdht-peers/venv-lt/bin/python")
        }
    };
    let ok = Command::new(&python)
        .args(["-c", "import libtorrent"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!(
            "no libtorrent venv at {} (run shared/peers/setup.sh)",
            python.display()
        ));
    }
    Ok((python, dir.join("lt_peer.py")))
}

/// The python and script, or `None` after printing why the test is skipped; fails the test
/// instead when `BTDHT_REQUIRE_INTEROP` is set (as in CI).
pub fn libtorrent_or_skip() -> Option<(PathBuf, PathBuf)> {
    match libtorrent() {
        Ok(found) => Some(found),
        Err(why) => {
            assert!(
                std::env::var_os("BTDHT_REQUIRE_INTEROP").is_none(),
                "BTDHT_REQUIRE_INTEROP is set but {why}"
            );
            println!("skipped: {why}");
            None
        }
    }
}
