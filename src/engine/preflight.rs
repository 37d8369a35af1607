//! The checks made once both sockets answered, before anything is touched:
//! the Emperor watches this directory, every config maps to its nodes, and K
//! can be kept per key.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

impl Engine {
    pub(super) fn preflight(&mut self) {
        // Both present: checked by the caller.
        let (Some(emp), Some(fr)) = (self.emp.clone(), self.fr.clone()) else {
            return;
        };
        let wall = self.now.wall_s;
        // Nothing is in flight yet: every vassal counts. Kept for `status`
        // even if a check below refuses.
        self.preflight_live = self.live_now();
        if let Some(dir) = &self.s.emperor_dir {
            let norm = |d: &str| d.trim_end_matches('/').to_string();
            if !emp.snap.emperor.is_empty()
                && !emp.snap.emperor.iter().any(|d| norm(d) == norm(dir))
            {
                return self.finish_precondition(format!(
                    "the Emperor behind the emperor stats socket watches {}, not {dir}",
                    emp.snap.emperor.join(", ")
                ));
            }
        }
        // A uWSGI whose reloads are known not to work (docs/VERSIONS.md):
        // refused, nothing touched, unless the operator accepts the risk.
        for (src, v) in [("Emperor", &emp.snap.version), ("fastrouter", &fr.version)] {
            if let Some(defect) = crate::uwsgi_version::known_reload_defect(v) {
                if !self.s.accept_uwsgi_defect {
                    return self.finish_precondition(format!(
                        "the {src} runs uWSGI {v}: {defect}; upgrade it, or pass --accept-uwsgi-defect to reload anyway"
                    ));
                }
                self.report(Event::Warning {
                    vassal: None,
                    message: format!("the {src} runs uWSGI {v}: {defect} (--accept-uwsgi-defect)"),
                });
            }
        }
        // What differs by version and does not stop a rollout is named
        // once per version (docs/VERSIONS.md): the operator sees it where
        // the doctor's other findings are.
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
        if let Some(t) = self.s.stale_since_s.filter(|t| *t > wall + 1) {
            self.report(Event::Warning {
                vassal: None,
                message: format!("--stale-since {t} is {} s in the future: every vassal is stale, and stays stale after its reload", t - wall),
            });
        }
        if self.vassals.is_empty() {
            return self.finish_precondition("no vassal configs to reload".into());
        }
        let unknown: Vec<&str> = self
            .vassals
            .iter()
            .filter(|v| emp.vassal(&v.name).is_none() && emp.blacklisted(&v.name).is_none())
            .map(|v| v.name.as_str())
            .collect();
        if !unknown.is_empty() {
            return self.finish_precondition(format!(
                "the Emperor does not know {} (expected every config in the directory to be a running or blacklisted vassal; is it watching this directory?)",
                unknown.join(", ")
            ));
        }
        // Links: does the Emperor look at the file we are about to touch?
        for v in &self.vassals {
            let (Some(other), Some(st)) =
                (self.s.other_mode_mtimes.get(&v.name), emp.vassal(&v.name))
            else {
                continue;
            };
            if st.last_mod == *other && *other != v.known_mtime {
                return self.finish_precondition(if self.s.touch_target {
                    format!("{}: the Emperor's last_mod is the link's own mtime, so it runs with --emperor-nofollow and would not notice a touch of the target; drop --touch-target", v.name)
                } else {
                    format!("{}: the Emperor's last_mod is the link target's mtime, so it follows symlinks and would not notice a touch of the link; run it with --emperor-nofollow, or pass --touch-target (one link per target)", v.name)
                });
            }
        }
        // Mapping, both ways.
        let rule = self.s.node_match.clone();
        let mut members: BTreeMap<String, usize> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut nodeless = Vec::new();
        let mut unavailable = Vec::new();
        for v in &self.vassals {
            let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
            let keys: BTreeSet<&str> = self
                .matcher
                .nodes_of(&v.name, pid, &fr)
                .map(|(k, _)| k)
                .collect();
            if keys.is_empty() && nodes::emperor_healthy(&emp, &v.name) {
                nodeless.push(v.name.clone());
            }
            if keys.is_empty() {
                warnings.push((
                    Some(v.name.clone()),
                    "no fastrouter node matches it (expected the address its config subscribes with, or a node name with the config's stem; see --node-name); it is not live, and is waited for until it announces or stays silent for a whole subscribe-freq".to_string(),
                ));
            }
        }
        // Every vassal that is not serving is named with its class and the
        // evidence: what the rollout will do with it follows from the class
        // (fsm/AVAILABILITY.md), and a vassal failing before the rollout is
        // not evidence against the new release.
        let mut waiting_nodes: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..self.vassals.len() {
            let (class, _, why) = self.availability_why(i);
            if class == Availability::Serving {
                continue;
            }
            if matches!(class, Availability::Unrouted | Availability::Starting) {
                let v = &self.vassals[i];
                let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                for (k, _) in self.matcher.nodes_of(&v.name, pid, &fr) {
                    *waiting_nodes.entry(k.to_string()).or_default() += 1;
                }
            }
            unavailable.push((self.vassals[i].name.clone(), class, why));
        }
        let mut unowned_fresh = Vec::new();
        for (key, node) in fr.nodes() {
            let owned = self.vassals.iter().any(|v| {
                let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                nodes::matches(&rule, &v.name, pid, node)
            });
            let fresh = nodes::node_fresh(node, self.router_now_s(), self.s.tolerance_s(None));
            // A key's nodes, for K + 1: each of ours (the rollout brings it
            // back), and another host's only while fresh: a stale or dead
            // node lingering in the stats serves nobody, and counting it
            // would promise a slot the rollout never gets.
            if owned || fresh {
                *members.entry(key.to_string()).or_default() += 1;
            }
            if !owned {
                if fresh {
                    unowned_fresh.push(node.name.clone());
                }
                warnings.push((
                    None,
                    format!(
                        "node {} under key {key} matches no vassal here; it counts toward K for {key} while {} (another host?)",
                        node.name,
                        if fresh { "fresh" } else { "stale, so it does not count now" }
                    ),
                ));
            }
        }
        // An accepting vassal with no node, beside fresh nodes that match no
        // vassal: most likely its node is one of those and the mapping is
        // wrong. Treated as down it would be touched without budget, so
        // several at once could take a key below K: refuse.
        if !nodeless.is_empty() && !unowned_fresh.is_empty() && !self.s.allow_downtime {
            return self.finish_precondition(format!(
                "cannot tell which fastrouter node belongs to {} (fresh nodes matching no vassal: {}); expected node names with the config's stem, or pass --node-name TEMPLATE (or --allow-downtime)",
                nodeless.join(", "),
                unowned_fresh.join(", ")
            ));
        }
        let live = self.preflight_live.clone();
        let our_keys: BTreeSet<String> = self
            .vassals
            .iter()
            .flat_map(|v| {
                let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                self.matcher
                    .nodes_of(&v.name, pid, &fr)
                    .map(|(k, _)| k.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let k = self.s.min_live;
        for key in &our_keys {
            // Nodes that serve or are about to (live now, or of a vassal
            // that accepts or starts): a stale or death-marked node listed
            // beside them serves nobody, and counting it would let K and
            // --max-unavailable promise a slot the rollout never gets.
            let l = live.get(key).copied().unwrap_or(0);
            let total = members.get(key).copied().unwrap_or(0);
            let mut eff = k;
            if total < k + 1 {
                if !self.s.allow_downtime {
                    return self.finish_precondition(format!(
                        "key {key} has {total} node(s); keeping {k} live while reloading needs at least {} (pass --allow-downtime to accept fewer)",
                        k + 1
                    ));
                }
                eff = total.saturating_sub(1);
                warnings.push((
                    None,
                    format!("key {key} has {total} node(s): it will go down to {eff} live (--allow-downtime)"),
                ));
            }
            if l < eff {
                // Vassals that accept but have not announced yet, or are
                // starting, will be live without anyone touching them: the
                // rollout waits for them (within --timeout).
                let soon = l + waiting_nodes.get(key).copied().unwrap_or(0);
                if soon >= eff {
                    warnings.push((
                        None,
                        format!("key {key} has {l} live node(s) now, fewer than K = {eff}: waiting for the vassals that are starting or not yet announced"),
                    ));
                } else if !self.s.allow_downtime {
                    return self.finish_precondition(format!(
                        "key {key} has {l} live node(s), fewer than --minimum-active-vassals {k}"
                    ));
                } else {
                    eff = l.saturating_sub(1).min(eff);
                    warnings.push((
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
        for (vassal, message) in warnings {
            self.report(Event::Warning { vassal, message });
        }
        for (vassal, class, why) in unavailable {
            self.report(Event::Unavailable {
                vassal,
                class: class.as_str(),
                why,
            });
        }
        self.stage = Stage::Rolling;
        self.live = live.clone();
        self.report(Event::Plan {
            vassals: self.vassals.iter().map(|v| v.name.clone()).collect(),
            min_live: self.min_live.clone(),
            live,
        });
    }
}
