//! A small deterministic model of an Emperor, a fastrouter and up to a few
//! vassals, driving the sans-IO engine the way the runtime does.
//!
//! The model follows `shared/uwsgi/FACTS.md` (and SEMANTICS.md):
//! - The Emperor notices an mtime only when it scans: after each stats read
//!   (the snapshot is written *before* the scan, FACTS 1) or on its own every
//!   `emperor-freq`. A reload sets `last_mod = mtime`, `respawns += 1`,
//!   `ready = accepting = 0`, `last_run = now` at once (FACTS 6), only if the
//!   mtime is newer in whole seconds (FACTS 2).
//! - The vassal then begins its reload (with `unsubscribe-on-graceful-reload`
//!   its nodes are removed, or death-marked while busy), accepts again no
//!   sooner than 1 s later (`accepting = 1`, `last_accepting = now`, same pid,
//!   FACTS 7-8), then announces (node re-added, fresh `last_check`).
//! - Serving vassals announce every few seconds; nodes never expire by
//!   themselves (FACTS 11).
//! - A second reload request reaching a vassal mid-reload either merges or
//!   wedges it (FACTS 4): it accepts and announces once, then stays out.
//!
//! Everything that can happen next is a [`Move`]; [`Sim::moves`] lists them
//! and [`Sim::apply`] carries one out, feeds the engine, drains its actions and
//! checks the properties that hold at every step. Time only moves by jumping
//! to the engine's `poll_timeout()` (or a world event's earliest time), as
//! quinn-proto's tests do. Faults are moves too, bounded per run.
//!
//! Used by `tests/explore.rs` (exhaustive DFS), the fuzz target `engine`
//! (choices from fuzzer bytes) and `tests/fuzz_corpus.rs`.

#![allow(dead_code)]

mod checker;
mod moves;
mod world;

use checker::short_input;
pub use moves::*;
pub use world::*;

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use uwsgi_reload::engine::{
    Action, ConfigEvent, ConfigFile, Engine, Input, NodeMatch, Now, Outcome, Settings, Status,
};
use uwsgi_reload::stats::{
    BlacklistEntry, EmperorSnapshot, FastrouterSnapshot, Node, StatsSource, Subscription,
    VassalStats,
};

pub const MONO0: u64 = 50_000_000;
pub const WALL0: i64 = 1_795_637_000;
pub const EMPEROR_DIR: &str = "/etc/uwsgi/vassals";
pub const KEYS: [&str; 2] = ["app.example.com", "api.example.com"];
pub const FOREIGN_NODE: &str = "10.0.0.9:3031";
/// Serving vassals announce every this many seconds (subscribe-freq,
/// shortened; nodes stay fresh: the tolerance is 17 s).
pub const ANNOUNCE_EVERY_S: i64 = 5;
/// The Emperor scans on its own at least this often after a change.
pub const EMPEROR_FREQ_MS: u64 = 3_000;
/// It accepts again no sooner than this after beginning (and no later than
/// `Config::accept_within_ms`).
pub const ACCEPT_AFTER_MS: u64 = 1_000;
/// It announces within this long of accepting (unless blocked): before
/// time moves on, though stats reads may see it accepting but not announced.
pub const ANNOUNCE_WITHIN_MS: u64 = 0;
/// A stopping vassal exits, and busy sessions end, within this long.
pub const EXIT_WITHIN_MS: u64 = 1_000;

pub fn vassal_name(i: usize) -> String {
    format!("app_{:02}.ini", i + 1)
}

pub fn socket_name(i: usize) -> String {
    format!("/run/uwsgi/app_{:02}.sock", i + 1)
}

/// Which keys each vassal subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Keys {
    /// Every vassal under key 0.
    One,
    /// Vassal i under key i % 2.
    Split,
    /// Every vassal under both keys (two subscribe2 lines).
    Both,
}

