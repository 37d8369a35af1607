//! Usage errors, driven through the real binary: every bad flag, value or
//! path exits 2 with ONE line on stderr naming the flag and what was
//! expected, prints nothing on stdout, and changes no mtime in the Emperor
//! directory. Also `--help` (every flag the parser accepts is listed) and
//! `--version`.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::collections::BTreeSet;
use std::time::Duration;

use fakes::{run, run_cmd, Run, World};

const BOUND: Duration = Duration::from_secs(20);

/// Every flag `src/cli/args.rs` accepts.
const FLAGS: &[&str] = &[
    "-h",
    "--help",
    "-V",
    "--version",
    "-q",
    "--quiet",
    "--json",
    "--keep-going",
    "--no-drain",
    "--no-repair",
    "--early-announce",
    "--no-early-announce",
    "--allow-downtime",
    "--accept-uwsgi-defect",
    "--touch-target",
    "--dry-run",
    "--syslog",
    "--timestamps",
    "--timeline",
    "--strict",
    "--only",
    "--exclude",
    "--emperor-path",
    "--fastrouter-stats-socket",
    "--emperor-stats-socket",
    "--vassal-config-file-suffix",
    "--minimum-active-vassals",
    "--timeout",
    "--check-interval",
    "--stats-timeout",
    "--wait-lock",
    "--max-failures",
    "--max-parallel",
    "--subscription-server",
    "--drain-timeout",
    "--node-name",
    "--deadline",
    "--canary",
    "--min-ready",
    "--max-unavailable",
    "--probe",
    "--subscription-tolerance",
    "--metrics-file",
    "--stale-since",
    "--generate",
];

/// The flags that take one value, with a valid value each.
const VALUE_FLAGS: &[(&str, &str)] = &[
    ("--emperor-path", "/tmp"),
    ("--fastrouter-stats-socket", "/tmp/fr.sock"),
    ("--emperor-stats-socket", "/tmp/emp.sock"),
    ("--vassal-config-file-suffix", ".ini"),
    ("--minimum-active-vassals", "1"),
    ("--timeout", "60"),
    ("--check-interval", "0.5"),
    ("--stats-timeout", "5"),
    ("--wait-lock", "10"),
    ("--max-failures", "2"),
    ("--max-parallel", "2"),
    ("--subscription-server", "/tmp/sub.sock"),
    ("--drain-timeout", "10"),
    ("--node-name", "/run/{stem}.sock"),
    ("--deadline", "600"),
    ("--canary", "1"),
    ("--min-ready", "2"),
    ("--max-unavailable", "50%"),
    ("--probe", "/health"),
    ("--subscription-tolerance", "30"),
    ("--metrics-file", "/tmp/uwsgi-reload.prom"),
    ("--stale-since", "2026-12-01T10:00:00Z"),
    ("--timeline", "/tmp/uwsgi-reload-timeline.svg"),
    ("--generate", "man"),
];

fn world(tag: &str) -> World {
    World::new(tag, 3)
}

/// Checks one usage error; returns the problems found (empty: fine).
fn usage_problems(w: &World, r: &Run, must: &[&str], before: &fakes::MtimeMap) -> Vec<String> {
    let mut p = Vec::new();
    if r.timed_out {
        p.push("did not exit within the bound".to_string());
    }
    if r.code != Some(2) {
        p.push(format!("exit code {:?}, expected 2", r.code));
    }
    if !r.stdout.is_empty() {
        p.push("wrote to stdout".to_string());
    }
    let lines = r.stderr_lines();
    if lines.len() != 1 || !r.stderr.ends_with('\n') || r.stderr.matches('\n').count() != 1 {
        p.push(format!(
            "expected exactly one line on stderr, got {}",
            lines.len()
        ));
    }
    for m in must {
        if !r.stderr.contains(m) {
            p.push(format!("stderr does not mention {m:?}"));
        }
    }
    if &w.mtimes() != before {
        p.push("an mtime in the Emperor directory changed".to_string());
    }
    p
}

