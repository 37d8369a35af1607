//! Exhaustive exploration of interleavings: every order in which a small
//! simulated Emperor + fastrouter (tests/support/sim) can answer, notice, reload,
//! accept and announce, every time jump to the engine's next timeout, and up
//! to one injected fault per run (two for the small fleets of
//! `explore_two_faults`), explored depth-first with a visited set.
//!
//! At every step (tests/support/sim/checker.rs checks them): K live per key from the
//! world's ground truth, each drop attributed to its cause: a touch, drain
//! unsubscribe or `S` of the tool that takes a serving vassal out and leaves
//! a key below K fails, whatever the world did before; a drop the world
//! caused alone (crash, crash loop, someone else's reload, config removed,
//! fastrouter restart) is allowed, but the tool must not add to it. No touch
//! of a vassal whose Emperor record shows it starting (not accepting since
//! its last (re)start); no vassal touched twice; no second read of one
//! socket in flight; no action after Finish; no deadlock (not finished and
//! no timeout); no timer that spins; no panic. At Finish: every vassal
//! reloaded (and really reloaded, not wedged), failed with a reason, or
//! untouched with a reason (and really untouched); with no fault, all
//! reloaded except a vassal crash-looping from before the rollout, which is
//! reported failed; a fleet with K + 1 live in every key is not refused at
//! preflight. A run that passes its time limit without Finish fails, and so
//! does one cut at the depth bound.
//!
//! The `explore_setups_*` tests are the setups real operators run (subscribe-freq
//! 25 s with tolerance 60, slow starts, a vassal starting or crash-looping
//! before the rollout, two addresses, lazy-apps, late announces, fastrouter
//! restarts): several fail against an engine with fixed graces, by design.
//!
//! `explore_large` runs in tests/run.sh (a few minutes in release on 2
//! cores; it prints its time); `cargo test --release --test explore --
//! --ignored` runs the much bigger ones. `EXPLORE_ONLY=<label part>` runs
//! one config; `EXPLORE_SURVEY=1` lists every failing config instead of
//! stopping at the first (diagnostic only: tests pass in that mode).

#[path = "support/sim/mod.rs"]
mod sim;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use sim::{Config, FaultKind, Initial, Keys, Move, Sim};

#[derive(Debug, Default)]
struct Stats {
    states: usize,
    finished: usize,
    max_depth: usize,
    /// Survey mode only (see `survey`).
    violations: usize,
    first_violation: Option<String>,
}

/// `EXPLORE_SURVEY=1`: a diagnostic mode that explores every config to the
/// end, pruning the branches that break a property, and prints the first
/// violation of each config instead of failing: to list every failing
/// config and time the explorations while the engine still fails them.
/// Tests always pass in this mode: never set it in CI.
fn survey() -> bool {
    std::env::var_os("EXPLORE_SURVEY").is_some()
}

