//! End-to-end speed (issue 13) on the real stack: a `lazy-apps` fleet, whose
//! announce after a reload waits for subscribe-freq, is back the moment each
//! vassal accepts thanks to the early announce. Same harness and checks as
//! `tests/e2e.rs` (zero failed requests, K held, every vassal reloaded once);
//! the rollout time is printed, and bounded only loosely (machines are
//! noisy): without early announce this rollout takes about 22 s.
//!
//!   flock /tmp/uwsgi-reload-realstack.lock \
//!     cargo test --release --test e2e_speed -- --ignored --nocapture

mod common;

use std::time::Duration;

use common::{LoadSpec, Stack, StackSpec};

const TOOL_TIMEOUT: Duration = Duration::from_secs(240);

/// lazy-apps, N = 4, K = 1, app start 1 s: issue 13 wants ≤ 6 s (22.3 s
/// before the early announce), zero failed requests. The example stack
/// subscribes through the `start-unsubscribed` + writefifo `S` hook, for
/// which early announce is off by default (the hook can lose its race):
/// the operator turns it on with `--early-announce`.
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_speed -- --ignored --test-threads=1"]
fn e2e_lazy_apps_are_back_when_they_accept() {
    let mut spec = StackSpec::new(4).import_delay(1.0);
    spec.vassal_extra.push("lazy-apps = true".into());
    let stack = Stack::start(spec);
    let r = stack.rollout(
        &[
            "--minimum-active-vassals",
            "1",
            "--json",
            "--early-announce",
        ],
        LoadSpec::default(),
        TOOL_TIMEOUT,
        |_| {},
    );
    let secs = r.run.elapsed.as_secs_f64();
    println!("lazy-apps, N = 4, K = 1, app start 1 s: rollout {secs:.2} s wall");
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests();
    c.lowest_live(&stack.key, 1);
    // `reloaded_once` reads worker pids from the app's post-fork record,
    // which a lazy-apps worker never writes: here, one more app import per
    // vassal (each new worker imports it) and live at the end.
    for name in &stack.names {
        let (b, a) = (r.before.get(name), r.after.get(name));
        c.check(a.imports.len() == b.imports.len() + 1, || {
            format!(
                "{name}: app imported {} times, expected {}",
                a.imports.len(),
                b.imports.len() + 1
            )
        });
        c.check(a.live(), || format!("{name}: not live after the rollout"));
    }
    c.summary_list("reloaded", &stack.names);
    c.check(
        r.run.stdout.matches("\"event\":\"announced\"").count() == stack.names.len(),
        || "not every vassal was announced early".into(),
    );
    c.check(secs < 15.0, || {
        format!("rollout took {secs:.2} s: the early announce did not shorten it")
    });
    c.finish();
}
