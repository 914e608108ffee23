//! The `btdht` command line: argument types ([`args`]), the subcommands ([`commands`], with
//! [`bootstrap`], [`bench`], [`hathor`], [`swarm`] and [`crawl`] in their own files) and a
//! stderr logger ([`logger`]).

// The command line reads the OS clock (progress, timestamps, deadlines) and OS randomness.
#![allow(clippy::disallowed_methods)]

pub(crate) mod args;
pub(crate) mod bench;
pub(crate) mod bootstrap;
pub(crate) mod commands;
pub(crate) mod crawl;
pub(crate) mod db;
pub(crate) mod hathor;
pub(crate) mod items;
pub(crate) mod logger;
pub(crate) mod metadata;
pub(crate) mod swarm;

/// Exit status: success.
pub(crate) const EXIT_OK: i32 = 0;
/// Exit status: nothing answered.
pub(crate) const EXIT_NO_ANSWER: i32 = 1;
/// Exit status: bad arguments (also clap's own usage errors).
pub(crate) const EXIT_USAGE: i32 = 2;

/// Says why `addr` could not be bound and returns the exit status: 1 when the port is in use
/// (another program holds it), 2 when the address itself is wrong (not local, not permitted).
pub(crate) fn bind_failed(addr: &str, e: &std::io::Error) -> i32 {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        eprintln!("btdht: cannot bind {addr}: the port is in use by another socket ({e})");
        EXIT_NO_ANSWER
    } else {
        eprintln!("btdht: cannot bind {addr}: {e}");
        EXIT_USAGE
    }
}
