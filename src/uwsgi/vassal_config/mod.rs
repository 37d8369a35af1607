//! Reading a vassal's config the way uWSGI 2.0 reads it (sans-IO): ini
//! here, the other formats in `config_formats`.
//!
//! The tool needs a few facts from each vassal config: the address its
//! fastrouter node is named after, where it subscribes, its master FIFO, and
//! the options that change how a reload looks (unsubscribe-on-graceful-reload,
//! start-unsubscribed, need-app, lazy-apps, accepting hooks). Nothing links a
//! fastrouter node to an Emperor vassal except that address, so it has to come
//! out exactly as uWSGI computes it; the steps below follow uWSGI 2.0.21:
//!
//! 1. `magic_sub` (core/utils.c) replaces `%X` in the *whole file text* before
//!    parsing, from a table filled by `config_magic_table_fill`
//!    (core/uwsgi.c). Every byte has an entry: letters it does not know become
//!    the empty string, `%%` becomes `%`, and `%(` is kept for step 3.
//! 2. `uwsgi_ini_config` (core/ini.c) splits lines on `\n`, strips spaces,
//!    tabs and `\r`, takes `[section]` headers, skips lines starting with `;`
//!    or `#` (no inline comments), and splits `key = value` at the first `=`.
//!    A line without `=` is the key with an empty value (a bare boolean).
//! 3. After every config is loaded, `uwsgi_apply_config_pass('%', ...)`
//!    replaces `%(name)` in each value with the value of the *first* option
//!    called `name` (core/config.c), whether it comes before or after.
//!
//! Only the `[uwsgi]` section is read. Includes (`ini = other.ini` and the
//! like) are followed by [`VassalConfig::parse_following`] the way uWSGI
//! loads them (`includes.rs`, docs/UWSGI.md §20), the files read by the
//! caller (the runtime, with docs/SECURITY.md's rules); one that is not
//! followed (and every one, with the pure [`VassalConfig::parse`]) is
//! recorded in `includes`, so callers can warn that what we extracted may
//! be incomplete. Anything we could not resolve
//! statically (`%h`, `%(a + 1)`, auto-assigned ports...) is kept literally and
//! noted in `warnings`.

use std::path::{Path, PathBuf};

use super::config_formats::{self, Format};

mod includes;
#[cfg(test)]
mod includes_tests;
mod reload_keeps;
mod subscribe;
#[cfg(test)]
mod tests;
mod text;

use subscribe::*;
use text::*;

pub use includes::{IncludeReader, Included, MAX_INCLUDES, MAX_INCLUDE_DEPTH, NOT_FOLLOWED};
pub use text::MAX_EXPANSION;

/// One place the vassal announces itself (a `subscribe2` or `subscribe-to`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeTarget {
    /// Subscription server: a unix datagram path, or `host:port` for UDP.
    pub server: String,
    /// Fastrouter key.
    pub key: String,
    /// Address the vassal subscribes with when it is not its first socket
    /// (`addr=`, `socket=N`, or the `addr=server:key` form). `None` means the
    /// first socket; see [`VassalConfig::address_of`].
    pub addr: Option<String>,
    /// modifier1/modifier2 the vassal announces. The fastrouter stores them
    /// only when a node is created, so a re-subscribe must repeat them.
    pub modifier1: u8,
    pub modifier2: u8,
    /// subscribe2 `check=FILE`: no announce while FILE exists.
    pub check: Option<String>,
}

