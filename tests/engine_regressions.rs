//! Engine bugs found by tests/explore.rs and the fuzzers, each as the
//! shortest scenario that showed it, driven through the public sans-IO API.

#[path = "support/engine_kit.rs"]
mod engine_kit;
use engine_kit::Outputs;
use uwsgi_reload::engine::{
    Action, ConfigEvent, ConfigFile, Engine, FailReason, Input, NodeMatch, Now, Outcome, Settings,
    Status,
};
use uwsgi_reload::stats::{
    EmperorSnapshot, FastrouterSnapshot, Node, StatsSource, Subscription, VassalStats,
};

const MONO0: u64 = 50_000_000;
const WALL0: i64 = 1_795_637_000;
const KEY: &str = "app.example.com";

fn now(s: u64) -> Now {
    Now {
        mono_ms: MONO0 + s * 1000,
        wall_s: WALL0 + s as i64,
    }
}

fn name(i: usize) -> String {
    format!("app_{:02}.ini", i + 1)
}

fn sock(i: usize) -> String {
    format!("/run/uwsgi/app_{:02}.sock", i + 1)
}

fn settings(k: usize) -> Settings {
    Settings {
        min_live: k,
        timeout_ms: 8_000,
        check_interval_ms: 1_000,
        node_match: NodeMatch::Stem,
        // Announce windows of 1 s + slack: short, as the tests step in seconds.
        default_subscribe_freq_s: 1,
        notice_window_ms: 3_000,
        stats_outage_ms: 3_000,
        ..Settings::default()
    }
}

#[derive(Clone)]
struct V {
    pid: i64,
    last_mod: i64,
    accepting: i64,
    last_accepting: i64,
    respawns: i64,
    last_run: i64,
}

impl V {
    fn up(pid: i64) -> V {
        V {
            pid,
            last_mod: WALL0 - 3600,
            accepting: 1,
            last_accepting: WALL0 - 3000,
            respawns: 0,
            last_run: WALL0 - 3600,
        }
    }
}

fn emperor(vs: &[V]) -> Input {
    Input::Emperor(EmperorSnapshot {
        pid: 1,
        version: String::new(),
        emperor: vec![],
        vassals: vs
            .iter()
            .enumerate()
            .map(|(i, v)| VassalStats {
                id: name(i),
                pid: v.pid,
                last_mod: v.last_mod,
                ready: 0,
                accepting: v.accepting,
                last_accepting: v.last_accepting,
                respawns: v.respawns,
                cursed: 0,
                loyal: 1,
                born: 0,
                first_run: 0,
                last_run: v.last_run,
            })
            .collect(),
        blacklist: vec![],
    })
}

/// Nodes of vassals `(index, last_check)`, all under KEY.
fn fastrouter(nodes: &[(usize, i64)]) -> Input {
    Input::Fastrouter(FastrouterSnapshot {
        router_pids: Vec::new(),
        pid: 2,
        version: String::new(),
        subscriptions: vec![Subscription {
            key: KEY.into(),
            nodes: nodes
                .iter()
                .map(|(i, lc)| Node {
                    name: sock(*i),
                    last_check: *lc,
                    ..Node::default()
                })
                .collect(),
        }],
    })
}

fn drain(e: &mut Engine) -> Outputs {
    Outputs::take(e)
}

fn finish(out: &Outputs) -> Option<&Outcome> {
    out.actions.iter().find_map(|a| match a {
        Action::Finish(o) => Some(o),
        _ => None,
    })
}

fn touches(out: &Outputs) -> Vec<(String, i64)> {
    out.actions
        .iter()
        .filter_map(|a| match a {
            Action::Touch { vassal, mtime } => Some((vassal.clone(), *mtime)),
            _ => None,
        })
        .collect()
}

