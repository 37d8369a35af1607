//! The real binary against scripted fake stats sockets (no uWSGI): every way
//! a stats socket can be missing, silent, slow, wrong or too big ends in
//! exit 3 with an error naming the socket and what was expected, and not one
//! mtime in the Emperor directory changes. Also: the fastrouter's
//! trailing-comma bug is tolerated, an Emperor watching another directory is
//! refused, `status` and `--dry-run` touch nothing, the directory lock keeps
//! a second instance out, and a stalled run sleeps instead of spinning.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::process::Child;
use std::time::{Duration, Instant};

use fakes::{run, Answer, FakeSocket, FullBacklog, Run, World};

/// Per-run bound: far above any expected run, below "hung".
const BOUND: Duration = Duration::from_secs(10);
/// `--stats-timeout` of the runs below, in seconds.
const STATS_TIMEOUT_S: u64 = 1;
/// A run whose stats read times out must end within this (the timeout plus
/// generous slack for a loaded machine).
const GIVE_UP_WITHIN: Duration = Duration::from_secs(8);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The rollout itself (the default command).
    Reload,
    Status,
    DryRun,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Emperor,
    Fastrouter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// No socket file at the path.
    Missing,
    /// Accepts, never writes.
    Silent,
    /// Non-JSON bytes.
    Garbage,
    /// The first part of a valid document, then EOF.
    Truncated,
    /// Valid JSON of the other socket's shape (the two sockets swapped).
    WrongShape,
    /// Half a valid document, then silence with the connection open.
    Stall,
    /// An answer streamed past the 16 MiB cap.
    TooLarge,
    /// A valid document, one byte every 200 ms: never silent for a whole
    /// --stats-timeout, but far slower than it in total.
    Trickle,
    /// Listening but never accepting, backlog full (a stuck loop).
    FullBacklog,
}

