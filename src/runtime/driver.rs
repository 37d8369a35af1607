//! The thin driver: one thread, one `mio::Poll`, carrying out the engine's
//! actions and feeding it what the system says.
//!
//! Sources: inotify on the Emperor directory, a timerfd armed at the
//! engine's next deadline, SIGINT/SIGTERM/SIGUSR1, and the two stats sockets.
//! Between events the thread sleeps in `epoll_wait`: no busy polling.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use super::clock::Clock;
use super::configs::EmperorDir;
use super::lock::DirLock;
use super::prober::Prober;
use super::routers::Routers;
use super::stats_reader::{to_input, StatsReader};
use super::watcher::Watcher;
use super::{dgram, fifo, touch};
use crate::cli::Config;
use crate::engine::{Action, ConfigEvent, Engine, Input, NodeMatch, Outcome, Status};
use crate::error::{exit, Error};
use crate::report::Reporter;
use crate::stats::StatsSource;
use crate::subscription;
use crate::vassal_config::VassalConfig;

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

/// What a run ended with, for `main` and the benchmark.
pub struct RunSummary {
    pub outcome: Outcome,
    pub exit_code: u8,
    pub stats_reads: u64,
    /// uWSGI's version per stats source (`emperor`, `fastrouter`), as read.
    pub uwsgi_versions: BTreeMap<String, String>,
}

/// Everything opened before the first stats read: the directory, its lock,
/// the watch, the configs and what they say.
pub struct Prepared {
    pub dir: EmperorDir,
    pub lock: DirLock,
    pub watcher: Watcher,
    pub configs: Vec<crate::engine::ConfigFile>,
    pub parsed: Vec<(String, Result<VassalConfig, String>)>,
    /// Every subscription server the drain sends to (one per fastrouter).
    pub subscription_servers: Vec<String>,
    pub notes: Vec<String>,
}

/// Opens and checks everything that needs no socket: usage errors (exit 2)
/// and the lock (exit 3) come out of here, before anything is read.
pub fn prepare(cfg: &Config) -> Result<Prepared, Error> {
    let dir = EmperorDir::open(&cfg.emperor_path, &cfg.suffix, cfg.touch_target)?;
    let lock = DirLock::acquire(&dir.fd, &cfg.emperor_path)?;
    // Watch before listing, so nothing that happens in between is lost.
    let watcher = Watcher::new(&dir)?;
    let configs = super::configs::select(cfg, &dir)?;
    let parsed = parse_configs(&dir, &configs);
    let (subscription_servers, mut notes) = subscription_server(cfg, &parsed);
    let routers: Vec<String> = dir
        .list()?
        .into_iter()
        .filter(|c| cfg.selected(&c.name) && !configs.iter().any(|x| x.name == c.name))
        .map(|c| c.name)
        .collect();
    if !routers.is_empty() {
        notes.push(format!(
            "note: {} run(s) a fastrouter: a router, not an app vassal; left out of the rollout (name it with --only to reload it)",
            routers.join(", ")
        ));
    }
    notes.extend(doctor(cfg, &parsed, !subscription_servers.is_empty())?);
    notes.extend(datagram_queue_note(&parsed));
    Ok(Prepared {
        dir,
        lock,
        watcher,
        configs,
        parsed,
        subscription_servers,
        notes,
    })
}

/// Where the drain (and the dead-node sweep) sends its unsubscribes:
/// `--subscription-server`, else every server the vassal configs name (one
/// per fastrouter of an HA pair); none (drain off) with a note why.
pub fn subscription_server(
    cfg: &Config,
    parsed: &[(String, Result<VassalConfig, String>)],
) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let servers = if cfg.no_drain {
        Vec::new()
    } else if let Some(s) = &cfg.subscription_server {
        vec![s.clone()]
    } else {
        let mut servers: Vec<String> = parsed
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok())
            .flat_map(|p| p.subscriptions.iter().map(|s| s.server.clone()))
            .collect();
        servers.sort();
        servers.dedup();
        if servers.is_empty() {
            notes.push("note: drain is off: the vassal configs name no subscription server; pass --subscription-server to unsubscribe each vassal before its touch (or --no-drain to silence this)".to_string());
        }
        servers
    };
    (servers, notes)
}

/// The subscription servers as one line for the report, if any.
pub fn servers_line(servers: &[String]) -> Option<String> {
    (!servers.is_empty()).then(|| servers.join(", "))
}

/// Unix datagram subscription servers queue at most
/// `net.unix.max_dgram_qlen` packets; announces beyond that are dropped by
/// the kernel (the vassal logs `sendto(): Resource temporarily unavailable`)
/// and those nodes come back a subscribe-freq late.
fn datagram_queue_note(parsed: &[(String, Result<VassalConfig, String>)]) -> Option<String> {
    let unix = parsed
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .any(|p| p.subscriptions.iter().any(|s| !s.server.contains(':')));
    let qlen: usize = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (unix && qlen < parsed.len()).then(|| {
        format!(
            "warning: net.unix.max_dgram_qlen is {qlen}, fewer than the {} vassals that may announce at once: the kernel drops the excess announces and those nodes come back up to a subscribe-freq late; raise it (sysctl -w net.unix.max_dgram_qlen={})",
            parsed.len(),
            parsed.len().next_power_of_two().max(64)
        )
    })
}

