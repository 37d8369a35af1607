//! One reference: the man page has EXAMPLES, EXIT STATUS, FILES,
//! ENVIRONMENT and an OUTPUT section naming every `--json` event and every
//! metric, from the same tables the emitters use; `--help` shows the
//! commands; every JSON object the binary writes carries `"v": 1` and
//! `at_ms`, also `note`, `summary` and `dry_run`.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::time::Duration;

use fakes::{run, World};
use uwsgi_reload::report::catalog::{EVENTS, METRICS};

const BOUND: Duration = Duration::from_secs(20);

fn text(args: &[&str]) -> String {
    let o = binary::command(args).output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn the_man_page_is_the_whole_reference() {
    let man = text(&["--generate", "man"]);
    for section in [
        ".SH EXAMPLES",
        ".SH \"EXIT STATUS\"",
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH OUTPUT",
    ] {
        assert!(man.contains(section), "no {section}");
    }
    let bold = |s: &str| format!("\\fB{}\\fR", s.replace('-', "\\-"));
    for e in EVENTS {
        assert!(
            man.contains(&format!(".TP\n{}\n", bold(e.name))),
            "event {}",
            e.name
        );
    }
    for (m, _, _) in METRICS {
        assert!(
            man.contains(&bold(&format!("uwsgi_reload_{m}"))),
            "metric {m}"
        );
    }
    for (code, _) in uwsgi_reload::error::exit::TABLE {
        assert!(
            man.contains(&format!(".TP\n{}\n", bold(&code.to_string()))),
            "exit {code}"
        );
    }
    assert!(man.contains("JOURNAL_STREAM") && man.contains("NO_COLOR"));
    assert!(man.contains("dry_run"));
}

#[test]
fn help_shows_the_commands_and_their_options() {
    let h = text(&["--help"]);
    assert!(
        h.contains("uwsgi-reload [reload] --emperor-path DIR"),
        "{h}"
    );
    assert!(h.contains("uwsgi-reload status --emperor-path DIR"), "{h}");
    assert!(h.contains("COMMANDS\n    reload"), "{h}");
    assert!(h.contains("[--only GLOB]"), "{h}");
    assert!(h.contains(":port"), "{h}");
}

fn assert_versioned(objs: &[serde_json::Value], what: &str) {
    assert!(!objs.is_empty(), "{what}: no JSON");
    for o in objs {
        assert_eq!(o["v"], 1, "{what}: {o}");
        assert!(o["at_ms"].is_u64(), "{what}: no at_ms: {o}");
        let name = o["event"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no event: {o}"));
        assert!(
            EVENTS.iter().any(|e| e.name == name),
            "{what}: {name} is undocumented"
        );
    }
    // One clock for every object: the notes written before the engine
    // starts and the engine's own events count from the same start, so
    // `at_ms` never goes back in the stream (a reader aligning it with
    // another clock, as tests/support/stack/trace.rs does, relies on it).
    let times: Vec<u64> = objs.iter().filter_map(|o| o["at_ms"].as_u64()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "{what}: at_ms goes back: {times:?}"
    );
}

#[test]
fn every_json_object_has_the_schema_version_and_a_time() {
    let w = World::new("jsonv", 2);
    let _s = w.serve_consistent(false);
    let mut dry = w.base_args();
    dry.extend(["--dry-run".to_string(), "--json".to_string()]);
    let r = run(&dry, BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let objs = r.events();
    assert!(
        objs.iter().any(|o| o["event"] == "note"),
        "{}",
        r.describe()
    );
    assert!(
        objs.iter().any(|o| o["event"] == "dry_run"),
        "{}",
        r.describe()
    );
    assert_versioned(&objs, "dry run");

    // A refused rollout: notes, then the summary.
    let mut refused = w.base_args();
    refused[5] = w
        .tmp
        .path
        .join("missing.sock")
        .to_str()
        .unwrap()
        .to_string();
    refused.push("--json".into());
    let r = run(&refused, BOUND);
    assert_eq!(r.code, Some(3), "{}", r.describe());
    let objs = r.events();
    assert!(
        objs.iter().any(|o| o["event"] == "summary"),
        "{}",
        r.describe()
    );
    assert_versioned(&objs, "refused rollout");
}

/// Every `at_ms` of a run counts from one start. The notes are written
/// after a first look at the Emperor (here 0.3 s slow to answer), the
/// engine's events after them: with two clocks (the engine's started after
/// that look) the dry run's plan and a refused rollout's summary came out
/// earlier than the notes before them.
#[test]
fn at_ms_counts_from_one_start_for_notes_and_the_engine() {
    let w = World::new("onestart", 2);
    // An Emperor whose first answer takes 0.3 s; a new one for each run.
    let slow_emperor = || {
        let doc = w.emperor_doc().into_bytes();
        let every = Duration::from_micros(300_000 / doc.len() as u64 + 1);
        fakes::FakeSocket::scripted(&w.emperor_sock, move |n| {
            if n == 0 {
                fakes::Answer::Trickle {
                    bytes: doc.clone(),
                    every,
                }
            } else {
                fakes::Answer::Bytes(doc.clone())
            }
        })
    };
    let _fr = w.serve_fastrouter(false);
    let slow_note = |objs: &[serde_json::Value]| {
        objs.iter()
            .any(|o| o["event"] == "note" && o["at_ms"].as_u64() >= Some(250))
    };

    let emp = slow_emperor();
    let mut dry = w.base_args();
    dry.extend(["--dry-run".to_string(), "--json".to_string()]);
    let r = run(&dry, BOUND);
    drop(emp);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let objs = r.events();
    assert!(
        slow_note(&objs),
        "a note after the slow look: {}",
        r.describe()
    );
    assert_versioned(&objs, "dry run after a slow look");

    // A rollout the engine refuses (K above what two vassals can keep):
    // its notes come after its own slow first look, its summary after them.
    let _emp = slow_emperor();
    let mut refused = w.base_args();
    refused.extend(["--minimum-active-vassals", "5", "--json"].map(String::from));
    let r = run(&refused, BOUND);
    assert_eq!(r.code, Some(3), "{}", r.describe());
    let objs = r.events();
    assert!(
        slow_note(&objs),
        "a note after the slow look: {}",
        r.describe()
    );
    assert!(
        objs.iter().any(|o| o["event"] == "summary"),
        "{}",
        r.describe()
    );
    assert_versioned(&objs, "refused rollout after a slow look");
}
