//! The names of the per-vassal machine, listed once: its phases, the facts
//! about a vassal it is fed (`Fact`, not to be confused with an OS signal), why a vassal fails, and the effects a
//! transition carries out.
//!
//! Each list is one macro call, which defines the enum, `ALL` in this order,
//! `as_str` (the name `fsm/transitions.tsv` uses) and `from_name`. `build.rs`
//! includes this very file to check the table's names and to generate
//! `step()` from it (see `phase.rs`), so it must stay self-contained: no
//! `crate::` or `super::` paths.

/// Defines a fieldless enum with its table names from one list.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        #[allow(dead_code)]
        impl $name {
            /// Every variant, in declaration order (the table's order).
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The name the table and the reports use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            pub fn from_name(text: &str) -> Option<$name> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

named_enum! {
    /// Where one vassal is in this rollout.
    pub enum Phase {
        /// Waiting for the scheduler to grant a slot without breaking K.
        Idle = "Idle",
        /// Its node was unsubscribed; waiting until the fastrouter has no session
        /// to it that the reload could lose (node gone, or death-marked with
        /// `ref` at most what its workers finish: docs/UWSGI.md §19).
        Draining = "Draining",
        /// Its config mtime was moved forward; waiting for the Emperor to send the
        /// reload (`last_mod` reaches the mtime set).
        Touched = "Touched",
        /// The Emperor sent the reload; waiting for worker 1 of the new
        /// generation to accept (`accepting == 1`, same pid).
        Respawned = "Respawned",
        /// The new generation accepts; waiting for its announce to reach the
        /// fastrouter (a fresh node, `death_mark == 0`).
        Accepting = "Accepting",
        /// It accepted but never announced, so `S` was written to its master
        /// FIFO (docs/UWSGI.md §9.6); waiting for the announce.
        Repairing = "Repairing",
        /// A reload this rollout did not send (followed, see `Task::Adopt`)
        /// announced once; waiting for the second announce, which a master
        /// stuck mid-reload never sends: such a reload can have reached the
        /// vassal while it was starting (docs/UWSGI.md §12).
        Confirming = "Confirming",
        /// Back in the fastrouter; waiting for the answer to a `--probe` request
        /// sent straight to its socket (without `--probe`, passed at once).
        Probing = "Probing",
        /// Reloaded and back in rotation. Terminal.
        Subscribed = "Subscribed",
        /// Its config disappeared before its turn, or (`--stale-since`) it
        /// already runs a generation started after the release; never
        /// touched. Terminal.
        Skipped = "Skipped",
        /// Failed with a reason. Terminal.
        Failed = "Failed",
    }
}

named_enum! {
    /// A fact about one vassal, derived by the engine from the stats, the
    /// directory watcher, the driver's answers, the clock and the scheduler.
    /// (Named `Fact`, not `Signal`: SIGINT/SIGTERM are signals, and reach the
    /// machine as the fact `Stop`.)
    pub enum Fact {
        /// The scheduler granted a slot; the vassal is not live or has no node
        /// to drain (or draining is off).
        Start = "Start",
        /// The scheduler granted a slot and the vassal's nodes are to be drained.
        StartDrain = "StartDrain",
        /// Every drained node is gone or death-marked, their `ref` summed no
        /// more than `Settings::drain_sessions_kept` (0 by default).
        Drained = "Drained",
        /// A drained node announced again (its periodic announce re-added it).
        NodeBack = "NodeBack",
        /// A key it drains fell below K without it, through something else (a
        /// crash, a restart, someone else's reload): the drain is voluntary, so
        /// its nodes are given back and the scheduler decides again.
        BudgetLost = "BudgetLost",
        /// The driver could not set the mtime.
        TouchFailed = "TouchFailed",
        /// The Emperor's `last_mod` reached the mtime set, same pid.
        ReloadSeen = "ReloadSeen",
        /// `accepting == 1` again, `last_accepting` at or after the touch.
        AcceptingSeen = "AcceptingSeen",
        /// A fresh announce of the new generation reached the fastrouter.
        AnnounceSeen = "AnnounceSeen",
        /// The first announce of a generation whose reload this rollout did not
        /// send: one more must follow before it counts as back.
        FirstAnnounceSeen = "FirstAnnounceSeen",
        /// Accepting for longer than the first announces take, and its node is
        /// gone or dead: the subscription is blocked (docs/UWSGI.md §9.6). Only
        /// raised when repair is on and possible.
        AnnounceOverdue = "AnnounceOverdue",
        /// Its log shows that its accepting hook's `writefifo` found no
        /// reader, so the `S` that unblocks its subscriptions was lost and it
        /// will never announce (docs/UWSGI.md §9.6, `uwsgi::hook_log`): the
        /// proof `AnnounceOverdue` waits a whole announce window for. Raised
        /// in `Accepting` only, when repair is on.
        HookLost = "HookLost",
        /// The driver wrote `S` to its master FIFO (the answer to the repair).
        FifoWritten = "FifoWritten",
        /// Its own log shows its master turned subscriptions on after the
        /// touch: the hook's `S` arrived. Raised in `Accepting` only, for a
        /// vassal of `Settings::announce_when_on` not yet announced.
        SubscriptionsOn = "SubscriptionsOn",
        /// The driver found no master FIFO, or could not write it.
        RepairFailed = "RepairFailed",
        /// The `--probe` request was answered with 2xx or 3xx.
        ProbeOk = "ProbeOk",
        /// The `--probe` request failed: an error status, no answer, or refused.
        ProbeFailed = "ProbeFailed",
        /// A new pid, `cursed`, or vanished from the Emperor: it died.
        Died = "Died",
        /// Listed in the Emperor's blacklist: crash-looping.
        Blacklisted = "Blacklisted",
        /// `respawns` rose again after the reload was seen: a second reload
        /// request reached it (docs/UWSGI.md §12).
        SecondReload = "SecondReload",
        /// Someone else moved the config's mtime past what the Emperor has seen
        /// (or, while draining, the Emperor sent a reload this rollout did not
        /// ask for).
        ForeignTouch = "ForeignTouch",
        /// The config file was deleted or renamed away.
        ConfigRemoved = "ConfigRemoved",
        /// With `--stale-since`: its running generation started at or after
        /// that instant and serves, so there is nothing to reload
        /// (`engine::generation`).
        FoundCurrent = "FoundCurrent",
        /// The phase's deadline passed (drain timeout, notice window, per-vassal
        /// timeout, repair wait).
        Deadline = "Deadline",
        /// The operator asked to stop (SIGINT/SIGTERM) or the policy stopped the
        /// rollout.
        Stop = "Stop",
        /// Its new generation announced, but under none of the keys its nodes
        /// had before the touch: the release moved it to another key, and the
        /// old key lost it (docs/UWSGI.md §9.8). Raised in `Accepting`,
        /// `Repairing` and `Confirming` instead of an announce.
        KeyMoved = "KeyMoved",
        /// Its own log shows its master blocked subscriptions after the
        /// repair's `S` was written: its hook's `S` had arrived after all, and
        /// the tool's toggled it off (docs/UWSGI.md §9.6.2). Raised in
        /// `Repairing` only.
        SubscriptionsBlocked = "SubscriptionsBlocked",
    }
}

named_enum! {
    /// Why a vassal failed. Each says what was expected; the engine adds what
    /// was seen instead. The names are the `reason` of the JSON `failed`
    /// event (a documented interface).
    pub enum FailReason {
        /// The Emperor never registered the touch.
        NotNoticed = "not_noticed",
        /// The new generation never accepted.
        NeverAccepted = "never_accepted",
        /// It accepted but never announced to the fastrouter.
        NeverSubscribed = "never_subscribed",
        /// `S` was written to its FIFO and it still did not announce.
        RepairDidNotHelp = "repair_did_not_help",
        /// It needed a repair but no master FIFO could be found or written.
        NoFifo = "no_fifo",
        /// It died and the Emperor started it again as a new process.
        Died = "died",
        /// Its new config fails: the Emperor blacklisted it.
        CrashLoop = "crash_loop",
        /// Its config file was removed mid-reload.
        ConfigRemoved = "config_removed",
        /// Someone else touched its config mid-reload.
        TouchedByOther = "touched_by_other",
        /// A second reload request reached it mid-reload.
        SecondReload = "second_reload",
        /// Its mtime could not be set.
        TouchError = "touch_error",
        /// It came back, but its `--probe` request did not get a 2xx/3xx.
        ProbeFailed = "probe_failed",
        /// It announced once after a reload it was not sent by us, then went
        /// silent: stuck mid-reload.
        Wedged = "wedged",
        /// Its new generation announced under other keys than it had: the
        /// release moved it (the detail names both).
        KeyMoved = "key_moved",
        /// The tool's `S` blocked it and writing `S` again to undo that
        /// failed: it stays unsubscribed until its master gets an `S`.
        RepairUndoFailed = "repair_undo_failed",
    }
}

named_enum! {
    /// One thing a transition does besides changing the phase. A row of the
    /// table names a list of them, carried out in order by
    /// `Engine::carry_out` (`effects.rs`); failing is not one of them but
    /// `Effect::Fail`, which carries its reason.
    pub enum Task {
        /// Start the drain: record its routable nodes, pid and `respawns`,
        /// report `drain_started`, send an unsubscribe for each node, read
        /// the fastrouter at once.
        Unsubscribe = "Unsubscribe",
        /// A drained node announced again: remember that announce (so it is
        /// answered once) and send the unsubscribes again.
        UnsubscribeAgain = "UnsubscribeAgain",
        /// Report `drained` (the drain ended in time).
        ReportDrained = "ReportDrained",
        /// Report `drained` with `timed_out`, and warn that sessions were
        /// still in flight.
        ReportDrainTimedOut = "ReportDrainTimedOut",
        /// Record the touch's baseline and set its config mtime to
        /// `max(now, last_mod + 1)`.
        Touch = "Touch",
        /// Someone else's reload is followed as if it were ours; never
        /// touched.
        Adopt = "Adopt",
        /// `Adopt` while draining: if the Emperor's record already shows the
        /// reload sent, count from before it.
        AdoptWhileDraining = "AdoptWhileDraining",
        /// Warn that a key it drains fell below K (the detail says which),
        /// so the drain is given up.
        WarnBudgetLost = "WarnBudgetLost",
        /// Undo the drain: send a subscribe for each drained node, read the
        /// fastrouter, and report `resubscribed` (the JSON name): the drain
        /// ended before its touch, and the tool must not leave it out of
        /// rotation. (Not to be confused with the vassal's own announce, nor
        /// with the FIFO repair, `WriteFifo`, which makes a vassal announce.)
        UndoDrain = "UndoDrain",
        /// The reload was seen: record how many reload requests it has
        /// (and its pid if it was not running at the touch); report
        /// `reload_seen`.
        RecordReload = "RecordReload",
        /// The new generation accepts: record since when; report
        /// `accepting`.
        RecordAccepting = "RecordAccepting",
        /// Early announce: send a subscribe for each node it had before its
        /// touch, at once, where `Settings::early_announce` names it (its
        /// config subscribes at that moment anyway) and the reload is ours;
        /// otherwise nothing, and its own announce is waited for.
        Announce = "Announce",
        /// Record the `last_check` of the first announce of a followed
        /// reload and when `Confirming` began: the next announce must be
        /// later.
        RecordFirstAnnounce = "RecordFirstAnnounce",
        /// Write `S` to its master FIFO, once.
        WriteFifo = "WriteFifo",
        /// Record the `S` written (until then, with `HookLost`, a fresh node
        /// is not the vassal's announce). After a repair its log proved
        /// needed (`HookLost`): the `S` now
        /// written unblocked it, so its subscriptions are on and the tool
        /// sends the announce its next `subscribe-freq` tick would (early
        /// announce, unless `--no-early-announce`, `--probe` or no
        /// subscription server). Otherwise nothing: its own announce is
        /// waited for.
        AnnounceRepaired = "AnnounceRepaired",
        /// Early announce of a `start-unsubscribed` + hook vassal, now that
        /// its own log proves subscriptions on (`Fact::SubscriptionsOn`).
        AnnounceUnblocked = "AnnounceUnblocked",
        /// Its log shows the repair's `S` blocked it: write `S` once more to
        /// undo it, and warn. Never a second repair after it.
        UndoRepair = "UndoRepair",
        /// Send the `--probe` request to its socket.
        Probe = "Probe",
        /// Report it reloaded.
        Succeed = "Succeed",
        /// Record and report why it was skipped (its config was removed
        /// before its turn).
        Skip = "Skip",
        /// Record and report it already current (`--stale-since`): never
        /// touched, and it still counts as live.
        SkipCurrent = "SkipCurrent",
    }
}

/// What a transition does: a [`Task`], or failing with a reason (written
/// `Fail(reason)` in the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    Do(Task),
    Fail(FailReason),
}

#[allow(dead_code)]
impl Effect {
    pub fn as_string(self) -> String {
        match self {
            Effect::Do(s) => s.as_str().to_string(),
            Effect::Fail(r) => format!("Fail({})", r.as_str()),
        }
    }

    pub fn from_name(text: &str) -> Option<Effect> {
        match text.strip_prefix("Fail(").and_then(|t| t.strip_suffix(')')) {
            Some(reason) => FailReason::from_name(reason).map(Effect::Fail),
            None => Task::from_name(text).map(Effect::Do),
        }
    }
}
