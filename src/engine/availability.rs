//! What the evidence says about a vassal the rollout is not reloading right
//! now: is it taking requests, is it on its way, or is it proven out of
//! service? `fsm/AVAILABILITY.md` writes the classes and their evidence out.
//!
//! The class comes from both sockets and from what was seen over time, never
//! from one snapshot: a fastrouter that restarts loses every node at once,
//! and a vassal that missed one announce (a full datagram queue drops it)
//! looks stale for one subscribe-freq. Neither is evidence that a vassal is
//! down, so neither may make the scheduler reload it outside the K budget.

use crate::stats::{BlacklistEntry, VassalStats};

/// The availability classes, most available first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Availability {
    /// Accepting (Emperor) and at least one fresh node (fastrouter): takes
    /// requests, counts toward K, and is reloaded within the budget.
    Serving,
    /// Accepting, but no fresh node in the fastrouter (not yet announced,
    /// an announce lost, or the fastrouter restarted). Not live for K, and
    /// not down either: waited for, its next announce comes within its
    /// subscribe-freq.
    Unrouted,
    /// Accepting, and no fresh node for a whole announce window of our own
    /// observation: its subscription is blocked or it stopped announcing.
    /// Proven out of rotation.
    Silent,
    /// Running but not accepting since its last start or reload request
    /// (`accepting == 0`, not cursed), however long its app takes to load.
    /// Never sent a reload: one landing in its start-up is lost and wedges
    /// it (docs/UWSGI.md §12).
    Starting,
    /// Dying or failing to start: `cursed`, or absent from the vassals and
    /// listed in the blacklist (throttled between attempts). Proven out of
    /// service once two Emperor reads in a row show it.
    CrashLooping,
    /// Neither a vassal record nor a blacklist entry (or an on-demand vassal
    /// with no process): the Emperor does not run it.
    Gone,
}

impl Availability {
    pub const ALL: [Availability; 6] = [
        Availability::Serving,
        Availability::Unrouted,
        Availability::Silent,
        Availability::Starting,
        Availability::CrashLooping,
        Availability::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Serving => "serving",
            Availability::Unrouted => "unrouted",
            Availability::Silent => "silent",
            Availability::Starting => "starting",
            Availability::CrashLooping => "crash_looping",
            Availability::Gone => "gone",
        }
    }
}

/// What is remembered about one vassal across snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Since when (monotonic ms) it has been accepting with no fresh node.
    pub unrouted_since_ms: Option<u64>,
    /// Emperor reads in a row that showed it cursed or blacklisted without
    /// a record.
    pub crash_reads: u32,
    /// Its running generation as last seen: (pid, start in wall seconds).
    pub generation: Option<(i64, i64)>,
    /// When the Emperor read that first showed this generation accepting
    /// was requested (monotonic ms): a fastrouter read requested after it
    /// shows what followed the reload (its unsubscribe), one requested
    /// before may not (`Engine::generation_since`).
    pub accepting_seen_ms: Option<u64>,
    /// Its announce period as the fastrouter showed it (`periods`).
    pub period: super::periods::Learning,
}

/// One vassal's view in the current snapshots.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    pub record: Option<&'a VassalStats>,
    pub blacklisted: Option<&'a BlacklistEntry>,
    /// At least one of its nodes is fresh by its tolerance.
    pub fresh_node: bool,
    /// A node of it is listed and not death-marked, however old, and its
    /// age alone cannot prove it expired: the fastrouter's tolerance is not
    /// known, nor the vassal's real announce period (an option the Emperor
    /// sets or a file it includes may change it: docs/UWSGI.md §9.12).
    pub listed_node: bool,
    /// Not fresh, and a node of it is listed, recent, whose last refresh
    /// was not the vassal's own packet (`cores` 0: this tool's early
    /// announce or undone drain, or any other sender's): it keeps the node
    /// routed but proves nothing of the vassal, whose own next announce is
    /// waited for (`Node::refreshed_by_vassal`). Said in `describe`, so
    /// that `status` right after a rollout explains why a vassal the
    /// rollout saw announce is not counted from this one read.
    pub refreshed_by_us: bool,
}