fn mode_args(w: &World, mode: Mode, extra: &[&str]) -> Vec<String> {
    let mut a = Vec::new();
    if mode == Mode::Status {
        a.push("status".to_string());
    }
    a.extend(w.base_args());
    a.extend(["--stats-timeout".to_string(), STATS_TIMEOUT_S.to_string()]);
    match mode {
        // Silences the "drain is off" note: these configs name no server.
        Mode::Reload => a.push("--no-drain".into()),
        Mode::DryRun => a.push("--dry-run".into()),
        Mode::Status => {}
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// What a bad socket does, for `which` of world `w`. Returns what must be
/// kept alive for the run.
#[allow(dead_code)] // held for their Drop
enum Served {
    Fake(FakeSocket),
    Backlog(FullBacklog),
    Nothing,
}

fn serve_bad(w: &World, which: Which, sc: Scenario) -> Served {
    let path = match which {
        Which::Emperor => w.emperor_sock.clone(),
        Which::Fastrouter => w.fastrouter_sock.clone(),
    };
    let good = match which {
        Which::Emperor => w.emperor_doc(),
        Which::Fastrouter => w.fastrouter_doc(false),
    };
    let other = match which {
        Which::Emperor => w.fastrouter_doc(false),
        Which::Fastrouter => w.emperor_doc(),
    };
    let fake = |a: Answer| Served::Fake(FakeSocket::fixed(&path, a));
    match sc {
        Scenario::Missing => Served::Nothing,
        Scenario::Silent => fake(Answer::Silent),
        Scenario::Garbage => fake(Answer::Bytes(b"\x00\xff\xfeHELO garbage \x1b[2J".to_vec())),
        Scenario::Truncated => fake(Answer::Bytes(good.as_bytes()[..good.len() / 2].to_vec())),
        Scenario::WrongShape => fake(Answer::Bytes(other.into_bytes())),
        Scenario::Stall => fake(Answer::Stall(good.as_bytes()[..good.len() / 2].to_vec())),
        Scenario::TooLarge => fake(Answer::Stream {
            prefix: b"{\"vassals\":[".to_vec(),
            total: 17 * 1024 * 1024,
        }),
        Scenario::Trickle => fake(Answer::Trickle {
            bytes: good.into_bytes(),
            every: Duration::from_millis(200),
        }),
        Scenario::FullBacklog => Served::Backlog(FullBacklog::new(&path)),
    }
}

/// Phrases the error must contain; each inner list is "any of".
fn expected_phrases(which: Which, sc: Scenario) -> Vec<Vec<&'static str>> {
    let kind = match which {
        Which::Emperor => "emperor",
        Which::Fastrouter => "fastrouter",
    };
    let field = match which {
        Which::Emperor => "vassals",
        Which::Fastrouter => "subscriptions",
    };
    let timeout = vec!["within", "timed out", "timeout"];
    let mut p = vec![vec![kind]];
    match sc {
        Scenario::Missing => p.push(vec!["No such file", "does not exist"]),
        Scenario::Silent | Scenario::Stall | Scenario::Trickle => p.push(timeout),
        Scenario::Garbage | Scenario::Truncated => p.push(vec!["JSON"]),
        Scenario::WrongShape => {
            p.push(vec!["JSON"]);
            p.push(vec![field]);
        }
        Scenario::TooLarge => p.push(vec!["16777216", "16 MiB"]),
        // A full backlog may fail the connect at once or time out.
        Scenario::FullBacklog => {}
    }
    p
}

/// Checks a run that must stop on a precondition: exit 3, in time, an error
/// line containing `must` (each "any of"), the directory untouched.
fn assert_precondition(
    w: &World,
    r: &Run,
    mode: Mode,
    before: &fakes::MtimeMap,
    must: &[Vec<&str>],
    within: Duration,
) {
    let mut p = Vec::new();
    if r.timed_out {
        p.push("did not exit: killed at the test's bound".to_string());
    } else if r.elapsed > within {
        p.push(format!("took {:?}, expected under {within:?}", r.elapsed));
    }
    if r.code != Some(3) {
        p.push(format!("exit code {:?}, expected 3", r.code));
    }
    let lines = r.stderr_lines();
    // The error is the last stderr line. The rollout path prints one line
    // per vassal before it (see `reload_precondition_error_is_one_line`);
    // status and --dry-run print just the one.
    let last = lines.last().copied().unwrap_or("");
    if mode != Mode::Reload && lines.len() != 1 {
        p.push(format!("expected one line on stderr, got {}", lines.len()));
    }
    for any in must {
        if !any.iter().any(|m| last.contains(m)) {
            p.push(format!("the error line mentions none of {any:?}"));
        }
    }
    let all = format!("{}{}", r.stdout, r.stderr);
    if all.contains("touched (mtime") || all.contains("\"event\":\"touched\"") {
        p.push("reported a touch".to_string());
    }
    if &w.mtimes() != before {
        p.push("an mtime in the Emperor directory changed".to_string());
    }
    assert!(p.is_empty(), "{}\n{}", p.join("\n"), r.describe());
}

fn bad_socket(mode: Mode, which: Which, sc: Scenario) {
    let w = World::new(&format!("{sc:?}"), 3);
    let _good = match which {
        Which::Emperor => w.serve_fastrouter(false),
        Which::Fastrouter => {
            FakeSocket::fixed(&w.emperor_sock, Answer::Bytes(w.emperor_doc().into_bytes()))
        }
    };
    let _bad = serve_bad(&w, which, sc);
    let before = w.mtimes();
    let r = run(&mode_args(&w, mode, &[]), BOUND);
    let path = match which {
        Which::Emperor => w.emperor_sock.to_str().unwrap().to_string(),
        Which::Fastrouter => w.fastrouter_sock.to_str().unwrap().to_string(),
    };
    let mut must = expected_phrases(which, sc);
    let path: &str = Box::leak(path.into_boxed_str());
    must.push(vec![path]);
    assert_precondition(&w, &r, mode, &before, &must, GIVE_UP_WITHIN);
}

macro_rules! bad_socket_tests {
    ($($name:ident: $mode:ident $which:ident $sc:ident $(, ignore = $why:literal)?;)*) => {
        $(
            #[test]
            $(#[ignore = $why])?
            fn $name() {
                bad_socket(Mode::$mode, Which::$which, Scenario::$sc);
            }
        )*
    };
}

bad_socket_tests! {
    reload_emperor_missing: Reload Emperor Missing;
    reload_fastrouter_missing: Reload Fastrouter Missing;
    reload_emperor_silent: Reload Emperor Silent;
    reload_fastrouter_silent: Reload Fastrouter Silent;
    reload_emperor_garbage: Reload Emperor Garbage;
    reload_fastrouter_garbage: Reload Fastrouter Garbage;
    reload_emperor_truncated: Reload Emperor Truncated;
    reload_fastrouter_truncated: Reload Fastrouter Truncated;
    reload_emperor_wrong_shape: Reload Emperor WrongShape;
    reload_fastrouter_wrong_shape: Reload Fastrouter WrongShape;
    reload_emperor_stall: Reload Emperor Stall;
    reload_fastrouter_stall: Reload Fastrouter Stall;
    reload_emperor_too_large: Reload Emperor TooLarge;
    reload_fastrouter_too_large: Reload Fastrouter TooLarge;
    reload_emperor_trickle: Reload Emperor Trickle;
    reload_emperor_full_backlog: Reload Emperor FullBacklog;

    status_emperor_missing: Status Emperor Missing;
    status_fastrouter_missing: Status Fastrouter Missing;
    status_emperor_silent: Status Emperor Silent;
    status_fastrouter_silent: Status Fastrouter Silent;
    status_emperor_garbage: Status Emperor Garbage;
    status_fastrouter_garbage: Status Fastrouter Garbage;
    status_emperor_truncated: Status Emperor Truncated;
    status_fastrouter_truncated: Status Fastrouter Truncated;
    status_emperor_wrong_shape: Status Emperor WrongShape;
    status_fastrouter_wrong_shape: Status Fastrouter WrongShape;
    status_emperor_stall: Status Emperor Stall;
    status_fastrouter_stall: Status Fastrouter Stall;
    status_emperor_too_large: Status Emperor TooLarge;
    status_fastrouter_too_large: Status Fastrouter TooLarge;
    status_emperor_trickle: Status Emperor Trickle;
    status_emperor_full_backlog: Status Emperor FullBacklog;

    dry_run_emperor_missing: DryRun Emperor Missing;
    dry_run_fastrouter_missing: DryRun Fastrouter Missing;
    dry_run_emperor_silent: DryRun Emperor Silent;
    dry_run_fastrouter_silent: DryRun Fastrouter Silent;
    dry_run_emperor_garbage: DryRun Emperor Garbage;
    dry_run_fastrouter_garbage: DryRun Fastrouter Garbage;
    dry_run_emperor_truncated: DryRun Emperor Truncated;
    dry_run_fastrouter_truncated: DryRun Fastrouter Truncated;
    dry_run_emperor_wrong_shape: DryRun Emperor WrongShape;
    dry_run_fastrouter_wrong_shape: DryRun Fastrouter WrongShape;
    dry_run_emperor_stall: DryRun Emperor Stall;
    dry_run_fastrouter_stall: DryRun Fastrouter Stall;
    dry_run_emperor_too_large: DryRun Emperor TooLarge;
    dry_run_fastrouter_too_large: DryRun Fastrouter TooLarge;
    dry_run_emperor_trickle: DryRun Emperor Trickle;
    dry_run_emperor_full_backlog: DryRun Emperor FullBacklog;
}

/// The product rule is one line per error; a missing socket is the
/// simplest case of a precondition found by the rollout engine.
#[test]
fn reload_precondition_error_is_one_line() {
    let w = World::new("oneline", 3);
    let _fr = w.serve_fastrouter(false);
    let r = run(&mode_args(&w, Mode::Reload, &[]), BOUND);
    assert_eq!(r.code, Some(3), "{}", r.describe());
    assert_eq!(r.stderr_lines().len(), 1, "{}", r.describe());
}

// ----- the fastrouter's trailing comma (docs/UWSGI.md §13.6) --------------------

#[test]
fn trailing_comma_accepted_by_dry_run() {
    let w = World::new("tcdry", 3);
    let (emp, fr) = w.serve_consistent(true);
    let before = w.mtimes();
    let r = run(&mode_args(&w, Mode::DryRun, &[]), BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    assert!(r.stdout.contains("wave 1:"), "{}", r.describe());
    assert!(r.stdout.contains("nothing was touched"), "{}", r.describe());
    assert_eq!(w.mtimes(), before, "{}", r.describe());
    assert!(emp.hits() >= 1 && fr.hits() >= 1);
}

#[test]
fn trailing_comma_accepted_by_status() {
    let w = World::new("tcstat", 3);
    let _s = w.serve_consistent(true);
    let before = w.mtimes();
    let r = run(&mode_args(&w, Mode::Status, &[]), BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    for n in &w.names {
        assert!(r.stdout.contains(n.as_str()), "{}", r.describe());
    }
    assert_eq!(w.mtimes(), before, "{}", r.describe());
}

/// The rollout parses the document (the error is about K, not JSON) and
/// stops in preflight: asking for 5 live of 3 nodes can never hold.
#[test]
fn trailing_comma_accepted_by_the_rollout() {
    let w = World::new("tcroll", 3);
    let _s = w.serve_consistent(true);
    let before = w.mtimes();
    let r = run(
        &mode_args(&w, Mode::Reload, &["--minimum-active-vassals", "5"]),
        BOUND,
    );
    assert_precondition(
        &w,
        &r,
        Mode::Reload,
        &before,
        &[
            vec![fakes::KEY],
            vec!["3 node"],
            vec!["minimum-active-vassals", "allow-downtime"],
        ],
        GIVE_UP_WITHIN,
    );
    assert!(!r.stderr.contains("JSON"), "{}", r.describe());
}

/// Leniency is for that one bug only: a comma with nothing after it inside
/// an array is still an error.
#[test]
fn other_commas_still_rejected() {
    let w = World::new("tcbad", 3);
    let emp = FakeSocket::fixed(&w.emperor_sock, Answer::Bytes(w.emperor_doc().into_bytes()));
    let doc = w
        .fastrouter_doc(false)
        .replace("\"/run/fake/sub.sock\"]", "\"/run/fake/sub.sock\",,]");
    assert!(doc.contains(",,]"));
    let _fr = FakeSocket::fixed(&w.fastrouter_sock, Answer::Bytes(doc.into_bytes()));
    let before = w.mtimes();
    let r = run(&mode_args(&w, Mode::DryRun, &[]), BOUND);
    let path = w.fastrouter_sock.to_str().unwrap();
    assert_precondition(
        &w,
        &r,
        Mode::DryRun,
        &before,
        &[vec!["fastrouter"], vec!["JSON"], vec![path]],
        GIVE_UP_WITHIN,
    );
    drop(emp);
}

// ----- an Emperor watching another directory ---------------------------------------

fn elsewhere(mode: Mode) {
    let w = World::new("elsewhere", 3);
    let _emp = FakeSocket::fixed(
        &w.emperor_sock,
        Answer::Bytes(w.emperor_doc_watching("/elsewhere").into_bytes()),
    );
    let _fr = w.serve_fastrouter(false);
    let before = w.mtimes();
    let r = run(&mode_args(&w, mode, &[]), BOUND);
    let canonical: &str = Box::leak(w.canonical.clone().into_boxed_str());
    assert_precondition(
        &w,
        &r,
        Mode::Reload, // both go through the engine's preflight
        &before,
        &[vec!["/elsewhere"], vec![canonical]],
        GIVE_UP_WITHIN,
    );
}

#[test]
fn reload_refuses_an_emperor_watching_another_directory() {
    elsewhere(Mode::Reload);
}

#[test]
fn dry_run_refuses_an_emperor_watching_another_directory() {
    elsewhere(Mode::DryRun);
}

#[test]
fn dry_run_precondition_error_is_one_line() {
    let w = World::new("dryone", 3);
    let _emp = FakeSocket::fixed(
        &w.emperor_sock,
        Answer::Bytes(w.emperor_doc_watching("/elsewhere").into_bytes()),
    );
    let _fr = w.serve_fastrouter(false);
    let r = run(&mode_args(&w, Mode::DryRun, &[]), BOUND);
    assert_eq!(r.code, Some(3), "{}", r.describe());
    assert_eq!(r.stderr_lines().len(), 1, "{}", r.describe());
}

// ----- status and --dry-run touch nothing --------------------------------------------

/// Two plain configs and one symlink to a file outside the directory.
fn world_with_link(tag: &str) -> World {
    let mut w = World::new(tag, 2);
    let real = w.tmp.path.join("real");
    std::fs::create_dir(&real).unwrap();
    let target = real.join("shared.ini");
    std::fs::write(&target, "[uwsgi]\nsocket = /run/fake/%n.sock\n").unwrap();
    fakes::set_mtime(&target, fakes::OLD_MTIME);
    let link = w.dir.join("app_03.ini");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fakes::set_mtime(&link, fakes::OLD_MTIME);
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
    w.names.push("app_03.ini".into());
    w
}

#[test]
fn status_and_dry_run_touch_nothing() {
    let w = world_with_link("readonly");
    let (emp, fr) = w.serve_consistent(false);
    let before = w.mtimes();
    assert_eq!(before.len(), 4, "dir + 3 configs: {before:?}");
    for (mode, extra) in [
        (Mode::Status, &[][..]),
        (Mode::Status, &["--json"][..]),
        (Mode::DryRun, &[][..]),
        (Mode::DryRun, &["--json"][..]),
        (Mode::DryRun, &["--max-parallel", "1", "--canary", "1"][..]),
    ] {
        let r = run(&mode_args(&w, mode, extra), BOUND);
        assert_eq!(r.code, Some(0), "{}", r.describe());
        assert!(!r.timed_out, "{}", r.describe());
        for n in &w.names {
            assert!(
                r.stdout.contains(n.as_str()),
                "{n} not shown\n{}",
                r.describe()
            );
        }
        if extra.contains(&"--json") {
            for l in r.stdout_lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| {
                    panic!("stdout line is not JSON ({e}): {l}\n{}", r.describe())
                });
            }
        }
        let after = w.mtimes();
        assert_eq!(after, before, "an mtime changed\n{}", r.describe());
    }
    // Every run read both sockets.
    assert!(
        emp.hits() >= 5 && fr.hits() >= 5,
        "{} {}",
        emp.hits(),
        fr.hits()
    );
}

// ----- the directory lock ------------------------------------------------------------------

/// Starts the binary in the background, its stdout and stderr going to
/// `<log>.out` and `<log>.err`.
fn spawn_logged(args: &[String], log: &std::path::Path) -> Child {
    let f = |ext: &str| std::fs::File::create(log.with_extension(ext)).expect("log file");
    binary::command(args)
        .stdout(f("out"))
        .stderr(f("err"))
        .spawn()
        .expect("spawn uwsgi-reload")
}

fn read_log(log: &std::path::Path) -> String {
    let r = |ext: &str| std::fs::read_to_string(log.with_extension(ext)).unwrap_or_default();
    format!("--- stdout ---\n{}--- stderr ---\n{}", r("out"), r("err"))
}

/// Kills the child on drop, whatever the test did.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn second_instance_is_refused_while_the_first_holds_the_lock() {
    let w = World::new("lock", 3);
    // The first instance stays in preflight: its Emperor read never ends.
    let emp = FakeSocket::fixed(&w.emperor_sock, Answer::Silent);
    let _fr = w.serve_fastrouter(false);
    let before = w.mtimes();
    let mut first_args = w.base_args();
    first_args.extend(["--no-drain".into(), "--stats-timeout".into(), "60".into()]);
    let log = w.tmp.path.join("first");
    let mut first = Reaper(spawn_logged(&first_args, &log));
    // It connects only after taking the lock (prepare() comes first).
    assert!(
        emp.wait_hits(1, Duration::from_secs(15)),
        "the first instance never read the Emperor socket"
    );
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first instance exited\n{}",
        read_log(&log)
    );

    // The same directory, spelled three ways.
    let link = w.tmp.path.join("vassals-link");
    std::os::unix::fs::symlink(&w.dir, &link).unwrap();
    let spellings = [
        w.dir_str().to_string(),
        format!("{}/.", w.dir_str()),
        link.to_str().unwrap().to_string(),
    ];
    for dir in &spellings {
        let mut a = w.base_args();
        a[1] = dir.clone();
        a.push("--no-drain".into());
        let start = Instant::now();
        let r = run(&a, BOUND);
        assert_eq!(r.code, Some(3), "{}", r.describe());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not refused at once\n{}",
            r.describe()
        );
        let lines = r.stderr_lines();
        assert_eq!(lines.len(), 1, "{}", r.describe());
        assert!(
            lines[0].contains("another uwsgi-reload") && lines[0].contains("running"),
            "{}",
            r.describe()
        );
        assert!(
            lines[0].contains(dir.as_str()),
            "does not name {dir}\n{}",
            r.describe()
        );
        assert!(r.stdout.is_empty(), "{}", r.describe());
    }
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first instance exited"
    );
    assert_eq!(emp.hits(), 1, "a refused instance read the Emperor socket");

    // Once the first is gone, the lock is free again: the next run gets as
    // far as the (silent) Emperor socket and times out there instead.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let mut a = w.base_args();
    a.extend(["--no-drain".into(), "--stats-timeout".into(), "1".into()]);
    let r = run(&a, BOUND);
    assert_eq!(r.code, Some(3), "{}", r.describe());
    assert!(
        !r.stderr.contains("another uwsgi-reload"),
        "{}",
        r.describe()
    );
    assert!(
        emp.hits() >= 2,
        "the third instance did not read the Emperor socket"
    );
    assert_eq!(w.mtimes(), before);
}

