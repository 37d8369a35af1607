//! Every fuzz property (tests/support/props.rs) over every checked-in corpus file
//! (fuzz/corpus/<target>/), under stable `cargo test`. Crash cases found by
//! `cargo +nightly fuzz run <target>` go into the corpus once fixed, so they
//! stay fixed here.

#[path = "support/config_props.rs"]
mod config_props;
#[path = "support/props.rs"]
mod props;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn run_all(target: &str, min: usize, prop: fn(&[u8])) {
    let files = corpus(target);
    assert!(
        files.len() >= min,
        "fuzz/corpus/{target} has {} files, expected at least {min}",
        files.len()
    );
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| prop(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{}: {msg}", f.display());
        }
    }
}

#[test]
fn parse_stats_corpus() {
    run_all("parse_stats", 20, props::parse_stats);
}

#[test]
fn engine_corpus() {
    run_all("engine", 20, props::engine);
}

/// Seeds in the setups of real operators (slow starts, each vassal's own
/// subscribe-freq and the router's tolerance, late announces; first byte
/// 0x03: sim mode with them);
/// `cargo +nightly fuzz run engine fuzz/corpus/engine_setups` starts from
/// them (the first reproduced a preflight that refused subscribe-freq 25 behind a tolerance of 60).
#[test]
fn engine_setups_corpus() {
    run_all("engine_setups", 1, props::engine);
}

/// The config reader over every format, the chained-expansion and
/// unclosed-`%(` files among them (tests/support/config_props.rs).
#[test]
fn parse_config_corpus() {
    run_all("parse_config", 10, config_props::parse_config);
}
