//! Stopping (nothing new is touched) and finishing (the outcome).

use super::*;

impl Engine {
    pub(super) fn stop(&mut self, why: String) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(why.clone());
        if self.stage == Stage::Rolling {
            self.report(Event::Stopping { why });
        }
        for i in 0..self.vassals.len() {
            self.apply(i, Fact::Stop, String::new());
        }
    }

    pub(super) fn maybe_finish(&mut self) {
        if self.stage != Stage::Rolling {
            return;
        }
        if self.vassals.iter().any(|v| v.phase.in_flight()) {
            return;
        }
        if !self.undone_drains_settled() {
            return;
        }
        let idle = self.vassals.iter().any(|v| v.phase == Phase::Idle);
        if idle && self.stopping.is_none() {
            match self.give_up_at() {
                Some(at) if self.now.mono_ms >= at => {
                    let why = if self.s.canary > 0
                        && !self.canary_passed
                        && !self.canaries.is_empty()
                    {
                        format!(
                            "the canary was not live for --min-ready within {} s",
                            self.s.timeout_ms / 1000
                        )
                    } else if !self.router_clock.measured() {
                        "no node announced on the fastrouter read over TCP within a whole announce window: its clock could not be measured, so no node's age could be judged and no serving vassal was touched".to_string()
                    } else {
                        format!(
                            "nothing could be touched for {} s without breaking K",
                            self.s.timeout_ms / 1000
                        )
                    };
                    self.stop(why);
                }
                _ => return,
            }
        }
        self.finish();
    }

    pub(super) fn finish_precondition(&mut self, why: String) {
        self.precondition = Some(why);
        self.finish();
    }

    pub(super) fn finish(&mut self) {
        self.stage = Stage::Finished;
        let not_reached = self
            .stopping
            .clone()
            .unwrap_or_else(|| "not reached".to_string());
        let mut reloaded = Vec::new();
        let mut failed = Vec::new();
        let mut untouched = Vec::new();
        for v in &self.vassals {
            match v.phase {
                Phase::Subscribed => reloaded.push(v.name.clone()),
                Phase::Failed => {
                    let (r, d) = v
                        .failure
                        .clone()
                        .unwrap_or((FailReason::TouchError, String::new()));
                    failed.push((v.name.clone(), r, d));
                }
                Phase::Skipped => untouched.push((v.name.clone(), v.skipped_why.clone())),
                _ => untouched.push((
                    v.name.clone(),
                    match (&self.precondition, &v.wait_why) {
                        (Some(p), _) => p.clone(),
                        (None, Some(w)) => format!("never touched, it was not serving: {w}"),
                        (None, None) => not_reached.clone(),
                    },
                )),
            }
        }
        let skipped = self
            .vassals
            .iter()
            .filter(|v| v.phase == Phase::Skipped)
            .count();
        let (status, summary) = if let Some(p) = &self.precondition {
            (
                Status::Precondition(p.clone()),
                format!("nothing touched: {p}"),
            )
        } else if self.interrupted {
            (
                Status::Interrupted,
                "interrupted; in-flight vassals were let finish".to_string(),
            )
        } else if failed.is_empty() && untouched.len() == skipped {
            (
                Status::Completed,
                format!("{} vassal(s) reloaded", reloaded.len()),
            )
        } else {
            (
                Status::Failed,
                self.stopping
                    .clone()
                    .unwrap_or_else(|| "some vassals failed".into()),
            )
        };
        let outcome = Outcome {
            status,
            reloaded,
            failed,
            untouched,
            lowest_live: self.lowest_kept(),
            min_live: self.min_live.clone(),
            elapsed_ms: self.elapsed(),
            summary,
        };
        self.out.push_back(Action::Finish(outcome));
    }

    /// The lowest live count per key while something was in flight
    /// (`update_live`); a key nothing was in flight for kept its current
    /// count.
    fn lowest_kept(&self) -> BTreeMap<String, usize> {
        self.min_live
            .keys()
            .map(|k| {
                let low = self.lowest.get(k).or_else(|| self.live.get(k));
                (k.clone(), low.copied().unwrap_or(0))
            })
            .collect()
    }
}
