//! Every bad input a new user meets in the first hour, as one table: the
//! arguments (and what is at the socket paths), a fragment the ONE stderr
//! line must hold, and the exit code. Each row also proves that nothing else
//! was printed (stdout empty, one stderr line: the refusal is decided before
//! the header, notes or doctor warnings would be printed), that no Rust debug
//! text (`Unix("…")`) reaches the user, and that no mtime changed.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::time::Duration;

use fakes::{run, Answer, FakeSocket, World};

const BOUND: Duration = Duration::from_secs(20);

/// What sits at the two stats socket paths of a row.
#[derive(Clone, Copy, Debug)]
enum At {
    /// Nothing at either path.
    Nothing,
    /// A good Emperor socket; the fastrouter path is a regular file.
    FastrouterIsFile,
    /// A good fastrouter socket; the Emperor path is a directory.
    EmperorIsDir,
}

struct Row {
    what: &'static str,
    at: At,
    /// The arguments after the world's own (`{fr}`, `{emp}`: its socket
    /// paths); `base` false: these replace them.
    args: &'static [&'static str],
    base: bool,
    /// Fragments the one stderr line must contain (`{fr}`, `{emp}` expanded).
    must: &'static [&'static str],
    code: i32,
}

const ROWS: &[Row] = &[
    Row {
        what: "a stats socket path that is a regular file",
        at: At::FastrouterIsFile,
        args: &["--no-drain"],
        base: true,
        must: &["{fr}", "is a regular file, not a socket"],
        code: 3,
    },
    Row {
        what: "a stats socket path that is a directory",
        at: At::EmperorIsDir,
        args: &["--no-drain"],
        base: true,
        must: &["{emp}", "is a directory, not a socket"],
        code: 3,
    },
    Row {
        what: "status on a stats socket path that is a regular file",
        at: At::FastrouterIsFile,
        args: &["status"],
        base: true,
        must: &["{fr}", "is a regular file, not a socket"],
        code: 3,
    },
    Row {
        what: "--dry-run on a stats socket path that is a directory",
        at: At::EmperorIsDir,
        args: &["--dry-run"],
        base: true,
        must: &["{emp}", "is a directory, not a socket"],
        code: 3,
    },
    Row {
        what: "uWSGI's :PORT form is read as 127.0.0.1:PORT (nothing listens on port 1)",
        at: At::Nothing,
        args: &[
            "--fastrouter-stats-socket",
            ":1",
            "--emperor-stats-socket",
            ":1",
        ],
        base: false,
        must: &["127.0.0.1:1"],
        code: 2,
    },
    Row {
        what: "uWSGI's :PORT form reaches 127.0.0.1:PORT (nothing listens on ports 1 and 2)",
        at: At::Nothing,
        args: &[
            "--fastrouter-stats-socket",
            ":1",
            "--emperor-stats-socket",
            ":2",
        ],
        base: false,
        must: &["cannot connect to 127.0.0.1:2"],
        code: 3,
    },
    Row {
        what: "the same fastrouter stats socket twice",
        at: At::Nothing,
        args: &["--fastrouter-stats-socket", "{fr}"],
        base: true,
        must: &["--fastrouter-stats-socket", "{fr} twice"],
        code: 2,
    },
    Row {
        what: "one socket given as the Emperor's and the fastrouter's",
        at: At::Nothing,
        args: &[
            "--fastrouter-stats-socket",
            "{emp}",
            "--emperor-stats-socket",
            "{emp}",
        ],
        base: false,
        must: &["both name {emp}"],
        code: 2,
    },
    Row {
        what: "--only matching nothing echoes the pattern",
        at: At::Nothing,
        args: &["--only", "zz*"],
        base: true,
        must: &["--only 'zz*'"],
        code: 2,
    },
    Row {
        what: "--only and --exclude selecting nothing echo both",
        at: At::Nothing,
        args: &["--only", "app_01*", "--exclude", "*.ini"],
        base: true,
        must: &["--only 'app_01*'", "--exclude '*.ini'"],
        code: 2,
    },
    Row {
        what: "a missing socket with doctor warnings and a drain note pending: only the refusal",
        at: At::Nothing,
        args: &[],
        base: true,
        must: &["nothing was touched", "{emp}"],
        code: 3,
    },
];

#[test]
fn every_bad_input_is_one_line_and_its_exit_code() {
    let mut problems = Vec::new();
    for (i, row) in ROWS.iter().enumerate() {
        let w = World::new(&format!("badinput{i}"), 2);
        // Configs that draw doctor warnings (no need-app) and name no
        // subscription server (the "drain is off" note): lines that must
        // not come before a refusal.
        for n in &w.names {
            std::fs::write(w.dir.join(n), "[uwsgi]\nsocket = /run/fake/%n.sock\n").unwrap();
            fakes::set_mtime(&w.dir.join(n), fakes::OLD_MTIME);
        }
        fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
        let fr = w.fastrouter_sock.to_str().unwrap().to_string();
        let emp = w.emperor_sock.to_str().unwrap().to_string();
        let _served = match row.at {
            At::Nothing => None,
            At::FastrouterIsFile => {
                std::fs::write(&w.fastrouter_sock, "not a socket").unwrap();
                Some(FakeSocket::fixed(
                    &w.emperor_sock,
                    Answer::Bytes(w.emperor_doc().into_bytes()),
                ))
            }
            At::EmperorIsDir => {
                std::fs::create_dir(&w.emperor_sock).unwrap();
                Some(w.serve_fastrouter(false))
            }
        };
        let expand = |s: &str| s.replace("{fr}", &fr).replace("{emp}", &emp);
        let mut args: Vec<String> = Vec::new();
        let extra: Vec<String> = row.args.iter().map(|a| expand(a)).collect();
        // A command word comes first.
        let (cmd, rest): (Vec<String>, Vec<String>) =
            extra.into_iter().partition(|a| a == "status");
        args.extend(cmd);
        if row.base {
            args.extend(w.base_args());
        } else {
            args.extend(["--emperor-path".to_string(), w.dir_str().to_string()]);
        }
        args.extend(["--stats-timeout".to_string(), "2".to_string()]);
        args.extend(rest);
        let before = w.mtimes();
        let r = run(&args, BOUND);
        let mut p = Vec::new();
        if r.code != Some(row.code) {
            p.push(format!("exit {:?}, expected {}", r.code, row.code));
        }
        if !r.stdout.is_empty() {
            p.push("printed on stdout".to_string());
        }
        if r.stderr.lines().count() != 1 {
            p.push(format!(
                "{} lines on stderr, expected 1",
                r.stderr.lines().count()
            ));
        }
        for m in row.must {
            let m = expand(m);
            if !r.stderr.contains(&m) {
                p.push(format!("stderr lacks {m:?}"));
            }
        }
        for debug in ["Unix(", "Tcp(", "Some(", "os error 111"] {
            if r.stderr.contains(debug) {
                p.push(format!("stderr shows {debug:?}"));
            }
        }
        if w.mtimes() != before {
            p.push("an mtime changed".to_string());
        }
        if !p.is_empty() {
            problems.push(format!("{}: {}\n{}", row.what, p.join("; "), r.describe()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
