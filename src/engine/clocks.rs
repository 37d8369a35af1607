//! The fastrouters' clocks, learnt from their own stats. A node's
//! `last_check` is its router's `time()` at the last announce
//! (docs/UWSGI.md §9.3): behind a router on another host, the tool's wall
//! clock minus it would shift every freshness judgement by the hosts' skew.
//! So each snapshot is put on our clock as it comes in (`normalize`): every
//! node's `last_check` moved by its own router's offset, and every judgement
//! after that compares one clock.
//!
//! Each router has its own offset (an HA pair may be one local router and
//! one remote, or two hosts), learnt from its own nodes. One read through a
//! unix socket is on this host and shares its wall clock (one kernel, one
//! `CLOCK_REALTIME`), so its offset measures 0 unless it runs with uWSGI's
//! `clock = monotonic` (its `uwsgi_now()` is then seconds since boot), and
//! until measured it is judged on our clock. One read over TCP may be another
//! host's (`Settings::tcp_routers`): until measured its nodes' ages mean
//! nothing.
//!
//! The evidence: when a router's newest `last_check` in a snapshot is newer
//! than every one of it in the snapshot before, some node was announced
//! between the two reads, so its clock read about that `last_check` when
//! our read ended. Each such read gives `our wall - that last_check`, an
//! upper bound of `our wall - the router's` (its `last_check` is at most its
//! now) that is at most a read interval plus a second too high; the
//! smallest of those seen in the last minute is the offset, and the last
//! one measured stands while no new announce comes. A skew under 2 s is the
//! same clock to within `last_check`'s resolution, and is taken as none.
//! Until a TCP router is measured its nodes' ages mean nothing: the engine
//! touches nothing that depends on them (`Engine::clock_allows`).

use std::collections::{BTreeSet, VecDeque};

use super::io::Now;
use crate::stats::split_router_key;
use crate::stats::FastrouterSnapshot;

/// How long an offset measurement is kept: long enough to ride out quiet
/// spells between announces, short enough to follow a clock step.
const WINDOW_MS: u64 = 60_000;

/// Offsets smaller than this are the same clock, within whole seconds.
const SAME_CLOCK_S: i64 = 2;

/// One router's clock.
#[derive(Clone, Debug, Default)]
struct OneClock {
    /// Its newest `last_check` in the previous snapshot.
    prev_newest: Option<i64>,
    /// (when, our wall minus its newest `last_check`).
    samples: VecDeque<(u64, i64)>,
    /// The offset last measured, kept while no new sample comes.
    last: Option<i64>,
}