/// Depth-first over every move sequence from the start, skipping states
/// already seen. Panics with the move sequence on the first violation.
fn explore(cfg: &Config, max_depth: usize) -> Stats {
    let root = Sim::new(cfg);
    let mut visited: HashSet<u64> = HashSet::new();
    visited.insert(root.fingerprint());
    let mut stats = Stats::default();
    let mut path: Vec<Move> = Vec::new();
    let mut stack: Vec<(Sim, usize, Option<Move>)> = vec![(root, 0, None)];
    while let Some((s, depth, mv)) = stack.pop() {
        path.truncate(depth.saturating_sub(1));
        if let Some(mv) = mv {
            path.push(mv);
        }
        stats.states += 1;
        stats.max_depth = stats.max_depth.max(depth);
        if std::env::var_os("EXPLORE_TRACE").is_some() && stats.states % 100_000 == 0 {
            eprintln!(
                "{} states, depth {depth}, stack {}",
                stats.states,
                stack.len()
            );
        }
        if s.finished() {
            stats.finished += 1;
            continue;
        }
        if depth >= max_depth {
            // A run longer than the bound is not known to be correct: the
            // bound must be raised (or the config made smaller), never the
            // path dropped.
            if survey() {
                stats.violations += 1;
                stats
                    .first_violation
                    .get_or_insert(format!("depth bound {max_depth}"));
                continue;
            }
            fail(
                cfg,
                &path,
                None,
                &format!("a run reached the depth bound {max_depth} unfinished"),
            );
        }
        let moves = s.moves();
        if moves.is_empty() {
            fail(
                cfg,
                &path,
                None,
                "nothing can happen and the engine has not finished: deadlock",
            );
        }
        for mv in moves {
            let mut c = s.clone();
            let r = catch_unwind(AssertUnwindSafe(|| c.apply(&mv)));
            let why = match r {
                Ok(Ok(())) => None,
                Ok(Err(why)) => Some(why),
                Err(_) => Some("the engine panicked".to_string()),
            };
            if let Some(why) = why {
                if !survey() {
                    fail(cfg, &path, Some(&mv), &why);
                }
                // Survey mode: note the first violation, prune the branch.
                stats.violations += 1;
                stats.first_violation.get_or_insert(why);
                continue;
            }
            if visited.insert(c.fingerprint()) {
                stack.push((c, depth + 1, Some(mv)));
            }
        }
    }
    stats
}

/// Replays `path` + `last` with the log on, and panics with it.
fn fail(cfg: &Config, path: &[Move], last: Option<&Move>, why: &str) -> ! {
    let mut s = Sim::new(cfg);
    s.keep_log = true;
    for mv in path.iter().chain(last) {
        if catch_unwind(AssertUnwindSafe(|| s.apply(mv))).is_err() {
            break;
        }
    }
    panic!(
        "{why}\nconfig: {cfg:?}\nafter {} moves:\n{}\n",
        path.len() + last.is_some() as usize,
        s.log.join("\n")
    );
}

fn run(label: &str, cfg: Config, max_depth: usize) -> Stats {
    if let Some(only) = std::env::var_os("EXPLORE_ONLY") {
        if !label.contains(only.to_str().unwrap_or_default()) {
            return Stats {
                finished: 1,
                ..Stats::default()
            };
        }
    }
    let t = std::time::Instant::now();
    let st = explore(&cfg, max_depth);
    eprintln!("{label}: {:?}", t.elapsed());
    eprintln!("{label}: {st:?}");
    if let Some(why) = &st.first_violation {
        eprintln!(
            "SURVEY FAIL {label}: {} violation(s), first: {why}",
            st.violations
        );
    }
    assert!(
        st.finished > 0 || survey(),
        "{label}: no run finished within depth {max_depth}"
    );
    st
}

/// Two simulations built apart and fed the same moves hash alike at every
/// step; otherwise the visited set would stop merging equal states (as a
/// HashMap in the engine's Debug output does).
#[test]
fn fingerprints_are_deterministic() {
    let mut cfg = Config::new(3, 1, Keys::Both);
    cfg.drain = true;
    cfg.faults = vec![FaultKind::Crash];
    cfg.max_faults = 1;
    for stride in [1, 3, 7] {
        let (mut a, mut b) = (Sim::new(&cfg), Sim::new(&cfg));
        let mut i = 0;
        while !a.finished() {
            let moves = a.moves();
            let mv = moves[i % moves.len()].clone();
            i += stride;
            a.apply(&mv).unwrap();
            b.apply(&mv).unwrap();
            assert_eq!(a.fingerprint(), b.fingerprint(), "after {mv:?}: {:?}", a.e);
        }
    }
}

