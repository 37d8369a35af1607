//! The engine, the uWSGI formats (stats, configs, packets), the doctor and
//! the dry run's ideal world are sans-IO: no filesystem, network, event
//! loop, syscall crate or clock. This keeps the rule from eroding.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::os",
    "std::process",
    "std::thread",
    "std::time",
    "mio",
    "nix",
    "inotify",
    "signal_hook",
    "Instant",
    "SystemTime",
];

/// Every `.rs` file under `path` (or `path` itself).
fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
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
    let mut files = Vec::new();
    for p in [
        "src/engine",
        "src/uwsgi",
        "src/doctor.rs",
        "src/plan/ideal.rs",
    ] {
        sources(&root.join(p), &mut files);
    }
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                let hit = code
                    .match_indices(word)
                    .any(|(i, _)| !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                assert!(
                    !hit,
                    "{}:{}: `{word}` in sans-IO code: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
    assert!(
        files.len() >= 25,
        "expected the engine and format sources, read {}",
        files.len()
    );
}
