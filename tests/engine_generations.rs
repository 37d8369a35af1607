//! Judging a node by when its vassal's generation began, without trusting
//! two clocks more than they deserve, and telling the rollout's own doing
//! from a fastrouter restart (docs/UWSGI.md §17; a hostile review of the
//! generation rule found each case).

#[path = "support/engine_kit.rs"]
mod kit;
use kit::*;

/// The wall clock stepped back 5 minutes after the last rollout: every
/// vassal's record says its generation began at T0 + 300 (in the future of
/// the stepped clock); each keeps announcing on the stepped clock, so its
/// node is fresh by age. All three serve; K = 1. Comparing the record's
/// start with the nodes' `last_check` made every vassal unrouted, then
/// "silent" after its announce window, and all three were touched at once
/// outside the K budget.
#[test]
fn clock_step_back_after_a_rollout() {
    let n = 3;
    let mut e = engine(settings(1), n);
    let mut fleet = Fleet::serving(n);
    for v in &mut fleet.vs {
        let r = v.rec.as_mut().unwrap();
        r.last_run = T0 + 300;
        r.last_accepting = T0 + 300;
        r.last_mod = T0 + 300;
    }
    let mut all = Outputs::default();
    for s in 0..40u64 {
        for v in &mut fleet.vs {
            // Announces every 10 s, plus now.
            v.nodes[0].2 = T0 + (s as i64 / 10) * 10;
        }
        let a = look(&mut e, &fleet, s);
        all.extend(a);
    }
    let t = started(&all);
    assert!(t.len() <= 2, "all touched at once: {t:?}");
}

/// app_02 was reloaded by someone else in second T0 and accepts again; the
/// fastrouter read (requested with the Emperor read, not after it) shows
/// its previous generation's node announced in that same second, before
/// the reload's unsubscribe. Counting it as live touched app_01 and left
/// the key with none.
#[test]
fn same_second_previous_generation_node_counts() {
    let n = 2;
    let mut e = engine(settings(1), n);
    let mut fleet = Fleet::serving(n);
    // app_01 was reloaded by someone else at T0 (last_run T0); its new
    // generation accepted at T0 but the fastrouter read predates its
    // unsubscribe: it shows the old generation's node announced at T0.
    {
        let r = fleet.vs[1].rec.as_mut().unwrap();
        r.last_run = T0;
        r.last_accepting = T0;
        r.respawns = 1;
    }
    let a = look(&mut e, &fleet, 0);
    assert!(
        !started(&a).contains(&name(0)),
        "app_01 touched while app_02 counts live only by its previous generation's node"
    );
}

/// A router restart that keeps its pid (a container's fresh pid namespace):
/// three of four vassals in flight, every node gone in one read. Leaving the
/// in-flight vassals' nodes out of "most nodes gone" left one node to count,
/// and the restart went unreported.
#[test]
fn same_pid_router_restart_during_a_wide_wave() {
    let n = 4;
    let mut e = engine(settings(1), n);
    let mut fleet = Fleet::serving(n);
    let a = look(&mut e, &fleet, 0);
    assert_eq!(touched(&a).len(), 3);
    for v in &mut fleet.vs {
        v.nodes.clear();
    }
    let a = look(&mut e, &fleet, 1);
    let ev = events(&a);
    assert!(
        ev.iter()
            .any(|ev| matches!(ev, Event::FastrouterRestarted { .. })),
        "restart not reported"
    );
}

/// A remote fastrouter whose clock is 30 s behind this host's (more than
/// its 17 s tolerance): every node looks 30 s old by this host's clock.
/// Nothing is called silent or touched outside K on that age: the router's
/// clock is learnt from its announces between reads (`engine/clocks.rs`),
/// and then the rollout goes on within K, one vassal at a time (K = 2 of 3).
/// The router is read over TCP (`Settings::tcp_routers`): a unix socket's
/// router is this host's and shares its clock.
#[test]
fn a_router_clock_30_s_behind_is_learnt_not_taken_for_silence() {
    let n = 3;
    let mut s = settings(2);
    s.tcp_routers = [0].into_iter().collect();
    let mut e = engine(s, n);
    let skew = 30;
    let mut fleet = Fleet {
        vs: (0..n).map(|i| serving(i, T0 - skew)).collect(),
        fr_pid: 7,
    };
    let mut all = Outputs::default();
    let mut in_flight_max = 0;
    let mut out: Vec<String> = Vec::new();
    for s in 0..60u64 {
        // Each vassal announces every 10 s (staggered), stamped on the
        // router's clock.
        for (i, v) in fleet.vs.iter_mut().enumerate() {
            let t = s as i64 - i as i64 * 3;
            if t >= 0 && !v.nodes.is_empty() {
                v.nodes[0].2 = T0 - skew + (t / 10) * 10 + i as i64 * 3;
            }
        }
        let a = look(&mut e, &fleet, s);
        for t in touched(&a) {
            out.push(t.clone());
            // The touched vassal reloads and comes back at once: a new
            // generation (last_run now) announcing now, on the router's clock.
            let i = (0..n).find(|&i| name(i) == t).unwrap();
            let r = reload_at(&mut fleet, i, s);
            r.last_accepting = T0 + s as i64;
        }
        in_flight_max = in_flight_max.max(touched(&a).len());
        all.extend(a);
    }
    assert!(
        !events(&all).iter().any(|ev| matches!(
            ev,
            Event::Unavailable {
                class: "silent",
                ..
            }
        )),
        "{:?}",
        events(&all)
    );
    assert!(in_flight_max <= 1, "more than K allows at once: {out:?}");
    assert_eq!(
        out.len(),
        n,
        "every vassal reloaded once: {out:?} {:?}",
        events(&all)
    );
}