/// What the tool knows about one vassal config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VassalConfig {
    /// The config file name as the Emperor passes it (e.g. `app_01.ini`).
    pub name: String,
    /// Absolute directory the vassal runs in, with a trailing slash (`%d`).
    pub dir: String,
    /// Every `[uwsgi]` option, placeholders resolved, in the order uWSGI
    /// applies them: a followed include's options where its line stands,
    /// an `inherit`ed file's after all others (docs/UWSGI.md §20).
    pub options: Vec<(String, String)>,
    /// Bound sockets in order (`socket`, `uwsgi-socket`, and the other
    /// `*-socket` options that add to uWSGI's socket list: the first of any
    /// of them is the subscription address).
    pub sockets: Vec<String>,
    /// In the order uWSGI sends them: every `subscribe-to`, then every
    /// `subscribe2`.
    pub subscriptions: Vec<SubscribeTarget>,
    /// `master-fifo` paths as written; slot 0 is the one active at start.
    pub master_fifos: Vec<String>,
    pub unsubscribe_on_graceful_reload: bool,
    pub start_unsubscribed: bool,
    pub need_app: bool,
    pub lazy_apps: bool,
    /// Values of `hook-accepting`, `hook-accepting1`, `hook-accepting-once`
    /// and `hook-accepting1-once`, in file order.
    pub accepting_hooks: Vec<String>,
    /// Other config files this one loads (`ini`, `include`, `inherit`, ...)
    /// that were not followed (as written): a remote source, a link, not a
    /// regular file, over a limit, unreadable, or `parse` (which reads
    /// nothing). What they set is not seen: callers warn.
    pub includes: Vec<String>,
    /// The included files that were read into `options` (as written).
    pub followed_includes: Vec<String>,
    /// What could not be resolved statically, one line each.
    pub warnings: Vec<String>,
    /// The `%` expansions of the file went over [`MAX_EXPANSION`] (why, one
    /// line): what was read is incomplete, and the config is refused.
    pub over_limit: Option<String>,
}

/// Options that add a socket to `uwsgi.sockets` (core/uwsgi.c option table).
const SOCKET_OPTIONS: &[&str] = &[
    "socket",
    "uwsgi-socket",
    "http-socket",
    "http11-socket",
    "fastcgi-socket",
    "fastcgi-nph-socket",
    "scgi-socket",
    "scgi-nph-socket",
    "raw-socket",
    "puwsgi-socket",
];

/// SSL variants take `addr,crt,key[,...]`; the socket is named by `addr`.
const SSL_SOCKET_OPTIONS: &[&str] = &["suwsgi-socket", "ssl-socket", "https-socket"];

const ACCEPTING_HOOKS: &[&str] = &[
    "hook-accepting",
    "hook-accepting1",
    "hook-accepting-once",
    "hook-accepting1-once",
];

/// Magic letters whose value needs the running system (hostname, clock, uid,
/// inode, binary path...). uWSGI would substitute them; we keep them literal.
const RUNTIME_MAGIC: &[u8] = b"bhiIjJtTVkuUgG[";

impl VassalConfig {
    /// Parse `text`, the content of the config file `name` that the vassal
    /// reads from directory `dir` (absolute; the Emperor's directory, which
    /// is the vassal's working directory). No I/O: includes are recorded in
    /// `includes`, not followed.
    pub fn parse(text: &str, name: &str, dir: &str) -> VassalConfig {
        Self::parse_with(text, name, dir, None, 0)
    }

    /// The same, following its includes through `read` (docs/UWSGI.md
    /// §20): at most `budget` bytes are read over all included files.
    pub fn parse_following(
        text: &str,
        name: &str,
        dir: &str,
        read: IncludeReader<'_>,
        budget: usize,
    ) -> VassalConfig {
        Self::parse_with(text, name, dir, Some(read), budget)
    }

    fn parse_with(
        text: &str,
        name: &str,
        dir: &str,
        read: Option<IncludeReader<'_>>,
        budget: usize,
    ) -> VassalConfig {
        let mut cfg = VassalConfig {
            name: name.to_string(),
            dir: with_slash(dir),
            ..VassalConfig::default()
        };
        let magic = MagicTable::new(name, &cfg.dir);
        let mut walk = includes::Walk::new(read, &cfg.dir, magic.clone(), budget);
        let format = (Format::of(name), "uwsgi");
        cfg.options = walk.file_options(text, name, &magic, format, 0);
        if walk.over_limit.is_none() {
            // uWSGI's `%(name)` pass runs once every immediate include is
            // read and before `inherit` is (docs/UWSGI.md §20).
            resolve_placeholders(&mut cfg.options, &mut walk.warnings, &mut walk.over_limit);
        }
        if walk.over_limit.is_none() {
            walk.inherit(&mut cfg.options);
        }
        cfg.warnings = std::mem::take(&mut walk.warnings);
        cfg.over_limit = walk.over_limit.take();
        cfg.includes = std::mem::take(&mut walk.not_followed);
        cfg.followed_includes = std::mem::take(&mut walk.followed);
        cfg.extract();
        cfg
    }

