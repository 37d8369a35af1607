//! The per-vassal state machine, as a pure function of (phase, signal).
//!
//! Phases are named for what the vassal waits for; signals are the facts the
//! engine derived from the stats, the directory watcher, the clock and the
//! scheduler. Everything a vassal can go through is in [`step`], and
//! `fsm/transitions.tsv` writes the same function out as a table; the test
//! `tests/fsm_table.rs` holds the two together in both directions.
//!
//! The data a phase needs (the pid seen at the touch, the mtime set, ...) lives
//! beside the phase in `engine::vassal`; keeping the phase itself fieldless is
//! what makes the machine finite and enumerable.

/// Where one vassal is in this rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Waiting for the scheduler to grant a slot without breaking K.
    Idle,
    /// Its node was unsubscribed; waiting until the fastrouter has no session
    /// in flight to it (node gone, or death-marked with `ref == 0`).
    Draining,
    /// Its config mtime was moved forward; waiting for the Emperor to send the
    /// reload (`last_mod` reaches the mtime set).
    Touched,
    /// The Emperor sent the reload; waiting for worker 1 of the new
    /// generation to accept (`accepting == 1`, same pid).
    Respawned,
    /// The new generation accepts; waiting for its announce to reach the
    /// fastrouter (a fresh node, `death_mark == 0`).
    Accepting,
    /// It accepted but never announced, so `S` was written to its master
    /// FIFO (docs/UWSGI.md §9.6); waiting for the announce.
    Repairing,
    /// A reload this rollout did not send (followed, see `Effect::Adopt`)
    /// announced once; waiting for the second announce, which a master
    /// stuck mid-reload never sends: such a reload can have reached the
    /// vassal while it was starting (docs/UWSGI.md §12).
    Confirming,
    /// Back in the fastrouter; waiting for the answer to a `--probe` request
    /// sent straight to its socket (without `--probe`, passed at once).
    Probing,
    /// Reloaded and back in rotation. Terminal.
    Subscribed,
    /// Its config disappeared before its turn, or (`--stale-since`) it
    /// already runs a generation started after the release; never touched.
    /// Terminal.
    Skipped,
    /// Failed with a reason. Terminal.
    Failed,
}

impl Phase {
    pub const ALL: [Phase; 11] = [
        Phase::Idle,
        Phase::Draining,
        Phase::Touched,
        Phase::Respawned,
        Phase::Accepting,
        Phase::Repairing,
        Phase::Confirming,
        Phase::Probing,
        Phase::Subscribed,
        Phase::Skipped,
        Phase::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "Idle",
            Phase::Draining => "Draining",
            Phase::Touched => "Touched",
            Phase::Respawned => "Respawned",
            Phase::Accepting => "Accepting",
            Phase::Repairing => "Repairing",
            Phase::Confirming => "Confirming",
            Phase::Probing => "Probing",
            Phase::Subscribed => "Subscribed",
            Phase::Skipped => "Skipped",
            Phase::Failed => "Failed",
        }
    }

    /// Out of rotation because of this rollout: counts against K.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            Phase::Draining
                | Phase::Touched
                | Phase::Respawned
                | Phase::Accepting
                | Phase::Repairing
                | Phase::Confirming
                | Phase::Probing
        )
    }

    pub fn terminal(self) -> bool {
        matches!(self, Phase::Subscribed | Phase::Skipped | Phase::Failed)
    }
}