// ----- idle, not busy -------------------------------------------------------------------------

/// A busy loop burns ~100 ticks per second per core; sleeping between
/// events costs next to nothing. 50 ticks over ~2 s is far from both.
const MAX_TICKS: u64 = 50;
const SAMPLE: Duration = Duration::from_secs(2);

fn assert_idle(child: &mut Child, what: &str, log: &std::path::Path) -> u64 {
    let pid = child.id();
    let t0 = fakes::cpu_ticks(pid);
    std::thread::sleep(SAMPLE);
    assert!(
        child.try_wait().unwrap().is_none(),
        "{what}: the process exited during the sample\n{}",
        read_log(log)
    );
    let used = fakes::cpu_ticks(pid) - t0;
    eprintln!("{what}: {used} clock ticks in {SAMPLE:?}");
    assert!(
        used < MAX_TICKS,
        "{what}: {used} clock ticks of CPU in {SAMPLE:?}: busy polling?\n{}",
        read_log(log)
    );
    used
}

#[test]
fn idle_while_a_stats_read_hangs() {
    let w = World::new("idlepre", 3);
    let emp = FakeSocket::fixed(&w.emperor_sock, Answer::Silent);
    let _fr = w.serve_fastrouter(false);
    let before = w.mtimes();
    let mut a = w.base_args();
    a.extend(["--no-drain".into(), "--stats-timeout".into(), "60".into()]);
    let log = w.tmp.path.join("run");
    let mut p = Reaper(spawn_logged(&a, &log));
    assert!(emp.wait_hits(1, Duration::from_secs(15)), "never connected");
    assert_idle(&mut p.0, "waiting on a silent Emperor socket", &log);
    assert_eq!(
        emp.hits(),
        1,
        "reconnected while the first read was pending"
    );
    assert_eq!(w.mtimes(), before);
}