/// The faults a run may suffer (at most `Config::max_faults` of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The vassal master dies; the Emperor starts a new record (new pid).
    Crash,
    /// Its config fails to start: gone from vassals[], in blacklist[].
    CrashLoop,
    /// It never re-subscribes after its reload (FACTS 17); a repair fixes
    /// it, does not, or finds no FIFO.
    MissingAnnounce,
    /// Someone else moves its config's mtime.
    ForeignTouch,
    /// Its config is deleted; the Emperor stops it.
    ConfigRemoved,
    /// A stats read fails (connect, timeout).
    ReadFail,
    /// A stats read returns something that does not parse (empty,
    /// truncated): the driver reports a failed read.
    InvalidSnapshot,
    /// The driver cannot set the mtime.
    TouchError,
    /// The inotify queue overflows.
    Overflow,
    /// SIGINT.
    Stop,
    /// The fastrouter restarts and forgets every subscription until the
    /// next announces.
    FastrouterRestart,
    /// A stats read is slow: it is still in flight when time moves on.
    SlowRead,
    /// The new generation's app fails to import: it accepts, subscribes and
    /// answers 500 (FACTS 18). Only `--probe` tells.
    BrokenApp,
}

impl FaultKind {
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Crash,
        FaultKind::CrashLoop,
        FaultKind::MissingAnnounce,
        FaultKind::ForeignTouch,
        FaultKind::ConfigRemoved,
        FaultKind::ReadFail,
        FaultKind::InvalidSnapshot,
        FaultKind::TouchError,
        FaultKind::Overflow,
        FaultKind::Stop,
        FaultKind::FastrouterRestart,
        FaultKind::SlowRead,
        FaultKind::BrokenApp,
    ];
}

/// How the vassals are when the rollout starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initial {
    /// Every vassal accepting, every node fresh.
    AllUp,
    /// The first vassal crash-loops with its current config (blacklisted,
    /// no record, no node); the config on disk is fixed, so the Emperor
    /// starts it again once touched.
    FirstBlacklisted,
    /// The first vassal accepts but never subscribed (the start-up race of
    /// FACTS 17); its next generation subscribes.
    FirstUnsubscribed,
    /// The first vassal's node is stale (no announce for 40 s) but still
    /// listed with death_mark 0 (FACTS 11); its next generation announces.
    FirstStale,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Vassals, 1..=4.
    pub n: usize,
    /// K.
    pub k: usize,
    pub keys: Keys,
    /// `unsubscribe-on-graceful-reload` in the vassals.
    pub uogr: bool,
    /// `--drain-timeout`.
    pub drain: bool,
    /// Unsubscribed nodes have sessions in flight (death-marked, freed later).
    pub busy: bool,
    /// A node of another host under key 0, always fresh.
    pub foreign_node: bool,
    /// `--keep-going` (no stop at the first failure).
    pub keep_going: bool,
    pub faults: Vec<FaultKind>,
    pub max_faults: u8,
    /// The engine's check interval.
    pub tick_ms: u64,
    /// Give up on a run (a failure: it never finished) past this much time.
    pub max_ms: u64,
    /// A reload takes from 1 s up to this long before worker 1 accepts.
    pub accept_within_ms: u64,
    /// Vassal and Emperor events may happen while a stats read is in
    /// flight (between the two reads of one tick). Off, each tick's reads
    /// see the world between events (still in either order); the Emperor's
    /// scan after its read changes it in between.
    pub events_between_reads: bool,
    /// The new generation may announce before worker 1 accepts (no
    /// start-unsubscribed; SEMANTICS 2.4.7).
    pub announce_first: bool,
    pub initial: Initial,
    /// `--max-parallel`, `--canary`, `--min-ready`.
    pub max_parallel: usize,
    pub canary: usize,
    pub min_ready_ms: u64,
    /// `--probe /health`.
    pub probe: bool,
}

impl Config {
    pub fn new(n: usize, k: usize, keys: Keys) -> Config {
        Config {
            n,
            k,
            keys,
            uogr: true,
            drain: false,
            busy: false,
            foreign_node: false,
            keep_going: false,
            faults: Vec::new(),
            max_faults: 0,
            tick_ms: 1_000,
            max_ms: 0,
            accept_within_ms: 1_000,
            events_between_reads: false,
            announce_first: false,
            initial: Initial::AllUp,
            max_parallel: usize::MAX,
            canary: 0,
            min_ready_ms: 0,
            probe: false,
        }
    }

