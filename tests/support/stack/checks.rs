//! The expectations of a rollout ([`Checks`]: collects every violation, then
//! panics once with all of them and the full report), and the tool's
//! `--json` events with their arrival times ([`ArrivedEvents`]).

use std::fmt::Write as _;

use super::{record, tool, Rollout, SampleReport, Tool};

/// The largest time without a successful router read that a K check
/// accepts: the sampler reads every 30 ms and one read takes a few ms, so on
/// 2 busy cores 1.5 s is 50 periods of margin; a read that hangs runs into
/// its 3 s timeout (stats.rs) and fails the check.
pub const MAX_SAMPLE_GAP_MS: u128 = 1500;

/// Problems with how well `s` saw the window [`from`, `to`] (outside
/// `excluded`): failed reads, or a gap over [`MAX_SAMPLE_GAP_MS`]. A K
/// count is only as good as the reads behind it.
pub fn sampling_problems(
    label: &str,
    s: &SampleReport,
    from: u128,
    to: u128,
    excluded: &[(u128, u128)],
) -> Vec<String> {
    let mut out = Vec::new();
    let errors = s.errors_between(from, to, excluded);
    if let Some((t, e)) = errors.first() {
        out.push(format!(
            "{label}: {} stats read(s) failed during the rollout ({from}..{to} ms, excluding {excluded:?}), \
             first at {t} ms: {e}: K was not seen held",
            errors.len()
        ));
    }
    let (gap, at) = s.max_gap_between(from, to, excluded);
    if gap > MAX_SAMPLE_GAP_MS {
        out.push(format!(
            "{label}: no successful stats read for {gap} ms from {at} ms (bound {MAX_SAMPLE_GAP_MS} ms): K was not \
             seen held"
        ));
    }
    out
}

/// Collects every violated expectation of a rollout, so that one failure
/// report lists them all.
pub struct Checks<'a> {
    pub r: &'a Rollout,
    pub problems: Vec<String>,
}

