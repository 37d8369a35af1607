//! Engine micro-benchmark: what one Emperor snapshot plus one fastrouter
//! snapshot cost inside the sans-IO engine for a large fleet (parsing not
//! included: see `parse_bench`).
//!
//!     cargo run --release --example engine_bench            # 1,000 vassals
//!     cargo run --release --example engine_bench -- 5000    # any count
//!
//! One key, one node per vassal, node names from the configs
//! (`NodeMatch::Names`, as the tool builds it). Three rollout states:
//! - `draining`: K = 1, every vassal but one draining (a session in flight
//!   on each, so the drains never end);
//! - `touched`: the same without drain, every vassal but one touched and
//!   waiting for the Emperor;
//! - `10 in flight`: `--max-parallel 10`, ten draining, the rest idle and
//!   looked at by the scheduler on every snapshot.
//!
//! Each timed call is `Engine::handle` of one Emperor then one fastrouter
//! snapshot (inputs cloned before the clock starts), its actions drained;
//! median and best of batches over about a second, in this thread's CPU
//! time (the machine may be shared).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use uwsgi_reload::engine::{ConfigFile, Engine, Input, NodeMatch, Now, Settings};
use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot, Node, Subscription, VassalStats};

const T0: i64 = 1_796_011_739;
const KEY: &str = "app.example.com";

fn name(i: usize) -> String {
    format!("app_{i:04}.ini")
}

fn sock(i: usize) -> String {
    format!("/srv/uwsgi/app_{i:04}.sock")
}

fn emperor(n: usize) -> EmperorSnapshot {
    EmperorSnapshot {
        pid: 1,
        vassals: (0..n)
            .map(|i| VassalStats {
                id: name(i),
                pid: 20_000 + i as i64,
                last_mod: T0 - 3600,
                accepting: 1,
                last_accepting: T0 - 3600,
                first_run: T0 - 3600,
                last_run: T0 - 3600,
                respawns: 3,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Every node fresh; with `busy`, each one death-marked with a session in
/// flight (what a never-ending drain looks like).
fn fastrouter(n: usize, busy: bool) -> FastrouterSnapshot {
    FastrouterSnapshot {
        pid: 7,
        subscriptions: vec![Subscription {
            key: KEY.into(),
            nodes: (0..n)
                .map(|i| Node {
                    name: sock(i),
                    last_check: T0,
                    death_mark: busy as i64,
                    refs: busy as i64,
                    ..Default::default()
                })
                .collect(),
        }],
        ..Default::default()
    }
}

fn now(ms: u64) -> Now {
    Now {
        mono_ms: 1_000_000 + ms,
        wall_s: T0 + (ms / 1000) as i64,
    }
}

/// An engine past preflight in the given state, and the snapshots that
/// keep it there.
fn setup(n: usize, drain: bool, max_parallel: usize) -> (Engine, Input, Input) {
    let names: BTreeMap<String, Vec<String>> = (0..n).map(|i| (name(i), vec![sock(i)])).collect();
    let s = Settings {
        min_live: 1,
        node_match: NodeMatch::Names(names),
        can_unsubscribe: drain,
        drain_timeout_ms: drain.then_some(3_600_000),
        timeout_ms: 3_600_000,
        notice_window_ms: 3_600_000,
        stats_outage_ms: 3_600_000,
        max_parallel,
        ..Settings::default()
    };
    let configs = (0..n)
        .map(|i| ConfigFile {
            name: name(i),
            mtime: T0 - 3600,
        })
        .collect();
    let mut e = Engine::new(s, configs, now(0));
    e.handle(now(0), Input::Emperor(emperor(n)));
    e.handle(now(0), Input::Fastrouter(fastrouter(n, false)));
    while e.poll_event().is_some() {}
    while e.poll_action().is_some() {}
    let emp = Input::Emperor(emperor(n));
    let fr = Input::Fastrouter(fastrouter(n, drain));
    (e, emp, fr)
}

/// This thread's CPU time: on a shared machine, wall time also counts the
/// time other processes held the core.
fn cpu_time() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("CLOCK_THREAD_CPUTIME_ID");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

fn measure(n: usize, drain: bool, max_parallel: usize) -> (Duration, Duration, usize) {
    let (mut e, emp, fr) = setup(n, drain, max_parallel);
    let in_flight = e.vassals().iter().filter(|v| v.phase.in_flight()).count();
    let batch = 10;
    let mut per_call = Vec::new();
    let start = Instant::now();
    let mut t = 1;
    while start.elapsed() < Duration::from_secs(1) || per_call.len() < 5 {
        let inputs: Vec<(Input, Input)> = (0..batch).map(|_| (emp.clone(), fr.clone())).collect();
        let c = cpu_time();
        for (a, b) in inputs {
            e.handle(now(t), a);
            e.handle(now(t), b);
            while e.poll_event().is_some() {}
            while e.poll_action().is_some() {}
            t += 1;
        }
        per_call.push((cpu_time() - c) / batch);
    }
    assert!(!e.is_finished(), "the rollout ended: nothing measured");
    per_call.sort();
    (per_call[per_call.len() / 2], per_call[0], in_flight)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("usage: engine_bench [VASSALS]"))
        .unwrap_or(1000);
    println!("engine, one Emperor + one fastrouter snapshot, {n} vassals; release build");
    println!(
        "{:<14} {:>9} {:>12} {:>12}",
        "state", "in flight", "median", "best"
    );
    for (label, drain, par) in [
        ("draining", true, usize::MAX),
        ("touched", false, usize::MAX),
        ("10 in flight", true, 10),
    ] {
        let (median, best, in_flight) = measure(n, drain, par);
        println!(
            "{label:<14} {in_flight:>9} {:>9.3} ms {:>9.3} ms",
            median.as_secs_f64() * 1e3,
            best.as_secs_f64() * 1e3
        );
    }
}
