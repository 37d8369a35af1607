//! Rendering engine events for people (one line each, elapsed time first)
//! and for machines (`--json`: one object per line, stable field names).

pub mod catalog;
pub mod info;
pub mod journal;
pub mod metrics;
pub mod syslog;
pub mod timeline;
pub mod wall;

use std::io::{IsTerminal, Write};

use serde_json::{json, Value};

use crate::uwsgi::printable::printable;
pub use journal::Level;

use crate::engine::{Event, Outcome, Progress, Report, Status};
use syslog::{Severity, Syslog};

/// The version of the `--json` schema: every object carries it as `"v"`,
/// so a consumer can tell a change of field meaning from a new field.
pub const JSON_SCHEMA_VERSION: u64 = 1;

/// Where events go. Results (the header, event lines, the summary) go to
/// stdout, or to stderr with `--json` (stdout is then the JSON stream);
/// warnings and errors always go to stderr, with their journal priority
/// when stderr is the journal. With `--quiet` only failures and a failed
/// summary are printed. On a terminal a progress line stays at the bottom.
pub struct Reporter {
    pub quiet: bool,
    pub json: bool,
    syslog: Option<Syslog>,
    /// stdout is a terminal and carries the human lines.
    tty: bool,
    color: bool,
    progress_shown: bool,
    /// Versions and settings of a rollout, once the driver set them.
    info: Option<info::RunInfo>,
    header_shown: bool,
    /// Human lines held from the moment the run's settings are known until
    /// the rollout starts (its `plan`): a run refused in preflight prints
    /// its refusal and nothing else, however far preflight got.
    held: Vec<(String, Level)>,
    /// `--timestamps`: human lines start with the wall-clock time (RFC 3339,
    /// UTC) instead of the time since the start.
    timestamps: bool,
    /// The start of the run, for the `at_ms` of the objects the engine does
    /// not time (`note`, `dry_run`).
    clock: crate::clock::Clock,
    /// `--timeline`: every event and the summary, as `--json` writes them.
    recorded: Option<Vec<Value>>,
}