/// A fact about one vassal, derived by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// The scheduler granted a slot; the vassal is not live or has no node
    /// to drain (or draining is off).
    Start,
    /// The scheduler granted a slot and the vassal's nodes are to be drained.
    StartDrain,
    /// Every drained node is gone, or death-marked with `ref == 0`.
    Drained,
    /// A drained node announced again (its periodic announce re-added it).
    NodeBack,
    /// A key it drains fell below K without it, through something else (a
    /// crash, a restart, someone else's reload): the drain is voluntary, so
    /// its nodes are given back and the scheduler decides again.
    BudgetLost,
    /// The driver could not set the mtime.
    TouchFailed,
    /// The Emperor's `last_mod` reached the mtime set, same pid.
    ReloadSeen,
    /// `accepting == 1` again, `last_accepting` at or after the touch.
    AcceptingSeen,
    /// A fresh announce of the new generation reached the fastrouter.
    AnnounceSeen,
    /// The first announce of a generation whose reload this rollout did not
    /// send: one more must follow before it counts as back.
    FirstAnnounceSeen,
    /// Accepting for longer than the first announces take, and its node is
    /// gone or dead: the subscription is blocked (docs/UWSGI.md §9.6). Only raised
    /// when repair is on and possible.
    AnnounceOverdue,
    /// The driver found no master FIFO, or could not write it.
    RepairFailed,
    /// The `--probe` request was answered with 2xx or 3xx.
    ProbeOk,
    /// The `--probe` request failed: an error status, no answer, or refused.
    ProbeFailed,
    /// A new pid, `cursed`, or vanished from the Emperor: it died.
    Died,
    /// Listed in the Emperor's blacklist: crash-looping.
    Blacklisted,
    /// `respawns` rose again after the reload was seen: a second reload
    /// request reached it (docs/UWSGI.md §12).
    SecondReload,
    /// Someone else moved the config's mtime past what the Emperor has seen
    /// (or, while draining, the Emperor sent a reload this rollout did not
    /// ask for).
    ForeignTouch,
    /// The config file was deleted or renamed away.
    ConfigRemoved,
    /// With `--stale-since`: its running generation started at or after
    /// that instant and serves, so there is nothing to reload
    /// (`engine::generation`).
    FoundCurrent,
    /// The phase's deadline passed (drain timeout, notice window, per-vassal
    /// timeout, repair wait).
    Deadline,
    /// The operator asked to stop (SIGINT/SIGTERM) or the policy stopped the
    /// rollout.
    Stop,
}

impl Signal {
    pub const ALL: [Signal; 22] = [
        Signal::Start,
        Signal::StartDrain,
        Signal::Drained,
        Signal::NodeBack,
        Signal::BudgetLost,
        Signal::TouchFailed,
        Signal::ReloadSeen,
        Signal::AcceptingSeen,
        Signal::AnnounceSeen,
        Signal::FirstAnnounceSeen,
        Signal::AnnounceOverdue,
        Signal::RepairFailed,
        Signal::ProbeOk,
        Signal::ProbeFailed,
        Signal::Died,
        Signal::Blacklisted,
        Signal::SecondReload,
        Signal::ForeignTouch,
        Signal::ConfigRemoved,
        Signal::FoundCurrent,
        Signal::Deadline,
        Signal::Stop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Start => "Start",
            Signal::StartDrain => "StartDrain",
            Signal::Drained => "Drained",
            Signal::NodeBack => "NodeBack",
            Signal::BudgetLost => "BudgetLost",
            Signal::TouchFailed => "TouchFailed",
            Signal::ReloadSeen => "ReloadSeen",
            Signal::AcceptingSeen => "AcceptingSeen",
            Signal::AnnounceSeen => "AnnounceSeen",
            Signal::FirstAnnounceSeen => "FirstAnnounceSeen",
            Signal::AnnounceOverdue => "AnnounceOverdue",
            Signal::RepairFailed => "RepairFailed",
            Signal::ProbeOk => "ProbeOk",
            Signal::ProbeFailed => "ProbeFailed",
            Signal::Died => "Died",
            Signal::Blacklisted => "Blacklisted",
            Signal::SecondReload => "SecondReload",
            Signal::ForeignTouch => "ForeignTouch",
            Signal::ConfigRemoved => "ConfigRemoved",
            Signal::FoundCurrent => "FoundCurrent",
            Signal::Deadline => "Deadline",
            Signal::Stop => "Stop",
        }
    }
}

