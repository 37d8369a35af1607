//! Case 6: the stale node of a killed vassal. A vassal's master is
//! SIGKILLed and its respawn fails (its config was broken quietly): its
//! unix-socket node stays in the fastrouter with death_mark 0 and every
//! request routed to it gets a 502 until the fastrouter expires it, ~17 s
//! after its last announce. The tool must unsubscribe that node as soon as
//! the Emperor shows the vassal dead: when it starts (killed before the
//! rollout) and while it runs (killed mid-rollout).

use std::time::{Duration, Instant};

use crate::stack::now_secs;
use crate::stack::{ArrivedEvents, LoadSpec, Rollout, Stack, StackSpec};
use crate::vassal_faults::deploy_broken_config;
use crate::{expect_event, print_summary, TOOL_TIMEOUT};

/// How soon after the tool could know (its start, or the kill) the stale
/// node must be out and the 502s over.
const GRACE_MS: u128 = 2000;

/// Killed ~3 s before the tool starts, right after an announce. 4 vassals,
/// K = 2. Requests overlapping [kill, tool start + 2 s] are the kill's; none
/// may fail after that, the node must be out by then; the healthy vassals
/// are reloaded once; exit 1 naming the victim.
pub fn killed_before_the_rollout(victim: &str) {
    let k = 2;
    let stack = Stack::start(StackSpec::new(4));
    let node = stack.node_name(victim);
    let mut kill_ms = 0;
    let mut age_at_kill = None;
    let ks = k.to_string();
    let r = stack.rollout_with(
        &["--minimum-active-vassals", &ks, "--json"],
        LoadSpec::default(),
        TOOL_TIMEOUT,
        |li| {
            deploy_broken_config(li.stack, victim);
            let fresh = li.stack.wait_fresh_announce(victim, 1, Duration::from_secs(15));
            age_at_kill = li.stack.node_age(&node);
            let old = li.stack.kill_vassal_master(victim);
            let killed = Instant::now();
            kill_ms = li.note(format!(
                "SIGKILL {victim}'s master (pid {old}), its node announced {age_at_kill:?} s ago (fresh: {fresh}); \
                 its respawn will fail"
            ));
            std::thread::sleep(Duration::from_secs(3).saturating_sub(killed.elapsed()));
            li.note(format!("the tool starts; {victim}'s node is {:?} s old", li.stack.node_age(&node)));
        },
        |_| {},
    );
    let before_tool = r
        .load
        .failures
        .iter()
        .filter(|f| f.at_ms >= kill_ms && f.at_ms < r.tool_started_ms)
        .count();
    eprintln!("[e2e measured] {victim}: {before_tool} requests failed between the kill and the tool's start");
    let start = r.tool_started_ms;
    judge(&stack, &r, victim, k, kill_ms, age_at_kill, start, |c| {
        c.check(before_tool > 0, || {
            format!("no request failed between the kill and the tool's start: {victim}'s stale node drew no 502")
        });
    });
}

