//! Hand-written engine scenarios for facts the exhaustive model does not
//! single out: each drives the sans-IO engine with literal snapshots.

#[path = "support/engine_kit.rs"]
mod engine_kit;
use engine_kit::Outputs;
use uwsgi_reload::engine::{Action, ConfigFile, Engine, Input, Now, Settings};
use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot, Node, Subscription, VassalStats};

fn vassal(
    id: &str,
    pid: i64,
    last_mod: i64,
    accepting: i64,
    last_accepting: i64,
    respawns: i64,
) -> VassalStats {
    VassalStats {
        id: id.into(),
        pid,
        last_mod,
        accepting,
        last_accepting,
        respawns,
        ..Default::default()
    }
}

fn node(name: &str, last_check: i64) -> Node {
    Node {
        name: name.into(),
        last_check,
        ..Default::default()
    }
}

fn emp(vs: Vec<VassalStats>) -> Input {
    Input::Emperor(EmperorSnapshot {
        vassals: vs,
        ..Default::default()
    })
}

fn fr(nodes: Vec<Node>) -> Input {
    Input::Fastrouter(FastrouterSnapshot {
        subscriptions: vec![Subscription {
            key: "k".into(),
            nodes,
        }],
        ..Default::default()
    })
}

/// An engine for a.ini and b.ini (configs with `mtime`) at wall time `t0`.
fn two_vassals(settings: Settings, mtime: i64, t0: i64) -> Engine {
    let configs = ["a.ini", "b.ini"]
        .map(|name| ConfigFile {
            name: name.into(),
            mtime,
        })
        .to_vec();
    Engine::new(
        settings,
        configs,
        Now {
            mono_ms: 0,
            wall_s: t0,
        },
    )
}

/// One check interval: the engine asks for both reads, and they answer.
fn look(e: &mut Engine, now: Now, emperor: Input, fastrouter: Input) {
    e.handle_timeout(now);
    e.handle(now, emperor);
    e.handle(now, fastrouter);
}

fn drain(e: &mut Engine) -> Outputs {
    Outputs::take(e)
}

fn touched(out: &Outputs) -> Vec<String> {
    out.actions
        .iter()
        .filter_map(|a| match a {
            Action::Touch { vassal, .. } => Some(vassal.clone()),
            _ => None,
        })
        .collect()
}

fn subscribed(out: &Outputs, who: &str) -> bool {
    out.events.iter().any(|r| {
        matches!(&r.event,
            uwsgi_reload::engine::Event::Subscribed { vassal, .. } if vassal == who)
    })
}

/// Without `unsubscribe-on-graceful-reload` the node never goes away; a node
/// whose last announce predates the new generation's accept is the old
/// generation's and proves nothing (docs/UWSGI.md §9.4). Once a fastrouter read
/// after the touch shows the node gone, its return is the new one's.
#[test]
fn stale_node_is_not_a_resubscription_but_a_returning_node_is() {
    let t0 = 1_000_000;
    let mut e = two_vassals(
        Settings {
            min_live: 1,
            ..Default::default()
        },
        t0 - 100,
        t0,
    );
    let now = |ms: u64| Now {
        mono_ms: ms,
        wall_s: t0 + (ms / 1000) as i64,
    };
    drain(&mut e);
    look(
        &mut e,
        now(1),
        emp(vec![
            vassal("a.ini", 10, t0 - 100, 1, t0 - 50, 0),
            vassal("b.ini", 20, t0 - 100, 1, t0 - 50, 0),
        ]),
        fr(vec![node("/r/a.sock", t0 - 1), node("/r/b.sock", t0 - 1)]),
    );
    let acts = drain(&mut e);
    assert_eq!(touched(&acts), vec!["a.ini"], "K=1 of 2: one at a time");
    // The reload is seen, then accepting at t0+2; the node is still there
    // with its old announce.
    look(
        &mut e,
        now(2100),
        emp(vec![
            vassal("a.ini", 10, t0 + 1, 1, t0 + 2, 1),
            vassal("b.ini", 20, t0 - 100, 1, t0 - 50, 0),
        ]),
        fr(vec![node("/r/a.sock", t0 - 1), node("/r/b.sock", t0 - 1)]),
    );
    let acts = drain(&mut e);
    assert!(
        !subscribed(&acts, "a.ini"),
        "an old announce is not a re-subscription"
    );
    assert!(touched(&acts).is_empty(), "b must wait while a is not back");
    // The new generation announces: last_check at or after its accept.
    look(
        &mut e,
        now(3000),
        emp(vec![
            vassal("a.ini", 10, t0 + 1, 1, t0 + 2, 1),
            vassal("b.ini", 20, t0 - 100, 1, t0 - 50, 0),
        ]),
        fr(vec![node("/r/a.sock", t0 + 3), node("/r/b.sock", t0 - 1)]),
    );
    let acts = drain(&mut e);
    assert!(subscribed(&acts, "a.ini"));
    assert_eq!(
        touched(&acts),
        vec!["b.ini"],
        "the slot is used the moment a is back"
    );
    // b: unsubscribed at reload start (node gone), back in the same second
    // as its accept but before it: a returning node counts.
    look(
        &mut e,
        now(3100),
        emp(vec![
            vassal("a.ini", 10, t0 + 1, 1, t0 + 2, 1),
            vassal("b.ini", 20, t0 + 3, 0, t0 - 50, 1),
        ]),
        fr(vec![node("/r/a.sock", t0 + 3)]),
    );
    drain(&mut e);
    look(
        &mut e,
        now(5000),
        emp(vec![
            vassal("a.ini", 10, t0 + 1, 1, t0 + 2, 1),
            vassal("b.ini", 20, t0 + 3, 1, t0 + 5, 1),
        ]),
        fr(vec![node("/r/a.sock", t0 + 3), node("/r/b.sock", t0 + 4)]),
    );
    let acts = drain(&mut e);
    assert!(
        subscribed(&acts, "b.ini"),
        "node came back after being gone: {acts:?}"
    );
    assert!(acts
        .actions
        .iter()
        .any(|a| matches!(a, Action::Finish(o) if o.reloaded.len() == 2)));
}

