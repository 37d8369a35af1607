//! When the engine must be woken, and what it does then: one table of every
//! deadline (the tick, the fast fastrouter reads, `--deadline`, the wait for
//! a slot, the per-phase deadlines, the announce-overdue mark, the stats
//! outage) that both `poll_timeout` and `handle_timeout` read.

use super::*;
use crate::stats::StatsSource;

/// How long the fastrouter is read every `fast_fastrouter_ms` after a wait
/// on it begins; each further such span doubles the interval.
const FAST_READS_MS: u64 = 1_000;

/// Every deadline of the engine at one moment, global and per vassal,
/// computed in one place ([`Engine::timer_table`]) from the engine's state
/// and the time. [`Engine::poll_timeout`] is its earliest wake-up and
/// [`Engine::handle_timeout`] acts on its expired entries, so the two
/// cannot disagree about what is due (as quinn-proto's `TimerTable`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct TimerTable {
    /// The periodic tick: both stats sockets are read (`None` once finished).
    pub tick: Option<u64>,
    /// The next fast fastrouter read, while a wait on it is on the critical
    /// path (see [`Engine::fast_fastrouter_read_at`]).
    pub fast_fastrouter_read: Option<u64>,
    /// `--deadline`: nothing new is touched from then on (while not
    /// stopping already).
    pub rollout_deadline: Option<u64>,
    /// Nothing could start for `--timeout` and nothing is in flight: the
    /// rollout stops (acted on by `maybe_finish()`, which reads the same
    /// [`Engine::give_up_at`]).
    pub give_up_waiting: Option<u64>,
    /// Per in-flight vassal: the phase its deadline belongs to and when it
    /// passes (a `Deadline` fact).
    pub phase_deadlines: Vec<(usize, Phase, u64)>,
    /// Per accepting vassal not announced yet, while still ahead: when it
    /// counts as blocked. A wake-up only: `observe()` raises
    /// `AnnounceOverdue` from the next snapshot (its nodes must be dead),
    /// reading the same [`Engine::overdue_at`].
    pub announce_overdue: Vec<(usize, u64)>,
    /// Per stats socket (Emperor, fastrouter): when it counts as silent for
    /// `stats_outage_ms` (the rollout stops). Checked at every wake-up and
    /// deliberately not a wake-up of its own: the tick comes at least every
    /// check interval.
    pub stats_outage: [Option<u64>; 2],
}

impl TimerTable {
    /// The earliest wake-up. Only entries `handle_timeout` (or the
    /// `progress()` it ends with) acts on: a time already passed that
    /// nothing acts on would hold the driver's timer in the past (a spin).
    pub fn next(&self) -> Option<u64> {
        let per_vassal = self
            .phase_deadlines
            .iter()
            .map(|(_, _, t)| *t)
            .chain(self.announce_overdue.iter().map(|(_, t)| *t));
        [
            self.tick,
            self.fast_fastrouter_read,
            self.rollout_deadline,
            self.give_up_waiting,
        ]
        .into_iter()
        .flatten()
        .chain(per_vassal)
        .min()
    }
}

impl Engine {
    /// Every deadline now (`now_ms`: the time of the call that asks).
    pub(super) fn timer_table(&self, now_ms: u64) -> TimerTable {
        let mut table = TimerTable::default();
        if self.stage == Stage::Finished {
            return table;
        }
        table.tick = Some(self.next_tick_ms);
        if self.stage != Stage::Rolling {
            return table;
        }
        table.fast_fastrouter_read = self.fast_fastrouter_read_at(now_ms);
        if let Some(d) = self.s.deadline_ms {
            if self.stopping.is_none() {
                table.rollout_deadline = Some(self.start_ms + d);
            }
        }
        // maybe_finish() acts on the wait only while nothing is in flight
        // (after a failed read the scheduler may not have cleared it).
        let mut in_flight = false;
        for (i, v) in self.vassals.iter().enumerate() {
            in_flight |= v.phase.in_flight();
            if let Some(d) = self
                .deadline(v)
                .filter(|d| self.judged_on_reads_since(v, *d))
            {
                table.phase_deadlines.push((i, v.phase, d));
            }
            // Overdue is raised by observe(), and only once its nodes are
            // dead: once passed, the next snapshot decides, not the timer.
            if let Some(d) = self.overdue_at(v).filter(|d| *d > now_ms) {
                table.announce_overdue.push((i, d));
            }
        }
        if !in_flight {
            table.give_up_waiting = self.give_up_at();
        }
        for src in [StatsSource::Emperor, StatsSource::Fastrouter] {
            let last_ok = self.reads[idx(src)].last_ok_ms;
            table.stats_outage[idx(src)] = Some(last_ok.saturating_add(self.s.stats_outage_ms));
        }
        table
    }

