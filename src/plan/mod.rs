//! `--dry-run`: the engine's own preflight on one look at the stats, then the
//! plan it implies, written as waves: the real engine driven through an
//! ideal world (`ideal`), so a dry run and a rollout decide alike. Nothing
//! is touched.

pub mod ideal;

use std::collections::BTreeMap;

use serde_json::json;

use crate::engine::{Action, Engine, Event, Input, Now};
use crate::error::{exit, Error};
use crate::report::Reporter;
use crate::run_config::Config;
use crate::runtime::session::{Mode, Session};

/// `--dry-run`: the rollout's own setup, then the plan the engine makes in
/// the ideal world, printed as waves. Long on purpose: the steps are the
/// rollout's, in its order, so a reader can compare them line by line.
pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<u8, Error> {
    // The rollout's own setup, checks and refusals (exit 3) included: a
    // dry run promises what the rollout would do.
    let session = Session::prepare(cfg, Mode::DryRun)?;
    let (emp, fr) = session.look.both()?;
    let wall_s = rep.clock().now().wall_s;
    // The report opens with the versions and settings, as a rollout's does.
    session.open_report(cfg, rep);
    let Session {
        settings,
        configs,
        info,
        ..
    } = session;
    // On the run's clock, so its events follow the notes in time.
    let now = Now {
        wall_s,
        ..rep.clock().now()
    };
    let mut engine = Engine::new(settings.clone(), configs.clone(), now);
    engine.handle(now, Input::Emperor(emp.clone()));
    engine.handle(now, Input::Fastrouter(fr.clone()));
    // Finished before any action: refused, or nothing to do (every vassal
    // already current against --stale-since). Then every report is shown,
    // then the outcome.
    let finished = std::iter::from_fn(|| engine.poll_action()).find_map(|a| match a {
        Action::Finish(o) => Some(o),
        _ => None,
    });
    // Otherwise only preflight's reports, up to its `Plan`: the steps after
    // it (drains, touches) are the real rollout's, which a dry run does not
    // take; the waves below show them.
    let mut min_live = BTreeMap::new();
    while let Some(r) = engine.poll_event() {
        let plan = if let Event::Plan { min_live: m, .. } = &r.event {
            min_live = m.clone();
            true
        } else {
            false
        };
        rep.event(&r);
        if plan && finished.is_none() {
            break;
        }
    }
    if let Some(o) = finished {
        let code = exit::of_outcome(&o.status, None);
        rep.outcome(&o, code, 2);
        return Ok(code);
    }
    let ideal = ideal::plan(settings, configs, emp, fr, wall_s);
    let mut plan = ideal.waves;
    // What the ideal world could not reload, and why (K, a vassal that
    // never accepts): the same reasons a rollout would give.
    match &ideal.outcome {
        Some(o) if !o.untouched.is_empty() || !o.failed.is_empty() => {
            let mut left: Vec<String> = o
                .untouched
                .iter()
                .map(|(v, why)| format!("{v} (not reloaded: {why})"))
                .collect();
            left.extend(
                o.failed
                    .iter()
                    .map(|(v, r, _)| format!("{v} (would fail: {})", r.as_str())),
            );
            plan.push(left);
        }
        Some(_) => {}
        None => plan.push(vec![
            "(the plan did not end within an hour of simulated time)".into(),
        ]),
    }
    if cfg.output.json {
        let mut v = json!({"event": "dry_run", "waves": plan, "min_live": min_live});
        info.add_to(&mut v, &min_live);
        crate::report::emit_untimed_json(rep, v);
    }
    for (i, w) in plan.iter().enumerate() {
        rep.human_line(&format!("wave {}: {}", i + 1, w.join(", ")), false);
    }
    rep.human_line("dry run: nothing was touched", false);
    Ok(exit::OK)
}
