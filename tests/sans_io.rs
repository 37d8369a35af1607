//! The engine and the stats models are sans-IO: no filesystem, network,
//! event loop, syscall crate or clock. This keeps the rule from eroding.

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

#[test]
fn engine_and_stats_touch_no_os() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["src/engine", "src/stats"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in FORBIDDEN {
                    let hit = code.match_indices(word).any(|(i, _)| {
                        !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                    });
                    assert!(
                        !hit,
                        "{}:{}: `{word}` in sans-IO code: {line}",
                        path.display(),
                        n + 1
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 8,
        "expected the engine and stats sources, read {checked}"
    );
}
