//! A vassal's announce period as the fastrouter shows it over time, for a
//! vassal whose `subscribe-freq` its files cannot tell
//! (`Settings::freq_uncertain`: the Emperor gave its master options, or it
//! loads files the tool does not follow; docs/UWSGI.md §9.12).
//!
//! What is learnt is the interval between two of the vassal's own
//! refreshes of one node (its `last_check` moving; the tool's own packets
//! are taken out before, `nodes::keep_the_vassals_word`). A master
//! announces when its cycle count, which moves at most once per wall
//! second, reaches a multiple of `subscribe-freq` (docs/UWSGI.md §9.1): two
//! announces are at least the period apart (less one second of delivery
//! across a second's edge), and a read that missed an announce sees a
//! multiple of it. So the smallest interval is never much shorter than the
//! period: the safe side for calling a vassal silent from a node's age,
//! whose window adds `settings::ANNOUNCE_SLACK_S` to it. It is learnt only
//! once seen twice (within one second): one odd interval, such as a
//! remote router's clock step, is not taken for a period.
//!
//! Intervals count only on the router's own clock (raw `last_check`s,
//! before `clocks::RouterClock::normalize`), within one generation of the
//! vassal and while the rollout is not reloading it (a new generation
//! announces at once and again a second later).

use std::collections::BTreeMap;

use super::{nodes, Engine};
use crate::stats::{FastrouterSnapshot, Node};

/// How many of the smallest intervals are kept per vassal.
const KEPT: usize = 8;

/// The shortest interval learnt from. A master announces twice in its
/// first second or two (entering its loop, then at its first cycle:
/// docs/UWSGI.md §9.1), and a respawn the Emperor read has not shown yet
/// would pass those two for one generation's period: every crash-respawn
/// would teach "1 s", and its silence would be "proven" in 4. A vassal
/// that really announces every second is never learnt: it stays on the
/// safe side.
const MIN_INTERVAL_S: i64 = 2;

/// What one vassal's nodes have shown so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learning {
    /// The generation the last checks belong to: (pid, start).
    generation: Option<(i64, i64)>,
    /// Each node's (key, name) last own `last_check` seen.
    last: BTreeMap<(String, String), i64>,
    /// The smallest intervals seen, ascending, at most [`KEPT`].
    intervals: Vec<i64>,
}

impl Learning {
    /// Folds in one snapshot's nodes of this vassal. `generation` is its
    /// running generation as the Emperor last showed it, `counts` false
    /// while the rollout reloads it (nothing is learnt then).
    pub fn observe<'a>(
        &mut self,
        generation: Option<(i64, i64)>,
        counts: bool,
        nodes: impl Iterator<Item = (&'a str, &'a Node)>,
    ) {
        if !counts || generation != self.generation || generation.is_none() {
            self.last.clear();
            self.generation = generation.filter(|_| counts);
            if !counts {
                return;
            }
        }
        let mut next = BTreeMap::new();
        for (key, n) in nodes {
            if n.death_mark != 0 || !n.refreshed_by_vassal() {
                continue;
            }
            let id = (key.to_string(), n.name.clone());
            if let Some(&before) = self.last.get(&id) {
                let d = n.last_check.saturating_sub(before);
                if d >= MIN_INTERVAL_S {
                    self.keep(d);
                }
            }
            next.insert(id, n.last_check);
        }
        // A node no longer listed starts afresh when it comes back.
        self.last = next;
    }

    fn keep(&mut self, d: i64) {
        let at = self.intervals.partition_point(|&x| x <= d);
        if at < KEPT {
            self.intervals.insert(at, d);
            self.intervals.truncate(KEPT);
        }
    }

    /// The period, once the same smallest interval (within one second) was
    /// seen twice.
    pub fn period_s(&self) -> Option<i64> {
        self.intervals
            .windows(2)
            .find(|w| w[1] - w[0] <= 1)
            .map(|w| w[0])
    }
}

impl Engine {
    /// Folds one raw fastrouter snapshot (the tool's packets taken out, on
    /// the router's own clock) into the periods of the vassals whose files
    /// cannot tell theirs.
    pub(super) fn learn_periods(&mut self, fr: &FastrouterSnapshot, matcher: &nodes::Matcher) {
        for (i, v) in self.vassals.iter().enumerate() {
            if !self.s.freq_uncertain.contains(&v.name) {
                continue;
            }
            let pid = v.evidence.generation.map_or(0, |(pid, _)| pid);
            let counts = !v.phase.in_flight();
            self.periods.entry(v.name.clone()).or_default().observe(
                v.evidence.generation,
                counts,
                matcher.nodes_of_at(i, &v.name, pid, fr),
            );
        }
    }

