//! The engine, the uWSGI formats (stats, configs, packets), the doctor and
//! the dry run's ideal world are sans-IO: no filesystem, network, event
//! loop, syscall crate, clock, environment, or the crate's own IO layers.
//!
//! This is not a text search: each source is lexed (comments, strings and
//! char literals dropped), every `use` item is parsed into the full paths it
//! imports (nested braces, `self`, globs and `as` renames included), and
//! every qualified path in the code (`std::fs::read(..)`, `::nix::..`, a path
//! through a `use` alias) is resolved; a path is denied when it is, or lies
//! under, one of [`DENIED`]. `use std::{fs, net};` is caught
//! (tests/fixtures/sans_io/planted.rs proves it), as is `std::io` and `libc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module paths the sans-IO code must not reach. `std::time::Duration` is a
/// value and allowed; the clocks are not. The engine uses no `std::io` trait
/// (checked: `git grep 'std::io' src/engine src/uwsgi` is empty), so all of
/// `std::io` is denied.
const DENIED: &[&str] = &[
    "std::fs",
    "std::net",
    "std::io",
    "std::os",
    "std::time::Instant",
    "std::time::SystemTime",
    "std::time::UNIX_EPOCH",
    "std::thread",
    "std::process",
    "std::env",
    "nix",
    "libc",
    "mio",
    "inotify",
    "signal_hook",
    "signal_hook_mio",
    "crate::runtime",
    "crate::report",
    "crate::cli",
    "crate::status",
    "crate::plan",
];

/// A token: its text and its line.
#[derive(Clone, Debug)]
struct Tok {
    text: String,
    line: usize,
}