/// A vassal back from the blacklist accepts and is subscribed long before
/// its blacklist entry goes (that needs a first request): it is live, and the
/// live count the operator sees (plan, live events, lowest live) says so.
#[test]
fn a_recovered_vassal_still_in_the_blacklist_counts_as_live() {
    let t0 = 2_000_000;
    let mut e = two_vassals(
        Settings {
            min_live: 1,
            ..Default::default()
        },
        t0 - 100,
        t0,
    );
    drain(&mut e);
    let mut snapshot = EmperorSnapshot {
        vassals: vec![
            vassal("a.ini", 10, t0 - 100, 1, t0 - 50, 0),
            vassal("b.ini", 20, t0 - 100, 1, t0 - 50, 0),
        ],
        ..Default::default()
    };
    snapshot
        .blacklist
        .push(uwsgi_reload::stats::BlacklistEntry {
            id: "b.ini".into(),
            throttle_level: 1001,
            attempt: 1,
        });
    look(
        &mut e,
        Now {
            mono_ms: 1,
            wall_s: t0,
        },
        Input::Emperor(snapshot),
        fr(vec![node("/r/a.sock", t0 - 1), node("/r/b.sock", t0 - 1)]),
    );
    let acts = drain(&mut e);
    let live = acts.events.iter().find_map(|r| match &r.event {
        uwsgi_reload::engine::Event::Plan { live, .. } => live.get("k").copied(),
        _ => None,
    });
    assert_eq!(live, Some(2), "{acts:?}");
    assert_eq!(
        touched(&acts),
        vec!["a.ini"],
        "K=1 of 2 live: one at a time"
    );
}

/// The configs are links and the Emperor's last_mod is the target's mtime:
/// it follows links, and touching the link would do nothing (docs/UWSGI.md §3).
/// Refused before anything is touched, naming the fix.
#[test]
fn an_emperor_that_follows_links_is_refused_before_any_touch() {
    let t0 = 3_000_000;
    let link_mtime = t0 - 500;
    let target_mtime = t0 - 100;
    let mut s = Settings {
        min_live: 1,
        ..Default::default()
    };
    s.other_mode_mtimes.insert("a.ini".into(), target_mtime);
    s.other_mode_mtimes.insert("b.ini".into(), target_mtime);
    let mut e = two_vassals(s, link_mtime, t0);
    drain(&mut e);
    look(
        &mut e,
        Now {
            mono_ms: 1,
            wall_s: t0,
        },
        emp(vec![
            vassal("a.ini", 10, target_mtime, 1, t0 - 50, 0),
            vassal("b.ini", 20, target_mtime, 1, t0 - 50, 0),
        ]),
        fr(vec![node("/r/a.sock", t0 - 1), node("/r/b.sock", t0 - 1)]),
    );
    let acts = drain(&mut e);
    assert!(touched(&acts).is_empty());
    assert!(acts.actions.iter().any(|a| matches!(a, Action::Finish(o)
        if matches!(&o.status, uwsgi_reload::engine::Status::Precondition(p) if p.contains("--emperor-nofollow")))), "{acts:?}");

    // The same links with an Emperor that lstat()s them: last_mod is the
    // link's own mtime, and the rollout starts.
    let mut s = Settings {
        min_live: 1,
        ..Default::default()
    };
    s.other_mode_mtimes.insert("a.ini".into(), target_mtime);
    s.other_mode_mtimes.insert("b.ini".into(), target_mtime);
    let mut e = two_vassals(s, link_mtime, t0);
    drain(&mut e);
    look(
        &mut e,
        Now {
            mono_ms: 1,
            wall_s: t0,
        },
        emp(vec![
            vassal("a.ini", 10, link_mtime, 1, t0 - 50, 0),
            vassal("b.ini", 20, link_mtime, 1, t0 - 50, 0),
        ]),
        fr(vec![node("/r/a.sock", t0 - 1), node("/r/b.sock", t0 - 1)]),
    );
    assert_eq!(touched(&drain(&mut e)).len(), 1);
}

