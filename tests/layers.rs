//! The crate's rooms import only downward: the sans-IO core (`engine/`,
//! `uwsgi/`) nothing from the IO and command layers, the output
//! (`report/`) nothing from the driver (`runtime/`), and the driver (with
//! `runtime/session.rs`, the setup every command starts from) nothing from
//! the commands built on it (`status.rs`, `plan/`), and neither the
//! commands nor the driver anything from the command line (`cli/`): they
//! take the resolved `run_config`. A `use` or a path in
//! the code that climbs a layer fails this test, naming the file and line.
//! (What the core may use of std and the OS is `tests/sans_io.rs`.)
//! And a function in `src/` over 80 lines says in its doc comment why it
//! must be long ("Long on purpose: ..."), or it fails here too.

use std::path::{Path, PathBuf};

/// (room, the crate modules it must not reach).
const RULES: &[(&str, &[&str])] = &[
    (
        "src/engine",
        &[
            "runtime", "report", "cli", "status", "plan", "doctor", "clock",
        ],
    ),
    (
        "src/uwsgi",
        &[
            "runtime", "report", "cli", "status", "plan", "doctor", "clock", "engine",
        ],
    ),
    ("src/report", &["runtime", "cli", "status", "plan"]),
    ("src/report.rs", &["runtime", "cli", "status", "plan"]),
    // The commands and the runtime take the resolved `run_config`; the
    // command line (`cli`) is above them, reached only by `main`.
    ("src/runtime", &["status", "plan", "cli"]),
    ("src/status.rs", &["cli"]),
    ("src/plan", &["cli"]),
    (
        "src/run_config.rs",
        &["cli", "runtime", "report", "status", "plan"],
    ),
];

fn files(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Every crate-relative path a source text names: `crate::x`, `super::…`
/// climbing out of the room, and the crate-root re-exports
/// (`uwsgi_reload::x`), with comments and strings left out.
fn reached(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let code = raw.split("//").next().unwrap_or("");
        if code.trim_start().starts_with('*') {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` names several.
            if name.is_empty() && after.starts_with('{') {
                let inner: String = after[1..].chars().take_while(|c| *c != '}').collect();
                for part in inner.split(',') {
                    let m: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push((n + 1, m));
                }
            } else {
                out.push((n + 1, name));
            }
            rest = after;
        }
    }
    out
}

#[test]
fn rooms_import_only_downward() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for (room, banned) in RULES {
        for f in files(&root.join(room)) {
            let text = std::fs::read_to_string(&f).unwrap();
            // A room's own unit tests may check it against its neighbours.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (line, module) in reached(code) {
                if banned.contains(&module.as_str()) {
                    problems.push(format!(
                        "{}:{line}: {room} reaches crate::{module}",
                        f.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "upward imports:\n{}",
        problems.join("\n")
    );
}

/// The checker sees what it must: a planted upward import, in each form.
#[test]
fn a_planted_upward_import_is_found() {
    for planted in [
        "use crate::runtime::driver;",
        "use crate::{engine, runtime};",
        "let c = crate::clock::Clock::new();",
    ] {
        let found: Vec<String> = reached(planted).into_iter().map(|(_, m)| m).collect();
        assert!(
            found.iter().any(|m| m == "runtime" || m == "clock"),
            "{planted}: {found:?}"
        );
    }
    assert!(reached("// use crate::runtime;").is_empty());
}

/// Functions in `src/` longer than this many lines say why in their doc
/// comment ("Long on purpose"), so a reader knows the length is chosen.
const LONG_FN_LINES: usize = 80;

/// (line, name, length) of each function in `text` longer than
/// [`LONG_FN_LINES`] whose doc comment does not say "Long on purpose".
/// Braces are counted line by line (string literals with unbalanced braces
/// are rare in this crate; the planted test below keeps the counter
/// honest).
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let name = ["pub fn ", "pub(crate) fn ", "pub(super) fn ", "fn "]
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .and_then(|r| r.split(|c: char| !c.is_alphanumeric() && c != '_').next());
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            i += 1;
            continue;
        };
        let (mut depth, mut started, mut j) = (0i64, false, i);
        while j < lines.len() {
            for c in lines[j].chars() {
                match c {
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (started && depth <= 0) || (!started && lines[j].trim_end().ends_with(';')) {
                break;
            }
            j += 1;
        }
        let len = j + 1 - i;
        let doc: String = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let l = l.trim_start();
                l.starts_with("///") || l.starts_with("#[")
            })
            .map(|l| l.trim_start())
            .collect::<Vec<_>>()
            .join(" ");
        if started && len > LONG_FN_LINES && !doc.contains("Long on purpose") {
            out.push((i + 1, name.to_string(), len));
        }
        i = if started { j + 1 } else { i + 1 };
    }
    out
}

#[test]
fn long_functions_say_why() {
    let mut found = Vec::new();
    for f in files(Path::new("src")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (line, name, len) in long_functions(&text) {
            found.push(format!("{}:{line}: fn {name} is {len} lines", f.display()));
        }
    }
    assert!(
        found.is_empty(),
        "functions over {LONG_FN_LINES} lines without a doc comment saying why (\"Long on purpose: ...\"), split them or say why:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_planted_long_function_is_found() {
    let body = "    let x = 1;\n".repeat(LONG_FN_LINES);
    let bare = format!("/// Does x.\nfn planted() {{\n{body}}}\n");
    assert_eq!(long_functions(&bare).len(), 1, "{bare}");
    let said = format!("/// Does x. Long on purpose: a list.\nfn planted() {{\n{body}}}\n");
    assert!(long_functions(&said).is_empty());
    let short = "fn short() {\n    let x = 1;\n}\n";
    assert!(long_functions(short).is_empty());
}
