//! The values that cross the engine's boundary: inputs in; out, on two
//! queues, actions for the driver to carry out and reports for the operator.

use std::collections::BTreeMap;

use super::phase::FailReason;
use crate::stats::{EmperorSnapshot, FastrouterSnapshot, StatsSource};

/// The clock, as the driver read it. The engine never reads a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Now {
    /// Monotonic milliseconds: every deadline of the tool's own.
    pub mono_ms: u64,
    /// Wall-clock seconds since the epoch: uWSGI's timestamps and mtimes.
    pub wall_s: i64,
}

/// A vassal config file as listed at start or after a rescan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file name in the Emperor directory, as the Emperor's `id`.
    pub name: String,
    /// Its mtime as the Emperor sees it (lstat with --emperor-nofollow).
    pub mtime: i64,
}

/// What the directory watcher saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigEvent {
    /// Attributes or contents changed; `mtime` as the Emperor would see it,
    /// `None` if the file could not be stat'ed any more.
    Changed { name: String, mtime: Option<i64> },
    /// A new file appeared (created or renamed in).
    Created { name: String, mtime: Option<i64> },
    /// The file was deleted or renamed away.
    Removed { name: String },
    /// The kernel queue overflowed: events were lost; the engine asks for a
    /// rescan.
    Overflow,
    /// The answer to [`Action::RescanConfigs`]: every config file now.
    Rescanned(Vec<ConfigFile>),
}

/// Everything that can happen to the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Emperor(EmperorSnapshot),
    Fastrouter(FastrouterSnapshot),
    /// A stats read failed: connect, timeout, size, or invalid JSON.
    ReadFailed {
        source: StatsSource,
        error: String,
    },
    Config(ConfigEvent),
    /// The result of [`Action::Touch`].
    Touched {
        vassal: String,
        error: Option<String>,
    },
    /// The result of [`Action::Repair`]: the FIFO written, or why not.
    Repaired {
        vassal: String,
        result: Result<String, String>,
    },
    /// Evidence from [`Action::WatchHookLog`]: the vassal's log gained the
    /// line (given) that its accepting hook lost its `S`.
    HookLost {
        vassal: String,
        line: String,
    },
    /// Evidence from [`Action::WatchHookLog`], in a log no other vassal
    /// writes: its master turned subscriptions on after the touch (the
    /// accepting hook's `S` arrived), so it announces by itself from now on.
    SubscriptionsOn {
        vassal: String,
    },
    /// Evidence from [`Action::WatchHookLog`], in a log no other vassal
    /// writes: its master blocked subscriptions (an `S` toggled them off).
    SubscriptionsBlocked {
        vassal: String,
    },
    /// The result of [`Action::Probe`]: the status seen, or why it failed.
    Probed {
        vassal: String,
        result: Result<String, String>,
    },
    /// SIGINT/SIGTERM: touch nothing new, let in-flight vassals finish.
    Stop,
}

/// What the engine asks the driver to do (IO, and the end). What it tells
/// the operator is a [`Report`], on its own queue.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Connect to a stats socket and read one document. The engine never has
    /// two reads of one socket in flight.
    ReadStats(StatsSource),
    /// Set the config's mtime (atime too) to `mtime` whole seconds, then
    /// answer with [`Input::Touched`].
    Touch { vassal: String, mtime: i64 },
    /// Send the fastrouter subscription server an unsubscribe for `node`.
    Unsubscribe {
        vassal: String,
        key: String,
        node: String,
        modifier1: i64,
    },
    /// Send a subscribe for `node`: undoes a drain the rollout will not finish.
    Subscribe {
        vassal: String,
        key: String,
        node: String,
        modifier1: i64,
    },
    /// Find the master FIFO of the vassal with master pid `pid` and write `S`
    /// once; answer with [`Input::Repaired`].
    Repair { vassal: String, pid: i64 },
    /// Watch the log of the vassal with master pid `pid` from its end now
    /// (before its touch) for the line of a lost accepting hook
    /// (`uwsgi::hook_log`); answer with [`Input::HookLost`] if it comes.
    /// A driver that cannot find the log answers nothing: the engine then
    /// waits for the announce window as without evidence.
    WatchHookLog { vassal: String, pid: i64 },
    /// Stop watching its log: it is no longer in flight.
    UnwatchHookLog { vassal: String },
    /// Send `GET path` (uwsgi protocol, `key` as host) straight to `node`
    /// and answer with [`Input::Probed`].
    Probe {
        vassal: String,
        key: String,
        node: String,
        path: String,
    },
    /// List the config files again and answer with [`ConfigEvent::Rescanned`].
    RescanConfigs,
    /// The rollout is over; nothing else will come. Every report came
    /// before it: a driver that drains [`Engine::poll_event`] before acting
    /// on the actions it polled prints its summary after the last report.
    ///
    /// [`Engine::poll_event`]: super::Engine::poll_event
    Finish(Outcome),
}

