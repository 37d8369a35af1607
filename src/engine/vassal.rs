//! What the engine remembers about one vassal besides its phase, grouped by
//! the phase that sets it: the drain (`Draining`), the baseline and the
//! touch (`Touched`, ours or adopted), the reload (`Respawned` to
//! `Probing`), then the outcome. The phase itself stays fieldless so the
//! machine stays finite (`fsm/transitions.tsv`); each group says which
//! phases read it.

use super::availability::Evidence;
use super::phase::{FailReason, Phase};

/// A node taken out of rotation by the drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainedNode {
    pub key: String,
    pub name: String,
    pub modifier1: i64,
    /// Its `last_check` when last unsubscribed: a later one is an announce.
    pub last_check: i64,
}

/// Set when the drain starts (`Task::Unsubscribe`); read while `Draining`
/// and by an undone drain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drain {
    /// When the drain started (its `--drain-timeout` counts from here).
    pub started_ms: u64,
    /// When its unsubscribes were last sent (again after `NodeBack`).
    pub last_sent_ms: u64,
    pub nodes: Vec<DrainedNode>,
}

/// What the Emperor showed of it when this rollout first acted on it (the
/// drain or the touch): what later records are compared with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Its master's pid (0: not running; set when the reload is seen then).
    pub pid: i64,
    /// Its `respawns`: a reload request the Emperor sends from here on is
    /// counted from this.
    pub respawns: i64,
    /// Its blacklist attempt count, if it was blacklisted.
    pub blacklist_attempt: Option<i64>,
}

/// Set at the touch, ours or adopted (`Task::Touch`, `Task::Adopt`); read
/// from `Touched` on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touch {
    pub at_ms: u64,
    pub wall_s: i64,
    pub mtime_set: i64,
    /// Its nodes before the touch (the drained ones, else those fresh at
    /// the touch): what an early announce sends.
    pub announce_nodes: Vec<DrainedNode>,
    /// Reloaded by someone else's touch, followed but never touched.
    pub foreign: bool,
    /// Its log is watched for a lost accepting hook (`Action::WatchHookLog`)
    /// until it leaves flight (`Action::UnwatchHookLog`).
    pub log_watched: bool,
}

/// Set from the reload on (`Respawned` to `Probing`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// The `respawns` one reload request makes (`Task::RecordReload`): more
    /// is a second request.
    pub respawns: i64,
    /// When the new generation accepted (`Task::RecordAccepting`): the
    /// Emperor's `last_accepting` and our clock.
    pub accepted_s: i64,
    pub accepting_ms: u64,
    /// Since the touch, a fastrouter read showed none of its nodes alive: any
    /// node seen later was announced by the new generation.
    pub node_gone: bool,
    /// The line of its log that proves its accepting hook lost the `S`
    /// (`Input::HookLost`), kept until `Accepting` raises `Fact::HookLost`.
    pub hook_lost: Option<String>,
    /// Its own log shows its master turned subscriptions on after the
    /// touch (`Input::SubscriptionsOn`).
    pub subscriptions_on: bool,
    /// The tool announced it itself (`Task::Announce` and its kin): once.
    pub announced: bool,
    /// The driver reported the repair's `S` written (`Fact::FifoWritten`).
    pub fifo_written: bool,
    /// Its own log showed its master blocked subscriptions after the
    /// repair's `S` was written (`Input::SubscriptionsBlocked`): that `S`
    /// toggled an unblocked vassal off.
    pub blocked_after_repair: bool,
    /// `S` was written to its FIFO (`Task::WriteFifo`), and when.
    pub repaired: bool,
    pub repair_ms: u64,
    /// The `last_check` of the first announce seen of a reload it was not
    /// asked for by us, and when `Confirming` began: a second one must
    /// follow (see `Phase::Confirming`).
    pub first_announce_s: Option<i64>,
    pub confirm_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vassal {
    pub name: String,
    pub phase: Phase,
    /// The config mtime as last seen or set by us.
    pub known_mtime: i64,

    pub drain: Drain,
    pub baseline: Baseline,
    pub touch: Touch,
    pub reload: Reload,

    /// What was seen of it over time (whatever its phase).
    pub evidence: Evidence,
    /// It was already out of service when this rollout started it (the
    /// evidence): its result does not judge the new release, so its failure
    /// does not stop the rollout.
    pub was_down: Option<String>,
    /// Why the scheduler last passed it over because of its own state.
    pub wait_why: Option<String>,
    /// Nodes of a dead generation unsubscribed: (name, `last_check`).
    pub swept: Vec<(String, i64)>,

    // The outcome (terminal phases).
    pub failure: Option<(FailReason, String)>,
    pub skipped_why: String,
    /// Skipped because it already runs the release (`--stale-since`), not
    /// because its config went: it stays in service and counts as live.
    pub found_current: bool,
    pub done_ms: u64,
}

impl Vassal {
    pub fn new(name: String, mtime: i64) -> Self {
        Vassal {
            name,
            phase: Phase::Idle,
            known_mtime: mtime,
            drain: Drain::default(),
            baseline: Baseline::default(),
            touch: Touch::default(),
            reload: Reload::default(),
            evidence: Evidence::default(),
            was_down: None,
            wait_why: None,
            swept: Vec::new(),
            failure: None,
            skipped_why: String::new(),
            found_current: false,
            done_ms: 0,
        }
    }
}