/// The fault-free configurations: every N <= 3 (4 with one key), every K
/// from 0 to N-1, one or two keys.
fn base_configs(max_n: usize) -> Vec<(String, Config)> {
    let mut out = Vec::new();
    for n in 1..=max_n {
        for keys in [Keys::One, Keys::Split, Keys::Both] {
            if n == 1 && keys != Keys::One {
                continue;
            }
            for k in 0..n {
                out.push((format!("n{n} k{k} {keys:?}"), Config::new(n, k, keys)));
            }
        }
    }
    out
}

#[test]
fn explore_fault_free_up_to_3_vassals() {
    for (label, cfg) in base_configs(3) {
        run(&label, cfg, 400);
    }
}

#[test]
fn explore_fault_free_4_vassals_one_key() {
    for k in 0..4 {
        run(&format!("n4 k{k} One"), Config::new(4, k, Keys::One), 400);
    }
}

#[test]
fn explore_fault_free_variants() {
    // Drain on, sessions in flight, no unsubscribe-on-graceful-reload,
    // another host's node, announce before accept, events between the two
    // reads of a tick, slower reloads.
    for (n, k, keys) in [(2, 1, Keys::One), (3, 1, Keys::One), (2, 1, Keys::Both)] {
        let base = Config::new(n, k, keys);
        let l = format!("n{n} k{k} {keys:?}");
        let mut c = base.clone();
        c.drain = true;
        run(&format!("{l} drain"), c.clone(), 400);
        c.busy = true;
        run(&format!("{l} drain busy"), c, 400);
        let mut c = base.clone();
        c.uogr = false;
        run(&format!("{l} no-uogr"), c.clone(), 400);
        c.announce_first = true;
        run(&format!("{l} no-uogr announce-first"), c, 400);
        let mut c = base.clone();
        c.foreign_node = true;
        run(&format!("{l} foreign node"), c, 400);
        let mut c = base.clone();
        c.announce_first = true;
        run(&format!("{l} announce-first"), c, 400);
        if n <= 2 {
            let mut c = base.clone();
            c.events_between_reads = true;
            c.accept_within_ms = 3_000;
            run(&format!("{l} between-reads slow-accept"), c, 400);
        }
    }
}

#[test]
fn explore_rollout_control() {
    // --max-parallel 1, --canary 1 with --min-ready 2 s; fault-free, then
    // with a crash (a canary that dies stops the rollout).
    for (n, k, keys) in [(3, 0, Keys::One), (3, 1, Keys::Both)] {
        let l = format!("n{n} k{k} {keys:?}");
        let mut c = Config::new(n, k, keys);
        c.max_parallel = 1;
        run(&format!("{l} max-parallel 1"), c, 400);
        let mut c = Config::new(n, k, keys);
        c.canary = 1;
        c.min_ready_ms = 2_000;
        run(&format!("{l} canary 1 min-ready 2s"), c.clone(), 400);
        if k > 0 {
            c.k = 2;
            c.faults = vec![FaultKind::Crash];
            c.max_faults = 1;
            run(
                &format!("n{n} k2 {keys:?} canary 1 min-ready 2s Crash"),
                c,
                400,
            );
        }
    }
}

#[test]
fn explore_fault_free_initially_down() {
    for initial in [
        Initial::FirstBlacklisted,
        Initial::FirstUnsubscribed,
        Initial::FirstStale,
    ] {
        for (n, k, keys) in [
            (1, 0, Keys::One),
            (2, 0, Keys::One),
            (3, 1, Keys::One),
            (3, 0, Keys::Both),
        ] {
            let mut c = Config::new(n, k, keys);
            c.initial = initial;
            run(&format!("n{n} k{k} {keys:?} {initial:?}"), c.clone(), 400);
            c.uogr = false;
            run(&format!("n{n} k{k} {keys:?} {initial:?} no-uogr"), c, 400);
        }
    }
}

fn with_fault(n: usize, k: usize, keys: Keys, f: FaultKind) -> Config {
    let mut c = Config::new(n, k, keys);
    c.faults = vec![f];
    c.max_faults = 1;
    c
}