/// The doctor's findings as warning lines, or with `--strict` an error.
pub fn doctor(
    cfg: &Config,
    parsed: &[(String, Result<VassalConfig, String>)],
    drain: bool,
) -> Result<Vec<String>, Error> {
    let refs: Vec<(String, Result<&VassalConfig, String>)> = parsed
        .iter()
        .map(|(n, p)| (n.clone(), p.as_ref().map_err(Clone::clone)))
        .collect();
    let lines: Vec<String> = crate::doctor::check(&refs, drain)
        .iter()
        .map(|f| f.render(parsed.len()))
        .collect();
    if cfg.strict && !lines.is_empty() {
        let more = match lines.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more finding(s); run without --strict to see them)"),
        };
        return Err(Error::Precondition(format!("--strict: {}{more}", lines[0])));
    }
    Ok(lines.into_iter().map(|l| format!("warning: {l}")).collect())
}

/// The engine's settings for this directory: the command line's, plus
/// what only the system can tell (the Emperor directory's real path, the
/// node names from the configs, the other-mode mtimes of links, whether the
/// drain has a server). One place, so a rollout and `--dry-run` decide alike.
pub fn engine_settings(
    cfg: &Config,
    dir: &EmperorDir,
    configs: &[crate::engine::ConfigFile],
    parsed: &[(String, Result<VassalConfig, String>)],
    drain: bool,
) -> crate::engine::Settings {
    let mut s = cfg.settings.clone();
    s.emperor_dir = std::fs::canonicalize(&cfg.emperor_path)
        .ok()
        .and_then(|p: PathBuf| p.to_str().map(str::to_string));
    s.drain_timeout_ms = drain.then_some(cfg.drain_timeout_ms);
    s.node_match = node_match(&s.node_match, parsed);
    s.other_mode_mtimes = dir.other_mode_mtimes(configs);
    s.touch_target = cfg.touch_target;
    s.can_unsubscribe = drain;
    s.subscribe_freq_s = parsed
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), p.as_ref().ok()?.subscribe_freq()?)))
        .collect();
    s
}

/// What the fastrouter's own options change, where it runs on this host
/// (its stats socket is a unix socket): its real `subscription-tolerance`
/// makes node freshness exact when `--subscription-tolerance` is not given
/// (fsm/AVAILABILITY.md), and `fastrouter-cheap` is worth a warning. Returns
/// the notes to print.
pub fn learn_fastrouter_options(
    cfg: &Config,
    s: &mut crate::engine::Settings,
    fastrouter_pid: i64,
) -> Vec<String> {
    if !matches!(
        cfg.fastrouter_stats.first(),
        Some(crate::cli::SocketSpec::Unix(_))
    ) {
        return Vec::new();
    }
    let opts = super::fastrouter_setup::options(fastrouter_pid);
    let mut notes = Vec::new();
    if let (false, Some((t, from))) = (s.node_tolerance_known, opts.tolerance) {
        s.node_tolerance_s = t;
        s.node_tolerance_known = true;
        notes.push(format!(
            "note: the fastrouter's subscription-tolerance is {t} s (from {from}): nodes older than that are not live"
        ));
    }
    if opts.cheap {
        notes.push(
            "warning: the fastrouter runs with fastrouter-cheap: when a key's last node goes it stops accepting and drops the requests in flight (unbit/uwsgi#2302); keep K >= 1 (never --allow-downtime to 0) or drop fastrouter-cheap".to_string(),
        );
    }
    notes
}

/// Without `--node-name`, each vassal's node is the exact address its own
/// config subscribes with (`subscribe2 addr=` or its first socket); the
/// uwsgi_reload.py stem rule serves configs that name none.
pub fn node_match(
    given: &NodeMatch,
    parsed: &[(String, Result<VassalConfig, String>)],
) -> NodeMatch {
    if *given != NodeMatch::Stem {
        return given.clone();
    }
    let names: std::collections::BTreeMap<String, String> = parsed
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), p.as_ref().ok()?.node_name()?)))
        .collect();
    if names.is_empty() {
        NodeMatch::Stem
    } else {
        NodeMatch::Names(names)
    }
}

/// Each config, parsed where it can be (a config it cannot read is simply
/// not used for mapping, drain or repair).
pub fn parse_configs(
    dir: &EmperorDir,
    configs: &[crate::engine::ConfigFile],
) -> Vec<(String, Result<VassalConfig, String>)> {
    configs
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                super::configs::load_vassal_config(&dir.path.join(&c.name)),
            )
        })
        .collect()
}

struct Driver<'a> {
    rep: &'a mut Reporter,
    clock: Clock,
    poll: Poll,
    prep: Prepared,
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
}

pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<RunSummary, Error> {
    let prep = prepare(cfg)?;
    let mut settings = engine_settings(
        cfg,
        &prep.dir,
        &prep.configs,
        &prep.parsed,
        !prep.subscription_servers.is_empty(),
    );
    // One look at the fastrouter for its pid and options (the engine reads
    // it again, and a failure here is the engine's to report).
    let mut notes = prep.notes.clone();
    let t = Duration::from_millis(cfg.stats_timeout_ms);
    if let Ok(bytes) =
        super::stats_reader::read_once(StatsSource::Fastrouter, &cfg.fastrouter_stats[0], t)
    {
        if let Ok(fr) = crate::stats::FastrouterSnapshot::parse(&bytes) {
            notes.extend(learn_fastrouter_options(cfg, &mut settings, fr.pid));
        }
    }
    rep.set_run_info(crate::report::info::RunInfo::new(
        &settings,
        servers_line(&prep.subscription_servers).as_deref(),
    ));
    if !cfg.output.quiet {
        for n in &notes {
            rep.note(n);
        }
    }
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
        &mut SourceFd(&prep.watcher.raw_fd()),
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

    let clock = Clock::new();
    let engine = Engine::new(settings, prep.configs.clone(), clock.now());
    let mut d = Driver {
        rep,
        clock,
        poll,
        prep,
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
    };
    d.run_loop()
}

impl Driver<'_> {
    fn run_loop(&mut self) -> Result<RunSummary, Error> {
        let mut events = Events::with_capacity(64);
        loop {
            self.drain_engine();
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
                        for c in self.prep.watcher.drain(&self.prep.dir) {
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
            let inst = Instant::now();
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
            self.feed_inputs();
            let now = self.clock.now();
            if self.engine.poll_timeout().is_some_and(|t| now.mono_ms >= t) {
                self.engine.handle_timeout(now);
            }
        }
    }

    /// Executes actions and feeds their immediate results back until the
    /// engine has nothing more to say.
    fn drain_engine(&mut self) {
        loop {
            while let Some(a) = self.engine.poll_action() {
                self.execute(a);
            }
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
            while let Some(a) = self.engine.poll_action() {
                self.execute(a);
            }
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

    fn execute(&mut self, a: Action) {
        match a {
            Action::ReadStats(StatsSource::Emperor) => {
                if let Some(r) = self.emperor.start(self.poll.registry(), Instant::now()) {
                    self.inputs
                        .push_back(to_input(StatsSource::Emperor, &self.emperor.spec, r));
                }
            }
            Action::ReadStats(StatsSource::Fastrouter) => {
                if let Some(input) = self.fastrouter.start(self.poll.registry(), Instant::now()) {
                    self.inputs.push_back(input);
                }
            }
            Action::Touch { vassal, mtime } => {
                let error = touch::touch(&self.prep.dir, &vassal, mtime).err();
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
                let parsed = self
                    .prep
                    .parsed
                    .iter()
                    .find(|(n, _)| *n == vassal)
                    .and_then(|(_, p)| p.as_ref().ok());
                let result = fifo::find_master_fifo(pid as i32, parsed).and_then(|path| {
                    fifo::write_fifo_command(&path, b'S').map(|()| path.display().to_string())
                });
                self.inputs.push_back(Input::Repaired { vassal, result });
            }
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
                    Instant::now(),
                ) {
                    self.inputs.push_back(Input::Probed { vassal, result });
                }
            }
            Action::RescanConfigs => match self.prep.dir.list() {
                Ok(files) => self
                    .inputs
                    .push_back(Input::Config(ConfigEvent::Rescanned(files))),
                Err(e) => self
                    .rep
                    .human_line(&format!("warning: rescan failed: {e}"), true),
            },
            Action::Report(r) => self.rep.event(&r),
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
                for server in self.prep.subscription_servers.clone() {
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
                        since: Instant::now(),
                    });
                }
                self.flush_unsent();
            }
            Err(e) => self.rep.human_line(
                &format!("warning: {vassal}: cannot encode a subscription packet for {node}: {e}"),
                true,
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
                Ok(false) if u.since.elapsed() < UNSENT_GIVE_UP => return,
                Ok(false) => {
                    let u = self.unsent.pop_front().expect("front() was Some");
                    self.rep.human_line(
                        &format!("warning: {}: the subscription server {} stayed full for {} ms; packet dropped", u.vassal, u.server, UNSENT_GIVE_UP.as_millis()),
                        true,
                    );
                }
                Err(e) => {
                    let u = self.unsent.pop_front().expect("front() was Some");
                    self.rep
                        .human_line(&format!("warning: {}: {e}", u.vassal), true);
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
                        let code = signal_exit(s);
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

    fn exit_code(&self, o: &Outcome) -> u8 {
        match o.status {
            Status::Completed => exit::OK,
            Status::Failed => exit::FAILED,
            Status::Precondition(_) => exit::PRECONDITION,
            Status::Interrupted => self.stop_signal.map_or(exit::SIGINT, signal_exit),
        }
    }

    /// Arms the timerfd at the earliest of the engine's deadline and the
    /// stats reads' deadlines.
    fn arm_timer(&mut self) {
        let now = Instant::now();
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

fn signal_exit(sig: i32) -> u8 {
    if sig == SIGTERM {
        exit::SIGTERM
    } else {
        exit::SIGINT
    }
}
