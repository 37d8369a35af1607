//! The validated configuration: every value checked, every default applied,
//! before anything is opened or touched.

use std::path::PathBuf;

use super::args::RawArgs;
use super::flags;
use crate::engine::{NodeMatch, Settings, Unavailable};
use crate::error::Error;
pub use crate::run_config::{Command, Config, Generate, Output, SocketSpec};

/// `--generate`'s value.
fn generate_of(v: &str) -> Result<Generate, Error> {
    let all = super::flags::GENERATE;
    let i = all.iter().position(|w| *w == v).ok_or_else(|| {
        Error::Usage(format!(
            "--generate expects one of {}, got {v:?}",
            all.join(", ")
        ))
    })?;
    Ok([Generate::Man, Generate::Bash, Generate::Zsh, Generate::Fish][i])
}

fn number(flag: &str, v: &str, what: &str) -> Result<f64, Error> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(Error::Usage(format!("{flag} expects {what}, got {v:?}"))),
    }
}

fn seconds_ms(flag: &str, v: &str) -> Result<u64, Error> {
    let x = number(flag, v, "a number of seconds greater than 0")?;
    if x <= 0.0 || x > 86_400.0 * 365.0 {
        return Err(Error::Usage(format!(
            "{flag} expects a number of seconds greater than 0, got {v:?}"
        )));
    }
    Ok(((x * 1000.0).round() as u64).max(1))
}

fn count(flag: &str, v: &str, min: usize) -> Result<usize, Error> {
    let what = if min == 0 {
        "a whole number, 0 or more"
    } else {
        "a whole number, 1 or more"
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(Error::Usage(format!("{flag} expects {what}, got {v:?}"))),
    }
}

/// `--max-unavailable N` or `P%`.
fn unavailable(v: &str) -> Result<Unavailable, Error> {
    let bad = || {
        Error::Usage(format!(
            "--max-unavailable expects a whole number of vassals (1 or more) or a percentage from 1% to 100%, got {v:?}"
        ))
    };
    let v = v.trim();
    if let Some(p) = v.strip_suffix('%') {
        match p.parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => Ok(Unavailable::Percent(p)),
            _ => Err(bad()),
        }
    } else {
        match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Unavailable::Count(n)),
            _ => Err(bad()),
        }
    }
}

/// `--early-announce` / `--no-early-announce`: the tool announces a
/// vassal before its own announce, so not with `--probe`, whose request must
/// pass before any traffic reaches it.
fn early_announce(r: &RawArgs) -> Result<Option<bool>, Error> {
    if r.early_announce && r.no_early_announce {
        return Err(Error::Usage(
            "--early-announce and --no-early-announce conflict; expected one of them".into(),
        ));
    }
    if r.early_announce && r.probe.is_some() {
        return Err(Error::Usage(
            "--early-announce conflicts with --probe: the probe must pass before the vassal gets traffic".into(),
        ));
    }
    Ok(match (r.early_announce, r.no_early_announce) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    })
}

fn required<T: Clone>(v: &Option<T>, flag: &str, what: &str) -> Result<T, Error> {
    v.clone()
        .ok_or_else(|| Error::Usage(format!("{flag} is required: {what}; see --help")))
}

