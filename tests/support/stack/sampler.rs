//! Reads the fastrouter stats every ~30 ms: the lowest number of live nodes
//! per key, each node's `ref` history, every failed read and the time of
//! every successful one (so a check can bound the largest gap: K "held" only
//! counts where it was seen held).
//!
//! A node is live when `death_mark == 0`, its last announce is within the
//! router's `subscription-tolerance` (what the test configured; uWSGI's
//! default 17 s), and, when the sampler knows which vassal owns it
//! ([`Truth`], from [`Stack::sampler`]), that vassal's Emperor record shows it
//! accepting with a master pid that is alive: a dead vassal's leftover node,
//! or a node left in rotation while its vassal reloads, is not live. Every
//! key ever seen (and every key asked for) is counted, as 0 when its slot is
//! gone from the stats (uWSGI removes a key's slot with its last node).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot};

use super::Stack;

pub const INTERVAL: Duration = Duration::from_millis(30);

/// uWSGI's default `subscription-tolerance`, s.
pub const DEFAULT_TOLERANCE_S: i64 = 17;

/// What the sampler checks a node against besides the router's word.
#[derive(Clone, Debug)]
pub struct Truth {
    /// Each Emperor's stats socket, with node name -> the owning vassal's
    /// config id in that Emperor. Nodes not listed are judged by the router
    /// alone (death_mark, freshness).
    pub emperors: Vec<(PathBuf, BTreeMap<String, String>)>,
    /// The router's `subscription-tolerance`, s.
    pub tolerance_s: i64,
}

impl Default for Truth {
    fn default() -> Self {
        Truth {
            emperors: Vec::new(),
            tolerance_s: DEFAULT_TOLERANCE_S,
        }
    }
}

impl Stack {
    /// The router's `subscription-tolerance` as this stack configured it.
    pub fn subscription_tolerance_s(&self) -> i64 {
        self.spec
            .fastrouter_extra
            .iter()
            .rev()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "subscription-tolerance")
                    .then(|| v.trim().parse().ok())
                    .flatten()
            })
            .unwrap_or(DEFAULT_TOLERANCE_S)
    }

    /// Every node of every host mapped to its vassal, and the tolerance.
    pub fn sampler_truth(&self) -> Truth {
        let emperors = self
            .hosts
            .iter()
            .map(|h| {
                let map = h
                    .names
                    .iter()
                    .map(|n| (h.node_name(n), h.config_file(n)))
                    .collect();
                (h.emperor_stats_path(), map)
            })
            .collect();
        Truth {
            emperors,
            tolerance_s: self.subscription_tolerance_s(),
        }
    }

    /// A sampler of router stats socket `socket` that judges nodes by this
    /// stack's Emperors too ([`Truth`]).
    pub fn sampler(&self, socket: PathBuf, t0: Instant) -> Sampler {
        Sampler::start_with(socket, vec![self.key.clone()], t0, self.sampler_truth())
    }
}

/// A process that exists and is not a zombie.
fn pid_alive(pid: i64) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

#[derive(Clone, Debug, Default)]
pub struct SampleReport {
    pub samples: usize,
    /// Failed reads (of the router, or of an Emperor the sampler checks
    /// nodes against), with their time (ms after t0).
    pub errors: Vec<(u128, String)>,
    /// When each successful sample's reads started (ms after t0).
    pub ok_ms: Vec<u128>,
    /// Nodes with death_mark 0 that were not counted live, with the first
    /// time and why (stale, vassal not accepting, its master dead).
    pub not_live: BTreeMap<String, (u128, String)>,
    /// Lowest live count per key over the whole run, and when it was first seen.
    pub lowest_live: BTreeMap<String, usize>,
    pub lowest_live_at: BTreeMap<String, u128>,
    /// (ms, key, live count) whenever a key's live count changed.
    pub live_changes: Vec<(u128, String, usize)>,
    /// Per node name: (ms, ref, death_mark) whenever either changed; a node
    /// that disappeared gets (ms, -1, -1).
    pub refs: BTreeMap<String, Vec<(u128, i64, i64)>>,
    /// Highest `ref` seen per node.
    pub max_ref: BTreeMap<String, i64>,
}