fn explore_faults(kinds: &[FaultKind]) {
    for &f in kinds {
        for (n, k, keys) in [
            (1, 0, Keys::One),
            (2, 1, Keys::One),
            (2, 0, Keys::One),
            (3, 2, Keys::Both),
        ] {
            run(
                &format!("n{n} k{k} {keys:?} {f:?}"),
                with_fault(n, k, keys, f),
                400,
            );
        }
        // Without unsubscribe-on-graceful-reload (old nodes linger alive),
        // with drain, and with --keep-going.
        let mut c = with_fault(2, 1, Keys::One, f);
        c.uogr = false;
        run(&format!("n2 k1 One {f:?} no-uogr"), c, 400);
        let mut c = with_fault(2, 1, Keys::One, f);
        c.drain = true;
        run(&format!("n2 k1 One {f:?} drain"), c, 400);
        let mut c = with_fault(2, 0, Keys::One, f);
        c.keep_going = true;
        run(&format!("n2 k0 One {f:?} keep-going"), c, 400);
    }
}

macro_rules! fault_tests {
    ($($name:ident: $kind:ident,)*) => {$(
        #[test]
        fn $name() {
            explore_faults(&[FaultKind::$kind]);
        }
    )*};
}

fault_tests! {
    explore_fault_crash: Crash,
    explore_fault_crash_loop: CrashLoop,
    explore_fault_missing_announce: MissingAnnounce,
    explore_fault_foreign_touch: ForeignTouch,
    explore_fault_config_removed: ConfigRemoved,
    explore_fault_read_fail: ReadFail,
    explore_fault_invalid_snapshot: InvalidSnapshot,
    explore_fault_touch_error: TouchError,
    explore_fault_overflow: Overflow,
    explore_fault_stop: Stop,
    explore_fault_fastrouter_restart: FastrouterRestart,
    explore_fault_slow_read: SlowRead,
    explore_fault_broken_app: BrokenApp,
}

#[test]
fn explore_probe() {
    // --probe: a reloaded vassal counts after a 2xx from its own socket;
    // one whose new app answers 500 fails (without --probe nothing tells).
    for (n, k, keys) in [(2, 1, Keys::One), (3, 1, Keys::Both)] {
        let mut c = Config::new(n, k, keys);
        c.probe = true;
        run(&format!("n{n} k{k} {keys:?} probe"), c.clone(), 400);
        c.faults = vec![FaultKind::BrokenApp, FaultKind::Crash];
        c.max_faults = 1;
        if n == 2 {
            run(&format!("n{n} k{k} {keys:?} probe BrokenApp|Crash"), c, 400);
        }
    }
}

// ----- liveness from evidence: the setups of real operators ---------------
//
// Setups real operators run whose timings exceed the engine's fixed
// thresholds (10 s starting grace, 17 s node tolerance, 12 s announce
// grace), vassals with more than one node, and fleets already failing when
// the rollout starts. Today's engine fails several of these: they are the
// specification of the liveness rules, not flaky tests.

/// subscribe-freq 25 s with the fastrouter's subscription-tolerance 60:
/// nodes 17-25 s old are healthy. Without `--subscription-tolerance` the
/// engine must still not take a serving vassal out below K.
#[test]
fn explore_setups_subscribe_freq_25() {
    for (n, k) in [(2, 1), (3, 2)] {
        let c = Config::new(n, k, Keys::One).freq(&[25], 60);
        run(&format!("n{n} k{k} One freq 25 tolerance 60"), c, 1_500);
    }
    // A fleet started at once: every node 18-25 s old at the same time.
    let mut c = Config::new(3, 1, Keys::One).freq(&[25], 60);
    c.in_phase = true;
    run("n3 k1 One freq 25 tolerance 60 in phase", c, 1_500);
    // Mixed: one vassal at uWSGI's 10 s, one at 25 s.
    let c = Config::new(2, 1, Keys::One).freq(&[10, 25], 60);
    run("n2 k1 One freq 10|25 tolerance 60", c, 1_500);
}

