//! `--stale-since` (engine::generation): only vassals whose running
//! generation started before the instant are reloaded; the others are
//! found current and left alone, and still count as live. Each test drives
//! the sans-IO engine against a small world that answers a touch as uWSGI
//! does (docs/UWSGI.md §4, §6.2), and says how it fails without its rule.

#[path = "support/engine_kit.rs"]
mod kit;
use kit::*;
use uwsgi_reload::engine::Generation;

/// The world answers a touch: the Emperor registers it on the next read
/// (`last_mod`, `respawns`, `last_run`, `accepting = 0`), the new
/// generation accepts on the read after, and announces on the one after.
struct World {
    fleet: Fleet,
    /// Per vassal: (second of the touch, mtime set).
    touches: Vec<Option<(u64, i64)>>,
}

impl World {
    fn new(vs: Vec<V>) -> World {
        let n = vs.len();
        World {
            fleet: Fleet { vs, fr_pid: 7 },
            touches: vec![None; n],
        }
    }

    fn advance(&mut self, s: u64) {
        let wall = T0 + s as i64;
        for (i, v) in self.fleet.vs.iter_mut().enumerate() {
            let Some(rec) = v.rec.as_mut() else { continue };
            match self.touches[i] {
                Some((t, mtime)) if s == t + 1 => {
                    rec.last_mod = mtime;
                    rec.respawns += 1;
                    rec.last_run = wall;
                    rec.accepting = 0;
                }
                Some((t, _)) if s == t + 2 => {
                    rec.accepting = 1;
                    rec.last_accepting = wall;
                }
                _ => {}
            }
            // Every accepting vassal announces each second.
            if rec.accepting == 1 {
                for n in &mut v.nodes {
                    n.2 = wall;
                }
            }
        }
    }

    /// Runs until the engine finishes (or 120 s); every action seen.
    fn run(&mut self, e: &mut Engine) -> Outputs {
        let mut all = Outputs::default();
        for s in 0..120 {
            self.advance(s);
            let a = look(e, &self.fleet, s);
            for t in touched(&a) {
                let i = self
                    .fleet
                    .vs
                    .iter()
                    .position(|v| v.rec.as_ref().unwrap().id == t);
                let mtime = a
                    .actions
                    .iter()
                    .find_map(|x| match x {
                        Action::Touch { vassal, mtime } if *vassal == t => Some(*mtime),
                        _ => None,
                    })
                    .unwrap();
                self.touches[i.unwrap()] = Some((s, mtime));
            }
            let done = outcome(&a).is_some();
            all.extend(a);
            if done {
                break;
            }
        }
        all
    }
}

/// A vassal whose generation started (a reload request, `last_run`) at
/// second `start` and accepted since.
fn reloaded_at(i: usize, start: i64) -> V {
    let mut v = serving(i, T0);
    let r = v.rec.as_mut().unwrap();
    r.last_mod = start;
    r.last_run = start;
    r.respawns = 1;
    r.last_accepting = start + 1;
    v
}

fn with_stale_since(k: usize, instant: i64) -> Settings {
    Settings {
        stale_since_s: Some(instant),
        ..settings(k)
    }
}

fn skipped_as_current(out: &Outputs) -> Vec<String> {
    events(out)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::Skipped { vassal, why } if why.starts_with("already current") => {
                Some(vassal.clone())
            }
            _ => None,
        })
        .collect()
}

/// The rerun of an interrupted deploy: two vassals were reloaded after the
/// release, two were not. Only the two are touched, the run completes, and
/// the other two are reported untouched as current. Without the rule all
/// four are touched.
#[test]
fn only_stale_generations_are_reloaded() {
    let release = T0 - 100;
    let mut w = World::new(vec![
        serving(0, T0),
        serving(1, T0),
        reloaded_at(2, T0 - 60),
        reloaded_at(3, T0 - 30),
    ]);
    let mut e = engine(with_stale_since(1, release), 4);
    let all = w.run(&mut e);
    let o = outcome(&all).expect("finished");
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert_eq!(o.reloaded, vec![name(0), name(1)], "{o:?}");
    assert_eq!(touched(&all), vec![name(0), name(1)]);
    assert_eq!(skipped_as_current(&all), vec![name(2), name(3)]);
    let untouched: Vec<&str> = o.untouched.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(untouched, vec![name(2), name(3)]);
}

