//! The log's proof of a lost accepting hook (docs/UWSGI.md §9.6,
//! `uwsgi::hook_log`): the engine watches the log of each vassal with the
//! `start-unsubscribed` + writefifo `S` pattern from its touch, repairs at
//! once when the line comes instead of after a whole announce window, and
//! announces the vassal itself once `S` is written. Each test fails without
//! its rule.

#[path = "support/engine_kit.rs"]
mod engine_kit;
use engine_kit::*;

const LINE: &str = "open(\"/run/app_01.fifo\"): No such device or address [core/hooks.c line 134]";

fn hook_settings() -> Settings {
    let mut s = settings(1);
    s.watch_hook_log = [name(0), name(1)].into_iter().collect();
    s.repairable = s.watch_hook_log.clone();
    s
}

fn fleet() -> Fleet {
    Fleet {
        vs: vec![serving(0, T0 - 1), serving(1, T0 - 1)],
        fr_pid: 7,
    }
}

/// app_01 reloaded (the touch at T0 set mtime T0), its old node gone
/// (`unsubscribe-on-graceful-reload`), accepting from second `accepting_s`
/// if given.
fn reloaded(f: &mut Fleet, accepting_s: Option<i64>) {
    let r = f.vs[0].rec.as_mut().unwrap();
    r.last_mod = T0;
    r.respawns = 1;
    r.accepting = i64::from(accepting_s.is_some());
    r.last_accepting = accepting_s.unwrap_or(T0 - 3600);
    f.vs[0].nodes.clear();
}

fn lost(e: &mut Engine, s: u64) -> Outputs {
    e.handle(
        now(s),
        Input::HookLost {
            vassal: name(0),
            line: LINE.into(),
        },
    );
    Outputs::take(e)
}

fn written(e: &mut Engine, s: u64) -> Outputs {
    e.handle(
        now(s),
        Input::Repaired {
            vassal: name(0),
            result: Ok("/run/app_01.fifo".into()),
        },
    );
    Outputs::take(e)
}

/// The watch starts before the touch (the log's end then is where this
/// reload's evidence starts), only for the vassals named, and ends when the
/// vassal leaves flight.
#[test]
fn the_log_is_watched_from_before_the_touch_until_it_is_back() {
    let mut s = hook_settings();
    s.watch_hook_log.remove(&name(1));
    let mut e = engine(s, 2);
    let mut f = fleet();
    let out = look(&mut e, &f, 0);
    assert_eq!(touched(&out), [name(0)]);
    let watch = out
        .actions
        .iter()
        .position(|a| matches!(a, Action::WatchHookLog { vassal, pid: 100 } if *vassal == name(0)));
    let touch = out
        .actions
        .iter()
        .position(|a| matches!(a, Action::Touch { .. }));
    assert!(watch.is_some() && watch < touch, "{:?}", out.actions);
    reloaded(&mut f, Some(T0 + 1));
    look(&mut e, &f, 1);
    f.vs[0].nodes = serving(0, T0 + 2).nodes;
    let out = look(&mut e, &f, 2);
    assert!(
        out.actions
            .iter()
            .any(|a| matches!(a, Action::UnwatchHookLog { vassal } if *vassal == name(0))),
        "{:?}",
        out.actions
    );
    // app_02 is not named: never watched.
    let mut all = out;
    for s in 3..20 {
        all.extend(look(&mut e, &f, s));
    }
    assert!(!all
        .actions
        .iter()
        .any(|a| matches!(a, Action::WatchHookLog { vassal, .. } if *vassal == name(1))));
}