    /// First value of an option (the one `%(name)` would use).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of an option, in file order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// It has a logic block (`if-env`, `if-exists`, `for`, ...: uWSGI's
    /// `if-*` and `for*` options), whose options are read here as if
    /// unconditional: what uWSGI really applies may differ.
    pub fn has_logic_blocks(&self) -> bool {
        self.options
            .iter()
            .any(|(k, _)| k.starts_with("if-") || k == "for" || k.starts_with("for-"))
    }

    /// It runs a fastrouter (a router vassal, not an app): the tool leaves
    /// it out of a rollout unless `--only` names it.
    pub fn is_router(&self) -> bool {
        self.options.iter().any(|(k, _)| {
            matches!(
                k.as_str(),
                "fastrouter" | "fastrouter-subscription-server" | "fastrouter-ss"
            )
        })
    }

    /// The largest `subscribe-freq` accepted (docs/SECURITY.md, numbers):
    /// uWSGI reads an int, and the engine derives its windows from it in
    /// milliseconds; an hour between announces is no fleet to roll anyway.
    pub const MAX_SUBSCRIBE_FREQ_S: i64 = 3600;

    /// Its `subscribe-freq` in seconds, if it sets a usable one: the last
    /// value set, as uWSGI keeps it (it reads it with atoi; 0 or garbage
    /// would mean its default, 10). Above [`Self::MAX_SUBSCRIBE_FREQ_S`] the
    /// config is refused at preflight (`runtime::setup::parse_configs`).
    pub fn subscribe_freq(&self) -> Option<i64> {
        let v: i64 = self.get_all("subscribe-freq").last()?.trim().parse().ok()?;
        (v > 0).then_some(v)
    }

    /// The address `target` announces: its own, else the first socket
    /// (`uwsgi_send_subscription_from_fd`). `None`: uWSGI sends nothing.
    pub fn address_of(&self, target: &SubscribeTarget) -> Option<String> {
        target
            .addr
            .clone()
            .or_else(|| self.sockets.first().cloned())
    }

    /// The fastrouter node name of this vassal: the address of its first
    /// subscription, else its first socket.
    /// Every fastrouter node name of this vassal: the address of each of its
    /// subscriptions (a vassal with two `subscribe2 addr=` lines has two
    /// nodes), in order, once each; its first socket when it names none.
    pub fn node_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.subscriptions {
            if let Some(a) = self.address_of(t) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        if out.is_empty() {
            out.extend(self.sockets.first().cloned());
        }
        out
    }

    pub fn node_name(&self) -> Option<String> {
        match self.subscriptions.first() {
            Some(t) => self.address_of(t),
            None => self.sockets.first().cloned(),
        }
    }

    /// The first accepting hook of the form `writefifo:PATH PAYLOAD`
    /// (the "subscribe once worker 1 accepts" pattern), with PATH resolved
    /// against the vassal's directory. PAYLOAD is everything after the first
    /// space, as `uwsgi_hook_writefifo` writes it.
    pub fn writefifo_hook(&self) -> Option<(PathBuf, String)> {
        self.writefifo_hook_as_written()
            .map(|(path, payload)| (self.resolve_path(path), payload.to_string()))
    }

    /// The same hook with its path as written (after `%` magic), which is
    /// how uWSGI names it in the log.
    fn writefifo_hook_as_written(&self) -> Option<(&str, &str)> {
        self.options
            .iter()
            .filter(|(k, _)| ACCEPTING_HOOKS.contains(&k.as_str()))
            .find_map(|(_, v)| {
                let (action, arg) = v.split_once(':')?;
                // A leading '!' only hides the hook from the log.
                if action.strip_prefix('!').unwrap_or(action) != "writefifo" {
                    return None;
                }
                arg.split_once(' ')
            })
    }

    /// With the pattern `start-unsubscribed` + a writefifo `S` accepting
    /// hook, the line its log gains when that hook loses its race and the
    /// vassal stays blocked (`uwsgi::hook_log`, docs/UWSGI.md §9.6).
    pub fn lost_hook_marker(&self) -> Option<String> {
        if !self.start_unsubscribed {
            return None;
        }
        let (path, payload) = self.writefifo_hook_as_written()?;
        (payload.trim() == "S").then(|| crate::uwsgi::hook_log::lost_marker(path))
    }