/// The same setup with the tolerance given on the command line: the
/// control (the engine is told the truth).
#[test]
fn explore_setups_subscribe_freq_25_tolerance_given() {
    let mut c = Config::new(3, 2, Keys::One).freq(&[25], 60);
    c.tolerance_flag = true;
    run("n3 k2 One freq 25 tolerance 60 given", c, 1_500);
}

/// A vassal crash-restarted 11 s before the rollout whose app takes 15 to
/// 30 s to import: it must not be touched until it accepts.
#[test]
fn explore_setups_starting_before_rollout() {
    for (n, k) in [(2, 0), (3, 1)] {
        let mut c = Config::new(n, k, Keys::One).slow_start(15, 30);
        c.initial = Initial::FirstStarting(11);
        run(
            &format!("n{n} k{k} One starting 11 s ago, import 15-30 s"),
            c.clone(),
            1_500,
        );
        // The engine may unsubscribe the node the crashed master left.
        c.can_unsubscribe = true;
        run(
            &format!("n{n} k{k} One starting 11 s ago, import 15-30 s, unsubscribe"),
            c,
            1_500,
        );
    }
}

/// Every reload and crash-restart imports its app for 15 to 30 s; a crash
/// mid-rollout leaves a vassal starting longer than any fixed grace.
#[test]
fn explore_setups_slow_start() {
    let c = Config::new(2, 1, Keys::One).slow_start(15, 30);
    run("n2 k1 One import 15-30 s", c, 1_500);
    let mut c = Config::new(2, 0, Keys::One).slow_start(15, 30);
    c.faults = vec![FaultKind::Crash];
    c.max_faults = 1;
    run("n2 k0 One import 15-30 s Crash", c, 1_500);
}

/// A vassal crash-looping (blacklisted) before the rollout whose config
/// stays broken: reported failed, and it does not stop the healthy
/// vassals' rollout.
#[test]
fn explore_setups_crash_looping_before_rollout() {
    for (n, k) in [(2, 0), (3, 1)] {
        let mut c = Config::new(n, k, Keys::One);
        c.initial = Initial::FirstCrashLooping;
        run(&format!("n{n} k{k} One first crash-looping"), c, 400);
    }
}

/// A vassal with two addresses in one key: touching it takes two nodes
/// out, and K is counted in nodes.
#[test]
fn explore_setups_two_addresses() {
    for (n, k, keys) in [(2, 1, Keys::One), (3, 2, Keys::One), (2, 1, Keys::Both)] {
        let mut c = Config::new(n, k, keys);
        c.two_addrs = true;
        run(&format!("n{n} k{k} {keys:?} two addresses"), c.clone(), 400);
        c.drain = true;
        run(&format!("n{n} k{k} {keys:?} two addresses drain"), c, 400);
    }
}

/// lazy-apps: the first announce after accepting comes at the next
/// subscribe-freq tick (uWSGI's 10 s; 25 s with tolerance 60).
#[test]
fn explore_setups_lazy_apps() {
    let mut c = Config::new(2, 1, Keys::One).freq(&[10], 17);
    c.lazy_apps = true;
    run("n2 k1 One lazy-apps freq 10", c, 1_500);
    let mut c = Config::new(2, 1, Keys::One).freq(&[25], 60);
    c.lazy_apps = true;
    run("n2 k1 One lazy-apps freq 25 tolerance 60", c, 1_500);
}

/// Announces up to 3 s after accepting.
#[test]
fn explore_setups_late_announce() {
    for (n, k, keys) in [(2, 1, Keys::One), (3, 1, Keys::Both)] {
        let mut c = Config::new(n, k, keys);
        c.announce_late_ms = 3_000;
        run(&format!("n{n} k{k} {keys:?} announce late 3 s"), c, 600);
    }
}

