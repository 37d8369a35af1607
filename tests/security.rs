//! A root tool on a shared host (docs/SECURITY.md), through the real binary
//! against fake stats sockets: what an application user controls (the
//! target of a config link, its app directory) cannot make the tool block,
//! read without bound, or touch a vassal. Each test names the rule it holds.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::path::Path;
use std::time::Duration;

use fakes::{run, Run, World};

/// Generous: a refusal is immediate; only a hang comes near it.
const BOUND: Duration = Duration::from_secs(30);

/// The three commands that read the configs, each with `extra`.
fn commands(w: &World, extra: &[&str]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for mode in ["reload", "dry-run", "status"] {
        let mut a = Vec::new();
        if mode == "status" {
            a.push("status".to_string());
        }
        a.extend(w.base_args());
        a.push("--no-drain".into());
        if mode == "dry-run" {
            a.push("--dry-run".into());
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        out.push(a);
    }
    out
}

/// Exit 3 in one stderr line containing every one of `must`, nothing on
/// stdout, no mtime changed.
fn assert_refused(w: &World, r: &Run, before: &fakes::MtimeMap, must: &[&str]) {
    assert!(!r.timed_out, "blocked\n{}", r.describe());
    assert_eq!(r.code, Some(3), "{}", r.describe());
    let lines = r.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", r.describe());
    for m in must {
        assert!(lines[0].contains(m), "no {m:?}\n{}", r.describe());
    }
    assert!(!r.stdout.contains("touched"), "{}", r.describe());
    assert_eq!(&w.mtimes(), before, "{}", r.describe());
}

/// `app_02.ini` becomes a link to `target`, in an app directory outside
/// the Emperor's.
fn link_config(w: &World, target: &Path) {
    let p = w.dir.join("app_02.ini");
    std::fs::remove_file(&p).unwrap();
    std::os::unix::fs::symlink(target, &p).unwrap();
    fakes::set_mtime(&p, fakes::OLD_MTIME);
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
}

/// A config that is a FIFO (no writer), `/dev/zero`, a directory or a
/// sparse 10 GiB file: the rollout, `--dry-run` and `status` each refuse at
/// once (exit 3) naming the config and the 1 MiB limit, touching nothing.
#[test]
fn a_config_that_is_not_a_small_regular_file_is_refused_before_anything() {
    let w = World::new("unsafe", 3);
    let app = w.tmp.path.join("app");
    std::fs::create_dir(&app).unwrap();
    let fifo = app.join("app.ini");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let sparse = app.join("big.ini");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    let _served = w.serve_consistent(false);
    for target in [fifo.as_path(), Path::new("/dev/zero"), &app, &sparse] {
        link_config(&w, target);
        let before = w.mtimes();
        for args in commands(&w, &[]) {
            let r = run(&args, BOUND);
            assert_refused(&w, &r, &before, &["app_02.ini", "1024 KiB", "refused"]);
        }
    }
}

/// A 40 KB config of chained `%(...)` (each option four copies of the one
/// before) would expand to hundreds of MB: it is refused like an oversized
/// file, naming the config and the expansion limit.
#[test]
fn a_config_whose_placeholders_blow_up_is_refused() {
    let w = World::new("blowup", 3);
    let mut text = format!("[uwsgi]\no0 = {}\n", "x".repeat(1000));
    for i in 1..400 {
        text.push_str(&format!("o{i} = {}\n", format!("%(o{})", i - 1).repeat(4)));
    }
    let p = w.tmp.path.join("chained.ini");
    std::fs::write(&p, text).unwrap();
    link_config(&w, &p);
    let _served = w.serve_consistent(false);
    let before = w.mtimes();
    for args in commands(&w, &[]) {
        let r = run(&args, BOUND);
        assert_refused(&w, &r, &before, &["app_02.ini", "4096 KiB"]);
    }
}

// ----- the one-instance lock ----------------------------------------------------------------

/// Kills the child on drop, whatever the test did.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A rollout that gets past the lock and stops at the (silent) Emperor
/// socket: exit 3 on the stats read, not on the lock.
fn past_the_lock(w: &World, emp: &fakes::FakeSocket, env: &[(&str, &Path)], extra: &[&str]) {
    let hits = emp.hits();
    let mut a = w.base_args();
    a.extend(["--no-drain", "--stats-timeout", "1"].map(String::from));
    a.extend(extra.iter().map(|s| s.to_string()));
    let r = fakes::run_cmd(&a, BOUND * 2, |c| {
        for (k, v) in env {
            c.env(k, v);
        }
    });
    assert_eq!(r.code, Some(3), "{}", r.describe());
    assert!(!r.stderr.contains("holds the lock"), "{}", r.describe());
    assert!(
        emp.hits() > hits,
        "never read the Emperor socket\n{}",
        r.describe()
    );
    assert!(!r.stdout.contains("touched (mtime"), "{}", r.describe());
}

/// Any local user can flock a directory they can read: the tool's lock is
/// no longer on the Emperor directory, so that locks no rollout out.
#[test]
fn another_users_flock_on_the_directory_does_not_block_the_tool() {
    let w = World::new("userflock", 3);
    let emp = fakes::FakeSocket::fixed(&w.emperor_sock, fakes::Answer::Silent);
    let _fr = w.serve_fastrouter(false);
    let mut holder = Reaper(
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["flock", "-n", w.dir_str(), "sleep", "600"])
            .spawn()
            .expect("setpriv"),
    );
    // The holder has the directory's flock once a flock of ours fails.
    let dir = std::fs::File::open(&w.dir).unwrap();
    let mut held = false;
    for _ in 0..300 {
        #[allow(deprecated)]
        let r = nix::fcntl::flock(
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        );
        match r {
            Ok(()) => {
                #[allow(deprecated)]
                let _ = nix::fcntl::flock(
                    std::os::fd::AsRawFd::as_raw_fd(&dir),
                    nix::fcntl::FlockArg::Unlock,
                );
            }
            Err(_) => {
                held = true;
                break;
            }
        }
        assert!(
            holder.0.try_wait().unwrap().is_none(),
            "flock as nobody exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(held, "the other user never took the directory's flock");
    past_the_lock(&w, &emp, &[], &[]);
}

/// A second instance is refused at once naming the first one's pid; with
/// `--wait-lock` it waits, and goes on once the holder is gone. The lock
/// directory comes from UWSGI_RELOAD_LOCK_DIR.
#[test]
fn a_second_instance_names_the_holder_and_wait_lock_outlasts_it() {
    let w = World::new("waitlock", 3);
    let locks = w.tmp.path.join("locks");
    let env = [("UWSGI_RELOAD_LOCK_DIR", locks.as_path())];
    let emp = fakes::FakeSocket::fixed(&w.emperor_sock, fakes::Answer::Silent);
    let _fr = w.serve_fastrouter(false);
    let mut first_args = w.base_args();
    first_args.extend(["--no-drain", "--stats-timeout", "60"].map(String::from));
    let mut first = Reaper(
        binary::command(&first_args)
            .env(env[0].0, env[0].1)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // It reads the Emperor socket only after taking the lock.
    assert!(emp.wait_hits(1, BOUND), "the first instance never read");
    let mut a = w.base_args();
    a.push("--no-drain".into());
    let r = fakes::run_cmd(&a, BOUND, |c| {
        c.env(env[0].0, env[0].1);
    });
    assert_eq!(r.code, Some(3), "{}", r.describe());
    let line = format!("another uwsgi-reload (pid {}) is running", first.0.id());
    assert!(r.stderr.contains(&line), "{}", r.describe());
    assert!(r.stderr.contains(w.dir_str()), "{}", r.describe());
    assert_eq!(
        emp.hits(),
        1,
        "the refused instance read the Emperor socket"
    );
    // The lock file is the tool's own, 0600, in the 0700 directory.
    let entries: Vec<_> = std::fs::read_dir(&locks).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        entries[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The holder goes away while the next one waits.
    let pid = first.0.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    });
    past_the_lock(&w, &emp, &env, &["--wait-lock", "60"]);
    killer.join().unwrap();
    let _ = first.0.wait();
}

/// Two configs that are one file (hard links): one touch would reload both
/// behind K. Refused when the configs are selected (exit 2, like the other
/// selection errors), naming both, touching nothing.
#[test]
fn hard_linked_configs_are_refused() {
    let w = World::new("hardlink", 3);
    std::fs::remove_file(w.dir.join("app_03.ini")).unwrap();
    std::fs::hard_link(w.dir.join("app_02.ini"), w.dir.join("app_03.ini")).unwrap();
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
    let _served = w.serve_consistent(false);
    let before = w.mtimes();
    for args in commands(&w, &[]) {
        let r = run(&args, BOUND);
        assert_eq!(r.code, Some(2), "{}", r.describe());
        let lines = r.stderr_lines();
        assert_eq!(lines.len(), 1, "{}", r.describe());
        assert!(
            lines[0].contains("app_02.ini and app_03.ini") && lines[0].contains("hard links"),
            "{}",
            r.describe()
        );
        assert_eq!(w.mtimes(), before);
    }
}

/// A `subscribe-freq` beyond an hour (here one that overflows the engine's
/// millisecond windows) is refused at preflight, naming the config and the
/// limit.
#[test]
fn an_absurd_subscribe_freq_is_refused() {
    let w = World::new("freq", 3);
    let p = w.dir.join("app_02.ini");
    std::fs::write(
        &p,
        "[uwsgi]\nsocket = /run/fake/%n.sock\nsubscribe-freq = 9223372036854775807\n",
    )
    .unwrap();
    fakes::set_mtime(&p, fakes::OLD_MTIME);
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
    let _served = w.serve_consistent(false);
    let before = w.mtimes();
    for args in commands(&w, &[]) {
        let r = run(&args, BOUND);
        assert_refused(&w, &r, &before, &["app_02.ini", "subscribe-freq", "3600 s"]);
    }
}

/// One tenant's config claiming another's node (`subscribe2 addr=` naming
/// the victim's socket): the drain would unsubscribe the victim. Refused at
/// preflight (exit 3), naming both configs and the address.
#[test]
fn two_configs_claiming_one_node_are_refused() {
    let w = World::new("twonodes", 3);
    let p = w.dir.join("app_03.ini");
    std::fs::write(
        &p,
        "[uwsgi]\nsocket = /run/fake/app_03.sock\nsubscribe2 = server=/run/fake/ss.sock,key=k,addr=/run/fake/app_01.sock\n",
    )
    .unwrap();
    fakes::set_mtime(&p, fakes::OLD_MTIME);
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
    let _served = w.serve_consistent(false);
    let before = w.mtimes();
    for args in commands(&w, &[]) {
        let r = run(&args, BOUND);
        assert_refused(
            &w,
            &r,
            &before,
            &["app_01.ini and app_03.ini", "/run/fake/app_01.sock"],
        );
    }
}
