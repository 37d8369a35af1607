//! Reads the fastrouter stats every ~30 ms: the lowest number of live nodes
//! (`death_mark == 0`) per key, and each node's `ref` history.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uwsgi_reload::stats::FastrouterSnapshot;

pub const INTERVAL: Duration = Duration::from_millis(30);

#[derive(Clone, Debug, Default)]
pub struct SampleReport {
    pub samples: usize,
    /// Failed reads, with their time (ms after t0).
    pub errors: Vec<(u128, String)>,
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
            "sampler: {} samples, {} read errors, lowest live per key {:?} (first at {:?} ms), max ref per node {:?}",
            self.samples,
            self.errors.len(),
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
    /// Samples `socket` until stopped; `keys` are counted even when absent
    /// from the document (then 0 live).
    pub fn start(socket: PathBuf, keys: Vec<String>, t0: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut r = SampleReport::default();
            let mut last_live: BTreeMap<String, usize> = BTreeMap::new();
            let mut last_node: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            while !stop2.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let ms = t0.elapsed().as_millis();
                let snap = super::read_stats(&socket)
                    .and_then(|b| FastrouterSnapshot::parse(&b).map_err(|e| format!("{e:?}")));
                match snap {
                    Err(e) => r.errors.push((ms, e)),
                    Ok(snap) => {
                        r.samples += 1;
                        let mut live: BTreeMap<String, usize> =
                            keys.iter().map(|k| (k.clone(), 0)).collect();
                        let mut seen: BTreeMap<String, (i64, i64)> = BTreeMap::new();
                        for (key, node) in snap.nodes() {
                            let c = live.entry(key.to_string()).or_default();
                            if node.death_mark == 0 {
                                *c += 1;
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
