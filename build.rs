//! Generates the per-vassal machine from its table: `fsm/transitions.tsv` is
//! the source, and `$OUT_DIR/fsm_step.rs` (included by
//! `src/engine/phase.rs`) holds `step()`, `is_impossible()` and `why()` as
//! one `match` each over every (phase, fact) pair. A malformed table
//! fails the build with one line naming the row.

use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "src/engine/fsm_names.rs"]
#[allow(dead_code)]
mod fsm_names;
#[path = "fsm/parse.rs"]
#[allow(dead_code)]
mod fsm_table;

use fsm_names::{Effect, Fact, FailReason, Phase, Task};
use fsm_table::Row;

const TABLE: &str = "fsm/transitions.tsv";
const PHASES: &str = "fsm/phases.tsv";

fn main() {
    for input in [
        TABLE,
        PHASES,
        "build.rs",
        "fsm/parse.rs",
        "src/engine/fsm_names.rs",
    ] {
        println!("cargo:rerun-if-changed={input}");
    }
    let text = std::fs::read_to_string(TABLE).unwrap_or_else(|e| fail(TABLE, &format!("{e}")));
    let rows = fsm_table::parse(&text).unwrap_or_else(|e| fail(TABLE, &e));
    let text = std::fs::read_to_string(PHASES).unwrap_or_else(|e| fail(PHASES, &format!("{e}")));
    let phases = fsm_table::parse_phases(&text).unwrap_or_else(|e| fail(PHASES, &e));
    check_terminal(&rows, &phases);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let code = generate(&rows) + &generate_groups(&rows, &phases);
    std::fs::write(out.join("fsm_step.rs"), code)
        .unwrap_or_else(|e| fail(TABLE, &format!("writing the generated step(): {e}")));
}

fn fail(file: &str, msg: &str) -> ! {
    eprintln!("error: {file}: {msg}");
    std::process::exit(1);
}

/// A `done` phase is terminal: no row of it may move or act.
fn check_terminal(rows: &[Row], phases: &[fsm_table::PhaseRow]) {
    for p in phases.iter().filter(|p| p.group == fsm_table::Group::Done) {
        if let Some(r) = rows.iter().find(|r| r.phase == p.phase && r.to.is_some()) {
            fail(
                TABLE,
                &format!(
                    "line {}: {} is terminal ({PHASES} line {}), yet this row moves it",
                    r.line,
                    p.phase.as_str(),
                    p.line
                ),
            );
        }
    }
}

/// `Phase::in_flight()` and `Phase::terminal()` from the groups, and for
/// each flight phase the enum of the facts its observer may raise: those
/// the table does not call "not raised" there. An observer that returns a
/// fact the table rules out does not compile.
fn generate_groups(rows: &[Row], phases: &[fsm_table::PhaseRow]) -> String {
    use fsm_table::Group;
    let of = |g: Group| -> String {
        let names: Vec<String> = phases
            .iter()
            .filter(|p| p.group == g)
            .map(|p| format!("Phase::{:?}", p.phase))
            .collect();
        if names.is_empty() {
            "false".into()
        } else {
            format!("matches!(self, {})", names.join(" | "))
        }
    };
    let mut out = format!(
        "
impl Phase {{
    /// Out of rotation because of this rollout: counts against K
    /// ({PHASES}: group `flight`).
    pub fn in_flight(self) -> bool {{
        {}
    }}

    /// Nothing changes it any more ({PHASES}: group `done`).
    pub fn terminal(self) -> bool {{
        {}
    }}
}}
",
        of(Group::Flight),
        of(Group::Done)
    );
    for p in phases.iter().filter(|p| p.group == Group::Flight) {
        let facts: Vec<Fact> = rows
            .iter()
            .filter(|r| r.phase == p.phase && !r.impossible())
            .map(|r| r.fact)
            .collect();
        let name = format!("{:?}Fact", p.phase);
        let variants: String = facts.iter().map(|f| format!("    {f:?},\n")).collect();
        let arms: String = facts
            .iter()
            .map(|f| format!("            {name}::{f:?} => Fact::{f:?},\n"))
            .collect();
        let _ = write!(
            out,
            "
/// The facts `{phase}` may be fed ({TABLE}: every row of `{phase}` not
/// called \"not raised\").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum {name} {{
{variants}}}

impl From<{name}> for Fact {{
    fn from(f: {name}) -> Fact {{
        match f {{
{arms}        }}
    }}
}}
",
            phase = p.phase.as_str()
        );
    }
    out
}

fn effect_expr(e: Effect) -> String {
    match e {
        Effect::Do(t) => format!("E::Do(T::{t:?})"),
        Effect::Fail(r) => format!("E::Fail(R::{r:?})"),
    }
}

fn generate(rows: &[Row]) -> String {
    // Touch the imports so a table without one of them still compiles.
    let _ = (Task::ALL, FailReason::ALL, Phase::ALL, Fact::ALL);
    let mut step = String::new();
    let mut impossible = Vec::new();
    let mut why = String::new();
    for r in rows {
        let pair = format!("(P::{:?}, F::{:?})", r.phase, r.fact);
        let to = match &r.to {
            None => "None".to_string(),
            Some((next, effects)) => {
                let list: Vec<String> = effects.iter().map(|e| effect_expr(*e)).collect();
                format!("Some((P::{next:?}, &[{}]))", list.join(", "))
            }
        };
        let _ = writeln!(
            step,
            "        // {TABLE}:{}\n        {pair} => {to},",
            r.line
        );
        if r.impossible() {
            impossible.push(pair.clone());
        }
        let _ = writeln!(why, "        {pair} => {:?},", r.why);
    }
    format!(
        "// Generated by build.rs from {TABLE}: do not edit; change the table.

/// The machine: the next phase and the effects to carry out, in order.
/// `None`: the fact changes nothing in that phase (it is ignored there,
/// or it is never raised there: see [`is_impossible`]).
pub fn step(phase: Phase, fact: Fact) -> Option<(Phase, &'static [Effect])> {{
    #[allow(unused_imports)]
    use {{Effect as E, FailReason as R, Phase as P, Fact as F, Task as T}};
    match (phase, fact) {{
{step}    }}
}}

/// The rows whose why says `not raised:`: the engine never raises this
/// fact in this phase. The engine counts any it meets
/// (`Engine::impossible_seen`); the exploration and the fuzz properties
/// assert there are none.
pub fn is_impossible(phase: Phase, fact: Fact) -> bool {{
    #[allow(unused_imports)]
    use {{Phase as P, Fact as F}};
    matches!(
        (phase, fact),
        {}
    )
}}

/// The why column of the row.
pub fn why(phase: Phase, fact: Fact) -> &'static str {{
    use {{Phase as P, Fact as F}};
    match (phase, fact) {{
{why}    }}
}}
",
        if impossible.is_empty() {
            "(_, _) if false".to_string()
        } else {
            impossible.join("\n            | ")
        }
    )
}
