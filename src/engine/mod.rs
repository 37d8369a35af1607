//! The sans-IO rollout engine.
//!
//! No syscalls, no clock, no threads: the driver feeds [`Input`]s with the
//! time it read ([`Now`]), then drains two queues, the operator's
//! [`Report`]s with [`Engine::poll_event`] and then the [`Action`]s it must
//! carry out with [`Engine::poll_action`], and sleeps until
//! [`Engine::poll_timeout`]. "Mutate, then drain to timeout."
//!
//! Per vassal, the phase machine in [`phase`] decides; this module derives the
//! facts it is fed from the stats (docs/UWSGI.md §17), carries out the effects it
//! returns, and runs the scheduler that keeps at least K live per key.

pub mod availability;
mod clocks;
mod config_events;
mod effects;
pub mod emperor_index;
mod evidence;
mod finish;
mod fsm_names;
mod fxhash;
pub mod generation;
mod inputs;
pub mod io;
pub mod nodes;
mod observe;
mod periods;
pub mod phase;
mod preflight;
mod reads;
mod records;
mod schedule;
pub mod settings;
mod timers;
pub mod vassal;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use availability::Availability;
pub use emperor_index::IndexedEmperor;
pub use generation::Generation;
pub use io::{Action, ConfigEvent, ConfigFile, Event, Input, Now, Outcome, Report, Status};
pub use phase::{is_impossible, step, why, Effect, Fact, FailReason, Phase, Task};
pub use settings::{NodeMatch, Settings, Unavailable};
pub use vassal::Vassal;

