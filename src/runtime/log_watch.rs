//! Watching vassals' logs for the lines that prove an accepting hook lost
//! its `S` or that it arrived (`uwsgi::hook_log` judges the bytes;
//! docs/UWSGI.md §9.6.1). The driver's side of the repair is `repairs.rs`.
//!
//! Which log: the file the vassal master's stderr is (`/proc/<pid>/fd/2`),
//! which is where uWSGI writes both with `logto` (it `dup2`s the file onto
//! fds 1 and 2, `core/logging.c`) and when it inherits the Emperor's log
//! (`--daemonize FILE`, as the uwsgi_reload.py setup runs it); else the
//! config's `logto` path (a vassal running as another user). A pipe (a
//! `log-master`, journald) or a socket is never opened: reading it would
//! steal the vassal's log. Without a file there is no evidence, and the
//! engine waits for the announce window as before.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::uwsgi::hook_log::{LineScanner, Seen};
use crate::vassal_config::VassalConfig;

/// Most bytes read from one log per scan: a vassal logging faster than
/// that between two wake-ups of the tool has its excess skipped (the line
/// comes right after the reload, long before such volume).
const MAX_READ: u64 = 1 << 20;

struct Watch {
    file: File,
    offset: u64,
    marker: String,
    scanner: LineScanner,
    /// No other vassal writes this log, so a master's subscription toggle
    /// in it is this vassal's.
    own_log: bool,
    lost_reported: bool,
    on_reported: bool,
}

/// What a watched log proved about its vassal since its touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Its accepting hook lost its `S` (the line): it stays blocked.
    HookLost(String),
    /// Its master turned subscriptions on (its own log only).
    SubscriptionsOn,
    /// Its master blocked subscriptions (its own log only): after the
    /// repair's `S`, that `S` blocked it (docs/UWSGI.md §9.6.2).
    SubscriptionsBlocked,
}

/// The logs being watched, by vassal.
#[derive(Default)]
pub struct HookLogs {
    watches: BTreeMap<String, Watch>,
}

impl HookLogs {
    /// Starts watching `vassal`'s log from its end now. `Err` says why there
    /// is no log to watch (nothing is watched then).
    ///
    /// `shared_logs` are the `logto` files more than one vassal config
    /// names: a subscription toggle in them says nothing about one vassal.
    pub fn watch(
        &mut self,
        vassal: &str,
        pid: i64,
        config: Option<&VassalConfig>,
        shared_logs: &BTreeSet<PathBuf>,
    ) -> Result<PathBuf, String> {
        let marker = config
            .and_then(VassalConfig::lost_hook_marker)
            .ok_or_else(|| "no start-unsubscribed writefifo S hook in its config".to_string())?;
        let (file, path) = open_log(pid, config)?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        // Its own log: the file is the one its config's `logto` names,
        // and no other config names that file.
        let own_log = config
            .and_then(VassalConfig::log_file)
            .filter(|p| !shared_logs.contains(p))
            .and_then(|p| fs::metadata(p).ok())
            .is_some_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()));
        self.watches.insert(
            vassal.to_string(),
            Watch {
                file,
                offset: meta.len(),
                marker,
                scanner: LineScanner::default(),
                own_log,
                lost_reported: false,
                on_reported: false,
            },
        );
        Ok(path)
    }

    pub fn unwatch(&mut self, vassal: &str) {
        self.watches.remove(vassal);
    }

    pub fn is_watched(&self, vassal: &str) -> bool {
        self.watches.contains_key(vassal)
    }

    /// Reads what each watched log gained since the last scan; returns the
    /// evidence each gave, each kind at most once per vassal. A vassal stays
    /// watched until [`HookLogs::unwatch`] (a repair may still wait for a
    /// reader).
    pub fn scan(&mut self) -> Vec<(String, Evidence)> {
        let mut found = Vec::new();
        for (vassal, w) in &mut self.watches {
            for ev in w.read_new() {
                found.push((vassal.clone(), ev));
            }
        }
        found
    }
}

impl Watch {
    fn read_new(&mut self) -> Vec<Evidence> {
        let Some(len) = self.file.metadata().ok().map(|m| m.len()) else {
            return Vec::new();
        };
        if len < self.offset {
            // Truncated (copytruncate rotation): everything is new.
            self.offset = 0;
            self.scanner = LineScanner::default();
        }
        if len == self.offset {
            return Vec::new();
        }
        let start = self.offset.max(len.saturating_sub(MAX_READ));
        let mut buf = vec![0u8; (len - start) as usize];
        let Ok(n) = self.file.read_at(&mut buf, start) else {
            return Vec::new();
        };
        buf.truncate(n);
        self.offset = start + n as u64;
        let mut out = Vec::new();
        let mut on = None;
        for seen in self.scanner.feed(&buf, &self.marker) {
            match seen {
                // Only in its own log: a log other vassals write can carry a
                // forged line (a tenant printing another's FIFO path), and
                // `S` toggles (docs/SECURITY.md). A shared log leaves the
                // repair to the router's evidence (the announce window).
                Seen::Lost(line) if self.own_log && !self.lost_reported => {
                    self.lost_reported = true;
                    out.push(Evidence::HookLost(line));
                }
                Seen::Lost(_) => {}
                Seen::On => on = Some(true),
                Seen::Off => {
                    on = Some(false);
                    // Each one: the engine acts only on one after the
                    // repair's `S` was written.
                    if self.own_log {
                        out.push(Evidence::SubscriptionsBlocked);
                    }
                }
            }
        }
        if self.own_log && on == Some(true) && !self.on_reported {
            self.on_reported = true;
            out.push(Evidence::SubscriptionsOn);
        }
        out
    }
}