/// Runs `args`, expects a usage error mentioning every `must`.
fn expect_usage(w: &World, args: &[String], must: &[&str]) {
    let before = w.mtimes();
    let r = run(args, BOUND);
    let p = usage_problems(w, &r, must, &before);
    assert!(p.is_empty(), "{}\n{}", p.join("\n"), r.describe());
}

/// The base arguments plus `extra`.
fn with(w: &World, extra: &[&str]) -> Vec<String> {
    let mut a = w.base_args();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// The base arguments without `flag` and its value.
fn without(w: &World, flag: &str) -> Vec<String> {
    let a = w.base_args();
    let i = a.iter().position(|x| x == flag).expect("flag in base args");
    let mut out = a[..i].to_vec();
    out.extend_from_slice(&a[i + 2..]);
    out
}

// ----- required flags -------------------------------------------------------

#[test]
fn missing_emperor_path() {
    let w = world("noep");
    expect_usage(&w, &without(&w, "--emperor-path"), &["--emperor-path"]);
}

#[test]
fn missing_fastrouter_stats_socket() {
    let w = world("nofr");
    expect_usage(
        &w,
        &without(&w, "--fastrouter-stats-socket"),
        &["--fastrouter-stats-socket", "required"],
    );
}

#[test]
fn missing_emperor_stats_socket() {
    let w = world("noemp");
    expect_usage(
        &w,
        &without(&w, "--emperor-stats-socket"),
        &["--emperor-stats-socket", "required"],
    );
}

#[test]
fn no_arguments_at_all() {
    let w = world("noargs");
    expect_usage(&w, &[], &["--emperor-path", "required"]);
}

#[test]
fn missing_value_at_the_end() {
    let w = world("noval");
    expect_usage(&w, &with(&w, &["--timeout"]), &["--timeout", "value"]);
}

// ----- numbers ----------------------------------------------------------------

#[test]
fn timeout_not_a_number() {
    let w = world("tonan");
    for v in ["abc", "", "nan", "inf", "5s", "1,5"] {
        expect_usage(&w, &with(&w, &["--timeout", v]), &["--timeout", "seconds"]);
    }
}

#[test]
fn timeout_negative() {
    let w = world("toneg");
    expect_usage(
        &w,
        &with(&w, &["--timeout", "-5"]),
        &["--timeout", "-5", "greater than 0"],
    );
    expect_usage(
        &w,
        &with(&w, &["--timeout=-5"]),
        &["--timeout", "-5", "greater than 0"],
    );
}

#[test]
fn timeout_zero() {
    let w = world("tozero");
    for v in ["0", "0.0", "-0"] {
        expect_usage(
            &w,
            &with(&w, &["--timeout", v]),
            &["--timeout", "greater than 0"],
        );
    }
}

#[test]
fn check_interval_zero_or_negative() {
    let w = world("ci");
    for v in ["0", "-1", "-0.5", "x"] {
        expect_usage(
            &w,
            &with(&w, &["--check-interval", v]),
            &["--check-interval", "seconds"],
        );
    }
}

#[test]
fn minimum_active_vassals_negative_or_fraction() {
    let w = world("mav");
    for v in ["-1", "1.5", "one", ""] {
        expect_usage(
            &w,
            &with(&w, &["--minimum-active-vassals", v]),
            &["--minimum-active-vassals", "whole number"],
        );
    }
}

#[test]
fn other_durations_and_counts() {
    let w = world("durs");
    for (flag, v, what) in [
        ("--stats-timeout", "0", "seconds"),
        ("--wait-lock", "-1", "seconds"),
        ("--drain-timeout", "-3", "seconds"),
        ("--deadline", "0", "seconds"),
        ("--min-ready", "-1", "seconds"),
        ("--max-failures", "0", "whole number"),
        ("--max-parallel", "0", "whole number"),
        ("--canary", "-2", "whole number"),
    ] {
        expect_usage(&w, &with(&w, &[flag, v]), &[flag, what]);
    }
}

// ----- shape of the command line -----------------------------------------------

#[test]
fn unknown_flag() {
    let w = world("unk");
    expect_usage(&w, &with(&w, &["--bogus"]), &["--bogus"]);
    expect_usage(&w, &with(&w, &["-x"]), &["-x"]);
    expect_usage(&w, &with(&w, &["--quiet=yes"]), &["--quiet"]);
}

#[test]
fn unexpected_positional_argument() {
    let w = world("pos");
    let mut a = vec!["restart".to_string()];
    a.extend(w.base_args());
    expect_usage(&w, &a, &["restart", "status"]);
}

#[test]
fn value_flag_given_twice() {
    let w = world("twice");
    for (flag, v) in VALUE_FLAGS {
        expect_usage(&w, &with(&w, &[flag, v, flag, v]), &[flag, "twice"]);
    }
}

#[test]
fn keep_going_conflicts_with_max_failures() {
    let w = world("kgmf");
    expect_usage(
        &w,
        &with(&w, &["--keep-going", "--max-failures", "3"]),
        &["--keep-going", "--max-failures"],
    );
}

#[test]
fn early_announce_conflicts_with_its_opposite_and_with_probe() {
    let w = world("eann");
    expect_usage(
        &w,
        &with(&w, &["--early-announce", "--no-early-announce"]),
        &["--early-announce", "--no-early-announce"],
    );
    expect_usage(
        &w,
        &with(&w, &["--early-announce", "--probe", "/health"]),
        &["--early-announce", "--probe"],
    );
}

#[test]
fn no_drain_conflicts_with_drain_timeout() {
    let w = world("nddt");
    expect_usage(
        &w,
        &with(&w, &["--no-drain", "--drain-timeout", "10"]),
        &["--no-drain", "--drain-timeout"],
    );
    expect_usage(
        &w,
        &with(
            &w,
            &["--no-drain", "--subscription-server", "/tmp/sub.sock"],
        ),
        &["--no-drain", "--subscription-server"],
    );
}

#[test]
fn status_takes_no_rollout_options() {
    let w = world("strol");
    for extra in [
        &["--dry-run"][..],
        &["--keep-going"],
        &["--canary", "1"],
        &["--deadline", "9"],
    ] {
        let mut a = vec!["status".to_string()];
        a.extend(with(&w, extra));
        expect_usage(&w, &a, &["status", extra[0]]);
    }
}

#[test]
fn bad_max_unavailable() {
    let w = world("mu");
    for v in ["0", "0%", "101%", "x", "-1", "%", "50%%", "1.5"] {
        expect_usage(
            &w,
            &with(&w, &["--max-unavailable", v]),
            &["--max-unavailable", v],
        );
    }
}

/// `--stale-since` takes an RFC 3339 time, epoch seconds or an existing
/// file; anything else is a usage error naming the flag, nothing touched.
#[test]
fn bad_stale_since() {
    let w = world("stale");
    for v in [
        "",
        "yesterday",
        "2026-12-01",
        "2026-12-01T10:00:00",
        "2026-13-01T10:00:00Z",
        "/no/such/release/dir",
    ] {
        expect_usage(
            &w,
            &with(&w, &["--stale-since", v]),
            &["--stale-since expects an RFC 3339 time"],
        );
    }
}

#[test]
fn node_name_without_placeholder() {
    let w = world("nn");
    for v in ["/run/app.sock", "{stme}.sock", "", "{STEM}"] {
        expect_usage(
            &w,
            &with(&w, &["--node-name", v]),
            &["--node-name", "{stem}"],
        );
    }
}

/// A typo in a placeholder next to a correct one renders names no node
/// has. It is detectable while parsing, like a template with no placeholder.
#[test]

fn node_name_with_unknown_placeholder() {
    let w = world("nnunk");
    for v in [
        "/run/{stem}/{nmae}.sock",
        "{stem}.{suffix}",
        "/run/{stem}.sock{",
    ] {
        expect_usage(&w, &with(&w, &["--node-name", v]), &["--node-name", v]);
    }
}

#[test]
fn bad_socket_addresses() {
    let w = world("sock");
    expect_usage(
        &w,
        &with(&w, &["--emperor-stats-socket", ""]),
        &["--emperor-stats-socket"],
    );
    let mut a = without(&w, "--fastrouter-stats-socket");
    a.extend([
        "--fastrouter-stats-socket".to_string(),
        "localhost:99999".to_string(),
    ]);
    expect_usage(&w, &a, &["--fastrouter-stats-socket", "port"]);
}

#[test]
fn bad_suffix() {
    let w = world("suf");
    for v in ["", "a/b"] {
        expect_usage(
            &w,
            &with(&w, &["--vassal-config-file-suffix", v]),
            &["--vassal-config-file-suffix"],
        );
    }
}

// ----- the Emperor directory -------------------------------------------------------

fn replace_path(w: &World, path: &str) -> Vec<String> {
    let mut a = without(w, "--emperor-path");
    a.extend(["--emperor-path".to_string(), path.to_string()]);
    a
}

#[test]
fn emperor_path_does_not_exist() {
    let w = world("nodir");
    let p = w.tmp.path.join("no-such-dir");
    let p = p.to_str().unwrap();
    expect_usage(
        &w,
        &replace_path(&w, p),
        &["--emperor-path", p, "directory"],
    );
}

#[test]
fn emperor_path_is_a_file() {
    let w = world("file");
    let p = w.dir.join("app_01.ini");
    let p = p.to_str().unwrap();
    expect_usage(
        &w,
        &replace_path(&w, p),
        &["--emperor-path", p, "directory"],
    );
}

#[test]
fn emperor_path_unreadable() {
    use std::os::unix::fs::PermissionsExt;
    let w = world("unread");
    let before = w.mtimes();
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    // The temp dir was created with our effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&w.tmp.path).unwrap()) == 0;
    // root reads anything: run as nobody there.
    let r = run_cmd(&w.base_args(), BOUND, |c| {
        if root {
            use std::os::unix::process::CommandExt;
            c.uid(65534).gid(65534);
        }
    });
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = usage_problems(
        &w,
        &r,
        &["--emperor-path", w.dir_str(), "readable"],
        &before,
    );
    assert!(p.is_empty(), "{}\n{}", p.join("\n"), r.describe());
}

#[test]
fn directory_without_configs() {
    // Nothing here ends in .ini and is a file the Emperor would load.
    let w = World::with_files("nocfg", &["app.conf", "notes.txt", ".hidden.ini", ".ini"]);
    std::fs::create_dir(w.dir.join("subdir.ini")).unwrap();
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
    expect_usage(&w, &w.base_args(), &["--emperor-path", w.dir_str(), ".ini"]);
}

#[test]
fn suffix_matching_nothing() {
    let w = world("sufnone");
    expect_usage(
        &w,
        &with(&w, &["--vassal-config-file-suffix", ".yaml"]),
        &["--emperor-path", ".yaml"],
    );
}

#[test]
fn only_matching_nothing() {
    let w = world("only");
    expect_usage(&w, &with(&w, &["--only", "nomatch*"]), &["--only"]);
}

#[test]
fn exclude_excluding_everything() {
    let w = world("excl");
    expect_usage(&w, &with(&w, &["--exclude", "app_*"]), &["--exclude"]);
}

/// Two links in the Emperor directory to one real file.
fn shared_target_world(tag: &str) -> World {
    let mut w = World::with_files(tag, &["app_03.ini"]);
    let real = w.tmp.path.join("real");
    std::fs::create_dir(&real).unwrap();
    let target = real.join("app.ini");
    std::fs::write(&target, "[uwsgi]\nsocket = /run/fake/%n.sock\n").unwrap();
    fakes::set_mtime(&target, fakes::OLD_MTIME);
    for l in ["app_01.ini", "app_02.ini"] {
        std::os::unix::fs::symlink(&target, w.dir.join(l)).unwrap();
        fakes::set_mtime(&w.dir.join(l), fakes::OLD_MTIME);
        w.names.push(l.to_string());
    }
    w.names.sort();
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
    w
}

#[test]
fn touch_target_with_two_links_to_one_target() {
    let w = shared_target_world("tt");
    expect_usage(
        &w,
        &with(&w, &["--touch-target"]),
        &["--touch-target", "app_01.ini", "app_02.ini"],
    );
}

// ----- the same directory checks for status and --dry-run ------------------------
//
// These need stats sockets that answer, so that a missing check shows as a
// wrong exit code instead of a socket error.

fn served_world(w: &World) -> (fakes::FakeSocket, fakes::FakeSocket) {
    w.serve_consistent(false)
}

#[test]
fn dry_run_directory_without_configs() {
    let w = World::with_files("drnocfg", &["app.conf"]);
    let _s = served_world(&w);
    expect_usage(&w, &with(&w, &["--dry-run"]), &["--emperor-path", ".ini"]);
}

#[test]

fn dry_run_only_matching_nothing() {
    let w = world("dronly");
    let _s = served_world(&w);
    expect_usage(
        &w,
        &with(&w, &["--dry-run", "--only", "nomatch*"]),
        &["--only"],
    );
}

#[test]

fn dry_run_touch_target_with_two_links_to_one_target() {
    let w = shared_target_world("drtt");
    let _s = served_world(&w);
    expect_usage(
        &w,
        &with(&w, &["--dry-run", "--touch-target"]),
        &["--touch-target", "app_01.ini", "app_02.ini"],
    );
}

#[test]

fn status_directory_without_configs() {
    let w = World::with_files("stnocfg", &["app.conf"]);
    let _s = served_world(&w);
    let mut a = vec!["status".to_string()];
    a.extend(w.base_args());
    expect_usage(&w, &a, &["--emperor-path", ".ini"]);
    let w = world("stonly");
    let _s = served_world(&w);
    let mut a = vec!["status".to_string()];
    a.extend(with(&w, &["--only", "nomatch*"]));
    expect_usage(&w, &a, &["--only"]);
}

// ----- --help and --version -------------------------------------------------------

/// The flags a help text defines: the leading `-x`/`--xxx` tokens of each
/// option line (descriptions may mention other programs' flags).
fn help_flags(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let t = line.trim_start();
        if !t.starts_with('-') {
            continue;
        }
        for tok in t.split_whitespace() {
            let tok = tok.trim_end_matches(',');
            if !tok.starts_with('-') {
                break;
            }
            out.insert(tok.to_string());
        }
    }
    out
}

