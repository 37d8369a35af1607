//! How long a drain waits before the touch (issue 13, docs/UWSGI.md §19):
//! until the drained node is out of rotation and holds no more sessions
//! than its vassal's workers serve (and its graceful reload finishes),
//! driving the sans-IO engine with literal snapshots. Each test says what
//! reverting the rule does.

use std::collections::BTreeMap;

use uwsgi_reload::engine::{
    Action, ConfigFile, Engine, Event, Input, NodeMatch, Now, Report, Settings,
};
use uwsgi_reload::stats::{
    EmperorSnapshot, FastrouterSnapshot, Node, StatsSource, Subscription, VassalStats,
};

const T0: i64 = 1_795_637_000;
const MONO0: u64 = 10_000_000;
const KEY: &str = "app.example.com";

fn at(ms: u64) -> Now {
    Now {
        mono_ms: MONO0 + ms,
        wall_s: T0 + (ms / 1000) as i64,
    }
}

fn name(i: usize) -> String {
    format!("app_{:02}.ini", i + 1)
}

fn sock(i: usize) -> String {
    format!("/run/app_{:02}.sock", i + 1)
}

/// The world the two stats sockets show: records and nodes by vassal.
#[derive(Clone, Debug)]
struct World {
    recs: Vec<VassalStats>,
    /// Per vassal: its node, if the fastrouter lists it.
    nodes: Vec<Option<Node>>,
}

impl World {
    fn serving(n: usize) -> World {
        World {
            recs: (0..n)
                .map(|i| VassalStats {
                    id: name(i),
                    pid: 100 + i as i64,
                    last_mod: T0 - 3600,
                    accepting: 1,
                    last_accepting: T0 - 3600,
                    first_run: T0 - 3600,
                    last_run: T0 - 3600,
                    ..Default::default()
                })
                .collect(),
            nodes: (0..n)
                .map(|i| {
                    Some(Node {
                        name: sock(i),
                        last_check: T0,
                        modifier1: 0,
                        ..Default::default()
                    })
                })
                .collect(),
        }
    }

    fn answer(&self, src: StatsSource) -> Input {
        match src {
            StatsSource::Emperor => Input::Emperor(EmperorSnapshot {
                pid: 1,
                vassals: self.recs.clone(),
                ..Default::default()
            }),
            StatsSource::Fastrouter => Input::Fastrouter(FastrouterSnapshot {
                pid: 7,
                subscriptions: vec![Subscription {
                    key: KEY.into(),
                    nodes: self.nodes.iter().flatten().cloned().collect(),
                }],
                ..Default::default()
            }),
        }
    }
}

fn settings(k: usize) -> Settings {
    let names = (0..8).map(|i| (name(i), vec![sock(i)])).collect();
    Settings {
        min_live: k,
        node_match: NodeMatch::Names(names),
        can_unsubscribe: true,
        drain_timeout_ms: Some(60_000),
        stats_outage_ms: 600_000,
        ..Settings::default()
    }
}

fn engine(s: Settings, n: usize) -> Engine {
    let configs = (0..n)
        .map(|i| ConfigFile {
            name: name(i),
            mtime: T0 - 3600,
        })
        .collect();
    Engine::new(s, configs, at(0))
}

/// The runtime's loop until `until_ms`: sleep to `poll_timeout()`, wake the
/// engine, answer each read from `world(t)` at once. Returns every action
/// with the time (ms since the start) it came out, and every report (the
/// engine's second queue, for the operator).
fn run(
    e: &mut Engine,
    until_ms: u64,
    mut world: impl FnMut(u64, &[Action]) -> World,
) -> (Vec<(u64, Action)>, Vec<Report>) {
    let mut log: Vec<(u64, Action)> = Vec::new();
    let mut reports: Vec<Report> = Vec::new();
    let mut t = 0;
    let mut seen: Vec<Action> = Vec::new();
    loop {
        reports.extend(std::iter::from_fn(|| e.poll_event()));
        let mut queue: Vec<Action> = std::iter::from_fn(|| e.poll_action()).collect();
        while let Some(a) = (!queue.is_empty()).then(|| queue.remove(0)) {
            seen.push(a.clone());
            log.push((t, a.clone()));
            if let Action::ReadStats(src) = a {
                e.handle(at(t), world(t, &seen).answer(src));
                reports.extend(std::iter::from_fn(|| e.poll_event()));
                queue.extend(std::iter::from_fn(|| e.poll_action()));
            }
        }
        if e.is_finished() {
            return (log, reports);
        }
        let next = e.poll_timeout().expect("a timeout while not finished") - MONO0;
        assert!(
            next > t || t == 0,
            "poll_timeout {next} not after {t}: a spin"
        );
        t = next.max(t);
        if t > until_ms {
            return (log, reports);
        }
        e.handle_timeout(at(t));
    }
}

#[allow(dead_code)]
fn fastrouter_reads(log: &[(u64, Action)], from: u64, to: u64) -> usize {
    log.iter()
        .filter(|(t, a)| {
            *t >= from && *t < to && matches!(a, Action::ReadStats(StatsSource::Fastrouter))
        })
        .count()
}

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
