//! Carrying out a transition of the per-vassal machine: the bookkeeping of
//! the phase entered and the effect it names.

use super::*;
use crate::stats::StatsSource;

impl Engine {
    /// Feeds `fact` to vassal `i`'s machine and carries out the effects of
    /// the row, in order. Returns whether anything changed.
    pub(super) fn apply(&mut self, i: usize, fact: Fact, detail: String) -> bool {
        let before = self.vassals[i].phase;
        if is_impossible(before, fact) {
            if self.impossible_seen.len() < 16 {
                let name = self.vassals[i].name.clone();
                self.impossible_seen.push((name, before, fact));
            }
            return false;
        }
        let Some((next, effects)) = step(before, fact) else {
            return false;
        };
        self.vassals[i].phase = next;
        if self.vassals[i].touch.log_watched && !next.in_flight() && before.in_flight() {
            let vassal = self.vassals[i].name.clone();
            self.out.push_back(Action::UnwatchHookLog { vassal });
        }
        let mut detail = Some(detail);
        for effect in effects {
            match *effect {
                Effect::Do(task) => self.carry_out(i, task, detail.as_deref().unwrap_or("")),
                Effect::Fail(reason) => self.fail(i, reason, detail.take().unwrap_or_default()),
            }
        }
        true
    }

    /// One task of a transition of vassal `i` (now in its new phase);
    /// `detail` says what was seen. The bookkeeping tasks live in
    /// `records.rs`, the IO ones below.
    fn carry_out(&mut self, i: usize, task: Task, detail: &str) {
        match task {
            Task::Unsubscribe => self.unsubscribe(i, true),
            Task::UnsubscribeAgain => self.unsubscribe(i, false),
            Task::ReportDrained => self.report_drained(i, false),
            Task::ReportDrainTimedOut => self.report_drained(i, true),
            Task::Touch => self.touch(i, None),
            Task::Adopt => self.adopt(i, false),
            Task::AdoptWhileDraining => self.adopt(i, true),
            Task::WarnBudgetLost => {
                let name = self.vassals[i].name.clone();
                self.report(Event::Warning {
                    vassal: Some(name),
                    message: format!("{detail}: its drain is given up and its nodes put back; it is touched once K allows"),
                });
            }
            Task::UndoDrain => self.undo_drain(i),
            Task::RecordReload => self.record_reload(i),
            Task::RecordAccepting => self.record_accepting(i),
            Task::Announce => self.announce(i),
            Task::RecordFirstAnnounce => self.record_first_announce(i),
            Task::WriteFifo => self.write_fifo(i),
            Task::UndoRepair => self.undo_repair(i),
            Task::AnnounceRepaired => self.announce_repaired(i),
            Task::AnnounceUnblocked => self.announce_unblocked(i),
            Task::Probe => self.probe(i),
            Task::Succeed => self.succeed(i),
            // --stale-since: `detail` is the evidence (engine::generation).
            Task::SkipCurrent => self.skip(i, detail.to_string(), true),
            Task::Skip => self.skip(i, "its config was removed before its turn".into(), false),
        }
    }

    /// Vassal `i` failed for `reason`; `detail` says what was seen.
    fn fail(&mut self, i: usize, reason: FailReason, detail: String) {
        let now = self.now;
        let name = self.vassals[i].name.clone();
        // A vassal that was out of service before its touch failing
        // again says nothing about the new release: it is reported
        // (and the run exits 1), but the healthy ones go on.
        let was_down = self.vassals[i].was_down.clone();
        let detail = match &was_down {
            Some(before) => {
                format!("{detail} (it was already down before its touch: {before})")
            }
            None => detail,
        };
        self.vassals[i].failure = Some((reason, detail.clone()));
        self.vassals[i].done_ms = now.mono_ms;
        if was_down.is_none() {
            self.failures += 1;
        }
        self.report(Event::Failed {
            vassal: name,
            reason,
            detail,
        });
        if was_down.is_none() && self.failures >= self.s.max_failures {
            let why = format!(
                "{} vassal(s) failed; nothing new is touched (--keep-going or --max-failures to continue)",
                self.failures
            );
            self.stop(why);
        }
    }