impl Reporter {
    pub fn new(quiet: bool, json: bool) -> Reporter {
        let tty = !json && !quiet && std::io::stdout().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty());
        Reporter {
            quiet,
            json,
            syslog: None,
            tty,
            color,
            progress_shown: false,
            info: None,
            header_shown: false,
            held: Vec::new(),
            timestamps: false,
            clock: crate::clock::Clock::new(),
            recorded: None,
        }
    }

    /// Keep every event for `--timeline`.
    pub fn recording(mut self, on: bool) -> Reporter {
        self.recorded = on.then(Vec::new);
        self
    }

    /// The events kept for `--timeline`.
    pub fn recorded(&self) -> &[Value] {
        self.recorded.as_deref().unwrap_or_default()
    }

    /// `--timestamps`.
    pub fn with_timestamps(mut self, on: bool) -> Reporter {
        self.timestamps = on;
        self
    }

    /// Milliseconds since this reporter was made (the process start).
    /// The run's clock: the engine and the driver count from the same start
    /// as the notes, so `at_ms` never goes back in the stream.
    pub fn clock(&self) -> crate::clock::Clock {
        self.clock
    }

    pub fn elapsed_ms(&self) -> u64 {
        (self.clock.elapsed_s() * 1000.0) as u64
    }

    /// A preflight note (doctor warning, drain off, ...): printed after the
    /// header once a rollout has one, so the report opens with the versions
    /// and settings. A note starting with `warning:` is a warning (stderr).
    pub fn note(&mut self, line: &str) {
        // Machines and the system log get it at once, as every event.
        if self.json {
            let at = self.elapsed_ms();
            emit_json(&json!({"event": "note", "message": line, "at_ms": at}));
        }
        let level = if line.starts_with("warning:") {
            Level::Warning
        } else {
            Level::Info
        };
        if let Some(s) = &self.syslog {
            let sev = match level {
                Level::Warning => Severity::Warning,
                _ => Severity::Info,
            };
            s.send(sev, line);
        }
        self.line(line, level);
    }

    /// The rollout's versions and settings: the human report opens with
    /// them, the JSON summary carries them. From here until the rollout
    /// starts, human lines are held (see `held`).
    pub fn set_run_info(&mut self, i: info::RunInfo) {
        self.info = Some(i);
    }

    /// A uWSGI version a stats socket reported (`source`: emperor or
    /// fastrouter).
    pub fn uwsgi_version(&mut self, source: &str, version: &str) {
        if let Some(i) = &mut self.info {
            if !version.is_empty() && i.uwsgi.get(source).map(String::as_str) != Some(version) {
                i.uwsgi.insert(source.to_string(), version.to_string());
            }
        }
    }

    /// Lines are held: the settings are known, the rollout has not started.
    fn holding(&self) -> bool {
        self.info.is_some() && !self.header_shown
    }

    /// The first line of a rollout's human report, once, then what was held.
    fn header(&mut self, min_live: &std::collections::BTreeMap<String, usize>) {
        if self.header_shown {
            return;
        }
        let Some(i) = &self.info else { return };
        self.header_shown = true;
        let line = i.human(min_live);
        if let Some(s) = &self.syslog {
            s.send(Severity::Info, &line);
        }
        if !self.quiet {
            self.line(&line, Level::Info);
        }
        for (l, level) in std::mem::take(&mut self.held) {
            self.line(&l, level);
        }
    }

    pub fn with_syslog(mut self, s: Syslog) -> Reporter {
        self.syslog = Some(s);
        self
    }

    pub fn event(&mut self, r: &Report) {
        if let Event::Plan { min_live, .. } = &r.event {
            self.header(min_live);
        }
        if self.json || self.recorded.is_some() {
            let v = event_json(r);
            if self.json {
                emit_json(&v);
            }
            if let Some(rec) = &mut self.recorded {
                rec.push(v);
            }
        }
        let important = matches!(r.event, Event::Failed { .. } | Event::Stopping { .. });
        let level = level_of(&r.event);
        let text = human(&r.event);
        if let Some(s) = &self.syslog {
            let sev = match level {
                Level::Error => Severity::Error,
                Level::Warning => Severity::Warning,
                Level::Info => Severity::Info,
            };
            s.send(sev, &text);
        }
        if self.quiet && !important {
            return;
        }
        let text = if self.color && important {
            format!("\x1b[1;31m{text}\x1b[0m")
        } else {
            text
        };
        // With --timestamps the wall clock replaces the time since the start
        // (added by `line`).
        let line = if self.timestamps {
            text
        } else {
            format!("[{:>8.3}s] {}", r.at_ms as f64 / 1000.0, text)
        };
        self.line(&line, level);
    }

    /// Whether [`Reporter::progress`] draws anything (stdout is a terminal).
    pub fn wants_progress(&self) -> bool {
        self.tty
    }
    /// Redraws the progress line (terminal only).
    pub fn progress(&mut self, p: &Progress) {
        if !self.tty {
            return;
        }
        let live: Vec<String> = p
            .live
            .iter()
            .filter_map(|(k, l)| p.min_live.get(k).map(|m| format!("{k} {l} (K={m})")))
            .collect();
        let inflight: Vec<&str> = p.in_flight.iter().map(|(n, _)| n.as_str()).collect();
        let line = format!(
            "reloaded {}/{}, failed {}, in flight {} [{}], live: {}, {:.1} s",
            p.reloaded,
            p.total,
            p.failed,
            inflight.len(),
            inflight.join(" "),
            live.join(", "),
            p.elapsed_ms as f64 / 1000.0
        );
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[K{line}");
        let _ = out.flush();
        self.progress_shown = true;
    }

    fn clear_progress(&mut self) {
        if self.progress_shown {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
            self.progress_shown = false;
        }
    }

    /// The run's end: the summary (a line or a JSON object), the untouched
    /// and failed vassals, the lowest live per key. Long on purpose: the
    /// order of what it prints is the operator's reading order.
    pub fn outcome(&mut self, o: &Outcome, exit_code: u8, stats_reads: u64) {
        if let Status::Precondition(_) = &o.status {
            // Refused: the refusal below is the only human line; what
            // preflight said before it is dropped (the JSON stream has it).
            self.held.clear();
            self.header_shown = true;
        }
        self.header(&o.min_live);
        if self.json || self.recorded.is_some() {
            // The last object: its time, on the run's clock (which started
            // before the engine's: `elapsed_ms` counts from the engine's
            // start), is the run's length.
            let mut v = summary_json(o, exit_code, stats_reads, self.elapsed_ms());
            if let Some(i) = &self.info {
                i.add_to(&mut v, &o.min_live);
            }
            if self.json {
                emit_json(&v);
            }
            if let Some(rec) = &mut self.recorded {
                rec.push(v);
            }
        }
        if let Some(s) = &self.syslog {
            let sev = if o.status == Status::Completed {
                Severity::Info
            } else {
                Severity::Error
            };
            s.send(
                sev,
                &format!(
                    "{}: reloaded {}, failed {}, untouched {}",
                    o.summary,
                    o.reloaded.len(),
                    o.failed.len(),
                    o.untouched.len()
                ),
            );
        }
        if let Status::Precondition(why) = &o.status {
            // Nothing was touched: one line says why (the JSON summary lists
            // every vassal as untouched).
            self.human_line(&format!("uwsgi-reload: nothing was touched: {why}"), true);
            return;
        }
        let failed = o.status != Status::Completed;
        if self.quiet && !failed {
            return;
        }
        for (v, r, d) in &o.failed {
            let line = format!("failed: {v}: {} ({d})", r.explain());
            self.line(&line, Level::Error);
        }
        for (v, why) in &o.untouched {
            let level = if failed { Level::Error } else { Level::Info };
            self.line(&format!("not reloaded: {v}: {why}"), level);
        }
        let lowest: Vec<String> = o
            .lowest_live
            .iter()
            .map(|(k, l)| {
                let min = o.min_live.get(k).copied().unwrap_or(0);
                // Vassals dying on their own can take a key below K; the
                // operator must see it even when every reload succeeded.
                let below = if *l < min { " BELOW K" } else { "" };
                format!("{k} {l} (K={min}){below}")
            })
            .collect();
        let line = format!(
            "{}: reloaded {}, failed {}, untouched {} in {:.1} s; lowest live: {}; {}",
            match &o.status {
                Status::Completed => "done",
                Status::Failed => "FAILED",
                Status::Interrupted => "INTERRUPTED",
                Status::Precondition(_) => "NOT STARTED",
            },
            o.reloaded.len(),
            o.failed.len(),
            o.untouched.len(),
            o.elapsed_ms as f64 / 1000.0,
            if lowest.is_empty() {
                "-".to_string()
            } else {
                lowest.join(", ")
            },
            o.summary
        );
        self.line(&line, if failed { Level::Error } else { Level::Info });
    }

    /// A line for people; `error` lines go to stderr (kept for callers
    /// that only know "error or not").
    pub fn human_line(&mut self, line: &str, error: bool) {
        self.line(line, if error { Level::Error } else { Level::Info });
    }

    /// A line for people at `level`: results on stdout (stderr with
    /// `--json`), warnings and errors on stderr, held while a refusal may
    /// still come (see `held`; errors are never held).
    pub fn line(&mut self, line: &str, level: Level) {
        if self.holding() && level != Level::Error {
            self.held.push((line.to_string(), level));
            return;
        }
        self.clear_progress();
        // Text from vassals' files may be in it (a path, a config value):
        // control characters are escaped here, the one way a line reaches
        // the terminal (`uwsgi::printable`, docs/SECURITY.md).
        let line = &printable(line.as_bytes(), usize::MAX);
        let stamp = if self.timestamps {
            format!("[{}] ", wall::now())
        } else {
            String::new()
        };
        if self.json || level != Level::Info {
            let prefix = journal::stderr_prefix(level);
            let _ = writeln!(std::io::stderr().lock(), "{prefix}{stamp}{line}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{stamp}{line}");
        }
    }
}

