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

/// A master that entered its loop at second `entry` has announced last
/// at: its entry, a cycle later, then every [`P`] cycles.
fn last_announce(entry: i64, s: i64) -> Option<i64> {
    const P: i64 = 30;
    let c = s.checked_sub(entry).filter(|c| *c >= 0)?;
    Some(
        entry
            + match c {
                0 => 0,
                c if c < P => 1,
                c => (c / P) * P,
            },
    )
}

/// app_03 (a 30 s period) reloaded by someone else at each `(at, entry)`:
/// the Emperor shows the new generation at `at`, its master enters its
/// loop at `entry`, and its node is kept (no unsubscribe), so the router
/// shows the previous master's last check until the new one announces.
fn foreign_reloads(e: &mut Engine, f: &mut Fleet, reloads: &[(i64, i64)], to: i64) -> Outputs {
    let mut all = Outputs::default();
    for s in 0..to {
        for i in 0..2 {
            f.vs[i].nodes[0].2 = T0 + s;
        }
        let mut check = T0 + (s / 30) * 30;
        let rec = f.vs[2].rec.as_mut().unwrap();
        rec.accepting = 1;
        for &(at, entry) in reloads.iter().filter(|(at, _)| s >= *at) {
            rec.pid = 200 + at;
            rec.last_run = T0 + at;
            rec.last_mod = T0 + at;
            rec.accepting = i64::from(s >= entry - 1);
            if s >= entry - 1 {
                rec.last_accepting = T0 + entry - 1;
            }
            if let Some(a) = last_announce(entry, s) {
                check = T0 + a;
            }
        }
        f.vs[2].nodes[0].2 = check;
        all.extend(look(e, f, s as u64));
    }
    all
}

/// The interval from the previous master's last announce to the new
/// one's first is no period (here 4 s, then 5 s): learnt, it would call
/// app_03 silent 7 s after its node passed 17 s, while its next announce
/// was due 30 s after the last, and reload it outside the K budget.
#[test]
fn the_previous_masters_last_announce_teaches_no_period() {
    let (mut e, mut f) = watching();
    let calm = foreign_reloads(&mut e, &mut f, &[], 300);
    assert!(!started(&calm).contains(&name(2)), "{:?}", events(&calm));
    let (mut e, mut f) = watching();
    let out = foreign_reloads(&mut e, &mut f, &[(31, 34), (95, 99)], 200);
    assert!(
        !started(&out).contains(&name(2)),
        "reloaded outside the budget: {:?}",
        events(&out)
    );
}

/// A period learnt before a reload is forgotten with it: the release may
/// announce less often (10 s, then 60 s, set where the files do not show
/// it). Kept, the old 10 s would prove the new generation silent.
#[test]
fn a_period_learnt_before_a_reload_is_forgotten() {
    let (mut e, mut f) = watching();
    let mut out = Outputs::default();
    for s in 0i64..200 {
        for i in 0..2 {
            f.vs[i].nodes[0].2 = T0 + s;
        }
        let rec = f.vs[2].rec.as_mut().unwrap();
        let (check, dead) = if s < 41 {
            (T0 + (s / 10) * 10, 0)
        } else {
            rec.pid = 300;
            rec.last_run = T0 + 41;
            rec.last_mod = T0 + 41;
            rec.accepting = i64::from(s >= 43);
            rec.last_accepting = T0 + 43;
            match s {
                41..=43 => (T0 + 40, 1),
                44 => (T0 + 44, 0),
                _ if s < 104 => (T0 + 45, 0),
                _ => (T0 + 44 + ((s - 44) / 60) * 60, 0),
            }
        };
        f.vs[2].nodes[0].2 = check;
        f.vs[2].nodes[0].3 = dead;
        out.extend(look(&mut e, &f, s as u64));
    }
    assert!(
        !started(&out).contains(&name(2)),
        "reloaded outside the budget: {:?}",
        events(&out)
    );
}