    /// Early announce: subscribes the nodes vassal `i` had before its touch,
    /// where it is on for it and the reload is ours (a reload someone else
    /// sent must show two announces of the vassal's own; see
    /// `Phase::Confirming`). The fastrouter is read at once: the vassal is
    /// back as soon as it shows the node.
    pub(super) fn announce(&mut self, i: usize) {
        if self.s.early_announce.contains(&self.vassals[i].name) {
            self.send_announce(i);
        }
    }

    /// After `S` was written to a vassal whose log proved its hook lost
    /// (`Fact::HookLost`), it is unblocked and announces at its next
    /// `subscribe-freq` tick: the tool sends that announce now, as the early
    /// announce does, unless early announces are off (`--no-early-announce`,
    /// `--probe`, no subscription server) or the reload is not ours. After a
    /// repair without that proof nothing is sent: its silence may have been
    /// a dropped announce, which `S` then blocked (docs/BENCHMARK.md §4).
    fn announce_repaired(&mut self, i: usize) {
        self.vassals[i].reload.fifo_written = true;
        if self.vassals[i].reload.hook_lost.is_some() && self.s.announce_after_repair {
            self.send_announce(i);
        }
    }

    /// Early announce of a `start-unsubscribed` + hook vassal whose own log
    /// proved its subscriptions on.
    fn announce_unblocked(&mut self, i: usize) {
        if self.s.announce_when_on.contains(&self.vassals[i].name) {
            self.send_announce(i);
        }
    }

    /// Sends the subscribe for each node vassal `i` had before its touch,
    /// reports it, and reads the fastrouter at once; once per reload, and
    /// never for a reload that is not ours (it must show two announces of
    /// its own, `Phase::Confirming`), with `--probe` (the probe decides when
    /// it is back), without a subscription server, or without nodes known.
    fn send_announce(&mut self, i: usize) {
        let v = &self.vassals[i];
        if v.reload.announced
            || v.touch.foreign
            || !self.s.can_unsubscribe
            || self.s.probe_path.is_some()
            || v.touch.announce_nodes.is_empty()
        {
            return;
        }
        self.vassals[i].reload.announced = true;
        let name = self.vassals[i].name.clone();
        let nodes = self.vassals[i].touch.announce_nodes.clone();
        for d in &nodes {
            self.out.push_back(Action::Subscribe {
                vassal: name.clone(),
                key: d.key.clone(),
                node: d.name.clone(),
                modifier1: d.modifier1,
            });
        }
        self.report(Event::Announced {
            vassal: name,
            nodes: nodes.into_iter().map(|d| d.name).collect(),
        });
        self.read(StatsSource::Fastrouter);
    }

    /// Sends the `--probe` request to the node the new generation announced;
    /// without `--probe`, the probe passes at once.
    pub(super) fn probe(&mut self, i: usize) {
        let name = self.vassals[i].name.clone();
        let Some(path) = self.s.probe_path.clone() else {
            self.apply(i, Fact::ProbeOk, String::new());
            return;
        };
        let pid = self.current_pid(&name).max(self.vassals[i].baseline.pid);
        let node = self.fr.as_ref().and_then(|fr| {
            self.matcher
                .nodes_of(&name, pid, fr)
                .find(|(_, n)| n.death_mark == 0)
                .map(|(k, n)| (k.to_string(), n.name.clone()))
        });
        match node {
            Some((key, node)) => self.out.push_back(Action::Probe {
                vassal: name,
                key,
                node,
                path,
            }),
            None => {
                self.apply(i, Fact::ProbeFailed, "no node to send the probe to".into());
            }
        }
    }

