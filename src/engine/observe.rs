//! From snapshots to facts: the one fact the current stats raise for an
//! in-flight vassal, one observer per phase. Each observer returns its
//! phase's own fact type (`DrainingFact`, `AcceptingFact`, ...), which
//! `build.rs` generates from `fsm/transitions.tsv` with only the facts the
//! table does not call "not raised" in that phase: an observer that raises
//! a fact the table rules out there does not compile.

use super::phase::{
    AcceptingFact, ConfirmingFact, DrainingFact, ProbingFact, RepairingFact, RespawnedFact,
    TouchedFact,
};
use super::*;
use crate::stats::{Node, StatsSource, VassalStats};

/// An observer's verdict: the fact, and what was seen.
type Seen<F> = Option<(F, String)>;

/// The new generation's own announce, as the fastrouter shows it.
struct OwnAnnounce {
    /// The newest `last_check` of its own fresh nodes.
    newest: i64,
    /// It announced under none of its old keys: what moved, in words.
    moved: Option<String>,
}

impl Engine {
    /// The one fact the current stats raise for vassal `i`, if any.
    pub(super) fn observe(&mut self, i: usize) -> Option<(Fact, String)> {
        let phase = self.vassals[i].phase;
        if !phase.in_flight() || self.emp.is_none() || self.fr.is_none() {
            return None;
        }
        // Death and crash loops, in every in-flight phase.
        if let Some(seen) = self.death(i) {
            return Some(seen);
        }
        fn up<F: Into<Fact>>(seen: Seen<F>) -> Option<(Fact, String)> {
            seen.map(|(f, why)| (f.into(), why))
        }
        match phase {
            Phase::Draining => up(self.observe_draining(i)),
            Phase::Touched => up(self.observe_touched(i)),
            Phase::Respawned => up(self.observe_respawned(i)),
            Phase::Accepting => up(self.observe_accepting(i)),
            Phase::Repairing => up(self.observe_repairing(i)),
            Phase::Confirming => up(self.observe_confirming(i)),
            Phase::Probing => up(self.observe_probing(i)),
            _ => None,
        }
    }

    /// Its Emperor record now.
    fn record(&self, i: usize) -> Option<&VassalStats> {
        self.emp.as_ref()?.vassal(&self.vassals[i].name)
    }

    /// `Died` or `Blacklisted` (every in-flight phase raises them). With
    /// `exit-on-reload` the master exits where others re-exec, and the
    /// Emperor starts its next generation as a new process: a new pid (and
    /// a moment with no record) once the reload was sent is that reload,
    /// followed here, not a death (docs/UWSGI.md §5.3).
    fn death(&mut self, i: usize) -> Option<(Fact, String)> {
        let emp = self.emp.as_ref()?;
        let v = &self.vassals[i];
        let newly_blacklisted = emp.blacklisted(&v.name).is_some_and(|b| {
            v.baseline
                .blacklist_attempt
                .map_or(true, |a0| b.attempt > a0)
        });
        let exits_on_reload = self.s.exit_on_reload.contains(&v.name)
            && matches!(v.phase, Phase::Touched | Phase::Respawned);
        match emp.vassal(&v.name) {
            None if newly_blacklisted => Some((
                Fact::Blacklisted,
                "listed in the Emperor's blacklist".into(),
            )),
            None if exits_on_reload => None,
            None if v.baseline.pid > 0 => {
                Some((Fact::Died, "vanished from the Emperor's vassals".into()))
            }
            Some(s)
                if exits_on_reload
                    && !newly_blacklisted
                    && v.baseline.pid > 0
                    && s.pid != v.baseline.pid
                    && s.last_mod >= v.touch.mtime_set =>
            {
                // The new process is the new generation: follow it.
                let (pid, respawns) = (s.pid, s.respawns);
                let v = &mut self.vassals[i];
                v.baseline.pid = pid;
                v.reload.respawns = respawns;
                None
            }
            Some(s) if v.baseline.pid > 0 && s.pid != v.baseline.pid => {
                let fact = if newly_blacklisted {
                    Fact::Blacklisted
                } else {
                    Fact::Died
                };
                Some((fact, format!("pid {} is now {}", v.baseline.pid, s.pid)))
            }
            _ => None,
        }
    }

