//! What operators' plumbing sees: results on stdout, warnings and errors on
//! stderr; journald priorities (`<3>`, `<4>`, `<6>`) on stderr lines only
//! when stderr really is the journal (`JOURNAL_STREAM` names its device and
//! inode); `--timestamps` puts the wall-clock time on human lines.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::Duration;

use fakes::{run, World};

const BOUND: Duration = Duration::from_secs(20);

/// A world whose configs draw a doctor warning (no `need-app`) and name no
/// subscription server (the "drain is off" note).
fn warned_world(tag: &str) -> World {
    let w = World::new(tag, 2);
    for n in &w.names {
        std::fs::write(w.dir.join(n), "[uwsgi]\nsocket = /run/fake/%n.sock\n").unwrap();
        fakes::set_mtime(&w.dir.join(n), fakes::OLD_MTIME);
    }
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
    w
}

#[test]
fn results_on_stdout_warnings_on_stderr() {
    let w = warned_world("streams");
    let _s = w.serve_consistent(false);
    let mut args = w.base_args();
    args.push("--dry-run".into());
    let r = run(&args, BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let out = r.stdout_lines();
    assert!(out[0].starts_with("uwsgi-reload "), "{}", r.describe());
    assert!(
        out.iter().any(|l| l.starts_with("wave 1:")),
        "{}",
        r.describe()
    );
    assert!(
        out.iter().all(|l| !l.contains("warning")),
        "{}",
        r.describe()
    );
    let err = r.stderr_lines();
    assert!(
        err.iter()
            .any(|l| l.starts_with("warning:") && l.contains("need-app")),
        "{}",
        r.describe()
    );
    // Nothing on stderr is a result.
    assert!(
        err.iter().all(|l| l.starts_with("warning:")),
        "{}",
        r.describe()
    );
}

/// Runs `args` with stderr on a pipe whose `dev:ino` is known; `journal`:
/// JOURNAL_STREAM names that pipe (else a neighbouring inode).
fn stderr_with_journal_stream(args: &[String], journal: bool) -> (Option<i32>, String, String) {
    let (rd, wr) = nix::unistd::pipe().unwrap();
    let st = nix::sys::stat::fstat(wr.as_raw_fd()).unwrap();
    let ino = if journal { st.st_ino } else { st.st_ino + 1 };
    let mut cmd = binary::command(args);
    cmd.env("JOURNAL_STREAM", format!("{}:{ino}", st.st_dev))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(wr));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::from(rd).read_to_string(&mut s).unwrap();
        s
    });
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        reader.join().unwrap(),
    )
}

#[test]
fn journal_priorities_only_when_stderr_is_the_journal() {
    let w = warned_world("journal");
    let _s = w.serve_consistent(false);
    let mut dry = w.base_args();
    dry.extend(["--dry-run".to_string(), "--json".to_string()]);

    let (code, stdout, err) = stderr_with_journal_stream(&dry, true);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let ok =
            (l.starts_with("<4>warning:")) || (l.starts_with("<6>") && !l.contains("warning:"));
        assert!(ok, "stderr line without its priority: {l:?}\n{err}");
    }
    assert!(lines.iter().any(|l| l.starts_with("<4>")), "{err}");
    assert!(lines.iter().any(|l| l.starts_with("<6>wave 1:")), "{err}");
    // The JSON stream is for machines: never prefixed.
    assert!(stdout.lines().all(|l| l.starts_with('{')), "{stdout}");

    // An error: the refusal of a run whose Emperor socket is missing.
    let mut refused = w.base_args();
    refused[5] = w
        .tmp
        .path
        .join("missing.sock")
        .to_str()
        .unwrap()
        .to_string();
    let (code, _, err) = stderr_with_journal_stream(&refused, true);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.starts_with("<3>uwsgi-reload: "), "{err}");

    // JOURNAL_STREAM inherited but stderr redirected elsewhere: no prefix.
    let (code, _, err) = stderr_with_journal_stream(&dry, false);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.lines().all(|l| !l.starts_with('<')), "{err}");
    let (_, _, err) = stderr_with_journal_stream(&refused, false);
    assert!(err.starts_with("uwsgi-reload: "), "{err}");
}

#[test]
fn timestamps_are_wall_clock_rfc3339_utc() {
    let w = warned_world("stamps");
    let _s = w.serve_consistent(false);
    let mut args = w.base_args();
    args.extend(["--dry-run".to_string(), "--timestamps".to_string()]);
    let r = run(&args, BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let year = 1970 + fakes::wall_now() / 31_556_952;
    for l in r.stdout_lines().iter().chain(r.stderr_lines().iter()) {
        // [YYYY-MM-DDTHH:MM:SS.mmmZ] text
        let b = l.as_bytes();
        let shape = l.len() > 27
            && b[0] == b'['
            && b[5] == b'-'
            && b[8] == b'-'
            && b[11] == b'T'
            && b[14] == b':'
            && b[17] == b':'
            && b[20] == b'.'
            && &l[24..27] == "Z] ";
        assert!(shape, "not an RFC 3339 UTC stamp: {l:?}\n{}", r.describe());
        let y: i64 = l[1..5].parse().unwrap();
        assert!((y - year).abs() <= 1, "{l}");
    }
    // Without the flag: the default has no wall-clock stamp.
    let r = run(
        &w.base_args()
            .into_iter()
            .chain(["--dry-run".to_string()])
            .collect::<Vec<_>>(),
        BOUND,
    );
    assert!(
        r.stdout_lines().iter().all(|l| !l.starts_with("[20")),
        "{}",
        r.describe()
    );
}
