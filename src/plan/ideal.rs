//! An ideal world for `--dry-run`: the real engine, fed one look at the
//! stats and then a world where everything on its way arrives at the next
//! second. Each reload completes at once (the Emperor shows it, the new
//! generation accepts and announces), a starting vassal accepts, an unrouted
//! one announces, a crash-looping one comes back after its touch, an
//! unsubscribe empties its node. The waves are the vassals the scheduler
//! starts in the same second: the real K gate, drain, canary, `--max-parallel`
//! and availability rules decide them, not a copy of them.

use std::collections::BTreeMap;

use crate::engine::{Action, ConfigFile, Engine, Input, Now, Outcome, Settings};
use crate::stats::{EmperorSnapshot, FastrouterSnapshot, Node, Subscription, VassalStats};

/// Simulated seconds the dry run may take before it gives up (a plan that
/// needs longer is cut, and says so).
const HORIZON_S: u64 = 3_600;

/// The waves in start order, and how the simulated rollout ended.
pub struct Plan {
    pub waves: Vec<Vec<String>>,
    pub outcome: Option<Outcome>,
}

struct World {
    emp: EmperorSnapshot,
    fr: FastrouterSnapshot,
    /// The node names each vassal announces, by key: what an announce
    /// (re)adds.
    announces: BTreeMap<String, Vec<(String, Node)>>,
    wall_s: i64,
}

impl World {
    fn new(emp: EmperorSnapshot, fr: FastrouterSnapshot, e: &Engine, wall_s: i64) -> World {
        let mut announces: BTreeMap<String, Vec<(String, Node)>> = BTreeMap::new();
        let matcher = crate::engine::nodes::Matcher::new(&e.settings().node_match, &fr);
        for v in e.vassals() {
            let pid = emp.vassal(&v.name).map_or(0, |r| r.pid);
            let mine = matcher
                .nodes_of(&v.name, pid, &fr)
                .map(|(k, n)| (k.to_string(), n.clone()))
                .collect();
            announces.insert(v.name.clone(), mine);
        }
        World {
            emp,
            fr,
            announces,
            wall_s,
        }
    }

    /// One second passes: everything under way arrives.
    fn settle(&mut self) {
        self.wall_s += 1;
        let wall = self.wall_s;
        for r in &mut self.emp.vassals {
            if r.cursed == 0 && r.pid > 0 && r.accepting == 0 {
                r.accepting = 1;
                r.last_accepting = wall;
            }
        }
        // Every accepting vassal announces each of its nodes.
        let accepting: Vec<String> = self
            .emp
            .vassals
            .iter()
            .filter(|r| r.accepting == 1 && r.cursed == 0)
            .map(|r| r.id.clone())
            .collect();
        for id in accepting {
            for (key, mut node) in self.announces.get(&id).cloned().unwrap_or_default() {
                // A vassal's own packet carries its cores (at least 1).
                node.cores = Some(node.cores.unwrap_or(1).max(1));
                self.announce(&key, node);
            }
        }
        // Nodes of other hosts stay fresh.
        for s in &mut self.fr.subscriptions {
            for n in &mut s.nodes {
                if n.death_mark == 0 {
                    n.last_check = n.last_check.max(wall);
                }
            }
        }
    }

    fn announce(&mut self, key: &str, mut node: Node) {
        node.last_check = self.wall_s;
        node.death_mark = 0;
        node.refs = 0;
        match self.fr.subscriptions.iter_mut().find(|s| s.key == key) {
            Some(s) => match s.nodes.iter_mut().find(|n| n.name == node.name) {
                Some(n) => *n = node,
                None => s.nodes.push(node),
            },
            None => self.fr.subscriptions.push(Subscription {
                key: key.to_string(),
                nodes: vec![node],
            }),
        }
    }

    fn unsubscribe(&mut self, key: &str, name: &str) {
        for s in self.fr.subscriptions.iter_mut().filter(|s| s.key == key) {
            s.nodes.retain(|n| n.name != name);
        }
    }

    /// The Emperor sends the reload; a vassal with no record (crash-looping
    /// between attempts) starts again with the new config.
    fn reload(&mut self, id: &str, mtime: i64) {
        let wall = self.wall_s;
        match self.emp.vassals.iter_mut().find(|r| r.id == id) {
            Some(r) => {
                r.last_mod = mtime;
                r.respawns += 1;
                r.accepting = 0;
                r.last_run = wall;
            }
            None => {
                self.emp.blacklist.retain(|b| b.id != id);
                self.emp.vassals.push(VassalStats {
                    id: id.to_string(),
                    pid: i64::from(u32::MAX) + self.emp.vassals.len() as i64,
                    last_mod: mtime,
                    first_run: wall,
                    last_run: wall,
                    ..VassalStats::default()
                });
            }
        }
    }
}