/// Someone else touches the config after the Emperor acted on our touch but
/// before the engine saw it do so: a second reload request reached the
/// vassal mid-reload (docs/UWSGI.md §12), which may wedge it for
/// worker-reload-mercy while it still accepts and announces once. The
/// engine took the `respawns` it saw at ReloadSeen (already 2 higher) as the
/// baseline and reported the vassal reloaded.
#[test]
fn second_reload_hidden_behind_the_first_is_caught() {
    let mtime0 = WALL0 - 3600;
    let configs = vec![ConfigFile {
        name: name(0),
        mtime: mtime0,
    }];
    let mut e = Engine::new(settings(0), configs, now(0));
    drain(&mut e);
    let mut v = V::up(1000);
    e.handle(now(0), fastrouter(&[(0, WALL0 - 1)]));
    e.handle(now(0), emperor(&[v.clone()]));
    let a = drain(&mut e);
    assert_eq!(touches(&a), vec![(name(0), WALL0)]);
    e.handle(
        now(0),
        Input::Touched {
            vassal: name(0),
            error: None,
        },
    );
    e.handle(
        now(0),
        Input::Config(ConfigEvent::Changed {
            name: name(0),
            mtime: Some(WALL0),
        }),
    );
    // The Emperor reloads it for our touch (unseen), then for theirs.
    e.handle(now(0), emperor(&[v.clone()]));
    e.handle(
        now(0),
        Input::Config(ConfigEvent::Changed {
            name: name(0),
            mtime: Some(WALL0 + 1),
        }),
    );
    drain(&mut e);
    let mut all = Outputs::default();
    e.handle_timeout(now(1));
    all.extend(drain(&mut e));
    v.last_mod = WALL0 + 1;
    v.respawns = 2;
    v.accepting = 0;
    v.last_run = WALL0;
    e.handle(now(1), fastrouter(&[]));
    e.handle(now(1), emperor(&[v.clone()]));
    all.extend(drain(&mut e));
    // It accepts and announces once (then, wedged, never again).
    v.accepting = 1;
    v.last_accepting = WALL0 + 1;
    e.handle_timeout(now(2));
    all.extend(drain(&mut e));
    e.handle(now(2), fastrouter(&[(0, WALL0 + 1)]));
    e.handle(now(2), emperor(&[v.clone()]));
    all.extend(drain(&mut e));
    let o = finish(&all).expect("finished");
    assert!(o.reloaded.is_empty(), "reported reloaded: {o:?}");
    assert_eq!(o.status, Status::Failed);
    assert_eq!(o.failed.len(), 1);
    assert_eq!(o.failed[0].1, FailReason::SecondReload, "{o:?}");
    let _ = StatsSource::Emperor;
}

/// After handle_timeout(now) the timer must be in the future, or the driver
/// (which sleeps until poll_timeout) spins at 100% CPU.
fn assert_no_spin(e: &Engine, now: Now) {
    if let Some(t) = e.poll_timeout() {
        assert!(
            t > now.mono_ms,
            "poll_timeout() is {t}, not after now {}: the driver would spin",
            now.mono_ms
        );
    }
}

/// Found by the `engine` fuzzer: someone else's touch while the engine
/// still waits for the first fastrouter answer is followed (Adopt, phase
/// Touched), and poll_timeout() offered that vassal's notice deadline,
/// which handle_timeout() ignores before the preflight: once it passed,
/// the timer stayed in the past until the fastrouter answered.
#[test]
fn no_spin_on_a_deadline_before_the_preflight() {
    let configs = vec![ConfigFile {
        name: name(0),
        mtime: WALL0 - 3600,
    }];
    let mut e = Engine::new(settings(0), configs, now(0));
    drain(&mut e);
    e.handle(now(0), emperor(&[V::up(1000)]));
    e.handle(
        now(0),
        Input::Config(ConfigEvent::Changed {
            name: name(0),
            mtime: Some(WALL0),
        }),
    );
    drain(&mut e);
    // The fastrouter is slow to answer (the driver's read timeout is longer).
    for s in 1..6 {
        e.handle_timeout(now(s));
        drain(&mut e);
        assert_no_spin(&e, now(s));
    }
}

/// Found by tests/explore.rs (no unsubscribe-on-graceful-reload, one
/// missing-announce fault): the new generation accepts but never announces,
/// and its old node stays listed, alive. Past announce_grace, the overdue
/// time stayed in poll_timeout() though observe() raises AnnounceOverdue only
/// for dead nodes: the driver spun until the per-vassal timeout.
#[test]
fn no_spin_while_an_announce_is_overdue_and_the_old_node_lingers() {
    let configs = vec![ConfigFile {
        name: name(0),
        mtime: WALL0 - 3600,
    }];
    let mut e = Engine::new(settings(0), configs, now(0));
    drain(&mut e);
    let mut v = V::up(1000);
    let node = [(0, WALL0 - 1)];
    e.handle(now(0), emperor(&[v.clone()]));
    e.handle(now(0), fastrouter(&node));
    assert_eq!(touches(&drain(&mut e)).len(), 1);
    e.handle(
        now(0),
        Input::Touched {
            vassal: name(0),
            error: None,
        },
    );
    v.last_mod = WALL0;
    v.respawns = 1;
    v.accepting = 0;
    v.last_run = WALL0;
    e.handle(now(0), emperor(&[v.clone()]));
    drain(&mut e);
    v.accepting = 1;
    v.last_accepting = WALL0 + 1;
    for s in 1..7 {
        e.handle_timeout(now(s));
        drain(&mut e);
        e.handle(now(s), emperor(&[v.clone()]));
        e.handle(now(s), fastrouter(&node));
        let a = drain(&mut e);
        assert!(finish(&a).is_none());
        assert_no_spin(&e, now(s));
        e.handle_timeout(now(s));
        drain(&mut e);
        assert_no_spin(&e, now(s));
    }
}

