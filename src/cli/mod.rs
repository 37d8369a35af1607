//! The command line: one flag table ([`flags`]) from which come the raw
//! parsing ([`args`]), the help text ([`help`]), the man page ([`man`]) and
//! the shell completions ([`complete`]); then validation ([`config`]).

pub mod args;
pub mod complete;
pub mod config;
pub mod flags;
pub mod help;
pub mod instant;
pub mod man;

pub use config::{Command, Config, Generate, Output, SocketSpec};

/// Parses and validates `std::env::args_os()`-like arguments (without argv[0]).
pub fn parse<I>(args: I) -> Result<Config, crate::Error>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString>,
{
    Config::resolve(args::parse(args)?)
}

/// What `--generate what` prints.
pub fn generate(what: Generate) -> String {
    match what {
        Generate::Man => man::man(),
        Generate::Bash => complete::bash(),
        Generate::Zsh => complete::zsh(),
        Generate::Fish => complete::fish(),
    }
}
