//! Evidence, not inference: nothing the tool did itself, no router read
//! that failed or came before the question, and no wall clock it read
//! decides a vassal's state (docs/UWSGI.md §9.6.2, §9.8). Each test fails
//! without its rule.

#[path = "support/engine_kit.rs"]
mod engine_kit;
use engine_kit::*;
use uwsgi_reload::engine::FailReason;
use uwsgi_reload::stats::StatsSource;

const B_KEY: &str = "b.example.com";

fn fleet(n: usize) -> Fleet {
    Fleet {
        vs: (0..n).map(|i| serving(i, T0 - 1)).collect(),
        fr_pid: 7,
    }
}

/// Vassal `i` reloaded (the touch at T0 set mtime T0), its old node gone
/// (`unsubscribe-on-graceful-reload`), accepting from second `accepting_s`
/// if given.
fn reloaded(f: &mut Fleet, i: usize, accepting_s: Option<i64>) {
    let r = f.vs[i].rec.as_mut().unwrap();
    r.last_mod = T0;
    r.respawns = 1;
    r.accepting = i64::from(accepting_s.is_some());
    r.last_accepting = accepting_s.unwrap_or(T0 - 3600);
    f.vs[i].nodes.clear();
}

fn back(out: &Outputs, i: usize) -> bool {
    events(out)
        .iter()
        .any(|ev| matches!(ev, Event::Subscribed { vassal, .. } if *vassal == name(i)))
}

/// One check interval at second `s` with the fastrouter's stats socket
/// failing (stopped, restarting).
fn look_router_down(e: &mut Engine, f: &Fleet, s: u64) -> Outputs {
    e.handle_timeout(now(s));
    e.handle(now(s), f.emperor());
    e.handle(
        now(s),
        Input::ReadFailed {
            source: StatsSource::Fastrouter,
            error: "connect: No such file or directory".into(),
        },
    );
    Outputs::take(e)
}

/// The vassals whose config blocks subscriptions at start: the only ones
/// `S` may be written to.
fn hook_settings(k: usize) -> Settings {
    let mut s = settings(k);
    s.repairable = [name(0), name(1)].into_iter().collect();
    s
}

/// The tool's early announce keeps the node routable, but the router shows
/// it as the tool's (`cores` 0): the vassal is not back, and does not count
/// toward K, until its own announce refreshes the node.
#[test]
fn the_tools_own_announce_is_traffic_not_evidence() {
    let mut s = settings(1);
    s.early_announce = [name(0), name(1)].into_iter().collect();
    let mut e = engine(s, 2);
    let mut f = fleet(2);
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    reloaded(&mut f, 0, Some(T0 + 1));
    let out = look(&mut e, &f, 1);
    assert_eq!(subscribes(&out), [sock(0, 0)], "the early announce is sent");
    f.vs[0].nodes = serving(0, T0 + 1).nodes;
    f.vs[0].by_tool = vec![sock(0, 0)];
    for s in 2..6 {
        let out = look(&mut e, &f, s);
        assert!(
            !back(&out, 0),
            "the tool's own packet counted as its return"
        );
        // K = 1 holds only on app_02 while app_01 has only the tool's node.
        assert!(touched(&out).is_empty(), "touched app_02 at {s} s");
    }
    f.vs[0].by_tool.clear();
    f.vs[0].nodes = serving(0, T0 + 6).nodes;
    let out = look(&mut e, &f, 6);
    assert!(back(&out, 0), "its own announce did not count");
}

/// A release that moves a vassal to another key: its new generation
/// announces under key B only. It fails naming the move, the old key keeps
/// its last vassal (K), and the run ends non-zero.
#[test]
fn a_vassal_moved_to_another_key_fails_naming_the_move() {
    let mut e = engine(settings(1), 2);
    let mut f = fleet(2);
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    reloaded(&mut f, 0, Some(T0 + 1));
    look(&mut e, &f, 1);
    f.vs[0].nodes = vec![(B_KEY.into(), sock(0, 0), T0 + 2, 0, 0)];
    let mut all = Outputs::default();
    for s in 2..80 {
        all.extend(look(&mut e, &f, s));
        if outcome(&all).is_some() {
            break;
        }
    }
    let failed = events(&all).into_iter().find_map(|ev| match ev {
        Event::Failed {
            vassal,
            reason: FailReason::KeyMoved,
            detail,
        } if *vassal == name(0) => Some(detail.clone()),
        _ => None,
    });
    let detail = failed.expect("a key_moved failure");
    assert!(
        detail.contains(&format!("moved from key {KEY} to key {B_KEY}")),
        "{detail}"
    );
    assert!(!back(&all, 0), "counted back under a key it left");
    assert!(
        touched(&all).is_empty(),
        "the old key's last vassal touched"
    );
    let o = outcome(&all).expect("the run ends");
    assert_eq!(o.status, Status::Failed);
}