/// How much an engine event matters to the operator.
pub fn level_of(e: &Event) -> Level {
    match e {
        Event::Failed { .. } => Level::Error,
        Event::Warning { .. }
        | Event::Stopping { .. }
        | Event::Unavailable { .. }
        | Event::FastrouterRestarted { .. }
        | Event::StaleNodeRemoved { .. } => Level::Warning,
        _ => Level::Info,
    }
}

fn emit_json(v: &Value) {
    let mut v = v.clone();
    v["v"] = json!(JSON_SCHEMA_VERSION);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// A JSON object the engine does not time (`dry_run`), on stdout with the
/// schema version and `at_ms` since the start.
pub fn emit_untimed_json(rep: &Reporter, mut v: Value) {
    v["at_ms"] = json!(rep.elapsed_ms());
    emit_json(&v);
}

/// The human line of one event. Long on purpose: one arm per `Event`
/// variant, each a sentence; splitting it would scatter the wording that
/// `README.md` quotes and `report::catalog` checks.
pub fn human(e: &Event) -> String {
    match e {
        Event::Warning {
            vassal: Some(v),
            message,
        } => format!("warning: {v}: {message}"),
        Event::Warning {
            vassal: None,
            message,
        } => format!("warning: {message}"),
        Event::Plan {
            vassals,
            min_live,
            live,
        } => {
            let keys: Vec<String> = min_live
                .iter()
                .map(|(k, m)| format!("{k}: {} live, K={m}", live.get(k).copied().unwrap_or(0)))
                .collect();
            format!("reloading {} vassal(s); {}", vassals.len(), keys.join("; "))
        }
        Event::DrainStarted { vassal, nodes } => {
            format!("{vassal}: draining (unsubscribed {})", nodes.join(", "))
        }
        Event::Drained {
            vassal,
            waited_ms,
            timed_out,
            sessions_left,
        } => {
            if *timed_out {
                format!("{vassal}: drain timed out after {waited_ms} ms")
            } else if *sessions_left > 0 {
                format!(
                    "{vassal}: drained in {waited_ms} ms ({sessions_left} request(s) left in its workers, finished by the reload)"
                )
            } else {
                format!("{vassal}: drained in {waited_ms} ms")
            }
        }
        Event::Resubscribed { vassal } => format!("{vassal}: re-subscribed (not touched)"),
        Event::Announced { vassal, nodes } => {
            format!("{vassal}: announced early ({})", nodes.join(", "))
        }
        Event::Touched { vassal, mtime } => format!("{vassal}: touched (mtime {mtime})"),
        Event::ForeignReload { vassal } => {
            format!("{vassal}: touched by someone else; following that reload")
        }
        Event::ReloadSeen { vassal } => format!("{vassal}: reload seen"),
        Event::Accepting { vassal } => format!("{vassal}: accepting"),
        Event::ProbeOk { vassal, detail } => format!("{vassal}: probe answered {detail}"),
        Event::RepairStarted {
            vassal,
            evidence: None,
        } => format!("{vassal}: accepts but never announced; writing S to its master FIFO"),
        Event::RepairStarted {
            vassal,
            evidence: Some(line),
        } => format!(
            "{vassal}: its accepting hook lost its S (log: {line}); writing S to its master FIFO"
        ),
        Event::RepairWritten { vassal, fifo } => format!("{vassal}: wrote S to {fifo}"),
        Event::Subscribed {
            vassal,
            took_ms,
            repaired,
            foreign,
        } => format!(
            "{vassal}: subscribed, reloaded in {:.1} s{}{}",
            *took_ms as f64 / 1000.0,
            if *repaired {
                " (after a FIFO repair)"
            } else {
                ""
            },
            if *foreign {
                " (reload started by someone else)"
            } else {
                ""
            }
        ),
        Event::Failed {
            vassal,
            reason,
            detail,
        } => {
            format!("{vassal}: FAILED: {} ({detail})", reason.explain())
        }
        Event::Skipped { vassal, why } => format!("{vassal}: skipped: {why}"),
        Event::LiveChanged { key, live, min } => format!("key {key}: {live} live (K={min})"),
        Event::CanaryPassed { vassals } => {
            format!(
                "canaries healthy ({}); reloading the rest",
                vassals.join(", ")
            )
        }
        Event::Stopping { why } => format!("stopping: {why}"),
        Event::Waiting { why } => format!("waiting: {why}"),
        Event::Unavailable { vassal, class, why } => {
            format!("{vassal}: not serving ({class}): {why}")
        }
        Event::FastrouterRestarted {
            old_pid,
            new_pid,
            nodes_before,
            nodes_now,
        } => {
            let what = if old_pid != new_pid {
                format!("the fastrouter restarted (pid {old_pid} -> {new_pid})")
            } else {
                "the fastrouter lost most of its nodes at once".to_string()
            };
            format!("{what}: {nodes_now} of {nodes_before} nodes left; touching pauses until they are back")
        }
        Event::StaleNodeRemoved {
            vassal,
            key,
            node,
            why,
        } => format!("{vassal}: unsubscribed its stale node {node} (key {key}): {why}"),
    }
}

/// The JSON object of one event. Long on purpose: one arm per `Event`
/// variant, its fields as `README.md`'s event table names them (the kind
/// comes from `report::catalog`, which checks the two agree).
pub fn event_json(r: &Report) -> Value {
    let mut v = match &r.event {
        Event::Warning { vassal, message } => {
            json!({"vassal": vassal, "message": message})
        }
        Event::Plan {
            vassals,
            min_live,
            live,
        } => {
            json!({"vassals": vassals, "min_live": min_live, "live": live})
        }
        Event::DrainStarted { vassal, nodes } => {
            json!({"vassal": vassal, "nodes": nodes})
        }
        Event::Drained {
            vassal,
            waited_ms,
            timed_out,
            sessions_left,
        } => {
            json!({"vassal": vassal, "waited_ms": waited_ms, "timed_out": timed_out,
                   "sessions_left": sessions_left})
        }
        Event::Resubscribed { vassal } => json!({"vassal": vassal}),
        Event::Announced { vassal, nodes } => {
            json!({"vassal": vassal, "nodes": nodes})
        }
        Event::Touched { vassal, mtime } => {
            json!({"vassal": vassal, "mtime": mtime})
        }
        Event::ForeignReload { vassal } => json!({"vassal": vassal}),
        Event::ReloadSeen { vassal } => json!({"vassal": vassal}),
        Event::Accepting { vassal } => json!({"vassal": vassal}),
        Event::ProbeOk { vassal, detail } => {
            json!({"vassal": vassal, "detail": detail})
        }
        Event::RepairStarted { vassal, evidence } => {
            json!({"vassal": vassal, "evidence": evidence})
        }
        Event::RepairWritten { vassal, fifo } => {
            json!({"vassal": vassal, "fifo": fifo})
        }
        Event::Subscribed {
            vassal,
            took_ms,
            repaired,
            foreign,
        } => json!({
            "vassal": vassal, "took_ms": took_ms,
            "repaired": repaired, "foreign": foreign
        }),
        Event::Failed {
            vassal,
            reason,
            detail,
        } => json!({
            "vassal": vassal, "reason": reason.as_str(),
            "detail": detail, "explain": reason.explain()
        }),
        Event::Skipped { vassal, why } => json!({"vassal": vassal, "why": why}),
        Event::LiveChanged { key, live, min } => {
            json!({"key": key, "live": live, "min": min})
        }
        Event::CanaryPassed { vassals } => json!({"vassals": vassals}),
        Event::Stopping { why } => json!({"why": why}),
        Event::Waiting { why } => json!({"why": why}),
        Event::Unavailable { vassal, class, why } => {
            json!({"vassal": vassal, "class": class, "why": why})
        }
        Event::FastrouterRestarted {
            old_pid,
            new_pid,
            nodes_before,
            nodes_now,
        } => json!({"old_pid": old_pid, "new_pid": new_pid,
                    "nodes_before": nodes_before, "nodes_now": nodes_now}),
        Event::StaleNodeRemoved {
            vassal,
            key,
            node,
            why,
        } => {
            json!({"vassal": vassal, "key": key, "node": node, "why": why})
        }
    };
    // The name comes from the one table of events (report::catalog).
    v["event"] = json!(catalog::event_name(&r.event));
    v["at_ms"] = json!(r.at_ms);
    v
}

/// The `summary` object; `at_ms` is the run's length on the run's clock.
pub fn summary_json(o: &Outcome, exit_code: u8, stats_reads: u64, at_ms: u64) -> Value {
    let (status, why) = match &o.status {
        Status::Completed => ("completed", None),
        Status::Failed => ("failed", None),
        Status::Interrupted => ("interrupted", None),
        Status::Precondition(p) => ("precondition", Some(p.clone())),
    };
    json!({
        "event": "summary",
        "status": status,
        "precondition": why,
        "reloaded": o.reloaded,
        "failed": o.failed.iter().map(|(v, r, d)| json!({"vassal": v, "reason": r.as_str(), "detail": d})).collect::<Vec<_>>(),
        "untouched": o.untouched.iter().map(|(v, w)| json!({"vassal": v, "why": w})).collect::<Vec<_>>(),
        "lowest_live": o.lowest_live,
        "min_live": o.min_live,
        "elapsed_ms": o.elapsed_ms,
        "at_ms": at_ms,
        "summary": o.summary,
        "exit_code": exit_code,
        "stats_reads": stats_reads,
    })
}
