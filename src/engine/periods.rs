//! A vassal's announce period as the fastrouter shows it over time, for a
//! vassal whose `subscribe-freq` its files cannot tell
//! (`Settings::freq_uncertain`: the Emperor gave its master options, or it
//! loads files the tool does not follow; docs/UWSGI.md §9.12).
//!
//! What is learnt is the interval between two of the vassal's own
//! refreshes of one node (its `last_check` moving; the tool's own packets
//! are taken out before, `nodes::keep_the_vassals_word`). A master
//! announces at its loop's entry, a cycle later, then whenever its cycle
//! count, which moves at most once per wall second, is a multiple of
//! `subscribe-freq` (docs/UWSGI.md §9.1): two regular announces are at
//! least the period apart, less a second of delivery across a second's
//! edge, and the first regular one comes a period less one cycle after
//! the second; a read that missed an announce sees a multiple. So the
//! period learnt is the real one or one or two seconds short, never more,
//! which the announce window's `settings::ANNOUNCE_SLACK_S` (3 s) covers.
//! It is learnt from two intervals in a row of one node that
//! agree within a second: one odd interval (a remote router's clock step,
//! a stalled read) is not taken for a period.
//!
//! Everything learnt belongs to one generation of the vassal and is
//! forgotten when the rollout reloads it or another generation starts: a
//! release may change the period. A node the reload kept still shows the
//! previous master's last check at first; the interval from it to the new
//! master's first announce is one odd interval, followed by the one-second
//! interval of the new master's first cycle, which breaks the pair.

use std::collections::BTreeMap;

use super::{Engine, Vassal};
use crate::stats::Node;

/// The shortest interval learnt from. A master announces twice in its
/// first second or two (entering its loop, then at its first cycle:
/// docs/UWSGI.md §9.1); a second's delivery delay may stretch those two
/// to 2 s. A vassal that really announces every second or two is never
/// learnt: it stays on the safe side.
const MIN_INTERVAL_S: i64 = 3;

/// What one vassal's running generation has shown so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learning {
    /// The generation all below belongs to: (pid, start in wall seconds).
    generation: Option<(i64, i64)>,
    /// Per node (key, name): its last own `last_check` seen, and the
    /// interval that led to it.
    nodes: BTreeMap<(String, String), (i64, Option<i64>)>,
    /// The period, once learnt.
    period: Option<i64>,
}

impl Learning {
    /// Folds in one snapshot's nodes of this vassal. `generation` is its
    /// running generation as the Emperor last showed it; a new one starts
    /// afresh, as does a vassal the rollout reloads (the caller passes
    /// none while it is in flight).
    pub fn observe<'a>(
        &mut self,
        generation: Option<(i64, i64)>,
        nodes: impl Iterator<Item = (&'a str, &'a Node)>,
    ) {
        if generation.is_none() || generation != self.generation {
            *self = Learning {
                generation,
                ..Learning::default()
            };
        }
        if generation.is_none() {
            return;
        }
        let mut next = BTreeMap::new();
        for (key, n) in nodes {
            if n.death_mark != 0 || !n.refreshed_by_vassal() {
                continue;
            }
            let id = (key.to_string(), n.name.clone());
            let entry = match self.nodes.get(&id) {
                Some(&(before, last_interval)) if n.last_check > before => {
                    let d = n.last_check - before;
                    let d = (d >= MIN_INTERVAL_S).then_some(d);
                    // Two intervals in a row that agree (within the second
                    // a master cycle drifts): one odd interval (a router's
                    // clock step, a stalled read) is never taken.
                    if let (Some(a), Some(b)) = (last_interval, d) {
                        if (a - b).abs() <= 1 {
                            let p = a.min(b);
                            self.period = Some(self.period.map_or(p, |q| q.min(p)));
                        }
                    }
                    (n.last_check, d)
                }
                Some(&same) => same,
                None => (n.last_check, None),
            };
            next.insert(id, entry);
        }
        // A node no longer listed starts afresh when it comes back.
        self.nodes = next;
    }

    /// The period learnt for `generation`, if that is the one observed.
    pub fn period_s(&self, generation: Option<(i64, i64)>) -> Option<i64> {
        self.period
            .filter(|_| generation.is_some() && generation == self.generation)
    }
}

impl Engine {
    /// Folds the fastrouter snapshot just kept (the tool's packets taken
    /// out, on our clock) into the periods of the vassals whose files
    /// cannot tell theirs.
    pub(super) fn learn_periods(&mut self) {
        let Some(fr) = self.fr.as_ref() else { return };
        for i in 0..self.vassals.len() {
            let v = &mut self.vassals[i];
            if !self.s.freq_uncertain.contains(&v.name) {
                continue;
            }
            let generation = v.evidence.generation.filter(|_| !v.phase.in_flight());
            let pid = generation.map_or(0, |(pid, _)| pid);
            let nodes = self.matcher.nodes_of_at(i, &v.name, pid, fr);
            v.evidence.period.observe(generation, nodes);
        }
    }

