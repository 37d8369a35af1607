//! What each input does to the engine's state before `progress()` derives
//! the facts: the snapshots kept (with the tool's own packets and the
//! router's clock taken out of them), the driver's answers, the vassals'
//! logs. One small method per kind of input; `Engine::handle` dispatches.

use super::*;
use crate::stats::{EmperorSnapshot, StatsSource};

/// A line a watched vassal log gained (docs/UWSGI.md §9.6.1, §9.6.2).
pub(super) enum LogLine {
    /// Its accepting hook's `S` was lost (the line).
    HookLost(String),
    /// Its own log: its master turned subscriptions on.
    On,
    /// Its own log: its master blocked subscriptions.
    Blocked,
}

impl Engine {
    pub(super) fn on_emperor(&mut self, s: EmperorSnapshot) {
        self.emp = Some(IndexedEmperor::for_vassals(
            s,
            self.vassals.iter().map(|v| v.name.as_str()),
        ));
        self.note_emperor_read();
        self.read_done(StatsSource::Emperor, None);
    }

    /// The routers' clocks are learnt from the raw snapshot, which is then
    /// put on our clock (`clocks`); what is kept shows the vassals' own
    /// word, not the tool's packets.
    pub(super) fn on_fastrouter(&mut self, mut s: FastrouterSnapshot) {
        let was_measured = self.router_clock.measured();
        self.router_clock.observe(&s, self.now);
        // The vassals' own word is kept raw (on each router's own clock),
        // then everything is put on ours with the offset of now.
        self.own_checks = nodes::keep_the_vassals_word(&self.own_checks, &mut s);
        self.router_clock.normalize(&mut s);
        self.note_fastrouter_read(&s);
        self.matcher = nodes::Matcher::for_configs(
            &self.rule,
            &s,
            self.vassals.iter().map(|v| v.name.as_str()),
        );
        self.fr = Some(s);
        self.learn_periods();
        if !was_measured && self.router_clock.measured() {
            self.on_clock_measured();
        }
        self.read_done(StatsSource::Fastrouter, None);
    }

    pub(super) fn on_touched(&mut self, vassal: &str, error: Option<String>) {
        if let (Some(i), Some(e)) = (self.find(vassal), error) {
            self.apply(i, Fact::TouchFailed, e);
        }
    }

    pub(super) fn on_repaired(&mut self, vassal: String, result: Result<String, String>) {
        let Some(i) = self.find(&vassal) else { return };
        match result {
            Ok(fifo) => {
                self.report(Event::RepairWritten { vassal, fifo });
                self.apply(i, Fact::FifoWritten, String::new());
            }
            Err(e) => {
                self.apply(i, Fact::RepairFailed, e);
            }
        }
    }

    pub(super) fn on_probed(&mut self, vassal: String, result: Result<String, String>) {
        let Some(i) = self.find(&vassal) else { return };
        match result {
            Ok(detail) => {
                self.report(Event::ProbeOk { vassal, detail });
                self.apply(i, Fact::ProbeOk, String::new());
            }
            Err(e) => {
                self.apply(i, Fact::ProbeFailed, e);
            }
        }
    }

    /// Kept as evidence of an in-flight vassal; its observer raises the
    /// fact in the phase that uses it (a line can come before the Emperor
    /// shows the vassal accepting).
    pub(super) fn on_log(&mut self, vassal: &str, line: LogLine) {
        let Some(i) = self.find(vassal) else { return };
        let v = &mut self.vassals[i];
        if !v.phase.in_flight() {
            return;
        }
        match line {
            LogLine::HookLost(l) => {
                v.reload.hook_lost.get_or_insert(l);
            }
            LogLine::On => v.reload.subscriptions_on = true,
            // Only after the repair's `S` was written is it the tool's
            // doing (a block before is its own config's).
            LogLine::Blocked => v.reload.blocked_after_repair |= v.reload.fifo_written,
        }
    }
}
