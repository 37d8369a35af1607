//! The configuration of one run, as the command line resolved it: every
//! value checked and every default applied (`cli::Config::resolve` builds
//! it). Every command and the runtime take this, never the command line
//! itself: `cli` sits above them and only `main` reaches it
//! (`tests/layers.rs`).

use std::path::PathBuf;

use crate::engine::Settings;
use crate::error::Error;

/// Where a stats socket lives: a unix path, or `host:port` (uWSGI's rule:
/// an address with a `:` is TCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketSpec {
    Unix(PathBuf),
    Tcp(String),
}

impl SocketSpec {
    pub fn parse(flag: &str, s: &str) -> Result<SocketSpec, Error> {
        if s.is_empty() {
            return Err(Error::Usage(format!(
                "{flag} expects a unix socket path or host:port, got an empty value"
            )));
        }
        if s.contains('/') || !s.contains(':') {
            return Ok(SocketSpec::Unix(PathBuf::from(s)));
        }
        // `:9191` is uWSGI's own form for "every interface" (a
        // `stats = :9191` line); this host reaches it on loopback.
        if let Some(port) = s.strip_prefix(':') {
            return SocketSpec::parse(flag, &format!("127.0.0.1:{port}"));
        }
        let (host, port) = s.rsplit_once(':').unwrap_or((s, ""));
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(Error::Usage(format!(
                "{flag} expects host:port with a port from 1 to 65535, got {s:?}"
            )));
        }
        Ok(SocketSpec::Tcp(s.to_string()))
    }
}

impl std::fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketSpec::Unix(p) => write!(f, "{}", p.display()),
            SocketSpec::Tcp(a) => f.write_str(a),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Reload,
    Status,
    Help,
    Version,
    /// `--generate`: print a man page or a completion script.
    Generate(Generate),
    /// `timeline EVENTS.jsonl`: draw a saved event log.
    Timeline(PathBuf),
}

/// What `--generate` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generate {
    Man,
    Bash,
    Zsh,
    Fish,
}

/// How output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub quiet: bool,
    pub json: bool,
    /// `--timestamps`: wall-clock RFC 3339 times on human lines.
    pub timestamps: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub command: Command,
    pub emperor_path: PathBuf,
    /// One per fastrouter (several for HA); never empty after `resolve`.
    pub fastrouter_stats: Vec<SocketSpec>,
    pub emperor_stats: SocketSpec,
    pub suffix: String,
    pub output: Output,
    /// Read/connect timeout of one stats read.
    pub stats_timeout_ms: u64,
    /// `--wait-lock`: how long to wait for another instance's lock (0:
    /// refuse at once).
    pub wait_lock_ms: u64,
    /// Address of the fastrouter subscription server, if given.
    pub subscription_server: Option<String>,
    pub no_drain: bool,
    pub drain_timeout_ms: u64,
    /// Touch the symlink target instead of the link (Emperors that follow
    /// links).
    pub touch_target: bool,
    pub dry_run: bool,
    /// Send event lines to the local syslog too.
    pub syslog: bool,
    /// Doctor findings are errors (exit 3), not warnings.
    pub strict: bool,
    /// `--only` globs (any must match) and `--exclude` globs (none may).
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    /// `--metrics-file`: where the end of a rollout writes Prometheus text.
    pub metrics_file: Option<PathBuf>,
    /// `--timeline`: where the end of a rollout draws it (SVG).
    pub timeline: Option<PathBuf>,
    /// `--early-announce` (true) / `--no-early-announce` (false); `None`:
    /// where each vassal's config proves it subscribes when accepting.
    pub early_announce: Option<bool>,
    /// `--stale-since`, as given (seconds since the epoch, fractional): only
    /// vassals whose running generation started before it are reloaded.
    pub stale_since: Option<f64>,
    pub settings: Settings,
}

impl Config {
    /// Is the config file `name` part of this rollout?
    pub fn selected(&self, name: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|g| crate::glob::matches(g, name)))
            && !self.exclude.iter().any(|g| crate::glob::matches(g, name))
    }
}
