//! The one way the tests run the `uwsgi-reload` binary: [`command`] for a
//! `Command` to adjust and spawn by hand (a signal mid-run, a log file),
//! [`Tool`] for a run whose output is read while it runs, and [`run`] for a
//! run to completion. Every run gets stdin from /dev/null and `NO_COLOR=1`,
//! is killed (SIGKILL) when it outlives its bound, and ends as one [`Run`].

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_uwsgi-reload");

/// The binary with `args`, stdin from /dev/null, `NO_COLOR=1`; stdout and
/// stderr are the caller's to set.
pub fn command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null()).env("NO_COLOR", "1");
    cmd
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Run {
    pub args: Vec<String>,
    /// Exit code (None if killed by a signal, also by us on timeout).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// It did not exit within its bound and was killed.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// Each stdout line with the instant the test read it: an upper bound
    /// of when the tool wrote it (its stdout is line-buffered).
    pub stdout_timed: Vec<(Instant, String)>,
    pub elapsed: Duration,
}

/// Keeps the last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        let _ = writeln!(out, "[... {start} earlier lines]");
    }
    for l in &lines[start..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The `--json` events of `stdout` (one JSON object per line).
pub fn parse_events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

impl Run {
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// `--json` events (one JSON object per stdout line).
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.stdout)
    }

    /// For assertion messages: the arguments, the exit, the output's tails.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "uwsgi-reload {}\n  exit code {:?}, signal {:?}, timed out {}, took {} ms",
            self.args.join(" "),
            self.code,
            self.signal,
            if self.timed_out {
                "(TIMED OUT, killed)"
            } else {
                "no"
            },
            self.elapsed.as_millis()
        );
        let _ = writeln!(s, "---- stderr ----\n{}", tail(&self.stderr, 150));
        let _ = writeln!(s, "---- stdout ----\n{}", tail(&self.stdout, 60));
        s
    }
}

/// Runs the binary with `args` to completion, killing it after `bound`.
pub fn run<S: AsRef<str>>(args: &[S], bound: Duration) -> Run {
    run_cmd(args, bound, |_| {})
}

/// As [`run`], with a hook to adjust the command (uid, env).
pub fn run_cmd<S: AsRef<str>>(
    args: &[S],
    bound: Duration,
    adjust: impl FnOnce(&mut Command),
) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    Tool::spawn_with(args, adjust).wait(bound)
}

/// A running instance whose output is collected as it comes.
pub struct Tool {
    pub args: Vec<String>,
    child: Option<Child>,
    started: Instant,
    stdout: Arc<Mutex<Vec<(Instant, String)>>>,
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
    readers: Vec<JoinHandle<()>>,
}

fn pump<R: Read + Send + 'static>(
    r: R,
    into: Arc<Mutex<Vec<(Instant, String)>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => into.lock().unwrap().push((Instant::now(), line)),
            }
        }
    })
}

fn joined(lines: &Mutex<Vec<(Instant, String)>>) -> String {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.as_str())
        .collect()
}

impl Tool {
    pub fn spawn(args: Vec<String>) -> Tool {
        Tool::spawn_with(args, |_| {})
    }

    /// [`Tool::spawn`] with a hook to adjust the command (uid, env).
    pub fn spawn_with(args: Vec<String>, adjust: impl FnOnce(&mut Command)) -> Tool {
        let mut cmd = command(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        adjust(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            pump(child.stdout.take().unwrap(), stdout.clone()),
            pump(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Tool {
            args,
            child: Some(child),
            started,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal uwsgi-reload");
    }

    pub fn stderr_so_far(&self) -> String {
        joined(&self.stderr)
    }

    pub fn events_so_far(&self) -> Vec<Value> {
        parse_events(&joined(&self.stdout))
    }

    /// Whether it exited already.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(Some(_)))
    }

    /// Waits for a `--json` event matching `pred`.
    pub fn wait_event(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events_so_far().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if self.exited() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit, at most `bound` after the start (then SIGKILL).
    pub fn wait(mut self, bound: Duration) -> Run {
        let mut child = self.child.take().unwrap();
        let deadline = self.started + bound;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait().expect("wait uwsgi-reload") {
                Some(st) => break st,
                None if Instant::now() > deadline => {
                    timed_out = true;
                    let _ = child.kill();
                    break child.wait().unwrap();
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let elapsed = self.started.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stdout_timed = std::mem::take(&mut *self.stdout.lock().unwrap());
        Run {
            args: std::mem::take(&mut self.args),
            code: status.code(),
            signal: status.signal(),
            timed_out,
            stdout: stdout_timed.iter().map(|(_, l)| l.as_str()).collect(),
            stderr: joined(&self.stderr),
            stdout_timed,
            elapsed,
        }
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
