//! Liveness from evidence (fsm/AVAILABILITY.md), one rule per test, each
//! driving the sans-IO engine with literal snapshots. Every test fails if
//! its rule is reverted: the comment above each says how.

#[path = "support/engine_kit.rs"]
mod kit;
use kit::*;

/// Subscribe-freq 25 behind a fastrouter that keeps nodes
/// 60 s. Nodes 20-25 s old are serving: with the fixed 17 s tolerance the
/// engine called them down and touched them all at once, outside the budget.
/// Reverting `Settings::tolerance_s` to the fixed 17 s fails this test.
#[test]
fn a_long_subscribe_freq_keeps_old_nodes_live() {
    let n = 8;
    let mut s = settings(6);
    for i in 0..n {
        s.subscribe_freq_s.insert(name(i), 25);
    }
    let mut e = engine(s, n);
    let fleet = Fleet {
        // Every node announced 20-23 s ago.
        vs: (0..n)
            .map(|i| serving(i, T0 - 20 - (i as i64 % 4)))
            .collect(),
        fr_pid: 7,
    };
    let a = look(&mut e, &fleet, 0);
    assert!(outcome(&a).is_none(), "refused: {:?}", outcome(&a));
    let t = started(&a);
    // K = 6 of 8: at most two out at once, all within the budget.
    assert_eq!(t.len(), 2, "{t:?}");
    let plan = events(&a)
        .into_iter()
        .find_map(|ev| match ev {
            Event::Plan { live, .. } => Some(live.clone()),
            _ => None,
        })
        .expect("a plan");
    assert_eq!(plan.get(KEY), Some(&8), "{plan:?}");
}

/// A vassal restarted on its own and still importing its
/// app (not accepting) is never sent a reload, however long that takes;
/// once it accepts and announces it is reloaded like the others. Reverting
/// to the fixed 10 s starting grace touches it at 60 s.
#[test]
fn a_starting_vassal_is_never_touched_whatever_its_age() {
    let n = 3;
    let mut e = engine(settings(1), n);
    let mut fleet = Fleet::serving(n);
    // app_03 restarted 11 s ago (new record, not accepting yet).
    if let Some(r) = fleet.vs[2].rec.as_mut() {
        r.pid = 999;
        r.accepting = 0;
        r.first_run = T0 - 11;
        r.last_run = T0 - 11;
    }
    let mut all = Outputs::default();
    for s in 0..120 {
        // Refresh the serving nodes' announces.
        for v in &mut fleet.vs[..2] {
            v.nodes[0].2 = T0 + s as i64;
        }
        let a = look(&mut e, &fleet, s);
        assert!(
            !touched(&a).contains(&name(2)),
            "app_03 touched at {s} s while starting"
        );
        all.extend(a);
    }
    assert!(events(&all).iter().any(|ev| matches!(
        ev,
        Event::Unavailable { vassal, class: "starting", .. } if *vassal == name(2)
    )));
}

/// A vassal that accepts but whose node is stale is not down on one
/// snapshot: it is waited for, and only a whole announce window of silence
/// proves it out of rotation. Without the window (reloading every vassal
/// with no fresh node at once, the first release's rule) a key whose nodes
/// all vanished would be reloaded in a burst.
#[test]
fn a_fastrouter_restart_is_not_a_burst_of_reloads() {
    let n = 4;
    let mut e = engine(settings(1), n);
    let mut fleet = Fleet::serving(n);
    let a = look(&mut e, &fleet, 0);
    // K = 1 of 4: three start at once (drain is off: touched).
    assert_eq!(touched(&a).len(), 3, "{:?}", touched(&a));
    // The fastrouter restarts: every node is gone at once.
    fleet.fr_pid = 8;
    for v in &mut fleet.vs {
        v.nodes.clear();
    }
    let a = look(&mut e, &fleet, 1);
    assert!(
        events(&a).iter().any(|ev| matches!(
            ev,
            Event::FastrouterRestarted {
                old_pid: 7,
                new_pid: 8,
                ..
            }
        )),
        "{:?}",
        events(&a)
    );
    assert!(touched(&a).is_empty(), "touched at 1 s: {:?}", touched(&a));
    // app_04, still serving on its old generation, lost its node with the
    // rest: it is not touched while it is merely unrouted.
    for s in 2..8 {
        let a = look(&mut e, &fleet, s);
        assert!(
            touched(&a).is_empty(),
            "touched at {s} s: {:?}",
            touched(&a)
        );
    }
}