    pub fn settings(&self) -> Settings {
        Settings {
            min_live: self.k,
            timeout_ms: 8_000,
            check_interval_ms: self.tick_ms,
            max_failures: if self.keep_going { usize::MAX } else { 1 },
            max_parallel: self.max_parallel,
            drain_timeout_ms: self.drain.then_some(2_000),
            repair: true,
            allow_downtime: false,
            node_match: NodeMatch::Stem,
            node_tolerance_s: 17,
            announce_grace_ms: 2_000,
            notice_window_ms: 3_000,
            repair_wait_ms: 3_000,
            emperor_dir: Some(EMPEROR_DIR.to_string()),
            stats_outage_ms: 3_000,
            canary: self.canary,
            min_ready_ms: self.min_ready_ms,
            // Fastrouter reads at the tick only: faster reads change when a
            // fact is seen, not which interleavings exist, and would
            // multiply the time steps explored.
            fast_fastrouter_ms: self.tick_ms,
            probe_path: self.probe.then(|| "/health".to_string()),
            ..Settings::default()
        }
    }

    pub(crate) fn keys_of(&self, i: usize) -> u8 {
        match self.keys {
            Keys::One => 1,
            Keys::Split => 1 << (i % 2),
            Keys::Both => 3,
        }
    }

    pub fn limit_ms(&self) -> u64 {
        if self.max_ms > 0 {
            self.max_ms
        } else {
            20_000 + 12_000 * self.n as u64
        }
    }
}

/// The world, the engine, and what the engine said.
#[derive(Clone, Debug)]
pub struct Sim {
    pub cfg_faults: Vec<FaultKind>,
    pub max_faults: u8,
    pub limit_ms: u64,
    pub k: usize,
    pub probe: bool,
    pub w: World,
    pub e: Engine,
    pub outcome: Option<Outcome>,
    /// Keys live >= K at the start: K is asserted for them.
    pub guarded: u8,
    pub log: Vec<String>,
    pub keep_log: bool,
}

/// `text` (a derived Debug output) without the value of the field named
/// `field` (`name: `): from its first `{` to the matching `}`, skipping
/// string literals.
pub(crate) fn without_field<'a>(text: &'a str, field: &str) -> std::borrow::Cow<'a, str> {
    let Some(start) = text.find(field) else {
        return text.into();
    };
    let b = text.as_bytes();
    let Some(open) = text[start..].find('{').map(|i| start + i) else {
        return text.into();
    };
    let (mut depth, mut i, mut in_str, mut esc) = (0usize, open, false, false);
    while i < b.len() {
        let c = b[i];
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            depth -= 1;
            if depth == 0 {
                return format!("{}{}", &text[..start], &text[i + 1..]).into();
            }
        }
        i += 1;
    }
    text.into()
}

