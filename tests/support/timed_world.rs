//! A millisecond-driven world for the engine tests about timing (the speed rules:
//! what waiting costs, when a drain touches): a fleet as the two stats
//! sockets show it, built from literal records, and the runtime's loop
//! (sleep to `poll_timeout()`, answer every read at once). Included with
//! `#[path]` by `tests/engine_speed.rs` and `tests/engine_drain.rs`, beside
//! `engine_kit.rs`, whose names, records, settings and engine it builds on.
#![allow(dead_code)]

pub use crate::engine_kit::{engine, name, KEY, T0};
pub use uwsgi_reload::engine::{Action, Engine, Event, Input, Now, Report, Settings};
pub use uwsgi_reload::stats::{
    EmperorSnapshot, FastrouterSnapshot, Node, StatsSource, Subscription, VassalStats,
};

/// `engine_kit::now(0)`'s monotonic clock, counted here in milliseconds.
pub const MONO0: u64 = 10_000_000;

pub fn at(ms: u64) -> Now {
    Now {
        mono_ms: MONO0 + ms,
        wall_s: T0 + (ms / 1000) as i64,
    }
}

/// Vassal `i`'s one node.
pub fn sock(i: usize) -> String {
    crate::engine_kit::sock(i, 0)
}

/// The world the two stats sockets show: records and nodes by vassal.
#[derive(Clone, Debug)]
pub struct World {
    pub recs: Vec<VassalStats>,
    /// Per vassal: its node, if the fastrouter lists it.
    pub nodes: Vec<Option<Node>>,
}

impl World {
    pub fn serving(n: usize) -> World {
        World {
            recs: (0..n)
                .filter_map(|i| crate::engine_kit::serving(i, T0).rec)
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

    pub fn answer(&self, src: StatsSource) -> Input {
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

/// `engine_kit::settings` with the drain on (up to 60 s).
pub fn settings(k: usize) -> Settings {
    Settings {
        drain_timeout_ms: Some(60_000),
        ..crate::engine_kit::settings(k)
    }
}

/// The runtime's loop until `until_ms`: sleep to `poll_timeout()`, wake the
/// engine, answer each read from `world(t)` at once. Returns every action
/// with the time (ms since the start) it came out, and every report (the
/// engine's second queue, for the operator).
pub fn run(
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

pub fn fastrouter_reads(log: &[(u64, Action)], from: u64, to: u64) -> usize {
    log.iter()
        .filter(|(t, a)| {
            *t >= from && *t < to && matches!(a, Action::ReadStats(StatsSource::Fastrouter))
        })
        .count()
}
