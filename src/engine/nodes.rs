//! Linking Emperor vassals to fastrouter nodes, and deciding who is live.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::emperor_index::IndexedEmperor;
use super::fxhash::FxMap;
use super::settings::NodeMatch;
use crate::stats::{FastrouterSnapshot, Node, VassalStats};

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
        // A vassal whose config names its address matches that address
        // only: the stem rule would also take another host's node of the
        // same file name (two hosts, one fastrouter).
        NodeMatch::Names(names) => match names.get(config) {
            Some(ns) => ns.contains(&node.name),
            None => matches(&NodeMatch::Stem, config, pid, node),
        },
    }
}

/// The node names `config` subscribes with, where the rule knows them
/// exactly (from its config, or `--node-name`); none under the stem rule,
/// which could also match another host's node of the same file name.
pub fn exact_names(rule: &NodeMatch, config: &str) -> Vec<String> {
    match rule {
        NodeMatch::Stem => Vec::new(),
        NodeMatch::Template(t) => vec![render(t, config)],
        NodeMatch::Names(names) => names.get(config).cloned().unwrap_or_default(),
    }
}

pub fn render(template: &str, config: &str) -> String {
    template
        .replace("{name}", config)
        .replace("{stem}", stem(config))
}

/// Evidence that a node takes requests now, announced by its vassal: not
/// death-marked, announced within the fastrouter's tolerance (stale nodes
/// linger with `death_mark == 0`), and last refreshed by the vassal's own
/// packet, not the tool's (`Node::refreshed_by_vassal`): what the tool sent
/// itself is never evidence of a vassal's state.
pub fn node_fresh(node: &Node, wall_s: i64, tolerance_s: i64) -> bool {
    // Saturating: the stats may say anything (a garbled socket).
    node.death_mark == 0
        && wall_s.saturating_sub(node.last_check) <= tolerance_s
        && node.refreshed_by_vassal()
}

/// What the vassals themselves last said of each node: its `last_check`
/// from the newest snapshot in which a vassal's own packet had refreshed
/// it, while it stayed listed and not death-marked (keyed by key and name).
pub type OwnChecks = FxMap<(String, String), i64>;

/// Rewrites `fr` so that a node the tool's own packet refreshed last (an
/// early announce or an undone drain: `cores` 0, `Node::refreshed_by_vassal`)
/// shows the vassal's last own announce instead, when one was seen since
/// the node last came into rotation; without one it keeps `cores` 0 and
/// is not evidence (`node_fresh`). So the tool's packets neither make a node
/// fresh nor make a vassal's own recent announce look stale. Returns what
/// the vassals said of each node, for the next snapshot.
pub fn keep_the_vassals_word(prev: &OwnChecks, fr: &mut FastrouterSnapshot) -> OwnChecks {
    let mut next = OwnChecks::default();
    for sub in &mut fr.subscriptions {
        for n in &mut sub.nodes {
            if n.death_mark != 0 {
                // Out of rotation: what comes next starts afresh.
                continue;
            }
            let id = (sub.key.clone(), n.name.clone());
            if n.refreshed_by_vassal() {
                next.insert(id, n.last_check);
            } else if let Some(&own) = prev.get(&id) {
                n.last_check = own;
                n.cores = None;
                next.insert(id, own);
            }
        }
    }
    next
}

/// [`matches`] over one fastrouter snapshot, indexed by name, stem and pid:
/// finding a vassal's nodes costs a few hash lookups instead of a scan of
/// every node, so a rollout's work grows with the fleet, not its square.
/// The index only narrows the candidates; [`matches`] still decides, so the
/// answer is exactly the one a full scan gives.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    /// Shared: cloning a map of 1,000 node names per snapshot showed.
    rule: Option<Arc<NodeMatch>>,
    /// Flat node number -> (subscription, node) position in the snapshot.
    flat: Vec<(usize, usize)>,
    by_name: FxMap<String, Vec<usize>>,
    by_stem: FxMap<String, Vec<usize>>,
    by_pid: FxMap<i64, Vec<usize>>,
    /// Per config given to [`Matcher::for_configs`], in that order: the
    /// nodes its name rule matches (what a lookup with pid 0 answers). A
    /// lookup adds the nodes of the pid, which only credentials match.
    resolved: Vec<Vec<usize>>,
    /// Config name -> its position in `resolved`.
    by_config: FxMap<String, usize>,
}

