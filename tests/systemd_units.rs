//! examples/systemd/ passes `systemd-analyze verify` (systemd is installed by
//! examples/install-packages.sh): the oneshot uwsgi-reload.service, and the
//! Emperor unit with the rolling-reload drop-in applied. The units name
//! /usr/bin/uwsgi-reload (where the .deb puts it); the test points them at
//! the binary under test, and puts the generated man page on MANPATH because
//! verify checks `Documentation=man:` too.

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/binary.rs"]
mod binary;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use binary::BIN;
use temp_dir::TempDir;

const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/systemd");
const DROP_IN: &str = "uwsgi-emperor.service.d/rolling-reload.conf";

/// A copy of examples/systemd/ with the binary path replaced by `bin`, and a
/// MANPATH holding the man page.
fn stage(tag: &str, bin: &str) -> TempDir {
    let d = TempDir::new(&format!("units-{tag}"));
    std::fs::create_dir_all(d.join("uwsgi-emperor.service.d")).unwrap();
    std::fs::create_dir_all(d.join("man/man1")).unwrap();
    for f in ["uwsgi-reload.service", "uwsgi-emperor.service", DROP_IN] {
        let text = std::fs::read_to_string(Path::new(UNITS).join(f)).unwrap();
        std::fs::write(d.join(f), text.replace("/usr/bin/uwsgi-reload", bin)).unwrap();
    }
    let man = binary::command(["--generate", "man"]).output().unwrap();
    std::fs::write(d.join("man/man1/uwsgi-reload.1"), man.stdout).unwrap();
    d
}

fn verify(d: &Path, units: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .arg("verify")
        .args(units.iter().map(|u| d.join(u)))
        .env("MANPATH", d.join("man"))
        // The staged directory first, then the defaults: drop-ins in
        // <dir>/<unit>.d/ are read from the unit path.
        .env("SYSTEMD_UNIT_PATH", format!("{}:", d.display()))
        .current_dir(d)
        .output()
        .expect("systemd-analyze (run bash examples/install-packages.sh)")
}

#[test]
fn units_verify_clean() {
    let d = stage("ok", BIN);
    let o = verify(&d, &["uwsgi-reload.service", "uwsgi-emperor.service"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "systemd-analyze verify failed:\n{err}");
    // Unknown keys are only warnings (exit 0): none is allowed.
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned:\n{err}"
    );
}

#[test]
fn the_drop_in_sets_the_emperors_exec_reload() {
    // Control: a drop-in pointing at a missing binary makes the Emperor's
    // unit fail verification, so the drop-in is really read for that unit.
    let d = stage("control", BIN);
    let drop_in = std::fs::read_to_string(d.join(DROP_IN)).unwrap();
    std::fs::write(
        d.join(DROP_IN),
        drop_in.replace(BIN, "/nonexistent/uwsgi-reload"),
    )
    .unwrap();
    let o = verify(&d, &["uwsgi-emperor.service"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "verify accepted a missing ExecReload binary"
    );
    assert!(err.contains("/nonexistent/uwsgi-reload"), "{err}");

    // The reload and the oneshot run the same command from the same file.
    let read = |f: &str| std::fs::read_to_string(Path::new(UNITS).join(f)).unwrap();
    let line = |text: &str, key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(str::to_string)
            .collect()
    };
    let (svc, drop_in) = (read("uwsgi-reload.service"), read(DROP_IN));
    assert_eq!(
        line(&drop_in, "ExecReload="),
        vec!["".to_string(), line(&svc, "ExecStart=")[0].clone()]
    );
    assert_eq!(
        line(&drop_in, "EnvironmentFile="),
        line(&svc, "EnvironmentFile=")
    );
}

#[test]
fn the_default_arguments_are_accepted() {
    // Every flag in uwsgi-reload.default parses (--help stops before the
    // paths, which do not exist here, are checked).
    let script = format!(
        "set -e; . {UNITS}/uwsgi-reload.default; {BIN} $UWSGI_RELOAD_ARGS --help >/dev/null"
    );
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Under systemd the journal already has the tool's stdout and stderr: the
/// shipped arguments must not add `--syslog`, which would log every line a
/// second time, and the units must not send the output elsewhere.
#[test]
fn the_shipped_units_log_each_line_once() {
    let read = |f: &str| std::fs::read_to_string(Path::new(UNITS).join(f)).unwrap();
    let default = read("uwsgi-reload.default");
    let args: Vec<&str> = default
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        args.iter().all(|l| !l.contains("--syslog")),
        "uwsgi-reload.default turns on --syslog: {args:?}"
    );
    for unit in ["uwsgi-reload.service", DROP_IN] {
        let text = read(unit);
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                !l.contains("--syslog")
                    && !l.starts_with("StandardOutput=")
                    && !l.starts_with("StandardError="),
                "{unit}: {l}"
            );
        }
        assert!(text.contains("$UWSGI_RELOAD_ARGS"), "{unit}");
    }
}
