//! From snapshots to facts: the one fact the current stats raise for an
//! in-flight vassal.

use super::*;
use crate::stats::StatsSource;

impl Engine {
    /// The one fact the current stats raise for vassal `i`, if any.
    pub(super) fn observe(&mut self, i: usize) -> Option<(Fact, String)> {
        let now = self.now;
        let fr_started = self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms;
        let v = &self.vassals[i];
        let phase = v.phase;
        if !phase.in_flight() {
            return None;
        }
        let emp = self.emp.as_ref()?;
        let fr = self.fr.as_ref()?;
        let tol = self.s.node_tolerance_s;
        let router_now = self.router_now_s();
        let accepted = self.on_router_clock(v.reload.accepted_s);

        // Death and crash loops, in every in-flight phase.
        let bl = emp.blacklisted(&v.name);
        let newly_blacklisted = bl.is_some_and(|b| {
            v.baseline
                .blacklist_attempt
                .map_or(true, |a0| b.attempt > a0)
        });
        // With `exit-on-reload` the master exits where others re-exec, and
        // the Emperor starts its next generation as a new process: a new
        // pid (and a gap with no record) once the reload was sent is that
        // reload, not a death (docs/UWSGI.md §5).
        let exits_on_reload = self.s.exit_on_reload.contains(&v.name)
            && matches!(phase, Phase::Touched | Phase::Respawned);
        match emp.vassal(&v.name) {
            None if newly_blacklisted => {
                return Some((
                    Fact::Blacklisted,
                    "listed in the Emperor's blacklist".into(),
                ))
            }
            None if exits_on_reload => return None,
            None if v.baseline.pid > 0 => {
                return Some((Fact::Died, "vanished from the Emperor's vassals".into()))
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
                return None;
            }
            Some(s) if v.baseline.pid > 0 && s.pid != v.baseline.pid => {
                let fact = if newly_blacklisted {
                    Fact::Blacklisted
                } else {
                    Fact::Died
                };
                return Some((fact, format!("pid {} is now {}", v.baseline.pid, s.pid)));
            }
            _ => {}
        }
        let st = emp.vassal(&v.name);

        // Node observations since the touch.
        let current_pid = st.map_or(0, |s| s.pid);
        let mine: Vec<(&str, &crate::stats::Node)> = self
            .matcher
            .nodes_of(&v.name, current_pid.max(v.baseline.pid), fr)
            .collect();

        match phase {
            Phase::Draining => {
                // Someone else's touch the Emperor acted on before its
                // inotify event came (or without one): follow it; touching
                // now would be a second reload request (docs/UWSGI.md §12).
                if let Some(s) =
                    st.filter(|s| s.pid == v.baseline.pid && s.respawns > v.baseline.respawns)
                {
                    return Some((
                        Fact::ForeignTouch,
                        format!(
                            "the Emperor sent it a reload this rollout did not ask for (respawns {} -> {})",
                            v.baseline.respawns, s.respawns
                        ),
                    ));
                }
                // Its own nodes are out already; if a key it drains has
                // fallen below K without them, something else took it there:
                // give them back (re-unsubscribing a node that announced again
                // would take a key below K).
                let live = self.live_now();
                let short = v.drain.nodes.iter().find(|d| {
                    live.get(&d.key).copied().unwrap_or(0) < self.k_for(&d.key)
                        && self.min_live.contains_key(&d.key)
                });
                if let Some(d) = short {
                    return Some((
                        Fact::BudgetLost,
                        format!(
                            "key {} fell to {} live, below {}, while it drained",
                            d.key,
                            live.get(&d.key).copied().unwrap_or(0),
                            self.k_for(&d.key)
                        ),
                    ));
                }
                if fr_started < v.drain.last_sent_ms {
                    return None;
                }
                // Out of rotation: every drained node gone or death-marked.
                // Its sessions left, summed (the vassal's workers serve them
                // all): no more than its workers serve at once means none
                // waits in its listen backlog, and its graceful reload
                // finishes each (docs/UWSGI.md §19).
                let mut all_out = true;
                let mut sessions = 0usize;
                for d in &v.drain.nodes {
                    match self.matcher.find(&d.key, &d.name, fr) {
                        None => {}
                        Some(n) if n.death_mark != 0 => {
                            sessions = sessions.saturating_add(n.refs.max(0) as usize)
                        }
                        Some(n) if n.last_check > d.last_check => {
                            return Some((Fact::NodeBack, format!("{} announced again", d.name)))
                        }
                        Some(_) => all_out = false,
                    }
                }
                let kept = self.s.drain_sessions_kept.get(&v.name).copied();
                if all_out && sessions <= kept.unwrap_or(0) {
                    return Some((Fact::Drained, String::new()));
                }
                None
            }
            Phase::Touched => {
                let s = st?;
                if s.last_mod >= v.touch.mtime_set {
                    return Some((Fact::ReloadSeen, String::new()));
                }
                None
            }
            Phase::Respawned
            | Phase::Accepting
            | Phase::Repairing
            | Phase::Confirming
            | Phase::Probing => {
                let s = st?;
                if s.respawns > v.reload.respawns {
                    return Some((
                        Fact::SecondReload,
                        format!("respawns went from {} to {}", v.reload.respawns, s.respawns),
                    ));
                }
                if phase == Phase::Probing {
                    // Waiting for the driver's verdict only.
                    return None;
                }
                if phase == Phase::Respawned {
                    // The Emperor clears `accepting` in the very instant it
                    // sends the reload (docs/UWSGI.md §5): every snapshot from
                    // the one that showed the reload on says 0 until the new
                    // generation's worker 1 accepts. So `accepting == 1` now
                    // is the new generation's, with no clock compared (a
                    // wall clock stepping back must not hide it).
                    if s.accepting == 1 {
                        return Some((Fact::AcceptingSeen, String::new()));
                    }
                    return None;
                }
                // The new generation's own announces: fresh nodes last
                // refreshed by the vassal itself (`node_fresh`: a node the
                // tool's early announce keeps alive is traffic, not
                // evidence), announced since it accepted (or since its old
                // nodes were seen gone), in a read started after the touch.
                let own: Vec<(&str, i64)> = mine
                    .iter()
                    .filter(|(_, n)| {
                        nodes::node_fresh(n, router_now, tol)
                            && (n.last_check >= accepted || v.reload.node_gone)
                            && fr_started > v.touch.at_ms
                    })
                    .map(|(k, n)| (*k, n.last_check))
                    .collect();
                let announced = own
                    .iter()
                    .map(|(_, lc)| *lc)
                    .max()
                    // Its log proved it blocked: until the repair's `S` is
                    // written, a fresh node is not the vassal's announce.
                    .filter(|_| v.reload.hook_lost.is_none() || v.reload.fifo_written);
                if announced.is_some() {
                    if let Some(moved) = moved_keys(&v.touch.announce_nodes, &own) {
                        return Some((Fact::KeyMoved, moved));
                    }
                }
                match (phase, announced) {
                    // A reload we did not send may have reached it while it
                    // was starting: one announce is not enough.
                    (Phase::Accepting | Phase::Repairing, Some(_)) if v.touch.foreign => {
                        return Some((Fact::FirstAnnounceSeen, String::new()))
                    }
                    (Phase::Confirming, Some(s))
                        if v.reload.first_announce_s.is_some_and(|f| s > f) =>
                    {
                        return Some((Fact::AnnounceSeen, String::new()))
                    }
                    (Phase::Confirming, _) => return None,
                    (_, Some(_)) => return Some((Fact::AnnounceSeen, String::new())),
                    _ => {}
                }
                if phase == Phase::Repairing && v.reload.blocked_after_repair {
                    return Some((
                        Fact::SubscriptionsBlocked,
                        "its log shows subscriptions blocked after the repair's S".into(),
                    ));
                }
                if phase == Phase::Accepting && self.may_repair(v) {
                    if let Some(line) = &v.reload.hook_lost {
                        return Some((Fact::HookLost, line.clone()));
                    }
                }
                if phase == Phase::Accepting
                    && v.reload.subscriptions_on
                    && !v.reload.announced
                    && self.s.announce_when_on.contains(&v.name)
                {
                    return Some((Fact::SubscriptionsOn, String::new()));
                }
                // Silence is evidence only in a fastrouter read requested
                // after the announce was due, while the router answers
                // (`overdue_at` counts from its return after an outage or a
                // restart): a router that is down or restarting shows no
                // node for anyone, and `S` to an unblocked vassal blocks it
                // (docs/UWSGI.md §9.6.2).
                if phase == Phase::Accepting
                    && self
                        .overdue_at(v)
                        .is_some_and(|t| now.mono_ms >= t && fr_started >= t)
                    && self.reads[idx(StatsSource::Fastrouter)]
                        .last_error
                        .is_none()
                    && mine.iter().all(|(_, n)| n.death_mark != 0)
                {
                    return Some((
                        Fact::AnnounceOverdue,
                        format!(
                            "accepting for {} ms with no node in the fastrouter",
                            now.mono_ms - v.reload.accepting_ms
                        ),
                    ));
                }
                None
            }
            _ => None,
        }
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