/// Found by the `engine` fuzzer: the stats are parsed as any i64, and the
/// engine did plain arithmetic on them (`wall - last_check`,
/// `wall - last_run`, `last_mod + 1`, `respawns + 1`). Extreme values from a
/// garbled or hostile stats socket panicked in debug builds and wrapped in
/// release ones (a node with `last_check = i64::MIN` counted as fresh).
#[test]
fn extreme_stats_values_neither_panic_nor_count_as_fresh() {
    let configs = vec![
        ConfigFile {
            name: name(0),
            mtime: WALL0 - 3600,
        },
        ConfigFile {
            name: name(1),
            mtime: WALL0 - 3600,
        },
    ];
    // app_02 is left Touched and fails (not noticed): keep going.
    let s = Settings {
        max_failures: usize::MAX,
        ..settings(0)
    };
    let mut e = Engine::new(s, configs, now(0));
    drain(&mut e);
    let mut odd = V::up(1000);
    odd.last_run = i64::MIN;
    odd.respawns = i64::MAX;
    odd.last_mod = i64::MAX - 1;
    e.handle(now(0), emperor(&[odd.clone(), V::up(1001)]));
    e.handle(now(0), fastrouter(&[(0, i64::MIN), (1, WALL0 - 1)]));
    let a = drain(&mut e);
    let plan = a
        .events
        .iter()
        .find_map(|r| match &r.event {
            uwsgi_reload::engine::Event::Plan { live, .. } => Some(live.clone()),
            _ => None,
        })
        .expect("a plan");
    // The node last seen at the dawn of time is not fresh.
    assert_eq!(plan.get(KEY), Some(&1), "{plan:?}");
    // Accepting with a stale node: waited for (not down on one snapshot);
    // silent for a whole announce window, it is reloaded.
    assert!(
        !touches(&a).iter().any(|(v, _)| v == &name(0)),
        "{:?}",
        touches(&a)
    );
    let mut a = Outputs::default();
    for s in 1..=5 {
        e.handle_timeout(now(s));
        e.handle(now(s), emperor(&[odd.clone(), V::up(1001)]));
        e.handle(now(s), fastrouter(&[(0, i64::MIN), (1, WALL0 - 1)]));
        a.extend(drain(&mut e));
    }
    let t = touches(&a);
    assert!(
        t.iter().any(|(v, m)| v == &name(0) && *m == i64::MAX),
        "{t:?}"
    );
    e.handle(
        now(0),
        Input::Touched {
            vassal: name(0),
            error: None,
        },
    );
    odd.last_mod = i64::MAX;
    odd.accepting = 0;
    e.handle(now(5), emperor(&[odd.clone(), V::up(1001)]));
    for s in 6..16 {
        e.handle_timeout(now(s));
        e.handle(now(s), emperor(&[odd.clone(), V::up(1001)]));
        e.handle(now(s), fastrouter(&[(0, i64::MAX), (1, WALL0 - 1)]));
        drain(&mut e);
    }
}