    /// The announce period learnt for `name`, if its files cannot tell it
    /// and the router has shown it.
    pub(super) fn learnt_period_s(&self, name: &str) -> Option<i64> {
        if !self.s.freq_uncertain.contains(name) {
            return None;
        }
        self.periods.get(name)?.period_s()
    }

    /// How old a node of vassal `name` may be and still be routed to
    /// (`Settings::tolerance_s`), with its learnt period where its files
    /// cannot tell it.
    pub(super) fn tolerance_of(&self, name: &str) -> i64 {
        match self.learnt_period_s(name) {
            Some(p) => self.s.tolerance_for_freq(p),
            None => self.s.tolerance_s(Some(name)),
        }
    }

    /// Its announce window (`Settings::announce_window_ms`), with its
    /// learnt period where its files cannot tell it.
    pub(super) fn announce_window_of(&self, name: &str) -> u64 {
        match self.learnt_period_s(name) {
            Some(p) => super::Settings::window_for_freq(p),
            None => self.s.announce_window_ms(name),
        }
    }

    /// Neither the fastrouter's tolerance nor the vassal's announce period
    /// is known: a node of it the router lists alive is never proof that it
    /// is down, however old (`fsm/AVAILABILITY.md`).
    pub(super) fn age_proves_nothing(&self, name: &str) -> bool {
        !self.s.node_tolerance_known
            && self.s.freq_uncertain.contains(name)
            && self.learnt_period_s(name).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, last_check: i64, cores: Option<i64>) -> Node {
        Node {
            name: name.into(),
            last_check,
            cores,
            ..Node::default()
        }
    }

    fn feed(l: &mut Learning, gen: (i64, i64), checks: &[i64]) {
        for &c in checks {
            let n = node("/s/a.sock", c, Some(1));
            l.observe(Some(gen), true, std::iter::once(("k", &n)));
        }
    }

    #[test]
    fn the_period_is_the_smallest_interval_seen_twice() {
        let mut l = Learning::default();
        // reads every second: each check is seen several times
        feed(&mut l, (7, 100), &[1000, 1000, 1030]);
        assert_eq!(l.period_s(), None, "one interval is not a period");
        // a read missed an announce: 60, then 31 (a slow master cycle), 30
        feed(&mut l, (7, 100), &[1090, 1121, 1151]);
        assert_eq!(l.period_s(), Some(30));
    }

    #[test]
    fn a_new_generation_or_a_reload_starts_afresh() {
        let mut l = Learning::default();
        feed(&mut l, (7, 100), &[1000]);
        // a new generation announces at once: 2 s is not an interval, and
        // its first two announces a second apart are not a period
        feed(&mut l, (8, 1001), &[1002, 1003, 1008]);
        assert_eq!(l.intervals, vec![5]);
        let n = node("/s/a.sock", 1009, Some(1));
        l.observe(Some((8, 1001)), false, std::iter::once(("k", &n)));
        assert!(l.last.is_empty(), "nothing is learnt while it is reloaded");
        feed(&mut l, (8, 1001), &[1020]);
        assert_eq!(l.intervals, vec![5], "the check before the reload is gone");
    }

    #[test]
    fn the_tools_packets_and_dead_nodes_teach_nothing() {
        let mut l = Learning::default();
        for (c, cores) in [(1000, Some(1)), (1003, Some(0)), (1006, Some(0))] {
            let n = node("/s/a.sock", c, cores);
            l.observe(Some((7, 1)), true, std::iter::once(("k", &n)));
        }
        let mut dead = node("/s/a.sock", 1009, Some(1));
        dead.death_mark = 1;
        l.observe(Some((7, 1)), true, std::iter::once(("k", &dead)));
        assert!(l.intervals.is_empty());
    }

    #[test]
    fn only_the_smallest_intervals_are_kept() {
        let mut l = Learning::default();
        let checks: Vec<i64> = (0..40).map(|i| 1000 + i * 50 - (i % 3)).collect();
        feed(&mut l, (1, 1), &checks);
        assert_eq!(l.intervals.len(), KEPT);
        assert!(l.intervals.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(l.period_s(), Some(49));
    }
}