/// A consistent world in which the Emperor never shows the reload the tool
/// asks for: the rollout waits, reading the sockets once per
/// --check-interval, and sleeps in between.
#[test]
fn idle_while_a_rollout_makes_no_progress() {
    let w = World::new("idleroll", 3);
    let (emp, fr) = w.serve_consistent(false);
    let mut a = w.base_args();
    a.extend(
        ["--no-drain", "--check-interval", "1", "--timeout", "60"]
            .iter()
            .map(|s| s.to_string()),
    );
    let log = w.tmp.path.join("run");
    let mut p = Reaper(spawn_logged(&a, &log));
    assert!(emp.wait_hits(1, Duration::from_secs(15)), "never connected");
    // Past preflight and the first touch.
    std::thread::sleep(Duration::from_millis(500));
    let (e0, f0) = (emp.hits(), fr.hits());
    assert_idle(&mut p.0, "waiting for a reload that never shows", &log);
    let out = read_log(&log);
    assert!(
        out.contains("reloading 3 vassal(s)") && out.contains("touched"),
        "the rollout did not get to waiting on a touched vassal\n{out}"
    );
    let (e1, f1) = (emp.hits(), fr.hits());
    // ~2 reads per socket in 2 s, plus the double read after a touch.
    assert!(
        e1 - e0 <= 12 && f1 - f0 <= 12,
        "{} Emperor and {} fastrouter reads in {SAMPLE:?} at --check-interval 1",
        e1 - e0,
        f1 - f0
    );
    assert!(
        e1 > e0 && f1 > f0,
        "no reads at all during the sample: not polling either"
    );
}

