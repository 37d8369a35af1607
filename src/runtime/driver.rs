//! The thin driver: one thread, one `mio::Poll`, carrying out the engine's
//! actions and feeding it what the system says.
//!
//! Sources: inotify on the Emperor directory, a timerfd armed at the
//! engine's next deadline, SIGINT/SIGTERM/SIGUSR1, and the two stats sockets.
//! Between events the thread sleeps in `epoll_wait`: no busy polling.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use super::prober::Prober;
use super::repairs::Repairs;
use super::routers::Routers;
use super::session::{Held, Mode, Session};
use super::stats_reader::{to_input, StatsReader};
use super::{dgram, touch};
use crate::clock::Clock;
use crate::engine::{Action, ConfigEvent, Engine, Input, Outcome, Status};
use crate::error::{exit, Error};
use crate::report::Reporter;
use crate::run_config::Config;
use crate::stats::StatsSource;
use crate::subscription;

const WATCH: Token = Token(0);
const SIGNALS: Token = Token(1);
const TIMER: Token = Token(2);
const EMPEROR: Token = Token(3);
const FASTROUTER: Token = Token(4);
/// Probes take the tokens from here up.
/// Routers take the tokens from FASTROUTER up; probes start far above.
const PROBES_FROM: usize = 1 << 16;

/// A subscription packet not sent yet.
struct Unsent {
    vassal: String,
    server: String,
    pkt: Vec<u8>,
    since: Instant,
}

/// How often a full subscription queue is retried, and for how long.
const UNSENT_RETRY: Duration = Duration::from_millis(2);
const UNSENT_GIVE_UP: Duration = Duration::from_secs(5);
/// How often a repair whose master FIFO has no reader yet is tried again
/// (the engine's repair deadline bounds how long).
const REPAIR_RETRY: Duration = Duration::from_millis(10);

/// What a run ended with, for `main` and the benchmark.
pub struct RunSummary {
    pub outcome: Outcome,
    pub exit_code: u8,
    pub stats_reads: u64,
    /// uWSGI's version per stats source (`emperor`, `fastrouter`), as read.
    pub uwsgi_versions: BTreeMap<String, String>,
}

struct Driver<'a> {
    rep: &'a mut Reporter,
    clock: Clock,
    poll: Poll,
    session: Session,
    /// The directory's lock (held to the end) and its watch.
    held: Held,
    timer: TimerFd,
    signals: Signals,
    emperor: StatsReader,
    fastrouter: Routers,
    prober: Prober,
    engine: Engine,
    inputs: VecDeque<Input>,
    /// Subscription packets waiting for room in the server's queue.
    unsent: VecDeque<Unsent>,
    outcome: Option<Outcome>,
    stop_signal: Option<i32>,
    uwsgi_versions: BTreeMap<String, String>,
    /// The vassal logs watched for evidence, and repairs waiting for
    /// their FIFO's reader.
    repairs: Repairs,
}

pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<RunSummary, Error> {
    let mut session = Session::prepare(cfg, Mode::Rollout)?;
    let held = session
        .held
        .take()
        .expect("a rollout's session holds the lock and the watch");
    let t = Duration::from_millis(cfg.stats_timeout_ms);
    session.open_report(cfg, rep);
    let poll = Poll::new().map_err(|e| Error::io("cannot create the event loop", e))?;
    let timer = TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )
    .map_err(|e| Error::io("cannot create a timerfd", e.into()))?;
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1])
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    let reg = poll.registry();
    reg.register(
        &mut SourceFd(&held.watcher.raw_fd()),
        WATCH,
        Interest::READABLE,
    )
    .and_then(|_| reg.register(&mut signals, SIGNALS, Interest::READABLE))
    .and_then(|_| {
        reg.register(
            &mut SourceFd(&timer.as_fd().as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )
    })
    .map_err(|e| Error::io("cannot register with the event loop", e))?;
    let emperor = StatsReader::new(StatsSource::Emperor, cfg.emperor_stats.clone(), EMPEROR, t)?;
    let fastrouter = Routers::new(&cfg.fastrouter_stats, FASTROUTER.0, t)?;

    let clock = rep.clock();
    let engine = Engine::new(
        session.settings.clone(),
        session.configs.clone(),
        clock.now(),
    );
    let repairs = Repairs::new(&session.parsed);
    let mut d = Driver {
        rep,
        clock,
        poll,
        session,
        held,
        timer,
        signals,
        emperor,
        fastrouter,
        prober: Prober::new(PROBES_FROM, t),
        engine,
        inputs: VecDeque::new(),
        unsent: VecDeque::new(),
        outcome: None,
        stop_signal: None,
        uwsgi_versions: BTreeMap::new(),
        repairs,
    };
    d.run_loop()
}