    /// When [`Engine::handle_timeout`] must be called next (monotonic ms).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timer_table(self.now.mono_ms).next()
    }

    /// Acts on every entry of the timer table that is due at `now`, then
    /// re-derives everything (`progress()`).
    pub fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        let due = |t: Option<u64>| t.is_some_and(|t| now.mono_ms >= t);
        let table = self.timer_table(now.mono_ms);
        if table.tick.is_none() {
            return;
        }
        if due(table.tick) {
            self.tick();
        }
        // The tick's own read of the fastrouter replaces a fast one.
        let fr = &self.reads[idx(StatsSource::Fastrouter)];
        if due(table.fast_fastrouter_read) && !fr.in_flight {
            self.read(StatsSource::Fastrouter);
        }
        if due(table.rollout_deadline) {
            let d = self.s.deadline_ms.unwrap_or(0);
            self.stop(format!("the --deadline of {} s was reached", d / 1000));
        }
        for (i, phase, at) in table.phase_deadlines {
            // An earlier entry may have moved it on (a stop puts a draining
            // vassal back to Idle): a deadline belongs to its phase.
            if now.mono_ms < at || self.vassals[i].phase != phase {
                continue;
            }
            // What a failure for want of progress says (a drain's
            // deadline touches instead, and says nothing).
            let v = &self.vassals[i];
            let detail = format!(
                "no progress {} s after the touch, in phase {}",
                now.mono_ms.saturating_sub(v.touch.at_ms) / 1000,
                v.phase.as_str()
            );
            self.apply(i, Fact::Deadline, detail);
        }
        for src in [StatsSource::Emperor, StatsSource::Fastrouter] {
            if due(table.stats_outage[idx(src)]) {
                let r = &self.reads[idx(src)];
                let why = format!(
                    "the {src} stats socket has not answered for {} s ({})",
                    self.s.stats_outage_ms / 1000,
                    r.last_error.as_deref().unwrap_or("no answer")
                );
                self.stop(why);
            }
        }
        self.progress();
    }

    /// When the rollout gives up waiting for a slot: `--timeout` after
    /// nothing could start (see `maybe_finish()`); while a router read over
    /// TCP is not measured yet, at least the longest announce window of the
    /// fleet (some node announces within it, which measures the clock).
    pub(super) fn give_up_at(&self) -> Option<u64> {
        let wait = if self.router_clock.measured() {
            self.s.timeout_ms
        } else {
            self.vassals
                .iter()
                .map(|v| self.announce_window_of(v))
                .fold(self.s.timeout_ms, u64::max)
        };
        self.waiting_since.map(|w| w + wait)
    }

    /// While a vassal waits for something only the fastrouter shows (its
    /// drain, its announce), the fastrouter is read more often than every
    /// check interval: those waits are on the rollout's critical path, and
    /// the fastrouter's stats cost it nothing like the Emperor's (which
    /// rescan the directory). Most such waits end within a second (a drain
    /// of short requests, the announce right after accepting), so the first
    /// [`FAST_READS_MS`] of the newest wait are read every
    /// `fast_fastrouter_ms`; after that the interval doubles each further
    /// [`FAST_READS_MS`] up to the check interval, where the tick's own read
    /// takes over. A long wait (slow requests draining, an announce that
    /// waits for subscribe-freq, a repair) then costs the tool little CPU.
    pub(super) fn fast_fastrouter_read_at(&self, now_ms: u64) -> Option<u64> {
        let r = &self.reads[idx(StatsSource::Fastrouter)];
        if self.stage != Stage::Rolling || r.in_flight {
            return None;
        }
        let since = self.newest_fastrouter_wait()?;
        let doublings = (now_ms.saturating_sub(since) / FAST_READS_MS).min(20);
        let every = self.s.fast_fastrouter_ms.max(1) << doublings;
        (every < self.s.check_interval_ms).then(|| r.started_ms + every)
    }

    /// When the newest wait on the fastrouter began: a drain (its last
    /// unsubscribe), an announce (accepting, or `S` written), or an undone
    /// drain not yet seen back.
    fn newest_fastrouter_wait(&self) -> Option<u64> {
        let vassals = self.vassals.iter().filter_map(|v| match v.phase {
            Phase::Draining => Some(v.drain.last_sent_ms),
            Phase::Accepting => Some(v.reload.accepting_ms),
            Phase::Repairing => Some(v.reload.repair_ms),
            _ => None,
        });
        let undone = self.undone_drains.iter().map(|(_, sent, _)| *sent);
        vassals.chain(undone).max()
    }

    /// Per-phase deadline of vassal `v`, if it is waiting for something.
    pub(super) fn deadline(&self, v: &Vassal) -> Option<u64> {
        let s = &self.s;
        match v.phase {
            Phase::Draining => Some(v.drain.started_ms + s.drain_timeout_ms.unwrap_or(0)),
            // Not running at the touch (crash-looping between attempts): the
            // Emperor notices only at its next attempt, when the throttle
            // ends, so the whole --timeout applies.
            Phase::Touched if v.baseline.pid == 0 => Some(v.touch.at_ms + s.timeout_ms),
            Phase::Touched => Some(v.touch.at_ms + s.timeout_ms.min(s.notice_window_ms)),
            Phase::Respawned | Phase::Accepting => Some(v.touch.at_ms + s.timeout_ms),
            Phase::Probing => Some(v.touch.at_ms + s.timeout_ms),
            // Its second announce comes within one subscribe-freq (plus
            // slack) of the first, unless the master is stuck mid-reload.
            Phase::Confirming => Some(
                (v.touch.at_ms + s.timeout_ms)
                    .min(v.reload.confirm_ms + self.announce_window_of(v)),
            ),
            Phase::Repairing => Some(
                (v.touch.at_ms + s.timeout_ms).min(v.reload.repair_ms + self.announce_window_of(v)),
            ),
            _ => None,
        }
    }

    /// May `S` be written to vassal `v`'s master FIFO? Only where `S` can
    /// only unblock: its config blocks subscriptions at start
    /// (`Settings::repairable`; to any other vassal `S`, a toggle, blocks
    /// it), once per reload, and never after its own log showed its
    /// subscriptions on (docs/UWSGI.md §9.6.2).
    pub(super) fn may_repair(&self, v: &Vassal) -> bool {
        self.s.repair
            && self.s.repairable.contains(&v.name)
            && !v.reload.repaired
            && !v.reload.subscriptions_on
    }

    /// A phase that waits for something the stats show fails at its
    /// deadline only on stats read after it: until both sockets answered a
    /// read requested at or after `deadline`, nothing says the vassal did
    /// not make it (a socket that stalls or fails is not evidence against
    /// a vassal; the outage timer ends a rollout whose sockets stay silent).
    /// The tick's reads make the deadline ripe; then it is due at once.
    fn judged_on_reads_since(&self, v: &Vassal, deadline: u64) -> bool {
        match v.phase {
            // The drain's deadline touches anyway; the probe's verdict is
            // the driver's, not the stats'.
            Phase::Draining | Phase::Probing => true,
            _ => self
                .reads
                .iter()
                .all(|r| r.snapshot_started_ms >= deadline && r.last_error.is_none()),
        }
    }

    /// When an accepting vassal with no announce counts as blocked: a whole
    /// announce window after it accepted, or after the fastrouter came back
    /// from an outage or a restart (its silence before says nothing).
    pub(super) fn overdue_at(&self, v: &Vassal) -> Option<u64> {
        (v.phase == Phase::Accepting && self.may_repair(v))
            .then(|| v.reload.accepting_ms.max(self.fr_back_ms) + self.announce_window_of(v))
    }
}
