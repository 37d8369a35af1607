//! `--dry-run`: the engine's own preflight on one look at the stats, then the
//! plan it implies, written as waves. Nothing is touched.

use std::collections::BTreeMap;

use serde_json::json;

use crate::cli::Config;
use crate::engine::{nodes, Action, Engine, Event, Input, Now, Settings, Status};
use crate::error::{exit, Error};
use crate::report::Reporter;
use crate::runtime::configs::EmperorDir;
use crate::stats::{EmperorSnapshot, FastrouterSnapshot};

/// The waves the scheduler would start if every vassal took the same time:
/// each wave is as large as K per key (and `max_parallel`) allows; a vassal
/// that is not live costs no budget.
pub fn waves(
    s: &Settings,
    vassals: &[String],
    min_live: &BTreeMap<String, usize>,
    emp: &EmperorSnapshot,
    fr: &FastrouterSnapshot,
    wall_s: i64,
) -> Vec<Vec<String>> {
    let matcher = nodes::Matcher::new(&s.node_match, fr);
    let ours: Vec<(&str, bool)> = vassals.iter().map(|v| (v.as_str(), true)).collect();
    let full = nodes::live_per_key(&matcher, &ours, emp, fr, wall_s, |c| s.tolerance_s(c));
    let mut left: Vec<&String> = vassals.iter().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let mut live = full.clone();
        let mut wave = Vec::new();
        left.retain(|v| {
            if wave.len() >= s.max_parallel {
                return true;
            }
            let pid = emp.vassal(v).map_or(0, |x| x.pid);
            let keys: Vec<String> = matcher
                .nodes_of(v, pid, fr)
                .filter(|(_, n)| nodes::node_fresh(n, wall_s, s.node_tolerance_s))
                .map(|(k, _)| k.to_string())
                .collect();
            let is_live = nodes::emperor_healthy(emp, v) && !keys.is_empty();
            let k = |key: &str| min_live.get(key).copied().unwrap_or(s.min_live);
            if is_live
                && keys
                    .iter()
                    .any(|key| live.get(key).copied().unwrap_or(0) < k(key) + 1)
            {
                return true;
            }
            if is_live {
                for key in &keys {
                    if let Some(l) = live.get_mut(key) {
                        *l -= 1;
                    }
                }
            }
            wave.push((*v).clone());
            false
        });
        if wave.is_empty() {
            // K cannot be kept for what is left: say so rather than loop.
            out.push(left.iter().map(|v| format!("{v} (blocked by K)")).collect());
            break;
        }
        out.push(wave);
    }
    out
}

pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<u8, Error> {
    let dir = EmperorDir::open(&cfg.emperor_path, &cfg.suffix, cfg.touch_target)?;
    let configs = crate::runtime::configs::select(cfg, &dir)?;
    let (emp, fr) = crate::status::snapshots(cfg)?;
    let wall_s = crate::runtime::clock::Clock::new().now().wall_s;
    let parsed = crate::runtime::driver::parse_configs(&dir, &configs);
    let (server, notes) = crate::runtime::driver::subscription_server(cfg, &parsed);
    for n in notes.iter().chain(&crate::runtime::driver::doctor(
        cfg,
        &parsed,
        server.is_some(),
    )?) {
        if !cfg.output.quiet {
            rep.human_line(n, false);
        }
    }
    let settings =
        crate::runtime::driver::engine_settings(cfg, &dir, &configs, &parsed, server.is_some());
    let now = Now { mono_ms: 0, wall_s };
    let mut engine = Engine::new(settings.clone(), configs.clone(), now);
    engine.handle(now, Input::Emperor(emp.clone()));
    engine.handle(now, Input::Fastrouter(fr.clone()));
    // Everything the engine says up to its first real action is preflight.
    let mut min_live = BTreeMap::new();
    while let Some(a) = engine.poll_action() {
        match a {
            Action::Report(r) => {
                if let Event::Plan { min_live: m, .. } = &r.event {
                    min_live = m.clone();
                }
                rep.event(&r);
            }
            Action::Finish(o) => {
                let code = match o.status {
                    Status::Precondition(_) => exit::PRECONDITION,
                    _ => exit::FAILED,
                };
                rep.outcome(&o, code, 2);
                return Ok(code);
            }
            Action::ReadStats(_) => {}
            _ => break,
        }
    }
    let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
    let plan = waves(&settings, &names, &min_live, &emp, &fr, wall_s);
    if cfg.output.json {
        println!(
            "{}",
            json!({"event": "dry_run", "waves": plan, "min_live": min_live})
        );
    }
    for (i, w) in plan.iter().enumerate() {
        rep.human_line(&format!("wave {}: {}", i + 1, w.join(", ")), false);
    }
    rep.human_line("dry run: nothing was touched", false);
    Ok(exit::OK)
}
