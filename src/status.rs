//! `uwsgi-reload status`: one look at every vassal and the live count per
//! key, without touching anything.

use std::time::Duration;

use serde_json::json;

use crate::cli::{Config, SocketSpec};
use crate::engine::{nodes, Input};
use crate::error::{exit, Error};
use crate::report::Reporter;
use crate::runtime::configs::EmperorDir;
use crate::runtime::stats_reader::{read_once, to_input};
use crate::stats::{EmperorSnapshot, FastrouterSnapshot, StatsSource};

/// One look at both stats sockets, for the one-shot commands.
pub fn snapshots(cfg: &Config) -> Result<(EmperorSnapshot, FastrouterSnapshot), Error> {
    let t = Duration::from_millis(cfg.stats_timeout_ms);
    let read = |source, spec: &SocketSpec| match to_input(source, spec, read_once(source, spec, t))
    {
        Input::ReadFailed { error, .. } => Err(Error::Precondition(format!(
            "cannot read the {source} stats socket: {error}"
        ))),
        other => Ok(other),
    };
    let emp = match read(StatsSource::Emperor, &cfg.emperor_stats)? {
        Input::Emperor(e) => e,
        _ => unreachable!("to_input answers an Emperor read with Emperor or ReadFailed"),
    };
    let fr = match read(StatsSource::Fastrouter, &cfg.fastrouter_stats)? {
        Input::Fastrouter(f) => f,
        _ => unreachable!("to_input answers a fastrouter read with Fastrouter or ReadFailed"),
    };
    Ok((emp, fr))
}

pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<u8, Error> {
    let dir = EmperorDir::open(&cfg.emperor_path, &cfg.suffix, cfg.touch_target)?;
    let configs = crate::runtime::configs::select(cfg, &dir)?;
    let (emp, fr) = snapshots(cfg)?;
    let wall = crate::runtime::clock::Clock::new().now().wall_s;
    let parsed = crate::runtime::driver::parse_configs(&dir, &configs);
    let mut settings = cfg.settings.clone();
    settings.node_match = crate::runtime::driver::node_match(&settings.node_match, &parsed);
    let s = &settings;
    let matcher = nodes::Matcher::new(&s.node_match, &fr);
    let mut rows = Vec::new();
    for c in &configs {
        let st = emp.vassal(&c.name);
        let bl = emp.blacklisted(&c.name);
        let state = match (st, bl) {
            (_, Some(_)) => "blacklisted",
            (None, None) => "absent",
            (Some(v), _) if v.cursed != 0 => "stopping",
            (Some(v), _) if v.accepting == 1 => "accepting",
            (Some(_), _) => "reloading",
        };
        let pid = st.map_or(0, |v| v.pid);
        let ns: Vec<_> = matcher.nodes_of(&c.name, pid, &fr).collect();
        let live = nodes::emperor_healthy(&emp, &c.name)
            && ns
                .iter()
                .any(|(_, n)| nodes::node_fresh(n, wall, s.node_tolerance_s));
        rows.push(json!({
            "vassal": c.name,
            "pid": pid,
            "state": state,
            "respawns": st.map_or(0, |v| v.respawns),
            "live": live,
            "nodes": ns.iter().map(|(k, n)| json!({
                "key": k, "name": n.name, "age_s": wall - n.last_check,
                "death_mark": n.death_mark, "ref": n.refs,
            })).collect::<Vec<_>>(),
        }));
    }
    let ours: Vec<(&str, bool)> = configs.iter().map(|c| (c.name.as_str(), true)).collect();
    let live = nodes::live_per_key(&matcher, &ours, &emp, &fr, wall, |c| s.tolerance_s(c));
    let below: Vec<&String> = live
        .iter()
        .filter(|(_, l)| **l < s.min_live)
        .map(|(k, _)| k)
        .collect();
    if cfg.output.json {
        let v = json!({"vassals": rows, "live": live, "min_live": s.min_live});
        println!("{v}");
    } else {
        rep.human_line(
            &format!(
                "{:<24} {:>7} {:<11} {:>8}  {:<5} NODES (key name age death_mark ref)",
                "VASSAL", "PID", "STATE", "RESPAWNS", "LIVE"
            ),
            false,
        );
        for r in &rows {
            let nodes: Vec<String> = r["nodes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|n| {
                            format!(
                                "{} {} {}s {} {}",
                                n["key"].as_str().unwrap_or(""),
                                n["name"].as_str().unwrap_or(""),
                                n["age_s"],
                                n["death_mark"],
                                n["ref"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            rep.human_line(
                &format!(
                    "{:<24} {:>7} {:<11} {:>8}  {:<5} {}",
                    r["vassal"].as_str().unwrap_or(""),
                    r["pid"].as_i64().unwrap_or(0),
                    r["state"].as_str().unwrap_or(""),
                    r["respawns"].as_i64().unwrap_or(0),
                    if r["live"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    if nodes.is_empty() {
                        "-".to_string()
                    } else {
                        nodes.join("; ")
                    }
                ),
                false,
            );
        }
        for (k, l) in &live {
            rep.human_line(&format!("key {k}: {l} live (K={})", s.min_live), false);
        }
    }
    Ok(if below.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}
