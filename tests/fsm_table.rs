//! `fsm/transitions.tsv` is `engine::step` written out as data. These tests
//! hold the two together in both directions, and keep the diagrams rendered
//! from the table (`fsm/diagram.dot`, the mermaid block in `fsm/README.md`)
//! current. `UPDATE_FSM=1 cargo test --test fsm_table` rewrites the diagrams.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use uwsgi_reload::engine::{step, Effect, FailReason, Phase, Signal};

const COLUMNS: [&str; 5] = ["phase", "signal", "next", "effect", "why"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    line: usize,
    phase: Phase,
    signal: Signal,
    /// `None`: `step` returns `None` (the row says `-` and `-`).
    to: Option<(Phase, Effect)>,
    why: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn phase(s: &str) -> Option<Phase> {
    Phase::ALL.into_iter().find(|p| p.as_str() == s)
}

fn signal(s: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|g| g.as_str() == s)
}

fn effect(s: &str) -> Option<Effect> {
    let plain = [
        Effect::None,
        Effect::Unsubscribe,
        Effect::Touch,
        Effect::Resubscribe,
        Effect::Announce,
        Effect::WriteFifo,
        Effect::Probe,
        Effect::Adopt,
        Effect::Succeed,
    ];
    plain
        .into_iter()
        .chain(FailReason::ALL.into_iter().map(Effect::Fail))
        .find(|e| e.as_string() == s)
}

/// Parses the table, failing with the line number on anything malformed.
fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = raw.split('\t').collect();
        if !header {
            if cols != COLUMNS {
                return Err(format!(
                    "line {line}: expected the header {COLUMNS:?}, got {cols:?}"
                ));
            }
            header = true;
            continue;
        }
        if cols.len() != COLUMNS.len() {
            return Err(format!(
                "line {line}: expected {} tab-separated columns, got {}: {raw:?}",
                COLUMNS.len(),
                cols.len()
            ));
        }
        let p = phase(cols[0]).ok_or(format!("line {line}: unknown phase {:?}", cols[0]))?;
        let s = signal(cols[1]).ok_or(format!("line {line}: unknown signal {:?}", cols[1]))?;
        let to = match (cols[2], cols[3]) {
            ("-", "-") => None,
            ("-", e) => {
                return Err(format!(
                    "line {line}: effect {e:?} without a next phase (write the phase even when it stays the same)"
                ))
            }
            (n, e) => {
                let n = phase(n).ok_or(format!("line {line}: unknown next phase {n:?}"))?;
                let e = effect(e).ok_or(format!("line {line}: unknown effect {e:?}"))?;
                Some((n, e))
            }
        };
        let why = cols[4].trim().to_string();
        if why.is_empty() {
            return Err(format!("line {line}: the why column is empty"));
        }
        rows.push(Row {
            line,
            phase: p,
            signal: s,
            to,
            why,
        });
    }
    if !header {
        return Err("no header row".into());
    }
    Ok(rows)
}

/// Every disagreement between the table and `step`, both directions.
fn disagreements(rows: &[Row]) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen: BTreeMap<(Phase, Signal), usize> = BTreeMap::new();
    for r in rows {
        if let Some(first) = seen.insert((r.phase, r.signal), r.line) {
            errs.push(format!(
                "line {}: ({}, {}) is listed again (first on line {first})",
                r.line,
                r.phase.as_str(),
                r.signal.as_str()
            ));
            continue;
        }
        let got = step(r.phase, r.signal);
        if got != r.to {
            errs.push(format!(
                "line {}: ({}, {}): table says {}, step() says {}",
                r.line,
                r.phase.as_str(),
                r.signal.as_str(),
                show(r.to),
                show(got)
            ));
        }
    }
    for p in Phase::ALL {
        for s in Signal::ALL {
            if !seen.contains_key(&(p, s)) {
                errs.push(format!(
                    "({}, {}) is missing from the table; step() says {}",
                    p.as_str(),
                    s.as_str(),
                    show(step(p, s))
                ));
            }
        }
    }
    errs
}