/// A router that is down shows no node for anyone: no `S` while its reads
/// fail, nor within an announce window of its return (its nodes come back
/// at each vassal's next announce). `S` toggles: to a vassal whose hook's
/// `S` arrived it would block it for good.
#[test]
fn no_repair_while_the_router_is_down_or_just_back() {
    let mut e = engine(hook_settings(1), 2);
    let mut f = fleet(2);
    look(&mut e, &f, 0);
    reloaded(&mut f, 0, Some(T0 + 1));
    look(&mut e, &f, 1);
    for s in 2..25 {
        let out = look_router_down(&mut e, &f, s);
        assert_eq!(
            repairs(&out).len(),
            0,
            "S written with the router down, at {s} s"
        );
    }
    // Back with app_02's node only (app_01 announces at its next tick).
    let mut first = None;
    for s in 25..60 {
        if !repairs(&look(&mut e, &f, s)).is_empty() {
            first = Some(s);
            break;
        }
    }
    // The window (subscribe-freq 10 s + slack) counts from the router's
    // return at 25 s, not from the accept at 1 s.
    let s = first.expect("repaired once silent for a whole window after the router came back");
    assert!(
        s >= 25 + 10,
        "S written {s} s in, too soon after the router came back"
    );
}

/// Its own log showed `subscriptions re-enabled`: the hook's `S` arrived,
/// and silence after that is a lost announce or a router problem, never a
/// reason for `S`.
#[test]
fn no_repair_after_its_log_showed_subscriptions_on() {
    let mut e = engine(hook_settings(1), 2);
    let mut f = fleet(2);
    look(&mut e, &f, 0);
    reloaded(&mut f, 0, Some(T0 + 1));
    look(&mut e, &f, 1);
    e.handle(now(1), Input::SubscriptionsOn { vassal: name(0) });
    let _ = Outputs::take(&mut e);
    for s in 2..50 {
        assert_eq!(repairs(&look(&mut e, &f, s)).len(), 0, "S written at {s} s");
    }
}

/// `S` goes only to a vassal whose config blocks subscriptions at start
/// (`start-unsubscribed`): to any other, `S` blocks it.
#[test]
fn no_repair_for_a_vassal_that_does_not_start_blocked() {
    let mut s = settings(1);
    s.repair = true;
    let mut e = engine(s, 2);
    let mut f = fleet(2);
    look(&mut e, &f, 0);
    reloaded(&mut f, 0, Some(T0 + 1));
    for s in 1..70 {
        assert_eq!(repairs(&look(&mut e, &f, s)).len(), 0, "S written at {s} s");
    }
}

/// The log shows the repair's `S` blocked the vassal (its hook's `S` had
/// arrived after all): the tool writes `S` once more to undo it, warns, and
/// never repairs it again.
#[test]
fn a_repair_the_log_shows_blocking_is_undone_once() {
    let mut e = engine(hook_settings(1), 2);
    let mut f = fleet(2);
    look(&mut e, &f, 0);
    reloaded(&mut f, 0, Some(T0 + 1));
    look(&mut e, &f, 1);
    e.handle(
        now(1),
        Input::HookLost {
            vassal: name(0),
            line: "open(\"/run/app_01.fifo\"): No such device or address".into(),
        },
    );
    assert_eq!(repairs(&Outputs::take(&mut e)).len(), 1);
    e.handle(
        now(1),
        Input::Repaired {
            vassal: name(0),
            result: Ok("/run/app_01.fifo".into()),
        },
    );
    let _ = Outputs::take(&mut e);
    e.handle(now(2), Input::SubscriptionsBlocked { vassal: name(0) });
    let out = Outputs::take(&mut e);
    assert_eq!(repairs(&out).len(), 1, "the tool's S was not undone");
    assert!(events(&out).iter().any(|ev| matches!(ev,
        Event::Warning { vassal: Some(v), message } if *v == name(0) && message.contains("undo"))));
    e.handle(
        now(2),
        Input::Repaired {
            vassal: name(0),
            result: Ok("/run/app_01.fifo".into()),
        },
    );
    let mut out = Outputs::take(&mut e);
    for s in 3..40 {
        out.extend(look(&mut e, &f, s));
    }
    assert_eq!(repairs(&out).len(), 0, "repaired again after the undo");
    // Its own announce then brings it back.
    f.vs[0].nodes = serving(0, T0 + 40).nodes;
    assert!(back(&look(&mut e, &f, 40), 0));
}

