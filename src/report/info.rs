//! What every report says about the run itself, before any vassal: this
//! tool's version, the uWSGI versions the stats sockets report, and the
//! effective settings (K per key, subscription tolerance, drain). The human
//! report prints it as its first line; the JSON summary carries it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::engine::Settings;

/// This tool's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunInfo {
    /// uWSGI's version per stats source (`emperor`, `fastrouter`), as read.
    pub uwsgi: BTreeMap<String, String>,
    /// A node announced longer ago than this is not live (the longest a
    /// vassal of this fleet gets).
    pub tolerance_s: i64,
    /// `tolerance_s` is the fastrouter's, as given; otherwise uWSGI's
    /// default raised to the vassals' subscribe-freq.
    pub tolerance_given: bool,
    /// `(subscription server, timeout in ms)` when each vassal is drained
    /// before its touch.
    pub drain: Option<(String, u64)>,
    pub max_parallel: usize,
    pub timeout_ms: u64,
    /// `--stale-since`, as the whole second compared with uWSGI's clocks.
    pub stale_since_s: Option<i64>,
}

impl RunInfo {
    /// The effective settings of a rollout (after the directory and the
    /// vassal configs had their say).
    pub fn new(s: &Settings, subscription_server: Option<&str>) -> RunInfo {
        RunInfo {
            uwsgi: BTreeMap::new(),
            tolerance_s: s.tolerance_s(None),
            tolerance_given: s.node_tolerance_known,
            drain: subscription_server
                .zip(s.drain_timeout_ms)
                .map(|(srv, t)| (srv.to_string(), t)),
            max_parallel: s.max_parallel,
            timeout_ms: s.timeout_ms,
            stale_since_s: s.stale_since_s,
        }
    }

    /// For the one-shot commands (`status`, `--dry-run`): the settings and
    /// the versions of the two documents they read once.
    pub fn with_versions(mut self, emperor: &str, fastrouter: &str) -> RunInfo {
        for (src, v) in [("emperor", emperor), ("fastrouter", fastrouter)] {
            if !v.is_empty() {
                self.uwsgi.insert(src.to_string(), v.to_string());
            }
        }
        self
    }

    /// `uWSGI 2.0.21 (emperor, fastrouter)`, or one version per source when
    /// they differ.
    fn uwsgi_text(&self) -> String {
        let mut by_version: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (src, v) in &self.uwsgi {
            by_version.entry(v).or_default().push(src);
        }
        if by_version.is_empty() {
            return "uWSGI version unknown".into();
        }
        let parts: Vec<String> = by_version
            .iter()
            .map(|(v, srcs)| format!("{v} ({})", srcs.join(", ")))
            .collect();
        format!("uWSGI {}", parts.join(", "))
    }

    /// The first line of the human report.
    pub fn human(&self, min_live: &BTreeMap<String, usize>) -> String {
        let k: Vec<String> = min_live.iter().map(|(k, m)| format!("{k}={m}")).collect();
        let drain = match &self.drain {
            Some((srv, t)) => format!("drain via {srv} up to {:.1} s", *t as f64 / 1000.0),
            None => "drain off".into(),
        };
        format!(
            "uwsgi-reload {VERSION}, {}; K per key: {}; subscription tolerance {} s{}; {drain}; timeout {:.1} s; max parallel {}",
            self.uwsgi_text(),
            if k.is_empty() { "-".into() } else { k.join(", ") },
            self.tolerance_s,
            if self.tolerance_given { "" } else { " (default)" },
            self.timeout_ms as f64 / 1000.0,
            if self.max_parallel == usize::MAX { "unbounded".into() } else { self.max_parallel.to_string() },
        ) + &self
            .stale_since_s
            .map(|t| format!("; only generations started before {t} (--stale-since)"))
            .unwrap_or_default()
    }

    /// Adds `version`, `uwsgi_version` and `settings` to a JSON summary.
    pub fn add_to(&self, summary: &mut Value, min_live: &BTreeMap<String, usize>) {
        summary["version"] = json!(VERSION);
        summary["uwsgi_version"] = json!(self.uwsgi);
        summary["settings"] = json!({
            "min_live": min_live,
            "subscription_tolerance_s": self.tolerance_s,
            "subscription_tolerance_given": self.tolerance_given,
            "drain": self.drain.as_ref().map(|(srv, t)| json!({"server": srv, "timeout_ms": t})),
            "timeout_ms": self.timeout_ms,
            "max_parallel": (self.max_parallel != usize::MAX).then_some(self.max_parallel),
            "stale_since_s": self.stale_since_s,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_grouped_and_settings_named() {
        let mut i = RunInfo {
            tolerance_s: 17,
            tolerance_given: true,
            drain: Some(("/run/sub.sock".into(), 30_000)),
            max_parallel: usize::MAX,
            timeout_ms: 60_000,
            ..RunInfo::default()
        };
        i.uwsgi.insert("emperor".into(), "2.0.21".into());
        i.uwsgi.insert("fastrouter".into(), "2.0.21".into());
        let k = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)]);
        let h = i.human(&k);
        assert!(h.starts_with(&format!("uwsgi-reload {VERSION}, uWSGI 2.0.21 (emperor, fastrouter); K per key: a=1, b=2; subscription tolerance 17 s; drain via /run/sub.sock up to 30.0 s")), "{h}");
        i.uwsgi.insert("fastrouter".into(), "2.0.22".into());
        assert!(i
            .human(&k)
            .contains("uWSGI 2.0.21 (emperor), 2.0.22 (fastrouter)"));
        let mut v = json!({});
        i.add_to(&mut v, &k);
        assert_eq!(v["uwsgi_version"]["fastrouter"], "2.0.22");
        assert_eq!(v["settings"]["min_live"]["b"], 2);
        assert_eq!(v["settings"]["drain"]["timeout_ms"], 30_000);
        assert!(v["settings"]["max_parallel"].is_null());
    }
}
