//! The real state of a stack's vassals ([`Fleet`]: what the Emperor, the
//! fastrouter, the file system and the app itself say), and the two checks
//! every scenario makes of it: reloaded exactly once, or untouched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::{Host, Stack};

impl Stack {
    /// The real state of every vassal (of the first host): the configs
    /// present now plus the ones the stack started with.
    pub fn fleet(&self) -> Fleet {
        self.fleet_of(self.first_host())
    }

    /// [`Stack::fleet`] of host `id` (`StackSpec::host`).
    pub fn host_fleet(&self, id: &str) -> Fleet {
        self.fleet_of(self.host(id))
    }

    fn fleet_of(&self, host: &Host) -> Fleet {
        let mut names: BTreeSet<String> = host.names.iter().cloned().collect();
        names.extend(host.config_names());
        let (emp, fr) = match self.both_stats(host) {
            Ok(x) => x,
            Err(e) => panic!("cannot read the stack's stats: {e}\n{}", self.diagnostics()),
        };
        for v in &emp.vassals {
            if let Some(stem) = super::topology::config_stem(&v.id) {
                names.insert(stem);
            }
        }
        let mut vassals = BTreeMap::new();
        for name in names {
            let id = host.config_file(&name);
            let v = emp.vassal(&id);
            let node_name = host.node_name(&name);
            let node = fr
                .nodes()
                .find(|(k, n)| *k == self.key && n.name == node_name)
                .map(|(_, n)| NodeState {
                    death_mark: n.death_mark,
                    last_check: n.last_check,
                    refs: n.refs,
                    requests: n.requests,
                });
            let link_mtime = fs::symlink_metadata(host.config_path(&name))
                .ok()
                .map(|m| m.mtime());
            let (imports, workers) =
                read_app_log(&host.dir.join("state").join(format!("{name}.log")));
            vassals.insert(
                name.clone(),
                VassalState {
                    name,
                    in_emperor: v.is_some(),
                    pid: v.map_or(0, |v| v.pid),
                    respawns: v.map_or(-1, |v| v.respawns),
                    last_mod: v.map_or(0, |v| v.last_mod),
                    accepting: v.is_some_and(|v| v.accepting == 1),
                    cursed: v.is_some_and(|v| v.cursed != 0),
                    blacklisted: emp.blacklisted(&id).is_some(),
                    node,
                    link_mtime,
                    imports,
                    workers,
                },
            );
        }
        Fleet { vassals }
    }

    /// Polls the Emperor until some vassal's reload (or death) shows
    /// (`last_mod`, `respawns` or pid differ from `before`). Returns their
    /// names.
    pub fn wait_reload_started(&self, before: &Fleet, timeout: Duration) -> Option<Vec<String>> {
        super::poll(timeout, Duration::from_millis(20), || {
            let emp = self.emperor_stats().ok()?;
            let started: Vec<String> = before
                .vassals
                .values()
                .filter(|b| b.in_emperor)
                .filter(|b| match emp.vassal(&self.config_file(&b.name)) {
                    None => true,
                    Some(v) => {
                        v.last_mod != b.last_mod || v.respawns != b.respawns || v.pid != b.pid
                    }
                })
                .map(|b| b.name.clone())
                .collect();
            (!started.is_empty()).then_some(started)
        })
    }
}

/// (master pid, time) of one app import.
pub type Import = (i64, f64);
/// (worker pid, master pid, time) of one forked worker.
pub type Worker = (i64, i64, f64);

fn read_app_log(path: &Path) -> (Vec<Import>, Vec<Worker>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut imports = Vec::new();
    let mut workers = Vec::new();
    for line in text.lines() {
        let fields: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<f64>().ok());
        if line.starts_with("import ") {
            if let (Some(p), Some(t)) = (num("pid"), num("time")) {
                imports.push((p as i64, t));
            }
        } else if line.starts_with("worker ") {
            if let (Some(p), Some(m), Some(t)) = (num("pid"), num("master"), num("time")) {
                workers.push((p as i64, m as i64, t));
            }
        }
    }
    (imports, workers)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub death_mark: i64,
    pub last_check: i64,
    pub refs: i64,
    pub requests: i64,
}