/// The nodes the rollout takes out itself leave by its own doing: seven of
/// eight drained at once (K = 1), or touched at once (drain off) and gone
/// with their reloads' unsubscribes, are not "most nodes gone in one read",
/// the sign of a fastrouter restart. Counting them reported a restart with
/// the same pid at every wide first wave (the benchmark's N = 8, K = 1), and
/// held every silence judgement from that read on (`fr_back_ms`).
#[test]
fn its_own_drains_and_touches_are_not_a_fastrouter_restart() {
    for drain in [true, false] {
        let n = 8;
        let mut s = settings(1);
        s.drain_timeout_ms = drain.then_some(30_000);
        let mut e = engine(s, n);
        let mut fleet = Fleet::serving(n);
        let a = look(&mut e, &fleet, 0);
        let out = started(&a);
        assert_eq!(out.len(), 7, "drain {drain}: {:?}", events(&a));
        // The router removes each node the moment it is unsubscribed.
        for v in &mut fleet.vs {
            if out.contains(&v.rec.as_ref().unwrap().id) {
                v.nodes.clear();
            }
        }
        let mut all = Outputs::default();
        for s in 1..3 {
            all.extend(look(&mut e, &fleet, s));
        }
        assert!(
            !events(&all)
                .iter()
                .any(|ev| matches!(ev, Event::FastrouterRestarted { .. })),
            "drain {drain}: {:?}",
            events(&all)
        );
        if drain {
            assert_eq!(touched(&all).len(), 7, "{:?}", events(&all));
        }
    }
}

/// K is charged per node: app_01 has two nodes in the key (matched by the
/// credential pid), so touching it takes two out. With K = 3 of 4 nodes it
/// cannot go, and app_02 (one node) can. Charging one per vassal touches
/// app_01 first and leaves 2 live.
#[test]
fn k_is_charged_per_node() {
    let n = 3;
    let mut s = settings(3);
    s.max_parallel = 1;
    let mut e = engine(s, n);
    let mut fleet = Fleet::serving(n);
    fleet.vs[0].nodes = vec![
        (KEY.into(), sock(0, 0), T0, 0, 100),
        (KEY.into(), sock(0, 1), T0, 0, 100),
    ];
    let a = look(&mut e, &fleet, 0);
    assert!(outcome(&a).is_none(), "refused: {:?}", outcome(&a));
    assert_eq!(touched(&a), vec![name(1)]);
}