impl SampleReport {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sampler: {} samples, {} read errors, largest gap between reads {} ms, lowest live per key {:?} \
             (first at {:?} ms), max ref per node {:?}",
            self.samples,
            self.errors.len(),
            self.max_gap_between(0, u128::MAX, &[]).0,
            self.lowest_live,
            self.lowest_live_at,
            self.max_ref
                .iter()
                .map(|(k, v)| (k.rsplit('/').next().unwrap_or(k), *v))
                .collect::<BTreeMap<_, _>>()
        );
        for (t, e) in self.errors.iter().take(5) {
            let _ = writeln!(s, "  read error at {t} ms: {e}");
        }
        for (node, (t, why)) in &self.not_live {
            let _ = writeln!(
                s,
                "  node {} with death_mark 0 not counted live (first at {t} ms): {why}",
                node.rsplit('/').next().unwrap_or(node)
            );
        }
        let _ = writeln!(s, "  live nodes per key over time (ms: count):");
        let mut line = String::new();
        for (t, k, n) in &self.live_changes {
            let _ = write!(line, " {t}:{k}={n}");
            if line.len() > 110 {
                let _ = writeln!(s, "   {line}");
                line.clear();
            }
        }
        if !line.is_empty() {
            let _ = writeln!(s, "   {line}");
        }
        let _ = writeln!(
            s,
            "  node (ref, death_mark) over time (ms: ref/dm, -1 = gone):"
        );
        for (node, h) in &self.refs {
            let mut line = format!("   {}:", node.rsplit('/').next().unwrap_or(node));
            for (t, r, d) in h.iter().take(60) {
                let _ = write!(line, " {t}:{r}/{d}");
            }
            if h.len() > 60 {
                let _ = write!(line, " ... ({} changes)", h.len());
            }
            let _ = writeln!(s, "{line}");
        }
        s
    }
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<SampleReport>,
}

impl Sampler {
    /// Samples `socket` until stopped, judging nodes by the router alone;
    /// `keys` are counted even when absent from the document (then 0 live).
    pub fn start(socket: PathBuf, keys: Vec<String>, t0: Instant) -> Sampler {
        Self::start_with(socket, keys, t0, Truth::default())
    }

    /// [`Sampler::start`], a node live only by `truth` too.
    pub fn start_with(socket: PathBuf, keys: Vec<String>, t0: Instant, truth: Truth) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut r = SampleReport::default();
            let mut known_keys: Vec<String> = keys.clone();
            let mut last_live: BTreeMap<String, usize> = BTreeMap::new();
            let mut last_node: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            while !stop2.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let ms = t0.elapsed().as_millis();
                let snap = super::read_stats(&socket)
                    .and_then(|b| FastrouterSnapshot::parse(&b).map_err(|e| format!("{e:?}")));
                // the Emperors right after the router: (node -> (accepting, pid))
                let mut owners: BTreeMap<String, (bool, i64)> = BTreeMap::new();
                let mut emperor_error = None;
                for (path, map) in &truth.emperors {
                    match super::read_stats(path).and_then(|b| {
                        EmperorSnapshot::parse(&b).map_err(|e| format!("emperor stats: {e:?}"))
                    }) {
                        Ok(emp) => {
                            for (node, id) in map {
                                let v = emp.vassal(id);
                                owners.insert(
                                    node.clone(),
                                    v.map_or((false, 0), |v| (v.accepting == 1, v.pid)),
                                );
                            }
                        }
                        Err(e) => emperor_error = Some(e),
                    }
                }
                let now_s = super::now_secs();
                match (snap, emperor_error) {
                    (Err(e), _) | (_, Some(e)) => r.errors.push((ms, e)),
                    (Ok(snap), None) => {
                        r.samples += 1;
                        r.ok_ms.push(ms);
                        let mut live: BTreeMap<String, usize> =
                            known_keys.iter().map(|k| (k.clone(), 0)).collect();
                        let mut seen: BTreeMap<String, (i64, i64)> = BTreeMap::new();
                        for (key, node) in snap.nodes() {
                            if !known_keys.iter().any(|k| k == key) {
                                known_keys.push(key.to_string());
                            }
                            let c = live.entry(key.to_string()).or_default();
                            if node.death_mark == 0 {
                                let age = now_s - node.last_check;
                                // 1 s resolution on both sides: one second of margin
                                let why = if age > truth.tolerance_s + 1 {
                                    Some(format!(
                                        "last announce {age} s ago, tolerance {} s",
                                        truth.tolerance_s
                                    ))
                                } else {
                                    match owners.get(&node.name) {
                                        Some((false, pid)) => Some(format!(
                                            "its vassal (pid {pid}) is not accepting in the Emperor"
                                        )),
                                        Some((true, pid)) if !pid_alive(*pid) => {
                                            Some(format!("its vassal's master pid {pid} is dead"))
                                        }
                                        _ => None,
                                    }
                                };
                                match why {
                                    None => *c += 1,
                                    Some(why) => {
                                        r.not_live.entry(node.name.clone()).or_insert((ms, why));
                                    }
                                }
                            }
                            seen.insert(node.name.clone(), (node.refs, node.death_mark));
                        }
                        for (k, n) in &live {
                            let low = r.lowest_live.entry(k.clone()).or_insert(usize::MAX);
                            if *n < *low {
                                *low = *n;
                                r.lowest_live_at.insert(k.clone(), ms);
                            }
                            if last_live.get(k) != Some(n) {
                                r.live_changes.push((ms, k.clone(), *n));
                            }
                        }
                        last_live = live;
                        for (name, (rf, dm)) in &seen {
                            let m = r.max_ref.entry(name.clone()).or_insert(0);
                            *m = (*m).max(*rf);
                            if last_node.get(name) != Some(&(*rf, *dm)) {
                                r.refs.entry(name.clone()).or_default().push((ms, *rf, *dm));
                            }
                        }
                        for name in last_node.keys() {
                            if !seen.contains_key(name) {
                                r.refs.entry(name.clone()).or_default().push((ms, -1, -1));
                            }
                        }
                        last_node = seen;
                    }
                }
                if let Some(rest) = INTERVAL.checked_sub(tick.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            r
        });
        Sampler { stop, handle }
    }

    pub fn stop(self) -> SampleReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("sampler thread panicked")
    }
}

