//! End-to-end at fleet scale: `uwsgi-reload` against real uWSGI Emperors, a
//! real fastrouter and nginx under HTTP load, in the situations a fleet
//! operator meets beyond the single-host rollouts of `tests/e2e.rs`:
//!
//! 1. two hosts (two Emperors) behind ONE fastrouter, reloaded one host after
//!    the other (Ansible `serial: 1`) with a K that only the whole fleet can
//!    keep: each run must count the other host's nodes;
//! 2. many rollouts back to back under continuous load with the drain on,
//!    checking from the fastrouter's own stats that every node was empty
//!    when its vassal was touched;
//! 3. `--probe`: a healthy fleet passes; a broken deploy that still accepts
//!    and subscribes (no `need-app`) is caught, and without `--probe` it is
//!    not (which is why the probe exists);
//! 4. `status` and `--dry-run` touch nothing;
//! 5. `examples/ansible/reload.yml` run by a real `ansible-playbook` against
//!    two hosts: serial, a broken first host stops the play, and with
//!    `--stale-since` a host is `changed` only when something was reloaded.
//!
//! Same conventions as `tests/e2e.rs` (whose harness, `tests/support/stack/`, this
//! reuses): every test is `#[ignore]`d for a plain `cargo test`;
//! `bash tests/run.sh` runs them with
//!   cargo test --release --test e2e_fleet -- --ignored --test-threads=1
//! `E2E_VERBOSE=1` prints each report, `E2E_KEEP=1` keeps the temp dirs,
//! `E2E_TOOL_ARGS` appends arguments to every run of the tool.
//!
//! Helpers: `tests/e2e_fleet/hosts.rs` (several Emperors behind one
//! fastrouter: the harness's `StackSpec::host`), `tests/support/stack/trace.rs`
//! (every fastrouter sample and every tool event on one clock, for the drain
//! check), `direct.rs` (a uwsgi-protocol request
//! straight to one vassal's socket), `ansible.rs` (ansible-core in a
//! private venv, the inventory, the play's recap).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/stack/mod.rs"]
mod stack;
#[path = "support/temp_dir.rs"]
mod temp_dir;

#[path = "e2e_fleet/ansible.rs"]
mod ansible;
#[path = "e2e_fleet/direct.rs"]
mod direct;
#[path = "e2e_fleet/hosts.rs"]
mod hosts;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hosts::MultiHost;
use serde_json::Value;
use stack::tool::{event_kind, event_vassal, Run};
use stack::trace;
use stack::{check_reloaded_once, check_untouched, vassal_name, Fleet};
use stack::{Load, LoadReport, LoadSpec, SampleReport, Stack, StackSpec, Tool};

const TOOL_TIMEOUT: Duration = Duration::from_secs(240);

/// One scenario at a time in this process (`Stack::start` serializes the
/// stacks, of one host or several; this also covers what a scenario does
/// before its stack starts, such as the Ansible venv install).
static FLEET_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    FLEET_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `base` + `extra` + the words of `$E2E_TOOL_ARGS`.
fn args_with(base: Vec<String>, extra: &[&str]) -> Vec<String> {
    let mut a = base;
    a.extend(extra.iter().map(|s| s.to_string()));
    if let Ok(more) = std::env::var("E2E_TOOL_ARGS") {
        a.extend(more.split_whitespace().map(str::to_string));
    }
    a
}

/// Every violated expectation of a scenario, reported together with the
/// evidence (tool runs, load, samples, fleet states).
#[derive(Default)]
struct Problems {
    list: Vec<String>,
    context: String,
}

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.list.push(what());
        }
    }
    fn fail(&mut self, what: impl Into<String>) {
        self.list.push(what.into());
    }
    fn exit(&mut self, label: &str, run: &Run, code: i32) {
        self.check(run.code == Some(code), || {
            format!(
                "{label}: uwsgi-reload exited with {:?} (signal {:?}, killed by the test {}), expected {code}",
                run.code, run.signal, run.timed_out
            )
        });
    }
    fn no_failed_requests(&mut self, load: &LoadReport) {
        self.check(load.ok > 0, || {
            "the load generator got no answer at all".into()
        });
        self.check(load.failures.is_empty(), || {
            let f = &load.failures[0];
            format!(
                "{} of {} requests failed (first at {} ms: {})",
                load.failures.len(),
                load.sent,
                f.at_ms,
                f.what
            )
        });
    }
    /// K held for `key` over the whole sampling, and the sampler saw all of
    /// it (no failed read, no gap over the bound: `stack::checks`).
    fn lowest_live(&mut self, samples: &SampleReport, key: &str, k: usize) {
        for p in stack::checks::sampling_problems("router", samples, 0, u128::MAX, &[]) {
            self.fail(p);
        }
        self.check(samples.samples > 10, || {
            format!("the sampler took only {} samples", samples.samples)
        });
        let low = samples.lowest_live.get(key).copied().unwrap_or(0);
        self.check(low >= k, || {
            format!(
                "key {key}: the fastrouter showed only {low} live node(s) (at {} ms), K = {k}",
                samples.lowest_live_at.get(key).copied().unwrap_or(0)
            )
        });
    }
    fn reloaded_once(&mut self, label: &str, b: &Fleet, a: &Fleet, name: &str) {
        if let Err(e) = check_reloaded_once(b.get(name), a.get(name)) {
            self.fail(format!("{label} {name}: {e}"));
        }
    }
    fn untouched(&mut self, label: &str, b: &Fleet, a: &Fleet, name: &str) {
        if let Err(e) = check_untouched(b.get(name), a.get(name)) {
            self.fail(format!("{label} {name} should be untouched: {e}"));
        }
    }
    fn note(&mut self, title: &str, body: impl AsRef<str>) {
        let _ = writeln!(self.context, "---- {title} ----\n{}", body.as_ref());
    }
    fn finish(self) {
        if self.list.is_empty() {
            if std::env::var_os("E2E_VERBOSE").is_some() {
                eprintln!("{}", self.context);
            }
            return;
        }
        let mut msg = String::new();
        for p in &self.list {
            let _ = writeln!(msg, "  * {p}");
        }
        panic!(
            "{} problem(s):\n{msg}\n======== evidence ========\n{}",
            self.list.len(),
            self.context
        );
    }
}