impl Config {
    /// Raw arguments into a validated config: each part checked by its own
    /// function below, in the order a reader meets the flags (the first
    /// bad input is the error).
    pub fn resolve(r: RawArgs) -> Result<Config, Error> {
        let command = command_of(&r)?;
        if matches!(
            command,
            Command::Help | Command::Version | Command::Generate(_) | Command::Timeline(_)
        ) {
            return Ok(Config::informational(command, &r));
        }
        let (emperor_path, fastrouter_stats, emperor_stats) = sockets(&r)?;
        let suffix = suffix_of(&r)?;
        let mut s = Settings::default();
        let stats_timeout_ms = limits(&r, &mut s)?;
        let wait_lock_ms = match &r.wait_lock {
            Some(v) if v.trim().parse::<f64>() != Ok(0.0) => seconds_ms("--wait-lock", v)?,
            _ => 0,
        };
        if r.no_drain && (r.drain_timeout.is_some() || r.subscription_server.is_some()) {
            return Err(Error::Usage(
                "--no-drain conflicts with --drain-timeout and --subscription-server".into(),
            ));
        }
        let drain_timeout_ms = seconds_ms(
            "--drain-timeout",
            &given_or_default(&r.drain_timeout, "drain-timeout"),
        )?;
        nodes_and_probe(&r, &mut s)?;
        for g in &r.only {
            crate::glob::validate("--only", g).map_err(Error::Usage)?;
        }
        for g in &r.exclude {
            crate::glob::validate("--exclude", g).map_err(Error::Usage)?;
        }
        rollout_shape(&r, &mut s)?;
        let stale_since = match &r.stale_since {
            Some(v) => Some(super::instant::parse("--stale-since", v)?),
            None => None,
        };
        s.stale_since_s = stale_since.map(crate::engine::generation::stale_since_second);
        s.repair = !r.no_repair;
        s.allow_downtime = r.allow_downtime;
        s.accept_uwsgi_defect = r.accept_uwsgi_defect;
        // Keep a stats outage bound sensible relative to the timeout.
        s.stats_outage_ms = s.stats_outage_ms.max(stats_timeout_ms * 3);
        Ok(Config {
            command,
            emperor_path,
            fastrouter_stats,
            emperor_stats,
            suffix,
            output: Output {
                quiet: r.quiet,
                json: r.json,
                timestamps: r.timestamps,
            },
            stats_timeout_ms,
            wait_lock_ms,
            subscription_server: r.subscription_server.clone(),
            no_drain: r.no_drain,
            drain_timeout_ms,
            touch_target: r.touch_target,
            dry_run: r.dry_run,
            syslog: r.syslog,
            strict: r.strict,
            only: r.only.clone(),
            exclude: r.exclude.clone(),
            metrics_file: metrics_file(&r)?,
            timeline: timeline_file(&r)?,
            early_announce: early_announce(&r)?,
            stale_since,
            settings: s,
        })
    }

    /// The config of a command that reads no stats (help, version,
    /// generate, timeline): only the output options matter.
    fn informational(command: Command, r: &RawArgs) -> Config {
        Config {
            command,
            emperor_path: PathBuf::new(),
            fastrouter_stats: Vec::new(),
            emperor_stats: SocketSpec::Tcp(String::new()),
            suffix: ".ini".into(),
            output: Output {
                quiet: r.quiet,
                json: r.json,
                timestamps: r.timestamps,
            },
            stats_timeout_ms: 5000,
            wait_lock_ms: 0,
            subscription_server: None,
            no_drain: false,
            drain_timeout_ms: 30_000,
            touch_target: false,
            dry_run: false,
            syslog: false,
            strict: false,
            only: Vec::new(),
            exclude: Vec::new(),
            metrics_file: None,
            timeline: None,
            early_announce: None,
            stale_since: None,
            settings: Settings::default(),
        }
    }
}

/// Which command the arguments ask for.
fn command_of(r: &RawArgs) -> Result<Command, Error> {
    Ok(if r.help {
        Command::Help
    } else if r.version {
        Command::Version
    } else if let Some(g) = &r.generate {
        Command::Generate(generate_of(g)?)
    } else if r.command.as_deref() == Some("timeline") {
        let input = r.timeline_input.clone().ok_or_else(|| {
            Error::Usage(
                "timeline expects the path of a --json event log (timeline EVENTS.jsonl)".into(),
            )
        })?;
        Command::Timeline(PathBuf::from(input))
    } else if r.command.as_deref() == Some("status") {
        Command::Status
    } else {
        Command::Reload
    })
}

/// The flag's value, else its default from the flag table, as text: every
/// default is parsed as a given value would be, and written once
/// (`flags::default_of`).
fn given_or_default(v: &Option<String>, long: &str) -> String {
    v.clone()
        .unwrap_or_else(|| flags::default_of(long).to_string())
}