/// An event for the operator, with its time since the rollout started:
/// human lines, `--json` and syslog (`report`), never an IO request.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub at_ms: u64,
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Something the operator should fix, with the fix. Nothing was stopped.
    Warning {
        vassal: Option<String>,
        message: String,
    },
    /// Preflight passed: what will be reloaded and the K per key.
    Plan {
        vassals: Vec<String>,
        min_live: BTreeMap<String, usize>,
        live: BTreeMap<String, usize>,
    },
    DrainStarted {
        vassal: String,
        nodes: Vec<String>,
    },
    Drained {
        vassal: String,
        waited_ms: u64,
        timed_out: bool,
        /// Sessions its drained nodes still held at the touch: requests in
        /// its workers that the graceful reload finishes (docs/UWSGI.md
        /// §19); more only when the drain timed out.
        sessions_left: usize,
    },
    Resubscribed {
        vassal: String,
    },
    Touched {
        vassal: String,
        mtime: i64,
    },
    /// Someone else touched an untouched vassal; followed, never touched.
    ForeignReload {
        vassal: String,
    },
    ReloadSeen {
        vassal: String,
    },
    Accepting {
        vassal: String,
    },
    /// Early announce: the tool sent the subscribe for these nodes of a
    /// vassal that accepts, before its own announce.
    Announced {
        vassal: String,
        nodes: Vec<String>,
    },
    ProbeOk {
        vassal: String,
        detail: String,
    },
    /// `S` is being written to its master FIFO: after a whole announce
    /// window of silence, or at once where its log proved the accepting
    /// hook lost (`evidence` is that line).
    RepairStarted {
        vassal: String,
        evidence: Option<String>,
    },
    RepairWritten {
        vassal: String,
        fifo: String,
    },
    Subscribed {
        vassal: String,
        took_ms: u64,
        repaired: bool,
        foreign: bool,
    },
    Failed {
        vassal: String,
        reason: FailReason,
        detail: String,
    },
    Skipped {
        vassal: String,
        why: String,
    },
    LiveChanged {
        key: String,
        live: usize,
        min: usize,
    },
    /// The `--canary` vassals stayed live for `--min-ready`: the rest follow.
    CanaryPassed {
        vassals: Vec<String>,
    },
    /// Nothing new will be touched: why.
    Stopping {
        why: String,
    },
    /// Nothing can progress without breaking K; waiting for it to recover.
    Waiting {
        why: String,
    },
    /// A vassal not serving when the rollout looked at it, with its class
    /// (`Availability::as_str`) and the evidence.
    Unavailable {
        vassal: String,
        class: &'static str,
        why: String,
    },
    /// The fastrouter restarted (new pid) or lost most of its nodes at once:
    /// touching pauses until the nodes are back.
    FastrouterRestarted {
        old_pid: i64,
        new_pid: i64,
        nodes_before: usize,
        nodes_now: usize,
    },
    /// The node a dead vassal left in the fastrouter was unsubscribed.
    StaleNodeRemoved {
        vassal: String,
        key: String,
        node: String,
        why: String,
    },
}

/// How the rollout ended, as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every selected vassal was reloaded.
    Completed,
    /// Some vassal failed, or could not be reloaded without breaking K.
    Failed,
    /// Stopped by the operator; in-flight vassals were let finish.
    Interrupted,
    /// Nothing was touched: a precondition does not hold.
    Precondition(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub reloaded: Vec<String>,
    pub failed: Vec<(String, FailReason, String)>,
    /// Not reloaded by this rollout, and why.
    pub untouched: Vec<(String, String)>,
    /// Lowest live count seen per key while anything was in flight.
    pub lowest_live: BTreeMap<String, usize>,
    pub min_live: BTreeMap<String, usize>,
    pub elapsed_ms: u64,
    /// A short sentence saying why the rollout ended where it did.
    pub summary: String,
}
