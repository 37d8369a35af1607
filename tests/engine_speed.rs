//! What waiting costs and how soon a reloaded vassal is back (the speed rules),
//! driving the sans-IO engine with literal snapshots and a driver loop that
//! answers every read at once. Each test says what reverting its rule does.

#[path = "support/engine_kit.rs"]
mod engine_kit;
use engine_kit::{NodeMatch, Outputs};
#[path = "support/timed_world.rs"]
mod timed_world;
use timed_world::*;

/// A drain that never ends (a request in flight for 20 s): the fastrouter
/// is read every 20 ms for the first second only, then less and less often
/// down to the check interval. Reads every 20 ms for the whole wait (the
/// rule before the speed rules) make about 1,000 reads here.
#[test]
fn a_long_wait_backs_off_to_the_check_interval() {
    let mut e = engine(settings(1), 2);
    let (log, _) = run(&mut e, 20_000, |t, seen| {
        let mut w = World::serving(2);
        // Serving vassals keep announcing.
        for n in w.nodes.iter_mut().flatten() {
            n.last_check = T0 + (t / 1000) as i64;
        }
        let draining = seen.iter().any(|a| matches!(a, Action::Unsubscribe { .. }));
        if draining {
            // Death-marked, one session still in flight: not drained.
            let n = w.nodes[0].as_mut().unwrap();
            n.death_mark = 1;
            n.refs = 1;
        }
        w
    });
    assert!(
        log.iter()
            .any(|(_, a)| matches!(a, Action::Unsubscribe { vassal, .. } if *vassal == name(0))),
        "app_01 was not drained"
    );
    let first = fastrouter_reads(&log, 0, 1_000);
    let total = fastrouter_reads(&log, 0, 20_000);
    let last = fastrouter_reads(&log, 10_000, 20_000);
    // The first second: every 20 ms (50), as before.
    assert!(first >= 45, "only {first} reads in the first second");
    // The whole 20 s: the 200 ticks of the check interval, plus the
    // fast reads of the first seconds (50 + 25 + 12).
    assert!(total <= 300, "{total} fastrouter reads in a 20 s wait");
    // Past the back-off, the tick's own reads only.
    assert!(last <= 101, "{last} fastrouter reads in the last 10 s");
}

/// The common case keeps its speed: a drain that ends at 0.5 s is acted on
/// within one fast read (20 ms), not at the next tick.
#[test]
fn a_short_wait_is_still_read_every_20_ms() {
    let mut e = engine(settings(1), 2);
    let mut drain_sent: Option<u64> = None;
    let (log, _) = run(&mut e, 3_000, |t, seen| {
        let mut w = World::serving(2);
        if seen.iter().any(|a| matches!(a, Action::Unsubscribe { .. })) {
            let sent = *drain_sent.get_or_insert(t);
            if t < sent + 500 {
                let n = w.nodes[0].as_mut().unwrap();
                n.death_mark = 1;
                n.refs = 1;
            } else {
                w.nodes[0] = None;
            }
        }
        w
    });
    let sent = drain_sent.expect("drained");
    let touch = log
        .iter()
        .find(|(_, a)| matches!(a, Action::Touch { .. }))
        .map(|(t, _)| *t)
        .expect("touched");
    assert!(
        touch <= sent + 500 + 21,
        "drain over at {} ms, touched at {touch} ms",
        sent + 500
    );
}

/// A world where every touched vassal reloads at once: the Emperor shows
/// the reload and accepting, the fastrouter its new announce.
fn reloading_world(n: usize) -> impl FnMut(u64, &[Action]) -> World {
    let mut w = World::serving(n);
    let mut done = 0;
    move |t, seen| {
        let wall = T0 + (t / 1000) as i64;
        for a in &seen[done..] {
            if let Action::Touch { vassal, mtime } = a {
                let i = (0..n).find(|i| name(*i) == *vassal).expect("a vassal");
                let r = &mut w.recs[i];
                r.last_mod = *mtime;
                r.respawns += 1;
                r.last_accepting = wall;
                w.nodes[i].as_mut().unwrap().last_check = wall;
            }
        }
        done = seen.len();
        for n in w.nodes.iter_mut().flatten() {
            n.last_check = n.last_check.max(wall - 5);
        }
        w.clone()
    }
}

/// 1,000 vassals, K = 500, run to the end through the runtime's loop:
/// every vassal reloaded once, K held. With a lookup that scans every
/// Emperor record per vassal, each snapshot does a million string
/// comparisons; `examples/engine_bench.rs` times it (docs/BENCHMARK.md).
#[test]
fn a_thousand_vassals_roll_out() {
    let n = 1000;
    let names = (0..n).map(|i| (name(i), vec![sock(i)])).collect();
    let s = Settings {
        min_live: n / 2,
        node_match: NodeMatch::Names(names),
        stats_outage_ms: 600_000,
        ..Settings::default()
    };
    let mut e = engine(s, n);
    let (log, _) = run(&mut e, 60_000, reloading_world(n));
    let outcome = log
        .iter()
        .find_map(|(_, a)| match a {
            Action::Finish(o) => Some(o.clone()),
            _ => None,
        })
        .expect("finished within 60 s");
    assert_eq!(outcome.reloaded.len(), n, "{}", outcome.summary);
    assert!(
        outcome.lowest_live.get(KEY).is_some_and(|l| *l >= n / 2),
        "{:?}",
        outcome.lowest_live
    );
    let touches = log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Touch { .. }))
        .count();
    assert_eq!(touches, n);
}

