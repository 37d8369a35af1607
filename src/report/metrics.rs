//! `--metrics-file`: the end of a rollout as Prometheus text exposition, for
//! node_exporter's textfile collector. Written at the end of every rollout,
//! also a failed, interrupted or refused one, atomically: a temporary file in
//! the same directory, then rename(2), so the collector never reads half a
//! file (the node_exporter convention). The temporary name does not end in
//! `.prom`, so the collector ignores it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::info::VERSION;
use crate::engine::{Outcome, Status};

/// What one rollout leaves for the metrics file.
#[derive(Clone, Debug, Default)]
pub struct RunMetrics {
    /// Unix time (seconds) the rollout ended.
    pub ended_unix_s: f64,
    pub duration_s: f64,
    pub exit_code: u8,
    /// `completed`, `failed`, `interrupted`, `precondition`, `usage` or
    /// `error`.
    pub status: &'static str,
    pub reloaded: usize,
    pub failed: usize,
    pub untouched: usize,
    pub lowest_live: BTreeMap<String, usize>,
    pub min_live: BTreeMap<String, usize>,
    /// uWSGI's version per stats source.
    pub uwsgi: BTreeMap<String, String>,
}

impl RunMetrics {
    /// From the engine's outcome; `duration_s` is the whole run's, from the
    /// process start (preflight included).
    pub fn from_outcome(
        o: &Outcome,
        exit_code: u8,
        uwsgi: &BTreeMap<String, String>,
        duration_s: f64,
    ) -> Self {
        RunMetrics {
            ended_unix_s: 0.0,
            duration_s,
            exit_code,
            status: match o.status {
                Status::Completed => "completed",
                Status::Failed => "failed",
                Status::Interrupted => "interrupted",
                Status::Precondition(_) => "precondition",
            },
            reloaded: o.reloaded.len(),
            failed: o.failed.len(),
            untouched: o.untouched.len(),
            lowest_live: o.lowest_live.clone(),
            min_live: o.min_live.clone(),
            uwsgi: uwsgi.clone(),
        }
    }

    /// A rollout that ended before the engine ran (lock held, socket
    /// missing, ...): nothing was touched.
    pub fn refused(exit_code: u8, duration_s: f64) -> Self {
        RunMetrics {
            duration_s,
            exit_code,
            status: match exit_code {
                crate::error::exit::USAGE => "usage",
                crate::error::exit::PRECONDITION => "precondition",
                _ => "error",
            },
            ..RunMetrics::default()
        }
    }
}

/// A label value, escaped as the exposition format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A family's header; its help is the one in [`super::catalog::METRICS`],
/// the list the man page prints too.
fn family(out: &mut String, name: &str) {
    let help = super::catalog::metric_help(name);
    let _ = writeln!(out, "# HELP uwsgi_reload_{name} {help}");
    let _ = writeln!(out, "# TYPE uwsgi_reload_{name} gauge");
}

/// The exposition text.
pub fn render(m: &RunMetrics) -> String {
    let mut o = String::new();
    family(&mut o, "last_run_timestamp_seconds");
    let _ = writeln!(
        o,
        "uwsgi_reload_last_run_timestamp_seconds {:.3}",
        m.ended_unix_s
    );
    family(&mut o, "last_run_duration_seconds");
    let _ = writeln!(
        o,
        "uwsgi_reload_last_run_duration_seconds {:.3}",
        m.duration_s
    );
    family(&mut o, "last_run_exit_code");
    let _ = writeln!(o, "uwsgi_reload_last_run_exit_code {}", m.exit_code);
    family(&mut o, "last_run_status");
    let _ = writeln!(
        o,
        "uwsgi_reload_last_run_status{{status=\"{}\"}} 1",
        m.status
    );
    family(&mut o, "last_run_vassals");
    for (r, n) in [
        ("reloaded", m.reloaded),
        ("failed", m.failed),
        ("untouched", m.untouched),
    ] {
        let _ = writeln!(o, "uwsgi_reload_last_run_vassals{{result=\"{r}\"}} {n}");
    }
    family(&mut o, "last_run_lowest_live");
    for (k, n) in &m.lowest_live {
        let _ = writeln!(
            o,
            "uwsgi_reload_last_run_lowest_live{{key=\"{}\"}} {n}",
            label(k)
        );
    }
    family(&mut o, "last_run_min_live");
    for (k, n) in &m.min_live {
        let _ = writeln!(
            o,
            "uwsgi_reload_last_run_min_live{{key=\"{}\"}} {n}",
            label(k)
        );
    }
    family(&mut o, "info");
    let _ = writeln!(o, "uwsgi_reload_info{{version=\"{}\"}} 1", label(VERSION));
    family(&mut o, "uwsgi_info");
    for (src, v) in &m.uwsgi {
        let _ = writeln!(
            o,
            "uwsgi_reload_uwsgi_info{{source=\"{}\",version=\"{}\"}} 1",
            label(src),
            label(v)
        );
    }
    o
}