/// The Emperor clears `accepting` when it sends the reload: `accepting == 1`
/// after the reload was seen is the new generation's, whatever the clocks
/// say. A wall clock stepped back a few seconds mid-reload must not fail a
/// healthy vassal as `never_accepted`.
#[test]
fn accepting_is_seen_with_the_clock_stepped_back() {
    let mut e = engine(settings(1), 2);
    let mut f = fleet(2);
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    // The reload is seen; then the clock steps back 3 s and worker 1
    // accepts at what the clock now says.
    reloaded(&mut f, 0, None);
    look(&mut e, &f, 1);
    reloaded(&mut f, 0, Some(T0 - 2));
    let stepped = |s: u64| Now {
        mono_ms: now(s).mono_ms,
        wall_s: now(s).wall_s - 3,
    };
    e.handle_timeout(stepped(2));
    e.handle(stepped(2), f.emperor());
    e.handle(stepped(2), f.fastrouter());
    let out = Outputs::take(&mut e);
    assert!(
        events(&out)
            .iter()
            .any(|ev| matches!(ev, Event::Accepting { vassal } if *vassal == name(0))),
        "{:?}",
        events(&out)
    );
}

/// The Emperor's stats socket failing after the touch is not evidence that
/// the Emperor missed the touch: `not_noticed` needs a read that answered
/// after the notice window.
#[test]
fn a_deadline_waits_for_a_read_that_answers_after_it() {
    let mut e = engine(settings(1), 2);
    let f = fleet(2);
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    let mut all = Outputs::default();
    for s in 1..20 {
        e.handle_timeout(now(s));
        e.handle(
            now(s),
            Input::ReadFailed {
                source: StatsSource::Emperor,
                error: "timed out".into(),
            },
        );
        e.handle(now(s), f.fastrouter());
        all.extend(Outputs::take(&mut e));
    }
    assert!(
        !events(&all)
            .iter()
            .any(|ev| matches!(ev, Event::Failed { .. })),
        "failed on a silent socket: {:?}",
        events(&all)
    );
    // The Emperor answers: the reload is seen, nothing failed.
    let mut f = f;
    reloaded(&mut f, 0, None);
    let out = look(&mut e, &f, 20);
    assert!(events(&out)
        .iter()
        .any(|ev| matches!(ev, Event::ReloadSeen { .. })));
}

/// `--max-unavailable` is a share of the nodes that serve: a node of a
/// vassal that is still starting (listed, long silent) does not widen it.
#[test]
fn max_unavailable_counts_live_nodes_only() {
    use uwsgi_reload::engine::Unavailable;
    let mut s = settings(1);
    s.max_unavailable = Some(Unavailable::Percent(50));
    let mut e = engine(s, 3);
    let mut f = fleet(3);
    // app_03 is starting (not accepting) with its old node lingering: 3
    // listed, 2 live. 50 % of 3 (1) would make K = 2 and let none go;
    // 50 % of the 2 live lets one go.
    let r = f.vs[2].rec.as_mut().unwrap();
    r.accepting = 0;
    f.vs[2].nodes[0].2 = T0 - 600;
    let out = look(&mut e, &f, 0);
    assert_eq!(started(&out), [name(0)], "{:?}", events(&out));
}

/// K + 1 counts the nodes that can serve: a stale node of another host
/// lingering in the stats (`death_mark 0`, long silent) is no slot, and a
/// key with one vassal of ours beside it is refused, not stalled.
#[test]
fn a_stale_node_of_another_host_is_not_a_slot() {
    let mut e = engine(settings(1), 1);
    let mut f = fleet(1);
    f.vs[0]
        .nodes
        .push((KEY.into(), "/other/host_a.sock".into(), T0 - 600, 0, 0));
    let out = look(&mut e, &f, 0);
    let o = outcome(&out).expect("refused at preflight");
    assert!(
        matches!(&o.status, Status::Precondition(p) if p.contains("has 1 node(s)")),
        "{:?}",
        o.status
    );
}