/// Wakes the engine at `t` ms and answers every read it asks for from `w`
/// until it asks for none; returns what it put out.
fn settle(e: &mut Engine, t: u64, w: &World) -> Outputs {
    e.handle_timeout(at(t));
    let mut all = Outputs::default();
    loop {
        let new = Outputs::take(e);
        if new.is_empty() {
            return all;
        }
        for a in &new.actions {
            if let Action::ReadStats(src) = a {
                e.handle(at(t), w.answer(*src));
            }
        }
        all.extend(new);
    }
}

fn subscribes(a: &Outputs) -> Vec<(String, String, String, i64)> {
    a.actions
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe {
                vassal,
                key,
                node,
                modifier1,
            } => Some((vassal.clone(), key.clone(), node.clone(), *modifier1)),
            _ => None,
        })
        .collect()
}

fn subscribed(a: &Outputs) -> Vec<String> {
    a.events
        .iter()
        .filter_map(|r| match &r.event {
            Event::Subscribed { vassal, .. } => Some(vassal.clone()),
            _ => None,
        })
        .collect()
}

/// app_01 drained, touched, reloaded; its new generation accepts at 3 s,
/// and its own announce has not come. Returns the actions of that moment
/// and the world then.
fn reload_until_accepting(e: &mut Engine) -> (Outputs, World) {
    let mut w = World::serving(2);
    w.nodes[0].as_mut().unwrap().modifier1 = 5;
    let a = settle(e, 0, &w);
    assert!(
        a.actions
            .iter()
            .any(|a| matches!(a, Action::Unsubscribe { vassal, .. } if *vassal == name(0))),
        "app_01 not drained"
    );
    // Drained: the node is gone.
    w.nodes[0] = None;
    let a = settle(e, 1_000, &w);
    let mtime = a
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Touch { vassal, mtime } if *vassal == name(0) => Some(*mtime),
            _ => None,
        })
        .expect("app_01 touched");
    // The Emperor sends the reload; the new generation loads.
    w.recs[0].last_mod = mtime;
    w.recs[0].respawns += 1;
    w.recs[0].accepting = 0;
    settle(e, 2_000, &w);
    // Worker 1 of the new generation accepts.
    w.recs[0].accepting = 1;
    w.recs[0].last_accepting = T0 + 3;
    (settle(e, 3_000, &w), w)
}

fn early(names: &[usize]) -> Settings {
    let mut s = settings(1);
    s.early_announce = names.iter().map(|i| name(*i)).collect();
    s
}

/// Early announce: the moment a reloaded vassal's new
/// generation accepts, the tool sends the subscribe for the node it had
/// before its touch (same key, address and modifier1), and the vassal is
/// back as soon as the fastrouter shows it: 3 s, not its next announce up
/// to a subscribe-freq later. Without `Task::Announce` nothing is sent
/// and app_01 is still out at 3 s.
#[test]
fn early_announce_subscribes_the_nodes_it_had_when_it_accepts() {
    let mut e = engine(early(&[0]), 2);
    let (a, mut w) = reload_until_accepting(&mut e);
    assert_eq!(
        subscribes(&a),
        vec![(name(0), KEY.to_string(), sock(0), 5)],
        "{a:?}"
    );
    assert!(
        subscribed(&a).is_empty(),
        "back before the fastrouter shows it"
    );
    // The fastrouter shows the node the subscribe created.
    w.nodes[0] = Some(Node {
        name: sock(0),
        last_check: T0 + 3,
        modifier1: 5,
        ..Default::default()
    });
    let a = settle(&mut e, 3_020, &w);
    assert_eq!(subscribed(&a), vec![name(0)], "{a:?}");
    // ... and app_02 goes next, at once.
    assert!(
        a.actions
            .iter()
            .any(|a| matches!(a, Action::Unsubscribe { vassal, .. } if *vassal == name(1))),
        "{a:?}"
    );
}

/// Early announce only where it is on for that vassal (its config proves
/// it subscribes at that moment, or `--early-announce`) and never with
/// `--probe`: otherwise the vassal's own announce is waited for.
#[test]
fn no_early_announce_where_it_is_off_or_with_a_probe() {
    let mut probe = early(&[0]);
    probe.probe_path = Some("/health".into());
    for (why, s) in [("off", early(&[1])), ("--probe", probe)] {
        let mut e = engine(s, 2);
        let (a, _) = reload_until_accepting(&mut e);
        assert!(
            a.events.iter().any(|r| matches!(&r.event,
                Event::Accepting { vassal } if *vassal == name(0))),
            "{why}: not accepting: {a:?}"
        );
        assert!(subscribes(&a).is_empty(), "{why}: {:?}", subscribes(&a));
    }
}