    /// Its nodes in the newest fastrouter snapshot (by its current pid or
    /// the one it had).
    fn nodes_now(&self, i: usize) -> Vec<(&str, &Node)> {
        let v = &self.vassals[i];
        let Some(fr) = self.fr.as_ref() else {
            return Vec::new();
        };
        let pid = self.record(i).map_or(0, |s| s.pid).max(v.baseline.pid);
        self.matcher.nodes_of(&v.name, pid, fr).collect()
    }

    fn observe_draining(&self, i: usize) -> Seen<DrainingFact> {
        let v = &self.vassals[i];
        let fr = self.fr.as_ref()?;
        // Someone else's touch the Emperor acted on before its inotify
        // event came (or without one): follow it; touching now would be a
        // second reload request (docs/UWSGI.md §12).
        if let Some(s) = self
            .record(i)
            .filter(|s| s.pid == v.baseline.pid && s.respawns > v.baseline.respawns)
        {
            return Some((
                DrainingFact::ForeignTouch,
                format!(
                    "the Emperor sent it a reload this rollout did not ask for (respawns {} -> {})",
                    v.baseline.respawns, s.respawns
                ),
            ));
        }
        // Its own nodes are out already; if a key it drains has fallen below
        // K without them, something else took it there: give them back
        // (re-unsubscribing a node that announced again would take a key
        // below K).
        let live = self.live_now();
        let short = v.drain.nodes.iter().find(|d| {
            live.get(&d.key).copied().unwrap_or(0) < self.k_for(&d.key)
                && self.min_live.contains_key(&d.key)
        });
        if let Some(d) = short {
            return Some((
                DrainingFact::BudgetLost,
                format!(
                    "key {} fell to {} live, below {}, while it drained",
                    d.key,
                    live.get(&d.key).copied().unwrap_or(0),
                    self.k_for(&d.key)
                ),
            ));
        }
        if self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms < v.drain.last_sent_ms {
            return None;
        }
        // Out of rotation: every drained node gone or death-marked. Its
        // sessions left, summed (the vassal's workers serve them all): no
        // more than its workers serve at once means none waits in its
        // listen backlog, and its graceful reload finishes each
        // (docs/UWSGI.md §19).
        let mut all_out = true;
        let mut sessions = 0usize;
        for d in &v.drain.nodes {
            match self.matcher.find(&d.key, &d.name, fr) {
                None => {}
                Some(n) if n.death_mark != 0 => {
                    sessions = sessions.saturating_add(n.refs.max(0) as usize)
                }
                Some(n) if n.last_check > d.last_check => {
                    return Some((
                        DrainingFact::NodeBack,
                        format!("{} announced again", d.name),
                    ))
                }
                Some(_) => all_out = false,
            }
        }
        let kept = self.s.drain_sessions_kept.get(&v.name).copied();
        (all_out && sessions <= kept.unwrap_or(0)).then(|| (DrainingFact::Drained, String::new()))
    }

    fn observe_touched(&self, i: usize) -> Seen<TouchedFact> {
        let s = self.record(i)?;
        (s.last_mod >= self.vassals[i].touch.mtime_set)
            .then(|| (TouchedFact::ReloadSeen, String::new()))
    }

    /// `respawns` rose after the reload was seen: a second reload request
    /// reached it (docs/UWSGI.md §12). Every phase from `Respawned` on.
    fn second_reload(&self, i: usize) -> Option<String> {
        let s = self.record(i)?;
        let v = &self.vassals[i];
        (s.respawns > v.reload.respawns)
            .then(|| format!("respawns went from {} to {}", v.reload.respawns, s.respawns))
    }

