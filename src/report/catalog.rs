//! What the tool writes for machines, listed once: every `--json` event
//! with its fields, and every metric of `--metrics-file` with its labels
//! and help. The emitters take their names from here (`report::event_json`
//! through [`event_name`], `metrics::render` through [`metric_help`]); the
//! man page's OUTPUT section prints these lists; the tests below fail when
//! an engine event has no entry.

use crate::engine::Event;

/// One `--json` object kind.
pub struct EventDoc {
    pub name: &'static str,
    /// Its fields besides `event`, `v` and `at_ms` (which every object has).
    pub fields: &'static str,
    pub meaning: &'static str,
}

macro_rules! ev {
    ($name:literal, $fields:literal, $meaning:literal) => {
        EventDoc {
            name: $name,
            fields: $fields,
            meaning: $meaning,
        }
    };
}

/// Every `--json` object, in the order a run writes them.
#[rustfmt::skip]
pub const EVENTS: &[EventDoc] = &[
    ev!("note", "message", "a preflight note (doctor finding, what was learned from the fastrouter, drain off)"),
    ev!("plan", "vassals, min_live (K per key), live (per key at the start)", "the rollout starts"),
    ev!("warning", "vassal (or null), message", "something to fix; nothing was stopped"),
    ev!("unavailable", "vassal, class (unrouted, silent, starting, crash_looping, gone), why", "a vassal not serving, with the evidence"),
    ev!("drain_started", "vassal, nodes", "its nodes were unsubscribed"),
    ev!("drained", "vassal, waited_ms, timed_out, sessions_left", "no session the reload could lose is left"),
    ev!("resubscribed", "vassal", "a drained vassal put back, the rollout stopped before its touch"),
    ev!("touched", "vassal, mtime", "its config's mtime was moved forward"),
    ev!("foreign_reload", "vassal", "someone else touched it first; followed, never touched"),
    ev!("reload_seen", "vassal", "the Emperor registered the touch"),
    ev!("accepting", "vassal", "its new generation accepts"),
    ev!("announced", "vassal, nodes", "early announce: the tool subscribed its nodes"),
    ev!("repair_started", "vassal, evidence (the log line, or null)", "its accepting hook lost its S"),
    ev!("repair_written", "vassal, fifo", "S was written to its master FIFO"),
    ev!("probe_ok", "vassal, detail", "the --probe request answered 2xx/3xx"),
    ev!("subscribed", "vassal, took_ms, repaired, foreign", "its own announce was seen: reloaded"),
    ev!("failed", "vassal, reason, detail, explain", "the vassal failed (reasons: README)"),
    ev!("skipped", "vassal, why", "its config went before its turn, or already current (--stale-since)"),
    ev!("live", "key, live, min", "a key's live count changed"),
    ev!("canary_passed", "vassals", "the canaries stayed live for --min-ready"),
    ev!("waiting", "why", "nothing can start now, and why"),
    ev!("stopping", "why", "nothing new is touched"),
    ev!("fastrouter_restarted", "old_pid, new_pid, nodes_before, nodes_now", "touching pauses until the nodes are back"),
    ev!("stale_node_removed", "vassal, key, node, why", "a dead vassal's node was unsubscribed"),
    ev!("summary", "status, precondition, reloaded, failed, untouched, lowest_live, min_live, elapsed_ms, exit_code, stats_reads, version, uwsgi_version, settings", "the last object of a rollout"),
    ev!("dry_run", "waves, min_live, version, uwsgi_version, settings", "--dry-run's plan: the vassals of each wave"),
];

/// The `event` name of an engine event: one exhaustive match, so a new
/// variant does not compile without its name.
pub fn event_name(e: &Event) -> &'static str {
    match e {
        Event::Warning { .. } => "warning",
        Event::Plan { .. } => "plan",
        Event::DrainStarted { .. } => "drain_started",
        Event::Drained { .. } => "drained",
        Event::Resubscribed { .. } => "resubscribed",
        Event::Announced { .. } => "announced",
        Event::Touched { .. } => "touched",
        Event::ForeignReload { .. } => "foreign_reload",
        Event::ReloadSeen { .. } => "reload_seen",
        Event::Accepting { .. } => "accepting",
        Event::ProbeOk { .. } => "probe_ok",
        Event::RepairStarted { .. } => "repair_started",
        Event::RepairWritten { .. } => "repair_written",
        Event::Subscribed { .. } => "subscribed",
        Event::Failed { .. } => "failed",
        Event::Skipped { .. } => "skipped",
        Event::LiveChanged { .. } => "live",
        Event::CanaryPassed { .. } => "canary_passed",
        Event::Stopping { .. } => "stopping",
        Event::Waiting { .. } => "waiting",
        Event::Unavailable { .. } => "unavailable",
        Event::FastrouterRestarted { .. } => "fastrouter_restarted",
        Event::StaleNodeRemoved { .. } => "stale_node_removed",
    }
}