impl Matcher {
    pub fn new(rule: &NodeMatch, fr: &FastrouterSnapshot) -> Matcher {
        Matcher::shared(Arc::new(rule.clone()), fr)
    }

    fn shared(rule: Arc<NodeMatch>, fr: &FastrouterSnapshot) -> Matcher {
        let mut m = Matcher {
            rule: Some(rule),
            ..Default::default()
        };
        for (si, sub) in fr.subscriptions.iter().enumerate() {
            for (ni, n) in sub.nodes.iter().enumerate() {
                let f = m.flat.len();
                m.flat.push((si, ni));
                m.by_name.entry(n.name.clone()).or_default().push(f);
                if n.name.contains('/') {
                    m.by_stem
                        .entry(stem(&n.name).to_string())
                        .or_default()
                        .push(f);
                }
                if n.pid > 0 {
                    m.by_pid.entry(n.pid).or_default().push(f);
                }
            }
        }
        m
    }

    /// [`Matcher::new`], with the name rule of each of `configs` resolved
    /// at once: the engine looks its vassals up many times per snapshot.
    pub fn for_configs<'c>(
        rule: &Arc<NodeMatch>,
        fr: &FastrouterSnapshot,
        configs: impl Iterator<Item = &'c str>,
    ) -> Matcher {
        let mut m = Matcher::shared(rule.clone(), fr);
        let mut resolved = Vec::new();
        let mut by_config = FxMap::default();
        for (i, c) in configs.enumerate() {
            resolved.push(m.flat_of(c, 0).into_owned());
            by_config.entry(c.to_string()).or_insert(i);
        }
        m.resolved = resolved;
        m.by_config = by_config;
        m
    }

    /// Flat numbers of the nodes of `config` (master pid `pid`, 0 if
    /// unknown), in document order. Borrowed when the name rule's part,
    /// resolved at construction, is the whole answer (the common case: it
    /// is asked for every vassal several times per snapshot).
    fn flat_of(&self, config: &str, pid: i64) -> Cow<'_, [usize]> {
        let at = self.by_config.get(config).copied();
        self.flat_at(at, config, pid)
    }

    /// [`Matcher::flat_of`] for the config at position `at` of those given
    /// to [`Matcher::for_configs`] (no name hashed), if it is one of them.
    fn flat_at(&self, at: Option<usize>, config: &str, pid: i64) -> Cow<'_, [usize]> {
        let Some(rule) = self.rule.as_deref() else {
            return Cow::Borrowed(&[]);
        };
        if let Some(named) = at.and_then(|i| self.resolved.get(i)) {
            // `matches` is "same credential pid, or the name rule": the
            // name rule's part is `named`, the pid's part is by_pid.
            let by_pid = (pid > 0).then(|| self.by_pid.get(&pid)).flatten();
            let Some(by_pid) = by_pid else {
                return Cow::Borrowed(named);
            };
            let mut all: Vec<usize> = named.iter().chain(by_pid).copied().collect();
            all.sort_unstable();
            all.dedup();
            return Cow::Owned(all);
        }
        let mut cands: Vec<usize> = Vec::new();
        let mut add = |v: Option<&Vec<usize>>| cands.extend(v.into_iter().flatten().copied());
        if pid > 0 {
            add(self.by_pid.get(&pid));
        }
        match rule {
            NodeMatch::Stem => add(self.by_stem.get(stem(config))),
            NodeMatch::Template(t) => add(self.by_name.get(&render(t, config))),
            NodeMatch::Names(names) => match names.get(config) {
                Some(ns) => ns.iter().for_each(|n| add(self.by_name.get(n))),
                None => add(self.by_stem.get(stem(config))),
            },
        }
        // Each index holds exactly what `matches` accepts for its part
        // (`matcher_agrees_with_a_full_scan` holds it to that), so the
        // candidates need no second check.
        cands.sort_unstable();
        cands.dedup();
        Cow::Owned(cands)
    }

    fn node<'a>(&self, f: usize, fr: &'a FastrouterSnapshot) -> Option<(&'a str, &'a Node)> {
        let (si, ni) = *self.flat.get(f)?;
        let sub = fr.subscriptions.get(si)?;
        Some((sub.key.as_str(), sub.nodes.get(ni)?))
    }

    /// Every node called `name` in `key`, in document order. `fr` must be
    /// the snapshot the matcher was built from.
    pub fn named<'a>(
        &'a self,
        key: &'a str,
        name: &str,
        fr: &'a FastrouterSnapshot,
    ) -> impl Iterator<Item = &'a Node> + 'a {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(move |f| self.node(*f, fr))
            .filter(move |(k, _)| *k == key)
            .map(|(_, n)| n)
    }

    /// The node called `name` in `key`, if listed (the first, as a scan
    /// finds it). `fr` must be the snapshot the matcher was built from.
    pub fn find<'a>(&self, key: &str, name: &str, fr: &'a FastrouterSnapshot) -> Option<&'a Node> {
        self.by_name
            .get(name)?
            .iter()
            .filter_map(|f| self.node(*f, fr))
            .find(|(k, _)| *k == key)
            .map(|(_, n)| n)
    }

    /// The nodes of one vassal: (key, node). `fr` must be the snapshot the
    /// matcher was built from.
    pub fn nodes_of<'a>(
        &'a self,
        config: &str,
        pid: i64,
        fr: &'a FastrouterSnapshot,
    ) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let flat = self.flat_of(config, pid);
        (0..flat.len()).filter_map(move |i| self.node(flat[i], fr))
    }

    /// [`Matcher::nodes_of`] for the engine's vassal number `i`, called
    /// `config`. Only for a matcher the engine built with its vassals in
    /// order (`for_configs`; the engine only ever appends vassals), so the
    /// position finds them without hashing; one added since is looked up by
    /// name.
    pub fn nodes_of_at<'a>(
        &'a self,
        i: usize,
        config: &str,
        pid: i64,
        fr: &'a FastrouterSnapshot,
    ) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let at = if i < self.resolved.len() {
            Some(i)
        } else {
            self.by_config.get(config).copied()
        };
        let flat = self.flat_at(at, config, pid);
        (0..flat.len()).filter_map(move |i| self.node(flat[i], fr))
    }
}

