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
