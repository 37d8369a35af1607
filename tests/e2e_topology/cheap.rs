//! A standalone fastrouter with `fastrouter-cheap`: it stops accepting when
//! its last node goes, dropping what is in flight (docs/UWSGI.md §15). With
//! K ≥ 1 it never loses its last node, so a rollout under load is as clean
//! as without it; the doctor says so, with the fix.

use crate::stack::tool::event_kind;
use crate::stack::{Stack, StackSpec};

/// N = 3, K = 1: zero failed requests, K held, every vassal reloaded once,
/// exit 0, and the fastrouter-cheap warning (read from the router's own
/// command line and ini) names the risk and the fix.
pub fn fastrouter_cheap() {
    let k = 1;
    let stack = Stack::start(
        StackSpec::new(3)
            .standalone_fastrouter()
            .fastrouter_line("fastrouter-cheap = true"),
    );
    let r = crate::rollout_k(&stack, k, "standalone fastrouter with fastrouter-cheap");
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests();
    c.lowest_live(&stack.key, k);
    for name in &stack.names {
        c.reloaded_once(name);
    }
    c.summary_list("reloaded", &stack.names);
    let noted = r.run.events().iter().any(|e| {
        event_kind(e) == "note"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("fastrouter-cheap") && m.contains("keep K >= 1"))
    });
    c.check(noted, || {
        "no `note` event warns about fastrouter-cheap with its fix".into()
    });
    c.finish();
}