use crate::stats::{FastrouterSnapshot, StatsSource};
use inputs::LogLine;
use vassal::DrainedNode;

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
    /// The last Emperor snapshot, indexed by config name.
    emp: Option<IndexedEmperor>,
    fr: Option<FastrouterSnapshot>,
    /// Node lookups into `fr`, rebuilt with it.
    matcher: nodes::Matcher,
    /// What the vassals' own packets last said of each node
    /// (`nodes::keep_the_vassals_word`): `fr` shows that, not the tool's.
    own_checks: nodes::OwnChecks,
    /// The fastrouter's clock against ours (`clocks::RouterClock`): node
    /// ages are counted on the router's clock, never ours.
    router_clock: clocks::RouterClock,
    /// `s.node_match`, shared with each matcher.
    rule: std::sync::Arc<NodeMatch>,
    stage: Stage,
    reads: [ReadState; 2],
    next_tick_ms: u64,
    start_ms: u64,
    now: Now,
    /// Why nothing new is touched any more.
    stopping: Option<String>,
    interrupted: bool,
    failures: usize,
    /// What the driver must do: IO, then `Finish`.
    out: VecDeque<Action>,
    /// What the operator is told, in order; never read by the driver's IO.
    events: VecDeque<Report>,
    /// Effective K per key (lowered only with `allow_downtime`).
    min_live: BTreeMap<String, usize>,
    live: BTreeMap<String, usize>,
    /// `live` as preflight counted it, before anything was decided.
    preflight_live: BTreeMap<String, usize>,
    lowest: BTreeMap<String, usize>,
    waiting_since: Option<u64>,
    /// Something was in flight at the last live count: the count of the
    /// tick in which the last one left flight (or a drain gave its slot
    /// back on a dip) still belongs to the rollout (`update_live`).
    in_flight_before: bool,
    warned_created: BTreeSet<String>,
    precondition: Option<String>,
    /// Drains undone (`Task::UndoDrain`: vassal, when, nodes) whose nodes
    /// the fastrouter has not shown back yet.
    undone_drains: Vec<(String, u64, Vec<DrainedNode>)>,
    /// When the fastrouter came back (monotonic ms, the start of the read
    /// that showed it): after a failed read, or a restart. A vassal's
    /// silence counts only from then (`overdue_at`).
    fr_back_ms: u64,
    /// Indices of the `--canary` vassals, in the order they were started.
    canaries: Vec<usize>,
    canary_passed: bool,
    /// Facts met in a phase where the table says they are never raised
    /// (`is_impossible`): a bug of the engine, changing nothing; the first
    /// few are kept for the exploration and the fuzz properties to assert.
    impossible_seen: Vec<(String, Phase, Fact)>,
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
        let rule = std::sync::Arc::new(settings.node_match.clone());
        let router_clock = clocks::RouterClock::new(&settings.tcp_routers);
        let mut e = Engine {
            s: settings,
            vassals,
            emp: None,
            fr: None,
            matcher: nodes::Matcher::default(),
            own_checks: nodes::OwnChecks::default(),
            router_clock,
            rule,
            stage: Stage::Preflight,
            reads: Default::default(),
            next_tick_ms: now.mono_ms,
            start_ms: now.mono_ms,
            now,
            stopping: None,
            interrupted: false,
            failures: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            min_live: BTreeMap::new(),
            live: BTreeMap::new(),
            preflight_live: BTreeMap::new(),
            lowest: BTreeMap::new(),
            waiting_since: None,
            in_flight_before: false,
            warned_created: BTreeSet::new(),
            precondition: None,
            undone_drains: Vec::new(),
            fr_back_ms: 0,
            canaries: Vec::new(),
            canary_passed: false,
            impossible_seen: Vec::new(),
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

    /// Facts the engine raised where `fsm/transitions.tsv` says it never
    /// does (vassal, phase, fact): empty unless the engine has a bug.
    pub fn impossible_seen(&self) -> &[(String, Phase, Fact)] {
        &self.impossible_seen
    }

    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// The next thing the driver must do (IO, or `Finish`), in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// The next report for the operator, in order. Drain it before acting on
    /// the actions: `Finish` comes after every report.
    pub fn poll_event(&mut self) -> Option<Report> {
        self.events.pop_front()
    }

    /// Live nodes per key as preflight counted them, with the scheduler's
    /// own rule (`live_now`: every vassal counts, nothing touched yet), also
    /// when preflight refused. The `Plan` report carries the same counts;
    /// `status` shows them. Empty until both stats sockets answered.
    pub fn preflight_live(&self) -> &BTreeMap<String, usize> {
        &self.preflight_live
    }

    pub fn handle(&mut self, now: Now, input: Input) {
        self.now = now;
        if self.stage == Stage::Finished {
            return;
        }
        match input {
            Input::Emperor(s) => self.on_emperor(s),
            Input::Fastrouter(s) => self.on_fastrouter(s),
            Input::ReadFailed { source, error } => {
                if self.stage == Stage::Preflight {
                    return self.finish_precondition(format!(
                        "cannot read the {source} stats socket: {error}"
                    ));
                }
                self.read_done(source, Some(error));
            }
            Input::Config(ev) => self.config_event(ev),
            Input::Touched { vassal, error } => self.on_touched(&vassal, error),
            Input::Repaired { vassal, result } => self.on_repaired(vassal, result),
            Input::Probed { vassal, result } => self.on_probed(vassal, result),
            Input::HookLost { vassal, line } => self.on_log(&vassal, LogLine::HookLost(line)),
            Input::SubscriptionsOn { vassal } => self.on_log(&vassal, LogLine::On),
            Input::SubscriptionsBlocked { vassal } => self.on_log(&vassal, LogLine::Blocked),
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

    /// Re-derives every vassal's facts from what is known now, schedules,
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
        self.update_evidence();
        self.sweep_dead_nodes();
        self.note_nodes_gone();
        // Facts can cascade (ReloadSeen, AcceptingSeen and AnnounceSeen
        // in one snapshot); each pass moves a vassal at most one step.
        for _ in 0..8 {
            let mut changed = false;
            for i in 0..self.vassals.len() {
                if let Some((fact, detail)) = self.observe(i) {
                    changed |= self.apply(i, fact, detail);
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

    /// Now, in whole wall seconds: what a node's `last_check` is compared
    /// with (every snapshot is on our clock: `clocks::RouterClock::normalize`).
    pub(super) fn router_now_s(&self) -> i64 {
        self.now.wall_s
    }

    fn elapsed(&self) -> u64 {
        self.now.mono_ms.saturating_sub(self.start_ms)
    }

    fn report(&mut self, event: Event) {
        // On the driver's clock, the one the notes before the engine's
        // start count from too: `at_ms` never goes back in the stream.
        let at_ms = self.now.mono_ms;
        self.events.push_back(Report { at_ms, event });
    }
}
