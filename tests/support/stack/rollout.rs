//! A rollout under load: the load and the fastrouter sampler start, the tool
//! runs (with what the scenario does before and while it runs), and
//! everything observed comes back as one [`Rollout`].

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::{Checks, Fleet, Load, LoadReport, LoadSpec, Run, SampleReport, Sampler, Stack, Tool};

/// Everything observed during one rollout under load.
pub struct Rollout {
    /// The stack's state before the tool started.
    pub before: Fleet,
    /// The stack's state read right after the tool exited.
    pub after: Fleet,
    pub run: Run,
    pub load: LoadReport,
    pub samples: SampleReport,
    /// The same sampling of every other fastrouter
    /// (`StackSpec::two_fastrouters`), in the order of
    /// `Stack::fastrouter_stats_paths`.
    pub other_routers: Vec<SampleReport>,
    /// When the tool was started, in ms after the load and the sampler started
    /// (all three share one clock, so failure times line up with samples).
    pub tool_started_ms: u128,
    /// The clock of every time above.
    pub t0: Instant,
    /// Vassal -> its node's name in the router (of the first host).
    pub node_names: std::collections::BTreeMap<String, String>,
    /// Lines the fastrouter logged from the tool's start to its exit that
    /// say it could not reach a node and retried another (`unable to
    /// connect()`, `marking ... as failed`): a request that succeeded only
    /// by a retry.
    pub router_retries: Vec<String>,
    /// When the tool had exited (ms after t0): with `tool_started_ms`, the
    /// window the K checks require the sampler to have seen.
    pub tool_ended_ms: u128,
    /// Notes written by the scenario's mid-rollout action, with their times.
    pub notes: Vec<String>,
    /// What the scenario meant to stage and did not see happen
    /// ([`During::missed`]); each is a problem of [`Rollout::checks`].
    pub missed: Vec<String>,
}

/// What a scenario can do under load before the tool starts.
pub struct LeadIn<'a> {
    pub stack: &'a Stack,
    pub t0: Instant,
    pub notes: Vec<String>,
    pub missed: Vec<String>,
}

impl LeadIn<'_> {
    /// Records a timestamped note; returns its time (ms after t0).
    pub fn note(&mut self, what: impl Into<String>) -> u128 {
        let ms = self.t0.elapsed().as_millis();
        let what = what.into();
        eprintln!("[e2e {ms:>6} ms] {what}");
        self.notes.push(format!("{ms:>6} ms  {what}"));
        ms
    }

    /// The staged event did not happen: noted, and a failure of the checks.
    pub fn missed(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.note(format!("SCENARIO MISSED: {what}"));
        self.missed.push(what);
    }
}

/// What a scenario can do while the tool runs.
pub struct During<'a> {
    pub stack: &'a Stack,
    pub tool: &'a mut Tool,
    pub before: &'a Fleet,
    pub t0: Instant,
    pub notes: Vec<String>,
    pub missed: Vec<String>,
}

impl During<'_> {
    /// The event the scenario stages did not happen (e.g. no reload started,
    /// no `drain_started` event): noted, and a failure of
    /// [`Rollout::checks`], so a test cannot pass without its scenario.
    pub fn missed(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.note(format!("SCENARIO MISSED: {what}"));
        self.missed.push(what);
    }

    /// ms after t0 (the clock of the load's failures and the samples).
    pub fn ms(&self) -> u128 {
        self.t0.elapsed().as_millis()
    }

    /// Records a timestamped note that ends up in the failure report.
    pub fn note(&mut self, what: impl Into<String>) {
        self.note_at(what);
    }

    /// [`During::note`], returning the note's time (ms after t0).
    pub fn note_at(&mut self, what: impl Into<String>) -> u128 {
        let ms = self.t0.elapsed().as_millis();
        let what = what.into();
        eprintln!("[e2e {ms:>6} ms] {what}");
        self.notes.push(format!("{ms:>6} ms  {what}"));
        ms
    }
}