/// The `logto` files more than one of `parsed` names: a master's
/// subscription toggle in them cannot be told apart by vassal.
pub fn shared_logs(parsed: &[(String, Result<VassalConfig, String>)]) -> BTreeSet<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut shared = BTreeSet::new();
    for p in parsed
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok()?.log_file())
    {
        if !seen.insert(p.clone()) {
            shared.insert(p);
        }
    }
    shared
}

/// The vassal master's stderr when it is a regular file, else its
/// `logto` file. Never blocks and never reads what is not a regular file
/// (docs/SECURITY.md, log watch): both are opened non-blocking and checked
/// on the open descriptor, so a FIFO swapped in is refused at once, not
/// waited on; the `logto` path is opened without following a link (the
/// application user owns its directory).
fn open_log(pid: i64, config: Option<&VassalConfig>) -> Result<(File, PathBuf), String> {
    let stderr = PathBuf::from(format!("/proc/{pid}/fd/2"));
    let mut why = Vec::new();
    if pid > 0 {
        // A look first, so a pipe or socket is not even opened (reading it
        // would steal the vassal's log); the open descriptor is the proof.
        match fs::metadata(&stderr) {
            Ok(m) if m.is_file() => match open_file(&stderr, false) {
                Ok(f) => {
                    let shown = fs::read_link(&stderr).unwrap_or(stderr);
                    return Ok((f, shown));
                }
                Err(e) => why.push(e),
            },
            Ok(_) => why.push(format!("{} is not a file", stderr.display())),
            Err(e) => why.push(format!("{}: {e}", stderr.display())),
        }
    }
    if let Some(p) = config.and_then(VassalConfig::log_file) {
        match open_file(&p, true) {
            Ok(f) => return Ok((f, p)),
            Err(e) => why.push(e),
        }
    }
    Err(if why.is_empty() {
        "no log file known".to_string()
    } else {
        why.join("; ")
    })
}

