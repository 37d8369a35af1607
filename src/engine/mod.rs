//! The sans-IO rollout engine.
//!
//! No syscalls, no clock, no threads: the driver feeds [`Input`]s with the
//! time it read ([`Now`]), then drains [`Action`]s with [`Engine::poll_action`]
//! and sleeps until [`Engine::poll_timeout`]. "Mutate, then drain to timeout."
//!
//! Per vassal, the phase machine in [`phase`] decides; this module derives the
//! signals it is fed from the stats (FACTS.md), carries out the effects it
//! returns, and runs the scheduler that keeps at least K live per key.

pub mod io;
pub mod nodes;
pub mod phase;
pub mod settings;
pub mod vassal;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use io::{Action, ConfigEvent, ConfigFile, Event, Input, Now, Outcome, Report, Status};
pub use phase::{step, Effect, FailReason, Phase, Signal};
pub use settings::{NodeMatch, Settings, Unavailable};
pub use vassal::Vassal;

use crate::stats::{EmperorSnapshot, FastrouterSnapshot, StatsSource};
use vassal::DrainedNode;

/// A vassal not accepting whose last (re)start is more recent than this is
/// starting or reloading: touching it could wedge it (FACTS.md 4), so it is
/// waited for. Older than this, it is down and is reloaded without budget.
const STARTING_GRACE_S: i64 = 10;

/// How long the fastrouter may take to show a re-subscribed node.
const RESUBSCRIBE_CONFIRM_MS: u64 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the first answer of both stats sockets.
    Preflight,
    Rolling,
    Finished,
}

#[derive(Clone, Debug, Default)]
struct ReadState {
    in_flight: bool,
    started_ms: u64,
    /// Reads still wanted right after the one in flight.
    rereads: u8,
    last_ok_ms: u64,
    /// When the snapshot we hold was requested.
    snapshot_started_ms: u64,
    last_error: Option<String>,
}

/// Progress for a display or SIGUSR1.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub total: usize,
    pub reloaded: usize,
    pub failed: usize,
    pub in_flight: Vec<(String, Phase)>,
    pub live: BTreeMap<String, usize>,
    pub min_live: BTreeMap<String, usize>,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Engine {
    s: Settings,
    vassals: Vec<Vassal>,
    emp: Option<EmperorSnapshot>,
    fr: Option<FastrouterSnapshot>,
    /// Node lookups into `fr`, rebuilt with it.
    matcher: nodes::Matcher,
    stage: Stage,
    reads: [ReadState; 2],
    next_tick_ms: u64,
    start_ms: u64,
    now: Now,
    /// Why nothing new is touched any more.
    stopping: Option<String>,
    interrupted: bool,
    failures: usize,
    out: VecDeque<Action>,
    /// Effective K per key (lowered only with `allow_downtime`).
    min_live: BTreeMap<String, usize>,
    live: BTreeMap<String, usize>,
    lowest: BTreeMap<String, usize>,
    waiting_since: Option<u64>,
    warned_created: BTreeSet<String>,
    precondition: Option<String>,
    /// Re-subscriptions sent (vassal, when, nodes) not yet seen back in the
    /// fastrouter.
    unconfirmed: Vec<(String, u64, Vec<DrainedNode>)>,
    /// Indices of the `--canary` vassals, in the order they were started.
    canaries: Vec<usize>,
    canary_passed: bool,
}

fn idx(src: StatsSource) -> usize {
    match src {
        StatsSource::Emperor => 0,
        StatsSource::Fastrouter => 1,
    }
}