impl Stack {
    /// Starts the sampler and the load, runs the tool with `args` (after the
    /// three socket/dir arguments), calls `during` while it runs, waits for
    /// it (at most `tool_timeout`), reads the stack's state at once, lets the
    /// load run a little longer, and returns everything observed.
    pub fn rollout<F>(
        &self,
        args: &[&str],
        load: LoadSpec,
        tool_timeout: Duration,
        during: F,
    ) -> Rollout
    where
        F: FnOnce(&mut During<'_>),
    {
        self.rollout_with(args, load, tool_timeout, |_| {}, during)
    }

    /// [`Stack::rollout`] with a `lead_in` that runs under load and sampling
    /// before the tool starts (a fault injected then, from t0 + 500 ms). The
    /// fleet state `before` is read after it.
    pub fn rollout_with<L, F>(
        &self,
        args: &[&str],
        load: LoadSpec,
        tool_timeout: Duration,
        lead_in: L,
        during: F,
    ) -> Rollout
    where
        L: FnOnce(&mut LeadIn<'_>),
        F: FnOnce(&mut During<'_>),
    {
        let t0 = Instant::now();
        let sampler = self.sampler(self.fastrouter_stats_path(), t0);
        let others: Vec<Sampler> = self
            .fastrouter_stats_paths()
            .into_iter()
            .skip(1)
            .map(|p| self.sampler(p, t0))
            .collect();
        let load = Load::start(self.port, load, t0);
        // let the load reach steady state before anything changes
        std::thread::sleep(Duration::from_millis(500));
        let mut li = LeadIn {
            stack: self,
            t0,
            notes: Vec::new(),
            missed: Vec::new(),
        };
        lead_in(&mut li);
        let (lead_notes, lead_missed) = (li.notes, li.missed);
        let before = self.fleet();
        let logs_at = self.router_log_sizes();
        let tool_started_ms = t0.elapsed().as_millis();
        let mut tool = self.spawn_tool(args);
        let mut d = During {
            stack: self,
            tool: &mut tool,
            before: &before,
            t0,
            notes: lead_notes,
            missed: lead_missed,
        };
        during(&mut d);
        let (notes, missed) = (d.notes, d.missed);
        let run = tool.wait(tool_timeout);
        let tool_ended_ms = t0.elapsed().as_millis();
        let router_retries = self.router_retries_since(&logs_at);
        let after = self.fleet();
        std::thread::sleep(Duration::from_millis(500));
        let load = load.stop();
        let samples = sampler.stop();
        let other_routers = others.into_iter().map(Sampler::stop).collect();
        Rollout {
            before,
            after,
            run,
            load,
            samples,
            other_routers,
            tool_started_ms,
            router_retries,
            t0,
            node_names: self
                .hosts
                .iter()
                .flat_map(|h| h.names.iter().map(move |n| (n.clone(), h.node_name(n))))
                .collect(),
            tool_ended_ms,
            notes,
            missed,
        }
    }
}

impl Stack {
    /// The logs a fastrouter of this stack writes to: the standalone
    /// routers' own, and each Emperor's (the embedded router logs there).
    fn router_logs(&self) -> Vec<std::path::PathBuf> {
        let mut v = vec![
            self.dir.join("logs/fastrouter.log"),
            self.dir.join("logs/fastrouter-b.log"),
        ];
        v.extend(self.hosts.iter().map(|h| h.dir.join("logs/emperor.log")));
        v
    }

    /// Each router log's length now.
    pub fn router_log_sizes(&self) -> Vec<(std::path::PathBuf, u64)> {
        self.router_logs()
            .into_iter()
            .map(|p| {
                let n = std::fs::metadata(&p).map_or(0, |m| m.len());
                (p, n)
            })
            .collect()
    }

    /// The retry lines (`unable to connect()`, `marking ... as failed`)
    /// logged after `sizes` ([`Stack::router_log_sizes`]).
    pub fn router_retries_since(&self, sizes: &[(std::path::PathBuf, u64)]) -> Vec<String> {
        let mut out = Vec::new();
        for (p, from) in sizes {
            let Ok(bytes) = std::fs::read(p) else {
                continue;
            };
            let tail =
                String::from_utf8_lossy(&bytes[(*from as usize).min(bytes.len())..]).into_owned();
            out.extend(
                tail.lines()
                    .filter(|l| is_router_retry(l))
                    .map(str::to_string),
            );
        }
        out
    }
}

/// A line of the router's log that says it gave up on a backend connection
/// and retried another node: `[uwsgi-fastrouter] ... unable to connect()`,
/// or `[uwsgi-fastrouter] KEY => marking ADDR as failed` (`corerouter.c`,
/// `corerouter_close_peer`). An unsubscribe packet (the tool's drain, a
/// vassal's `unsubscribe-on-graceful-reload`) logs the same words under
/// another prefix, `[uWSGI fastrouter pid N] KEY => marking ADDR as failed`
/// (`cr_common.c`, docs/UWSGI.md §9.3): that one is no retry.
/// (`[uwsgi-subscription for pid N] ... marking ADDR as failed (no announce
/// received ...)` is a node expiring, not a retry either.)
pub fn is_router_retry(line: &str) -> bool {
    if line.contains("unable to connect()") {
        return true;
    }
    // The tag of `[uwsgi-TAG]`: a router's short name, one word.
    let tag = line
        .split_once("[uwsgi-")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(tag, _)| tag);
    tag.is_some_and(|t| !t.contains(' ')) && line.contains("marking") && line.contains("as failed")
}

#[test]
fn harness_tells_a_router_retry_from_an_unsubscribe() {
    let retry =
        "2026-12-07 17:05:50 - [uwsgi-fastrouter] e2e.example => marking 127.0.0.1:1 as failed";
    let connect = "[uwsgi-fastrouter] unable to connect() to node \"127.0.0.1:1\" (3 retries): Connection refused";
    let unsubscribe = "2026-12-07 17:05:50 - [uWSGI fastrouter pid 29396] e2e.example => marking 127.0.0.1:1 as failed";
    let expired = "[uwsgi-subscription for pid 7] e2e.example => marking 127.0.0.1:1 as failed (no announce received in 17 seconds)";
    assert!(is_router_retry(retry) && is_router_retry(connect));
    assert!(!is_router_retry(unsubscribe) && !is_router_retry(expired));
}

impl Rollout {
    /// The full story, for assertion messages.
    pub fn context(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\n======== rollout report ========");
        let _ = writeln!(
            s,
            "tool started at {} ms (t0 = load/sampler start)",
            self.tool_started_ms
        );
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(s, "{}", self.run.describe());
        let _ = writeln!(s, "{}", self.load.describe());
        let _ = writeln!(s, "{}", self.samples.describe());
        for (i, o) in self.other_routers.iter().enumerate() {
            let _ = writeln!(s, "router {}: {}", i + 2, o.describe());
        }
        let _ = writeln!(s, "fleet before:\n{}", self.before.describe());
        let _ = writeln!(s, "fleet after:\n{}", self.after.describe());
        s
    }

    /// Starts collecting checks; `finish()` panics with every violation and
    /// the full report.
    pub fn checks(&self) -> Checks<'_> {
        Checks {
            r: self,
            problems: self
                .missed
                .iter()
                .map(|m| format!("the scenario did not happen: {m}"))
                .collect(),
        }
    }
}
