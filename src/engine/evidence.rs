//! Evidence gathered over time, for every vassal whatever its phase: its
//! availability class (see `availability`), a fastrouter that restarted, and
//! the nodes a dead vassal left behind.

use super::availability::{self, Availability, Seen};
use super::*;

impl Engine {
    /// The current view of vassal `i` in both snapshots.
    pub(super) fn seen(&self, i: usize) -> Seen<'_> {
        let v = &self.vassals[i];
        let emp = self.emp.as_ref();
        let record = emp.and_then(|e| e.vassal_at(i, &v.name));
        let blacklisted = emp.and_then(|e| e.blacklisted(&v.name));
        let tolerance = self.tolerance_of(v);
        let (fresh_node, listed_node, ours_last) = match self.fr.as_ref() {
            Some(fr) => {
                let pid = record.map_or(0, |r| r.pid);
                let since = self.generation_since(i, record);
                let mut fresh = false;
                let mut listed = false;
                let mut before_generation = false;
                let mut ours_last = false;
                for (_, n) in self.matcher.nodes_of_at(i, &v.name, pid, fr) {
                    let by_age = nodes::node_fresh(n, self.router_now_s(), tolerance);
                    fresh |= by_age && n.last_check >= since;
                    listed |= n.death_mark == 0 && n.refreshed_by_vassal();
                    before_generation |= by_age && n.last_check < since;
                    // Only while that packet is recent: a node nobody but a
                    // stray packet refreshed long ago is plainly unrouted.
                    let recent = self.router_now_s().saturating_sub(n.last_check) <= tolerance;
                    ours_last |= n.death_mark == 0 && !n.refreshed_by_vassal() && recent;
                }
                // Its age alone proves nothing when neither the router's
                // tolerance nor the vassal's announce period is known. Nor
                // does a node fresh by age but stamped before the
                // generation began: not proof that it is routed, and no
                // proof either that it is not (two clocks compared: a
                // step back of the wall clock puts every announce before
                // the start), so never "silent" on it.
                let unsure = self.age_proves_nothing(v);
                (fresh, (listed && unsure) || before_generation, ours_last)
            }
            None => (false, false, false),
        };
        Seen {
            record,
            blacklisted,
            fresh_node,
            listed_node,
            refreshed_by_us: ours_last && !fresh_node,
        }
    }

    /// The oldest `last_check` of vassal `i`'s nodes that its running
    /// generation can have announced, on the router's clock: a node
    /// announced before the generation began is the previous one's (a
    /// fastrouter read that predates a reload or a respawn still shows it
    /// fresh), never evidence that this one is routed (docs/UWSGI.md §5.2,
    /// §17). Whole seconds: an announce in the generation's first second
    /// counts only on a fastrouter read requested after (not in the same
    /// millisecond as) an Emperor read that showed this generation
    /// accepting (by then its reload's unsubscribe
    /// had reached the router); on an earlier read it may be the previous
    /// generation's last. A start in our own future means the wall clock
    /// stepped back since: the two clocks cannot be compared, and nothing is
    /// excluded.
    pub(super) fn generation_since(
        &self,
        i: usize,
        record: Option<&crate::stats::VassalStats>,
    ) -> i64 {
        let Some(r) = record else {
            return i64::MIN;
        };
        let start = super::generation::generation_start(r);
        if start > self.now.wall_s {
            return i64::MIN;
        }
        let fr_read = self.reads[idx(crate::stats::StatsSource::Fastrouter)].snapshot_started_ms;
        let after_accepting = self.vassals[i]
            .evidence
            .accepting_seen_ms
            .is_some_and(|t| fr_read > t);
        start.saturating_add(i64::from(!after_accepting))
    }

    /// The availability class of vassal `i` now.
    pub fn availability(&self, i: usize) -> Availability {
        self.assess(i).0
    }

    /// The class of vassal `i` with the view it was drawn from, looked up
    /// once for every question asked of it.
    fn assess(&self, i: usize) -> (Availability, Seen<'_>) {
        let v = &self.vassals[i];
        let seen = self.seen(i);
        let class = availability::classify(
            &seen,
            &v.evidence,
            self.now.mono_ms,
            self.announce_window_of(v),
        );
        (class, seen)
    }

    /// The class of vassal `i`; unless it is serving, whether it is proven
    /// out of service (may be reloaded without using the K budget) and the
    /// evidence in words.
    pub fn availability_why(&self, i: usize) -> (Availability, bool, String) {
        let (class, seen) = self.assess(i);
        if class == Availability::Serving {
            return (class, false, String::new());
        }
        let ev = &self.vassals[i].evidence;
        let down = availability::proven_down(class, &seen, ev);
        let why = availability::describe(class, &seen, ev, self.now.mono_ms);
        (class, down, why)
    }

    /// Called with every Emperor snapshot, before it is used.
    pub(super) fn note_emperor_read(&mut self) {
        for i in 0..self.vassals.len() {
            let seen = self.seen(i);
            let read_ms = self.reads[idx(crate::stats::StatsSource::Emperor)].started_ms;
            let mut ev = self.vassals[i].evidence.clone();
            ev.on_emperor_read(&seen, read_ms);
            self.vassals[i].evidence = ev;
        }
    }

    /// Called with every fastrouter snapshot, before it replaces the last
    /// one: a new `pid` is a restarted fastrouter, whose nodes all vanished
    /// at once and come back at each vassal's next announce. Nothing is
    /// touched meanwhile because the live counts fell (no vassal that still
    /// accepts is down for that); this says why.
    pub(super) fn note_fastrouter_read(&mut self, new: &FastrouterSnapshot) {
        let Some(old) = self.fr.as_ref() else {
            return;
        };
        // The nodes this rollout takes out itself (drained, or unsubscribed
        // by a reload it asked for) leave by its own doing: their going is
        // no evidence about the router. Only the others are counted.
        let ours: std::collections::BTreeSet<(&str, &str)> = self
            .vassals
            .iter()
            .filter(|v| v.phase.in_flight())
            .flat_map(|v| {
                let pid = self
                    .emp
                    .as_ref()
                    .and_then(|e| e.vassal(&v.name))
                    .map_or(0, |r| r.pid);
                self.matcher
                    .nodes_of(&v.name, pid, old)
                    .map(|(k, n)| (k, n.name.as_str()))
                    .chain(
                        v.drain
                            .nodes
                            .iter()
                            .map(|d| (d.key.as_str(), d.name.as_str())),
                    )
                    .chain(
                        v.touch
                            .announce_nodes
                            .iter()
                            .map(|d| (d.key.as_str(), d.name.as_str())),
                    )
            })
            .collect();
        let others_live = |s: &FastrouterSnapshot| {
            s.nodes()
                .filter(|(k, n)| n.death_mark == 0 && !ours.contains(&(*k, n.name.as_str())))
                .count()
        };
        let (others_before, others_now) = (others_live(old), others_live(new));
        let all_live =
            |s: &FastrouterSnapshot| s.nodes().filter(|(_, n)| n.death_mark == 0).count();
        let (before, now) = (all_live(old), all_live(new));
        // Several routers (HA): any of them restarting counts.
        let pids = |s: &FastrouterSnapshot| {
            if s.router_pids.is_empty() {
                vec![s.pid]
            } else {
                s.router_pids.clone()
            }
        };
        let (old_pids, new_pids) = (pids(old), pids(new));
        let restarted = old_pids
            .iter()
            .zip(&new_pids)
            .find(|(a, b)| **a > 0 && **b > 0 && a != b)
            .map(|(a, b)| (*a, *b));
        // Most nodes gone in one read, without a pid change (a router in its
        // own pid namespace restarts with the same pid): the same to us.
        // Counted over the nodes it did not take out itself; or every node
        // gone at once, one of them not its own (a wide wave leaves few
        // others to count).
        let mass_loss = (others_before >= 2 && others_now * 2 < others_before)
            || (others_before >= 1 && before >= 2 && now == 0);
        if restarted.is_some() || mass_loss {
            // Its nodes come back at each vassal's next announce: silence
            // counts only from now (`overdue_at`).
            let started = self.reads[idx(crate::stats::StatsSource::Fastrouter)].started_ms;
            self.fr_back_ms = self.fr_back_ms.max(started);
        }
        if (restarted.is_some() || mass_loss) && self.stage == Stage::Rolling {
            let (old_pid, new_pid) = restarted.unwrap_or((old.pid, new.pid));
            self.report(Event::FastrouterRestarted {
                old_pid,
                new_pid,
                nodes_before: before,
                nodes_now: now,
            });
        }
    }

    /// Folds the current snapshots into every vassal's evidence.
    pub(super) fn update_evidence(&mut self) {
        let now = self.now.mono_ms;
        for i in 0..self.vassals.len() {
            let seen = self.seen(i);
            let mut ev = self.vassals[i].evidence.clone();
            ev.on_snapshots(&seen, now);
            self.vassals[i].evidence = ev;
        }
    }

    /// A vassal that died without unsubscribing leaves its node in the
    /// fastrouter, and a unix-socket node that nobody listens on fails every
    /// request routed to it until the node expires (docs/UWSGI.md §11). As
    /// soon as the Emperor shows the vassal dead (cursed, or
    /// gone and blacklisted) or restarted (a new pid, whose node was last
    /// announced before the restart), its nodes are unsubscribed: once per
    /// announce, only where the node is the vassal's own by name (the stem
    /// rule could take another host's node), and only when a subscription
    /// server is known.
    pub(super) fn sweep_dead_nodes(&mut self) {
        if !self.s.can_unsubscribe || self.stage != Stage::Rolling {
            return;
        }
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return;
        };
        let mut sends = Vec::new();
        for (i, v) in self.vassals.iter().enumerate() {
            let own = nodes::exact_names(&self.s.node_match, &v.name);
            if own.is_empty() {
                continue;
            }
            // Nodes last announced before `born_s` are a dead process's.
            let dead_before: Option<(i64, &str)> = match emp.vassal(&v.name) {
                Some(r) if r.cursed != 0 => Some((i64::MAX, "it is dying (cursed)")),
                // A new process (its record's first_run) that does not accept
                // yet: the node was announced by the one that died.
                Some(r) if r.accepting == 0 => Some((r.first_run, "it died and is starting again")),
                None if emp.blacklisted(&v.name).is_some() => {
                    Some((i64::MAX, "it died and is in the Emperor's blacklist"))
                }
                _ => None,
            };
            let Some((born_s, why)) = dead_before else {
                continue;
            };
            for (key, n) in fr.nodes() {
                // Both on our clock: `born_s` is the Emperor's, the
                // snapshot was put on it (`clocks`).
                if !own.contains(&n.name) || n.death_mark != 0 || n.last_check >= born_s {
                    continue;
                }
                if v.swept
                    .iter()
                    .any(|(name, lc)| *name == n.name && *lc == n.last_check)
                {
                    continue;
                }
                sends.push((
                    i,
                    key.to_string(),
                    n.name.clone(),
                    n.modifier1,
                    n.last_check,
                    why,
                ));
            }
        }
        for (i, key, node, modifier1, last_check, why) in sends {
            let name = self.vassals[i].name.clone();
            self.vassals[i].swept.push((node.clone(), last_check));
            self.out.push_back(Action::Unsubscribe {
                vassal: name.clone(),
                key: key.clone(),
                node: node.clone(),
                modifier1,
            });
            self.report(Event::StaleNodeRemoved {
                vassal: name,
                key,
                node,
                why: why.to_string(),
            });
        }
    }
}