// ----- a router in the Emperor directory ----------------------------------------

/// A config that runs a fastrouter is the router, not an app vassal: the
/// plan leaves it out unless --only names it.
#[test]
fn a_router_config_is_left_out_unless_named() {
    let w = World::new("router", 3);
    std::fs::write(
        w.dir.join("app_03.ini"),
        "[uwsgi]\nmaster = true\nfastrouter = /run/fake/fr.sock\nfastrouter-subscription-server = /run/fake/sub.sock\n",
    )
    .unwrap();
    fakes::set_mtime(&w.dir.join("app_03.ini"), fakes::OLD_MTIME);
    let _served = w.serve_consistent(false);
    let before = w.mtimes();
    let r = run(&mode_args(&w, Mode::DryRun, &[]), BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let waves: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("wave "))
        .collect();
    assert!(!waves.is_empty(), "{}", r.describe());
    assert!(
        waves.iter().all(|l| !l.contains("app_03.ini")),
        "{}",
        r.describe()
    );
    let r = run(
        &mode_args(&w, Mode::DryRun, &["--only", "app_03.ini"]),
        BOUND,
    );
    assert!(r.stdout.contains("app_03.ini"), "{}", r.describe());
    assert_eq!(w.mtimes(), before, "{}", r.describe());
}