/// Lexes Rust source into identifiers, `::` and single punctuation, without
/// comments, string/char literals and lifetimes.
fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let push = |out: &mut Vec<Tok>, t: String, line| out.push(Tok { text: t, line });
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if (ch == 'r' || (ch == 'b' && next == Some('r'))) && {
            let j = if ch == 'b' { i + 2 } else { i + 1 };
            let mut k = j;
            while c.get(k) == Some(&'#') {
                k += 1;
            }
            c.get(k) == Some(&'"') && (k > j || c.get(j) == Some(&'"'))
        } {
            // raw string r"..", r#".."#, br#".."#
            let mut j = if ch == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while c[j] == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '\n' {
                    line += 1;
                }
                if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
        } else if ch == '"' || (ch == 'b' && next == Some('"')) {
            let mut j = if ch == 'b' { i + 2 } else { i + 1 };
            while j < c.len() && c[j] != '"' {
                if c[j] == '\\' {
                    j += 1;
                }
                if c.get(j) == Some(&'\n') {
                    line += 1;
                }
                j += 1;
            }
            i = j + 1;
        } else if ch == '\'' || (ch == 'b' && next == Some('\'')) {
            let j = if ch == 'b' { i + 1 } else { i };
            // a char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            if c.get(j + 1) == Some(&'\\') {
                let mut k = j + 2;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                i = k + 1;
            } else if c.get(j + 2) == Some(&'\'') {
                i = j + 3;
            } else {
                // lifetime: skip the quote and its name
                let mut k = j + 1;
                while k < c.len() && (c[k].is_alphanumeric() || c[k] == '_') {
                    k += 1;
                }
                i = k;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let mut j = i;
            if ch == 'r' && next == Some('#') {
                j += 2;
            }
            let start = j;
            while j < c.len() && (c[j].is_alphanumeric() || c[j] == '_') {
                j += 1;
            }
            push(&mut out, c[start..j].iter().collect(), line);
            i = j;
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
        } else if ch == ':' && next == Some(':') {
            push(&mut out, "::".into(), line);
            i += 2;
        } else {
            push(&mut out, ch.to_string(), line);
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// One import of a `use` item: the full path (last segment `*` for a glob)
/// and the name it binds.
#[derive(Debug)]
struct Import {
    path: Vec<String>,
    name: Option<String>,
    line: usize,
}

/// Parses one use tree at `t[i]` under `prefix`; returns the index after it.
fn use_tree(t: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<Import>) -> usize {
    let mut path = prefix.to_vec();
    if t.get(i).is_some_and(|x| x.text == "::") {
        i += 1;
    }
    while let Some(tok) = t.get(i) {
        match tok.text.as_str() {
            "{" => {
                i += 1;
                while let Some(x) = t.get(i) {
                    match x.text.as_str() {
                        "}" => return i + 1,
                        "," => i += 1,
                        _ => i = use_tree(t, i, &path, out),
                    }
                }
                return i;
            }
            "*" => {
                path.push("*".into());
                out.push(Import {
                    path,
                    name: None,
                    line: tok.line,
                });
                return i + 1;
            }
            s if is_ident(s) => {
                let line = tok.line;
                if s != "self" || path.is_empty() {
                    path.push(s.to_string());
                }
                i += 1;
                if t.get(i).is_some_and(|x| x.text == "::") {
                    i += 1;
                    continue;
                }
                let mut name = path.last().cloned();
                if t.get(i).is_some_and(|x| x.text == "as") {
                    name = t.get(i + 1).map(|x| x.text.clone());
                    i += 2;
                }
                out.push(Import { path, name, line });
                return i;
            }
            _ => return i + 1,
        }
    }
    i
}

/// A denied path reached by a source: (line, the path as resolved, the rule).
type Hit = (usize, String, &'static str);

fn denied_by(path: &[String], denied: &[&'static str]) -> Option<&'static str> {
    let glob = path.last().is_some_and(|s| s == "*");
    let p = if glob {
        path[..path.len() - 1].join("::")
    } else {
        path.join("::")
    };
    denied.iter().copied().find(|d| {
        p == *d
            || p.starts_with(&format!("{d}::"))
            // `use std::time::*` brings in `std::time::Instant`
            || (glob && d.starts_with(&format!("{p}::")))
    })
}

/// Every denied path `src` reaches, through a `use` item or a qualified path
/// in its code.
fn check_source(src: &str, denied: &[&'static str]) -> Vec<Hit> {
    let t = lex(src);
    let mut hits = Vec::new();
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_use = vec![false; t.len()];
    // `use` items (also `pub use`, in any module, block or function)
    let mut i = 0;
    while i < t.len() {
        if t[i].text == "use" {
            let mut imports = Vec::new();
            let mut j = use_tree(&t, i + 1, &[], &mut imports);
            while j < t.len() && t[j].text != ";" {
                j += 1;
            }
            for flag in &mut in_use[i..=j.min(t.len() - 1)] {
                *flag = true;
            }
            for im in imports {
                if let Some(rule) = denied_by(&im.path, denied) {
                    hits.push((im.line, format!("use {}", im.path.join("::")), rule));
                }
                if let Some(n) = im.name {
                    aliases.insert(n, im.path);
                }
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    // qualified paths in the code: `a::b::c`, `::a::b`, through aliases
    let roots = [
        "std",
        "core",
        "alloc",
        "crate",
        "nix",
        "libc",
        "mio",
        "inotify",
        "signal_hook",
        "signal_hook_mio",
    ];
    for i in 0..t.len() {
        if in_use[i] || !is_ident(&t[i].text) || t.get(i + 1).map(|x| x.text.as_str()) != Some("::")
        {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| t[p].text.as_str());
        let leading = prev == Some("::");
        if leading && i >= 2 && is_ident(&t[i - 2].text) {
            continue; // the middle of a path already checked
        }
        let mut segs = vec![t[i].text.clone()];
        let mut j = i + 1;
        while t.get(j).is_some_and(|x| x.text == "::")
            && t.get(j + 1).is_some_and(|x| is_ident(&x.text))
        {
            segs.push(t[j + 1].text.clone());
            j += 2;
        }
        let resolved = if leading || roots.contains(&segs[0].as_str()) {
            segs
        } else if let Some(a) = aliases.get(&segs[0]) {
            a.iter().cloned().chain(segs.into_iter().skip(1)).collect()
        } else {
            continue;
        };
        if let Some(rule) = denied_by(&resolved, denied) {
            hits.push((t[i].line, resolved.join("::"), rule));
        }
    }
    hits
}

/// Every `.rs` file under `path` (or `path` itself).
fn sources(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            sources(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn engine_and_formats_touch_no_os() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    let mut count = 0;
    for (p, denied) in [
        ("src/engine", DENIED.to_vec()),
        ("src/uwsgi", DENIED.to_vec()),
        ("src/doctor.rs", DENIED.to_vec()),
        // the ideal world lives in crate::plan; everything else applies
        (
            "src/plan/ideal.rs",
            DENIED
                .iter()
                .copied()
                .filter(|d| *d != "crate::plan")
                .collect(),
        ),
    ] {
        let mut files = Vec::new();
        sources(&root.join(p), &mut files);
        for path in &files {
            count += 1;
            let text = std::fs::read_to_string(path).unwrap();
            for (line, what, rule) in check_source(&text, &denied) {
                problems.push(format!(
                    "{}:{line}: `{what}` (denied: {rule})",
                    path.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "IO in sans-IO code:\n{}",
        problems.join("\n")
    );
    assert!(
        count >= 25,
        "expected the engine and format sources, read {count}"
    );
}

/// The planted fixture: every way to reach IO it contains is flagged, each on
/// its own line, and nothing on its allowed lines.
#[test]
fn the_checker_flags_every_planted_import() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("tests/fixtures/sans_io/planted.rs")).unwrap();
    let hits = check_source(&src, DENIED);
    let flagged: Vec<usize> = hits.iter().map(|h| h.0).collect();
    // each line marked `// PLANTED` must be flagged; `// ALLOWED` must not
    for (n, line) in src.lines().enumerate() {
        let n = n + 1;
        if line.contains("// PLANTED") {
            assert!(
                flagged.contains(&n),
                "line {n} not flagged: {line}\nhits: {hits:?}"
            );
        }
        if line.contains("// ALLOWED") {
            assert!(
                !flagged.contains(&n),
                "line {n} flagged: {line}\nhits: {hits:?}"
            );
        }
    }
    let paths: Vec<&str> = hits.iter().map(|h| h.1.as_str()).collect();
    for want in [
        "use std::fs",
        "use std::net",
        "use std::io::Read",
        "use libc",
    ] {
        assert!(paths.contains(&want), "{want} not flagged: {hits:?}");
    }
}

#[test]
fn the_checker_parses_use_trees_and_paths() {
    let d = DENIED;
    let one = |s: &str| {
        check_source(s, d)
            .into_iter()
            .map(|h| h.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(one("use std::{fs, net};"), ["use std::fs", "use std::net"]);
    assert_eq!(
        one("use std::{collections::{BTreeMap, io_like}, io::{self, Write}};"),
        ["use std::io", "use std::io::Write"]
    );
    assert_eq!(one("use std::time::*;"), ["use std::time::*"]);
    assert!(one("use std::time::Duration;").is_empty());
    assert_eq!(
        one("fn f() { let _ = std::fs::read(\"x\"); }"),
        ["std::fs::read"]
    );
    assert_eq!(one("fn f() { ::libc::getpid(); }"), ["libc::getpid"]);
    assert_eq!(
        one("use std::time as t; fn f() { t::Instant::now(); }"),
        ["std::time::Instant::now"]
    );
    assert_eq!(
        one("use crate::{engine::Input, runtime::Loop};"),
        ["use crate::runtime::Loop"]
    );
    // comments and strings are not code; the engine's own `io` module is fine
    assert!(one("// use std::fs;\nconst S: &str = \"std::net\"; use io::Action;").is_empty());
    assert!(one("fn f<'a>(x: &'a str) -> char { 'x' }").is_empty());
}
