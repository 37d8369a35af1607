//! The checks made once both sockets answered, before anything is touched:
//! the Emperor watches this directory, every config maps to its nodes, and K
//! can be kept per key. One step per concern, in the order the operator
//! reads them; the first refusal ends preflight with nothing touched.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::stats::FastrouterSnapshot;

/// What preflight found about the vassals and the nodes, before deciding K.
#[derive(Default)]
struct Survey {
    /// Per key: each node of ours (the rollout brings it back) and each
    /// fresh node of another host's.
    members: BTreeMap<String, usize>,
    /// Per key: nodes of ours that are starting or not yet announced.
    waiting_nodes: BTreeMap<String, usize>,
    /// The keys our vassals have nodes in.
    our_keys: BTreeSet<String>,
    warnings: Vec<(Option<String>, String)>,
    /// Accepting vassals with no node at all.
    nodeless: Vec<String>,
    /// Fresh nodes that match no vassal of ours.
    unowned_fresh: Vec<String>,
    unavailable: Vec<(String, Availability, String)>,
}

impl Engine {
    pub(super) fn preflight(&mut self) {
        // Both present: checked by the caller.
        let (Some(emp), Some(fr)) = (self.emp.clone(), self.fr.clone()) else {
            return;
        };
        // Nothing is in flight yet: every vassal counts. Kept for `status`
        // even if a check below refuses.
        self.preflight_live = self.live_now();
        let checked = self
            .check_directory(&emp)
            .and_then(|()| self.check_versions(&emp, &fr))
            .and_then(|()| self.check_vassals_known(&emp))
            .and_then(|()| self.check_links(&emp));
        if let Err(why) = checked {
            return self.finish_precondition(why);
        }
        let Some(survey) = self.budget_keys(&emp, &fr) else {
            return;
        };
        for (vassal, class, why) in survey.unavailable {
            self.report(Event::Unavailable {
                vassal,
                class: class.as_str(),
                why,
            });
        }
        self.stage = Stage::Rolling;
        let live = self.preflight_live.clone();
        self.live = live.clone();
        self.report(Event::Plan {
            vassals: self.vassals.iter().map(|v| v.name.clone()).collect(),
            min_live: self.min_live.clone(),
            live,
        });
    }

    /// A router read over TCP was just measured (`clocks`): the preflight's
    /// live counts and K per key were taken on its raw clock. While nothing
    /// has left Idle they are taken again, as a preflight would now: a key
    /// short of K stops the rollout with nothing touched, `--max-unavailable`
    /// and `--allow-downtime` get their real counts. The wait for a slot
    /// counts from now.
    pub(super) fn on_clock_measured(&mut self) {
        self.waiting_since = None;
        if self.stage != Stage::Rolling || self.vassals.iter().any(|v| v.phase != Phase::Idle) {
            return;
        }
        let (Some(emp), Some(fr)) = (self.emp.clone(), self.fr.clone()) else {
            return;
        };
        self.preflight_live = self.live_now();
        self.min_live.clear();
        if self.budget_keys(&emp, &fr).is_none() {
            return;
        }
        let k: Vec<String> = self
            .min_live
            .iter()
            .map(|(key, k)| format!("{key}={k}"))
            .collect();
        self.report(Event::Warning {
            vassal: None,
            message: format!(
                "the fastrouter's clock is measured: live and K per key taken again on it (K: {})",
                k.join(", ")
            ),
        });
        self.live = self.preflight_live.clone();
    }

    /// K per key from the survey of both snapshots (`key_budgets`), its
    /// warnings reported; `None` when a key refuses the rollout (finished
    /// as a precondition, nothing touched). The preflight and a clock's
    /// first measure ask it alike.
    fn budget_keys(&mut self, emp: &IndexedEmperor, fr: &FastrouterSnapshot) -> Option<Survey> {
        let mut survey = self.survey(emp, fr);
        if let Err(why) = self.key_budgets(&mut survey) {
            self.finish_precondition(why);
            return None;
        }
        for (vassal, message) in std::mem::take(&mut survey.warnings) {
            self.report(Event::Warning { vassal, message });
        }
        Some(survey)
    }

    /// The Emperor behind the stats socket watches this directory.
    fn check_directory(&self, emp: &IndexedEmperor) -> Result<(), String> {
        let Some(dir) = &self.s.emperor_dir else {
            return Ok(());
        };
        let norm = |d: &str| d.trim_end_matches('/').to_string();
        if !emp.snap.emperor.is_empty() && !emp.snap.emperor.iter().any(|d| norm(d) == norm(dir)) {
            return Err(format!(
                "the Emperor behind the emperor stats socket watches {}, not {dir}",
                emp.snap.emperor.join(", ")
            ));
        }
        Ok(())
    }