    /// Where the vassal logs, from `logto` (or `logto2`): a file path
    /// resolved against its directory; `None` for a UDP address (`host:port`)
    /// or when it logs to the stderr it inherited.
    pub fn log_file(&self) -> Option<PathBuf> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == "logto" || k == "logto2")
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty() && !v.contains(':'))
            .map(|v| self.resolve_path(v))
    }

    /// It subscribes by itself from its master's start, with no hook to
    /// lose (`start-unsubscribed` is not set): the tool may then send that
    /// announce itself as soon as the Emperor shows the vassal accepting
    /// (early announce, on by default for such a vassal).
    pub fn announces_on_its_own(&self) -> bool {
        !self.subscriptions.is_empty() && !self.start_unsubscribed
    }

    /// `exit-on-reload` is on (the last value set): its master exits on a
    /// reload, and the Emperor starts the next generation as a new process.
    pub fn exits_on_reload(&self) -> bool {
        self.get_all("exit-on-reload")
            .last()
            .is_some_and(subscribe::opt_true)
    }

    /// `master_fifos`, resolved against the vassal's directory.
    pub fn master_fifo_paths(&self) -> Vec<PathBuf> {
        self.master_fifos
            .iter()
            .map(|p| self.resolve_path(p))
            .collect()
    }

    /// A path as the vassal process sees it: relative paths are relative to
    /// its working directory, the Emperor's directory.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        Path::new(&self.dir).join(p)
    }

    /// Fill the typed fields from `options`.
    fn extract(&mut self) {
        let mut shared_sockets = Vec::new();
        let mut subscribe_to = Vec::new();
        let mut subscribe2 = Vec::new();
        let mut forced_modifier1 = None;

        for (k, v) in &self.options {
            let k = k.as_str();
            if SOCKET_OPTIONS.contains(&k) {
                self.sockets.push(socket_name(v));
            } else if SSL_SOCKET_OPTIONS.contains(&k) {
                let addr = v.split(',').next().unwrap_or("");
                self.sockets.push(socket_name(addr));
            } else if k == "shared-socket" || k == "undeferred-shared-socket" {
                shared_sockets.push(socket_name(v));
            } else if k == "subscribe-to" || k == "st" || k == "subscribe" {
                subscribe_to.push(v.clone());
            } else if k == "subscribe2" {
                subscribe2.push(v.clone());
            } else if k == "subscribe-with-modifier1" {
                forced_modifier1 = Some(atoi_u8(v));
            } else if k == "master-fifo" {
                self.master_fifos.push(v.clone());
            } else if k == "unsubscribe-on-graceful-reload" {
                self.unsubscribe_on_graceful_reload = opt_true(v);
            } else if k == "start-unsubscribed" {
                self.start_unsubscribed = opt_true(v);
            } else if k == "need-app" {
                self.need_app = opt_true(v);
            } else if k == "lazy-apps" {
                self.lazy_apps = opt_true(v);
            } else if ACCEPTING_HOOKS.contains(&k) {
                self.accepting_hooks.push(v.clone());
            } else if k.starts_with("if-") || k == "for" || k.starts_with("for-") {
                self.warnings.push(format!(
                    "logic block `{k}` not evaluated: its options are read as if unconditional"
                ));
            }
        }

        for s in &self.sockets {
            if s.ends_with(':') || s.ends_with(":0") || s.contains('*') || s.starts_with('=') {
                self.warnings.push(format!(
                    "socket {s:?} gets its real name when uWSGI binds it; node names will differ"
                ));
            }
        }

        for v in &subscribe_to {
            match parse_subscribe_to(v, &shared_sockets) {
                Ok(t) => self.subscriptions.push(t),
                Err(why) => self
                    .warnings
                    .push(format!("subscribe-to {v:?} ignored: {why}")),
            }
        }
        for v in &subscribe2 {
            match parse_subscribe2(v, &self.sockets) {
                Ok(t) => self.subscriptions.push(t),
                Err(why) => self
                    .warnings
                    .push(format!("subscribe2 {v:?} ignored: {why}")),
            }
        }
        if let Some(m) = forced_modifier1 {
            for t in &mut self.subscriptions {
                t.modifier1 = m;
            }
        }
        if self.sockets.is_empty() && self.subscriptions.iter().any(|t| t.addr.is_none()) {
            self.warnings
                .push("subscriptions without addr= and no socket: uWSGI sends none".into());
        }
    }
}

pub(crate) fn with_slash(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_string()
    } else {
        format!("{dir}/")
    }
}