fn events_of<'a>(events: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| event_kind(e) == kind)
}

/// The summary's list `field`, as vassal stems, sorted.
fn summary_names(run: &Run, field: &str) -> Option<Vec<String>> {
    run.summary_list(field)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// 1. Two hosts, one fastrouter
// ---------------------------------------------------------------------------

/// Two Emperors ("hosts" A and B, 3 vassals each, sockets in per-host
/// directories) behind one standalone fastrouter and nginx, under load.
/// `uwsgi-reload` for host A with K = 4, then for host B with K = 4, as
/// Ansible `serial: 1` runs it (examples/ansible/reload.yml). Each host has
/// only 3 vassals: K = 4 can only be kept, and the preflight can only pass
/// (K + 1 = 5 nodes needed), because each run counts the other host's 3
/// nodes. Asserts: both exit 0, every vassal of both hosts reloaded exactly
/// once by its own host's run (new worker pid, same master), the other
/// host's vassals untouched by it, the fastrouter never showed fewer than 4
/// live nodes for the key during either run, no request failed, each run's
/// `plan` event counted 6 live nodes, and each run drained only its own
/// host's nodes.
fn two_hosts_serial_k4(a_numbers: &[usize], b_numbers: &[usize]) {
    let _g = lock();
    let k = 4;
    let mh = MultiHost::start("fleet.example", &[("a", a_numbers), ("b", b_numbers)]);
    let key = mh.key.clone();
    let t0 = Instant::now();
    let sampler = mh.sampler(mh.fastrouter_stats_path(), t0);
    let load = Load::start(mh.port, LoadSpec::default(), t0);
    std::thread::sleep(Duration::from_millis(500));

    let ks = k.to_string();
    let extra = ["--minimum-active-vassals", ks.as_str(), "--json"];
    let a0 = mh.fleet("a");
    let b0 = mh.fleet("b");
    let a_started = t0.elapsed().as_millis();
    let run_a = Tool::spawn(args_with(mh.tool_args("a"), &extra)).wait(TOOL_TIMEOUT);
    let a1 = mh.fleet("a");
    let b1 = mh.fleet("b");
    let b_started = t0.elapsed().as_millis();
    let run_b = Tool::spawn(args_with(mh.tool_args("b"), &extra)).wait(TOOL_TIMEOUT);
    let a2 = mh.fleet("a");
    let b2 = mh.fleet("b");
    std::thread::sleep(Duration::from_millis(500));
    let load = load.stop();
    let samples = sampler.stop();

    let mut p = Problems::default();
    p.note(
        "host A run",
        format!("started at {a_started} ms\n{}", run_a.describe()),
    );
    p.note(
        "host B run",
        format!("started at {b_started} ms\n{}", run_b.describe()),
    );
    p.note("load", load.describe());
    p.note("samples", samples.describe());
    for (label, f) in [
        ("A before", &a0),
        ("B before", &b0),
        ("A after A", &a1),
        ("B after A", &b1),
        ("A at end", &a2),
        ("B at end", &b2),
    ] {
        p.note(label, f.describe());
    }

    p.exit("host A", &run_a, 0);
    p.exit("host B", &run_b, 0);
    p.no_failed_requests(&load);
    p.lowest_live(&samples, &key, k);
    let a = mh.host("a").names.clone();
    let b = mh.host("b").names.clone();
    for n in &a {
        p.reloaded_once("host A run:", &a0, &a1, n);
        p.untouched("host B run: host A's", &a1, &a2, n);
    }
    for n in &b {
        p.untouched("host A run: host B's", &b0, &b1, n);
        p.reloaded_once("host B run:", &b1, &b2, n);
    }
    // the tool's own account
    for (label, run, names) in [("host A", &run_a, &a), ("host B", &run_b, &b)] {
        let events = run.events();
        let plan = events_of(&events, "plan").next().cloned();
        let live = plan
            .as_ref()
            .and_then(|p| p.get("live")?.get(&key)?.as_u64());
        p.check(live == Some(6), || {
            format!("{label}: the `plan` event shows {live:?} live for {key}, expected 6 (3 own + 3 of the other host): {plan:?}")
        });
        let reloaded = summary_names(run, "reloaded");
        p.check(reloaded.as_deref() == Some(&sorted(names)[..]), || {
            format!("{label}: summary `reloaded` is {reloaded:?}, expected {names:?}")
        });
        if let Some(s) = run.summary() {
            let low = s
                .get("lowest_live")
                .and_then(|l| l.get(&key))
                .and_then(Value::as_u64);
            p.check(low.is_some_and(|l| l >= k as u64), || {
                format!("{label}: summary lowest_live for {key} is {low:?}, K = {k}")
            });
        }
        // it touched only its own host's configs, and drained only its own nodes
        for e in events_of(&events, "touched") {
            let v = event_vassal(e).unwrap_or_default();
            p.check(names.contains(&v), || {
                format!("{label}: touched {v:?}, not one of its vassals")
            });
        }
        let own = mh.host(if label == "host A" { "a" } else { "b" });
        for e in events_of(&events, "drain_started") {
            let v = event_vassal(e).unwrap_or_default();
            let nodes: Vec<&str> = e
                .get("nodes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let want = own.node_name(&v);
            p.check(nodes == [want.as_str()], || {
                format!("{label}: the drain of {v} unsubscribed {nodes:?}, expected only its own node {want}")
            });
        }
    }
    p.finish();
}

/// Host A runs app_01..app_03, host B app_04..app_06: distinct config names
/// (and so distinct socket file stems) on the two hosts.
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_two_hosts_one_fastrouter_serial_k4() {
    two_hosts_serial_k4(&[1, 2, 3], &[4, 5, 6]);
}

/// The same with the SAME config names on both hosts (app_01..app_03 on
/// each, as a fleet deployed by one playbook has); node names still differ
/// (`host-a/app_01.sock`, `host-b/app_01.sock`).
///
/// Regression test: this scenario found that the file-stem rule was applied
/// on top of the exact address a vassal's config subscribes with, so host
/// A's `app_01.ini` also owned host B's `app_01.sock`: A's run drained
/// (unsubscribed) B's nodes too, took the key to 2 live nodes with K = 4
/// (its own summary said `lowest_live` 2) and still exited 0. Fixed in
/// f5e1564 ("A vassal whose config names its address matches that address
/// only").
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_two_hosts_same_config_names_serial_k4() {
    two_hosts_serial_k4(&[1, 2, 3], &[1, 2, 3]);
}

// ---------------------------------------------------------------------------
// 2. Drain under load, many rollouts
// ---------------------------------------------------------------------------

/// `rollouts` rollouts of N vassals with K, back to back under one
/// continuous load of 10 clients, drain on (the default: the vassal configs
/// name the subscription server). Asserts: every rollout exits 0 and
/// reloads every vassal exactly once, no request failed in total, the
/// fastrouter never showed fewer than K live nodes, and for every vassal of
/// every rollout: `drain_started`, then `drained` with `timed_out: false`,
/// then `touched`; and in every fastrouter sample from the `drained` event
/// until its new generation subscribed, its node was absent or death-marked
/// with `ref` at most 1 and never rising (the drain left at most the request
/// in its one worker, which the reload finishes, docs/UWSGI.md §19, and
/// nothing reached it until the reload was over).
fn drain_many_rollouts(n: usize, k: usize, rollouts: usize) {
    // the version matrix (tests/matrix.sh) runs fewer per uWSGI version
    let rollouts = std::env::var("E2E_DRAIN_ROLLOUTS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&r| r > 0)
        .unwrap_or(rollouts);
    let _g = lock();
    let stack = Stack::start(StackSpec::new(n));
    let key = stack.key.clone();
    let t0 = Instant::now();
    let sampler = stack.sampler(stack.fastrouter_stats_path(), t0);
    let tracer = trace::Trace::start(
        stack.fastrouter_stats_path(),
        key.clone(),
        t0,
        Duration::from_millis(15),
    );
    let load = Load::start(stack.port, LoadSpec::default(), t0);
    std::thread::sleep(Duration::from_millis(500));
    let ks = k.to_string();
    let mut runs = Vec::new();
    for _ in 0..rollouts {
        let before = stack.fleet();
        let tr = trace::run_timed(
            args_with(
                stack.base_args(),
                &["--minimum-active-vassals", ks.as_str(), "--json"],
            ),
            t0,
            TOOL_TIMEOUT,
        );
        let after = stack.fleet();
        let ok = tr.run.code == Some(0);
        runs.push((before, tr, after));
        if !ok {
            break; // the next preflight would only tell the same story
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let load = load.stop();
    let samples = sampler.stop();
    let traced = tracer.stop();

    let mut p = Problems::default();
    p.note("load", load.describe());
    p.note("samples (harness sampler)", samples.describe());
    p.check(runs.len() == rollouts, || {
        format!(
            "only {} of {rollouts} rollouts ran (one failed)",
            runs.len()
        )
    });
    let mut drains_checked = 0;
    let mut samples_checked = 0;
    for (i, (before, tr, after)) in runs.iter().enumerate() {
        let label = format!("rollout {}/{rollouts}", i + 1);
        p.exit(&label, &tr.run, 0);
        for name in &stack.names {
            p.reloaded_once(&format!("{label}:"), before, after, name);
        }
        for name in &stack.names {
            let started = tr.event_time("drain_started", name);
            let drained = tr.event_time("drained", name);
            let touched = tr.event_time("touched", name);
            let (Some(_), Some((d_ms, d)), Some((t_ms, _))) = (started, drained, touched) else {
                p.fail(format!(
                    "{label} {name}: events drain_started {}, drained {}, touched {}: the drain did not run",
                    started.is_some(),
                    drained.is_some(),
                    touched.is_some()
                ));
                continue;
            };
            p.check(d.get("timed_out") == Some(&Value::Bool(false)), || {
                format!("{label} {name}: drained event {d}: the drain timed out")
            });
            p.check(d_ms <= t_ms, || {
                format!("{label} {name}: touched ({t_ms:.0} ms) before drained ({d_ms:.0} ms)")
            });
            // examples/stack/vassal.ini: processes = 1, so one session may
            // be left in its worker at the touch (docs/UWSGI.md §19).
            match trace::check_drain_window(&traced, &stack.node_name(name), d_ms, t_ms, 1500.0, 1)
            {
                Ok(c) => {
                    drains_checked += 1;
                    samples_checked += c;
                }
                Err(e) => p.fail(format!("{label} {name}: {e}")),
            }
        }
        p.note(
            &format!(
                "{label} (spawned at {:.0} ms, event base {:.0} ms)",
                tr.spawned_ms,
                tr.base_ms()
            ),
            tr.run.describe(),
        );
    }
    p.no_failed_requests(&load);
    p.lowest_live(&samples, &key, k);
    p.note(
        "drain check",
        format!(
            "{drains_checked} drains checked against {samples_checked} fastrouter samples ({} samples in all)",
            traced.len()
        ),
    );
    eprintln!(
        "[e2e fleet] N={n} K={k}: {} rollouts, {} requests ({} failed), {drains_checked} drains checked against \
         {samples_checked} samples",
        runs.len(),
        load.sent,
        load.failures.len()
    );
    let last_exit = runs.last().and_then(|(_, tr, _)| tr.run.code);
    stack::record::outcome(&load, &samples, last_exit, p.list.is_empty());
    p.finish();
}

#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_drain_10_rollouts_n4_k1() {
    drain_many_rollouts(4, 1, 10);
}

#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_drain_10_rollouts_n8_k2() {
    drain_many_rollouts(8, 2, 10);
}

// ---------------------------------------------------------------------------
// 3. --probe
// ---------------------------------------------------------------------------

/// `--probe /` on a healthy fleet under load: exit 0, one `probe_ok` per
/// vassal (before its `subscribed`), every vassal reloaded once, nothing
/// lost, K held.
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_probe_healthy_fleet() {
    let _g = lock();
    let stack = Stack::start(StackSpec::new(4));
    let r = stack.rollout(
        &["--minimum-active-vassals", "1", "--json", "--probe", "/"],
        LoadSpec::default(),
        TOOL_TIMEOUT,
        |_| {},
    );
    let mut c = r.checks();
    c.exit(0);
    c.no_failed_requests();
    c.lowest_live(&stack.key, 1);
    for name in &stack.names {
        c.reloaded_once(name);
    }
    c.summary_list("reloaded", &stack.names);
    c.summary_list("failed", &[]);
    let events = r.run.events();
    for name in &stack.names {
        let oks: Vec<&Value> = events_of(&events, "probe_ok")
            .filter(|e| event_vassal(e).as_deref() == Some(name.as_str()))
            .collect();
        c.check(oks.len() == 1, || {
            format!("{name}: {} probe_ok event(s), expected 1", oks.len())
        });
        let at = |kind: &str| {
            events
                .iter()
                .find(|e| {
                    event_kind(e) == kind && event_vassal(e).as_deref() == Some(name.as_str())
                })
                .and_then(|e| e.get("at_ms")?.as_u64())
        };
        let (probe, sub) = (at("probe_ok"), at("subscribed"));
        c.check(probe.is_some() && sub.is_some() && probe <= sub, || {
            format!("{name}: probe_ok at {probe:?} ms, subscribed at {sub:?} ms: the probe must come first")
        });
    }
    c.finish();
}

/// Writes a config for `name` whose app fails to import, without
/// `need-app`: the vassal still starts, accepts, subscribes and answers 500
/// (docs/UWSGI.md §6.4). Deployed without the Emperor noticing.
fn deploy_broken_without_need_app(stack: &Stack, name: &str) {
    let ini = stack.vassal_ini();
    assert!(
        ini.contains("need-app = true"),
        "vassal.ini has no `need-app = true`"
    );
    let ini = ini.replace("need-app = true", "need-app = false")
        + "\n; broken deployment (e2e fleet): the import raises, need-app is off\nenv = APP_FAIL_IMPORT=1\n";
    stack.replace_config_quietly(name, &ini);
}

/// Runs the tool with `extra` on a fresh 4-vassal stack whose app_02 got a
/// broken deploy without need-app (no load: the broken vassal answers 500
/// to whatever the fastrouter sends it, with or without the probe).
/// Returns the stack, the fleet before and after, and the run.
fn broken_deploy_rollout(extra: &[&str]) -> (Stack, Fleet, Fleet, Run, String) {
    let stack = Stack::start(StackSpec::new(4));
    let bad = vassal_name(2);
    deploy_broken_without_need_app(&stack, &bad);
    let before = stack.fleet();
    let run = stack.run_tool(extra, TOOL_TIMEOUT);
    let after = stack.fleet();
    (stack, before, after, run, bad)
}

fn fleet_context(p: &mut Problems, run: &Run, before: &Fleet, after: &Fleet) {
    p.note("run", run.describe());
    p.note("fleet before", before.describe());
    p.note("fleet after", after.describe());
}

/// A broken deploy that `need-app = false` lets start (it accepts and
/// subscribes) reaches app_02 of 4, rolled one at a time. With `--probe /`
/// the rollout exits 1 naming app_02 with reason `probe_failed`, app_01 is
/// reloaded, nothing is touched after the failure (app_03 and app_04
/// untouched: the default failure policy), and app_02 really answers 500.
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_probe_stops_a_broken_deploy_without_need_app() {
    let _g = lock();
    let (stack, before, after, run, bad) = broken_deploy_rollout(&[
        "--minimum-active-vassals",
        "1",
        "--max-parallel",
        "1",
        "--json",
        "--probe",
        "/",
    ]);
    let mut p = Problems::default();
    fleet_context(&mut p, &run, &before, &after);
    p.exit("--probe /", &run, 1);
    p.check(run.stderr.contains(&bad), || {
        format!("stderr does not name {bad}")
    });
    let events = run.events();
    let failed: Vec<&Value> = events_of(&events, "failed").collect();
    p.check(
        failed.len() == 1
            && event_vassal(failed[0]).as_deref() == Some(bad.as_str())
            && failed[0].get("reason").and_then(Value::as_str) == Some("probe_failed"),
        || {
            format!(
                "expected one `failed` event for {bad} with reason probe_failed, got {failed:?}"
            )
        },
    );
    if let Some(s) = run.summary() {
        let f = s
            .get("failed")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        p.check(
            f.len() == 1 && f[0].get("reason").and_then(Value::as_str) == Some("probe_failed"),
            || format!("summary `failed` is {f:?}, expected [{bad}: probe_failed]"),
        );
    } else {
        p.fail("no summary event");
    }
    // nothing touched after the failure
    if let Some(i) = events.iter().position(|e| event_kind(e) == "failed") {
        let late: Vec<String> = events[i..]
            .iter()
            .filter(|e| event_kind(e) == "touched")
            .filter_map(event_vassal)
            .collect();
        p.check(late.is_empty(), || {
            format!("touched {late:?} after {bad} failed (default policy)")
        });
    }
    let touched: Vec<String> = events_of(&events, "touched")
        .filter_map(event_vassal)
        .collect();
    p.check(touched == [vassal_name(1), bad.clone()], || {
        format!("touched {touched:?}, expected [app_01, {bad}] (one at a time, in order, stop at the failure)")
    });
    p.reloaded_once("", &before, &after, &vassal_name(1));
    for n in [vassal_name(3), vassal_name(4)] {
        p.untouched("after the failure,", &before, &after, &n);
    }
    // the probe was right: app_02 serves errors, yet accepts and is subscribed
    let status = direct::get_status(&stack.dir.join(format!("{bad}.sock")), "/", &stack.key);
    p.check(matches!(status, Ok(500..=599)), || {
        format!("{bad} answers {status:?} straight on its socket, expected a 5xx")
    });
    let a = after.get(&bad);
    p.check(a.accepting && a.node.is_some(), || {
        format!("{bad} should accept and be subscribed (need-app off): {a:?}")
    });
    p.finish();
}

/// The same broken deploy WITHOUT `--probe`: the tool sees app_02 accept
/// and re-subscribe and declares the rollout a success (exit 0, all four
/// reloaded) while app_02 answers 500 to every request: what uwsgi_reload.py
/// does too, and why `--probe` exists.
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_without_probe_a_broken_deploy_passes_unnoticed() {
    let _g = lock();
    let (stack, before, after, run, bad) = broken_deploy_rollout(&[
        "--minimum-active-vassals",
        "1",
        "--max-parallel",
        "1",
        "--json",
    ]);
    let mut p = Problems::default();
    fleet_context(&mut p, &run, &before, &after);
    p.exit("without --probe", &run, 0);
    let reloaded = summary_names(&run, "reloaded");
    p.check(reloaded.as_deref() == Some(&stack.names[..]), || {
        format!(
            "summary `reloaded` is {reloaded:?}, expected all of {:?} (the broken one included)",
            stack.names
        )
    });
    let status = direct::get_status(&stack.dir.join(format!("{bad}.sock")), "/", &stack.key);
    p.check(matches!(status, Ok(500..=599)), || {
        format!("{bad} answers {status:?} straight on its socket: expected a 5xx, or this test shows nothing")
    });
    let a = after.get(&bad);
    p.check(a.live(), || {
        format!("{bad} should look live to the Emperor and the fastrouter: {a:?}")
    });
    p.finish();
}

// ---------------------------------------------------------------------------
// 4. status and --dry-run touch nothing
// ---------------------------------------------------------------------------

/// lstat() and stat() mtimes (ns) of the directory and every entry in it.
fn mtimes(dir: &Path) -> BTreeMap<PathBuf, (i128, Option<i128>)> {
    let ns = |m: &fs::Metadata| m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
    let mut out = BTreeMap::new();
    let d = fs::symlink_metadata(dir).unwrap();
    out.insert(
        dir.to_path_buf(),
        (ns(&d), fs::metadata(dir).ok().map(|m| ns(&m))),
    );
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let l = fs::symlink_metadata(&p).unwrap();
        out.insert(p.clone(), (ns(&l), fs::metadata(&p).ok().map(|m| ns(&m))));
    }
    out
}

/// `status`, `status --json`, `--dry-run` and `--dry-run --json` on a real
/// 4-vassal stack under load: each exits 0; not one lstat or stat mtime in
/// the Emperor directory (the directory itself, the links, their target)
/// changed and no entry appeared; no vassal was reloaded; `status --json`
/// lists every vassal as live with its own node; the dry run's plan counts
/// the 4 live nodes.
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_status_and_dry_run_touch_nothing() {
    let _g = lock();
    let stack = Stack::start(StackSpec::new(4));
    let t0 = Instant::now();
    let load = Load::start(stack.port, LoadSpec::default(), t0);
    std::thread::sleep(Duration::from_millis(300));
    let before = stack.fleet();
    let m0 = mtimes(&stack.vassals_dir());
    // after the first second boundary, so that a touch would show as a new mtime
    std::thread::sleep(Duration::from_millis(1100));
    let base = stack.base_args();
    let cmds: Vec<(&str, Vec<String>)> = vec![
        (
            "status",
            [vec!["status".to_string()], base.clone()].concat(),
        ),
        (
            "status --json",
            [
                vec!["status".to_string()],
                base.clone(),
                vec!["--json".into()],
            ]
            .concat(),
        ),
        (
            "--dry-run",
            [
                base.clone(),
                vec![
                    "--dry-run".into(),
                    "--minimum-active-vassals".into(),
                    "2".into(),
                ],
            ]
            .concat(),
        ),
        (
            "--dry-run --json",
            [
                base.clone(),
                vec![
                    "--dry-run".into(),
                    "--json".into(),
                    "--minimum-active-vassals".into(),
                    "2".into(),
                ],
            ]
            .concat(),
        ),
    ];
    let runs: Vec<(&str, Run)> = cmds
        .into_iter()
        .map(|(l, a)| (l, Tool::spawn(a).wait(Duration::from_secs(60))))
        .collect();
    // give the Emperor a scan (and a reload, were there one to see) to act
    std::thread::sleep(Duration::from_millis(3500));
    let m1 = mtimes(&stack.vassals_dir());
    let after = stack.fleet();
    let load = load.stop();

    let mut p = Problems::default();
    for (l, r) in &runs {
        p.note(l, r.describe());
    }
    p.note("fleet before", before.describe());
    p.note("fleet after", after.describe());
    for (l, r) in &runs {
        p.exit(l, r, 0);
    }
    p.check(m0 == m1, || {
        let mut d = String::new();
        for (k, v) in &m1 {
            if m0.get(k) != Some(v) {
                let _ = write!(d, " {}: {:?} -> {v:?};", k.display(), m0.get(k));
            }
        }
        for k in m0.keys().filter(|k| !m1.contains_key(*k)) {
            let _ = write!(d, " {} disappeared;", k.display());
        }
        format!("the Emperor directory changed:{d}")
    });
    for name in &stack.names {
        p.untouched("", &before, &after, name);
    }
    p.no_failed_requests(&load);

    // status --json: every vassal live, with its own node
    let status_json = runs[1]
        .1
        .stdout
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    match &status_json {
        None => p.fail(format!(
            "`status --json` printed no JSON: {:?}",
            runs[1].1.stdout
        )),
        Some(s) => {
            let rows = s
                .get("vassals")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            p.check(rows.len() == stack.names.len(), || {
                format!(
                    "status lists {} vassals, expected {}",
                    rows.len(),
                    stack.names.len()
                )
            });
            for name in &stack.names {
                let id = format!("{name}.ini");
                let row = rows
                    .iter()
                    .find(|r| r.get("vassal").and_then(Value::as_str) == Some(id.as_str()));
                let Some(row) = row else {
                    p.fail(format!("status does not list {id}"));
                    continue;
                };
                p.check(row.get("live") == Some(&Value::Bool(true)), || {
                    format!("status: {id} not live: {row}")
                });
                let pid = row.get("pid").and_then(Value::as_i64);
                p.check(pid == Some(before.get(name).pid), || {
                    format!(
                        "status: {id} pid {pid:?}, the Emperor says {}",
                        before.get(name).pid
                    )
                });
                let node = stack.node_name(name);
                let nodes = row
                    .get("nodes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                p.check(
                    nodes.len() == 1
                        && nodes[0].get("name").and_then(Value::as_str) == Some(node.as_str())
                        && nodes[0].get("key").and_then(Value::as_str) == Some(stack.key.as_str()),
                    || format!("status: {id} nodes {nodes:?}, expected exactly its own node {node} under {}", stack.key),
                );
            }
            let live = s
                .get("live")
                .and_then(|l| l.get(&stack.key))
                .and_then(Value::as_u64);
            p.check(live == Some(4), || {
                format!("status: live for {} is {live:?}, expected 4", stack.key)
            });
        }
    }
    // the human table names every vassal too
    for name in &stack.names {
        p.check(
            runs[0].1.stdout.contains(&format!("{name}.ini"))
                || runs[0].1.stderr.contains(&format!("{name}.ini")),
            || format!("`status` does not name {name}.ini"),
        );
    }
    // --dry-run --json: the plan
    let plan = runs[3]
        .1
        .events()
        .into_iter()
        .find(|e| event_kind(e) == "plan");
    let live = plan
        .as_ref()
        .and_then(|p| p.get("live")?.get(&stack.key)?.as_u64());
    p.check(live == Some(4), || {
        format!("--dry-run --json plan live is {live:?}, expected 4: {plan:?}")
    });
    p.check(
        runs[3]
            .1
            .events()
            .iter()
            .all(|e| event_kind(e) != "touched"),
        || "--dry-run reported a touch".into(),
    );
    p.finish();
}

// ---------------------------------------------------------------------------
// 5. The Ansible example, run by a real ansible-playbook
// ---------------------------------------------------------------------------

/// Replaces host `id`'s config `name` by a broken deploy without the
/// Emperor noticing (the mtime it has seen is kept): the next touch reloads
/// into a vassal that fails to start.
fn break_config_quietly(mh: &MultiHost, id: &str, name: &str) {
    let h = mh.host(id);
    let last_mod = h
        .emperor_stats()
        .expect("emperor stats")
        .vassal(&format!("{name}.ini"))
        .expect("vassal in the Emperor's stats")
        .last_mod;
    let mut ini = fs::read_to_string(h.dir.join("vassal.ini")).expect("the host's vassal.ini");
    ini.push_str(stack::uwsgi_under_test::broken_deploy_lines());
    stack::replace_keeping_mtime(&h.config_path(name), &ini, last_mod);
}

/// A release marker: a file whose mtime is the release instant, then the
/// next whole second (uWSGI's clocks have whole seconds).
fn new_release(mh: &MultiHost, tag: &str) -> String {
    let p = mh.dir.join(format!("release-{tag}"));
    fs::write(&p, b"").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    p.display().to_string()
}

/// `examples/ansible/reload.yml`, run by a real `ansible-playbook`
/// (ansible-core from PyPI in a private venv) against two inventory hosts:
/// two Emperors on this machine behind one shared fastrouter,
/// `connection: local` with per-host variables, under load with K = 4 of 6
/// nodes. Four plays:
/// 1. a deploy: both hosts `changed`, host B's first task only after host
///    A's reload ended, every vassal reloaded once;
/// 2. the same release again (`release` = --stale-since): both hosts `ok`,
///    nothing reloaded;
/// 3. a new release after a deploy that reached host A only (the tool run
///    there by hand): host A `ok`, untouched; host B `changed`, reloaded;
/// 4. a broken deploy on host A: the play fails on host A and stops
///    before host B, whose vassals are untouched.
///
/// Throughout: no request failed and the fastrouter never showed fewer
/// than K live nodes.
#[test]
#[ignore = "end-to-end on real uWSGI + nginx: bash tests/run.sh, or cargo test --test e2e_fleet -- --ignored --test-threads=1"]
fn fleet_ansible_playbook_two_hosts() {
    let _g = lock();
    // Before the stack: the venv install takes a while, and the load would
    // only run idle meanwhile.
    ansible::playbook_bin();
    let k = 4;
    let ks = k.to_string();
    let mh = MultiHost::start("fleet.example", &[("a", &[1, 2, 3]), ("b", &[1, 2, 3])]);
    let key = mh.key.clone();
    let t0 = Instant::now();
    let sampler = mh.sampler(mh.fastrouter_stats_path(), t0);
    let load = Load::start(mh.port, LoadSpec::default(), t0);
    std::thread::sleep(Duration::from_millis(500));
    let tool = stack::tool::BIN;
    let play = |release: &str| {
        ansible::run_play(&mh, &["a", "b"], tool, &[("k", &ks), ("release", release)])
    };
    let a = mh.host("a").names.clone();
    let b = mh.host("b").names.clone();
    let mut p = Problems::default();
    let reload_task = "Reload this host's vassals";

    // 1. a deploy
    let r1 = new_release(&mh, "1");
    let (a0, b0) = (mh.fleet("a"), mh.fleet("b"));
    let play1 = play(&r1);
    let (a1, b1) = (mh.fleet("a"), mh.fleet("b"));
    p.note("play 1 (deploy)", play1.describe());
    p.check(play1.code == Some(0), || {
        format!("play 1 exited with {:?}, expected 0", play1.code)
    });
    for h in ["host_a", "host_b"] {
        p.check(
            play1.count(h, "changed") == 1 && play1.count(h, "failed") == 0,
            || {
                format!(
                    "play 1: {h} should report changed=1 failed=0, recap {:?}",
                    play1.recap()
                )
            },
        );
    }
    let a_done = play1.first_result_of(reload_task, "host_a");
    let b_begins = play1.first_result_of("Preflight and plan (touches nothing)", "host_b");
    p.check(
        a_done.is_some() && b_begins.is_some() && a_done < b_begins,
        || format!("play 1: host B began ({b_begins:?}) before host A's reload ended ({a_done:?})"),
    );
    for n in &a {
        p.reloaded_once("play 1: host A", &a0, &a1, n);
    }
    for n in &b {
        p.reloaded_once("play 1: host B", &b0, &b1, n);
    }

    // 2. the same release again: nothing to do, nothing changed
    let play2 = play(&r1);
    let (a2, b2) = (mh.fleet("a"), mh.fleet("b"));
    p.note("play 2 (the same release again)", play2.describe());
    p.check(play2.code == Some(0), || {
        format!("play 2 exited with {:?}, expected 0", play2.code)
    });
    for h in ["host_a", "host_b"] {
        p.check(
            play2.count(h, "changed") == 0 && play2.count(h, "ok") > 0,
            || {
                format!(
                    "play 2: {h} should report ok and changed=0, recap {:?}",
                    play2.recap()
                )
            },
        );
    }
    for n in &a {
        p.untouched("play 2: host A", &a1, &a2, n);
    }
    for n in &b {
        p.untouched("play 2: host B", &b1, &b2, n);
    }

    // 3. a new release that reached host A only, then the play
    let r3 = new_release(&mh, "3");
    let by_hand = Tool::spawn(args_with(
        mh.tool_args("a"),
        &[
            "--minimum-active-vassals",
            ks.as_str(),
            "--stale-since",
            r3.as_str(),
        ],
    ))
    .wait(TOOL_TIMEOUT);
    p.exit("host A by hand", &by_hand, 0);
    let (a3, b3) = (mh.fleet("a"), mh.fleet("b"));
    let play3 = play(&r3);
    let (a4, b4) = (mh.fleet("a"), mh.fleet("b"));
    p.note("play 3 (after host A was done by hand)", play3.describe());
    p.check(play3.code == Some(0), || {
        format!("play 3 exited with {:?}, expected 0", play3.code)
    });
    p.check(play3.count("host_a", "changed") == 0, || {
        format!(
            "play 3: host A was already on the release, yet changed: {:?}",
            play3.recap()
        )
    });
    p.check(play3.count("host_b", "changed") == 1, || {
        format!(
            "play 3: host B should report changed=1: {:?}",
            play3.recap()
        )
    });
    for n in &a {
        p.untouched("play 3: host A", &a3, &a4, n);
    }
    for n in &b {
        p.reloaded_once("play 3: host B", &b3, &b4, n);
    }

    // 4. a broken deploy on host A stops the play before host B
    break_config_quietly(&mh, "a", &a[1]);
    let r5 = new_release(&mh, "5");
    let play4 = play(&r5);
    let b5 = mh.fleet("b");
    p.note("play 4 (broken deploy on host A)", play4.describe());
    p.check(play4.code.is_some_and(|c| c != 0), || {
        format!("play 4 exited with {:?}, expected a failure", play4.code)
    });
    p.check(play4.count("host_a", "failed") == 1, || {
        format!("play 4: host A should have failed: {:?}", play4.recap())
    });
    p.check(
        play4
            .first_result_of("Preflight and plan (touches nothing)", "host_b")
            .is_none(),
        || "play 4: host B ran after host A failed".into(),
    );
    for n in &b {
        p.untouched("play 4: host B", &b4, &b5, n);
    }

    std::thread::sleep(Duration::from_millis(500));
    let load = load.stop();
    let samples = sampler.stop();
    p.note("load", load.describe());
    p.note("samples", samples.describe());
    p.no_failed_requests(&load);
    p.lowest_live(&samples, &key, k);
    p.finish();
}
