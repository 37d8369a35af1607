//! One fleet of 4 vassals, each with a config feature operators use, under
//! one Emperor with `emperor-freq = 1`; `unsubscribe-on-graceful-reload` is
//! off on every vassal while the drain is on (the default):
//!
//! - app_01: `processes = 4`;
//! - app_02: `cheaper = 1` with `workers = 4` (one worker at start, more
//!   under load);
//! - app_03: subscribed under two keys (the stack's and `second.example`);
//! - app_04: `lazy-apps` (the app is imported in each worker), and also
//!   under the second key, so that it has 2 nodes and K = 1 holds there.

use crate::events_of;
use crate::stack::VassalState;
use crate::stack::{Stack, StackSpec};

const SECOND_KEY: &str = "second.example";

/// A `lazy-apps` vassal reloaded once: same master pid, one more reload,
/// one more import, by a new worker (a lazy app is imported in the worker,
/// so the import's pid is the worker's; no post-fork record is written).
fn lazy_reloaded_once(b: &VassalState, a: &VassalState) -> Result<(), String> {
    if a.pid != b.pid || a.respawns != b.respawns + 1 {
        return Err(format!(
            "pid/respawns ({}, {}) -> ({}, {}): expected the same master, one reload",
            b.pid, b.respawns, a.pid, a.respawns
        ));
    }
    if a.imports.len() != b.imports.len() + 1 {
        return Err(format!(
            "imported {} times, expected {}",
            a.imports.len(),
            b.imports.len() + 1
        ));
    }
    let (wb, wa) = (b.imports.last().map(|i| i.0), a.imports.last().map(|i| i.0));
    if wb == wa || wa == Some(a.pid) {
        return Err(format!(
            "the app was not imported by a new worker ({wb:?} -> {wa:?}, master {})",
            a.pid
        ));
    }
    if !a.live() {
        return Err("not live after the rollout".into());
    }
    Ok(())
}

/// N = 4, K = 1 per key: zero failed requests, K held on both keys, every
/// vassal drained and reloaded once, app_01 back with 4 workers, app_03 and
/// app_04 fresh under both keys at the end, exit 0.
pub fn workers_keys_lazy() {
    let k = 1;
    let second = format!("subscribe2 = server=@STACK_DIR@/subscription.sock,key={SECOND_KEY}");
    let mut spec = StackSpec::new(4).emperor_line("emperor-freq = 1");
    for i in 1..=4 {
        spec = spec.own_drop(
            &crate::stack::vassal_name(i),
            "unsubscribe-on-graceful-reload",
        );
    }
    let spec = spec
        .own_drop("app_01", "processes")
        .own_line("app_01", "processes = 4")
        .own_drop("app_02", "processes")
        .own_line("app_02", "workers = 4")
        .own_line("app_02", "cheaper = 1")
        .own_line("app_03", &second)
        .own_line("app_04", &second)
        .own_line("app_04", "lazy-apps = true");
    let stack = Stack::start(spec);
    assert!(
        std::fs::read_to_string(stack.dir.join("emperor.ini"))
            .unwrap()
            .contains("emperor-freq = 1"),
        "emperor.ini has no emperor-freq = 1"
    );
    let r = crate::rollout_k(
        &stack,
        k,
        "processes/cheaper/two keys/lazy-apps, emperor-freq 1",
    );
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests();
    c.lowest_live(&stack.key, k);
    c.lowest_live(SECOND_KEY, k);
    let drained: Vec<String> = events_of(&r, "drained")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    for name in &stack.names {
        if name == "app_04" {
            if let Err(e) = lazy_reloaded_once(r.before.get(name), r.after.get(name)) {
                c.fail(format!("app_04 (lazy-apps): {e}"));
            }
        } else {
            c.reloaded_once(name);
        }
        c.node_fresh(name, 17);
        c.check(drained.contains(name), || {
            format!(
                "{name}: not drained (unsubscribe-on-graceful-reload is off, the drain must be on)"
            )
        });
    }
    // the drain seen in the router, not in the tool's events: with
    // unsubscribe-on-graceful-reload off only the drain takes a node out;
    // at most 4 sessions (the most workers a vassal here has) ride the reload
    c.drained_by_the_router(&stack.names, 4);
    // processes = 4: the new generation forked 4 workers of the same master
    let a1 = r.after.get("app_01");
    let b1 = r.before.get("app_01");
    let new_workers = a1.workers.len() - b1.workers.len();
    c.check(new_workers == 4, || {
        format!("app_01 (processes = 4): {new_workers} workers forked by the reload, expected 4")
    });
    // two keys: both of the second key's nodes are back and fresh
    match stack.fastrouter_stats() {
        Err(e) => c.fail(e),
        Ok(fr) => {
            let now = crate::stack::now_secs();
            for name in ["app_03", "app_04"] {
                let node = stack.node_name(name);
                let ok = fr.nodes().any(|(key, n)| {
                    key == SECOND_KEY
                        && n.name == node
                        && n.death_mark == 0
                        && now - n.last_check <= 18
                });
                c.check(ok, || {
                    format!("{name}: no fresh node under {SECOND_KEY} after the rollout")
                });
            }
        }
    }
    c.summary_list("reloaded", &stack.names);
    c.finish();
}
