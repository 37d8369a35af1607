//! Two fastrouters for HA, with the files of `examples/ha/`:
//! router A and router B, each its own process with its own subscription
//! server and stats socket; every vassal subscribes to both; nginx balances
//! over both (without retrying on the other one, so a failed request is
//! seen); the tool is given both stats sockets and drains on both.

use crate::stack::{LoadSpec, Stack, StackSpec};
use crate::{events_of, print_summary, TOOL_TIMEOUT};

/// N = 4, K = 2 (app start 0.5 s): K must hold on router A and on router B
/// (each sampled every ~30 ms), zero failed requests through either, every
/// vassal drained (its `drain_started` and `drained` events) and reloaded
/// once, live on both routers at the end, and nginx really sent requests
/// through both routers (each router's node counters grew).
pub fn two_fastrouters() {
    let k = 2;
    let stack = Stack::start(StackSpec::new(4).import_delay(0.5).two_fastrouters());
    let routers = stack.fastrouter_stats_paths();
    assert_eq!(routers.len(), 2);
    let requests_on = |i: usize| -> i64 {
        stack
            .fastrouter_stats_at(&routers[i])
            .map(|fr| fr.nodes().map(|(_, n)| n.requests).sum())
            .unwrap_or(-1)
    };
    let before_requests = [requests_on(0), requests_on(1)];
    let ks = k.to_string();
    let r = stack.rollout(
        &["--minimum-active-vassals", &ks, "--json"],
        LoadSpec::default(),
        TOOL_TIMEOUT,
        |_| {},
    );
    print_summary("two fastrouters", &r);
    let after_requests = [requests_on(0), requests_on(1)];
    eprintln!(
        "[e2e measured] requests per router (node counters) before {before_requests:?}, after {after_requests:?}"
    );
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests();
    c.lowest_live_on(1, &stack.key, k);
    c.lowest_live_on(2, &stack.key, k);
    for (i, (b, a)) in before_requests.iter().zip(after_requests).enumerate() {
        c.check(a > *b && *b >= 0, || {
            format!(
                "router {}: its nodes' request counters went {b} -> {a}: nginx did not send load through it",
                i + 1
            )
        });
    }
    for name in &stack.names {
        c.reloaded_once(name);
        c.node_fresh(name, 17);
        c.check(stack.live_on_other_routers(name), || {
            format!("{name}: no live node on router B after the rollout")
        });
        if let Err(e) = c.drain_seen_by_router(name, 1) {
            c.fail(format!("router 1's trace: {e}"));
        }
        let drained = events_of(&r, "drained").iter().any(|(v, _)| v == name);
        c.check(drained, || {
            format!("{name}: no `drained` event: the drain was off with two routers")
        });
    }
    c.summary_list("reloaded", &stack.names);
    // the effective settings name a drain (both subscription servers)
    let drain = r
        .run
        .summary()
        .and_then(|s| s.pointer("/settings/drain/server").cloned());
    eprintln!("[e2e measured] summary settings.drain.server = {drain:?}");
    let drain = drain.map(|d| d.to_string()).unwrap_or_default();
    for p in stack.subscription_paths() {
        let p = p.display().to_string();
        c.check(drain.contains(&p), || {
            format!("the summary's drain server {drain:?} does not name {p}")
        });
    }
    c.finish();
}