impl OneClock {
    fn observe(&mut self, newest: Option<i64>, now: Now) {
        if let (Some(n), Some(p)) = (newest, self.prev_newest) {
            if n > p {
                self.samples
                    .push_back((now.mono_ms, now.wall_s.saturating_sub(n)));
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
        // The offset applied moves only when the measure moved by a whole
        // clock difference (a step of either clock, or the first measure):
        // `last_check`s kept from earlier snapshots (a node at the touch,
        // a drained node, a first announce) are compared with later ones,
        // and a second of jitter in the bound must not shift them.
        if let Some(o) = self.samples.iter().map(|(_, o)| *o).min() {
            match self.last {
                Some(l) if (o - l).abs() < SAME_CLOCK_S => {}
                _ => self.last = Some(o),
            }
        }
    }

    fn offset_s(&self) -> i64 {
        match self.last {
            Some(o) if o.abs() >= SAME_CLOCK_S => o,
            _ => 0,
        }
    }
}

/// The clocks of every router the tool reads (by router number, as
/// `router_key` numbers them).
#[derive(Clone, Debug, Default)]
pub struct RouterClock {
    /// The routers read over TCP: not judged until measured.
    tcp: BTreeSet<usize>,
    clocks: std::collections::BTreeMap<usize, OneClock>,
}

impl RouterClock {
    /// Clocks for the routers the tool reads; those in `tcp` are read over
    /// TCP.
    pub fn new(tcp: &BTreeSet<usize>) -> RouterClock {
        RouterClock {
            tcp: tcp.clone(),
            clocks: std::collections::BTreeMap::new(),
        }
    }

    /// Folds in one (merged) fastrouter snapshot read at `now`, raw, as the
    /// routers wrote it: each router's newest `last_check`.
    pub fn observe(&mut self, fr: &FastrouterSnapshot, now: Now) {
        let mut newest: std::collections::BTreeMap<usize, i64> = std::collections::BTreeMap::new();
        for (k, n) in fr.nodes() {
            let e = newest.entry(split_router_key(k).1).or_insert(n.last_check);
            *e = (*e).max(n.last_check);
        }
        for r in newest.keys() {
            self.clocks.entry(*r).or_default();
        }
        for (r, clock) in self.clocks.iter_mut() {
            clock.observe(newest.get(r).copied(), now);
        }
    }

    /// Has every router read over TCP been measured at least once?
    pub fn measured(&self) -> bool {
        self.tcp.iter().all(|r| !self.unmeasured(*r))
    }

    /// Is router `r` read over TCP and not measured yet?
    pub fn unmeasured(&self, r: usize) -> bool {
        self.tcp.contains(&r) && self.clocks.get(&r).map_or(true, |c| c.last.is_none())
    }

    /// Router `r`'s offset: our wall minus its clock, in seconds (0 until
    /// measured, or within [`SAME_CLOCK_S`]).
    pub fn offset_s(&self, r: usize) -> i64 {
        self.clocks.get(&r).map_or(0, OneClock::offset_s)
    }

    /// Puts snapshot `fr` on our clock: each node's `last_check` moved by
    /// its router's offset.
    pub fn normalize(&self, fr: &mut FastrouterSnapshot) {
        for sub in &mut fr.subscriptions {
            let off = self.offset_s(split_router_key(&sub.key).1);
            if off != 0 {
                for n in &mut sub.nodes {
                    n.last_check = n.last_check.saturating_add(off);
                }
            }
        }
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

    fn tcp0() -> RouterClock {
        RouterClock::new(&[0].into_iter().collect())
    }

    #[test]
    fn a_router_30_s_behind_is_measured_from_its_announces() {
        let mut c = tcp0();
        c.observe(&snap(&[970, 965]), at(0, 1000));
        assert_eq!(c.offset_s(0), 0, "one snapshot proves no skew");
        assert!(!c.measured() && c.unmeasured(0));
        // A node announced between the reads, at router time 971.
        c.observe(&snap(&[971, 965]), at(1, 1001));
        assert_eq!(c.offset_s(0), 30);
        assert!(c.measured() && !c.unmeasured(0));
        let mut fr = snap(&[971, 965]);
        c.normalize(&mut fr);
        let lc: Vec<i64> = fr.nodes().map(|(_, n)| n.last_check).collect();
        assert_eq!(lc, [1001, 995], "on our clock");
        // Ahead instead.
        let mut c = tcp0();
        c.observe(&snap(&[1040]), at(0, 1000));
        c.observe(&snap(&[1041]), at(1, 1001));
        assert_eq!(c.offset_s(0), -40);
    }

    #[test]
    fn the_same_clock_is_no_offset_and_the_last_measure_stands() {
        let mut c = tcp0();
        c.observe(&snap(&[999]), at(0, 1000));
        c.observe(&snap(&[1000]), at(1, 1001));
        assert_eq!(c.offset_s(0), 0);
        c.observe(&snap(&[1010]), at(2, 1040));
        assert_eq!(c.offset_s(0), 0, "the smallest sample stands");
        // A minute later only the new measurements count.
        c.observe(&snap(&[1011]), at(70, 1041));
        assert_eq!(c.offset_s(0), 30);
        // No announce for minutes: the last offset measured still holds
        // (never back to comparing two clocks).
        c.observe(&snap(&[1011]), at(300, 1300));
        assert_eq!(c.offset_s(0), 30);
        assert!(c.measured());
    }

    /// A router on this host is judged before it is measured (nothing to
    /// wait for), and still learnt (uWSGI's `clock = monotonic`); in an HA
    /// pair each router has its own clock.
    #[test]
    fn each_router_is_learnt_on_its_own() {
        let mut c = RouterClock::new(&std::collections::BTreeSet::new());
        assert!(c.measured(), "no router over TCP: nothing to wait for");
        c.observe(&snap(&[970]), at(0, 1000));
        c.observe(&snap(&[971]), at(1, 1001));
        assert_eq!(c.offset_s(0), 30, "a monotonic clock is learnt too");
        let two = |a: i64, b: i64| {
            let mut f = snap(&[a]);
            f.subscriptions.push(Subscription {
                key: crate::stats::router_key("k", 1),
                nodes: vec![Node {
                    last_check: b,
                    ..Node::default()
                }],
            });
            f
        };
        let mut c = RouterClock::new(&[1].into_iter().collect());
        c.observe(&two(999, 1040), at(0, 1000));
        c.observe(&two(1000, 1041), at(1, 1001));
        assert_eq!((c.offset_s(0), c.offset_s(1)), (0, -40));
        let mut fr = two(1000, 1041);
        c.normalize(&mut fr);
        let lc: Vec<i64> = fr.nodes().map(|(_, n)| n.last_check).collect();
        assert_eq!(lc, [1000, 1001]);
    }
}