impl Driver<'_> {
    /// The one poll loop: wait to the engine's timeout, feed it every
    /// readiness, signal and timer as inputs, carry out its actions, until
    /// it finishes. Long on purpose: every source is dispatched here, in
    /// one place, so their order within a tick is visible.
    fn run_loop(&mut self) -> Result<RunSummary, Error> {
        let mut events = Events::with_capacity(64);
        loop {
            self.empty_engine_queues();
            if let Some(outcome) = self.outcome.take() {
                let exit_code = self.exit_code(&outcome);
                let stats_reads = self.emperor.reads + self.fastrouter.reads();
                self.rep.outcome(&outcome, exit_code, stats_reads);
                return Ok(RunSummary {
                    outcome,
                    exit_code,
                    stats_reads,
                    uwsgi_versions: self.uwsgi_versions.clone(),
                });
            }
            self.flush_unsent();
            if self.rep.wants_progress() {
                self.rep.progress(&self.engine.progress_info());
            }
            self.arm_timer();
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("waiting for events", e)),
            }
            for ev in events.iter() {
                match ev.token() {
                    WATCH => {
                        for c in self.held.watcher.drain(&self.session.dir) {
                            self.inputs.push_back(Input::Config(c));
                        }
                    }
                    SIGNALS => {
                        if let Some((exit_code, message)) = self.on_signals() {
                            // A second signal: leave now, saying what is mid-reload.
                            self.rep.human_line(&message, true);
                            return Ok(RunSummary {
                                outcome: self.interrupted_outcome(),
                                exit_code,
                                stats_reads: self.emperor.reads + self.fastrouter.reads(),
                                uwsgi_versions: self.uwsgi_versions.clone(),
                            });
                        }
                    }
                    TIMER => {
                        // Clears the expiration; EAGAIN if it already was.
                        let _ = self.timer.wait();
                    }
                    EMPEROR => {
                        if let Some(r) = self.emperor.on_ready(self.poll.registry()) {
                            self.inputs.push_back(to_input(
                                StatsSource::Emperor,
                                &self.emperor.spec,
                                r,
                            ));
                        }
                    }
                    t if self.fastrouter.owns(t) => {
                        if let Some(input) = self.fastrouter.on_ready(self.poll.registry(), t) {
                            self.inputs.push_back(input);
                        }
                    }
                    t if self.prober.owns(t) => {
                        if let Some((vassal, result)) =
                            self.prober.on_ready(self.poll.registry(), t)
                        {
                            self.inputs.push_back(Input::Probed { vassal, result });
                        }
                    }
                    _ => {}
                }
            }
            let inst = self.clock.instant_now();
            for (vassal, result) in self.prober.expire(self.poll.registry(), inst) {
                self.inputs.push_back(Input::Probed { vassal, result });
            }
            if let Some(r) = self.emperor.check_deadline(self.poll.registry(), inst) {
                self.inputs
                    .push_back(to_input(StatsSource::Emperor, &self.emperor.spec, r));
            }
            if let Some(input) = self.fastrouter.check_deadline(self.poll.registry(), inst) {
                self.inputs.push_back(input);
            }
            let session = &self.session;
            let evidence = self.repairs.poll(|v| session.config_of(v));
            self.inputs.extend(evidence);
            self.feed_inputs();
            let now = self.clock.now();
            if self.engine.poll_timeout().is_some_and(|t| now.mono_ms >= t) {
                self.engine.handle_timeout(now);
            }
        }
    }

    /// Executes actions and feeds their immediate results back until the
    /// engine has nothing more to say.
    fn empty_engine_queues(&mut self) {
        loop {
            self.take_outputs();
            if self.inputs.is_empty() {
                break;
            }
            self.feed_inputs();
        }
    }

    fn feed_inputs(&mut self) {
        while let Some(i) = self.inputs.pop_front() {
            self.note_version(&i);
            let now = self.clock.now();
            self.engine.handle(now, i);
            self.take_outputs();
        }
    }

    /// The engine's two queues: its reports to the operator first, then the
    /// actions, so that `Finish` (whose summary is printed last) and any
    /// runtime warning an action raises come after what the engine said.
    fn take_outputs(&mut self) {
        while let Some(r) = self.engine.poll_event() {
            self.rep.event(&r);
        }
        while let Some(a) = self.engine.poll_action() {
            self.execute(a);
        }
    }

    /// Keeps the uWSGI version each stats document names, for the report
    /// and the metrics.
    fn note_version(&mut self, i: &Input) {
        let (src, v) = match i {
            Input::Emperor(s) => (StatsSource::Emperor, &s.version),
            Input::Fastrouter(s) => (StatsSource::Fastrouter, &s.version),
            _ => return,
        };
        if !v.is_empty() && self.uwsgi_versions.get(src.as_str()) != Some(v) {
            self.uwsgi_versions
                .insert(src.as_str().to_string(), v.clone());
            self.rep.uwsgi_version(src.as_str(), v);
        }
    }

    /// Carries out one engine action. Long on purpose: one arm per
    /// `Action`, each a syscall or a queued task; the engine decided what.
    fn execute(&mut self, a: Action) {
        match a {
            Action::ReadStats(StatsSource::Emperor) => {
                if let Some(r) = self
                    .emperor
                    .start(self.poll.registry(), self.clock.instant_now())
                {
                    self.inputs
                        .push_back(to_input(StatsSource::Emperor, &self.emperor.spec, r));
                }
            }
            Action::ReadStats(StatsSource::Fastrouter) => {
                if let Some(input) = self
                    .fastrouter
                    .start(self.poll.registry(), self.clock.instant_now())
                {
                    self.inputs.push_back(input);
                }
            }
            Action::Touch { vassal, mtime } => {
                let error = touch::touch(&self.session.dir, &vassal, mtime).err();
                self.inputs.push_back(Input::Touched { vassal, error });
            }
            Action::Unsubscribe {
                vassal,
                key,
                node,
                modifier1,
            } => self.send_subscription(
                &vassal,
                subscription::Kind::Unsubscribe,
                &key,
                &node,
                modifier1,
            ),
            Action::Subscribe {
                vassal,
                key,
                node,
                modifier1,
            } => self.send_subscription(
                &vassal,
                subscription::Kind::Subscribe,
                &key,
                &node,
                modifier1,
            ),
            Action::Repair { vassal, pid } => {
                let config = self.session.config_of(&vassal);
                if let Some(answer) = self.repairs.repair(vassal, pid, config) {
                    self.inputs.push_back(answer);
                }
            }
            Action::WatchHookLog { vassal, pid } => {
                let config = self.session.config_of(&vassal);
                if let Some(warning) = self.repairs.watch(&vassal, pid, config) {
                    self.warn(Some(vassal), warning);
                }
            }
            Action::UnwatchHookLog { vassal } => self.repairs.unwatch(&vassal),
            Action::Probe {
                vassal,
                key,
                node,
                path,
            } => {
                // The host is the real key, not an HA router's engine key.
                let (key, _) = crate::stats::split_router_key(&key);
                let key = key.to_string();
                if let Some((vassal, result)) = self.prober.start(
                    self.poll.registry(),
                    vassal,
                    node,
                    &path,
                    &key,
                    self.clock.instant_now(),
                ) {
                    self.inputs.push_back(Input::Probed { vassal, result });
                }
            }
            Action::RescanConfigs => match self.session.dir.list() {
                Ok(files) => self
                    .inputs
                    .push_back(Input::Config(ConfigEvent::Rescanned(files))),
                Err(e) => self.warn(None, format!("rescan of the Emperor directory failed: {e}")),
            },
            Action::Finish(o) => self.outcome = Some(o),
        }
    }

    fn send_subscription(
        &mut self,
        vassal: &str,
        kind: subscription::Kind,
        key: &str,
        node: &str,
        modifier1: i64,
    ) {
        // The engine's key may name a second router of an HA pair: the
        // packet carries the real key, and goes to every server.
        let (key, _router) = crate::stats::split_router_key(key);
        match subscription::encode(kind, key, node, modifier1) {
            Ok(pkt) => {
                for server in self.session.subscription_servers.clone() {
                    // The same packet for the other router's key is one
                    // packet: do not queue it twice.
                    if self
                        .unsent
                        .iter()
                        .any(|u| u.server == server && u.pkt == pkt)
                    {
                        continue;
                    }
                    self.unsent.push_back(Unsent {
                        vassal: vassal.to_string(),
                        server,
                        pkt: pkt.clone(),
                        since: self.clock.instant_now(),
                    });
                }
                self.flush_unsent();
            }
            Err(e) => self.warn(
                Some(vassal.to_string()),
                format!("cannot encode a subscription packet for {node}: {e}"),
            ),
        }
    }

    /// Sends queued subscription packets in order until the server's queue
    /// is full; the rest wait for the next short retry. A packet that cannot
    /// go out for [`UNSENT_GIVE_UP`] is dropped with a warning (the engine's
    /// drain timeout and re-announce handling cover it).
    fn flush_unsent(&mut self) {
        while let Some(u) = self.unsent.front() {
            match dgram::try_send(&u.server, &u.pkt) {
                Ok(true) => {
                    self.unsent.pop_front();
                }
                Ok(false) if self.clock.instant_now().duration_since(u.since) < UNSENT_GIVE_UP => {
                    return
                }
                Ok(false) => {
                    let u = self.unsent.pop_front().expect("front() was Some");
                    self.warn(
                        Some(u.vassal),
                        format!(
                            "the subscription server {} stayed full for {} ms; packet dropped",
                            u.server,
                            UNSENT_GIVE_UP.as_millis()
                        ),
                    );
                }
                Err(e) => {
                    let u = self.unsent.pop_front().expect("front() was Some");
                    self.warn(Some(u.vassal), e.to_string());
                }
            }
        }
    }

    /// `Some((exit code, message))` when a second stop signal says leave now.
    fn on_signals(&mut self) -> Option<(u8, String)> {
        let mut got = Vec::new();
        for s in self.signals.pending() {
            got.push(s);
        }
        for s in got {
            match s {
                SIGUSR1 => {
                    let p = self.engine.progress_info();
                    let inflight: Vec<String> = p
                        .in_flight
                        .iter()
                        .map(|(n, ph)| format!("{n} ({})", ph.as_str()))
                        .collect();
                    let live: Vec<String> =
                        p.live.iter().map(|(k, l)| format!("{k} {l}")).collect();
                    self.rep.human_line(
                        &format!(
                            "progress: reloaded {}/{}, failed {}, in flight [{}], live [{}], {:.1} s",
                            p.reloaded,
                            p.total,
                            p.failed,
                            inflight.join(", "),
                            live.join(", "),
                            p.elapsed_ms as f64 / 1000.0
                        ),
                        true,
                    );
                }
                SIGINT | SIGTERM => {
                    if self.stop_signal.is_some() {
                        let code = exit::of_outcome(&Status::Interrupted, Some(s));
                        let p = self.engine.progress_info();
                        let names: Vec<String> = p
                            .in_flight
                            .iter()
                            .map(|(n, ph)| format!("{n} ({})", ph.as_str()))
                            .collect();
                        return Some((
                            code,
                            format!(
                                "second signal: exiting now; mid-reload: {}",
                                if names.is_empty() {
                                    "none".to_string()
                                } else {
                                    names.join(", ")
                                }
                            ),
                        ));
                    }
                    self.stop_signal = Some(s);
                    self.inputs.push_back(Input::Stop);
                }
                _ => {}
            }
        }
        None
    }

    fn interrupted_outcome(&self) -> Outcome {
        let p = self.engine.progress_info();
        Outcome {
            status: Status::Interrupted,
            reloaded: Vec::new(),
            failed: Vec::new(),
            untouched: p
                .in_flight
                .iter()
                .map(|(n, ph)| (n.clone(), format!("left {}", ph.as_str())))
                .collect(),
            lowest_live: Default::default(),
            min_live: p.min_live,
            elapsed_ms: p.elapsed_ms,
            summary: "exited on a second signal".into(),
        }
    }

    /// A runtime warning, as an event: human, `--json` and syslog alike.
    fn warn(&mut self, vassal: Option<String>, message: String) {
        let at_ms = self.clock.now().mono_ms;
        self.rep.event(&crate::engine::Report {
            at_ms,
            event: crate::engine::Event::Warning { vassal, message },
        });
    }

    fn exit_code(&self, o: &Outcome) -> u8 {
        exit::of_outcome(&o.status, self.stop_signal)
    }

    /// Arms the timerfd at the earliest of the engine's deadline and the
    /// stats reads' deadlines.
    fn arm_timer(&mut self) {
        let now = self.clock.instant_now();
        let mut at: Option<Instant> = self.engine.poll_timeout().map(|ms| self.clock.instant(ms));
        for d in [
            self.emperor.deadline(),
            self.fastrouter.deadline(),
            self.prober.deadline(),
        ]
        .into_iter()
        .flatten()
        {
            at = Some(at.map_or(d, |a| a.min(d)));
        }
        if self.repairs.waiting() {
            let retry = now + REPAIR_RETRY;
            at = Some(at.map_or(retry, |a| a.min(retry)));
        }
        if !self.unsent.is_empty() {
            let retry = now + UNSENT_RETRY;
            at = Some(at.map_or(retry, |a| a.min(retry)));
        }
        let Some(at) = at else {
            let _ = self.timer.unset();
            return;
        };
        // Zero would disarm the timer; an overdue deadline fires at once.
        let wait = at
            .saturating_duration_since(now)
            .max(Duration::from_micros(50));
        let _ = self.timer.set(
            Expiration::OneShot(TimeSpec::from_duration(wait)),
            TimerSetTimeFlags::empty(),
        );
    }
}