/// The fastrouter restarts (new pid, every node gone until each vassal's
/// next announce), with subscribe-freq 10 s.
#[test]
fn explore_setups_fastrouter_restart() {
    for (n, k) in [(2, 1), (3, 1)] {
        let mut c = Config::new(n, k, Keys::One).freq(&[10], 17);
        c.faults = vec![FaultKind::FastrouterRestart];
        c.max_faults = 1;
        run(
            &format!("n{n} k{k} One freq 10 FastrouterRestart"),
            c,
            1_500,
        );
    }
    // With the crash of a vassal, and stale nodes unsubscribed.
    for (n, k) in [(2, 0), (3, 1)] {
        let mut c = Config::new(n, k, Keys::One).freq(&[10], 17);
        c.faults = vec![FaultKind::FastrouterRestart, FaultKind::Crash];
        c.max_faults = 2;
        c.can_unsubscribe = true;
        run(
            &format!("n{n} k{k} One freq 10 FastrouterRestart+Crash unsubscribe"),
            c,
            1_500,
        );
    }
}

/// The vassal's log as evidence (docs/UWSGI.md §9.6.1): each vassal's log
/// is watched from its touch; when it accepts, the log proves its hook's
/// `S` lost (it stays blocked until a repair) or arrived. The engine writes
/// `S` only on that proof or after the announce window, announces a
/// repaired vassal and one whose subscriptions are on, and K holds under
/// every interleaving of those lines with the stats, with and without the
/// missing-announce fault (repair fixes, does not help, finds no FIFO),
/// drain, lazy-apps and subscribe-freq 10 s.
#[test]
fn explore_log_evidence() {
    for (n, k, keys) in [(2, 1, Keys::One), (2, 0, Keys::One), (3, 2, Keys::Both)] {
        let mut c = Config::new(n, k, keys);
        c.log_evidence = true;
        c.can_unsubscribe = true;
        run(&format!("n{n} k{k} {keys:?} log evidence"), c.clone(), 400);
        c.faults = vec![FaultKind::MissingAnnounce];
        c.max_faults = 1;
        run(
            &format!("n{n} k{k} {keys:?} log evidence MissingAnnounce"),
            c,
            400,
        );
    }
    let mut c = Config::new(2, 1, Keys::One);
    c.log_evidence = true;
    c.can_unsubscribe = true;
    c.drain = true;
    c.faults = vec![FaultKind::MissingAnnounce, FaultKind::Crash];
    c.max_faults = 1;
    run("n2 k1 One log evidence drain MissingAnnounce|Crash", c, 400);
    let mut c = Config::new(2, 1, Keys::One).freq(&[10], 17);
    c.log_evidence = true;
    c.can_unsubscribe = true;
    c.lazy_apps = true;
    c.faults = vec![FaultKind::MissingAnnounce];
    c.max_faults = 1;
    run(
        "n2 k1 One log evidence lazy-apps freq 10 MissingAnnounce",
        c,
        1_500,
    );
}

/// The world changes while a stats read is in flight (vassal and Emperor
/// events between the two reads of a tick), with one fault per run: a read
/// that fails, is unparseable or slow, a crash, someone else's touch, a
/// missing announce. n = 2 with K = 1 and K = 0, and n = 2 under two keys.
#[test]
fn explore_faults_while_the_world_changes_during_reads() {
    for (n, k, keys) in [(2, 1, Keys::One), (2, 0, Keys::One), (2, 1, Keys::Both)] {
        let mut c = Config::new(n, k, keys);
        c.events_between_reads = true;
        c.faults = vec![
            FaultKind::ReadFail,
            FaultKind::InvalidSnapshot,
            FaultKind::SlowRead,
            FaultKind::Crash,
            FaultKind::MissingAnnounce,
            FaultKind::TouchError,
            FaultKind::Overflow,
        ];
        c.max_faults = 1;
        run(
            &format!("n{n} k{k} {keys:?} between-reads one fault"),
            c,
            600,
        );
    }
}

