//! The fastrouter's clock, learnt from its own stats. A node's `last_check`
//! is the router's `time()` at the last announce (docs/UWSGI.md §9.3):
//! behind a router on another host, the tool's wall clock minus it would
//! shift every freshness judgement by the hosts' skew, so ages are counted
//! on the router's clock instead.
//!
//! The evidence: when the newest `last_check` in a snapshot is newer than
//! every one in the snapshot before, some node was announced between the two
//! reads, so the router's clock read about that `last_check` when our read
//! ended. Each such read gives `our wall - that last_check`, an upper bound
//! of `our wall - the router's` (its `last_check` is at most its now) that is
//! at most a read interval plus a second too high; the smallest of those
//! seen in the last minute is the offset. A skew under 2 s is the same
//! clock to within `last_check`'s resolution, and is taken as none, so
//! nothing changes for a router on this host.

use std::collections::VecDeque;

use super::io::Now;
use crate::stats::FastrouterSnapshot;

/// How long an offset measurement is kept: long enough to ride out quiet
/// spells between announces, short enough to follow a clock step.
const WINDOW_MS: u64 = 60_000;

/// Offsets smaller than this are the same clock, within whole seconds.
const SAME_CLOCK_S: i64 = 2;

#[derive(Clone, Debug, Default)]
pub struct RouterClock {
    /// The newest `last_check` of the previous snapshot.
    prev_newest: Option<i64>,
    /// (when, our wall minus the router's newest `last_check`).
    samples: VecDeque<(u64, i64)>,
    /// At least one offset was ever measured.
    measured: bool,
}

impl RouterClock {
    /// Folds in one fastrouter snapshot read at `now`.
    pub fn observe(&mut self, fr: &FastrouterSnapshot, now: Now) {
        let newest = fr.nodes().map(|(_, n)| n.last_check).max();
        if let (Some(n), Some(p)) = (newest, self.prev_newest) {
            if n > p {
                self.samples
                    .push_back((now.mono_ms, now.wall_s.saturating_sub(n)));
                self.measured = true;
            }
        }
        if newest.is_some() {
            self.prev_newest = newest;
        }
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.mono_ms.saturating_sub(*t) > WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// Has the router's clock been measured at least once (a node
    /// announced between two reads)?
    pub fn measured(&self) -> bool {
        self.measured
    }

    /// Our wall minus the router's, in seconds (0 until measured, or when
    /// within [`SAME_CLOCK_S`]).
    pub fn offset_s(&self) -> i64 {
        match self.samples.iter().map(|(_, o)| *o).min() {
            Some(o) if o.abs() >= SAME_CLOCK_S => o,
            _ => 0,
        }
    }

    /// Our wall second `wall_s` on the router's clock.
    pub fn now_s(&self, wall_s: i64) -> i64 {
        wall_s.saturating_sub(self.offset_s())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Node, Subscription};

    fn snap(last_checks: &[i64]) -> FastrouterSnapshot {
        FastrouterSnapshot {
            subscriptions: vec![Subscription {
                key: "k".into(),
                nodes: last_checks
                    .iter()
                    .map(|lc| Node {
                        last_check: *lc,
                        ..Node::default()
                    })
                    .collect(),
            }],
            ..FastrouterSnapshot::default()
        }
    }

    fn at(s: u64, wall: i64) -> Now {
        Now {
            mono_ms: s * 1000,
            wall_s: wall,
        }
    }

    #[test]
    fn a_router_30_s_behind_is_measured_from_its_announces() {
        let mut c = RouterClock::default();
        c.observe(&snap(&[970, 965]), at(0, 1000));
        assert_eq!(c.offset_s(), 0, "one snapshot proves no skew");
        // A node announced between the reads, at router time 971.
        c.observe(&snap(&[971, 965]), at(1, 1001));
        assert_eq!(c.offset_s(), 30);
        assert_eq!(c.now_s(1001), 971);
        // Ahead instead.
        let mut c = RouterClock::default();
        c.observe(&snap(&[1040]), at(0, 1000));
        c.observe(&snap(&[1041]), at(1, 1001));
        assert_eq!(c.offset_s(), -40);
    }

    #[test]
    fn the_same_clock_is_no_offset_and_old_samples_expire() {
        let mut c = RouterClock::default();
        c.observe(&snap(&[999]), at(0, 1000));
        c.observe(&snap(&[1000]), at(1, 1001));
        assert_eq!(c.offset_s(), 0);
        c.observe(&snap(&[1010]), at(2, 1040));
        assert_eq!(c.offset_s(), 0, "the smallest sample stands");
        // A minute later only the new measurements count.
        c.observe(&snap(&[1011]), at(70, 1041));
        assert_eq!(c.offset_s(), 30);
    }
}
