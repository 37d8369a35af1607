//! A small deterministic model of an Emperor, a fastrouter and up to a few
//! vassals, driving the sans-IO engine the way the runtime does.
//!
//! Files, by job: `config.rs` what a run is (fleet, setup, faults) and the
//! engine settings, built in one place, [`Config::settings`]; `world.rs`
//! the world (Emperor records, vassal processes, fastrouter nodes, the
//! Emperor's scan); `moves.rs` everything that can happen next, faults
//! included, and what it does; `checker.rs` the properties; this file the
//! [`Sim`] that ties them to the engine.
//!
//! The model follows uWSGI as docs/UWSGI.md describes it (its § below):
//! - The Emperor notices an mtime only when it scans: after each stats read
//!   (the snapshot is written *before* the scan, §1) or on its own every
//!   `emperor-freq`. A reload sets `last_mod = mtime`, `respawns += 1`,
//!   `ready = accepting = 0`, `last_run = now` at once (§4), only if the
//!   mtime is newer in whole seconds (§2).
//! - The vassal then begins its reload (with `unsubscribe-on-graceful-reload`
//!   its nodes are removed, or death-marked while busy), accepts again after
//!   its app import (`Config::accept_after_ms` to `accept_within_ms`: 1 s,
//!   or 15-30 s for a slow start; the same after a crash-restart; same pid
//!   on a reload, a new one after a crash: §5-§7), then announces (nodes re-added,
//!   fresh `last_check`) at once, up to `announce_late_ms` later, or with
//!   lazy-apps only at its next subscribe-freq tick.
//! - Each vassal announces every its own `subscribe-freq` (5 s by default
//!   here, 10 s, 25 s...), under each of its keys, with each of its
//!   addresses (one, or two for `Config::two_addrs`). The fastrouter
//!   expires a node older than its `subscription-tolerance`
//!   (`Config::fr_tolerance_s`, 17 s by default); the engine knows that
//!   value only when told (`Config::tolerance_flag`). (§9)
//! - A second reload request reaching a vassal mid-reload either merges or
//!   wedges it: it accepts and announces once, then stays out (§12).
//! - `S` written to a master FIFO toggles its subscription: it unblocks a
//!   vassal that never subscribed, and blocks one that did (§14).
//! - A fastrouter restart changes its `pid` and drops every node; each comes
//!   back at its vassal's next announce.
//! - The rollout may start with a vassal blacklisted (its config fixed, or
//!   still broken), accepting but never subscribed, stale, or restarted a
//!   few seconds ago and still importing its app ([`Initial`]).
//!
//! Everything that can happen next is a [`Move`]; [`Sim::moves`] lists them
//! and [`Sim::apply`] carries one out, feeds the engine, drains its actions and
//! checks the properties that hold at every step. Time only moves by jumping
//! to the engine's `poll_timeout()` (or a world event's earliest time), as
//! quinn-proto's tests do. Faults are moves too, bounded per run.
//!
//! K is checked after faults too, each drop attributed to its cause
//! (checker.rs): a touch, drain unsubscribe or `S` of the tool that takes a
//! serving vassal (accepting, with a fresh node) out and leaves a key below
//! K, counting every node the tool already has out, fails, whatever the
//! world did before; a drop the world caused alone (crash, crash loop,
//! someone else's reload, config removed, fastrouter restart) is allowed,
//! but the tool must not add to it. A world drop the tool has not yet been
//! able to read counts as still live when the tool is judged. A touch of a
//! vassal whose Emperor record (as the engine last read it) shows it not
//! accepting since its last (re)start fails, however old that start.
//!
//! Used by `tests/explore.rs` (exhaustive DFS), the fuzz target `engine`
//! (choices from fuzzer bytes) and `tests/fuzz_corpus.rs`.

#![allow(dead_code)]

mod checker;
mod config;
mod moves;
mod world;

use checker::short_input;
pub use config::*;
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
/// Serving vassals announce every this many seconds unless the config says
/// otherwise (subscribe-freq, shortened; nodes stay fresh: the default
/// tolerance is 17 s).
pub const ANNOUNCE_EVERY_S: i64 = 5;
/// The Emperor scans on its own at least this often after a change.
pub const EMPEROR_FREQ_MS: u64 = 3_000;
/// uWSGI's own subscribe-freq when a config sets none.
pub const UWSGI_SUBSCRIBE_FREQ_S: i64 = 10;
/// A stopping vassal exits, and busy sessions end, within this long.
pub const EXIT_WITHIN_MS: u64 = 1_000;

pub fn vassal_name(i: usize) -> String {
    format!("app_{:02}.ini", i + 1)
}

pub fn socket_name(i: usize) -> String {
    node_name(i, 0)
}

