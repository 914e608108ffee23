//! The `btdht` command line: argument types ([`args`]), the subcommands ([`commands`], with
//! [`bootstrap`], [`bench`], [`hathor`], [`swarm`] and [`crawl`] in their own files), their
//! one error type ([`error`]), a stderr logger ([`logger`]) and the node's state file
//! ([`state`]).

// The command line reads the OS clock (progress, timestamps, deadlines) and OS randomness.
#![allow(clippy::disallowed_methods)]

pub(crate) mod args;
pub(crate) mod bench;
pub(crate) mod bootstrap;
pub(crate) mod commands;
pub(crate) mod crawl;
pub(crate) mod db;
pub(crate) mod error;
pub(crate) mod hathor;
pub(crate) mod items;
pub(crate) mod logger;
pub(crate) mod metadata;
pub(crate) mod state;
pub(crate) mod swarm;
