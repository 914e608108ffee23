//! The `btdht` command line: a DHT node (`btdht node`) and one-shot client commands (`ping`,
//! `find-node`, `get-peers`, `announce`, `sample`). See `btdht --help`.

#![forbid(unsafe_code)]

mod cli;

use clap::Parser;

fn main() {
    let cli = cli::args::Cli::parse();
    cli::logger::init(cli.verbose, cli.quiet);
    std::process::exit(cli::commands::run(cli.command));
}
