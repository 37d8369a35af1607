//! The parser of `fsm/transitions.tsv`, shared by `build.rs` (which generates
//! `step()` from the rows) and `tests/fsm_table.rs` (which checks the
//! generated code and renders the diagrams). The names come from
//! `src/engine/fsm_names.rs`, which the including crate puts in scope.
//!
//! A row: `phase  fact  next  effects  why`, tab-separated, one per
//! (phase, fact) pair, in `Phase::ALL` x `Fact::ALL` order.
//! - `next` is a phase, or `-` when nothing changes (then `effects` is `-`).
//! - `effects` is `-` (none) or effects joined by `+`, carried out in
//!   order: a `Task` name, or `Fail(reason)` with a `FailReason` name.
//! - `why` is never empty. On a `-` row it says why nothing changes: a why
//!   that starts with `not raised:` claims the engine never raises that
//!   fact in that phase (`is_impossible()`, which the exploration and the
//!   fuzz properties assert); any other why is a fact deliberately
//!   ignored there.

use super::{Effect, Fact, Phase};

pub const COLUMNS: [&str; 5] = ["phase", "fact", "next", "effects", "why"];

/// The prefix of the why of a row that can never happen.
pub const NOT_RAISED: &str = "not raised:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line in the file.
    pub line: usize,
    pub phase: Phase,
    pub fact: Fact,
    /// `None`: nothing changes (`-` `-`).
    pub to: Option<(Phase, Vec<Effect>)>,
    pub why: String,
}

impl Row {
    /// The engine never raises this fact in this phase.
    pub fn impossible(&self) -> bool {
        self.to.is_none() && self.why.starts_with(NOT_RAISED)
    }
}

/// Parses the table. The error is one line naming the row and what was
/// expected there.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut rows: Vec<Row> = Vec::new();
    for (line, raw, cols) in table_lines(text, &COLUMNS)? {
        rows.push(parse_row(line, raw, &cols)?);
    }
    check_pairs(&rows)?;
    Ok(rows)
}

/// The data lines of a tab-separated table whose first non-comment line is
/// `header`: (line number, the line, its columns). Blank lines and lines
/// starting with `#` are skipped. Both tables of `fsm/` are read through it.
/// One data line of a table: its number, the line, its columns.
type TableLine<'a> = (usize, &'a str, Vec<&'a str>);

fn table_lines<'a>(text: &'a str, header: &[&str]) -> Result<Vec<TableLine<'a>>, String> {
    let mut out = Vec::new();
    let mut seen_header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = raw.split('\t').collect();
        if !seen_header {
            if cols != header {
                return Err(format!(
                    "line {line}: expected the header {header:?}, got {cols:?}"
                ));
            }
            seen_header = true;
            continue;
        }
        out.push((line, raw, cols));
    }
    if !seen_header {
        return Err("no header row".into());
    }
    Ok(out)
}

fn parse_row(line: usize, raw: &str, cols: &[&str]) -> Result<Row, String> {
    if cols.len() != COLUMNS.len() {
        return Err(format!(
            "line {line}: expected {} tab-separated columns, got {}: {raw:?}",
            COLUMNS.len(),
            cols.len()
        ));
    }
    let phase =
        Phase::from_name(cols[0]).ok_or(format!("line {line}: unknown phase {:?}", cols[0]))?;
    let fact =
        Fact::from_name(cols[1]).ok_or(format!("line {line}: unknown fact {:?}", cols[1]))?;
    let why = cols[4].trim().to_string();
    if why.is_empty() {
        return Err(format!("line {line}: the why column is empty"));
    }
    let to = match (cols[2], cols[3]) {
        ("-", "-") => None,
        ("-", e) => {
            return Err(format!(
                "line {line}: effects {e:?} without a next phase (write the phase even when it stays the same)"
            ))
        }
        (n, e) => {
            let n = Phase::from_name(n).ok_or(format!("line {line}: unknown next phase {n:?}"))?;
            if why.starts_with(NOT_RAISED) {
                return Err(format!(
                    "line {line}: a row that moves to {n:?} cannot say {NOT_RAISED:?}"
                ));
            }
            Some((n, parse_effects(line, e)?))
        }
    };
    Ok(Row {
        line,
        phase,
        fact,
        to,
        why,
    })
}

