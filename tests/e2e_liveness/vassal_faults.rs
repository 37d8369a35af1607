//! Cases 2 and 3: a vassal that is not healthy when the rollout
//! starts (restarted and still importing; crash-looping).

use std::time::{Duration, Instant};

use crate::stack::{ArrivedEvents, LoadSpec, Stack, StackSpec};
use crate::{expect_event, print_summary, TOOL_TIMEOUT};

/// Writes a config for `name` whose app cannot start (APP_FAIL_IMPORT with
/// need-app), without the Emperor noticing: its next start fails.
pub fn deploy_broken_config(stack: &Stack, name: &str) {
    let mut ini = stack.vassal_ini();
    ini.push_str("\n; broken deployment (e2e)\nenv = APP_FAIL_IMPORT=1\n");
    stack.replace_config_quietly(name, &ini);
}

/// Case 2. 4 vassals, K = 2. `victim`'s master is SIGKILLed; the Emperor
/// restarts it and its app imports for 15 s. 11 s after the kill the tool
/// starts: the victim is still importing. It must not be touched before it
/// accepts (the Emperor shows it accepting before it shows the reload), then
/// be reloaded once like the others (second import and worker under the same
/// master pid), and end live with a fresh node; exit 0.
/// Requests overlapping the time between the kill and the tool's start are
/// the kill's, not the tool's, and are counted apart.
pub fn restarted_vassal_not_reloaded_while_starting(victim: &str) {
    let k = 2;
    let stack = Stack::start(StackSpec::new(4));
    let mut kill_ms = 0;
    let mut events = ArrivedEvents::default();
    // (first ms the Emperor showed the restarted victim accepting, first ms
    // it showed a reload of it)
    let mut accepting_ms: Option<u128> = None;
    let mut reload_ms: Option<u128> = None;
    let ks = k.to_string();
    let r = stack.rollout_with(
        &["--minimum-active-vassals", &ks, "--json"],
        LoadSpec::default(),
        TOOL_TIMEOUT,
        |li| {
            li.stack.set_import_delay(victim, 15.0);
            let old = li.stack.kill_vassal_master(victim);
            let killed = Instant::now();
            kill_ms = li.note(format!(
                "SIGKILL {victim}'s master (pid {old}); its next import takes 15 s"
            ));
            let new = li
                .stack
                .wait_respawned(victim, old, Duration::from_secs(10));
            li.note(format!("the Emperor restarted {victim}: pid {new:?}"));
            std::thread::sleep(Duration::from_secs(11).saturating_sub(killed.elapsed()));
            li.note(format!(
                "11 s after the kill, {victim} still importing: the tool starts"
            ));
        },
        |d| {
            let b = d.before.get(victim).clone();
            while !d.tool.exited() {
                let ms = d.ms();
                events.poll(d.tool, ms);
                if let Ok(emp) = d.stack.emperor_stats() {
                    if let Some(v) = emp.vassal(&format!("{victim}.ini")) {
                        let reloaded = v.last_mod != b.last_mod || v.respawns != b.respawns;
                        if reloaded && reload_ms.is_none() {
                            reload_ms = Some(ms);
                        }
                        if !reloaded && v.pid == b.pid && v.accepting == 1 && accepting_ms.is_none()
                        {
                            accepting_ms = Some(ms);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            events.poll(d.tool, d.ms());
        },
    );
    print_summary(&r);
    eprintln!(
        "[e2e measured] {victim}: killed at {kill_ms} ms, tool started at {} ms, Emperor showed it accepting at \
         {accepting_ms:?} ms, reloading at {reload_ms:?} ms, tool's `touched` arrived at {:?} ms",
        r.tool_started_ms,
        events.first("touched", Some(victim))
    );
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests_outside(
        &[(kill_ms, r.tool_started_ms)],
        "the kill, before the tool started",
    );
    c.lowest_live_since(&stack.key, k, r.tool_started_ms, &[]);
    for name in stack.names.iter().filter(|n| *n != victim) {
        c.reloaded_once(name);
        c.node_fresh(name, 17);
    }
    let (b, a) = (r.before.get(victim).clone(), r.after.get(victim).clone());
    c.check(!b.accepting, || {
        format!("{victim} was already accepting when the tool started: the scenario did not happen")
    });
    c.check(a.pid == b.pid, || {
        format!("{victim}: master pid {} -> {}: it died again", b.pid, a.pid)
    });
    c.check(a.respawns == b.respawns + 1, || {
        format!(
            "{victim}: respawns {} -> {}: expected exactly one reload",
            b.respawns, a.respawns
        )
    });
    let imports = a.imports.iter().filter(|i| i.0 == a.pid).count();
    let workers: Vec<i64> = a
        .workers
        .iter()
        .filter(|w| w.1 == a.pid)
        .map(|w| w.0)
        .collect();
    c.check(imports == 2 && workers.len() == 2 && workers[0] != workers[1], || {
        format!(
            "{victim}: {imports} import(s) and workers {workers:?} under master {}: expected the restart's and \
             the reload's (2 imports, 2 distinct workers)",
            a.pid
        )
    });
    c.check(a.live(), || {
        format!(
            "{victim}: not live at the end (accepting {}, node {:?}): wedged",
            a.accepting, a.node
        )
    });
    c.node_fresh(victim, 17);
    match (accepting_ms, reload_ms) {
        (Some(acc), Some(rel)) => c.check(acc < rel, || {
            format!("{victim}: reloaded at {rel} ms before it was seen accepting at {acc} ms")
        }),
        (acc, rel) => c.fail(format!(
            "{victim}: the Emperor showed it accepting at {acc:?} ms and reloading at {rel:?} ms: expected both, \
             accepting first"
        )),
    }
    c.finish();
}

/// Case 3. 4 vassals, K = 2. `victim`'s config is broken and it is reloaded
/// before the rollout: it crash-loops into the Emperor's blacklist. The tool
/// reloads all three healthy vassals once, keeps K, loses no request, and
/// exits 1 naming the victim.
pub fn crash_looping_vassal_does_not_block_rollout(victim: &str) {
    let k = 2;
    let stack = Stack::start(StackSpec::new(4));
    deploy_broken_config(&stack, victim);
    stack.touch(victim);
    let t = Instant::now();
    let black = stack.wait_blacklisted(victim, Duration::from_secs(40));
    eprintln!(
        "[e2e measured] {victim} blacklisted: {black}, {} ms after its reload with the broken config",
        t.elapsed().as_millis()
    );
    assert!(
        black,
        "{victim} never showed in the Emperor's blacklist\n{}",
        stack.diagnostics()
    );
    let ks = k.to_string();
    let r = stack.rollout(
        &["--minimum-active-vassals", &ks, "--json"],
        LoadSpec::default(),
        TOOL_TIMEOUT,
        |_| {},
    );
    print_summary(&r);
    let mut c = r.checks();
    c.exit(1);
    c.no_failed_requests();
    c.lowest_live_since(&stack.key, k, r.tool_started_ms, &[]);
    let healthy: Vec<String> = stack
        .names
        .iter()
        .filter(|n| *n != victim)
        .cloned()
        .collect();
    for name in &healthy {
        c.reloaded_once(name);
        c.node_fresh(name, 17);
    }
    c.check(!r.after.get(victim).live(), || {
        format!("{victim} (broken) is live after the rollout")
    });
    c.check(r.run.stderr.contains(victim), || {
        format!("stderr does not name {victim}")
    });
    c.summary_list("reloaded", &healthy);
    c.summary_list("failed", &[victim.to_string()]);
    // named at preflight as already down
    expect_event(&mut c, "unavailable", Some(victim));
    c.finish();
}