/// The Emperor directory and the stats sockets: each given, each router
/// once, the Emperor's not one of them.
fn sockets(r: &RawArgs) -> Result<(PathBuf, Vec<SocketSpec>, SocketSpec), Error> {
    let emperor_path = PathBuf::from(required(
        &r.emperor_path,
        "--emperor-path",
        "the directory the Emperor watches",
    )?);
    if emperor_path.as_os_str().is_empty() {
        return Err(Error::Usage(
            "--emperor-path expects a directory, got an empty value".into(),
        ));
    }
    if r.fastrouter_stats_socket.is_empty() {
        return Err(Error::Usage(
            "--fastrouter-stats-socket is required: the fastrouter stats socket (unix path or host:port); see --help".into(),
        ));
    }
    let emp = required(
        &r.emperor_stats_socket,
        "--emperor-stats-socket",
        "the Emperor stats socket (unix path or host:port)",
    )?;
    let fastrouter_stats = r
        .fastrouter_stats_socket
        .iter()
        .map(|fr| SocketSpec::parse("--fastrouter-stats-socket", fr))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in fastrouter_stats.iter().enumerate() {
        if fastrouter_stats[..i].contains(a) {
            return Err(Error::Usage(format!(
                "--fastrouter-stats-socket expects each fastrouter once, got {a} twice"
            )));
        }
    }
    let emperor_stats = SocketSpec::parse("--emperor-stats-socket", &emp)?;
    if fastrouter_stats.contains(&emperor_stats) {
        return Err(Error::Usage(format!(
            "--emperor-stats-socket and --fastrouter-stats-socket both name {emperor_stats}; expected the Emperor's stats socket and the fastrouter's, two different sockets"
        )));
    }
    Ok((emperor_path, fastrouter_stats, emperor_stats))
}

/// `--vassal-config-file-suffix`: a file name ending.
fn suffix_of(r: &RawArgs) -> Result<String, Error> {
    let suffix = r
        .suffix
        .clone()
        .unwrap_or_else(|| flags::default_of("vassal-config-file-suffix").into());
    if suffix.is_empty() || suffix.contains('/') {
        return Err(Error::Usage(format!(
            "--vassal-config-file-suffix expects a file name ending such as .ini, got {suffix:?}"
        )));
    }
    Ok(suffix)
}

/// K and the time limits into `s`; returns `--stats-timeout` in ms.
fn limits(r: &RawArgs, s: &mut Settings) -> Result<u64, Error> {
    s.min_live = count(
        "--minimum-active-vassals",
        &given_or_default(&r.minimum_active_vassals, "minimum-active-vassals"),
        0,
    )?;
    s.timeout_ms = seconds_ms("--timeout", &given_or_default(&r.timeout, "timeout"))?;
    s.check_interval_ms = seconds_ms(
        "--check-interval",
        &given_or_default(&r.check_interval, "check-interval"),
    )?;
    seconds_ms(
        "--stats-timeout",
        &given_or_default(&r.stats_timeout, "stats-timeout"),
    )
}

/// How nodes are named and judged (`--node-name`, `--subscription-server`,
/// `--subscription-tolerance`) and `--probe`, into `s`.
fn nodes_and_probe(r: &RawArgs, s: &mut Settings) -> Result<(), Error> {
    if let Some(t) = &r.node_name {
        let unknown = t
            .replace("{stem}", "")
            .replace("{name}", "")
            .contains(['{', '}']);
        if unknown {
            return Err(Error::Usage(format!(
                "--node-name expects a template whose only placeholders are {{stem}} and {{name}}, got {t:?}"
            )));
        }
        if !t.contains("{stem}") && !t.contains("{name}") {
            return Err(Error::Usage(format!(
                "--node-name expects a template containing {{stem}} or {{name}}, got {t:?}"
            )));
        }
        s.node_match = NodeMatch::Template(t.clone());
    }
    if let Some(a) = &r.subscription_server {
        if a.is_empty() {
            return Err(Error::Usage(
                "--subscription-server expects a unix socket path or host:port".into(),
            ));
        }
    }
    if let Some(p) = &r.probe {
        if !p.starts_with('/')
            || p.len() > 4096
            || p.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::Usage(format!(
                "--probe expects a URL path starting with / (e.g. /health), got {p:?}"
            )));
        }
        s.probe_path = Some(p.clone());
    }
    if let Some(v) = &r.subscription_tolerance {
        let ms = seconds_ms("--subscription-tolerance", v)?;
        s.node_tolerance_s = ms.div_ceil(1000) as i64;
        s.node_tolerance_known = true;
    }
    Ok(())
}