/// An HA pair: router 1 on this host (a unix socket: our clock), router 2
/// read over TCP and 40 s ahead. Each clock is its own: router 2's offset
/// is learnt from its announces and applied to its nodes only, router 1's
/// nodes are never moved. With one offset for both (the smallest sample,
/// router 2's), every node of router 1 looked 40 s old: all four vassals
/// were called silent and touched at once, router 1's key left with 0
/// live. Here the rollout keeps K = 2 on both routers' keys.
#[test]
fn an_ha_pair_with_one_remote_router_keeps_each_clock_apart() {
    let n = 4;
    let mut s = settings(2);
    s.tcp_routers = [1].into_iter().collect();
    let mut e = engine(s, n);
    let ahead = 40;
    let remote = uwsgi_reload::stats::router_key(KEY, 1);
    let mut fleet = Fleet::serving(n);
    for (i, v) in fleet.vs.iter_mut().enumerate() {
        v.nodes.push((remote.clone(), sock(i, 0), T0 + ahead, 0, 0));
    }
    let mut all = Outputs::default();
    let mut flying: Vec<(usize, u64)> = Vec::new();
    let mut most = 0;
    let mut out: Vec<String> = Vec::new();
    for s in 0..80u64 {
        // Each vassal announces to both routers every 10 s (staggered by
        // 2 s), each router stamping its own clock.
        for (i, v) in fleet.vs.iter_mut().enumerate() {
            let t = s as i64 - i as i64 * 2;
            if t >= 0 {
                // Never back: a reloaded vassal announced at its return.
                let at = (T0 + (t / 10) * 10 + i as i64 * 2).max(v.nodes[0].2);
                v.nodes[0].2 = at;
                v.nodes[1].2 = at + ahead;
            }
        }
        // A touched vassal is back 2 s later, announcing at once.
        for (i, t0) in &flying {
            if s >= t0 + 2 {
                let r = fleet.vs[*i].rec.as_mut().unwrap();
                r.accepting = 1;
                r.last_accepting = T0 + s as i64;
                fleet.vs[*i].nodes[0].2 = T0 + s as i64;
                fleet.vs[*i].nodes[1].2 = T0 + s as i64 + ahead;
            }
        }
        flying.retain(|(_, t0)| s < t0 + 2);
        let a = look(&mut e, &fleet, s);
        for t in touched(&a) {
            out.push(t.clone());
            let i = (0..n).find(|&i| name(i) == t).unwrap();
            reload_at(&mut fleet, i, s).accepting = 0;
            flying.push((i, s));
        }
        most = most.max(flying.len());
        all.extend(a);
    }
    let evs = events(&all);
    assert!(
        !evs.iter().any(|ev| matches!(
            ev,
            Event::Unavailable {
                class: "silent",
                ..
            }
        )),
        "{evs:?}"
    );
    assert!(
        most <= n - 2,
        "more than N - K out at once ({most}): {out:?}"
    );
    // The engine's own count on each router's key never fell below K.
    assert!(
        !evs.iter()
            .any(|ev| matches!(ev, Event::LiveChanged { live, min, .. } if live < min)),
        "a key below K: {evs:?}"
    );
    assert_eq!(out.len(), n, "every vassal reloaded once: {out:?} {evs:?}");
}

/// The Emperor's record of vassal `i` after a reload it sent at second `s`
/// (`last_run` and `last_mod` then, one more respawn), to be finished by
/// the caller (accepting at once, or later).
fn reload_at(fleet: &mut Fleet, i: usize, s: u64) -> &mut VassalStats {
    let r = fleet.vs[i].rec.as_mut().unwrap();
    r.last_run = T0 + s as i64;
    r.last_mod = T0 + s as i64;
    r.respawns += 1;
    r
}