/// The address vassal `i` subscribes with: its socket, and with two
/// addresses a second socket of the same file name in another directory
/// (both match the engine's stem rule).
pub fn node_name(i: usize, addr: u8) -> String {
    match addr {
        0 => format!("/run/uwsgi/app_{:02}.sock", i + 1),
        _ => format!("/run/uwsgi/b/app_{:02}.sock", i + 1),
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
    /// `--keep-going`: a failure does not stop the rollout.
    pub keep_going: bool,
    pub w: World,
    pub e: Engine,
    pub outcome: Option<Outcome>,
    /// Keys live >= K at the start: K is asserted for them.
    pub guarded: u8,
    /// Live nodes per key at the start.
    pub start_live: [usize; 2],
    /// The last Emperor snapshot handed to the engine: what it knew of
    /// each vassal's record when it acted.
    pub seen_emp: Option<EmperorSnapshot>,
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
            let addrs = if cfg.two_addrs && i == 0 { 2 } else { 1 };
            let freq_s = cfg.freq_of(i);
            let phase_s = if cfg.in_phase { 0 } else { i as i64 };
            // Its last announce: the last tick of its own subscribe-freq.
            let last_check = if freq_s == ANNOUNCE_EVERY_S {
                WALL0 - 1 - (i as i64 % 3)
            } else {
                (WALL0 - 1) - (WALL0 - 1 + phase_s).rem_euclid(freq_s)
            };
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
                wedged_unfinished: false,
                wedge_unseen: false,
                foreign_mtime: false,
                broken: false,
                new_gen: false,
                reloaded: false,
                touches: 0,
                announced_early: false,
                watched: false,
                blocked_by_tool: false,
                announce_again: None,
                gone_last_mod: 0,
                keys,
                addrs,
                freq_s,
                phase_s,
                taken: false,
                pre_failing: false,
                unseen: 0,
                lost_live: [0; 2],
            });
            for key in 0..2u8 {
                for addr in 0..addrs {
                    if keys & (1 << key) != 0 {
                        nodes.push(NodeW {
                            key,
                            addr,
                            owner: Some(i),
                            last_check,
                            death_mark: false,
                            busy: false,
                            marked_at: 0,
                            by_tool: false,
                        });
                    }
                }
            }
        }
        match cfg.initial {
            Initial::AllUp => {}
            Initial::FirstBlacklisted | Initial::FirstCrashLooping => {
                let looping = cfg.initial == Initial::FirstCrashLooping;
                let v = &mut vassals[0];
                v.rec = None;
                v.proc_ = Proc::Gone;
                v.blacklist_attempt = Some(3);
                // Still broken: the Emperor never starts it again.
                v.gone_last_mod = if looping { i64::MAX } else { mtime0 };
                v.pre_failing = looping;
                nodes.retain(|n| n.owner != Some(0));
            }
            Initial::FirstStarting(ago_s) => {
                let ago = ago_s as i64;
                let v = &mut vassals[0];
                v.rec = Some(Rec {
                    pid: 1_900,
                    last_mod: mtime0,
                    ready: 0,
                    accepting: 0,
                    last_accepting: 0,
                    respawns: 0,
                    cursed: 0,
                    born: mtime0,
                    first_run: WALL0 - ago,
                    last_run: WALL0 - ago,
                });
                v.proc_ = Proc::Starting {
                    since: MONO0 - ago as u64 * 1_000,
                };
                // The node of the master that died stays listed (no
                // unsubscribe on a crash), last announced before it.
                for n in nodes.iter_mut().filter(|n| n.owner == Some(0)) {
                    n.last_check = n.last_check.min(WALL0 - ago - 1);
                }
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
                addr: 0,
                owner: None,
                last_check: WALL0 - 2,
                death_mark: false,
                busy: false,
                marked_at: 0,
                by_tool: false,
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
            hit: 0,
            stopped: false,
            fr_restarted: false,
            exempt: 0,
            next_pid: 2_000,
            fr_pid: 2,
            foreign_unseen: 0,
            fr_tolerance_s: cfg.fr_tolerance_s,
            accept_after_ms: cfg.accept_after_ms,
            accept_at_ends: cfg.accept_at_ends,
            announce_late_ms: cfg.announce_late_ms,
            lazy_apps: cfg.lazy_apps,
            foreign_node: cfg.foreign_node,
            uogr: cfg.uogr,
            busy: cfg.busy,
            accept_within_ms: cfg.accept_within_ms.max(cfg.accept_after_ms),
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
        let start_live = [w.live(0), w.live(1)];
        let mut s = Sim {
            cfg_faults: cfg.faults.clone(),
            max_faults: cfg.max_faults,
            limit_ms: MONO0 + cfg.limit_ms(),
            k: cfg.k,
            probe: cfg.probe,
            keep_going: cfg.keep_going,
            w,
            e,
            outcome: None,
            guarded,
            start_live,
            seen_emp: None,
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
                if let Input::Emperor(snap) = &input {
                    self.seen_emp = Some(snap.clone());
                }
                self.e.handle(now, input);
                self.drain()?;
            }
            (_, None) => {}
        }
        self.release_taken();
        self.check_step()
    }
}