/// The rollout's shape (failures allowed, parallelism, canary, deadline,
/// `--min-ready`, `--max-unavailable`) into `s`; status takes none of it.
fn rollout_shape(r: &RawArgs, s: &mut Settings) -> Result<(), Error> {
    if r.keep_going && r.max_failures.is_some() {
        return Err(Error::Usage(
            "--keep-going and --max-failures conflict; expected one of them".into(),
        ));
    }
    if r.keep_going {
        s.max_failures = usize::MAX;
    }
    if let Some(v) = &r.max_failures {
        s.max_failures = count("--max-failures", v, 1)?;
    }
    if let Some(v) = &r.max_parallel {
        s.max_parallel = count("--max-parallel", v, 1)?;
    }
    if let Some(v) = &r.deadline {
        s.deadline_ms = Some(seconds_ms("--deadline", v)?);
    }
    if let Some(v) = &r.canary {
        s.canary = count("--canary", v, 1)?;
    }
    if let Some(v) = &r.min_ready {
        let x = number("--min-ready", v, "a number of seconds, 0 or more")?;
        if !(0.0..=86_400.0).contains(&x) {
            return Err(Error::Usage(format!(
                "--min-ready expects a number of seconds, 0 or more, got {v:?}"
            )));
        }
        s.min_ready_ms = (x * 1000.0).round() as u64;
    }
    if let Some(v) = &r.max_unavailable {
        s.max_unavailable = Some(unavailable(v)?);
    }
    if r.command.as_deref() == Some("status")
        && (r.dry_run || r.keep_going || r.canary.is_some() || r.deadline.is_some())
    {
        return Err(Error::Usage(
            "status only reads; it takes no rollout options (--dry-run, --keep-going, --canary, --deadline)".into(),
        ));
    }
    Ok(())
}

/// `--metrics-file PATH`: a file name in an existing directory (checked
/// before anything is touched, so a typo is a usage error, not a lost
/// metrics file at the end).
fn metrics_file(r: &RawArgs) -> Result<Option<PathBuf>, Error> {
    rollout_output(
        r,
        "--metrics-file",
        r.metrics_file.as_deref(),
        "is for a rollout; status and --dry-run write no metrics",
    )
}

/// `--timeline FILE.svg`: the same checks as `--metrics-file`.
fn timeline_file(r: &RawArgs) -> Result<Option<PathBuf>, Error> {
    rollout_output(
        r,
        "--timeline",
        r.timeline.as_deref(),
        "draws a rollout; status and --dry-run have none (use timeline EVENTS.jsonl on a saved --json log)",
    )
}

/// A file a rollout writes at its end (`flag` given `value`): a file name in
/// an existing directory, and only for a rollout (`not_here` says why not
/// for status and --dry-run).
fn rollout_output(
    r: &RawArgs,
    flag: &str,
    value: Option<&std::ffi::OsStr>,
    not_here: &str,
) -> Result<Option<PathBuf>, Error> {
    let Some(p) = value else {
        return Ok(None);
    };
    let p = PathBuf::from(p);
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if p.file_name().is_none() || !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} expects a file path in an existing directory, got {:?}",
            p.display().to_string()
        )));
    }
    if r.command.as_deref() == Some("status") || r.dry_run {
        return Err(Error::Usage(format!("{flag} {not_here}")));
    }
    Ok(Some(p))
}