/// A vassal crash-looping before the rollout (blacklisted,
/// no record) is reloaded once, outside the budget, judged only from what
/// follows its touch, and its failure does not stop the healthy vassals.
/// Counting it as a failure of the release stops the rollout at once.
#[test]
fn a_vassal_failing_before_the_rollout_does_not_stop_it() {
    let n = 4;
    let mut e = engine(settings(1), n);
    let mut fleet = Fleet::serving(n);
    fleet.vs[3].rec = None;
    fleet.vs[3].nodes.clear();
    fleet.vs[3].blacklist = Some(BlacklistEntry {
        id: name(3),
        throttle_level: 5001,
        attempt: 5,
    });
    let a0 = look(&mut e, &fleet, 0);
    // Named at preflight, not yet started: one read is not evidence enough.
    assert!(events(&a0).iter().any(|ev| matches!(
        ev,
        Event::Unavailable { vassal, class: "crash_looping", .. } if *vassal == name(3)
    )));
    assert!(!touched(&a0).contains(&name(3)));
    let mut a = look(&mut e, &fleet, 1);
    assert!(touched(&a).contains(&name(3)), "{:?}", touched(&a));
    a.extend(a0);
    // Its next attempt fails too.
    fleet.vs[3].blacklist.as_mut().unwrap().attempt = 6;
    let mut all = a;
    for s in 2..40 {
        // The healthy ones reload as soon as touched: the Emperor shows the
        // reload, accepting and the announce at once.
        for t in touched(&all) {
            let i = (0..3).find(|i| name(*i) == t);
            let Some(i) = i else { continue };
            if let Some(r) = fleet.vs[i].rec.as_mut() {
                r.last_mod = T0 + s as i64 + 1;
                r.respawns = 1;
                r.last_accepting = T0 + s as i64;
            }
            fleet.vs[i].nodes[0].2 = T0 + s as i64;
        }
        let a = look(&mut e, &fleet, s);
        let done = outcome(&a).cloned();
        all.extend(a);
        for v in &mut fleet.vs[..3] {
            v.nodes[0].2 = T0 + s as i64;
        }
        if let Some(o) = done {
            assert_eq!(o.status, Status::Failed, "{o:?}");
            assert_eq!(o.reloaded.len(), 3, "{o:?}");
            assert_eq!(o.failed.len(), 1, "{o:?}");
            assert_eq!(o.failed[0].0, name(3));
            assert!(o.failed[0].2.contains("already down"), "{o:?}");
            return;
        }
    }
    panic!("no outcome: {:?}", events(&all));
}

/// The node a dead vassal left behind (blacklisted, no record; a unix
/// socket nobody listens on) is unsubscribed at once, and only once per
/// announce. Without the sweep no Unsubscribe is sent.
#[test]
fn a_dead_vassals_node_is_unsubscribed_once() {
    let n = 3;
    let mut e = engine(settings(1), n);
    let mut fleet = Fleet::serving(n);
    fleet.vs[2].rec = None;
    fleet.vs[2].blacklist = Some(BlacklistEntry {
        id: name(2),
        throttle_level: 1,
        attempt: 0,
    });
    let unsubs = |a: &Outputs| -> Vec<String> {
        a.actions
            .iter()
            .filter_map(|a| match a {
                Action::Unsubscribe { node, .. } => Some(node.clone()),
                _ => None,
            })
            .collect()
    };
    let a = look(&mut e, &fleet, 0);
    assert_eq!(unsubs(&a), vec![sock(2, 0)]);
    let a = look(&mut e, &fleet, 1);
    assert!(!unsubs(&a).contains(&sock(2, 0)), "{:?}", unsubs(&a));
}

/// A vassal that accepts but stays out of the fastrouter for a whole
/// announce window is proven out of rotation and reloaded outside the
/// budget; before that it is waited for.
#[test]
fn a_silent_vassal_is_reloaded_after_its_announce_window() {
    let n = 3;
    let mut s = settings(1);
    s.default_subscribe_freq_s = 5;
    let mut e = engine(s, n);
    let mut fleet = Fleet::serving(n);
    fleet.vs[2].nodes.clear();
    // K = 1 of 2 serving: app_01 goes at once; app_03 waits 5 + 3 s.
    for s in 0..8 {
        for v in &mut fleet.vs[..2] {
            v.nodes[0].2 = T0 + s as i64;
        }
        let a = look(&mut e, &fleet, s);
        assert!(outcome(&a).is_none(), "{:?}", outcome(&a));
        assert!(
            !touched(&a).contains(&name(2)),
            "touched at {s} s: {:?}",
            touched(&a)
        );
    }
    let a = look(&mut e, &fleet, 8);
    assert_eq!(touched(&a), vec![name(2)], "{:?}", events(&a));
}