/// Every metric family (without the `uwsgi_reload_` prefix), its labels,
/// and its help line.
#[rustfmt::skip]
pub const METRICS: &[(&str, &str, &str)] = &[
    ("last_run_timestamp_seconds", "", "Unix time the last rollout ended."),
    ("last_run_duration_seconds", "", "How long the last rollout took."),
    ("last_run_exit_code", "", "Exit status of the last rollout (0 done, 1 failed, 3 nothing touched, 130/143 interrupted)."),
    ("last_run_status", "status", "How the last rollout ended: 1 for its status."),
    ("last_run_vassals", "result", "Vassals of the last rollout by result."),
    ("last_run_lowest_live", "key", "Lowest live vassal count per fastrouter key while the last rollout had anything in flight."),
    ("last_run_min_live", "key", "K: live vassals the last rollout kept per fastrouter key."),
    ("info", "version", "This tool's version."),
    ("uwsgi_info", "source, version", "uWSGI's version, as each stats socket reported it in the last rollout."),
];

/// The help line of metric `name` (empty for a name not listed, which the
/// tests below rule out).
pub fn metric_help(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, _, h)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FailReason, Report};

    /// One of every engine event. Its length is checked against the enum's
    /// source, so a new variant fails here until it is added (and then
    /// `event_json` must name it from the table). Long on purpose: a list.
    fn one_of_each() -> Vec<Event> {
        let v = || "app.ini".to_string();
        vec![
            Event::Warning {
                vassal: None,
                message: "m".into(),
            },
            Event::Plan {
                vassals: vec![v()],
                min_live: Default::default(),
                live: Default::default(),
            },
            Event::DrainStarted {
                vassal: v(),
                nodes: vec![],
            },
            Event::Drained {
                vassal: v(),
                waited_ms: 1,
                timed_out: false,
                sessions_left: 0,
            },
            Event::Resubscribed { vassal: v() },
            Event::Announced {
                vassal: v(),
                nodes: vec![],
            },
            Event::Touched {
                vassal: v(),
                mtime: 1,
            },
            Event::ForeignReload { vassal: v() },
            Event::ReloadSeen { vassal: v() },
            Event::Accepting { vassal: v() },
            Event::ProbeOk {
                vassal: v(),
                detail: "200".into(),
            },
            Event::RepairStarted {
                vassal: v(),
                evidence: None,
            },
            Event::RepairWritten {
                vassal: v(),
                fifo: "/f".into(),
            },
            Event::Subscribed {
                vassal: v(),
                took_ms: 1,
                repaired: false,
                foreign: false,
            },
            Event::Failed {
                vassal: v(),
                reason: FailReason::NeverAccepted,
                detail: "d".into(),
            },
            Event::Skipped {
                vassal: v(),
                why: "w".into(),
            },
            Event::LiveChanged {
                key: "k".into(),
                live: 1,
                min: 1,
            },
            Event::CanaryPassed { vassals: vec![] },
            Event::Stopping { why: "w".into() },
            Event::Waiting { why: "w".into() },
            Event::Unavailable {
                vassal: v(),
                class: "silent",
                why: "w".into(),
            },
            Event::FastrouterRestarted {
                old_pid: 1,
                new_pid: 2,
                nodes_before: 2,
                nodes_now: 0,
            },
            Event::StaleNodeRemoved {
                vassal: v(),
                key: "k".into(),
                node: "n".into(),
                why: "w".into(),
            },
        ]
    }

    /// The variants of `pub enum Event` in the engine's source.
    fn variants_in_source() -> usize {
        let src = include_str!("../engine/io.rs");
        let body = &src[src.find("pub enum Event {").expect("enum Event")..];
        let body = &body[..body.find("\n}\n").expect("end of enum Event")];
        body.lines()
            .filter(|l| {
                let t = l.strip_prefix("    ").unwrap_or("");
                t.starts_with(|c: char| c.is_ascii_uppercase())
            })
            .count()
    }

    #[test]
    fn every_engine_event_is_in_the_table_and_named_from_it() {
        let all = one_of_each();
        assert_eq!(
            all.len(),
            variants_in_source(),
            "an Event variant is missing from one_of_each()"
        );
        for e in all {
            let name = event_name(&e);
            assert!(
                EVENTS.iter().any(|d| d.name == name),
                "{name} is not in EVENTS"
            );
            let j = crate::report::event_json(&Report { at_ms: 7, event: e });
            assert_eq!(j["event"], name);
            assert_eq!(j["at_ms"], 7);
        }
        for extra in ["note", "summary", "dry_run"] {
            assert!(EVENTS.iter().any(|d| d.name == extra), "{extra}");
        }
        let mut names: Vec<&str> = EVENTS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENTS.len(), "a name is listed twice");
    }

    #[test]
    fn the_metrics_file_has_exactly_the_listed_families() {
        let m = crate::report::metrics::RunMetrics {
            uwsgi: [("emperor".to_string(), "2.0.21".to_string())].into(),
            ..Default::default()
        };
        let text = crate::report::metrics::render(&m);
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE uwsgi_reload_"))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let listed: Vec<&str> = METRICS.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(families, listed);
        for (n, _, h) in METRICS {
            assert!(
                text.contains(&format!("# HELP uwsgi_reload_{n} {h}\n")),
                "{n}"
            );
        }
    }
}