/// The nodes of one vassal: (key, node). A full scan; see [`Matcher`] for
/// repeated lookups in one snapshot.
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
/// vassal came back and accepts (docs/UWSGI.md §7.3). Treating such a vassal as
/// down would let the scheduler touch it without budget.
pub fn emperor_healthy(emp: &IndexedEmperor, config: &str) -> bool {
    emp.vassal(config).is_some_and(record_healthy)
}

/// [`emperor_healthy`] of a record already looked up.
fn record_healthy(v: &VassalStats) -> bool {
    v.accepting == 1 && v.cursed == 0 && v.pid > 0
}

/// Live counts per key.
///
/// `ours` lists every vassal of this Emperor, in the engine's order (its
/// position finds its record and nodes: `IndexedEmperor::vassal_at`,
/// `Matcher::nodes_of_at`), with whether this rollout lets it count (not in
/// flight, not failed) and the oldest `last_check` of its nodes that counts
/// (a reloaded vassal's nodes count only once its new generation announced
/// them: a node under a key it left is not live). A node that matches none
/// of ours is another host's and counts on its own freshness. Only the scheduler calls
/// it (`Engine::live_now`): the rollout, the dry run and `status` all read
/// its counts from the engine.
pub(super) fn live_per_key(
    matcher: &Matcher,
    ours: &[(&str, bool, i64)],
    emp: &IndexedEmperor,
    fr: &FastrouterSnapshot,
    wall_s: i64,
    tolerance_s: impl Fn(Option<usize>) -> i64,
) -> BTreeMap<String, usize> {
    // The first of ours that a node matches owns it. Each vassal's record
    // and tolerance are looked up once, not once per node.
    let mut owner: Vec<Option<usize>> = vec![None; matcher.flat.len()];
    let mut counts_and_tolerance = Vec::with_capacity(ours.len());
    for (i, (c, may_count, since)) in ours.iter().enumerate() {
        let rec = emp.vassal_at(i, c);
        let healthy = rec.is_some_and(record_healthy);
        counts_and_tolerance.push((*may_count && healthy, tolerance_s(Some(i)), *since));
        let pid = rec.map_or(0, |v| v.pid);
        let at = (i < matcher.resolved.len()).then_some(i);
        for &f in matcher.flat_at(at, c, pid).iter() {
            owner[f].get_or_insert(i);
        }
    }
    let others_tolerance = tolerance_s(None);
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    for (f, o) in owner.iter().enumerate() {
        let Some((key, node)) = matcher.node(f, fr) else {
            continue;
        };
        // One String per key, not one per node.
        let entry = match live.get_mut(key) {
            Some(e) => e,
            None => live.entry(key.to_string()).or_default(),
        };
        let (counts, tolerance, since) = match o {
            Some(i) => counts_and_tolerance[*i],
            None => (true, others_tolerance, i64::MIN),
        };
        if counts && node.last_check >= since && node_fresh(node, wall_s, tolerance) {
            *entry += 1;
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Subscription;

    /// The index gives exactly what a full scan with `matches` gives, for
    /// every rule, including pids, duplicate names, TCP names and misses.
    /// Long on purpose: the cases are a table, read top to bottom.
    #[test]
    fn matcher_agrees_with_a_full_scan() {
        let names = [
            "/r/app_01.sock",
            "/s/app_01.sock",
            "127.0.0.1:3031",
            ":3032",
            "/r/app_02.sock",
            "/r/other.sock",
        ];
        let mut subs = Vec::new();
        let mut seed = 7u64;
        for key in ["a.com", "b.com"] {
            let mut nodes = Vec::new();
            for (i, n) in names.iter().enumerate() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if seed >> 62 == 0 {
                    continue;
                }
                nodes.push(Node {
                    name: n.to_string(),
                    pid: (i as i64 % 3) * 100,
                    ..Default::default()
                });
            }
            subs.push(Subscription {
                key: key.into(),
                nodes,
            });
        }
        let fr = FastrouterSnapshot {
            subscriptions: subs,
            ..Default::default()
        };
        let mut names_map = BTreeMap::new();
        names_map.insert("app_03.ini".to_string(), vec!["127.0.0.1:3031".to_string()]);
        names_map.insert("app_01.ini".to_string(), vec![":3032".to_string()]);
        let rules = [
            NodeMatch::Stem,
            NodeMatch::Template("/r/{stem}.sock".into()),
            NodeMatch::Names(names_map),
        ];
        for rule in &rules {
            let configs = ["app_01.ini", "app_03.ini", "other.ini", "none.ini"];
            let m = Matcher::new(rule, &fr);
            let mc = Matcher::for_configs(&Arc::new(rule.clone()), &fr, configs.into_iter());
            for config in [
                "app_01.ini",
                "app_02.ini",
                "app_03.ini",
                "other.ini",
                "none.ini",
            ] {
                for pid in [0, 100, 200, 300] {
                    let fast: Vec<_> = m.nodes_of(config, pid, &fr).collect();
                    let full: Vec<_> = nodes_of(rule, config, pid, &fr).collect();
                    assert_eq!(fast, full, "{rule:?} {config} {pid}");
                    let pre: Vec<_> = mc.nodes_of(config, pid, &fr).collect();
                    assert_eq!(pre, full, "for_configs: {rule:?} {config} {pid}");
                }
            }
            // By the position in for_configs' order; past its end (a vassal
            // added since), by name.
            for (i, config) in configs.iter().chain(&["app_02.ini"]).enumerate() {
                for pid in [0, 100, 200, 300] {
                    let full: Vec<_> = nodes_of(rule, config, pid, &fr).collect();
                    let at: Vec<_> = mc.nodes_of_at(i, config, pid, &fr).collect();
                    assert_eq!(at, full, "nodes_of_at: {rule:?} {i} {config} {pid}");
                }
            }
            for key in ["a.com", "b.com", "c.com"] {
                for name in names.iter().chain(&["/r/none.sock"]) {
                    let full = fr
                        .nodes()
                        .find(|(k, n)| *k == key && n.name == *name)
                        .map(|(_, n)| n);
                    assert_eq!(m.find(key, name, &fr), full, "{key} {name}");
                }
            }
        }
    }
}