    /// The announce period learnt for vassal `v`, if its files cannot tell
    /// it and the router has shown it for its running generation (never
    /// while the rollout reloads it).
    pub(super) fn learnt_period_s(&self, v: &Vassal) -> Option<i64> {
        if v.phase.in_flight() || !self.s.freq_uncertain.contains(&v.name) {
            return None;
        }
        v.evidence.period.period_s(v.evidence.generation)
    }

    /// How old a node of vassal `v` may be and still be routed to
    /// (`Settings::tolerance_s`), with its learnt period where its files
    /// cannot tell it.
    pub(super) fn tolerance_of(&self, v: &Vassal) -> i64 {
        match self.learnt_period_s(v) {
            Some(p) => self.s.tolerance_for_freq(p),
            None => self.s.tolerance_s(Some(&v.name)),
        }
    }

    /// Its announce window (`Settings::announce_window_ms`), with its
    /// learnt period where its files cannot tell it.
    pub(super) fn announce_window_of(&self, v: &Vassal) -> u64 {
        match self.learnt_period_s(v) {
            Some(p) => super::Settings::window_for_freq(p),
            None => self.s.announce_window_ms(&v.name),
        }
    }

    /// Neither the fastrouter's tolerance nor the vassal's announce period
    /// is known: a node of it the router lists alive is never proof that it
    /// is down, however old (`fsm/AVAILABILITY.md`).
    pub(super) fn age_proves_nothing(&self, v: &Vassal) -> bool {
        !self.s.node_tolerance_known
            && self.s.freq_uncertain.contains(&v.name)
            && self.learnt_period_s(v).is_none()
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

    const GEN: Option<(i64, i64)> = Some((7, 900));

    fn feed(l: &mut Learning, gen: Option<(i64, i64)>, checks: &[i64]) {
        for &c in checks {
            let n = node("/s/a.sock", c, Some(1));
            l.observe(gen, std::iter::once(("k", &n)));
        }
    }

    #[test]
    fn two_intervals_in_a_row_that_agree_make_the_period() {
        let mut l = Learning::default();
        // reads every second: each check is seen several times
        feed(&mut l, GEN, &[1000, 1000, 1030, 1030]);
        assert_eq!(l.period_s(GEN), None, "one interval is not a period");
        // a read missed an announce (60), then 31 (a slow master cycle)
        feed(&mut l, GEN, &[1090, 1121]);
        assert_eq!(l.period_s(GEN), None, "60 then 31 do not agree");
        feed(&mut l, GEN, &[1151]);
        assert_eq!(l.period_s(GEN), Some(30));
        assert_eq!(l.period_s(Some((8, 1200))), None, "another generation's");
    }

    #[test]
    fn odd_intervals_that_do_not_follow_each_other_are_no_period() {
        let mut l = Learning::default();
        // 30-s announces, broken twice by a 5-s one (a clock step back)
        feed(&mut l, GEN, &[1000, 1030, 1035, 1065, 1070, 1100]);
        assert_eq!(l.period_s(GEN), None);
    }

    #[test]
    fn the_previous_masters_checks_and_a_new_generation_teach_nothing() {
        let mut l = Learning::default();
        feed(&mut l, GEN, &[1000, 1030, 1060]);
        assert_eq!(l.period_s(GEN), Some(30));
        // reloaded at 1062, the node kept: its check of 1060 is the old
        // master's; the new one announces at 1066, 1067, then every 8 s
        let next = Some((8, 1062));
        feed(&mut l, next, &[1060, 1066, 1067, 1074]);
        assert_eq!(l.period_s(next), None, "6, 1 and 7 make no pair");
        assert_eq!(l.period_s(GEN), None, "the old period is forgotten");
        feed(&mut l, next, &[1082]);
        assert_eq!(l.period_s(next), Some(7), "one cycle short at first");
        feed(&mut l, next, &[1090, 1098]);
        assert_eq!(l.period_s(next), Some(7));
    }

    #[test]
    fn the_tools_packets_and_dead_nodes_teach_nothing() {
        let mut l = Learning::default();
        for (c, cores) in [
            (1000, Some(1)),
            (1003, Some(0)),
            (1006, Some(0)),
            (1009, Some(0)),
        ] {
            let n = node("/s/a.sock", c, cores);
            l.observe(GEN, std::iter::once(("k", &n)));
        }
        for c in [1012, 1015] {
            let mut dead = node("/s/a.sock", c, Some(1));
            dead.death_mark = 1;
            l.observe(GEN, std::iter::once(("k", &dead)));
        }
        assert_eq!(l.period_s(GEN), None);
    }
}