/// One vassal as the Emperor, the fastrouter, the file system and the app
/// itself see it.
#[derive(Clone, Debug)]
pub struct VassalState {
    pub name: String,
    pub in_emperor: bool,
    pub pid: i64,
    pub respawns: i64,
    pub last_mod: i64,
    pub accepting: bool,
    pub cursed: bool,
    pub blacklisted: bool,
    /// Its node under the stack's key, if any.
    pub node: Option<NodeState>,
    /// lstat() mtime of its config (None: no config).
    pub link_mtime: Option<i64>,
    /// (master pid, time) per app import: one per generation.
    pub imports: Vec<Import>,
    /// (worker pid, master pid, time) per forked worker.
    pub workers: Vec<Worker>,
}

impl VassalState {
    pub fn worker_pid(&self) -> Option<i64> {
        self.workers.last().map(|w| w.0)
    }
    /// Accepting, not cursed, and a node with death_mark 0.
    pub fn live(&self) -> bool {
        self.in_emperor
            && self.accepting
            && !self.cursed
            && self.node.as_ref().is_some_and(|n| n.death_mark == 0)
    }
}

#[derive(Clone, Debug)]
pub struct Fleet {
    pub vassals: BTreeMap<String, VassalState>,
}

impl Fleet {
    pub fn get(&self, name: &str) -> &VassalState {
        self.vassals
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the fleet: {}", self.describe()))
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  {:<8} {:>7} {:>8} {:>11} {:>5} {:>6} {:>5} {:>13} {:>11} {:>7} {:>7}",
            "vassal",
            "pid",
            "respawns",
            "last_mod",
            "acc",
            "cursed",
            "black",
            "node dm/ref",
            "mtime",
            "imports",
            "worker"
        );
        for v in self.vassals.values() {
            let node = match &v.node {
                Some(n) => format!("{}/{}", n.death_mark, n.refs),
                None => "-".into(),
            };
            let _ = writeln!(
                s,
                "  {:<8} {:>7} {:>8} {:>11} {:>5} {:>6} {:>5} {:>13} {:>11} {:>7} {:>7}",
                v.name,
                v.pid,
                v.respawns,
                v.last_mod,
                v.accepting as u8,
                v.cursed as u8,
                v.blacklisted as u8,
                node,
                v.link_mtime.map_or("-".into(), |m| m.to_string()),
                v.imports.len(),
                v.worker_pid().map_or("-".into(), |p| p.to_string())
            );
        }
        s
    }
}

/// Reloaded exactly once, gracefully, and live again.
pub fn check_reloaded_once(b: &VassalState, a: &VassalState) -> Result<(), String> {
    if !b.in_emperor || !b.live() {
        return Err("was not live before the rollout".into());
    }
    if !a.in_emperor {
        return Err("is not in the Emperor's stats after the rollout".into());
    }
    if a.pid != b.pid {
        return Err(format!(
            "master pid changed {} -> {} (it died and was respawned)",
            b.pid, a.pid
        ));
    }
    if a.respawns != b.respawns + 1 {
        return Err(format!(
            "respawns {} -> {}: expected exactly one reload",
            b.respawns, a.respawns
        ));
    }
    if a.last_mod <= b.last_mod {
        return Err(format!(
            "last_mod did not move ({} -> {})",
            b.last_mod, a.last_mod
        ));
    }
    if a.imports.len() != b.imports.len() + 1 {
        return Err(format!(
            "app imported {} times, expected once more than the {} before",
            a.imports.len(),
            b.imports.len()
        ));
    }
    match (b.worker_pid(), a.worker_pid()) {
        (Some(wb), Some(wa)) if wb != wa => {}
        (wb, wa) => return Err(format!("worker pid did not change ({wb:?} -> {wa:?})")),
    }
    if !a.live() {
        return Err(format!(
            "not live after the rollout (accepting {}, cursed {}, node {:?})",
            a.accepting, a.cursed, a.node
        ));
    }
    Ok(())
}

/// Not touched and still live.
pub fn check_untouched(b: &VassalState, a: &VassalState) -> Result<(), String> {
    if a.link_mtime != b.link_mtime {
        return Err(format!(
            "config mtime changed {:?} -> {:?}",
            b.link_mtime, a.link_mtime
        ));
    }
    if (a.pid, a.respawns, a.last_mod) != (b.pid, b.respawns, b.last_mod) {
        return Err(format!(
            "pid/respawns/last_mod changed ({}, {}, {}) -> ({}, {}, {})",
            b.pid, b.respawns, b.last_mod, a.pid, a.respawns, a.last_mod
        ));
    }
    if a.imports.len() != b.imports.len() || a.worker_pid() != b.worker_pid() {
        return Err("the app was restarted".into());
    }
    if !a.live() {
        return Err(format!(
            "not live after the rollout (accepting {}, node {:?})",
            a.accepting, a.node
        ));
    }
    Ok(())
}
