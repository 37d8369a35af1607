//! The per-vassal state machine, as a pure function of (phase, fact).
//!
//! Phases are named for what the vassal waits for; facts are what the
//! engine derived from the stats, the directory watcher, the clock and the
//! scheduler. `fsm/transitions.tsv` is the machine: `build.rs` generates
//! [`step`], [`is_impossible`] and [`why`] from it, and the names come from
//! one list each in `fsm_names.rs`. `tests/fsm_table.rs` checks the
//! generated code against the table and keeps the diagrams current.
//!
//! The data a phase needs lives beside the phase in `engine::vassal`, grouped
//! by the phase that sets it (`Drain`, `Baseline`, `Touch`, `Reload`);
//! keeping the phase itself fieldless is what makes the machine finite and
//! enumerable.

//! The groups (`Phase::in_flight()`, `Phase::terminal()`) come from
//! `fsm/phases.tsv`, and each in-flight phase has the type of the facts its
//! observer may raise (`AcceptingFact`, ...): only the facts the table does
//! not call "not raised" there, so an observer that raises another does not
//! compile:
//!
//! ```compile_fail
//! // `ReloadSeen` is observed in `Touched` only: no such fact in `Accepting`.
//! let _ = uwsgi_reload::engine::phase::AcceptingFact::ReloadSeen;
//! ```
//!
//! ```
//! use uwsgi_reload::engine::phase::{AcceptingFact, Fact};
//! assert_eq!(Fact::from(AcceptingFact::AnnounceSeen), Fact::AnnounceSeen);
//! ```

pub use super::fsm_names::{Effect, Fact, FailReason, Phase, Task};

include!(concat!(env!("OUT_DIR"), "/fsm_step.rs"));

impl FailReason {
    /// What a human should know and do.
    pub fn explain(self) -> &'static str {
        match self {
            FailReason::NotNoticed => "the Emperor never registered the new mtime; if the configs are symlinks, the Emperor needs --emperor-nofollow (or pass --touch-target), and the Emperor must watch this directory",
            FailReason::NeverAccepted => "the new generation never accepted connections; see the vassal's log",
            FailReason::NeverSubscribed => "it accepts but never announced to the fastrouter; check its subscribe2/subscribe-to and, with start-unsubscribed, its hook-accepting1-once writefifo race",
            FailReason::RepairDidNotHelp => "it accepted but stayed out of the fastrouter after S was written to its master FIFO",
            FailReason::NoFifo => "it accepted but never announced, and no master FIFO was found to unblock it (add master-fifo to its config)",
            FailReason::Died => "it died and the Emperor started it again as a new process",
            FailReason::CrashLoop => "its new config fails to start: the Emperor blacklisted it; see the vassal's log",
            FailReason::ConfigRemoved => "its config file was removed mid-reload",
            FailReason::TouchedByOther => "someone else touched its config mid-reload; a second reload can wedge a vassal for worker-reload-mercy",
            FailReason::SecondReload => "a second reload request reached it mid-reload (docs/UWSGI.md §12); it may stay wedged for worker-reload-mercy",
            FailReason::TouchError => "its config's mtime could not be set",
            FailReason::ProbeFailed => "it came back, but its --probe request did not get a 2xx/3xx answer: the new app is likely broken (see the vassal's log)",
            FailReason::Wedged => "it announced once after a reload this rollout did not send, then went silent: the reload reached it while it was starting and its workers ignored it; it stays out until worker-reload-mercy, then reloads on its own (check with the vassal's log; a kill of its master restarts it)",
            FailReason::KeyMoved => "its new generation subscribes under another key than before: the old key lost it, and the rest of that key is not touched while K needs them (check the release's subscribe2 key=, or reload the moved key's vassals on purpose with --only)",
            FailReason::RepairUndoFailed => "the tool's S blocked its subscriptions and the S that undoes it could not be written: it stays out of the fastrouter until its master FIFO gets an S (echo S > its master-fifo)",
        }
    }
}