/// Silence is judged on a fastrouter read requested after the announce was
/// due: a snapshot from before (the router's answer is slow or lost) is no
/// evidence of it.
#[test]
fn no_repair_on_a_router_snapshot_older_than_the_question() {
    let mut e = engine(hook_settings(1), 2);
    let mut f = fleet(2);
    look(&mut e, &f, 0);
    reloaded(&mut f, 0, Some(T0 + 1));
    look(&mut e, &f, 1);
    // The fastrouter's reads stop answering (in flight, never answered);
    // the Emperor's go on.
    for s in 2..40 {
        e.handle_timeout(now(s));
        e.handle(now(s), f.emperor());
        assert_eq!(
            repairs(&Outputs::take(&mut e)).len(),
            0,
            "S on an old snapshot at {s} s"
        );
    }
    // The answer to the read requested at 2 s: still from before.
    e.handle(now(40), f.fastrouter());
    assert_eq!(
        repairs(&Outputs::take(&mut e)).len(),
        0,
        "S on a read requested before it was due"
    );
    // A read requested now shows the silence.
    assert_eq!(
        repairs(&look(&mut e, &f, 41)).len(),
        1,
        "a fresh read of the silence"
    );
}

/// The tool's packet may reach the router after the vassal's own announce
/// (the early announce races it): the node then shows the tool's refresh,
/// but the vassal's own word, seen just before, still stands. Without it
/// the reloaded vassal would look stale and block the next touch.
#[test]
fn the_tools_late_packet_does_not_hide_the_vassals_own_announce() {
    let mut e = engine(settings(1), 2);
    let mut f = fleet(2);
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    reloaded(&mut f, 0, Some(T0 + 1));
    look(&mut e, &f, 1);
    f.vs[0].nodes = serving(0, T0 + 2).nodes;
    let out = look(&mut e, &f, 2);
    assert!(back(&out, 0));
    assert_eq!(
        touched(&out),
        [name(1)],
        "app_01 counted live on its own announce"
    );
    // The tool's packet refreshes app_01's node after that; app_02 reloads.
    f.vs[0].nodes = serving(0, T0 + 3).nodes;
    f.vs[0].by_tool = vec![sock(0, 0)];
    reloaded(&mut f, 1, Some(T0 + 3));
    let out = look(&mut e, &f, 3);
    let lowest_live_zero = events(&out)
        .iter()
        .any(|ev| matches!(ev, Event::LiveChanged { live: 0, .. }));
    assert!(
        !lowest_live_zero,
        "app_01's own announce forgotten: {:?}",
        events(&out)
    );
}

/// A node listed alive (`death_mark 0`) but older than the tool's guess of
/// the tolerance (its `subscribe-freq` may come from the Emperor's
/// `vassal-set`, which the file does not show): without the fastrouter's
/// real tolerance its age alone never makes the vassal "silent", so it is
/// never reloaded outside the K budget. It is waited for.
#[test]
fn an_old_but_listed_node_is_never_silent_from_its_age_alone() {
    // The tool could not read app_03's master's command line.
    let mut s = settings(2);
    s.freq_uncertain = [name(2)].into_iter().collect();
    let mut e = engine(s, 3);
    let mut f = fleet(3);
    f.vs[2].nodes[0].2 = T0 - 40;
    let mut all = Outputs::default();
    for s in 0..40 {
        all.extend(look(&mut e, &f, s));
    }
    assert!(
        !started(&all).contains(&name(2)),
        "reloaded outside the budget: {:?}",
        events(&all)
    );
    // With the fastrouter's tolerance known, that age is proof.
    let mut s = settings(2);
    s.freq_uncertain = [name(2)].into_iter().collect();
    s.node_tolerance_known = true;
    let mut e = engine(s, 3);
    let mut all = Outputs::default();
    for s in 0..40 {
        all.extend(look(&mut e, &f, s));
    }
    assert!(started(&all).contains(&name(2)), "{:?}", events(&all));
}