    fn observe_respawned(&self, i: usize) -> Seen<RespawnedFact> {
        if let Some(why) = self.second_reload(i) {
            return Some((RespawnedFact::SecondReload, why));
        }
        // The Emperor clears `accepting` in the very instant it sends the
        // reload (docs/UWSGI.md §5): every snapshot from the one that showed
        // the reload on says 0 until the new generation's worker 1 accepts.
        // So `accepting == 1` now is the new generation's, with no clock
        // compared (a wall clock stepping back must not hide it).
        (self.record(i)?.accepting == 1).then(|| (RespawnedFact::AcceptingSeen, String::new()))
    }

    /// The new generation's own announce: fresh nodes last refreshed by the
    /// vassal itself (`node_fresh`: a node the tool's early announce keeps
    /// alive is traffic, not evidence), announced since it accepted (or
    /// since its old nodes were seen gone), in a fastrouter read requested
    /// after the touch, and newer than what the node showed at the touch
    /// (the old generation's last announce can fall in the second the new
    /// one accepted).
    fn own_announce(&self, i: usize) -> Option<OwnAnnounce> {
        let v = &self.vassals[i];
        if self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms <= v.touch.at_ms {
            return None;
        }
        let (router_now, tol) = (self.router_now_s(), self.s.node_tolerance_s);
        let accepted = v.reload.accepted_s;
        let own: Vec<(&str, i64)> = self
            .nodes_now(i)
            .into_iter()
            .filter(|(k, n)| {
                let before = v
                    .touch
                    .announce_nodes
                    .iter()
                    .find(|d| d.key == *k && d.name == n.name);
                nodes::node_fresh(n, router_now, tol)
                    && (v.reload.node_gone
                        || (n.last_check >= accepted
                            && before.map_or(true, |d| n.last_check > d.last_check)))
            })
            .map(|(k, n)| (k, n.last_check))
            .collect();
        let newest = own.iter().map(|(_, lc)| *lc).max()?;
        Some(OwnAnnounce {
            newest,
            moved: moved_keys(&v.touch.announce_nodes, &own),
        })
    }

    fn observe_accepting(&self, i: usize) -> Seen<AcceptingFact> {
        let v = &self.vassals[i];
        if let Some(why) = self.second_reload(i) {
            return Some((AcceptingFact::SecondReload, why));
        }
        if let Some(a) = self.own_announce(i) {
            return Some(match a.moved {
                Some(moved) => (AcceptingFact::KeyMoved, moved),
                // A reload we did not send may have reached it while it was
                // starting: one announce is not enough.
                None if v.touch.foreign => (AcceptingFact::FirstAnnounceSeen, String::new()),
                None => (AcceptingFact::AnnounceSeen, String::new()),
            });
        }
        if self.may_repair(v) {
            if let Some(line) = &v.reload.hook_lost {
                return Some((AcceptingFact::HookLost, line.clone()));
            }
        }
        if v.reload.subscriptions_on
            && !v.reload.announced
            && self.s.announce_when_on.contains(&v.name)
        {
            return Some((AcceptingFact::SubscriptionsOn, String::new()));
        }
        // Silence is evidence only in a fastrouter read requested after the
        // announce was due, while the router answers (`overdue_at` counts
        // from its return after an outage or a restart): a router that is
        // down or restarting shows no node for anyone, and `S` to an
        // unblocked vassal blocks it (docs/UWSGI.md §9.6.2).
        let now = self.now.mono_ms;
        let fr = &self.reads[idx(StatsSource::Fastrouter)];
        let due = self
            .overdue_at(v)
            .is_some_and(|t| now >= t && fr.snapshot_started_ms >= t);
        if due
            && fr.last_error.is_none()
            && self.nodes_now(i).iter().all(|(_, n)| n.death_mark != 0)
        {
            return Some((
                AcceptingFact::AnnounceOverdue,
                format!(
                    "accepting for {} ms with no node in the fastrouter",
                    now - v.reload.accepting_ms
                ),
            ));
        }
        None
    }