/// Why a vassal failed. Each says what was expected; the engine adds what
/// was seen instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailReason {
    /// The Emperor never registered the touch.
    NotNoticed,
    /// The new generation never accepted.
    NeverAccepted,
    /// It accepted but never announced to the fastrouter.
    NeverSubscribed,
    /// `S` was written to its FIFO and it still did not announce.
    RepairDidNotHelp,
    /// It needed a repair but no master FIFO could be found or written.
    NoFifo,
    /// It died and the Emperor started it again as a new process.
    Died,
    /// Its new config fails: the Emperor blacklisted it.
    CrashLoop,
    /// Its config file was removed mid-reload.
    ConfigRemoved,
    /// Someone else touched its config mid-reload.
    TouchedByOther,
    /// A second reload request reached it mid-reload.
    SecondReload,
    /// Its mtime could not be set.
    TouchError,
    /// It came back, but its `--probe` request did not get a 2xx/3xx.
    ProbeFailed,
    /// It announced once after a reload it was not sent by us, then went
    /// silent: stuck mid-reload.
    Wedged,
}

impl FailReason {
    pub const ALL: [FailReason; 13] = [
        FailReason::NotNoticed,
        FailReason::NeverAccepted,
        FailReason::NeverSubscribed,
        FailReason::RepairDidNotHelp,
        FailReason::NoFifo,
        FailReason::Died,
        FailReason::CrashLoop,
        FailReason::ConfigRemoved,
        FailReason::TouchedByOther,
        FailReason::SecondReload,
        FailReason::TouchError,
        FailReason::ProbeFailed,
        FailReason::Wedged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::NotNoticed => "not_noticed",
            FailReason::NeverAccepted => "never_accepted",
            FailReason::NeverSubscribed => "never_subscribed",
            FailReason::RepairDidNotHelp => "repair_did_not_help",
            FailReason::NoFifo => "no_fifo",
            FailReason::Died => "died",
            FailReason::CrashLoop => "crash_loop",
            FailReason::ConfigRemoved => "config_removed",
            FailReason::TouchedByOther => "touched_by_other",
            FailReason::SecondReload => "second_reload",
            FailReason::TouchError => "touch_error",
            FailReason::ProbeFailed => "probe_failed",
            FailReason::Wedged => "wedged",
        }
    }

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
        }
    }
}

/// What the engine must do as part of a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// Nothing besides the phase change.
    None,
    /// Send an unsubscribe for each of its nodes.
    Unsubscribe,
    /// Set its config mtime to `max(now, last_mod + 1)`.
    Touch,
    /// Send a subscribe for each drained node: the rollout stopped before
    /// its touch, and the tool must not leave it out of rotation.
    Resubscribe,
    /// Early announce: send a subscribe for each node it had before its
    /// touch, at once, where `Settings::early_announce` names it (its config
    /// subscribes at that moment anyway) and the reload is ours; otherwise
    /// nothing, and its own announce is waited for.
    Announce,
    /// Write `S` to its master FIFO, once.
    WriteFifo,
    /// Send the `--probe` request to its socket.
    Probe,
    /// Someone else's reload is followed as if it were ours; never touched.
    Adopt,
    /// Report it reloaded.
    Succeed,
    /// Report it failed.
    Fail(FailReason),
}

impl Effect {
    pub fn as_string(self) -> String {
        match self {
            Effect::None => "-".into(),
            Effect::Unsubscribe => "Unsubscribe".into(),
            Effect::Touch => "Touch".into(),
            Effect::Resubscribe => "Resubscribe".into(),
            Effect::Announce => "Announce".into(),
            Effect::WriteFifo => "WriteFifo".into(),
            Effect::Probe => "Probe".into(),
            Effect::Adopt => "Adopt".into(),
            Effect::Succeed => "Succeed".into(),
            Effect::Fail(r) => format!("Fail({})", r.as_str()),
        }
    }
}

