//! THE flag table: every flag the command line accepts, once. The parser
//! ([`super::args`]), `--help` ([`super::help`]), the man page
//! ([`super::man`]) and the shell completions ([`super::complete`]) are all
//! generated from it, so they cannot disagree (ripgrep's approach).

use std::ffi::OsString;

use super::args::RawArgs;

/// Where a flag's value goes in [`RawArgs`].
pub enum Slot {
    /// A switch: no value.
    Switch(fn(&mut RawArgs) -> &mut bool),
    /// One UTF-8 value, given at most once.
    Text(fn(&mut RawArgs) -> &mut Option<String>),
    /// One path (any bytes), given at most once.
    Path(fn(&mut RawArgs) -> &mut Option<OsString>),
    /// A value that may be repeated.
    Many(fn(&mut RawArgs) -> &mut Vec<String>),
}

/// What a shell should offer for a flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Nothing: a number, a template, a glob.
    Nothing,
    Dir,
    /// A file or a unix socket path.
    File,
    /// One of these words.
    Words(&'static [&'static str]),
}

/// The two option sections of `--help` and the man page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The options of uwsgi_reload.py, same meaning and default.
    Compat,
    /// Everything uwsgi_reload.py does not have.
    Extra,
}

impl Group {
    pub const ALL: [Group; 2] = [Group::Compat, Group::Extra];

    pub fn title(self) -> &'static str {
        match self {
            Group::Compat => "OPTIONS (as uwsgi_reload.py)",
            Group::Extra => "OPTIONS (beyond uwsgi_reload.py)",
        }
    }
}

pub struct Flag {
    /// Without the leading `--`.
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in the docs (`DIR`); empty for a switch.
    pub value: &'static str,
    pub slot: Slot,
    pub group: Group,
    /// One or a few sentences, unwrapped.
    pub doc: &'static str,
    pub default: Option<&'static str>,
    pub hint: Hint,
}

impl Flag {
    /// `--long` or `-s, --long`, without the value.
    pub fn names(&self) -> String {
        match self.short {
            Some(c) => format!("-{c}, --{}", self.long),
            None => format!("--{}", self.long),
        }
    }

    pub fn takes_value(&self) -> bool {
        !matches!(self.slot, Slot::Switch(_))
    }

    pub fn repeatable(&self) -> bool {
        matches!(self.slot, Slot::Many(_))
    }

    /// The doc with the default appended, as `--help` and the man page say it.
    pub fn doc_with_default(&self) -> String {
        match self.default {
            Some(d) => format!("{} [default: {d}]", self.doc),
            None => self.doc.to_string(),
        }
    }
}

/// What `--generate` can write.
pub const GENERATE: &[&str] = &["man", "complete-bash", "complete-zsh", "complete-fish"];

/// The positional commands, with what they do.
pub const COMMANDS: &[(&str, &str)] = &[
    ("reload", "reload every vassal (the default)"),
    (
        "status",
        "print each vassal's state and each key's live count; touch nothing",
    ),
    (
        "timeline",
        "timeline EVENTS.jsonl: draw a saved --json event log as an SVG on stdout (as --timeline does)",
    ),
];

use Group::{Compat, Extra};
use Hint::{Dir, File, Nothing, Words};

macro_rules! flag {
    ($long:literal, $short:expr, $value:literal, $slot:ident($field:ident), $group:expr,
     $hint:expr, $default:expr, $doc:literal) => {
        Flag {
            long: $long,
            short: $short,
            value: $value,
            slot: Slot::$slot(|r| &mut r.$field),
            group: $group,
            doc: $doc,
            default: $default,
            hint: $hint,
        }
    };
}