    fn observe_repairing(&self, i: usize) -> Seen<RepairingFact> {
        let v = &self.vassals[i];
        if let Some(why) = self.second_reload(i) {
            return Some((RepairingFact::SecondReload, why));
        }
        if let Some(a) = self.own_announce(i) {
            return Some(match a.moved {
                Some(moved) => (RepairingFact::KeyMoved, moved),
                None if v.touch.foreign => (RepairingFact::FirstAnnounceSeen, String::new()),
                None => (RepairingFact::AnnounceSeen, String::new()),
            });
        }
        v.reload.blocked_after_repair.then(|| {
            (
                RepairingFact::SubscriptionsBlocked,
                "its log shows subscriptions blocked after the repair's S".into(),
            )
        })
    }

    /// A followed reload announced once: the next announce must be later
    /// than that first one.
    fn observe_confirming(&self, i: usize) -> Seen<ConfirmingFact> {
        let v = &self.vassals[i];
        if let Some(why) = self.second_reload(i) {
            return Some((ConfirmingFact::SecondReload, why));
        }
        let a = self.own_announce(i)?;
        if let Some(moved) = a.moved {
            return Some((ConfirmingFact::KeyMoved, moved));
        }
        v.reload
            .first_announce_s
            .is_some_and(|f| a.newest > f)
            .then(|| (ConfirmingFact::AnnounceSeen, String::new()))
    }

    /// Waiting for the driver's verdict: the stats only tell a second reload.
    fn observe_probing(&self, i: usize) -> Seen<ProbingFact> {
        self.second_reload(i)
            .map(|why| (ProbingFact::SecondReload, why))
    }

    /// Marks touched vassals of which a fastrouter read, started after the
    /// touch, shows no node alive: unsubscribed by the drain or by
    /// `unsubscribe-on-graceful-reload`. The old generation does not announce
    /// while reloading, so any node seen alive later is the new one's
    /// (docs/UWSGI.md §9.1).
    pub(super) fn note_nodes_gone(&mut self) {
        let started = self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms;
        let (Some(fr), Some(emp)) = (self.fr.as_ref(), self.emp.as_ref()) else {
            return;
        };
        for v in &mut self.vassals {
            if v.reload.node_gone
                || !matches!(
                    v.phase,
                    Phase::Touched | Phase::Respawned | Phase::Accepting | Phase::Repairing
                )
                || started <= v.touch.at_ms
            {
                continue;
            }
            let pid = emp.vassal(&v.name).map_or(0, |s| s.pid).max(v.baseline.pid);
            if self
                .matcher
                .nodes_of(&v.name, pid, fr)
                .all(|(_, n)| n.death_mark != 0)
            {
                v.reload.node_gone = true;
            }
        }
    }

    /// The sessions vassal `i`'s drained nodes hold in the newest fastrouter
    /// snapshot (death-marked ones; a node still routed counts as none).
    pub(super) fn drain_sessions_left(&self, i: usize) -> usize {
        let Some(fr) = self.fr.as_ref() else {
            return 0;
        };
        self.vassals[i]
            .drain
            .nodes
            .iter()
            .filter_map(|d| self.matcher.find(&d.key, &d.name, fr))
            .filter(|n| n.death_mark != 0)
            .map(|n| n.refs.max(0) as usize)
            .sum()
    }
}

/// A reload that came back under other keys: the keys its nodes had before
/// the touch (`before`) and those its new generation announced (`own`), when
/// it announced under none of the old ones. Keys are compared without an HA
/// router's suffix (`split_router_key`).
fn moved_keys(before: &[DrainedNode], own: &[(&str, i64)]) -> Option<String> {
    use std::collections::BTreeSet;
    let real = |k: &str| crate::stats::split_router_key(k).0.to_string();
    let old: BTreeSet<String> = before.iter().map(|d| real(&d.key)).collect();
    let new: BTreeSet<String> = own.iter().map(|(k, _)| real(k)).collect();
    if old.is_empty() || new.is_empty() || !old.is_disjoint(&new) {
        return None;
    }
    let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    Some(format!(
        "its new generation announced under key {} instead of {}: moved from key {} to key {}",
        list(&new),
        list(&old),
        list(&old),
        list(&new)
    ))
}
