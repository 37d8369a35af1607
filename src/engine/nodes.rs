//! Linking Emperor vassals to fastrouter nodes, and deciding who is live.

use std::collections::BTreeMap;

use super::settings::NodeMatch;
use crate::stats::{EmperorSnapshot, FastrouterSnapshot, Node};

/// A config file name without its last extension: `app_01.ini` -> `app_01`.
pub fn stem(name: &str) -> &str {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    }
}

/// Does `node` belong to the vassal whose config is `config` and whose
/// master pid is `pid` (0 if unknown)?
pub fn matches(rule: &NodeMatch, config: &str, pid: i64, node: &Node) -> bool {
    // The credential pid (subscriptions-use-credentials) is exact while it
    // is current; after a crash it is stale, but then the pid differs.
    if node.pid > 0 && pid > 0 && node.pid == pid {
        return true;
    }
    match rule {
        NodeMatch::Stem => {
            // Only path-like names have a stem; `127.0.0.1:3031` has none.
            node.name.contains('/') && stem(&node.name) == stem(config)
        }
        NodeMatch::Template(t) => node.name == render(t, config),
        NodeMatch::Names(names) => {
            names.get(config).is_some_and(|n| *n == node.name)
                || matches(&NodeMatch::Stem, config, pid, node)
        }
    }
}

pub fn render(template: &str, config: &str) -> String {
    template
        .replace("{name}", config)
        .replace("{stem}", stem(config))
}

/// A node that can take requests now: not death-marked, and announced within
/// the fastrouter's tolerance (stale nodes linger with `death_mark == 0`).
pub fn node_fresh(node: &Node, wall_s: i64, tolerance_s: i64) -> bool {
    // Saturating: the stats may say anything (a garbled socket).
    node.death_mark == 0 && wall_s.saturating_sub(node.last_check) <= tolerance_s
}

/// The nodes of one vassal: (key, node).
pub fn nodes_of<'a>(
    rule: &'a NodeMatch,
    config: &'a str,
    pid: i64,
    fr: &'a FastrouterSnapshot,
) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
    fr.nodes()
        .filter(move |(_, n)| matches(rule, config, pid, n))
}

/// Is the vassal serving, as far as the Emperor can tell?
///
/// A blacklist entry alone does not make it down: the entry stays until the
/// vassal serves its first request (loyalty), long after a crash-looping
/// vassal came back and accepts (SEMANTICS.md §1). Treating such a vassal as
/// down would let the scheduler touch it without budget.
pub fn emperor_healthy(emp: &EmperorSnapshot, config: &str) -> bool {
    emp.vassal(config)
        .is_some_and(|v| v.accepting == 1 && v.cursed == 0 && v.pid > 0)
}

/// Live counts per key.
///
/// `ours` lists every vassal of this Emperor with whether this rollout lets
/// it count (not in flight, not failed). A node that matches none of ours is
/// another host's and counts on its own freshness.
pub fn live_per_key(
    rule: &NodeMatch,
    ours: &[(&str, bool)],
    emp: &EmperorSnapshot,
    fr: &FastrouterSnapshot,
    wall_s: i64,
    tolerance_s: i64,
) -> BTreeMap<String, usize> {
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    let pids: Vec<i64> = ours
        .iter()
        .map(|(c, _)| emp.vassal(c).map_or(0, |v| v.pid))
        .collect();
    for (key, node) in fr.nodes() {
        let entry = live.entry(key.to_string()).or_default();
        let owner = ours
            .iter()
            .zip(&pids)
            .find(|((c, _), pid)| matches(rule, c, **pid, node));
        let counts = match owner {
            Some(((c, eligible), _)) => *eligible && emperor_healthy(emp, c),
            None => true,
        };
        if counts && node_fresh(node, wall_s, tolerance_s) {
            *entry += 1;
        }
    }
    live
}