// ----- a uWSGI with a known reload defect ----------------------------------------

/// uWSGI 2.0.27's touch reloads stop reloading workers (docs/VERSIONS.md):
/// refused with exit 3 and nothing touched, unless --accept-uwsgi-defect.
#[test]
fn a_uwsgi_with_a_known_reload_defect_is_refused() {
    let w = World::new("defect", 2);
    let doc = w
        .emperor_doc()
        .replace("\"version\":\"2.0.21-debian\"", "\"version\":\"2.0.27\"");
    let _emp = FakeSocket::fixed(&w.emperor_sock, Answer::Bytes(doc.into_bytes()));
    let _fr = w.serve_fastrouter(false);
    let before = w.mtimes();
    let r = run(&w.base_args(), BOUND);
    assert_eq!(r.code, Some(3), "{}", r.describe());
    assert!(r.stderr.contains("2.0.27"), "{}", r.describe());
    assert!(
        r.stderr.contains("--accept-uwsgi-defect"),
        "{}",
        r.describe()
    );
    assert_eq!(w.mtimes(), before, "{}", r.describe());
    let r = run(
        &mode_args(&w, Mode::DryRun, &["--accept-uwsgi-defect"]),
        BOUND,
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    assert_eq!(w.mtimes(), before, "{}", r.describe());
}

/// A version with a defect that does not stop a rollout (2.0.27 to 2.0.30:
/// a master-FIFO fork reload can hang) is named by the dry run's doctor,
/// with its evidence, and does not refuse it.
#[test]
fn an_advisory_version_defect_is_named_not_refused() {
    let w = World::new("advisory", 2);
    let doc = w
        .emperor_doc()
        .replace("\"version\":\"2.0.21-debian\"", "\"version\":\"2.0.29\"");
    let _emp = FakeSocket::fixed(&w.emperor_sock, Answer::Bytes(doc.into_bytes()));
    let _fr = w.serve_fastrouter(false);
    let r = run(&mode_args(&w, Mode::DryRun, &[]), BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("2.0.27 to 2.0.30"), "{}", r.describe());
    assert!(out.contains("unbit/uwsgi#2722"), "{}", r.describe());
}

// ----- --stale-since -------------------------------------------------------------------

/// Every vassal of the fake fleet runs a generation started at OLD_MTIME.
/// Against an earlier instant all are current: the rollout, the dry run
/// and `status` agree that there is nothing to do (exit 0, nothing
/// touched). Against a later one all are stale: the dry run plans them.
/// (The dry run exited 1 when the engine finished before its first action
/// with nothing to do.)
#[test]
fn stale_since_current_fleet_is_nothing_to_do() {
    let w = World::new("stale", 3);
    let (_emp, _fr) = w.serve_consistent(false);
    let before = w.mtimes();
    let earlier = (fakes::OLD_MTIME - 100).to_string();
    for mode in [Mode::Reload, Mode::DryRun, Mode::Status] {
        let r = run(&mode_args(&w, mode, &["--stale-since", &earlier]), BOUND);
        assert_eq!(r.code, Some(0), "{mode:?}\n{}", r.describe());
        assert_eq!(w.mtimes(), before, "{mode:?} touched\n{}", r.describe());
        let out = format!("{}{}", r.stdout, r.stderr);
        assert!(out.contains("current"), "{mode:?}\n{}", r.describe());
    }
    let later = (fakes::OLD_MTIME + 100).to_string();
    let r = run(
        &mode_args(&w, Mode::DryRun, &["--stale-since", &later]),
        BOUND,
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    for n in &w.names {
        assert!(
            r.stdout.contains(n.as_str()),
            "{n} not planned\n{}",
            r.describe()
        );
    }
    assert!(!r.stdout.contains("already current"), "{}", r.describe());
    let r = run(
        &mode_args(&w, Mode::Status, &["--stale-since", &later]),
        BOUND,
    );
    assert!(r.stdout.contains("3 stale"), "{}", r.describe());
    assert_eq!(w.mtimes(), before);
}

/// A node whose last refresh was this tool's own packet (`cores` 0: an
/// early announce or an undone drain) keeps the vassal routed but is no
/// evidence of it: `status` reads that vassal `unrouted`, names the reason,
/// and marks the node `refreshed_by: not_the_vassal`; the others are the
/// vassals' own. Fails if the tool's packet counts for the vassal or the
/// reason is not given.
#[test]
fn status_names_a_node_only_the_tools_packet_refreshed() {
    let w = World::new("ourpkt", 3);
    let emp_doc = w.emperor_doc();
    let _emp = FakeSocket::fixed(&w.emperor_sock, Answer::Bytes(emp_doc.into_bytes()));
    let names = w.names.clone();
    let _fr = FakeSocket::scripted(&w.fastrouter_sock, move |_| {
        let doc = fakes::fastrouter_doc(&names, fakes::wall_now(), false);
        // The first node's last packet was ours.
        Answer::Bytes(doc.replacen("\"cores\":1", "\"cores\":0", 1).into_bytes())
    });
    for extra in [&["--json"][..], &[][..]] {
        let r = run(&mode_args(&w, Mode::Status, extra), BOUND);
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.describe());
        if extra.is_empty() {
            assert!(
                r.stdout.contains("(last packet not the vassal's)")
                    && r.stdout.contains("not the vassal's own (cores 0"),
                "{}",
                r.describe()
            );
            continue;
        }
        let doc: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON doc");
        let rows = doc["vassals"].as_array().expect("vassals");
        let first = &rows[0];
        assert_eq!(first["availability"], "unrouted", "{}", r.describe());
        assert_eq!(
            first["nodes"][0]["refreshed_by"],
            "not_the_vassal",
            "{}",
            r.describe()
        );
        assert!(
            first["why"]
                .as_str()
                .unwrap_or("")
                .contains("not the vassal's own (cores 0"),
            "{}",
            r.describe()
        );
        for row in &rows[1..] {
            assert_eq!(row["availability"], "serving", "{}", r.describe());
            assert_eq!(
                row["nodes"][0]["refreshed_by"],
                "vassal",
                "{}",
                r.describe()
            );
            assert!(row["why"].is_null(), "{}", r.describe());
        }
    }
}