/// Every flag, in the order `--help` lists them.
#[rustfmt::skip]
pub static FLAGS: &[Flag] = &[
    flag!("emperor-path", None, "DIR", Path(emperor_path), Compat, Dir, None,
        "directory the Emperor watches (required)"),
    flag!("fastrouter-stats-socket", None, "SOCKET", Many(fastrouter_stats_socket), Compat, File, None,
        "fastrouter stats socket (required; repeat it for every fastrouter of an HA pair: K holds on each)"),
    flag!("emperor-stats-socket", None, "SOCKET", Text(emperor_stats_socket), Compat, File, None,
        "Emperor stats socket (required)"),
    flag!("vassal-config-file-suffix", None, "STR", Text(suffix), Compat, Nothing, Some(".ini"),
        "vassal config suffix"),
    flag!("minimum-active-vassals", None, "K", Text(minimum_active_vassals), Compat, Nothing, Some("1"),
        "live vassals kept per key"),
    flag!("timeout", None, "SECONDS", Text(timeout), Compat, Nothing, Some("60"),
        "per vassal, from its touch"),
    flag!("check-interval", None, "SECONDS", Text(check_interval), Compat, Nothing, Some("0.1"),
        "between stats reads"),
    flag!("quiet", Some('q'), "", Switch(quiet), Compat, Nothing, None,
        "print only errors"),
    flag!("help", Some('h'), "", Switch(help), Compat, Nothing, None,
        "this text"),
    flag!("version", Some('V'), "", Switch(version), Compat, Nothing, None,
        "the version"),
    flag!("json", None, "", Switch(json), Extra, Nothing, None,
        "one JSON object per event on stdout; human lines go to stderr"),
    flag!("keep-going", None, "", Switch(keep_going), Extra, Nothing, None,
        "carry on after a failed vassal while K holds"),
    flag!("max-failures", None, "N", Text(max_failures), Extra, Nothing, Some("1"),
        "stop touching new vassals after N failures"),
    flag!("max-parallel", None, "N", Text(max_parallel), Extra, Nothing, None,
        "at most N vassals reloading at once"),
    flag!("subscription-server", None, "ADDR", Text(subscription_server), Extra, File,
        Some("from the vassal configs"),
        "drain through this subscription server"),
    flag!("drain-timeout", None, "SECONDS", Text(drain_timeout), Extra, Nothing, Some("30"),
        "bound on waiting for in-flight sessions of an unsubscribed node"),
    flag!("no-drain", None, "", Switch(no_drain), Extra, Nothing, None,
        "touch without unsubscribing first"),
    flag!("no-repair", None, "", Switch(no_repair), Extra, Nothing, None,
        "never write S to a vassal's master FIFO"),
    flag!("early-announce", None, "", Switch(early_announce), Extra, Nothing, None,
        "announce a reloaded vassal to the fastrouter as soon as it accepts (default: on where its config subscribes by itself, without start-unsubscribed, and, for the start-unsubscribed + writefifo S hook, once its own log shows subscriptions on; refused with a probe)"),
    flag!("no-early-announce", None, "", Switch(no_early_announce), Extra, Nothing, None,
        "wait for each vassal's own announce"),
    flag!("allow-downtime", None, "", Switch(allow_downtime), Extra, Nothing, None,
        "proceed when a key has fewer than K+1 nodes"),
    flag!("accept-uwsgi-defect", None, "", Switch(accept_uwsgi_defect), Extra, Nothing, None,
        "reload even on a uWSGI version with a known reload defect (2.0.27: reloads stop reloading workers)"),
    flag!("node-name", None, "TEMPLATE", Text(node_name), Extra, Nothing,
        Some("the address the config subscribes with, else the same file stem"),
        "node name of a vassal, with {name} (config file name) and {stem}"),
    flag!("touch-target", None, "", Switch(touch_target), Extra, Nothing, None,
        "touch the symlink target, for Emperors that follow links (refused if links share a target)"),
    flag!("max-unavailable", None, "N|P%", Text(max_unavailable), Extra, Nothing, None,
        "at most N (or P% rounded down, at least 1) of a key's nodes out at once; raises K to match"),
    flag!("canary", None, "N", Text(canary), Extra, Nothing, None,
        "reload N vassals first; touch no more until they stayed live for --min-ready"),
    flag!("min-ready", None, "SECONDS", Text(min_ready), Extra, Nothing, Some("0"),
        "a reloaded vassal counts as live only after this long subscribed"),
    flag!("deadline", None, "SECONDS", Text(deadline), Extra, Nothing, None,
        "touch nothing new after this long; in-flight vassals finish"),
    flag!("probe", None, "PATH", Text(probe), Extra, Nothing, None,
        "count a reloaded vassal as live only once GET PATH, sent straight to its socket (uwsgi protocol, the key as host), answers 2xx/3xx"),
    flag!("stale-since", None, "TIME|FILE", Text(stale_since), Extra, File, None,
        "reload only vassals whose running generation started before TIME (RFC 3339, or seconds since the epoch) or FILE's mtime; a rerun after an interrupted deploy finishes it without reloading what is already new (status shows which are stale)"),
    flag!("only", None, "GLOB", Many(only), Extra, Nothing, None,
        "reload only configs matching GLOB (repeatable)"),
    flag!("exclude", None, "GLOB", Many(exclude), Extra, Nothing, None,
        "skip configs matching GLOB (repeatable)"),
    flag!("subscription-tolerance", None, "SECONDS", Text(subscription_tolerance), Extra, Nothing,
        Some("the fastrouter's own when readable, else each vassal's subscribe-freq + 3, at least 17"),
        "a node announced longer ago than this is not live (the fastrouter's subscription-tolerance; raise it with a larger subscribe-freq)"),
    flag!("stats-timeout", None, "SECONDS", Text(stats_timeout), Extra, Nothing, Some("5"),
        "connect+read bound of one stats read"),
    flag!("wait-lock", None, "SECONDS", Text(wait_lock), Extra, Nothing, Some("0"),
        "when another uwsgi-reload holds this Emperor directory's lock, wait up to this long for it (0: refuse at once, exit 3)"),
    flag!("syslog", None, "", Switch(syslog), Extra, Nothing, None,
        "send event lines to /dev/log too"),
    flag!("timestamps", None, "", Switch(timestamps), Extra, Nothing, None,
        "start each human line with the wall-clock time, RFC 3339 UTC with milliseconds, instead of the seconds since the start"),
    flag!("strict", None, "", Switch(strict), Extra, Nothing, None,
        "doctor findings on the vassal configs are errors (exit 3), not warnings"),
    flag!("dry-run", None, "", Switch(dry_run), Extra, Nothing, None,
        "preflight and print the plan; touch nothing"),
    flag!("metrics-file", None, "PATH", Path(metrics_file), Extra, File, None,
        "at the end of every rollout (also a failed or interrupted one) write Prometheus metrics here, atomically, for node_exporter's textfile collector"),
    flag!("timeline", None, "FILE.svg", Path(timeline), Extra, File, None,
        "at the end of a rollout, draw it here: each vassal's phases on one time axis, the live count and K per key beneath"),
    flag!("generate", None, "WHAT", Text(generate), Extra, Words(GENERATE), None,
        "print the man page (man) or a shell completion (complete-bash, complete-zsh, complete-fish) and exit"),
];

/// The flag called `--long`.
pub fn by_long(long: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.long == long)
}

/// The default the table gives `--long`: the one place a flag's default is
/// written (`Config::resolve` parses it like a given value).
pub fn default_of(long: &str) -> &'static str {
    by_long(long)
        .and_then(|f| f.default)
        .unwrap_or_else(|| panic!("--{long} has no default in the flag table"))
}

/// The flag called `-c`.
pub fn by_short(c: char) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.short == Some(c))
}

/// The prose `--help` and the man page share, besides the options.
pub const SUMMARY: &str = "gracefully reload every uWSGI vassal behind a fastrouter";

pub const DESCRIPTION: &str = "Reloads every vassal config in DIR by moving its mtime forward, as many at once as keeps at least K vassals live per fastrouter key, and waits for each to accept and re-subscribe. A SOCKET is a unix path or host:port; :port (uWSGI's form for every interface) is read as 127.0.0.1:port.";

pub const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGINT, SIGTERM",
        "touch nothing new, let in-flight vassals finish, exit 130/143; a second one exits at once",
    ),
    ("SIGUSR1", "print progress"),
];

/// The exit codes, from the one table in `crate::error::exit`.
pub use crate::error::exit::TABLE as EXIT_STATUS;