/// Found by the `engine` fuzzer: while nothing can be touched (waiting for K
/// to allow it), a stats read fails, then someone else's touch puts a vassal
/// in flight. The scheduler, which clears the wait once something is in
/// flight, returns early after a failed read, so the wait stayed; its timeout,
/// acted on only when nothing is in flight, stayed in poll_timeout() and
/// passed: the driver spun until the in-flight vassal was done.
#[test]
fn no_spin_on_a_wait_timeout_while_a_foreign_reload_is_in_flight() {
    let configs = vec![
        ConfigFile {
            name: name(0),
            mtime: WALL0 - 3600,
        },
        ConfigFile {
            name: name(1),
            mtime: WALL0 - 3600,
        },
    ];
    let mut e = Engine::new(settings(1), configs, now(0));
    drain(&mut e);
    // app_02 restarted on its own just now: touching it could wedge it, and
    // touching app_01 would leave the key with 0 live: nothing to do.
    let mut starting = V::up(1001);
    starting.accepting = 0;
    starting.last_run = WALL0;
    let nodes = [(0, WALL0 - 1), (1, WALL0 - 1)];
    e.handle(now(0), emperor(&[V::up(1000), starting.clone()]));
    e.handle(now(0), fastrouter(&nodes));
    assert!(touches(&drain(&mut e)).is_empty());
    e.handle_timeout(now(1));
    drain(&mut e);
    e.handle(now(1), emperor(&[V::up(1000), starting.clone()]));
    e.handle(
        now(1),
        Input::ReadFailed {
            source: StatsSource::Fastrouter,
            error: "timed out".into(),
        },
    );
    e.handle(
        now(1),
        Input::Config(ConfigEvent::Changed {
            name: name(0),
            mtime: Some(WALL0 + 1),
        }),
    );
    drain(&mut e);
    // The Emperor sends that reload; the vassal takes its time.
    let mut reloading = V::up(1000);
    reloading.last_mod = WALL0 + 1;
    reloading.respawns = 1;
    reloading.accepting = 0;
    reloading.last_run = WALL0 + 1;
    for s in 2..12 {
        e.handle_timeout(now(s));
        drain(&mut e);
        assert_no_spin(&e, now(s));
        e.handle(now(s), emperor(&[reloading.clone(), starting.clone()]));
        e.handle(
            now(s),
            Input::ReadFailed {
                source: StatsSource::Fastrouter,
                error: "timed out".into(),
            },
        );
        drain(&mut e);
        assert_no_spin(&e, now(s));
    }
}

/// Found by tests/explore.rs (#[ignore]d large run: drain, busy nodes, one
/// foreign touch): while a vassal drains, someone else touches its config
/// and the Emperor reloads it; its snapshot shows that before the inotify
/// event comes, so the event (no newer than the Emperor's last_mod) was not
/// taken as a foreign touch. At the drain timeout the engine touched the
/// reloading vassal: a second reload request mid-reload (docs/UWSGI.md §12), which
/// can wedge it, and which it then reported as reloaded.
#[test]
fn a_draining_vassal_reloaded_by_someone_else_is_followed_not_touched() {
    let mut s = settings(0);
    s.drain_timeout_ms = Some(2_000);
    let configs = vec![ConfigFile {
        name: name(0),
        mtime: WALL0 - 3600,
    }];
    let mut e = Engine::new(s, configs, now(0));
    drain(&mut e);
    let mut v = V::up(1000);
    e.handle(now(0), emperor(&[v.clone()]));
    e.handle(now(0), fastrouter(&[(0, WALL0 - 1)]));
    let a = drain(&mut e);
    assert!(
        a.actions
            .iter()
            .any(|a| matches!(a, Action::Unsubscribe { .. })),
        "{a:?}"
    );
    // Sessions still in flight: the node stays death-marked.
    let busy = Input::Fastrouter(FastrouterSnapshot {
        router_pids: Vec::new(),
        pid: 2,
        version: String::new(),
        subscriptions: vec![Subscription {
            key: KEY.into(),
            nodes: vec![Node {
                name: sock(0),
                last_check: WALL0 - 1,
                death_mark: 1,
                refs: 1,
                ..Node::default()
            }],
        }],
    });
    e.handle(now(0), busy.clone());
    drain(&mut e);
    // Someone else's touch; the Emperor shows the reload first.
    v.last_mod = WALL0 + 1;
    v.respawns = 1;
    v.accepting = 0;
    v.last_run = WALL0 + 1;
    let mut all = Outputs::default();
    for s in 1..4 {
        e.handle_timeout(now(s));
        all.extend(drain(&mut e));
        e.handle(now(s), emperor(&[v.clone()]));
        e.handle(now(s), busy.clone());
        if s == 1 {
            e.handle(
                now(s),
                Input::Config(ConfigEvent::Changed {
                    name: name(0),
                    mtime: Some(WALL0 + 1),
                }),
            );
        }
        all.extend(drain(&mut e));
    }
    assert!(
        touches(&all).is_empty(),
        "touched a vassal reloading on someone else's touch: {:?}",
        touches(&all)
    );
    // It comes back: reported reloaded (by someone else), never touched,
    // once a second announce shows it is not stuck mid-reload.
    v.accepting = 1;
    v.last_accepting = WALL0 + 3;
    for s in 4..7 {
        e.handle_timeout(now(s));
        all.extend(drain(&mut e));
        e.handle(now(s), emperor(&[v.clone()]));
        e.handle(now(s), fastrouter(&[(0, WALL0 + s as i64 - 1)]));
        all.extend(drain(&mut e));
    }
    assert!(touches(&all).is_empty());
    let o = finish(&all).expect("finished");
    assert_eq!(o.reloaded, vec![name(0)], "{o:?}");
}