/// A vassal still coming up from the interrupted run's touch (its reload
/// request is after the release, it does not accept yet) is neither
/// touched while starting nor reloaded a second time once it serves.
/// Without the `Renewing` wait it is reloaded again after it accepts.
#[test]
fn a_vassal_mid_reload_from_the_interrupted_run_is_waited_for_then_left_alone() {
    let release = T0 - 100;
    let mut mid = reloaded_at(2, T0 - 2);
    {
        let r = mid.rec.as_mut().unwrap();
        r.accepting = 0;
        r.last_accepting = T0 - 3600;
    }
    let mut w = World::new(vec![serving(0, T0), serving(1, T0), mid]);
    // It accepts at second 5 (as if its touch was 4 s before).
    w.touches[2] = Some((3, T0 - 2));
    let mut e = engine(with_stale_since(1, release), 3);
    let all = w.run(&mut e);
    let o = outcome(&all).expect("finished");
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert!(!touched(&all).contains(&name(2)), "{:?}", touched(&all));
    assert_eq!(skipped_as_current(&all), vec![name(2)]);
    assert_eq!(o.reloaded, vec![name(0), name(1)]);
}

/// A vassal found current stays in service: it counts toward K. With K = 2
/// of 3 and one current, the two stale ones are reloaded one at a time.
/// Counted as out of service (as a removed config's vassal is), the key
/// would have 2 live and nothing could ever be touched.
#[test]
fn a_current_vassal_counts_toward_k() {
    let release = T0 - 100;
    let mut w = World::new(vec![
        serving(0, T0),
        serving(1, T0),
        reloaded_at(2, T0 - 10),
    ]);
    let mut e = engine(with_stale_since(2, release), 3);
    let all = w.run(&mut e);
    let o = outcome(&all).expect("finished");
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert_eq!(o.reloaded, vec![name(0), name(1)]);
    assert!(o.lowest_live.get(KEY).copied().unwrap_or(0) >= 2, "{o:?}");
}

/// uWSGI's timestamps have whole seconds: a generation started in the same
/// second as the instant may have started before it, so it is stale (the
/// instant is rounded up). Rounded down, it would be left on the old
/// release.
#[test]
fn the_same_second_as_the_instant_is_stale() {
    use uwsgi_reload::engine::generation::stale_since_second;
    assert_eq!(stale_since_second(1000.0), 1000);
    assert_eq!(stale_since_second(1000.2), 1001);
    let instant = (T0 - 50) as f64 + 0.4;
    let mut w = World::new(vec![serving(0, T0), reloaded_at(1, T0 - 50)]);
    let mut e = engine(with_stale_since(1, stale_since_second(instant)), 2);
    let all = w.run(&mut e);
    assert_eq!(touched(&all), vec![name(0), name(1)]);
    assert!(skipped_as_current(&all).is_empty());
}

/// A crash-looping vassal whose record is new is not current: its new
/// generation does not serve, and the usual rules decide (it is reloaded
/// outside the budget). Counted current from its `first_run` alone it would
/// be left broken.
#[test]
fn a_new_generation_that_does_not_serve_is_not_current() {
    let release = T0 - 100;
    let mut broken = serving(1, T0 - 3600);
    {
        let r = broken.rec.as_mut().unwrap();
        r.pid = 4242;
        r.first_run = T0 - 20;
        r.last_run = 0;
        r.accepting = 0;
        r.last_accepting = 0;
    }
    broken.nodes.clear();
    let fleet = Fleet {
        vs: vec![serving(0, T0), broken],
        fr_pid: 7,
    };
    let e = {
        let mut e = engine(with_stale_since(1, release), 2);
        look(&mut e, &fleet, 0);
        e
    };
    assert_ne!(e.generation(1), Some(Generation::Current));
    assert_eq!(e.generation(0), Some(Generation::Stale));
}
