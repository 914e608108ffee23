//! A minimal logger for the `log` facade: `btdht: LEVEL message` lines on stderr.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) && record.target().starts_with("btdht") {
            let level = match record.level() {
                Level::Error => "error",
                Level::Warn => "warning",
                Level::Info => "info",
                Level::Debug => "debug",
                Level::Trace => "trace",
            };
            eprintln!("btdht: {level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// The level named by the `BTDHT_LOG` environment variable (`off`, `error`, `warn`, `info`,
/// `debug` or `trace`), if set and valid.
fn env_level() -> Option<LevelFilter> {
    std::env::var("BTDHT_LOG").ok()?.trim().parse().ok()
}

/// Installs the logger: warnings by default (or the level in `BTDHT_LOG`), more with each
/// -v, errors only with -q; the flags win over the environment.
pub(crate) fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => env_level().unwrap_or(LevelFilter::Warn),
        (false, 1) => LevelFilter::Info,
        (false, 2) => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
