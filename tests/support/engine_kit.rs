//! The engine kit of the engine-level tests: a fleet as the two stats
//! sockets show it, built from literal records, and one check interval of
//! the sans-IO engine against it. Included with `#[path]` by the crates
//! that drive the engine with literal snapshots.
#![allow(dead_code)]

use std::collections::BTreeMap;

pub use uwsgi_reload::engine::{
    Action, ConfigFile, Engine, Event, Input, NodeMatch, Now, Outcome, Settings, Status,
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
    }
}

pub struct Fleet {
    pub vs: Vec<V>,
    pub fr_pid: i64,
}

impl Fleet {
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

/// One check interval at second `s`: both reads answer from `fleet`.
pub fn look(e: &mut Engine, fleet: &Fleet, s: u64) -> Vec<Action> {
    e.handle_timeout(now(s));
    e.handle(now(s), fleet.emperor());
    e.handle(now(s), fleet.fastrouter());
    std::iter::from_fn(|| e.poll_action()).collect()
}

pub fn touched(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Touch { vassal, .. } => Some(vassal.clone()),
            _ => None,
        })
        .collect()
}

pub fn started(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Touch { vassal, .. } => Some(vassal.clone()),
            Action::Report(r) => match &r.event {
                Event::DrainStarted { vassal, .. } => Some(vassal.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

pub fn outcome(actions: &[Action]) -> Option<&Outcome> {
    actions.iter().find_map(|a| match a {
        Action::Finish(o) => Some(o),
        _ => None,
    })
}

pub fn events(actions: &[Action]) -> Vec<&Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) => Some(&r.event),
            _ => None,
        })
        .collect()
}