/// Someone else's touch while reads are in flight. The foreign reload
/// unsubscribes app_02 (unsubscribe-on-graceful-reload); an Emperor read
/// shows app_02 accepting again before any fastrouter read after its
/// reload. Its node in the older fastrouter read was announced by the
/// previous generation: counting it as live touched app_01 and left the key
/// with 0 live, K = 1. A node counts only when announced at or after its
/// vassal's generation began (`Engine::generation_start_on_router`).
#[test]
fn explore_foreign_touch_while_the_world_changes_during_reads() {
    let mut c = Config::new(2, 1, Keys::One);
    c.events_between_reads = true;
    c.faults = vec![FaultKind::ForeignTouch];
    c.max_faults = 1;
    run("n2 k1 One between-reads ForeignTouch", c, 600);
}

/// Small fleets, two faults per run.
#[test]
fn explore_two_faults() {
    for (n, k, keys) in [(1, 0, Keys::One), (2, 1, Keys::One), (2, 0, Keys::One)] {
        let mut c = Config::new(n, k, keys);
        c.faults = vec![
            FaultKind::Crash,
            FaultKind::CrashLoop,
            FaultKind::ForeignTouch,
            FaultKind::FastrouterRestart,
            FaultKind::ReadFail,
            FaultKind::MissingAnnounce,
        ];
        c.max_faults = 2;
        run(&format!("n{n} k{k} {keys:?} two faults"), c, 600);
    }
}

/// The faults that take vassals out, for the runs with two faults.
const OUT_FAULTS: [FaultKind; 7] = [
    FaultKind::Crash,
    FaultKind::CrashLoop,
    FaultKind::ForeignTouch,
    FaultKind::ConfigRemoved,
    FaultKind::FastrouterRestart,
    FaultKind::MissingAnnounce,
    FaultKind::TouchError,
];

/// The large exploration of tests/run.sh: up to 3 vassals with every fault
/// kind (one per run), 2 vassals under two keys with two faults per run,
/// 4 vassals fault-free, and the operators' timings with a fault. Prints its
/// time (budget: 3 minutes in release on 2 cores).
#[test]
fn explore_large() {
    let t = std::time::Instant::now();
    for (label, mut cfg) in base_configs(3) {
        // The two largest (K = 0 with split or both keys: 20 s each) are in
        // the ignored exploration.
        if cfg.n == 3 && cfg.k == 0 && cfg.keys != Keys::One {
            continue;
        }
        cfg.faults = FaultKind::ALL.to_vec();
        cfg.max_faults = 1;
        run(&format!("{label} all faults"), cfg, 800);
    }
    for keys in [Keys::Split, Keys::Both] {
        let mut c = Config::new(2, 1, keys);
        c.faults = OUT_FAULTS.to_vec();
        c.max_faults = 2;
        run(&format!("n2 k1 {keys:?} two faults"), c, 800);
    }
    for (label, cfg) in base_configs(4).into_iter().filter(|(_, c)| c.n == 4) {
        run(&label, cfg, 800);
    }
    for (label, cfg) in [
        (
            "n3 k1 One freq 25 tolerance 60",
            Config::new(3, 1, Keys::One).freq(&[25], 60),
        ),
        (
            "n2 k1 One import 15-30 s",
            Config::new(2, 1, Keys::One).slow_start(15, 30),
        ),
    ] {
        let mut c = cfg;
        c.faults = vec![
            FaultKind::Crash,
            FaultKind::FastrouterRestart,
            FaultKind::ForeignTouch,
        ];
        c.max_faults = 1;
        run(
            &format!("{label} crash|fastrouter restart|foreign touch"),
            c,
            1_500,
        );
    }
    eprintln!("explore_large: {:?} in all", t.elapsed());
}

