//! The `btdht` command line.

use clap::Parser;

/// A BitTorrent Mainline DHT node, bootstrap server and crawler.
#[derive(Parser, Debug)]
#[command(name = "btdht", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
