//! The README's "Coming from uwsgi_reload.py" holds: every option of
//! uwsgi_reload.py is accepted with the same name and default, every flag
//! the section names exists, every exit code it names is the code's, and
//! the differences that can be shown without uWSGI behave as written (a
//! single-node key is refused with exit 3 unless --allow-downtime; a vassal
//! that never comes back ends the run with exit 1, not 0).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::time::Duration;

use fakes::{run, World};
use uwsgi_reload::cli::flags;

const README: &str = include_str!("../README.md");
const BOUND: Duration = Duration::from_secs(30);

/// uwsgi_reload.py's options with their defaults, copied from its `--help`
/// (its README's "usage" section). Hardcoded: the tests read nothing
/// outside this repository. `None`: required, or a switch.
const ORIGINAL_OPTIONS: &[(&str, Option<&str>)] = &[
    ("--emperor-path", None),
    ("--fastrouter-stats-socket", None),
    ("--emperor-stats-socket", None),
    ("--vassal-config-file-suffix", Some(".ini")),
    ("--minimum-active-vassals", Some("1")),
    ("--timeout", Some("60")),
    ("--check-interval", Some("0.1")),
    ("-q", None),
    ("--quiet", None),
    ("-h", None),
    ("--help", None),
];

fn section() -> &'static str {
    let start = README
        .find("## Coming from uwsgi_reload.py")
        .expect("README has the migration section");
    let rest = &README[start + 3..];
    &README[start..start + 3 + rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn every_original_option_is_accepted_with_its_default() {
    let base = [
        "--emperor-path",
        "/etc/uwsgi.d",
        "--fastrouter-stats-socket",
        "/run/fr.sock",
        "--emperor-stats-socket",
        "/run/emp.sock",
    ];
    let plain = uwsgi_reload::cli::parse(base).expect("the original's required options parse");
    let mut explicit: Vec<&str> = base.to_vec();
    for (name, default) in ORIGINAL_OPTIONS {
        let long = name.trim_start_matches('-');
        let f = if name.starts_with("--") {
            flags::by_long(long)
        } else {
            flags::by_short(long.chars().next().unwrap())
        };
        let f = f.unwrap_or_else(|| panic!("{name} of uwsgi_reload.py is not accepted"));
        assert_eq!(
            f.group,
            flags::Group::Compat,
            "{name} is listed beyond uwsgi_reload.py"
        );
        if let Some(d) = default {
            assert_eq!(f.default, Some(*d), "{name}: the documented default");
            explicit.extend([*name, *d]);
        }
        // The section lists it.
        assert!(section().contains(name.trim_start_matches('-')), "{name}");
    }
    // Giving every default explicitly changes nothing.
    let given = uwsgi_reload::cli::parse(explicit).expect("the defaults parse");
    assert_eq!(
        format!("{:?}", given.settings),
        format!("{:?}", plain.settings)
    );
    assert_eq!(given.suffix, plain.suffix);
    // And -q is the original's --quiet.
    let q = uwsgi_reload::cli::parse(base.iter().copied().chain(["-q"])).unwrap();
    assert!(q.output.quiet);
}

#[test]
fn every_flag_the_section_names_exists() {
    let s = section();
    let mut named = 0;
    for piece in s.split('`').skip(1).step_by(2) {
        for word in piece.split_whitespace() {
            let Some(long) = word.strip_prefix("--") else {
                continue;
            };
            let long = long.split(['=', '\'']).next().unwrap();
            assert!(
                flags::by_long(long).is_some(),
                "the migration section names --{long}, which the parser does not accept"
            );
            named += 1;
        }
    }
    for must in [
        "allow-downtime",
        "no-drain",
        "no-early-announce",
        "no-repair",
    ] {
        assert!(
            s.contains(&format!("`--{must}`")),
            "--{must} is not in the section"
        );
    }
    assert!(
        named >= 10,
        "only {named} flags found: is the section parsed?"
    );
}

#[test]
fn every_exit_code_the_section_names_is_the_codes() {
    use uwsgi_reload::error::exit;
    let s = section();
    for (code, what) in [
        (exit::OK, "0 every vassal reloaded"),
        (exit::FAILED, "1 a vassal failed or timed out"),
        (exit::USAGE, "2 usage error"),
        (exit::PRECONDITION, "3 precondition"),
    ] {
        assert!(s.contains(what), "the section lacks {what:?} (exit {code})");
        assert!(exit::TABLE.iter().any(|(c, _)| *c == code), "{code}");
    }
    assert!(s.contains(&format!("{}/{}", exit::SIGINT, exit::SIGTERM)));
    assert!(s.contains("exit 3") && s.contains("exits **1**") || s.contains("exit **1**"));
    // Every "exit N" in the section is a documented code.
    for (i, _) in s.match_indices("exit") {
        let after = s[i + 4..].trim_start_matches([' ', '*', 's']);
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u8>() {
            assert!(
                uwsgi_reload::error::exit::TABLE
                    .iter()
                    .any(|(c, _)| *c == n),
                "the section says exit {n}, which is no documented code"
            );
        }
    }
}

/// One vassal, the original's default K = 1: uwsgi_reload.py reloaded it
/// (downtime); this tool refuses with exit 3 and names --allow-downtime.
#[test]
fn a_key_with_k_or_fewer_nodes_is_refused_unless_downtime_is_allowed() {
    let w = World::new("migr-k", 1);
    let _s = w.serve_consistent(false);
    let before = w.mtimes();
    let mut args = w.base_args();
    args.extend(["--no-drain".to_string(), "--dry-run".to_string()]);
    let r = run(&args, BOUND);
    assert_eq!(r.code, Some(3), "{}", r.describe());
    assert!(r.stderr.contains("--allow-downtime"), "{}", r.describe());
    args.push("--allow-downtime".into());
    let r = run(&args, BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    assert_eq!(w.mtimes(), before);
}

/// The fake Emperor never shows the touch (its last_mod stays): the vassal
/// never comes back, and the run ends with exit 1 after --timeout, where
/// uwsgi_reload.py exited 0.
#[test]
fn a_timeout_exits_1_not_0() {
    let w = World::new("migr-timeout", 2);
    let _s = w.serve_consistent(false);
    let mut args = w.base_args();
    args.extend(
        ["--no-drain", "--timeout", "1", "--check-interval", "0.1"]
            .iter()
            .map(|s| s.to_string()),
    );
    let r = run(&args, BOUND);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stderr.contains("FAILED"), "{}", r.describe());
    assert!(r.stderr.contains("1 s after the touch"), "{}", r.describe());
}
