//! The libtorrent peer of the interop tests (`tests/peers/lt_node.py`, run with the python of
//! the venv `tests/peers/setup.sh` makes), and skipping those tests with one line of output
//! when it is not installed, unless `BTDHT_REQUIRE_INTEROP` says they must run.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The peer script, `tests/peers/lt_node.py`.
pub(crate) fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/lt_node.py")
}

/// The python to run the script with: `BTDHT_PEERS_PY`, else the venv's python under
/// `BTDHT_PEERS_VENV`, else under `${XDG_CACHE_HOME:-~/.cache}/btdht/venv-libtorrent-2.1.1`
/// (where `tests/peers/setup.sh` puts it).
pub(crate) fn python() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("BTDHT_PEERS_PY") {
        return Ok(python.into());
    }
    let venv = match std::env::var_os("BTDHT_PEERS_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => {
            let cache = match std::env::var_os("XDG_CACHE_HOME") {
                Some(cache) => PathBuf::from(cache),
                None => {
                    PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache")
                }
            };
            cache.join("btdht/venv-libtorrent-2.1.1")
        }
    };
    Ok(venv.join("bin/python"))
}

/// The venv's python and the script, or why the interop tests cannot run.
pub(crate) fn libtorrent() -> Result<(PathBuf, PathBuf), String> {
    let python = python()?;
    let imports = Command::new(&python)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !imports {
        return Err(format!(
            "{} cannot import libtorrent (make the venv with tests/peers/setup.sh)",
            python.display()
        ));
    }
    Ok((python, script()))
}

/// The python and script, or `None` after writing one line saying why the test (named after
/// its thread, as libtest names them) is skipped; fails the test instead when
/// `BTDHT_REQUIRE_INTEROP` is set (as in CI).
///
/// The line goes to the process's stderr through `Write`, which libtest does not capture
/// (it captures only `print!`/`eprint!`), so it shows in the normal test output.
pub(crate) fn libtorrent_or_skip() -> Option<(PathBuf, PathBuf)> {
    match libtorrent() {
        Ok(found) => Some(found),
        Err(why) => {
            assert!(
                std::env::var_os("BTDHT_REQUIRE_INTEROP").is_none(),
                "BTDHT_REQUIRE_INTEROP is set but {why}"
            );
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("interop test");
            let line = format!("skipped {test}: no libtorrent peer: {why}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// The peers of a `peers HEX40 IP:PORT...` line of the script for `info_hash` (hex), or
/// `None` for any other line.
pub(crate) fn peers_line(line: &str, info_hash: &str) -> Option<Vec<SocketAddr>> {
    let mut words = line.split_whitespace();
    if words.next() != Some("peers") || words.next() != Some(info_hash) {
        return None;
    }
    words.map(|w| w.parse().ok()).collect()
}

/// A running `tests/peers/lt_seed.py`: libtorrent seeding freshly made torrents on loopback.
/// Dropping it closes the script's stdin, which stops it and lets it remove its directory; it
/// is killed if it has not exited after a few seconds.
pub(crate) struct Seeder {
    child: std::process::Child,
    /// One object per torrent, as the script printed it: `infohash`, `port`, `name`, `files`
    /// (`path`, `length`), `total_size`.
    pub(crate) torrents: Vec<serde_json::Value>,
}

impl Seeder {
    /// Starts the script with `python`, listening on `listen`, seeding `count` torrents, with
    /// `extra` arguments, and waits for its lines.
    pub(crate) fn start(
        python: &std::path::Path,
        listen: std::net::IpAddr,
        count: usize,
        extra: &[&str],
    ) -> Seeder {
        use std::io::BufRead;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/lt_seed.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([
                "--listen",
                &listen.to_string(),
                "--count",
                &count.to_string(),
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start lt_seed.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut seeder = Seeder {
            child,
            torrents: Vec::new(),
        };
        let mut lines = std::io::BufReader::new(stdout).lines();
        while seeder.torrents.len() < count {
            let line = lines
                .next()
                .expect("lt_seed.py exited before printing its torrents")
                .expect("read lt_seed.py");
            seeder
                .torrents
                .push(serde_json::from_str(&line).expect("lt_seed.py prints JSON"));
        }
        seeder
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let exited = super::wait_until_every(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(50),
            || matches!(self.child.try_wait(), Ok(Some(_))),
        );
        if !exited {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
