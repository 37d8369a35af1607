//! The command line: raw parsing ([`args`]), validation ([`config`]) and the
//! help text ([`help`]).

pub mod args;
pub mod config;
pub mod help;

pub use config::{Command, Config, Output, SocketSpec};

/// Parses and validates `std::env::args_os()`-like arguments (without argv[0]).
pub fn parse<I>(args: I) -> Result<Config, crate::Error>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString>,
{
    Config::resolve(args::parse(args)?)
}