/// The machine. `None`: the signal means nothing in that phase (the engine
/// never raises it there, or it is deliberately ignored) and nothing changes.
pub fn step(phase: Phase, signal: Signal) -> Option<(Phase, Effect)> {
    use Effect as E;
    use FailReason as R;
    use Phase as P;
    use Signal as S;

    // Failures shared by every phase that has touched, or is about to touch,
    // the vassal. Listed once so the phases cannot drift apart.
    let common = |when_removed: (Phase, Effect)| match signal {
        S::Died => Some((P::Failed, E::Fail(R::Died))),
        S::Blacklisted => Some((P::Failed, E::Fail(R::CrashLoop))),
        S::ConfigRemoved => Some(when_removed),
        _ => None,
    };
    let mid_reload = |deadline: FailReason| match signal {
        S::ForeignTouch => Some((P::Failed, E::Fail(R::TouchedByOther))),
        S::SecondReload => Some((P::Failed, E::Fail(R::SecondReload))),
        S::Deadline => Some((P::Failed, E::Fail(deadline))),
        _ => common((P::Failed, E::Fail(R::ConfigRemoved))),
    };

    match (phase, signal) {
        (P::Idle, S::Start) => Some((P::Touched, E::Touch)),
        (P::Idle, S::StartDrain) => Some((P::Draining, E::Unsubscribe)),
        // Someone else's touch will reload it: never touch it ourselves, and
        // it is out of rotation from now on.
        (P::Idle, S::ForeignTouch) => Some((P::Touched, E::Adopt)),
        (P::Idle, S::ConfigRemoved) => Some((P::Skipped, E::None)),
        // --stale-since: already running the release; never touched.
        (P::Idle, S::FoundCurrent) => Some((P::Skipped, E::None)),
        (P::Idle, _) => None,

        (P::Draining, S::Drained) => Some((P::Touched, E::Touch)),
        // Drain timeout: touch anyway (the engine warns, naming it).
        (P::Draining, S::Deadline) => Some((P::Touched, E::Touch)),
        (P::Draining, S::NodeBack) => Some((P::Draining, E::Unsubscribe)),
        (P::Draining, S::Stop) => Some((P::Idle, E::Resubscribe)),
        // Not touched yet: give its nodes back rather than keep a key below K.
        (P::Draining, S::BudgetLost) => Some((P::Idle, E::Resubscribe)),
        (P::Draining, S::ForeignTouch) => Some((P::Touched, E::Adopt)),
        // Being stopped by the Emperor: re-subscribing would route to a dead
        // socket, so it is left out.
        (P::Draining, _) => common((P::Skipped, E::None)),

        (P::Touched, S::ReloadSeen) => Some((P::Respawned, E::None)),
        (P::Touched, S::TouchFailed) => Some((P::Failed, E::Fail(R::TouchError))),
        // If the Emperor has not acted on ours yet, theirs merges into the
        // one reload. If it already had (unseen), `respawns` shows two
        // requests once the reload is seen, and SecondReload follows.
        (P::Touched, S::ForeignTouch) => None,
        (P::Touched, S::Deadline) => Some((P::Failed, E::Fail(R::NotNoticed))),
        (P::Touched, _) => common((P::Failed, E::Fail(R::ConfigRemoved))),

        (P::Respawned, S::AcceptingSeen) => Some((P::Accepting, E::Announce)),
        (P::Respawned, _) => mid_reload(R::NeverAccepted),

        (P::Accepting, S::AnnounceSeen) => Some((P::Probing, E::Probe)),
        (P::Accepting, S::FirstAnnounceSeen) => Some((P::Confirming, E::None)),
        (P::Accepting, S::AnnounceOverdue) => Some((P::Repairing, E::WriteFifo)),
        (P::Accepting, _) => mid_reload(R::NeverSubscribed),

        (P::Repairing, S::AnnounceSeen) => Some((P::Probing, E::Probe)),
        (P::Repairing, S::FirstAnnounceSeen) => Some((P::Confirming, E::None)),
        (P::Repairing, S::RepairFailed) => Some((P::Failed, E::Fail(R::NoFifo))),
        (P::Repairing, _) => mid_reload(R::RepairDidNotHelp),

        (P::Confirming, S::AnnounceSeen) => Some((P::Probing, E::Probe)),
        (P::Confirming, _) => mid_reload(R::Wedged),

        (P::Probing, S::ProbeOk) => Some((P::Subscribed, E::Succeed)),
        (P::Probing, S::ProbeFailed) => Some((P::Failed, E::Fail(R::ProbeFailed))),
        (P::Probing, _) => mid_reload(R::ProbeFailed),

        (P::Subscribed | P::Skipped | P::Failed, _) => None,
    }
}
