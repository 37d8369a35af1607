//! `fsm/transitions.tsv` is the per-vassal machine; `build.rs` generates
//! `engine::step` (and `is_impossible`, `why`) from it. These tests check
//! the generated code against the table, that a malformed table is refused
//! naming its row, the machine's shape, and keep the diagrams rendered from
//! the table (`fsm/diagram.dot`, the mermaid block in `fsm/README.md`)
//! current. `UPDATE_FSM=1 cargo test --test fsm_table` rewrites the diagrams.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use uwsgi_reload::engine::{is_impossible, step, why, Effect, Fact, FailReason, Phase, Task};

/// The parser build.rs generates `step()` with.
#[path = "../fsm/parse.rs"]
mod fsm_table;

use fsm_table::{parse, Row};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every disagreement between the rows and the generated functions.
fn disagreements(rows: &[Row]) -> Vec<String> {
    let mut errs = Vec::new();
    for r in rows {
        let (p, s) = (r.phase.as_str(), r.fact.as_str());
        let got = step(r.phase, r.fact).map(|(n, e)| (n, e.to_vec()));
        if got != r.to {
            errs.push(format!(
                "line {}: ({p}, {s}): table says {}, step() says {}",
                r.line,
                show(&r.to),
                show(&got)
            ));
        }
        if is_impossible(r.phase, r.fact) != r.impossible() {
            errs.push(format!(
                "line {}: ({p}, {s}): is_impossible() disagrees",
                r.line
            ));
        }
        if why(r.phase, r.fact) != r.why {
            errs.push(format!("line {}: ({p}, {s}): why() disagrees", r.line));
        }
    }
    errs
}

fn show(t: &Option<(Phase, Vec<Effect>)>) -> String {
    match t {
        None => "- -".into(),
        Some((p, e)) => format!("{} {}", p.as_str(), effects(e)),
    }
}

fn effects(e: &[Effect]) -> String {
    if e.is_empty() {
        return "-".into();
    }
    e.iter()
        .map(|e| e.as_string())
        .collect::<Vec<_>>()
        .join("+")
}

fn table_text() -> String {
    let path = root().join("fsm/transitions.tsv");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn table() -> Vec<Row> {
    parse(&table_text()).unwrap_or_else(|e| panic!("fsm/transitions.tsv: {e}"))
}

#[test]
fn names_cover_every_variant_exactly_once() {
    // ALL lists each variant once, and the names are unique and round-trip,
    // so a name in the table means exactly one variant.
    for p in Phase::ALL {
        assert_eq!(Phase::from_name(p.as_str()), Some(p));
    }
    for s in Fact::ALL {
        assert_eq!(Fact::from_name(s.as_str()), Some(s));
    }
    let all_effects = Task::ALL
        .into_iter()
        .map(Effect::Do)
        .chain(FailReason::ALL.into_iter().map(Effect::Fail));
    let mut names = BTreeSet::new();
    for e in all_effects {
        assert_eq!(Effect::from_name(&e.as_string()), Some(e));
        assert!(names.insert(e.as_string()), "{e:?}: duplicate name");
    }
    let phases: BTreeSet<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(phases.len(), Phase::ALL.len(), "duplicate phase names");
    let facts: BTreeSet<&str> = Fact::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(facts.len(), Fact::ALL.len(), "duplicate fact names");
}

#[test]
fn generated_step_agrees_with_the_table() {
    let rows = table();
    let errs = disagreements(&rows);
    assert!(
        errs.is_empty(),
        "fsm/transitions.tsv and the generated step() disagree (stale build?):\n{}",
        errs.join("\n")
    );
    assert_eq!(rows.len(), Phase::ALL.len() * Fact::ALL.len());
    // Every task is used by some row: a task no row names is dead code.
    let used: BTreeSet<Task> = rows
        .iter()
        .filter_map(|r| r.to.as_ref())
        .flat_map(|(_, e)| e.iter())
        .filter_map(|e| match e {
            Effect::Do(t) => Some(*t),
            Effect::Fail(_) => None,
        })
        .collect();
    assert_eq!(used, Task::ALL.into_iter().collect(), "a Task no row names");
}

#[test]
fn the_parser_names_the_row_of_a_malformed_table() {
    let text = table_text();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("Idle\tStart\t"))
        .unwrap();
    let with = |n: usize, row: Option<&str>| -> String {
        let mut l = lines.clone();
        match row {
            Some(r) => l[n] = r,
            None => {
                l.remove(n);
            }
        }
        l.join("\n")
    };
    let dup = lines[first];
    let cases: [(usize, &str, &str); 8] = [
        (first, "Idle\tStart\t-\tTouch\tx", "without a next phase"),
        (first, "Idle\tBogus\t-\t-\tx", "unknown fact \"Bogus\""),
        (first, "Idle\tStart\t-\t-\t", "the why column is empty"),
        (
            first,
            "Idle\tStart\tTouched\tTouch+Bogus\tx",
            "unknown effect \"Bogus\"",
        ),
        (
            first,
            "Idle\tStart\tTouched\tFail(bogus)\tx",
            "unknown effect",
        ),
        (
            first,
            "Idle\tStart\tTouched\tTouch\tnot raised: x",
            "cannot say",
        ),
        (
            first,
            "Idle\tStart\tTouched",
            "expected 5 tab-separated columns",
        ),
        (first + 1, dup, "is listed again"),
    ];
    for (n, row, want) in cases {
        let err = parse(&with(n, Some(row))).expect_err(want);
        assert!(!err.contains('\n'), "not one line: {err}");
        assert!(err.contains(want), "{err:?} does not say {want:?}");
        assert!(
            err.starts_with(&format!("line {}:", n + 1)),
            "{err:?} does not name line {}",
            n + 1
        );
    }
    let err = parse(&with(first, None)).unwrap_err();
    assert!(err.contains("(Idle, Start)"), "{err}");
    let err = parse(&with(lines.len() - 1, None)).unwrap_err();
    assert!(err.contains("is missing"), "{err}");
    assert!(parse("Idle\tStart\t-\t-\tx\n").is_err());
}