#[test]
fn help_lists_every_flag() {
    for flag in ["--help", "-h"] {
        let r = run(&[flag], BOUND);
        assert_eq!(r.code, Some(0), "{}", r.describe());
        assert!(r.stderr.is_empty(), "{}", r.describe());
        let listed = help_flags(&r.stdout);
        let accepted: BTreeSet<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        let missing: Vec<_> = accepted.difference(&listed).collect();
        let extra: Vec<_> = listed.difference(&accepted).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "help does not match the parser: not in help {missing:?}; in help but not accepted {extra:?}\n{}",
            r.describe()
        );
        assert!(
            r.stdout.contains("status"),
            "help does not mention the status command"
        );
        let exits = r.stdout.split("EXIT STATUS").nth(1).unwrap_or("");
        for code in ["0", "1", "2", "3", "130", "143"] {
            assert!(
                exits.split_whitespace().any(|t| t == code),
                "help does not document exit code {code}\n{}",
                r.describe()
            );
        }
    }
}

#[test]
fn every_listed_flag_is_accepted() {
    // The other direction, through the parser itself: each flag of the
    // list, given alone with a valid value, is never "invalid option".
    let w = world("acc");
    for flag in FLAGS {
        if matches!(*flag, "-h" | "--help" | "-V" | "--version") {
            continue;
        }
        let mut a = vec![flag.to_string()];
        if let Some((_, v)) = VALUE_FLAGS.iter().find(|(f, _)| f == flag) {
            a.push(v.to_string());
        } else if matches!(*flag, "--only" | "--exclude") {
            a.push("app_*".to_string());
        }
        a.push("--help".to_string());
        let r = run(&a, BOUND);
        assert_eq!(r.code, Some(0), "{flag} not accepted\n{}", r.describe());
    }
    drop(w);
}

#[test]
fn version() {
    for flag in ["--version", "-V"] {
        let r = run(&[flag], BOUND);
        assert_eq!(r.code, Some(0), "{}", r.describe());
        assert!(r.stderr.is_empty(), "{}", r.describe());
        assert_eq!(
            r.stdout,
            format!("uwsgi-reload {}\n", env!("CARGO_PKG_VERSION")),
            "{}",
            r.describe()
        );
    }
}
