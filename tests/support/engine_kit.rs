//! The engine kit of the engine-level tests: a fleet as the two stats
//! sockets show it, built from literal records, and one check interval of
//! the sans-IO engine against it. Included with `#[path]` by the crates
//! that drive the engine with literal snapshots.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;

pub use uwsgi_reload::engine::{
    Action, ConfigFile, Engine, Event, Input, NodeMatch, Now, Outcome, Report, Settings, Status,
};
pub use uwsgi_reload::stats::{
    BlacklistEntry, EmperorSnapshot, FastrouterSnapshot, Node, Subscription, VassalStats,
};

pub const T0: i64 = 1_795_637_000;
pub const KEY: &str = "app.example.com";

pub fn now(s: u64) -> Now {
    Now {
        mono_ms: 10_000_000 + s * 1000,
        wall_s: T0 + s as i64,
    }
}

pub fn name(i: usize) -> String {
    format!("app_{:02}.ini", i + 1)
}

pub fn sock(i: usize, n: usize) -> String {
    match n {
        0 => format!("/run/app_{:02}.sock", i + 1),
        _ => format!("/run/app_{:02}.{n}.sock", i + 1),
    }
}

/// A vassal as the two stats sockets show it.
#[derive(Clone, Debug)]
pub struct V {
    pub rec: Option<VassalStats>,
    pub blacklist: Option<BlacklistEntry>,
    /// (key, node name, last_check, death_mark, credential pid)
    pub nodes: Vec<(String, String, i64, i64, i64)>,
    /// Names of its nodes whose last refresh was the tool's own packet (an
    /// early announce, an undone drain): the router shows `cores` 0 for
    /// them, the vassal's own announce at least 1 (`Node::cores`).
    pub by_tool: Vec<String>,
}

pub fn serving(i: usize, last_check: i64) -> V {
    V {
        rec: Some(VassalStats {
            id: name(i),
            pid: 100 + i as i64,
            last_mod: T0 - 3600,
            accepting: 1,
            last_accepting: T0 - 3600,
            first_run: T0 - 3600,
            last_run: T0 - 3600,
            ..Default::default()
        }),
        blacklist: None,
        nodes: vec![(KEY.into(), sock(i, 0), last_check, 0, 0)],
        by_tool: Vec::new(),
    }
}

pub struct Fleet {
    pub vs: Vec<V>,
    pub fr_pid: i64,
}

impl Fleet {
    /// `n` vassals serving, each node announced at `T0`, router pid 7.
    pub fn serving(n: usize) -> Fleet {
        Fleet {
            vs: (0..n).map(|i| serving(i, T0)).collect(),
            fr_pid: 7,
        }
    }

    pub fn emperor(&self) -> Input {
        Input::Emperor(EmperorSnapshot {
            pid: 1,
            vassals: self.vs.iter().filter_map(|v| v.rec.clone()).collect(),
            blacklist: self.vs.iter().filter_map(|v| v.blacklist.clone()).collect(),
            ..Default::default()
        })
    }

    pub fn fastrouter(&self) -> Input {
        let mut subs: BTreeMap<String, Vec<Node>> = BTreeMap::new();
        for v in &self.vs {
            for (k, n, lc, dm, pid) in &v.nodes {
                subs.entry(k.clone()).or_default().push(Node {
                    name: n.clone(),
                    last_check: *lc,
                    death_mark: *dm,
                    pid: *pid,
                    cores: Some(if v.by_tool.contains(n) { 0 } else { 1 }),
                    ..Default::default()
                });
            }
        }
        Input::Fastrouter(FastrouterSnapshot {
            router_pids: Vec::new(),
            pid: self.fr_pid,
            version: String::new(),
            subscriptions: subs
                .into_iter()
                .map(|(key, nodes)| Subscription { key, nodes })
                .collect(),
        })
    }
}

pub fn settings(k: usize) -> Settings {
    let names = (0..8).map(|i| (name(i), vec![sock(i, 0)])).collect();
    Settings {
        min_live: k,
        timeout_ms: 60_000,
        node_match: NodeMatch::Names(names),
        can_unsubscribe: true,
        stats_outage_ms: 600_000,
        ..Settings::default()
    }
}

pub fn engine(s: Settings, n: usize) -> Engine {
    let configs = (0..n)
        .map(|i| ConfigFile {
            name: name(i),
            mtime: T0 - 3600,
        })
        .collect();
    Engine::new(s, configs, now(0))
}

/// What the engine put out, from its two queues: the actions the driver
/// must carry out and the reports for the operator, each in order. (The
/// engine keeps no order between the two: nor does this.)
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub actions: Vec<Action>,
    pub events: Vec<Report>,
}

impl Outputs {
    /// Drains both of the engine's queues.
    pub fn take(e: &mut Engine) -> Outputs {
        Outputs {
            events: std::iter::from_fn(|| e.poll_event()).collect(),
            actions: std::iter::from_fn(|| e.poll_action()).collect(),
        }
    }

    pub fn extend(&mut self, more: Outputs) {
        self.actions.extend(more.actions);
        self.events.extend(more.events);
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.events.is_empty()
    }
}

/// One check interval at second `s`: both reads answer from `fleet`.
pub fn look(e: &mut Engine, fleet: &Fleet, s: u64) -> Outputs {
    e.handle_timeout(now(s));
    e.handle(now(s), fleet.emperor());
    e.handle(now(s), fleet.fastrouter());
    Outputs::take(e)
}

pub fn touched(out: &Outputs) -> Vec<String> {
    out.actions
        .iter()
        .filter_map(|a| match a {
            Action::Touch { vassal, .. } => Some(vassal.clone()),
            _ => None,
        })
        .collect()
}

/// The vassals started: touched, or their drain begun.
pub fn started(out: &Outputs) -> Vec<String> {
    let drains = events(out).into_iter().filter_map(|ev| match ev {
        Event::DrainStarted { vassal, .. } => Some(vassal.clone()),
        _ => None,
    });
    touched(out).into_iter().chain(drains).collect()
}

pub fn outcome(out: &Outputs) -> Option<&Outcome> {
    out.actions.iter().find_map(|a| match a {
        Action::Finish(o) => Some(o),
        _ => None,
    })
}

pub fn events(out: &Outputs) -> Vec<&Event> {
    out.events.iter().map(|r| &r.event).collect()
}

/// The vassals a `Repair` (`S` to the master FIFO) was asked for.
pub fn repairs(out: &Outputs) -> Vec<&str> {
    out.actions
        .iter()
        .filter_map(|a| match a {
            Action::Repair { vassal, .. } => Some(vassal.as_str()),
            _ => None,
        })
        .collect()
}

/// The nodes the tool sent a subscribe for (early announce, undone drain).
pub fn subscribes(out: &Outputs) -> Vec<&str> {
    out.actions
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect()
}
