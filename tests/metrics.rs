//! `--metrics-file` and the version/settings header, through the real
//! binary against fake stats sockets that follow the directory: a vassal
//! "reloads" (new `last_mod`, `respawns` 1, accepting) some time after its
//! config was touched. A successful, a failed and an interrupted rollout each
//! leave a metrics file that the real Prometheus text parser (the
//! `prometheus_client` package from PyPI, installed by this test into a
//! private venv under the target directory) reads back with the right values.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fakes::{fastrouter_doc, json_str, Answer, FakeSocket, World, KEY, OLD_MTIME};

const UWSGI_VERSION: &str = "2.0.21-debian";

/// How the fake Emperor treats one config.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Reloaded `after` its touch.
    Reloads { after: Duration },
    /// Never notices the touch.
    Broken,
}

fn wall_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One vassal record as uWSGI writes it.
fn vassal(
    id: &str,
    pid: i64,
    last_mod: i64,
    respawns: i64,
    last_accepting: i64,
    monitor: &str,
) -> String {
    format!(
        concat!(
            "{{\"id\":{id},\"pid\":{pid},\"born\":{o},\"last_mod\":{lm},\"last_heartbeat\":0,",
            "\"loyal\":1,\"ready\":1,\"accepting\":1,\"last_loyal\":{o},\"last_ready\":{o},",
            "\"last_accepting\":{la},\"first_run\":{o},\"last_run\":{lm},\"cursed\":0,\"zerg\":0,",
            "\"on_demand\":\"\",\"uid\":0,\"gid\":0,\"monitor\":{m},\"respawns\":{r}}}"
        ),
        id = json_str(id),
        pid = pid,
        o = OLD_MTIME,
        lm = last_mod,
        la = last_accepting,
        m = json_str(monitor),
        r = respawns
    )
}

/// Serves an Emperor whose vassals follow their configs' mtimes, and a
/// fastrouter with every node fresh.
fn serve(
    w: &World,
    behave: impl Fn(&str) -> Behaviour + Send + Sync + 'static,
) -> (FakeSocket, FakeSocket) {
    let (dir, names, canonical) = (w.dir.clone(), w.names.clone(), w.canonical.clone());
    let emp = FakeSocket::scripted(&w.emperor_sock, move |_| {
        let now = wall_f64();
        let vs: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let m = std::fs::metadata(dir.join(n)).unwrap().mtime();
                let seen = match behave(n) {
                    Behaviour::Reloads { after } => {
                        m > OLD_MTIME && now >= m as f64 + after.as_secs_f64()
                    }
                    Behaviour::Broken => false,
                };
                let pid = 4000 + i as i64;
                if seen {
                    vassal(n, pid, m, 1, now as i64, &canonical)
                } else {
                    vassal(n, pid, OLD_MTIME, 0, OLD_MTIME, &canonical)
                }
            })
            .collect();
        Answer::Bytes(
            format!(
                "{{\"version\":\"{UWSGI_VERSION}\",\"pid\":3999,\"uid\":0,\"gid\":0,\"cwd\":{w},\"emperor\":[{w}],\"emperor_tyrant\":0,\"throttle_level\":0,\"vassals\":[{v}],\"blacklist\":[]}}",
                w = json_str(&canonical),
                v = vs.join(",")
            )
            .into_bytes(),
        )
    });
    let names = w.names.clone();
    let fr = FakeSocket::scripted(&w.fastrouter_sock, move |_| {
        Answer::Bytes(fastrouter_doc(&names, fakes::wall_now(), false).into_bytes())
    });
    (emp, fr)
}