#[test]
fn machine_shape() {
    // Terminal phases never move; every non-terminal phase can end.
    for p in Phase::ALL {
        for s in Fact::ALL {
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
                Fact::ALL
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
        for s in Fact::ALL {
            if step(p, s).is_some_and(|(_, e)| e.contains(&Effect::Do(Task::Touch))) {
                assert!(
                    matches!(p, Phase::Idle | Phase::Draining),
                    "{p:?} + {s:?} touches"
                );
            }
        }
    }
}

// ----- diagrams --------------------------------------------------------------

/// Edges of the diagram: (from, to) -> "Fact / Effect" labels.
fn edges(rows: &[Row]) -> BTreeMap<(Phase, Phase), Vec<String>> {
    let mut e: BTreeMap<(Phase, Phase), Vec<String>> = BTreeMap::new();
    for r in rows {
        if let Some((to, eff)) = &r.to {
            let to = *to;
            let label = match eff.is_empty() {
                true => r.fact.as_str().to_string(),
                false => format!("{} / {}", r.fact.as_str(), effects(eff)),
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

/// `fsm/phases.tsv` is the source of the groups: `in_flight()` and
/// `terminal()` say what its rows say, and a malformed table is refused
/// naming its line.
#[test]
fn the_phase_groups_are_the_table() {
    let path = root().join("fsm/phases.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows = fsm_table::parse_phases(&text).unwrap();
    for r in &rows {
        assert_eq!(
            r.phase.in_flight(),
            r.group == fsm_table::Group::Flight,
            "{:?}",
            r.phase
        );
        assert_eq!(
            r.phase.terminal(),
            r.group == fsm_table::Group::Done,
            "{:?}",
            r.phase
        );
        assert!(
            !r.waits_for.is_empty(),
            "{:?} says what it waits for",
            r.phase
        );
    }
    let bad = text.replace("Touched\tflight", "Touched\tairborne");
    let e = fsm_table::parse_phases(&bad).unwrap_err();
    assert!(e.contains("airborne") && e.starts_with("line "), "{e}");
    let swapped = text
        .replace("Idle\trest", "Idle\tREST")
        .replace("Idle\tREST", "Failed\trest");
    let e = fsm_table::parse_phases(&swapped).unwrap_err();
    assert!(e.contains("Phase::ALL order"), "{e}");
}