fn show(t: Option<(Phase, Effect)>) -> String {
    match t {
        None => "- -".into(),
        Some((p, e)) => format!("{} {}", p.as_str(), e.as_string()),
    }
}

fn table() -> Vec<Row> {
    let path = root().join("fsm/transitions.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&text).unwrap_or_else(|e| panic!("fsm/transitions.tsv: {e}"))
}

#[test]
fn names_cover_every_variant_exactly_once() {
    // ALL lists each variant once, and as_str names are unique, so a name in
    // the table means exactly one variant.
    let phases: BTreeSet<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(phases.len(), Phase::ALL.len(), "duplicate phase names");
    let signals: BTreeSet<&str> = Signal::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(signals.len(), Signal::ALL.len(), "duplicate signal names");
    let effects: BTreeSet<String> = FailReason::ALL
        .iter()
        .map(|r| Effect::Fail(*r).as_string())
        .collect();
    assert_eq!(
        effects.len(),
        FailReason::ALL.len(),
        "duplicate fail reason names"
    );
    // A variant missing from ALL would never be checked: every phase and
    // signal step() can produce or is fed must be in ALL.
    for p in Phase::ALL {
        for s in Signal::ALL {
            if let Some((n, e)) = step(p, s) {
                assert!(Phase::ALL.contains(&n), "{n:?} is not in Phase::ALL");
                assert!(
                    effect(&e.as_string()) == Some(e),
                    "{e:?} does not round-trip by name"
                );
            }
        }
    }
}

#[test]
fn table_agrees_with_step_in_both_directions() {
    let rows = table();
    let errs = disagreements(&rows);
    assert!(
        errs.is_empty(),
        "fsm/transitions.tsv and step() disagree:\n{}",
        errs.join("\n")
    );
    assert_eq!(rows.len(), Phase::ALL.len() * Signal::ALL.len());
    // The table lists pairs in Phase::ALL x Signal::ALL order, so a reader
    // finds a pair where expected.
    let order: Vec<(Phase, Signal)> = rows.iter().map(|r| (r.phase, r.signal)).collect();
    let want: Vec<(Phase, Signal)> = Phase::ALL
        .iter()
        .flat_map(|p| Signal::ALL.iter().map(move |s| (*p, *s)))
        .collect();
    assert_eq!(
        order, want,
        "rows are not in Phase::ALL x Signal::ALL order"
    );
}

#[test]
fn the_checker_catches_a_changed_missing_or_duplicated_row() {
    let rows = table();
    let mut changed = rows.clone();
    changed[0].to = None;
    assert_eq!(disagreements(&changed).len(), 1);
    let mut missing = rows.clone();
    missing.remove(5);
    assert_eq!(disagreements(&missing).len(), 1);
    let mut dup = rows.clone();
    dup.push(rows[7].clone());
    assert_eq!(disagreements(&dup).len(), 1);
    assert!(parse("phase\tsignal\tnext\teffect\twhy\nIdle\tStart\t-\tTouch\tx\n").is_err());
    assert!(parse("phase\tsignal\tnext\teffect\twhy\nIdle\tBogus\t-\t-\tx\n").is_err());
    assert!(parse("phase\tsignal\tnext\teffect\twhy\nIdle\tStart\t-\t-\t\n").is_err());
    assert!(parse("Idle\tStart\t-\t-\tx\n").is_err());
}

#[test]
fn machine_shape() {
    // Terminal phases never move; every non-terminal phase can end.
    for p in Phase::ALL {
        for s in Signal::ALL {
            if p.terminal() {
                assert_eq!(step(p, s), None, "{p:?} is terminal but moves on {s:?}");
            }
        }
    }
    let mut reach: BTreeSet<Phase> = BTreeSet::from([Phase::Idle]);
    loop {
        let more: BTreeSet<Phase> = reach
            .iter()
            .flat_map(|p| {
                Signal::ALL
                    .iter()
                    .filter_map(move |s| step(*p, *s).map(|(n, _)| n))
            })
            .collect();
        if more.is_subset(&reach) {
            break;
        }
        reach.extend(more);
    }
    assert_eq!(
        reach,
        Phase::ALL.into_iter().collect(),
        "a phase is unreachable from Idle"
    );
    // Only Idle and Draining (never touched) may be touched; a touched
    // vassal is never touched again.
    for p in Phase::ALL {
        for s in Signal::ALL {
            if let Some((_, Effect::Touch)) = step(p, s) {
                assert!(
                    matches!(p, Phase::Idle | Phase::Draining),
                    "{p:?} + {s:?} touches"
                );
            }
        }
    }
}

// ----- diagrams --------------------------------------------------------------

/// Edges of the diagram: (from, to) -> "Signal / Effect" labels.
fn edges(rows: &[Row]) -> BTreeMap<(Phase, Phase), Vec<String>> {
    let mut e: BTreeMap<(Phase, Phase), Vec<String>> = BTreeMap::new();
    for r in rows {
        if let Some((to, eff)) = r.to {
            let label = match eff {
                Effect::None => r.signal.as_str().to_string(),
                _ => format!("{} / {}", r.signal.as_str(), eff.as_string()),
            };
            e.entry((r.phase, to)).or_default().push(label);
        }
    }
    e
}

fn render_dot(rows: &[Row]) -> String {
    let mut s = String::from(
        "// Generated from fsm/transitions.tsv by tests/fsm_table.rs (UPDATE_FSM=1 cargo test --test fsm_table).\n\
         // Render: dot -Tsvg fsm/diagram.dot > diagram.svg\n\
         digraph vassal {\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for p in Phase::ALL {
        let attrs = if p.terminal() { ", peripheries=2" } else { "" };
        s.push_str(&format!(
            "  {} [label=\"{}\"{attrs}];\n",
            p.as_str(),
            p.as_str()
        ));
    }
    for ((from, to), labels) in edges(rows) {
        s.push_str(&format!(
            "  {} -> {} [label=\"{}\"];\n",
            from.as_str(),
            to.as_str(),
            labels.join("\\n")
        ));
    }
    s.push_str("}\n");
    s
}

fn render_mermaid(rows: &[Row]) -> String {
    let mut s = String::from("```mermaid\nstateDiagram-v2\n    [*] --> Idle\n");
    for ((from, to), labels) in edges(rows) {
        s.push_str(&format!(
            "    {} --> {}: {}\n",
            from.as_str(),
            to.as_str(),
            labels.join("<br/>")
        ));
    }
    for p in Phase::ALL.into_iter().filter(|p| p.terminal()) {
        s.push_str(&format!("    {} --> [*]\n", p.as_str()));
    }
    s.push_str("```\n");
    s
}

const BEGIN: &str =
    "<!-- mermaid: generated from transitions.tsv by tests/fsm_table.rs; do not edit -->\n";
const END: &str = "<!-- end of generated mermaid -->\n";

fn splice(readme: &str, block: &str) -> Option<String> {
    let b = readme.find(BEGIN)? + BEGIN.len();
    let e = readme[b..].find(END)? + b;
    Some(format!("{}{}{}", &readme[..b], block, &readme[e..]))
}

#[test]
fn diagrams_are_current() {
    let rows = table();
    let update = std::env::var_os("UPDATE_FSM").is_some();
    let dot_path = root().join("fsm/diagram.dot");
    let dot = render_dot(&rows);
    let readme_path = root().join("fsm/README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("fsm/README.md");
    let spliced =
        splice(&readme, &render_mermaid(&rows)).expect("fsm/README.md lacks the mermaid markers");
    if update {
        std::fs::write(&dot_path, &dot).unwrap();
        std::fs::write(&readme_path, &spliced).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&dot_path).unwrap_or_default();
    assert!(
        on_disk == dot,
        "fsm/diagram.dot is stale: run UPDATE_FSM=1 cargo test --test fsm_table"
    );
    assert!(
        readme == spliced,
        "the mermaid block in fsm/README.md is stale: run UPDATE_FSM=1 cargo test --test fsm_table"
    );
}
