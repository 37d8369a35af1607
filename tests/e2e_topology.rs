//! End-to-end topologies on the real stack (uWSGI Emperor,
//! fastrouter(s), vassals, nginx under HTTP load; the harness of
//! `tests/support/stack/`). Each test asserts zero failed requests, the lowest live
//! count per key sampled (~30 ms) on every fastrouter ≥ K, every vassal
//! reloaded exactly once (same master pid, new worker pid, one more app
//! import) and the exit code:
//!
//! 1. `e2e_topology_two_fastrouters_ha`: two standalone fastrouters
//!    (`examples/ha/`), every vassal subscribed to both, nginx balancing
//!    over both, the tool given both stats sockets, drain on;
//! 2. `e2e_topology_one_file_per_vassal_tcp_formats`: one config file per
//!    vassal (no symlinks), each on its own 127.0.0.1 TCP port, in `.ini`,
//!    `.xml`, `.yaml` and `.json` (`examples/one-file-per-vassal/`), one
//!    rollout per `--vassal-config-file-suffix`;
//! 3. `e2e_topology_workers_keys_lazy_emperor_freq_1`: `processes = 4`,
//!    `cheaper`, a vassal under two keys, `lazy-apps`,
//!    `unsubscribe-on-graceful-reload` off with drain on, `emperor-freq = 1`;
//! 4. `e2e_topology_fastrouter_vassal_safe_form_emperor_freq_10`: the
//!    fastrouter as a vassal of the Emperor (never counted nor touched
//!    unless `--only` names it), the "safe form" (no `start-unsubscribed`,
//!    no writefifo hook), `emperor-freq = 10`;
//! 5. `e2e_topology_fastrouter_cheap`: a standalone fastrouter with
//!    `fastrouter-cheap` (the doctor warns, K ≥ 1 keeps it from going cheap).
//!
//! `#[ignore]`d like the rest of the e2e suite (tests/run.sh runs them):
//!   flock /tmp/uwsgi-reload-realstack.lock \
//!     cargo test --release --test e2e_topology -- --ignored --test-threads=1
//! `E2E_VERBOSE=1` prints each report, `E2E_KEEP=1` keeps the temp dirs.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/stack/mod.rs"]
mod stack;
#[path = "support/temp_dir.rs"]
mod temp_dir;

#[path = "e2e_topology/cheap.rs"]
mod cheap;
#[path = "e2e_topology/features.rs"]
mod features;
#[path = "e2e_topology/formats.rs"]
mod formats;
#[path = "e2e_topology/ha.rs"]
mod ha;
#[path = "e2e_topology/router_vassal.rs"]
mod router_vassal;

use std::time::Duration;

use stack::tool::event_kind;
use stack::Rollout;

/// Well under a minute per rollout here (N ≤ 4).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);

/// Prints what a rollout measured, pass or fail.
pub fn print_summary(what: &str, r: &Rollout) {
    let l = &r.load;
    eprintln!(
        "[e2e measured] {what}: tool exit {:?} after {} ms; load {} sent, {} ok, {} failed; lowest live {:?}{}",
        r.run.code,
        r.run.elapsed.as_millis(),
        l.sent,
        l.ok,
        l.failures.len(),
        r.samples.lowest_live,
        r.other_routers
            .iter()
            .enumerate()
            .map(|(i, s)| format!(", router {}: {:?}", i + 2, s.lowest_live))
            .collect::<String>()
    );
}

/// A rollout with K = `k` and `--json` under the default load, its
/// measurements printed as `what`.
pub fn rollout_k(stack: &stack::Stack, k: usize, what: &str) -> Rollout {
    let ks = k.to_string();
    let r = stack.rollout(
        &["--minimum-active-vassals", &ks, "--json"],
        stack::LoadSpec::default(),
        TOOL_TIMEOUT,
        |_| {},
    );
    print_summary(what, &r);
    r
}

/// The `--json` events of `kind`, as (vassal stem, event).
pub fn events_of(r: &Rollout, kind: &str) -> Vec<(String, serde_json::Value)> {
    r.run
        .events()
        .into_iter()
        .filter(|e| event_kind(e) == kind)
        .map(|e| (stack::tool::event_vassal(&e).unwrap_or_default(), e))
        .collect()
}

#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_topology -- --ignored --test-threads=1"]
fn e2e_topology_two_fastrouters_ha() {
    ha::two_fastrouters();
}

#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_topology -- --ignored --test-threads=1"]
fn e2e_topology_one_file_per_vassal_tcp_formats() {
    formats::one_file_per_vassal();
}

#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_topology -- --ignored --test-threads=1"]
fn e2e_topology_workers_keys_lazy_emperor_freq_1() {
    features::workers_keys_lazy();
}

#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_topology -- --ignored --test-threads=1"]
fn e2e_topology_fastrouter_vassal_safe_form_emperor_freq_10() {
    router_vassal::fastrouter_vassal_safe_form();
}

#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_topology -- --ignored --test-threads=1"]
fn e2e_topology_fastrouter_cheap() {
    cheap::fastrouter_cheap();
}
