//! What the engine remembers about one vassal besides its phase.

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vassal {
    pub name: String,
    pub phase: Phase,
    /// The config mtime as last seen or set by us.
    pub known_mtime: i64,
    /// Reloaded by someone else's touch, followed but never touched.
    pub foreign: bool,
    /// `S` was written to its FIFO.
    pub repaired: bool,

    // Set when the drain starts.
    pub drain_ms: u64,
    pub drain_sent_ms: u64,
    pub drained: Vec<DrainedNode>,
    /// The pid at the start of the drain or touch (0: not running).
    pub pid0: i64,

    // Set at the touch (ours or adopted).
    pub touch_ms: u64,
    pub touch_wall_s: i64,
    pub mtime_set: i64,
    /// Its nodes before the touch (the drained ones, else those fresh at
    /// the touch): what an early announce sends.
    pub announce_nodes: Vec<DrainedNode>,
    pub respawns0: i64,
    /// Its blacklist attempt count at the touch, if it was blacklisted.
    pub blacklist_attempt0: Option<i64>,

    // Set when the reload is seen.
    pub reload_respawns: i64,

    // Set when the new generation accepts.
    pub accepted_s: i64,
    pub accepting_ms: u64,

    /// Since the touch, a fastrouter read showed none of its nodes alive: any
    /// node seen later was announced by the new generation.
    pub node_gone: bool,

    pub repair_ms: u64,

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
    /// The `last_check` of the first announce seen of a reload it was not
    /// asked for by us: a second one must follow (see `Phase::Confirming`).
    pub first_announce_s: Option<i64>,
    /// When `Confirming` began.
    pub confirm_ms: u64,

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
            foreign: false,
            repaired: false,
            drain_ms: 0,
            drain_sent_ms: 0,
            drained: Vec::new(),
            pid0: 0,
            touch_ms: 0,
            touch_wall_s: 0,
            mtime_set: 0,
            announce_nodes: Vec::new(),
            respawns0: 0,
            blacklist_attempt0: None,
            reload_respawns: 0,
            accepted_s: 0,
            accepting_ms: 0,
            node_gone: false,
            repair_ms: 0,
            evidence: Evidence::default(),
            was_down: None,
            wait_why: None,
            swept: Vec::new(),
            first_announce_s: None,
            confirm_ms: 0,
            failure: None,
            skipped_why: String::new(),
            found_current: false,
            done_ms: 0,
        }
    }
}