    /// A uWSGI whose reloads are known not to work (docs/VERSIONS.md) is
    /// refused, nothing touched, unless the operator accepts the risk; what
    /// differs by version and does not stop a rollout is named once per
    /// version, where the doctor's other findings are. Also warns of a
    /// `--stale-since` in the future.
    fn check_versions(
        &mut self,
        emp: &IndexedEmperor,
        fr: &FastrouterSnapshot,
    ) -> Result<(), String> {
        for (src, v) in [("Emperor", &emp.snap.version), ("fastrouter", &fr.version)] {
            if let Some(defect) = crate::uwsgi_version::known_reload_defect(v) {
                if !self.s.accept_uwsgi_defect {
                    return Err(format!(
                        "the {src} runs uWSGI {v}: {defect}; upgrade it, or pass --accept-uwsgi-defect to reload anyway"
                    ));
                }
                self.report(Event::Warning {
                    vassal: None,
                    message: format!("the {src} runs uWSGI {v}: {defect} (--accept-uwsgi-defect)"),
                });
            }
        }
        let mut seen = Vec::new();
        for v in [&emp.snap.version, &fr.version] {
            if seen.contains(v) {
                continue;
            }
            seen.push(v.clone());
            for d in crate::uwsgi_version::defects_of(v) {
                if d.impact == crate::uwsgi_version::Impact::Advisory {
                    self.report(Event::Warning {
                        vassal: None,
                        message: format!("{} ({})", d.summary, d.evidence),
                    });
                }
            }
        }
        let wall = self.now.wall_s;
        if let Some(t) = self.s.stale_since_s.filter(|t| *t > wall + 1) {
            self.report(Event::Warning {
                vassal: None,
                message: format!("--stale-since {t} is {} s in the future: every vassal is stale, and stays stale after its reload", t - wall),
            });
        }
        Ok(())
    }