/// With the line, S is written at once and the tool announces the vassal
/// once S is written: back within seconds, not after subscribe-freq + 2 s
/// of silence plus its next announce.
#[test]
fn a_lost_hook_is_repaired_and_announced_at_once() {
    let mut e = engine(hook_settings(), 2);
    let mut f = fleet();
    assert_eq!(touched(&look(&mut e, &f, 0)), [name(0)]);
    reloaded(&mut f, Some(T0 + 1));
    let out = look(&mut e, &f, 1);
    assert!(repairs(&out).is_empty(), "repaired without evidence");
    let out = lost(&mut e, 1);
    assert_eq!(repairs(&out), [name(0)]);
    assert!(events(&out).iter().any(|ev| matches!(ev,
        Event::RepairStarted { evidence: Some(l), .. } if l == LINE)));
    assert!(
        subscribes(&out).is_empty(),
        "announced before S was written"
    );
    let out = written(&mut e, 1);
    assert_eq!(subscribes(&out), [sock(0, 0)]);
    // The fastrouter shows the node the tool announced: traffic, not the
    // vassal's word (its `cores` is 0).
    f.vs[0].nodes = serving(0, T0 + 1).nodes;
    f.vs[0].by_tool = vec![sock(0, 0)];
    let out = look(&mut e, &f, 2);
    assert!(!events(&out)
        .iter()
        .any(|ev| matches!(ev, Event::Subscribed { .. })));
    // Its own announce: back.
    f.vs[0].by_tool.clear();
    f.vs[0].nodes = serving(0, T0 + 3).nodes;
    let out = look(&mut e, &f, 3);
    assert!(events(&out).iter().any(|ev| matches!(ev,
        Event::Subscribed { vassal, repaired: true, .. } if *vassal == name(0))));
}

/// The line can reach the tool before the Emperor shows the vassal
/// accepting (the hook runs right after worker 1 tells the Emperor): kept,
/// and acted on as soon as it accepts.
#[test]
fn a_line_seen_before_accepting_is_acted_on_when_it_accepts() {
    let mut e = engine(hook_settings(), 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, None);
    look(&mut e, &f, 1);
    assert!(
        repairs(&lost(&mut e, 1)).is_empty(),
        "repaired before accepting"
    );
    reloaded(&mut f, Some(T0 + 2));
    assert_eq!(repairs(&look(&mut e, &f, 2)), [name(0)]);
}

/// Without the line the repair waits for the announce window, as before:
/// `S` toggles, and silence alone may be a dropped announce.
#[test]
fn without_the_line_the_repair_waits_for_the_announce_window() {
    let mut e = engine(hook_settings(), 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, Some(T0 + 1));
    let mut first = None;
    for s in 1..30 {
        if !repairs(&look(&mut e, &f, s)).is_empty() {
            first = Some(s);
            break;
        }
    }
    let s = first.expect("repaired after the window");
    // Accepting from second 1; the window is subscribe-freq (10 s) + slack.
    assert!(s > 10, "S written after {s} s without evidence");
    // And no announce follows that S: the vassal's own is awaited.
    assert!(subscribes(&written(&mut e, s)).is_empty());
}

/// `--no-early-announce`: the S is written at once, the announce is left to
/// the vassal. `--no-repair`: nothing is written at all.
#[test]
fn the_operators_switches_are_kept() {
    let mut s = hook_settings();
    s.announce_after_repair = false;
    let mut e = engine(s, 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, Some(T0 + 1));
    look(&mut e, &f, 1);
    assert_eq!(repairs(&lost(&mut e, 1)), [name(0)]);
    assert!(subscribes(&written(&mut e, 1)).is_empty());

    let mut s = hook_settings();
    s.repair = false;
    let mut e = engine(s, 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, Some(T0 + 1));
    look(&mut e, &f, 1);
    assert!(repairs(&lost(&mut e, 1)).is_empty());
}

fn on(e: &mut Engine, s: u64) -> Outputs {
    e.handle(now(s), Input::SubscriptionsOn { vassal: name(0) });
    Outputs::take(e)
}