/// Stopped while a vassal is drained but not touched: it is re-subscribed,
/// and the rollout ends only once the fastrouter shows its node back (or
/// says it did not, after a bound), never on the packet alone.
#[test]
fn a_stop_during_a_drain_waits_for_the_node_to_be_back() {
    let t0 = 4_000_000;
    let mut e = two_vassals(
        Settings {
            min_live: 1,
            drain_timeout_ms: Some(30_000),
            ..Default::default()
        },
        t0 - 100,
        t0,
    );
    let up = || {
        emp(vec![
            vassal("a.ini", 10, t0 - 100, 1, t0 - 50, 0),
            vassal("b.ini", 20, t0 - 100, 1, t0 - 50, 0),
        ])
    };
    drain(&mut e);
    // A session stays in flight on a's node: the drain cannot finish.
    let busy = || {
        let mut a = node("/r/a.sock", t0 - 1);
        a.death_mark = 1;
        a.refs = 1;
        fr(vec![a, node("/r/b.sock", t0 - 1)])
    };
    look(
        &mut e,
        Now {
            mono_ms: 1,
            wall_s: t0,
        },
        up(),
        fr(vec![node("/r/a.sock", t0 - 1), node("/r/b.sock", t0 - 1)]),
    );
    let acts = drain(&mut e);
    assert!(acts
        .actions
        .iter()
        .any(|a| matches!(a, Action::Unsubscribe { vassal, .. } if vassal == "a.ini")));
    look(
        &mut e,
        Now {
            mono_ms: 100,
            wall_s: t0,
        },
        up(),
        busy(),
    );
    drain(&mut e);
    e.handle(
        Now {
            mono_ms: 150,
            wall_s: t0,
        },
        Input::Stop,
    );
    let acts = drain(&mut e);
    assert!(
        acts.actions
            .iter()
            .any(|a| matches!(a, Action::Subscribe { vassal, .. } if vassal == "a.ini")),
        "{acts:?}"
    );
    assert!(
        !acts.actions.iter().any(|a| matches!(a, Action::Finish(_))),
        "finished before the node was seen back"
    );
    // A read that still shows it dead does not end the rollout either.
    look(
        &mut e,
        Now {
            mono_ms: 200,
            wall_s: t0,
        },
        up(),
        busy(),
    );
    assert!(!drain(&mut e)
        .actions
        .iter()
        .any(|a| matches!(a, Action::Finish(_))));
    // Back: the rollout ends, interrupted, a untouched.
    look(
        &mut e,
        Now {
            mono_ms: 300,
            wall_s: t0,
        },
        up(),
        fr(vec![node("/r/a.sock", t0), node("/r/b.sock", t0 - 1)]),
    );
    let acts = drain(&mut e);
    assert!(acts.actions.iter().any(|a| matches!(a, Action::Finish(o) if o.status == uwsgi_reload::engine::Status::Interrupted)), "{acts:?}");
    assert!(touched(&acts).is_empty());
}

/// `S` is a toggle: written to a vassal that is not blocked it blocks it. A
/// vassal whose announce was only lost (a full datagram queue) announces
/// again within subscribe-freq, so the repair waits that long by default.
#[test]
fn the_repair_waits_a_subscribe_freq_before_writing_s() {
    let t0 = 5_000_000;
    let mut e = two_vassals(
        Settings {
            min_live: 1,
            // Its config blocks subscriptions at start and unblocks them by
            // a writefifo S hook: the only vassals S may go to.
            repairable: ["a.ini".to_string()].into_iter().collect(),
            ..Default::default()
        },
        t0 - 100,
        t0,
    );
    let at = |ms: u64| Now {
        mono_ms: ms,
        wall_s: t0 + (ms / 1000) as i64,
    };
    drain(&mut e);
    look(
        &mut e,
        at(1),
        emp(vec![
            vassal("a.ini", 10, t0 - 100, 1, t0 - 50, 0),
            vassal("b.ini", 20, t0 - 100, 1, t0 - 50, 0),
        ]),
        fr(vec![node("/r/a.sock", t0 - 1), node("/r/b.sock", t0 - 1)]),
    );
    assert_eq!(touched(&drain(&mut e)), vec!["a.ini"]);
    // Reloaded and accepting at t0+2; its node went away and stays away.
    let back = || {
        emp(vec![
            vassal("a.ini", 10, t0 + 1, 1, t0 + 2, 1),
            vassal("b.ini", 20, t0 - 100, 1, t0 - 50, 0),
        ])
    };
    let mut repaired_at = None;
    for ms in (2_000..20_000).step_by(500) {
        look(
            &mut e,
            at(ms),
            back(),
            fr(vec![node("/r/b.sock", t0 + (ms / 1000) as i64)]),
        );
        if drain(&mut e)
            .actions
            .iter()
            .any(|a| matches!(a, Action::Repair { .. }))
        {
            repaired_at = Some(ms);
            break;
        }
    }
    let ms = repaired_at.expect("a vassal silent past subscribe-freq is repaired");
    assert!(
        ms >= 2_000 + 10_000,
        "S written after only {} ms of silence",
        ms - 2_000
    );
}
