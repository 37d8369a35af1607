//! A vassal whose announce period its files cannot tell (the Emperor set
//! options on its command line, or it loads files the tool does not
//! follow): its period is learnt from what the fastrouter shows over time
//! (`src/engine/periods.rs`, docs/UWSGI.md §9.1, §9.12). Each test fails
//! without that rule.

#[path = "support/engine_kit.rs"]
mod engine_kit;
use engine_kit::*;
use uwsgi_reload::engine::Availability;

/// app_03's `subscribe-freq` is 30 s, set where its file does not show
/// it; the fastrouter's tolerance is not known. K = 2 of 3, and app_01 is
/// still starting (never sent a reload): the rollout waits, watching.
fn watching() -> (Engine, Fleet) {
    let mut s = settings(2);
    s.freq_uncertain = [name(2)].into_iter().collect();
    s.timeout_ms = 600_000;
    let mut f = Fleet::serving(3);
    f.vs[0].rec.as_mut().unwrap().accepting = 0;
    (engine(s, 3), f)
}

/// app_03 announces every `every` seconds (router's clock = ours) from
/// second 0; the others every second. Looks from `from` to `to`.
fn announce(e: &mut Engine, f: &mut Fleet, every: i64, from: u64, to: u64) -> Outputs {
    let mut all = Outputs::default();
    for s in from..to {
        for (i, v) in f.vs.iter_mut().enumerate() {
            let last = if i == 2 {
                T0 + (s as i64 / every) * every
            } else {
                T0 + s as i64
            };
            v.nodes[0].2 = last;
        }
        all.extend(look(e, f, s));
    }
    all
}

/// Between two of its 30 s announces, app_03 is serving once its period
/// is learnt (two intervals seen); before, its 25 s old node is past the
/// tool's guess (uWSGI's default 10 s plus slack) and it is not counted
/// live.
#[test]
fn a_learnt_period_keeps_a_slow_announcer_live_between_announces() {
    let (mut e, mut f) = watching();
    announce(&mut e, &mut f, 30, 0, 56);
    assert_eq!(
        e.availability(2),
        Availability::Unrouted,
        "one interval seen: nothing learnt yet, 26 s is past the guess"
    );
    announce(&mut e, &mut f, 30, 56, 86);
    assert_eq!(
        e.availability(2),
        Availability::Serving,
        "two 30 s intervals seen: a 25 s old node is within its period"
    );
}

/// Once its period is learnt, a vassal that stops announcing is proven
/// silent a window after (its period plus slack), and reloaded outside
/// the K budget; not before it stops. Without the learnt period its age
/// would never prove anything (`an_old_but_listed_node_is_never_silent_from_its_age_alone`
/// in tests/engine_evidence.rs).
#[test]
fn a_learnt_period_lets_silence_be_proven() {
    let (mut e, mut f) = watching();
    let before = announce(&mut e, &mut f, 30, 0, 95);
    assert!(
        !started(&before).contains(&name(2)),
        "started while announcing every 30 s: {:?}",
        events(&before)
    );
    // Its last announce was at second 90; it goes quiet (hook lost, a
    // blocked subscription), still accepting.
    let mut after = Outputs::default();
    for s in 95..200 {
        f.vs[1].nodes[0].2 = T0 + s as i64;
        after.extend(look(&mut e, &f, s));
    }
    assert!(
        started(&after).contains(&name(2)),
        "silent for 100 s after a learnt 30 s period, never proven down: {:?}",
        events(&after)
    );
}