impl Evidence {
    /// Folds in one Emperor read (call once per Emperor snapshot),
    /// requested at `read_ms`.
    pub fn on_emperor_read(&mut self, seen: &Seen, read_ms: u64) {
        let generation = seen
            .record
            .map(|r| (r.pid, super::generation::generation_start(r)));
        if generation != self.generation {
            self.generation = generation;
            self.accepting_seen_ms = None;
        }
        if seen.record.is_some_and(|r| r.accepting == 1) {
            self.accepting_seen_ms.get_or_insert(read_ms);
        }
        if crash_evidence(seen) {
            self.crash_reads = self.crash_reads.saturating_add(1);
        } else {
            self.crash_reads = 0;
        }
    }

    /// Folds in the current pair of snapshots at `now_ms` (idempotent).
    pub fn on_snapshots(&mut self, seen: &Seen, now_ms: u64) {
        let accepting = seen
            .record
            .is_some_and(|r| r.accepting == 1 && r.cursed == 0 && r.pid > 0);
        if accepting && !seen.fresh_node {
            self.unrouted_since_ms.get_or_insert(now_ms);
        } else {
            self.unrouted_since_ms = None;
        }
    }
}

fn crash_evidence(seen: &Seen) -> bool {
    match seen.record {
        Some(r) => r.cursed != 0,
        None => seen.blacklisted.is_some(),
    }
}

/// The class of a vassal from its current view and its evidence.
/// `announce_window_ms` is its subscribe-freq plus slack
/// (`Settings::announce_window_ms`).
pub fn classify(seen: &Seen, ev: &Evidence, now_ms: u64, announce_window_ms: u64) -> Availability {
    let Some(r) = seen.record else {
        return if seen.blacklisted.is_some() {
            Availability::CrashLooping
        } else {
            Availability::Gone
        };
    };
    if r.cursed != 0 {
        return Availability::CrashLooping;
    }
    if r.pid <= 0 {
        return Availability::Gone;
    }
    if r.accepting == 0 {
        return Availability::Starting;
    }
    if seen.fresh_node {
        return Availability::Serving;
    }
    match ev.unrouted_since_ms {
        // Silent only on evidence that the router does not route to it:
        // no node listed alive (gone, or death-marked), or a node older
        // than a tolerance the tool knows. Never from an age it guessed.
        Some(t) if now_ms >= t.saturating_add(announce_window_ms) && !seen.listed_node => {
            Availability::Silent
        }
        _ => Availability::Unrouted,
    }
}

/// May it be reloaded without using the K budget? Only on evidence that
/// lasted: silent for a whole announce window, or crash-looping in two
/// Emperor reads in a row and between two attempts (no record: a reload
/// request cannot reach a process that is starting).
pub fn proven_down(class: Availability, seen: &Seen, ev: &Evidence) -> bool {
    match class {
        Availability::Silent => true,
        Availability::CrashLooping => ev.crash_reads >= 2 && seen.record.is_none(),
        _ => false,
    }
}

/// One line for the operator: the class and the evidence behind it.
pub fn describe(class: Availability, seen: &Seen, ev: &Evidence, now_ms: u64) -> String {
    match class {
        Availability::Serving => "serving".into(),
        Availability::Unrouted if seen.refreshed_by_us => format!(
            "accepting; its node was last refreshed by a packet that was not the vassal's own (cores 0: uwsgi-reload's early announce or undone drain, or another sender), which proves nothing of the vassal; unrouted for {} ms of this run, waiting for its own next announce",
            ev.unrouted_since_ms
                .map_or(0, |t| now_ms.saturating_sub(t))
        ),
        Availability::Unrouted => format!(
            "accepting but no fresh node in the fastrouter for {} ms; waiting for its next announce",
            ev.unrouted_since_ms
                .map_or(0, |t| now_ms.saturating_sub(t))
        ),
        Availability::Silent => format!(
            "accepting but silent in the fastrouter for {} ms, longer than its subscribe-freq: out of rotation",
            ev.unrouted_since_ms
                .map_or(0, |t| now_ms.saturating_sub(t))
        ),
        Availability::Starting => {
            let r = seen.record.expect("starting has a record");
            format!(
                "starting: pid {} not accepting since its (re)start or reload at {} (wall s); never sent a reload while starting",
                r.pid, r.last_run
            )
        }
        Availability::CrashLooping => match (seen.record, seen.blacklisted) {
            (Some(r), _) => format!("dying (cursed at {}, pid {})", r.cursed, r.pid),
            (None, Some(b)) => format!(
                "crash-looping: in the Emperor's blacklist (attempt {}, throttle {} ms)",
                b.attempt, b.throttle_level
            ),
            (None, None) => "crash-looping".into(),
        },
        Availability::Gone => "not run by the Emperor (no vassal record, no blacklist entry)".into(),
    }
}
