//! Raw command-line parsing with lexopt: flags into strings, nothing checked
//! beyond the shape. Which flags exist, and where each value goes, is the
//! table in [`super::flags`]; [`super::config`] turns the result into a
//! validated config.

use std::ffi::OsString;

use super::flags::{self, Hint, Slot};
use crate::error::Error;

/// The arguments as given, before validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawArgs {
    pub command: Option<String>,
    pub emperor_path: Option<OsString>,
    pub fastrouter_stats_socket: Vec<String>,
    pub emperor_stats_socket: Option<String>,
    pub suffix: Option<String>,
    pub minimum_active_vassals: Option<String>,
    pub timeout: Option<String>,
    pub check_interval: Option<String>,
    pub stats_timeout: Option<String>,
    pub wait_lock: Option<String>,
    pub quiet: bool,
    pub json: bool,
    pub keep_going: bool,
    pub max_failures: Option<String>,
    pub max_parallel: Option<String>,
    pub subscription_server: Option<String>,
    pub drain_timeout: Option<String>,
    pub no_drain: bool,
    pub no_repair: bool,
    pub early_announce: bool,
    pub no_early_announce: bool,
    pub allow_downtime: bool,
    pub accept_uwsgi_defect: bool,
    pub node_name: Option<String>,
    pub touch_target: bool,
    pub dry_run: bool,
    pub syslog: bool,
    /// `--timeline FILE.svg`.
    pub timeline: Option<OsString>,
    /// `timeline EVENTS.jsonl`: the event log to draw.
    pub timeline_input: Option<OsString>,
    pub timestamps: bool,
    pub strict: bool,
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    pub deadline: Option<String>,
    pub canary: Option<String>,
    pub min_ready: Option<String>,
    pub max_unavailable: Option<String>,
    pub probe: Option<String>,
    pub subscription_tolerance: Option<String>,
    pub metrics_file: Option<OsString>,
    pub stale_since: Option<String>,
    pub generate: Option<String>,
    pub help: bool,
    pub version: bool,
}

fn text(v: OsString, flag: &str) -> Result<String, Error> {
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

/// Reads the value of `f` and stores it in its slot.
fn take(p: &mut lexopt::Parser, f: &flags::Flag, r: &mut RawArgs) -> Result<(), Error> {
    let name = format!("--{}", f.long);
    if let Slot::Switch(s) = f.slot {
        *s(r) = true;
        return Ok(());
    }
    let expected = match (&f.slot, f.hint) {
        (Slot::Path(_), Hint::Dir) => "a directory",
        (Slot::Path(_), _) => "a file path",
        _ => "a value",
    };
    let v = p
        .value()
        .map_err(|_| Error::Usage(format!("{name} expects {expected}")))?;
    match f.slot {
        Slot::Switch(_) => unreachable!("handled above"),
        Slot::Text(s) => once(s(r), text(v, &name)?, &name),
        Slot::Path(s) => once(s(r), v, &name),
        Slot::Many(s) => {
            s(r).push(text(v, &name)?);
            Ok(())
        }
    }
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
        let flag = match &arg {
            Short(c) => flags::by_short(*c),
            Long(l) => flags::by_long(l),
            Value(_) => None,
        };
        if let Some(f) = flag {
            take(&mut p, f, &mut r)?;
            continue;
        }
        match arg {
            Value(v) if r.command.as_deref() == Some("timeline") && r.timeline_input.is_none() => {
                r.timeline_input = Some(v);
            }
            Value(v) if r.command.is_none() => {
                let v = v
                    .into_string()
                    .map_err(|v| Error::Usage(format!("unexpected argument {v:?}")))?;
                if !flags::COMMANDS.iter().any(|(c, _)| *c == v) {
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