    /// There is something to reload, and the Emperor knows every config.
    fn check_vassals_known(&self, emp: &IndexedEmperor) -> Result<(), String> {
        if self.vassals.is_empty() {
            return Err("no vassal configs to reload".into());
        }
        let unknown: Vec<&str> = self
            .vassals
            .iter()
            .filter(|v| emp.vassal(&v.name).is_none() && emp.blacklisted(&v.name).is_none())
            .map(|v| v.name.as_str())
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "the Emperor does not know {} (expected every config in the directory to be a running or blacklisted vassal; is it watching this directory?)",
                unknown.join(", ")
            ));
        }
        Ok(())
    }

    /// Links: does the Emperor look at the file we are about to touch?
    fn check_links(&self, emp: &IndexedEmperor) -> Result<(), String> {
        for v in &self.vassals {
            let (Some(other), Some(st)) =
                (self.s.other_mode_mtimes.get(&v.name), emp.vassal(&v.name))
            else {
                continue;
            };
            if st.last_mod == *other && *other != v.known_mtime {
                return Err(if self.s.touch_target {
                    format!("{}: the Emperor's last_mod is the link's own mtime, so it runs with --emperor-nofollow and would not notice a touch of the target; drop --touch-target", v.name)
                } else {
                    format!("{}: the Emperor's last_mod is the link target's mtime, so it follows symlinks and would not notice a touch of the link; run it with --emperor-nofollow, or pass --touch-target (one link per target)", v.name)
                });
            }
        }
        Ok(())
    }

    /// The mapping both ways (each vassal's nodes, each node's vassal) and
    /// every vassal that is not serving, with its class and the evidence:
    /// what the rollout will do with it follows from the class
    /// (fsm/AVAILABILITY.md), and a vassal failing before the rollout is
    /// not evidence against the new release.
    fn survey(&self, emp: &IndexedEmperor, fr: &FastrouterSnapshot) -> Survey {
        let mut sv = Survey::default();
        for v in &self.vassals {
            let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
            let keys: BTreeSet<&str> = self
                .matcher
                .nodes_of(&v.name, pid, fr)
                .map(|(k, _)| k)
                .collect();
            sv.our_keys.extend(keys.iter().map(|k| k.to_string()));
            if keys.is_empty() && nodes::emperor_healthy(emp, &v.name) {
                sv.nodeless.push(v.name.clone());
            }
            if keys.is_empty() {
                sv.warnings.push((
                    Some(v.name.clone()),
                    "no fastrouter node matches it (expected the address its config subscribes with, or a node name with the config's stem; see --node-name); it is not live, and is waited for until it announces or stays silent for a whole subscribe-freq".to_string(),
                ));
            }
        }
        for i in 0..self.vassals.len() {
            let (class, _, why) = self.availability_why(i);
            if class == Availability::Serving {
                continue;
            }
            if matches!(class, Availability::Unrouted | Availability::Starting) {
                let v = &self.vassals[i];
                let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                for (k, _) in self.matcher.nodes_of(&v.name, pid, fr) {
                    *sv.waiting_nodes.entry(k.to_string()).or_default() += 1;
                }
            }
            sv.unavailable
                .push((self.vassals[i].name.clone(), class, why));
        }
        let rule = &self.s.node_match;
        for (key, node) in fr.nodes() {
            let owned = self.vassals.iter().any(|v| {
                let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                nodes::matches(rule, &v.name, pid, node)
            });
            let fresh = nodes::node_fresh(node, self.router_now_s(), self.s.tolerance_s(None));
            // A key's nodes, for K + 1: each of ours (the rollout brings it
            // back), and another host's only while fresh: a stale or dead
            // node lingering in the stats serves nobody, and counting it
            // would promise a slot the rollout never gets.
            if owned || fresh {
                *sv.members.entry(key.to_string()).or_default() += 1;
            }
            if !owned {
                if fresh {
                    sv.unowned_fresh.push(node.name.clone());
                }
                sv.warnings.push((
                    None,
                    format!(
                        "node {} under key {key} matches no vassal here; it counts toward K for {key} while {} (another host?)",
                        node.name,
                        if fresh { "fresh" } else { "stale, so it does not count now" }
                    ),
                ));
            }
        }
        sv
    }

    /// K per key: refused where it cannot be kept (unless
    /// `--allow-downtime`), raised by `--max-unavailable`. An accepting
    /// vassal with no node beside fresh nodes that match no vassal most
    /// likely has one of those and a wrong mapping: treated as down it would
    /// be touched without budget, so several at once could take a key below
    /// K: refused.
    /// Each key's K goes into `min_live` as it is decided (a refusal keeps
    /// those decided before it).
    fn key_budgets(&mut self, sv: &mut Survey) -> Result<(), String> {
        if !sv.nodeless.is_empty() && !sv.unowned_fresh.is_empty() && !self.s.allow_downtime {
            return Err(format!(
                "cannot tell which fastrouter node belongs to {} (fresh nodes matching no vassal: {}); expected node names with the config's stem, or pass --node-name TEMPLATE (or --allow-downtime)",
                sv.nodeless.join(", "),
                sv.unowned_fresh.join(", ")
            ));
        }
        let live = self.preflight_live.clone();
        let k = self.s.min_live;
        for key in &sv.our_keys {
            let l = live.get(key).copied().unwrap_or(0);
            let total = sv.members.get(key).copied().unwrap_or(0);
            let mut eff = k;
            if total < k + 1 {
                if !self.s.allow_downtime {
                    return Err(format!(
                        "key {key} has {total} node(s); keeping {k} live while reloading needs at least {} (pass --allow-downtime to accept fewer)",
                        k + 1
                    ));
                }
                eff = total.saturating_sub(1);
                sv.warnings.push((
                    None,
                    format!("key {key} has {total} node(s): it will go down to {eff} live (--allow-downtime)"),
                ));
            }
            if l < eff {
                // Vassals that accept but have not announced yet, or are
                // starting, will be live without anyone touching them: the
                // rollout waits for them (within --timeout).
                let soon = l + sv.waiting_nodes.get(key).copied().unwrap_or(0);
                // A router read over TCP whose clock is not measured yet:
                // its nodes' ages mean nothing so far; nothing is touched
                // until it is (`clock_allows`), and the count is waited for.
                let unmeasured = self
                    .router_clock
                    .unmeasured(crate::stats::split_router_key(key).1);
                if unmeasured {
                    sv.warnings.push((
                        None,
                        format!("key {key}: its fastrouter is read over TCP and its clock is not measured yet ({l} live by our clock): nothing is touched until a node's announce measures it"),
                    ));
                } else if soon >= eff {
                    sv.warnings.push((
                        None,
                        format!("key {key} has {l} live node(s) now, fewer than K = {eff}: waiting for the vassals that are starting or not yet announced"),
                    ));
                } else if !self.s.allow_downtime {
                    return Err(format!(
                        "key {key} has {l} live node(s), fewer than --minimum-active-vassals {k}"
                    ));
                } else {
                    eff = l.saturating_sub(1).min(eff);
                    sv.warnings.push((
                        None,
                        format!("key {key} has only {l} live node(s) (--allow-downtime)"),
                    ));
                }
            }
            if let Some(u) = self.s.max_unavailable {
                // --max-unavailable raises K; it never lowers it. Counted
                // over the live nodes: those a reload takes out.
                eff = eff.max(l.saturating_sub(u.of(l)));
            }
            self.min_live.insert(key.clone(), eff);
        }
        Ok(())
    }
}