/// Found by the `engine` fuzzer (sim mode, --canary 1, drain): the canary's
/// config was removed while it drained (Skipped, never touched), and the
/// canary hold waited for it to be live forever: no other vassal was
/// touched, no timeout ran, the rollout never finished.
#[test]
fn a_skipped_canary_is_replaced_not_waited_for() {
    let mut s = settings(0);
    s.canary = 1;
    s.drain_timeout_ms = Some(2_000);
    let configs = vec![
        ConfigFile {
            name: name(0),
            mtime: WALL0 - 3600,
        },
        ConfigFile {
            name: name(1),
            mtime: WALL0 - 3600,
        },
    ];
    let mut e = Engine::new(s, configs, now(0));
    drain(&mut e);
    let up = [V::up(1000), V::up(1001)];
    let nodes = [(0, WALL0 - 1), (1, WALL0 - 1)];
    e.handle(now(0), emperor(&up));
    e.handle(now(0), fastrouter(&nodes));
    let a = drain(&mut e);
    assert_eq!(
        a.actions
            .iter()
            .filter(|a| matches!(a, Action::Unsubscribe { .. }))
            .count(),
        1,
        "one canary: {a:?}"
    );
    e.handle(
        now(0),
        Input::Config(ConfigEvent::Removed { name: name(0) }),
    );
    let mut all = drain(&mut e);
    let only_second = [V::up(1001)];
    for s in 1..30 {
        e.handle_timeout(now(s));
        all.extend(drain(&mut e));
        e.handle(now(s), emperor(&only_second));
        e.handle(now(s), fastrouter(&[(1, WALL0 + s as i64)]));
        all.extend(drain(&mut e));
        if finish(&all).is_some() {
            break;
        }
    }
    assert!(
        all.actions
            .iter()
            .any(|a| matches!(a, Action::Unsubscribe { vassal, .. } if *vassal == name(1))),
        "the other vassal never started"
    );
}

/// The canary hold had no timeout: a canary reloaded but gone again before
/// --min-ready passed (say it crash-loops right after) held the rollout
/// forever.
#[test]
fn a_canary_that_never_becomes_live_ends_the_rollout_after_the_timeout() {
    let mut s = settings(0);
    s.canary = 1;
    s.min_ready_ms = 3_000;
    let configs = vec![
        ConfigFile {
            name: name(0),
            mtime: WALL0 - 3600,
        },
        ConfigFile {
            name: name(1),
            mtime: WALL0 - 3600,
        },
    ];
    let mut e = Engine::new(s, configs, now(0));
    drain(&mut e);
    let mut c = V::up(1000);
    e.handle(now(0), emperor(&[c.clone(), V::up(1001)]));
    e.handle(now(0), fastrouter(&[(0, WALL0 - 1), (1, WALL0 - 1)]));
    let a = drain(&mut e);
    assert_eq!(touches(&a).len(), 1);
    e.handle(
        now(0),
        Input::Touched {
            vassal: name(0),
            error: None,
        },
    );
    c.last_mod = WALL0;
    c.respawns = 1;
    c.accepting = 0;
    c.last_run = WALL0;
    e.handle(now(0), emperor(&[c.clone(), V::up(1001)]));
    let mut all = drain(&mut e);
    c.accepting = 1;
    c.last_accepting = WALL0 + 1;
    e.handle_timeout(now(1));
    all.extend(drain(&mut e));
    e.handle(now(1), emperor(&[c.clone(), V::up(1001)]));
    e.handle(now(1), fastrouter(&[(0, WALL0 + 1), (1, WALL0 - 1)]));
    all.extend(drain(&mut e));
    assert!(all
        .events
        .iter()
        .any(|r| matches!(&r.event, uwsgi_reload::engine::Event::Subscribed { .. })));
    // Then it goes (not accepting, no node) and stays gone.
    c.accepting = 0;
    for s in 2..40 {
        e.handle_timeout(now(s));
        all.extend(drain(&mut e));
        e.handle(now(s), emperor(&[c.clone(), V::up(1001)]));
        e.handle(now(s), fastrouter(&[(1, WALL0 + s as i64)]));
        all.extend(drain(&mut e));
        if finish(&all).is_some() {
            break;
        }
    }
    let o = finish(&all).expect("the rollout never ended");
    assert_eq!(o.status, Status::Failed, "{o:?}");
    assert!(
        touches(&all).is_empty(),
        "touched past a canary that is not live: {all:#?}"
    );
}
