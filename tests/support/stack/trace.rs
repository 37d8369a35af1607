//! Time-aligned evidence for the drain check: every fastrouter sample with
//! the time its read started, and every `--json` event of the tool with the
//! time its line arrived, all on one clock (`t0`).
//!
//! The harness's sampler (`tests/support/stack/sampler.rs`) keeps only changes and
//! the tool's `at_ms` counts from its own start, which comes after an
//! unknown start-up delay. Here each event's time is bounded from above:
//! the tool's stdout is line-buffered, so an event happened no later than its
//! line arrived; with `base = min(arrival - at_ms)` over all events,
//! `base + at_ms` is at or after the real event, and a sample whose read
//! started after that saw the world after the event.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use uwsgi_reload::stats::FastrouterSnapshot;

use super::read_stats;
use super::tool::{event_kind, event_vassal, Run, Tool};

/// One node in one sample: (ref, death_mark).
pub type NodeView = (i64, i64);

#[derive(Clone, Debug)]
pub struct Sample {
    /// When the read started, ms after t0.
    pub ms: f64,
    /// Node name -> (ref, death_mark), for the traced key.
    pub nodes: BTreeMap<String, NodeView>,
}

pub struct Trace {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Trace {
    /// Reads `socket` every `every` until stopped and keeps every sample.
    pub fn start(socket: PathBuf, key: String, t0: Instant, every: Duration) -> Trace {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                if let Ok(snap) = read_stats(&socket)
                    .and_then(|b| FastrouterSnapshot::parse(&b).map_err(|e| format!("{e:?}")))
                {
                    let nodes = snap
                        .nodes()
                        .filter(|(k, _)| *k == key)
                        .map(|(_, n)| (n.name.clone(), (n.refs, n.death_mark)))
                        .collect();
                    out.push(Sample { ms, nodes });
                }
                if let Some(rest) = every.checked_sub(tick.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            out
        });
        Trace { stop, handle }
    }

    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("trace thread panicked")
    }
}

/// A finished run of the tool with arrival times.
pub struct TimedRun {
    pub run: Run,
    /// When it was spawned, ms after t0.
    pub spawned_ms: f64,
    /// (event, arrival ms after t0), in order.
    pub events: Vec<(Value, f64)>,
}

impl TimedRun {
    /// `base + at_ms` is no earlier than the real event (see the module doc).
    pub fn base_ms(&self) -> f64 {
        self.events
            .iter()
            .filter_map(|(e, arr)| Some(arr - e.get("at_ms")?.as_f64()?))
            .fold(f64::INFINITY, f64::min)
    }

    /// The upper-bounded time (ms after t0) of the first event `kind` of `vassal`.
    pub fn event_time(&self, kind: &str, vassal: &str) -> Option<(f64, &Value)> {
        let base = self.base_ms();
        self.events.iter().find_map(|(e, _)| {
            (event_kind(e) == kind && event_vassal(e).as_deref() == Some(vassal)).then(|| {
                (
                    base + e.get("at_ms").and_then(Value::as_f64).unwrap_or(0.0),
                    e,
                )
            })
        })
    }
}

/// Runs the tool with `args` to completion (SIGKILL after `timeout`),
/// with the time each `--json` event's line arrived.
pub fn run_timed(args: Vec<String>, t0: Instant, timeout: Duration) -> TimedRun {
    let spawned_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let run = Tool::spawn(args).wait(timeout);
    let events = run
        .stdout_timed
        .iter()
        .filter(|(_, l)| l.trim_start().starts_with('{'))
        .filter_map(|(t, l)| {
            let ms = t.duration_since(t0).as_secs_f64() * 1000.0;
            Some((serde_json::from_str::<Value>(l).ok()?, ms))
        })
        .collect();
    TimedRun {
        run,
        spawned_ms,
        events,
    }
}

/// What the fastrouter showed of `node` from just after the tool's `drained`
/// event of a vassal until its new generation subscribed again (at most
/// `horizon_ms` after the touch). Ok(number of samples checked) if the node
/// was, in every one of them, absent or death-marked with at most `kept`
/// sessions and never more than the sample before: the drain left no more
/// than the vassal's workers finish through the reload (`kept`: its
/// `processes`, docs/UWSGI.md §19) and nothing reached it until the reload
/// was over. Err(what was seen) otherwise.
pub fn check_drain_window(
    samples: &[Sample],
    node: &str,
    drained_ms: f64,
    touched_ms: f64,
    horizon_ms: f64,
    kept: i64,
) -> Result<usize, String> {
    let end = touched_ms + horizon_ms;
    // `drained_ms` is `base + at_ms`, and `at_ms` counts whole
    // milliseconds (truncated): the real event may be up to 1 ms later
    // than that bound, so a sample whose read started within that 1 ms
    // may not show it yet. Such a sample counts when it shows the node out
    // (gone or death-marked), and is passed over when it shows it live.
    let unsure_until = drained_ms + 1.0;
    let mut checked = 0;
    let mut seen_gone = false;
    let mut last_ref = kept;
    let mut story = String::new();
    for s in samples.iter().filter(|s| s.ms >= drained_ms && s.ms <= end) {
        let v = s.nodes.get(node).copied();
        let _ = write!(
            story,
            " {:.0}:{}",
            s.ms,
            v.map_or("gone".to_string(), |(r, d)| format!("ref{r}/dm{d}"))
        );
        match v {
            None => {
                seen_gone = true;
                last_ref = 0;
                checked += 1;
            }
            Some((r, 1)) if (0..=last_ref).contains(&r) => {
                seen_gone = true;
                last_ref = r;
                checked += 1;
            }
            // the new generation subscribed: the window is over
            Some((_, 0)) if seen_gone => break,
            Some((_, 0)) if s.ms < unsure_until => continue,
            Some((r, 0)) => {
                return Err(format!(
                    "node still live (ref {r}, death_mark 0) at {:.0} ms, after `drained` at {drained_ms:.0} ms \
                     (touched at {touched_ms:.0} ms); samples:{story}",
                    s.ms
                ))
            }
            Some((r, d)) => {
                return Err(format!(
                    "node had {r} session(s) in flight (death_mark {d}) at {:.0} ms, after `drained` at \
                     {drained_ms:.0} ms (touched at {touched_ms:.0} ms); samples:{story}",
                    s.ms
                ))
            }
        }
    }
    if checked == 0 {
        return Err(format!(
            "no fastrouter sample between `drained` at {drained_ms:.0} ms and the re-subscription \
             (touched at {touched_ms:.0} ms); samples:{story}"
        ));
    }
    Ok(checked)
}

/// The samples of `node` the harness sampler took (every successful read,
/// the node's state then: absent, or its ref and death_mark), rebuilt from
/// its change history: the router's own account, on the rollout's clock.
pub fn samples_of(report: &super::SampleReport, node: &str) -> Vec<Sample> {
    let changes: &[(u128, i64, i64)] = report.refs.get(node).map_or(&[], Vec::as_slice);
    let mut i = 0;
    let mut state: Option<NodeView> = None;
    report
        .ok_ms
        .iter()
        .map(|&ms| {
            while i < changes.len() && changes[i].0 <= ms {
                let (_, r, d) = changes[i];
                state = (r, d).ne(&(-1, -1)).then_some((r, d));
                i += 1;
            }
            Sample {
                ms: ms as f64,
                nodes: state
                    .map(|v| BTreeMap::from([(node.to_string(), v)]))
                    .unwrap_or_default(),
            }
        })
        .collect()
}