fn args(w: &World, metrics: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = w.base_args();
    for s in [
        "--no-drain",
        "--check-interval",
        "0.05",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ] {
        a.push(s.into());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// The private venv with prometheus_client, made once per target directory.
fn prom_python() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("prom-venv");
    let py = venv.join("bin/python");
    let ok = |py: &Path| {
        Command::new(py)
            .args(["-c", "import prometheus_client.parser"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&py) {
        let s = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        assert!(
            s.is_ok_and(|s| s.success()),
            "python3 -m venv failed (apt-get install python3-venv)"
        );
        let s = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "prometheus_client",
            ])
            .status();
        assert!(
            s.is_ok_and(|s| s.success()),
            "pip install prometheus_client failed"
        );
        assert!(ok(&py), "prometheus_client does not import");
    }
    py
}

/// The samples of a metrics file as the Prometheus parser sees them:
/// `name{label=value,...}` -> value.
fn parse(file: &Path) -> BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert fam.type == "gauge", (fam.name, fam.type)
    assert fam.documentation, fam.name
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let o = Command::new(prom_python())
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the Prometheus parser rejected {}:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn check_common(m: &BTreeMap<String, f64>, exit: u8, status: &str, counts: [f64; 3]) {
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no sample {k} in {m:?}"));
    assert_eq!(get("uwsgi_reload_last_run_exit_code{}"), exit as f64);
    assert_eq!(
        get(&format!("uwsgi_reload_last_run_status{{status={status}}}")),
        1.0
    );
    for (r, n) in ["reloaded", "failed", "untouched"].iter().zip(counts) {
        assert_eq!(
            get(&format!("uwsgi_reload_last_run_vassals{{result={r}}}")),
            n,
            "{r}: {m:?}"
        );
    }
    let ts = get("uwsgi_reload_last_run_timestamp_seconds{}");
    assert!((wall_f64() - ts).abs() < 60.0, "timestamp {ts} is not now");
    assert!(get("uwsgi_reload_last_run_duration_seconds{}") > 0.0);
    assert_eq!(
        get(&format!(
            "uwsgi_reload_info{{version={}}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    for src in ["emperor", "fastrouter"] {
        assert_eq!(
            get(&format!(
                "uwsgi_reload_uwsgi_info{{source={src},version={UWSGI_VERSION}}}"
            )),
            1.0,
            "{m:?}"
        );
    }
    assert_eq!(
        get(&format!("uwsgi_reload_last_run_min_live{{key={KEY}}}")),
        1.0
    );
}

fn no_temporaries(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn successful_rollout_metrics_and_header() {
    let w = World::new("metrics-ok", 3);
    let _s = serve(&w, |_| Behaviour::Reloads {
        after: Duration::ZERO,
    });
    let prom = w.dir.parent().unwrap().join("uwsgi_reload.prom");
    let r = fakes::run(&args(&w, &prom, &[]), Duration::from_secs(30));
    assert_eq!(r.code, Some(0), "{}", r.describe());
    // The human report opens with the versions and the settings.
    let first = r.stdout_lines().first().copied().unwrap_or_default();
    assert!(
        first.starts_with(&format!("uwsgi-reload {}, uWSGI {UWSGI_VERSION} (emperor, fastrouter); K per key: {KEY}=1; subscription tolerance 17 s (default); drain off", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.describe()
    );
    let m = parse(&prom);
    check_common(&m, 0, "completed", [3.0, 0.0, 0.0]);
    // K held: never fewer than K=1 of the 3 live.
    let lowest = m[&format!("uwsgi_reload_last_run_lowest_live{{key={KEY}}}")];
    assert!((1.0..=2.0).contains(&lowest), "{m:?}");
    // The whole run, as long as the process lived at most.
    let took = m["uwsgi_reload_last_run_duration_seconds{}"];
    assert!(
        took > 0.0 && took <= r.elapsed.as_secs_f64(),
        "{took} vs {:?}",
        r.elapsed
    );
    no_temporaries(prom.parent().unwrap());
}

#[test]
fn json_summary_carries_versions_and_settings() {
    let w = World::new("metrics-json", 2);
    let _s = serve(&w, |_| Behaviour::Reloads {
        after: Duration::ZERO,
    });
    let prom = w.dir.parent().unwrap().join("m.prom");
    let r = fakes::run(
        &args(&w, &prom, &["--json", "--subscription-tolerance", "30"]),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let last = r
        .stdout_lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&last).expect("a JSON summary");
    assert_eq!(v["event"], "summary");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["uwsgi_version"]["emperor"], UWSGI_VERSION);
    assert_eq!(v["uwsgi_version"]["fastrouter"], UWSGI_VERSION);
    assert_eq!(v["settings"]["min_live"][KEY], 1);
    assert_eq!(v["settings"]["subscription_tolerance_s"], 30);
    assert_eq!(v["settings"]["subscription_tolerance_given"], true);
    assert!(v["settings"]["drain"].is_null(), "{v}");
}

#[test]
fn failed_rollout_metrics() {
    let w = World::new("metrics-fail", 3);
    let _s = serve(&w, |n| {
        if n == "app_02.ini" {
            Behaviour::Broken
        } else {
            Behaviour::Reloads {
                after: Duration::ZERO,
            }
        }
    });
    let prom = w.dir.parent().unwrap().join("uwsgi_reload.prom");
    std::fs::write(&prom, "stale\n").unwrap();
    let before = w.mtimes();
    let r = fakes::run(
        &args(&w, &prom, &["--timeout", "1", "--max-parallel", "1"]),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(1), "{}", r.describe());
    // The expected counts come from the fleet, not from the metrics: the fake
    // Emperor reloads every touched config but app_02.ini, so reloaded = the
    // touched configs but app_02.ini, failed = app_02.ini (which must have been
    // touched), untouched = the configs whose mtime did not move.
    let after = w.mtimes();
    let touched: Vec<&String> = w
        .names
        .iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .collect();
    assert!(
        touched.iter().any(|n| *n == "app_02.ini"),
        "the broken vassal was never touched: {touched:?}\n{}",
        r.describe()
    );
    let reloaded = touched.iter().filter(|n| **n != "app_02.ini").count() as f64;
    let untouched = (w.names.len() - touched.len()) as f64;
    let m = parse(&prom);
    check_common(&m, 1, "failed", [reloaded, 1.0, untouched]);
    no_temporaries(prom.parent().unwrap());
}

#[test]
fn interrupted_rollout_metrics() {
    let w = World::new("metrics-int", 3);
    let _s = serve(&w, |_| Behaviour::Reloads {
        after: Duration::from_millis(1500),
    });
    let prom = w.dir.parent().unwrap().join("uwsgi_reload.prom");
    let mut child = binary::command(args(&w, &prom, &["--max-parallel", "1"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SIGTERM once the first vassal is touched: it finishes, the rest wait.
    let before = w.mtimes();
    let t = Instant::now();
    while w.mtimes() == before && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(w.mtimes(), before, "nothing was touched");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let done = Arc::new(Mutex::new(None));
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            *done.lock().unwrap() = Some(s);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = done.lock().unwrap().unwrap();
    assert_eq!(status.code(), Some(143));
    let m = parse(&prom);
    check_common(&m, 143, "interrupted", [1.0, 0.0, 2.0]);
    no_temporaries(prom.parent().unwrap());
}

#[test]
fn refused_rollout_still_writes_metrics() {
    // No stats sockets at all: exit 3, nothing touched, metrics say so.
    let w = World::new("metrics-refused", 2);
    let prom = w.dir.parent().unwrap().join("uwsgi_reload.prom");
    let r = fakes::run(
        &args(&w, &prom, &["--stats-timeout", "1"]),
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(3), "{}", r.describe());
    let m = parse(&prom);
    assert_eq!(m["uwsgi_reload_last_run_exit_code{}"], 3.0);
    assert_eq!(m["uwsgi_reload_last_run_status{status=precondition}"], 1.0);
    assert_eq!(m["uwsgi_reload_last_run_vassals{result=reloaded}"], 0.0);
}

#[test]
fn metrics_file_in_a_missing_directory_is_a_usage_error() {
    let w = World::new("metrics-usage", 1);
    let before = w.mtimes();
    let r = fakes::run(
        &args(&w, Path::new("/nonexistent-dir/x.prom"), &[]),
        Duration::from_secs(10),
    );
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert_eq!(r.stderr_lines().len(), 1, "{}", r.describe());
    assert!(r.stderr.contains("--metrics-file"), "{}", r.describe());
    assert_eq!(w.mtimes(), before);
}

#[test]
fn status_and_dry_run_name_the_versions_too() {
    let w = World::new("metrics-status", 2);
    let _s = serve(&w, |_| Behaviour::Reloads {
        after: Duration::ZERO,
    });
    let before = w.mtimes();
    let head = format!(
        "uwsgi-reload {}, uWSGI {UWSGI_VERSION} (emperor, fastrouter); K per key: {KEY}=1;",
        env!("CARGO_PKG_VERSION")
    );
    let mut status = vec!["status".to_string()];
    status.extend(w.base_args());
    let r = fakes::run(&status, Duration::from_secs(20));
    assert_eq!(r.code, Some(0), "{}", r.describe());
    assert!(r.stdout_lines()[0].starts_with(&head), "{}", r.describe());
    status.push("--json".into());
    let r = fakes::run(&status, Duration::from_secs(20));
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("status --json");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["uwsgi_version"]["fastrouter"], UWSGI_VERSION);
    let mut dry = w.base_args();
    dry.extend(["--dry-run".to_string(), "--no-drain".to_string()]);
    let r = fakes::run(&dry, Duration::from_secs(20));
    assert_eq!(r.code, Some(0), "{}", r.describe());
    // First, before the doctor's warnings.
    assert!(r.stdout_lines()[0].starts_with(&head), "{}", r.describe());
    assert_eq!(w.mtimes(), before, "status or --dry-run touched a config");
}
