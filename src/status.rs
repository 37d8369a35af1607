//! `uwsgi-reload status`: one look at every vassal and the live count per
//! key, without touching anything.

use std::time::Duration;

use serde_json::json;

use crate::cli::{Config, SocketSpec};
use std::collections::BTreeMap;

use crate::engine::{nodes, Action, Availability, Engine, Event, Input, Now, Outcome, Status};
use crate::error::{exit, Error};
use crate::report::info::RunInfo;
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
    let mut routers = Vec::new();
    for spec in &cfg.fastrouter_stats {
        match read(StatsSource::Fastrouter, spec)? {
            Input::Fastrouter(f) => routers.push(f),
            _ => unreachable!("to_input answers a fastrouter read with Fastrouter or ReadFailed"),
        }
    }
    let fr = FastrouterSnapshot::merge(routers);
    Ok((emp, fr))
}

pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<u8, Error> {
    let dir = EmperorDir::open(&cfg.emperor_path, &cfg.suffix, cfg.touch_target)?;
    let configs = crate::runtime::configs::select(cfg, &dir)?;
    let mut parsed = crate::runtime::setup::parse_configs(&dir, &configs)?;
    let (emp, fr) = snapshots(cfg)?;
    let wall = crate::clock::Clock::new().now().wall_s;
    let uncertain = crate::runtime::setup::learn_from_emperor(&mut parsed, Some(&emp));
    let (servers, _) = crate::runtime::setup::checked_servers(cfg, &parsed);
    let server = crate::runtime::setup::servers_line(&servers);
    let mut settings = crate::runtime::setup::engine_settings(
        cfg,
        &dir,
        &configs,
        &parsed,
        server.is_some(),
        uncertain,
    );
    for note in crate::runtime::setup::learn_fastrouter_options(cfg, &mut settings, fr.pid) {
        if !cfg.output.quiet && !cfg.output.json {
            rep.note(&note);
        }
    }
    // The engine's own view: its availability classes, live counts and K
    // per key (one rule, one place; nothing is touched: its actions are
    // only read).
    let now = Now {
        mono_ms: 0,
        wall_s: wall,
    };
    let mut engine = Engine::new(settings.clone(), configs.clone(), now);
    engine.handle(now, Input::Emperor(emp.clone()));
    engine.handle(now, Input::Fastrouter(fr.clone()));
    let mut min_live: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(r) = engine.poll_event() {
        if let Event::Plan { min_live: m, .. } = r.event {
            min_live = m;
        }
    }
    let mut refused = None;
    while let Some(a) = engine.poll_action() {
        if let Action::Finish(Outcome {
            status: Status::Precondition(p),
            ..
        }) = a
        {
            refused = Some(p);
        }
    }
    let s = &settings;
    let matcher = nodes::Matcher::new(&s.node_match, &fr);
    let emp = crate::engine::IndexedEmperor::new(emp);
    let mut rows = Vec::new();
    for (i, c) in configs.iter().enumerate() {
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
        let class = engine.availability(i);
        rows.push(json!({
            "vassal": c.name,
            "pid": pid,
            "state": state,
            "availability": class.as_str(),
            "respawns": st.map_or(0, |v| v.respawns),
            "live": class == Availability::Serving,
            // With --stale-since: what a rollout would do with it by age
            // (the engine's own rule, engine::generation).
            "generation": engine.generation(i).map(|g| g.as_str()),
            "nodes": ns.iter().map(|(k, n)| json!({
                "key": k, "name": n.name, "age_s": wall - n.last_check,
                "death_mark": n.death_mark, "ref": n.refs,
            })).collect::<Vec<_>>(),
        }));
    }
    // Counted by the engine's scheduler, as a rollout would start from.
    let live = engine.preflight_live().clone();
    let k_of = |key: &str| min_live.get(key).copied().unwrap_or(s.min_live);
    let below: Vec<&String> = live
        .iter()
        .filter(|(k, l)| **l < k_of(k))
        .map(|(k, _)| k)
        .collect();
    let server = crate::runtime::setup::servers_line(&servers);
    let mut info_settings = s.clone();
    info_settings.drain_timeout_ms = server.is_some().then_some(cfg.drain_timeout_ms);
    let info = RunInfo::new(&info_settings, server.as_deref())
        .with_versions(&emp.snap.version, &fr.version);
    let k: BTreeMap<String, usize> = live.keys().map(|key| (key.clone(), k_of(key))).collect();
    if cfg.output.json {
        let mut v = json!({"vassals": rows, "live": live, "min_live": min_live,
                       "k": s.min_live, "refused": refused});
        info.add_to(&mut v, &k);
        v["v"] = json!(crate::report::JSON_SCHEMA_VERSION);
        println!("{v}");
    } else {
        // First line: this tool's and uWSGI's versions, the settings.
        rep.human_line(&info.human(&k), false);
        let by_age = s.stale_since_s.is_some();
        let gen_col = |g: &str| {
            if by_age {
                format!("{g:<11}")
            } else {
                String::new()
            }
        };
        rep.human_line(
            &format!(
                "{:<24} {:>7} {:<11} {:<13} {:>8}  {:<5} {}NODES (key name age death_mark ref)",
                "VASSAL",
                "PID",
                "STATE",
                "AVAILABILITY",
                "RESPAWNS",
                "LIVE",
                gen_col("GENERATION")
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
                    "{:<24} {:>7} {:<11} {:<13} {:>8}  {:<5} {}{}",
                    r["vassal"].as_str().unwrap_or(""),
                    r["pid"].as_i64().unwrap_or(0),
                    r["state"].as_str().unwrap_or(""),
                    r["availability"].as_str().unwrap_or(""),
                    r["respawns"].as_i64().unwrap_or(0),
                    if r["live"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    gen_col(r["generation"].as_str().unwrap_or("-")),
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
            rep.human_line(&format!("key {k}: {l} live (K={})", k_of(k)), false);
        }
        if let Some(t) = s.stale_since_s {
            let count = |g: &str| rows.iter().filter(|r| r["generation"] == g).count();
            rep.human_line(
                &format!(
                    "against --stale-since {t}: {} stale (a rollout reloads them), {} current, {} renewing (waited for, then left alone)",
                    count("stale"),
                    count("current"),
                    count("renewing")
                ),
                false,
            );
        }
        if let Some(p) = &refused {
            rep.human_line(&format!("a rollout now would be refused: {p}"), false);
        }
    }
    Ok(if below.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}
