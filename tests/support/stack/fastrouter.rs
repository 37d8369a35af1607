//! The fastrouter as its own uWSGI process (`StackSpec::standalone_fastrouter`),
//! on the same sockets the embedded one uses, so that a test can kill it and
//! start it again: what an operator's fastrouter restart (or crash and
//! respawn by systemd) looks like to the vassals and to `uwsgi-reload`.
//!
//! Its config is the fastrouter lines of `examples/stack/emperor.ini`; the
//! Emperor gets the rest.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::start::wait_child;
use super::{read_stats, Stack};

/// The option name of an ini line (`fastrouter-stats-server = x` ->
/// `fastrouter-stats-server`), None for comments, blank lines and sections.
fn ini_key(line: &str) -> Option<&str> {
    let l = line.trim();
    if l.is_empty() || l.starts_with(';') || l.starts_with('#') || l.starts_with('[') {
        return None;
    }
    Some(l.split('=').next().unwrap_or("").trim())
}

/// Splits a (substituted) emperor.ini into the Emperor's part and a
/// standalone fastrouter's config with the `fastrouter*` lines.
pub fn split_emperor_ini(text: &str, dir: &Path) -> (String, String) {
    let d = dir.display();
    let mut emperor = String::new();
    let mut router = String::from("[uwsgi]\nplugins = fastrouter\nmaster = true\n");
    for line in text.lines() {
        if ini_key(line).is_some_and(|k| k.starts_with("fastrouter")) {
            router.push_str(line);
            router.push('\n');
        } else {
            emperor.push_str(line);
            emperor.push('\n');
        }
    }
    assert!(
        router.contains("fastrouter-subscription-server")
            && router.contains("fastrouter-stats-server"),
        "examples/stack/emperor.ini lost its fastrouter lines:\n{router}"
    );
    router.push_str(&format!(
        "pidfile = {d}/fastrouter.pid\nlogto = {d}/logs/fastrouter.log\nlog-date = %%Y-%%m-%%d %%H:%%M:%%S\n"
    ));
    (emperor, router)
}

impl Stack {
    /// Starts `fastrouter.ini` and waits until its stats socket answers.
    pub fn start_fastrouter(&self) -> Result<(), String> {
        self.start_router(&self.fastrouter, "fastrouter", self.fastrouter_stats_path())
    }

    /// Starts `fastrouter-b.ini`, the second router of
    /// `StackSpec::two_fastrouters` (nothing otherwise).
    pub fn start_fastrouter_b(&self) -> Result<(), String> {
        match self.fastrouter_stats_paths().get(1) {
            Some(stats) => self.start_router(&self.fastrouter_b, "fastrouter-b", stats.clone()),
            None => Ok(()),
        }
    }

    /// Starts `<name>.ini` into `slot` and waits until `stats` answers.
    fn start_router(
        &self,
        slot: &std::sync::Mutex<Option<std::process::Child>>,
        name: &str,
        stats: std::path::PathBuf,
    ) -> Result<(), String> {
        let mut slot = slot.lock().unwrap();
        assert!(slot.is_none(), "{name} is running already");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("logs/{name}.out")))
            .unwrap();
        let child = Command::new(super::uwsgi_under_test::bin())
            .arg("--ini")
            .arg(self.dir.join(format!("{name}.ini")))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        *slot = Some(child);
        drop(slot);
        super::poll(Duration::from_secs(20), Duration::from_millis(20), || {
            read_stats(&stats).ok()
        })
        .map(|_| ())
        .ok_or_else(|| format!("{name}'s stats socket did not answer within 20 s"))
    }

    /// SIGKILLs the standalone fastrouter (its whole process group) and
    /// waits until it is gone: every node it knew is lost, sockets stay.
    pub fn kill_fastrouter(&self) {
        let mut c = self
            .fastrouter
            .lock()
            .unwrap()
            .take()
            .expect("no standalone fastrouter");
        let _ = kill(Pid::from_raw(-(c.id() as i32)), Signal::SIGKILL);
        let _ = c.wait();
    }

    /// Kills the standalone fastrouter, waits `down_for`, starts it again on
    /// the same sockets. Returns (kill sent, listening again) instants.
    pub fn restart_fastrouter(&self, down_for: Duration) -> (Instant, Instant) {
        // before the signal: requests in flight fail from this instant on
        let killed = Instant::now();
        self.kill_fastrouter();
        std::thread::sleep(down_for);
        if let Err(e) = self.start_fastrouter() {
            panic!("{e}\n{}", self.diagnostics());
        }
        (killed, Instant::now())
    }

    /// SIGINT, then SIGKILL of its group. Idempotent; nothing if embedded.
    pub(super) fn stop_fastrouter(&mut self) {
        let a = self
            .fastrouter
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let b = self
            .fastrouter_b
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for mut c in a.into_iter().chain(b) {
            let pg = Pid::from_raw(-(c.id() as i32));
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGINT);
            if !wait_child(&mut c, Duration::from_secs(3)) {
                let _ = kill(pg, Signal::SIGKILL);
                let _ = c.wait();
            }
            let _ = kill(pg, Signal::SIGKILL);
        }
    }
}