/// A fastrouter on another host whose clock is 30 s behind ours: node ages
/// are counted on its clock (learnt from its own announces between two
/// reads), so its freshly announced nodes are live and the rollout goes on.
/// On our wall clock every node would look 30 s old: nothing live, nothing
/// ever touched.
#[test]
fn node_ages_are_counted_on_the_routers_clock() {
    let mut e = engine(settings(1), 2);
    let mut f = fleet(2);
    let behind = 30;
    let mut all = Outputs::default();
    let mut touched_at = None;
    for s in 0..12u64 {
        // Each vassal announces every second on the router's clock.
        for v in &mut f.vs {
            for n in &mut v.nodes {
                n.2 = T0 + s as i64 - behind;
            }
        }
        let out = look(&mut e, &f, s);
        let first_touch = out.actions.iter().find_map(|a| match a {
            Action::Touch { vassal, mtime } if *vassal == name(0) => Some(*mtime),
            _ => None,
        });
        if let Some(mtime) = first_touch {
            // The Emperor reloads it at once; its node is gone until its
            // new generation announces, at the next second.
            touched_at = Some(s);
            let r = f.vs[0].rec.as_mut().unwrap();
            r.last_mod = mtime;
            r.respawns = 1;
            r.accepting = 1;
            r.last_accepting = T0 + s as i64;
            f.vs[0].nodes.clear();
        } else if touched_at.is_some() && f.vs[0].nodes.is_empty() {
            f.vs[0].nodes = serving(0, T0 + s as i64 - behind).nodes;
        }
        all.extend(out);
    }
    assert_eq!(touched(&all), [name(0), name(1)], "{:?}", events(&all));
    assert!(back(&all, 0), "{:?}", events(&all));
    assert!(
        !events(&all)
            .iter()
            .any(|ev| matches!(ev, Event::LiveChanged { live: 0, .. })),
        "{:?}",
        events(&all)
    );
}

/// `exit-on-reload`: the master exits on the reload and the Emperor starts
/// the next generation as a new process. The new pid (after a moment with
/// no record) is that reload, followed to its own announce, not a death.
#[test]
fn an_exit_on_reload_vassal_comes_back_as_a_new_process() {
    let mut s = settings(1);
    s.exit_on_reload = [name(0), name(1)].into_iter().collect();
    let mut e = engine(s, 2);
    let mut f = fleet(2);
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    reloaded(&mut f, 0, None);
    let mut all = look(&mut e, &f, 1);
    // The old master exits: no record for a moment.
    let old = f.vs[0].rec.take();
    all.extend(look(&mut e, &f, 2));
    // A new process with the new config: new pid, its own record.
    let mut r = old.unwrap();
    r.pid = 200;
    r.respawns = 0;
    r.accepting = 0;
    f.vs[0].rec = Some(r);
    all.extend(look(&mut e, &f, 3));
    f.vs[0].rec.as_mut().unwrap().accepting = 1;
    f.vs[0].rec.as_mut().unwrap().last_accepting = T0 + 4;
    all.extend(look(&mut e, &f, 4));
    f.vs[0].nodes = serving(0, T0 + 5).nodes;
    all.extend(look(&mut e, &f, 5));
    assert!(
        !events(&all)
            .iter()
            .any(|ev| matches!(ev, Event::Failed { .. })),
        "{:?}",
        events(&all)
    );
    assert!(back(&all, 0), "{:?}", events(&all));
}

/// Without `unsubscribe-on-graceful-reload` or a drain the old node stays
/// listed, and the old generation's last announce can fall in the very
/// second the new one accepts: only an announce newer than what the node
/// showed at the touch is the new generation's.
#[test]
fn the_old_generations_last_announce_is_not_the_new_ones() {
    let mut e = engine(settings(1), 2);
    let mut f = fleet(2);
    f.vs[0].nodes[0].2 = T0;
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    // Reloaded and accepting in the same second; its node still shows the
    // old generation's announce of that second.
    let r = f.vs[0].rec.as_mut().unwrap();
    r.last_mod = T0;
    r.respawns = 1;
    r.accepting = 1;
    r.last_accepting = T0;
    let out = look(&mut e, &f, 1);
    assert!(!back(&out, 0), "the old generation's announce counted");
    f.vs[0].nodes[0].2 = T0 + 2;
    assert!(back(&look(&mut e, &f, 2), 0));
}
