//! The one error type of the crate, and the exit policy it implies.

use std::fmt;

/// Everything that ends a run before or outside the rollout itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Bad command line: what was given and what was expected. Exit 2.
    Usage(String),
    /// The system is not in a state to start: lock held, socket missing,
    /// preflight failed. Nothing was touched. Exit 3.
    Precondition(String),
    /// An OS call the driver needs failed: what it was doing. Exit 3 before
    /// the first touch, 1 after.
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The documented exit code (README, `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Precondition(_) | Error::Io { .. } => exit::PRECONDITION,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => f.write_str(m),
            Error::Precondition(m) => f.write_str(m),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Exit codes, as documented in `--help` and the README.
pub mod exit {
    /// Every selected vassal was reloaded.
    pub const OK: u8 = 0;
    /// Some vassal failed, timed out, or could not be reloaded within K.
    pub const FAILED: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = 2;
    /// A precondition failed (lock held, socket, preflight); nothing touched.
    pub const PRECONDITION: u8 = 3;
    /// Interrupted by SIGINT (128 + 2).
    pub const SIGINT: u8 = 130;
    /// Interrupted by SIGTERM (128 + 15).
    pub const SIGTERM: u8 = 143;

    /// Every exit code with its meaning: THE list `--help`, the man page
    /// and the README table are held to.
    pub const TABLE: &[(u8, &str)] = &[
        (OK, "every vassal reloaded"),
        (
            FAILED,
            "some vassal failed, timed out, or could not be reloaded within K",
        ),
        (USAGE, "usage error: a bad flag or value, no vassal configs"),
        (
            PRECONDITION,
            "precondition failed (lock held, stats socket, permissions, preflight): nothing was touched",
        ),
        (SIGINT, "interrupted by SIGINT"),
        (SIGTERM, "interrupted by SIGTERM"),
    ];

    /// THE exit code of a rollout or a dry run, from how it ended and the
    /// stop signal received (if any): the one place that decides it.
    pub fn of_outcome(status: &crate::engine::Status, stop_signal: Option<i32>) -> u8 {
        use crate::engine::Status;
        match status {
            Status::Completed => OK,
            Status::Failed => FAILED,
            Status::Precondition(_) => PRECONDITION,
            Status::Interrupted if stop_signal == Some(libc_sigterm()) => SIGTERM,
            Status::Interrupted => SIGINT,
        }
    }

    fn libc_sigterm() -> i32 {
        nix::sys::signal::Signal::SIGTERM as i32
    }
}

#[cfg(test)]
mod tests {
    /// A new exit code does not go unlisted: every `pub const NAME: u8` of
    /// the `exit` module is in its TABLE.
    #[test]
    fn every_exit_code_is_in_the_table() {
        let src = include_str!("error.rs");
        let consts = src
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                t.starts_with("pub const ") && t.contains(": u8 =")
            })
            .count();
        assert_eq!(consts, super::exit::TABLE.len());
    }
}