/// Drives the engine with `settings` over `configs` through the ideal world
/// that starts from `emp` and `fr` at `wall_s`. Long on purpose: the ideal
/// world's whole loop (answer each read, apply each touch, advance time),
/// as the real driver's `run_loop` is one loop.
pub fn plan(
    settings: Settings,
    configs: Vec<ConfigFile>,
    emp: EmperorSnapshot,
    fr: FastrouterSnapshot,
    wall_s: i64,
) -> Plan {
    let step_ms = 1000;
    let at = |s: u64| Now {
        mono_ms: s * step_ms,
        wall_s: wall_s + s as i64,
    };
    let mut e = Engine::new(settings, configs, at(0));
    let mut w = World::new(emp, fr, &e, wall_s);
    let mut waves: Vec<Vec<String>> = Vec::new();
    for s in 0..HORIZON_S {
        let now = at(s);
        if s > 0 {
            w.settle();
            e.handle_timeout(now);
        }
        e.handle(now, Input::Emperor(w.emp.clone()));
        e.handle(now, Input::Fastrouter(w.fr.clone()));
        let mut wave = Vec::new();
        let mut answers = Vec::new();
        // The reports are the real rollout's narration: not the plan's.
        while e.poll_event().is_some() {}
        while let Some(a) = e.poll_action() {
            match a {
                Action::Touch { vassal, mtime } => {
                    if !waves.iter().flatten().any(|v| *v == vassal) && !wave.contains(&vassal) {
                        wave.push(vassal.clone());
                    }
                    w.reload(&vassal, mtime);
                    answers.push(Input::Touched {
                        vassal,
                        error: None,
                    });
                }
                Action::Unsubscribe {
                    vassal, key, node, ..
                } => {
                    if !waves.iter().flatten().any(|v| *v == vassal) && !wave.contains(&vassal) {
                        wave.push(vassal);
                    }
                    w.unsubscribe(&key, &node);
                }
                Action::Subscribe { key, node, .. } => {
                    // The tool's packet: no `cores`, which the router
                    // stores as 0 (never evidence, `Node::cores`).
                    let n = Node {
                        name: node,
                        cores: Some(0),
                        ..Node::default()
                    };
                    w.announce(&key, n);
                }
                Action::Probe { vassal, .. } => answers.push(Input::Probed {
                    vassal,
                    result: Ok("200 (dry run)".into()),
                }),
                Action::Repair { vassal, .. } => answers.push(Input::Repaired {
                    vassal,
                    result: Ok("(dry run)".into()),
                }),
                Action::Finish(o) => {
                    if !wave.is_empty() {
                        waves.push(wave);
                    }
                    return Plan {
                        waves,
                        outcome: Some(o),
                    };
                }
                // In the ideal world no hook loses its race.
                Action::ReadStats(_)
                | Action::RescanConfigs
                | Action::WatchHookLog { .. }
                | Action::UnwatchHookLog { .. } => {}
            }
        }
        for a in answers {
            e.handle(now, a);
        }
        if !wave.is_empty() {
            waves.push(wave);
        }
    }
    Plan {
        waves,
        outcome: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NodeMatch;

    const T0: i64 = 1_795_637_000;

    fn world(
        n: usize,
        starting: &[usize],
    ) -> (Vec<ConfigFile>, EmperorSnapshot, FastrouterSnapshot) {
        let name = |i: usize| format!("app_{i:02}.ini");
        let configs = (0..n)
            .map(|i| ConfigFile {
                name: name(i),
                mtime: T0 - 60,
            })
            .collect();
        let emp = EmperorSnapshot {
            vassals: (0..n)
                .map(|i| VassalStats {
                    id: name(i),
                    pid: 100 + i as i64,
                    last_mod: T0 - 60,
                    accepting: i64::from(!starting.contains(&i)),
                    first_run: T0 - 60,
                    last_run: T0 - 60,
                    ..VassalStats::default()
                })
                .collect(),
            ..EmperorSnapshot::default()
        };
        let fr = FastrouterSnapshot {
            router_pids: Vec::new(),
            pid: 9,
            version: String::new(),
            subscriptions: vec![Subscription {
                key: "k".into(),
                nodes: (0..n)
                    .map(|i| Node {
                        name: format!("/run/app_{i:02}.sock"),
                        last_check: T0,
                        ..Node::default()
                    })
                    .collect(),
            }],
        };
        (configs, emp, fr)
    }

    fn settings(k: usize) -> Settings {
        Settings {
            min_live: k,
            node_match: NodeMatch::Stem,
            ..Settings::default()
        }
    }

    #[test]
    fn waves_are_as_wide_as_k_allows() {
        let (c, e, f) = world(4, &[]);
        let p = plan(settings(2), c, e, f, T0);
        let sizes: Vec<usize> = p.waves.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2], "{:?}", p.waves);
        assert!(p
            .outcome
            .is_some_and(|o| o.untouched.is_empty() && o.failed.is_empty()));
    }

    /// A starting vassal is not in the first wave: the real scheduler waits
    /// until it accepts (a twin of the K gate that called every non-live
    /// vassal free to reload put it there).
    #[test]
    fn a_starting_vassal_waits_in_the_plan_too() {
        let (c, e, f) = world(4, &[3]);
        let p = plan(settings(1), c, e, f, T0);
        assert!(
            !p.waves[0].contains(&"app_03.ini".to_string()),
            "{:?}",
            p.waves
        );
        assert!(
            p.waves.iter().flatten().any(|v| v == "app_03.ini"),
            "{:?}",
            p.waves
        );
    }
}
