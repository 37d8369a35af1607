//! `--stale-since`: is a vassal's running generation older than the release?
//!
//! The Emperor's record says when the running generation began
//! (docs/UWSGI.md §4, §5.2): a reload request sets `last_run = now`; a new
//! process (first start, crash-respawn) gets a new record with
//! `first_run = last_run = now` (`emperor_add`). So the generation began at
//! `max(first_run, last_run)`. A FIFO `r` reload moves neither (§14): such a
//! vassal looks stale and is reloaded again, the safe side.
//!
//! A vassal counts as already current only when that start is at or after
//! the instant given and the generation is serving: it accepted after its
//! start (`last_accepting >= start`) and has a fresh node. One that is still
//! starting is waited for like any other (never touched), and is then found
//! current instead of being reloaded a second time; one that came up silent
//! or crash-looping is not current and is reloaded by the usual rules.
//!
//! uWSGI's clocks have whole seconds: the instant is rounded up to the next
//! whole second, so a generation started in the same second as the instant
//! counts as stale (reloading again is the safe side).

use super::*;
use crate::stats::VassalStats;

/// Against `--stale-since`, where a vassal's running generation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// Started before the instant (or never seen by the Emperor): reload it.
    Stale,
    /// Started at or after the instant, but not serving yet (starting, or
    /// not yet announced): waited for, not touched.
    Renewing,
    /// Started at or after the instant and serving: nothing to reload.
    Current,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Stale => "stale",
            Generation::Renewing => "renewing",
            Generation::Current => "current",
        }
    }
}

/// When the running generation of an Emperor record began (wall seconds).
pub fn generation_start(rec: &VassalStats) -> i64 {
    rec.first_run.max(rec.last_run)
}

/// `--stale-since` as given (fractional seconds since the epoch), as the
/// whole second uWSGI's timestamps are compared with: rounded up.
pub fn stale_since_second(instant_s: f64) -> i64 {
    instant_s.ceil() as i64
}

impl Engine {
    /// Where vassal `i`'s running generation stands against
    /// `--stale-since`; `None` without it. The same answer for the rollout,
    /// `--dry-run` and `status`.
    pub fn generation(&self, i: usize) -> Option<Generation> {
        let since = self.s.stale_since_s?;
        let Some(rec) = self
            .emp
            .as_ref()
            .and_then(|e| e.vassal(&self.vassals[i].name))
        else {
            return Some(Generation::Stale);
        };
        let start = generation_start(rec);
        if start < since {
            return Some(Generation::Stale);
        }
        let accepted_since = rec.accepting == 1 && rec.last_accepting >= start;
        Some(match self.availability(i) {
            Availability::Serving if accepted_since => Generation::Current,
            Availability::Starting | Availability::Unrouted => Generation::Renewing,
            Availability::Serving => Generation::Renewing,
            // Silent, crash-looping, gone: the new generation is not in
            // service, and the usual rules decide what to do with it.
            _ => Generation::Stale,
        })
    }

    /// The text of the `skipped` event of a current vassal.
    pub(super) fn current_why(&self, i: usize) -> String {
        let start = self
            .emp
            .as_ref()
            .and_then(|e| e.vassal(&self.vassals[i].name))
            .map_or(0, generation_start);
        format!(
            "already current: its running generation started at {start} (epoch s), not before --stale-since {}, and it serves",
            self.s.stale_since_s.unwrap_or(0)
        )
    }
}
