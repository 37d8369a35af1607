//! `uwsgi-reload status`: one look at every vassal and the live count per
//! key, without touching anything. The setup (settings, header, notes) is
//! the rollout's own (`runtime::session`); what is shown of each vassal is
//! the engine's view of that one look ([`View::of`]), written as a table
//! ([`print_human`]) or one JSON object ([`print_json`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::engine::{nodes, Action, Availability, Engine, Event, Input, Now, Outcome, Status};
use crate::error::{exit, Error};
use crate::report::Reporter;
use crate::run_config::Config;
use crate::runtime::session::{Mode, Session};
use crate::stats::{EmperorSnapshot, FastrouterSnapshot};

pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<u8, Error> {
    let mut session = Session::prepare(cfg, Mode::Status)?;
    // One look cannot measure a remote router's clock (the rollout learns
    // it from announces between reads: engine/clocks.rs).
    if !session.settings.tcp_routers.is_empty() {
        session.notes.push("note: a fastrouter is read over TCP and may be another host's: one look cannot measure its clock, so its nodes' ages and freshness here are on this host's clock (a rollout measures it before judging them)".to_string());
    }
    let (emp, fr) = session.look.both()?;
    let view = View::of(&session, emp, fr);
    if cfg.output.json {
        print_json(&session, &view);
    } else {
        print_human(cfg, rep, &session, &view);
    }
    Ok(if view.below_k() {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// One vassal's row.
struct Row {
    vassal: String,
    pid: i64,
    /// What the Emperor says of it (blacklisted, absent, stopping,
    /// accepting, reloading).
    state: &'static str,
    /// The engine's availability class.
    availability: Availability,
    /// Unless serving, the evidence in the engine's words.
    why: String,
    respawns: i64,
    /// With `--stale-since`: what a rollout would do with it by age (the
    /// engine's own rule, engine::generation).
    generation: Option<&'static str>,
    /// Its nodes: (key, name, age in s, death_mark, ref, whether the
    /// last packet that refreshed it was the vassal's own).
    nodes: Vec<(String, String, i64, i64, i64, bool)>,
}

/// What status shows: the engine's view of the one look.
struct View {
    rows: Vec<Row>,
    /// Live nodes per key, counted by the engine's scheduler, as a rollout
    /// would start from.
    live: BTreeMap<String, usize>,
    /// K per key, as the engine's `Plan` gives it (empty when refused).
    min_live: BTreeMap<String, usize>,
    /// K for every key with live nodes (the global K where `Plan` gave none).
    k: BTreeMap<String, usize>,
    /// Why a rollout now would be refused: the setup's own checks first
    /// (as a rollout makes them first), then the engine's preflight.
    refused: Option<String>,
}

impl View {
    /// The engine's own view: its availability classes, live counts and K
    /// per key (one rule, one place; nothing is touched: its actions are
    /// only read).
    fn of(session: &Session, emp: EmperorSnapshot, fr: FastrouterSnapshot) -> View {
        let wall = crate::clock::Clock::new().now().wall_s;
        let now = Now {
            mono_ms: 0,
            wall_s: wall,
        };
        let s = &session.settings;
        let mut engine = Engine::new(s.clone(), session.configs.clone(), now);
        engine.handle(now, Input::Emperor(emp.clone()));
        engine.handle(now, Input::Fastrouter(fr.clone()));
        let mut min_live = BTreeMap::new();
        while let Some(r) = engine.poll_event() {
            if let Event::Plan { min_live: m, .. } = r.event {
                min_live = m;
            }
        }
        let mut refused = session.refusal.clone();
        while let Some(a) = engine.poll_action() {
            if let Action::Finish(Outcome {
                status: Status::Precondition(p),
                ..
            }) = a
            {
                refused.get_or_insert(p);
            }
        }
        let matcher = nodes::Matcher::new(&s.node_match, &fr);
        let emp = crate::engine::IndexedEmperor::new(emp);
        let rows = session
            .configs
            .iter()
            .enumerate()
            .map(|(i, c)| Row::of(&engine, &emp, &matcher, &fr, i, &c.name, wall))
            .collect();
        let live = engine.preflight_live().clone();
        let k = live
            .keys()
            .map(|key| {
                (
                    key.clone(),
                    min_live.get(key).copied().unwrap_or(s.min_live),
                )
            })
            .collect();
        View {
            rows,
            live,
            min_live,
            k,
            refused,
        }
    }

    /// A key has fewer live nodes than its K (status exits 1).
    fn below_k(&self) -> bool {
        self.live.iter().any(|(key, l)| *l < self.k[key])
    }
}

impl Row {
    /// Vassal `i` (config `name`) as the engine and both snapshots show it.
    fn of(
        engine: &Engine,
        emp: &crate::engine::IndexedEmperor,
        matcher: &nodes::Matcher,
        fr: &FastrouterSnapshot,
        i: usize,
        name: &str,
        wall: i64,
    ) -> Row {
        let st = emp.vassal(name);
        let state = match (st, emp.blacklisted(name)) {
            (_, Some(_)) => "blacklisted",
            (None, None) => "absent",
            (Some(v), _) if v.cursed != 0 => "stopping",
            (Some(v), _) if v.accepting == 1 => "accepting",
            (Some(_), _) => "reloading",
        };
        let pid = st.map_or(0, |v| v.pid);
        let (availability, _, why) = engine.availability_why(i);
        Row {
            vassal: name.to_string(),
            pid,
            state,
            availability,
            why,
            respawns: st.map_or(0, |v| v.respawns),
            generation: engine.generation(i).map(|g| g.as_str()),
            nodes: matcher
                .nodes_of(name, pid, fr)
                .map(|(k, n)| {
                    let age = wall - n.last_check;
                    let own = n.refreshed_by_vassal();
                    (
                        k.to_string(),
                        n.name.clone(),
                        age,
                        n.death_mark,
                        n.refs,
                        own,
                    )
                })
                .collect(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "vassal": self.vassal,
            "pid": self.pid,
            "state": self.state,
            "availability": self.availability.as_str(),
            "respawns": self.respawns,
            "live": self.availability == Availability::Serving,
            "generation": self.generation,
            "why": (!self.why.is_empty()).then_some(&self.why),
            "nodes": self.nodes.iter().map(|(k, n, age, dm, refs, own)| json!({
                "key": k, "name": n, "age_s": age, "death_mark": dm, "ref": refs,
                "refreshed_by": if *own { "vassal" } else { "not_the_vassal" },
            })).collect::<Vec<_>>(),
        })
    }
}

/// `--json`: one object on stdout, the notes in it (`notes`), not as
/// `note` events: a status is one document.
fn print_json(session: &Session, view: &View) {
    let rows: Vec<Value> = view.rows.iter().map(Row::to_json).collect();
    let mut v = json!({"vassals": rows, "live": view.live, "min_live": view.min_live,
                       "k": session.settings.min_live, "refused": view.refused,
                       "notes": session.notes});
    session.info.add_to(&mut v, &view.k);
    v["v"] = json!(crate::report::JSON_SCHEMA_VERSION);
    println!("{v}");
}

/// The header (the rollout's and the dry run's first line), the notes (as
/// they follow it), the table, why each vassal that is not serving is not,
/// the live count per key, what a rollout would do by age, and a refusal it
/// would meet. Long on purpose: the page, top to bottom.
fn print_human(cfg: &Config, rep: &mut Reporter, session: &Session, view: &View) {
    rep.human_line(&session.info.human(&view.k), false);
    if !cfg.output.quiet {
        for n in &session.notes {
            rep.note(n);
        }
    }
    let by_age = session.settings.stale_since_s.is_some();
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
    for r in &view.rows {
        let nodes: Vec<String> = r
            .nodes
            .iter()
            .map(|(k, n, age, dm, refs, own)| {
                let ours = if *own {
                    ""
                } else {
                    " (last packet not the vassal's)"
                };
                format!("{k} {n} {age}s {dm} {refs}{ours}")
            })
            .collect();
        rep.human_line(
            &format!(
                "{:<24} {:>7} {:<11} {:<13} {:>8}  {:<5} {}{}",
                r.vassal,
                r.pid,
                r.state,
                r.availability.as_str(),
                r.respawns,
                if r.availability == Availability::Serving {
                    "yes"
                } else {
                    "no"
                },
                gen_col(r.generation.unwrap_or("-")),
                if nodes.is_empty() {
                    "-".to_string()
                } else {
                    nodes.join("; ")
                }
            ),
            false,
        );
    }
    for r in view.rows.iter().filter(|r| !r.why.is_empty()) {
        rep.human_line(&format!("{}: {}", r.vassal, r.why), false);
    }
    for (key, l) in &view.live {
        rep.human_line(&format!("key {key}: {l} live (K={})", view.k[key]), false);
    }
    if let Some(t) = session.settings.stale_since_s {
        let count = |g: &str| view.rows.iter().filter(|r| r.generation == Some(g)).count();
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
    if let Some(p) = &view.refused {
        rep.human_line(&format!("a rollout now would be refused: {p}"), false);
    }
}
