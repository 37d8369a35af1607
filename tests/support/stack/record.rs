//! One line per finished scenario for the version matrix (`tests/matrix.sh`):
//! with `E2E_RECORD=FILE` set, a scenario appends
//! `test<TAB>requests<TAB>failed<TAB>lowest_live<TAB>exit<TAB>pass|FAIL` to FILE
//! before it reports, so the matrix can print its table (`docs/VERSIONS.md`)
//! without parsing assertion messages. Unset: nothing is written.

use std::io::Write as _;

use super::{LoadReport, SampleReport};

/// Appends the outcome (lowest live: the minimum over the sampled keys) of the running test (named after its thread, which
/// libtest names after the test).
pub fn outcome(load: &LoadReport, samples: &SampleReport, exit: Option<i32>, passed: bool) {
    let Some(path) = std::env::var_os("E2E_RECORD") else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("?")
        .rsplit("::")
        .next()
        .unwrap_or("?")
        .to_string();
    // the lowest over every sampled key (the harness samples its one key)
    let lowest = samples
        .lowest_live
        .values()
        .min()
        .map_or("-".to_string(), |n| n.to_string());
    let exit = exit.map_or("-".to_string(), |c| c.to_string());
    let line = format!(
        "{test}\t{}\t{}\t{lowest}\t{exit}\t{}\n",
        load.sent,
        load.failures.len(),
        if passed { "pass" } else { "FAIL" }
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("[e2e harness] cannot append to E2E_RECORD: {e}");
    }
}
