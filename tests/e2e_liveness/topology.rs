//! Cases 4 and 5: a fastrouter that restarts mid-rollout, and a
//! vassal with two addresses (two nodes) in one key.

use std::time::Duration;

use crate::stack::trace;
use crate::stack::{ArrivedEvents, LoadSpec, Stack, StackSpec};
use crate::{expect_event, print_summary, TOOL_TIMEOUT};

/// Case 4. 6 vassals (2 s import), K = 3, the fastrouter as its own process.
/// 1 s after the tool's first touch the fastrouter is SIGKILLed and started
/// again 1 s later on the same sockets: every node is lost until the vassals
/// announce again (subscribe-freq 10 s). The tool must not touch while the
/// nodes are gone, resume when they are back, and exit 0 with every vassal
/// reloaded once. Requests overlapping [kill, nodes back + 500 ms] fail
/// because the router was down or empty: they are not the tool's and are
/// counted apart; none may fail outside that window, and K must hold outside
/// it.
pub fn fastrouter_restart_mid_rollout() {
    let k = 3;
    let stack = Stack::start(StackSpec::new(6).import_delay(2.0).standalone_fastrouter());
    let mut events = ArrivedEvents::default();
    let mut kill_ms = None;
    let mut restarted_ms = 0;
    let ks = k.to_string();
    let r = stack.rollout(
        &["--minimum-active-vassals", &ks, "--json"],
        LoadSpec::default(),
        TOOL_TIMEOUT,
        |d| {
            while !d.tool.exited() {
                let ms = d.ms();
                events.poll(d.tool, ms);
                let first_touch = events.first("touched", None);
                if kill_ms.is_none() && first_touch.is_some_and(|t| ms >= t + 1000) {
                    let (killed, back) = d.stack.restart_fastrouter(Duration::from_secs(1));
                    kill_ms = Some(killed.duration_since(d.t0).as_millis());
                    restarted_ms = back.duration_since(d.t0).as_millis();
                    d.note(format!(
                        "fastrouter killed at {kill_ms:?} ms, listening again at {restarted_ms} ms"
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            events.poll(d.tool, d.ms());
        },
    );
    print_summary(&r);
    let mut c = r.checks();
    let Some(kill_ms) = kill_ms else {
        c.fail(
            "the tool exited before the fastrouter could be restarted (1 s after its first touch)",
        );
        return c.finish();
    };
    // nodes back: the first sample after the restart with K live nodes
    let back_ms = r
        .samples
        .live_changes
        .iter()
        .find(|(t, key, n)| *t >= restarted_ms && *key == stack.key && *n >= k)
        .map(|(t, _, _)| *t);
    let touches = events.all("touched");
    eprintln!(
        "[e2e measured] fastrouter killed at {kill_ms} ms, restarted at {restarted_ms} ms, {k} nodes back at \
         {back_ms:?} ms; touched events arrived at {touches:?}"
    );
    c.exit(0);
    let Some(back_ms) = back_ms else {
        c.fail(format!(
            "the fastrouter never showed {k} live nodes again after its restart"
        ));
        return c.finish();
    };
    // Each vassal announces every 10 s (subscribe-freq), so every node is
    // back within one period after the restart; + 1 s for uWSGI's
    // whole-second announce timer, + the sampler's largest allowed gap
    // (1.5 s), + 2.5 s for 2 busy cores: 15 s.
    let bound = 10_000 + 1_000 + crate::stack::checks::MAX_SAMPLE_GAP_MS + 2_500;
    c.check(back_ms - restarted_ms <= bound, || {
        format!(
            "{k} nodes came back {} ms after the restart, more than one announce period (bound {bound} ms)",
            back_ms - restarted_ms
        )
    });
    // a touch the tool's clock places surely inside (kill, back): its
    // earliest possible time after the kill, its latest before the nodes
    // were back (no poll-time stamps: `at_ms` bounds, ArrivedEvents)
    let paused = events
        .all_bounded("touched", r.tool_started_ms)
        .into_iter()
        .filter(|(lo, hi, _)| *lo > kill_ms && *hi < back_ms)
        .collect::<Vec<_>>();
    c.check(paused.is_empty(), || {
        format!("touched {paused:?} while the fastrouter had lost its nodes")
    });
    c.no_failed_requests_outside(
        &[(kill_ms, back_ms + 500)],
        "fastrouter down or without nodes",
    );
    c.lowest_live_since(&stack.key, k, r.tool_started_ms, &[(kill_ms, back_ms)]);
    for name in &stack.names {
        c.reloaded_once(name);
        c.node_fresh(name, 17);
    }
    c.summary_list("reloaded", &stack.names);
    // it said why it paused
    expect_event(&mut c, "fastrouter_restarted", None);
    c.finish();
}

/// Case 5. 4 vassals; `two` has two sockets and subscribes both under the
/// key (two `subscribe2` lines with `addr=`): 5 nodes. K = 3, so at most two
/// nodes may be out: `two` takes both of its nodes out and must be charged
/// for both. Asserts K per node (the sampler counts nodes), exit 0, every
/// vassal reloaded once, both of `two`'s nodes drained before its touch
/// (absent or death-marked with no session from the `drained` event to the
/// re-subscription) and both back, fresh, at the end.
pub fn two_address_vassal_charged_per_node(two: &str) {
    let k = 3;
    let ss = "server=@STACK_DIR@/subscription.sock,key=@KEY@";
    let stack = Stack::start(
        StackSpec::new(4)
            .own_drop(two, "subscribe2")
            .own_line(two, "socket = @STACK_DIR@/%n-b.sock")
            .own_line(two, &format!("subscribe2 = {ss},addr=@STACK_DIR@/%n.sock"))
            .own_line(
                two,
                &format!("subscribe2 = {ss},addr=@STACK_DIR@/%n-b.sock"),
            ),
    );
    let nodes = [
        stack.node_name(two),
        format!("{}/{two}-b.sock", stack.dir.display()),
    ];
    let both_live = crate::stack::poll(Duration::from_secs(20), Duration::from_millis(100), || {
        let fr = stack.fastrouter_stats().ok()?;
        let n = fr
            .nodes()
            .filter(|(key, n)| *key == stack.key && nodes.contains(&n.name) && n.death_mark == 0)
            .count();
        (n == 2).then_some(())
    });
    assert!(
        both_live.is_some(),
        "{two}'s two nodes are not both live\n{}",
        stack.diagnostics()
    );
    let mut events = ArrivedEvents::default();
    let mut tracer = None;
    let ks = k.to_string();
    let r = stack.rollout_with(
        &["--minimum-active-vassals", &ks, "--json"],
        LoadSpec::default().path("/?sleep=0.1"),
        TOOL_TIMEOUT,
        |li| {
            let t = trace::Trace::start(
                li.stack.fastrouter_stats_path(),
                li.stack.key.clone(),
                li.t0,
                Duration::from_millis(15),
            );
            tracer = Some(t);
        },
        |d| {
            while !d.tool.exited() {
                events.poll(d.tool, d.ms());
                std::thread::sleep(Duration::from_millis(10));
            }
            events.poll(d.tool, d.ms());
        },
    );
    let traced = tracer.expect("tracer").stop();
    print_summary(&r);
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests();
    c.lowest_live_since(&stack.key, k, r.tool_started_ms, &[]);
    for name in &stack.names {
        c.reloaded_once(name);
        c.node_fresh(name, 17);
    }
    let started = events.events.iter().find(|(_, e)| {
        crate::stack::tool::event_kind(e) == "drain_started"
            && crate::stack::tool::event_vassal(e).as_deref() == Some(two)
    });
    let listed = started.map(|(_, e)| e.get("nodes").map(|n| n.to_string()).unwrap_or_default());
    eprintln!("[e2e measured] {two}: drain_started nodes {listed:?}");
    for node in &nodes {
        c.check(
            listed.as_ref().is_some_and(|l| l.contains(node.as_str())),
            || format!("{two}'s drain_started event does not list {node}: {listed:?}"),
        );
    }
    match (
        events.first("drained", Some(two)),
        events.first("touched", Some(two)),
    ) {
        (Some(d_ms), Some(t_ms)) => {
            for node in &nodes {
                // One worker (examples/stack/vassal.ini): at most one
                // session left at the touch (docs/UWSGI.md §19).
                match trace::check_drain_window(&traced, node, d_ms as f64, t_ms as f64, 1500.0, 1)
                {
                    Ok(n) => eprintln!(
                        "[e2e measured] {node}: out of rotation in {n} samples from `drained` to its return"
                    ),
                    Err(e) => c.fail(format!("{node}: {e}")),
                }
            }
        }
        (d, t) => c.fail(format!(
            "{two}: `drained` arrived at {d:?} ms, `touched` at {t:?} ms: expected both"
        )),
    }
    match stack.fastrouter_stats() {
        Err(e) => c.fail(format!("fastrouter stats after the rollout: {e}")),
        Ok(fr) => {
            let now = crate::stack::now_secs();
            for node in &nodes {
                let ok = fr.nodes().any(|(key, n)| {
                    *key == stack.key
                        && n.name == *node
                        && n.death_mark == 0
                        && now - n.last_check <= 18
                });
                c.check(ok, || {
                    format!("{node} is not live and fresh in the fastrouter after the rollout")
                });
            }
        }
    }
    c.finish();
}
