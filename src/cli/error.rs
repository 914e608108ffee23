//! [`CliError`], the one error type of the command line: every command returns
//! `Result<(), CliError>`, and `main` says the message once (`btdht: <message>`) and exits
//! with the error's status.

use std::fmt;
use std::process::ExitCode;

/// Why a command failed: the message for the user and the exit status it gives.
#[derive(Debug)]
pub(crate) struct CliError {
    /// 1: nothing found, nothing stored, or a failure at run time; 2: bad arguments.
    code: u8,
    /// What went wrong, without the `btdht: ` prefix.
    message: String,
}

impl CliError {
    /// Exit status 1: nothing found or stored, or a failure at run time.
    pub(crate) fn failed(message: impl fmt::Display) -> Self {
        CliError {
            code: 1,
            message: message.to_string(),
        }
    }

    /// Exit status 2: bad arguments (clap's own usage errors exit 2 too).
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        CliError {
            code: 2,
            message: message.to_string(),
        }
    }

    /// The exit status: 1 or 2.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// The exit status as the process's [`ExitCode`].
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Says why `addr` could not be bound: exit 1 when the port is in use (another program holds
/// it), 2 when the address itself is wrong (not local, not permitted).
pub(crate) fn bind_failed(addr: &str, e: &std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        CliError::failed(format!(
            "cannot bind {addr}: the port is in use by another socket ({e})"
        ))
    } else {
        CliError::usage(format!("cannot bind {addr}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_exits_1_and_a_bad_address_2() {
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let not_local = std::io::Error::from(std::io::ErrorKind::AddrNotAvailable);
        let busy = bind_failed("127.0.0.1:1", &in_use);
        assert_eq!(busy.code(), 1);
        assert!(busy.to_string().contains("127.0.0.1:1"), "{busy}");
        assert!(busy.to_string().contains("in use"), "{busy}");
        assert_eq!(bind_failed("192.0.2.1:1", &not_local).code(), 2);
    }
}
