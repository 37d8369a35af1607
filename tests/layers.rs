//! The crate's rooms import only downward: the sans-IO core (`engine/`,
//! `uwsgi/`) nothing from the IO and command layers, the output
//! (`report/`) nothing from the driver (`runtime/`), and the driver (with
//! `runtime/session.rs`, the setup every command starts from) nothing from
//! the commands built on it (`status.rs`, `plan/`). A `use` or a path in
//! the code that climbs a layer fails this test, naming the file and line.
//! (What the core may use of std and the OS is `tests/sans_io.rs`.)

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
    ("src/runtime", &["status", "plan"]),
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
