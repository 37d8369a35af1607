//! How long a drain waits before the touch (docs/UWSGI.md §19):
//! until the drained node is out of rotation and holds no more sessions
//! than its vassal's workers serve (and its graceful reload finishes),
//! driving the sans-IO engine with literal snapshots. Each test says what
//! reverting the rule does.

#[path = "support/engine_kit.rs"]
mod engine_kit;
#[path = "support/timed_world.rs"]
mod timed_world;
use timed_world::*;

use std::collections::BTreeMap;

/// The touch time of app_01 when its drained node stays death-marked with
/// `refs_left(ms since the unsubscribe)` sessions, with `kept` sessions
/// allowed by its config, and the sessions its `drained` event reports;
/// `None`: not touched within 10 s.
fn touch_after_drain(kept: Option<usize>, refs_left: impl Fn(u64) -> i64) -> Option<(u64, usize)> {
    let mut s = settings(1);
    if let Some(k) = kept {
        s.drain_sessions_kept = BTreeMap::from([(name(0), k)]);
    }
    let mut e = engine(s, 2);
    let mut drain_sent: Option<u64> = None;
    let (log, reports) = run(&mut e, 10_000, |t, seen| {
        let mut w = World::serving(2);
        for n in w.nodes.iter_mut().flatten() {
            n.last_check = T0 + (t / 1000) as i64;
        }
        if seen.iter().any(|a| matches!(a, Action::Unsubscribe { .. })) {
            let sent = *drain_sent.get_or_insert(t);
            let n = w.nodes[0].as_mut().unwrap();
            n.last_check = T0;
            n.death_mark = 1;
            n.refs = refs_left(t - sent);
        }
        w
    });
    let sent = drain_sent.expect("app_01 drained");
    let left = reports.iter().find_map(|r| match &r.event {
        Event::Drained {
            vassal,
            sessions_left,
            ..
        } if *vassal == name(0) => Some(*sessions_left),
        _ => None,
    });
    log.iter()
        .find(|(_, a)| matches!(a, Action::Touch { vassal, .. } if *vassal == name(0)))
        .map(|(t, _)| (*t - sent, left.expect("a drained event before the touch")))
}

/// One request per worker for 3 s, then 3 in the backlog behind a single
/// worker: the config proves 1 session finished by the reload, so the
/// touch comes when 1 is left (at 4.5 s), not when 0 is (never here).
/// Reverting to `ref == 0` leaves it untouched.
#[test]
fn a_drain_touches_once_the_sessions_left_are_in_workers() {
    let refs = |ms: u64| 4 - (ms / 1500).min(3) as i64;
    let (t, left) = touch_after_drain(Some(1), refs).expect("touched with 1 session left");
    assert!(
        (4_500..4_600).contains(&t),
        "touched {t} ms after the unsubscribe"
    );
    assert_eq!(left, 1, "the drained event reports the session left");
}

/// Without proof from the config (0 sessions kept, or not listed) the
/// drain still waits for the last session: here it never ends.
#[test]
fn without_proof_the_drain_waits_for_every_session() {
    assert_eq!(touch_after_drain(None, |_| 1), None);
    assert_eq!(touch_after_drain(Some(0), |_| 1), None);
    // More sessions than the workers hold: some wait in the backlog.
    assert_eq!(touch_after_drain(Some(2), |_| 3), None);
}

/// A node the fastrouter still routes to (not yet death-marked) is not out
/// of rotation, however few its sessions: no touch until the unsubscribe
/// shows.
#[test]
fn a_node_still_routed_is_not_drained() {
    let mut s = settings(1);
    s.drain_sessions_kept = BTreeMap::from([(name(0), 4)]);
    let mut e = engine(s, 2);
    let (log, _) = run(&mut e, 3_000, |t, _| {
        let mut w = World::serving(2);
        for n in w.nodes.iter_mut().flatten() {
            n.last_check = T0;
        }
        let _ = t;
        w
    });
    assert!(
        log.iter()
            .any(|(_, a)| matches!(a, Action::Unsubscribe { .. })),
        "never drained"
    );
    assert!(
        !log.iter().any(|(_, a)| matches!(a, Action::Touch { .. })),
        "touched a node the fastrouter still routes to"
    );
}

/// A key that falls below K through something else while a drain runs:
/// the drain gives its slot back (`BudgetLost`: its vassal is Idle again
/// in that same tick) and the dip is still the rollout's to report: the
/// summary's `lowest_live` is the 0 the engine saw, not the count before.
/// Counting only while something is in flight after the tick's facts hid
/// it (the summary said 2).
#[test]
fn a_dip_that_ends_a_drain_is_in_lowest_live() {
    let mut s = settings(1);
    s.max_parallel = 1;
    s.timeout_ms = 2_000;
    let mut e = engine(s, 3);
    let (log, reports) = run(&mut e, 20_000, |t, seen| {
        let mut w = World::serving(3);
        for n in w.nodes.iter_mut().flatten() {
            n.last_check = T0 + (t / 1000) as i64;
        }
        if seen.iter().any(|a| matches!(a, Action::Unsubscribe { .. })) {
            // app_01's node is out, with a session left; the other two
            // vanish from the router at the same time.
            let n = w.nodes[0].as_mut().unwrap();
            n.death_mark = 1;
            n.refs = 1;
            w.nodes[1] = None;
            w.nodes[2] = None;
        }
        w
    });
    let lost = reports
        .iter()
        .any(|r| matches!(&r.event, Event::LiveChanged { live: 0, .. }));
    assert!(lost, "the dip was not seen: {reports:?}");
    let outcome = log
        .iter()
        .find_map(|(_, a)| match a {
            Action::Finish(o) => Some(o.clone()),
            _ => None,
        })
        .expect("finished");
    assert_eq!(
        outcome.lowest_live.get(KEY).copied(),
        Some(0),
        "{outcome:?}\n{reports:?}"
    );
}
