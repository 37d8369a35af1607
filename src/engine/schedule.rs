//! Who is live, and who may be started next without breaking K per key.

use std::collections::BTreeMap;

use super::*;

impl Engine {
    /// Serving: accepting, with a fresh node (see `availability`).
    pub(super) fn vassal_live(&self, i: usize) -> bool {
        self.availability(i) == Availability::Serving
    }

    /// How many fresh nodes vassal `i` has in each key: what touching it
    /// takes out of each key's live count (K is charged per node).
    pub(super) fn fresh_nodes_per_key(&self, i: usize) -> BTreeMap<String, usize> {
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return BTreeMap::new();
        };
        let v = &self.vassals[i];
        let rec = emp.vassal(&v.name);
        let pid = rec.map_or(0, |s| s.pid);
        let tolerance = self.tolerance_of(v);
        // The nodes `live_now` counts for it, no others.
        let since = self.generation_since(i, rec);
        let mut out: BTreeMap<String, usize> = BTreeMap::new();
        for (k, n) in self.matcher.nodes_of(&v.name, pid, fr) {
            if n.last_check >= since && nodes::node_fresh(n, self.router_now_s(), tolerance) {
                *out.entry(k.to_string()).or_default() += 1;
            }
        }
        out
    }

    /// Does vassal `i` have a node the fastrouter would still route to if
    /// it were fresh (not death-marked)? Such a node is drained first.
    fn has_routable_node(&self, i: usize) -> bool {
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return false;
        };
        let v = &self.vassals[i];
        let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
        self.matcher
            .nodes_of(&v.name, pid, fr)
            .any(|(_, n)| n.death_mark == 0)
    }

    pub(super) fn live_now(&self) -> BTreeMap<String, usize> {
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return BTreeMap::new();
        };
        let ours: Vec<(&str, bool, i64)> = self
            .vassals
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let may_count = match v.phase {
                    Phase::Idle => true,
                    // Live again only once it has stayed up for --min-ready.
                    Phase::Subscribed => self.now.mono_ms >= v.done_ms + self.s.min_ready_ms,
                    // Found current (--stale-since): never out of
                    // rotation; the stats decide, as for Idle. A removed
                    // config's vassal is being stopped by the Emperor.
                    Phase::Skipped => v.found_current,
                    _ => false,
                };
                // Only the nodes its running generation announced: a read
                // taken before a reload or a respawn shows the previous
                // one's. Reloaded by us: only those announced since it
                // accepted (a node under a key it left lingers until it
                // expires).
                let generation = self.generation_since(i, emp.vassal_at(i, &v.name));
                let since = match v.phase {
                    Phase::Subscribed if !v.reload.node_gone => v.reload.accepted_s.max(generation),
                    _ => generation,
                };
                (v.name.as_str(), may_count, since)
            })
            .collect();
        nodes::live_per_key(
            &self.matcher,
            &ours,
            emp,
            fr,
            self.router_now_s(),
            |c| match c {
                Some(i) => self.tolerance_of(&self.vassals[i]),
                None => self.s.tolerance_s(None),
            },
        )
    }

    pub(super) fn k_for(&self, key: &str) -> usize {
        self.min_live.get(key).copied().unwrap_or(self.s.min_live)
    }

    /// Starts what can be started now. A serving vassal is started only if
    /// every key keeps K live without its fresh nodes; a vassal proven out
    /// of service (silent, crash-looping between attempts) is started
    /// without using the budget, but within `--max-parallel`; a vassal that
    /// is starting, unrouted or gone is waited for, never touched.
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
            // --stale-since: a vassal already running a generation started
            // after the release is done without a touch (checked before the
            // parallel limit: it takes no slot).
            if self.generation(i) == Some(Generation::Current) {
                let why = self.current_why(i);
                self.apply(i, Fact::FoundCurrent, why);
                continue;
            }
            if in_flight >= self.s.max_parallel {
                break;
            }
            let serving = match self.may_start(i, &mut live).and_then(|serving| {
                self.clock_allows(i, serving)?;
                Ok(serving)
            }) {
                Ok(serving) => serving,
                Err(why) => {
                    blocked.get_or_insert(why);
                    continue;
                }
            };
            let fact = if self.s.drain_timeout_ms.is_some() && self.has_routable_node(i) {
                Fact::StartDrain
            } else {
                Fact::Start
            };
            self.apply(i, fact, String::new());
            in_flight += 1;
            started = true;
            // A canary proves the new release; one that was down already
            // would prove nothing either way.
            if serving && self.s.canary > 0 && !self.canary_passed {
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

    /// May vassal `i` (Idle) start now? A serving vassal only if every key
    /// keeps K live without its fresh nodes (then charged to `live`); one
    /// proven out of service without the budget; one starting, unrouted or
    /// gone never. `Ok(serving)`, or why it waits.
    fn may_start(&mut self, i: usize, live: &mut BTreeMap<String, usize>) -> Result<bool, String> {
        let (class, proven_down, why) = self.availability_why(i);
        let name = self.vassals[i].name.clone();
        match class {
            Availability::Serving => {
                let mine = self.fresh_nodes_per_key(i);
                let short = mine
                    .iter()
                    .find(|(k, n)| live.get(*k).copied().unwrap_or(0) < self.k_for(k) + **n);
                if let Some((k, n)) = short {
                    return Err(format!(
                        "touching {name} would leave key {k} with {} live, below {}",
                        live.get(k).copied().unwrap_or(0).saturating_sub(*n),
                        self.k_for(k)
                    ));
                }
                for (k, n) in &mine {
                    if let Some(l) = live.get_mut(k) {
                        *l -= n;
                    }
                }
                self.vassals[i].wait_why = None;
                Ok(true)
            }
            _ if proven_down => {
                self.vassals[i].was_down = Some(why);
                self.vassals[i].wait_why = None;
                Ok(false)
            }
            _ => {
                self.vassals[i].wait_why = Some(why.clone());
                Err(format!("{name}: {why}"))
            }
        }
    }

    /// A router that may be another host's (`Settings::tcp_routers`)
    /// is not judged by age before its clock is measured: until then only
    /// a vassal proven down without a clock may start (crash-looping, or
    /// silent with no node listed alive at all); a serving one, or one
    /// silent by its node's age, waits. So a fleet that is all down behind
    /// such a router is still reloaded.
    fn clock_allows(&mut self, i: usize, serving: bool) -> Result<(), String> {
        if self.router_clock.measured() {
            return Ok(());
        }
        let clock_free = !serving
            && (self.availability(i) == Availability::CrashLooping || !self.has_routable_node(i));
        if clock_free {
            return Ok(());
        }
        let why = "the fastrouter is read over TCP and may be another host's: waiting for a node to announce, which measures its clock, before judging any node fresh or stale".to_string();
        // Not `wait_why`: the vassal may well be serving; the summary
        // says why nothing was touched (`maybe_finish`).
        self.vassals[i].was_down = None;
        Err(why)
    }

    /// With `--canary N`: once N vassals are started, nothing more until
    /// each is subscribed and has stayed live for `--min-ready`. A failed
    /// canary stops the rollout whatever the failure policy.
    pub(super) fn canary_holds(&mut self) -> bool {
        // A canary whose config went before its touch, or whose drain was
        // given up (back to Idle), proves nothing: the next vassal started
        // takes its place.
        let vassals = &self.vassals;
        self.canaries
            .retain(|&i| !matches!(vassals[i].phase, Phase::Skipped | Phase::Idle));
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
                && self.vassal_live(i)
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
        // `lowest_live` is what the rollout kept while it had something
        // in flight: a count before its first touch is the setup's own
        // state (warned about at the start), or the tool still learning it
        // (a router whose clock it has not measured yet shows nothing
        // fresh: src/engine/clocks.rs), not something the rollout did.
        // Also the tick in which the last vassal left flight: a drain that
        // gave its slot back because the key fell below K (`BudgetLost`)
        // is Idle again by now, and that dip is the rollout's to report.
        // Counts on a router's own clock, not measured yet, are not what
        // the rollout kept either (`clocks`).
        let in_flight_now = self.vassals.iter().any(|v| v.phase.in_flight());
        let counting = (in_flight_now || self.in_flight_before) && self.router_clock.measured();
        self.in_flight_before = in_flight_now;
        let mut changes = Vec::new();
        for (k, l) in &live {
            if !self.min_live.contains_key(k) {
                continue;
            }
            if self.live.get(k) != Some(l) {
                changes.push((k.clone(), *l));
            }
            if counting {
                let low = self.lowest.entry(k.clone()).or_insert(*l);
                *low = (*low).min(*l);
            }
        }
        for k in self.min_live.keys().filter(|k| !live.contains_key(*k)) {
            if counting {
                self.lowest.insert(k.clone(), 0);
            }
            if self.live.get(k).is_some_and(|l| *l != 0) {
                changes.push((k.clone(), 0));
            }
        }
        self.live = live;
        for (key, live) in changes {
            let min = self.k_for(&key);
            self.report(Event::LiveChanged { key, live, min });
        }
    }
}