/// Someone else's reload that reached a vassal while it was starting leaves
/// its master stuck mid-reload: it accepts and announces once, then never
/// again (docs/UWSGI.md §12). Followed, such a reload is counted
/// back only after a second announce, and reported wedged without one.
/// Without `Confirming` it is reported reloaded at its first announce.
#[test]
fn a_foreign_reload_that_announces_once_is_reported_wedged() {
    let n = 2;
    let mut e = engine(settings(0), n);
    let mut fleet = Fleet::serving(n);
    // Someone else touches app_01 before the rollout's first look: it is
    // followed, never touched (app_02 is the rollout's own).
    e.handle(
        now(0),
        Input::Config(uwsgi_reload::engine::ConfigEvent::Changed {
            name: name(0),
            mtime: Some(T0 + 1),
        }),
    );
    let mut all = look(&mut e, &fleet, 0);
    // The Emperor sends that reload; the new generation accepts at +2 s and
    // announces once at +2 s, then goes silent.
    if let Some(r) = fleet.vs[0].rec.as_mut() {
        r.last_mod = T0 + 1;
        r.respawns = 1;
        r.accepting = 0;
        r.last_run = T0 + 1;
    }
    fleet.vs[0].nodes.clear();
    all.extend(look(&mut e, &fleet, 1));
    if let Some(r) = fleet.vs[0].rec.as_mut() {
        r.accepting = 1;
        r.last_accepting = T0 + 2;
    }
    fleet.vs[0].nodes = vec![(KEY.into(), sock(0, 0), T0 + 2, 0, 0)];
    for s in 2..40 {
        fleet.vs[1].nodes[0].2 = T0 + s as i64;
        let a = look(&mut e, &fleet, s);
        let done = outcome(&a).cloned();
        all.extend(a);
        if let Some(o) = done {
            assert!(!o.reloaded.contains(&name(0)), "{o:?}");
            let f = o.failed.iter().find(|f| f.0 == name(0));
            assert!(
                f.is_some_and(|f| f.1 == uwsgi_reload::engine::FailReason::Wedged),
                "{o:?}"
            );
            assert!(!touched(&all).contains(&name(0)));
            return;
        }
    }
    panic!("no outcome: {:?}", events(&all));
}

/// `status` shows the engine's own preflight count (one rule, one place):
/// the counts the `Plan` report carries, a stale node not counted, and the
/// counts kept when preflight refuses. Counting anywhere else (the
/// scheduler's count after it started a vassal, or nothing on a refusal)
/// fails this test.
#[test]
fn status_reads_the_schedulers_preflight_count() {
    let n = 4;
    let mut fleet = Fleet::serving(n);
    // app_04's node is an hour old: not live.
    fleet.vs[3].nodes[0].2 = T0 - 3600;
    let mut e = engine(settings(1), n);
    let a = look(&mut e, &fleet, 0);
    assert!(outcome(&a).is_none(), "refused: {:?}", outcome(&a));
    // K = 1 of 3 live: two started; the scheduler's count now leaves
    // them out, the preflight count does not.
    assert_eq!(started(&a).len(), 2, "{:?}", started(&a));
    assert_eq!(e.progress_info().live.get(KEY), Some(&1));
    let plan = events(&a)
        .into_iter()
        .find_map(|ev| match ev {
            Event::Plan { live, .. } => Some(live.clone()),
            _ => None,
        })
        .expect("a plan");
    assert_eq!(plan.get(KEY), Some(&3), "{plan:?}");
    assert_eq!(e.preflight_live(), &plan);
    // K = 4 of 4 nodes cannot be kept: refused, the count still there.
    let mut e = engine(settings(4), n);
    let a = look(&mut e, &fleet, 0);
    assert!(
        matches!(
            outcome(&a).map(|o| &o.status),
            Some(Status::Precondition(_))
        ),
        "{:?}",
        outcome(&a)
    );
    assert_eq!(e.preflight_live().get(KEY), Some(&3));
}
