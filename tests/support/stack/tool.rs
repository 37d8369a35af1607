//! Runs the `uwsgi-reload` binary against a stack.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use super::tail;
use super::Stack;

pub const BIN: &str = env!("CARGO_BIN_EXE_uwsgi-reload");

/// A finished run.
#[derive(Clone, Debug)]
pub struct ToolRun {
    pub args: Vec<String>,
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// It did not exit within the test's bound and was killed.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

fn parse_events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The vassal a JSON event is about, if it names one.
pub fn event_vassal(e: &Value) -> Option<String> {
    ["vassal", "id", "name", "config"]
        .iter()
        .find_map(|k| e.get(*k).and_then(Value::as_str))
        .map(|s| super::topology::config_stem(s).unwrap_or_else(|| s.to_string()))
}

pub fn event_kind(e: &Value) -> &str {
    e.get("event").and_then(Value::as_str).unwrap_or("")
}

impl ToolRun {
    /// `--json` events (one JSON object per stdout line).
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.stdout)
    }

    pub fn summary(&self) -> Option<Value> {
        self.events()
            .into_iter()
            .rev()
            .find(|e| event_kind(e) == "summary")
    }

    /// Names (without `.ini`) in the summary's array `field`, or None if
    /// there is no summary or no such array.
    pub fn summary_list(&self, field: &str) -> Option<Vec<String>> {
        let s = self.summary()?;
        let arr = s.get(field)?.as_array()?;
        let mut v: Vec<String> = arr
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Object(_) => event_vassal(x),
                _ => None,
            })
            .map(|s| super::topology::config_stem(&s).unwrap_or(s))
            .collect();
        v.sort();
        Some(v)
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "uwsgi-reload {}\n  exit code {:?}, signal {:?}, timed out {}, took {} ms",
            self.args.join(" "),
            self.code,
            self.signal,
            self.timed_out,
            self.elapsed.as_millis()
        );
        let _ = writeln!(s, "---- stderr ----\n{}", tail(&self.stderr, 150));
        let _ = writeln!(s, "---- stdout ----\n{}", tail(&self.stdout, 60));
        s
    }
}

/// A running instance.
pub struct Tool {
    pub args: Vec<String>,
    child: Option<Child>,
    started: Instant,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn pump<R: Read + Send + 'static>(r: R, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => into.lock().unwrap().push_str(&line),
            }
        }
    })
}

impl Stack {
    /// The three arguments every run needs (the uwsgi_reload.py ones).
    /// With several fastrouters, `--fastrouter-stats-socket` once per router.
    pub fn base_args(&self) -> Vec<String> {
        let mut args = vec![
            "--emperor-path".into(),
            self.vassals_dir().display().to_string(),
        ];
        for p in self.fastrouter_stats_paths() {
            args.push("--fastrouter-stats-socket".into());
            args.push(p.display().to_string());
        }
        args.push("--emperor-stats-socket".into());
        args.push(self.emperor_stats_path().display().to_string());
        args
    }

    /// Starts `uwsgi-reload` with the base arguments and `extra`, then the
    /// words of `$E2E_TOOL_ARGS` if set (for experiments, e.g. `--no-drain`).
    pub fn spawn_tool(&self, extra: &[&str]) -> Tool {
        let mut args = self.base_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        if let Ok(more) = std::env::var("E2E_TOOL_ARGS") {
            args.extend(more.split_whitespace().map(str::to_string));
        }
        Tool::spawn(args)
    }

    /// Runs `uwsgi-reload` to completion (killed after `timeout`).
    pub fn run_tool(&self, extra: &[&str], timeout: Duration) -> ToolRun {
        self.spawn_tool(extra).wait(timeout)
    }
}

impl Tool {
    pub fn spawn(args: Vec<String>) -> Tool {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            pump(child.stdout.take().unwrap(), stdout.clone()),
            pump(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Tool {
            args,
            child: Some(child),
            started: Instant::now(),
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
        self.stderr.lock().unwrap().clone()
    }

    pub fn events_so_far(&self) -> Vec<Value> {
        parse_events(&self.stdout.lock().unwrap())
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
        super::poll(timeout, Duration::from_millis(10), || {
            if let Some(e) = self.events_so_far().into_iter().find(|e| pred(e)) {
                return Some(Some(e));
            }
            self.exited().then_some(None)
        })
        .flatten()
    }

    /// Waits for the exit, at most `timeout` (then SIGKILL).
    pub fn wait(mut self, timeout: Duration) -> ToolRun {
        let mut child = self.child.take().unwrap();
        let deadline = self.started + timeout;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait().expect("wait uwsgi-reload") {
                Some(st) => break st,
                None if Instant::now() > deadline => {
                    timed_out = true;
                    let _ = child.kill();
                    break child.wait().unwrap();
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let elapsed = self.started.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        use std::os::unix::process::ExitStatusExt;
        ToolRun {
            args: std::mem::take(&mut self.args),
            code: status.code(),
            signal: status.signal(),
            timed_out,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
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