/// Writes `text` to `path` atomically: a fresh temporary file in the same
/// directory, flushed to disk, then renamed over `path`.
///
/// The tool runs as root and the directory may be writable by others
/// (docs/SECURITY.md, the metrics file): the temporary name is not
/// guessable (the pid and a per-process random number, retried on a
/// clash), and it is created with `O_EXCL|O_NOFOLLOW|O_NONBLOCK`, so a link
/// planted there is never followed (nothing outside is written) and a FIFO
/// planted there never blocks: the create fails and another name is tried.
/// `path` itself being a link is fine: rename replaces the link, not its
/// target.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?
        .to_string_lossy();
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    let mut last = std::io::Error::other("no temporary name tried");
    for _ in 0..8 {
        // An unpredictable suffix from the kernel's random source, without
        // a new crate (O_EXCL keeps a clash harmless if it is unreadable).
        let mut r = [0u8; 8];
        let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut r));
        let tmp = path.with_file_name(format!(
            ".{name}.tmp.{}.{:016x}",
            std::process::id(),
            u64::from_ne_bytes(r)
        ));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(flags)
            .open(&tmp);
        let mut f = match f {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = e;
                continue;
            }
            Err(e) => return Err(e),
        };
        let result = f
            .write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path));
        if result.is_err() {
            // Ours: created with O_EXCL just now.
            let _ = std::fs::remove_file(&tmp);
        }
        return result;
    }
    Err(last)
}

/// Stamps the end time (wall-clock seconds, read by the caller's clock)
/// and writes the file.
pub fn write(path: &Path, mut m: RunMetrics, ended_unix_s: f64) -> std::io::Result<()> {
    m.ended_unix_s = ended_unix_s;
    write_atomic(path, &render(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_every_family_is_typed() {
        let m = RunMetrics {
            status: "failed",
            lowest_live: BTreeMap::from([("we\"ird\\key\n".to_string(), 0)]),
            min_live: BTreeMap::from([("we\"ird\\key\n".to_string(), 1)]),
            ..RunMetrics::default()
        };
        let t = render(&m);
        assert!(
            t.contains(r#"uwsgi_reload_last_run_lowest_live{key="we\"ird\\key\n"} 0"#),
            "{t}"
        );
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(
                t.contains(&format!("# TYPE {name} gauge")),
                "{name} untyped"
            );
        }
    }

    /// A link or a FIFO planted at the temporary name the tool used to
    /// take (`.NAME.tmp.PID`) and a link at the target itself: the write
    /// neither follows them (the outside file keeps its bytes) nor blocks
    /// on the FIFO (no reader ever opens it; the guard only ends a hang).
    #[test]
    fn planted_links_and_fifos_are_never_written_through_nor_block() {
        let d = std::env::temp_dir().join(format!("uwsgi-reload-plant-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let outside = d.join("shadow");
        std::fs::write(&outside, "secret\n").unwrap();
        let p = d.join("uwsgi_reload.prom");
        let old_tmp = d.join(format!(".uwsgi_reload.prom.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&outside, &old_tmp).unwrap();
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        write_atomic(&p, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        assert!(!std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());

        std::fs::remove_file(&old_tmp).unwrap();
        nix::unistd::mkfifo(&old_tmp, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = p.clone();
        std::thread::spawn(move || tx.send(write_atomic(&p2, "newer\n").is_ok()));
        let done = rx.recv_timeout(std::time::Duration::from_secs(60));
        if done.is_err() {
            // Unblock the hung writer so the test process can end.
            let _ = std::fs::File::open(&old_tmp);
        }
        assert_eq!(done, Ok(true), "the write blocked on a planted FIFO");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "newer\n");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn write_replaces_the_file_and_leaves_no_temporary() {
        let d = std::env::temp_dir().join(format!("uwsgi-reload-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("uwsgi_reload.prom");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("uwsgi_reload.prom")]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
