//! The fastrouter as a vassal of the Emperor (`vassals/fastrouter.ini`, a
//! fastrouter config beside the app configs), the "safe form" of the vassal
//! config (no `start-unsubscribed`, no `hook-accepting1-once = writefifo:…
//! S`: the vassal subscribes from its master's start) and `emperor-freq =
//! 10` (the Emperor scans every 10 s: the tool makes it look at once).

use std::time::Duration;

use crate::events_of;
use crate::stack::{Stack, StackSpec};

/// N = 3, K = 1: zero failed requests, K held, every app vassal reloaded
/// once, exit 0; the fastrouter vassal is not in the plan nor the summary
/// and is untouched (its pid, reload count, `last_mod` and config mtime
/// unchanged); `--only fastrouter.ini --dry-run` does select it.
pub fn fastrouter_vassal_safe_form() {
    let k = 1;
    let mut spec = StackSpec::new(3)
        .fastrouter_vassal()
        .emperor_line("emperor-freq = 10");
    for i in 1..=3 {
        let name = crate::stack::vassal_name(i);
        spec = spec
            .own_drop(&name, "start-unsubscribed")
            .own_drop(&name, "hook-accepting1-once");
    }
    let stack = Stack::start(spec);
    let vassal_text = std::fs::read_to_string(stack.config_path("app_01")).unwrap();
    assert!(
        !vassal_text.contains("start-unsubscribed")
            && !vassal_text.contains("hook-accepting1-once"),
        "not the safe form:\n{vassal_text}"
    );
    let r = crate::rollout_k(&stack, k, "fastrouter vassal, safe form, emperor-freq 10");
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests();
    c.lowest_live(&stack.key, k);
    for name in &stack.names {
        c.reloaded_once(name);
        c.node_fresh(name, 17);
    }
    c.summary_list("reloaded", &stack.names);
    let (b, a) = (r.before.get("fastrouter"), r.after.get("fastrouter"));
    eprintln!(
        "[e2e measured] fastrouter vassal: pid {} -> {}, respawns {} -> {}, last_mod {} -> {}, mtime {:?} -> {:?}",
        b.pid, a.pid, b.respawns, a.respawns, b.last_mod, a.last_mod, b.link_mtime, a.link_mtime
    );
    c.check(b.in_emperor && b.pid > 0, || {
        "the fastrouter is not a vassal of the Emperor".into()
    });
    c.check(
        (a.pid, a.respawns, a.last_mod, a.link_mtime)
            == (b.pid, b.respawns, b.last_mod, b.link_mtime),
        || "the fastrouter vassal was touched or restarted".into(),
    );
    let plan = events_of(&r, "plan")
        .into_iter()
        .map(|(_, e)| e.to_string())
        .collect::<String>();
    c.check(!plan.is_empty() && !plan.contains("fastrouter.ini"), || {
        format!("the plan counts the fastrouter vassal: {plan}")
    });
    c.finish();

    // named with --only, it is selected (a dry run: touching the only
    // router would take every node away)
    let dry = stack.run_tool(
        &[
            "--only",
            "fastrouter.ini",
            "--dry-run",
            "--json",
            "--allow-downtime",
        ],
        Duration::from_secs(30),
    );
    let after = stack.fleet();
    let plan = dry
        .events()
        .into_iter()
        .filter(|e| crate::stack::tool::event_kind(e) == "plan")
        .map(|e| e.to_string())
        .collect::<String>();
    eprintln!(
        "[e2e measured] --only fastrouter.ini --dry-run: exit {:?}, plan {plan}",
        dry.code
    );
    assert!(
        plan.contains("fastrouter.ini"),
        "--only fastrouter.ini does not select the fastrouter vassal: exit {:?}\n{}",
        dry.code,
        dry.describe()
    );
    assert_eq!(
        after.get("fastrouter").link_mtime,
        b.link_mtime,
        "a dry run touched the fastrouter vassal"
    );
}