    pub(super) fn unsubscribe(&mut self, i: usize, first: bool) {
        let now = self.now.mono_ms;
        let name = self.vassals[i].name.clone();
        if first {
            let pid = self.current_pid(&name);
            let respawns = self
                .emp
                .as_ref()
                .and_then(|e| e.vassal(&name))
                .map_or(0, |s| s.respawns);
            let drained = self.routable_nodes(&name, pid);
            let v = &mut self.vassals[i];
            v.drain.nodes = drained;
            v.drain.started_ms = now;
            v.baseline.pid = pid;
            // A reload request the Emperor sends from now on is not ours.
            v.baseline.respawns = respawns;
            v.baseline.blacklist_attempt = None;
            let nodes = v.drain.nodes.iter().map(|d| d.name.clone()).collect();
            self.report(Event::DrainStarted {
                vassal: name.clone(),
                nodes,
            });
        } else if let Some(fr) = self.fr.as_ref() {
            // Remember the announce we answer, so it is not answered twice.
            for d in &mut self.vassals[i].drain.nodes {
                if let Some((_, n)) = fr.nodes().find(|(k, n)| *k == d.key && n.name == d.name) {
                    d.last_check = d.last_check.max(n.last_check);
                }
            }
        }
        self.vassals[i].drain.last_sent_ms = now;
        for d in self.vassals[i].drain.nodes.clone() {
            self.out.push_back(Action::Unsubscribe {
                vassal: name.clone(),
                key: d.key,
                node: d.name,
                modifier1: d.modifier1,
            });
        }
        // Read the fastrouter at once: the drain ends as soon as it shows.
        self.read(StatsSource::Fastrouter);
    }

    /// The nodes of `name` (master pid `pid`) the fastrouter still routes
    /// to (not death-marked), as the drain and the early announce keep them.
    fn routable_nodes(&self, name: &str, pid: i64) -> Vec<DrainedNode> {
        let Some(fr) = self.fr.as_ref() else {
            return Vec::new();
        };
        self.matcher
            .nodes_of(name, pid, fr)
            .filter(|(_, n)| n.death_mark == 0)
            .map(|(k, n)| DrainedNode {
                key: k.to_string(),
                name: n.name.clone(),
                modifier1: n.modifier1,
                last_check: n.last_check,
            })
            .collect()
    }

    /// Records the baseline and, unless `adopted` (someone else's mtime),
    /// asks the driver to set `max(now, last_mod + 1)`.
    pub(super) fn touch(&mut self, i: usize, adopted: Option<i64>) {
        let now = self.now;
        let name = self.vassals[i].name.clone();
        let emp = self.emp.as_ref();
        let st = emp.and_then(|e| e.vassal(&name));
        let bl = emp.and_then(|e| e.blacklisted(&name)).map(|b| b.attempt);
        // What an early announce will send: the drained nodes, else those
        // live now (the touch takes them out).
        let announce_nodes: Vec<DrainedNode> = match &self.vassals[i].drain.nodes {
            d if !d.is_empty() => d.clone(),
            _ => self.routable_nodes(&name, st.map_or(0, |s| s.pid)),
        };
        let watch_log = self.s.watch_hook_log.contains(&name);
        let v = &mut self.vassals[i];
        v.touch.announce_nodes = announce_nodes;
        let last_mod = st.map_or(v.known_mtime, |s| s.last_mod);
        let mtime = adopted.unwrap_or_else(|| {
            now.wall_s
                .max(last_mod.saturating_add(1))
                .max(v.known_mtime.saturating_add(1))
        });
        v.baseline.pid = st.map_or(0, |s| s.pid);
        v.baseline.respawns = st.map_or(0, |s| s.respawns);
        v.baseline.blacklist_attempt = bl;
        v.touch.at_ms = now.mono_ms;
        v.touch.wall_s = now.wall_s;
        v.touch.mtime_set = mtime;
        v.known_mtime = mtime;
        v.reload.node_gone = false;
        if watch_log && !v.touch.log_watched {
            // Before the touch: the log's end now is where the evidence of
            // this reload starts.
            v.touch.log_watched = true;
            self.out.push_back(Action::WatchHookLog {
                vassal: name.clone(),
                pid: v.baseline.pid,
            });
        }
        if adopted.is_none() {
            self.out.push_back(Action::Touch {
                vassal: name.clone(),
                mtime,
            });
            self.report(Event::Touched {
                vassal: name,
                mtime,
            });
        }
        self.wake_emperor();
    }
}
