//! Raw command-line parsing with lexopt: flags into strings, nothing checked
//! beyond the shape. [`super::config`] turns this into a validated config.

use std::ffi::OsString;

use crate::error::Error;

/// The arguments as given, before validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawArgs {
    pub command: Option<String>,
    pub emperor_path: Option<OsString>,
    pub fastrouter_stats_socket: Option<String>,
    pub emperor_stats_socket: Option<String>,
    pub suffix: Option<String>,
    pub minimum_active_vassals: Option<String>,
    pub timeout: Option<String>,
    pub check_interval: Option<String>,
    pub stats_timeout: Option<String>,
    pub quiet: bool,
    pub json: bool,
    pub keep_going: bool,
    pub max_failures: Option<String>,
    pub max_parallel: Option<String>,
    pub subscription_server: Option<String>,
    pub drain_timeout: Option<String>,
    pub no_drain: bool,
    pub no_repair: bool,
    pub allow_downtime: bool,
    pub node_name: Option<String>,
    pub touch_target: bool,
    pub dry_run: bool,
    pub syslog: bool,
    pub strict: bool,
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    pub deadline: Option<String>,
    pub canary: Option<String>,
    pub min_ready: Option<String>,
    pub max_unavailable: Option<String>,
    pub probe: Option<String>,
    pub subscription_tolerance: Option<String>,
    pub help: bool,
    pub version: bool,
}

fn value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, Error> {
    let v = parser
        .value()
        .map_err(|_| Error::Usage(format!("{flag} expects a value")))?;
    v.into_string()
        .map_err(|v| Error::Usage(format!("{flag} expects UTF-8 text, got {v:?}")))
}

fn once<T>(slot: &mut Option<T>, v: T, flag: &str) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::Usage(format!(
            "{flag} given twice; expected it once"
        )));
    }
    *slot = Some(v);
    Ok(())
}

pub fn parse<I>(args: I) -> Result<RawArgs, Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut r = RawArgs::default();
    while let Some(arg) = p
        .next()
        .map_err(|e| Error::Usage(format!("{e}; see --help")))?
    {
        match arg {
            Short('h') | Long("help") => r.help = true,
            Short('V') | Long("version") => r.version = true,
            Short('q') | Long("quiet") => r.quiet = true,
            Long("json") => r.json = true,
            Long("keep-going") => r.keep_going = true,
            Long("no-drain") => r.no_drain = true,
            Long("no-repair") => r.no_repair = true,
            Long("allow-downtime") => r.allow_downtime = true,
            Long("touch-target") => r.touch_target = true,
            Long("dry-run") => r.dry_run = true,
            Long("syslog") => r.syslog = true,
            Long("strict") => r.strict = true,
            Long("only") => r.only.push(value(&mut p, "--only")?),
            Long("exclude") => r.exclude.push(value(&mut p, "--exclude")?),
            Long("emperor-path") => {
                let v = p
                    .value()
                    .map_err(|_| Error::Usage("--emperor-path expects a directory".into()))?;
                once(&mut r.emperor_path, v, "--emperor-path")?
            }
            Long(
                f @ ("fastrouter-stats-socket"
                | "emperor-stats-socket"
                | "vassal-config-file-suffix"
                | "minimum-active-vassals"
                | "timeout"
                | "check-interval"
                | "stats-timeout"
                | "max-failures"
                | "max-parallel"
                | "subscription-server"
                | "drain-timeout"
                | "node-name"
                | "deadline"
                | "canary"
                | "min-ready"
                | "max-unavailable"
                | "probe"
                | "subscription-tolerance"),
            ) => {
                let f = f.to_string();
                let flag = format!("--{f}");
                let v = value(&mut p, &flag)?;
                let slot = match f.as_str() {
                    "fastrouter-stats-socket" => &mut r.fastrouter_stats_socket,
                    "emperor-stats-socket" => &mut r.emperor_stats_socket,
                    "vassal-config-file-suffix" => &mut r.suffix,
                    "minimum-active-vassals" => &mut r.minimum_active_vassals,
                    "timeout" => &mut r.timeout,
                    "check-interval" => &mut r.check_interval,
                    "stats-timeout" => &mut r.stats_timeout,
                    "max-failures" => &mut r.max_failures,
                    "max-parallel" => &mut r.max_parallel,
                    "subscription-server" => &mut r.subscription_server,
                    "drain-timeout" => &mut r.drain_timeout,
                    "deadline" => &mut r.deadline,
                    "canary" => &mut r.canary,
                    "min-ready" => &mut r.min_ready,
                    "max-unavailable" => &mut r.max_unavailable,
                    "probe" => &mut r.probe,
                    "subscription-tolerance" => &mut r.subscription_tolerance,
                    _ => &mut r.node_name,
                };
                once(slot, v, &flag)?
            }
            Value(v) if r.command.is_none() => {
                let v = v
                    .into_string()
                    .map_err(|v| Error::Usage(format!("unexpected argument {v:?}")))?;
                if v != "status" && v != "reload" {
                    return Err(Error::Usage(format!(
                        "unexpected argument {v:?}; expected a flag, or the command `status`; see --help"
                    )));
                }
                r.command = Some(v);
            }
            other => return Err(Error::Usage(format!("{}; see --help", other.unexpected()))),
        }
    }
    Ok(r)
}
