//! Runs the `uwsgi-reload` binary (tests/support/binary.rs) against a
//! stack, and reads its `--json` events.

use std::time::Duration;

use serde_json::Value;

#[allow(unused_imports)] // each crate uses some
pub use crate::binary::{Run, Tool, BIN};

use super::{Host, Stack};

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

impl Run {
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
}

impl Stack {
    /// The three arguments every run needs (the uwsgi_reload.py ones), for
    /// the first host. With several fastrouters,
    /// `--fastrouter-stats-socket` once per router.
    pub fn base_args(&self) -> Vec<String> {
        self.args_for(self.first_host())
    }

    /// [`Stack::base_args`] for host `id` (`StackSpec::host`): its
    /// directory and Emperor stats socket, the shared fastrouter's.
    pub fn host_args(&self, id: &str) -> Vec<String> {
        self.args_for(self.host(id))
    }

    fn args_for(&self, host: &Host) -> Vec<String> {
        let mut args = vec![
            "--emperor-path".into(),
            host.vassals_dir().display().to_string(),
        ];
        for p in self.fastrouter_stats_paths() {
            args.push("--fastrouter-stats-socket".into());
            args.push(p.display().to_string());
        }
        args.push("--emperor-stats-socket".into());
        args.push(host.emperor_stats_path().display().to_string());
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
    pub fn run_tool(&self, extra: &[&str], timeout: Duration) -> Run {
        self.spawn_tool(extra).wait(timeout)
    }
}
