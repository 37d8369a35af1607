//! The bookkeeping tasks of the per-vassal machine (`fsm/transitions.tsv`):
//! what a transition records of the vassal and reports, and the few
//! actions that go with it. `effects.rs` dispatches each `Task` here or to
//! its IO.

use super::*;
use crate::stats::StatsSource;

impl Engine {
    /// Report `drained`, and warn when the drain timed out.
    pub(super) fn report_drained(&mut self, i: usize, timed_out: bool) {
        let name = self.vassals[i].name.clone();
        let sessions_left = self.drain_sessions_left(i);
        self.report(Event::Drained {
            vassal: name.clone(),
            waited_ms: self.now.mono_ms - self.vassals[i].drain.started_ms,
            timed_out,
            sessions_left,
        });
        if timed_out {
            self.report(Event::Warning {
                vassal: Some(name),
                message:
                    "sessions were still in flight at the end of --drain-timeout; touched anyway"
                        .into(),
            });
        }
    }

    /// Someone else's reload, followed as ours, never touched. Seen in the
    /// Emperor's record first (while draining): the reload is under way
    /// already; count from before it.
    pub(super) fn adopt(&mut self, i: usize, while_draining: bool) {
        let name = self.vassals[i].name.clone();
        let respawns0 = self.vassals[i].baseline.respawns;
        let under_way = self
            .emp
            .as_ref()
            .and_then(|e| e.vassal(&name))
            .filter(|s| while_draining && s.respawns > respawns0)
            .map(|s| (s.last_mod, s.last_run));
        let m = self.vassals[i]
            .known_mtime
            .max(under_way.map_or(i64::MIN, |(m, _)| m));
        self.vassals[i].touch.foreign = true;
        self.touch(i, Some(m));
        if let Some((_, sent_s)) = under_way {
            let v = &mut self.vassals[i];
            v.baseline.respawns = respawns0;
            v.touch.wall_s = v.touch.wall_s.min(sent_s);
        }
        self.report(Event::ForeignReload { vassal: name });
    }

    /// The drain ended before its touch: subscribe its nodes back, and
    /// wait for the fastrouter to show them (`undone_drains_settled`).
    pub(super) fn undo_drain(&mut self, i: usize) {
        let name = self.vassals[i].name.clone();
        let drained = std::mem::take(&mut self.vassals[i].drain.nodes);
        for d in &drained {
            self.out.push_back(Action::Subscribe {
                vassal: name.clone(),
                key: d.key.clone(),
                node: d.name.clone(),
                modifier1: d.modifier1,
            });
        }
        self.undone_drains
            .push((name.clone(), self.now.mono_ms, drained));
        self.read(StatsSource::Fastrouter);
        self.report(Event::Resubscribed { vassal: name });
    }

    /// The reload was seen. Running at the touch: one reload request since
    /// then is `baseline.respawns + 1`. More already seen means a second
    /// request reached it before we saw the first (someone else's touch
    /// after the Emperor acted on ours), and `SecondReload` follows on the
    /// next pass (docs/UWSGI.md §12).
    pub(super) fn record_reload(&mut self, i: usize) {
        let name = self.vassals[i].name.clone();
        let s = self.emp.as_ref().and_then(|e| e.vassal(&name));
        let v = &mut self.vassals[i];
        v.reload.respawns = match s {
            Some(s) if v.baseline.pid == 0 => s.respawns,
            _ => v.baseline.respawns.saturating_add(1),
        };
        if v.baseline.pid == 0 {
            // It was not running at the touch: this is its pid now.
            v.baseline.pid = s.map_or(0, |s| s.pid);
        }
        self.report(Event::ReloadSeen { vassal: name });
    }

    /// The new generation accepts: since when (the Emperor's second and our
    /// clock).
    pub(super) fn record_accepting(&mut self, i: usize) {
        let name = self.vassals[i].name.clone();
        let s = self.emp.as_ref().and_then(|e| e.vassal(&name));
        let now = self.now;
        let v = &mut self.vassals[i];
        v.reload.accepted_s = s.map_or(now.wall_s, |s| s.last_accepting);
        v.reload.accepting_ms = now.mono_ms;
        self.report(Event::Accepting { vassal: name });
    }

    /// The `last_check` of the first announce of a followed reload: the
    /// next must be later.
    pub(super) fn record_first_announce(&mut self, i: usize) {
        let v = &self.vassals[i];
        let pid = self
            .emp
            .as_ref()
            .and_then(|e| e.vassal(&v.name))
            .map_or(0, |s| s.pid);
        let first = self.fr.as_ref().and_then(|fr| {
            self.matcher
                .nodes_of(&v.name, pid.max(v.baseline.pid), fr)
                .filter(|(_, n)| n.death_mark == 0)
                .map(|(_, n)| n.last_check)
                .max()
        });
        let v = &mut self.vassals[i];
        v.reload.first_announce_s = first;
        v.reload.confirm_ms = self.now.mono_ms;
    }

    /// Write `S` to its master FIFO, once per reload.
    pub(super) fn write_fifo(&mut self, i: usize) {
        let now = self.now.mono_ms;
        let v = &mut self.vassals[i];
        v.reload.repaired = true;
        v.reload.repair_ms = now;
        let (vassal, pid, evidence) = (v.name.clone(), v.baseline.pid, v.reload.hook_lost.clone());
        self.report(Event::RepairStarted {
            vassal: vassal.clone(),
            evidence,
        });
        self.out.push_back(Action::Repair { vassal, pid });
    }

    /// Its log shows the repair's `S` blocked it: write `S` once more.
    pub(super) fn undo_repair(&mut self, i: usize) {
        let (name, pid) = (self.vassals[i].name.clone(), self.vassals[i].baseline.pid);
        self.report(Event::Warning {
            vassal: Some(name.clone()),
            message: "its log shows the repair's S blocked its subscriptions (its hook's S had arrived after all): writing S once more to undo it".into(),
        });
        self.out.push_back(Action::Repair { vassal: name, pid });
    }

    /// Reloaded and back in rotation.
    pub(super) fn succeed(&mut self, i: usize) {
        let now = self.now.mono_ms;
        let v = &mut self.vassals[i];
        v.done_ms = now;
        let event = Event::Subscribed {
            vassal: v.name.clone(),
            took_ms: now - v.touch.at_ms,
            repaired: v.reload.repaired,
            foreign: v.touch.foreign,
        };
        self.report(event);
    }

    /// Never touched: its config went before its turn, or (`current`) it
    /// already runs the release and stays in service.
    pub(super) fn skip(&mut self, i: usize, why: String, current: bool) {
        let v = &mut self.vassals[i];
        v.found_current = current;
        v.skipped_why = why.clone();
        let vassal = v.name.clone();
        self.report(Event::Skipped { vassal, why });
    }
}