impl Checks<'_> {
    pub fn fail(&mut self, what: impl Into<String>) {
        self.problems.push(what.into());
    }

    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(what());
        }
    }

    pub fn exit(&mut self, code: i32) {
        let r = self.r;
        self.check(r.run.code == Some(code), || {
            format!(
                "uwsgi-reload exited with {:?} (signal {:?}, killed by the test {}), expected {code}",
                r.run.code, r.run.signal, r.run.timed_out
            )
        });
    }

    /// No request failed, and the load really ran.
    pub fn no_failed_requests(&mut self) {
        let l = &self.r.load;
        self.check(l.ok > 0, || {
            "the load generator got no answer at all".into()
        });
        self.check(l.failures.is_empty(), || {
            let first = &l.failures[0];
            format!(
                "{} of {} requests failed (first at {} ms: {})",
                l.failures.len(),
                l.sent,
                first.at_ms,
                first.what
            )
        });
    }

    /// The fastrouter never had to retry a node during the rollout: every
    /// `unable to connect()` / `marking ... as failed` line it logged is a
    /// request that reached a node out of service and was saved only by
    /// the router's retry (one file per vassal on TCP ports, where a
    /// reloading vassal refuses connections).
    pub fn no_router_retries(&mut self) {
        let r = self.r;
        self.check(r.router_retries.is_empty(), || {
            format!(
                "the fastrouter retried {} time(s) during the rollout (a node in rotation that refused), first: {}",
                r.router_retries.len(),
                r.router_retries[0]
            )
        });
    }

    /// No request took longer than the rollout allows. Derivation: a vassal
    /// has one worker (`processes = 1`) and the app sleeps `delay_ms` per
    /// request; with `threads` clients, the worst a served request waits is
    /// every other client's request ahead of it on one node: `threads ×
    /// delay_ms`; a graceful reload lets the worker's request finish and the
    /// drain keeps new ones off the node, so a reload adds nothing. The
    /// margin (1,000 ms) covers nginx, the router and 2 busy cores. A node
    /// left in rotation during its reload queues requests in its backlog
    /// until the new generation accepts (its import and worker start,
    /// seconds): over the bound.
    pub fn latency_bounded(&mut self, threads: usize, delay_ms: u64) {
        let bound = threads as u128 * delay_ms as u128 + 1_000;
        let max = self.r.load.max_latency.as_millis();
        eprintln!("[e2e measured] slowest request {max} ms, bound {bound} ms");
        self.check(max <= bound, || {
            format!(
                "the slowest request took {max} ms, over the {bound} ms a rollout allows ({threads} clients x \
                 {delay_ms} ms + 1,000 ms): a node served while it could not answer"
            )
        });
    }

    /// The fastrouter never showed fewer than `k` live nodes for `key`.
    pub fn lowest_live(&mut self, key: &str, k: usize) {
        let s = &self.r.samples;
        self.check(s.samples > 10, || {
            format!("the sampler took only {} samples", s.samples)
        });
        let lowest = s.lowest_live.get(key).copied().unwrap_or(0);
        self.check(lowest >= k, || {
            format!(
                "key {key}: only {lowest} live node(s) at {} ms, K = {k}",
                s.lowest_live_at.get(key).copied().unwrap_or(0)
            )
        });
        let (from, to) = (self.r.tool_started_ms, self.r.tool_ended_ms);
        for p in sampling_problems("router 1", s, from, to, &[]) {
            self.fail(p);
        }
    }

    /// Router number `router` (1 = the first) never showed fewer than `k`
    /// live nodes for `key`; prints what it measured.
    pub fn lowest_live_on(&mut self, router: usize, key: &str, k: usize) {
        let s = match router {
            1 => &self.r.samples,
            n => match self.r.other_routers.get(n - 2) {
                Some(s) => s,
                None => return self.fail(format!("router {n} was not sampled")),
            },
        };
        let lowest = s.lowest_live.get(key).copied().unwrap_or(0);
        eprintln!(
            "[e2e measured] router {router}: {} samples, key {key}: lowest live {lowest}, K = {k}",
            s.samples
        );
        self.check(s.samples > 10, || {
            format!(
                "router {router}: the sampler took only {} samples",
                s.samples
            )
        });
        self.check(lowest >= k, || {
            format!(
                "router {router}, key {key}: only {lowest} live node(s) at {} ms, K = {k}",
                s.lowest_live_at.get(key).copied().unwrap_or(0)
            )
        });
        let (from, to) = (self.r.tool_started_ms, self.r.tool_ended_ms);
        for p in sampling_problems(&format!("router {router}"), s, from, to, &[]) {
            self.fail(p);
        }
    }

    /// The fastrouter never showed fewer than `k` live nodes for `key` from
    /// `from_ms` (after t0) to the end of the sampling, outside `excluded`
    /// windows. Prints what it measured.
    pub fn lowest_live_since(
        &mut self,
        key: &str,
        k: usize,
        from_ms: u128,
        excluded: &[(u128, u128)],
    ) {
        let s = &self.r.samples;
        let low = s.lowest_live_between(key, from_ms, u128::MAX, excluded);
        eprintln!(
            "[e2e measured] key {key}: lowest live from {from_ms} ms (excluding {excluded:?}): {low:?}, K = {k}"
        );
        match low {
            None => self.fail(format!("key {key}: no sample after {from_ms} ms")),
            Some((n, at)) => self.check(n >= k, || {
                format!("key {key}: only {n} live node(s) at {at} ms (after {from_ms} ms), K = {k}")
            }),
        }
        let to = self.r.tool_ended_ms;
        for p in sampling_problems("router 1", s, from_ms, to, excluded) {
            self.fail(p);
        }
    }

    /// No request failed except those whose run [start, end] overlaps an
    /// `excused` window (a fault that is not the tool's: a router down, a
    /// killed vassal before the tool started); those are counted and printed
    /// apart. Returns (the tool's failures, excused ones).
    pub fn no_failed_requests_outside(
        &mut self,
        excused: &[(u128, u128)],
        why: &str,
    ) -> (usize, usize) {
        let l = &self.r.load;
        let (exc, mine): (Vec<_>, Vec<_>) = l.failures.iter().partition(|f| {
            // `at_ms` and `took_ms` are each cut to whole milliseconds, so
            // the run really ended up to 2 ms after their sum: a request
            // the router's stop cut at 1,025.9 ms reads as ending at 1,024
            // (e2e_evidence's outage, CI 2026-12-08).
            let (a, b) = (f.at_ms, f.at_ms + f.took_ms + 1);
            excused.iter().any(|(s, e)| a <= *e && b >= *s)
        });
        eprintln!(
            "[e2e measured] requests: {} sent, {} ok, {} failed: {} in the excused windows {excused:?} ({why}), {} \
             outside them",
            l.sent,
            l.ok,
            l.failures.len(),
            exc.len(),
            mine.len()
        );
        self.check(l.ok > 0, || {
            "the load generator got no answer at all".into()
        });
        if let Some(first) = mine.first() {
            self.fail(format!(
                "{} of {} requests failed outside the excused windows (first started at {} ms, took {} ms: {})",
                mine.len(),
                l.sent,
                first.at_ms,
                first.took_ms,
                first.what
            ));
        }
        (mine.len(), exc.len())
    }

    /// `name`'s node (`node` if given, else its first) is in the fastrouter
    /// after the rollout, not death-marked, announced within `tolerance` s.
    pub fn node_fresh(&mut self, name: &str, tolerance: i64) {
        match &self.r.after.get(name).node {
            None => self.fail(format!(
                "{name}: no node in the fastrouter after the rollout"
            )),
            Some(n) => {
                let age = super::now_secs() - n.last_check;
                self.check(n.death_mark == 0 && age <= tolerance + 1, || {
                    format!(
                        "{name}: node death_mark {}, last announce {age} s ago (tolerance {tolerance} s)",
                        n.death_mark
                    )
                });
            }
        }
    }

    /// The scenario happened as the tool saw it: its `--json` output has an
    /// event `kind` (of `vassal`, if given). Returns its index in the events.
    pub fn event(&mut self, kind: &str, vassal: Option<&str>) -> Option<usize> {
        let at = self.r.run.events().iter().position(|e| {
            tool::event_kind(e) == kind
                && vassal.map_or(true, |v| tool::event_vassal(e).as_deref() == Some(v))
        });
        self.check(at.is_some(), || {
            format!(
                "the scenario did not happen: no --json `{kind}` event{}",
                vassal.map_or(String::new(), |v| format!(" of {v}"))
            )
        });
        at
    }

    /// Both events exist and `first` (of `vassal`) came before `then`.
    pub fn event_before(&mut self, first: &str, then: &str, vassal: Option<&str>) {
        if let (Some(a), Some(b)) = (self.event(first, vassal), self.event(then, vassal)) {
            self.check(a < b, || {
                format!("`{first}` (event #{a}) came after `{then}` (event #{b})")
            });
        }
    }

    /// The drain as router 1 showed it, not as the tool reports it: from the
    /// tool's `touched` event of `name` (its time bounded from above: the
    /// line's arrival, less what `at_ms` says came before) until the new
    /// generation subscribed (at most 60 s), every sample shows the node
    /// absent or death-marked with at most `kept` sessions, never more than
    /// the sample before (trace::check_drain_window, the fleet test's
    /// check). Err(what the router showed) otherwise.
    pub fn drain_seen_by_router(&self, name: &str, kept: i64) -> Result<usize, String> {
        let r = self.r;
        let events: Vec<(f64, serde_json::Value)> = r
            .run
            .stdout_timed
            .iter()
            .filter(|(_, l)| l.trim_start().starts_with('{'))
            .filter_map(|(t, l)| {
                let ms = t.duration_since(r.t0).as_secs_f64() * 1000.0;
                Some((ms, serde_json::from_str(l).ok()?))
            })
            .collect();
        let base = events
            .iter()
            .filter_map(|(arr, e)| Some(arr - e.get("at_ms")?.as_f64()?))
            .fold(f64::INFINITY, f64::min);
        let touched = events
            .iter()
            .find(|(_, e)| {
                tool::event_kind(e) == "touched" && tool::event_vassal(e).as_deref() == Some(name)
            })
            .and_then(|(_, e)| e.get("at_ms")?.as_f64())
            .map(|at| base + at)
            .ok_or_else(|| format!("{name}: no `touched` event"))?;
        let node = r.node_names.get(name).cloned().unwrap_or_default();
        let samples = super::trace::samples_of(&r.samples, &node);
        super::trace::check_drain_window(&samples, &node, touched, touched, 60_000.0, kept)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// [`Checks::drain_seen_by_router`] for each of `names`, a problem each.
    pub fn drained_by_the_router(&mut self, names: &[String], kept: i64) {
        for name in names {
            match self.drain_seen_by_router(name, kept) {
                Ok(n) => eprintln!(
                    "[e2e measured] {name}: out of rotation in the router's {n} sample(s) from its touch"
                ),
                Err(e) => self.fail(format!("the router's trace: {e}")),
            }
        }
    }

    /// Reloaded exactly once, gracefully, and live again.
    pub fn reloaded_once(&mut self, name: &str) {
        if let Err(e) = super::check_reloaded_once(self.r.before.get(name), self.r.after.get(name))
        {
            self.fail(format!("{name}: {e}"));
        }
    }

    /// Not touched, and live.
    pub fn untouched(&mut self, name: &str) {
        if let Err(e) = super::check_untouched(self.r.before.get(name), self.r.after.get(name)) {
            self.fail(format!("{name} should be untouched: {e}"));
        }
    }

    /// Each of `names` ended reloaded exactly once or untouched (none
    /// half-reloaded, none twice). Returns (reloaded, untouched).
    pub fn each_reloaded_or_untouched(&mut self, names: &[String]) -> (Vec<String>, Vec<String>) {
        let mut reloaded = Vec::new();
        let mut untouched = Vec::new();
        for name in names {
            let b = self.r.before.get(name);
            let a = self.r.after.get(name);
            match (
                super::check_reloaded_once(b, a),
                super::check_untouched(b, a),
            ) {
                (Ok(()), _) => reloaded.push(name.clone()),
                (_, Ok(())) => untouched.push(name.clone()),
                (Err(r), Err(u)) => self.fail(format!(
                    "{name} is neither reloaded once ({r}) nor untouched ({u})"
                )),
            }
        }
        (reloaded, untouched)
    }

    /// The `--json` summary lists exactly `expected` under `field`.
    pub fn summary_list(&mut self, field: &str, expected: &[String]) {
        let mut want: Vec<String> = expected.to_vec();
        want.sort();
        match self.r.run.summary_list(field) {
            None => self.fail(format!(
                "the --json output has no summary event with a `{field}` array"
            )),
            Some(got) => self.check(got == want, || {
                format!("--json summary `{field}` is {got:?}, the stack says {want:?}")
            }),
        }
    }

    /// The summary's `lowest_live` names `key` with at least `k` (an empty
    /// per-key object, or one without `key`, fails).
    pub fn summary_lowest_live(&mut self, key: &str, k: usize) {
        let Some(s) = self.r.run.summary() else {
            return self.fail("no --json summary event");
        };
        let v = s.get("lowest_live");
        let ok = match v {
            Some(serde_json::Value::Object(m)) => m
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .is_some_and(|n| n >= k as u64),
            _ => false,
        };
        self.check(ok, || {
            format!("--json summary lowest_live is {v:?}, expected key {key} with at least K = {k}")
        });
    }

    /// Panics with every problem and the full report; with `E2E_VERBOSE` set
    /// prints the report even when all is well.
    pub fn finish(self) {
        let r = self.r;
        record::outcome(&r.load, &r.samples, r.run.code, self.problems.is_empty());
        if self.problems.is_empty() && std::env::var_os("E2E_VERBOSE").is_some() {
            eprintln!("{}", self.r.context());
        }
        if !self.problems.is_empty() {
            let mut msg = String::from("\n");
            for p in &self.problems {
                let _ = writeln!(msg, "  * {p}");
            }
            panic!(
                "{} problem(s):{msg}{}",
                self.problems.len(),
                self.r.context()
            );
        }
    }
}