impl SampleReport {
    /// The largest time (ms) inside [`from`, `to`] without a successful read
    /// (the window's ends count as reads: no read at all in it is one gap)
    /// that overlaps no `excluded` window, with where it started. `to` =
    /// `u128::MAX`: until the last read.
    pub fn max_gap_between(&self, from: u128, to: u128, excluded: &[(u128, u128)]) -> (u128, u128) {
        let to = if to == u128::MAX {
            self.ok_ms.last().copied().unwrap_or(from).max(from)
        } else {
            to
        };
        let mut points: Vec<u128> = vec![from];
        points.extend(self.ok_ms.iter().copied().filter(|t| *t > from && *t < to));
        points.push(to);
        let mut best = (0, from);
        for w in points.windows(2) {
            let (a, b) = (w[0], w[1]);
            if excluded.iter().any(|(s, e)| a <= *e && b >= *s) {
                continue;
            }
            if b - a > best.0 {
                best = (b - a, a);
            }
        }
        best
    }

    /// Failed reads in [`from`, `to`] outside every `excluded` window.
    pub fn errors_between(
        &self,
        from: u128,
        to: u128,
        excluded: &[(u128, u128)],
    ) -> Vec<&(u128, String)> {
        self.errors
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .filter(|(t, _)| !excluded.iter().any(|(s, e)| s <= t && t <= e))
            .collect()
    }

    /// The lowest live count of `key` the sampler saw from `from` to `to` ms
    /// (after t0), leaving out the `excluded` windows, with the first time
    /// it was seen. None if no sample falls in that time.
    pub fn lowest_live_between(
        &self,
        key: &str,
        from: u128,
        to: u128,
        excluded: &[(u128, u128)],
    ) -> Option<(usize, u128)> {
        let steps: Vec<(u128, usize)> = self
            .live_changes
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(t, _, n)| (*t, *n))
            .collect();
        let mut best: Option<(usize, u128)> = None;
        for (i, (t, n)) in steps.iter().enumerate() {
            let end = steps.get(i + 1).map_or(to, |s| s.0.saturating_sub(1));
            let (a, b) = ((*t).max(from), end.min(to));
            if a > b {
                continue;
            }
            // the first instant of [a, b] outside every excluded window
            let mut at = Some(a);
            while let Some(x) = at {
                match excluded.iter().find(|(s, e)| *s <= x && x <= *e) {
                    Some((_, e)) => at = (*e < b).then_some(e + 1),
                    None => break,
                }
            }
            if let Some(x) = at {
                if best.map_or(true, |(m, _)| *n < m) {
                    best = Some((*n, x));
                }
            }
        }
        best
    }
}
