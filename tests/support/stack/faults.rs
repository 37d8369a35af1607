//! Faults a test injects into a running stack before or during a rollout,
//! and the waits that make their timing deterministic: a vassal's master
//! killed, a slow next start for one vassal, a crash-looping vassal, node
//! ages in the fastrouter.

use std::fs;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{now_secs, Stack};

impl Stack {
    /// From now on, `name`'s app sleeps `secs` at import (every start of
    /// that vassal, until changed): the marker file examples/stack/app.py reads.
    pub fn set_import_delay(&self, name: &str, secs: f64) {
        fs::write(
            self.dir.join("state").join(format!("{name}.import_delay")),
            secs.to_string(),
        )
        .unwrap();
    }

    /// SIGKILLs `name`'s master (no unsubscribe, no clean-up: a crash).
    /// Returns the pid killed. The Emperor respawns it as a new record.
    pub fn kill_vassal_master(&self, name: &str) -> i64 {
        let emp = self.emperor_stats().expect("emperor stats");
        let pid = emp
            .vassal(&format!("{name}.ini"))
            .unwrap_or_else(|| panic!("{name} is not in the Emperor's stats"))
            .pid;
        assert!(pid > 1, "{name} has pid {pid}");
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill the vassal's master");
        pid
    }

    /// Waits until the Emperor runs `name` under a pid other than `old`.
    pub fn wait_respawned(&self, name: &str, old: i64, timeout: Duration) -> Option<i64> {
        super::poll(timeout, Duration::from_millis(20), || {
            let emp = self.emperor_stats().ok()?;
            let v = emp.vassal(&format!("{name}.ini"))?;
            (v.pid > 0 && v.pid != old).then_some(v.pid)
        })
    }

    /// Waits until `name` is in the Emperor's blacklist (crash-looping).
    pub fn wait_blacklisted(&self, name: &str, timeout: Duration) -> bool {
        super::poll(timeout, Duration::from_millis(50), || {
            let emp = self.emperor_stats().ok()?;
            emp.blacklisted(&format!("{name}.ini")).map(|_| ())
        })
        .is_some()
    }

    /// Age in seconds (fastrouter clock, 1 s resolution) of the last announce
    /// of `node` under the stack's key, None if the node is absent.
    pub fn node_age(&self, node: &str) -> Option<i64> {
        let fr = self.fastrouter_stats().ok()?;
        let age = fr
            .nodes()
            .find(|(k, n)| *k == self.key && n.name == node)
            .map(|(_, n)| now_secs() - n.last_check);
        age
    }

    /// Waits until `name`'s node announced within the last `secs` seconds.
    pub fn wait_fresh_announce(&self, name: &str, secs: i64, timeout: Duration) -> bool {
        let node = self.node_name(name);
        super::poll(timeout, Duration::from_millis(50), || {
            self.node_age(&node).filter(|a| *a <= secs).map(|_| ())
        })
        .is_some()
    }

    /// Waits until at least `count` nodes of the key are older than `secs`
    /// (last announce), and returns every node's age.
    pub fn wait_nodes_older_than(
        &self,
        secs: i64,
        count: usize,
        timeout: Duration,
    ) -> Option<Vec<(String, i64)>> {
        super::poll(timeout, Duration::from_millis(200), || {
            let fr = self.fastrouter_stats().ok()?;
            let now = now_secs();
            let ages: Vec<(String, i64)> = fr
                .nodes()
                .filter(|(k, _)| *k == self.key)
                .map(|(_, n)| {
                    let short = n.name.rsplit('/').next().unwrap_or(&n.name).to_string();
                    (short, now - n.last_check)
                })
                .collect();
            (ages.iter().filter(|(_, a)| *a > secs).count() >= count).then_some(ages)
        })
    }
}
