//! Who is live, and who may be started next without breaking K per key.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// A vassal not accepting whose last (re)start is more recent than this is
/// starting or reloading: touching it could wedge it (FACTS.md 4), so it is
/// waited for. Older than this, it is down and is reloaded without budget.
const STARTING_GRACE_S: i64 = 10;

impl Engine {
    pub(super) fn vassal_live(&self, v: &Vassal) -> bool {
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return false;
        };
        let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
        nodes::emperor_healthy(emp, &v.name)
            && self
                .matcher
                .nodes_of(&v.name, pid, fr)
                .any(|(_, n)| nodes::node_fresh(n, self.now.wall_s, self.s.node_tolerance_s))
    }

    /// Not accepting, and (re)started or asked to reload only just now: a
    /// reload now could be the second one (FACTS.md 4).
    pub(super) fn starting(&self, v: &Vassal) -> bool {
        let Some(emp) = self.emp.as_ref() else {
            return true;
        };
        match emp.vassal(&v.name) {
            Some(s) => {
                s.accepting == 0
                    && s.cursed == 0
                    && self.now.wall_s.saturating_sub(s.last_run) < STARTING_GRACE_S
            }
            None => false,
        }
    }

    pub(super) fn live_now(&self) -> BTreeMap<String, usize> {
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return BTreeMap::new();
        };
        let ours: Vec<(&str, bool)> = self
            .vassals
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    match v.phase {
                        Phase::Idle => true,
                        // Live again only once it has stayed up for --min-ready.
                        Phase::Subscribed => self.now.mono_ms >= v.done_ms + self.s.min_ready_ms,
                        _ => false,
                    },
                )
            })
            .collect();
        nodes::live_per_key(
            &self.matcher,
            &ours,
            emp,
            fr,
            self.now.wall_s,
            self.s.node_tolerance_s,
        )
    }

    pub(super) fn k_for(&self, key: &str) -> usize {
        self.min_live.get(key).copied().unwrap_or(self.s.min_live)
    }

    pub(super) fn schedule(&mut self) {
        if self.stage != Stage::Rolling || self.stopping.is_some() {
            return;
        }
        // Decide only on what both sockets said last: no answer, no touch.
        if self.reads.iter().any(|r| r.last_error.is_some()) {
            return;
        }
        if self.canary_holds() {
            // The wait's clock runs, so a canary that never becomes live
            // ends the rollout after --timeout instead of holding it forever.
            if self.waiting_since.is_none()
                && self.stopping.is_none()
                && !self.vassals.iter().any(|v| v.phase.in_flight())
            {
                self.waiting_since = Some(self.now.mono_ms);
                self.report(Event::Waiting {
                    why: "waiting for the canary to be live for --min-ready".into(),
                });
            }
            return;
        }
        let mut live = self.live_now();
        let mut in_flight = self.vassals.iter().filter(|v| v.phase.in_flight()).count();
        let mut started = false;
        let mut blocked: Option<String> = None;
        for i in 0..self.vassals.len() {
            if self.vassals[i].phase != Phase::Idle {
                continue;
            }
            if in_flight >= self.s.max_parallel {
                break;
            }
            let v = &self.vassals[i];
            if self.starting(v) {
                blocked.get_or_insert(format!("{} is starting or reloading on its own", v.name));
                continue;
            }
            let keys: BTreeSet<String> = match (self.emp.as_ref(), self.fr.as_ref()) {
                (Some(emp), Some(fr)) => {
                    let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                    self.matcher
                        .nodes_of(&v.name, pid, fr)
                        .filter(|(_, n)| {
                            nodes::node_fresh(n, self.now.wall_s, self.s.node_tolerance_s)
                        })
                        .map(|(k, _)| k.to_string())
                        .collect()
                }
                _ => continue,
            };
            let is_live = self.vassal_live(v);
            if is_live {
                if let Some(k) = keys
                    .iter()
                    .find(|k| live.get(*k).copied().unwrap_or(0) < self.k_for(k) + 1)
                {
                    blocked.get_or_insert(format!(
                        "touching {} would leave key {k} with {} live, below {}",
                        v.name,
                        live.get(k).copied().unwrap_or(0).saturating_sub(1),
                        self.k_for(k)
                    ));
                    continue;
                }
                for k in &keys {
                    if let Some(l) = live.get_mut(k) {
                        *l -= 1;
                    }
                }
            }
            let sig = if self.s.drain_timeout_ms.is_some() && is_live && !keys.is_empty() {
                Signal::StartDrain
            } else {
                Signal::Start
            };
            self.apply(i, sig, String::new());
            in_flight += 1;
            started = true;
            if self.s.canary > 0 && !self.canary_passed {
                self.canaries.push(i);
                if self.canaries.len() >= self.s.canary {
                    break;
                }
            }
        }
        if started || in_flight > 0 {
            self.waiting_since = None;
        } else if let Some(why) = blocked {
            if self.waiting_since.is_none() {
                self.waiting_since = Some(self.now.mono_ms);
                self.report(Event::Waiting { why });
            }
        }
    }

    /// With `--canary N`: once N vassals are started, nothing more until
    /// each is subscribed and has stayed live for `--min-ready`. A failed
    /// canary stops the rollout whatever the failure policy.
    pub(super) fn canary_holds(&mut self) -> bool {
        // A canary whose config went before its touch proves nothing: the
        // next vassal started takes its place.
        let vassals = &self.vassals;
        self.canaries
            .retain(|&i| vassals[i].phase != Phase::Skipped);
        if self.s.canary == 0 || self.canary_passed || self.canaries.len() < self.s.canary {
            return false;
        }
        let failed = self
            .canaries
            .iter()
            .find(|&&i| self.vassals[i].phase == Phase::Failed)
            .map(|&i| self.vassals[i].name.clone());
        if let Some(name) = failed {
            self.stop(format!("canary {name} failed"));
            return true;
        }
        let now = self.now.mono_ms;
        let ready = self.canaries.iter().all(|&i| {
            let v = &self.vassals[i];
            v.phase == Phase::Subscribed
                && now >= v.done_ms + self.s.min_ready_ms
                && self.vassal_live(v)
        });
        if !ready {
            return true;
        }
        self.canary_passed = true;
        let vassals = self
            .canaries
            .iter()
            .map(|&i| self.vassals[i].name.clone())
            .collect();
        self.report(Event::CanaryPassed { vassals });
        false
    }

    pub(super) fn update_live(&mut self) {
        if self.stage != Stage::Rolling || self.emp.is_none() || self.fr.is_none() {
            return;
        }
        let live = self.live_now();
        let mut changes = Vec::new();
        for (k, l) in &live {
            if !self.min_live.contains_key(k) {
                continue;
            }
            if self.live.get(k) != Some(l) {
                changes.push((k.clone(), *l));
            }
            let low = self.lowest.entry(k.clone()).or_insert(*l);
            *low = (*low).min(*l);
        }
        for k in self.min_live.keys() {
            if !live.contains_key(k) {
                self.lowest.insert(k.clone(), 0);
                if self.live.get(k).is_some_and(|l| *l != 0) {
                    changes.push((k.clone(), 0));
                }
            }
        }
        self.live = live;
        for (key, live) in changes {
            let min = self.k_for(&key);
            self.report(Event::LiveChanged { key, live, min });
        }
    }
}