impl Sim {
    pub fn new(cfg: &Config) -> Sim {
        let mut vassals = Vec::new();
        let mut nodes = Vec::new();
        let mtime0 = WALL0 - 3_600;
        for i in 0..cfg.n {
            let keys = cfg.keys_of(i);
            vassals.push(VassalW {
                mtime: mtime0,
                exists: true,
                rec: Some(Rec {
                    pid: 1_000 + i as i64,
                    last_mod: mtime0,
                    ready: 1,
                    accepting: 1,
                    last_accepting: WALL0 - 3_000,
                    respawns: 0,
                    cursed: 0,
                    born: mtime0,
                    first_run: WALL0 - 3_600,
                    last_run: WALL0 - 3_600,
                }),
                blacklist_attempt: None,
                proc_: Proc::Serving,
                blocked: None,
                wedged: false,
                wedge_unseen: false,
                foreign_mtime: false,
                broken: false,
                new_gen: false,
                reloaded: false,
                touches: 0,
                announced_early: false,
                announce_again: None,
                gone_last_mod: 0,
                keys,
            });
            for key in 0..2u8 {
                if keys & (1 << key) != 0 {
                    nodes.push(NodeW {
                        key,
                        owner: Some(i),
                        last_check: WALL0 - 1 - (i as i64 % 3),
                        death_mark: false,
                        busy: false,
                        marked_at: 0,
                    });
                }
            }
        }
        match cfg.initial {
            Initial::AllUp => {}
            Initial::FirstBlacklisted => {
                let v = &mut vassals[0];
                v.rec = None;
                v.proc_ = Proc::Gone;
                v.blacklist_attempt = Some(3);
                v.gone_last_mod = mtime0;
                nodes.retain(|n| n.owner != Some(0));
            }
            Initial::FirstUnsubscribed => {
                vassals[0].blocked = Some(RepairOutcome::DoesNotHelp);
                nodes.retain(|n| n.owner != Some(0));
            }
            Initial::FirstStale => {
                vassals[0].blocked = Some(RepairOutcome::DoesNotHelp);
                for n in nodes.iter_mut().filter(|n| n.owner == Some(0)) {
                    n.last_check = WALL0 - 40;
                }
            }
        }
        if cfg.foreign_node {
            nodes.push(NodeW {
                key: 0,
                owner: None,
                last_check: WALL0 - 2,
                death_mark: false,
                busy: false,
                marked_at: 0,
            });
        }
        let w = World {
            now: MONO0,
            order: (0..cfg.n).filter(|i| vassals[*i].rec.is_some()).collect(),
            vassals,
            nodes,
            reads: [false; 2],
            answers: Vec::new(),
            scan_due: None,
            faults_used: 0,
            any_fault: false,
            exempt: 0,
            next_pid: 2_000,
            foreign_node: cfg.foreign_node,
            uogr: cfg.uogr,
            busy: cfg.busy,
            accept_within_ms: cfg.accept_within_ms.max(ACCEPT_AFTER_MS),
            events_between_reads: cfg.events_between_reads,
            announce_first: cfg.announce_first,
            slow: [false; 2],
        };
        let configs = (0..cfg.n)
            .map(|i| ConfigFile {
                name: vassal_name(i),
                mtime: mtime0,
            })
            .collect();
        let e = Engine::new(cfg.settings(), configs, w.now());
        let guarded = (0..2u8)
            .filter(|k| w.live(*k) >= cfg.k)
            .fold(0, |m, k| m | (1 << k));
        let mut s = Sim {
            cfg_faults: cfg.faults.clone(),
            max_faults: cfg.max_faults,
            limit_ms: MONO0 + cfg.limit_ms(),
            k: cfg.k,
            probe: cfg.probe,
            w,
            e,
            outcome: None,
            guarded,
            log: Vec::new(),
            keep_log: false,
        };
        s.drain().expect("the first actions");
        s
    }

    /// A hash of everything that decides the future: the world and the
    /// engine's whole state.
    ///
    /// The engine's `matcher` is left out: an index derived from the
    /// fastrouter snapshot and the rule (both hashed), built of HashMaps
    /// whose Debug order differs between equal values.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.w.hash(&mut h);
        let mut text = String::with_capacity(8 * 1024);
        let _ = write!(text, "{:?}", self.e);
        h.write(without_field(&text, "matcher: ").as_bytes());
        h.finish()
    }

    pub fn finished(&self) -> bool {
        self.outcome.is_some()
    }

    pub(crate) fn fault_ok(&self, kind: FaultKind) -> bool {
        self.w.faults_used < self.max_faults && self.cfg_faults.contains(&kind)
    }

    pub(crate) fn note(&mut self, s: impl FnOnce() -> String) {
        if self.keep_log {
            let t = self.w.now - MONO0;
            let line = format!("{:>6} ms  {}", t, s());
            self.log.push(line);
        }
    }

    /// Carries out `mv` and checks every per-step property. The error says
    /// which property broke.
    pub fn apply(&mut self, mv: &Move) -> Result<(), String> {
        self.note(|| format!("{mv:?}"));
        let input = self.world_step(mv)?;
        let now = self.w.now();
        match (mv, input) {
            (Move::Timeout, _) | (Move::Advance { .. }, _) => {
                if let Some(t) = self.e.poll_timeout() {
                    if t <= now.mono_ms {
                        self.e.handle_timeout(now);
                        self.drain()?;
                        if let Some(t2) = self.e.poll_timeout() {
                            if t2 <= now.mono_ms && self.e.poll_action().is_none() {
                                return Err(format!(
                                    "handle_timeout({}) left poll_timeout at {} (not in the future): the driver would spin",
                                    now.mono_ms - MONO0,
                                    t2.saturating_sub(MONO0)
                                ));
                            }
                        }
                    }
                }
            }
            (_, Some(input)) => {
                self.note(|| format!("    -> {}", short_input(&input)));
                self.e.handle(now, input);
                self.drain()?;
            }
            (_, None) => {}
        }
        self.check_step()
    }
}
