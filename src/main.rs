//! The `btdht` command line: a DHT node (`btdht node`) and one-shot client commands (`ping`,
//! `find-node`, `get-peers`, `announce`, `sample`). See `btdht --help`.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse_args();
    cli::logger::init(cli.verbose, cli.quiet);
    match cli::commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("btdht: {e}");
            e.exit_code()
        }
    }
}
