//! `btdht db`: reads a crawl database written by `btdht crawl --db`, a SQLite file or a
//! PostgreSQL URL (`stats`: its row counts and integrity; `export --ndjson`: every row as
//! NDJSON on stdout).

use btdht::crawler::db::Location;
use clap::{Args, Subcommand};
use std::io::{self, BufWriter, Write};

use super::error::CliError;

/// Options of `btdht db`.
#[derive(Args, Debug)]
pub(crate) struct DbArgs {
    /// What to do with the database.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// The `btdht db` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum DbCommand {
    /// Print the row counts (nodes, info-hashes, torrents, files) and the integrity check, one
    /// `name value` a line.
    Stats {
        /// The database file, or a postgres:// URL.
        file: Location,
    },
    /// Write every row as NDJSON to stdout.
    Export {
        /// The database file, or a postgres:// URL.
        file: Location,
        /// NDJSON output (the one format).
        #[arg(long, required = true)]
        ndjson: bool,
    },
}

/// Runs `btdht db`.
pub(crate) fn run(args: DbArgs) -> Result<(), CliError> {
    let file = match &args.command {
        DbCommand::Stats { file } | DbCommand::Export { file, .. } => file,
    };
    if let Location::File(path) = file
        && !path.exists()
    {
        return Err(CliError::usage(format!("{file}: no such file")));
    }
    let mut db = file
        .open()
        .map_err(|e| CliError::failed(format!("{file}: {e}")))?;
    let result = match args.command {
        DbCommand::Stats { .. } => db.stats().and_then(|s| {
            let integrity = db.integrity()?;
            println!("nodes                  {}", s.nodes);
            println!("bep51_nodes            {}", s.bep51_nodes);
            println!("infohashes             {}", s.infohashes);
            println!("infohashes_with_peers  {}", s.with_peers);
            println!("torrents               {}", s.torrents);
            println!("files                  {}", s.files);
            println!("integrity              {integrity}");
            Ok(())
        }),
        DbCommand::Export { .. } => {
            let mut out = BufWriter::new(io::stdout().lock());
            db.export_ndjson(&mut out).and_then(|_| out.flush())
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failed(format!("{file}: {e}"))),
    }
}