/// Killed mid-rollout: 4 vassals (2 s import), K = 1, --max-parallel 1, so
/// one vassal is out when the victim (not touched yet) is killed 500 ms
/// after the tool's first touch. Its node must be out, and the 502s over,
/// within 2 s of the kill; the healthy vassals are reloaded once; exit 1
/// naming the victim.
pub fn killed_mid_rollout(victim: &str) {
    let k = 1;
    let stack = Stack::start(StackSpec::new(4).import_delay(2.0));
    deploy_broken_config(&stack, victim);
    let node = stack.node_name(victim);
    let mut kill_ms = None;
    let mut age_at_kill = None;
    let mut events = ArrivedEvents::default();
    let ks = k.to_string();
    let r = stack.rollout(&["--minimum-active-vassals", &ks, "--max-parallel", "1", "--json"], LoadSpec::default(), TOOL_TIMEOUT, |d| {
        while !d.tool.exited() {
            let ms = d.ms();
            events.poll(d.tool, ms);
            if kill_ms.is_none() && events.first("touched", None).is_some_and(|t| ms >= t + 500) {
                age_at_kill = d.stack.node_age(&node);
                let old = d.stack.kill_vassal_master(victim);
                kill_ms = Some(d.note_at(format!(
                    "SIGKILL {victim}'s master (pid {old}) mid-rollout, its node announced {age_at_kill:?} s ago; \
                     its respawn will fail"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        events.poll(d.tool, d.ms());
    });
    let Some(kill_ms) = kill_ms else {
        print_summary(&r);
        let mut c = r.checks();
        c.fail("the tool exited before the victim could be killed (500 ms after its first touch)");
        return c.finish();
    };
    let victim_touched = events.first("touched", Some(victim));
    judge(&stack, &r, victim, k, kill_ms, age_at_kill, kill_ms, |c| {
        c.check(victim_touched.map_or(true, |t| t > kill_ms), || {
            format!("{victim} was touched at {victim_touched:?} ms, before its kill at {kill_ms} ms: the scenario did not happen")
        });
    });
}

/// The checks both cases share; `from_ms` is when the tool could know.
#[allow(clippy::too_many_arguments)]
fn judge(
    stack: &Stack,
    r: &Rollout,
    victim: &str,
    k: usize,
    kill_ms: u128,
    age_at_kill: Option<i64>,
    from_ms: u128,
    more: impl FnOnce(&mut crate::stack::Checks<'_>),
) {
    print_summary(r);
    let node = stack.node_name(victim);
    let in_grace = r
        .load
        .failures
        .iter()
        .filter(|f| f.at_ms >= from_ms && f.at_ms < from_ms + GRACE_MS)
        .count();
    let last = r.load.failures.iter().map(|f| f.at_ms + f.took_ms).max();
    // when the node left the fastrouter (gone or death-marked), per the sampler
    let node_out_ms = r.samples.refs.get(&node).and_then(|h| {
        h.iter()
            .find(|(t, _, dm)| *t >= kill_ms && *dm != 0)
            .map(|(t, _, _)| *t)
    });
    let expiry_ms = age_at_kill.map(|a| kill_ms + (17 - a).max(0) as u128 * 1000);
    eprintln!(
        "[e2e measured] {victim}: killed at {kill_ms} ms, tool started at {} ms; {in_grace} failed requests in the \
         {GRACE_MS} ms from {from_ms} ms; last failure ended at {last:?} ms; node out of the fastrouter at \
         {node_out_ms:?} ms; it would expire on its own at ~{expiry_ms:?} ms (now {})",
        r.tool_started_ms,
        now_secs()
    );
    let mut c = r.checks();
    c.exit(1);
    more(&mut c);
    c.check(expiry_ms.is_some_and(|e| e > from_ms + GRACE_MS + 3000), || {
        format!("the node would have expired on its own at {expiry_ms:?} ms: the test cannot tell the tool's doing")
    });
    // Requests the router sent to the dead node until it dropped it are the
    // kill's; + 500 ms for one routed just before (20 ms requests, connect).
    // Whether the drop was the tool's doing is the order check below.
    let out = node_out_ms.unwrap_or(from_ms).max(from_ms);
    c.no_failed_requests_outside(
        &[(kill_ms, out + 500)],
        "the stale node, until the router dropped it",
    );
    // The tool's doing, by order rather than by a 2 s stopwatch: the node
    // left the fastrouter after the kill and at least 1 s (the router's
    // whole-second clock) before it would have expired on its own.
    c.check(
        node_out_ms.is_some_and(|t| t >= kill_ms && expiry_ms.is_some_and(|e| t + 1000 <= e)),
        || {
            format!(
                "{victim}'s node left the fastrouter at {node_out_ms:?} ms, not between its kill at {kill_ms} ms \
                 and 1 s before it would expire on its own (~{expiry_ms:?} ms)"
            )
        },
    );
    c.lowest_live_since(&stack.key, k, r.tool_started_ms, &[]);
    for name in stack.names.iter().filter(|n| *n != victim) {
        c.reloaded_once(name);
        c.node_fresh(name, 17);
    }
    c.check(!r.after.get(victim).live(), || {
        format!("{victim} (broken) is live after the rollout")
    });
    c.check(r.run.stderr.contains(victim), || {
        format!("stderr does not name {victim}")
    });
    c.summary_list("failed", &[victim.to_string()]);
    expect_event(&mut c, "stale_node_removed", Some(victim));
    c.finish();
}
