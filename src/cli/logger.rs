//! A minimal logger for the `log` facade: `TIMESTAMP btdht: LEVEL: message` lines on stderr,
//! the timestamp in UTC (RFC 3339, milliseconds).

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
            eprintln!("{} btdht: {level}: {}", timestamp(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// The current time in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn timestamp() -> String {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The level named by the `BTDHT_LOG` environment variable (`off`, `error`, `warn`, `info`,
/// `debug` or `trace`), if set; a value that names no level is reported on stderr and
/// ignored.
fn env_level() -> Option<LevelFilter> {
    let value = std::env::var("BTDHT_LOG").ok()?;
    match value.trim().parse() {
        Ok(level) => Some(level),
        Err(_) => {
            eprintln!(
                "btdht: warning: BTDHT_LOG={value:?} is not a level (off, error, warn, info, \
                 debug, trace); using warn"
            );
            None
        }
    }
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

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates_from_days_since_the_epoch() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
    }
}
