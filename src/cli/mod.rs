//! The `btdht` command line: argument types ([`args`]), the subcommands ([`commands`], with
//! [`bootstrap`], [`bench`], [`hathor`], [`swarm`] and [`crawl`] in their own files) and a
//! stderr logger ([`logger`]).

pub mod args;
pub mod bench;
pub mod bootstrap;
pub mod commands;
pub mod crawl;
pub mod db;
pub mod hathor;
pub mod logger;
pub mod metadata;
pub mod swarm;

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: nothing answered.
pub const EXIT_NO_ANSWER: i32 = 1;
/// Exit status: bad arguments (also clap's own usage errors).
pub const EXIT_USAGE: i32 = 2;