/// `--json` events with the time (ms after t0) the test first saw each line:
/// an upper bound of when the event happened.
#[derive(Default)]
pub struct ArrivedEvents {
    pub events: Vec<(u128, serde_json::Value)>,
}

impl ArrivedEvents {
    /// Takes the events that arrived since the last call.
    pub fn poll(&mut self, tool: &Tool, now_ms: u128) {
        let all = tool.events_so_far();
        for e in all.into_iter().skip(self.events.len()) {
            self.events.push((now_ms, e));
        }
    }

    /// Arrival of the first event `kind` (of `vassal`, if given).
    pub fn first(&self, kind: &str, vassal: Option<&str>) -> Option<u128> {
        self.events
            .iter()
            .find(|(_, e)| {
                tool::event_kind(e) == kind
                    && vassal.map_or(true, |v| tool::event_vassal(e).as_deref() == Some(v))
            })
            .map(|(t, _)| *t)
    }

    /// When each event `kind` really happened, bounded on both sides by the
    /// tool's own clock (`at_ms`): no earlier than `tool_started_ms + at_ms`
    /// (the tool's clock starts after its spawn) and no later than
    /// `base + at_ms`, `base` = the smallest `arrival - at_ms` over all
    /// events (a line arrives after its event). (lower, upper, vassal).
    pub fn all_bounded(&self, kind: &str, tool_started_ms: u128) -> Vec<(u128, u128, String)> {
        let at = |e: &serde_json::Value| e.get("at_ms").and_then(serde_json::Value::as_u64);
        let base = self
            .events
            .iter()
            .filter_map(|(t, e)| Some(t.saturating_sub(at(e)? as u128)))
            .min()
            .unwrap_or(0);
        self.events
            .iter()
            .filter(|(_, e)| tool::event_kind(e) == kind)
            .filter_map(|(_, e)| {
                let a = at(e)? as u128;
                Some((
                    tool_started_ms + a,
                    (base + a).max(tool_started_ms + a),
                    tool::event_vassal(e).unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// Arrival times of every event `kind`, with its vassal.
    pub fn all(&self, kind: &str) -> Vec<(u128, String)> {
        self.events
            .iter()
            .filter(|(_, e)| tool::event_kind(e) == kind)
            .map(|(t, e)| (*t, tool::event_vassal(e).unwrap_or_default()))
            .collect()
    }
}