fn parse_effects(line: usize, text: &str) -> Result<Vec<Effect>, String> {
    if text == "-" {
        return Ok(Vec::new());
    }
    text.split('+')
        .map(|e| {
            Effect::from_name(e.trim()).ok_or(format!(
                "line {line}: unknown effect {e:?} (a Task name or Fail(reason), joined by +)"
            ))
        })
        .collect()
}

/// Every (phase, fact) pair exactly once, in `Phase::ALL` x `Fact::ALL`
/// order, so a reader finds a pair where expected.
fn check_pairs(rows: &[Row]) -> Result<(), String> {
    let mut want = Phase::ALL
        .iter()
        .flat_map(|p| Fact::ALL.iter().map(move |s| (*p, *s)));
    let mut last = 0;
    for r in rows {
        let got = (r.phase, r.fact);
        if let Some(first) = rows
            .iter()
            .find(|o| (o.phase, o.fact) == got && o.line < r.line)
        {
            return Err(format!(
                "line {}: ({}, {}) is listed again (first on line {})",
                r.line,
                r.phase.as_str(),
                r.fact.as_str(),
                first.line
            ));
        }
        match want.next() {
            Some(w) if w == got => {}
            Some((p, s)) => {
                return Err(format!(
                    "line {}: expected the row ({}, {}) here (Phase::ALL x Fact::ALL order), got ({}, {})",
                    r.line,
                    p.as_str(),
                    s.as_str(),
                    r.phase.as_str(),
                    r.fact.as_str()
                ))
            }
            None => unreachable!("more rows than pairs without a repeated pair"),
        }
        last = r.line;
    }
    if let Some((p, s)) = want.next() {
        return Err(format!(
            "after line {last}: the row ({}, {}) is missing",
            p.as_str(),
            s.as_str()
        ));
    }
    Ok(())
}

/// The columns of `fsm/phases.tsv`.
pub const PHASE_COLUMNS: [&str; 3] = ["phase", "group", "waits_for"];

/// A phase's group (`fsm/phases.tsv`): what `Phase::in_flight()` and
/// `Phase::terminal()` say of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Not reloading.
    Rest,
    /// Out of rotation because of this rollout: counts against K.
    Flight,
    /// Terminal: nothing changes it any more.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseRow {
    pub line: usize,
    pub phase: Phase,
    pub group: Group,
    pub waits_for: String,
}

/// Parses `fsm/phases.tsv`: every phase once, in `Phase::ALL` order.
pub fn parse_phases(text: &str) -> Result<Vec<PhaseRow>, String> {
    let mut rows = Vec::new();
    for (line, _, cols) in table_lines(text, &PHASE_COLUMNS)? {
        if cols.len() != PHASE_COLUMNS.len() {
            return Err(format!(
                "line {line}: expected {} tab-separated columns, got {}",
                PHASE_COLUMNS.len(),
                cols.len()
            ));
        }
        let phase =
            Phase::from_name(cols[0]).ok_or(format!("line {line}: unknown phase {:?}", cols[0]))?;
        let group = match cols[1] {
            "rest" => Group::Rest,
            "flight" => Group::Flight,
            "done" => Group::Done,
            g => {
                return Err(format!(
                    "line {line}: group {g:?}, expected rest, flight or done"
                ))
            }
        };
        let want = Phase::ALL.get(rows.len()).copied();
        if want != Some(phase) {
            return Err(format!(
                "line {line}: expected {:?} here (Phase::ALL order), got {}",
                want.map(|p| p.as_str()),
                phase.as_str()
            ));
        }
        rows.push(PhaseRow {
            line,
            phase,
            group,
            waits_for: cols[2].trim().to_string(),
        });
    }
    if rows.len() != Phase::ALL.len() {
        return Err(format!(
            "{} phases listed, expected every one of Phase::ALL ({})",
            rows.len(),
            Phase::ALL.len()
        ));
    }
    Ok(rows)
}