fn open_file(p: &Path, nofollow: bool) -> Result<File, String> {
    super::safe_read::open_regular(p, nofollow, MAX_READ)
        .map(|(f, _)| f)
        .map_err(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn config(dir: &Path, logto: &Path) -> VassalConfig {
        let text = format!(
            "[uwsgi]\nstart-unsubscribed = true\nsocket = {d}/%n.sock\nsubscribe2 = server={d}/ss.sock,key=k\nlogto = {l}\nhook-accepting1-once = writefifo:{d}/%n.fifo S\n",
            d = dir.display(),
            l = logto.display()
        );
        VassalConfig::parse(&text, "app_01.ini", dir.to_str().unwrap())
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "uwsgi-reload-hooklog-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_lines_written_after_the_watch_count() {
        let d = tmp("after");
        let log = d.join("app_01.log");
        let fifo = d.join("app_01.fifo");
        let line = format!(
            "open(\"{}\"): No such device or address [core/hooks.c line 134]\n",
            fifo.display()
        );
        // A lost hook of an earlier generation, before the touch.
        fs::write(&log, &line).unwrap();
        let cfg = config(&d, &log);
        let mut logs = HookLogs::default();
        // pid 0: no /proc; the config's logto is used.
        assert_eq!(
            logs.watch("app_01", 0, Some(&cfg), &BTreeSet::new())
                .unwrap(),
            log
        );
        assert!(
            logs.scan().is_empty(),
            "a line from before the watch counted"
        );
        let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"*** Starting uWSGI ***\nrunning \"writefifo:...\" (accepting1-once)...\n")
            .unwrap();
        assert!(logs.scan().is_empty());
        f.write_all(line.as_bytes()).unwrap();
        let found = logs.scan();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "app_01");
        assert!(
            matches!(&found[0].1, Evidence::HookLost(l) if l.contains("No such device or address"))
        );
        // Reported once; still watched until the engine unwatches it.
        f.write_all(line.as_bytes()).unwrap();
        assert!(logs.scan().is_empty());
        assert!(logs.is_watched("app_01"));
        logs.unwatch("app_01");
        assert!(!logs.is_watched("app_01"));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn subscriptions_on_counts_only_in_the_vassals_own_log() {
        let d = tmp("on");
        let log = d.join("app_01.log");
        fs::write(&log, "earlier - subscriptions re-enabled\n").unwrap();
        let cfg = config(&d, &log);
        let append = |text: &str| {
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        let mut logs = HookLogs::default();
        logs.watch("app_01", 0, Some(&cfg), &BTreeSet::new())
            .unwrap();
        assert!(
            logs.scan().is_empty(),
            "a toggle from before the touch counted"
        );
        // Blocked last: not on, and the block is reported.
        append("x - subscriptions re-enabled\nx - subscriptions blocked\n");
        assert_eq!(
            logs.scan(),
            [("app_01".to_string(), Evidence::SubscriptionsBlocked)]
        );
        append("x - subscriptions re-enabled\n");
        assert_eq!(
            logs.scan(),
            [("app_01".to_string(), Evidence::SubscriptionsOn)]
        );
        append("x - subscriptions re-enabled\n");
        assert!(logs.scan().is_empty(), "reported twice");
        // The same file named by another vassal's config too: shared.
        let mut logs = HookLogs::default();
        let shared: BTreeSet<PathBuf> = [log.clone()].into_iter().collect();
        logs.watch("app_01", 0, Some(&cfg), &shared).unwrap();
        append("x - subscriptions re-enabled\n");
        assert!(
            logs.scan().is_empty(),
            "a shared log's toggle was attributed"
        );
        let _ = fs::remove_dir_all(&d);
    }

    /// A log other vassals write can carry a forged line naming this
    /// vassal's FIFO: there it is no evidence (`S` toggles).
    #[test]
    fn a_lost_line_counts_only_in_the_vassals_own_log() {
        let d = tmp("lostshared");
        let log = d.join("app_01.log");
        fs::write(&log, "").unwrap();
        let cfg = config(&d, &log);
        let shared: BTreeSet<PathBuf> = [log.clone()].into_iter().collect();
        let mut logs = HookLogs::default();
        logs.watch("app_01", 0, Some(&cfg), &shared).unwrap();
        let line = format!(
            "open(\"{}\"): No such device or address [core/hooks.c line 134]\n",
            d.join("app_01.fifo").display()
        );
        fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        assert!(logs.scan().is_empty(), "a line in a shared log counted");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_truncated_log_is_read_from_its_start() {
        let d = tmp("trunc");
        let log = d.join("app_01.log");
        fs::write(&log, vec![b'x'; 4096]).unwrap();
        let cfg = config(&d, &log);
        let mut logs = HookLogs::default();
        logs.watch("app_01", 0, Some(&cfg), &BTreeSet::new())
            .unwrap();
        let line = format!(
            "open(\"{}\"): No such device or address [core/hooks.c line 134]\n",
            d.join("app_01.fifo").display()
        );
        fs::write(&log, &line).unwrap();
        assert_eq!(logs.scan().len(), 1);
        let _ = fs::remove_dir_all(&d);
    }

    /// A FIFO (no writer) or a link at the `logto` path: refused at once,
    /// never waited on nor followed (the guard thread only ends a hang).
    #[test]
    fn a_fifo_or_link_at_the_logto_path_is_refused_at_once() {
        let d = tmp("fifo");
        let log = d.join("app_01.log");
        nix::unistd::mkfifo(&log, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        let cfg = config(&d, &log);
        let (tx, rx) = std::sync::mpsc::channel();
        let c = cfg.clone();
        std::thread::spawn(move || {
            let mut logs = HookLogs::default();
            let _ = tx.send(logs.watch("app_01", 0, Some(&c), &BTreeSet::new()));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = fs::OpenOptions::new().write(true).open(&log);
                panic!("watching a FIFO log blocked");
            });
        let e = r.unwrap_err();
        assert!(e.contains("a FIFO") && e.contains("app_01.log"), "{e}");
        fs::remove_file(&log).unwrap();
        let real = d.join("real.log");
        fs::write(&real, "").unwrap();
        std::os::unix::fs::symlink(&real, &log).unwrap();
        let e = HookLogs::default()
            .watch("app_01", 0, Some(&cfg), &BTreeSet::new())
            .unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn no_log_file_means_no_watch() {
        let d = tmp("none");
        let cfg = config(&d, &d.join("missing.log"));
        let mut logs = HookLogs::default();
        let e = logs
            .watch("app_01", 0, Some(&cfg), &BTreeSet::new())
            .unwrap_err();
        assert!(e.contains("missing.log"), "{e}");
        assert!(!logs.is_watched("app_01"));
        // A pipe as stderr (log-master, journald) is never opened.
        let e = logs.watch(
            "app_01",
            std::process::id() as i64,
            Some(&cfg),
            &BTreeSet::new(),
        );
        let stderr_is_file = fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.is_file());
        assert_eq!(e.is_ok(), stderr_is_file);
        let _ = fs::remove_dir_all(&d);
    }
}