impl Engine {
    /// A new rollout of `configs`. The first actions read both stats sockets.
    pub fn new(settings: Settings, configs: Vec<ConfigFile>, now: Now) -> Engine {
        let vassals = configs
            .into_iter()
            .map(|c| Vassal::new(c.name, c.mtime))
            .collect();
        let mut e = Engine {
            s: settings,
            vassals,
            emp: None,
            fr: None,
            matcher: nodes::Matcher::default(),
            stage: Stage::Preflight,
            reads: Default::default(),
            next_tick_ms: now.mono_ms,
            start_ms: now.mono_ms,
            now,
            stopping: None,
            interrupted: false,
            failures: 0,
            out: VecDeque::new(),
            min_live: BTreeMap::new(),
            live: BTreeMap::new(),
            lowest: BTreeMap::new(),
            waiting_since: None,
            warned_created: BTreeSet::new(),
            precondition: None,
            unconfirmed: Vec::new(),
            canaries: Vec::new(),
            canary_passed: false,
        };
        e.tick();
        e
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    pub fn vassals(&self) -> &[Vassal] {
        &self.vassals
    }

    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// The next action for the driver, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// When [`Engine::handle_timeout`] must be called next (monotonic ms).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.stage == Stage::Finished {
            return None;
        }
        let mut t = self.next_tick_ms;
        // Only what handle_timeout acts on: a time already passed that
        // nothing acts on would hold the driver's timer in the past (a spin).
        if self.stage != Stage::Rolling {
            return Some(t);
        }
        for v in &self.vassals {
            if let Some(d) = self.deadline(v) {
                t = t.min(d);
            }
            // Overdue is raised by observe(), and only once its nodes are
            // dead: once passed, the next snapshot decides, not the timer.
            if let Some(d) = self.overdue_at(v).filter(|d| *d > self.now.mono_ms) {
                t = t.min(d);
            }
        }
        // maybe_finish() acts on the wait only while nothing is in flight
        // (after a failed read the scheduler may not have cleared it).
        if let Some(w) = self.waiting_since {
            if !self.vassals.iter().any(|v| v.phase.in_flight()) {
                t = t.min(w + self.s.timeout_ms);
            }
        }
        if let Some(f) = self.fast_fastrouter_read_at() {
            t = t.min(f);
        }
        if let Some(d) = self.s.deadline_ms {
            if self.stopping.is_none() {
                t = t.min(self.start_ms + d);
            }
        }
        Some(t)
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        if self.stage == Stage::Finished {
            return;
        }
        if now.mono_ms >= self.next_tick_ms {
            self.tick();
        }
        if self
            .fast_fastrouter_read_at()
            .is_some_and(|f| now.mono_ms >= f)
        {
            self.read(StatsSource::Fastrouter);
        }
        if self.stage == Stage::Rolling {
            if let Some(d) = self.s.deadline_ms {
                if now.mono_ms >= self.start_ms + d {
                    self.stop(format!("the --deadline of {} s was reached", d / 1000));
                }
            }
            for i in 0..self.vassals.len() {
                if self
                    .deadline(&self.vassals[i])
                    .is_some_and(|d| now.mono_ms >= d)
                {
                    self.apply(i, Signal::Deadline, String::new());
                }
            }
            for src in [StatsSource::Emperor, StatsSource::Fastrouter] {
                let r = &self.reads[idx(src)];
                if now.mono_ms.saturating_sub(r.last_ok_ms) >= self.s.stats_outage_ms {
                    let why = format!(
                        "the {src} stats socket has not answered for {} s ({})",
                        self.s.stats_outage_ms / 1000,
                        r.last_error.as_deref().unwrap_or("no answer")
                    );
                    self.stop(why);
                }
            }
        }
        self.progress();
    }

    pub fn handle(&mut self, now: Now, input: Input) {
        self.now = now;
        if self.stage == Stage::Finished {
            return;
        }
        match input {
            Input::Emperor(s) => {
                self.emp = Some(s);
                self.read_done(StatsSource::Emperor, None);
            }
            Input::Fastrouter(s) => {
                self.matcher = nodes::Matcher::new(&self.s.node_match, &s);
                self.fr = Some(s);
                self.read_done(StatsSource::Fastrouter, None);
            }
            Input::ReadFailed { source, error } => {
                if self.stage == Stage::Preflight {
                    self.finish_precondition(format!(
                        "cannot read the {source} stats socket: {error}"
                    ));
                    return;
                }
                self.read_done(source, Some(error));
            }
            Input::Config(ev) => self.config_event(ev),
            Input::Touched { vassal, error } => {
                if let (Some(i), Some(e)) = (self.find(&vassal), error) {
                    self.apply(i, Signal::TouchFailed, e);
                }
            }
            Input::Repaired { vassal, result } => {
                if let Some(i) = self.find(&vassal) {
                    match result {
                        Ok(fifo) => self.report(Event::RepairWritten { vassal, fifo }),
                        Err(e) => {
                            self.apply(i, Signal::RepairFailed, e);
                        }
                    }
                }
            }
            Input::Probed { vassal, result } => {
                if let Some(i) = self.find(&vassal) {
                    match result {
                        Ok(detail) => {
                            self.report(Event::ProbeOk { vassal, detail });
                            self.apply(i, Signal::ProbeOk, String::new());
                        }
                        Err(e) => {
                            self.apply(i, Signal::ProbeFailed, e);
                        }
                    }
                }
            }
            Input::Stop => {
                self.interrupted = true;
                self.stop("interrupted".to_string());
            }
        }
        self.progress();
    }

    pub fn progress_info(&self) -> Progress {
        Progress {
            total: self.vassals.len(),
            reloaded: self.count(Phase::Subscribed),
            failed: self.count(Phase::Failed),
            in_flight: self
                .vassals
                .iter()
                .filter(|v| v.phase.in_flight())
                .map(|v| (v.name.clone(), v.phase))
                .collect(),
            live: self.live.clone(),
            min_live: self.min_live.clone(),
            elapsed_ms: self.elapsed(),
        }
    }

    // ----- reads -------------------------------------------------------

    fn tick(&mut self) {
        self.next_tick_ms = self.now.mono_ms + self.s.check_interval_ms.max(1);
        self.read(StatsSource::Emperor);
        self.read(StatsSource::Fastrouter);
    }

    fn read(&mut self, src: StatsSource) {
        let r = &mut self.reads[idx(src)];
        if r.in_flight {
            r.rereads = r.rereads.max(1);
            return;
        }
        r.in_flight = true;
        r.started_ms = self.now.mono_ms;
        self.out.push_back(Action::ReadStats(src));
    }

    fn read_done(&mut self, src: StatsSource, error: Option<String>) {
        let now = self.now.mono_ms;
        let r = &mut self.reads[idx(src)];
        r.in_flight = false;
        match error {
            None => {
                r.last_ok_ms = now;
                r.snapshot_started_ms = r.started_ms;
                r.last_error = None;
            }
            Some(e) => r.last_error = Some(e),
        }
        if r.rereads > 0 {
            r.rereads -= 1;
            self.read(src);
        }
    }

    /// While a vassal waits for something only the fastrouter shows (its
    /// drain, its announce), the fastrouter is read every
    /// `fast_fastrouter_ms` instead of every check interval: those waits
    /// are on the rollout's critical path, and the fastrouter's stats cost
    /// it nothing like the Emperor's (which rescan the directory).
    /// Drops the re-subscriptions a fastrouter read (started after they were
    /// sent) shows back in rotation; past [`RESUBSCRIBE_CONFIRM_MS`] the rest
    /// are reported and given up on. True when none is left to wait for: the
    /// tool does not exit claiming a node is back before the fastrouter says
    /// so.
    fn resubscriptions_settled(&mut self) -> bool {
        let started = self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms;
        let now = self.now.mono_ms;
        let mut late = Vec::new();
        if let Some(fr) = self.fr.as_ref() {
            self.unconfirmed.retain(|(vassal, sent, nodes)| {
                let back = started >= *sent
                    && nodes.iter().all(|d| {
                        fr.nodes()
                            .any(|(k, n)| k == d.key && n.name == d.name && n.death_mark == 0)
                    });
                if !back && now >= sent + RESUBSCRIBE_CONFIRM_MS {
                    late.push(vassal.clone());
                    return false;
                }
                !back
            });
        }
        for vassal in late {
            self.report(Event::Warning {
                vassal: Some(vassal),
                message: format!(
                    "the fastrouter did not show its re-subscribed node within {} ms; its own next announce (subscribe-freq) restores it",
                    RESUBSCRIBE_CONFIRM_MS
                ),
            });
        }
        self.unconfirmed.is_empty()
    }

    fn fast_fastrouter_read_at(&self) -> Option<u64> {
        let fast = self
            .s
            .fast_fastrouter_ms
            .min(self.s.check_interval_ms)
            .max(1);
        let r = &self.reads[idx(StatsSource::Fastrouter)];
        let waiting = self.stage == Stage::Rolling
            && (!self.unconfirmed.is_empty()
                || self.vassals.iter().any(|v| {
                    matches!(
                        v.phase,
                        Phase::Draining | Phase::Accepting | Phase::Repairing
                    )
                }));
        (waiting && !r.in_flight).then(|| r.started_ms + fast)
    }

    /// After a touch, read the Emperor twice at once: the first connection
    /// makes it rescan, the second shows the result (FACTS.md 1).
    fn wake_emperor(&mut self) {
        let r = &mut self.reads[idx(StatsSource::Emperor)];
        r.rereads = if r.in_flight { 2 } else { 1 };
        if !r.in_flight {
            self.read(StatsSource::Emperor);
        }
    }

    // ----- the main loop step -------------------------------------------

    /// Re-derives every vassal's signals from what is known now, schedules,
    /// and finishes when nothing is left. Idempotent.
    fn progress(&mut self) {
        if self.stage == Stage::Preflight {
            if self.emp.is_some() && self.fr.is_some() {
                self.preflight();
            }
            if self.stage != Stage::Rolling {
                return;
            }
        }
        if self.stage != Stage::Rolling {
            return;
        }
        self.note_nodes_gone();
        // Signals can cascade (ReloadSeen, AcceptingSeen and AnnounceSeen
        // in one snapshot); each pass moves a vassal at most one step.
        for _ in 0..8 {
            let mut changed = false;
            for i in 0..self.vassals.len() {
                if let Some((sig, detail)) = self.observe(i) {
                    changed |= self.apply(i, sig, detail);
                }
            }
            if !changed {
                break;
            }
        }
        self.schedule();
        self.update_live();
        self.maybe_finish();
    }

    // ----- preflight ----------------------------------------------------

    fn preflight(&mut self) {
        // Both present: checked by the caller.
        let (Some(emp), Some(fr)) = (self.emp.clone(), self.fr.clone()) else {
            return;
        };
        let wall = self.now.wall_s;
        if let Some(dir) = &self.s.emperor_dir {
            let norm = |d: &str| d.trim_end_matches('/').to_string();
            if !emp.emperor.is_empty() && !emp.emperor.iter().any(|d| norm(d) == norm(dir)) {
                return self.finish_precondition(format!(
                    "the Emperor behind the emperor stats socket watches {}, not {dir}",
                    emp.emperor.join(", ")
                ));
            }
        }
        if self.vassals.is_empty() {
            return self.finish_precondition("no vassal configs to reload".into());
        }
        let unknown: Vec<&str> = self
            .vassals
            .iter()
            .filter(|v| emp.vassal(&v.name).is_none() && emp.blacklisted(&v.name).is_none())
            .map(|v| v.name.as_str())
            .collect();
        if !unknown.is_empty() {
            return self.finish_precondition(format!(
                "the Emperor does not know {} (expected every config in the directory to be a running or blacklisted vassal; is it watching this directory?)",
                unknown.join(", ")
            ));
        }
        // Links: does the Emperor look at the file we are about to touch?
        for v in &self.vassals {
            let (Some(other), Some(st)) =
                (self.s.other_mode_mtimes.get(&v.name), emp.vassal(&v.name))
            else {
                continue;
            };
            if st.last_mod == *other && *other != v.known_mtime {
                return self.finish_precondition(if self.s.touch_target {
                    format!("{}: the Emperor's last_mod is the link's own mtime, so it runs with --emperor-nofollow and would not notice a touch of the target; drop --touch-target", v.name)
                } else {
                    format!("{}: the Emperor's last_mod is the link target's mtime, so it follows symlinks and would not notice a touch of the link; run it with --emperor-nofollow, or pass --touch-target (one link per target)", v.name)
                });
            }
        }
        // Mapping, both ways.
        let rule = self.s.node_match.clone();
        let mut members: BTreeMap<String, usize> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut nodeless = Vec::new();
        for v in &self.vassals {
            let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
            let keys: BTreeSet<&str> = self
                .matcher
                .nodes_of(&v.name, pid, &fr)
                .map(|(k, _)| k)
                .collect();
            if keys.is_empty() && nodes::emperor_healthy(&emp, &v.name) {
                nodeless.push(v.name.clone());
            }
            if keys.is_empty() {
                warnings.push((
                    Some(v.name.clone()),
                    "no fastrouter node matches it (expected the address its config subscribes with, or a node name with the config's stem; see --node-name); it is not live and is reloaded without using the budget".to_string(),
                ));
            }
            if (!nodes::emperor_healthy(&emp, &v.name) || !self.vassal_live(v))
                && (!keys.is_empty() || emp.blacklisted(&v.name).is_some())
            {
                warnings.push((
                    Some(v.name.clone()),
                    "is down already (not accepting, blacklisted, or no fresh node); it is reloaded without using the budget".to_string(),
                ));
            }
        }
        let mut unowned_fresh = Vec::new();
        for (key, node) in fr.nodes() {
            *members.entry(key.to_string()).or_default() += 1;
            let owned = self.vassals.iter().any(|v| {
                let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                nodes::matches(&rule, &v.name, pid, node)
            });
            if !owned {
                let fresh = nodes::node_fresh(node, wall, self.s.node_tolerance_s);
                if fresh {
                    unowned_fresh.push(node.name.clone());
                }
                warnings.push((
                    None,
                    format!(
                        "node {} under key {key} matches no vassal here; it counts toward K for {key} while {} (another host?)",
                        node.name,
                        if fresh { "fresh" } else { "stale, so it does not count now" }
                    ),
                ));
            }
        }
        // An accepting vassal with no node, beside fresh nodes that match no
        // vassal: most likely its node is one of those and the mapping is
        // wrong. Treated as down it would be touched without budget, so
        // several at once could take a key below K: refuse.
        if !nodeless.is_empty() && !unowned_fresh.is_empty() && !self.s.allow_downtime {
            return self.finish_precondition(format!(
                "cannot tell which fastrouter node belongs to {} (fresh nodes matching no vassal: {}); expected node names with the config's stem, or pass --node-name TEMPLATE (or --allow-downtime)",
                nodeless.join(", "),
                unowned_fresh.join(", ")
            ));
        }
        let live = self.live_now();
        let our_keys: BTreeSet<String> = self
            .vassals
            .iter()
            .flat_map(|v| {
                let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                self.matcher
                    .nodes_of(&v.name, pid, &fr)
                    .map(|(k, _)| k.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let k = self.s.min_live;
        for key in &our_keys {
            let total = members.get(key).copied().unwrap_or(0);
            let l = live.get(key).copied().unwrap_or(0);
            let mut eff = k;
            if total < k + 1 {
                if !self.s.allow_downtime {
                    return self.finish_precondition(format!(
                        "key {key} has {total} node(s); keeping {k} live while reloading needs at least {} (pass --allow-downtime to accept fewer)",
                        k + 1
                    ));
                }
                eff = total.saturating_sub(1);
                warnings.push((
                    None,
                    format!("key {key} has {total} node(s): it will go down to {eff} live (--allow-downtime)"),
                ));
            }
            if l < eff {
                if !self.s.allow_downtime {
                    return self.finish_precondition(format!(
                        "key {key} has {l} live node(s), fewer than --minimum-active-vassals {k}"
                    ));
                }
                eff = l.saturating_sub(1).min(eff);
                warnings.push((
                    None,
                    format!("key {key} has only {l} live node(s) (--allow-downtime)"),
                ));
            }
            if let Some(u) = self.s.max_unavailable {
                // --max-unavailable raises K; it never lowers it.
                eff = eff.max(total.saturating_sub(u.of(total)));
            }
            self.min_live.insert(key.clone(), eff);
        }
        for (vassal, message) in warnings {
            self.report(Event::Warning { vassal, message });
        }
        self.stage = Stage::Rolling;
        self.live = live.clone();
        self.report(Event::Plan {
            vassals: self.vassals.iter().map(|v| v.name.clone()).collect(),
            min_live: self.min_live.clone(),
            live,
        });
    }

    // ----- observation: stats -> signals --------------------------------

    /// The one signal the current stats raise for vassal `i`, if any.
    fn observe(&mut self, i: usize) -> Option<(Signal, String)> {
        let now = self.now;
        let fr_started = self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms;
        let v = &self.vassals[i];
        let phase = v.phase;
        if !phase.in_flight() {
            return None;
        }
        let emp = self.emp.as_ref()?;
        let fr = self.fr.as_ref()?;
        let tol = self.s.node_tolerance_s;

        // Death and crash loops, in every in-flight phase.
        let bl = emp.blacklisted(&v.name);
        let newly_blacklisted =
            bl.is_some_and(|b| v.blacklist_attempt0.map_or(true, |a0| b.attempt > a0));
        match emp.vassal(&v.name) {
            None if newly_blacklisted => {
                return Some((
                    Signal::Blacklisted,
                    "listed in the Emperor's blacklist".into(),
                ))
            }
            None if v.pid0 > 0 => {
                return Some((Signal::Died, "vanished from the Emperor's vassals".into()))
            }
            Some(s) if v.pid0 > 0 && s.pid != v.pid0 => {
                let sig = if newly_blacklisted {
                    Signal::Blacklisted
                } else {
                    Signal::Died
                };
                return Some((sig, format!("pid {} is now {}", v.pid0, s.pid)));
            }
            _ => {}
        }
        let st = emp.vassal(&v.name);

        // Node observations since the touch.
        let current_pid = st.map_or(0, |s| s.pid);
        let mine: Vec<(&str, &crate::stats::Node)> = self
            .matcher
            .nodes_of(&v.name, current_pid.max(v.pid0), fr)
            .collect();

        match phase {
            Phase::Draining => {
                // Someone else's touch the Emperor acted on before its
                // inotify event came (or without one): follow it; touching
                // now would be a second reload request (FACTS.md 4).
                if let Some(s) = st.filter(|s| s.pid == v.pid0 && s.respawns > v.respawns0) {
                    return Some((
                        Signal::ForeignTouch,
                        format!(
                            "the Emperor sent it a reload this rollout did not ask for (respawns {} -> {})",
                            v.respawns0, s.respawns
                        ),
                    ));
                }
                if fr_started < v.drain_sent_ms {
                    return None;
                }
                let mut all_gone = true;
                for d in &v.drained {
                    let n = fr
                        .subscriptions
                        .iter()
                        .filter(|s| s.key == d.key)
                        .flat_map(|s| s.nodes.iter())
                        .find(|n| n.name == d.name);
                    match n {
                        None => {}
                        Some(n) if n.death_mark != 0 && n.refs == 0 => {}
                        Some(n) if n.death_mark == 0 && n.last_check > d.last_check => {
                            return Some((Signal::NodeBack, format!("{} announced again", d.name)))
                        }
                        Some(_) => all_gone = false,
                    }
                }
                if all_gone {
                    return Some((Signal::Drained, String::new()));
                }
                None
            }
            Phase::Touched => {
                let s = st?;
                if s.last_mod >= v.mtime_set {
                    return Some((Signal::ReloadSeen, String::new()));
                }
                None
            }
            Phase::Respawned | Phase::Accepting | Phase::Repairing | Phase::Probing => {
                let s = st?;
                if s.respawns > v.reload_respawns {
                    return Some((
                        Signal::SecondReload,
                        format!("respawns went from {} to {}", v.reload_respawns, s.respawns),
                    ));
                }
                if phase == Phase::Probing {
                    // Waiting for the driver's verdict only.
                    return None;
                }
                if phase == Phase::Respawned {
                    if s.accepting == 1 && s.last_accepting >= v.touch_wall_s {
                        return Some((Signal::AcceptingSeen, String::new()));
                    }
                    return None;
                }
                let announced = mine.iter().any(|(_, n)| {
                    nodes::node_fresh(n, now.wall_s, tol)
                        && (n.last_check >= v.accepted_s || v.node_gone)
                        && fr_started >= v.touch_ms
                });
                if announced {
                    return Some((Signal::AnnounceSeen, String::new()));
                }
                if phase == Phase::Accepting
                    && self.overdue_at(v).is_some_and(|t| now.mono_ms >= t)
                    && mine.iter().all(|(_, n)| n.death_mark != 0)
                {
                    return Some((
                        Signal::AnnounceOverdue,
                        format!(
                            "accepting for {} ms with no node in the fastrouter",
                            now.mono_ms - v.accepting_ms
                        ),
                    ));
                }
                None
            }
            _ => None,
        }
    }

    /// Marks touched vassals of which a fastrouter read, started after the
    /// touch, shows no node alive: unsubscribed by the drain or by
    /// `unsubscribe-on-graceful-reload`. The old generation does not announce
    /// while reloading, so any node seen alive later is the new one's
    /// (FACTS.md 11).
    fn note_nodes_gone(&mut self) {
        let started = self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms;
        let (Some(fr), Some(emp)) = (self.fr.as_ref(), self.emp.as_ref()) else {
            return;
        };
        for v in &mut self.vassals {
            if v.node_gone
                || !matches!(
                    v.phase,
                    Phase::Touched | Phase::Respawned | Phase::Accepting | Phase::Repairing
                )
                || started < v.touch_ms
            {
                continue;
            }
            let pid = emp.vassal(&v.name).map_or(0, |s| s.pid).max(v.pid0);
            if self
                .matcher
                .nodes_of(&v.name, pid, fr)
                .all(|(_, n)| n.death_mark != 0)
            {
                v.node_gone = true;
            }
        }
    }

    /// Per-phase deadline of vassal `v`, if it is waiting for something.
    fn deadline(&self, v: &Vassal) -> Option<u64> {
        let s = &self.s;
        match v.phase {
            Phase::Draining => Some(v.drain_ms + s.drain_timeout_ms.unwrap_or(0)),
            Phase::Touched => Some(v.touch_ms + s.timeout_ms.min(s.notice_window_ms)),
            Phase::Respawned | Phase::Accepting => Some(v.touch_ms + s.timeout_ms),
            Phase::Probing => Some(v.touch_ms + s.timeout_ms),
            Phase::Repairing => {
                Some((v.touch_ms + s.timeout_ms).min(v.repair_ms + s.repair_wait_ms))
            }
            _ => None,
        }
    }

    /// When an accepting vassal with no announce counts as blocked.
    fn overdue_at(&self, v: &Vassal) -> Option<u64> {
        (v.phase == Phase::Accepting && self.s.repair && !v.repaired)
            .then(|| v.accepting_ms + self.s.announce_grace_ms)
    }

    // ----- transitions ----------------------------------------------------

    /// Feeds `sig` to vassal `i`'s machine and carries out the effect.
    /// Returns whether anything changed.
    fn apply(&mut self, i: usize, sig: Signal, detail: String) -> bool {
        let before = self.vassals[i].phase;
        let Some((next, effect)) = step(before, sig) else {
            return false;
        };
        let now = self.now;
        // Bookkeeping of the phase entered, before the effect runs.
        {
            let v = &mut self.vassals[i];
            v.phase = next;
            match (before, next) {
                (Phase::Touched, Phase::Respawned) => {
                    let s = self.emp.as_ref().and_then(|e| e.vassal(&v.name));
                    // Running at the touch: one reload request since then
                    // is respawns0 + 1. More already seen means a second
                    // request reached it before we saw the first (someone
                    // else's touch after the Emperor acted on ours), and
                    // SecondReload follows on the next pass (FACTS.md 4).
                    v.reload_respawns = match s {
                        Some(s) if v.pid0 == 0 => s.respawns,
                        _ => v.respawns0.saturating_add(1),
                    };
                    if v.pid0 == 0 {
                        // It was not running at the touch: this is its pid now.
                        v.pid0 = s.map_or(0, |s| s.pid);
                    }
                }
                (Phase::Respawned, Phase::Accepting) => {
                    let s = self.emp.as_ref().and_then(|e| e.vassal(&v.name));
                    v.accepted_s = s.map_or(now.wall_s, |s| s.last_accepting);
                    v.accepting_ms = now.mono_ms;
                }
                _ => {}
            }
        }
        let name = self.vassals[i].name.clone();
        match (before, next) {
            (Phase::Touched, Phase::Respawned) => self.report(Event::ReloadSeen {
                vassal: name.clone(),
            }),
            (Phase::Respawned, Phase::Accepting) => self.report(Event::Accepting {
                vassal: name.clone(),
            }),
            _ => {}
        }
        match effect {
            Effect::None => {
                if next == Phase::Skipped {
                    self.vassals[i].skipped_why = "its config was removed before its turn".into();
                    self.report(Event::Skipped {
                        vassal: name,
                        why: "its config was removed before its turn".into(),
                    });
                }
            }
            Effect::Unsubscribe => self.unsubscribe(i, before == Phase::Idle),
            Effect::Touch => {
                if before == Phase::Draining {
                    let v = &self.vassals[i];
                    let timed_out = sig == Signal::Deadline;
                    self.report(Event::Drained {
                        vassal: name.clone(),
                        waited_ms: now.mono_ms - v.drain_ms,
                        timed_out,
                    });
                    if timed_out {
                        self.report(Event::Warning {
                            vassal: Some(name.clone()),
                            message: "sessions were still in flight at the end of --drain-timeout; touched anyway".into(),
                        });
                    }
                }
                self.touch(i, None);
            }
            Effect::Adopt => {
                // Seen in the Emperor's record first (while draining): the
                // reload is under way already; count from before it.
                let respawns0 = self.vassals[i].respawns0;
                let under_way = self
                    .emp
                    .as_ref()
                    .and_then(|e| e.vassal(&name))
                    .filter(|s| before == Phase::Draining && s.respawns > respawns0)
                    .map(|s| (s.last_mod, s.last_run));
                let m = self.vassals[i]
                    .known_mtime
                    .max(under_way.map_or(i64::MIN, |(m, _)| m));
                self.vassals[i].foreign = true;
                self.touch(i, Some(m));
                if let Some((_, sent_s)) = under_way {
                    let v = &mut self.vassals[i];
                    v.respawns0 = respawns0;
                    v.touch_wall_s = v.touch_wall_s.min(sent_s);
                }
                self.report(Event::ForeignReload { vassal: name });
            }
            Effect::Resubscribe => {
                let drained = std::mem::take(&mut self.vassals[i].drained);
                for d in &drained {
                    self.out.push_back(Action::Subscribe {
                        vassal: name.clone(),
                        key: d.key.clone(),
                        node: d.name.clone(),
                        modifier1: d.modifier1,
                    });
                }
                self.unconfirmed.push((name.clone(), now.mono_ms, drained));
                self.read(StatsSource::Fastrouter);
                self.report(Event::Resubscribed { vassal: name });
            }
            Effect::WriteFifo => {
                let v = &mut self.vassals[i];
                v.repaired = true;
                v.repair_ms = now.mono_ms;
                let pid = v.pid0;
                self.report(Event::RepairStarted {
                    vassal: name.clone(),
                });
                self.out.push_back(Action::Repair { vassal: name, pid });
            }
            Effect::Probe => self.probe(i),
            Effect::Succeed => {
                let v = &mut self.vassals[i];
                v.done_ms = now.mono_ms;
                let (took_ms, repaired, foreign) =
                    (now.mono_ms - v.touch_ms, v.repaired, v.foreign);
                self.report(Event::Subscribed {
                    vassal: name,
                    took_ms,
                    repaired,
                    foreign,
                });
            }
            Effect::Fail(reason) => {
                let detail = if detail.is_empty() {
                    match sig {
                        Signal::Deadline => format!(
                            "no progress {} s after the touch, in phase {}",
                            (now.mono_ms - self.vassals[i].touch_ms) / 1000,
                            before.as_str()
                        ),
                        _ => String::new(),
                    }
                } else {
                    detail
                };
                self.vassals[i].failure = Some((reason, detail.clone()));
                self.vassals[i].done_ms = now.mono_ms;
                self.failures += 1;
                self.report(Event::Failed {
                    vassal: name,
                    reason,
                    detail,
                });
                if self.failures >= self.s.max_failures {
                    let why = format!(
                        "{} vassal(s) failed; nothing new is touched (--keep-going or --max-failures to continue)",
                        self.failures
                    );
                    self.stop(why);
                }
            }
        }
        true
    }

    /// Sends the `--probe` request to the node the new generation announced;
    /// without `--probe`, the probe passes at once.
    fn probe(&mut self, i: usize) {
        let name = self.vassals[i].name.clone();
        let Some(path) = self.s.probe_path.clone() else {
            self.apply(i, Signal::ProbeOk, String::new());
            return;
        };
        let pid = self.current_pid(&name).max(self.vassals[i].pid0);
        let node = self.fr.as_ref().and_then(|fr| {
            self.matcher
                .nodes_of(&name, pid, fr)
                .find(|(_, n)| n.death_mark == 0)
                .map(|(k, n)| (k.to_string(), n.name.clone()))
        });
        match node {
            Some((key, node)) => self.out.push_back(Action::Probe {
                vassal: name,
                key,
                node,
                path,
            }),
            None => {
                self.apply(
                    i,
                    Signal::ProbeFailed,
                    "no node to send the probe to".into(),
                );
            }
        }
    }

    fn unsubscribe(&mut self, i: usize, first: bool) {
        let now = self.now.mono_ms;
        let name = self.vassals[i].name.clone();
        if first {
            let pid = self.current_pid(&name);
            let respawns = self
                .emp
                .as_ref()
                .and_then(|e| e.vassal(&name))
                .map_or(0, |s| s.respawns);
            let drained: Vec<DrainedNode> = match self.fr.as_ref() {
                Some(fr) => self
                    .matcher
                    .nodes_of(&name, pid, fr)
                    .filter(|(_, n)| n.death_mark == 0)
                    .map(|(k, n)| DrainedNode {
                        key: k.to_string(),
                        name: n.name.clone(),
                        modifier1: n.modifier1,
                        last_check: n.last_check,
                    })
                    .collect(),
                None => Vec::new(),
            };
            let v = &mut self.vassals[i];
            v.drained = drained;
            v.drain_ms = now;
            v.pid0 = pid;
            // A reload request the Emperor sends from now on is not ours.
            v.respawns0 = respawns;
            v.blacklist_attempt0 = None;
            let nodes = v.drained.iter().map(|d| d.name.clone()).collect();
            self.report(Event::DrainStarted {
                vassal: name.clone(),
                nodes,
            });
        } else if let Some(fr) = self.fr.as_ref() {
            // Remember the announce we answer, so it is not answered twice.
            for d in &mut self.vassals[i].drained {
                if let Some((_, n)) = fr.nodes().find(|(k, n)| *k == d.key && n.name == d.name) {
                    d.last_check = d.last_check.max(n.last_check);
                }
            }
        }
        self.vassals[i].drain_sent_ms = now;
        for d in self.vassals[i].drained.clone() {
            self.out.push_back(Action::Unsubscribe {
                vassal: name.clone(),
                key: d.key,
                node: d.name,
                modifier1: d.modifier1,
            });
        }
        // Read the fastrouter at once: the drain ends as soon as it shows.
        self.read(StatsSource::Fastrouter);
    }

    /// Records the baseline and, unless `adopted` (someone else's mtime),
    /// asks the driver to set `max(now, last_mod + 1)`.
    fn touch(&mut self, i: usize, adopted: Option<i64>) {
        let now = self.now;
        let name = self.vassals[i].name.clone();
        let emp = self.emp.as_ref();
        let st = emp.and_then(|e| e.vassal(&name));
        let bl = emp.and_then(|e| e.blacklisted(&name)).map(|b| b.attempt);
        let v = &mut self.vassals[i];
        let last_mod = st.map_or(v.known_mtime, |s| s.last_mod);
        let mtime = adopted.unwrap_or_else(|| {
            now.wall_s
                .max(last_mod.saturating_add(1))
                .max(v.known_mtime.saturating_add(1))
        });
        v.pid0 = st.map_or(0, |s| s.pid);
        v.respawns0 = st.map_or(0, |s| s.respawns);
        v.blacklist_attempt0 = bl;
        v.touch_ms = now.mono_ms;
        v.touch_wall_s = now.wall_s;
        v.mtime_set = mtime;
        v.known_mtime = mtime;
        v.node_gone = false;
        if adopted.is_none() {
            self.out.push_back(Action::Touch {
                vassal: name.clone(),
                mtime,
            });
            self.report(Event::Touched {
                vassal: name,
                mtime,
            });
        }
        self.wake_emperor();
    }

    // ----- scheduling -----------------------------------------------------

    fn vassal_live(&self, v: &Vassal) -> bool {
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return false;
        };
        let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
        nodes::emperor_healthy(emp, &v.name)
            && self
                .matcher
                .nodes_of(&v.name, pid, fr)
                .any(|(_, n)| nodes::node_fresh(n, self.now.wall_s, self.s.node_tolerance_s))
    }

    /// Not accepting, and (re)started or asked to reload only just now: a
    /// reload now could be the second one (FACTS.md 4).
    fn starting(&self, v: &Vassal) -> bool {
        let Some(emp) = self.emp.as_ref() else {
            return true;
        };
        match emp.vassal(&v.name) {
            Some(s) => {
                s.accepting == 0
                    && s.cursed == 0
                    && self.now.wall_s.saturating_sub(s.last_run) < STARTING_GRACE_S
            }
            None => false,
        }
    }

    fn live_now(&self) -> BTreeMap<String, usize> {
        let (Some(emp), Some(fr)) = (self.emp.as_ref(), self.fr.as_ref()) else {
            return BTreeMap::new();
        };
        let ours: Vec<(&str, bool)> = self
            .vassals
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    match v.phase {
                        Phase::Idle => true,
                        // Live again only once it has stayed up for --min-ready.
                        Phase::Subscribed => self.now.mono_ms >= v.done_ms + self.s.min_ready_ms,
                        _ => false,
                    },
                )
            })
            .collect();
        nodes::live_per_key(
            &self.matcher,
            &ours,
            emp,
            fr,
            self.now.wall_s,
            self.s.node_tolerance_s,
        )
    }

    fn k_for(&self, key: &str) -> usize {
        self.min_live.get(key).copied().unwrap_or(self.s.min_live)
    }

    fn schedule(&mut self) {
        if self.stage != Stage::Rolling || self.stopping.is_some() {
            return;
        }
        // Decide only on what both sockets said last: no answer, no touch.
        if self.reads.iter().any(|r| r.last_error.is_some()) {
            return;
        }
        if self.canary_holds() {
            // The wait's clock runs, so a canary that never becomes live
            // ends the rollout after --timeout instead of holding it forever.
            if self.waiting_since.is_none()
                && self.stopping.is_none()
                && !self.vassals.iter().any(|v| v.phase.in_flight())
            {
                self.waiting_since = Some(self.now.mono_ms);
                self.report(Event::Waiting {
                    why: "waiting for the canary to be live for --min-ready".into(),
                });
            }
            return;
        }
        let mut live = self.live_now();
        let mut in_flight = self.vassals.iter().filter(|v| v.phase.in_flight()).count();
        let mut started = false;
        let mut blocked: Option<String> = None;
        for i in 0..self.vassals.len() {
            if self.vassals[i].phase != Phase::Idle {
                continue;
            }
            if in_flight >= self.s.max_parallel {
                break;
            }
            let v = &self.vassals[i];
            if self.starting(v) {
                blocked.get_or_insert(format!("{} is starting or reloading on its own", v.name));
                continue;
            }
            let keys: BTreeSet<String> = match (self.emp.as_ref(), self.fr.as_ref()) {
                (Some(emp), Some(fr)) => {
                    let pid = emp.vassal(&v.name).map_or(0, |s| s.pid);
                    self.matcher
                        .nodes_of(&v.name, pid, fr)
                        .filter(|(_, n)| {
                            nodes::node_fresh(n, self.now.wall_s, self.s.node_tolerance_s)
                        })
                        .map(|(k, _)| k.to_string())
                        .collect()
                }
                _ => continue,
            };
            let is_live = self.vassal_live(v);
            if is_live {
                if let Some(k) = keys
                    .iter()
                    .find(|k| live.get(*k).copied().unwrap_or(0) < self.k_for(k) + 1)
                {
                    blocked.get_or_insert(format!(
                        "touching {} would leave key {k} with {} live, below {}",
                        v.name,
                        live.get(k).copied().unwrap_or(0).saturating_sub(1),
                        self.k_for(k)
                    ));
                    continue;
                }
                for k in &keys {
                    if let Some(l) = live.get_mut(k) {
                        *l -= 1;
                    }
                }
            }
            let sig = if self.s.drain_timeout_ms.is_some() && is_live && !keys.is_empty() {
                Signal::StartDrain
            } else {
                Signal::Start
            };
            self.apply(i, sig, String::new());
            in_flight += 1;
            started = true;
            if self.s.canary > 0 && !self.canary_passed {
                self.canaries.push(i);
                if self.canaries.len() >= self.s.canary {
                    break;
                }
            }
        }
        if started || in_flight > 0 {
            self.waiting_since = None;
        } else if let Some(why) = blocked {
            if self.waiting_since.is_none() {
                self.waiting_since = Some(self.now.mono_ms);
                self.report(Event::Waiting { why });
            }
        }
    }

    /// With `--canary N`: once N vassals are started, nothing more until
    /// each is subscribed and has stayed live for `--min-ready`. A failed
    /// canary stops the rollout whatever the failure policy.
    fn canary_holds(&mut self) -> bool {
        // A canary whose config went before its touch proves nothing: the
        // next vassal started takes its place.
        let vassals = &self.vassals;
        self.canaries
            .retain(|&i| vassals[i].phase != Phase::Skipped);
        if self.s.canary == 0 || self.canary_passed || self.canaries.len() < self.s.canary {
            return false;
        }
        let failed = self
            .canaries
            .iter()
            .find(|&&i| self.vassals[i].phase == Phase::Failed)
            .map(|&i| self.vassals[i].name.clone());
        if let Some(name) = failed {
            self.stop(format!("canary {name} failed"));
            return true;
        }
        let now = self.now.mono_ms;
        let ready = self.canaries.iter().all(|&i| {
            let v = &self.vassals[i];
            v.phase == Phase::Subscribed
                && now >= v.done_ms + self.s.min_ready_ms
                && self.vassal_live(v)
        });
        if !ready {
            return true;
        }
        self.canary_passed = true;
        let vassals = self
            .canaries
            .iter()
            .map(|&i| self.vassals[i].name.clone())
            .collect();
        self.report(Event::CanaryPassed { vassals });
        false
    }

    fn update_live(&mut self) {
        if self.stage != Stage::Rolling || self.emp.is_none() || self.fr.is_none() {
            return;
        }
        let live = self.live_now();
        let mut changes = Vec::new();
        for (k, l) in &live {
            if !self.min_live.contains_key(k) {
                continue;
            }
            if self.live.get(k) != Some(l) {
                changes.push((k.clone(), *l));
            }
            let low = self.lowest.entry(k.clone()).or_insert(*l);
            *low = (*low).min(*l);
        }
        for k in self.min_live.keys() {
            if !live.contains_key(k) {
                self.lowest.insert(k.clone(), 0);
                if self.live.get(k).is_some_and(|l| *l != 0) {
                    changes.push((k.clone(), 0));
                }
            }
        }
        self.live = live;
        for (key, live) in changes {
            let min = self.k_for(&key);
            self.report(Event::LiveChanged { key, live, min });
        }
    }

    // ----- config events ----------------------------------------------------

    fn config_event(&mut self, ev: ConfigEvent) {
        match ev {
            ConfigEvent::Changed {
                name,
                mtime: Some(m),
            }
            | ConfigEvent::Created {
                name,
                mtime: Some(m),
            } if self.find(&name).is_some() => self.config_mtime(&name, m),
            ConfigEvent::Changed { .. } => {}
            ConfigEvent::Created { name, .. } => {
                if self.find(&name).is_none() && self.warned_created.insert(name.clone()) {
                    self.report(Event::Warning {
                        vassal: Some(name),
                        message: "config appeared mid-rollout; it is not part of this rollout"
                            .into(),
                    });
                }
            }
            ConfigEvent::Removed { name } => {
                if let Some(i) = self.find(&name) {
                    self.apply(
                        i,
                        Signal::ConfigRemoved,
                        "config file deleted or renamed".into(),
                    );
                }
            }
            ConfigEvent::Overflow => {
                self.report(Event::Warning {
                    vassal: None,
                    message: "directory watch queue overflowed; rescanning the Emperor directory"
                        .into(),
                });
                self.out.push_back(Action::RescanConfigs);
            }
            ConfigEvent::Rescanned(files) => {
                for i in 0..self.vassals.len() {
                    let name = self.vassals[i].name.clone();
                    match files.iter().find(|f| f.name == name) {
                        Some(f) => self.config_mtime(&name, f.mtime),
                        None => {
                            self.apply(
                                i,
                                Signal::ConfigRemoved,
                                "config file gone (rescan)".into(),
                            );
                        }
                    }
                }
                for f in files {
                    if self.find(&f.name).is_none() {
                        self.config_event(ConfigEvent::Created {
                            name: f.name,
                            mtime: Some(f.mtime),
                        });
                    }
                }
            }
        }
    }

    /// A config's mtime is now `m`. Ours, or no later than what the Emperor
    /// has already acted on: nothing. Later: someone else's reload.
    fn config_mtime(&mut self, name: &str, m: i64) {
        let Some(i) = self.find(name) else { return };
        let v = &self.vassals[i];
        if m == v.known_mtime {
            return;
        }
        let emp_last = self
            .emp
            .as_ref()
            .and_then(|e| e.vassal(name))
            .map_or(i64::MIN, |s| s.last_mod);
        let ours = if v.phase.in_flight() {
            v.mtime_set
        } else {
            i64::MIN
        };
        self.vassals[i].known_mtime = m;
        if m > emp_last.max(ours) && m > i64::MIN {
            self.apply(
                i,
                Signal::ForeignTouch,
                format!("mtime set to {m} by someone else"),
            );
        }
    }

    // ----- stopping and finishing -----------------------------------------

    fn stop(&mut self, why: String) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(why.clone());
        if self.stage == Stage::Rolling {
            self.report(Event::Stopping { why });
        }
        for i in 0..self.vassals.len() {
            self.apply(i, Signal::Stop, String::new());
        }
    }

    fn maybe_finish(&mut self) {
        if self.stage != Stage::Rolling {
            return;
        }
        if self.vassals.iter().any(|v| v.phase.in_flight()) {
            return;
        }
        if !self.resubscriptions_settled() {
            return;
        }
        let idle = self.vassals.iter().any(|v| v.phase == Phase::Idle);
        if idle && self.stopping.is_none() {
            match self.waiting_since {
                Some(w) if self.now.mono_ms >= w + self.s.timeout_ms => {
                    let why =
                        if self.s.canary > 0 && !self.canary_passed && !self.canaries.is_empty() {
                            format!(
                                "the canary was not live for --min-ready within {} s",
                                self.s.timeout_ms / 1000
                            )
                        } else {
                            format!(
                                "nothing could be touched for {} s without breaking K",
                                self.s.timeout_ms / 1000
                            )
                        };
                    self.stop(why);
                }
                _ => return,
            }
        }
        self.finish();
    }

    fn finish_precondition(&mut self, why: String) {
        self.precondition = Some(why);
        self.finish();
    }

    fn finish(&mut self) {
        self.stage = Stage::Finished;
        let not_reached = self
            .stopping
            .clone()
            .unwrap_or_else(|| "not reached".to_string());
        let mut reloaded = Vec::new();
        let mut failed = Vec::new();
        let mut untouched = Vec::new();
        for v in &self.vassals {
            match v.phase {
                Phase::Subscribed => reloaded.push(v.name.clone()),
                Phase::Failed => {
                    let (r, d) = v
                        .failure
                        .clone()
                        .unwrap_or((FailReason::TouchError, String::new()));
                    failed.push((v.name.clone(), r, d));
                }
                Phase::Skipped => untouched.push((v.name.clone(), v.skipped_why.clone())),
                _ => untouched.push((
                    v.name.clone(),
                    match &self.precondition {
                        Some(p) => p.clone(),
                        None => not_reached.clone(),
                    },
                )),
            }
        }
        let skipped = self
            .vassals
            .iter()
            .filter(|v| v.phase == Phase::Skipped)
            .count();
        let (status, summary) = if let Some(p) = &self.precondition {
            (
                Status::Precondition(p.clone()),
                format!("nothing touched: {p}"),
            )
        } else if self.interrupted {
            (
                Status::Interrupted,
                "interrupted; in-flight vassals were let finish".to_string(),
            )
        } else if failed.is_empty() && untouched.len() == skipped {
            (
                Status::Completed,
                format!("{} vassal(s) reloaded", reloaded.len()),
            )
        } else {
            (
                Status::Failed,
                self.stopping
                    .clone()
                    .unwrap_or_else(|| "some vassals failed".into()),
            )
        };
        let outcome = Outcome {
            status,
            reloaded,
            failed,
            untouched,
            lowest_live: self.lowest.clone(),
            min_live: self.min_live.clone(),
            elapsed_ms: self.elapsed(),
            summary,
        };
        self.out.push_back(Action::Finish(outcome));
    }

    // ----- small helpers ------------------------------------------------

    fn find(&self, name: &str) -> Option<usize> {
        self.vassals.iter().position(|v| v.name == name)
    }

    fn current_pid(&self, name: &str) -> i64 {
        self.emp
            .as_ref()
            .and_then(|e| e.vassal(name))
            .map_or(0, |s| s.pid)
    }

    fn count(&self, p: Phase) -> usize {
        self.vassals.iter().filter(|v| v.phase == p).count()
    }

    fn elapsed(&self) -> u64 {
        self.now.mono_ms.saturating_sub(self.start_ms)
    }

    fn report(&mut self, event: Event) {
        let at_ms = self.elapsed();
        self.out.push_back(Action::Report(Report { at_ms, event }));
    }
}
