//! When the engine must be woken, and what it does then: the per-phase
//! deadlines, the announce-overdue mark, the fast fastrouter reads, the tick.

use super::*;
use crate::stats::StatsSource;

/// How long the fastrouter is read every `fast_fastrouter_ms` after a wait
/// on it begins; each further such span doubles the interval.
const FAST_READS_MS: u64 = 1_000;

impl Engine {
    /// When [`Engine::handle_timeout`] must be called next (monotonic ms).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.stage == Stage::Finished {
            return None;
        }
        let mut t = self.next_tick_ms;
        // Only what handle_timeout acts on: a time already passed that
        // nothing acts on would hold the driver's timer in the past (a spin).
        if self.stage != Stage::Rolling {
            return Some(t);
        }
        for v in &self.vassals {
            if let Some(d) = self.deadline(v) {
                t = t.min(d);
            }
            // Overdue is raised by observe(), and only once its nodes are
            // dead: once passed, the next snapshot decides, not the timer.
            if let Some(d) = self.overdue_at(v).filter(|d| *d > self.now.mono_ms) {
                t = t.min(d);
            }
        }
        // maybe_finish() acts on the wait only while nothing is in flight
        // (after a failed read the scheduler may not have cleared it).
        if let Some(w) = self.waiting_since {
            if !self.vassals.iter().any(|v| v.phase.in_flight()) {
                t = t.min(w + self.s.timeout_ms);
            }
        }
        if let Some(f) = self.fast_fastrouter_read_at() {
            t = t.min(f);
        }
        if let Some(d) = self.s.deadline_ms {
            if self.stopping.is_none() {
                t = t.min(self.start_ms + d);
            }
        }
        Some(t)
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        if self.stage == Stage::Finished {
            return;
        }
        if now.mono_ms >= self.next_tick_ms {
            self.tick();
        }
        if self
            .fast_fastrouter_read_at()
            .is_some_and(|f| now.mono_ms >= f)
        {
            self.read(StatsSource::Fastrouter);
        }
        if self.stage == Stage::Rolling {
            if let Some(d) = self.s.deadline_ms {
                if now.mono_ms >= self.start_ms + d {
                    self.stop(format!("the --deadline of {} s was reached", d / 1000));
                }
            }
            for i in 0..self.vassals.len() {
                if self
                    .deadline(&self.vassals[i])
                    .is_some_and(|d| now.mono_ms >= d)
                {
                    // What a failure for want of progress says (a drain's
                    // deadline touches instead, and says nothing).
                    let v = &self.vassals[i];
                    let detail = format!(
                        "no progress {} s after the touch, in phase {}",
                        now.mono_ms.saturating_sub(v.touch_ms) / 1000,
                        v.phase.as_str()
                    );
                    self.apply(i, Signal::Deadline, detail);
                }
            }
            for src in [StatsSource::Emperor, StatsSource::Fastrouter] {
                let r = &self.reads[idx(src)];
                if now.mono_ms.saturating_sub(r.last_ok_ms) >= self.s.stats_outage_ms {
                    let why = format!(
                        "the {src} stats socket has not answered for {} s ({})",
                        self.s.stats_outage_ms / 1000,
                        r.last_error.as_deref().unwrap_or("no answer")
                    );
                    self.stop(why);
                }
            }
        }
        self.progress();
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
    pub(super) fn fast_fastrouter_read_at(&self) -> Option<u64> {
        let r = &self.reads[idx(StatsSource::Fastrouter)];
        if self.stage != Stage::Rolling || r.in_flight {
            return None;
        }
        let since = self.newest_fastrouter_wait()?;
        let doublings = (self.now.mono_ms.saturating_sub(since) / FAST_READS_MS).min(20);
        let every = self.s.fast_fastrouter_ms.max(1) << doublings;
        (every < self.s.check_interval_ms).then(|| r.started_ms + every)
    }

    /// When the newest wait on the fastrouter began: a drain (its last
    /// unsubscribe), an announce (accepting, or `S` written), or a
    /// re-subscription not yet seen back.
    fn newest_fastrouter_wait(&self) -> Option<u64> {
        let vassals = self.vassals.iter().filter_map(|v| match v.phase {
            Phase::Draining => Some(v.drain_sent_ms),
            Phase::Accepting => Some(v.accepting_ms),
            Phase::Repairing => Some(v.repair_ms),
            _ => None,
        });
        let resubscribed = self.unconfirmed.iter().map(|(_, sent, _)| *sent);
        vassals.chain(resubscribed).max()
    }

    /// Per-phase deadline of vassal `v`, if it is waiting for something.
    pub(super) fn deadline(&self, v: &Vassal) -> Option<u64> {
        let s = &self.s;
        match v.phase {
            Phase::Draining => Some(v.drain_ms + s.drain_timeout_ms.unwrap_or(0)),
            // Not running at the touch (crash-looping between attempts): the
            // Emperor notices only at its next attempt, when the throttle
            // ends, so the whole --timeout applies.
            Phase::Touched if v.pid0 == 0 => Some(v.touch_ms + s.timeout_ms),
            Phase::Touched => Some(v.touch_ms + s.timeout_ms.min(s.notice_window_ms)),
            Phase::Respawned | Phase::Accepting => Some(v.touch_ms + s.timeout_ms),
            Phase::Probing => Some(v.touch_ms + s.timeout_ms),
            // Its second announce comes within one subscribe-freq (plus
            // slack) of the first, unless the master is stuck mid-reload.
            Phase::Confirming => {
                Some((v.touch_ms + s.timeout_ms).min(v.confirm_ms + s.announce_window_ms(&v.name)))
            }
            Phase::Repairing => {
                Some((v.touch_ms + s.timeout_ms).min(v.repair_ms + s.announce_window_ms(&v.name)))
            }
            _ => None,
        }
    }

    /// When an accepting vassal with no announce counts as blocked.
    pub(super) fn overdue_at(&self, v: &Vassal) -> Option<u64> {
        (v.phase == Phase::Accepting && self.s.repair && !v.repaired)
            .then(|| v.accepting_ms + self.s.announce_window_ms(&v.name))
    }
}