/// The early announce's default for the `start-unsubscribed` + hook pattern:
/// not at accepting (the hook may yet lose its S), but as soon as the
/// vassal's own log shows its master turned subscriptions on. Once only.
#[test]
fn subscriptions_on_in_its_own_log_announces_it() {
    let mut s = hook_settings();
    s.announce_when_on = [name(0)].into_iter().collect();
    let mut e = engine(s, 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, Some(T0 + 1));
    let out = look(&mut e, &f, 1);
    assert!(subscribes(&out).is_empty(), "announced without evidence");
    let out = on(&mut e, 1);
    assert_eq!(subscribes(&out), [sock(0, 0)]);
    assert!(repairs(&out).is_empty());
    assert!(subscribes(&on(&mut e, 1)).is_empty(), "announced twice");
    f.vs[0].nodes = serving(0, T0 + 1).nodes;
    f.vs[0].by_tool = vec![sock(0, 0)];
    let out = look(&mut e, &f, 2);
    assert!(
        !events(&out)
            .iter()
            .any(|ev| matches!(ev, Event::Subscribed { .. })),
        "the tool's own announce counted"
    );
    f.vs[0].by_tool.clear();
    f.vs[0].nodes = serving(0, T0 + 2).nodes;
    let out = look(&mut e, &f, 2);
    assert!(events(&out).iter().any(|ev| matches!(ev,
        Event::Subscribed { vassal, repaired: false, .. } if *vassal == name(0))));
}

/// Evidence that comes while it is still starting is kept for when it
/// accepts; a vassal not named (or with the early announce off) is left
/// to its own announce.
#[test]
fn subscriptions_on_before_accepting_and_not_named() {
    let mut s = hook_settings();
    s.announce_when_on = [name(0)].into_iter().collect();
    let mut e = engine(s, 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, None);
    look(&mut e, &f, 1);
    assert!(
        subscribes(&on(&mut e, 1)).is_empty(),
        "announced before accepting"
    );
    reloaded(&mut f, Some(T0 + 2));
    assert_eq!(subscribes(&look(&mut e, &f, 2)), [sock(0, 0)]);

    let mut e = engine(hook_settings(), 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, Some(T0 + 1));
    look(&mut e, &f, 1);
    assert!(subscribes(&on(&mut e, 1)).is_empty());
}

/// `--early-announce` announces at accepting, before the log is read: when
/// the log then proves the hook lost, the node the tool announced is not
/// the vassal's own, and it does not count as back until `S` is written
/// (a repair still waiting for the FIFO's reader would otherwise be dropped
/// with the vassal left blocked).
#[test]
fn with_early_announce_a_lost_hook_is_back_only_once_s_is_written() {
    let mut s = hook_settings();
    s.early_announce = [name(0)].into_iter().collect();
    let mut e = engine(s, 2);
    let mut f = fleet();
    look(&mut e, &f, 0);
    reloaded(&mut f, Some(T0 + 1));
    let out = look(&mut e, &f, 1);
    assert_eq!(subscribes(&out), [sock(0, 0)], "announced at accepting");
    assert_eq!(repairs(&lost(&mut e, 1)), [name(0)]);
    // The fastrouter shows the tool's announce; S not written yet.
    f.vs[0].nodes = serving(0, T0 + 1).nodes;
    f.vs[0].by_tool = vec![sock(0, 0)];
    let out = look(&mut e, &f, 2);
    assert!(
        !events(&out)
            .iter()
            .any(|ev| matches!(ev, Event::Subscribed { vassal, .. } if *vassal == name(0))),
        "back before S was written"
    );
    let mut out = written(&mut e, 2);
    // Its own announce once unblocked.
    f.vs[0].by_tool.clear();
    f.vs[0].nodes = serving(0, T0 + 3).nodes;
    out.extend(look(&mut e, &f, 3));
    assert!(events(&out).iter().any(|ev| matches!(ev,
        Event::Subscribed { vassal, repaired: true, .. } if *vassal == name(0))));
}