/// Much larger, in release mode: up to 2 vassals with two faults per run;
/// up to 3 vassals with every fault kind (drain with busy nodes; no
/// unsubscribe-on-graceful-reload with half-second ticks, events between
/// reads and slower reloads); 4 vassals with drain and with a few faults.
/// Most of an hour on 2 cores (4 vassals, K 0, two keys, drain: 10 min):
/// `cargo test --release --test explore -- --ignored`.
#[test]
#[ignore]
fn explore_large_up_to_3_vassals_every_fault() {
    for (label, mut cfg) in base_configs(2) {
        cfg.faults = OUT_FAULTS.to_vec();
        cfg.max_faults = 2;
        run(&format!("{label} two faults"), cfg, 800);
    }
    for (label, mut cfg) in base_configs(3) {
        cfg.faults = FaultKind::ALL.to_vec();
        cfg.max_faults = 1;
        if cfg.n == 3 && cfg.k == 0 && cfg.keys != Keys::One {
            run(&format!("{label} all faults"), cfg.clone(), 800);
        }
        cfg.drain = true;
        cfg.busy = true;
        run(&format!("{label} all faults drain busy"), cfg.clone(), 800);
        cfg.drain = false;
        cfg.busy = false;
        cfg.uogr = false;
        cfg.tick_ms = 500;
        cfg.events_between_reads = cfg.n <= 2;
        cfg.accept_within_ms = 2_000;
        run(&format!("{label} all faults no-uogr 500ms"), cfg, 1_000);
    }
}

/// The bounded share of the two explorations below that tests/run.sh runs
/// (budget: about 7 minutes in release on 2 busy cores; measured 12 min
/// with K = 0 under two keys, now left out): up to 2 vassals with two faults
/// per run (K = 0 with one key only); 3 vassals, K = 1, one key, every fault kind with
/// drain and busy nodes, and without unsubscribe-on-graceful-reload at
/// half-second ticks; 4 vassals, K = 2, one key, drain and busy nodes.
/// The full ones (most of an hour) are documented in tests/README.md.
#[test]
#[ignore]
fn explore_large_bounded() {
    let t = std::time::Instant::now();
    // K = 0 under two keys (about 2.5 min each) is left to the full run
    for (label, mut cfg) in base_configs(2)
        .into_iter()
        .filter(|(_, c)| c.k > 0 || c.keys == Keys::One)
    {
        cfg.faults = OUT_FAULTS.to_vec();
        cfg.max_faults = 2;
        run(&format!("{label} two faults"), cfg, 800);
    }
    let mut cfg = Config::new(3, 1, Keys::One);
    cfg.faults = FaultKind::ALL.to_vec();
    cfg.max_faults = 1;
    cfg.drain = true;
    cfg.busy = true;
    run("n3 k1 One all faults drain busy", cfg.clone(), 800);
    cfg.drain = false;
    cfg.busy = false;
    cfg.uogr = false;
    cfg.tick_ms = 500;
    cfg.accept_within_ms = 2_000;
    run("n3 k1 One all faults no-uogr 500ms", cfg, 1_000);
    let mut cfg = Config::new(4, 2, Keys::One);
    cfg.drain = true;
    cfg.busy = true;
    run("n4 k2 One drain busy", cfg, 800);
    eprintln!("explore_large_bounded: {:?} in all", t.elapsed());
}

#[test]
#[ignore]
fn explore_large_4_vassals() {
    for (label, mut cfg) in base_configs(4).into_iter().filter(|(_, c)| c.n == 4) {
        cfg.drain = true;
        cfg.busy = true;
        run(&format!("{label} drain busy"), cfg.clone(), 800);
        cfg.drain = false;
        cfg.busy = false;
        if cfg.k >= 2 {
            cfg.faults = vec![
                FaultKind::Crash,
                FaultKind::ForeignTouch,
                FaultKind::ReadFail,
            ];
            cfg.max_faults = 1;
            run(&format!("{label} crash|foreign touch|read fail"), cfg, 800);
        }
    }
}
